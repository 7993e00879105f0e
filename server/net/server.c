/* server/net/server.c: starting and stopping the node (after config, before and
 * after the loop), and handing the store its subscribers (WATCH, statistics, the
 * backend) and persistence its client hooks. main.c only parses the command line
 * and calls these. The global state and the clock are server/base/state.c's.
 */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

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
