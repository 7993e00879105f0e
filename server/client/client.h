/* server/client/client.h: the client layer, below the coordinator seam and the
 * command families, above the store: a connection's state (struct client), the
 * row type of the command it runs (struct kv_command and its CMD_* classes; the
 * table itself is server/cmd/), replies and argument helpers (reply.c), the
 * registry of connected clients, output limits, closing, and the held replies
 * (client.c, "A REPLY CAN BE HELD"). It never touches a socket or runs a command:
 * the layers above register what it needs of them in client_hooks (the network:
 * stop reading, write, uninstall a socket; dispatch: forget a freed client's
 * MULTI, WATCH, MONITOR and waiting state), and client_attach_store hands the
 * store the hooks by which persistence holds a writer's replies.
 *
 * Every handler (cmd_<id>, server/cmd/commands.def) gets a client with argc/argv,
 * writes exactly one reply with the reply_* functions below, and never touches a
 * socket. The data families (cmd_string.c, cmd_hash.c, cmd_keys.c, cmd_expire.c)
 * read and write keys through the coordinator seam (server/coord/coord.h; what
 * else they may use is said there).
 *
 * Threading: everything here runs on the loop thread unless a comment says otherwise.
 */
#ifndef KVD_CLIENT_H
#define KVD_CLIENT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/resp.h"
#include "server/base/base.h"
#include "server/store/store.h"

struct client;
struct kv_db;
struct event;

/* ------------------------------------------------------------------------------
 * Commands: the row type of the table of server/cmd/commands.def (its header
 * documents the columns; the table and its lookups are server/cmd/cmd.h).
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
    CLIENT_PEER = 1u << 15,          /* a cluster peer that proved cluster-secret (KVD.PEER):
                                        exempt from timeout and output limits */
    /* 1u << 16: free (persistence's marks are in struct persist_writer) */
    CLIENT_WAITING = 1u << 17,       /* its command waits before it runs (cmd/pipeline.c) */
    CLIENT_READY = 1u << 18,         /* ... and may run now: on the ready list */
    CLIENT_WAITED = 1u << 19,        /* the command being run has waited: run it now */
};

/* Why a client's output is held (struct client.hold; client_hold in client.c). */
enum {
    CLIENT_HOLD_PERSIST = 1u << 0,   /* its writes are not yet stored / durable (persist.c) */
    CLIENT_HOLD_CLUSTER = 1u << 1,   /* its writes await W replicas (cmd/coordinate.c) */
};

struct client_span;  /* server/client/client.c: a reply that depends on a hold */
struct cluster_peer; /* cluster/cluster.h: opaque here */

struct multi_cmd;   /* server/cmd/multi.c */
struct coord_op;    /* server/cmd/coordinate.c: a command in the cluster's four steps */
struct watched_key; /* server/cmd/multi.c */

struct client {
    /* first: the store reaches it from the opaque client pointer (persist.h) */
    struct persist_writer pw;
    uint64_t id;
    int fd;                     /* -1 for an internal client */
    uint32_t flags;             /* CLIENT_* */
    int resp;                   /* 2 or 3 */
    int db_id;
    struct kv_db *db;           /* selected database */
    int authenticated;
    struct cluster_peer *peer;  /* KVD.PEER state (server/cmd/cmd_kvd.c), or NULL */
    const char *peer_probation; /* accepted only in case it is a cluster peer (over
                                   maxclients from a peer's host, protected mode):
                                   the refusal it gets, then closed, unless its
                                   first command is KVD.PEER (net.c accept_cb) */
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

    /* a command can wait (cmd/pipeline.c), a reply can be held (client.c) */
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

    /* cluster (server/cmd/coordinate.c); unused when cluster-enabled is no */
    struct coord_op *cop;       /* the command in the coordinator's steps, or NULL */
    int cons_r, cons_w;         /* KVD CONSISTENCY: R and W, 0 = the directives' */

    struct client *prev, *next; /* all clients */
};
_Static_assert(offsetof(struct client, pw) == 0,
               "persist.h reaches struct persist_writer from the client pointer");

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
/* Bytes already encoded as one RESP2 reply (the cluster's peer replies). */
void reply_raw(struct client *c, const void *p, size_t len);
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

/* Error statistics (INFO errorstats): every error reply counts its code. */
void errorstat_count(const char *msg, size_t len);
int errorstat_iter(int i, const char **code, long long *count);
void errorstat_reset(void);

/* ------------------------------------------------------------------------------
 * The client registry, closing, output (client.c)
 * ------------------------------------------------------------------------------ */
/* What the layers above do for the client layer; each registers its part at
 * start-up (the network in server_start, dispatch in commands_init). A NULL hook
 * is skipped: internal clients (fd -1) need none of the network's. */
struct client_hooks {
    void (*stop_reading)(struct client *c);  /* net: stop reading c's socket */
    int (*write_now)(struct client *c);      /* net: write c's output; 0, or -1 closed */
    void (*uninstall)(struct client *c);     /* net: c's socket leaves the loop */
    /* dispatch: c is being freed: it leaves MONITOR, the ready list (and its
     * wait timer), WATCH and MULTI */
    void (*forget)(struct client *c);
};
extern struct client_hooks client_hooks;

struct client *client_create(int fd);
void client_free(struct client *c);
/* Marks a client to be closed and freed in the before-sleep step. */
void client_close_async(struct client *c);
/* Queues c for the before-sleep write step (no-op if already queued). */
void client_queue_write(struct client *c);
void client_free_pending_closes(void);
void client_handle_pending_writes(void);
/* Closes c if its output is over client-output-buffer-limit; returns 1 if so. */
int client_check_output_limits(struct client *c);
/* One CLIENT LIST line (with trailing '\n') into buf; returns its length. */
size_t client_info_line(const struct client *c, char *buf, size_t cap);
struct client *client_by_id(uint64_t id);
void client_set_db(struct client *c, int id);
void client_cron(void);

/* A reply can be held: see "A REPLY CAN BE HELD" in client.c. All on the loop
 * thread. */
/* Holds c's output for reason (CLIENT_HOLD_*): nothing more is written to its
 * socket until every reason is released. If c is running a command at top
 * level, that command's reply is recorded as depending on reason (call() records
 * the span when the command ends), so client_fail_held can rewrite it. */
void client_hold(struct client *c, uint32_t reason);
/* What reason acknowledged is true: its spans are forgotten, and once no reason
 * holds c its output is written (before-sleep). */
void client_release(struct client *c, uint32_t reason);
/* What reason acknowledged did not happen: every reply recorded for reason is
 * replaced by the error msg ("MISCONF ..."; counted as an error reply), the rest
 * of the output is kept as it was, and reason is released. If c is running a
 * command, that is done when the command ends (its reply becomes msg too). */
void client_fail_held(struct client *c, uint32_t reason, const char *msg);
/* client_fail_held for some replies only: those recorded for reason whose span
 * starts at one of starts[0..nstarts) (offsets of the pending output when their
 * command began, ascending; c is not running a command); the other replies of
 * reason are kept as they are. reason is released. (The cluster's pipeline
 * batches: only the commands whose writes missed W.) */
void client_fail_held_at(struct client *c, uint32_t reason, const char *msg,
                         const size_t *starts, size_t nstarts);
/* 1 while c's output must not be written (net_write_now asks). */
static inline int client_output_held(const struct client *c) {
    return c->hold != 0;
}
/* call() at top level, around one command: out0 is resp_out_pending before it.
 * Inline: the common case (nothing held, nothing failed) is a few stores; the
 * rest is client_call_finish's. */
extern struct client *client_running; /* in call() at top level, or NULL */
void client_call_finish(struct client *c, size_t out0);
static inline void client_call_begin(struct client *c) {
    client_running = c;
    c->hold_now = 0;
}
static inline void client_call_end(struct client *c, size_t out0) {
    client_running = NULL;
    if ((c->hold_now & c->hold) | c->fail_now) {
        client_call_finish(c, out0);
    }
    c->hold_now = 0;
}
/* Hands the store the hooks by which persistence holds, releases and fails a
 * writer's replies (CLIENT_HOLD_PERSIST; persist_set_client_hooks). Start-up
 * (server_subscribe_events), before any client writes. */
void client_attach_store(void);

#endif
