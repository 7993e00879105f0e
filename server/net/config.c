/* server/net/config.c: the one configuration table. Each row (name, type, bounds,
 * default, runtime-modifiable, apply hook, help) drives kv.conf parsing, the
 * "--name value" command line, CONFIG GET/SET/REWRITE and `kvd --help-config`.
 * Values live in `server` (or, for directives kept only for tools, in this file).
 *
 * Syntax and errors follow Redis 7: redis.conf lines ("name arg ..." with quoting),
 * memory units (1k = 1000, 1kb = 1024, ... gb), yes/no booleans, enum names, and
 * CONFIG SET of several pairs all or nothing.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "server/net/net.h"

enum cfg_type { CFG_BOOL, CFG_INT, CFG_LL, CFG_SIZE, CFG_MEMORY, CFG_ENUM, CFG_STRING,
                CFG_SPECIAL };

enum {
    CFG_IMMUTABLE = 1u << 0,  /* only in kv.conf / on the command line */
    CFG_MEMUNITS = 1u << 1,   /* a CFG_SIZE read as a memory value, as Redis's MEMORY_CONFIG */
    CFG_MULTI_ARG = 1u << 1,  /* a file line's arguments are joined by spaces */
    CFG_MULTI_LINE = 1u << 2, /* several file lines accumulate (save, c-o-b-l) */
};

struct cfg_enum {
    const char *name;
    int value;
};

struct config {
    const char *name;
    const char *alias;              /* Redis's older name, or NULL */
    int type;
    unsigned flags;
    void *ptr;                      /* int*, long long*, char** (by type) */
    long long min, max;             /* numeric bounds */
    const char *def;                /* default, as text */
    const struct cfg_enum *enums;   /* CFG_ENUM */
    /* CFG_SPECIAL: parse into state (reset: start from nothing) / render */
    int (*set)(const char *val, int reset, const char **err);
    void (*get)(char *buf, size_t cap);
    int (*apply)(char *err, size_t errlen); /* after a change; may fail */
    const char *help;               /* one paragraph for kv.conf / --help-config */
};

/* ------------------------------------------------------------------------------
 * Storage for directives kept only for tools, and the special ones
 * ------------------------------------------------------------------------------ */
static int cfg_daemonize;
static char *cfg_appendfilename;
static char *cfg_dbfilename;
static int cfg_latency_tracking;
static char *cfg_dir;               /* as given; CONFIG GET shows the cwd */
static char cfg_save[256];          /* "3600 1 300 100 60 10000" or "" */
static long long cob_replica[3], cob_pubsub[3];

static const struct cfg_enum enum_loglevel[] = {
    {"debug", LL_DEBUG}, {"verbose", LL_VERBOSE}, {"notice", LL_NOTICE},
    {"warning", LL_WARNING}, {NULL, 0}};
static const struct cfg_enum enum_policy[] = {
    {"volatile-lru", MM_VOLATILE_LRU}, {"volatile-lfu", MM_VOLATILE_LFU},
    {"volatile-random", MM_VOLATILE_RANDOM}, {"volatile-ttl", MM_VOLATILE_TTL},
    {"allkeys-lru", MM_ALLKEYS_LRU}, {"allkeys-lfu", MM_ALLKEYS_LFU},
    {"allkeys-random", MM_ALLKEYS_RANDOM}, {"noeviction", MM_NOEVICTION}, {NULL, 0}};
static const struct cfg_enum enum_mode[] = {
    {"cache", MODE_CACHE}, {"persistent", MODE_PERSISTENT}, {NULL, 0}};
static const struct cfg_enum enum_fsync[] = {
    {"always", 0}, {"everysec", 1}, {"no", 2}, {NULL, 0}};
static const struct cfg_enum enum_debug[] = {
    {"no", 0}, {"yes", 1}, {"local", 2}, {NULL, 0}};

/* ---- apply hooks ---- */
static int apply_listen(char *err, size_t errlen) {
    return net_rebind(err, errlen);
}

static int apply_dir(char *err, size_t errlen) {
    if (cfg_dir && cfg_dir[0] && chdir(cfg_dir) != 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        return -1;
    }
    return 0;
}

static int apply_maxmemory(char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    ks_evict_start(); /* over a lower limit: evict now, in bounded slices */
    return 0;
}

static int apply_hz(char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    if (server.hz < 1) server.hz = 1;
    if (server.hz > 500) server.hz = 500;
    net_reset_cron();
    return 0;
}

static int apply_bulk_len(char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    for (struct client *c = server.clients; c; c = c->next) {
        c->parser.lim.max_bulk_len = server.proto_max_bulk_len;
    }
    return 0;
}

static int apply_mode(char *err, size_t errlen) {
    if (server.mode == MODE_PERSISTENT && server.databases > 32767) {
        /* the top bit of a stored db number marks a big hash's field record */
        snprintf(err, errlen, "mode persistent supports at most 32767 databases");
        return -1;
    }
    return 0;
}

static int apply_daemonize(char *err, size_t errlen) {
    if (cfg_daemonize) {
        snprintf(err, errlen, "kvd does not daemonize: run it under a supervisor "
                              "(daemonize must be 'no')");
        return -1;
    }
    return 0;
}

/* The cluster directives together: quorums within the replication factor, a
 * secret when enabled. Runs after kv.conf / the command line and after CONFIG SET
 * of write-quorum or read-quorum (the only cluster ones settable at run time). */
static int apply_cluster(char *err, size_t errlen) {
    if (server.write_quorum > server.replication_factor) {
        snprintf(err, errlen, "write-quorum (%d) must be between 1 and replication-factor (%d)",
                 server.write_quorum, server.replication_factor);
        return -1;
    }
    if (server.read_quorum > server.replication_factor) {
        snprintf(err, errlen, "read-quorum (%d) must be between 1 and replication-factor (%d)",
                 server.read_quorum, server.replication_factor);
        return -1;
    }
    if (server.cluster_enabled &&
        (server.cluster_secret == NULL || server.cluster_secret[0] == '\0')) {
        snprintf(err, errlen, "cluster-enabled yes requires cluster-secret (the secret every "
                              "node of the cluster shares)");
        return -1;
    }
    return 0;
}

/* stream-throughput-mb-per-sec: the running cluster takes the new pace at once */
static int apply_stream_rate(char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    if (server.cluster) {
        cluster_set_stream_rate(server.cluster,
                                (uint64_t)server.stream_throughput_mb_per_sec << 20);
    }
    return 0;
}

/* ---- special directives ---- */
static int set_node_weight(const char *val, int reset, const char **err) {
    (void)reset;
    char *end;
    errno = 0;
    double w = strtod(val, &end);
    if (errno || end == val || *end || !(w > 0 && w <= 1000)) {
        *err = "argument must be a number above 0 and at most 1000";
        return -1;
    }
    server.node_weight = w;
    return 0;
}

static void get_node_weight(char *buf, size_t cap) {
    snprintf(buf, cap, "%g", server.node_weight);
}

static int set_save(const char *val, int reset, const char **err) {
    char **argv;
    int argc = kv_split_args(val, &argv);
    if (argc < 0 || argc % 2 != 0) {
        kv_free(argv);
        *err = "Invalid save parameters";
        return -1;
    }
    for (int i = 0; i < argc; i++) {
        char *end;
        errno = 0;
        long long v = strtoll(argv[i], &end, 10);
        if (errno || *end || end == argv[i] || v < 0) {
            kv_free(argv);
            *err = "Invalid save parameters";
            return -1;
        }
    }
    char buf[sizeof(cfg_save)];
    buf[0] = '\0';
    if (!reset) {
        snprintf(buf, sizeof(buf), "%s", cfg_save);
    }
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? " " : "", argv[i]);
    }
    kv_free(argv);
    memcpy(cfg_save, buf, sizeof(cfg_save));
    return 0;
}

static void get_save(char *buf, size_t cap) {
    snprintf(buf, cap, "%s", cfg_save);
}

/* A memory value as Redis 7.0's memtoull reads it for CONFIG SET: digits (none
 * means 0) and an optional unit (b k kb m mb g gb, any case), no sign. Too many
 * digits saturate and a unit overflow wraps, as there, so that the bounds check
 * refuses them with Redis's message. Returns 0, or -1 when it is not one. */
static int config_memtoull(const char *s, unsigned long long *out) {
    static const struct {
        const char *unit;
        unsigned long long mul;
    } units[] = {{"", 1}, {"b", 1}, {"k", 1000}, {"kb", 1024}, {"m", 1000 * 1000},
                 {"mb", 1024 * 1024}, {"g", 1000ULL * 1000 * 1000},
                 {"gb", 1024ULL * 1024 * 1024}};
    const char *u = s;
    while (*u >= '0' && *u <= '9') {
        u++;
    }
    size_t k;
    for (k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
        if (strcasecmp(u, units[k].unit) == 0) {
            break;
        }
    }
    if (k == sizeof(units) / sizeof(units[0])) {
        return -1;
    }
    unsigned long long v = 0;
    for (const char *p = s; p < u; p++) {
        unsigned d = (unsigned)(*p - '0');
        v = v > (ULLONG_MAX - d) / 10 ? ULLONG_MAX : v * 10 + d;
    }
    *out = v * units[k].mul;
    return 0;
}

static int set_cobl(const char *val, int reset, const char **err) {
    (void)reset; /* each class named is set; the others are kept, as Redis */
    char **argv;
    int argc = kv_split_args(val, &argv);
    if (argc <= 0 || argc % 4 != 0) {
        kv_free(argv);
        *err = "Wrong number of arguments in buffer limit configuration.";
        return -1;
    }
    long long vals[16][3];
    int cls[16];
    int n = 0;
    for (int i = 0; i < argc && n < 16; i += 4, n++) {
        if (strcasecmp(argv[i], "normal") == 0) cls[n] = 0;
        else if (strcasecmp(argv[i], "replica") == 0 || strcasecmp(argv[i], "slave") == 0) cls[n] = 1;
        else if (strcasecmp(argv[i], "pubsub") == 0) cls[n] = 2;
        else {
            kv_free(argv);
            *err = "Invalid client class specified in buffer limit configuration.";
            return -1;
        }
        /* as Redis 7.0.15: hard and soft as memtoull reads them (past LLONG_MAX
         * they are kept as unsigned, i.e. no limit); the seconds as strtoll reads
         * them (no leading blank, nothing after, saturating) kept in an int as
         * Redis does (4294967296 is 0), and refused when that is negative */
        unsigned long long hard, soft;
        const char *sec = argv[i + 3];
        char *end;
        long long secs = strtoll(sec, &end, 10);
        secs = (int)(unsigned)(unsigned long long)secs;
        if (config_memtoull(argv[i + 1], &hard) != 0 ||
            config_memtoull(argv[i + 2], &soft) != 0 || isspace((unsigned char)sec[0]) ||
            *end != '\0' || secs < 0) {
            kv_free(argv);
            *err = "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
            return -1;
        }
        vals[n][0] = (long long)hard;
        vals[n][1] = (long long)soft;
        vals[n][2] = secs;
    }
    kv_free(argv);
    for (int i = 0; i < n; i++) {
        if (cls[i] == 0) {
            server.client_output_buffer_limit_hard = vals[i][0];
            server.client_output_buffer_limit_soft = vals[i][1];
            server.client_output_buffer_limit_secs = (int)vals[i][2];
        } else {
            long long *dst = cls[i] == 1 ? cob_replica : cob_pubsub;
            memcpy(dst, vals[i], sizeof(vals[i]));
        }
    }
    return 0;
}

/* Redis 7.0 names the replica class "slave" here (CONFIG GET and REWRITE). */
static void get_cobl(char *buf, size_t cap) {
    snprintf(buf, cap, "normal %llu %llu %d slave %llu %llu %lld pubsub %llu %llu %lld",
             (unsigned long long)server.client_output_buffer_limit_hard,
             (unsigned long long)server.client_output_buffer_limit_soft,
             server.client_output_buffer_limit_secs, (unsigned long long)cob_replica[0],
             (unsigned long long)cob_replica[1], cob_replica[2],
             (unsigned long long)cob_pubsub[0], (unsigned long long)cob_pubsub[1],
             cob_pubsub[2]);
}

/* ------------------------------------------------------------------------------
 * The table (kv.conf lists the directives in this order)
 * ------------------------------------------------------------------------------ */
#define B(n, f, p, d, a, h) {n, NULL, CFG_BOOL, f, p, 0, 1, d, NULL, NULL, NULL, a, h}
#define I(n, f, p, lo, hi, d, a, h) {n, NULL, CFG_INT, f, p, lo, hi, d, NULL, NULL, NULL, a, h}
#define L(n, f, p, lo, hi, d, a, h) {n, NULL, CFG_LL, f, p, lo, hi, d, NULL, NULL, NULL, a, h}
#define Z(n, al, f, p, lo, hi, d, a, h) {n, al, CFG_SIZE, f, p, lo, hi, d, NULL, NULL, NULL, a, h}
#define M(n, f, p, lo, hi, d, a, h) {n, NULL, CFG_MEMORY, f, p, lo, hi, d, NULL, NULL, NULL, a, h}
#define E(n, f, p, e, d, a, h) {n, NULL, CFG_ENUM, f, p, 0, 0, d, e, NULL, NULL, a, h}
#define S(n, f, p, d, a, h) {n, NULL, CFG_STRING, f, p, 0, 0, d, NULL, NULL, NULL, a, h}
#define X(n, f, set, get, d, a, h) {n, NULL, CFG_SPECIAL, f, NULL, 0, 0, d, NULL, set, get, a, h}

static struct config configs[] = {
    E("mode", CFG_IMMUTABLE, &server.mode, enum_mode, "persistent", apply_mode,
      "How the node keeps data. 'persistent': every write goes to the LSM engine in "
      "<dir>/data (WAL, memtables, SSTables); memory holds a cache of the working set "
      "bounded by maxmemory, data beyond it lives on disk; durability per appendfsync. "
      "'cache': everything in memory with TTL expiry and maxmemory eviction, nothing "
      "written to disk."),
    I("port", 0, &server.port, 0, 65535, "6379", apply_listen,
      "TCP port for clients. 0 picks a free port and logs it."),
    S("bind", CFG_MULTI_ARG, &server.bind, "* -::*", apply_listen,
      "Addresses to listen on, separated by spaces. '*' is every IPv4 address, '::*' every "
      "IPv6 one; a leading '-' makes an address optional (skipped if unavailable)."),
    B("protected-mode", 0, &server.protected_mode, "yes", NULL,
      "With no requirepass, refuse clients that are not on the loopback interface."),
    I("tcp-backlog", CFG_IMMUTABLE, &server.tcp_backlog, 0, INT_MAX, "511", NULL,
      "listen(2) backlog of pending connections."),
    I("timeout", 0, &server.timeout, 0, INT_MAX, "0", NULL,
      "Close a client after this many idle seconds (0 = never)."),
    I("tcp-keepalive", 0, &server.tcp_keepalive, 0, INT_MAX, "300", NULL,
      "TCP keepalive period in seconds for client sockets (0 = off)."),
    B("daemonize", CFG_IMMUTABLE, &cfg_daemonize, "no", apply_daemonize,
      "Only 'no' is accepted: run kvd under a supervisor (systemd, a container)."),
    S("pidfile", 0, &server.pidfile, "", NULL,
      "Write the process id to this file at start, remove it at shutdown (empty = none)."),
    E("loglevel", 0, &server.loglevel, enum_loglevel, "notice", NULL,
      "Log verbosity: debug, verbose, notice or warning."),
    S("logfile", CFG_IMMUTABLE, &server.logfile, "", NULL,
      "Log file path; empty logs to standard output."),
    I("databases", CFG_IMMUTABLE, &server.databases, 1, INT_MAX, "16", NULL,
      "Number of databases (SELECT 0 .. databases-1)."),
    S("dir", 0, &cfg_dir, "", apply_dir,
      "Working directory: data files (later), the node id. Empty = where kvd started."),
    S("requirepass", 0, &server.requirepass, "", NULL,
      "Password for the default user: clients must AUTH first (empty = no password)."),
    L("maxclients", 0, &server.maxclients, 1, 4294967295LL, "10000", NULL,
      "Most connected clients; more are refused with '-ERR max number of clients reached'."),
    M("maxmemory", 0, &server.maxmemory, 0, LLONG_MAX, "0", apply_maxmemory,
      "Memory limit for data (bytes; units k kb m mb g gb). 0 = no limit. Over the limit, "
      "maxmemory-policy decides: evict keys, or refuse writes with -OOM."),
    E("maxmemory-policy", 0, &server.maxmemory_policy, enum_policy, "noeviction", NULL,
      "What to evict at maxmemory: noeviction, allkeys-lru, allkeys-lfu, allkeys-random, "
      "volatile-lru, volatile-lfu, volatile-random, volatile-ttl."),
    I("maxmemory-samples", 0, &server.maxmemory_samples, 1, INT_MAX, "5", NULL,
      "Keys sampled per eviction (more = closer to true LRU/LFU, slower)."),
    I("lfu-log-factor", 0, &server.lfu_log_factor, 0, INT_MAX, "10", NULL,
      "LFU counter logarithm factor (higher = slower counter growth)."),
    I("lfu-decay-time", 0, &server.lfu_decay_time, 0, INT_MAX, "1", NULL,
      "Minutes of idleness after which a key's LFU counter is decremented (0 = on every "
      "access check)."),
    I("active-expire-effort", 0, &server.active_expire_effort, 1, 10, "1", NULL,
      "Effort of the active expiry cycle, 1-10 (more CPU, fewer stale expired keys)."),
    Z("hash-max-listpack-entries", "hash-max-ziplist-entries", 0, &ks_hash_max_listpack_entries,
      0, LONG_MAX, "512", NULL,
      "A hash with at most this many fields, each field and value no longer than "
      "hash-max-listpack-value, is kept compact (OBJECT ENCODING listpack)."),
    Z("hash-max-listpack-value", "hash-max-ziplist-value", CFG_MEMUNITS,
      &ks_hash_max_listpack_value, 0,
      LONG_MAX, "64", NULL, "See hash-max-listpack-entries."),
    I("hz", 0, &server.hz, 0, INT_MAX, "10", apply_hz,
      "Background task frequency per second (expiry, timeouts, stats), clamped to 1-500."),
    M("proto-max-bulk-len", 0, &server.proto_max_bulk_len, 1024 * 1024, LLONG_MAX, "512mb",
      apply_bulk_len, "Largest bulk string (key or value) a client may send."),
    M("client-query-buffer-limit", 0, &server.client_query_buffer_limit, 1024 * 1024,
      LLONG_MAX, "1gb", NULL,
      "Largest unprocessed input per client; a client over it is closed with a log line."),
    X("client-output-buffer-limit", CFG_MULTI_ARG | CFG_MULTI_LINE, set_cobl, get_cobl,
      "normal 0 0 0 replica 256mb 64mb 60 pubsub 32mb 8mb 60", NULL,
      "Per class: <class> <hard> <soft> <soft seconds>. A client whose pending output "
      "exceeds hard, or soft for longer than soft seconds, is closed. 0 = no limit. Only "
      "the normal class applies (no replicas or pub/sub yet)."),
    L("slowlog-log-slower-than", 0, &server.slowlog_log_slower_than, -1, LLONG_MAX, "10000",
      NULL, "Log commands slower than this many microseconds (-1 = off, 0 = every command)."),
    L("slowlog-max-len", 0, &server.slowlog_max_len, 0, LONG_MAX, "128", NULL,
      "Entries kept in the slow log."),
    B("latency-tracking", 0, &cfg_latency_tracking, "yes", NULL,
      "Accepted for compatibility; per-command latency percentiles are not tracked yet."),
    E("enable-debug-command", CFG_IMMUTABLE, &server.enable_debug_command, enum_debug,
      "local", NULL,
      "Who may run DEBUG: no, yes, or local (loopback clients only; Redis's default is no)."),
    L("debug-clock-offset-ms", 0, &server.debug_clock_offset_ms, -1000000000000LL,
      1000000000000LL, "0", NULL,
      "Shifts the node's one clock by this many milliseconds (negative: back), for "
      "clock-skew tests: TIME, TTLs, expiry and the HLC of versions all read it. The HLC "
      "never goes back: after a backward shift versions count logically until the "
      "clock catches up."),
    B("appendonly", 0, &server.appendonly, "no", NULL,
      "Accepted and stored for tools. In mode persistent the engine's WAL (kvd's AOF) is "
      "always written; in mode cache nothing is."),
    E("appendfsync", 0, &server.appendfsync, enum_fsync, "everysec", NULL,
      "Mode persistent: when the WAL is fsynced. always: a write's reply is sent only "
      "after the fsync covering it (group commit: one fsync serves every client of a loop "
      "turn; the loop keeps serving meanwhile); everysec: once a second (a crash of the "
      "machine loses at most about a second; a crash of kvd alone loses nothing); no: "
      "never explicitly. No effect in mode cache."),
    M("memtable-size", CFG_IMMUTABLE, &server.memtable_size, 0, 1ll << 40, "0", NULL,
      "Mode persistent: bytes of one memtable (two may exist while one is flushed). 0 = "
      "maxmemory/8 (1gb/8 without maxmemory), at least 1mb, at most 64mb, and also "
      "full at 50000 entries. A size set here is the only limit."),
    I("engine-background-nice", CFG_IMMUTABLE, &server.engine_bg_nice, 0, 19, "10", NULL,
      "Mode persistent, Linux: the nice value of the engine's flush and compaction "
      "thread. Above 0 the event loop gets the CPU first and compaction catches up "
      "when it idles; writes slow down if compaction falls far behind. 0 = the "
      "loop's priority."),
    M("block-cache-size", CFG_IMMUTABLE, &server.block_cache_size, 0, 1ll << 40, "0", NULL,
      "Mode persistent: bytes of uncompressed table blocks cached. 0 = maxmemory/4 "
      "(1gb/4 without maxmemory), at least 1mb."),
    L("gc-grace-seconds", CFG_IMMUTABLE, &server.gc_grace_seconds, 0, 1000000000LL, "864000",
      NULL,
      "Mode persistent: how long a tombstone (a delete or an expiry, with its version) "
      "is kept before compaction may drop it (Cassandra's gc_grace_seconds; 10 days). A "
      "replica or hint older than this could bring a deleted value back. In a cluster "
      "also until a repair that every replica answered started after it was written; a "
      "node down longer than this repairs all its ranges before it serves again."),
    B("appendfsync-in-loop", 0, &server.appendfsync_in_loop, "no", NULL,
      "With appendfsync always: 'no' (default) asks the engine's sync thread for one "
      "fsync per loop turn and keeps serving other clients meanwhile (group commit); "
      "'yes' fsyncs on the loop thread, as Redis does, blocking everyone for it but "
      "saving two thread wake-ups per sync (faster on an overloaded machine)."),
    S("appendfilename", CFG_IMMUTABLE, &cfg_appendfilename, "appendonly.aof", NULL,
      "Stored for tools; no effect in mode cache."),
    X("save", CFG_MULTI_ARG | CFG_MULTI_LINE, set_save, get_save, "3600 1 300 100 60 10000",
      NULL, "Snapshot points '<seconds> <changes> ...'; \"\" for none. Stored for tools; no "
      "effect in mode cache."),
    S("dbfilename", 0, &cfg_dbfilename, "dump.rdb", NULL,
      "Stored for tools; no effect in mode cache."),
    B("cluster-enabled", CFG_IMMUTABLE, &server.cluster_enabled, "no", apply_cluster,
      "yes: this node is a member of a kvd cluster (leaderless, Dynamo style: any node "
      "serves any key through its replicas). no: one node exactly as without cluster "
      "support; no cluster code runs. INFO's cluster_enabled stays 0 either way (client "
      "libraries keep their standalone mode); the cluster's own section is kvdcluster."),
    S("cluster-seeds", CFG_IMMUTABLE, &server.cluster_seeds, "", NULL,
      "Nodes to contact at start, 'host:port,host:port' (their client ports; may name this "
      "node). Empty: a cluster of its own until others name it as their seed. The node "
      "serves once every seed answered."),
    B("cluster-join", CFG_IMMUTABLE, &server.cluster_join, "no", NULL,
      "yes: at its first start (no <dir>/node-tokens yet) this node joins a running "
      "cluster: once its seeds answered it takes tokens that split the widest ranges, "
      "gossips status joining (writes reach it, reads do not), streams every range it "
      "will replicate from the current replicas (paced by stream-throughput-mb-per-sec), "
      "keeps its tokens and becomes normal. no (or a later start): it is normal at once, "
      "with tokens drawn at random (how a new cluster's first nodes start)."),
    S("cluster-replace", CFG_IMMUTABLE, &server.cluster_replace, "", NULL,
      "The id of a dead member this node replaces. At its first start (no "
      "<dir>/node-tokens yet) the node waits until its seeds answered and the member is "
      "down by phi, takes the member's tokens (status joining: writes reach it, reads do "
      "not), gossips the member removed, streams the ranges at those tokens from the "
      "surviving replicas (paced by stream-throughput-mb-per-sec), keeps the tokens and "
      "becomes normal; the dead id leaves the ring. Refused (logged; the node serves "
      "nothing) if the member is alive, unknown or not normal. Empty: no replace."),
    S("cluster-secret", CFG_IMMUTABLE, &server.cluster_secret, "", apply_cluster,
      "The secret every node of the cluster shares (required with cluster-enabled yes). "
      "Peers prove it by challenge and response; it never crosses the wire."),
    I("replication-factor", CFG_IMMUTABLE, &server.replication_factor, 1, 16, "3",
      apply_cluster, "N: how many nodes keep a copy of each key (at most the members)."),
    I("write-quorum", 0, &server.write_quorum, 1, 16, "2", apply_cluster,
      "W: a write is acknowledged once this many replicas stored it (1..N). The default of "
      "new connections (KVD CONSISTENCY changes one connection's); CONFIG SET-able."),
    I("read-quorum", 0, &server.read_quorum, 1, 16, "2", apply_cluster,
      "R: a read answers once this many replicas answered (1..N); W + R > N reads every "
      "acknowledged write. The default of new connections; CONFIG SET-able."),
    I("vnodes", CFG_IMMUTABLE, &server.vnodes, 1, 4096, "16", NULL,
      "Tokens per node on the ring at node-weight 1, drawn once and kept in <dir> beside "
      "the node id (node-tokens): changing it later does not move a node's tokens."),
    X("node-weight", CFG_IMMUTABLE, set_node_weight, get_node_weight, "1", NULL,
      "Scales this node's share of the ring (its tokens: vnodes x weight), e.g. 2 for a "
      "machine twice as big. Taken when the tokens are first drawn."),
    S("cluster-announce-ip", CFG_IMMUTABLE, &server.cluster_announce_ip, "", NULL,
      "The address peers dial to reach this node. Empty: the first bind address (which "
      "must then be a concrete address, not '*')."),
    I("cluster-announce-port", CFG_IMMUTABLE, &server.cluster_announce_port, 0, 65535, "0",
      NULL, "The port peers dial. 0: the client port."),
    I("cluster-request-timeout", CFG_IMMUTABLE, &server.cluster_request_timeout, 1, 3600000,
      "1000", NULL,
      "Milliseconds a coordinator waits for a replica's answer (and for a peer connection "
      "to be made) before it counts the replica as failed."),
    L("hinted-handoff-window", CFG_IMMUTABLE, &server.hinted_handoff_window, 0,
      1000LL * 86400 * 365, "10800000", NULL,
      "Milliseconds a write a replica missed is kept as a hint for it (3 hours); older "
      "hints are dropped. Keep it below gc-grace-seconds. In persistent mode hints are "
      "also logged in <dir>/hints/ and survive a restart; in cache mode they live in "
      "memory."),
    M("hinted-handoff-max-bytes", CFG_IMMUTABLE, &server.hinted_handoff_max_bytes, 0,
      LLONG_MAX, "64mb", NULL,
      "Most bytes of hints kept; beyond it new hints are refused (counted in INFO "
      "kvdcluster hints_refused_full; the write's reply is unaffected)."),
    I("repair-interval-seconds", CFG_IMMUTABLE, &server.repair_interval_seconds, 0, 100000000,
      "60", NULL,
      "Anti-entropy: a background Merkle repair of every ring range this node replicates "
      "starts every this many seconds (from the start of the previous pass), comparing "
      "trees with the other replicas and moving only the records under differing leaves. "
      "Ranges in sync cost a scan of the range and 16 bytes per replica. 0: no background "
      "repair (KVD REPAIR still runs one)."),
    I("repair-throughput-mb-per-sec", CFG_IMMUTABLE, &server.repair_throughput_mb_per_sec, 0,
      100000, "16", NULL,
      "Anti-entropy: the pace of all repair traffic of this node (trees, pages of records, "
      "records pushed), in MiB per second. 0: unpaced."),
    I("stream-throughput-mb-per-sec", 0, &server.stream_throughput_mb_per_sec, 0, 100000,
      "64", apply_stream_rate,
      "The pace of streaming ranges when nodes come and go (a join, KVD LEAVE, KVD "
      "REMOVENODE, cluster-replace), in MiB per second, on a budget of its own apart "
      "from repair-throughput-mb-per-sec. 0: unpaced. CONFIG SET-able: a running stream "
      "takes the new pace at once."),
    I("phi-convict-threshold", CFG_IMMUTABLE, &server.phi_convict_threshold, 1, 100, "8",
      NULL,
      "Failure detection (phi accrual over gossiped heartbeats): a member whose phi "
      "reaches this is down (coordinators skip it at once and hint its writes), from half "
      "of it suspect. phi 8 means a heartbeat this late would happen once in 10^8 by "
      "chance; lower detects sooner with more false alarms (Cassandra's default is 8)."),
    L("cluster-max-clock-offset-ms", CFG_IMMUTABLE, &server.cluster_max_clock_offset_ms, 1,
      86400000LL, "500", NULL,
      "A node whose clock is more than this many milliseconds from the median of its "
      "peers' (measured on gossip round trips) says so in the log and INFO (clock_ok:0) "
      "and refuses to coordinate writes (-CLOCKSKEW) until it is back in range; reads "
      "still work. Last-write-wins would otherwise silently drop its writes, or let them "
      "win every conflict."),
};
#define NCONFIGS (sizeof(configs) / sizeof(configs[0]))

#undef B
#undef I
#undef L
#undef Z
#undef M
#undef E
#undef S
#undef X

static int name_is(const char *name, const char *s, size_t len) {
    return name != NULL && strlen(name) == len && strncasecmp(name, s, len) == 0;
}

static struct config *config_find(const char *name, size_t len) {
    for (size_t i = 0; i < NCONFIGS; i++) {
        if (name_is(configs[i].name, name, len) || name_is(configs[i].alias, name, len)) {
            return &configs[i];
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------------
 * Parsing and rendering one value
 * ------------------------------------------------------------------------------ */
static char errbuf[CONFIG_ERR_LEN];

/* Parses val into the directive's storage. Returns 0, or -1 with *err (no
 * "ERR " prefix, Redis's words). */
static int config_parse_set(struct config *cf, const char *val, int reset, const char **err) {
    switch (cf->type) {
    case CFG_BOOL:
        if (strcasecmp(val, "yes") == 0) {
            *(int *)cf->ptr = 1;
        } else if (strcasecmp(val, "no") == 0) {
            *(int *)cf->ptr = 0;
        } else {
            *err = "argument must be 'yes' or 'no'";
            return -1;
        }
        return 0;
    case CFG_INT:
    case CFG_LL:
    case CFG_SIZE:
    case CFG_MEMORY: {
        long long v;
        if (cf->type == CFG_MEMORY || (cf->flags & CFG_MEMUNITS)) {
            unsigned long long u;
            if (config_memtoull(val, &u) != 0) {
                *err = "argument must be a memory value";
                return -1;
            }
            v = (long long)u; /* past LLONG_MAX: negative, refused by the bounds */
        } else if (resp_str2ll(val, strlen(val), &v) != 0) {
            *err = "argument couldn't be parsed into an integer";
            return -1;
        }
        if (v < cf->min || v > cf->max) {
            snprintf(errbuf, sizeof(errbuf), "argument must be between %lld and %lld inclusive",
                     cf->min, cf->max);
            *err = errbuf;
            return -1;
        }
        if (cf->type == CFG_INT) {
            *(int *)cf->ptr = (int)v;
        } else if (cf->type == CFG_SIZE) {
            *(size_t *)cf->ptr = (size_t)v;
        } else {
            *(long long *)cf->ptr = v;
        }
        return 0;
    }
    case CFG_ENUM:
        for (const struct cfg_enum *e = cf->enums; e->name; e++) {
            if (strcasecmp(e->name, val) == 0) {
                *(int *)cf->ptr = e->value;
                return 0;
            }
        }
        {
            size_t n = (size_t)snprintf(errbuf, sizeof(errbuf),
                                        "argument(s) must be one of the following: ");
            for (const struct cfg_enum *e = cf->enums; e->name && n < sizeof(errbuf); e++) {
                n += (size_t)snprintf(errbuf + n, sizeof(errbuf) - n, "%s%s", e->name,
                                      e[1].name ? ", " : "");
            }
            *err = errbuf;
        }
        return -1;
    case CFG_STRING: {
        char **dst = cf->ptr;
        kv_free(*dst);
        *dst = kv_strndup(val, strlen(val));
        return 0;
    }
    case CFG_SPECIAL:
        return cf->set(val, reset, err);
    }
    return -1;
}

static void config_render(const struct config *cf, char *buf, size_t cap) {
    switch (cf->type) {
    case CFG_BOOL:
        snprintf(buf, cap, "%s", *(int *)cf->ptr ? "yes" : "no");
        break;
    case CFG_INT:
        snprintf(buf, cap, "%d", *(int *)cf->ptr);
        break;
    case CFG_LL:
    case CFG_MEMORY:
        snprintf(buf, cap, "%lld", *(long long *)cf->ptr);
        break;
    case CFG_SIZE:
        snprintf(buf, cap, "%zu", *(size_t *)cf->ptr);
        break;
    case CFG_ENUM: {
        int v = *(int *)cf->ptr;
        buf[0] = '\0';
        for (const struct cfg_enum *e = cf->enums; e->name; e++) {
            if (e->value == v) {
                snprintf(buf, cap, "%s", e->name);
                break;
            }
        }
        break;
    }
    case CFG_STRING: {
        const char *s = *(char **)cf->ptr;
        if (cf->ptr == &cfg_dir) {
            if (getcwd(buf, cap) == NULL) {
                snprintf(buf, cap, "%s", s ? s : "");
            }
            break;
        }
        snprintf(buf, cap, "%s", s ? s : "");
        break;
    }
    case CFG_SPECIAL:
        cf->get(buf, cap);
        break;
    }
}

int config_get_value(const char *name, char *buf, size_t cap) {
    struct config *cf = config_find(name, strlen(name));
    if (cf == NULL) {
        return -1;
    }
    config_render(cf, buf, cap);
    return 0;
}

void config_attach_command(void) {
    config_ops = (struct config_ops){
        .set_pairs = config_set_pairs,
        .get = config_get,
        .get_value = config_get_value,
        .rewrite = config_rewrite,
    };
}

void config_init(void) {
    config_attach_command();
    for (size_t i = 0; i < NCONFIGS; i++) {
        const char *err = NULL;
        if (configs[i].type == CFG_STRING) {
            *(char **)configs[i].ptr = NULL;
        }
        if (config_parse_set(&configs[i], configs[i].def, 1, &err) != 0) {
            fprintf(stderr, "kvd: bad default for %s: %s\n", configs[i].name, err);
            abort();
        }
    }
    server.active_expire_enabled = 1;
}

void config_deinit(void) {
    for (size_t i = 0; i < NCONFIGS; i++) {
        if (configs[i].type == CFG_STRING) {
            char **p = configs[i].ptr;
            kv_free(*p);
            *p = NULL;
        }
    }
    kv_free(server.config_file);
    server.config_file = NULL;
}

/* ------------------------------------------------------------------------------
 * Loading (kv.conf text and the command line)
 * ------------------------------------------------------------------------------ */
int config_load_text(const char *text, char *err, size_t errlen) {
    unsigned char seen[NCONFIGS];
    memset(seen, 0, sizeof(seen));
    int lineno = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        lineno++;
        char *line = kv_strndup(p, len);
        p += len + (eol ? 1 : 0);
        char *s = line;
        while (isspace((unsigned char)*s)) s++;
        size_t sl = strlen(s);
        while (sl > 0 && isspace((unsigned char)s[sl - 1])) s[--sl] = '\0';
        if (*s == '#' || *s == '\0') {
            kv_free(line);
            continue;
        }
        char **argv;
        int argc = kv_split_args(s, &argv);
        const char *why = NULL;
        if (argc < 0) {
            why = "Unbalanced quotes in configuration line";
        } else if (argc == 0) {
            kv_free(argv);
            kv_free(line);
            continue;
        }
        struct config *cf = why ? NULL : config_find(argv[0], strlen(argv[0]));
        if (!why && cf == NULL) {
            why = "Bad directive or wrong number of arguments";
        }
        if (!why) {
            char joined[4096];
            joined[0] = '\0';
            if (!(cf->flags & CFG_MULTI_ARG) && argc != 2) {
                why = "wrong number of arguments";
            } else {
                size_t n = 0;
                for (int i = 1; i < argc && n < sizeof(joined); i++) {
                    n += (size_t)snprintf(joined + n, sizeof(joined) - n, "%s%s",
                                          i > 1 ? " " : "", argv[i]);
                }
                size_t idx = (size_t)(cf - configs);
                int reset = !seen[idx];
                seen[idx] = 1;
                if (config_parse_set(cf, joined, reset, &why) == 0) {
                    why = NULL;
                }
            }
        }
        if (why) {
            snprintf(err, errlen, "\n*** FATAL CONFIG FILE ERROR (Redis %s) ***\n"
                                  "Reading the configuration file, at line %d\n>>> '%s'\n%s",
                     KVD_REDIS_COMPAT_VERSION, lineno, s, why);
            kv_free(argv);
            kv_free(line);
            return -1;
        }
        kv_free(argv);
        kv_free(line);
    }
    /* apply hooks that can run before the loop exists (listeners are opened later) */
    for (size_t i = 0; i < NCONFIGS; i++) {
        if (configs[i].apply && configs[i].apply != apply_listen &&
            configs[i].apply != apply_bulk_len) {
            char aerr[CONFIG_ERR_LEN];
            if (configs[i].apply(aerr, sizeof(aerr)) != 0) {
                snprintf(err, errlen, "\n*** FATAL CONFIG FILE ERROR (Redis %s) ***\n%s: %s",
                         KVD_REDIS_COMPAT_VERSION, configs[i].name, aerr);
                return -1;
            }
        }
    }
    return 0;
}

static char *read_file(const char *path) {
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (fp == NULL) {
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = kv_malloc(cap);
    for (;;) {
        if (cap - len < 4096) {
            cap *= 2;
            buf = kv_realloc(buf, cap);
        }
        size_t n = fread(buf + len, 1, cap - len - 1, fp);
        len += n;
        if (n == 0) {
            break;
        }
    }
    buf[len] = '\0';
    if (fp != stdin) {
        fclose(fp);
    }
    return buf;
}

/* Appends s to *buf (growing it). */
static void cat(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        while (*len + n + 1 > *cap) {
            *cap = *cap ? *cap * 2 : 256;
        }
        *buf = kv_realloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

int config_load_argv(int argc, char **argv) {
    char *text = NULL;
    size_t len = 0, cap = 0;
    cat(&text, &len, &cap, "", 0);
    int i = 1;
    if (i < argc && (argv[i][0] != '-' || argv[i][1] != '-')) {
        const char *path = argv[i];
        char *file = read_file(path);
        if (file == NULL) {
            fprintf(stderr, "Fatal error, can't open config file '%s': %s\n", path,
                    strerror(errno));
            kv_free(text);
            return -1;
        }
        cat(&text, &len, &cap, file, strlen(file));
        cat(&text, &len, &cap, "\n", 1);
        kv_free(file);
        if (strcmp(path, "-") != 0) {
            char abs[PATH_MAX];
            if (realpath(path, abs) != NULL) {
                server.config_file = kv_strndup(abs, strlen(abs));
            }
        }
        i++;
    }
    /* "--name v1 v2 --other v" -> "name v1 v2\nother v\n", arguments quoted */
    int first = 1;
    for (; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] == '-' && argv[i][2] != '\0') {
            if (!first) {
                cat(&text, &len, &cap, "\n", 1);
            }
            first = 0;
            cat(&text, &len, &cap, argv[i] + 2, strlen(argv[i] + 2));
        } else if (!first) {
            size_t n = strlen(argv[i]);
            char *q = kv_malloc(n * 4 + 8);
            size_t ql = kv_repr(q, n * 4 + 8, argv[i], n);
            cat(&text, &len, &cap, " ", 1);
            cat(&text, &len, &cap, q, ql);
            kv_free(q);
        } else {
            fprintf(stderr, "Invalid option '%s': expected a config file first or "
                            "--name value pairs\n", argv[i]);
            kv_free(text);
            return -1;
        }
    }
    char err[1024];
    int rc = config_load_text(text, err, sizeof(err));
    kv_free(text);
    if (rc != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------
 * CONFIG SET / GET
 * ------------------------------------------------------------------------------ */
/* One CONFIG SET, all or nothing: the directives, their new values (owned
 * copies) and the values they had (owned, for the rollback). On failure, why
 * says what and bad which pair (its name goes into the error). */
struct config_set_txn {
    int npairs;
    const struct kv_slice *args;
    struct config **cfs;
    char **old;
    char **vals;
    int nset;          /* directives set so far (rolled back on failure) */
    const char *why;
    int bad;
};

/* Step 1: every name known, mutable, not repeated. 0 ok; -1 with the whole
 * error in err (unknown option); 1 with t->why and t->bad. */
static int config_set_check(struct config_set_txn *t, char *err, size_t errlen) {
    for (int i = 0; i < t->npairs; i++) {
        const struct kv_slice *name = &t->args[2 * i];
        t->cfs[i] = config_find(name->p, name->len);
        if (t->cfs[i] == NULL) {
            snprintf(err, errlen, "ERR Unknown option or number of arguments for CONFIG SET - '%.*s'",
                     (int)(name->len > 128 ? 128 : name->len), name->p);
            return -1;
        }
        for (int k = 0; k < i; k++) {
            if (t->cfs[k] == t->cfs[i]) {
                t->why = "duplicate parameter";
                t->bad = i;
                return 1;
            }
        }
        if (t->cfs[i]->flags & CFG_IMMUTABLE) {
            t->why = "can't set immutable config";
            t->bad = i;
            return 1;
        }
        t->vals[i] = kv_strndup(t->args[2 * i + 1].p, t->args[2 * i + 1].len);
    }
    return 0;
}

/* Step 2: sets each, remembering the old value. 0 ok, 1 with why and bad. */
static int config_set_assign(struct config_set_txn *t) {
    for (int i = 0; i < t->npairs; i++) {
        char buf[4096];
        config_render(t->cfs[i], buf, sizeof(buf));
        if (t->cfs[i]->ptr == &cfg_dir) {
            snprintf(buf, sizeof(buf), "%s", cfg_dir ? cfg_dir : "");
        }
        t->old[i] = kv_strndup(buf, strlen(buf));
        t->nset = i + 1;
        if (config_parse_set(t->cfs[i], t->vals[i], 1, &t->why) != 0) {
            t->bad = i;
            return 1;
        }
    }
    return 0;
}

/* Step 3: runs each apply hook once. 0 ok, 1 with why and bad. */
static int config_set_apply(struct config_set_txn *t) {
    for (int i = 0; i < t->npairs; i++) {
        if (t->cfs[i]->apply == NULL) {
            continue;
        }
        int dup = 0;
        for (int k = 0; k < i; k++) {
            dup |= t->cfs[k]->apply == t->cfs[i]->apply;
        }
        if (dup) {
            continue;
        }
        char aerr[CONFIG_ERR_LEN];
        if (t->cfs[i]->apply(aerr, sizeof(aerr)) != 0) {
            snprintf(errbuf, sizeof(errbuf), "%s", aerr);
            t->why = errbuf;
            t->bad = i;
            return 1;
        }
    }
    return 0;
}

/* Puts back the old values of the directives set so far and re-applies them. */
static void config_set_rollback(struct config_set_txn *t) {
    for (int i = 0; i < t->nset; i++) {
        const char *ignored;
        config_parse_set(t->cfs[i], t->old[i], 1, &ignored);
    }
    for (int i = 0; i < t->nset; i++) {
        if (t->cfs[i]->apply) {
            char aerr[CONFIG_ERR_LEN];
            t->cfs[i]->apply(aerr, sizeof(aerr));
        }
    }
}

int config_set_pairs(int npairs, const struct kv_slice *args, char *err, size_t errlen) {
    struct config_set_txn t = {
        .npairs = npairs,
        .args = args,
        .cfs = kv_calloc((size_t)npairs, sizeof(*t.cfs)),
        .old = kv_calloc((size_t)npairs, sizeof(*t.old)),
        .vals = kv_calloc((size_t)npairs, sizeof(*t.vals)),
    };
    int rc = config_set_check(&t, err, errlen);
    if (rc == 0) {
        rc = config_set_assign(&t);
        if (rc == 0) {
            rc = config_set_apply(&t);
        }
        if (rc != 0) {
            config_set_rollback(&t);
        }
    }
    if (rc > 0) {
        const struct kv_slice *bad = &args[2 * t.bad];
        char whybuf[CONFIG_ERR_LEN];
        snprintf(whybuf, sizeof(whybuf), "%s", t.why);
        snprintf(err, errlen, "ERR CONFIG SET failed (possibly related to argument '%.*s') - %s",
                 bad->len > 128 ? 128 : (int)bad->len, bad->p, whybuf);
    }
    for (int i = 0; i < npairs; i++) {
        kv_free(t.old[i]);
        kv_free(t.vals[i]);
    }
    kv_free(t.old);
    kv_free(t.vals);
    kv_free(t.cfs);
    return rc == 0 ? 0 : -1;
}

/* Names and aliases are matched separately, as Redis 7.0 lists both. */
void config_get(int npats, const struct kv_slice *pats, config_visit_fn *fn, void *ctx) {
    char buf[4096];
    for (size_t i = 0; i < NCONFIGS; i++) {
        const char *names[2] = {configs[i].name, configs[i].alias};
        for (int n = 0; n < 2 && names[n]; n++) {
            for (int k = 0; k < npats; k++) {
                if (kv_glob_match(pats[k].p, pats[k].len, names[n], strlen(names[n]), 1)) {
                    config_render(&configs[i], buf, sizeof(buf));
                    fn(ctx, names[n], buf);
                    break;
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------------
 * CONFIG REWRITE
 *
 * HOW IT WORKS
 *   The loaded file is read again line by line. Comments, blank lines and lines
 *   kvd does not know are kept as they are. The first line of a known directive is
 *   replaced by its current value (a multi-line directive writes all its lines
 *   there); later lines of the same directive are dropped. Directives not in the
 *   file are appended after "# Generated by CONFIG REWRITE" when they differ from
 *   their default. The result goes to a temporary file in the same directory,
 *   fsynced, then renamed over the original (its mode kept).
 * ------------------------------------------------------------------------------ */
static void render_memory_human(long long v, char *buf, size_t cap) {
    const long long gb = 1024LL * 1024 * 1024, mb = 1024LL * 1024, kb = 1024;
    if (v != 0 && v % gb == 0) snprintf(buf, cap, "%lldgb", v / gb);
    else if (v != 0 && v % mb == 0) snprintf(buf, cap, "%lldmb", v / mb);
    else if (v != 0 && v % kb == 0) snprintf(buf, cap, "%lldkb", v / kb);
    else snprintf(buf, cap, "%lld", v);
}

/* The directive's current lines for the file ("name value\n" ...). */
static void config_lines(const struct config *cf, char **out, size_t *len, size_t *cap) {
    char val[4096];
    if (cf->type == CFG_MEMORY) {
        render_memory_human(*(long long *)cf->ptr, val, sizeof(val));
    } else if (cf->ptr == &cfg_dir) {
        snprintf(val, sizeof(val), "%s", cfg_dir ? cfg_dir : "");
        if (val[0] == '\0' && getcwd(val, sizeof(val)) == NULL) {
            val[0] = '\0';
        }
    } else {
        config_render(cf, val, sizeof(val));
    }
    char line[8192];
    if (cf->set == set_save) {
        char **argv;
        int argc = kv_split_args(val, &argv);
        if (argc <= 0) {
            int n = snprintf(line, sizeof(line), "save \"\"\n");
            cat(out, len, cap, line, (size_t)n);
        }
        for (int i = 0; i + 1 < argc; i += 2) {
            int n = snprintf(line, sizeof(line), "save %s %s\n", argv[i], argv[i + 1]);
            cat(out, len, cap, line, (size_t)n);
        }
        kv_free(argv);
        return;
    }
    if (cf->set == set_cobl) {
        char **argv;
        int argc = kv_split_args(val, &argv);
        for (int i = 0; i + 3 < argc; i += 4) {
            char h[32], s[32];
            render_memory_human(atoll(argv[i + 1]), h, sizeof(h));
            render_memory_human(atoll(argv[i + 2]), s, sizeof(s));
            int n = snprintf(line, sizeof(line), "client-output-buffer-limit %s %s %s %s\n",
                             argv[i], h, s, argv[i + 3]);
            cat(out, len, cap, line, (size_t)n);
        }
        kv_free(argv);
        return;
    }
    int n;
    if (cf->type == CFG_STRING && !(cf->flags & CFG_MULTI_ARG)) {
        char q[8192];
        kv_repr(q, sizeof(q), val, strlen(val));
        n = snprintf(line, sizeof(line), "%s %s\n", cf->name, q);
    } else {
        n = snprintf(line, sizeof(line), "%s %s\n", cf->name, val);
    }
    cat(out, len, cap, line, (size_t)(n < (int)sizeof(line) ? n : (int)sizeof(line) - 1));
}

static int config_is_default(struct config *cf) {
    char cur[4096], def[4096];
    config_render(cf, cur, sizeof(cur));
    if (cf->ptr == &cfg_dir) {
        return cfg_dir == NULL || cfg_dir[0] == '\0';
    }
    /* render the default through a scratch parse of the same type */
    switch (cf->type) {
    case CFG_STRING:
        return strcmp(cur, cf->def) == 0;
    case CFG_SPECIAL: {
        /* compare by re-rendering: set default into a copy is invasive; compare text */
        if (cf->set == set_save) {
            return strcmp(cfg_save, cf->def) == 0;
        }
        if (cf->set == set_node_weight) {
            return strcmp(cur, cf->def) == 0;
        }
        return strcmp(cur, "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60") == 0;
    }
    case CFG_MEMORY: {
        long long v;
        kv_parse_memory(cf->def, &v);
        return *(long long *)cf->ptr == v;
    }
    case CFG_BOOL:
    case CFG_ENUM:
        snprintf(def, sizeof(def), "%s", cf->def);
        return strcasecmp(cur, def) == 0;
    default:
        return strcmp(cur, cf->def) == 0;
    }
}

/* CONFIG REWRITE's new text from the file's old text (NULL: none): every line
 * that sets a known directive is replaced by its current value (in place, once;
 * later lines for the same directive dropped), other lines kept as they are, and
 * directives not at their default that the file did not name are appended
 * under "# Generated by CONFIG REWRITE". Returns the text (free with kv_free),
 * its length in *lenp. */
static char *config_rewrite_text(const char *old, size_t *lenp) {
    unsigned char done[NCONFIGS];
    memset(done, 0, sizeof(done));
    char *out = NULL;
    size_t len = 0, cap = 0;
    cat(&out, &len, &cap, "", 0);
    int has_generated = 0;
    const char *p = old ? old : "";
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        char *line = kv_strndup(p, ll);
        p += ll + (eol ? 1 : 0);
        const char *s = line;
        while (isspace((unsigned char)*s)) s++;
        if (strcmp(s, "# Generated by CONFIG REWRITE") == 0) {
            has_generated = 1;
        }
        struct config *cf = NULL;
        if (*s != '#' && *s != '\0') {
            size_t nl = strcspn(s, " \t");
            cf = config_find(s, nl);
        }
        if (cf == NULL) {
            cat(&out, &len, &cap, line, ll);
            cat(&out, &len, &cap, "\n", 1);
        } else {
            size_t idx = (size_t)(cf - configs);
            if (!done[idx]) {
                done[idx] = 1;
                config_lines(cf, &out, &len, &cap);
            }
        }
        kv_free(line);
    }
    for (size_t i = 0; i < NCONFIGS; i++) {
        if (done[i] || config_is_default(&configs[i])) {
            continue;
        }
        if (!has_generated) {
            if (len > 0 && out[len - 1] != '\n') {
                cat(&out, &len, &cap, "\n", 1);
            }
            cat(&out, &len, &cap, "# Generated by CONFIG REWRITE\n", 30);
            has_generated = 1;
        }
        config_lines(&configs[i], &out, &len, &cap);
    }
    *lenp = len;
    return out;
}

/* Replaces path by text: written to path.tmp-<pid> (keeping path's mode),
 * fsynced, renamed over path. 0, or -1 with Redis's error in err. */
static int config_write_file(const char *path, const char *text, size_t len, char *err,
                             size_t errlen) {
    char tmp[PATH_MAX + 64];
    snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "ERR Rewriting config file: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(path, &st) == 0) {
        if (fchmod(fd, st.st_mode & 07777) != 0) {
            /* keep going: the content matters more than the mode */
        }
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            break;
        }
        off += (size_t)w;
    }
    if (off != len || fsync(fd) != 0) {
        snprintf(err, errlen, "ERR Rewriting config file: %s", strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "ERR Rewriting config file: %s", strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int config_rewrite(char *err, size_t errlen) {
    if (server.config_file == NULL) {
        snprintf(err, errlen, "ERR The server is running without a config file");
        return -1;
    }
    char *old = read_file(server.config_file);
    if (old == NULL && errno != ENOENT) {
        snprintf(err, errlen, "ERR Rewriting config file: %s", strerror(errno));
        return -1;
    }
    size_t len;
    char *out = config_rewrite_text(old, &len);
    kv_free(old);
    int rc = config_write_file(server.config_file, out, len, err, errlen);
    kv_free(out);
    return rc;
}

void config_print_help(FILE *fp) {
    fprintf(fp, "kvd configuration directives (kv.conf, --name value, CONFIG GET/SET):\n\n");
    for (size_t i = 0; i < NCONFIGS; i++) {
        const struct config *cf = &configs[i];
        const char *type = "string";
        switch (cf->type) {
        case CFG_BOOL: type = "yes|no"; break;
        case CFG_INT: case CFG_LL: case CFG_SIZE: type = "integer"; break;
        case CFG_MEMORY: type = "memory"; break;
        case CFG_ENUM: type = "enum"; break;
        case CFG_SPECIAL: type = "list"; break;
        default: break;
        }
        fprintf(fp, "%-28s %-8s default \"%s\"%s\n", cf->name, type, cf->def,
                (cf->flags & CFG_IMMUTABLE) ? "  (startup only)" : "");
        if (cf->type == CFG_ENUM) {
            fprintf(fp, "%-28s values:", "");
            for (const struct cfg_enum *e = cf->enums; e->name; e++) {
                fprintf(fp, " %s", e->name);
            }
            fprintf(fp, "\n");
        } else if (cf->type == CFG_INT || cf->type == CFG_LL || cf->type == CFG_SIZE ||
                   cf->type == CFG_MEMORY) {
            fprintf(fp, "%-28s range: %lld .. %lld\n", "", cf->min, cf->max);
        }
        fprintf(fp, "%-28s %s\n\n", "", cf->help);
    }
}
