/* server/store/obj.h: value encodings. Reading and changing the value held by an entry
 * (server/store/ks.h layout) without knowing where the entry lives: strings (int, embstr,
 * raw) in obj.c, hashes (listpack, hashtable) in hashobj.c.
 *
 * Functions that change a value may move the entry (it holds its value inline):
 * they take the database it lives in, to re-link it there, and return, or store
 * through `ep`, the new address. Command handlers pass NULL only (a detached entry
 * that is not in any database yet, built before coord_put); a stored value is
 * changed through the coordinator's wrappers (coord_str_append,
 * coord_str_setrange, coord_hash_set, coord_hash_del in server/coord/coord.h), which
 * know its database. The keyspace and persistence layers call these directly.
 */
#ifndef KVD_OBJ_H
#define KVD_OBJ_H

#include "server/store/ks.h"

#define OBJ_LL_BUF 32

const char *obj_type_name(const struct kv_entry *e);     /* "string", "hash", ... */
const char *obj_encoding_name(const struct kv_entry *e); /* "int", "embstr", ... */

/* ---- the entry's key, TTL and access record (read-only, for handlers) ----
 * Thin names over server/store/ks.h's entry layout, so that command handlers read an
 * entry through the value helpers and never call the keyspace (ks_*) directly. */

/* The key's bytes (valid until the entry changes). */
static inline const char *obj_key(const struct kv_entry *e, size_t *len) {
    return ks_entry_key(e, len);
}
static inline int obj_has_expire(const struct kv_entry *e) {
    return ks_entry_has_expire(e);
}
/* Expire-at in Unix ms, 0 when none. */
static inline long long obj_expire(const struct kv_entry *e) {
    return ks_entry_expire(e);
}
/* Past its expire-at (server.mstime)? Iteration may hand out such entries. */
static inline int obj_expired(const struct kv_entry *e) {
    return ks_entry_expired(e);
}
/* OBJECT FREQ / IDLETIME: is maxmemory-policy an LFU one, the decayed LFU
 * counter, the idle time in ms. */
static inline int obj_lfu_policy(void) {
    return ks_policy_is_lfu();
}
static inline unsigned obj_lfu(const struct kv_entry *e) {
    return ks_entry_lfu(e);
}
static inline long long obj_idle_ms(const struct kv_entry *e) {
    return ks_entry_idle_ms(e);
}
/* A uniform 64-bit random number from the keyspace's cheap generator (HRANDFIELD);
 * loop thread only. */
static inline uint64_t obj_rand64(void) {
    return ks_rand64();
}

/* ---- strings ---- */

/* The bytes of a string value; an int-encoded value is formatted into buf (at
 * least OBJ_LL_BUF bytes). Valid until the entry changes. */
const char *obj_str(const struct kv_entry *e, char *buf, size_t *len);
size_t obj_str_len(const struct kv_entry *e);
/* The value as a long long: 0, or -1 when it is not an integer. */
int obj_str_ll(const struct kv_entry *e, long long *v);
/* The encoding SET would pick for these bytes; *iv gets the integer for
 * KS_ENC_INT. */
int obj_str_pick_enc(const char *p, size_t len, long long *iv);
/* A detached string entry. */
struct kv_entry *obj_str_new(const char *key, size_t klen, const char *p, size_t len,
                             long long expire_at);
/* Sets the value of an int-encoded string (e->enc == KS_ENC_INT) in place: the
 * same size, so e never moves (INCR's hot path). The caller reports the change
 * with coord_modified. */
static inline void obj_str_set_int(struct kv_entry *e, long long v) {
    ks_val_set_int(e, v);
}
/* Appends; converts int to raw; leaves growth slack as Redis's sds does. */
struct kv_entry *obj_str_append(struct kv_db *db, struct kv_entry *e, const char *p,
                                size_t len);
/* Writes p at offset off, zero-padding a gap; the caller checked the bounds. */
struct kv_entry *obj_str_setrange(struct kv_db *db, struct kv_entry *e, size_t off,
                                  const char *p, size_t len);

/* A detached copy of e (value and TTL) under another key; deep for a hashtable. */
struct kv_entry *obj_dup(const struct kv_entry *e, const char *key, size_t klen);

/* Bytes the value takes in memory (entry, field dict and fields; the fields of a
 * large hash are estimated from `samples` of them, 0 = all). */
size_t obj_memory_usage(const struct kv_entry *e, long samples);

/* ---- hashes ---- */

/* A detached, empty hash (listpack). */
struct kv_entry *hash_new(const char *key, size_t klen, long long expire_at);
/* A detached, empty hash already in the hashtable encoding (a hash read back from
 * disk that was a hashtable stays one, as OBJECT ENCODING reports). */
struct kv_entry *hash_new_table(const char *key, size_t klen, long long expire_at);
size_t hash_len(const struct kv_entry *e);
/* Finds a field: 1 and its value (valid until the hash changes), or 0. */
int hash_get(const struct kv_entry *e, const char *f, size_t flen, const char **v,
             size_t *vlen);
/* Sets a field; returns 1 when it was new, 0 when it replaced a value. Converts to
 * a hashtable past the listpack limits. *ep may move. */
int hash_set(struct kv_db *db, struct kv_entry **ep, const char *f, size_t flen,
             const char *v, size_t vlen);
/* Deletes a field: 1 when it existed. *ep may move. */
int hash_del(struct kv_db *db, struct kv_entry **ep, const char *f, size_t flen);
/* Calls fn for each field in storage order; fn must not change the hash. */
typedef void hash_fn(const char *f, size_t flen, const char *v, size_t vlen, void *arg);
void hash_foreach(const struct kv_entry *e, hash_fn *fn, void *arg);
/* SCAN/HSCAN cursors as clients see them (ks.h KS_SCAN_BLOCK_BITS): the cursor of
 * scan position pos (its block, pos >> 11, below 2^53) ... */
static inline uint64_t obj_scan_cursor(uint64_t pos) {
    return ks_scan_block(pos);
}

/* ... and the position a cursor names; -1 for a cursor >= 2^53 (none). */
static inline int obj_scan_position(uint64_t cursor, uint64_t *pos) {
    return ks_scan_cursor_token(cursor, pos);
}

/* HSCAN: listpack hashes are returned whole (position 0 out); hashtables by token
 * position as SCAN (kv_dict_scan). Returns the next position (a block start). */
uint64_t hash_scan(const struct kv_entry *e, uint64_t cursor, long count, hash_fn *fn,
                   void *arg);
/* A random field (the hash must not be empty). */
void hash_random(const struct kv_entry *e, const char **f, size_t *flen, const char **v,
                 size_t *vlen);

#endif
