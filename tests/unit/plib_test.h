/* Includes shared by the policy built-in helper tests (cmocka needs this order). */
#ifndef PC_TESTS_PLIB_TEST_H
#define PC_TESTS_PLIB_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#endif
