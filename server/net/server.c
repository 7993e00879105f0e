/* server/net/server.c: starting and stopping the node (after config, before and
 * after the loop), and handing the store its subscribers (WATCH, statistics, the
 * backend) and persistence its client hooks. main.c only parses the command line
 * and calls these. The global state and the clock are server/base/state.c's.
 */
#include <errno.h>
#include <limits.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "cluster/ring.h"
#include "server/net/net.h"
#include "server/store/store.h"

/* Raises RLIMIT_NOFILE to fit maxclients (+32 for listeners, logs, the engine);
 * lowers maxclients when the system refuses, as Redis does. */
static void adjust_open_files_limit(void) {
    rlim_t need = (rlim_t)server.maxclients + 32;
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= need) {
        return;
    }
    rlim_t want = need;
    while (want > lim.rlim_cur) {
        struct rlimit nl = {.rlim_cur = want, .rlim_max = lim.rlim_max > want ? lim.rlim_max : want};
        if (setrlimit(RLIMIT_NOFILE, &nl) == 0) {
            break;
        }
        nl.rlim_max = lim.rlim_max;
        if (want <= lim.rlim_max) {
            nl.rlim_cur = want;
            if (setrlimit(RLIMIT_NOFILE, &nl) == 0) {
                break;
            }
        }
        want = want > 16 ? want - 16 : lim.rlim_cur;
    }
    if (want < need) {
        long long old = server.maxclients;
        server.maxclients = want > 32 ? (long long)(want - 32) : 1;
        server_log(LL_WARNING,
                   "You requested maxclients of %lld requiring at least %llu max file "
                   "descriptors. Server can't set maximum open files to %llu because of OS "
                   "error: %s. Current maximum open files is %llu. maxclients has been reduced "
                   "to %lld to compensate for low ulimit.",
                   old, (unsigned long long)need, (unsigned long long)need, strerror(errno),
                   (unsigned long long)want, server.maxclients);
    }
}

static void write_pidfile(void) {
    if (server.pidfile == NULL || server.pidfile[0] == '\0') {
        return;
    }
    FILE *fp = fopen(server.pidfile, "w");
    if (fp == NULL) {
        server_log(LL_WARNING, "Failed to write PID file: %s", strerror(errno));
        return;
    }
    fprintf(fp, "%d\n", (int)getpid());
    fclose(fp);
}

/* ---- the cluster: the store as cluster/ sees it (struct cluster_store) ---- */

static int cl_store_read(void *ctx, unsigned db, const char *key, size_t klen,
                         struct msg_record *out) {
    (void)ctx;
    if (server.loading || db >= (unsigned)server.databases) {
        return -1; /* not ready to answer for its data: the coordinator counts a failure */
    }
    int rc = hashrec_read(db, key, klen, out);
    if (rc != 0) {
        return rc; /* a big hash: its field records, not the whole envelope */
    }
    struct store_record r;
    rc = store_get_record((int)db, key, klen, &r);
    if (rc == 0 && store_floor((int)db) != 0) {
        /* a cluster flush's floor is a tombstone of every key it covers (as the
         * flush marker is in persistent mode): a replica that missed the flush
         * loses to it at read repair instead of bringing the key back */
        out->v = (struct kv_version){store_floor((int)db), 0};
        out->deleted = 1;
        out->expire_at = 0;
        out->val = NULL;
        out->vlen = 0;
        out->fields = 0;
        return 1;
    }
    if (rc != 1) {
        return rc;
    }
    out->v = r.version;
    out->deleted = r.deleted;
    out->expire_at = r.expire_at > 0 ? (uint64_t)r.expire_at : 0;
    out->val = r.deleted ? NULL : r.value;
    out->vlen = r.deleted ? 0 : r.vlen;
    out->fields = 0;
    return 1;
}

static int cl_store_apply(void *ctx, unsigned db, const char *key, size_t klen,
                          const struct msg_record *rec) {
    (void)ctx;
    if (server.loading || db >= (unsigned)server.databases || rec->expire_at > LLONG_MAX) {
        return -1;
    }
    if (rec->fields) {
        return hashrec_apply(db, key, klen, rec);
    }
    struct store_record r = {rec->v, rec->deleted, (long long)rec->expire_at,
                             rec->deleted ? NULL : rec->val, rec->deleted ? 0 : rec->vlen};
    return store_apply((int)db, key, klen, &r); /* STORE_APPLIED 1, IGNORED 0, ERROR -1 */
}

static void cl_store_observe(void *ctx, uint64_t hlc) {
    (void)ctx;
    hlc_observe(hlc);
}

static uint64_t cl_store_now(void *ctx) {
    (void)ctx;
    return (uint64_t)kv_mstime();
}

static uint64_t cl_store_load(void *ctx) {
    (void)ctx;
    return (uint64_t)kv_used_memory();
}

static void cl_log(int level, const char *msg) {
    server_log(level == CLUSTER_LOG_WARNING  ? LL_WARNING
               : level == CLUSTER_LOG_NOTICE ? LL_NOTICE
                                             : LL_VERBOSE,
               "Cluster: %s", msg);
}

/* A big hash's content digest (cluster_key.digest; its version does not say
 * which fields it holds), 0 for anything else. The envelope's second and third
 * bytes are the type and encoding (persist_env.c). O(fields) for a big hash, as
 * the iterator's own read of it is. */
static uint64_t cl_key_digest(const struct store_item *item) {
    uint64_t d = 0;
    if (!item->rec.deleted && item->rec.vlen >= 3 &&
        (unsigned char)item->rec.value[1] == KS_TYPE_HASH &&
        (unsigned char)item->rec.value[2] == KS_ENC_HASHTABLE &&
        hashrec_digest((unsigned)item->db, item->key, item->klen, &d) != 1) {
        d = 0;
    }
    return d;
}

/* KVD.PEER SCAN's records: the store's token-range iterator (every database, in
 * (token, db, key) order) filtered to db. The value's type is the envelope's
 * second byte (persist_env.c). */
static int cl_store_range(void *ctx, unsigned db, uint64_t from, uint64_t to,
                          cluster_range_fn *fn, void *arg) {
    (void)ctx;
    if (server.loading || (db >= (unsigned)server.databases && db != CLUSTER_DB_ALL)) {
        return -1;
    }
    struct store_iter *it = store_iter_range(from, to);
    struct store_item item;
    int rc;
    while ((rc = store_iter_next(it, &item)) == 1) {
        if (db != CLUSTER_DB_ALL && item.db != (int)db) {
            continue;
        }
        struct cluster_key k = {item.token, item.key, item.klen, item.rec.version,
                                item.rec.deleted,
                                item.rec.expire_at > 0 ? (uint64_t)item.rec.expire_at : 0,
                                !item.rec.deleted && item.rec.vlen >= 2
                                    ? (unsigned char)item.rec.value[1]
                                    : 0,
                                (unsigned)item.db, 0};
        if (db == CLUSTER_DB_ALL) {
            k.digest = cl_key_digest(&item); /* for Merkle repair (merkle.h) only */
        }
        if (fn(arg, &k)) {
            break;
        }
    }
    store_iter_destroy(&it);
    return rc < 0 ? -1 : 0;
}

static int cl_store_flush(void *ctx, int db, uint64_t hlc) {
    (void)ctx;
    if (server.loading || db >= server.databases || db < -1) {
        return -1;
    }
    return store_flush_below(db, hlc);
}

/* persistent mode: this node's replica acknowledges once durable (persist.h) */
static uint64_t cl_store_when_durable(void *ctx, void (*done)(void *arg, int ok), void *arg) {
    (void)ctx;
    return persist_on() ? persist_when_durable(done, arg) : 0;
}

static void cl_store_durable_cancel(void *ctx, uint64_t handle) {
    (void)ctx;
    if (persist_on()) {
        persist_durable_cancel(handle);
    }
}

static const struct cluster_store cl_store = {
    .read = cl_store_read,
    .apply = cl_store_apply,
    .observe = cl_store_observe,
    .now_ms = cl_store_now,
    .range = cl_store_range,
    .flush = cl_store_flush,
    .when_durable = cl_store_when_durable,
    .durable_cancel = cl_store_durable_cancel,
    .load = cl_store_load,
};

/* cluster_config.save_tokens: a joining node keeps its tokens once it streamed */
static int cluster_save_tokens(const uint64_t *tokens, size_t n) {
    char err[CONFIG_ERR_LEN];
    if (node_tokens_save(tokens, n, err, sizeof(err)) != 0) {
        server_log(LL_WARNING, "Cluster tokens not saved (retrying): %s", err);
        return -1;
    }
    return 0;
}

/* cluster_config.on_left: dir/node-left, so that a restart stays out */
static void cluster_on_left(void) {
    char err[CONFIG_ERR_LEN];
    if (node_left_mark(err, sizeof(err)) != 0) {
        server_log(LL_WARNING, "Cluster: this node left, but %s: do not restart it on this dir",
                   err);
    }
}

/* cluster-replace names a member to replace */
static int replacing(void) {
    return server.cluster_replace && server.cluster_replace[0];
}

/* cluster_config.save_join: dir/node-join, the state of a join in progress */
static int cluster_save_join(const char *text, size_t len) {
    char err[CONFIG_ERR_LEN];
    if (node_join_save(text, len, err, sizeof(err)) != 0) {
        server_log(LL_WARNING, "Cluster join state not saved (a restart streams more "
                               "again): %s", err);
        return -1;
    }
    return 0;
}

/* dir/node-join of an interrupted join (cluster-join, persistent mode) into
 * *text (kv_free it; NULL: none). A member (not joining) drops a stale one: its
 * node-tokens is what counts. 0, or -1 after logging why. */
static int cluster_join_file(int joining, char **text, size_t *len) {
    char err[CONFIG_ERR_LEN];
    *text = NULL;
    *len = 0;
    if (!persist_on()) {
        return 0;
    }
    if (!joining || replacing()) {
        if (!joining && node_join_save(NULL, 0, err, sizeof(err)) != 0) {
            server_log(LL_WARNING, "Cluster: %s", err);
        }
        return 0;
    }
    if (node_join_load(text, len, err, sizeof(err)) < 0) {
        server_log(LL_WARNING, "Cluster: %s", err);
        return -1;
    }
    if (*text) {
        server_log(LL_NOTICE, "Cluster: resuming the join interrupted by the last stop "
                              "(<dir>/node-join)");
    }
    return 0;
}

/* The node's tokens: dir/node-tokens, or drawn once (random seed) and kept there.
 * *joining 1 (cluster-join yes, no node-tokens yet): the drawn tokens are a
 * placeholder, not kept: the join takes balanced ones and keeps them once it has
 * streamed (a restart before then joins again). */
static int cluster_tokens(uint64_t **out, size_t *n, int *joining, char *err, size_t errlen) {
    *joining = 0;
    int rc = node_tokens_load(out, n, err, errlen);
    if (rc != 0) {
        return rc < 0 ? -1 : 0;
    }
    *joining = server.cluster_join || replacing();
    uint64_t seed;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(&seed, sizeof(seed), 1, f) != 1) {
        seed = (uint64_t)kv_ustime() ^ ((uint64_t)getpid() << 32) ^ server.node_tag;
    }
    if (f) {
        fclose(f);
    }
    *n = ring_token_count((unsigned)server.vnodes, server.node_weight);
    *out = kv_malloc(*n * sizeof(**out));
    ring_tokens_generate(seed, *out, *n);
    if (!*joining && node_tokens_save(*out, *n, err, errlen) != 0) {
        kv_free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

/* The first bind address that a peer can dial (not "*", "::*"), without a
 * leading '-', into buf; "" when there is none. */
static void first_bind_addr(char *buf, size_t cap) {
    buf[0] = '\0';
    char **argv;
    int argc = kv_split_args(server.bind ? server.bind : "", &argv);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i][0] == '-' ? argv[i] + 1 : argv[i];
        if (strcmp(a, "*") != 0 && strcmp(a, "::*") != 0 && a[0]) {
            snprintf(buf, cap, "%s", a);
            break;
        }
    }
    if (argc >= 0) {
        kv_free(argv);
    }
}

/* Whether this node was away longer than gc-grace-seconds (persistent mode: its
 * dir/node-alive is older than that): its replicas may have dropped tombstones it
 * never received, so it must be repaired before it serves (cluster.h,
 * long_absence). No file (a new node, or one from before the file existed): no. */
static int cluster_long_absence(void) {
    uint64_t alive;
    if (!persist_on() || node_alive_load(&alive) != 1) {
        return 0;
    }
    uint64_t now = (uint64_t)kv_mstime(), grace = (uint64_t)server.gc_grace_seconds * 1000;
    if (now <= alive || now - alive <= grace) {
        return 0;
    }
    server_log(LL_WARNING, "Cluster: this node last served %llu s ago, longer than "
                           "gc-grace-seconds (%lld): repairing before it serves again",
               (unsigned long long)((now - alive) / 1000), server.gc_grace_seconds);
    return 1;
}

static int alive_held; /* started after a long absence and not yet repaired */

/* dir/node-alive: now, unless the node repairs after a long absence (a crash
 * then must not hide the absence), at most every tenth of the grace period
 * (between 1 s and 60 s); force: at once (start-up: a replica takes its peers'
 * writes before it is ready). */
static void alive_note(int force) {
    static uint64_t alive_saved;
    uint64_t now = (uint64_t)kv_mstime(), every = (uint64_t)server.gc_grace_seconds * 100;
    every = every < 1000 ? 1000 : every > 60000 ? 60000 : every;
    if (alive_held || (!force && now - alive_saved < every)) {
        return;
    }
    char err[CONFIG_ERR_LEN];
    if (node_alive_save(now, err, sizeof(err)) != 0) {
        server_log(LL_WARNING, "Cluster: %s", err);
    }
    alive_saved = now;
}

/* The cron's cluster work: the tombstone GC horizon to the engine, and in
 * persistent mode dir/node-alive (alive_note). */
void server_cluster_cron(void) {
    if (server.cluster) {
        kvd_cleanup_cron();
    }
    if (server.cluster == NULL || !persist_on()) {
        return;
    }
    persist_set_gc_horizon(cluster_gc_horizon(server.cluster));
    if (alive_held && cluster_ready(server.cluster, NULL)) {
        alive_held = 0;
    }
    alive_note(0);
}

/* The address the cluster binds (the first bind address) and the one it announces
 * to peers (cluster-announce-ip, else the bound one); each buffer len bytes. 0, or
 * -1 after logging why. */
static int cluster_addresses(char *bind_ip, char *announce, size_t len) {
    first_bind_addr(bind_ip, len);
    snprintf(announce, len, "%s",
             server.cluster_announce_ip && server.cluster_announce_ip[0]
                 ? server.cluster_announce_ip
                 : bind_ip);
    if (announce[0] == '\0') {
        server_log(LL_WARNING, "Cluster: set cluster-announce-ip (or bind a concrete address "
                               "first): peers need an address to dial");
        return -1;
    }
    return 0;
}

/* The node's place in the cluster from dir: not left, its tokens (*tokens:
 * kv_free them), whether it joins, this run's generation. 0, or -1 after
 * logging why. */
static int cluster_identity(uint64_t **tokens, size_t *ntokens, int *joining) {
    char err[CONFIG_ERR_LEN];
    if (node_has_left()) {
        server_log(LL_WARNING, "Cluster: this node left the cluster (KVD LEAVE; <dir>/node-left): "
                               "its data is stale. Empty its dir to join it again.");
        return -1;
    }
    if (cluster_tokens(tokens, ntokens, joining, err, sizeof(err)) != 0) {
        server_log(LL_WARNING, "Cluster tokens: %s", err);
        return -1;
    }
    if (node_generation_next(&server.cluster_generation, err, sizeof(err)) != 0) {
        kv_free(*tokens);
        server_log(LL_WARNING, "Cluster generation: %s", err);
        return -1;
    }
    return 0;
}

/* Starts cluster/ when cluster-enabled: after the listeners (the announced port
 * defaults to the bound one). 0, or -1 after logging why. */
static int server_start_cluster(void) {
    if (!server.cluster_enabled) {
        return 0;
    }
    char err[CONFIG_ERR_LEN];
    uint64_t *tokens = NULL;
    size_t ntokens = 0;
    int joining = 0;
    if (cluster_identity(&tokens, &ntokens, &joining) != 0) {
        return -1;
    }
    alive_held = cluster_long_absence();
    char bind_ip[256], announce[256], *join_text = NULL;
    size_t join_len = 0;
    if (cluster_addresses(bind_ip, announce, sizeof(announce)) != 0 ||
        cluster_join_file(joining, &join_text, &join_len) != 0) {
        kv_free(tokens);
        return -1;
    }
    struct cluster_config cc = {
        .node_id = server.node_id,
        .tag = server.node_tag,
        .tokens = tokens,
        .ntokens = ntokens,
        .weight = server.node_weight,
        .bind_ip = bind_ip,
        .announce_ip = announce,
        .announce_port = server.cluster_announce_port ? server.cluster_announce_port
                                                      : net_bound_port,
        .seeds = server.cluster_seeds,
        .secret = server.cluster_secret,
        .replication_factor = server.replication_factor,
        .write_quorum = server.write_quorum,
        .read_quorum = server.read_quorum,
        .request_timeout_ms = server.cluster_request_timeout,
        .hint_window_ms = (uint64_t)server.hinted_handoff_window,
        .hint_max_bytes = (size_t)server.hinted_handoff_max_bytes,
        .log = cl_log,
        /* durable hints in persistent mode: dir/hints (the working directory) */
        .hint_dir = persist_on() ? "hints" : NULL,
        .repair_interval_s = (unsigned)server.repair_interval_seconds,
        .repair_bytes_per_sec = (uint64_t)server.repair_throughput_mb_per_sec << 20,
        .generation = server.cluster_generation,
        .phi_convict_threshold = server.phi_convict_threshold,
        .max_clock_offset_ms = server.cluster_max_clock_offset_ms,
        .long_absence = alive_held,
        .join = joining,
        /* a first start only (joining): later starts keep the tokens taken */
        .replace = joining && replacing() ? server.cluster_replace : NULL,
        .stream_bytes_per_sec = (uint64_t)server.stream_throughput_mb_per_sec << 20,
        .save_tokens = cluster_save_tokens,
        .on_left = cluster_on_left,
        .join_resume = join_text,
        .join_resume_len = join_len,
        .save_join = persist_on() ? cluster_save_join : NULL,
    };
    server.cluster = cluster_start(server.base, &cc, &cl_store, err, sizeof(err));
    kv_free(tokens);
    kv_free(join_text);
    if (server.cluster == NULL) {
        server_log(LL_WARNING, "Cluster: %s", err);
        return -1;
    }
    if (persist_on()) {
        alive_note(1);
    }
    server_log(LL_NOTICE,
               "Cluster: node %s at %s:%d, generation %llu, %zu tokens, N=%d W=%d R=%d, "
               "seeds '%s'%s",
               server.node_id, announce, cc.announce_port,
               (unsigned long long)server.cluster_generation, ntokens, cc.replication_factor,
               cc.write_quorum, cc.read_quorum, server.cluster_seeds ? server.cluster_seeds : "",
               joining ? (replacing() ? ", replacing" : ", joining") : "");
    return 0;
}

int server_start(void) {
    signal(SIGPIPE, SIG_IGN);
    net_install_hooks();
    server.pid = getpid();
    kv_time_sync();
    server.start_ms = server.mstime;
    server.lastsave = server.mstime / 1000;
    server.active_expire_enabled = 1;
    server_log(LL_NOTICE, "oO0OoO0OoO0Oo kvd is starting oO0OoO0OoO0Oo");
    server_log(LL_NOTICE, "kvd version=%s, redis compat=%s, bits=%d, pid=%d, just started",
               KVD_VERSION, KVD_REDIS_COMPAT_VERSION, (int)(sizeof(long) * 8), (int)server.pid);
    if (server.config_file) {
        server_log(LL_NOTICE, "Configuration loaded");
    } else {
        server_log(LL_WARNING, "Warning: no config file specified, using the default config. "
                               "In order to specify a config file use build/kvd /path/to/kv.conf");
    }
    adjust_open_files_limit();
    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    server.base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (server.base == NULL) {
        server_log(LL_WARNING, "Failed creating the event loop");
        return -1;
    }
    char nerr[CONFIG_ERR_LEN];
    if (node_init(nerr, sizeof(nerr)) != 0) {
        server_log(LL_WARNING, "Node id: %s", nerr);
        return -1;
    }
    server_log(LL_NOTICE, "Node id %s", server.node_id);
    commands_init();
    info_init();
    ks_init();
    server_subscribe_events();
    kv_used_memory_refresh();
    char err[CONFIG_ERR_LEN];
    if (net_listen(err, sizeof(err)) != 0) {
        server_log(LL_WARNING, "%s", err);
        return -1;
    }
    if (server_start_cluster() != 0) {
        return -1;
    }
    /* the loop accepts connections while the engine replays its WAL (-LOADING) */
    if (server.mode == MODE_PERSISTENT && persist_start() != 0) {
        return -1;
    }
    write_pidfile();
    server_log(LL_NOTICE, "Server initialized");
    server_log(LL_NOTICE, "Ready to accept connections tcp on port %d (mode %s)", net_bound_port,
               server.mode == MODE_CACHE ? "cache" : "persistent");
    return 0;
}

/* The statistics a change counts: server.dirty (a write or delete: 1; a flush:
 * the keys it removed + 1), expired_keys, evicted_keys. All but the flush are
 * counters (no call per write); the flush adds its count here. */
static void stats_on_flushed(const struct store_ev *ev, void *arg) {
    (void)arg;
    server.dirty += (long long)ev->count + 1;
}

void server_subscribe_events(void) {
    client_attach_store();
    multi_subscribe();
    store_subscribe_count(STORE_EV_BIT(STORE_EV_WRITTEN) | STORE_EV_BIT(STORE_EV_DELETED),
                          &server.dirty);
    store_subscribe_count(STORE_EV_BIT(STORE_EV_EXPIRED), &server.stat_expiredkeys);
    store_subscribe_count(STORE_EV_BIT(STORE_EV_EVICTED), &server.stat_evictedkeys);
    store_subscribe(STORE_SUB_OBSERVER, STORE_EV_BIT(STORE_EV_FLUSHED), stats_on_flushed, NULL);
    store_init();
}

void server_stop(void) {
    net_close_listeners();
    client_free_pending_closes();  /* first: these are also in server.clients */
    while (server.clients) {
        client_free(server.clients);
    }
    /* after the clients (their waiting requests cancelled), before the loop goes */
    cluster_stop(server.cluster);
    server.cluster = NULL;
    slowlog_reset();
    if (server.pidfile && server.pidfile[0]) {
        server_log(LL_NOTICE, "Removing the pid file.");
        unlink(server.pidfile);
    }
    if (server.mode == MODE_PERSISTENT) {
        persist_close(); /* writes the last batch, syncs, records clean counts */
    }
    server_log(LL_WARNING, "kvd is now ready to exit, bye bye...");
    ks_deinit();
    if (server.base) {
        event_base_free(server.base);
        server.base = NULL;
    }
    config_deinit();
}
