/* cluster/fields.h: field records of big hashes (issue 10, "Big hashes replicate
 * field records, not the whole hash"): the value of a record whose flags carry
 * MSG_REC_FIELDS (msg.h), its strict decoder, its encoder, and the per-field
 * last-write-wins merge the coordinator's quorum read and read repair use.
 *
 * A big hash (the store's hashtable encoding) travels as a FIELDS record instead of
 * a whole envelope: the record's header gives the key's version (the newest write
 * applied to the key as a whole: it orders the key's TTL and whole-key writes) and
 * its expire-at; the value lists field records, each with its own version:
 *
 *   fields := floor_hlc:u64be floor_node:u32be count:u32be entry{count}
 *   entry  := hlc:u64be node:u32be flags:u8 flen:u32be field[flen]
 *             vlen:u32be value[vlen]
 *             flags: bit 0 tombstone (vlen 0); other bits 0
 *
 * Rules the decoder checks (a peer's record that breaks one is refused, never
 * applied): entries strictly ascending by field bytes (memcmp, then length: no
 * duplicates), every entry's version >= floor and <= the record's version, the
 * floor <= the record's version, lengths inside the value, no trailing bytes, the
 * count equal to the entries present (so nothing is allocated from a count).
 *
 * MEANING. A hash is a floor (every field write older than it was superseded by a
 * whole-key write: DEL, SET over it, a rename into it, the write that made it big)
 * plus, per field, the newest record (a value or a tombstone) at or above the
 * floor. A DELTA (one HSET) and a FULL record (a quorum read's answer) have the
 * same form: a delta lists only the fields a command changed, at its version.
 * Merging is per field by kv_record_cmp, the floor the larger one, the key's
 * version and expire-at from the newer header. A plain record P (any other value,
 * or a tombstone) against a FIELDS record F: P wins whole when it is newer than
 * F's header; otherwise P only raises F's floor to P's version (the fields written
 * after P survive it). The merge is commutative and associative, so replicas
 * converge whatever order records arrive in.
 *
 * Pure code: no I/O, no globals.
 */
#ifndef KVD_CLUSTER_FIELDS_H
#define KVD_CLUSTER_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/msg.h"

#define FIELDS_HDR 16       /* floor and count */
#define FIELDS_ENTRY_MIN 21 /* an entry without field or value bytes */

/* One field record; pointers borrow from the record's value. */
struct fields_entry {
    struct kv_version v;
    int deleted;
    const char *f;
    size_t flen;
    const char *val;
    size_t vlen;
};

/* Walks a checked FIELDS value (fields_check first). */
struct fields_iter {
    const unsigned char *p, *end;
    uint32_t left;
};

/* Checks p[0..len) as the value of a FIELDS record whose header version is top:
 * MSG_OK with *floor and *count, or MSG_INVALID (err says why, may be NULL). */
int fields_check(const char *p, size_t len, struct kv_version top, struct kv_version *floor,
                 uint32_t *count, char *err, size_t errlen);
/* Starts a walk over a value fields_check accepted. */
void fields_iter_init(struct fields_iter *it, const char *p, size_t len);
/* The next entry: 1, or 0 at the end. */
int fields_next(struct fields_iter *it, struct fields_entry *e);

/* Encoding: the header, then the entries in ascending field order (the caller
 * sorts: fields_entry_cmp). fields_put_count rewrites the count of the header that
 * starts at off in b (a count known only at the end). */
void fields_put_head(struct msg_buf *b, struct kv_version floor, uint32_t count);
void fields_put(struct msg_buf *b, const struct fields_entry *e);
void fields_put_count(struct msg_buf *b, size_t off, uint32_t count);
/* Field order: <0, 0, >0. */
int fields_entry_cmp(const struct fields_entry *a, const struct fields_entry *b);

/* ---- content digest (Merkle repair, merkle.h) ----
 *
 * Two replicas of a big hash can hold the same key version and different fields
 * (one missed a field write whose version is below a later one it received), so
 * the key's version does not identify its content. Its digest does: the sum (mod
 * 2^64) of one term per field record (field bytes, version, tombstone flag: not
 * the value, which the field's version identifies) plus a term for the floor.
 * A sum does not depend on the order the fields are visited in (a store's dict
 * has none), and one field's change is one term out and one in. Never 0 (0 means
 * "no digest": cluster_key.digest). Both the server (from its dicts) and
 * fields_digest (from a record) compute it with these functions, so they agree. */
uint64_t fields_digest_entry(const char *f, size_t flen, struct kv_version v, int deleted);
uint64_t fields_digest_floor(struct kv_version floor);
/* sum of the terms: the digest (0 mapped to 1) */
uint64_t fields_digest_final(uint64_t sum);
/* The digest of a FIELDS record (fields_record_ok), or 0 for any other record. */
uint64_t fields_digest(const struct msg_record *rec);

/* 1 when rec is a FIELDS record whose value fields_check accepts. */
int fields_record_ok(const struct msg_record *rec);

/* The merge of two records (either may be NULL: nothing; plain or FIELDS, each
 * already checked) into *out, whose value is written into val (reset first; out
 * borrows it). See MEANING. */
void fields_merge(const struct msg_record *a, const struct msg_record *b, struct msg_buf *val,
                  struct msg_record *out);
/* 1 when merging b into a changes nothing (a holds all of b). */
int fields_covers(const struct msg_record *a, const struct msg_record *b);
/* What a replica that answered a (NULL: nothing) lacks of b, for read repair: b's
 * header and floor with only the entries of b that a does not hold, when both are
 * FIELDS records; b whole otherwise. Written into val (reset first); out borrows it. */
void fields_diff(const struct msg_record *a, const struct msg_record *b, struct msg_buf *val,
                 struct msg_record *out);

#endif
