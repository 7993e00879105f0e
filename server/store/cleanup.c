/* server/store/cleanup.c: KVD CLEANUP's work in the store (cleanup.h): drop the
 * keys of the token ranges this node no longer replicates, a bounded share per
 * cron tick, with no tombstone and no event.
 *
 * HOW IT WORKS. store_cleanup_start turns the kept ranges into their complement,
 * the dropped ranges, and a position (database, range, token). Each step walks
 * from the position in token order for about a millisecond:
 *   - cache mode: kv_dict_scan over each database's dictionary (its buckets are
 *     in token order), unlinking every entry whose token is in the range;
 *   - persistent mode: one engine iterator over the range (data keys start with
 *     the token, every database at once), taking each live key off the counts,
 *     its expiry index entry, and the cache. Its records stay on disk until the
 *     sweep ended: then the engine's drop set (every record of the dropped ranges
 *     up to the sequence of the start: a write that arrives later is kept) and a
 *     full compaction on a thread remove them, the dated tombstones too.
 * Example: kept [0, 100) and [300, end): dropped is [100, 300), one range.
 *
 * Nothing here is a delete: no tombstone is written, no store event fires (so
 * nothing is replicated, WATCH and keyspace statistics see no deletion), and a
 * dropped key read later through this node's store is simply absent, as on any
 * node that never held it (persistent mode: once the compaction ended; until then
 * a read-through may still find its record, which no coordinator asks this node
 * for: it does not replicate the key).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "server/store/cleanup.h"
#include "server/store/ks.h"
#include "server/store/persist_int.h"

#define STEP_US 1000        /* a step's time budget */
#define STEP_KEYS 256       /* keys per dictionary scan call */

static struct {
    int state;                   /* enum store_cleanup_state */
    struct store_span *keep, *drop;
    size_t nkeep, ndrop;
    int db;                      /* cache mode: the database being swept */
    size_t span;                 /* the dropped range being swept */
    uint64_t pos;                /* the next token to look at in it */
    uint64_t upto_seq;           /* persistent: the engine's sequence at the start */
    struct lsm_db *engine;       /* persistent: the engine the thread compacts */
    pthread_t thread;
    int thread_started;
    _Atomic int thread_done;
    int thread_rc;
    int compaction_failed;       /* the last one: the counts need a recount */
    struct pbuf kb;              /* an index key */
    struct kv_entry **ents;      /* cache mode: one scan's entries */
    size_t nents, capents;
    uint64_t runs, keys, bytes;
    long long start_ms, end_ms;
    const char *why;
    long step_limit;             /* tests: keys per step (0: the time budget only) */
    long step_keys;              /* keys looked at in this step */
} C;

/* 1 when the step has done its share */
static int step_spent(long long deadline_us) {
    return (C.step_limit > 0 && C.step_keys >= C.step_limit) || kv_ustime() > deadline_us;
}

/* The gaps between the sorted, disjoint kept ranges. */
static size_t complement(const struct store_span *keep, size_t n, struct store_span *out) {
    size_t k = 0;
    uint64_t at = 0; /* the first token not yet kept or dropped */
    for (size_t i = 0; i < n; i++) {
        if (keep[i].from > at) {
            out[k++] = (struct store_span){at, keep[i].from};
        }
        if (keep[i].to == 0) {
            return k; /* kept up to the end */
        }
        at = keep[i].to;
    }
    out[k++] = (struct store_span){at, 0};
    return k;
}

static int in_span(const struct store_span *s, uint64_t t) {
    return t >= s->from && (s->to == 0 || t < s->to);
}

/* The position moves to the next range (and database): 0 when none is left. */
static int next_span(void) {
    if (++C.span >= C.ndrop) {
        C.span = 0;
        if (persist_on() || ++C.db >= server.databases) {
            return 0;
        }
    }
    C.pos = C.drop[C.span].from;
    return 1;
}

static void collect(struct kv_entry *e, void *arg) {
    (void)arg;
    if (C.nents == C.capents) {
        C.capents = C.capents ? C.capents * 2 : 512;
        C.ents = kv_realloc(C.ents, C.capents * sizeof *C.ents);
    }
    C.ents[C.nents++] = e;
}

/* Cache mode: one scan call in the current range; 0 when the sweep is over. */
static int sweep_dict_once(void) {
    struct kv_db *db = server.db[C.db];
    const struct store_span *s = &C.drop[C.span];
    C.nents = 0;
    long count = C.step_limit > 0 ? C.step_limit : STEP_KEYS;
    uint64_t next = kv_dict_scan(&db->keys, C.pos, count, collect, NULL);
    C.step_keys += (long)C.nents;
    for (size_t i = 0; i < C.nents; i++) {
        struct kv_entry *e = C.ents[i];
        uint64_t token = ks_entry_token(e);
        if (!in_span(s, token)) {
            continue;
        }
        size_t klen;
        const char *key = ks_entry_key(e, &klen);
        C.bytes += ks_entry_size(e);
        C.keys++;
        ks_delete(db, key, klen, token, 1);
    }
    if (next == 0 || (s->to != 0 && next >= s->to)) {
        return next_span();
    }
    C.pos = next;
    return 1;
}

/* Persistent mode: one live record of a dropped range (engine key ik). */
static void drop_record(struct lsm_iter *it, const unsigned char *ik, size_t ilen,
                        uint64_t token) {
    size_t vlen;
    lsm_iter_value(it, &vlen);
    C.bytes += ilen + vlen;
    int d = get_db(ik + 8);
    if (is_field_key(ik, ilen) || d >= server.databases) {
        return; /* a big hash's field record: the drop set takes it */
    }
    struct lsm_meta m = lsm_iter_meta(it);
    if (m.timestamp < atomic_load_explicit(&P.flush_ts[d], memory_order_relaxed)) {
        return; /* under a flush marker: not counted already */
    }
    const char *key = (const char *)ik + DKEY;
    size_t klen = ilen - DKEY;
    P.count[d]--;
    if (m.expire_at) {
        P.vcount[d]--;
        index_key(&C.kb, (long long)m.expire_at, d, key, klen);
        batch_del(C.kb.p, C.kb.len, 0);
    }
    ks_delete(server.db[d], key, klen, token, 1);
    C.keys++;
}

/* Persistent mode: the current range from the position until its end (the
 * position moves to the next range) or the deadline (whole tokens at a time);
 * 0 when the sweep is over. */
static int sweep_engine_span(long long deadline_us) {
    struct lsm_read_options ro = raw_read();
    struct lsm_iter *it = lsm_iter_create(P.db, &ro);
    unsigned char seek[8];
    put_be64(seek, C.pos);
    long n = 0;
    uint64_t last = 0;
    int more = 1, span_over = 1;
    for (lsm_iter_seek(it, seek, 8); lsm_iter_valid(it) && !is_meta(it); lsm_iter_next(it)) {
        size_t ilen;
        const unsigned char *ik = (const unsigned char *)lsm_iter_key(it, &ilen);
        if (ilen < DKEY) {
            continue;
        }
        uint64_t token = get_be64(ik);
        if (!in_span(&C.drop[C.span], token)) {
            break;
        }
        if (n > 0 && token != last &&
            (C.step_limit > 0 ? C.step_keys >= C.step_limit
                              : (n & 63) == 0 && step_spent(deadline_us))) {
            C.pos = token;
            span_over = 0;
            break;
        }
        drop_record(it, ik, ilen, token);
        last = token;
        n++;
        C.step_keys++;
    }
    if (lsm_iter_status(it) != LSM_OK) {
        store_cleanup_abort("an engine read failed during the sweep");
        more = 0;
    } else if (span_over) {
        more = next_span();
    }
    lsm_iter_destroy(&it);
    return more;
}

static void *compact_main(void *arg) {
    (void)arg;
    C.thread_rc = lsm_compact_range(C.engine, NULL, 0, NULL, 0);
    atomic_store(&C.thread_done, 1);
    return NULL;
}

/* Persistent mode, after the sweep: the engine drops the records of the dropped
 * ranges (those swept: n of them, the last one up to limit when limit_pos) at a
 * full compaction on a thread. */
static void start_compaction(size_t n, int limit_pos) {
    commit(); /* the index deletions */
    struct lsm_range *r = kv_malloc((n + 1) * sizeof *r);
    unsigned char *b = kv_malloc((n + 1) * 16);
    static const unsigned char meta[META_LEN] = {0xff, 0xff, 0xff, 0xff, 0xff,
                                                 0xff, 0xff, 0xff, 0xff, 0xff};
    size_t k = 0;
    if (limit_pos && C.pos == C.drop[n].from) {
        limit_pos = 0; /* nothing of that range swept yet (and [x, x) is empty, not
                          "to the end") */
    }
    for (size_t i = 0; i < n + (limit_pos ? 1 : 0); i++) {
        uint64_t to = i == n ? C.pos : C.drop[i].to;
        put_be64(b + 16 * k, C.drop[i].from);
        put_be64(b + 16 * k + 8, to);
        /* to 0 is the end of the tokens: stop before the meta namespace */
        r[k] = (struct lsm_range){b + 16 * k, 8, to ? b + 16 * k + 8 : meta,
                                  to ? 8 : META_LEN};
        k++;
    }
    if (k > 0) {
        lsm_set_drop_ranges(P.db, r, k, C.upto_seq);
    }
    kv_free(r);
    kv_free(b);
    if (k == 0) {
        return; /* an abort before anything was swept: nothing to compact away */
    }
    C.engine = P.db;
    C.state = CLEANUP_COMPACTING;
    atomic_store(&C.thread_done, 0);
    if (pthread_create(&C.thread, NULL, compact_main, NULL) != 0) {
        /* counted as a failed compaction: the records stay, the next start recounts */
        C.thread_rc = LSM_IOERR;
        atomic_store(&C.thread_done, 1);
        return;
    }
    C.thread_started = 1;
}

static void finish_compaction(void) {
    if (C.thread_started) {
        pthread_join(C.thread, NULL);
        C.thread_started = 0;
    }
    if (C.engine == P.db && P.db) {
        lsm_set_drop_ranges(P.db, NULL, 0, 0);
    }
    C.engine = NULL;
    C.compaction_failed = C.thread_rc != LSM_OK;
    if (C.compaction_failed) {
        server_log(LL_WARNING, "KVD CLEANUP: the compaction failed (%s); the next start "
                               "recounts the keys", P.db ? lsm_errmsg(P.db) : "closed");
    }
    if (C.state != CLEANUP_COMPACTING) {
        return; /* an aborted sweep's compaction: the state says why */
    }
    C.state = CLEANUP_DONE;
    C.end_ms = kv_mstime();
    server_log(LL_NOTICE, "KVD CLEANUP: done, %llu keys (%llu bytes) dropped",
               (unsigned long long)C.keys, (unsigned long long)C.bytes);
}

static void sweep_over(void) {
    if (persist_on() && P.db) {
        start_compaction(C.ndrop, 0);
        return;
    }
    C.state = CLEANUP_DONE;
    C.end_ms = kv_mstime();
    server_log(LL_NOTICE, "KVD CLEANUP: done, %llu keys (%llu bytes) dropped",
               (unsigned long long)C.keys, (unsigned long long)C.bytes);
}

void store_cleanup_step(void) {
    if (C.engine != NULL && atomic_load(&C.thread_done)) {
        finish_compaction();
    }
    if (C.state != CLEANUP_SWEEPING) {
        return;
    }
    if (persist_on() && P.db == NULL) {
        return; /* reopening: later */
    }
    long long deadline = kv_ustime() + STEP_US;
    int more = 1;
    C.step_keys = 0;
    if (persist_on()) {
        commit(); /* every cached entry is on disk: the cache copies are clean */
    }
    while (more && C.state == CLEANUP_SWEEPING && !step_spent(deadline)) {
        more = persist_on() ? sweep_engine_span(deadline) : sweep_dict_once();
    }
    if (persist_on()) {
        commit();
    }
    if (!more && C.state == CLEANUP_SWEEPING) {
        sweep_over();
    }
}

long store_cleanup_start(const struct store_span *keep, size_t n, char *err, size_t errlen) {
    if (store_cleanup_running()) {
        snprintf(err, errlen, "a cleanup is already running (INFO kvdcluster cleanup_*)");
        return -1;
    }
    if (server.loading || (persist_on() && P.db == NULL)) {
        snprintf(err, errlen, "the dataset is loading");
        return -1;
    }
    kv_free(C.keep);
    kv_free(C.drop);
    C.keep = kv_malloc((n ? n : 1) * sizeof *C.keep);
    memcpy(C.keep, keep, n * sizeof *keep);
    C.nkeep = n;
    C.drop = kv_malloc((n + 1) * sizeof *C.drop);
    C.ndrop = complement(keep, n, C.drop);
    C.db = 0;
    C.span = 0;
    C.pos = C.ndrop ? C.drop[0].from : 0;
    C.keys = C.bytes = 0;
    C.compaction_failed = 0;
    C.runs++;
    C.why = "";
    C.start_ms = kv_mstime();
    C.end_ms = 0;
    if (persist_on()) {
        commit();
        C.upto_seq = lsm_last_sequence(P.db);
    }
    C.state = C.ndrop ? CLEANUP_SWEEPING : CLEANUP_DONE;
    server_log(LL_NOTICE, "KVD CLEANUP: dropping %zu token ranges this node no longer "
                          "replicates", C.ndrop);
    return (long)C.ndrop;
}

int store_cleanup_running(void) {
    return C.state == CLEANUP_SWEEPING || C.engine != NULL;
}

const struct store_span *store_cleanup_kept(size_t *n) {
    *n = C.nkeep;
    return C.keep;
}

void store_cleanup_abort(const char *why) {
    if (C.state != CLEANUP_SWEEPING) {
        return;
    }
    C.state = CLEANUP_ABORTED;
    C.why = why;
    C.end_ms = kv_mstime();
    server_log(LL_WARNING, "KVD CLEANUP: stopped: %s", why);
    if (persist_on() && P.db) {
        /* what was swept left the counts: its records must leave the disk too */
        start_compaction(C.span, 1);
        C.state = CLEANUP_ABORTED; /* the compaction runs on; the step ends it */
    }
}

void store_cleanup_stats(struct store_cleanup_stats *out) {
    out->state = C.state;
    out->runs = C.runs;
    out->ranges = C.ndrop;
    out->ranges_done = C.state == CLEANUP_SWEEPING ? C.span : C.ndrop;
    out->keys_dropped = C.keys;
    out->bytes_dropped = C.bytes;
    out->ms = C.runs == 0 ? 0 : (C.end_ms ? C.end_ms : kv_mstime()) - C.start_ms;
    out->why = C.why ? C.why : "";
}

int store_cleanup_close(void) {
    if (C.engine != NULL) {
        finish_compaction(); /* waits for the thread */
    }
    int stale = C.state == CLEANUP_SWEEPING || C.compaction_failed;
    if (C.state == CLEANUP_SWEEPING) {
        C.state = CLEANUP_ABORTED;
        C.why = "the engine was closed during the sweep";
        C.end_ms = kv_mstime();
    }
    return stale;
}

void store_cleanup_set_step_limit(long keys) {
    C.step_limit = keys;
}
