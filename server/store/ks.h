/* server/store/ks.h: the in-memory keyspace. Per-database dictionaries of entries, the
 * entry layout and its encodings, lazy and active expiry, token-ordered SCAN
 * cursors, random sampling, LRU/LFU bookkeeping, flushing.
 *
 * Command handlers never include this file directly: they go through the
 * coordinator seam (server/coord/coord.h) and the value helpers (server/store/obj.h). The
 * server core calls the lifecycle functions at the end of this file.
 *
 * ENTRY LAYOUT (one allocation per key, value inline)
 *
 *   offset 0   next          8   bucket chain, sorted by token (a tagged link:
 *                                 ks_dict.c "TAGGED LINKS")
 *          8   type:4 enc:4 lru:24   (as Redis's robj; lru is LRU clock or LFU)
 *         12   flags         1   KE_EXPIRE, KE_RAW, KE_DIRTY, KE_NOVER
 *         13   klen8         1   key length, or 255: a u32 length precedes the key
 *         14   [hlc u64][node u32]            the version, unless KE_NOVER
 *              [expire_at i64][vidx u32]      only with KE_EXPIRE
 *              [klen u32]                     only when klen8 == 255
 *              key bytes
 *              value:
 *                KS_ENC_INT        i64
 *                KS_ENC_HASHTABLE  struct kv_dict *
 *                otherwise         [vlen8 u8][vlen u64 when vlen8 == 255] bytes
 *
 * Every key carries its version (proto/version.h: the HLC timestamp and node tag of
 * the write that made its current value; DESIGN.md "Values and versions"), in both
 * modes: the coordinator stamps it (coord.c), persistent mode stores and restores
 * it. Only the fields of a hashtable-encoded hash (KE_NOVER, ks_field_new) have
 * none: the hash's own entry carries the version of the whole value.
 *
 * A 16-byte key with a 16-byte value takes 14 + 12 + 16 + 1 + 16 = 59 bytes:
 * jemalloc's 64-byte class (48 before versions). A TTL adds 12 bytes. Multi-byte
 * fields are unaligned: read them with memcpy (the ks_* accessors do). Entries move
 * when they grow (realloc): the dictionary link and the volatile array slot are
 * fixed by ks_entry_realloc().
 *
 * Tokens: token = XXH3_64bits(key). They are not stored (8 bytes per key); they
 * are recomputed where needed (insertion, rehash, SCAN), which costs a few ns for
 * a short key.
 */
#ifndef KVD_KS_H
#define KVD_KS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/version.h"
#include "server/base/base.h"

/* Types and encodings (4 bits each). Values written to disk later: never renumber. */
enum ks_type { KS_TYPE_STRING = 0, KS_TYPE_LIST = 1, KS_TYPE_SET = 2, KS_TYPE_ZSET = 3,
               KS_TYPE_HASH = 4 };
enum ks_enc { KS_ENC_RAW = 0, KS_ENC_INT = 1, KS_ENC_EMBSTR = 2, KS_ENC_LISTPACK = 3,
              KS_ENC_HASHTABLE = 4 };

enum { KE_EXPIRE = 1u << 0, /* expire_at and vidx are present */
       KE_RAW = 1u << 1,    /* a string modified in place: OBJECT ENCODING says raw */
       KE_DIRTY = 1u << 2,  /* persistent mode: its envelope is written at the turn's end */
       KE_NOVER = 1u << 3 };/* no version area: a field of a hashtable hash */

/* Strings up to this length report "embstr" (Redis's OBJ_ENCODING_EMBSTR_SIZE_LIMIT). */
#define KS_EMBSTR_MAX 44

struct kv_entry {
    struct kv_entry *next;  /* bucket chain: a tagged link, ks_dict.c only */
    uint32_t type : 4;      /* enum ks_type */
    uint32_t enc : 4;       /* enum ks_enc */
    uint32_t lru : 24;      /* LRU clock (s) or LFU: 16 bits minutes, 8 bits counter */
    uint8_t flags;          /* KE_* */
    uint8_t klen8;          /* key length, 255 = a u32 length follows */
    unsigned char data[];   /* see ENTRY LAYOUT */
};

#define KS_ENTRY_HDR offsetof(struct kv_entry, data)

/* ------------------------------------------------------------------------------
 * Dictionary: a chained hash table whose bucket index is the top bits of the token,
 * so buckets and chains are in token order (see ks_dict.c "HOW IT WORKS").
 * ------------------------------------------------------------------------------ */
struct kv_dict {
    struct kv_entry **tab[2];  /* tab[1] exists only while rehashing */
    uint8_t bits[2];           /* log2 of each table's size */
    int64_t rehashidx;         /* next tab[0] bucket to move, -1 when not rehashing */
    size_t count;              /* entries in both tables */
    uint64_t store_gen;        /* a hash's field dict in persistent mode: 0 before
                                * its fields are stored as records; else a local
                                * id (persist.c), or with store_old the generation
                                * of an old file's meta 'h' records */
    uint8_t store_old;         /* see store_gen */
    struct kv_dict *vers;      /* a big hash in a cluster replica: one versioned entry
                                * per field written by a field record (value byte 1: a
                                * tombstone), NULL until the first (hashver.c) */
    struct kv_version floor;   /* with vers: the key floor; a field without an
                                * entry in vers carries this version */
};

uint64_t ks_token(const void *key, size_t len);

void kv_dict_init(struct kv_dict *d);
/* Frees the tables; entries are handed to free_entry (may be NULL) first. */
void kv_dict_clear(struct kv_dict *d, void (*free_entry)(struct kv_entry *e));
/* Finds the entry with this key (token must be ks_token(key)); NULL if absent. */
struct kv_entry *kv_dict_find(struct kv_dict *d, const char *key, size_t len, uint64_t token);
/* Inserts e, whose key must be absent. */
void kv_dict_insert(struct kv_dict *d, struct kv_entry *e, uint64_t token);
/* Unlinks and returns the entry with this key, or NULL. The caller frees it. */
struct kv_entry *kv_dict_unlink(struct kv_dict *d, const char *key, size_t len, uint64_t token);
/* The address of the link that points to e (e must be in d). Links are tagged
 * (ks_dict.c "TAGGED LINKS"): write one only through kv_dict_link_set. */
struct kv_entry **kv_dict_link_of(struct kv_dict *d, const struct kv_entry *e, uint64_t token);
/* kv_dict_find that also gives the link pointing to the entry found (*link: NULL
 * when absent), for a caller that replaces the entry: one probe, not two. */
struct kv_entry *kv_dict_find_link(struct kv_dict *d, const char *key, size_t len,
                                   uint64_t token, struct kv_entry ***link);
/* Makes the link point to e instead, keeping its tag: e has the same key as the
 * entry it replaces (and takes over its `next`, or is its realloc'ed copy). */
void kv_dict_link_set(struct kv_entry **link, struct kv_entry *e);
/* A random entry (NULL when empty): a random non-empty bucket, then a random
 * chain member. */
struct kv_entry *kv_dict_random(struct kv_dict *d);
/* Up to count entries from a random stretch of buckets (Redis's dictGetSomeKeys:
 * cheap, not uniform, may return fewer than asked). For eviction sampling. */
size_t kv_dict_sample(struct kv_dict *d, struct kv_entry **out, size_t count);
/* SCAN cursors. Internally a scan position is a token; the stores stop a SCAN page
 * only at the start of a block of 2^KS_SCAN_BLOCK_BITS tokens, so a position is a
 * multiple of 2^11 and the cursor a client sees is its block number, token >> 11,
 * below 2^53: exact in a double (node-redis 4 parses cursors with Number()).
 * Cursor 0 is both the start and the end. */
#define KS_SCAN_BLOCK_BITS 11
#define KS_SCAN_CURSOR_LIMIT ((uint64_t)1 << (64 - KS_SCAN_BLOCK_BITS)) /* 2^53 */

/* The block number of a token (the client cursor of a block-start token). */
static inline uint64_t ks_scan_block(uint64_t token) {
    return token >> KS_SCAN_BLOCK_BITS;
}

/* The token a client cursor resumes at; -1 when cursor >= 2^53 names no block
 * (callers answer it as the end of the iteration). */
static inline int ks_scan_cursor_token(uint64_t cursor, uint64_t *token) {
    if (cursor >= KS_SCAN_CURSOR_LIMIT) {
        return -1;
    }
    *token = cursor << KS_SCAN_BLOCK_BITS;
    return 0;
}

/* Calls fn for the entries with token >= cursor in token order, at least `count`
 * (a hint, as Redis's) unless the end comes first, and always every entry in the
 * block (top 53 bits of the token) of the last emitted one. Returns the next
 * position, the first token of a later block (a multiple of 2^KS_SCAN_BLOCK_BITS,
 * above every emitted token and at most the next unemitted one), 0 when the
 * iteration is over. fn must not modify d. */
uint64_t kv_dict_scan(struct kv_dict *d, uint64_t cursor, long count,
                      void (*fn)(struct kv_entry *e, void *arg), void *arg);
/* Moves up to n buckets of an ongoing rehash; returns 1 while more remain. */
int kv_dict_rehash(struct kv_dict *d, int n);
/* Rehashes for about ms milliseconds; returns the buckets moved. */
long kv_dict_rehash_ms(struct kv_dict *d, int ms);
/* Starts shrinking when the table is far larger than the entries. */
void kv_dict_maybe_shrink(struct kv_dict *d);
size_t kv_dict_slots(const struct kv_dict *d); /* buckets in both tables */
/* Calls fn for every entry, in no particular order; fn must not modify d. */
void kv_dict_foreach(struct kv_dict *d, void (*fn)(struct kv_entry *e, void *arg), void *arg);
/* The keyspace's cheap PRNG (xorshift64*), loop thread only. */
uint64_t ks_rand64(void);
/* Restarts the PRNG from seed (tests: sampling made repeatable). */
void ks_rand_seed(uint64_t seed);
static inline int kv_dict_is_rehashing(const struct kv_dict *d) {
    return d->rehashidx != -1;
}

/* ------------------------------------------------------------------------------
 * Entry accessors
 * ------------------------------------------------------------------------------ */
#define KS_VERSION_SIZE 12
/* The offsets in data[] of the expire block and of the key (its u32 length when
 * klen8 == 255), by the low 4 flag bits (KE_EXPIRE adds 12, KE_NOVER takes the
 * version's 12 away): one table load instead of two tests on every accessor. */
static const unsigned char ks_exp_off_tab[16] = {12, 12, 12, 12, 12, 12, 12, 12,
                                                 0,  0,  0,  0,  0,  0,  0,  0};
static const unsigned char ks_key_off_tab[16] = {12, 24, 12, 24, 12, 24, 12, 24,
                                                 0,  12, 0,  12, 0,  12, 0,  12};
_Static_assert(KE_EXPIRE == 1 && KE_NOVER == 8 && KS_VERSION_SIZE == 12,
               "ks_exp_off_tab/ks_key_off_tab follow the flag bits and sizes");
/* Offset in data[] of the expire block (after the version, when there is one). */
static inline size_t ks_exp_off(const struct kv_entry *e) {
    return ks_exp_off_tab[e->flags & 15];
}
static inline size_t ks_key_off(const struct kv_entry *e) {
    return ks_key_off_tab[e->flags & 15];
}
/* The entry's version ({0, 0} for a KE_NOVER field entry). */
static inline struct kv_version ks_entry_version(const struct kv_entry *e) {
    struct kv_version v = {0, 0};
    if (!(e->flags & KE_NOVER)) {
        memcpy(&v.hlc, e->data, 8);
        memcpy(&v.node, e->data + 8, 4);
    }
    return v;
}
/* Sets e's version (ignored for a KE_NOVER field entry). */
static inline void ks_entry_set_version(struct kv_entry *e, struct kv_version v) {
    if (!(e->flags & KE_NOVER)) {
        memcpy(e->data, &v.hlc, 8);
        memcpy(e->data + 8, &v.node, 4);
    }
}
static inline size_t ks_entry_klen(const struct kv_entry *e) {
    if (e->klen8 != 255) {
        return e->klen8;
    }
    uint32_t n;
    memcpy(&n, e->data + ks_key_off(e), 4);
    return n;
}
static inline const char *ks_entry_key(const struct kv_entry *e, size_t *len) {
    size_t off = ks_key_off(e);
    if (e->klen8 != 255) {
        *len = e->klen8;
        return (const char *)e->data + off;
    }
    uint32_t n;
    memcpy(&n, e->data + off, 4);
    *len = n;
    return (const char *)e->data + off + 4;
}
/* Offset in data[] of the value area. */
static inline size_t ks_val_off(const struct kv_entry *e) {
    size_t klen;
    const char *k = ks_entry_key(e, &klen);
    return (size_t)((const unsigned char *)k - e->data) + klen;
}
static inline unsigned char *ks_val_area(struct kv_entry *e) {
    return e->data + ks_val_off(e);
}
/* Reads the length prefix at v (a length-prefixed value area): the payload's
 * length in *len; returns the prefix's size (1 or 9). */
static inline size_t ks_read_vlen(const unsigned char *v, size_t *len) {
    if (v[0] != 255) {
        *len = v[0];
        return 1;
    }
    uint64_t n;
    memcpy(&n, v + 1, 8);
    *len = (size_t)n;
    return 9;
}
/* For length-prefixed values: the payload and its length. */
static inline unsigned char *ks_val_bytes(const struct kv_entry *e, size_t *len) {
    unsigned char *v = (unsigned char *)e->data + ks_val_off(e);
    return v + ks_read_vlen(v, len);
}
static inline long long ks_val_int(const struct kv_entry *e) {
    long long v;
    memcpy(&v, e->data + ks_val_off(e), 8);
    return v;
}
static inline void ks_val_set_int(struct kv_entry *e, long long v) {
    memcpy(e->data + ks_val_off(e), &v, 8);
}
static inline struct kv_dict *ks_val_dict(const struct kv_entry *e) {
    struct kv_dict *d;
    memcpy(&d, e->data + ks_val_off(e), sizeof(d));
    return d;
}
static inline int ks_entry_has_expire(const struct kv_entry *e) {
    return (e->flags & KE_EXPIRE) != 0;
}
/* Expire-at in Unix ms, 0 when none. */
static inline long long ks_entry_expire(const struct kv_entry *e) {
    if (!(e->flags & KE_EXPIRE)) {
        return 0;
    }
    long long t;
    memcpy(&t, e->data + ks_exp_off(e), 8);
    return t;
}
/* Is e's key these bytes? Keys of one length often share a prefix ("key:0000..."):
 * their last 8 bytes are compared inline first, so a chain member that is not the
 * key costs no memcmp call. */
static inline int ks_entry_key_eq(const struct kv_entry *e, const char *key, size_t len) {
    size_t klen;
    const char *k = ks_entry_key(e, &klen);
    if (klen != len) {
        return 0;
    }
    if (len >= 8) {
        uint64_t a, b;
        memcpy(&a, k + len - 8, 8);
        memcpy(&b, key + len - 8, 8);
        return a == b && memcmp(k, key, len - 8) == 0;
    }
    return memcmp(k, key, len) == 0;
}
static inline uint64_t ks_entry_token(const struct kv_entry *e) {
    size_t klen;
    const char *k = ks_entry_key(e, &klen);
    return ks_token(k, klen);
}

/* Bytes a value of this encoding needs in the value area for `len` payload bytes. */
static inline size_t ks_val_size(int enc, size_t len) {
    if (enc == KS_ENC_INT || enc == KS_ENC_HASHTABLE) {
        return 8;
    }
    return (len < 255 ? 1 : 9) + len;
}

/* Allocates a detached entry (not in any dict): header, version (zero: the
 * coordinator or the loader sets it), expire_at (when not 0), key, and a value area for `vlen` payload bytes of encoding enc with the length
 * prefix written (payload left for the caller). extra is slack to allocate beyond
 * the need (append growth). LRU/LFU is initialised for the current policy. Free with
 * ks_entry_free(), or hand it to ks_insert/ks_replace which take ownership. */
struct kv_entry *ks_entry_new(int type, int enc, const char *key, size_t klen,
                              size_t vlen, long long expire_at, size_t extra);
/* A field entry of a hashtable hash (KE_NOVER: no version, no TTL): the field
 * name as key, a value area for vlen bytes of encoding enc (prefix written). */
struct kv_entry *ks_field_new(int enc, const char *f, size_t flen, size_t vlen);
/* Writes a length prefix for len at v; returns its size (1 or 9). */
static inline size_t ks_write_vlen(unsigned char *v, size_t len) {
    if (len < 255) {
        v[0] = (unsigned char)len;
        return 1;
    }
    uint64_t n = len;
    v[0] = 255;
    memcpy(v + 1, &n, 8);
    return 9;
}
/* Is enc stored with a length prefix? */
static inline int ks_enc_prefixed(int enc) {
    return enc != KS_ENC_INT && enc != KS_ENC_HASHTABLE;
}
/* A detached copy of e under another key, with the given expire_at (0 none) and
 * e's version (a field entry stays a field entry); a field dict is deep-copied. */
struct kv_entry *ks_entry_dup(const struct kv_entry *e, const char *key, size_t klen,
                              long long expire_at);
/* Unlinks e from db without freeing it and returns a detached entry holding the
 * same value under `key` (the value moves, nothing is deep-copied). */
struct kv_entry *ks_take_rekeyed(struct kv_db *db, struct kv_entry *e, const char *key,
                                 size_t klen, long long expire_at);
/* Frees an entry and what its value owns (a field dict). */
void ks_entry_free(struct kv_entry *e);
/* Total bytes the entry's layout uses (<= its allocation). */
size_t ks_entry_size(const struct kv_entry *e);
/* Reallocates e to at least `size` bytes (contents kept) and fixes its dict link
 * and volatile slot in db when db is not NULL (e must then be in db). Returns the
 * new address; the old one is invalid. */
struct kv_entry *ks_entry_realloc(struct kv_db *db, struct kv_entry *e, size_t size);
/* Rewrites the value area for a new encoding and payload length (contents of the
 * payload not preserved beyond min(old, new) when both are length-prefixed),
 * reallocating when needed. Returns the (possibly moved) entry. */
struct kv_entry *ks_entry_reshape(struct kv_db *db, struct kv_entry *e, int enc,
                                  size_t vlen, size_t extra);

/* ------------------------------------------------------------------------------
 * Databases
 * ------------------------------------------------------------------------------ */
struct kv_db {
    int id;
    struct kv_dict keys;        /* every key */
    struct kv_entry **vol;      /* keys with a TTL, any order; entry's vidx = index */
    size_t vol_len, vol_cap;
    size_t expire_cursor;       /* active expiry position in vol */
    long long avg_ttl;          /* estimate for INFO keyspace, ms */
};

/* A backing store under the keyspace (persistent mode), set at start-up by the
 * store (store_init): the keyspace is then a cache of it. Eviction drops only clean
 * cached copies, by LRU (LFU under an LFU policy), emitting no event (no key
 * changes); without maxmemory the budget is 1 GiB; a write is never refused for
 * memory. evict_prepare (may be NULL) runs before each eviction round (persist:
 * write the pending batch, so that the entries are clean). NULL: none (cache). */
struct ks_backing {
    void (*evict_prepare)(void);
};
void ks_set_backing(const struct ks_backing *b);
void ks_init(void);                 /* creates server.db[0..server.databases) */
void ks_deinit(void);               /* frees every database (tests, shutdown) */
size_t ks_db_size(const struct kv_db *db);
size_t ks_db_expires(const struct kv_db *db);
long long ks_db_avg_ttl(const struct kv_db *db);

/* Finds a key without any expiry check or statistics. */
static inline struct kv_entry *ks_find(struct kv_db *db, const char *key, size_t len,
                                       uint64_t token) {
    return kv_dict_find(&db->keys, key, len, token);
}
/* Is e expired at server.mstime? */
static inline int ks_entry_expired(const struct kv_entry *e) {
    return (e->flags & KE_EXPIRE) && ks_entry_expire(e) <= server.mstime;
}
/* Inserts a detached entry whose key is absent. */
void ks_insert(struct kv_db *db, struct kv_entry *e, uint64_t token);
/* Replaces `old` (in db) by the detached `e` with the same key. Frees old. */
void ks_replace(struct kv_db *db, struct kv_entry *old, struct kv_entry *e, uint64_t token);
/* Unlinks a key and frees it (lazily in the background when its value is large
 * and lazy is set). Returns 1 when it existed. */
int ks_delete(struct kv_db *db, const char *key, size_t len, uint64_t token, int lazy);
/* Announces that e (key k, still in db) is going away as an event of type
 * (STORE_EV_EXPIRED or STORE_EV_EVICTED): built and emitted only when a function
 * wants it, else only counted. Call it before the key bytes are freed. */
void ks_announce_gone(struct kv_db *db, int type, struct kv_entry *e, const char *k,
                      size_t klen);
/* Deletes an expired key found by a lookup, announcing it first (STORE_EV_EXPIRED,
 * server/store/events.h: WATCH, expired_keys and persistence subscribe). */
void ks_expire_now(struct kv_db *db, struct kv_entry *e, uint64_t token);
/* Sets or changes a key's expire-at (ms). Returns the (possibly moved) entry. */
struct kv_entry *ks_set_expire(struct kv_db *db, struct kv_entry *e, long long when);
/* Removes a key's TTL; returns the (possibly moved) entry. */
struct kv_entry *ks_persist(struct kv_db *db, struct kv_entry *e);
/* Empties one database; async hands the old contents to the lazy-free thread.
 * Returns the number of keys removed. */
size_t ks_flush_db(struct kv_db *db, int async);
/* Waits until the lazy-free thread has freed everything queued (tests, shutdown). */
void ks_lazyfree_drain(void);
size_t ks_lazyfree_pending(void);

/* LRU/LFU (24-bit lru field, as Redis's robj). Every read and write of a key pays
 * for one of these, so the LRU side (the default) is inline and the LFU side, with
 * its decay and logarithmic increment, is a call. */
#define KS_LFU_INIT_VAL 5
#define KS_LRU_MAX ((1u << 24) - 1)
static inline int ks_policy_is_lfu(void) {
    return server.maxmemory_policy == MM_ALLKEYS_LFU ||
           server.maxmemory_policy == MM_VOLATILE_LFU;
}
/* Seconds of the one clock (server.mstime), in 24 bits. */
static inline unsigned ks_lru_clock(void) {
    return (unsigned)((server.mstime / 1000) & KS_LRU_MAX);
}
void ks_entry_touch_lfu(struct kv_entry *e);
void ks_entry_init_lfu(struct kv_entry *e);
/* An access: the LRU clock, or the LFU counter's increment. */
static inline void ks_entry_touch(struct kv_entry *e) {
    if (ks_policy_is_lfu()) {
        ks_entry_touch_lfu(e);
    } else {
        e->lru = ks_lru_clock();
    }
}
/* A new object: the LRU clock, or the LFU counter's initial value. */
static inline void ks_entry_init_lru(struct kv_entry *e) {
    if (ks_policy_is_lfu()) {
        ks_entry_init_lfu(e);
    } else {
        e->lru = ks_lru_clock();
    }
}
long long ks_entry_idle_ms(const struct kv_entry *e);
unsigned ks_entry_lfu(const struct kv_entry *e); /* decayed counter */

/* ------------------------------------------------------------------------------
 * Lifecycle hooks called by the server core (loop thread)
 * ------------------------------------------------------------------------------ */
/* Redis's activeExpireCycle: fast (from before-sleep, at most 1 ms, not more than
 * every 2 ms) or slow (from the cron, 25% of a tick at hz). Honours
 * server.active_expire_enabled and active_expire_effort. */
void ks_active_expire_cycle(int fast);
/* From the cron at hz: incremental rehash (1 ms per db at most) and shrinking. */
void ks_cron(void);
/* Eviction for maxmemory (server/store/ks_evict.c). Called before every command when
 * maxmemory is set: evicts for at most KS_EVICT_TIME_LIMIT_US, then leaves the rest
 * to a timer. Returns -1 when used memory is over maxmemory and nothing can be
 * evicted (the caller refuses commands that may grow memory with -OOM), else 0. */
int ks_evict_if_needed(void);
/* maxmemory changed (CONFIG SET): when over the new limit, eviction starts at
 * once from the loop, in bounded slices. */
void ks_evict_start(void);
/* From ks_cron: starts evicting when over the limit with no command arriving
 * (CONFIG SET maxmemory lower). */
void ks_evict_cron(void);
void ks_evict_deinit(void); /* frees the pool and the timer (ks_deinit) */

/* ---- eviction internals, exposed for server/store/evict_test.c ---- */
enum ks_evict_result { KS_EVICT_OK = 0, KS_EVICT_RUNNING = 1, KS_EVICT_FAIL = -1 };
/* Redis's performEvictions: one bounded slice. RUNNING: still over the limit,
 * the timer continues; FAIL: over the limit and nothing to evict. */
int ks_perform_evictions(void);
/* Is used memory over maxmemory? *tofree (may be NULL) gets the excess. */
int ks_evict_over_limit(size_t *tofree);
#define KS_EVICT_TIME_LIMIT_US 500      /* per slice (Redis's tenacity 10) */
extern long long ks_evict_time_limit_us; /* tests may raise it */
/* A key's eviction score under a pool policy: higher = evicted sooner. */
unsigned long long ks_evict_score(const struct kv_entry *e, int policy);

#define KS_EVPOOL_SIZE 16
struct ks_evpool_slot {
    unsigned long long score;  /* higher = evict sooner */
    uint64_t token;            /* ks_token(key) */
    char *key;                 /* owned buffer of cap bytes, klen used */
    uint32_t klen, cap;
    int db;                    /* database id, -1 = empty slot */
};
/* The best candidates seen so far, ascending by score, filled slots first. */
struct ks_evpool {
    struct ks_evpool_slot slot[KS_EVPOOL_SIZE];
    int policy;                /* the policy the scores were computed for */
};
void ks_evpool_init(struct ks_evpool *p);
void ks_evpool_deinit(struct ks_evpool *p);
void ks_evpool_clear(struct ks_evpool *p);
/* Offers a candidate (the key is copied); 1 when the pool kept it. */
int ks_evpool_offer(struct ks_evpool *p, int db, const char *key, size_t klen,
                    uint64_t token, unsigned long long score);
/* Index of the best candidate, -1 when empty; ks_evpool_remove takes it out. */
int ks_evpool_best(const struct ks_evpool *p);
void ks_evpool_remove(struct ks_evpool *p, int k);

/* Tunables owned by the keyspace (Redis defaults). */
extern size_t ks_hash_max_listpack_entries; /* 512 */
extern size_t ks_hash_max_listpack_value;   /* 64 */

#endif
