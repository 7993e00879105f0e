/* engine/db_test.c: behaviour of the DB through its public API: reads and writes,
 * batches, snapshots and iterators, flush, compaction (both styles), manifest
 * replay, expiry and tombstone GC, group commit and the durability seam, and a
 * model test against a plain in-memory map. Crash, fault and corruption tests are
 * in engine/db_crash_test.c. */
#include "engine/engine.h"

#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/db_test_util.h"
#include "tests/test.h"

static const char *fresh_dir(void)
{
    return fresh_dir_named("db");
}

static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    size_t sl = strlen(suffix);
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > sl && strcmp(e->d_name + l - sl, suffix) == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

/* 0 when db maps k to expect (NULL: absent). */
static int get_mismatch(struct lsm_db *db, const char *k, const char *expect)
{
    struct lsm_value v = LSM_VALUE_INIT;
    int rc = lsm_get(db, NULL, k, strlen(k), &v);
    int bad;
    if (expect == NULL) {
        bad = rc != LSM_NOTFOUND;
    } else {
        bad =
            rc != LSM_OK || v.len != strlen(expect) || memcmp(v.data, expect, v.len) != 0;
    }
    if (bad) {
        fprintf(stderr, "  get %s: rc %d, expected %s\n", k, rc,
                expect ? expect : "absent");
    }
    lsm_value_free(&v);
    return bad;
}
#define GET_EQ(db, k, expect) CHECK_EQ_INT(get_mismatch((db), (k), (expect)), 0)

static void test_db_put_get_delete_and_reopen(void)
{
    const char *dir = fresh_dir();
    struct lsm_db *db;
    struct lsm_err err;
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, &err), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "a", 1, "1", 1, NULL, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "b", 1, "2", 1, NULL, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "", 0, "empty-key", 9, NULL, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "z", 1, "", 0, NULL, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_delete(db, "b", 1, NULL, 0, NULL), LSM_OK);
    GET_EQ(db, "a", "1");
    GET_EQ(db, "b", NULL);
    GET_EQ(db, "", "empty-key");
    GET_EQ(db, "z", "");
    GET_EQ(db, "c", NULL);
    lsm_close(&db);
    CHECK(db == NULL);
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, &err), LSM_OK); /* from the WAL */
    GET_EQ(db, "a", "1");
    GET_EQ(db, "b", NULL);
    GET_EQ(db, "z", "");
    CHECK_EQ_INT(lsm_flush(db), LSM_OK);
    lsm_close(&db);
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, &err), LSM_OK); /* from a table */
    GET_EQ(db, "a", "1");
    GET_EQ(db, "b", NULL);
    GET_EQ(db, "", "empty-key");
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK_EQ_INT(st.files_per_level[0], 1);
    lsm_close(&db);
    remove_dir(dir);
}

static void test_db_second_open_is_refused(void)
{
    const char *dir = fresh_dir();
    struct lsm_db *db, *db2;
    struct lsm_err err;
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, &err), LSM_OK);
    CHECK(lsm_open(dir, NULL, &db2, &err) != LSM_OK);
    CHECK(db2 == NULL);
    lsm_close(&db);
    struct lsm_options o;
    lsm_options_init(&o);
    o.error_if_exists = 1;
    CHECK(lsm_open(dir, &o, &db2, &err) != LSM_OK);
    remove_dir(dir);
    o.error_if_exists = 0;
    o.create_if_missing = 0;
    CHECK(lsm_open("/tmp/kvd-db-test-does-not-exist", &o, &db2, &err) != LSM_OK);
}

static void test_db_meta_round_trips(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    struct lsm_meta m = {fake_now + 10000, 123456789};
    CHECK_EQ_INT(lsm_put(db, "k", 1, "v", 1, &m, 0, NULL), LSM_OK);
    struct lsm_value v = LSM_VALUE_INIT;
    CHECK_EQ_INT(lsm_get(db, NULL, "k", 1, &v), LSM_OK);
    CHECK_EQ_INT(v.expire_at, m.expire_at);
    CHECK_EQ_INT(v.timestamp, m.timestamp);
    CHECK_EQ_INT(lsm_flush(db), LSM_OK);
    memset(&v.expire_at, 0, 16);
    CHECK_EQ_INT(lsm_get(db, NULL, "k", 1, &v), LSM_OK);
    CHECK_EQ_INT(v.expire_at, m.expire_at);
    CHECK_EQ_INT(v.timestamp, m.timestamp);
    lsm_value_free(&v);
    lsm_close(&db);
    remove_dir(dir);
}

static void test_db_large_values_and_limits(void)
{
    const char *dir = fresh_dir();
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, NULL), LSM_OK);
    size_t n = 5u << 20;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++) {
        big[i] = (char)(i * 131 + 7);
    }
    CHECK_EQ_INT(lsm_put(db, "big", 3, big, n, NULL, 0, NULL), LSM_OK);
    struct lsm_value v = LSM_VALUE_INIT;
    CHECK_EQ_INT(lsm_get(db, NULL, "big", 3, &v), LSM_OK);
    CHECK_EQ_MEM(v.data, v.len, big, n);
    CHECK_EQ_INT(lsm_flush(db), LSM_OK);
    memset(v.data, 0, v.len);
    CHECK_EQ_INT(lsm_get(db, NULL, "big", 3, &v), LSM_OK);
    CHECK_EQ_MEM(v.data, v.len, big, n);
    lsm_value_free(&v);
    free(big);
    /* past the limits: refused before anything is read or written */
    CHECK_EQ_INT(lsm_put(db, "k", (size_t)1 << 28, "v", 1, NULL, 0, NULL), LSM_INVALID);
    struct lsm_batch *b = lsm_batch_create();
    lsm_batch_put(b, "k", 1, "v", 1, NULL);
    lsm_batch_delete(b, "k", (size_t)1 << 30, NULL);
    CHECK_EQ_INT(lsm_write(db, b, 0, NULL), LSM_INVALID);
    lsm_batch_destroy(&b);
    GET_EQ(db, "k", NULL); /* nothing of the refused batch applied */
    lsm_close(&db);
    remove_dir(dir);
}

static void test_db_batch_is_atomic_and_ordered(void)
{
    const char *dir = fresh_dir();
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, NULL), LSM_OK);
    struct lsm_batch *b = lsm_batch_create();
    lsm_batch_put(b, "x", 1, "1", 1, NULL);
    lsm_batch_put(b, "x", 1, "2", 1, NULL); /* later in the batch wins */
    lsm_batch_put(b, "y", 1, "3", 1, NULL);
    lsm_batch_delete(b, "y", 1, NULL);
    lsm_batch_put(b, "w", 1, "4", 1, NULL);
    CHECK_EQ_INT(lsm_batch_count(b), 5);
    uint64_t seq = 0;
    CHECK_EQ_INT(lsm_write(db, b, LSM_WRITE_SYNC, &seq), LSM_OK);
    CHECK_EQ_INT(seq, 5);
    CHECK(lsm_durable_seq(db) >= 5);
    GET_EQ(db, "x", "2");
    GET_EQ(db, "y", NULL);
    GET_EQ(db, "w", "4");
    lsm_batch_clear(b);
    CHECK_EQ_INT(lsm_batch_count(b), 0);
    CHECK_EQ_INT(lsm_write(db, b, 0, NULL), LSM_OK); /* empty batch: fine */
    lsm_batch_destroy(&b);
    CHECK(b == NULL);
    lsm_close(&db);
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, NULL), LSM_OK);
    GET_EQ(db, "x", "2");
    GET_EQ(db, "y", NULL);
    lsm_close(&db);
    remove_dir(dir);
}

static void fill_keys(struct lsm_db *db, int from, int to, const char *tag)
{
    for (int i = from; i < to; i++) {
        char k[32], v[64];
        int kl = snprintf(k, sizeof(k), "key%06d", i);
        int vl = snprintf(v, sizeof(v), "%s-value-%06d-padding-padding", tag, i);
        lsm_put(db, k, (size_t)kl, v, (size_t)vl, NULL, 0, NULL);
    }
}

static int check_keys(struct lsm_db *db, int from, int to, const char *tag)
{
    struct lsm_value v = LSM_VALUE_INIT;
    int bad = 0;
    for (int i = from; i < to; i++) {
        char k[32], e[64];
        int kl = snprintf(k, sizeof(k), "key%06d", i);
        int el = snprintf(e, sizeof(e), "%s-value-%06d-padding-padding", tag, i);
        if (lsm_get(db, NULL, k, (size_t)kl, &v) != LSM_OK || v.len != (size_t)el ||
            memcmp(v.data, e, (size_t)el) != 0) {
            bad++;
        }
    }
    lsm_value_free(&v);
    return bad;
}

static void test_db_iterator_merges_all_sources_in_order(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    fill_keys(db, 0, 3000, "a");        /* several flushes and compactions */
    fill_keys(db, 1000, 1500, "b");     /* overwrites */
    for (int i = 2000; i < 2100; i++) { /* deletes */
        char k[32];
        int kl = snprintf(k, sizeof(k), "key%06d", i);
        lsm_delete(db, k, (size_t)kl, NULL, 0, NULL);
    }
    struct lsm_iter *it = lsm_iter_create(db, NULL);
    int n = 0, prev = -1, bad = 0;
    for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
        size_t kl, vl;
        const char *k = lsm_iter_key(it, &kl);
        const char *v = lsm_iter_value(it, &vl);
        int i = atoi(k + 3);
        if (i <= prev || (i >= 2000 && i < 2100)) {
            bad++;
        }
        const char *tag = i >= 1000 && i < 1500 ? "b" : "a";
        char e[64];
        int el = snprintf(e, sizeof(e), "%s-value-%06d-padding-padding", tag, i);
        if (vl != (size_t)el || memcmp(v, e, vl) != 0) {
            bad++;
        }
        prev = i;
        n++;
    }
    CHECK_EQ_INT(lsm_iter_status(it), LSM_OK);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(n, 2900);
    lsm_iter_seek(it, "key001999x", 10);
    CHECK(lsm_iter_valid(it));
    size_t kl;
    const char *k = lsm_iter_key(it, &kl);
    CHECK_EQ_MEM(k, kl, "key002100", 9);
    lsm_iter_seek(it, "zzz", 3);
    CHECK(!lsm_iter_valid(it));
    lsm_iter_destroy(&it);
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK(st.flushes > 3);
    lsm_close(&db);
    remove_dir(dir);
}

static void test_db_snapshot_isolation_while_writes_continue(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    fill_keys(db, 0, 1000, "old");
    const struct lsm_snapshot *s = lsm_snapshot_create(db);
    struct lsm_read_options ro = LSM_READ_OPTIONS_INIT;
    ro.snapshot = s;
    struct lsm_iter *it = lsm_iter_create(db, &ro);
    fill_keys(db, 0, 1000, "new"); /* flushes and compactions happen meanwhile */
    for (int i = 0; i < 1000; i += 3) {
        char k[32];
        int kl = snprintf(k, sizeof(k), "key%06d", i);
        lsm_delete(db, k, (size_t)kl, NULL, 0, NULL);
    }
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    /* the snapshot still reads the old values */
    struct lsm_value v = LSM_VALUE_INIT;
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        char k[32], e[64];
        int kl = snprintf(k, sizeof(k), "key%06d", i);
        int el = snprintf(e, sizeof(e), "old-value-%06d-padding-padding", i);
        if (lsm_get(db, &ro, k, (size_t)kl, &v) != LSM_OK || v.len != (size_t)el ||
            memcmp(v.data, e, v.len) != 0) {
            bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
    int n = 0;
    for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
        size_t vl;
        const char *val = lsm_iter_value(it, &vl);
        bad += memcmp(val, "old-", 4) != 0;
        n++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(n, 1000);
    lsm_iter_destroy(&it);
    lsm_snapshot_release(db, &s);
    CHECK_EQ_INT(lsm_get(db, NULL, "key000000", 9, &v), LSM_NOTFOUND);
    CHECK_EQ_INT(lsm_get(db, NULL, "key000001", 9, &v), LSM_OK);
    CHECK_EQ_MEM(v.data, 4, "new-", 4);
    lsm_value_free(&v);
    lsm_close(&db);
    remove_dir(dir);
}

/* Waits until background compactions have caught up (at most ~5 s). */
static void wait_idle(struct lsm_db *db)
{
    for (int i = 0; i < 500; i++) {
        struct lsm_stats st;
        lsm_stats(db, &st);
        if (st.pending_compaction_bytes == 0 && st.immutable_memtables == 0) {
            return;
        }
        usleep(10000);
    }
}

static void test_db_flush_compaction_and_manifest_replay(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    fill_keys(db, 0, 5000, "v1");
    fill_keys(db, 0, 5000, "v2");
    CHECK_EQ_INT(check_keys(db, 0, 5000, "v2"), 0);
    wait_idle(db);
    struct lsm_stats st;
    lsm_stats(db, &st);
    int levels_used = 0;
    for (int l = 1; l < LSM_MAX_LEVELS; l++) {
        levels_used += st.files_per_level[l] > 0;
    }
    CHECK(levels_used >= 2); /* L1 overflowed into L2 */
    lsm_close(&db);
    /* a stray table and a stray WAL are orphans: deleted at open */
    char path[512];
    snprintf(path, sizeof(path), "%s/999999.sst", dir);
    FILE *f = fopen(path, "w");
    fputs("junk", f);
    fclose(f);
    struct lsm_err err;
    int rc = lsm_open(dir, &o, &db, &err);
    if (rc != LSM_OK) {
        fprintf(stderr, "  reopen: %s\n", err.msg);
    }
    CHECK_EQ_INT(rc, LSM_OK);
    CHECK(access(path, F_OK) != 0);
    CHECK_EQ_INT(check_keys(db, 0, 5000, "v2"), 0);
    struct lsm_stats st2;
    lsm_stats(db, &st2);
    uint64_t deep = 0; /* the tables below L0 came back (compaction may reshape them) */
    for (int l = 1; l < LSM_MAX_LEVELS; l++) {
        deep += st2.bytes_per_level[l];
    }
    CHECK(deep > 0);
    int logs = count_files(dir, ".log"); /* the current segment (and the next, ahead) */
    CHECK(logs >= 1 && logs <= 2);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    lsm_stats(db, &st2);
    CHECK_EQ_INT(st2.files_per_level[0], 0);
    CHECK(st2.space_amplification < 1.01);
    CHECK_EQ_INT(check_keys(db, 0, 5000, "v2"), 0);
    lsm_close(&db);
    rc = lsm_open(dir, &o, &db, &err);
    if (rc != LSM_OK) {
        fprintf(stderr, "  reopen: %s\n", err.msg);
    }
    CHECK_EQ_INT(rc, LSM_OK);
    CHECK_EQ_INT(check_keys(db, 0, 5000, "v2"), 0);
    lsm_close(&db);
    remove_dir(dir);
}

static void manifest_name(const char *dir, char *out, size_t n, long *size)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    out[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "MANIFEST-", 9) == 0) {
            snprintf(out, n, "%.60s", e->d_name);
            char path[512];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            struct stat st;
            *size = stat(path, &st) == 0 ? (long)st.st_size : -1;
        }
    }
    closedir(d);
}

static void test_db_manifest_rolls_and_stays_bounded(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.memtable_size = 4096; /* MANIFEST rolls past 64 KiB */
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    char first[64], now[64];
    long size;
    manifest_name(dir, first, sizeof(first), &size);
    fill_keys(db, 0, 20000, "m");
    wait_idle(db);
    manifest_name(dir, now, sizeof(now), &size);
    CHECK(strcmp(first, now) != 0); /* it rolled */
    CHECK(size < 2 * 64 * 1024);
    CHECK_EQ_INT(count_files(dir, "") - count_files(dir, ".sst") -
                     count_files(dir, ".log"),
                 3 + 2); /* ".", "..", CURRENT, LOCK, one MANIFEST */
    lsm_close(&db);
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    CHECK_EQ_INT(check_keys(db, 0, 20000, "m"), 0);
    lsm_close(&db);
    remove_dir(dir);
}

static void test_db_size_tiered_compaction_keeps_newest(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.compaction_style = LSM_COMPACTION_SIZE_TIERED;
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    for (int round = 0; round < 4; round++) {
        char tag[8];
        snprintf(tag, sizeof(tag), "r%d", round);
        fill_keys(db, round * 500, 3000, tag);
    }
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK(st.compactions > 0);
    for (int l = 1; l < LSM_MAX_LEVELS; l++) {
        CHECK_EQ_INT(st.files_per_level[l], 0);
    }
    CHECK(st.files_per_level[0] < 20);
    for (int round = 0; round < 4; round++) {
        char tag[8];
        snprintf(tag, sizeof(tag), "r%d", round);
        CHECK_EQ_INT(check_keys(db, round * 500, round * 500 + 500, tag), 0);
    }
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    lsm_stats(db, &st);
    CHECK_EQ_INT(st.files_per_level[0], 1);
    CHECK_EQ_INT(check_keys(db, 1500, 3000, "r3"), 0);
    lsm_close(&db);
    remove_dir(dir);
}

static void test_db_expired_entries_hidden_then_dropped(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    struct lsm_meta m = {fake_now + 1000, 0};
    CHECK_EQ_INT(lsm_put(db, "old", 3, "base", 4, NULL, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK); /* "old" bottommost */
    CHECK_EQ_INT(lsm_put(db, "old", 3, "expiring", 8, &m, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "tmp", 3, "expiring", 8, &m, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_flush(db), LSM_OK);
    GET_EQ(db, "old", "expiring");
    fake_now += 1000;
    GET_EQ(db, "old", NULL); /* expired: hidden, and the base value must not return */
    GET_EQ(db, "tmp", NULL);
    struct lsm_iter *it = lsm_iter_create(db, NULL);
    lsm_iter_seek_first(it);
    CHECK(!lsm_iter_valid(it));
    lsm_iter_destroy(&it);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    GET_EQ(db, "old", NULL);
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK_EQ_INT(
        st.live_sst_bytes > 0 ? st.files_per_level[1] + st.files_per_level[0] : 0, 0);
    lsm_close(&db);
    remove_dir(dir);
}

/* The caller's compaction filter: values whose key starts with "x" and whose
 * timestamp is below 100 go, the rest stay. */
static int drop_old_x(void *arg, const char *key, size_t klen, const struct lsm_meta *m)
{
    (*(int *)arg)++;
    return klen > 0 && key[0] == 'x' && m->timestamp < 100;
}

static void test_db_compaction_filter_drops_what_the_caller_says(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    int calls = 0;
    o.compaction_filter = drop_old_x;
    o.compaction_filter_arg = &calls;
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    struct lsm_meta old = {0, 50}, fresh = {0, 150};
    CHECK_EQ_INT(lsm_put(db, "xa", 2, "1", 1, &old, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "xb", 2, "2", 1, &fresh, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "ya", 2, "3", 1, &old, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_flush(db), LSM_OK);
    GET_EQ(db, "xa", "1"); /* flushes never filter */
    CHECK_EQ_INT(calls, 0);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    CHECK(calls >= 3);
    GET_EQ(db, "xa", NULL);
    GET_EQ(db, "xb", "2");
    GET_EQ(db, "ya", "3");
    CHECK_EQ_INT(lsm_bg_error(db), LSM_OK);
    lsm_close(&db);
    remove_dir(dir);
}

static void test_db_tombstones_kept_for_grace_period(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.gc_grace_ms = 60000;
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "k", 1, "v", 1, NULL, 0, NULL), LSM_OK);
    struct lsm_meta del = {0, fake_now << 16};
    CHECK_EQ_INT(lsm_delete(db, "k", 1, &del, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK(st.live_sst_bytes > 0); /* the tombstone survives: grace not over */
    GET_EQ(db, "k", NULL);
    fake_now += 60000;
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    lsm_stats(db, &st);
    CHECK_EQ_INT(st.live_sst_bytes, 0); /* gone, and the value under it too */
    GET_EQ(db, "k", NULL);
    lsm_close(&db);
    remove_dir(dir);
}

/* ---- group commit and the durability seam --------------------------------------------- */

struct gc_arg {
    struct lsm_db *db;
    int id;
    int errors;
    uint64_t seqs[200]; /* each write's own sequence */
};

static void *gc_writer(void *p)
{
    struct gc_arg *a = p;
    for (int i = 0; i < 200; i++) {
        char k[32];
        int kl = snprintf(k, sizeof(k), "t%d-%04d", a->id, i);
        if (lsm_put(a->db, k, (size_t)kl, k, (size_t)kl, NULL, LSM_WRITE_SYNC,
                    &a->seqs[i]) != LSM_OK) {
            a->errors++;
        }
    }
    return NULL;
}

static void test_db_group_commit_shares_fsyncs(void)
{
    const char *dir = fresh_dir();
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, NULL), LSM_OK);
    enum { T = 4 };
    pthread_t th[T];
    static struct gc_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (struct gc_arg){db, i, 0, {0}};
        pthread_create(&th[i], NULL, gc_writer, &args[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(args[i].errors, 0);
    }
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK_EQ_INT(st.last_sequence, T * 200);
    CHECK_EQ_INT(st.durable_sequence, T * 200);
    CHECK(st.wal_syncs <= T * 200);
    static char seen[T * 200 + 1];
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < T; i++) { /* grouped or not, every write got its own sequence */
        for (int j = 0; j < 200; j++) {
            uint64_t s = args[i].seqs[j];
            CHECK(s >= 1 && s <= T * 200 && !seen[s]);
            seen[s] = 1;
        }
    }
    lsm_close(&db);
    remove_dir(dir);
}

static void test_db_nosync_writes_made_durable_by_sync_thread(void)
{
    const char *dir = fresh_dir();
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, NULL), LSM_OK);
    uint64_t seq = 0;
    for (int i = 0; i < 10; i++) {
        CHECK_EQ_INT(lsm_put(db, "k", 1, "v", 1, NULL, LSM_WRITE_NOSYNC, &seq), LSM_OK);
    }
    CHECK_EQ_INT(seq, 10);
    CHECK(lsm_durable_seq(db) < seq);
    lsm_sync_wal_async(db, seq);
    struct pollfd pfd = {lsm_sync_fd(db), POLLIN, 0};
    CHECK_EQ_INT(poll(&pfd, 1, 5000), 1);
    uint64_t cnt;
    CHECK_EQ_INT(read(pfd.fd, &cnt, 8), 8);
    CHECK(lsm_durable_seq(db) >= seq);
    CHECK_EQ_INT(lsm_put(db, "k2", 2, "v", 1, NULL, LSM_WRITE_NOSYNC, &seq), LSM_OK);
    CHECK_EQ_INT(lsm_sync_wal(db, seq), LSM_OK);
    CHECK(lsm_durable_seq(db) >= seq);
    /* a request that is already covered is answered at once */
    while (read(pfd.fd, &cnt, 8) == 8) {
    }
    lsm_sync_wal_async(db, seq);
    CHECK_EQ_INT(poll(&pfd, 1, 1000), 1);
    /* "everything so far" (everysec's request) does not cover later writes */
    lsm_sync_wal_async(db, UINT64_MAX);
    usleep(100 * 1000);
    CHECK_EQ_INT(lsm_put(db, "k3", 2, "v", 1, NULL, LSM_WRITE_NOSYNC, &seq), LSM_OK);
    usleep(100 * 1000);
    CHECK(lsm_durable_seq(db) < seq);
    lsm_sync_wal_async(db, UINT64_MAX);
    for (int i = 0; i < 500 && lsm_durable_seq(db) < seq; i++) {
        usleep(10 * 1000);
    }
    CHECK(lsm_durable_seq(db) >= seq);
    lsm_close(&db);
    remove_dir(dir);
}

static void test_db_writes_stall_rather_than_grow(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.memtable_size = 8 * 1024;
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    fill_keys(db, 0, 20000, "s");
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK(st.memtable_bytes <= 3 * o.memtable_size);
    CHECK(st.write_amplification > 1.0);
    CHECK_EQ_INT(check_keys(db, 0, 20000, "s"), 0);
    lsm_close(&db);
    remove_dir(dir);
}

/* ---- readers concurrent with writers, flushes and compactions ----------------------------- */

#define CONC_KEYS 200

struct conc {
    struct lsm_db *db;
    atomic_int stop;
    atomic_int errors;
    int id;
};

static void *conc_writer(void *p)
{
    struct conc *c = p;
    for (uint32_t round = 1; !atomic_load(&c->stop) && round < 100000; round++) {
        for (int i = c->id; i < CONC_KEYS; i += 2) { /* writers own alternate keys */
            char k[16], v[16];
            int kl = snprintf(k, sizeof(k), "c%04d", i);
            memcpy(v, &round, 4);
            memset(v + 4, 'p', 12);
            if (lsm_put(c->db, k, (size_t)kl, v, 16, NULL, 0, NULL) != LSM_OK) {
                atomic_fetch_add(&c->errors, 1);
            }
        }
    }
    return NULL;
}

static void *conc_reader(void *p)
{
    struct conc *c = p;
    uint32_t seen[CONC_KEYS] = {0};
    struct lsm_value v = LSM_VALUE_INIT;
    while (!atomic_load(&c->stop)) {
        for (int i = 0; i < CONC_KEYS; i++) { /* a key's version never goes back */
            char k[16];
            int kl = snprintf(k, sizeof(k), "c%04d", i);
            int rc = lsm_get(c->db, NULL, k, (size_t)kl, &v);
            if (rc == LSM_OK) {
                uint32_t r;
                memcpy(&r, v.data, 4);
                if (v.len != 16 || r < seen[i]) {
                    atomic_fetch_add(&c->errors, 1);
                }
                seen[i] = r;
            } else if (rc != LSM_NOTFOUND || seen[i] != 0) {
                atomic_fetch_add(&c->errors, 1);
            }
        }
        struct lsm_iter *it =
            lsm_iter_create(c->db, NULL); /* a consistent, sorted view */
        char prev[16] = "";
        for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
            size_t kl;
            const char *k = lsm_iter_key(it, &kl);
            if (kl != 5 || (prev[0] && memcmp(prev, k, 5) >= 0)) {
                atomic_fetch_add(&c->errors, 1);
            }
            memcpy(prev, k, 5);
            prev[5] = 0;
        }
        if (lsm_iter_status(it) != LSM_OK) {
            atomic_fetch_add(&c->errors, 1);
        }
        lsm_iter_destroy(&it);
    }
    lsm_value_free(&v);
    return NULL;
}

static void test_db_readers_concurrent_with_writers_and_compaction(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.memtable_size = 8 * 1024;
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    static struct conc c[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        c[i].db = db;
        atomic_init(&c[i].stop, 0);
        atomic_init(&c[i].errors, 0);
        c[i].id = i % 2;
        pthread_create(&th[i], NULL, i < 2 ? conc_writer : conc_reader, &c[i]);
    }
    usleep(800 * 1000);
    for (int i = 0; i < 4; i++) {
        atomic_store(&c[i].stop, 1);
    }
    int errors = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        errors += atomic_load(&c[i].errors);
    }
    CHECK_EQ_INT(errors, 0);
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK(st.flushes > 0);
    lsm_close(&db);
    remove_dir(dir);
}

/* ---- model test ----------------------------------------------------------------------------- */

#define MODEL_KEYS 400

struct model_entry {
    bool present;
    char val[48];
    int vlen;
    uint64_t expire_at;
};

struct model {
    struct model_entry e[MODEL_KEYS];
};

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int model_key(int i, char *k)
{
    return snprintf(k, 16, "m%03d", i);
}

static bool model_visible(const struct model_entry *e)
{
    return e->present && (e->expire_at == 0 || e->expire_at > fake_now);
}

static void model_put(struct lsm_batch *b, struct lsm_db *db, struct model *m, int i)
{
    char k[16];
    int kl = model_key(i, k);
    struct model_entry *e = &m->e[i];
    e->present = true;
    e->vlen = (int)(rnd() % 40);
    for (int j = 0; j < e->vlen; j++) {
        e->val[j] = (char)('a' + rnd() % 26);
    }
    e->expire_at = rnd() % 4 == 0 ? fake_now + 1 + rnd() % 5000 : 0;
    struct lsm_meta meta = {e->expire_at, (fake_now << 16) | 1};
    if (b != NULL) {
        lsm_batch_put(b, k, (size_t)kl, e->val, (size_t)e->vlen, &meta);
    } else {
        lsm_put(db, k, (size_t)kl, e->val, (size_t)e->vlen, &meta, 0, NULL);
    }
}

static void model_del(struct lsm_batch *b, struct lsm_db *db, struct model *m, int i)
{
    char k[16];
    int kl = model_key(i, k);
    m->e[i].present = false;
    struct lsm_meta meta = {0, fake_now << 16};
    if (b != NULL) {
        lsm_batch_delete(b, k, (size_t)kl, &meta);
    } else {
        lsm_delete(db, k, (size_t)kl, &meta, 0, NULL);
    }
}

/* Compares every key with get, and the whole keyspace with an iterator. */
static int model_compare(struct lsm_db *db, const struct model *m,
                         const struct lsm_snapshot *s)
{
    struct lsm_read_options ro = LSM_READ_OPTIONS_INIT;
    ro.snapshot = s;
    struct lsm_value v = LSM_VALUE_INIT;
    int bad = 0;
    for (int i = 0; i < MODEL_KEYS; i++) {
        char k[16];
        int kl = model_key(i, k);
        int rc = lsm_get(db, &ro, k, (size_t)kl, &v);
        const struct model_entry *e = &m->e[i];
        if (model_visible(e)) {
            if (rc != LSM_OK || v.len != (size_t)e->vlen ||
                memcmp(v.data, e->val, v.len) != 0 || v.expire_at != e->expire_at) {
                if (bad++ < 3) {
                    fprintf(stderr, "  model: get %s rc %d\n", k, rc);
                }
            }
        } else if (rc != LSM_NOTFOUND) {
            if (bad++ < 3) {
                fprintf(stderr, "  model: get %s should be absent, rc %d\n", k, rc);
            }
        }
    }
    lsm_value_free(&v);
    struct lsm_iter *it = lsm_iter_create(db, &ro);
    int start = (int)(rnd() % MODEL_KEYS);
    char sk[16];
    int skl = model_key(start, sk);
    if (rnd() % 2) {
        lsm_iter_seek(it, sk, (size_t)skl);
    } else {
        lsm_iter_seek_first(it);
        start = 0;
    }
    for (int i = start; i < MODEL_KEYS; i++) {
        if (!model_visible(&m->e[i])) {
            continue;
        }
        char k[16];
        int kl = model_key(i, k);
        size_t gl, vl;
        if (!lsm_iter_valid(it)) {
            bad++;
            break;
        }
        const char *g = lsm_iter_key(it, &gl);
        const char *val = lsm_iter_value(it, &vl);
        if (gl != (size_t)kl || memcmp(g, k, gl) != 0 || vl != (size_t)m->e[i].vlen ||
            memcmp(val, m->e[i].val, vl) != 0) {
            if (bad++ < 3) {
                fprintf(stderr, "  model: iter at %s got %.*s\n", k, (int)gl, g);
            }
            break;
        }
        lsm_iter_next(it);
    }
    if (bad == 0 && lsm_iter_valid(it)) {
        bad++;
    }
    bad += lsm_iter_status(it) != LSM_OK;
    lsm_iter_destroy(&it);
    return bad;
}

static int model_run(uint64_t seed, int ops, enum lsm_compaction_style style)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.memtable_size = 4096 + seed % 8192;
    o.l1_target_bytes = 16 * 1024;
    o.target_file_size = 8 * 1024;
    o.compaction_style = style;
    o.gc_grace_ms = seed % 2 ? 0 : 3000;
    o.block_cache_size = seed % 3 == 0 ? 0 : 64 * 1024;
    rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
    static struct model m, snap_model;
    memset(&m, 0, sizeof(m));
    struct lsm_db *db;
    struct lsm_err err;
    if (lsm_open(dir, &o, &db, &err) != LSM_OK) {
        fprintf(stderr, "  open: %s\n", err.msg);
        return 1;
    }
    const struct lsm_snapshot *snap = NULL;
    int bad = 0;
    struct lsm_batch *b = lsm_batch_create();
    for (int op = 0; op < ops && bad == 0; op++) {
        int r = (int)(rnd() % 1000);
        int i = (int)(rnd() % MODEL_KEYS);
        if (r < 450) {
            model_put(NULL, db, &m, i);
        } else if (r < 600) {
            model_del(NULL, db, &m, i);
        } else if (r < 700) {
            lsm_batch_clear(b);
            int n = 1 + (int)(rnd() % 10);
            for (int j = 0; j < n; j++) {
                int k = (int)(rnd() % MODEL_KEYS);
                if (rnd() % 3) {
                    model_put(b, db, &m, k);
                } else {
                    model_del(b, db, &m, k);
                }
            }
            lsm_write(db, b, 0, NULL);
        } else if (r < 850) {
            char k[16];
            int kl = model_key(i, k);
            struct lsm_value v = LSM_VALUE_INIT;
            int rc = lsm_get(db, NULL, k, (size_t)kl, &v);
            if (model_visible(&m.e[i]) != (rc == LSM_OK) ||
                (rc == LSM_OK && (v.len != (size_t)m.e[i].vlen ||
                                  memcmp(v.data, m.e[i].val, v.len) != 0))) {
                fprintf(stderr, "  model seed %llu op %d: get %s rc %d\n",
                        (unsigned long long)seed, op, k, rc);
                bad++;
            }
            lsm_value_free(&v);
        } else if (r < 900) {
            fake_now += rnd() % 2000; /* time passes: entries expire */
        } else if (r < 930) {
            bad += model_compare(db, &m, NULL);
        } else if (r < 945) {
            lsm_flush(db);
        } else if (r < 955) {
            char a[16], z[16];
            int al = model_key(i, a), zl = model_key(i + (int)(rnd() % 100), z);
            if (rnd() % 2) {
                lsm_compact_range(db, a, (size_t)al, z, (size_t)zl);
            } else {
                lsm_compact_range(db, NULL, 0, NULL, 0);
            }
        } else if (r < 975) {
            if (snap == NULL) {
                snap = lsm_snapshot_create(db);
                snap_model = m;
            } else {
                int sb = model_compare(db, &snap_model, snap);
                if (sb) {
                    fprintf(stderr, "  model seed %llu op %d: snapshot differs\n",
                            (unsigned long long)seed, op);
                }
                bad += sb;
                lsm_snapshot_release(db, &snap);
            }
        } else {
            if (snap != NULL) {
                lsm_snapshot_release(db, &snap);
            }
            lsm_close(&db);
            if (lsm_open(dir, &o, &db, &err) != LSM_OK) {
                fprintf(stderr, "  reopen: %s\n", err.msg);
                bad++;
                break;
            }
        }
        if (bad && r >= 900) {
            fprintf(stderr, "  model seed %llu failed at op %d (r %d)\n",
                    (unsigned long long)seed, op, r);
        }
    }
    if (db != NULL) {
        bad += model_compare(db, &m, NULL);
        if (snap != NULL) {
            lsm_snapshot_release(db, &snap);
        }
        lsm_close(&db);
    }
    lsm_batch_destroy(&b);
    remove_dir(dir);
    return bad;
}

static void test_db_model_leveled(void)
{
    int seeds = getenv("MODEL_SEEDS") ? atoi(getenv("MODEL_SEEDS")) : 12;
    int ops = getenv("MODEL_OPS") ? atoi(getenv("MODEL_OPS")) : 3000;
    for (int s = 1; s <= seeds; s++) {
        CHECK_EQ_INT(model_run((uint64_t)s, ops, LSM_COMPACTION_LEVELED), 0);
    }
}

static void test_db_model_size_tiered(void)
{
    int seeds = getenv("MODEL_SEEDS") ? atoi(getenv("MODEL_SEEDS")) : 6;
    int ops = getenv("MODEL_OPS") ? atoi(getenv("MODEL_OPS")) : 3000;
    for (int s = 1; s <= seeds; s++) {
        CHECK_EQ_INT(model_run((uint64_t)s + 1000, ops, LSM_COMPACTION_SIZE_TIERED), 0);
    }
}

/* memtable_max_entries: a memtable far below memtable_size bytes is flushed at
 * that many entries, while writing and while replaying the WAL. */
static void test_db_memtable_full_at_max_entries(void)
{
    char dir[256];
    snprintf(dir, sizeof(dir), "%s", fresh_dir()); /* fresh_dir's buffer is reused */
    struct lsm_options o;
    small_options(&o);
    o.memtable_size = 64u << 20;
    o.memtable_max_entries = 100;
    o.l0_compaction_trigger = 100; /* keep the flushed tables countable */
    struct lsm_db *db;
    struct lsm_err err;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, &err), LSM_OK);
    char k[16];
    for (int i = 0; i < 1050; i++) {
        snprintf(k, sizeof(k), "key%05d", i);
        CHECK_EQ_INT(lsm_put(db, k, strlen(k), "v", 1, NULL, 0, NULL), LSM_OK);
    }
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK(st.flushes + (uint64_t)st.immutable_memtables >= 9);
    CHECK(st.memtable_bytes < (1u << 20));
    GET_EQ(db, "key00000", "v");
    GET_EQ(db, "key01049", "v");
    lsm_close(&db);
    /* without the limit the same writes stay in one memtable */
    const char *dir2 = fresh_dir();
    o.memtable_max_entries = 0;
    CHECK_EQ_INT(lsm_open(dir2, &o, &db, &err), LSM_OK);
    for (int i = 0; i < 1050; i++) {
        snprintf(k, sizeof(k), "key%05d", i);
        CHECK_EQ_INT(lsm_put(db, k, strlen(k), "v", 1, NULL, 0, NULL), LSM_OK);
    }
    lsm_stats(db, &st);
    CHECK_EQ_INT(st.flushes, 0);
    lsm_close(&db);
    remove_dir(dir2);
    remove_dir(dir);
}

/* How many of this process's threads run at this nice value (field 19 of
 * /proc/self/task/TID/stat); -1 without /proc. */
static int threads_with_nice(int nice)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL) {
        return -1;
    }
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[300], buf[1024];
        snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        const char *p = strrchr(buf, ')'); /* the name may hold spaces */
        int field = 2, v = 0;
        for (; p && *p && field < 19; p++) {
            if (*p == ' ') {
                field++;
            }
        }
        if (p && sscanf(p, "%d", &v) == 1 && v == nice) {
            n++;
        }
    }
    closedir(d);
    return n;
}

/* bg_nice: the flush/compaction thread, and only it, runs at that nice value. */
static void test_db_background_thread_nice(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.bg_nice = 7;
    struct lsm_db *db;
    struct lsm_err err;
    int before = threads_with_nice(7);
    CHECK_EQ_INT(lsm_open(dir, &o, &db, &err), LSM_OK);
    CHECK_EQ_INT(lsm_flush(db), LSM_OK);
    int n = 0;
    for (int t = 0; t < 200 && (n = threads_with_nice(7)) != before + 1; t++) {
        usleep(10000); /* the thread sets it when it starts running */
    }
    CHECK_EQ_INT(n, before + 1);
    CHECK_EQ_INT(threads_with_nice(0) > 0, 1); /* this one, the sync thread */
    lsm_close(&db);
    remove_dir(dir);
}

int main(void)
{
    TEST_RUN(test_db_put_get_delete_and_reopen);
    TEST_RUN(test_db_memtable_full_at_max_entries);
    TEST_RUN(test_db_background_thread_nice);
    TEST_RUN(test_db_second_open_is_refused);
    TEST_RUN(test_db_meta_round_trips);
    TEST_RUN(test_db_large_values_and_limits);
    TEST_RUN(test_db_batch_is_atomic_and_ordered);
    TEST_RUN(test_db_iterator_merges_all_sources_in_order);
    TEST_RUN(test_db_snapshot_isolation_while_writes_continue);
    TEST_RUN(test_db_flush_compaction_and_manifest_replay);
    TEST_RUN(test_db_manifest_rolls_and_stays_bounded);
    TEST_RUN(test_db_size_tiered_compaction_keeps_newest);
    TEST_RUN(test_db_expired_entries_hidden_then_dropped);
    TEST_RUN(test_db_compaction_filter_drops_what_the_caller_says);
    TEST_RUN(test_db_tombstones_kept_for_grace_period);
    TEST_RUN(test_db_group_commit_shares_fsyncs);
    TEST_RUN(test_db_nosync_writes_made_durable_by_sync_thread);
    TEST_RUN(test_db_writes_stall_rather_than_grow);
    TEST_RUN(test_db_readers_concurrent_with_writers_and_compaction);
    TEST_RUN(test_db_model_leveled);
    TEST_RUN(test_db_model_size_tiered);
    TEST_MAIN_END();
}
