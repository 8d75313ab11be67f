/*
 * Go's fmt.Sprintf as OPA's sprintf built-in sees it, plus format_int.
 *
 * OPA hands Go's formatter four kinds of argument: an integer that fits Go's
 * int, a larger integer (*big.Int), a float64, and a string (strings, and
 * every other value already printed in Rego syntax by the caller). Mismatched
 * verbs, missing and extra arguments print Go's "%!d(string=x)" forms.
 */
#ifndef PC_POLICY_LIB_GOFMT_H
#define PC_POLICY_LIB_GOFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    PC_PLIB_FMT_STR,    /* s, len */
    PC_PLIB_FMT_INT,    /* i */
    PC_PLIB_FMT_BIGINT, /* s, len: decimal digits with optional leading '-' */
    PC_PLIB_FMT_FLOAT,  /* f */
} pc_plib_fmt_kind_t;

typedef struct pc_plib_fmt_arg {
    pc_plib_fmt_kind_t kind;
    const char *s;
    size_t len;
    int64_t i;
    double f;
} pc_plib_fmt_arg_t;

/** fmt.Sprintf(fmt, args...). Returns a malloc'd NUL-terminated string (NULL on OOM). */
char *pc_plib_sprintf(const char *fmt, size_t fmt_len, const pc_plib_fmt_arg_t *args,
                      size_t nargs, size_t *out_len);

/**
 * The same, formatting into buf[0..cap) when the result fits (the return
 * value is then buf) and into malloc'd memory otherwise (free it when the
 * return value is not buf). NULL on OOM.
 */
char *pc_plib_sprintf_buf(char *buf, size_t cap, const char *fmt, size_t fmt_len,
                          const pc_plib_fmt_arg_t *args, size_t nargs, size_t *out_len);

/**
 * format_int(number, base): num is a JSON/Rego number text; its value is
 * truncated toward zero and printed in base 2, 8, 10 or 16 (lower case).
 * Returns malloc'd text, or NULL if num is not a number or base is invalid.
 */
char *pc_plib_format_int(const char *num, size_t n, int base);

/**
 * Exact integer part of a number text ("1e3" -> "1000", "-15.9" -> "-15",
 * "-0.5" -> "0"). Returns malloc'd decimal digits, NULL if not a number or
 * the result would exceed max_digits.
 */
char *pc_plib_num_trunc(const char *num, size_t n, size_t max_digits);

/** Shortest decimal text that reads back as v, formatted like Go's %v / strconv 'g' -1. */
size_t pc_plib_fmt_float_shortest(double v, char verb, char *buf, size_t cap);

#endif
