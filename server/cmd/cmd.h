/* server/cmd/cmd.h: dispatch and the command families, above the coordinator
 * seam: the command table (commands.c, commands.def) with every handler's
 * prototype, the parse loop and the commands that wait (pipeline.c), process_command
 * and call() with their statistics, the slow log and MONITOR (commands.c), MULTI
 * and WATCH (multi.c), INFO (cmd_info.c) and the CONFIG command's backend hook.
 * The folders above (server/net/, main.c) include this header; the families
 * include it and reach keys only through server/coord/coord.h.
 *
 * The data families (cmd_string.c, cmd_hash.c, cmd_keys.c, cmd_expire.c) are
 * sealed behind the seam (tests/check-seal.sh). The node-local files (cmd_conn.c,
 * multi.c, cmd_info.c, cmd_config.c, cmd_command.c, cmd_admin.c, cmd_debug.c,
 * cmd_kvd.c) change no key (cmd_kvd.c's KVD.PEER serves the cluster's replica reads
 * and writes through cluster/ and the store's record calls, not the seam): INFO, SAVE/BGSAVE/BGREWRITEAOF and DEBUG reach the keyspace's
 * counts and persistence through server/store/store.h, and DEBUG ENGINE-FAULT the
 * engine's fault layer.
 *
 * Threading: loop thread only.
 */
#ifndef KVD_CMD_H
#define KVD_CMD_H

#include <stdio.h>

#include "server/client/client.h"
#include "server/coord/coord.h"
#include "server/store/store.h"

/* ---- the command table (commands.c) ---- */
/* Declares every handler cmd_<name> of server/cmd/commands.def. */
#define CMD(id, name, arity, flags, first, last, step, keyspecs, rules, since, group, summary) \
    void cmd_##id(struct client *c);
#include "server/cmd/commands.def"
#undef CMD

/* Looks a command up by name, case-insensitively; NULL when unknown. */
struct kv_command *command_lookup(const char *name, size_t len);
/* The top-level rows (for COMMAND, INFO commandstats); subcommands through
 * command_subcommands (below). */
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

/* ---- dispatch (commands.c) ---- */
void commands_init(void);
/* Runs the command in c->argc/argv through the checks (auth, arity, OOM, MULTI
 * queueing) and executes it. */
void process_command(struct client *c);
/* Executes c->cmd with timing, stats, slowlog and MONITOR feed. */
void call(struct client *c, const struct kv_command *cmd);
/* Ends a batch of commands (one read's worth): the next call() reads the clock. */
void call_batch_end(void);
/* Subcommand resolution: "config|get" entry for CONFIG GET, or NULL. */
const struct kv_command *command_lookup_sub(const struct kv_command *parent,
                                            const char *name, size_t len);
/* Parent entries with subcommand tables expose them here. */
const struct kv_command *command_subcommands(const struct kv_command *cmd, size_t *count);
const char *command_acl_categories(const struct kv_command *cmd, const char **out, int max,
                                   int *n);
void commands_reset_stats(void);

/* Slow log */
struct slowlog_entry {
    long long id;
    long long time;         /* Unix seconds */
    long long duration;     /* microseconds */
    int argc;
    struct kv_slice *argv;  /* owned copies */
    char addr[64];
    char *name;             /* owned */
};
int slowlog_len(void);
const struct slowlog_entry *slowlog_at(int i);  /* 0 = newest; O(i) */
/* Iteration newest to oldest: slowlog_next(NULL) is the newest. */
const struct slowlog_entry *slowlog_next(const struct slowlog_entry *e);
void slowlog_reset(void);

/* MONITOR */
void monitor_add(struct client *c);
void monitor_remove(struct client *c);
extern int clients_monitors;                 /* clients in MONITOR mode */

/* ---- cmd_kvd.c: the cluster's node-local commands and the peers' verb ---- */
/* KVD.PEER on client c (server.cluster set): authentication, then the peer verbs
 * (cluster_peer_command), with c's reply held like a write's in persistent mode.
 * Skips MULTI, MONITOR, the slow log and commandstats; allowed while LOADING. */
void kvd_peer_command(struct client *c);
/* A client being freed: its peer state goes. */
void kvd_peer_forget(struct client *c);
/* KVD CONSISTENCY (server/cmd/cmd_consistency.c; cmd_kvd.c holds a weak stand-in
 * that answers an error until that file is linked in). */
void kvd_consistency_command(struct client *c);
/* The cron's part of KVD CLEANUP: a running cleanup stops when the ranges this
 * node keeps changed (a member joins or leaves), else does a bounded step. */
void kvd_cleanup_cron(void);

/* ---- multi.c ---- */
void multi_queue(struct client *c);          /* queue c->argv for EXEC */
void multi_discard_state(struct client *c);  /* leaves MULTI */
void unwatch_all(struct client *c);
int watch_any(void);                         /* anyone watching? */
/* Cluster mode (coordinate.c; WATCH through any node): the record WATCH read for a
 * key c watches (found 0: nothing; the first WATCH of a key stands); the watched
 * keys that were noted; 1 when any of them now reads differently (existence,
 * tombstone or version, by get: 0 read, nonzero not read, which counts as
 * changed). UNWATCH, DISCARD, EXEC and the client's end forget them. */
void multi_watch_note(struct client *c, int db, const char *key, size_t klen, int found,
                      struct kv_version v, int deleted);
void multi_watched_foreach(struct client *c,
                           void (*fn)(void *arg, int db, const char *key, size_t klen),
                           void *arg);
typedef int multi_watch_get_fn(void *arg, int db, const char *key, size_t klen, int *found,
                               struct kv_version *v, int *deleted);
int multi_watch_differs(struct client *c, multi_watch_get_fn *get, void *arg);
/* The i-th command c queued in MULTI (0..c->mcount-1) and its arguments, or NULL
 * (the cluster's coordinator reads the keys of a transaction at EXEC). */
const struct kv_command *multi_queued(const struct client *c, int i, int *argc,
                                      const struct kv_slice **argv);
void multi_subscribe(void);                  /* WATCH on the store events */

/* ---- cmd_info.c ---- */
void info_init(void);
void stats_cron(void);
/* CONFIG RESETSTAT: zeroes the counters INFO reports (stats, commandstats,
 * errorstats, instantaneous metrics); the memory peak restarts from now. */
void info_reset_stats(void);
/* Builds the INFO text for the given sections (argc 0 = default). Caller frees. */
char *info_generate(int nsec, const struct kv_slice *secs, size_t *len);

/* ---- pipeline.c ---- */
/* Parses and runs every complete command in c's query buffer (the network calls
 * it after a read; a command that waited runs the rest of its pipeline). */
void client_process_input(struct client *c);
/* A command can wait: see "A COMMAND CAN WAIT" in pipeline.c. All on the loop
 * thread. */
/* The step before a command runs (process_command, after every check, just
 * before call()): returns 1 if it suspended c (the command runs later, from the
 * ready list), 0 to run it now. */
extern int client_delay_set; /* a command delay was ever set: the check has work */
int client_wait_check(struct client *c, const struct kv_command *run);
static inline int client_wait_before_call(struct client *c, const struct kv_command *run) {
    return client_delay_set ? client_wait_check(c, run) : 0;
}
/* Suspends c's command (c->argc/argv, copied: the query buffer moves) before it
 * runs; c parses nothing more until the command has run. The caller arranges
 * for client_resume later (a timer, a peer's answer). */
void client_suspend(struct client *c);
/* c's waiting command may run: puts c on the ready list (idempotent; no-op if
 * c waits for nothing). Never runs anything itself: safe from any callback. */
void client_resume(struct client *c);
/* Before-sleep: runs the commands of the clients that were ready when it
 * started (in the order they became ready), each followed by the rest of its
 * pipeline. Clients that become ready meanwhile wait for the next turn. */
void client_run_ready(void);
/* 1 if clients are on the ready list (the loop then must not sleep). */
int client_ready_pending(void);
/* The bytes of c's query buffer not parsed yet, after the command running (a
 * cluster batch's look-ahead parses them without consuming them). */
void client_pending_input(const struct client *c, const char **p, size_t *len);
/* DEBUG SET-COMMAND-DELAY: commands wait ms before they run, each with
 * probability prob (0..1); ms 0 turns it off. c NULL: every client without its
 * own setting; else c alone (ms -1: follow the server's setting again). */
void client_set_command_delay(struct client *c, long long ms, double prob);
/* c is being freed: off the ready list, its timer and its copy gone. */
void client_wait_forget(struct client *c);

/* ---- coordinate.c: the cluster coordinator's four steps (cluster mode only) ---- */
/* They run when server.cluster (the runtime, server/net/server.c) is not NULL;
 * the connections' default R and W are server.read_quorum / write_quorum. */
/* N, the replication factor in force (0 when not in cluster mode). */
int coordinate_replicas(void);
/* The R and W in force for c (KVD CONSISTENCY, else the defaults), at most N. */
void coordinate_levels(const struct client *c, int *r, int *w);
/* process_command, before MULTI queueing: refuses (replies, returns 1) what cluster
 * mode cannot answer (a fanout command inside MULTI on a ring of several
 * members); else 0. */
int coordinate_gate(struct client *c, const struct kv_command *run);
/* 1 when run goes through the four steps (not node-local, or an EXEC to run). */
int coordinate_wants(struct client *c, const struct kv_command *run);
/* process_command, after every check: runs (or continues) run through the four
 * steps; returns 1 when it took the command (replied, or c waits), 0 when the
 * command is node-local and runs as usual. */
int coordinate_command(struct client *c, const struct kv_command *run);
/* run_waiting, before process_command: when c's writes have all answered,
 * releases or rewrites its held replies and returns 1 (the waiting command is
 * done), 2 (c waited with no command: a batch's end of input) or 0 (the waiting
 * command runs afresh: it ended a batch); 0 also when c is not waiting on writes. */
int coordinate_resume(struct client *c);
/* 1 while c runs a pipeline batch (commands join it as they are parsed). */
int coordinate_batch_open(const struct client *c);
/* The parse loop stopped: an open batch ends, c waits for its writes. */
void coordinate_input_end(struct client *c);
/* c is freed or its command ended: outstanding requests cancelled, op freed. */
void coordinate_forget(struct client *c);

/* ---- fanout.c: SCAN KEYS DBSIZE RANDOMKEY FLUSHDB FLUSHALL across the cluster ---- */
struct fanout;
/* Starts run (a CMD_KEYSPACE_FANOUT command) for c: 1 with *out when it runs (the
 * caller suspends c; client_resume when fanout_done), 0 when it replied already
 * (bad arguments). */
int fanout_start(struct client *c, const struct kv_command *run, struct fanout **out);
int fanout_done(const struct fanout *f);
/* The one reply of a done fanout. */
void fanout_reply(struct client *c, struct fanout *f);
/* Cancels what is outstanding and frees f (NULL: nothing). */
void fanout_free(struct fanout *f);


/* ---- the CONFIG command's backend ----
 * The config table and its apply hooks are the process's (server/net/config.c,
 * above this folder); CONFIG GET/SET/REWRITE and INFO reach them through these,
 * which config_init registers. Rare paths: an indirect call costs nothing here. */
#define CONFIG_ERR_LEN 256
typedef void config_visit_fn(void *ctx, const char *name, const char *value);
struct config_ops {
    /* CONFIG SET of npairs name/value pairs, all or nothing. 0, or -1 with the
     * whole Redis error ("ERR Unknown option ...") in err. */
    int (*set_pairs)(int npairs, const struct kv_slice *args, char *err, size_t errlen);
    /* Calls fn(name, value) for each directive matching any of the glob patterns,
     * once per directive, in table order. */
    void (*get)(int npats, const struct kv_slice *pats, config_visit_fn *fn, void *ctx);
    /* Writes the current value of a directive into buf; -1 if unknown. */
    int (*get_value)(const char *name, char *buf, size_t cap);
    /* CONFIG REWRITE: rewrites server.config_file in place. 0 or -1 with err. */
    int (*rewrite)(char *err, size_t errlen);
};
/* The registered backend (every member set once config_init or
 * config_attach_command has run). */
extern struct config_ops config_ops;

#endif
