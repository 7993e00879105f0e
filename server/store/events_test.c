/* server/store/events_test.c: unit tests of the store's change events
 * (server/store/events.h): a recording subscriber checks which events each kind of
 * change emits, in which order and with what payload (commands through the handlers,
 * lazy and active expiry, eviction, flushes with their before and after phases,
 * RENAME), and the subscriber order by rank. Cache mode, in-process on a fake client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/store/events.h"
#include "server/store/store.h"
#include "server/test_client.h"
#include "tests/test.h"

static struct client tc;

/* ---- the recorder ---- */

/* One line per event: W written, R replacing, D deleted, X expired, V evicted,
 * B flush before, F flushed; then db:key, and for W "+" (a new key) or "=" (it
 * existed). F adds "/count", B the keys the database still held. */
static char rec[1 << 16];
static size_t rec_len;
static int rec_keys_at_before;   /* ks_db_size(db 0) when FLUSH_BEFORE ran */
static struct store_ev last;     /* the last event, pointers not to be followed */
static int last_had_entry;
static int last_client_is_tc;

static void recorder(const struct store_ev *ev, void *arg) {
    static const char letters[STORE_EV_COUNT] = {'W', 'R', 'D', 'X', 'V', 'B', 'F'};
    char line[160];
    int n;
    if (ev->type == STORE_EV_FLUSH_BEFORE || ev->type == STORE_EV_FLUSHED) {
        n = snprintf(line, sizeof(line), "%c%d", letters[ev->type], ev->db);
        if (ev->type == STORE_EV_FLUSHED) {
            n += snprintf(line + n, sizeof(line) - (size_t)n, "/%zu", ev->count);
        } else {
            rec_keys_at_before = (int)ks_db_size(server.db[0]);
        }
    } else {
        n = snprintf(line, sizeof(line), "%c%d:%.*s%s", letters[ev->type], ev->db,
                     (int)ev->klen, ev->key,
                     ev->type == STORE_EV_WRITTEN ? (ev->existed ? "=" : "+") : "");
    }
    if (rec_len + (size_t)n + 2 < sizeof(rec)) {
        if (rec_len) {
            rec[rec_len++] = ' ';
        }
        memcpy(rec + rec_len, line, (size_t)n);
        rec_len += (size_t)n;
        rec[rec_len] = '\0';
    }
    last = *ev;
    last_had_entry = ev->e != NULL;
    last_client_is_tc = ev->c == &tc;
    (void)arg;
}

static void rec_clear(void) {
    rec_len = 0;
    rec[0] = '\0';
}

static void setup(void) {
    tclient_fresh_cache(&tc);
    server.maxmemory = 0;
    store_subscribe(STORE_SUB_OBSERVER, STORE_EV_ALL, recorder, NULL);
    rec_clear();
}

static void teardown(void) {
    store_unsubscribe(recorder, NULL);
}

static const char *run(const char *line) {
    return tclient_run(&tc, line, TCLIENT_HANDLER);
}

#define RUN_EQ(line, want) CHECK_EQ_STR(run(line), want)

/* ---- writes and deletes ---- */

static void test_set_emits_written_with_existed_and_client(void) {
    setup();
    long long dirty = server.dirty;
    RUN_EQ("set k v1", "+OK");
    CHECK_EQ_STR(rec, "W0:k+");
    CHECK(last_had_entry);
    CHECK(last_client_is_tc);
    CHECK_EQ_INT(server.dirty, dirty + 1); /* the statistics subscriber */
    struct kv_version v1 = last.version;
    RUN_EQ("set k v2", "+OK");
    CHECK_EQ_STR(rec, "W0:k+ W0:k="); /* a string over a string: in place */
    CHECK(kv_version_cmp(last.version, v1) > 0);
    RUN_EQ("hset h f v", ":1");
    rec_clear();
    RUN_EQ("set h s", "+OK");
    CHECK_EQ_STR(rec, "R0:h W0:h="); /* another type: the old entry is replaced */
    RUN_EQ("get k", "$2 v2");
    CHECK_EQ_STR(rec, "R0:h W0:h="); /* a read changes nothing */
    teardown();
}

static void test_del_emits_deleted_before_unlinking(void) {
    setup();
    RUN_EQ("set k v", "+OK");
    RUN_EQ("pexpire k 100000", ":1");
    long long exp = ks_entry_expire(ks_find(server.db[0], "k", 1, ks_token("k", 1)));
    rec_clear();
    RUN_EQ("del k nosuch", ":1");
    CHECK_EQ_STR(rec, "D0:k"); /* nothing for the absent key */
    CHECK(last_had_entry);
    CHECK(last_client_is_tc);
    CHECK_EQ_INT(last.old_expire, exp);
    CHECK(ks_find(server.db[0], "k", 1, ks_token("k", 1)) == NULL);
    teardown();
}

static void test_expire_then_lazy_expiry_emits_expired(void) {
    setup();
    RUN_EQ("set k v", "+OK");
    RUN_EQ("pexpire k 100", ":1");
    CHECK_EQ_STR(rec, "W0:k+ W0:k="); /* the TTL change is a write */
    long long exp = server.mstime + 100;
    CHECK_EQ_INT(last.old_expire, 0);
    long long expired = server.stat_expiredkeys;
    rec_clear();
    server.mstime += 200;
    RUN_EQ("get k", "$-1");
    CHECK_EQ_STR(rec, "X0:k");
    CHECK_EQ_INT(last.old_expire, exp);
    CHECK(last.c == NULL); /* the server's own change */
    CHECK_EQ_INT(server.stat_expiredkeys, expired + 1);
    /* an expire-at in the past is a delete, not an expiry */
    RUN_EQ("set j v", "+OK");
    rec_clear();
    RUN_EQ("pexpireat j 1", ":1");
    CHECK_EQ_STR(rec, "D0:j");
    teardown();
}

static void test_active_expiry_emits_expired_per_key(void) {
    setup();
    server.active_expire_enabled = 1;
    long long past = kv_mstime() - 1000; /* active expiry reads the real clock */
    for (int i = 0; i < 10; i++) {
        char key[16];
        int n = snprintf(key, sizeof(key), "t%d", i);
        ks_insert(server.db[0], obj_str_new(key, (size_t)n, "v", 1, past),
                  ks_token(key, (size_t)n));
    }
    CHECK_EQ_STR(rec, ""); /* ks_insert itself announces nothing */
    for (int round = 0; round < 200 && ks_db_size(server.db[0]) > 0; round++) {
        ks_active_expire_cycle(0);
    }
    CHECK_EQ_INT(ks_db_size(server.db[0]), 0);
    int n = 0;
    for (const char *p = rec; (p = strstr(p, "X0:t")) != NULL; p++) {
        n++;
    }
    CHECK_EQ_INT(n, 10);
    CHECK(strchr(rec, 'D') == NULL && strchr(rec, 'W') == NULL);
    teardown();
}

static void test_eviction_emits_evicted(void) {
    setup();
    server.maxmemory_policy = MM_ALLKEYS_LRU;
    ks_evict_time_limit_us = 1000000000LL;
    for (int i = 0; i < 2000; i++) {
        char key[16], val[101];
        int n = snprintf(key, sizeof(key), "e%d", i);
        memset(val, 'v', 100);
        ks_insert(server.db[0], obj_str_new(key, (size_t)n, val, 100, 0),
                  ks_token(key, (size_t)n));
    }
    long long evicted = server.stat_evictedkeys;
    server.maxmemory = (long long)kv_used_memory() - 50 * 1024;
    ks_perform_evictions();
    server.maxmemory = 0;
    long long gone = server.stat_evictedkeys - evicted;
    CHECK(gone > 0);
    CHECK_EQ_INT(2000 - (long long)ks_db_size(server.db[0]), gone);
    long long n = 0;
    for (const char *p = rec; (p = strstr(p, "V0:e")) != NULL; p++) {
        n++;
    }
    CHECK_EQ_INT(n, gone); /* one event per evicted key, nothing else */
    CHECK(strchr(rec, 'X') == NULL && strchr(rec, 'D') == NULL);
    teardown();
}

/* ---- flushes ---- */

static void test_flush_emits_before_with_keys_then_after_with_count(void) {
    setup();
    RUN_EQ("set a 1", "+OK");
    RUN_EQ("set b 2", "+OK");
    tc.db = server.db[3];
    tc.db_id = 3;
    RUN_EQ("set c 3", "+OK");
    tc.db = server.db[0];
    tc.db_id = 0;
    rec_clear();
    long long dirty = server.dirty;
    RUN_EQ("flushdb", "+OK");
    CHECK_EQ_STR(rec, "B0 F0/2");
    CHECK_EQ_INT(rec_keys_at_before, 2); /* before: the keys are still there */
    CHECK_EQ_INT(server.dirty, dirty + 3);
    CHECK_EQ_INT(ks_db_size(server.db[3]), 1);
    rec_clear();
    RUN_EQ("flushall", "+OK");
    CHECK_EQ_STR(rec, "B-1 F-1/1");
    CHECK_EQ_INT(ks_db_size(server.db[3]), 0);
    teardown();
}

/* ---- two keys ---- */

static void test_rename_emits_source_deleted_then_destination_written(void) {
    setup();
    RUN_EQ("set a 1", "+OK");
    rec_clear();
    RUN_EQ("rename a b", "+OK");
    CHECK_EQ_STR(rec, "D0:a W0:b+");
    RUN_EQ("set a 2", "+OK");
    rec_clear();
    RUN_EQ("rename a b", "+OK");
    CHECK_EQ_STR(rec, "D0:a R0:b W0:b=");
    RUN_EQ("get b", "$1 2");
    teardown();
}

/* ---- subscribers ---- */

static char order[16];
static size_t norder;

static void sub_backend(const struct store_ev *ev, void *arg) {
    (void)ev;
    (void)arg;
    if (norder + 1 < sizeof(order)) {
        order[norder++] = 'b';
    }
}

static void sub_observer(const struct store_ev *ev, void *arg) {
    (void)ev;
    (void)arg;
    if (norder + 1 < sizeof(order)) {
        order[norder++] = 'o';
    }
}

static void test_observers_run_before_backends_and_masks_filter(void) {
    setup();
    CHECK_EQ_INT(store_subscribe(STORE_SUB_BACKEND, STORE_EV_BIT(STORE_EV_WRITTEN), sub_backend,
                                 NULL), 0);
    CHECK_EQ_INT(store_subscribe(STORE_SUB_OBSERVER, STORE_EV_BIT(STORE_EV_WRITTEN),
                                 sub_observer, NULL), 0);
    int nsubs = store_nsubs;
    /* the same subscriber again only changes its mask */
    CHECK_EQ_INT(store_subscribe(STORE_SUB_OBSERVER, STORE_EV_BIT(STORE_EV_WRITTEN),
                                 sub_observer, NULL), 0);
    CHECK_EQ_INT(store_nsubs, nsubs);
    norder = 0;
    RUN_EQ("set k v", "+OK");
    RUN_EQ("del k", ":1"); /* neither wants DELETED */
    order[norder] = '\0';
    CHECK_EQ_STR(order, "ob");
    store_unsubscribe(sub_backend, NULL);
    store_unsubscribe(sub_observer, NULL);
    CHECK_EQ_INT(store_nsubs, nsubs - 2);
    norder = 0;
    RUN_EQ("set k v", "+OK");
    CHECK_EQ_INT(norder, 0);
    teardown();
}

/* ---- dispatch cost: an event nobody wants is not built or dispatched ---- */

static int counted;

static void counter(const struct store_ev *ev, void *arg) {
    (void)ev;
    (void)arg;
    counted++;
}

static void test_wanted_follows_the_masks_and_mask_zero_is_not_called(void) {
    tclient_fresh_cache(&tc); /* no recorder: WATCH (idle) and the statistics only */
    /* nobody wants FLUSH_BEFORE in cache mode while nothing is watched */
    CHECK_EQ_INT(store_wanted(STORE_EV_FLUSH_BEFORE), 0);
    CHECK_EQ_INT(store_subscribe(STORE_SUB_OBSERVER, STORE_EV_BIT(STORE_EV_FLUSH_BEFORE),
                                 counter, NULL), 0);
    CHECK_EQ_INT(store_wanted(STORE_EV_FLUSH_BEFORE), 1);
    counted = 0;
    RUN_EQ("flushall", "+OK");
    CHECK_EQ_INT(counted, 1);
    /* subscribing again with mask 0 keeps the slot but stops the calls */
    int nsubs = store_nsubs;
    CHECK_EQ_INT(store_subscribe(STORE_SUB_OBSERVER, 0, counter, NULL), 0);
    CHECK_EQ_INT(store_nsubs, nsubs);
    CHECK_EQ_INT(store_wanted(STORE_EV_FLUSH_BEFORE), 0);
    RUN_EQ("flushall", "+OK");
    CHECK_EQ_INT(counted, 1);
    store_unsubscribe(counter, NULL);
    CHECK_EQ_INT(store_nsubs, nsubs - 1);
    CHECK_EQ_INT(store_wanted(STORE_EV_FLUSH_BEFORE), 0);
}

/* The statistics are counters: in cache mode with nothing watched no function
 * wants a write, so no event is built, and server.dirty still counts it. */
static void test_counters_count_writes_no_function_wants(void) {
    tclient_fresh_cache(&tc);
    CHECK_EQ_INT(store_wanted(STORE_EV_WRITTEN), 0);
    CHECK_EQ_INT(store_wanted(STORE_EV_DELETED), 0);
    long long dirty = server.dirty;
    RUN_EQ("set k 1", "+OK");
    RUN_EQ("incr k", ":2");
    RUN_EQ("del k", ":1");
    CHECK_EQ_INT(server.dirty, dirty + 3);
    /* a counter of one's own; again with another mask updates it; mask 0 removes it */
    long long n = 0;
    CHECK_EQ_INT(store_subscribe_count(STORE_EV_BIT(STORE_EV_WRITTEN), &n), 0);
    RUN_EQ("set a 1", "+OK");
    RUN_EQ("del a", ":1");
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(store_subscribe_count(STORE_EV_BIT(STORE_EV_DELETED), &n), 0);
    RUN_EQ("set a 1", "+OK");
    RUN_EQ("del a", ":1");
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(store_subscribe_count(0, &n), 0);
    RUN_EQ("set a 1", "+OK");
    RUN_EQ("del a", ":1");
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(server.dirty, dirty + 9);
    CHECK_EQ_INT(store_wanted(STORE_EV_WRITTEN), 0);
}

static void test_watch_wants_events_only_while_a_key_is_watched(void) {
    tclient_fresh_cache(&tc);
    CHECK_EQ_INT(store_wanted(STORE_EV_FLUSH_BEFORE), 0);
    RUN_EQ("watch k", "+OK");
    CHECK_EQ_INT(store_wanted(STORE_EV_FLUSH_BEFORE), 1);
    RUN_EQ("watch j", "+OK");
    RUN_EQ("unwatch", "+OK");
    CHECK_EQ_INT(store_wanted(STORE_EV_FLUSH_BEFORE), 0);
    /* and WATCH still sees a write after being idle */
    RUN_EQ("watch k", "+OK");
    RUN_EQ("set k 1", "+OK");
    CHECK(watch_any());
    RUN_EQ("multi", "+OK");
    RUN_EQ("exec", "*-1");
    CHECK_EQ_INT(store_wanted(STORE_EV_FLUSH_BEFORE), 0); /* EXEC unwatched */
}

/* The scratch run's isolation: only the isolating function hears, no counter
 * counts, and what is subscribed meanwhile is what comes back. */
static void test_isolate_hears_alone_and_restore_keeps_later_subscriptions(void) {
    tclient_fresh_cache(&tc);
    long long dirty = server.dirty;
    counted = 0;
    store_subs_isolate(STORE_EV_BIT(STORE_EV_WRITTEN), counter, NULL);
    CHECK_EQ_INT(store_wanted(STORE_EV_WRITTEN), 1);
    CHECK_EQ_INT(store_wanted(STORE_EV_DELETED), 0);
    RUN_EQ("set k 1", "+OK");
    RUN_EQ("del k", ":1");
    CHECK_EQ_INT(counted, 1);           /* the write, not the delete */
    CHECK_EQ_INT(server.dirty, dirty);  /* no counter counted */
    /* WATCH subscribes while isolated: it does not hear yet, but is kept */
    RUN_EQ("watch w", "+OK");
    CHECK_EQ_INT(store_wanted(STORE_EV_FLUSH_BEFORE), 0);
    store_subs_restore();
    CHECK_EQ_INT(store_wanted(STORE_EV_FLUSH_BEFORE), 1);
    CHECK_EQ_INT(store_wanted(STORE_EV_WRITTEN), 1); /* WATCH's, not counter's */
    RUN_EQ("set k 2", "+OK");
    CHECK_EQ_INT(counted, 1);
    CHECK_EQ_INT(server.dirty, dirty + 1);
    RUN_EQ("unwatch", "+OK");
}

int main(void) {
    TEST_RUN(test_set_emits_written_with_existed_and_client);
    TEST_RUN(test_del_emits_deleted_before_unlinking);
    TEST_RUN(test_expire_then_lazy_expiry_emits_expired);
    TEST_RUN(test_active_expiry_emits_expired_per_key);
    TEST_RUN(test_eviction_emits_evicted);
    TEST_RUN(test_flush_emits_before_with_keys_then_after_with_count);
    TEST_RUN(test_rename_emits_source_deleted_then_destination_written);
    TEST_RUN(test_observers_run_before_backends_and_masks_filter);
    TEST_RUN(test_wanted_follows_the_masks_and_mask_zero_is_not_called);
    TEST_RUN(test_counters_count_writes_no_function_wants);
    TEST_RUN(test_watch_wants_events_only_while_a_key_is_watched);
    TEST_RUN(test_isolate_hears_alone_and_restore_keeps_later_subscriptions);
    TEST_MAIN_END();
}
