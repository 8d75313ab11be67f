/*
 * units.parse and units.parse_bytes as Open Policy Agent defines them:
 * "10Ki", "1.5G", "500m", "3.2E2MiB", exact decimal arithmetic.
 *
 * Both return a malloc'd NUL-terminated decimal number (caller frees), or
 * NULL with OPA's full error message ("units.parse: no amount provided") in
 * err. Results: units.parse gives an integer text when the value is whole and
 * otherwise a fixed 10-decimal text (OPA's big.Rat FloatString(10));
 * units.parse_bytes truncates toward zero to an integer text.
 */
#ifndef PC_POLICY_LIB_UNITS_H
#define PC_POLICY_LIB_UNITS_H

#include <stddef.h>

char *pc_plib_units_parse(const char *s, size_t n, char *err, size_t errlen);
char *pc_plib_units_parse_bytes(const char *s, size_t n, char *err, size_t errlen);

#endif
