/* server/store/store.h: the ONE public header of server/store/: the folders above
 * (client, coord, cmd, net) include this and nothing else of the store; it brings
 * the store's events (events.h), the keyspace (ks.h), the value helpers (obj.h),
 * persistence (persist.h), the HLC (hlc.h) and the node id (node.c, below). The
 * store calls nobody above it: the client pointer its events carry is opaque to
 * it, and persistence holds replies through persist_set_client_hooks.
 *
 * The store seen as records with versions, the entry points the
 * cluster's replicas will use (DESIGN.md "Values and versions"; PERSIST.md
 * "Versions and tombstones"). Command handlers do not use it: they go through the
 * coordinator (coord.h), which stamps versions on local writes.
 *
 * A record is what a replica stores for a key: its version (proto/version.h), a
 * tombstone flag, the expire-at, and the value as the persist envelope encodes it
 * (persist_encode: type, encoding, flags, payload; self-contained, a big hash with
 * every field). Every value in the store carries a version in both modes; tombstones
 * exist only in persistent mode (see TOMBSTONES below).
 *
 * LAST-WRITE-WINS: a record replaces what the store holds for its key only when it
 * is newer by kv_record_cmp: a larger version (hlc, then node), or the same version
 * as a tombstone over a value (an expiry tombstone carries the expired value's
 * version). An equal record (the same write arriving twice) is ignored.
 *
 * TOMBSTONES: persistent mode keeps them for gc-grace-seconds (deletes, expiries,
 * applied tombstone records; in a cluster also until the cluster's GC horizon
 * passes them: persist_set_gc_horizon) and a flush marker counts as a tombstone of every key
 * of its database, with version {marker, node 0}. Cache mode keeps none: a key
 * absent from memory holds nothing, so a tombstone only beats the values present
 * when it arrives, and an older value arriving after it is applied (a cache node
 * may lose data; it does not remember deletes). An expired key held in memory
 * counts as the tombstone it becomes in both modes.
 *
 * Writes made here count as writes (WATCH, server.dirty, DBSIZE, the expiry index)
 * and, in persistent mode, go into the pending batch written at the loop turn's end
 * (persist_before_sleep), as a coordinator write does; a caller that must answer
 * only once it is stored holds its reply as persist does for clients.
 *
 * Threading: loop thread only.
 */
#ifndef KVD_STORE_H
#define KVD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/version.h"
#include "server/store/cleanup.h"
#include "server/store/events.h"
#include "server/store/hlc.h"
#include "server/store/ks.h"
#include "server/store/obj.h"
#include "server/store/persist.h"

struct store_record {
    struct kv_version version;
    int deleted;           /* 1: a tombstone (value and vlen are ignored / 0) */
    long long expire_at;   /* Unix ms, 0 = none (a tombstone: the expiry's, or 0) */
    const char *value;     /* envelope bytes (persist_encode) */
    size_t vlen;
};

enum { STORE_ERROR = -1, STORE_IGNORED = 0, STORE_APPLIED = 1 };

/* Applies r to key in database db_id when r is newer than what the store holds
 * (memory, then in persistent mode the engine, tombstones and flush markers
 * included). A value whose expire-at is already past is stored as the tombstone
 * it becomes (persistent mode) or dropped (cache mode). The clock observes r's
 * version, so later local writes are newer. Returns STORE_APPLIED, STORE_IGNORED,
 * or STORE_ERROR (db_id out of range, a malformed or not self-contained envelope,
 * an engine read error) with nothing changed. */
int store_apply(int db_id, const char *key, size_t klen, const struct store_record *r);

/* What the store holds for key in db_id as a record, tombstones included: 1 found
 * (*out filled; value bytes valid until the next store_* call), 0 nothing held,
 * -1 error. Read-only for the data: no statistics, LRU or expiry deletion (an
 * expired value is reported as its tombstone); in persistent mode a key read from
 * the engine is cached as a coordinator lookup would. */
int store_get_record(int db_id, const char *key, size_t klen, struct store_record *out);

/* ---- hashver.c: a cluster replica's big hashes, field by field (the record
 * form and merge rules: cluster/fields.h) ---- */
struct store_field {
    struct kv_version v;
    int deleted;           /* a tombstone (no value) */
    const char *f;
    size_t flen;
    const char *val;
    size_t vlen;
};
/* A big hash's field records as they travel: the key's version and expire-at, the
 * key floor, and n field records (f, borrowed). */
struct store_fields {
    struct kv_version version;
    long long expire_at;
    struct kv_version floor;
    const struct store_field *f;
    size_t n;
};
/* Applies field records to key (cluster/fields.h MEANING): per field, newest wins,
 * nothing below the floor; over a key that is not a big hash, a new big hash of the
 * fields above the held version (ignored when that is newer than r->version).
 * STORE_APPLIED, STORE_IGNORED or STORE_ERROR, as store_apply. */
int store_apply_fields(int db_id, const char *key, size_t klen, const struct store_fields *r);
typedef void store_field_fn(void *arg, const struct store_field *f);
/* When key holds a live big hash: fills *head (n and f unused), calls fn for each
 * field and field tombstone (any order; borrowed for the call) and returns 1; 0
 * when it holds anything else; -1 error. */
int store_read_fields(int db_id, const char *key, size_t klen, struct store_fields *head,
                      store_field_fn *fn, void *arg);
/* A whole-key record at version v older than big hash e's own version: raises e's
 * floor to v (fields older than v go; the key goes with its last field).
 * STORE_APPLIED, or STORE_IGNORED (not a big hash, or v not above its floor). */
int store_hash_floor_raise(struct kv_db *db, const char *key, size_t klen, uint64_t token,
                           struct kv_entry *e, struct kv_version v);
/* Field tombstones forgotten beyond the per-hash bound. */
uint64_t store_field_tombstones_dropped(void);

/* One record of a range (store_iter_next). */
struct store_item {
    int db;
    uint64_t token;        /* ks_token(key) */
    const char *key;       /* valid until the next store_iter_next / destroy */
    size_t klen;
    struct store_record rec;
};

struct store_iter;
/* Every record whose token lies in [start, end), all databases, ordered by
 * (token, db, key). end 0 means the end of the ring (2^64): [0, 0) is the whole
 * ring. start >= end (end != 0) is empty: a range that wraps around the ring is
 * the caller's to split into [start, 0) and [0, end).
 * Persistent mode: a snapshot of the engine as of the call (the pending batch is
 * written first), tombstones included, flushed entries skipped (the flush marker
 * stands for them: store_get_record reports it per key). Cache mode: the live
 * in-memory keys (no tombstones), read window by window: a write made between two
 * store_iter_next calls may or may not be seen. Never NULL. */
struct store_iter *store_iter_range(uint64_t start, uint64_t end);
/* 1 an item in *out, 0 the end, -1 an error (then the end). */
int store_iter_next(struct store_iter *it, struct store_item *out);
void store_iter_destroy(struct store_iter **it);

/* ------------------------------------------------------------------------------
 * THE COORDINATOR'S STORE INTERFACE
 *
 * coord.c reads and writes keys through these calls only; they hide whether the
 * keyspace (ks.h) is the whole store (cache mode) or a cache over the engine
 * (persistent mode: the backend below, set by store_init). Every write call emits
 * its store event (events.h); whatever a write owes WATCH, server.dirty and the
 * engine is done by their subscribers. Lookups return the entry itself (no copy);
 * the hot path (lookup hit, link, written) is inline and costs one branch more
 * than the bare keyspace per event subscriber.
 * ------------------------------------------------------------------------------ */

/* The backend under the keyspace: all NULL in cache mode. */
struct store_backend {
    /* a dict miss: the key from the backend, cached in db, or NULL */
    struct kv_entry *(*load)(struct kv_db *db, const char *key, size_t klen, uint64_t token);
    size_t (*count)(int db_id);        /* live keys, exact (expired ones may count) */
    void (*expire_due)(void);          /* deletes what has expired, so count is live */
    uint64_t (*scan)(int db_id, uint64_t cursor, long count,
                     void (*fn)(struct kv_entry *e, void *arg), void *arg);
    void (*foreach)(int db_id, void (*fn)(struct kv_entry *e, void *arg), void *arg);
    struct kv_entry *(*random)(int db_id);
};
extern struct store_backend store_be;

/* Chooses the backend for server.mode and subscribes or unsubscribes the
 * persistence write-through (persist.c); sets the keyspace's backing (ks.h);
 * forgets the floors of store_flush_below (persistent mode keeps them as markers). Called
 * at start-up (server_subscribe_events) and again by tests that switch modes. */
void store_init(void);

/* What the store holds for key: the entry, expired or not (no expiry, statistics or
 * LRU), read through from the backend on a dict miss. */
static inline struct kv_entry *store_peek(struct kv_db *db, const char *key, size_t klen,
                                          uint64_t token) {
    struct kv_entry *e = ks_find(db, key, klen, token);
    if (e == NULL && store_be.load) {
        e = store_be.load(db, key, klen, token);
    }
    return e;
}

/* The live entry for key, or NULL; an expired key is deleted (STORE_EV_EXPIRED). */
static inline struct kv_entry *store_lookup(struct kv_db *db, const char *key, size_t klen,
                                            uint64_t token) {
    struct kv_entry *e = store_peek(db, key, klen, token);
    if (e && ks_entry_expired(e)) {
        ks_expire_now(db, e, token);
        return NULL;
    }
    return e;
}

/* Links e (detached, version stamped) under its key, replacing old (NULL: none;
 * STORE_EV_REPLACING first). The caller then reports it with store_written. */
static inline void store_link(struct kv_db *db, struct kv_entry *old, struct kv_entry *e,
                              uint64_t token) {
    if (old) {
        if (store_wanted(STORE_EV_REPLACING)) {
            struct store_ev ev;
            store_ev_init(&ev, STORE_EV_REPLACING, db->id);
            ev.e = old;
            ev.version = ks_entry_version(old);
            ev.old_expire = ks_entry_expire(old);
            ev.existed = 1;
            ev.key = ks_entry_key(old, &ev.klen);
            store_emit(&ev);
        }
        ks_replace(db, old, e, token);
    } else {
        ks_insert(db, e, token);
    }
}

/* Reports that key (in db) now holds e: a new value or an in-place change of value
 * or TTL. existed/old_expire: what was there before; fields (n of them, stride
 * apart) the hash fields changed, or NULL. */
static inline void store_written(struct client *c, struct kv_db *db, const struct kv_slice *key,
                                 struct kv_entry *e, int existed, long long old_expire,
                                 const struct kv_slice *fields, size_t n, size_t stride) {
    if (!store_wanted(STORE_EV_WRITTEN)) {
        store_count(STORE_EV_WRITTEN);
        return;
    }
    struct store_ev ev;
    store_ev_init(&ev, STORE_EV_WRITTEN, db->id);
    ev.key = key->p;
    ev.klen = key->len;
    ev.e = e;
    ev.c = c;
    ev.version = ks_entry_version(e);
    ev.old_expire = old_expire;
    ev.existed = existed;
    ev.fields = fields;
    ev.nfields = n;
    ev.stride = stride;
    store_emit(&ev);
}

/* Announces that a command deletes key's entry e with version ver (STORE_EV_DELETED);
 * the caller unlinks it next (store_delete does both). */
static inline void store_deleting(struct client *c, struct kv_db *db, const struct kv_slice *key,
                                  struct kv_entry *e, struct kv_version ver) {
    if (!store_wanted(STORE_EV_DELETED)) {
        store_count(STORE_EV_DELETED);
        return;
    }
    struct store_ev ev;
    store_ev_init(&ev, STORE_EV_DELETED, db->id);
    ev.key = key->p;
    ev.klen = key->len;
    ev.e = e;
    ev.c = c;
    ev.version = ver;
    ev.old_expire = ks_entry_expire(e);
    ev.existed = 1;
    store_emit(&ev);
}

/* Deletes key's live entry e (token: key's) with version ver; lazy frees a large
 * value in the background. Returns ks_delete's result. */
static inline int store_delete(struct client *c, struct kv_db *db, const struct kv_slice *key,
                               struct kv_entry *e, uint64_t token, struct kv_version ver,
                               int lazy) {
    store_deleting(c, db, key, e, ver);
    return ks_delete(db, key->p, key->len, token, lazy);
}

/* Empties database db_id (-1: all): STORE_EV_FLUSH_BEFORE, the keyspace emptied,
 * STORE_EV_FLUSHED. Returns the keys removed (persistent mode: the exact counts). */
size_t store_flush(struct client *c, int db_id, int async);
/* A cluster-wide FLUSHDB (db_id) / FLUSHALL (-1) at version hlc (cluster.h,
 * cluster_flush): deletes the records whose version's hlc is below hlc and keeps
 * hlc as the database's floor, so that store_apply ignores a record below it from
 * now on (a late hint, a read repair, a straggling write). Persistent mode: the
 * floor is the database's flush marker (raised, never lowered; kept across a
 * restart) and the engine's records at or above it stay; cache mode: in memory
 * only. Records at or above hlc survive, and so does a value written later. No
 * WATCH or keyspace events (a cluster EXEC compares versions). 0, or -1 (db_id
 * out of range). */
int store_flush_below(int db_id, uint64_t hlc);
/* The floor store_flush_below left on db_id (0: none). */
uint64_t store_floor(int db_id);
/* SCAN from token position `cursor` over database db_id (entries possibly
 * expired). Returns the next position, a block start (ks.h), 0 at the end. */
uint64_t store_scan(int db_id, uint64_t cursor, long count,
                    void (*fn)(struct kv_entry *e, void *arg), void *arg);
/* Every entry of database db_id; fn must not change anything. */
void store_foreach(int db_id, void (*fn)(struct kv_entry *e, void *arg), void *arg);
/* A random live key of db_id (expired ones drawn are deleted), or NULL. */
struct kv_entry *store_random(int db_id);
/* Live keys in db_id (persistent mode: what has expired is deleted first). */
size_t store_db_size(int db_id);
/* Deletes an entry found by iteration that turned out expired (cache mode; the
 * backend's iteration never hands out expired keys). */
void store_expire_entry(struct kv_db *db, struct kv_entry *e);

/* ---- node.c: the node's identity, in every version it stamps ---- */
/* Reads or creates the node id (dir/node-id) and sets server.node_id and
 * server.node_tag. 0, or -1 with err. */
int node_init(char *err, size_t errlen);
/* The 32-bit version tag of a node id (never 0). */
uint32_t node_tag_of(const char *id);
/* The node's ring tokens, kept in dir/node-tokens beside node-id so that a restart
 * keeps its place on the ring (the cluster draws them once: ring_tokens_generate).
 * The file is text: the node id on the first line, then one decimal token per
 * line, strictly ascending, 1..NODE_TOKENS_MAX of them.
 * node_tokens_load: 1 with *out (kv_free it) and *n, 0 when there is no file or
 * it belongs to another node id (a cache node's fresh id), -1 with err when it is
 * unreadable or malformed. node_tokens_save: writes them (a temporary file,
 * fsynced, renamed) in mode persistent; mode cache writes nothing, as for the id.
 * 0, or -1 with err. */
#define NODE_TOKENS_MAX 4096
int node_tokens_load(uint64_t **out, size_t *n, char *err, size_t errlen);
int node_tokens_save(const uint64_t *tokens, size_t n, char *err, size_t errlen);
/* dir/node-join: the state of a join in progress (cluster/join.h describes and
 * parses the text; this only keeps the bytes), so that a restart resumes it at
 * the same tokens. Persistent mode only (cache mode: load finds nothing, save
 * writes nothing). node_join_load: 1 with *out (kv_free it) and *len, 0 when
 * there is none, -1 with err (unreadable, longer than any valid file).
 * node_join_save: writes text[0..len) atomically, or removes the file (text
 * NULL). 0, or -1 with err. */
int node_join_load(char **out, size_t *len, char *err, size_t errlen);
int node_join_save(const char *text, size_t len, char *err, size_t errlen);
/* dir/node-left: node_left_mark writes it once this node left the cluster (KVD
 * LEAVE; persistent mode only; 0 or -1 with err); node_has_left: 1 when it is
 * there (the node then refuses to start in the cluster: its copy is stale). */
int node_left_mark(char *err, size_t errlen);
int node_has_left(void);
/* This run's generation (the cluster's gossip tells a restarted node by it): one
 * above the generation kept in dir/node-generation, and at least the Unix time in
 * seconds (so it still rises in cache mode, which writes nothing, or after the file
 * was lost), as Cassandra's. Persistent mode writes it back before returning. 0,
 * or -1 with err (unreadable or malformed file, or a failed write). */
int node_generation_next(uint64_t *gen, char *err, size_t errlen);
/* When this node last served (a cluster node in persistent mode), kept in
 * dir/node-alive (text: Unix ms), so that a node back after longer than
 * gc-grace-seconds knows it (cluster.h, cluster_config.long_absence).
 * node_alive_load: 1 with *ms, 0 when there is no file or it is unreadable (*ms 0:
 * unknown). node_alive_save: writes it (a temporary file, fsynced, renamed) in mode
 * persistent; 0, or -1 with err. */
int node_alive_load(uint64_t *ms);
int node_alive_save(uint64_t ms, char *err, size_t errlen);

#endif
