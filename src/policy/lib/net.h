/*
 * IP addresses and CIDRs with Go's net package rules, for OPA's net.cidr_*
 * built-ins. Addresses are kept as 128-bit integers with a family: an IPv4
 * address (also one written as ::ffff:a.b.c.d) has 32 bits, IPv6 128.
 *
 * Error texts are Go's: "invalid CIDR address: 10.0.0.0/33".
 */
#ifndef PC_POLICY_LIB_NET_H
#define PC_POLICY_LIB_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_plib_cidr {
    unsigned __int128 ip; /* as written (not masked), right-aligned */
    int bits;             /* 32 or 128 */
    int prefix;           /* 0..bits */
    bool plain_ip;        /* came from a bare IPv4 address (classful mask, cidr_merge) */
} pc_plib_cidr_t;

/** net.ParseIP. */
bool pc_plib_ip_parse(const char *s, size_t n, unsigned __int128 *ip, int *bits);
/** net.ParseCIDR; on failure err gets "invalid CIDR address: <s>". */
bool pc_plib_cidr_parse(const char *s, size_t n, pc_plib_cidr_t *out, char *err, size_t errlen);
/** net.IP.String into buf (at least 64 bytes); returns the length. */
size_t pc_plib_ip_format(unsigned __int128 ip, int bits, char *buf, size_t cap);

/** net.cidr_contains(cidr, cidr_or_ip): 1, 0, or -1 with err. */
int pc_plib_cidr_contains(const char *a, size_t an, const char *b, size_t bn, char *err,
                          size_t errlen);
/** net.cidr_intersects: 1, 0, or -1 with err. */
int pc_plib_cidr_intersects(const char *a, size_t an, const char *b, size_t bn, char *err,
                            size_t errlen);

/** net.cidr_expand: cb gets each address text; stops when cb returns false.
 *  Returns false with err on a bad CIDR. */
typedef bool (*pc_plib_str_cb)(void *ud, const char *s, size_t n);
bool pc_plib_cidr_expand(const char *s, size_t n, pc_plib_str_cb cb, void *ud, char *err,
                         size_t errlen);

/** net.cidr_merge over n entries (IPs or CIDRs); cb gets each resulting CIDR text. */
bool pc_plib_cidr_merge(const char *const *items, const size_t *lens, size_t n, pc_plib_str_cb cb,
                        void *ud, char *err, size_t errlen);

/**
 * net.lookup_ip_addr without network I/O: an IP literal resolves to itself;
 * a name is looked up in the hosts file (hosts_path, NULL = /etc/hosts).
 * cb gets each address text. Returns the number of addresses, -1 on error.
 * Policies must never block a worker on DNS, hence no resolver queries.
 */
long pc_plib_lookup_ip_addr(const char *name, size_t n, const char *hosts_path, pc_plib_str_cb cb,
                            void *ud);

#endif
