/* server/base/base.h: what every layer of the node uses and that uses nothing of
 * them: allocation (alloc.c), the global state with the config values and the
 * counters (state.c), the one clock, logging (log.c), Redis's number and text
 * formats (fmt.c) and small pure helpers (util.c). The lowest of server/'s
 * folders: it includes only proto/ (the slice type the state and the helpers
 * share). The state's pointers to clients and databases are opaque here; the
 * layers that own those types fill them.
 *
 * kv_glob_match implements Redis's glob (stringmatchlen) semantics for KEYS, SCAN
 * MATCH, HSCAN MATCH and later PSUBSCRIBE:
 *   *        any sequence, including empty
 *   ?        any one byte
 *   [abc]    one of the bytes; [^abc] none of them; [a-z] a range (either order)
 *   \x       the byte x literally (inside brackets too); a lone trailing \ is literal
 * Binary safe (lengths, not NUL), never reads outside the two ranges, and runs in
 * O(plen * slen) whatever the number of stars.
 *
 * Threading: everything here runs on the loop thread unless a comment says otherwise.
 */
#ifndef KVD_BASE_H
#define KVD_BASE_H

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/resp.h"

#define KVD_VERSION "0.1.0"
/* The Redis version whose commands and replies kvd provides (what HELLO and INFO
 * report as redis_version, so clients enable the right features). */
#define KVD_REDIS_COMPAT_VERSION "7.0.15"

struct client;
struct kv_db;
struct event_base;
struct cluster;

/* ------------------------------------------------------------------------------
 * Allocation: one wrapper over malloc (jemalloc in the normal build) that aborts on
 * out-of-memory with a log line. Never returns NULL.
 * ------------------------------------------------------------------------------ */
void *kv_malloc(size_t n);
void *kv_calloc(size_t n, size_t size);
void *kv_realloc(void *p, size_t n);
char *kv_strndup(const char *s, size_t n);
void kv_free(void *p);
size_t kv_malloc_size(const void *p);   /* usable size of an allocation */
size_t kv_used_memory(void);            /* allocator's allocated bytes (INFO used_memory) */
/* Every thread that allocates, besides the loop thread, calls this once when it
 * starts so kv_used_memory() counts it (and _unregister before it exits). */
void kv_alloc_thread_register(void);
void kv_alloc_thread_unregister(void);
void kv_used_memory_refresh(void);  /* re-anchors kv_used_memory(); cron */
size_t kv_allocator_resident(void); /* jemalloc stats.resident, 0 if unknown */
const char *kv_allocator_name(void);

/* ------------------------------------------------------------------------------
 * Global state
 * ------------------------------------------------------------------------------ */
enum maxmemory_policy {
    MM_NOEVICTION, MM_ALLKEYS_LRU, MM_ALLKEYS_LFU, MM_ALLKEYS_RANDOM,
    MM_VOLATILE_LRU, MM_VOLATILE_LFU, MM_VOLATILE_RANDOM, MM_VOLATILE_TTL,
};

enum kv_mode { MODE_CACHE, MODE_PERSISTENT };

struct kv_server {
    /* config (server/net/config.c owns the table that fills these) */
    int port;
    char *bind;                 /* space-separated addresses */
    char *dir;
    char *logfile;              /* "" = stdout */
    char *loglevel_name;
    int loglevel;
    char *pidfile;
    char *requirepass;          /* "" = none */
    int protected_mode;
    int databases;
    long long maxclients;
    int timeout;                /* idle seconds, 0 = never */
    int tcp_keepalive;
    int tcp_backlog;
    int hz;
    long long proto_max_bulk_len;
    long long client_query_buffer_limit;
    long long client_output_buffer_limit_hard; /* normal class: hard, soft, seconds */
    long long client_output_buffer_limit_soft;
    int client_output_buffer_limit_secs;
    long long maxmemory;
    int maxmemory_policy;       /* enum maxmemory_policy */
    int maxmemory_samples;
    int lfu_log_factor;
    int lfu_decay_time;
    int active_expire_effort;
    int active_expire_enabled;  /* DEBUG SET-ACTIVE-EXPIRE */
    long long slowlog_log_slower_than;
    long long slowlog_max_len;
    int mode;                   /* enum kv_mode */
    int appendfsync;            /* enum persist_fsync: 0 always, 1 everysec, 2 no */
    int appendonly;             /* stored; the engine's WAL is always written */
    int appendfsync_in_loop;    /* always: fsync on the loop thread, not the sync thread */
    long long memtable_size;    /* persistent: bytes per memtable, 0 = from maxmemory */
    int engine_bg_nice;         /* persistent: nice value of the engine's background thread */
    long long block_cache_size; /* persistent: block cache bytes, 0 = from maxmemory */
    int enable_debug_command;   /* 0 no, 1 yes, 2 local (loopback clients only) */
    long long gc_grace_seconds; /* persistent: tombstones kept this long (engine gc_grace_ms) */
    long long debug_clock_offset_ms; /* added to the one clock (kv_ustime): skew tests */
    char *config_file;          /* absolute path, or NULL */
    /* cluster (kv.conf "CLUSTER"; server/net/server.c starts cluster/ with them) */
    int cluster_enabled;        /* cluster-enabled: 0 = one node, no cluster code runs */
    int cluster_join;           /* cluster-join: a first start joins a running ring */
    char *cluster_replace;      /* cluster-replace: a first start replaces this dead id */
    char *cluster_seeds;        /* "host:port,host:port" or "" */
    char *cluster_secret;       /* required when enabled */
    int replication_factor;     /* N */
    int write_quorum;           /* W: the default of new connections */
    int read_quorum;            /* R: the default of new connections */
    int vnodes;                 /* tokens per node at weight 1 */
    double node_weight;         /* scales the node's share */
    char *cluster_announce_ip;  /* "" = the first bind address */
    int cluster_announce_port;  /* 0 = the client port */
    int cluster_request_timeout;      /* ms */
    long long hinted_handoff_window;  /* ms */
    long long hinted_handoff_max_bytes;
    int repair_interval_seconds;      /* 0: no background repair */
    int repair_throughput_mb_per_sec; /* 0: unpaced */
    int stream_throughput_mb_per_sec; /* join/leave/remove/replace; 0: unpaced */
    int phi_convict_threshold;  /* a member at this phi is down */
    long long cluster_max_clock_offset_ms; /* beyond it: no writes coordinated */
    uint64_t cluster_generation; /* this run's, kept in dir/node-generation */

    /* runtime */
    struct event_base *base;
    pid_t pid;
    long long start_ms;
    char node_id[33];           /* 128-bit hex, kept in dir/node-id (server/store/node.c) */
    uint32_t node_tag;          /* 32-bit tag of node_id in versions: never 0 */
    struct cluster *cluster;    /* cluster/cluster.h's runtime when cluster-enabled,
                                   else NULL (only coord, cmd and net may call it) */
    long long mstime;           /* cached per command: now in Unix ms */
    long long ustime;           /* cached per command: now in Unix us */
    int shutdown_asap;
    int loading;
    struct client *clients;     /* all connected clients */
    int nclients;
    uint64_t next_client_id;
    struct kv_db **db;          /* server.databases of them */
    long long dirty;            /* changes since the last save */
    long long lastsave;         /* Unix seconds */

    /* stats (INFO stats) */
    long long stat_numcommands;
    long long stat_numconnections;
    long long stat_rejected_conn;
    long long stat_keyspace_hits;
    long long stat_keyspace_misses;
    long long stat_expiredkeys;
    long long stat_evictedkeys;
    long long stat_net_input_bytes;
    long long stat_net_output_bytes;
    long long stat_total_error_replies;
    long long stat_unexpected_error_replies;
    long long stat_total_reads;         /* read(2) calls that returned data */
    long long stat_total_writes;        /* writev(2) calls that wrote */
    size_t stat_peak_memory;
};

extern struct kv_server server;

/* The one clock: Unix time (real time plus debug-clock-offset-ms). TIME, TTL
 * arithmetic (server.mstime/ustime are cached reads of it), expiry and the HLC
 * (hlc_now) all read it. Cheap (one clock_gettime), not cached. */
long long kv_mstime(void);
long long kv_ustime(void);
/* Sets server.mstime/ustime from the clock; returns ustime. */
long long kv_time_sync(void);

/* Asks the loop to stop (SHUTDOWN, a signal): sets server.shutdown_asap and breaks
 * out of the event loop if one runs. */
void server_request_shutdown(int from_signal);

/* The port the listener actually bound (net.c sets it; INFO and the start-up
 * line report it). */
extern int net_bound_port;

/* ------------------------------------------------------------------------------
 * Logging: "pid:M dd Mon yyyy hh:mm:ss.mmm * message", levels as Redis.
 * ------------------------------------------------------------------------------ */
enum { LL_DEBUG, LL_VERBOSE, LL_NOTICE, LL_WARNING };
void server_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------------
 * Formats (fmt.c)
 * ------------------------------------------------------------------------------ */
/* Redis's memory units: "1gb" = 1<<30, "1g" = 10^9, "100" bytes. 0 ok, -1 bad. */
int kv_parse_memory(const char *s, long long *out);
/* "1.50M" style, as INFO *_human. */
void kv_bytes_human(char *buf, size_t cap, unsigned long long n);
/* Appends s quoted as Redis's sdscatrepr ("a\nb" -> "\"a\\nb\""); returns bytes
 * written (not counting NUL), truncating at cap-1. */
size_t kv_repr(char *dst, size_t cap, const char *s, size_t len);
/* Splits a line into arguments as redis.conf does (quotes, \x escapes). Returns
 * argc, or -1 on unbalanced quotes. Arguments are NUL-terminated copies in one
 * allocation *out (free with kv_free(*out)). */
int kv_split_args(const char *line, char ***out);

/* ------------------------------------------------------------------------------
 * Pure helpers (util.c)
 * ------------------------------------------------------------------------------ */
/* Returns 1 when s[0..slen) matches pat[0..plen), 0 otherwise. nocase compares
 * ASCII letters case-insensitively. */
int kv_glob_match(const char *pat, size_t plen, const char *s, size_t slen, int nocase);

/* Would a + b overflow a long long? (INCRBY, HINCRBY: Redis's check and error.) */
static inline int kv_add_overflows(long long a, long long b) {
    return (b < 0 && a < 0 && b < LLONG_MIN - a) || (b > 0 && a > 0 && b > LLONG_MAX - a);
}

#endif
