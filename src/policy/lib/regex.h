/*
 * Go (RE2) regular expressions on PCRE2, for regex.* and glob.* built-ins.
 *
 * Patterns use Go's syntax; PCRE2 runs them in UTF mode with `$` meaning end
 * of text, and constructs RE2 refuses (backreferences, lookaround, atomic and
 * possessive groups) are rejected up front so regex.is_valid agrees with OPA.
 * Compiled patterns are cached process-wide (thread-safe, bounded): get a
 * handle with pc_plib_re_get() and always give it back with
 * pc_plib_re_release() (which frees only handles that were not cached).
 *
 * Offsets are byte offsets into the subject; an unset group is PC_PLIB_RE_UNSET.
 */
#ifndef PC_POLICY_LIB_REGEX_H
#define PC_POLICY_LIB_REGEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PC_PLIB_RE_UNSET ((size_t)-1)

typedef struct pc_plib_re pc_plib_re_t;

/** Compiled pattern or NULL with "error parsing regexp: ..." in err. */
pc_plib_re_t *pc_plib_re_get(const char *pat, size_t n, char *err, size_t errlen);
void pc_plib_re_release(pc_plib_re_t *re);
/** Number of capture groups (not counting the whole match). */
size_t pc_plib_re_groups(const pc_plib_re_t *re);
/** Index of a named group, or -1. */
int pc_plib_re_group_index(const pc_plib_re_t *re, const char *name, size_t n);

bool pc_plib_re_is_valid(const char *pat, size_t n);
/** 1 match, 0 no match, -1 matching error (resource limits). */
int pc_plib_re_match(pc_plib_re_t *re, const char *s, size_t n);

/**
 * Go's FindAll*Index: each non-overlapping match, at most max (max < 0: all),
 * with Go's rule for empty matches. cb gets 2*(groups+1) offsets; returning
 * false stops. Returns the number of matches delivered, or -1 on error.
 */
typedef bool (*pc_plib_re_cb)(void *ud, const size_t *ovec, size_t npairs);
long pc_plib_re_find_all(pc_plib_re_t *re, const char *s, size_t n, long max, pc_plib_re_cb cb,
                         void *ud);

/** regexp.ReplaceAllString with $1 / ${name} / $$ expansion; malloc'd, NULL on error. */
char *pc_plib_re_replace_all(pc_plib_re_t *re, const char *s, size_t n, const char *repl,
                             size_t rn, size_t *out_len);

/** regexp.Split(s, -1): calls cb for each piece (offsets into s). Returns pieces or -1. */
typedef bool (*pc_plib_re_piece_cb)(void *ud, size_t start, size_t end);
long pc_plib_re_split(pc_plib_re_t *re, const char *s, size_t n, pc_plib_re_piece_cb cb,
                      void *ud);

/** regexp.QuoteMeta; malloc'd. */
char *pc_plib_re_quote_meta(const char *s, size_t n, size_t *out_len);

/**
 * regex.template_match: template with delimited regex parts ("urn:{.*}"),
 * gorilla/mux style. 1 match, 0 no match, -1 error (message in err).
 */
int pc_plib_re_template_match(const char *tpl, size_t tn, const char *s, size_t n, char dstart,
                              char dend, char *err, size_t errlen);

/**
 * glob.match: pattern in gobwas/glob syntax, delimiters as code points
 * (ndelim 0: none). 1 match, 0 no match, -1 invalid pattern (err set).
 */
int pc_plib_glob_match(const char *pat, size_t pn, const uint32_t *delims, size_t ndelim,
                       const char *s, size_t n, char *err, size_t errlen);
/**
 * regex.globs_match: whether two globs in glob-intersection syntax ('.' any
 * char, [sets] with ranges, '*' / '+' after a token, '\' escapes) can match
 * a common non-empty string. 1, 0, or -1 with the library's error text.
 */
int pc_plib_globs_intersect(const char *a, size_t an, const char *b, size_t bn, char *err,
                            size_t errlen);
/** glob.quote_meta: backslash-escape * ? \ [ ] { } ; malloc'd. */
char *pc_plib_glob_quote_meta(const char *s, size_t n, size_t *out_len);

#endif
