/* server/server.h: what every command family sees of the node: allocation, the
 * command table and its classes, the client, replies, the global state (config
 * values and counters), the clock, logging, and the hooks between families.
 * The core's own interfaces (config, listeners, the client lifecycle, INFO, the
 * slow log) are in server_int.h; the keyspace's in ks.h; the coordinator's in
 * coord.h.
 *
 * Every handler (cmd_<id>, server/commands.def) gets a client with argc/argv,
 * writes exactly one reply with the reply_* functions below, and never touches a
 * socket. The data families (cmd_string.c, cmd_hash.c, cmd_keys.c, cmd_expire.c)
 * read and write keys through the coordinator seam (server/coord.h; what else they
 * may use is said there). The node-local commands (cmd_conn.c, multi.c and the
 * administrative cmd_info.c, cmd_config.c, cmd_command.c, cmd_admin.c,
 * cmd_debug.c) are part of the core and change no key: they use server_int.h,
 * and INFO, SAVE/BGSAVE/BGREWRITEAOF and DEBUG reach the keyspace's counts,
 * persist.c and (DEBUG ENGINE-FAULT) the engine's fault layer directly.
 *
 * Threading: everything here runs on the loop thread unless a comment says otherwise.
 */
#ifndef KVD_SERVER_H
#define KVD_SERVER_H

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

/* ------------------------------------------------------------------------------
 * Commands: the table of server/commands.def (its header documents the columns).
 *
 * Classes, as the cluster's coordinator sees them: every row that runs has exactly
 * one of
 *   keyed read    CMD_READONLY, key positions: read the keys, change nothing
 *   keyed write   CMD_WRITE, key positions: read the keys, ship what it writes;
 *                 CMD_RMW when it must see the latest version (see below)
 *   fanout        CMD_KEYSPACE_FANOUT, no key positions: SCAN KEYS DBSIZE RANDOMKEY
 *                 (READONLY) and FLUSHDB FLUSHALL (WRITE) visit every key
 *   node-local    CMD_NODE_LOCAL: runs on the node the client is connected to and
 *                 changes no key: connection state (PING AUTH SELECT CLIENT HELLO
 *                 MULTI/EXEC ...), administration (CONFIG INFO DEBUG SLOWLOG SAVE
 *                 SHUTDOWN ...), introspection (COMMAND, MEMORY STATS). WATCH is
 *                 node-local yet names keys: connection state about them.
 * A container (CONFIG, OBJECT, ...) is classified by its subcommands; one whose
 * subcommands differ (OBJECT, MEMORY) has no class itself and never runs as such.
 *
 * Read-modify-write (CMD_RMW): what the command writes, or whether it writes,
 * depends on what it reads from a key (INCR*, DECR*, APPEND, SETRANGE, SETNX,
 * MSETNX, RENAMENX, HSETNX, HINCRBY*, RENAME and COPY, whose written value is the
 * one read), or its reply hands back the value its write replaces or keeps
 * (GETSET, GETDEL, GETEX with an option). Conditionally, from the arguments (see
 * command_effective_flags): SET with NX, XX or GET; EXPIRE PEXPIRE EXPIREAT
 * PEXPIREAT with NX, XX, GT or LT. A key's value and its expiry are judged as two
 * attributes: writing one without reading it is a blind write even if the other
 * is kept (SET KEEPTTL, EXPIRE, PERSIST), and replies that only count or report
 * existence (DEL, HDEL, EXPIRE's 0/1) do not make a command RMW. A coordinator
 * applies an RMW on the latest version (consensus when W + R > N) and never runs
 * it twice; blind writes are last-write-wins.
 * ------------------------------------------------------------------------------ */
enum {
    /* Redis's flags, reported by COMMAND INFO under Redis's names */
    CMD_WRITE = 1u << 0,
    CMD_READONLY = 1u << 1,
    CMD_DENYOOM = 1u << 2,      /* may grow memory: refused with -OOM when over maxmemory */
    CMD_ADMIN = 1u << 3,
    CMD_NOSCRIPT = 1u << 4,
    CMD_LOADING = 1u << 5,      /* allowed while loading */
    CMD_STALE = 1u << 6,
    CMD_SKIP_MONITOR = 1u << 7,
    CMD_SKIP_SLOWLOG = 1u << 8,
    CMD_FAST = 1u << 9,
    CMD_NO_AUTH = 1u << 10,     /* allowed before AUTH */
    CMD_MAY_REPLICATE = 1u << 11,
    CMD_NO_MULTI = 1u << 12,    /* refused inside MULTI */
    CMD_ALLOW_BUSY = 1u << 13,
    CMD_NO_ASYNC_LOADING = 1u << 20, /* Redis: refused during async loading (kvd: none) */
    /* kvd's own flags: never in COMMAND INFO (client libraries parse it) */
    CMD_PROTECTED = 1u << 14,   /* gated by enable-debug-command */
    CMD_MULTI_CTL = 1u << 15,   /* MULTI/EXEC/DISCARD/WATCH/QUIT/RESET: not queued */
    CMD_RMW = 1u << 16,         /* read-modify-write (above) */
    CMD_KEYSPACE_FANOUT = 1u << 17, /* keyless, visits the whole key space */
    CMD_NODE_LOCAL = 1u << 18,  /* node-local: connection, administration */
    CMD_RUNS_QUEUED = 1u << 19, /* EXEC: write checks use the queued commands' flags */
    /* ACL categories Redis gives by hand, beyond what flags and group imply */
    CMD_ACL_ADMIN = 1u << 21,       /* @admin without CMD_ADMIN (LASTSAVE) */
    CMD_ACL_DANGEROUS = 1u << 22,   /* @dangerous without CMD_ADMIN (KEYS, FLUSHDB, INFO) */
    CMD_ACL_CONNECTION = 1u << 23,  /* @connection outside group connection (COMMAND) */
    CMD_ACL_KEYSPACE = 1u << 24,    /* @keyspace the group does not give (OBJECT HELP) */
};

struct kv_command;
typedef void kv_cmd_proc(struct client *c);

/* The rules column of a row: functions that read one invocation's arguments where
 * the row's fixed columns cannot say. Any of them may be NULL. argv[0] is the
 * command's name (for a subcommand, argv[1] is the subcommand's); argc has passed
 * the arity check. Pure: no side effects, called on any thread. */
struct kv_command_rules {
    /* This invocation's flags, from the row's (e.g. adds CMD_RMW for SET NX). */
    uint32_t (*flags)(uint32_t row_flags, int argc, const struct kv_slice *argv);
    /* Key positions for a command first/last/step cannot describe: writes at most
     * max positions to pos, returns how many there are, or -1 when argv is not a
     * valid invocation. No row needs one today. */
    int (*keys)(int argc, const struct kv_slice *argv, int *pos, int max);
    /* Whether argument i (i >= 1) is a secret, shown as "(redacted)" in the slow
     * log and MONITOR. */
    int (*redacted)(int argc, const struct kv_slice *argv, int i);
};

struct kv_command {
    const char *name;       /* lower case, as COMMAND reports it; "parent|sub" */
    kv_cmd_proc *proc;      /* a subcommand's is its parent's */
    int arity;              /* Redis convention: -N means at least N */
    uint32_t flags;         /* CMD_* */
    int first_key, last_key, key_step; /* key positions; 0,0,0 when none */
    const char *key_specs;  /* COMMAND INFO key specs (commands.def), NULL: none */
    const struct kv_command_rules *rules; /* NULL, or per-invocation rules */
    const char *since;      /* Redis version that introduced it */
    const char *group;      /* "string", "generic", "hash", "connection", ... */
    const char *summary;    /* one line for COMMAND DOCS */
    const struct kv_command *parent; /* a subcommand's container, else NULL */
    /* statistics (INFO commandstats) */
    long long calls, usec, rejected_calls, failed_calls;
};

/* Declares every handler cmd_<name> of server/commands.def. */
#define CMD(id, name, arity, flags, first, last, step, keyspecs, rules, since, group, summary) \
    void cmd_##id(struct client *c);
#include "server/commands.def"
#undef CMD

/* Looks a command up by name, case-insensitively; NULL when unknown. */
struct kv_command *command_lookup(const char *name, size_t len);
/* The top-level rows (for COMMAND, INFO commandstats); subcommands through
 * command_subcommands (server_int.h). */
struct kv_command *command_table(size_t *count);
/* The row that runs argv: the command's, or for a container its subcommand's
 * (argv[1]). NULL when the name or the subcommand is unknown, or when a
 * container is given no subcommand. No arity check. */
const struct kv_command *command_resolve(int argc, const struct kv_slice *argv);
/* The flags of this invocation of cmd (a row command_resolve returned; argc checked
 * against its arity): the row's flags, adjusted by its rules (CMD_RMW for SET NX,
 * EXPIRE GT, GETEX EX; GETEX without options is a read). The coordinator asks this,
 * never cmd->flags, for the class and CMD_RMW. */
uint32_t command_effective_flags(const struct kv_command *cmd, int argc,
                                 const struct kv_slice *argv);
/* The key positions of this invocation (argv indexes), as COMMAND GETKEYS reports
 * them: writes at most max to pos and returns how many there are; 0 for a command
 * without keys; -1 when argv is too short for the row's key positions. */
int command_keys(const struct kv_command *cmd, int argc, const struct kv_slice *argv, int *pos,
                 int max);
/* Whether argument i of this invocation is a secret (AUTH's arguments, HELLO's
 * AUTH pair): the slow log and MONITOR show "(redacted)" instead. */
int command_arg_redacted(const struct kv_command *cmd, int argc, const struct kv_slice *argv,
                         int i);

/* ------------------------------------------------------------------------------
 * Clients
 * ------------------------------------------------------------------------------ */
enum {
    CLIENT_MULTI = 1u << 0,          /* inside MULTI */
    CLIENT_DIRTY_CAS = 1u << 1,      /* a watched key changed: EXEC fails */
    CLIENT_DIRTY_EXEC = 1u << 2,     /* a queued command was rejected: EXECABORT */
    CLIENT_CLOSE_AFTER_REPLY = 1u << 3,
    CLIENT_CLOSE_ASAP = 1u << 4,     /* freed in the before-sleep step */
    CLIENT_MONITOR = 1u << 5,
    CLIENT_NO_EVICT = 1u << 6,
    CLIENT_NO_TOUCH = 1u << 7,       /* reads do not update LRU/LFU */
    CLIENT_REPLY_OFF = 1u << 8,
    CLIENT_REPLY_SKIP_NEXT = 1u << 9,
    CLIENT_REPLY_SKIP = 1u << 10,
    CLIENT_PENDING_WRITE = 1u << 11, /* queued in the before-sleep write list */
    CLIENT_INTERNAL = 1u << 12,      /* a fake client (tests, replay) with no socket */
    CLIENT_WRITE_INSTALLED = 1u << 13, /* write event armed: the socket was full */
    CLIENT_READ_PAUSED = 1u << 14,   /* output backlog too large: not reading */
    CLIENT_PERSIST_WROTE = 1u << 15, /* in persist.c's list of clients that wrote this turn */
    CLIENT_PERSIST_HELD = 1u << 16,  /* in persist.c's list of clients waiting for a WAL sync */
    CLIENT_WAITING = 1u << 17,       /* its command waits before it runs (client.c) */
    CLIENT_READY = 1u << 18,         /* ... and may run now: on the ready list */
    CLIENT_WAITED = 1u << 19,        /* the command being run has waited: run it now */
};

/* Why a client's output is held (struct client.hold; client_hold in client.c). */
enum {
    CLIENT_HOLD_PERSIST = 1u << 0,   /* its writes are not yet stored / durable (persist.c) */
};

struct client_span;  /* server/client.c: a reply that depends on a hold */

struct multi_cmd;   /* server/multi.c */
struct watched_key; /* server/multi.c */

struct client {
    uint64_t id;
    int fd;                     /* -1 for an internal client */
    uint32_t flags;             /* CLIENT_* */
    int resp;                   /* 2 or 3 */
    int db_id;
    struct kv_db *db;           /* selected database */
    int authenticated;
    char *name;                 /* CLIENT SETNAME, or NULL */
    char *lib_name, *lib_ver;   /* CLIENT SETINFO, or NULL */
    char addr[64], laddr[64];   /* "ip:port" of the peer and of our end */
    long long ctime_ms;         /* when connected */
    long long last_interaction_ms;

    /* input */
    char *qbuf;                 /* query buffer */
    size_t qlen, qcap, qpos;    /* bytes held, capacity, first unparsed byte */
    size_t qbuf_peak;           /* most bytes held (or needed) since the last cron */
    struct resp_parser parser;
    int argc;                   /* the command being executed */
    struct kv_slice *argv;
    const struct kv_command *cmd, *lastcmd;

    /* output */
    struct resp_out out;
    struct event *read_ev, *write_ev;
    struct client *next_pending; /* before-sleep write list */

    /* transactions */
    struct multi_cmd *mstate;   /* queued commands, or NULL */
    int mcount, mcap;
    uint32_t multi_flags;       /* CMD_* flags of the queued commands, OR-ed */
    long long multi_mem;        /* bytes held by queued commands */
    struct watched_key *watched;/* list of WATCHed keys */
    long long obuf_soft_since;  /* Unix s the soft output limit was first exceeded */
    uint64_t durable_wait;      /* engine sequence its output waits for (persist.c) */

    /* a command can wait; a reply can be held (client.c, "A COMMAND CAN WAIT") */
    uint32_t hold;              /* CLIENT_HOLD_* its output waits for; 0: written freely */
    uint32_t hold_now;          /* holds the running command's reply depends on */
    uint32_t fail_now;          /* holds that failed while it ran: rewritten when it ends */
    char *fail_msg;             /* their error (owned), or NULL */
    struct client_span *spans;  /* replies that depend on a hold, in output order */
    int nspans, capspans;
    int wait_argc;              /* the waiting command's arguments: */
    struct kv_slice *wait_argv; /*   an owned copy (slices, then the bytes) */
    struct event *wait_ev;      /* timer of DEBUG SET-COMMAND-DELAY, or NULL */
    struct client *next_ready;  /* the ready list */
    int delay_own;              /* DEBUG SET-COMMAND-DELAY ... <id>: its own delay */
    long long delay_ms;         /*   then: this delay, */
    double delay_prob;          /*   with this probability */

    struct client *prev, *next; /* all clients */
};

/* ------------------------------------------------------------------------------
 * Replies. Each handler writes exactly one reply (one aggregate counts as one).
 * Errors carry Redis's code prefix: reply_error(c, "ERR syntax error").
 * ------------------------------------------------------------------------------ */
void reply_ok(struct client *c);
void reply_simple(struct client *c, const char *s);
void reply_error(struct client *c, const char *msg);
void reply_errorf(struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void reply_int(struct client *c, long long v);
void reply_bulk(struct client *c, const void *p, size_t len);
void reply_bulk_cstr(struct client *c, const char *s);
void reply_bulk_ll(struct client *c, long long v);      /* integer as a bulk string */
void reply_null(struct client *c);                      /* $-1 / _ */
void reply_null_array(struct client *c);                /* *-1 / _ */
void reply_array(struct client *c, long long n);
void reply_map(struct client *c, long long npairs);
void reply_set(struct client *c, long long n);
void reply_double(struct client *c, double d);
void reply_verbatim(struct client *c, const char *p, size_t len);  /* "txt" */
resp_defer_t reply_defer(struct client *c);
void reply_defer_set(struct client *c, resp_defer_t h, enum resp_agg type, long long n);
/* The standard errors, in Redis's exact words. */
void reply_syntax_error(struct client *c);      /* ERR syntax error */
void reply_wrongtype(struct client *c);         /* WRONGTYPE Operation against ... */
void reply_not_integer(struct client *c);       /* ERR value is not an integer or out of range */
void reply_not_float(struct client *c);         /* ERR value is not a valid float */
void reply_arity_error(struct client *c);       /* ERR wrong number of arguments for '%s' command */
void reply_help(struct client *c, const char *const *lines); /* SUBCOMMAND HELP */
void reply_subcommand_error(struct client *c);  /* ERR unknown subcommand ... Try X HELP. */

/* Argument helpers that reply with the standard error and return -1 on failure. */
int arg_ll_or_reply(struct client *c, int i, long long *out);
/* argv[i] as an integer in [lo, hi], as Redis's getRangeLongFromObjectOrReply:
 * "ERR value is out of range, value must between <lo> and <hi>" outside it. */
int arg_range_ll_or_reply(struct client *c, int i, long long lo, long long hi,
                          long long *out);
int arg_ld_or_reply(struct client *c, int i, long double *out);
int arg_is(const struct client *c, int i, const char *lower); /* case-insensitive */

/* ------------------------------------------------------------------------------
 * Global state
 * ------------------------------------------------------------------------------ */
enum maxmemory_policy {
    MM_NOEVICTION, MM_ALLKEYS_LRU, MM_ALLKEYS_LFU, MM_ALLKEYS_RANDOM,
    MM_VOLATILE_LRU, MM_VOLATILE_LFU, MM_VOLATILE_RANDOM, MM_VOLATILE_TTL,
};

enum kv_mode { MODE_CACHE, MODE_PERSISTENT };

struct kv_server {
    /* config (server/config.c owns the table that fills these) */
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

    /* runtime */
    struct event_base *base;
    pid_t pid;
    long long start_ms;
    char node_id[33];           /* 128-bit hex, kept in dir/node-id (server/node.c) */
    uint32_t node_tag;          /* 32-bit tag of node_id in versions: never 0 */
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

/* ------------------------------------------------------------------------------
 * Logging: "pid:M dd Mon yyyy hh:mm:ss.mmm * message", levels as Redis.
 * ------------------------------------------------------------------------------ */
enum { LL_DEBUG, LL_VERBOSE, LL_NOTICE, LL_WARNING };
void server_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------------
 * Hooks between families
 * ------------------------------------------------------------------------------ */
/* Subscribes WATCH (multi.c), the statistics (server.dirty, expired_keys,
 * evicted_keys) and, for server.mode, the store's backend (store_init) to the store's
 * events (events.h). Called at start-up; again after a test changes server.mode. */
void server_subscribe_events(void);

#endif
