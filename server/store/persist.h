/* server/store/persist.h: persistent mode, the keyspace on the LSM engine (engine.h).
 * See server/store/PERSIST.md for the design; in short:
 *
 *   - The in-memory keyspace (ks.h) stays the working set: a cache of decoded
 *     entries in front of the engine, which is the source of truth. Every entry in
 *     the dict is clean (equal to what the engine holds once the pending batch is
 *     written), so dropping one from the dict never loses data.
 *   - Write-through: every coordinator write call (coord.c) adds the key's new
 *     envelope, or a tombstone, to a pending batch that is written to the engine
 *     once per loop turn (persist_before_sleep) and before any engine iteration.
 *   - Read-through: a dict miss asks the engine (persist_load) and caches the
 *     decoded entry. Keys deleted in the pending batch are remembered, so a miss
 *     never reads a stale version from the engine.
 *   - Durability: appendfsync always holds a client's replies until the WAL sync
 *     covering its writes (group commit through lsm_sync_wal_async); everysec
 *     syncs once a second; no never asks.
 *
 * Engine layout (on disk: never renumber):
 *   data key  := token:u64be db:u16be key        value := envelope (persist.c),
 *                                                meta: expire_at, version (hlc, node)
 *   field key := token:u64be (0x8000|db):u16be klen:u32be key field
 *                                                a field of a big hash: its value
 *   meta key  := 0xff{10} tag:u8 ...            (db 0xffff is never a database)
 *     tag 'h' db:u16be gen:u64be field  a big hash's field in files written
 *                                       before versions (moved at its next write)
 *     tag 'c'                   counts, clock, expiry watermark (see persist.c)
 *     tag 'f' db:u16be          flush marker: HLC timestamp (u64le)
 *     tag 'x' expire_at:u64be db:u16be key   expiry index entry: write ts (u64le)
 *
 * Threading: loop thread only, except the loader thread started by
 * persist_start() (it only opens the engine and counts).
 */
#ifndef KVD_PERSIST_H
#define KVD_PERSIST_H

#include <stddef.h>
#include <stdint.h>

#include "server/store/ks.h"

struct lsm_db;

enum persist_fsync { PERSIST_FSYNC_ALWAYS = 0, PERSIST_FSYNC_EVERYSEC = 1, PERSIST_FSYNC_NO = 2 };

/* Is the node in persistent mode? (Cheap: one compare.) */
static inline int persist_on(void) {
    return server.mode == MODE_PERSISTENT;
}

/* ---- lifecycle ---- */

/* Starts opening the engine in dir/data on a loader thread; server.loading is 1
 * until it is done (the loop finishes it). 0, or -1 with a log line. */
int persist_start(void);
/* Opens the engine synchronously (tests, DEBUG ENGINE-REOPEN). 0 or -1 with err. */
int persist_open_sync(const char *dir, char *err, size_t errlen);
/* Writes the pending batch, records the counts as clean, syncs and closes the
 * engine. Safe when nothing is open. */
void persist_close(void);
/* The engine, or NULL while loading / in cache mode. */
struct lsm_db *persist_engine(void);
/* The cluster's tombstone GC horizon (cluster.h cluster_gc_horizon): compaction
 * drops a tombstone only once it is past gc-grace-seconds and dated below this.
 * A cluster node opens the engine with 0 (keep all); a single node has none. */
void persist_set_gc_horizon(uint64_t horizon_ms);

/* ---- write-through (coord.c) ---- */

/* Stores e (in database db_id) as the key's new value. existed: the key was live
 * before; old_expire: its expire-at then (0 none). */
void persist_put(int db_id, const struct kv_entry *e, int existed, long long old_expire);
/* Fields of hash e (in db_id) changed in place: fields[0], fields[stride], ...,
 * n of them. A big hash (hashtable encoding) then writes only those field records
 * at the turn's end, not the whole hash. Call before persist_put. */
void persist_hash_fields(int db_id, const struct kv_entry *e, const struct kv_slice *fields,
                         size_t n, size_t stride);
/* old, a live entry of db_id, is about to be replaced by another value of the same
 * key: drops what it stores besides its envelope (a big hash's field records). */
void persist_replaced(int db_id, struct kv_entry *old);
/* Deletes a live key whose expire-at was old_expire: a tombstone carrying ver, the
 * delete's own version (newer than the value's: coord.c stamps it). */
void persist_del(int db_id, const char *key, size_t klen, long long old_expire,
                 struct kv_version ver);
/* A key found expired (lazily or by the active cycle): deletes it, counts it. The
 * tombstone carries ver, the expired value's own version, and old_expire
 * (PERSIST.md "Versions and tombstones"). */
void persist_expired(int db_id, const char *key, size_t klen, long long old_expire,
                     struct kv_version ver);
/* FLUSHDB (db_id) / FLUSHALL (-1): a flush marker, no tombstone per key. */
void persist_flush(int db_id);
/* A cluster flush at version ts (store_flush_below): the marker of db_id (-1:
 * all) is raised to ts when below it; what the engine holds at or above ts stays
 * visible, so the live counts are recounted (one scan of the engine). */
void persist_flush_at(int db_id, uint64_t ts);
struct store_ev;
/* The write-through, subscribed to the store's events (events.h) by store_init in
 * persistent mode: WRITTEN -> persist_hash_fields/persist_put, REPLACING ->
 * persist_replaced, DELETED -> persist_del (a replica's: persist_tombstone), EXPIRED ->
 * persist_expired, FLUSH_BEFORE -> persist_flush; a client's write holds its reply
 * (persist_client_wrote). */
void persist_on_event(const struct store_ev *ev, void *arg);
/* Notes that c issued a write in this loop turn: its output is held
 * (hooks.hold) until the batch is written, and under appendfsync always until the
 * sync that covers it; the running command's reply becomes -MISCONF if either
 * fails (hooks.fail). */
void persist_client_wrote(struct client *c);

/* Durability for a writer that is not a client (the cluster's own replica: a
 * write it applied is acknowledged to the coordinator once durable, like a peer's
 * KVD.PEER WRITE reply). Calls fn(arg, ok) once every write made so far is stored
 * (the pending batch written) and, with appendfsync always, covered by a WAL sync:
 * ok 1; ok 0 when it failed (the reply a client would get is -MISCONF). Runs from
 * the loop (before-sleep or the sync event), never inside this call; writers of a
 * turn share the batch and the fsync (group commit). Returns a handle for
 * persist_durable_cancel, or 0 when everything is durable already (fn never runs;
 * also when the engine is not open). */
uint64_t persist_when_durable(void (*fn)(void *arg, int ok), void *arg);
/* The caller is gone: fn of handle will not run (a handle already run: no-op). */
void persist_durable_cancel(uint64_t handle);

/* ---- the clients that wrote ----
 * The store knows a client only as the opaque pointer its events carry (the
 * writer); it never reads the client itself. What persistence keeps per writer is
 * a struct persist_writer, which the client layer (server/client/client.h) makes
 * the FIRST member of struct client, so persist reaches it from the pointer
 * (C11 6.7.2.1: a pointer to a struct, converted, points to its first member;
 * client.h asserts the offset). Holding, releasing and failing a writer's replies
 * belong to the client layer above: it registers them here at start-up
 * (client_attach_store, from server_subscribe_events) before any client writes. */
enum {
    PERSIST_WRITER_WROTE = 1u << 0, /* in the list of clients that wrote this turn */
    PERSIST_WRITER_HELD = 1u << 1,  /* in the list of clients waiting for a WAL sync */
};
struct persist_writer {
    uint32_t flags;             /* PERSIST_WRITER_* */
    uint64_t durable_wait;      /* engine sequence its output waits for */
};
struct persist_client_hooks {
    /* c's reply waits: its write is not yet stored (durable) */
    void (*hold)(struct client *c);
    /* what c waited for is true: its held output may go */
    void (*release)(struct client *c);
    /* it is not: every reply c's writes held becomes msg ("MISCONF ...") */
    void (*fail)(struct client *c, const char *msg);
};
/* Registers the hooks (copied). Call before any client writes in persistent mode. */
void persist_set_client_hooks(const struct persist_client_hooks *h);

/* ---- read-through ---- */

/* On a dict miss: the key's entry from the engine, inserted into db's dict as a
 * clean cached entry (possibly expired: the caller checks), or NULL. */
struct kv_entry *persist_load(struct kv_db *db, const char *key, size_t klen, uint64_t token);

/* ---- whole-keyspace views ---- */

size_t persist_db_size(int db_id);     /* exact live keys (see PERSIST.md) */
/* Runs the expiry index for keys due by now (bounded: a few ms), so a count read
 * after it includes no expired key (DBSIZE). */
void persist_expire_due(void);
size_t persist_db_expires(int db_id);  /* keys with a TTL */
/* SCAN over the engine by token cursor: fn gets temporary entries (key and type
 * only), valid until the next persist_* call. Returns the next position, a block
 * start (ks.h KS_SCAN_BLOCK_BITS), 0 at the end. */
uint64_t persist_scan(int db_id, uint64_t cursor, long count,
                      void (*fn)(struct kv_entry *e, void *arg), void *arg);
/* Every live key of db_id (KEYS): temporary entries valid during fn only. */
void persist_foreach(int db_id, void (*fn)(struct kv_entry *e, void *arg), void *arg);
/* A random live key of db_id as a temporary entry, or NULL. */
struct kv_entry *persist_random(int db_id);

/* ---- records for the store (server/store/store.c; see store.h) ---- */

/* Envelope flag: a big hash whose fields are records of their own (not a
 * self-contained value: store_apply refuses it). */
#define PERSIST_ENV_FIELDS 0x80
/* For a key that is not live (not in the dict, persist_load found nothing): the
 * tombstone the engine holds for it, or the database's flush marker (version
 * {marker, 0}) when the engine holds nothing newer. 1 found (*ver, *expire_at: an
 * expiry's expire-at, else 0), 0 nothing, -1 engine error. Writes the pending
 * batch first when it deletes this key. */
int persist_read_deleted(int db_id, const char *key, size_t klen, uint64_t token,
                         struct kv_version *ver, long long *expire_at);
/* Stores a tombstone with ver (and tomb_expire, for an expiry) for key. existed: the
 * key was live (its expire-at then old_expire): it is counted out, its expiry
 * index entry and big-hash fields dropped. The caller removes it from the dict. */
void persist_tombstone(int db_id, const char *key, size_t klen, int existed,
                       long long old_expire, long long tomb_expire, struct kv_version ver);

/* One record of a range: key bytes and val are valid until the next call. */
struct persist_rec {
    int db;
    uint64_t token;
    const char *key;
    size_t klen;
    struct kv_version ver;
    int deleted;              /* a tombstone (or a value expired by now) */
    long long expire_at;
    const char *val;          /* self-contained envelope; NULL for a tombstone */
    size_t vlen;
};
/* Every stored record with token in [start, end) (end 0: to the end of the ring),
 * all databases, in (token, db, key) order, tombstones included, as of a snapshot
 * taken now (the pending batch is written first). NULL without an engine. */
struct persist_iter *persist_iter_range(uint64_t start, uint64_t end);
/* 1 a record in *out, 0 the end, -1 an engine error (logged). */
int persist_iter_next(struct persist_iter *pi, struct persist_rec *out);
void persist_iter_destroy(struct persist_iter **pi);

/* ---- the loop ---- */

/* Before-sleep: writes the pending batch, asks for the WAL sync (always). */
void persist_before_sleep(void);
/* Cron: everysec syncs, active expiry over the expiry index, stats. */
void persist_cron(void);
/* call() after each top-level command: a large turn is written in parts. (A
 * client's output waits under the hold hook until its writes are stored, and
 * under appendfsync always durable; see client.c.) */
void persist_after_call(void);
/* DEBUG ENGINE-FAULT: while a fault is armed, no automatic reopen. */
void persist_set_fault_armed(int on);
/* c is being freed. */
void persist_client_gone(struct client *c);
/* Drops clean cached entries until the dict is under its share of memory
 * (persistent mode's eviction: never data). */
void persist_evict_prepare(void);

/* ---- errors, INFO, admin ---- */

/* The reason writes are refused (sticky engine error), or NULL when they are not. */
const char *persist_write_error(void);
/* Appends INFO persistence / engine fields. */
struct persist_info {
    int loading;
    long long loading_start_ms, loading_eta_ms;
    long long changes_since_save;
    long long last_save_time;
    int last_write_ok, last_bgrewrite_ok, bgsave_in_progress, bgrewrite_in_progress;
    long long wal_syncs, held_clients;
};
void persist_info(struct persist_info *out);
/* Appends "# Engine" lines to buf (INFO engine). Returns bytes written. */
size_t persist_info_engine(char *buf, size_t cap);
/* SAVE: flush the memtable now (blocking). 0 or -1 with *err. */
int persist_save(const char **err);
/* BGSAVE / BGREWRITEAOF: start a memtable flush / a full compaction in the
 * background. 0 started, 1 scheduled after the other one, -1 already running. */
int persist_bgsave(void);
int persist_bgrewrite(void);
/* DEBUG ENGINE-REOPEN: close and reopen (recovery after a fault). */
int persist_reopen(char *err, size_t errlen);

/* ---- the envelope, for tests ---- */

/* Encodes e's value (type, encoding, payload) into a new buffer *out of *len
 * bytes (free with kv_free). */
void persist_encode(const struct kv_entry *e, char **out, size_t *len);
/* Decodes an envelope into a detached entry for key, or NULL when malformed. */
struct kv_entry *persist_decode(const char *key, size_t klen, const char *v, size_t vlen,
                                long long expire_at);

#endif
