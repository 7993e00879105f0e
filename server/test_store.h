/* server/test_store.h: a store for the store's unit tests (store_test,
 * store_cleanup_test): start(mode) boots the server's globals in that mode (a
 * persistent one on an engine in a fresh temp dir), run(line) runs a command
 * through the in-process client, restart() closes and reopens the engine with an
 * empty cache (what survives is what the engine kept), stop() removes it all.
 *
 * For *_test.c files only: everything here is static (test_client.h's rule).
 */
#ifndef KVD_TEST_STORE_H
#define KVD_TEST_STORE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/engine.h"
#include "server/store/hlc.h"
#include "server/store/persist.h"
#include "server/store/store.h"
#include "server/test_client.h"

static struct client tc;
static char dir[256];
static int cur_mode;

static inline const char *run(const char *line) {
    server.mstime = kv_mstime();
    return tclient_run(&tc, line, TCLIENT_HANDLER);
}

/* Empties the in-memory keyspace (persistent mode: the cache) of every db. */
static inline void drop_cache(void) {
    for (int i = 0; i < server.databases; i++) {
        ks_flush_db(server.db[i], 0);
    }
}

static inline void open_db(void) {
    char err[256];
    if (persist_open_sync(dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "open: %s\n", err);
        abort();
    }
    tclient_reset(&tc);
}

/* A fresh store in mode m. */
static inline void start(int m) {
    if (server.db == NULL) {
        server.appendfsync = PERSIST_FSYNC_NO;
    }
    tclient_boot(MODE_CACHE);
    persist_close();
    drop_cache();
    cur_mode = m;
    server.mode = m;
    server_subscribe_events(); /* the backend for m */
    server.mstime = kv_mstime();
    server.node_tag = 0x100;
    server.gc_grace_seconds = 864000;
    hlc_reset();
    tclient_reset(&tc);
    if (m == MODE_PERSISTENT) {
        snprintf(dir, sizeof(dir), "/tmp/kvd-store-test-XXXXXX");
        if (mkdtemp(dir) == NULL) {
            abort();
        }
        open_db();
    }
}

/* Persistent mode: the engine closed (after the loop's last flush) and reopened
 * with an empty cache. */
static inline void restart(void) {
    persist_before_sleep();
    persist_close();
    drop_cache();
    hlc_reset();
    open_db();
}

static inline void stop(void) {
    if (cur_mode == MODE_PERSISTENT) {
        persist_close();
        drop_cache();
        lsm_destroy(dir);
        rmdir(dir);
    }
    drop_cache();
    server.mode = MODE_CACHE;
    server_subscribe_events();
    server.node_tag = 0;
}

#endif
