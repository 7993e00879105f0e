/* server/server_int.h: the node's core, private to server/: the allocator's
 * statistics (alloc.c), the node id (node.c), the config table (config.c),
 * formatting helpers (fmt.c), listeners and the loop (net.c), the client
 * lifecycle, waiting and output holding (client.c), command dispatch, slow log
 * and MONITOR (commands.c), MULTI state (multi.c), INFO (cmd_info.c), and
 * start/stop (server.c).
 *
 * Its users are the core (main.c server.c config.c net.c client.c commands.c
 * reply.c alloc.c log.c fmt.c node.c), the node-local command files (cmd_conn.c
 * multi.c cmd_info.c cmd_config.c cmd_command.c cmd_admin.c cmd_debug.c),
 * persist.c and store.c, and the core's unit tests. Of the data families only
 * cmd_hash.c includes it (HRANDFIELD's client_check_output_limits); the others
 * use server.h and coord.h. What the families share is in server.h; the
 * keyspace's interface is ks.h, persistence's persist.h.
 */
#ifndef KVD_SERVER_INT_H
#define KVD_SERVER_INT_H

#include <stdio.h>

#include "server/ks.h"
#include "server/persist.h"
#include "server/server.h"

/* ---- alloc.c ---- */
void kv_used_memory_refresh(void);  /* re-anchors kv_used_memory(); cron */
size_t kv_allocator_resident(void); /* jemalloc stats.resident, 0 if unknown */
const char *kv_allocator_name(void);

/* ---- node.c ---- */
/* Reads or creates the node id (dir/node-id) and sets server.node_id and
 * server.node_tag. 0, or -1 with err. */
int node_init(char *err, size_t errlen);
/* The 32-bit version tag of a node id (never 0). */
uint32_t node_tag_of(const char *id);

/* ---- config.c ---- */
#define CONFIG_ERR_LEN 256

/* Sets every directive to its default. Call once before anything else. */
void config_init(void);
/* Frees the strings the table owns (shutdown, tests). */
void config_deinit(void);
/* Parses configuration text (kv.conf syntax: "name value ...", '#' comments,
 * quoting as redis.conf), then runs the apply hooks that need no event loop
 * (listeners are opened later). Returns 0, or -1 with Redis's fatal error block
 * in err ("*** FATAL CONFIG FILE ERROR ...", the line number, the line, why). */
int config_load_text(const char *text, char *err, size_t errlen);
/* Builds the configuration from argv as redis-server does: an optional file, then
 * "--name value ..." pairs, then applies it. Prints Redis's fatal error block and
 * returns -1 on error. */
int config_load_argv(int argc, char **argv);
/* CONFIG SET of npairs name/value pairs, all or nothing. Returns 0, or -1 with the
 * whole Redis error ("ERR Unknown option ...") in err. */
int config_set_pairs(int npairs, const struct kv_slice *args, char *err, size_t errlen);
/* Calls fn(name, value) for each directive matching any of the glob patterns,
 * once per directive, in table order. */
typedef void config_visit_fn(void *ctx, const char *name, const char *value);
void config_get(int npats, const struct kv_slice *pats, config_visit_fn *fn, void *ctx);
/* Writes the current value of a directive into buf; returns -1 if unknown. */
int config_get_value(const char *name, char *buf, size_t cap);
/* CONFIG REWRITE: rewrites server.config_file in place. 0 or -1 with err. */
int config_rewrite(char *err, size_t errlen);
/* kvd --help-config */
void config_print_help(FILE *fp);

/* ---- fmt.c ---- */
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

/* ---- net.c ---- */
int net_listen(char *err, size_t errlen);   /* opens every bind/port listener */
void net_close_listeners(void);
int net_rebind(char *err, size_t errlen);   /* CONFIG SET port/bind */
void net_main_loop(void);                   /* until shutdown */
void net_reset_cron(void);                  /* hz changed */
void net_client_uninstall(struct client *c);
void net_stop_reading(struct client *c);
int net_write_now(struct client *c);        /* try writing; 0 ok, -1 closed */
extern int net_bound_port;                  /* the port actually bound */

/* ---- client.c ---- */
struct client *client_create(int fd);
void client_free(struct client *c);
/* Marks a client to be closed and freed in the before-sleep step. */
void client_close_async(struct client *c);
/* Queues c for the before-sleep write step (no-op if already queued). */
void client_queue_write(struct client *c);
void client_free_pending_closes(void);
void client_handle_pending_writes(void);
/* Reads from the socket and processes every complete command. */
void client_read(struct client *c);
/* Parses and runs every complete command in the query buffer. */
void client_process_input(struct client *c);
/* Closes c if its output is over client-output-buffer-limit; returns 1 if so. */
int client_check_output_limits(struct client *c);
/* One CLIENT LIST line (with trailing '\n') into buf; returns its length. */
size_t client_info_line(const struct client *c, char *buf, size_t cap);
struct client *client_by_id(uint64_t id);
void client_set_db(struct client *c, int id);
void client_cron(void);

/* A command can wait, a reply can be held: see "A COMMAND CAN WAIT" in client.c.
 * All on the loop thread. */
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
/* DEBUG SET-COMMAND-DELAY: commands wait ms before they run, each with
 * probability prob (0..1); ms 0 turns it off. c NULL: every client without its
 * own setting; else c alone (ms -1: follow the server's setting again). */
void client_set_command_delay(struct client *c, long long ms, double prob);

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

extern int clients_monitors;                 /* clients in MONITOR mode */

/* ---- commands.c ---- */
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
/* Error statistics (INFO errorstats). */
void errorstat_count(const char *msg, size_t len);
int errorstat_iter(int i, const char **code, long long *count);

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

/* ---- multi.c ---- */
void multi_queue(struct client *c);          /* queue c->argv for EXEC */
void multi_discard_state(struct client *c);  /* leaves MULTI */
void unwatch_all(struct client *c);
int watch_any(void);                         /* anyone watching? */
void multi_subscribe(void);                  /* WATCH on the store events */

/* ---- cmd_info.c ---- */
void info_init(void);
void stats_cron(void);
/* CONFIG RESETSTAT: zeroes the counters INFO reports (stats, commandstats,
 * errorstats, instantaneous metrics); the memory peak restarts from now. */
void info_reset_stats(void);
/* Builds the INFO text for the given sections (argc 0 = default). Caller frees. */
char *info_generate(int nsec, const struct kv_slice *secs, size_t *len);

/* ---- server.c ---- */
int server_start(void);   /* after config: loop, keyspace, listeners, pidfile */
void server_stop(void);   /* after the loop: clients, listeners, pidfile, memory */
void server_request_shutdown(int from_signal);
long long kv_time_sync(void); /* updates server.mstime/ustime; returns ustime */

#endif
