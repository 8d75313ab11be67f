/*
 * Semantic versions as OPA's semver.is_valid / semver.compare read them
 * (MAJOR.MINOR.PATCH[-pre.release][+build], OPA's own parser rules).
 */
#ifndef PC_POLICY_LIB_SEMVER_H
#define PC_POLICY_LIB_SEMVER_H

#include <stdbool.h>
#include <stddef.h>

bool pc_plib_semver_valid(const char *s, size_t n);
/** -1, 0, 1; both must be valid (check with pc_plib_semver_valid first). */
int pc_plib_semver_compare(const char *a, size_t an, const char *b, size_t bn);

#endif
