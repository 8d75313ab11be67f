/* Internal: exact integer arithmetic beyond int64 (used by the arithmetic builtins). */
#ifndef PC_POLICY_BIGNUM_H
#define PC_POLICY_BIGNUM_H

#include <stdbool.h>

#include "policy/value.h"

/** x op y for integers (op one of + - * %); false when an operand is not an
 *  integer written exactly, or on division by zero / out of memory. */
bool pc__bignum_op(pc_arena *a, char op, const pc_value *x, const pc_value *y, const pc_value **out);
/** A number beyond int64 that is an exact integer. */
bool pc__bignum_is_big(const pc_value *v);

#endif
