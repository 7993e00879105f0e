/* engine/dropset_test.c: lsm_set_drop_ranges (engine.h) and its drop set
 * (dropset.h): which keys a set holds, and compaction removing the entries of
 * dropped ranges from the memtable, L0 and deeper levels, up to a sequence, with
 * nothing written through the WAL, across a restart. */
#include "engine/dropset.h"

#include <stdio.h>
#include <string.h>

#include "engine/db_test_util.h"
#include "engine/engine.h"
#include "tests/test.h"

#define NKEYS 3000

static void key_of(char *buf, int i)
{
    snprintf(buf, 16, "k%05d", i);
}

static void test_dropset_holds_its_ranges_up_to_its_sequence(void)
{
    struct lsm_range r[] = {
        {"m", 1, "p", 1},      /* [m, p) */
        {"b", 1, "d", 1},      /* given out of order */
        {"c", 1, "e", 1},      /* overlaps the one before: [b, e) */
        {"x", 1, NULL, 0},     /* open end */
        {"g", 1, "g", 1},      /* empty: left out */
    };
    struct dropset *d = dropset_create(r, 5, 10, 7);
    CHECK(d != NULL);
    CHECK_EQ_INT((int)dropset_generation(d), 7);
    CHECK(!dropset_drops(d, "a", 1, 1));
    CHECK(dropset_drops(d, "b", 1, 1));
    CHECK(dropset_drops(d, "d0", 2, 1));
    CHECK(!dropset_drops(d, "e", 1, 1));
    CHECK(!dropset_drops(d, "g", 1, 1));
    CHECK(dropset_drops(d, "m", 1, 10));
    CHECK(!dropset_drops(d, "m", 1, 11)); /* written after the set's sequence */
    CHECK(!dropset_drops(d, "p", 1, 1));
    CHECK(dropset_drops(d, "zzz", 3, 1));
    CHECK(dropset_drops(d, "x", 1, 0));
    dropset_unref(d);
    struct lsm_range empty = {"q", 1, "a", 1};
    CHECK(dropset_create(&empty, 1, 10, 1) == NULL);
    CHECK(!dropset_drops(NULL, "a", 1, 0));
}

/* NKEYS keys through many flushes and compactions (small options), the last ones
 * still in the memtable; a dated tombstone in a dropped range. */
static void fill(struct lsm_db *db)
{
    char k[16], v[64];
    struct lsm_meta m = {0, (uint64_t)fake_now << 16, 3};
    for (int i = 0; i < NKEYS; i++) {
        key_of(k, i);
        snprintf(v, sizeof v, "value-%05d-..............................", i);
        CHECK_EQ_INT(lsm_put(db, k, strlen(k), v, strlen(v), &m, 0, NULL), LSM_OK);
    }
    key_of(k, 700);
    CHECK_EQ_INT(lsm_delete(db, k, strlen(k), &m, 0, NULL), LSM_OK);
}

/* 1 when key i reads back as fill wrote it, 0 when nothing at all is stored for
 * it (not even a tombstone), -1 otherwise. */
static int state_of(struct lsm_db *db, int i)
{
    char k[16], v[64];
    key_of(k, i);
    snprintf(v, sizeof v, "value-%05d-..............................", i);
    struct lsm_read_options ro = LSM_READ_OPTIONS_INIT;
    ro.include_tombstones = 1;
    struct lsm_value got = LSM_VALUE_INIT;
    int rc = lsm_get(db, &ro, k, strlen(k), &got);
    int st = -1;
    if (rc == LSM_NOTFOUND) {
        st = 0;
    } else if (rc == LSM_OK && !got.deleted && got.len == strlen(v) &&
               memcmp(got.data, v, got.len) == 0) {
        st = 1;
    }
    lsm_value_free(&got);
    return st;
}

static int dropped(int i)
{
    return (i >= 500 && i < 1000) || i >= 2500;
}

/* counts keys whose state is not what the drop set says (key 700: a tombstone) */
static int wrong_keys(struct lsm_db *db, int except)
{
    int bad = 0;
    for (int i = 0; i < NKEYS; i++) {
        if (i == except) {
            continue;
        }
        int want = dropped(i) ? 0 : 1;
        if (state_of(db, i) != want) {
            if (bad++ < 3) {
                fprintf(stderr, "  key %d: state %d, want %d\n", i, state_of(db, i), want);
            }
        }
    }
    return bad;
}

static void install(struct lsm_db *db)
{
    struct lsm_range r[] = {{"k00500", 6, "k01000", 6}, {"k02500", 6, NULL, 0}};
    uint64_t gen = lsm_set_drop_ranges(db, r, 2, lsm_last_sequence(db));
    CHECK(gen > 0);
    CHECK_EQ_INT((int)lsm_drop_generation(db), (int)gen);
}

static void test_drop_ranges_compaction_removes_dropped_keys_everywhere(void)
{
    const char *dir = fresh_dir_named("dropset");
    struct lsm_options o;
    small_options(&o);
    o.gc_grace_ms = 3600 * 1000; /* the dated tombstone would survive by itself */
    o.gc_horizon_ms = 0;
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    fill(db);
    struct lsm_stats before, after;
    lsm_stats(db, &before);
    CHECK(before.files_per_level[0] + before.files_per_level[1] > 0);
    CHECK(before.memtable_bytes > 0); /* some entries only in the memtable */
    install(db);
    uint64_t wal0 = before.wal_bytes;
    char k[16];
    key_of(k, 600); /* written after the set's sequence: kept */
    CHECK_EQ_INT(lsm_put(db, k, strlen(k), "new", 3, NULL, 0, NULL), LSM_OK);
    CHECK_EQ_INT(state_of(db, 501), 1); /* reads are not filtered before compaction */
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    lsm_stats(db, &after);
    CHECK(after.wal_bytes - wal0 < 64); /* only the one put: no tombstone written */
    CHECK_EQ_INT(wrong_keys(db, 600), 0);
    CHECK_EQ_INT(state_of(db, 700), 0); /* the dated tombstone went too */
    struct lsm_value v = LSM_VALUE_INIT;
    CHECK_EQ_INT(lsm_get(db, NULL, k, strlen(k), &v), LSM_OK);
    CHECK(v.len == 3 && memcmp(v.data, "new", 3) == 0);
    lsm_value_free(&v);
    CHECK(after.live_sst_bytes < before.live_sst_bytes * 3 / 4);
    printf("  live sst bytes %llu -> %llu\n", (unsigned long long)before.live_sst_bytes,
           (unsigned long long)after.live_sst_bytes);
    CHECK_EQ_INT(lsm_bg_error(db), LSM_OK);
    lsm_close(&db);
    /* restart: the set is gone, the dropped keys stay dropped, the kept intact */
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    CHECK_EQ_INT((int)lsm_drop_generation(db), 0);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    CHECK_EQ_INT(wrong_keys(db, 600), 0);
    lsm_close(&db);
    remove_dir(dir);
}

static void test_drop_ranges_cleared_keeps_everything(void)
{
    const char *dir = fresh_dir_named("dropset");
    struct lsm_options o;
    small_options(&o);
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    fill(db);
    install(db);
    CHECK_EQ_INT((int)lsm_set_drop_ranges(db, NULL, 0, 0), 0);
    CHECK_EQ_INT((int)lsm_drop_generation(db), 0);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    int bad = 0;
    for (int i = 0; i < NKEYS; i++) {
        bad += i != 700 && state_of(db, i) != 1;
    }
    CHECK_EQ_INT(bad, 0);
    lsm_close(&db);
    remove_dir(dir);
}

/* 1 when db maps k to want */
static int value_is(struct lsm_db *db, const char *k, const char *want)
{
    struct lsm_value v = LSM_VALUE_INIT;
    int ok = lsm_get(db, NULL, k, strlen(k), &v) == LSM_OK && v.len == strlen(want) &&
             memcmp(v.data, want, v.len) == 0;
    lsm_value_free(&v);
    return ok;
}

static void test_drop_ranges_spare_a_newer_version_over_an_old_one(void)
{
    const char *dir = fresh_dir_named("dropset");
    struct lsm_options o;
    small_options(&o);
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "a", 1, "old", 3, NULL, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_flush(db), LSM_OK);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK); /* "old" deep */
    struct lsm_range all = {NULL, 0, NULL, 0};
    CHECK(lsm_set_drop_ranges(db, &all, 1, lsm_last_sequence(db)) > 0);
    const struct lsm_snapshot *snap = lsm_snapshot_create(db); /* keeps "old" readable */
    CHECK_EQ_INT(lsm_put(db, "a", 1, "new", 3, NULL, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    CHECK(value_is(db, "a", "new"));
    lsm_snapshot_release(db, &snap);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    CHECK(value_is(db, "a", "new"));
    lsm_close(&db);
    remove_dir(dir);
}

int main(void)
{
    TEST_RUN(test_dropset_holds_its_ranges_up_to_its_sequence);
    TEST_RUN(test_drop_ranges_compaction_removes_dropped_keys_everywhere);
    TEST_RUN(test_drop_ranges_cleared_keeps_everything);
    TEST_RUN(test_drop_ranges_spare_a_newer_version_over_an_old_one);
    TEST_MAIN_END();
}
