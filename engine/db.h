/* engine/db.h: the DB object's private state, shared by engine/db.c (open, write
 * path, reads, flush, background threads) and engine/compaction.c. Not part of the
 * public API (that is engine/engine.h).
 *
 * Locking: one mutex, db->mu, guards the fields marked (mu). It is held only for
 * short critical sections: grabbing references, queueing writers, swapping
 * memtables and versions. No I/O happens under it except the rare WAL switch.
 */
#ifndef KVD_ENGINE_DB_H
#define KVD_ENGINE_DB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/cache.h"
#include "engine/engine.h"
#include "engine/env.h"
#include "engine/memtable.h"
#include "engine/version.h"
#include "engine/wal.h"

/* Write batch rep := seq:u64le count:u32le record*
 * record := kind:u8 klen:varint32 key vlen:varint32 entry_value
 * This is also the payload of every WAL record (engine/README.md "WAL records"). */
#define BATCH_HEADER 12

struct lsm_batch {
    struct lsm_buf rep;  /* header + records */
    uint32_t count;      /* records */
    uint64_t user_bytes; /* key + value bytes, for write amplification */
    bool borrowed;       /* rep.p is not ours to free (lsm_put's stack) */
    bool too_big;        /* a key or value past the limits: lsm_write refuses */
};

struct lsm_snapshot {
    uint64_t seq;
    struct lsm_snapshot *prev, *next; /* the DB's list (mu) */
};

struct writer; /* a thread waiting in the write queue (db.c) */
struct manual_compaction;

struct db_counters {
    atomic_uint_fast64_t bloom_useful;
    atomic_uint_fast64_t write_slowdowns;
    atomic_uint_fast64_t write_stalls;
    atomic_uint_fast64_t write_stall_micros;
    atomic_uint_fast64_t wal_syncs;
    atomic_uint_fast64_t wal_bytes;
    atomic_uint_fast64_t user_bytes;
    atomic_uint_fast64_t flush_bytes;
    atomic_uint_fast64_t compaction_read;
    atomic_uint_fast64_t compaction_written;
    atomic_uint_fast64_t flushes;
    atomic_uint_fast64_t compactions;
};

struct lsm_db {
    char *dir;
    struct lsm_options opt;
    struct env_lock *lock; /* LOCK file */
    struct block_cache *cache;
    struct arena_pool *pool; /* memtable chunks, reused */

    pthread_mutex_t mu;
    pthread_cond_t bg_work_cv;      /* wakes the background thread */
    pthread_cond_t bg_done_cv;      /* background work finished a step */
    struct version_set vs;          /* current version swapped under mu */
    struct memtable *mem;           /* (mu) active memtable */
    struct memtable *imm;           /* (mu) being flushed, or NULL */
    uint64_t imm_wal_number;        /* (mu) the WAL segment holding imm's writes */
    atomic_bool has_imm;            /* imm != NULL, read without mu */
    struct wal_writer *wal;         /* (mu) current WAL segment */
    struct wal_writer *retired_wal; /* (mu) the segment before it, until the sync
                                      * thread has synced and closed it */
    uint64_t retired_upto;          /* (mu) the last sequence it holds */
    struct wal_writer *next_wal;    /* (mu) a segment the sync thread created ahead,
                                      * so a roll does not create one on the writer */
    uint64_t next_wal_number;       /* (mu) its file number */
    bool next_wal_tried;            /* (mu) the sync thread tried since the last roll */
    uint64_t wal_number;            /* (mu) its file number */
    atomic_uint_fast64_t last_seq;  /* newest sequence visible to readers */

    struct writer *wq_head, *wq_tail; /* (mu) write queue; the head leads */
    struct lsm_buf group;             /* leader's merged batches (leader only) */

    struct lsm_snapshot snapshots; /* (mu) list head; empty: next == &snapshots */

    pthread_t bg_thread;
    bool bg_started;
    atomic_bool shutting_down;
    int bg_error;                     /* (mu) sticky error, LSM_OK when none */
    struct lsm_err bg_err;            /* (mu) its message */
    struct lsm_err last_err;          /* (mu) what lsm_errmsg shows when no bg_error */
    struct manual_compaction *manual; /* (mu) pending manual compaction */
    bool bg_compacting;               /* (mu) the background thread is mid-job */

    pthread_t sync_thread;
    bool sync_started;
    pthread_cond_t sync_cv;      /* wakes the sync thread */
    pthread_cond_t sync_idle_cv; /* the sync thread finished an fsync */
    uint64_t sync_requested;     /* (mu) highest sequence asked for */
    bool syncing;                /* (mu) the sync thread is inside fdatasync */
    int sync_efd;                /* eventfd signalled when durable_seq moves */
    atomic_uint_fast64_t durable_seq;

    struct db_counters st;
    atomic_uint_fast64_t gc_horizon_ms; /* lsm_set_gc_horizon; starts at opt's */
    struct dropset *drop;               /* (mu) lsm_set_drop_ranges; NULL none */
    uint64_t drop_generations;          /* (mu) drop sets installed so far */
};

/* Flushes db->imm to an L0 table if there is one; called by the background thread
 * (also from inside a long compaction so that writers do not stall). mu not held. */
int db_flush_imm(struct lsm_db *db);

/* Oldest sequence any snapshot (or the present) can read. mu held. */
uint64_t db_smallest_snapshot(const struct lsm_db *db);

/* Wall clock in Unix ms (opt.clock_ms or CLOCK_REALTIME). */
uint64_t db_now_ms(const struct lsm_db *db);

/* Allocates a file number. mu held. */
static inline uint64_t db_new_file_number(struct lsm_db *db)
{
    return db->vs.next_file++;
}

#endif
