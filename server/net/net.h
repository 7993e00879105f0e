/* server/net/net.h: the process, the top of the node: listeners, the event loop
 * and its before-sleep step, reading sockets (net.c), the config table and its
 * apply hooks (config.c: kv.conf, --name value, CONFIG SET's backend), and
 * starting and stopping the node (server.c). main.c includes this header. It
 * registers what the lower layers call back: the client layer's socket hooks
 * (client_hooks), the CONFIG command's backend (config_ops) and, through
 * server_subscribe_events, the store's subscribers and persistence's client hooks.
 *
 * Threading: loop thread only.
 */
#ifndef KVD_NET_H
#define KVD_NET_H

#include <stdio.h>

#include "server/cmd/cmd.h"

/* ---- config.c ---- */
/* Sets every directive to its default. Call once before anything else. */
void config_init(void);
/* Registers the CONFIG command's backend (config_ops: set, get, get one value,
 * rewrite) without touching the values; config_init calls it, and so do tests
 * that set values by hand before running CONFIG. */
void config_attach_command(void);
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
void config_get(int npats, const struct kv_slice *pats, config_visit_fn *fn, void *ctx);
/* Writes the current value of a directive into buf; returns -1 if unknown. */
int config_get_value(const char *name, char *buf, size_t cap);
/* CONFIG REWRITE: rewrites server.config_file in place. 0 or -1 with err. */
int config_rewrite(char *err, size_t errlen);
/* kvd --help-config */
void config_print_help(FILE *fp);

/* ---- net.c ---- */
/* hashrec.c: a big hash as the cluster's field records (cluster/fields.h). read: 1
 * with *out (a FIELDS record, value valid until the next call) when key holds a
 * big hash, 0 when it holds anything else, -1 error. apply: a FIELDS record,
 * field by field: STORE_APPLIED 1, STORE_IGNORED 0, STORE_ERROR -1. */
struct msg_record;
int hashrec_read(unsigned db, const char *key, size_t klen, struct msg_record *out);
int hashrec_apply(unsigned db, const char *key, size_t klen, const struct msg_record *rec);
/* The content digest (cluster/fields.h) of key's big hash, equal to fields_digest
 * of what hashrec_read gives: 1 with *out, 0 when key holds anything else, -1
 * error. O(fields): one walk of the field dicts (persistent mode: loads the hash,
 * as a read does). */
int hashrec_digest(unsigned db, const char *key, size_t klen, uint64_t *out);

int net_listen(char *err, size_t errlen);   /* opens every bind/port listener */
void net_close_listeners(void);
int net_rebind(char *err, size_t errlen);   /* CONFIG SET port/bind */
void net_main_loop(void);                   /* until shutdown */
void net_reset_cron(void);                  /* hz changed */
void net_client_uninstall(struct client *c);
void net_stop_reading(struct client *c);
int net_write_now(struct client *c);        /* try writing; 0 ok, -1 closed */
/* Gives the client layer the socket hooks above (client_hooks). server_start,
 * before the first client. */
void net_install_hooks(void);
/* Reads from the socket and processes every complete command. */
void client_read(struct client *c);

/* ---- server.c ---- */
int server_start(void);   /* after config: loop, keyspace, listeners, pidfile */
void server_stop(void);   /* after the loop: clients, listeners, pidfile, memory */
/* The cron's cluster work: the tombstone GC horizon to the engine, dir/node-alive. */
void server_cluster_cron(void);
/* Subscribes WATCH (multi.c), the statistics (server.dirty, expired_keys,
 * evicted_keys) and, for server.mode, the store's backend (store_init) to the store's
 * events (events.h), and hands persistence the client layer's hooks
 * (client_attach_store). Called at start-up; again after a test changes server.mode. */
void server_subscribe_events(void);

#endif
