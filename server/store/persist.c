/* server/store/persist.c: persistent mode: the keyspace written through to the LSM engine,
 * read through on a miss, counted, expired through an on-disk expiry index, and
 * made durable per appendfsync. This file: the state and the key layout helpers
 * every persist_*.c shares, the engine's lifecycle (open, load on a thread, close,
 * reopen), durability (appendfsync; held replies released at the WAL sync), cron,
 * errors, INFO and SAVE. The others: persist_env.c (the envelope), persist_write.c
 * (the write-through and its batch, big hashes' field records, the store-event
 * subscriber), persist_read.c (read-through, counts), persist_iter.c (SCAN, KEYS,
 * RANDOMKEY, records and token ranges for the store), persist_meta.c (active expiry
 * over the index, the counts record); shared: persist_int.h. See persist.h for the
 * layout and PERSIST.md for the design and its measurements. What it leaves to
 * others: Redis semantics of every command (the handlers, on the in-memory
 * entries), the engine's own recovery, compaction and caching (engine/), how
 * replies are held and rewritten (the client layer's client_hold / client_release /
 * client_fail_held, which it registers as persist_set_client_hooks' hooks:
 * persist.c only says when).
 */
#include "server/store/cleanup.h"
#include "server/store/persist_int.h"

struct persist_state persist_g;


void temps_free(void) {
    for (size_t i = 0; i < P.ntemps; i++) {
        ks_entry_free(P.temps[i]);
    }
    P.ntemps = 0;
}

void pbuf_grow(struct pbuf *b, size_t n) {
    b->cap = n < 256 ? 256 : n * 2;
    b->p = kv_realloc(b->p, b->cap);
}

void put_be64(unsigned char *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}


uint64_t get_be64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* token:u64be db:u16be key into P.kbuf */
void data_key(int db, const char *key, size_t klen, uint64_t token) {
    pbuf_reserve(&P.kbuf, DKEY + klen);
    unsigned char *p = (unsigned char *)P.kbuf.p;
    put_be64(p, token);
    p[8] = (unsigned char)(db >> 8);
    p[9] = (unsigned char)db;
    memcpy(p + DKEY, key, klen);
    P.kbuf.len = DKEY + klen;
}

/* meta || tag [|| u64be] [|| db] [|| key] into b */
size_t meta_key(unsigned char *out, char tag) {
    memset(out, 0xff, META_LEN);
    out[META_LEN] = (unsigned char)tag;
    return META_LEN + 1;
}

void index_key(struct pbuf *b, long long expire_at, int db, const char *key, size_t klen) {
    pbuf_reserve(b, META_LEN + 11 + klen);
    unsigned char *p = (unsigned char *)b->p;
    size_t n = meta_key(p, 'x');
    put_be64(p + n, (uint64_t)expire_at);
    p[n + 8] = (unsigned char)(db >> 8);
    p[n + 9] = (unsigned char)db;
    memcpy(p + n + 10, key, klen);
    b->len = n + 10 + klen;
}

/* meta 'h' db gen [field] into b: a big hash's field record in files written
 * before versions (or their prefix). */
void old_field_key(struct pbuf *b, int db, uint64_t gen, const char *f, size_t flen) {
    pbuf_reserve(b, FKEY + flen);
    unsigned char *p = (unsigned char *)b->p;
    size_t n = meta_key(p, 'h');
    p[n] = (unsigned char)(db >> 8);
    p[n + 1] = (unsigned char)db;
    put_be64(p + n + 2, gen);
    if (flen) {
        memcpy(p + FKEY, f, flen);
    }
    b->len = FKEY + flen;
}

/* token (0x8000|db) klen:u32be key [field] into b: a big hash's field record (or
 * the prefix of all of them), right after the key's data record. */
void field_key(struct pbuf *b, int db, const char *key, size_t klen, uint64_t token,
               const char *f, size_t flen) {
    pbuf_reserve(b, DKEY + 4 + klen + flen);
    unsigned char *p = (unsigned char *)b->p;
    put_be64(p, token);
    p[8] = (unsigned char)((db >> 8) | 0x80);
    p[9] = (unsigned char)db;
    p[10] = (unsigned char)(klen >> 24);
    p[11] = (unsigned char)(klen >> 16);
    p[12] = (unsigned char)(klen >> 8);
    p[13] = (unsigned char)klen;
    memcpy(p + DKEY + 4, key, klen);
    if (flen) {
        memcpy(p + DKEY + 4 + klen, f, flen);
    }
    b->len = DKEY + 4 + klen + flen;
}



/* ------------------------------------------------------------------------------
 * Open, load, close
 * ------------------------------------------------------------------------------ */
static void engine_options(struct lsm_options *o) {
    lsm_options_init(o);
    long long budget = server.maxmemory > 0 ? server.maxmemory : (1ll << 30);
    size_t mt = (size_t)(budget / 8), bc = (size_t)(budget / 4);
    if (mt < (1u << 20)) mt = 1u << 20;
    if (bc < (1u << 20)) bc = 1u << 20;
    if (mt > (64u << 20)) mt = 64u << 20;
    o->memtable_size = server.memtable_size > 0 ? (size_t)server.memtable_size : mt;
    /* a skiplist insert costs O(log entries) cache misses: small entries flush by
     * count (about 4 MB of 16-byte SETs), large ones by size (PERSIST.md, Memory);
     * a memtable-size set by hand is the only limit */
    o->memtable_max_entries = server.memtable_size > 0 ? 0 : MEMTABLE_MAX_ENTRIES;
    /* L0 -> L1 merges rewrite most of L1 when keys are random (tokens): merging 8
     * flushed tables at a time instead of 4 halves that work (1 KiB SET then INCR
     * -P 16, 3 rounds: SET 344k -> 372k, INCR 604k -> 716k requests/s) */
    o->l0_compaction_trigger = 8;
    o->bg_nice = server.engine_bg_nice;
    o->block_cache_size = server.block_cache_size > 0 ? (size_t)server.block_cache_size : bc;
    o->sync_mode = LSM_SYNC_NONE;
    o->clock_ms = compaction_clock;
    o->gc_grace_ms = (uint64_t)server.gc_grace_seconds * 1000;
    /* a cluster node keeps every tombstone until the cluster's repairs say they
     * reached every replica (persist_set_gc_horizon, from the cron) */
    o->gc_horizon_ms = server.cluster_enabled ? 0 : UINT64_MAX;
    o->compaction_filter = NULL; /* set after open: see flushed_filter */
}

/* Compaction filter: data of a flushed database older than its marker. */
int flushed_filter(void *arg, const char *key, size_t klen, const struct lsm_meta *m) {
    (void)arg;
    const unsigned char *k = (const unsigned char *)key;
    int d;
    if (klen >= FKEY && k[META_LEN] == 'h' && get_be64(k) == UINT64_MAX &&
        get_db(k + 8) == 0xffff) {
        d = get_db(k + META_LEN + 1); /* old form: meta 'h' db gen field */
    } else if (is_field_key(k, klen)) {
        d = get_db(k + 8) & 0x7fff;   /* token (0x8000|db) klen key field */
    } else if (klen >= DKEY) {
        d = get_db(k + 8);
    } else {
        return 0;
    }
    if (d >= server.databases) {
        return 0; /* the meta namespace, or a database no longer configured */
    }
    return m->timestamp < atomic_load_explicit(&P.flush_ts[d], memory_order_relaxed);
}

static int open_engine(const char *dir, struct lsm_db **out, char *err, size_t errlen) {
    struct lsm_options o;
    engine_options(&o);
    o.compaction_filter = flushed_filter;
    struct lsm_err e = {0};
    int rc = lsm_open(dir, &o, out, &e);
    if (rc != LSM_OK) {
        snprintf(err, errlen, "%s", e.msg[0] ? e.msg : "cannot open the engine");
        return -1;
    }
    rc = load_meta(*out);
    if (rc != LSM_OK) {
        snprintf(err, errlen, "reading the keyspace's metadata: %s", lsm_errmsg(*out));
        lsm_close(out);
        return -1;
    }
    return 0;
}

static void sync_cb(evutil_socket_t fd, short what, void *arg);
static void release_held(void);
static int bg_start(int what);

static void engine_ready(struct lsm_db *db) {
    P.db = db;
    if (P.batch == NULL) {
        P.batch = lsm_batch_create();
    }
    P.write_failed = 0;
    P.errmsg[0] = '\0';
    P.last_seq = P.sync_asked = lsm_durable_seq(db);
    P.sync_start_us = 0;
    if (server.base) {
        P.sync_ev = event_new(server.base, lsm_sync_fd(db), EV_READ | EV_PERSIST, sync_cb, NULL);
        event_add(P.sync_ev, NULL);
    }
}

static void alloc_dbs(void) {
    if (P.count == NULL) {
        P.flush_ts = kv_calloc((size_t)server.databases, sizeof(*P.flush_ts));
        P.count = kv_calloc((size_t)server.databases, sizeof(*P.count));
        P.vcount = kv_calloc((size_t)server.databases, sizeof(*P.vcount));
    }
}

int persist_open_sync(const char *dir, char *err, size_t errlen) {
    if (server.databases > MAX_DBS - 1) {
        snprintf(err, errlen, "mode persistent supports at most %d databases", MAX_DBS - 1);
        return -1;
    }
    alloc_dbs();
    snprintf(P.dir, sizeof(P.dir), "%s", dir);
    struct lsm_db *db;
    if (open_engine(P.dir, &db, err, errlen) != 0) {
        return -1;
    }
    engine_ready(db);
    P.last_save = kv_mstime() / 1000;
    return 0;
}

static void *loader_main(void *arg) {
    (void)arg;
    kv_alloc_thread_register();
    struct lsm_db *db = NULL;
    P.load_rc = open_engine(P.dir, &db, P.load_err, sizeof(P.load_err));
    P.loaded = db;
    kv_alloc_thread_unregister();
    atomic_store(&P.load_done, 1);
    char b = 1;
    ssize_t w = write(P.load_pipe[1], &b, 1);
    (void)w;
    return NULL;
}

static void load_cb(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    (void)arg;
    char b;
    ssize_t r = read(fd, &b, 1);
    (void)r;
    if (!atomic_load(&P.load_done)) {
        return;
    }
    pthread_join(P.loader, NULL);
    P.loader_started = 0;
    event_free(P.load_ev);
    P.load_ev = NULL;
    close(P.load_pipe[0]);
    close(P.load_pipe[1]);
    if (P.load_rc != 0) {
        server_log(LL_WARNING, "Fatal error loading the dataset: %s", P.load_err);
        exit(1);
    }
    engine_ready(P.loaded);
    P.load_ms = kv_mstime() - P.load_start_ms;
    long long keys = 0;
    for (int i = 0; i < server.databases; i++) {
        keys += P.count[i];
    }
    server.loading = 0;
    server_log(LL_NOTICE, "DB loaded from disk: %.3f seconds (%lld keys)", P.load_ms / 1000.0,
               keys);
}

int persist_start(void) {
    if (server.databases > MAX_DBS - 1) {
        server_log(LL_WARNING, "mode persistent supports at most %d databases", MAX_DBS - 1);
        return -1;
    }
    char cwd[900];
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        server_log(LL_WARNING, "getcwd: %s", strerror(errno));
        return -1;
    }
    snprintf(P.dir, sizeof(P.dir), "%s/data", cwd);
    alloc_dbs();
    if (pipe(P.load_pipe) != 0) {
        server_log(LL_WARNING, "pipe: %s", strerror(errno));
        return -1;
    }
    P.load_ev = event_new(server.base, P.load_pipe[0], EV_READ | EV_PERSIST, load_cb, NULL);
    event_add(P.load_ev, NULL);
    server.loading = 1;
    P.load_start_ms = kv_mstime();
    P.last_save = P.load_start_ms / 1000;
    atomic_store(&P.load_done, 0);
    if (pthread_create(&P.loader, NULL, loader_main, NULL) != 0) {
        server_log(LL_WARNING, "cannot start the loader thread");
        return -1;
    }
    P.loader_started = 1;
    server_log(LL_NOTICE, "Loading the dataset from %s in the background", P.dir);
    return 0;
}

static void bg_join(void) {
    if (P.bg_started) {
        pthread_join(P.bg, NULL);
        P.bg_started = 0;
    }
}

void persist_close(void) {
    if (P.loader_started) {
        pthread_join(P.loader, NULL);
        P.loader_started = 0;
        if (P.load_ev) {
            event_free(P.load_ev);
            P.load_ev = NULL;
            close(P.load_pipe[0]);
            close(P.load_pipe[1]);
        }
        if (P.loaded) {
            engine_ready(P.loaded);
        }
    }
    bg_join();
    temps_free();
    if (P.db) {
        /* a cleanup cut short took keys off the counts whose records remain */
        int stale = store_cleanup_close();
        commit();
        if (!P.write_failed && lsm_bg_error(P.db) == LSM_OK) {
            write_counts(P.db, !stale);
        }
        if (P.sync_ev) {
            event_free(P.sync_ev);
            P.sync_ev = NULL;
        }
        lsm_close(&P.db);
        server_log(LL_NOTICE, "The engine was closed cleanly.");
    }
    P.loaded = NULL;
    if (P.batch) {
        lsm_batch_destroy(&P.batch);
    }
    kv_free(P.deleted);
    kv_free(P.wrote);
    kv_free(P.held);
    kv_free(P.waiters);
    P.waiters = NULL;
    P.nwaiters = P.capwaiters = 0;
    kv_free(P.temps);
    kv_free(P.dirty);
    kv_free(P.dirty_tmp);
    kv_free(P.dirty_cnt);
    kv_free(P.dkeys.p);
    P.dirty = P.dirty_tmp = NULL;
    P.dirty_cnt = NULL;
    P.capcnt = 0;
    P.ndirty = P.capdirty = 0;
    P.dkeys = (struct pbuf){0};
    kv_free(P.fops);
    kv_free(P.fbytes.p);
    kv_free(P.fkey.p);
    P.fops = NULL;
    P.nfops = P.capfops = 0;
    P.fbytes = P.fkey = (struct pbuf){0};
    kv_free(P.kbuf.p);
    kv_free(P.vbuf.p);
    lsm_value_free(&P.val);
    struct lsm_value z = LSM_VALUE_INIT;
    P.val = z;
    P.deleted = NULL;
    P.del_cap = P.del_n = 0;
    P.wrote = NULL;
    P.nwrote = P.capwrote = 0;
    P.held = NULL;
    P.nheld = P.capheld = 0;
    P.temps = NULL;
    P.ntemps = P.captemps = 0;
    P.kbuf = (struct pbuf){0};
    P.vbuf = (struct pbuf){0};
    kv_free((void *)P.flush_ts);
    kv_free(P.count);
    kv_free(P.vcount);
    P.flush_ts = NULL;
    P.count = P.vcount = NULL;
}

struct lsm_db *persist_engine(void) {
    return P.db;
}

void persist_set_gc_horizon(uint64_t horizon_ms) {
    if (P.db != NULL) {
        lsm_set_gc_horizon(P.db, horizon_ms);
    }
}

/* Opens the engine again after persist_reopen closed it; while it cannot (the
 * disk is still full), the node answers -LOADING and the cron retries. */
static int reopen_finish(char *err, size_t errlen) {
    struct lsm_db *db;
    if (open_engine(P.dir, &db, err, errlen) != 0) {
        server.loading = 1;
        return -1;
    }
    engine_ready(db);
    server.loading = 0;
    return 0;
}

int persist_reopen(char *err, size_t errlen) {
    if (P.db == NULL) {
        if (P.dir[0] && server.loading && !P.loader_started) {
            return reopen_finish(err, errlen);
        }
        snprintf(err, errlen, "the engine is not open");
        return -1;
    }
    if (!P.write_failed && lsm_bg_error(P.db) != LSM_OK) {
        P.write_failed = 1;
        snprintf(P.errmsg, sizeof(P.errmsg), "%s", lsm_errmsg(P.db));
    }
    if (!P.write_failed) {
        commit(); /* a healthy engine: nothing is lost by reopening */
    }
    lsm_batch_clear(P.batch);
    deleted_clear();
    /* whatever waits for the old engine is answered now: stored and synced if
     * healthy, -MISCONF (maybe stored: ambiguous, never a false +OK) if not */
    if (P.write_failed) {
        fail_pending_clients();
    } else if (P.nheld || P.nwaiters) {
        lsm_sync_wal(P.db, UINT64_MAX);
        release_held();
    }
    persist_waiters_run();
    bg_join();
    store_cleanup_close(); /* the counts are recounted at the reopening */
    if (P.sync_ev) {
        event_free(P.sync_ev);
        P.sync_ev = NULL;
    }
    lsm_close(&P.db);
    drop_cache();
    return reopen_finish(err, errlen);
}

/* ------------------------------------------------------------------------------
 * Durability and the loop
 * ------------------------------------------------------------------------------ */
static void release_held(void) {
    uint64_t durable = lsm_durable_seq(P.db);
    for (size_t i = 0; i < P.nheld;) {
        struct client *c = P.held[i];
        if (writer_of(c)->durable_wait <= durable) {
            writer_of(c)->durable_wait = 0;
            writer_of(c)->flags &= ~PERSIST_WRITER_HELD;
            P.held[i] = P.held[--P.nheld];
            if (!(writer_of(c)->flags & PERSIST_WRITER_WROTE)) {
                /* (in this turn's batch too: that batch releases it; a reply it
                 * held for the synced batch may then still become -MISCONF if
                 * the newer batch fails: ambiguous, never a false +OK) */
                persist_hooks.release(c);
            }
        } else {
            i++;
        }
    }
}

/* The sync thread advanced the durable sequence: release the clients it covers.
 * (Pacing the next sync request after a release, so the released clients' next
 * writes join it, was measured here: slower on this loaded 2-core VM, where each
 * thread hand-off costs more than the grouping gains. Requests go at once.) */
static void sync_cb(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    (void)arg;
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof(v));
    (void)r;
    if (P.db == NULL) {
        return;
    }
    if (P.sync_start_us && lsm_durable_seq(P.db) >= P.sync_asked) {
        long long took = kv_ustime() - P.sync_start_us;
        P.sync_avg_us = P.sync_avg_us ? (P.sync_avg_us * 7 + took) / 8 : took;
        P.sync_start_us = 0;
    }
    release_held();
    persist_waiters_run();
}

static void request_sync(void) {
    if ((P.nheld == 0 && !persist_waiters_need_sync()) || P.last_seq <= P.sync_asked) {
        return;
    }
    /* asked at once even with a sync in flight: the engine's sync thread then
     * starts the next fsync as soon as the current one ends, with no hand-off
     * back to the loop in between */
    if (server.appendfsync_in_loop) {
        /* Redis's way: the loop itself fsyncs (blocking every client for it) and
         * replies at once: no thread hand-off (see PERSIST.md, measurements) */
        lsm_sync_wal(P.db, P.last_seq);
        P.sync_asked = P.last_seq;
        release_held();
        return;
    }
    lsm_sync_wal_async(P.db, P.last_seq);
    P.sync_asked = P.last_seq;
    if (P.sync_start_us == 0) {
        P.sync_start_us = kv_ustime();
    }
}

void persist_before_sleep(void) {
    if (P.db == NULL) {
        return;
    }
    int failed = P.write_failed;
    commit();
    if (P.write_failed && !failed) {
        drop_cache(); /* it may hold values that were never stored */
    }
    if (P.nheld) {
        release_held(); /* an earlier sync may already cover them */
    }
    request_sync();
    persist_waiters_run(); /* stored (and, under always, already synced) */
    if (P.expire_more) {
        expire_cycle(1000);
    }
}

/* The engine's sticky error (a failed fsync on its sync thread, a failed flush or
 * compaction): writes are refused from now on, waiting replies become -MISCONF. */
static void check_engine_error(void) {
    if (P.db == NULL || P.write_failed || lsm_bg_error(P.db) == LSM_OK) {
        return;
    }
    P.write_failed = 1;
    snprintf(P.errmsg, sizeof(P.errmsg), "%s", lsm_errmsg(P.db));
    server_log(LL_WARNING, "The engine refuses writes: %s", P.errmsg);
    commit(); /* fails: the pending writes are answered -MISCONF */
    fail_pending_clients();
    drop_cache();
}

/* Free bytes on the engine's file system, or UINT64_MAX when unknown. */
static uint64_t free_bytes(void) {
    struct statvfs st;
    if (statvfs(P.dir, &st) != 0) {
        return UINT64_MAX;
    }
    return (uint64_t)st.f_bavail * st.f_frsize;
}

/* Automatic recovery after a write error: once a second, when no fault is armed
 * and the disk has room for a memtable's worth of replay and a WAL segment, the
 * engine is reopened (the sticky error is cleared only by a reopen). */
static void maybe_recover(void) {
    if (P.fault_armed || !(P.write_failed || (P.db == NULL && server.loading &&
                                              !P.loader_started && P.dir[0]))) {
        return;
    }
    long long now = kv_mstime();
    if (now - P.last_recover_ms < 1000) {
        return;
    }
    P.last_recover_ms = now;
    struct lsm_options o;
    engine_options(&o);
    if (free_bytes() < o.memtable_size + (16u << 20)) {
        return;
    }
    char err[256];
    if (persist_reopen(err, sizeof(err)) == 0) {
        server_log(LL_NOTICE, "The engine was reopened: writes are accepted again");
    } else {
        server_log(LL_WARNING, "Reopening the engine failed: %s", err);
    }
}

void persist_set_fault_armed(int on) {
    P.fault_armed = on;
}

void persist_cron(void) {
    if (P.db == NULL) {
        maybe_recover();
        return;
    }
    if (server.appendfsync == PERSIST_FSYNC_EVERYSEC && server.mstime - P.last_everysec_ms >= 1000) {
        P.last_everysec_ms = server.mstime;
        if (P.last_seq > lsm_durable_seq(P.db)) {
            lsm_sync_wal_async(P.db, UINT64_MAX);
        }
    }
    if (P.bg_scheduled && !atomic_load(&P.bg_running)) {
        int what = P.bg_scheduled;
        P.bg_scheduled = 0;
        bg_start(what);
    }
    int hz = server.hz > 0 ? server.hz : 10;
    expire_cycle(250000 / hz); /* a quarter of a tick, as Redis's slow cycle */
    check_engine_error();
    maybe_recover();
}

void persist_expire_due(void) {
    expire_cycle(5000);
}

void persist_evict_prepare(void) {
    commit();
}

/* ------------------------------------------------------------------------------
 * Errors, INFO, SAVE
 * ------------------------------------------------------------------------------ */
const char *persist_write_error(void) {
    if (P.db == NULL) {
        return NULL;
    }
    if (P.write_failed) {
        return P.errmsg;
    }
    check_engine_error();
    return P.write_failed ? P.errmsg : NULL;
}

void persist_info(struct persist_info *out) {
    memset(out, 0, sizeof(*out));
    out->loading = server.loading;
    out->loading_start_ms = P.load_start_ms;
    out->changes_since_save = P.changes;
    out->last_save_time = P.last_save;
    out->last_write_ok = !P.write_failed;
    out->last_bgrewrite_ok = atomic_load(&P.bgrewrite_last_ok) == 0;
    int bg = atomic_load(&P.bg_running);
    out->bgsave_in_progress = bg == 1;
    out->bgrewrite_in_progress = bg == 2;
    out->held_clients = (long long)P.nheld;
    if (P.db) {
        struct lsm_stats st;
        lsm_stats(P.db, &st);
        out->wal_syncs = (long long)st.wal_syncs;
    }
}

size_t persist_info_engine(char *buf, size_t cap) {
    if (P.db == NULL) {
        return (size_t)snprintf(buf, cap, "engine_open:0\r\n");
    }
    struct lsm_stats st;
    lsm_stats(P.db, &st);
    char files[128] = "", bytes[256] = "";
    size_t fn = 0, bn = 0;
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        fn += (size_t)snprintf(files + fn, sizeof(files) - fn, "%s%d", l ? "," : "",
                               st.files_per_level[l]);
        bn += (size_t)snprintf(bytes + bn, sizeof(bytes) - bn, "%s%llu", l ? "," : "",
                               (unsigned long long)st.bytes_per_level[l]);
    }
    long long cached = 0;
    for (int i = 0; i < server.databases; i++) {
        cached += (long long)ks_db_size(server.db[i]);
    }
    int n = snprintf(
        buf, cap,
        "engine_open:1\r\n"
        "engine_dir:%s\r\n"
        "memtable_bytes:%llu\r\n"
        "immutable_memtables:%d\r\n"
        "files_per_level:%s\r\n"
        "bytes_per_level:%s\r\n"
        "live_sst_bytes:%llu\r\n"
        "pending_compaction_bytes:%llu\r\n"
        "block_cache_hits:%llu\r\n"
        "block_cache_misses:%llu\r\n"
        "block_cache_hit_rate:%.4f\r\n"
        "bloom_useful:%llu\r\n"
        "write_slowdowns:%llu\r\n"
        "write_stalls:%llu\r\n"
        "write_stall_micros:%llu\r\n"
        "wal_syncs:%llu\r\n"
        "wal_bytes:%llu\r\n"
        "flushes:%llu\r\n"
        "compactions:%llu\r\n"
        "write_amplification:%.2f\r\n"
        "space_amplification:%.2f\r\n"
        "last_sequence:%llu\r\n"
        "durable_sequence:%llu\r\n"
        "cached_keys:%lld\r\n"
        "held_clients:%zu\r\n"
        "wal_sync_avg_us:%lld\r\n"
        "expiry_watermark_ms:%llu\r\n"
        "last_load_ms:%lld\r\n",
        P.dir, (unsigned long long)st.memtable_bytes, st.immutable_memtables, files, bytes,
        (unsigned long long)st.live_sst_bytes, (unsigned long long)st.pending_compaction_bytes,
        (unsigned long long)st.block_cache_hits, (unsigned long long)st.block_cache_misses,
        st.block_cache_hit_rate, (unsigned long long)st.bloom_useful,
        (unsigned long long)st.write_slowdowns, (unsigned long long)st.write_stalls,
        (unsigned long long)st.write_stall_micros, (unsigned long long)st.wal_syncs,
        (unsigned long long)st.wal_bytes, (unsigned long long)st.flushes,
        (unsigned long long)st.compactions, st.write_amplification, st.space_amplification,
        (unsigned long long)st.last_sequence, (unsigned long long)st.durable_sequence, cached,
        P.nheld, P.sync_avg_us, (unsigned long long)atomic_load(&P.watermark), P.load_ms);
    return n < 0 ? 0 : ((size_t)n >= cap ? cap - 1 : (size_t)n);
}

int persist_save(const char **err) {
    if (P.db == NULL) {
        *err = "ERR the engine is not open";
        return -1;
    }
    if (commit() != 0 || lsm_flush(P.db) != LSM_OK) {
        *err = "ERR Background save failed: the engine refuses writes";
        return -1;
    }
    P.changes = 0;
    P.last_save = kv_mstime() / 1000;
    server.lastsave = P.last_save;
    return 0;
}

static void *bg_main(void *arg) {
    (void)arg;
    kv_alloc_thread_register();
    int what = atomic_load(&P.bg_running);
    int rc = what == 1 ? lsm_flush(P.db) : lsm_compact_range(P.db, NULL, 0, NULL, 0);
    if (what == 1) {
        atomic_store(&P.bg_last_ok, rc);
    } else {
        atomic_store(&P.bgrewrite_last_ok, rc);
    }
    kv_alloc_thread_unregister();
    atomic_store(&P.bg_running, 0);
    return NULL;
}

static int bg_start(int what) {
    if (P.db == NULL) {
        return -1;
    }
    int running = atomic_load(&P.bg_running);
    if (running == what) {
        return -1;
    }
    if (running) {
        P.bg_scheduled = what; /* started by the cron when the other one ends */
        return 1;
    }
    bg_join();
    commit();
    atomic_store(&P.bg_running, what);
    if (pthread_create(&P.bg, NULL, bg_main, NULL) != 0) {
        atomic_store(&P.bg_running, 0);
        return -1;
    }
    P.bg_started = 1;
    if (what == 1) {
        P.changes = 0;
        P.last_save = kv_mstime() / 1000;
        server.lastsave = P.last_save;
    }
    return 0;
}

int persist_bgsave(void) {
    return bg_start(1);
}

int persist_bgrewrite(void) {
    return bg_start(2);
}
