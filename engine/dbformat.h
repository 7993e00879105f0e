/* engine/dbformat.h: the byte layouts that both layers of the engine share.
 *
 *   - little-endian fixed-width and varint coding (used by every on-disk format and
 *     free for the DB layer's write batches and manifest);
 *   - a growable byte buffer;
 *   - the internal key (user key + seqno + kind) and its order;
 *   - the entry value (flags + optional expire-at, write timestamp and writer node +
 *     bytes);
 *   - the lookup key used for point reads at a snapshot.
 *
 * engine/FORMAT.md "Internal key" and "Entry value" specify the bytes; this header is
 * the code. Nothing here does I/O or keeps state.
 */
#ifndef KVD_ENGINE_DBFORMAT_H
#define KVD_ENGINE_DBFORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "engine/status.h"

/* ------------------------------------------------------------------------------
 * Coding: fixed little-endian and LEB128 varints.
 * ------------------------------------------------------------------------------ */

static inline void enc_fixed32(char *p, uint32_t v)
{
    memcpy(p, &v, 4);
} /* x86: LE */
static inline void enc_fixed64(char *p, uint64_t v)
{
    memcpy(p, &v, 8);
}
static inline void enc_fixed16(char *p, uint16_t v)
{
    memcpy(p, &v, 2);
}
static inline uint32_t dec_fixed32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint64_t dec_fixed64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline uint16_t dec_fixed16(const char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

#define VARINT32_MAX_LEN 5
#define VARINT64_MAX_LEN 10

/* Writes v at p (room for VARINT64_MAX_LEN bytes); returns the byte after it. */
char *enc_varint32(char *p, uint32_t v);
char *enc_varint64(char *p, uint64_t v);
/* Number of bytes enc_varint64(v) writes. */
int varint_length(uint64_t v);

/* Reads a varint from [p, limit); returns the byte after it, or NULL when the input
 * ends early or the value overflows. */
const char *dec_varint32(const char *p, const char *limit, uint32_t *v);
const char *dec_varint64(const char *p, const char *limit, uint64_t *v);

/* ------------------------------------------------------------------------------
 * A growable byte buffer. Owns p; free with lsm_buf_free. Never shrinks, so a buffer
 * reused across calls stops allocating once it reached its working size.
 * ------------------------------------------------------------------------------ */
struct lsm_buf {
    char *p;    /* bytes, NULL until the first append */
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
};

void lsm_buf_reserve(struct lsm_buf *b, size_t extra); /* room for len + extra */
void lsm_buf_append(struct lsm_buf *b, const void *p, size_t n);
void lsm_buf_append_fixed32(struct lsm_buf *b, uint32_t v);
void lsm_buf_append_varint32(struct lsm_buf *b, uint32_t v);
void lsm_buf_append_varint64(struct lsm_buf *b, uint64_t v);
static inline void lsm_buf_clear(struct lsm_buf *b)
{
    b->len = 0;
}
void lsm_buf_free(struct lsm_buf *b); /* frees p and zeroes *b */

/* ------------------------------------------------------------------------------
 * Internal key := user_key || trailer:u64le, trailer = (seqno << 8) | kind.
 * Order: user key bytewise ascending, then trailer descending (newest first).
 * ------------------------------------------------------------------------------ */

/* Entry kinds. On disk: never renumber. */
enum lsm_kind {
    LSM_KIND_DELETE = 0, /* tombstone */
    LSM_KIND_VALUE = 1,  /* a value */
};
/* The kind put in seek targets: the largest byte, so that for one seqno the target
 * sorts before every real entry (trailers sort descending). Never stored. */
#define LSM_KIND_SEEK 0xff

#define LSM_MAX_SEQNO ((UINT64_C(1) << 56) - 1)
#define IKEY_TRAILER_LEN 8

static inline uint64_t ikey_trailer(uint64_t seqno, unsigned kind)
{
    return (seqno << 8) | kind;
}

/* A decoded internal key; user_key points into the encoded key. */
struct ikey {
    const char *user_key;
    size_t user_key_len;
    uint64_t seqno;
    unsigned kind;
};

/* Appends user_key || trailer to b. */
void ikey_append(struct lsm_buf *b, const char *user_key, size_t user_key_len,
                 uint64_t seqno, unsigned kind);
/* Writes the internal key into dst (room for user_key_len + 8); returns its length. */
size_t ikey_encode(char *dst, const char *user_key, size_t user_key_len, uint64_t seqno,
                   unsigned kind);
/* Decodes an internal key; false when it is shorter than the trailer or its kind is
 * neither LSM_KIND_DELETE nor LSM_KIND_VALUE. */
bool ikey_decode(const char *ikey, size_t len, struct ikey *out);

/* Trailer of an internal key (len >= 8 is the caller's promise). */
static inline uint64_t ikey_trailer_of(const char *ikey, size_t len)
{
    return dec_fixed64(ikey + len - IKEY_TRAILER_LEN);
}

/* Bytewise order of user keys (memcmp, then shorter first): <0, 0, >0. */
static inline int user_key_compare(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int r = n ? memcmp(a, b, n) : 0;
    if (r != 0) {
        return r;
    }
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* The internal key order: user key ascending, then trailer descending. Both keys must
 * be at least 8 bytes long. */
static inline int ikey_compare(const char *a, size_t alen, const char *b, size_t blen)
{
    int r = user_key_compare(a, alen - IKEY_TRAILER_LEN, b, blen - IKEY_TRAILER_LEN);
    if (r != 0) {
        return r;
    }
    uint64_t ta = ikey_trailer_of(a, alen), tb = ikey_trailer_of(b, blen);
    return ta > tb ? -1 : ta < tb ? 1 : 0;
}

/* ------------------------------------------------------------------------------
 * Lookup key: the internal key (user_key, snapshot, LSM_KIND_SEEK). Seeking to it
 * finds the newest entry of user_key with seqno <= snapshot. Keys up to 120 bytes
 * live inside the struct (no allocation); free with lookup_key_free.
 * ------------------------------------------------------------------------------ */
struct lookup_key {
    char *p;    /* the internal key: inline_buf or a heap copy */
    size_t len; /* user key length + 8 */
    char inline_buf[128];
};

void lookup_key_init(struct lookup_key *lk, const char *user_key, size_t user_key_len,
                     uint64_t snapshot);
void lookup_key_free(struct lookup_key *lk);
static inline const char *lookup_key_user(const struct lookup_key *lk)
{
    return lk->p;
}
static inline size_t lookup_key_user_len(const struct lookup_key *lk)
{
    return lk->len - IKEY_TRAILER_LEN;
}

/* ------------------------------------------------------------------------------
 * Entry value := flags:u8 [expire_at:u64le] [write_ts:u64le] [node:u32le] bytes[...]
 * Every entry (tombstones too) stores its value in this encoding, so a tombstone can
 * carry the write timestamp and writer node that last-write-wins needs.
 * ------------------------------------------------------------------------------ */

/* Flag bits of the entry value. On disk: never renumber. */
#define ENTRY_F_EXPIRE 0x01   /* expire_at:u64le follows (Unix ms, never 0) */
#define ENTRY_F_WRITE_TS 0x02 /* write_ts:u64le follows (HLC, never 0) */
#define ENTRY_F_NODE 0x04     /* node:u32le follows (writer's node tag, never 0) */
#define ENTRY_F_KNOWN (ENTRY_F_EXPIRE | ENTRY_F_WRITE_TS | ENTRY_F_NODE)
#define ENTRY_HEADER_MAX 21 /* flags + two fixed64 + one fixed32 */

/* A decoded entry value; value points into the encoded bytes. */
struct entry_value {
    uint64_t expire_at; /* Unix ms, 0 = never */
    uint64_t write_ts;  /* hybrid logical clock, 0 = none */
    uint32_t node;      /* tag of the node that wrote it, 0 = unknown */
    const char *value;  /* the user's bytes */
    size_t value_len;
};

/* Bytes entry_encode writes for these fields. */
static inline size_t entry_encoded_len(uint64_t expire_at, uint64_t write_ts,
                                       uint32_t node, size_t value_len)
{
    return 1 + (expire_at ? 8 : 0) + (write_ts ? 8 : 0) + (node ? 4 : 0) + value_len;
}
/* Writes the header (flags and present fields) into dst (room for ENTRY_HEADER_MAX);
 * returns its length. The value bytes follow it, written by the caller. */
size_t entry_encode_header(char *dst, uint64_t expire_at, uint64_t write_ts,
                           uint32_t node);
/* Appends the whole encoded entry value to b. */
void entry_append(struct lsm_buf *b, uint64_t expire_at, uint64_t write_ts, uint32_t node,
                  const char *value, size_t value_len);
/* Decodes an entry value; LSM_CORRUPT when it is empty, too short for its flags or has
 * unknown flag bits. */
int entry_decode(const char *p, size_t len, struct entry_value *out);

#endif
