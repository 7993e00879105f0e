/* server/store/store_cleanup_test.c: the store's part of KVD CLEANUP (cleanup.c): the
 * keys whose token lies outside the kept ranges go (strings, keys with a TTL, big
 * hashes), the others stay with their values and TTLs, no tombstone is left, the
 * local count follows; in cache mode and in persistent mode, where the records
 * leave the disk too and stay gone after a restart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "server/store/hlc.h"
#include "server/store/persist.h"
#include "server/store/store.h"
#include "server/test_store.h"
#include "server/test_client.h"
#include "tests/test.h"

#define NKEYS 2000
#define HALF (1ull << 63)

static void key_of(char *b, size_t n, int i) {
    snprintf(b, n, "%s:%d", i % 10 == 0 ? "ttl" : i % 10 == 1 ? "hash" : "str", i);
}

static int kept(const char *k) {
    return ks_token(k, strlen(k)) < HALF;
}

static void fill(void) {
    char k[32], line[128];
    for (int i = 0; i < NKEYS; i++) {
        key_of(k, sizeof k, i);
        if (i % 10 == 0) {
            snprintf(line, sizeof line, "SET %s v%d EX 1000", k, i);
        } else if (i % 10 == 1) {
            snprintf(line, sizeof line, "HSET %s a %d b yyyyyyyyyyyy", k, i);
        } else {
            snprintf(line, sizeof line, "SET %s v%d", k, i);
        }
        run(line);
    }
    if (cur_mode == MODE_PERSISTENT) {
        persist_before_sleep();
    }
}

/* Keeps [0, 2^63): runs the cleanup to its end (bounded). */
static int clean_half(void) {
    struct store_span keep = {0, HALF};
    char err[128];
    if (store_cleanup_start(&keep, 1, err, sizeof err) != 1) {
        return 0;
    }
    for (int i = 0; i < 20000 && store_cleanup_running(); i++) {
        store_cleanup_step();
        if (store_cleanup_running()) {
            usleep(500);
        }
    }
    return !store_cleanup_running();
}

/* Counts keys whose presence (and value or TTL) is not what a cleanup of the
 * upper half of the tokens leaves; *nkept gets how many should stay. */
static int wrong_keys(int *nkept) {
    char k[32], line[128], want[64];
    int bad = 0;
    *nkept = 0;
    for (int i = 0; i < NKEYS; i++) {
        key_of(k, sizeof k, i);
        int keep = kept(k);
        *nkept += keep;
        snprintf(line, sizeof line, "EXISTS %s", k);
        int ok = strcmp(run(line), keep ? ":1" : ":0") == 0;
        if (ok && keep && i % 10 == 1) {
            snprintf(line, sizeof line, "HGET %s a", k);
            char num[16];
            snprintf(num, sizeof num, "%d", i);
            snprintf(want, sizeof want, "$%zu %s", strlen(num), num);
            ok = strcmp(run(line), want) == 0;
        } else if (ok && keep && i % 10 == 0) {
            snprintf(line, sizeof line, "TTL %s", k);
            const char *t = run(line);
            ok = t[0] == ':' && atoi(t + 1) > 0;
        }
        if (ok && !keep) {
            struct store_record r;
            ok = store_get_record(0, k, strlen(k), &r) == 0; /* not even a tombstone */
        }
        if (!ok && bad++ < 3) {
            fprintf(stderr, "  key %s (kept %d): wrong\n", k, keep);
        }
    }
    return bad;
}

static void check_dbsize(int want) {
    char b[32];
    snprintf(b, sizeof b, ":%d", want);
    CHECK_EQ_STR(run("DBSIZE"), b);
}

static void cleanup_in(int mode) {
    start(mode);
    fill();
    check_dbsize(NKEYS);
    long long expired_before = server.stat_expiredkeys;
    CHECK(clean_half());
    struct store_cleanup_stats st;
    store_cleanup_stats(&st);
    CHECK_EQ_INT(st.state, CLEANUP_DONE);
    int nkept = 0;
    CHECK_EQ_INT(wrong_keys(&nkept), 0);
    CHECK(nkept > NKEYS / 3 && nkept < NKEYS * 2 / 3);
    CHECK_EQ_INT((int)st.keys_dropped, NKEYS - nkept);
    check_dbsize(nkept);
    CHECK(server.stat_expiredkeys == expired_before); /* nothing announced as gone */
    if (mode == MODE_PERSISTENT) {
        persist_before_sleep();
        persist_close(); /* clean: the counts are exact */
        drop_cache();
        open_db();
        check_dbsize(nkept);
        CHECK_EQ_INT(wrong_keys(&nkept), 0);
        persist_close();
        drop_cache();
        open_db();
    }
    stop();
}

static void test_cleanup_drops_the_keys_outside_the_kept_ranges_in_cache_mode(void) {
    cleanup_in(MODE_CACHE);
}

static void test_cleanup_drops_the_keys_and_records_in_persistent_mode(void) {
    cleanup_in(MODE_PERSISTENT);
}

static void test_cleanup_keeping_everything_drops_nothing(void) {
    start(MODE_CACHE);
    fill();
    struct store_span all = {0, 0};
    char err[128];
    CHECK_EQ_INT((int)store_cleanup_start(&all, 1, err, sizeof err), 0);
    CHECK(!store_cleanup_running());
    check_dbsize(NKEYS);
    stop();
}

static void test_cleanup_refuses_a_second_one_while_running(void) {
    start(MODE_CACHE);
    fill();
    struct store_span keep = {0, HALF};
    char err[128];
    CHECK_EQ_INT((int)store_cleanup_start(&keep, 1, err, sizeof err), 1);
    CHECK_EQ_INT((int)store_cleanup_start(&keep, 1, err, sizeof err), -1);
    CHECK(strstr(err, "already running") != NULL);
    store_cleanup_abort("test");
    struct store_cleanup_stats st;
    store_cleanup_stats(&st);
    CHECK_EQ_INT(st.state, CLEANUP_ABORTED);
    CHECK(!store_cleanup_running());
    stop();
}

/* How many keys of the dropped half (tokens >= 2^63) are absent; -1 when a key
 * of the kept half is. */
static int absent_of_dropped_half(void) {
    char k[32], line[64];
    int absent = 0;
    for (int i = 0; i < NKEYS; i++) {
        key_of(k, sizeof k, i);
        snprintf(line, sizeof line, "EXISTS %s", k);
        int here = strcmp(run(line), ":1") == 0;
        if (kept(k) && !here) {
            return -1;
        }
        absent += !kept(k) && !here;
    }
    return absent;
}

/* A cleanup of the upper half of the tokens, cut short after steps steps of about
 * 100 keys; *swept gets how many keys it dropped. */
static void start_cut_short(int steps, long *swept) {
    *swept = 0;
    struct store_span keep = {0, HALF};
    char err[128];
    store_cleanup_set_step_limit(100);
    CHECK_EQ_INT((int)store_cleanup_start(&keep, 1, err, sizeof err), 1);
    for (int i = 0; i < steps; i++) {
        store_cleanup_step();
    }
    store_cleanup_set_step_limit(0);
    struct store_cleanup_stats st;
    store_cleanup_stats(&st);
    CHECK_EQ_INT(st.state, CLEANUP_SWEEPING);
    CHECK(st.keys_dropped >= 100 && st.keys_dropped < 800);
    char b[32];
    snprintf(b, sizeof b, ":%d", NKEYS - (int)st.keys_dropped);
    CHECK_EQ_STR(run("DBSIZE"), b);
    *swept = (long)st.keys_dropped;
}

static void test_cleanup_cut_short_by_a_restart_recounts_the_keys(void) {
    start(MODE_PERSISTENT);
    fill();
    long swept;
    start_cut_short(2, &swept);
    CHECK(swept > 0);
    persist_before_sleep();
    persist_close(); /* mid-sweep: the records of the swept keys are still there */
    drop_cache();
    open_db();
    check_dbsize(NKEYS); /* recounted: the counts describe the disk again */
    struct store_cleanup_stats st;
    store_cleanup_stats(&st);
    CHECK_EQ_INT(st.state, CLEANUP_ABORTED);
    CHECK(clean_half()); /* a new cleanup finishes the job */
    int nkept = 0;
    CHECK_EQ_INT(wrong_keys(&nkept), 0);
    check_dbsize(nkept);
    stop();
}

static void test_cleanup_aborted_mid_sweep_drops_exactly_what_it_swept(void) {
    start(MODE_PERSISTENT);
    fill();
    long swept;
    start_cut_short(3, &swept);
    CHECK(swept > 0);
    store_cleanup_abort("the ranges this node replicates changed");
    for (int i = 0; i < 20000 && store_cleanup_running(); i++) {
        store_cleanup_step(); /* the compaction of what was swept */
        usleep(500);
    }
    CHECK(!store_cleanup_running());
    CHECK_EQ_INT(absent_of_dropped_half(), (int)swept); /* gone from the disk too */
    check_dbsize(NKEYS - (int)swept);
    persist_before_sleep();
    persist_close();
    drop_cache();
    open_db();
    check_dbsize(NKEYS - (int)swept);
    CHECK_EQ_INT(absent_of_dropped_half(), (int)swept);
    stop();
}

int main(void) {
    TEST_RUN(test_cleanup_drops_the_keys_outside_the_kept_ranges_in_cache_mode);
    TEST_RUN(test_cleanup_drops_the_keys_and_records_in_persistent_mode);
    TEST_RUN(test_cleanup_keeping_everything_drops_nothing);
    TEST_RUN(test_cleanup_refuses_a_second_one_while_running);
    TEST_RUN(test_cleanup_cut_short_by_a_restart_recounts_the_keys);
    TEST_RUN(test_cleanup_aborted_mid_sweep_drops_exactly_what_it_swept);
    TEST_MAIN_END();
}
