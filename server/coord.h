/* server/coord.h: the coordinator seam. Command handlers read and write keys only
 * through these functions (and read or change values with server/obj.h); they never
 * reach into the keyspace's tables or, later, the engine or the cluster.
 *
 * WHAT EVERY HANDLER MUST DO
 *   1. Look a key up with coord_lookup_read() (a read: counts hits/misses, updates
 *      LRU/LFU) or coord_lookup_write() (a key about to be changed). An expired key
 *      is absent: the lookup deletes it.
 *   2. Make every change to a key visible to the coordinator as ONE call after the
 *      handler has finished changing it:
 *        - a new value:          coord_set_str / coord_set_int / coord_put
 *        - a removal:            coord_delete
 *        - a TTL change:         coord_set_expire / coord_persist
 *        - an in-place change:   obj_* / hash_* on the entry, then coord_modified
 *          (APPEND, SETRANGE, INCR of an int); for a hash, coord_hash_modified
 *          with the fields changed (HSET, HDEL, HINCRBY into an existing hash)
 *        - whole databases:      coord_flush; two keys at once: coord_rename
 *      An entry pointer is valid until the next coord_* or obj_* call that may
 *      change the same database; use the pointer those calls return.
 *   3. Write exactly one reply.
 *   Read-modify-write commands (INCR, APPEND, SET NX/GET, GETSET, HINCRBY...) are
 *   written so that the same handler, run on the key's first replica, is the whole
 *   coordination: it reads, decides, and issues one write call.
 *
 * WHAT THE COORDINATOR GUARANTEES
 *   - Both modes: every call goes through the store interface (server/store.h),
 *     which applies it to the in-memory keyspace (server/ks.h) with no extra copy
 *     and, in persistent mode, reads a dict miss through from the engine. Each
 *     write call stamps one version and emits one store event (server/events.h),
 *     to which WATCH, server.dirty and persistence subscribe. Lookups return the
 *     entry itself, not a copy.
 *   - Persistent mode: a write event is where the new envelope (type, expire-at,
 *     version, payload) is queued under the internal key token(8B
 *     big-endian)||db||key; coord_modified serialises the entry once, after the
 *     handler's last change, never per field.
 *   - Cluster (later): a write call ships the key's new value to its replicas;
 *     reads are answered after R replies; SCAN cursors are ring tokens, the same
 *     numbers as here.
 *
 * Threading: loop thread only.
 */
#ifndef KVD_COORD_H
#define KVD_COORD_H

#include "server/obj.h"

enum {
    COORD_KEEPTTL = 1u << 0, /* keep an existing key's TTL (SET KEEPTTL, INCR...) */
    COORD_NOINT = 1u << 3,   /* keep a numeric string a string (INCRBYFLOAT: "embstr") */
};

/* ---- reads ---- */

enum {
    COORD_NOTOUCH = 1u << 1, /* do not update LRU/LFU */
    COORD_NOSTATS = 1u << 2, /* do not count a keyspace hit or miss */
};
/* The live entry for key in the client's database, or NULL (flags COORD_NO*). */
struct kv_entry *coord_lookup(struct client *c, const struct kv_slice *key, unsigned flags);

/* The live entry for key in the client's database, or NULL. Counts a keyspace hit
 * or miss; updates LRU/LFU unless the client is in CLIENT NO-TOUCH mode. */
struct kv_entry *coord_lookup_read(struct client *c, const struct kv_slice *key);
/* The same for a key the handler is about to change: no statistics; LRU/LFU is
 * updated. */
struct kv_entry *coord_lookup_write(struct client *c, const struct kv_slice *key);
/* coord_lookup_write in another database (COPY ... DB n). */
struct kv_entry *coord_lookup_write_db(struct client *c, int db_id, const struct kv_slice *key);
/* Does key exist (no statistics, no LRU change)? */
int coord_exists(struct client *c, const struct kv_slice *key);
/* TOUCH: like a read lookup, but always updates LRU/LFU. */
struct kv_entry *coord_touch(struct client *c, const struct kv_slice *key);

/* ---- writes ---- */

/* Sets key to a string value (int-encoded when it is one), replacing any value of
 * any type. expire_at: Unix ms, 0 = no TTL (unless COORD_KEEPTTL keeps the old
 * one). Overwrites in place when the old value is a string. Returns the entry. */
struct kv_entry *coord_set_str(struct client *c, const struct kv_slice *key, const char *p,
                               size_t len, long long expire_at, unsigned flags);
/* The same with an integer value. */
struct kv_entry *coord_set_int(struct client *c, const struct kv_slice *key, long long v,
                               long long expire_at, unsigned flags);
/* Stores a detached entry built with obj_* / hash_* under its own key in database
 * db_id (-1: the client's), replacing any value; takes ownership of e. Returns the
 * stored entry. */
struct kv_entry *coord_put(struct client *c, int db_id, struct kv_entry *e, unsigned flags);
/* Deletes key; lazy frees a large value in the background (UNLINK). Returns 1 when
 * it existed. */
int coord_delete(struct client *c, const struct kv_slice *key, int lazy);
/* Sets e's (key's) expire-at in Unix ms; a time not in the future deletes the key
 * (returns NULL). Returns the entry otherwise. */
struct kv_entry *coord_set_expire(struct client *c, const struct kv_slice *key,
                                  struct kv_entry *e, long long when);
/* Removes e's TTL. Returns the entry. */
struct kv_entry *coord_persist(struct client *c, const struct kv_slice *key,
                               struct kv_entry *e);
/* Reports that the handler changed e (key's value) in place. */
void coord_modified(struct client *c, const struct kv_slice *key, struct kv_entry *e);
/* coord_modified for a hash whose fields fields[0], fields[stride], ... (n of them)
 * were set or deleted: persistent mode writes only those fields of a big hash. */
void coord_hash_modified(struct client *c, const struct kv_slice *key, struct kv_entry *e,
                         const struct kv_slice *fields, size_t n, size_t stride);
/* Moves src's value (and TTL) to dst, replacing dst. src must exist. */
void coord_rename(struct client *c, const struct kv_slice *src, const struct kv_slice *dst);
/* Empties database db_id, or every database with -1. Returns the keys removed. */
size_t coord_flush(struct client *c, int db_id, int async);

/* ---- iteration ---- */

/* SCAN over the client's database by token cursor (see ks_dict.c): fn gets each
 * entry (possibly expired: the caller filters). Returns the next cursor. */
uint64_t coord_scan(struct client *c, uint64_t cursor, long count,
                    void (*fn)(struct kv_entry *e, void *arg), void *arg);
/* Every entry of the client's database (KEYS); fn must not change anything. */
void coord_foreach(struct client *c, void (*fn)(struct kv_entry *e, void *arg), void *arg);
/* A random live key, or NULL when the database is empty. */
struct kv_entry *coord_random(struct client *c);
size_t coord_db_size(struct client *c);
/* The database behind an index (COPY ... DB n, MEMORY STATS). */
struct kv_db *coord_db(int db_id);
/* Deletes an entry found by iteration that turned out expired. */
void coord_expire_entry(struct client *c, struct kv_entry *e);

/* ---- argument helpers shared by the key families (server/cmd_keys.c) ---- */

/* SCAN/HSCAN cursor: an unsigned 64-bit decimal as Redis's strtoul reading; else
 * replies "ERR invalid cursor" and returns -1. */
int keys_scan_cursor_or_reply(struct client *c, int i, uint64_t *cursor);
/* [MATCH p] [COUNT n] [TYPE t] from argv[first..]; TYPE only when type != NULL.
 * *pat is NULL for no pattern (or "*"); *count defaults to 10. Replies and returns
 * -1 on error. */
int keys_scan_opts_or_reply(struct client *c, int first, const struct kv_slice **pat,
                            long *count, const struct kv_slice **type);

#endif
