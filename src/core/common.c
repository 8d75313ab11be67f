#include "core/common.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void pc__bug(const char *file, int line, const char *expr)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "{\"level\":\"fatal\",\"msg\":\"internal error\",\"file\":\"%s\",\"line\":%d,"
                     "\"check\":\"%s\"}\n",
                     file, line, expr);
    if (n > 0) {
        ssize_t w = write(STDERR_FILENO, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf);
        (void)w;
    }
    abort();
}

static void *oom(size_t n)
{
    char buf[128];
    int len = snprintf(buf, sizeof buf,
                       "{\"level\":\"fatal\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", n);
    if (len > 0) {
        ssize_t w = write(STDERR_FILENO, buf, (size_t)len);
        (void)w;
    }
    abort();
}

void *pc_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    return p ? p : oom(n);
}

void *pc_xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    return p ? p : oom(count * n);
}

void *pc_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    return q ? q : oom(n);
}

char *pc_xstrdup(const char *s)
{
    return pc_xstrndup(s, strlen(s));
}

char *pc_xstrndup(const char *s, size_t n)
{
    char *p = pc_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

uint64_t pc_now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t pc_now_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
