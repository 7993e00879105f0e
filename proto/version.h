/* proto/version.h: the version every stored value carries (DESIGN.md "Values and
 * versions"): a hybrid-logical-clock timestamp (48 bits physical Unix ms, 16
 * logical; server/store/hlc.h makes them) and the 32-bit tag of the node that wrote it,
 * to break ties. Header only, no dependency: the store (server/), the engine's
 * metadata (struct lsm_meta timestamp + node) and later the cluster's messages
 * (cluster/ may include proto/ but not server/) share it.
 *
 * Order: hlc, then node. A record (value or tombstone) is ordered by its version,
 * then a tombstone above a value of the same version (kv_record_cmp): an expiry
 * tombstone carries the version of the value it expires (server/store/PERSIST.md
 * "Versions and tombstones"), and must win against that value and only it.
 * Node 0 means "no writer known" (data written before versions existed).
 */
#ifndef KVD_PROTO_VERSION_H
#define KVD_PROTO_VERSION_H

#include <stdint.h>

struct kv_version {
    uint64_t hlc;  /* HLC timestamp: ms << 16 | logical */
    uint32_t node; /* writer's node tag, 0 = none */
};

/* <0, 0, >0 as a is older than, equal to, newer than b. */
static inline int kv_version_cmp(struct kv_version a, struct kv_version b) {
    if (a.hlc != b.hlc) {
        return a.hlc < b.hlc ? -1 : 1;
    }
    if (a.node != b.node) {
        return a.node < b.node ? -1 : 1;
    }
    return 0;
}

/* Last-write-wins order of two records: by version, then a tombstone (deleted
 * != 0) above a value. 0 only for the same version and kind (the same write). */
static inline int kv_record_cmp(struct kv_version a, int a_deleted, struct kv_version b,
                                int b_deleted) {
    int c = kv_version_cmp(a, b);
    if (c != 0) {
        return c;
    }
    return (a_deleted != 0) - (b_deleted != 0);
}

#endif
