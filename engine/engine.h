/* engine/engine.h: the public API of kvd's LSM storage engine.
 *
 * The engine is a generic ordered byte store (like LevelDB): keys and values are
 * byte strings, keys are ordered by memcmp (shorter first on a common prefix). It
 * knows nothing of RESP, Redis types or the cluster, except that every entry may
 * carry three numbers (struct lsm_meta), the first two understood by compaction:
 *   - expire_at: Unix time in milliseconds after which the entry is gone (0 = never);
 *   - timestamp: the write timestamp, a 64-bit hybrid logical clock (48 bits of
 *     physical milliseconds, 16 logical bits), used for tombstone GC age and handed
 *     back to the caller for last-write-wins;
 *   - node: the 32-bit tag of the node that wrote the version (0 = unknown), stored
 *     and handed back unchanged (the caller's last-write-wins tie-break).
 * Tombstones carry all three too; readers that reconcile replicas can see them
 * (lsm_read_options.include_tombstones).
 * Everything else (types, envelopes, LWW decisions, internal key layout) belongs to
 * the keyspace layer above.
 *
 * THREADING
 *   - All functions on one lsm_db may be called from any number of threads at once.
 *   - Writes (lsm_put/lsm_delete/lsm_write) are serialised through one writer queue
 *     (LevelDB's model): the writer at the head of the queue becomes the leader,
 *     merges the batches queued behind it, appends them to the WAL with one write(2)
 *     and at most one fdatasync, applies them to the memtable and wakes the others.
 *   - Reads (lsm_get, iterators) never wait for a flush, a compaction or a WAL
 *     sync: they take references to the current memtables and version under a
 *     short mutex and then read lock-free.
 *   - Background threads: one for flushes and compactions, one for WAL syncs
 *     requested through lsm_sync_wal_async().
 *
 * DURABILITY AND THE GROUP-COMMIT SEAM
 *   Every write gets a sequence number. The WAL append happens before lsm_write
 *   returns; whether it is also fsynced depends on the flags:
 *     LSM_WRITE_SYNC    returns after an fdatasync covering the write (blocking);
 *     LSM_WRITE_NOSYNC  returns after write(2) only (survives a process crash, not
 *                       a power failure), with the write's sequence in *seq_out;
 *     LSM_WRITE_DEFAULT follows options.sync_mode.
 *   An event loop that must not block (Redis's `appendfsync always`) writes with
 *   LSM_WRITE_NOSYNC, parks each client's reply with the returned sequence, and
 *   calls lsm_sync_wal_async(db, seq) once per loop turn. The engine's sync thread
 *   fdatasyncs the WAL (one fsync covers everything written so far) and then makes
 *   lsm_sync_fd() readable (an eventfd). The loop watches that fd; when readable it
 *   calls lsm_durable_seq() and releases every reply whose sequence is <= it.
 *   lsm_sync_wal(db, seq) is the blocking form of the same thing.
 *
 * ERRORS
 *   Functions return enum lsm_status (engine/status.h): LSM_OK = 0, negative on
 *   error. lsm_errmsg() describes the last background or open error. A failed WAL
 *   write or fsync, or a failed flush/compaction write, is sticky: every later write
 *   returns LSM_IOERR with that message until the database is closed and reopened.
 */
#ifndef KVD_ENGINE_H
#define KVD_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/status.h" /* enum lsm_status, struct lsm_err */

struct lsm_db;
struct lsm_batch;
struct lsm_iter;
struct lsm_snapshot;

/* ---- options ------------------------------------------------------------------ */

/* Per-entry metadata: expire-at (Unix ms, 0 = never), write timestamp (HLC, 0 =
 * none) and the tag of the node that wrote the version (0 = unknown/none). Stored
 * with every value and tombstone (engine/FORMAT.md "Entry value"), returned by
 * lsm_get and lsm_iter_meta. */
struct lsm_meta {
    uint64_t expire_at;
    uint64_t timestamp;
    uint32_t node;
};

enum lsm_compaction_style {
    LSM_COMPACTION_LEVELED = 0,     /* LevelDB/RocksDB: L0 overlapping, L1+ 10x apart */
    LSM_COMPACTION_SIZE_TIERED = 1, /* Cassandra STCS: merge runs of similar size */
};

enum lsm_sync_mode {
    LSM_SYNC_NONE = 0,   /* write(2) only; lsm_sync_wal()/lsm_flush() make durable */
    LSM_SYNC_ALWAYS = 1, /* every write returns after an fdatasync (group commit) */
};

struct lsm_options {
    size_t memtable_size;          /* bytes per memtable before it is flushed */
    uint64_t memtable_max_entries; /* also flushed at this many entries (0: no limit):
                                  * a skiplist's insert cost grows with its entries,
                                  * not its bytes */
    size_t block_cache_size;       /* bytes of uncompressed blocks cached */
    int bloom_bits_per_key;        /* 0 disables bloom filters */
    size_t block_size;             /* target uncompressed data block size */
    enum lsm_compaction_style compaction_style;
    int l0_compaction_trigger; /* L0 files that start a compaction (4) */
    int l0_slowdown_trigger;   /* L0 files at which writes are delayed (20) */
    int l0_stop_trigger;       /* L0 files at which writes stop (36) */
    int level_size_multiplier; /* target size of L(n+1) / L(n) (10) */
    uint64_t l1_target_bytes;  /* target size of L1 (256 MiB) */
    uint64_t target_file_size; /* compaction output file size (64 MiB) */
    int stcs_min_threshold;    /* size-tiered: runs per bucket to compact (4) */
    int stcs_max_threshold;    /* size-tiered: most runs merged at once (32) */
    enum lsm_sync_mode sync_mode;
    uint64_t gc_grace_ms;       /* tombstones younger than this survive compaction */
    uint64_t gc_horizon_ms;     /* and those dated at or after this (UINT64_MAX, the
                                  * default: no horizon): see lsm_set_gc_horizon */
    int create_if_missing;      /* 1 (default): create an empty database */
    int error_if_exists;        /* 1: fail if the database exists */
    int paranoid_checks;        /* 1 (default): a corrupt WAL record fails open */
    int bg_nice;                /* Linux: nice value of the flush/compaction thread
                                  * (0); above 0 foreground threads get the CPU first */
    uint64_t (*clock_ms)(void); /* wall clock in Unix ms; NULL = CLOCK_REALTIME */
    /* Optional compaction filter, called on the background thread for each value
     * a compaction (not a flush) reads: nonzero drops it as if it had expired (it
     * becomes a tombstone without timestamp, itself dropped at the base level).
     * Must be thread-safe and fast; NULL = none. For callers' own invalidation
     * rules, e.g. "everything in this key range older than timestamp T". */
    int (*compaction_filter)(void *arg, const char *key, size_t klen,
                             const struct lsm_meta *meta);
    void *compaction_filter_arg;
};

/* Fills *o with the defaults (RocksDB's db_bench defaults where they apply). */
void lsm_options_init(struct lsm_options *o);

/* ---- open / close --------------------------------------------------------------- */

/* Opens (creating if allowed) the database in directory dir: reads CURRENT and
 * the MANIFEST, deletes orphan files, replays the WALs into a memtable and flushes
 * it. On success *db owns the database (close with lsm_close). On failure *db is
 * NULL and, if err is not NULL, it says what failed. */
int lsm_open(const char *dir, const struct lsm_options *opt, struct lsm_db **db,
             struct lsm_err *err);

/* Waits for background work to stop (it is not finished: a pending compaction is
 * abandoned, an immutable memtable stays in its WAL), syncs the WAL, frees
 * everything and sets *db to NULL. Snapshots and iterators must be released first. */
void lsm_close(struct lsm_db **db);

/* The message of the sticky background error if there is one, else of the last
 * read or manual compaction that failed; "" when there is none. Valid until the
 * next call on db. */
const char *lsm_errmsg(struct lsm_db *db);

/* The sticky background error (LSM_IOERR, LSM_NOSPACE, ...) or LSM_OK when writes
 * are still accepted. Any thread. */
int lsm_bg_error(struct lsm_db *db);

/* Deletes every file of the database in dir (which must not be open). */
int lsm_destroy(const char *dir);

/* ---- writes ----------------------------------------------------------------------
 * Limits: keys shorter than 256 MiB, values shorter than 4 GiB. */

enum lsm_write_flags {
    LSM_WRITE_DEFAULT = 0, /* follow options.sync_mode */
    LSM_WRITE_SYNC = 1,    /* fdatasync before returning */
    LSM_WRITE_NOSYNC = 2,  /* never fsync here; see lsm_sync_wal_async */
};

/* Physical milliseconds of an HLC timestamp. */
#define LSM_HLC_MS(ts) ((ts) >> 16)

/* Stores key -> value. meta may be NULL (no expiry, timestamp 0). When seq_out is
 * not NULL it receives the write's sequence number (see lsm_sync_wal). */
int lsm_put(struct lsm_db *db, const void *key, size_t klen, const void *val, size_t vlen,
            const struct lsm_meta *meta, int flags, uint64_t *seq_out);

/* Writes a tombstone for key. meta->timestamp (may be NULL: 0) dates it for GC:
 * compaction drops a tombstone only once LSM_HLC_MS(timestamp) + gc_grace_ms is in
 * the past and LSM_HLC_MS(timestamp) is below the GC horizon (at once for timestamp
 * 0) and no older data for the key can remain below it. meta->node is kept with it; meta->expire_at is stored too (the GC age is
 * then counted from max(expire_at, LSM_HLC_MS(timestamp))). */
int lsm_delete(struct lsm_db *db, const void *key, size_t klen,
               const struct lsm_meta *meta, int flags, uint64_t *seq_out);

/* A write batch: puts and deletes applied atomically (all or nothing, also across
 * a crash) and in order. Create/destroy; reuse with lsm_batch_clear. The batch
 * copies keys and values. Not thread-safe by itself. */
struct lsm_batch *lsm_batch_create(void);
void lsm_batch_destroy(struct lsm_batch **b);
void lsm_batch_clear(struct lsm_batch *b);
void lsm_batch_put(struct lsm_batch *b, const void *key, size_t klen, const void *val,
                   size_t vlen, const struct lsm_meta *meta);
void lsm_batch_delete(struct lsm_batch *b, const void *key, size_t klen,
                      const struct lsm_meta *meta);
uint32_t lsm_batch_count(const struct lsm_batch *b);
size_t lsm_batch_size(const struct lsm_batch *b); /* encoded bytes */

/* Applies b atomically. *seq_out (if not NULL) receives the sequence of the batch's
 * last entry. Blocks only to wait its turn in the write queue (behind the group
 * being written, possibly an fsync), for its own fsync when flags ask for one, and
 * while flushes or compactions are far behind (write stall, counted in stats). */
int lsm_write(struct lsm_db *db, struct lsm_batch *b, int flags, uint64_t *seq_out);

/* ---- durability seam (group commit without blocking an event loop) ----------------- */

/* Highest sequence known to be on stable storage. Lock-free; any thread. */
uint64_t lsm_durable_seq(struct lsm_db *db);

/* Blocks until every write with sequence <= upto is durable (fsyncing if needed).
 * upto = UINT64_MAX means "everything written so far". */
int lsm_sync_wal(struct lsm_db *db, uint64_t upto);

/* Asks the sync thread to make writes up to upto durable and returns at once
 * (upto is capped at the last sequence written, so UINT64_MAX means "everything
 * written so far": what `appendfsync everysec` asks once a second). When the
 * durable sequence advances the engine writes to lsm_sync_fd(). */
void lsm_sync_wal_async(struct lsm_db *db, uint64_t upto);

/* An eventfd (nonblocking) that becomes readable whenever lsm_durable_seq()
 * advances (whoever fsynced: the sync thread, a synced write, a WAL switch), when
 * an async request is already covered, and when a sync failed (then
 * lsm_sync_wal() returns the sticky error). The caller reads 8 bytes to reset it.
 * Owned by db: valid until lsm_close. */
int lsm_sync_fd(struct lsm_db *db);

/* ---- reads ------------------------------------------------------------------------ */

/* A value returned by lsm_get: a caller-owned growable buffer. Initialise with
 * {0} (or LSM_VALUE_INIT), reuse across calls (no allocation once large enough),
 * free with lsm_value_free. */
struct lsm_value {
    char *data;         /* value bytes, malloc'd, owned by this struct */
    size_t len;         /* value length (0 for a tombstone) */
    size_t cap;         /* allocated size of data */
    uint64_t expire_at; /* Unix ms, 0 = never */
    uint64_t timestamp; /* write timestamp (HLC), 0 if none was given */
    uint32_t node;      /* writer's node tag, 0 if none was given */
    int deleted;        /* set by every LSM_OK lsm_get: 1 = a tombstone (only with
                          * include_tombstones), 0 = a live value */
};
#define LSM_VALUE_INIT                                                                   \
    {                                                                                    \
        0                                                                                \
    }
void lsm_value_free(struct lsm_value *v);

struct lsm_read_options {
    const struct lsm_snapshot *snapshot; /* NULL = latest */
    uint64_t now_ms; /* entries with expire_at <= now_ms are hidden; 0 = clock */
    int fill_cache;  /* 1 (default): blocks read are added to the cache */
    /* 0 (default): tombstones and expired values are invisible (what clients see).
     * 1: for internal callers that reconcile replicas: a key whose newest visible
     * version is a tombstone, or a value expired at now_ms, is returned as deleted
     * (lsm_value.deleted = 1, lsm_iter_deleted() = 1) with no bytes and its meta
     * (a delete's timestamp and node; an expired value's expire_at, timestamp and
     * node, exactly what compaction later turns it into). Only the newest version
     * of a key is ever returned: an older value under a tombstone stays hidden. */
    int include_tombstones;
    /* Iterators only: exclusive upper bound on user keys (NULL = none). The iterator
     * becomes invalid at the first key >= upper_bound and reads no table or data
     * block that can only hold keys >= it. lsm_iter_create copies the bytes (the
     * caller's buffer may go right after). An empty bound (non-NULL, length 0) makes
     * every iteration empty. lsm_get ignores it. */
    const void *upper_bound;
    size_t upper_bound_len;
};
#define LSM_READ_OPTIONS_INIT                                                            \
    {                                                                                    \
        NULL, 0, 1, 0, NULL, 0                                                           \
    }

/* Looks key up. Returns LSM_OK and fills *out (out->deleted = 0), LSM_NOTFOUND
 * when the key is absent, deleted or expired, or an error (LSM_CORRUPT, LSM_IOERR).
 * With ro->include_tombstones, a deleted or expired key whose tombstone (or expired
 * value) is still stored returns LSM_OK with out->deleted = 1, out->len = 0 and its
 * meta; LSM_NOTFOUND then means that nothing at all is stored for the key (never
 * written, or its tombstone was dropped after gc_grace_ms). ro may be NULL. */
int lsm_get(struct lsm_db *db, const struct lsm_read_options *ro, const void *key,
            size_t klen, struct lsm_value *out);

/* ---- snapshots and iterators ---------------------------------------------------------- */

/* A consistent read view: reads through it see exactly the writes with sequence
 * <= its sequence. Compaction keeps the versions it needs. Release it before
 * lsm_close. */
const struct lsm_snapshot *lsm_snapshot_create(struct lsm_db *db);
void lsm_snapshot_release(struct lsm_db *db, const struct lsm_snapshot **s);
uint64_t lsm_snapshot_seq(const struct lsm_snapshot *s);

/* A forward iterator over live (not deleted, not expired) entries, as of ro's
 * snapshot (or of its creation); with ro->include_tombstones also over deleted ones
 * (the newest version of each key, lsm_iter_deleted() tells which); stopping before
 * ro->upper_bound when set. It pins memtables and files, so do not keep one
 * open forever. Destroy before lsm_close. Not thread-safe by itself. */
struct lsm_iter *lsm_iter_create(struct lsm_db *db, const struct lsm_read_options *ro);
void lsm_iter_destroy(struct lsm_iter **it);
void lsm_iter_seek_first(struct lsm_iter *it);
void lsm_iter_seek(struct lsm_iter *it, const void *key, size_t klen); /* first >= key */
void lsm_iter_next(struct lsm_iter *it);
int lsm_iter_valid(const struct lsm_iter *it);
/* Borrowed slices valid until the iterator moves or is destroyed. */
const char *lsm_iter_key(const struct lsm_iter *it, size_t *klen);
const char *lsm_iter_value(const struct lsm_iter *it, size_t *vlen);
struct lsm_meta lsm_iter_meta(const struct lsm_iter *it);
/* 1 when the current entry is a tombstone or an expired value (only with
 * include_tombstones; its value is then empty), 0 for a live value. */
int lsm_iter_deleted(const struct lsm_iter *it);
/* LSM_OK, or the error that stopped the iteration (it is then not valid). */
int lsm_iter_status(const struct lsm_iter *it);

/* ---- maintenance ----------------------------------------------------------------------- */

/* Flushes the memtable to an L0 table and waits until it is on disk. */
int lsm_flush(struct lsm_db *db);

/* Moves the GC horizon (Unix ms, the same scale as LSM_HLC_MS of a timestamp):
 * from now on compaction drops a tombstone only when its grace period is over AND
 * max(expire_at, LSM_HLC_MS(timestamp)) < horizon_ms. A caller that knows when
 * every copy of a deleted entry is gone elsewhere (a cluster's repair) sets it;
 * UINT64_MAX leaves gc_grace_ms alone in charge, 0 keeps every dated tombstone.
 * Takes effect at the next compaction step; any thread, lock-free. */
void lsm_set_gc_horizon(struct lsm_db *db, uint64_t horizon_ms);

/* A range of user keys [begin, end): begin NULL is the first key, end NULL no
 * upper bound. Borrowed. */
struct lsm_range {
    const void *begin;
    size_t blen;
    const void *end;
    size_t elen;
};

/* Installs a drop set (replacing any earlier one): from now on every compaction
 * removes each entry, value or tombstone, whose key lies in one of ranges[0..n)
 * and whose sequence is <= upto_seq (writes made after that sequence are kept),
 * as it removes what an overwrite hides: the entry becomes a tombstone without
 * timestamp (no grace: readers of include_tombstones see it as deleted at
 * version 0, older than any real write) which goes at once at the base level. No
 * tombstone is written through the WAL. Reads are NOT filtered: until a
 * compaction passed, lsm_get and iterators still return the entries (the caller
 * hides them if it must; lsm_compact_range over the ranges makes it final).
 * The ranges are copied; n 0 clears the set. Not kept across lsm_close: a caller
 * that must finish after a restart installs it again. Returns the set's
 * generation (1, 2, ... per database; 0 when cleared), which
 * lsm_drop_generation reports. Any thread. */
uint64_t lsm_set_drop_ranges(struct lsm_db *db, const struct lsm_range *ranges, size_t n,
                             uint64_t upto_seq);
/* The generation of the drop set installed (0: none). */
uint64_t lsm_drop_generation(struct lsm_db *db);
/* The sequence of the last write applied (what upto_seq usually is). */
uint64_t lsm_last_sequence(struct lsm_db *db);

/* Compacts every file overlapping [begin, end] (NULL = open end) down to the
 * last level (leveled) or into one run (size-tiered), dropping what compaction may
 * drop. Waits until done. */
int lsm_compact_range(struct lsm_db *db, const void *begin, size_t blen, const void *end,
                      size_t elen);

#define LSM_MAX_LEVELS 7

struct lsm_stats {
    uint64_t memtable_bytes; /* active + immutable memtable arena bytes */
    int immutable_memtables; /* 0 or 1 */
    int files_per_level[LSM_MAX_LEVELS];
    uint64_t bytes_per_level[LSM_MAX_LEVELS];
    uint64_t live_sst_bytes;           /* sum over live tables */
    uint64_t pending_compaction_bytes; /* estimated bytes above level targets */
    uint64_t block_cache_hits;
    uint64_t block_cache_misses;
    double block_cache_hit_rate; /* hits / (hits + misses), 0 if none */
    uint64_t bloom_useful;       /* lookups a bloom filter answered "absent" */
    uint64_t write_slowdowns;    /* writes delayed 1 ms by L0 pressure */
    uint64_t write_stalls;       /* times a writer had to wait for background */
    uint64_t write_stall_micros; /* total time writers spent stalled */
    uint64_t wal_syncs;          /* fdatasync calls on WAL files */
    uint64_t wal_bytes;          /* bytes appended to WALs */
    uint64_t user_bytes_written; /* key + value bytes given to put/delete */
    uint64_t flush_bytes;        /* bytes written by flushes */
    uint64_t compaction_bytes_read;
    uint64_t compaction_bytes_written;
    uint64_t flushes;
    uint64_t compactions;
    double write_amplification; /* (wal + flush + compaction bytes) / user bytes */
    double space_amplification; /* live_sst_bytes / sst bytes of the newest
                                        version of each key (estimated after full
                                        compactions; 1.0 when unknown) */
    uint64_t last_sequence;
    uint64_t durable_sequence;
};

/* Fills *st with a consistent-enough snapshot of the counters. */
void lsm_stats(struct lsm_db *db, struct lsm_stats *st);

#endif
