/*
 * `portcullis healthcheck [--url U] [--timeout SECONDS]`: exit 0 iff U (default
 * http://127.0.0.1:8080/ready) answers 200. A plain-socket HTTP/1.1 client so
 * container images need no curl; the whole exchange is bounded by the timeout.
 */
#include "cmd/commands.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_URL "http://127.0.0.1:8080/ready"

static void usage(FILE *out)
{
    fprintf(out, "usage: portcullis healthcheck [--url URL] [--timeout SECONDS]\n"
                 "\n"
                 "Exit 0 if URL answers HTTP 200, else 1 (for container health checks).\n"
                 "  --url URL          default " DEFAULT_URL "\n"
                 "  --timeout SECONDS  whole request deadline, default 3\n");
}

typedef struct url {
    char host[256];
    char port[8];
    char path[1024];
} url_t;

static int parse_url(const char *s, url_t *u)
{
    if (strncmp(s, "http://", 7) != 0) return -1;
    s += 7;
    const char *slash = strchr(s, '/');
    size_t hostport = slash ? (size_t)(slash - s) : strlen(s);
    snprintf(u->path, sizeof u->path, "%s", slash ? slash : "/");
    char hp[sizeof u->host];
    if (hostport == 0 || hostport >= sizeof hp) return -1;
    memcpy(hp, s, hostport);
    hp[hostport] = '\0';
    char *colon;
    if (hp[0] == '[') {
        char *end = strchr(hp, ']');
        if (!end) return -1;
        *end = '\0';
        snprintf(u->host, sizeof u->host, "%s", hp + 1);
        colon = end[1] == ':' ? end + 1 : NULL;
    } else {
        colon = strrchr(hp, ':');
        if (colon) *colon = '\0';
        snprintf(u->host, sizeof u->host, "%s", hp);
    }
    if (colon) {
        char *end = NULL;
        long p = strtol(colon + 1, &end, 10);
        if (*end != '\0' || p <= 0 || p > 65535) return -1;
        snprintf(u->port, sizeof u->port, "%ld", p);
    } else {
        snprintf(u->port, sizeof u->port, "80");
    }
    return u->host[0] ? 0 : -1;
}

static long long ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short ev, long long deadline)
{
    long long left = deadline - ms_now();
    if (left <= 0) return -1;
    struct pollfd p = {.fd = fd, .events = ev};
    int rc;
    do rc = poll(&p, 1, (int)left);
    while (rc < 0 && errno == EINTR);
    return rc == 1 ? 0 : -1;
}

/* 0 on HTTP 200, 1 otherwise; prints why on stderr. */
static int check(const url_t *u, long long deadline)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "healthcheck: %s: %s\n", u->host, gai_strerror(rc));
        return 1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 0) {
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0) break;
            errno = soerr;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "healthcheck: cannot connect to %s:%s: %s\n", u->host, u->port,
                strerror(errno));
        return 1;
    }
    char req[1500];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: portcullis-healthcheck\r\n"
                     "Connection: close\r\n\r\n",
                     u->path, u->host);
    size_t off = 0;
    while (off < (size_t)n) {
        ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline) != 0) break;
        } else {
            break;
        }
    }
    char resp[512];
    size_t got = 0;
    /* The status line is all we need. */
    while (got < sizeof resp - 1 && !memchr(resp, '\n', got)) {
        if (wait_fd(fd, POLLIN, deadline) != 0) break;
        ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (r <= 0) {
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    resp[got] = '\0';
    int status = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
        fprintf(stderr, "healthcheck: no HTTP answer from %s:%s%s\n", u->host, u->port, u->path);
        return 1;
    }
    if (status != 200) {
        fprintf(stderr, "healthcheck: %s:%s%s answered %d\n", u->host, u->port, u->path, status);
        return 1;
    }
    return 0;
}

int pc_cmd_healthcheck(int argc, char **argv)
{
    if (pc_cmd_wants_help(argc, argv)) {
        usage(stdout);
        return PC_EXIT_OK;
    }
    const char *url = DEFAULT_URL;
    double timeout = 3.0;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--url") == 0 || strcmp(argv[i], "-u") == 0) && i + 1 < argc) {
            url = argv[++i];
        } else if (strncmp(argv[i], "--url=", 6) == 0) {
            url = argv[i] + 6;
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            char *end = NULL;
            timeout = strtod(argv[++i], &end);
            if (*end != '\0' || !(timeout > 0 && timeout <= 3600)) {
                fprintf(stderr, "portcullis healthcheck: bad --timeout '%s'\n", argv[i]);
                return PC_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "portcullis healthcheck: unexpected argument '%s'\n\n", argv[i]);
            usage(stderr);
            return PC_EXIT_USAGE;
        }
    }
    url_t u;
    memset(&u, 0, sizeof u);
    if (parse_url(url, &u) != 0) {
        fprintf(stderr, "portcullis healthcheck: bad --url '%s' (want http://HOST:PORT/PATH)\n",
                url);
        return PC_EXIT_USAGE;
    }
    return check(&u, ms_now() + (long long)(timeout * 1000)) == 0 ? PC_EXIT_OK : PC_EXIT_FAILURE;
}
