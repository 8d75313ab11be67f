#include "core/log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

pc_log_level_t pc_log_level = PC_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "fatal"};

#define MAX_GLOBAL_FIELDS 4
static struct {
    char *key;
    char *value;
} global_fields[MAX_GLOBAL_FIELDS];
static size_t n_global_fields;
static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;

bool pc_log_set_level_name(const char *name)
{
    for (size_t i = 0; i < PC_ARRAY_LEN(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            pc_log_level = (pc_log_level_t)i;
            return true;
        }
    }
    return false;
}

void pc_log_set_global_field(const char *key, const char *value)
{
    pthread_mutex_lock(&global_lock);
    for (size_t i = 0; i < n_global_fields; i++) {
        if (strcmp(global_fields[i].key, key) == 0) {
            free(global_fields[i].value);
            global_fields[i].value = pc_xstrdup(value);
            pthread_mutex_unlock(&global_lock);
            return;
        }
    }
    if (n_global_fields < MAX_GLOBAL_FIELDS) {
        global_fields[n_global_fields].key = pc_xstrdup(key);
        global_fields[n_global_fields].value = pc_xstrdup(value);
        n_global_fields++;
    }
    pthread_mutex_unlock(&global_lock);
}

bool pc_json_escape_into(char *out, size_t cap, size_t *pos, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t p = *pos;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t elen;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            elen = 2;
        } else if (c == '\n') {
            memcpy(esc, "\\n", 2);
            elen = 2;
        } else if (c == '\r') {
            memcpy(esc, "\\r", 2);
            elen = 2;
        } else if (c == '\t') {
            memcpy(esc, "\\t", 2);
            elen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        } else {
            esc[0] = (char)c;
            elen = 1;
        }
        if (p + elen >= cap) {
            *pos = p;
            return false;
        }
        memcpy(out + p, esc, elen);
        p += elen;
    }
    *pos = p;
    return true;
}

static void put(char *buf, size_t cap, size_t *pos, const char *s)
{
    if (*pos + 1 >= cap) return;
    size_t n = strnlen(s, cap - 1 - *pos);
    memcpy(buf + *pos, s, n);
    *pos += n;
}

static void put_str(char *buf, size_t cap, size_t *pos, const char *s, size_t n)
{
    put(buf, cap, pos, "\"");
    pc_json_escape_into(buf, cap - 2, pos, s, n);
    put(buf, cap, pos, "\"");
}

void pc__log_emit(pc_log_level_t level, const char *msg, const pc_log_field_t *fields)
{
    char buf[8192];
    const size_t cap = sizeof buf - 2; /* room for "}\n" */
    size_t pos = 0;
    char num[64];

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tsbuf[80];
    snprintf(tsbuf, sizeof tsbuf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);

    put(buf, cap, &pos, "{\"ts\":\"");
    put(buf, cap, &pos, tsbuf);
    put(buf, cap, &pos, "\",\"level\":\"");
    put(buf, cap, &pos, level_names[level]);
    put(buf, cap, &pos, "\",\"msg\":");
    put_str(buf, cap, &pos, msg, strlen(msg));

    pthread_mutex_lock(&global_lock);
    for (size_t i = 0; i < n_global_fields; i++) {
        put(buf, cap, &pos, ",");
        put_str(buf, cap, &pos, global_fields[i].key, strlen(global_fields[i].key));
        put(buf, cap, &pos, ":");
        put_str(buf, cap, &pos, global_fields[i].value, strlen(global_fields[i].value));
    }
    pthread_mutex_unlock(&global_lock);

    for (const pc_log_field_t *f = fields; f->type != PC_LF_END; f++) {
        put(buf, cap, &pos, ",");
        put_str(buf, cap, &pos, f->key, strlen(f->key));
        put(buf, cap, &pos, ":");
        switch (f->type) {
        case PC_LF_STR:
            if (f->v.s)
                put_str(buf, cap, &pos, f->v.s, strlen(f->v.s));
            else
                put(buf, cap, &pos, "null");
            break;
        case PC_LF_STRN:
            put_str(buf, cap, &pos, f->v.s ? f->v.s : "", f->v.s ? f->len : 0);
            break;
        case PC_LF_INT:
            snprintf(num, sizeof num, "%" PRId64, f->v.i);
            put(buf, cap, &pos, num);
            break;
        case PC_LF_UINT:
            snprintf(num, sizeof num, "%" PRIu64, f->v.u);
            put(buf, cap, &pos, num);
            break;
        case PC_LF_DBL:
            snprintf(num, sizeof num, "%.6g", f->v.d);
            put(buf, cap, &pos, num);
            break;
        case PC_LF_BOOL:
            put(buf, cap, &pos, f->v.b ? "true" : "false");
            break;
        case PC_LF_RAW:
            put(buf, cap, &pos, f->v.s ? f->v.s : "null");
            break;
        case PC_LF_END:
            break;
        }
    }
    /* A line cut by the buffer limit must still be one valid JSON object. */
    buf[pos++] = '}';
    buf[pos++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, pos);
    (void)w;
}
