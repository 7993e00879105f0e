/* engine/db.c: the DB: open and recovery, the write path with group commit, point
 * reads, snapshots and iterators, memtable flushes, the background and WAL-sync
 * threads, and stats. Formats live below (engine/dbformat.h, wal.h, sst.h); which
 * tables exist lives in engine/version.c; compaction policy in engine/compaction.c.
 *
 * HOW THE WRITE PATH WORKS (LevelDB's writer queue)
 * Each lsm_write() queues a `struct writer` under db->mu and waits until it is at
 * the head of the queue or someone finished it. The head is the leader: it makes
 * room (switching to a new memtable and WAL segment when the memtable is full,
 * waiting when flushes/compactions are behind), takes the batches queued behind it
 * (up to ~1 MiB, never putting a sync write into a no-sync group), gives them
 * consecutive sequence numbers, and then, WITHOUT the mutex, appends them to the
 * WAL as one record with one write(2), fdatasyncs once if any of them asked for
 * it, and inserts them into the memtable (the only memtable writer). It then
 * publishes the new last sequence, marks the group done and wakes the next head.
 * Example: writers A (sync), B, C arrive while an fsync is under way; A leads the
 * next group, takes B and C, and all three are durable after one fdatasync.
 */
#include "engine/db.h"
#include "engine/dropset.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine/bloom.h"
#include "engine/compaction.h"
#include "engine/iterator.h"

#define WAL_PREALLOC (4ull << 20)
#define GROUP_MAX_BYTES (1u << 20)
#define MAX_KEY_LEN (1ull << 28)           /* memtable nodes keep 28 bits of length */
#define MAX_VALUE_LEN (UINT32_MAX - 64ull) /* and 32 bits of value length */

struct writer {
    struct lsm_batch *batch; /* NULL: only make room (lsm_flush) */
    bool sync;
    bool done;
    int status;
    uint64_t seq; /* last sequence of its batch, once done */
    pthread_cond_t cv;
    struct writer *next;
};

struct manual_compaction {
    const char *begin, *end;
    size_t blen, elen;
    bool done;
    int status;
    struct lsm_err err;
};

/* ---- small helpers ---------------------------------------------------------------------- */

uint64_t db_now_ms(const struct lsm_db *db)
{
    if (db->opt.clock_ms != NULL) {
        return db->opt.clock_ms();
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void lsm_set_gc_horizon(struct lsm_db *db, uint64_t horizon_ms)
{
    atomic_store_explicit(&db->gc_horizon_ms, horizon_ms, memory_order_relaxed);
}

uint64_t lsm_set_drop_ranges(struct lsm_db *db, const struct lsm_range *ranges, size_t n,
                             uint64_t upto_seq)
{
    pthread_mutex_lock(&db->mu);
    uint64_t gen = ++db->drop_generations;
    struct dropset *d = dropset_create(ranges, n, upto_seq, gen);
    struct dropset *old = db->drop;
    db->drop = d;
    pthread_mutex_unlock(&db->mu);
    dropset_unref(old); /* a running compaction holds its own reference */
    return d ? gen : 0;
}

uint64_t lsm_drop_generation(struct lsm_db *db)
{
    pthread_mutex_lock(&db->mu);
    uint64_t g = dropset_generation(db->drop);
    pthread_mutex_unlock(&db->mu);
    return g;
}

uint64_t lsm_last_sequence(struct lsm_db *db)
{
    return atomic_load(&db->last_seq);
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t db_smallest_snapshot(const struct lsm_db *db)
{
    if (db->snapshots.next != &db->snapshots) {
        return db->snapshots.next->seq;
    }
    return atomic_load(&((struct lsm_db *)db)->last_seq);
}

/* Records a sticky background error (first one wins) and wakes everyone. mu held. */
static void db_set_bg_error(struct lsm_db *db, int rc, const struct lsm_err *err)
{
    if (db->bg_error == LSM_OK && rc != LSM_OK) {
        db->bg_error = rc;
        if (err != NULL && err->msg[0] != '\0') {
            db->bg_err = *err;
        } else {
            lsm_err_set(&db->bg_err, rc, "background error %s", lsm_status_name(rc));
        }
        db->bg_err.code = rc;
    }
    pthread_cond_broadcast(&db->bg_done_cv);
    pthread_cond_broadcast(&db->bg_work_cv);
}

/* Raises the durable sequence (mu held) and, when it moved, makes lsm_sync_fd()
 * readable, whoever made the fsync: the sync thread, a synced write, a WAL switch. */
static void signal_sync_fd(struct lsm_db *db)
{
    uint64_t one = 1;
    ssize_t wr = write(db->sync_efd, &one, sizeof(one));
    (void)wr; /* EAGAIN: the counter is already non-zero, which is all we want */
}

static void advance_durable(struct lsm_db *db, uint64_t seq)
{
    if (seq > atomic_load(&db->durable_seq)) {
        atomic_store(&db->durable_seq, seq);
        signal_sync_fd(db);
    }
}

static int refuse_write(struct lsm_db *db)
{
    /* a sticky error reads the same every time: the first failure */
    return db->bg_error == LSM_NOSPACE ? LSM_NOSPACE : LSM_IOERR;
}

void lsm_options_init(struct lsm_options *o)
{
    memset(o, 0, sizeof(*o));
    o->memtable_size = 64u << 20;
    o->block_cache_size = 8u << 20;
    o->bloom_bits_per_key = 10;
    o->block_size = 4096;
    o->compaction_style = LSM_COMPACTION_LEVELED;
    o->l0_compaction_trigger = 4;
    o->l0_slowdown_trigger = 20;
    o->l0_stop_trigger = 36;
    o->level_size_multiplier = 10;
    o->l1_target_bytes = 256ull << 20;
    o->target_file_size = 64ull << 20;
    o->stcs_min_threshold = 4;
    o->stcs_max_threshold = 32;
    o->sync_mode = LSM_SYNC_NONE;
    o->gc_grace_ms = 10ull * 24 * 3600 * 1000;
    o->gc_horizon_ms = UINT64_MAX;
    o->create_if_missing = 1;
    o->paranoid_checks = 1;
}

/* ---- write batches ------------------------------------------------------------------------ */

static void batch_init_rep(struct lsm_batch *b)
{
    lsm_buf_clear(&b->rep);
    lsm_buf_reserve(&b->rep, BATCH_HEADER);
    memset(b->rep.p, 0, BATCH_HEADER);
    b->rep.len = BATCH_HEADER;
    b->count = 0;
    b->user_bytes = 0;
    b->too_big = false;
}

struct lsm_batch *lsm_batch_create(void)
{
    struct lsm_batch *b = lsm_calloc(1, sizeof(*b));
    batch_init_rep(b);
    return b;
}

void lsm_batch_destroy(struct lsm_batch **b)
{
    if (*b != NULL) {
        lsm_buf_free(&(*b)->rep);
        lsm_free(*b);
        *b = NULL;
    }
}

void lsm_batch_clear(struct lsm_batch *b)
{
    batch_init_rep(b);
}

static void batch_add(struct lsm_batch *b, unsigned kind, const void *key, size_t klen,
                      const void *val, size_t vlen, const struct lsm_meta *meta)
{
    uint64_t exp = meta ? meta->expire_at : 0, ts = meta ? meta->timestamp : 0;
    uint32_t node = meta ? meta->node : 0;
    size_t evlen = entry_encoded_len(exp, ts, node, vlen);
    if (klen >= MAX_KEY_LEN || evlen >= MAX_VALUE_LEN) {
        b->too_big = true; /* the memtable's node header could not hold it */
        return;
    }
    lsm_buf_reserve(&b->rep, 1 + 2 * VARINT32_MAX_LEN + klen + evlen);
    char *p = b->rep.p + b->rep.len;
    *p++ = (char)kind;
    p = enc_varint32(p, (uint32_t)klen);
    memcpy(p, key, klen);
    p += klen;
    p = enc_varint32(p, (uint32_t)evlen);
    p += entry_encode_header(p, exp, ts, node);
    if (vlen > 0) {
        memcpy(p, val, vlen);
        p += vlen;
    }
    b->rep.len = (size_t)(p - b->rep.p);
    b->count++;
    b->user_bytes += klen + vlen;
}

void lsm_batch_put(struct lsm_batch *b, const void *key, size_t klen, const void *val,
                   size_t vlen, const struct lsm_meta *meta)
{
    batch_add(b, LSM_KIND_VALUE, key, klen, val, vlen, meta);
}

void lsm_batch_delete(struct lsm_batch *b, const void *key, size_t klen,
                      const struct lsm_meta *meta)
{
    batch_add(b, LSM_KIND_DELETE, key, klen, NULL, 0, meta);
}

uint32_t lsm_batch_count(const struct lsm_batch *b)
{
    return b->count;
}

size_t lsm_batch_size(const struct lsm_batch *b)
{
    return b->rep.len;
}

/* Applies a batch rep (header + records) to mt, starting at sequence seq.
 * LSM_CORRUPT when the records do not parse (only possible from a damaged WAL). */
static int batch_apply(const char *rep, size_t len, struct memtable *mt, uint64_t *count)
{
    if (len < BATCH_HEADER) {
        return LSM_CORRUPT;
    }
    uint64_t seq = dec_fixed64(rep);
    uint32_t n = dec_fixed32(rep + 8);
    const char *p = rep + BATCH_HEADER, *limit = rep + len;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t klen, vlen;
        if (p >= limit) {
            return LSM_CORRUPT;
        }
        unsigned kind = (unsigned char)*p++;
        p = dec_varint32(p, limit, &klen);
        if (p == NULL || (size_t)(limit - p) < klen ||
            (kind != LSM_KIND_VALUE && kind != LSM_KIND_DELETE)) {
            return LSM_CORRUPT;
        }
        const char *key = p;
        p += klen;
        p = dec_varint32(p, limit, &vlen);
        if (p == NULL || (size_t)(limit - p) < vlen) {
            return LSM_CORRUPT;
        }
        memtable_add(mt, seq + i, (int)kind, key, klen, p, vlen);
        p += vlen;
    }
    if (p != limit) {
        return LSM_CORRUPT;
    }
    *count = n;
    return LSM_OK;
}

/* ---- WAL segments --------------------------------------------------------------------------- */

static int wal_open_new(struct lsm_db *db, uint64_t number, struct wal_writer **w,
                        struct lsm_err *err)
{
    char path[PATH_MAX];
    db_file_name(path, sizeof(path), db->dir, number, "log");
    struct wal_writer_options wo = {.log_number = number, .prealloc_bytes = WAL_PREALLOC};
    int rc = wal_writer_create(path, &wo, w, err);
    if (rc == LSM_OK) {
        /* the new segment must survive a crash before the MANIFEST points past the
         * old one, and its directory entry must too */
        rc = wal_writer_sync(*w, err);
        if (rc == LSM_OK) {
            rc = env_sync_dir(db->dir, err);
        }
        if (rc != LSM_OK) {
            wal_writer_close(w, false, NULL);
        }
    }
    return rc;
}

/* ---- make room: memtable switch and write stalls --------------------------------------------- */

static void wait_bg(struct lsm_db *db)
{
    uint64_t t0 = mono_us();
    atomic_fetch_add(&db->st.write_stalls, 1);
    pthread_cond_wait(&db->bg_done_cv, &db->mu);
    atomic_fetch_add(&db->st.write_stall_micros, mono_us() - t0);
}

/* Syncs and closes the retired WAL segment, then marks its writes durable. mu held
 * (released during the fsync); syncing must be false. */
static int close_retired(struct lsm_db *db)
{
    struct wal_writer *old = db->retired_wal;
    uint64_t upto = db->retired_upto;
    db->syncing = true;
    pthread_mutex_unlock(&db->mu);
    struct lsm_err err;
    int rc = wal_writer_close(&old, true, &err);
    atomic_fetch_add(&db->st.wal_syncs, 1);
    pthread_mutex_lock(&db->mu);
    db->retired_wal = NULL;
    db->syncing = false;
    pthread_cond_broadcast(&db->sync_idle_cv);
    if (rc != LSM_OK) {
        db_set_bg_error(db, rc, &err);
        signal_sync_fd(db);
        return refuse_write(db);
    }
    advance_durable(db, upto);
    return LSM_OK;
}

/* Closes and removes an unused (empty) WAL segment. */
static void discard_wal(struct lsm_db *db, struct wal_writer **w, uint64_t number)
{
    char path[PATH_MAX];
    db_file_name(path, sizeof(path), db->dir, number, "log");
    wal_writer_close(w, false, NULL);
    env_unlink(path, NULL);
}

/* The segment the sync thread created ahead, when it can follow the current one
 * (its number must be higher: recovery replays segments in number order); NULL
 * otherwise. mu held. */
static struct wal_writer *take_next_wal(struct lsm_db *db, uint64_t *number)
{
    struct wal_writer *w = db->next_wal;
    if (w == NULL) {
        return NULL;
    }
    db->next_wal = NULL;
    if (db->next_wal_number > db->wal_number) {
        *number = db->next_wal_number;
        return w;
    }
    discard_wal(db, &w, db->next_wal_number);
    return NULL;
}

/* Sync thread, mu held (released meanwhile): creates the segment the next roll
 * will use. A failure is the engine's sticky error, as the roll's would be. */
static void prepare_next_wal(struct lsm_db *db)
{
    db->next_wal_tried = true;
    uint64_t number = db_new_file_number(db);
    pthread_mutex_unlock(&db->mu);
    struct wal_writer *w;
    struct lsm_err err;
    int rc = wal_open_new(db, number, &w, &err);
    pthread_mutex_lock(&db->mu);
    if (rc != LSM_OK) {
        db_set_bg_error(db, rc, &err); /* a failed write or fsync: sticky, as anywhere */
        signal_sync_fd(db);
        return;
    }
    if (db->next_wal == NULL && number > db->wal_number) {
        db->next_wal = w;
        db->next_wal_number = number;
        return;
    }
    discard_wal(db, &w, number);
}

/* Has mt reached memtable_size bytes or memtable_max_entries entries? */
static bool memtable_full(const struct lsm_db *db, const struct memtable *mt)
{
    return memtable_bytes(mt) >= db->opt.memtable_size ||
           (db->opt.memtable_max_entries > 0 &&
            memtable_count(mt) >= db->opt.memtable_max_entries);
}

/* Called by the leader with mu held. force: switch even if not full (lsm_flush). */
static int make_room(struct lsm_db *db, bool force)
{
    bool allow_delay = !force;
    for (;;) {
        int l0 = db->vs.current->nfiles[0];
        if (db->bg_error != LSM_OK) {
            return refuse_write(db);
        }
        if (allow_delay && db->opt.l0_slowdown_trigger > 0 &&
            l0 >= db->opt.l0_slowdown_trigger) {
            /* delay each write a little rather than stall one for seconds */
            pthread_mutex_unlock(&db->mu);
            usleep(1000);
            pthread_mutex_lock(&db->mu);
            atomic_fetch_add(&db->st.write_slowdowns, 1);
            allow_delay = false;
        } else if (!force && !memtable_full(db, db->mem)) {
            return LSM_OK;
        } else if (force && memtable_count(db->mem) == 0) {
            return LSM_OK;
        } else if (db->imm != NULL) {
            wait_bg(db); /* the previous memtable is still being flushed */
        } else if (db->retired_wal != NULL) {
            /* the segment before the current one is still being synced */
            pthread_cond_signal(&db->sync_cv);
            pthread_cond_wait(&db->sync_idle_cv, &db->mu);
        } else if (db->opt.l0_stop_trigger > 0 && l0 >= db->opt.l0_stop_trigger) {
            wait_bg(db);
        } else {
            uint64_t number;
            struct wal_writer *w = take_next_wal(db, &number);
            struct lsm_err err;
            int rc;
            if (w == NULL) {
                number = db_new_file_number(db);
                rc = wal_open_new(db, number, &w, &err);
                if (rc != LSM_OK) {
                    db_set_bg_error(db, rc, &err);
                    return refuse_write(db);
                }
            }
            while (db->syncing) {
                pthread_cond_wait(&db->sync_idle_cv, &db->mu);
            }
            struct wal_writer *old = db->wal;
            uint64_t upto = atomic_load(&db->last_seq);
            db->imm_wal_number = db->wal_number;
            db->wal = w;
            db->wal_number = number;
            db->imm = db->mem;
            atomic_store(&db->has_imm, true);
            db->mem = memtable_create(db->pool);
            pthread_cond_broadcast(&db->bg_work_cv);
            /* The old segment is synced and closed by the sync thread (an fsync of
             * up to a memtable of WAL takes tens of ms: not on the writer). Until
             * then durable_seq stays below upto, and the next roll waits. */
            db->retired_wal = old;
            db->retired_upto = upto;
            db->next_wal_tried = false; /* and the segment after this one, ahead */
            if (db->sync_started) {
                pthread_cond_signal(&db->sync_cv);
            } else {
                rc = close_retired(db);
                if (rc != LSM_OK) {
                    return rc;
                }
            }
            force = false;
        }
    }
}

/* ---- the write queue -------------------------------------------------------------------------- */

/* Builds the group led by the head writer; returns the last writer in it and the
 * rep to write (the head's own batch when alone). mu held. */
static struct writer *build_group(struct lsm_db *db, const char **rep, size_t *len,
                                  uint32_t *count, uint64_t *user_bytes)
{
    struct writer *first = db->wq_head, *last = first;
    struct lsm_batch *b = first->batch;
    size_t size = b->rep.len;
    size_t max = size <= (128u << 10) ? size + (128u << 10) : GROUP_MAX_BYTES;
    *count = b->count;
    *user_bytes = b->user_bytes;
    bool merged = false;
    for (struct writer *w = first->next; w != NULL; w = w->next) {
        if (w->batch == NULL || (w->sync && !first->sync)) {
            break;
        }
        size_t add = w->batch->rep.len - BATCH_HEADER;
        if (size + add > max) {
            break;
        }
        if (!merged) {
            lsm_buf_clear(&db->group);
            lsm_buf_append(&db->group, b->rep.p, b->rep.len);
            merged = true;
        }
        lsm_buf_append(&db->group, w->batch->rep.p + BATCH_HEADER, add);
        size += add;
        *count += w->batch->count;
        *user_bytes += w->batch->user_bytes;
        last = w;
    }
    if (merged) {
        *rep = db->group.p;
        *len = db->group.len;
    } else {
        *rep = b->rep.p;
        *len = b->rep.len;
    }
    return last;
}

static int write_internal(struct lsm_db *db, struct lsm_batch *b, bool sync,
                          uint64_t *seq_out)
{
    struct writer w = {.batch = b, .sync = sync};
    pthread_cond_init(&w.cv, NULL);
    pthread_mutex_lock(&db->mu);
    if (db->wq_tail != NULL) {
        db->wq_tail->next = &w;
    } else {
        db->wq_head = &w;
    }
    db->wq_tail = &w;
    while (!w.done && db->wq_head != &w) {
        pthread_cond_wait(&w.cv, &db->mu);
    }
    if (w.done) {
        pthread_mutex_unlock(&db->mu);
        pthread_cond_destroy(&w.cv);
        if (seq_out != NULL) {
            *seq_out = w.seq;
        }
        return w.status;
    }
    int rc = make_room(db, b == NULL);
    if (rc == LSM_OK && sync && db->retired_wal != NULL) {
        while (db->syncing) {
            pthread_cond_wait(&db->sync_idle_cv, &db->mu);
        }
        if (db->retired_wal != NULL) {
            rc = close_retired(db); /* durable_seq may pass upto only after it */
        }
    }
    struct writer *last = &w;
    uint64_t seq = atomic_load(&db->last_seq);
    uint64_t first_seq_of_group = seq + 1;
    if (rc == LSM_OK && b != NULL && b->count > 0) {
        const char *rep;
        size_t len;
        uint32_t count;
        uint64_t user_bytes;
        last = build_group(db, &rep, &len, &count, &user_bytes);
        uint64_t first_seq = seq + 1;
        enc_fixed64((char *)rep, first_seq);
        enc_fixed32((char *)rep + 8, count);
        struct wal_writer *wal = db->wal;
        struct memtable *mem = db->mem;
        pthread_mutex_unlock(&db->mu);

        struct lsm_err err;
        wal_writer_add(wal, rep, len);
        rc = wal_writer_flush(wal, &err);
        if (rc == LSM_OK && sync) {
            rc = wal_writer_sync(wal, &err);
            atomic_fetch_add(&db->st.wal_syncs, 1);
        }
        if (rc == LSM_OK) {
            uint64_t n;
            batch_apply(rep, len, mem, &n); /* our own encoding: parses */
            seq += count;
        }
        atomic_fetch_add(&db->st.wal_bytes, len);
        atomic_fetch_add(&db->st.user_bytes, user_bytes);

        pthread_mutex_lock(&db->mu);
        if (rc != LSM_OK) {
            db_set_bg_error(db, rc, &err);
            rc = refuse_write(db);
        } else {
            atomic_store(&db->last_seq, seq);
            if (sync) {
                advance_durable(db, seq);
            }
        }
    } else if (rc == LSM_OK && b != NULL) {
        last = &w; /* an empty batch */
    }
    /* finish every writer of the group (each learns its own last sequence), wake
     * the next leader */
    uint64_t own = first_seq_of_group - 1;
    for (;;) {
        struct writer *x = db->wq_head;
        db->wq_head = x->next;
        if (db->wq_head == NULL) {
            db->wq_tail = NULL;
        }
        own += x->batch != NULL && rc == LSM_OK ? x->batch->count : 0;
        x->seq = rc == LSM_OK ? own : seq;
        if (x != &w) {
            x->status = rc;
            x->done = true;
            pthread_cond_signal(&x->cv);
        }
        if (x == last) {
            break;
        }
    }
    if (db->wq_head != NULL) {
        pthread_cond_signal(&db->wq_head->cv);
    }
    pthread_mutex_unlock(&db->mu);
    pthread_cond_destroy(&w.cv);
    if (seq_out != NULL) {
        *seq_out = w.seq;
    }
    return rc;
}

static bool want_sync(const struct lsm_db *db, int flags)
{
    if (flags & LSM_WRITE_SYNC) {
        return true;
    }
    if (flags & LSM_WRITE_NOSYNC) {
        return false;
    }
    return db->opt.sync_mode == LSM_SYNC_ALWAYS;
}

int lsm_write(struct lsm_db *db, struct lsm_batch *b, int flags, uint64_t *seq_out)
{
    if (b->too_big) {
        return LSM_INVALID;
    }
    return write_internal(db, b, want_sync(db, flags), seq_out);
}

/* put/delete build their one-record batch on the stack when it fits */
static int write_one(struct lsm_db *db, unsigned kind, const void *key, size_t klen,
                     const void *val, size_t vlen, const struct lsm_meta *meta, int flags,
                     uint64_t *seq_out)
{
    char stack[512];
    struct lsm_batch b = {0};
    size_t need =
        BATCH_HEADER + 1 + 2 * VARINT32_MAX_LEN + klen + ENTRY_HEADER_MAX + vlen;
    if (need <= sizeof(stack)) {
        b.rep.p = stack;
        b.rep.cap = sizeof(stack);
        b.borrowed = true;
    }
    batch_init_rep(&b);
    batch_add(&b, kind, key, klen, val, vlen, meta);
    int rc =
        b.too_big ? LSM_INVALID : write_internal(db, &b, want_sync(db, flags), seq_out);
    if (!b.borrowed) {
        lsm_buf_free(&b.rep);
    }
    return rc;
}

int lsm_put(struct lsm_db *db, const void *key, size_t klen, const void *val, size_t vlen,
            const struct lsm_meta *meta, int flags, uint64_t *seq_out)
{
    return write_one(db, LSM_KIND_VALUE, key, klen, val, vlen, meta, flags, seq_out);
}

int lsm_delete(struct lsm_db *db, const void *key, size_t klen,
               const struct lsm_meta *meta, int flags, uint64_t *seq_out)
{
    return write_one(db, LSM_KIND_DELETE, key, klen, NULL, 0, meta, flags, seq_out);
}

/* ---- durability seam ------------------------------------------------------------------------ */

uint64_t lsm_durable_seq(struct lsm_db *db)
{
    return atomic_load(&db->durable_seq);
}

int lsm_sync_fd(struct lsm_db *db)
{
    return db->sync_efd;
}

void lsm_sync_wal_async(struct lsm_db *db, uint64_t upto)
{
    pthread_mutex_lock(&db->mu);
    uint64_t last = atomic_load(&db->last_seq);
    if (upto > last) {
        upto = last; /* a request covers what is written now, not later writes */
    }
    if (upto <= atomic_load(&db->durable_seq) || db->bg_error != LSM_OK) {
        signal_sync_fd(db); /* already durable, or never will be: answer at once */
    } else if (upto > db->sync_requested) {
        db->sync_requested = upto;
        pthread_cond_signal(&db->sync_cv);
    }
    pthread_mutex_unlock(&db->mu);
}

/* One fdatasync of the current segment; mu held on entry and exit. */
static int sync_once(struct lsm_db *db)
{
    while (db->syncing) {
        pthread_cond_wait(&db->sync_idle_cv, &db->mu);
    }
    if (db->retired_wal != NULL) {
        int rc = close_retired(db);
        if (rc != LSM_OK) {
            return rc;
        }
    }
    uint64_t target = atomic_load(&db->last_seq);
    if (target <= atomic_load(&db->durable_seq)) {
        return LSM_OK;
    }
    struct wal_writer *w = db->wal;
    db->syncing = true;
    pthread_mutex_unlock(&db->mu);
    struct lsm_err err;
    int rc = wal_writer_sync(w, &err);
    atomic_fetch_add(&db->st.wal_syncs, 1);
    pthread_mutex_lock(&db->mu);
    db->syncing = false;
    pthread_cond_broadcast(&db->sync_idle_cv);
    if (rc != LSM_OK) {
        db_set_bg_error(db, rc, &err);
        signal_sync_fd(db); /* the waiting loop must learn it (lsm_sync_wal) */
        return refuse_write(db);
    }
    advance_durable(db, target);
    return LSM_OK;
}

int lsm_sync_wal(struct lsm_db *db, uint64_t upto)
{
    pthread_mutex_lock(&db->mu);
    int rc = LSM_OK;
    while (rc == LSM_OK && atomic_load(&db->durable_seq) < upto &&
           atomic_load(&db->durable_seq) < atomic_load(&db->last_seq)) {
        if (db->bg_error != LSM_OK) {
            rc = refuse_write(db);
            break;
        }
        rc = sync_once(db);
    }
    pthread_mutex_unlock(&db->mu);
    return rc;
}

static void *sync_main(void *arg)
{
    struct lsm_db *db = arg;
    pthread_mutex_lock(&db->mu);
    for (;;) {
        bool want_sync, want_wal;
        for (;;) {
            want_sync = db->bg_error == LSM_OK &&
                        (db->retired_wal != NULL ||
                         (db->sync_requested > atomic_load(&db->durable_seq) &&
                          atomic_load(&db->last_seq) > atomic_load(&db->durable_seq)));
            want_wal =
                db->bg_error == LSM_OK && db->next_wal == NULL && !db->next_wal_tried;
            if (atomic_load(&db->shutting_down) || want_sync || want_wal) {
                break;
            }
            pthread_cond_wait(&db->sync_cv, &db->mu);
        }
        if (atomic_load(&db->shutting_down)) {
            break;
        }
        if (want_sync) {
            sync_once(db);
        }
        if (db->bg_error == LSM_OK && db->next_wal == NULL && !db->next_wal_tried) {
            prepare_next_wal(db);
        }
    }
    pthread_mutex_unlock(&db->mu);
    return NULL;
}

/* ---- reads ------------------------------------------------------------------------------------ */

void lsm_value_free(struct lsm_value *v)
{
    lsm_free(v->data);
    memset(v, 0, sizeof(*v));
}

/* Found an entry: LSM_OK with *out filled, or LSM_NOTFOUND for a tombstone or an
 * expired value (LSM_OK with out->deleted set for those with include_tombstones);
 * LSM_CORRUPT when the entry value does not parse. */
static int deliver(struct lsm_db *db, const struct lsm_read_options *ro, unsigned kind,
                   const char *val, size_t vlen, struct lsm_value *out)
{
    bool tombs = ro != NULL && ro->include_tombstones;
    if (kind == LSM_KIND_DELETE && !tombs) {
        return LSM_NOTFOUND;
    }
    struct entry_value ev;
    if (entry_decode(val, vlen, &ev) != LSM_OK) {
        return LSM_CORRUPT;
    }
    bool deleted = kind == LSM_KIND_DELETE;
    if (ev.expire_at != 0 && !deleted) {
        uint64_t now = ro && ro->now_ms ? ro->now_ms : db_now_ms(db);
        if (ev.expire_at <= now) {
            if (!tombs) {
                return LSM_NOTFOUND;
            }
            deleted = true; /* what compaction turns it into */
        }
    }
    if (deleted) {
        ev.value_len = 0;
    }
    if (out->cap < ev.value_len || out->data == NULL) {
        size_t cap = ev.value_len < 64 ? 64 : ev.value_len;
        out->data = lsm_realloc(out->data, cap);
        out->cap = cap;
    }
    if (ev.value_len > 0) {
        memcpy(out->data, ev.value, ev.value_len);
    }
    out->len = ev.value_len;
    out->expire_at = ev.expire_at;
    out->timestamp = ev.write_ts;
    out->node = ev.node;
    out->deleted = deleted;
    return LSM_OK;
}

/* Looks in one table. 1 when it decided (rc set), 0 when the key is not there. */
static int table_get(struct lsm_db *db, struct file_meta *f, const struct lookup_key *lk,
                     uint64_t hash, const struct lsm_read_options *ro,
                     struct lsm_value *out, int *rc)
{
    if (!sst_reader_may_contain(f->table, hash)) {
        atomic_fetch_add_explicit(&db->st.bloom_useful, 1, memory_order_relaxed);
        return 0;
    }
    struct sst_found found;
    struct lsm_err err;
    int r = sst_reader_get(f->table, lk->p, lk->len, hash, &found, &err);
    if (r == LSM_NOTFOUND) {
        return 0;
    }
    if (r != LSM_OK) {
        pthread_mutex_lock(&db->mu);
        db->last_err = err;
        pthread_mutex_unlock(&db->mu);
        *rc = r;
        return 1;
    }
    unsigned kind = (unsigned)(ikey_trailer_of(found.ikey, found.ikey_len) & 0xff);
    *rc = deliver(db, ro, kind, found.value, found.value_len, out);
    sst_found_release(&found);
    return 1;
}

int lsm_get(struct lsm_db *db, const struct lsm_read_options *ro, const void *key,
            size_t klen, struct lsm_value *out)
{
    pthread_mutex_lock(&db->mu);
    struct memtable *mem = db->mem, *imm = db->imm;
    struct version *v = db->vs.current;
    memtable_ref(mem);
    if (imm != NULL) {
        memtable_ref(imm);
    }
    version_ref(v);
    pthread_mutex_unlock(&db->mu);
    uint64_t snap = ro && ro->snapshot ? ro->snapshot->seq : atomic_load(&db->last_seq);

    int rc = LSM_NOTFOUND;
    int kind;
    const char *val;
    size_t vlen;
    if (memtable_get(mem, key, klen, snap, &kind, &val, &vlen, NULL)) {
        rc = deliver(db, ro, (unsigned)kind, val, vlen, out);
        goto out;
    }
    if (imm != NULL && memtable_get(imm, key, klen, snap, &kind, &val, &vlen, NULL)) {
        rc = deliver(db, ro, (unsigned)kind, val, vlen, out);
        goto out;
    }
    struct lookup_key lk;
    lookup_key_init(&lk, key, klen, snap);
    uint64_t hash = bloom_hash(key, klen);
    bool decided = false;
    for (int i = 0; i < v->nfiles[0] && !decided; i++) {
        struct file_meta *f = v->files[0][i];
        if (f->min_seqno <= snap && file_covers(f, key, klen)) {
            decided = table_get(db, f, &lk, hash, ro, out, &rc);
        }
    }
    for (int l = 1; l < LSM_MAX_LEVELS && !decided; l++) {
        int idx = version_find_file(v, l, lk.p, lk.len);
        if (idx < v->nfiles[l]) {
            struct file_meta *f = v->files[l][idx];
            size_t sl;
            const char *s = file_smallest_user(f, &sl);
            if (user_key_compare(key, klen, s, sl) >= 0) {
                decided = table_get(db, f, &lk, hash, ro, out, &rc);
            }
        }
    }
    lookup_key_free(&lk);
out:
    memtable_unref(mem);
    if (imm != NULL) {
        memtable_unref(imm);
    }
    version_unref(v);
    return rc;
}

/* ---- snapshots ---------------------------------------------------------------------------------- */

const struct lsm_snapshot *lsm_snapshot_create(struct lsm_db *db)
{
    struct lsm_snapshot *s = lsm_calloc(1, sizeof(*s));
    pthread_mutex_lock(&db->mu);
    s->seq = atomic_load(&db->last_seq);
    s->prev = db->snapshots.prev; /* newest at the tail */
    s->next = &db->snapshots;
    s->prev->next = s;
    db->snapshots.prev = s;
    pthread_mutex_unlock(&db->mu);
    return s;
}

void lsm_snapshot_release(struct lsm_db *db, const struct lsm_snapshot **sp)
{
    struct lsm_snapshot *s = (struct lsm_snapshot *)*sp;
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&db->mu);
    s->prev->next = s->next;
    s->next->prev = s->prev;
    pthread_mutex_unlock(&db->mu);
    lsm_free(s);
    *sp = NULL;
}

uint64_t lsm_snapshot_seq(const struct lsm_snapshot *s)
{
    return s->seq;
}

/* ---- user iterator ------------------------------------------------------------------------------ */

struct lsm_iter {
    struct lsm_db *db;
    struct iiter *merged;
    struct version *v;
    uint64_t snap;
    uint64_t now_ms;
    bool tombstones;      /* include_tombstones */
    struct lsm_buf upper; /* upper bound (a copy); upper.p NULL = none */
    bool valid;
    bool deleted;          /* the current entry is a tombstone or expired */
    struct lsm_buf key;    /* current user key */
    struct entry_value ev; /* current value (points into the merged iterator) */
    int status;
};

struct lsm_iter *lsm_iter_create(struct lsm_db *db, const struct lsm_read_options *ro)
{
    struct lsm_iter *it = lsm_calloc(1, sizeof(*it));
    it->db = db;
    if (ro != NULL && ro->upper_bound != NULL) {
        /* reserve at least one byte, so that an empty bound is "set" (p != NULL) */
        lsm_buf_reserve(&it->upper, ro->upper_bound_len + 1);
        lsm_buf_append(&it->upper, ro->upper_bound, ro->upper_bound_len);
    }
    it->tombstones = ro != NULL && ro->include_tombstones;
    pthread_mutex_lock(&db->mu);
    struct version *v = db->vs.current;
    version_ref(v);
    int n = 1 + (db->imm != NULL) + v->nfiles[0] + (LSM_MAX_LEVELS - 1);
    struct iiter **kids = lsm_malloc((size_t)n * sizeof(*kids));
    int k = 0;
    kids[k++] = iiter_memtable(db->mem);
    if (db->imm != NULL) {
        kids[k++] = iiter_memtable(db->imm);
    }
    pthread_mutex_unlock(&db->mu);
    struct sst_iter_options io = {.fill_cache = ro == NULL || ro->fill_cache,
                                  .upper = it->upper.p,
                                  .upper_len = it->upper.len};
    for (int i = 0; i < v->nfiles[0]; i++) {
        kids[k++] = iiter_table(v->files[0][i], &io);
    }
    for (int l = 1; l < LSM_MAX_LEVELS; l++) {
        if (v->nfiles[l] > 0) {
            kids[k++] = iiter_level(v, l, &io);
        }
    }
    it->merged = iiter_merge(kids, k);
    lsm_free(kids);
    it->v = v;
    it->snap = ro && ro->snapshot ? ro->snapshot->seq : atomic_load(&db->last_seq);
    it->now_ms = ro && ro->now_ms ? ro->now_ms : db_now_ms(db);
    return it;
}

void lsm_iter_destroy(struct lsm_iter **itp)
{
    struct lsm_iter *it = *itp;
    if (it == NULL) {
        return;
    }
    iiter_destroy(&it->merged);
    version_unref(it->v);
    lsm_buf_free(&it->key);
    lsm_buf_free(&it->upper);
    lsm_free(it);
    *itp = NULL;
}

/* From the merged position on, finds the next user key whose newest visible version
 * is a live value (or any, with include_tombstones), stopping at the upper bound.
 * When skipping is set, entries of it->key are passed over first. */
static void iter_find_next(struct lsm_iter *it, bool skipping)
{
    struct iiter *m = it->merged;
    it->valid = false;
    it->deleted = false;
    while (iiter_valid(m)) {
        size_t ul = m->key_len - IKEY_TRAILER_LEN;
        uint64_t tr = ikey_trailer_of(m->key, m->key_len);
        if (it->upper.p != NULL &&
            user_key_compare(m->key, ul, it->upper.p, it->upper.len) >= 0) {
            break; /* at or past the bound: the end */
        }
        if ((tr >> 8) > it->snap ||
            (skipping && user_key_compare(m->key, ul, it->key.p, it->key.len) == 0)) {
            iiter_next(m);
            continue;
        }
        /* the newest visible version of a new user key */
        lsm_buf_clear(&it->key);
        lsm_buf_append(&it->key, m->key, ul);
        skipping = true;
        bool tomb = (tr & 0xff) == LSM_KIND_DELETE;
        if (tomb && !it->tombstones) {
            iiter_next(m);
            continue;
        }
        if (entry_decode(m->val, m->val_len, &it->ev) != LSM_OK) {
            it->status = LSM_CORRUPT;
            return;
        }
        if (!tomb && it->ev.expire_at != 0 && it->ev.expire_at <= it->now_ms) {
            if (!it->tombstones) {
                iiter_next(m);
                continue;
            }
            tomb = true; /* what compaction turns it into */
        }
        if (tomb) {
            it->ev.value_len = 0;
        }
        it->deleted = tomb;
        it->valid = true;
        return;
    }
    it->status = iiter_status(m, NULL);
}

void lsm_iter_seek_first(struct lsm_iter *it)
{
    iiter_seek_first(it->merged);
    iter_find_next(it, false);
}

void lsm_iter_seek(struct lsm_iter *it, const void *key, size_t klen)
{
    struct lookup_key lk;
    lookup_key_init(&lk, key, klen, it->snap);
    iiter_seek(it->merged, lk.p, lk.len);
    lookup_key_free(&lk);
    iter_find_next(it, false);
}

void lsm_iter_next(struct lsm_iter *it)
{
    if (it->valid) {
        iiter_next(it->merged);
        iter_find_next(it, true);
    }
}

int lsm_iter_valid(const struct lsm_iter *it)
{
    return it->valid && it->status == LSM_OK;
}

const char *lsm_iter_key(const struct lsm_iter *it, size_t *klen)
{
    *klen = it->key.len;
    return it->key.p;
}

const char *lsm_iter_value(const struct lsm_iter *it, size_t *vlen)
{
    *vlen = it->ev.value_len;
    return it->ev.value;
}

struct lsm_meta lsm_iter_meta(const struct lsm_iter *it)
{
    struct lsm_meta m = {it->ev.expire_at, it->ev.write_ts, it->ev.node};
    return m;
}

int lsm_iter_deleted(const struct lsm_iter *it)
{
    return it->deleted;
}

int lsm_iter_status(const struct lsm_iter *it)
{
    return it->status;
}

/* ---- flush -------------------------------------------------------------------------------------- */

static bool never_base(void *ctx, const char *k, size_t klen)
{
    return false;
}

/* Writes mt into a new table; *out is NULL when nothing was left to write. */
static int write_table(struct lsm_db *db, struct memtable *mt, uint64_t number,
                       uint64_t smallest_snapshot, struct file_meta **out,
                       struct lsm_err *err)
{
    char path[PATH_MAX];
    db_file_name(path, sizeof(path), db->dir, number, "sst");
    struct sst_options so;
    sst_options_default(&so);
    so.block_size = db->opt.block_size;
    so.bloom_bits_per_key = db->opt.bloom_bits_per_key;
    struct sst_builder *b;
    *out = NULL;
    int rc = sst_builder_create(path, &so, &b, err);
    if (rc != LSM_OK) {
        return rc;
    }
    struct entry_filter f = {.smallest_snapshot = smallest_snapshot, .gc = false};
    struct memtable_iter it;
    memtable_iter_init(&it, mt);
    uint64_t added = 0;
    for (memtable_iter_seek_first(&it); memtable_iter_valid(&it) && rc == LSM_OK;
         memtable_iter_next(&it)) {
        size_t kl, vl;
        const char *k = memtable_iter_ikey(&it, &kl);
        const char *v = memtable_iter_value(&it, &vl);
        if (entry_filter_apply(&f, &k, &kl, &v, &vl, never_base, NULL) == FILTER_DROP) {
            continue;
        }
        rc = sst_builder_add(b, k, kl, v, vl);
        added++;
    }
    entry_filter_free(&f);
    if (rc == LSM_OK && added == 0) {
        sst_builder_abandon(&b);
        env_unlink(path, NULL);
        return LSM_OK;
    }
    if (rc != LSM_OK) {
        sst_builder_abandon(&b);
        env_unlink(path, NULL);
        return lsm_err_set(err, rc, "flush: writing %s failed", path);
    }
    rc = sst_builder_finish(&b, true, NULL, err);
    struct sst_reader *t = NULL;
    if (rc == LSM_OK) {
        rc = sst_reader_open(path, number, db->cache, &t, err);
    }
    if (rc != LSM_OK) {
        env_unlink(path, NULL);
        return rc;
    }
    *out = file_meta_create(db->dir, number, t);
    atomic_fetch_add(&db->st.flush_bytes, (*out)->size);
    atomic_fetch_add(&db->st.flushes, 1);
    return LSM_OK;
}

int db_flush_imm(struct lsm_db *db)
{
    pthread_mutex_lock(&db->mu);
    struct memtable *imm = db->imm;
    if (imm == NULL) {
        pthread_mutex_unlock(&db->mu);
        return LSM_OK;
    }
    if (db->bg_error != LSM_OK) {
        pthread_mutex_unlock(&db->mu);
        return db->bg_error;
    }
    uint64_t number = db_new_file_number(db);
    uint64_t wal_number = db->wal_number; /* the segment of db->mem: still needed */
    uint64_t old_log = db->imm_wal_number;
    uint64_t smallest = db_smallest_snapshot(db);
    pthread_mutex_unlock(&db->mu);

    struct lsm_err err;
    struct file_meta *f;
    int rc = write_table(db, imm, number, smallest, &f, &err);
    struct version_edit e;
    edit_init(&e);
    if (rc == LSM_OK) {
        if (f != NULL) {
            edit_add_file(&e, 0, f);
        }
        e.has_log_number = true;
        e.log_number = wal_number;
        e.has_last_seq = true;
        e.last_seq = atomic_load(&db->last_seq);
        rc = version_set_log_and_apply(&db->vs, &e, &db->mu, &err);
        if (rc != LSM_OK && f != NULL) {
            atomic_store(&f->obsolete, true);
        }
    }
    edit_free(&e);
    pthread_mutex_lock(&db->mu);
    if (rc == LSM_OK) {
        db->imm = NULL;
        atomic_store(&db->has_imm, false);
        if (db->vs.roll_rc != LSM_OK) {
            db_set_bg_error(db, db->vs.roll_rc, &db->vs.roll_err);
        }
    } else {
        db_set_bg_error(db, rc, &err);
    }
    pthread_cond_broadcast(&db->bg_done_cv);
    pthread_mutex_unlock(&db->mu);
    if (rc == LSM_OK) {
        memtable_unref(imm);
        char path[PATH_MAX]; /* imm's segment is obsolete now */
        db_file_name(path, sizeof(path), db->dir, old_log, "log");
        env_unlink(path, NULL);
    }
    return rc;
}

/* ---- background thread ------------------------------------------------------------------------- */

static void run_manual(struct lsm_db *db)
{
    struct manual_compaction *m = db->manual;
    struct compaction *c = compaction_pick_range(db, m->begin, m->blen, m->end, m->elen);
    int rc = LSM_OK;
    if (c != NULL) {
        db->bg_compacting = true;
        pthread_mutex_unlock(&db->mu);
        rc = compaction_run(db, c, &m->err);
        pthread_mutex_lock(&db->mu);
        db->bg_compacting = false;
        compaction_release(c);
        if (rc != LSM_OK) {
            db_set_bg_error(db, rc, &m->err);
        }
    }
    m->status = rc;
    m->done = true;
    db->manual = NULL;
    pthread_cond_broadcast(&db->bg_done_cv);
}

static void *bg_main(void *arg)
{
    struct lsm_db *db = arg;
    if (db->opt.bg_nice > 0) {
        /* Linux: each thread has its own nice value; best effort */
        (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), db->opt.bg_nice);
    }
    pthread_mutex_lock(&db->mu);
    while (!atomic_load(&db->shutting_down)) {
        if (db->vs.roll_rc != LSM_OK) { /* a MANIFEST roll failed after its edit */
            db_set_bg_error(db, db->vs.roll_rc, &db->vs.roll_err);
        }
        if (db->bg_error != LSM_OK) {
            if (db->manual != NULL) {
                db->manual->status = db->bg_error;
                db->manual->err = db->bg_err;
                db->manual->done = true;
                db->manual = NULL;
                pthread_cond_broadcast(&db->bg_done_cv);
            }
            pthread_cond_wait(&db->bg_work_cv, &db->mu);
            continue;
        }
        if (db->imm != NULL) {
            pthread_mutex_unlock(&db->mu);
            db_flush_imm(db);
            pthread_mutex_lock(&db->mu);
            continue;
        }
        if (db->manual != NULL) {
            run_manual(db);
            continue;
        }
        struct compaction *c = compaction_pick(db);
        if (c == NULL) {
            pthread_cond_wait(&db->bg_work_cv, &db->mu);
            continue;
        }
        db->bg_compacting = true;
        pthread_mutex_unlock(&db->mu);
        struct lsm_err err;
        int rc = compaction_run(db, c, &err);
        pthread_mutex_lock(&db->mu);
        db->bg_compacting = false;
        compaction_release(c);
        if (rc != LSM_OK && !atomic_load(&db->shutting_down)) {
            db_set_bg_error(db, rc, &err);
        }
        pthread_cond_broadcast(&db->bg_done_cv);
    }
    pthread_mutex_unlock(&db->mu);
    return NULL;
}

int lsm_flush(struct lsm_db *db)
{
    int rc = write_internal(db, NULL, false, NULL); /* switch memtables */
    pthread_mutex_lock(&db->mu);
    while (rc == LSM_OK && db->imm != NULL && db->bg_error == LSM_OK) {
        pthread_cond_wait(&db->bg_done_cv, &db->mu);
    }
    if (rc == LSM_OK && db->bg_error != LSM_OK) {
        rc = refuse_write(db);
    }
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int lsm_compact_range(struct lsm_db *db, const void *begin, size_t blen, const void *end,
                      size_t elen)
{
    int rc = lsm_flush(db);
    if (rc != LSM_OK) {
        return rc;
    }
    struct manual_compaction m = {.begin = begin, .blen = blen, .end = end, .elen = elen};
    pthread_mutex_lock(&db->mu);
    while (db->manual != NULL) {
        pthread_cond_wait(&db->bg_done_cv, &db->mu);
    }
    db->manual = &m;
    pthread_cond_broadcast(&db->bg_work_cv);
    while (!m.done) {
        pthread_cond_wait(&db->bg_done_cv, &db->mu);
    }
    if (m.status != LSM_OK) {
        db->last_err = m.err;
    }
    pthread_mutex_unlock(&db->mu);
    return m.status;
}

/* ---- stats ---------------------------------------------------------------------------------------- */

void lsm_stats(struct lsm_db *db, struct lsm_stats *st)
{
    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&db->mu);
    struct version *v = db->vs.current;
    version_ref(v);
    st->memtable_bytes =
        memtable_bytes(db->mem) + (db->imm ? memtable_bytes(db->imm) : 0);
    st->immutable_memtables = db->imm != NULL;
    pthread_mutex_unlock(&db->mu);
    uint64_t bottom = 0;
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        st->files_per_level[l] = v->nfiles[l];
        st->bytes_per_level[l] = v->level_bytes[l];
        st->live_sst_bytes += v->level_bytes[l];
        if (v->level_bytes[l] > 0) {
            bottom = v->level_bytes[l];
        }
    }
    if (db->opt.compaction_style == LSM_COMPACTION_SIZE_TIERED) {
        bottom = 0;
        for (int i = 0; i < v->nfiles[0]; i++) {
            if (v->files[0][i]->size > bottom) {
                bottom = v->files[0][i]->size;
            }
        }
    }
    st->pending_compaction_bytes = compaction_pending_bytes(&db->opt, v);
    version_unref(v);
    if (db->cache != NULL) {
        struct block_cache_stats cs;
        block_cache_stats(db->cache, &cs);
        st->block_cache_hits = cs.hits;
        st->block_cache_misses = cs.misses;
        if (cs.hits + cs.misses > 0) {
            st->block_cache_hit_rate = (double)cs.hits / (double)(cs.hits + cs.misses);
        }
    }
    st->bloom_useful = atomic_load(&db->st.bloom_useful);
    st->write_slowdowns = atomic_load(&db->st.write_slowdowns);
    st->write_stalls = atomic_load(&db->st.write_stalls);
    st->write_stall_micros = atomic_load(&db->st.write_stall_micros);
    st->wal_syncs = atomic_load(&db->st.wal_syncs);
    st->wal_bytes = atomic_load(&db->st.wal_bytes);
    st->user_bytes_written = atomic_load(&db->st.user_bytes);
    st->flush_bytes = atomic_load(&db->st.flush_bytes);
    st->compaction_bytes_read = atomic_load(&db->st.compaction_read);
    st->compaction_bytes_written = atomic_load(&db->st.compaction_written);
    st->flushes = atomic_load(&db->st.flushes);
    st->compactions = atomic_load(&db->st.compactions);
    if (st->user_bytes_written > 0) {
        st->write_amplification =
            (double)(st->wal_bytes + st->flush_bytes + st->compaction_bytes_written) /
            (double)st->user_bytes_written;
    }
    /* RocksDB's estimate: everything live / the last level (what a full
     * compaction would leave); exact after lsm_compact_range */
    st->space_amplification = bottom ? (double)st->live_sst_bytes / (double)bottom : 1.0;
    st->last_sequence = atomic_load(&db->last_seq);
    st->durable_sequence = atomic_load(&db->durable_seq);
}

int lsm_bg_error(struct lsm_db *db)
{
    pthread_mutex_lock(&db->mu);
    int rc = db->bg_error;
    pthread_mutex_unlock(&db->mu);
    return rc;
}

const char *lsm_errmsg(struct lsm_db *db)
{
    if (db->bg_error != LSM_OK) {
        return db->bg_err.msg;
    }
    return db->last_err.msg;
}

/* ---- open and recovery ---------------------------------------------------------------------------- */

static int parse_number(const char *name, const char *ext, uint64_t *n)
{
    size_t len = strlen(name), el = strlen(ext);
    if (len <= el + 1 || strcmp(name + len - el, ext) != 0 || name[len - el - 1] != '.') {
        return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len - el - 1; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return 0;
        }
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *n = v;
    return 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Replays one WAL segment into *mem, flushing to L0 tables (added to e) whenever
 * the memtable fills. */
static int replay_wal(struct lsm_db *db, uint64_t number, struct memtable **mem,
                      struct version_edit *e, uint64_t *max_seq, struct lsm_err *err)
{
    char path[PATH_MAX];
    db_file_name(path, sizeof(path), db->dir, number, "log");
    struct wal_reader *r;
    int rc = wal_reader_open(path, &r, err);
    if (rc != LSM_OK) {
        return rc;
    }
    const char *p;
    size_t len;
    while ((rc = wal_reader_next(r, &p, &len, err)) == LSM_OK) {
        uint64_t n = 0;
        if (batch_apply(p, len, *mem, &n) != LSM_OK) {
            rc = lsm_err_set(err, LSM_CORRUPT, "wal %s: bad batch at offset %llu", path,
                             (unsigned long long)wal_reader_record_offset(r));
            break;
        }
        uint64_t last = dec_fixed64(p) + n - 1;
        if (n > 0 && last > *max_seq) {
            *max_seq = last;
        }
        if (memtable_full(db, *mem)) {
            struct file_meta *f;
            rc = write_table(db, *mem, db->vs.next_file++, UINT64_MAX, &f, err);
            if (rc != LSM_OK) {
                break;
            }
            if (f != NULL) {
                edit_add_file(e, 0, f);
            }
            memtable_unref(*mem);
            *mem = memtable_create(db->pool);
        }
    }
    wal_reader_close(&r);
    if (rc == LSM_NOTFOUND) {
        rc = LSM_OK; /* end of log, or a torn tail: a write never acknowledged */
    } else if (rc == LSM_CORRUPT && !db->opt.paranoid_checks) {
        rc = LSM_OK;
    }
    return rc;
}

static int recover(struct lsm_db *db, struct lsm_err *err)
{
    struct version_set *vs = &db->vs;
    int rc = version_set_recover(vs, err);
    if (rc == LSM_NOTFOUND) { /* a new database: nothing to recover */
        if (!db->opt.create_if_missing) {
            return lsm_err_set(err, LSM_INVALID, "%s: no database (CURRENT missing)",
                               db->dir);
        }
        lsm_err_clear(err);
        rc = LSM_OK;
    } else if (rc == LSM_OK && db->opt.error_if_exists) {
        return lsm_err_set(err, LSM_INVALID, "%s: database exists", db->dir);
    }
    if (rc != LSM_OK) {
        return rc;
    }
    char **names = NULL;
    size_t count = 0;
    rc = env_list_dir(db->dir, &names, &count, err);
    if (rc != LSM_OK) {
        return rc;
    }
    uint64_t *logs = lsm_malloc((count + 1) * sizeof(uint64_t));
    size_t nlogs = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t n;
        if (parse_number(names[i], "log", &n) && n >= vs->log_number) {
            logs[nlogs++] = n;
        }
        if ((parse_number(names[i], "log", &n) || parse_number(names[i], "sst", &n)) &&
            n >= vs->next_file) {
            vs->next_file = n + 1; /* never reuse a number seen on disk */
        }
    }
    qsort(logs, nlogs, sizeof(uint64_t), cmp_u64);
    struct version_edit e;
    edit_init(&e);
    uint64_t max_seq = vs->last_seq;
    struct memtable *mem = memtable_create(db->pool);
    for (size_t i = 0; i < nlogs && rc == LSM_OK; i++) {
        rc = replay_wal(db, logs[i], &mem, &e, &max_seq, err);
    }
    if (rc == LSM_OK && memtable_count(mem) > 0) {
        struct file_meta *f;
        rc = write_table(db, mem, vs->next_file++, UINT64_MAX, &f, err);
        if (rc == LSM_OK && f != NULL) {
            edit_add_file(&e, 0, f);
        }
    }
    memtable_unref(mem);
    lsm_free(logs);
    uint64_t wal_number = vs->next_file++;
    if (rc == LSM_OK) {
        rc = wal_open_new(db, wal_number, &db->wal, err);
    }
    if (rc == LSM_OK) {
        /* install the recovered tables, then write them all into a new MANIFEST */
        e.has_log_number = true;
        e.log_number = wal_number;
        struct version *old = vs->current;
        vs->current = version_apply_edit(old, &e);
        version_unref(old);
        vs->log_number = wal_number;
        vs->last_seq = max_seq;
        db->wal_number = wal_number;
        atomic_store(&db->last_seq, max_seq);
        atomic_store(&db->durable_seq, max_seq);
        rc = version_set_write_snapshot(vs, &db->mu, err);
    }
    if (rc != LSM_OK) {
        for (int i = 0; i < e.nadded; i++) {
            atomic_store(&e.added[i].f->obsolete, true);
        }
    }
    edit_free(&e);
    if (rc == LSM_OK) {
        /* orphans: tables no version lists, older WALs and MANIFESTs, temp files */
        struct version *v = vs->current;
        for (size_t i = 0; i < count; i++) {
            uint64_t n;
            bool del = false;
            if (parse_number(names[i], "sst", &n)) {
                del = true;
                for (int l = 0; l < LSM_MAX_LEVELS && del; l++) {
                    for (int j = 0; j < v->nfiles[l]; j++) {
                        if (v->files[l][j]->number == n) {
                            del = false;
                            break;
                        }
                    }
                }
            } else if (parse_number(names[i], "log", &n)) {
                del = n != wal_number;
            } else if (strncmp(names[i], "MANIFEST-", 9) == 0) {
                unsigned long long m = strtoull(names[i] + 9, NULL, 10);
                del = m != vs->manifest_number;
            } else if (strcmp(names[i], "CURRENT.tmp") == 0) {
                del = true;
            }
            if (del) {
                char path[PATH_MAX];
                snprintf(path, sizeof(path), "%s/%s", db->dir, names[i]);
                env_unlink(path, NULL);
            }
        }
    }
    env_free_names(names, count);
    return rc;
}

static void db_free(struct lsm_db *db)
{
    if (db->retired_wal != NULL) {
        wal_writer_close(&db->retired_wal, true, NULL);
    }
    if (db->next_wal != NULL) { /* unused, so empty */
        discard_wal(db, &db->next_wal, db->next_wal_number);
    }
    if (db->wal != NULL) {
        wal_writer_close(&db->wal, true, NULL);
    }
    if (db->mem != NULL) {
        memtable_unref(db->mem);
    }
    if (db->imm != NULL) {
        memtable_unref(db->imm);
    }
    version_set_deinit(&db->vs);
    block_cache_destroy(&db->cache);
    arena_pool_destroy(&db->pool);
    if (db->sync_efd >= 0) {
        close(db->sync_efd);
    }
    env_unlock(&db->lock);
    lsm_buf_free(&db->group);
    dropset_unref(db->drop);
    pthread_mutex_destroy(&db->mu);
    pthread_cond_destroy(&db->bg_work_cv);
    pthread_cond_destroy(&db->bg_done_cv);
    pthread_cond_destroy(&db->sync_cv);
    pthread_cond_destroy(&db->sync_idle_cv);
    lsm_free(db->dir);
    lsm_free(db);
}

int lsm_open(const char *dir, const struct lsm_options *opt, struct lsm_db **out,
             struct lsm_err *err)
{
    *out = NULL;
    struct lsm_db *db = lsm_calloc(1, sizeof(*db));
    if (opt != NULL) {
        db->opt = *opt;
    } else {
        lsm_options_init(&db->opt);
    }
    if (db->opt.level_size_multiplier < 2) {
        db->opt.level_size_multiplier = 10;
    }
    if (db->opt.memtable_size < 4096) {
        db->opt.memtable_size = 4096;
    }
    db->dir = lsm_strdup(dir);
    db->sync_efd = -1;
    atomic_init(&db->gc_horizon_ms, db->opt.gc_horizon_ms);
    pthread_mutex_init(&db->mu, NULL);
    pthread_cond_init(&db->bg_work_cv, NULL);
    pthread_cond_init(&db->bg_done_cv, NULL);
    pthread_cond_init(&db->sync_cv, NULL);
    pthread_cond_init(&db->sync_idle_cv, NULL);
    db->snapshots.next = db->snapshots.prev = &db->snapshots;
    db->cache = block_cache_create(db->opt.block_cache_size);
    size_t chunk = db->opt.memtable_size / 16;
    chunk = chunk < 64 * 1024 ? 64 * 1024 : chunk > (4u << 20) ? (4u << 20) : chunk;
    db->pool = arena_pool_create(chunk, db->opt.memtable_size / chunk + 2);
    version_set_init(&db->vs, dir, db->cache);
    /* MANIFEST size bound: small databases (tests) roll it often */
    uint64_t roll = (uint64_t)db->opt.memtable_size * 4;
    db->vs.manifest_roll_bytes = roll < (64u << 10)  ? (64u << 10)
                                 : roll > (4u << 20) ? (4u << 20)
                                                     : roll;

    int rc = env_mkdir(dir, err);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    if (rc == LSM_OK) {
        rc = env_lock_file(path, &db->lock, err);
    }
    if (rc == LSM_OK) {
        db->sync_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (db->sync_efd < 0) {
            rc = lsm_err_set(err, LSM_IOERR, "eventfd: %s", strerror(errno));
        }
    }
    if (rc == LSM_OK) {
        rc = recover(db, err);
    }
    if (rc != LSM_OK) {
        db_free(db);
        return rc;
    }
    db->mem = memtable_create(db->pool);
    if (pthread_create(&db->bg_thread, NULL, bg_main, db) == 0) {
        db->bg_started = true;
    }
    if (pthread_create(&db->sync_thread, NULL, sync_main, db) == 0) {
        db->sync_started = true;
    }
    if (!db->bg_started || !db->sync_started) {
        lsm_close(&db);
        return lsm_err_set(err, LSM_IOERR, "cannot start background threads");
    }
    /* the recovered version may already want a compaction */
    pthread_mutex_lock(&db->mu);
    pthread_cond_broadcast(&db->bg_work_cv);
    pthread_mutex_unlock(&db->mu);
    *out = db;
    return LSM_OK;
}

void lsm_close(struct lsm_db **dbp)
{
    struct lsm_db *db = *dbp;
    if (db == NULL) {
        return;
    }
    pthread_mutex_lock(&db->mu);
    atomic_store(&db->shutting_down, true);
    pthread_cond_broadcast(&db->bg_work_cv);
    pthread_cond_broadcast(&db->sync_cv);
    pthread_mutex_unlock(&db->mu);
    if (db->bg_started) {
        pthread_join(db->bg_thread, NULL);
    }
    if (db->sync_started) {
        pthread_join(db->sync_thread, NULL);
    }
    db_free(db);
    *dbp = NULL;
}

int lsm_destroy(const char *dir)
{
    char **names;
    size_t count;
    int rc = env_list_dir(dir, &names, &count, NULL);
    if (rc != LSM_OK) {
        return rc == LSM_NOTFOUND ? LSM_OK : rc;
    }
    for (size_t i = 0; i < count; i++) {
        uint64_t n;
        if (parse_number(names[i], "sst", &n) || parse_number(names[i], "log", &n) ||
            strncmp(names[i], "MANIFEST-", 9) == 0 || strcmp(names[i], "CURRENT") == 0 ||
            strcmp(names[i], "CURRENT.tmp") == 0 || strcmp(names[i], "LOCK") == 0) {
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
            env_unlink(path, NULL);
        }
    }
    env_free_names(names, count);
    env_rmdir(dir, NULL);
    return LSM_OK;
}
