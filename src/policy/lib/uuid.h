/*
 * UUIDs as OPA's uuid.parse (google/uuid's accepted forms) and
 * uuid.rfc4122 (random version 4) produce them.
 */
#ifndef PC_POLICY_LIB_UUID_H
#define PC_POLICY_LIB_UUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_plib_uuid_info {
    int version;
    const char *variant; /* "RFC4122", "Microsoft", "Future", "Reserved" */
    bool has_time;       /* versions 1 and 2 */
    int64_t time_ns;     /* Unix ns */
    char nodeid[18];     /* "32-50-96-b3-9f-47" */
    const char *macvariables;
    int clock_sequence;
    bool has_domain; /* version 2 */
    uint32_t id;
    char domain[16]; /* "Person", "Group", "Org" or "Domain<n>" */
} pc_plib_uuid_info_t;

/** Accepts xxxxxxxx-xxxx-..., {…}/(…) wrapped, urn:uuid: prefixed, or 32 hex digits. */
bool pc_plib_uuid_parse(const char *s, size_t n, pc_plib_uuid_info_t *out);
/** Formats 16 bytes as a version 4 UUID string (sets the version/variant bits); buf >= 37. */
void pc_plib_uuid_v4_format(const unsigned char bytes[16], char buf[37]);

#endif
