/* Small definitions every module uses: checks, attributes, sizes. */
#ifndef PC_CORE_COMMON_H
#define PC_CORE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define PC_WUR __attribute__((warn_unused_result))
#define PC_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define PC_NORETURN __attribute__((noreturn))
#define PC_LIKELY(x) __builtin_expect(!!(x), 1)
#define PC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define PC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

PC_NORETURN void pc__bug(const char *file, int line, const char *expr);

/* Always fatal: a state that cannot happen unless the code is wrong. */
#define PC_BUG_ON(cond)                                                                            \
    do {                                                                                           \
        if (PC_UNLIKELY(cond)) pc__bug(__FILE__, __LINE__, #cond);                                 \
    } while (0)

/* Debug-only invariant. */
#ifdef NDEBUG
#define PC_ASSERT(cond) ((void)0)
#else
#define PC_ASSERT(cond) PC_BUG_ON(!(cond))
#endif

/* Allocation that cannot fail: start-up and configuration paths only. */
void *pc_xmalloc(size_t n);
void *pc_xcalloc(size_t count, size_t n);
void *pc_xrealloc(void *p, size_t n);
char *pc_xstrdup(const char *s);
char *pc_xstrndup(const char *s, size_t n);

/* Monotonic and wall clocks. */
uint64_t pc_now_mono_ns(void);
uint64_t pc_now_wall_ns(void);

#endif
