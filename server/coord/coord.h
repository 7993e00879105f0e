/* server/coord/coord.h: the coordinator seam, the one public header of
 * server/coord/ (between the client layer, server/client/, and the command
 * families, server/cmd/). Command handlers (server/cmd/cmd_*.c) read and
 * write keys only through these functions, and read or change values only with the
 * value helpers of server/store/obj.h (which this header brings, through the
 * store's header); they never name a
 * database (`c->db`, struct kv_db), the keyspace's tables (ks_*, kv_dict_*), the
 * engine or the cluster. tests/check-seal.sh holds them to it.
 *
 * WHAT EVERY HANDLER MUST DO
 *   1. Look a key up with coord_lookup_read() (a read: counts a keyspace hit or
 *      miss, updates LRU/LFU) or coord_lookup_write() (a key about to be changed:
 *      no statistics). A command that needs one type uses
 *      coord_lookup_type_or_reply(), which replies WRONGTYPE for the others. An
 *      expired key is absent: the lookup deletes it.
 *   2. Make every change to a key visible to the coordinator as ONE call after the
 *      handler has finished changing it:
 *        - a new value:          coord_set_str / coord_set_int / coord_put
 *        - a removal:            coord_delete
 *        - a TTL change:         coord_set_expire / coord_persist
 *        - an in-place change:   coord_str_append / coord_str_setrange (change and
 *          report in one call); obj_str_set_int on an int-encoded string, then
 *          coord_modified (INCR); for a stored hash, coord_hash_set /
 *          coord_hash_del per field, then once coord_hash_modified with the
 *          fields changed (HSET, HDEL, HINCRBY into an existing hash)
 *        - whole databases:      coord_flush; two keys at once: coord_rename
 *      A detached value (not stored yet: obj_str_new, hash_new) is built with the
 *      obj_* / hash_* helpers, passing NULL as their database, and stored with
 *      coord_put. An entry pointer is valid until the next coord_* or obj_* call
 *      that may change the same database; use the pointer those calls return.
 *   3. Write exactly one reply.
 *   Read-modify-write commands (INCR, APPEND, SET NX/GET, GETSET, HINCRBY...) are
 *   written so that the same handler, run on the key's first replica, is the whole
 *   coordination: it reads, decides, and issues one write call.
 *
 * WHAT THE COORDINATOR GUARANTEES
 *   - Both modes: every call goes through the store interface (server/store/store.h),
 *     which applies it to the in-memory keyspace (server/store/ks.h) with no extra copy
 *     and, in persistent mode, reads a dict miss through from the engine. Lookups
 *     return the entry itself, not a copy. Every write call stamps the value it
 *     writes (or the tombstone of a removal) with one version (an HLC timestamp
 *     above the old value's version, and this node's tag; the writes of one
 *     command share it where they can: coord.c "VERSIONS") and emits one store event
 *     (server/store/events.h), to which WATCH, server.dirty and persistence subscribe.
 *   - Persistent mode (--mode persistent): the persistence subscriber queues the
 *     envelope (type, payload) with its expire-at and version under the internal
 *     key token(8B big-endian)||db||key, committed in one batch at the end of the
 *     loop turn, and the client's reply is held until that batch is written.
 *     coord_modified serialises the entry once, after the handler's last change,
 *     never per field; coord_hash_modified writes only the named fields of a big
 *     hash.
 *   - Cluster (to come): a lookup prefetches the key from its replicas (the reply
 *     waits for R of them), a write call ships the new version to the key's
 *     replicas and holds the reply until W acks, as persistent mode holds it for
 *     the engine; SCAN positions are ring tokens, the same numbers as here.
 *
 * Threading: loop thread only.
 */
#ifndef KVD_COORD_H
#define KVD_COORD_H

#include "server/client/client.h"
#include "server/store/store.h"

enum {
    COORD_KEEPTTL = 1u << 0, /* keep an existing key's TTL (SET KEEPTTL, INCR...) */
    COORD_NOINT = 1u << 3,   /* keep a numeric string a string (INCRBYFLOAT: "embstr") */
};

/* ---- commands ----
 * call() calls coord_command_begin before every top-level command (EXEC with its
 * queued commands is one): the writes of one command share one version where the
 * versioning rule allows (coord.c "VERSIONS"), so the clock is read once per
 * command, not once per key. */
extern uint64_t coord_cmd_hlc; /* coord.c's: the command's version, 0 before its first write */
static inline void coord_command_begin(void) {
    coord_cmd_hlc = 0;
}

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

/* SCAN over the client's database from token position `cursor` (see ks_dict.c): fn
 * gets each entry (possibly expired: the caller filters). Returns the next
 * position, a block start (ks.h KS_SCAN_BLOCK_BITS), 0 at the end. */
uint64_t coord_scan(struct client *c, uint64_t cursor, long count,
                    void (*fn)(struct kv_entry *e, void *arg), void *arg);
/* Every entry of the client's database (KEYS); fn must not change anything. */
void coord_foreach(struct client *c, void (*fn)(struct kv_entry *e, void *arg), void *arg);
/* A random live key, or NULL when the database is empty. */
struct kv_entry *coord_random(struct client *c);
size_t coord_db_size(struct client *c);
/* Deletes an entry found by iteration that turned out expired. */
void coord_expire_entry(struct client *c, struct kv_entry *e);

/* ---- typed lookups and in-place changes (handlers never name a database) ---- */

/* key's entry if it holds a value of `type` (KS_TYPE_*). Returns 0 with *ep the
 * entry, or *ep = NULL when the key is absent (nothing replied); returns -1 with
 * *ep = NULL after replying WRONGTYPE when the key holds another type. flags as
 * coord_lookup: 0 for a read (counts a keyspace hit or miss, exactly as
 * coord_lookup_read), COORD_NOSTATS for a key about to be changed (exactly as
 * coord_lookup_write). A key of the wrong type counts (a hit) and is touched as
 * the plain lookup would, as Redis's lookupKey* then checkType. */
int coord_lookup_type_or_reply(struct client *c, const struct kv_slice *key, int type,
                               unsigned flags, struct kv_entry **ep);
/* Appends p to the stored string e (key's value, looked up by this client) and
 * reports the change (coord_modified). Returns the (possibly moved) entry. */
struct kv_entry *coord_str_append(struct client *c, const struct kv_slice *key,
                                  struct kv_entry *e, const char *p, size_t len);
/* Writes p at offset off of the stored string e, zero-padding a gap (the caller
 * checked the bounds), and reports the change. Returns the entry. */
struct kv_entry *coord_str_setrange(struct client *c, const struct kv_slice *key,
                                    struct kv_entry *e, size_t off, const char *p,
                                    size_t len);
/* hash_set / hash_del on the hash *ep stored in the client's database (*ep may
 * move and is re-linked there). No report: after the last field the handler calls
 * coord_hash_modified (or coord_delete for a hash left empty) once. */
int coord_hash_set(struct client *c, struct kv_entry **ep, const char *f, size_t flen,
                   const char *v, size_t vlen);
int coord_hash_del(struct client *c, struct kv_entry **ep, const char *f, size_t flen);
/* MEMORY STATS: database db_id's key count and the bytes of its main and expires
 * tables' slot arrays. */
void coord_db_overhead(int db_id, size_t *keys, size_t *main_bytes, size_t *expires_bytes);

/* ---- long replies (the client layer, for handlers) ---- */

/* 1 when the client's output went over its client-output-buffer-limit (the client
 * is then closed after this command, as Redis does) or the client is already being
 * closed: a handler writing a reply of many elements stops there. */
int coord_reply_over_limit(struct client *c);
/* Closes the client once this command is done (a reply cut short). */
void coord_close_client(struct client *c);

/* ---- argument helpers shared by the key families (server/cmd/cmd_keys.c) ---- */

/* SCAN/HSCAN cursor: an unsigned 64-bit decimal as Redis's strtoul reading; else
 * replies "ERR invalid cursor" and returns -1. The cursor is a block number (ks.h
 * KS_SCAN_BLOCK_BITS): *token gets the scan position it names and 0 is returned;
 * a cursor >= 2^53 names none: returns 1 and replies nothing (the caller answers
 * the finished scan, keys_reply_scan_end). */
int keys_scan_cursor_or_reply(struct client *c, int i, uint64_t *token);
/* Replies the SCAN/HSCAN cursor for the next scan position (a block start or 0). */
void keys_reply_scan_cursor(struct client *c, uint64_t next);
/* Replies a finished, empty scan: cursor "0" and no elements. */
void keys_reply_scan_end(struct client *c);
/* [MATCH p] [COUNT n] [TYPE t] from argv[first..]; TYPE only when type != NULL.
 * *pat is NULL for no pattern (or "*"); *count defaults to 10. Replies and returns
 * -1 on error. */
int keys_scan_opts_or_reply(struct client *c, int first, const struct kv_slice **pat,
                            long *count, const struct kv_slice **type);

/* ---- the cluster's scratch keyspace (scratch.c; server/cmd/coordinate.c drives it) ----
 * One command at a time runs on a keyspace of its own: enter, load the records
 * its keys' replicas answered, call() the handler, leave with what it changed.
 * While it is in force, every coord_* call (and SELECT) reaches the scratch
 * databases only: never the node's keyspace, engine, WATCH state or counters. */
struct coord_change {
    int db;
    char *key;            /* owned, NUL-terminated */
    size_t klen;
    int deleted;          /* 1: a tombstone (no value) */
    long long expire_at;  /* Unix ms, 0 = none */
    char *val;            /* the envelope (persist_encode), owned; NULL for a tombstone */
    size_t vlen;
    /* A big hash (hashtable encoding) also comes out as field records, which the
     * cluster ships instead of the envelope (cluster/fields.h): */
    int big;              /* 1: the value is a big hash */
    int whole;            /* big: fv lists every field (a command that did not name
                             the fields it changed: RENAME, COPY, EXPIRE, a new hash);
                             0: only the fields the commands named (HSET, HDEL, ...) */
    struct coord_field *fv; /* big: owned, nfv of them */
    size_t nfv;
};
struct coord_field {
    char *f;              /* owned (with val: one allocation) */
    size_t flen;
    const char *val;      /* inside f's allocation; NULL for a deleted field */
    size_t vlen;
    int deleted;          /* the field is not in the hash */
};
/* Puts c (and every database lookup) on the empty scratch keyspace. The first
 * change a handler makes holds c's reply (CLIENT_HOLD_CLUSTER). */
void coord_scratch_enter(struct client *c);
/* 1 between enter and leave. */
int coord_scratch_active(void);
/* Loads one record's value (an envelope) for key into scratch database db_id with
 * version v: 1 loaded, 0 already expired (absent), -1 malformed or no run. */
int coord_scratch_load(int db_id, const char *key, size_t klen, struct kv_version v,
                       long long expire_at, const char *val, size_t vlen);
/* The same for a big hash given as field records (f[0..n), the live ones are
 * loaded; none live: absent, 0). */
int coord_scratch_load_hash(int db_id, const char *key, size_t klen, struct kv_version v,
                            long long expire_at, const struct store_field *f, size_t n);
/* Ends the run: *out gets every key written or deleted, once each, sorted by (db,
 * key), with its final state (free with coord_changes_free); returns how many.
 * The scratch keyspace is emptied and c is back on the node's database. */
size_t coord_scratch_leave(struct client *c, struct coord_change **out);
void coord_changes_free(struct coord_change *ch, size_t n);

#endif
