/* engine/versions_test.c: "versions on every value", through the public API: the
 * writer's node id carried with every entry (WAL replay, memtable, flush,
 * compaction, reopen), tombstones visible to internal readers (include_tombstones
 * for lsm_get and iterators, with snapshots), the iterator's exclusive upper bound,
 * and expired values kept as dated tombstones for the grace period. The byte layout
 * of the node field (and old bytes without it) is tested in engine/dbformat_test.c. */
#include "engine/engine.h"

#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

#include "engine/wal.h"
#include "engine/db_test_util.h"
#include "tests/test.h"

static const char *fresh_dir(void)
{
    return fresh_dir_named("versions");
}

/* What lsm_get returned, flattened for checks. */
struct got {
    int rc;
    int deleted;
    uint64_t expire_at, timestamp;
    uint32_t node;
    char val[64];
    size_t len;
};

static struct got get(struct lsm_db *db, const char *k, int tombstones,
                      const struct lsm_snapshot *snap)
{
    struct lsm_read_options ro = LSM_READ_OPTIONS_INIT;
    ro.include_tombstones = tombstones;
    ro.snapshot = snap;
    struct lsm_value v = LSM_VALUE_INIT;
    v.deleted = 99; /* must be overwritten by every LSM_OK */
    struct got g = {0};
    g.rc = lsm_get(db, &ro, k, strlen(k), &v);
    if (g.rc == LSM_OK) {
        g.deleted = v.deleted;
        g.expire_at = v.expire_at;
        g.timestamp = v.timestamp;
        g.node = v.node;
        g.len = v.len < sizeof(g.val) ? v.len : sizeof(g.val);
        if (g.len) {
            memcpy(g.val, v.data, g.len);
        }
    }
    lsm_value_free(&v);
    return g;
}

/* Checks one key's newest version as lsm_get and an iterator seeking it see it. */
static void check_node(struct lsm_db *db, const char *k, uint64_t ts, uint32_t node,
                       int deleted)
{
    struct got g = get(db, k, 1, NULL);
    CHECK_EQ_INT(g.rc, LSM_OK);
    CHECK_EQ_INT(g.deleted, deleted);
    CHECK_EQ_INT(g.timestamp, ts);
    CHECK_EQ_INT(g.node, node);
    struct lsm_read_options ro = LSM_READ_OPTIONS_INIT;
    ro.include_tombstones = 1;
    struct lsm_iter *it = lsm_iter_create(db, &ro);
    lsm_iter_seek(it, k, strlen(k));
    CHECK(lsm_iter_valid(it));
    size_t kl;
    const char *ik = lsm_iter_key(it, &kl);
    CHECK_EQ_MEM(ik, kl, k, strlen(k));
    struct lsm_meta m = lsm_iter_meta(it);
    CHECK_EQ_INT(m.timestamp, ts);
    CHECK_EQ_INT(m.node, node);
    CHECK_EQ_INT(lsm_iter_deleted(it), deleted);
    lsm_iter_destroy(&it);
}

static void check_all_nodes(struct lsm_db *db)
{
    check_node(db, "put", 100 << 16, 0xA1B2C3D4u, 0);
    check_node(db, "batch", 101 << 16, 7, 0);
    check_node(db, "del", 102 << 16, 0xFFFFFFFFu, 1);
    check_node(db, "bdel", 103 << 16, 9, 1);
    check_node(db, "plain", 0, 0, 0);
}

static void test_node_survives_wal_replay_memtable_flush_compaction_and_reopen(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.gc_grace_ms = UINT64_MAX; /* the (1970-dated) tombstones stay through compaction */
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    struct lsm_meta mput = {0, 100 << 16, 0xA1B2C3D4u}, mb = {0, 101 << 16, 7};
    struct lsm_meta mdel = {0, 102 << 16, 0xFFFFFFFFu}, mbdel = {0, 103 << 16, 9};
    CHECK_EQ_INT(lsm_put(db, "put", 3, "v1", 2, &mput, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "del", 3, "old", 3, &mput, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_delete(db, "del", 3, &mdel, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "plain", 5, "p", 1, NULL, 0, NULL), LSM_OK);
    struct lsm_batch *b = lsm_batch_create();
    lsm_batch_put(b, "batch", 5, "v2", 2, &mb);
    lsm_batch_delete(b, "bdel", 4, &mbdel);
    CHECK_EQ_INT(lsm_write(db, b, 0, NULL), LSM_OK);
    lsm_batch_destroy(&b);
    check_all_nodes(db); /* memtable */
    lsm_close(&db);
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    check_all_nodes(db); /* WAL replay (written to an L0 table at open) */
    CHECK_EQ_INT(lsm_put(db, "put", 3, "v1", 2, &mput, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_flush(db), LSM_OK);
    check_all_nodes(db); /* flushed table */
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK_EQ_INT(st.files_per_level[0], 0);
    check_all_nodes(db); /* compaction output */
    lsm_close(&db);
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    check_all_nodes(db); /* reopened tables */
    lsm_close(&db);
    remove_dir(dir);
}

/* Appends one WAL batch record: kind klen key vlen entry_value (README "WAL records"). */
static size_t old_record(char *p, int kind, const char *key, const char *ev, size_t evlen)
{
    size_t n = 0, kl = strlen(key);
    p[n++] = (char)kind;
    p[n++] = (char)kl;
    memcpy(p + n, key, kl);
    n += kl;
    p[n++] = (char)evlen;
    memcpy(p + n, ev, evlen);
    return n + evlen;
}

/* A WAL segment written byte by byte as the engine wrote it before the node field
 * (flags without bit 2) replays with node 0 and every other field intact. */
static void test_old_format_wal_replays_with_node_zero(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.gc_grace_ms = UINT64_MAX;
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    lsm_close(&db);
    /* the lowest-numbered segment is the one the MANIFEST's log number names */
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    unsigned long long lowest = ~0ull;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long long num;
        char tail[8];
        if (sscanf(e->d_name, "%llu.%7s", &num, tail) == 2 && strcmp(tail, "log") == 0 &&
            num < lowest) {
            lowest = num;
        }
    }
    closedir(d);
    CHECK(lowest != ~0ull);
    char path[512];
    snprintf(path, sizeof(path), "%s/%06llu.log", dir, lowest);

    /* value: flags 0x03, expire_at, write_ts 0x2A0000, "val"; tombstone: flags 0x02,
     * write_ts 0x2B0000 */
    uint64_t exp = fake_now + 3600000;
    char value_ev[1 + 8 + 8 + 3] = {0x03};
    memcpy(value_ev + 1, &exp, 8); /* x86: little-endian */
    memcpy(value_ev + 9, "\x00\x00\x2A\x00\x00\x00\x00\x00", 8);
    memcpy(value_ev + 17, "val", 3);
    static const char tomb_ev[] = "\x02\x00\x00\x2B\x00\x00\x00\x00\x00";
    char batch[128] = {0};
    batch[0] = 1; /* seq:u64le = 1, count:u32le = 2 */
    batch[8] = 2;
    size_t n = 12;
    n += old_record(batch + n, 1, "oldval", value_ev, sizeof(value_ev));
    n += old_record(batch + n, 0, "olddel", tomb_ev, sizeof(tomb_ev) - 1);
    struct wal_writer_options wo = {.log_number = lowest};
    struct wal_writer *w;
    CHECK_EQ_INT(wal_writer_create(path, &wo, &w, NULL), LSM_OK);
    CHECK_EQ_INT(wal_writer_append(w, batch, n, NULL), LSM_OK);
    CHECK_EQ_INT(wal_writer_close(&w, true, NULL), LSM_OK);

    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    for (int pass = 0; pass < 2; pass++) { /* replayed, then compacted */
        struct got g = get(db, "oldval", 1, NULL);
        CHECK_EQ_INT(g.rc, LSM_OK);
        CHECK_EQ_INT(g.deleted, 0);
        CHECK_EQ_MEM(g.val, g.len, "val", 3);
        CHECK_EQ_INT(g.expire_at, exp);
        CHECK_EQ_INT(g.timestamp, 0x2A0000);
        CHECK_EQ_INT(g.node, 0);
        g = get(db, "olddel", 1, NULL);
        CHECK_EQ_INT(g.rc, LSM_OK);
        CHECK_EQ_INT(g.deleted, 1);
        CHECK_EQ_INT(g.timestamp, 0x2B0000);
        CHECK_EQ_INT(g.node, 0);
        CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    }
    lsm_close(&db);
    remove_dir(dir);
}

static void test_get_without_tombstones_option_hides_deletes_as_before(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    struct lsm_meta m = {0, 5 << 16, 3};
    CHECK_EQ_INT(lsm_put(db, "k", 1, "v", 1, &m, 0, NULL), LSM_OK);
    struct got g = get(db, "k", 0, NULL);
    CHECK_EQ_INT(g.rc, LSM_OK);
    CHECK_EQ_INT(g.deleted, 0); /* always set on LSM_OK */
    CHECK_EQ_INT(g.node, 3);
    CHECK_EQ_INT(lsm_delete(db, "k", 1, &m, 0, NULL), LSM_OK);
    CHECK_EQ_INT(get(db, "k", 0, NULL).rc, LSM_NOTFOUND);
    CHECK_EQ_INT(lsm_get(db, NULL, "k", 1, &(struct lsm_value){0}), LSM_NOTFOUND);
    struct lsm_iter *it = lsm_iter_create(db, NULL);
    lsm_iter_seek_first(it);
    CHECK(!lsm_iter_valid(it));
    lsm_iter_destroy(&it);
    lsm_close(&db);
    remove_dir(dir);
}

/* get with include_tombstones: the newest version decides, before and after a flush,
 * and a snapshot taken before the delete still sees the value */
static void test_get_include_tombstones_returns_newest_tombstone_with_meta(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.gc_grace_ms = UINT64_MAX;
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    struct lsm_meta mv = {0, 10 << 16, 1}, md = {0, 20 << 16, 2}, mv2 = {0, 30 << 16, 3};
    CHECK_EQ_INT(lsm_put(db, "k", 1, "value", 5, &mv, 0, NULL), LSM_OK);
    const struct lsm_snapshot *before = lsm_snapshot_create(db);
    CHECK_EQ_INT(lsm_delete(db, "k", 1, &md, 0, NULL), LSM_OK);
    for (int pass = 0; pass < 2; pass++) { /* memtable, then a table */
        struct got g = get(db, "k", 1, NULL);
        CHECK_EQ_INT(g.rc, LSM_OK);
        CHECK_EQ_INT(g.deleted, 1);
        CHECK_EQ_INT(g.len, 0);
        CHECK_EQ_INT(g.timestamp, 20 << 16);
        CHECK_EQ_INT(g.node, 2);
        g = get(db, "k", 1, before);
        CHECK_EQ_INT(g.rc, LSM_OK);
        CHECK_EQ_INT(g.deleted, 0);
        CHECK_EQ_MEM(g.val, g.len, "value", 5);
        CHECK_EQ_INT(g.node, 1);
        CHECK_EQ_INT(get(db, "k", 0, NULL).rc, LSM_NOTFOUND);
        CHECK_EQ_INT(get(db, "never", 1, NULL).rc, LSM_NOTFOUND);
        CHECK_EQ_INT(lsm_flush(db), LSM_OK);
    }
    CHECK_EQ_INT(lsm_put(db, "k", 1, "again", 5, &mv2, 0, NULL), LSM_OK);
    struct got g = get(db, "k", 1, NULL);
    CHECK_EQ_INT(g.rc, LSM_OK);
    CHECK_EQ_INT(g.deleted, 0);
    CHECK_EQ_MEM(g.val, g.len, "again", 5);
    CHECK_EQ_INT(g.node, 3);
    lsm_snapshot_release(db, &before);
    lsm_close(&db);
    remove_dir(dir);
}

struct seen {
    char key[16];
    int deleted;
    uint64_t ts;
    char val[16];
};

/* Iterates [from, upper) with the options; returns the count (at most max), -1 when
 * the iterator failed. */
static int scan(struct lsm_db *db, const char *from, const char *upper, size_t upper_len,
                int tombstones, const struct lsm_snapshot *snap, struct seen *out,
                int max)
{
    struct lsm_read_options ro = LSM_READ_OPTIONS_INIT;
    ro.include_tombstones = tombstones;
    ro.snapshot = snap;
    ro.upper_bound = upper;
    ro.upper_bound_len = upper_len;
    struct lsm_iter *it = lsm_iter_create(db, &ro);
    if (from != NULL) {
        lsm_iter_seek(it, from, strlen(from));
    } else {
        lsm_iter_seek_first(it);
    }
    int n = 0;
    for (; lsm_iter_valid(it) && n < max; lsm_iter_next(it), n++) {
        size_t kl, vl;
        const char *k = lsm_iter_key(it, &kl);
        const char *v = lsm_iter_value(it, &vl);
        memset(&out[n], 0, sizeof(out[n]));
        memcpy(out[n].key, k, kl < 15 ? kl : 15);
        memcpy(out[n].val, v, vl < 15 ? vl : 15);
        out[n].deleted = lsm_iter_deleted(it);
        out[n].ts = lsm_iter_meta(it).timestamp;
    }
    if (lsm_iter_status(it) != LSM_OK) {
        n = -1;
    }
    lsm_iter_destroy(&it);
    return n;
}

/* a: live; b: value in a table under a tombstone in the memtable; c: tombstone only;
 * d: expired value with a timestamp; e: live */
static void test_iter_include_tombstones_yields_newest_version_only(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.gc_grace_ms = UINT64_MAX;
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    struct lsm_meta m1 = {0, 1 << 16, 1}, m2 = {0, 2 << 16, 2};
    struct lsm_meta mexp = {fake_now + 10, 3 << 16, 3};
    CHECK_EQ_INT(lsm_put(db, "a", 1, "A", 1, &m1, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "b", 1, "B", 1, &m1, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "d", 1, "D", 1, &mexp, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_flush(db), LSM_OK);
    const struct lsm_snapshot *before = lsm_snapshot_create(db);
    CHECK_EQ_INT(lsm_delete(db, "b", 1, &m2, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_delete(db, "c", 1, &m2, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "e", 1, "E", 1, &m2, 0, NULL), LSM_OK);
    fake_now += 10; /* d expires */

    struct seen s[8];
    int n = scan(db, NULL, NULL, 0, 0, NULL, s, 8);
    CHECK_EQ_INT(n, 2); /* clients: a, e */
    CHECK_EQ_STR(s[0].key, "a");
    CHECK_EQ_STR(s[1].key, "e");

    n = scan(db, NULL, NULL, 0, 1, NULL, s, 8);
    CHECK_EQ_INT(n, 5);
    const char *keys = "abcde";
    const int del[] = {0, 1, 1, 1, 0};
    const uint64_t ts[] = {1 << 16, 2 << 16, 2 << 16, 3 << 16, 2 << 16};
    for (int i = 0; i < n && i < 5; i++) {
        CHECK_EQ_INT(s[i].key[0], keys[i]);
        CHECK_EQ_INT(s[i].key[1], 0);
        CHECK_EQ_INT(s[i].deleted, del[i]);
        CHECK_EQ_INT(s[i].ts, ts[i]);
        if (del[i]) {
            CHECK_EQ_STR(s[i].val, ""); /* never the value under the tombstone */
        }
    }
    /* seeking onto the tombstoned key itself */
    n = scan(db, "b", NULL, 0, 1, NULL, s, 8);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_STR(s[0].key, "b");
    CHECK_EQ_INT(s[0].deleted, 1);

    /* the snapshot from before the deletes: b live, c absent, e absent */
    n = scan(db, NULL, NULL, 0, 1, before, s, 8);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_STR(s[0].key, "a");
    CHECK_EQ_STR(s[1].key, "b");
    CHECK_EQ_INT(s[1].deleted, 0);
    CHECK_EQ_STR(s[1].val, "B");
    CHECK_EQ_STR(s[2].key, "d");
    CHECK_EQ_INT(s[2].deleted, 1); /* expired at the read's clock */
    lsm_snapshot_release(db, &before);

    /* the same after everything is in one table */
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    n = scan(db, NULL, NULL, 0, 1, NULL, s, 8);
    CHECK_EQ_INT(n, 5);
    for (int i = 0; i < n && i < 5; i++) {
        CHECK_EQ_INT(s[i].key[0], keys[i]);
        CHECK_EQ_INT(s[i].deleted, del[i]);
        CHECK_EQ_INT(s[i].ts, ts[i]);
    }
    lsm_close(&db);
    remove_dir(dir);
}

/* keys k000..k299 in three L0 tables of 100 each, k300..k349 in the memtable;
 * *dbp stays NULL when that failed */
static void open_with_ranges(const char *dir, struct lsm_options *o, struct lsm_db **dbp)
{
    small_options(o);
    o->l0_compaction_trigger = 8; /* keep the three tables apart in L0 */
    o->target_file_size = 4096;   /* several L1 files after a full compaction */
    struct lsm_db *db;
    *dbp = NULL;
    CHECK_EQ_INT(lsm_open(dir, o, &db, NULL), LSM_OK);
    char k[16], v[64];
    for (int i = 0; i < 350; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        snprintf(v, sizeof(v), "value-%03d-padding-padding-padding", i);
        CHECK_EQ_INT(lsm_put(db, k, 4, v, strlen(v), NULL, 0, NULL), LSM_OK);
        if (i % 100 == 99) {
            CHECK_EQ_INT(lsm_flush(db), LSM_OK);
        }
    }
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK_EQ_INT(st.files_per_level[0], 3);
    *dbp = db;
}

static void test_iter_upper_bound_empty_range(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    struct lsm_db *db;
    open_with_ranges(dir, &o, &db);
    CHECK(db != NULL);
    struct seen s[4];
    CHECK_EQ_INT(scan(db, NULL, "", 0, 0, NULL, s, 4), 0);       /* nothing is < "" */
    CHECK_EQ_INT(scan(db, "k100", "k100", 4, 0, NULL, s, 4), 0); /* [x, x) */
    CHECK_EQ_INT(scan(db, "k200", "k100", 4, 1, NULL, s, 4), 0); /* start past end */
    CHECK_EQ_INT(scan(db, NULL, "a", 1, 0, NULL, s, 4), 0);      /* below every key */
    lsm_close(&db);
    remove_dir(dir);
}

static void test_iter_upper_bound_between_and_equal_to_keys(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    struct lsm_db *db;
    open_with_ranges(dir, &o, &db);
    CHECK(db != NULL);
    struct seen s[400];
    /* between keys: k0995 sorts after k099 and before k100 */
    int n = scan(db, NULL, "k0995", 5, 0, NULL, s, 400);
    CHECK_EQ_INT(n, 100);
    CHECK_EQ_STR(s[99].key, "k099");
    /* equal to a key: excluded */
    n = scan(db, "k050", "k150", 4, 0, NULL, s, 400);
    CHECK_EQ_INT(n, 100);
    CHECK_EQ_STR(s[0].key, "k050");
    CHECK_EQ_STR(s[99].key, "k149");
    /* across all three tables and the memtable, stopping inside the memtable */
    n = scan(db, "k010", "k320", 4, 0, NULL, s, 400);
    CHECK_EQ_INT(n, 310);
    CHECK_EQ_STR(s[309].key, "k319");
    /* a bound past every key changes nothing */
    CHECK_EQ_INT(scan(db, NULL, "z", 1, 0, NULL, s, 400), 350);
    /* after compaction into L1's several files: the same answers */
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK(st.files_per_level[1] > 1);
    n = scan(db, "k010", "k320", 4, 0, NULL, s, 400);
    CHECK_EQ_INT(n, 310);
    CHECK_EQ_STR(s[0].key, "k010");
    CHECK_EQ_STR(s[309].key, "k319");
    n = scan(db, NULL, "k0995", 5, 1, NULL, s, 400);
    CHECK_EQ_INT(n, 100);
    lsm_close(&db);
    remove_dir(dir);
}

/* Data blocks an iteration over [from, upper) reads (cache hits + misses). */
static uint64_t blocks_read(struct lsm_db *db, const char *upper, int stop_at_99)
{
    struct lsm_stats a, b;
    lsm_stats(db, &a);
    struct lsm_read_options ro = LSM_READ_OPTIONS_INIT;
    ro.upper_bound = upper;
    ro.upper_bound_len = upper ? strlen(upper) : 0;
    struct lsm_iter *it = lsm_iter_create(db, &ro);
    int n = 0;
    for (lsm_iter_seek_first(it); lsm_iter_valid(it) && n < 1000; lsm_iter_next(it)) {
        size_t kl;
        const char *k = lsm_iter_key(it, &kl);
        if (stop_at_99 && kl == 4 && memcmp(k, "k100", 4) >= 0) {
            break; /* the caller's own bound */
        }
        n++;
    }
    lsm_iter_destroy(&it);
    lsm_stats(db, &b);
    if (n != 100) {
        return UINT64_MAX; /* fails the caller's comparison */
    }
    return (b.block_cache_hits + b.block_cache_misses) -
           (a.block_cache_hits + a.block_cache_misses);
}

/* the bound keeps the iterator out of the tables that start at or after it */
static void test_iter_upper_bound_reads_no_table_past_it(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    struct lsm_db *db;
    open_with_ranges(dir, &o, &db);
    CHECK(db != NULL);
    struct seen s[400];
    CHECK_EQ_INT(scan(db, NULL, NULL, 0, 0, NULL, s, 400), 350); /* every block cached:
                                                                    one lookup each */
    uint64_t bounded = blocks_read(db, "k100", 0);
    uint64_t unbounded = blocks_read(db, NULL, 1);
    /* without a bound, the seek reads the first block of the two later tables */
    CHECK(bounded != UINT64_MAX && unbounded != UINT64_MAX);
    CHECK(bounded + 2 <= unbounded);
    CHECK(bounded > 0);
    lsm_close(&db);
    remove_dir(dir);
}

/* An expired value with a timestamp becomes a tombstone that keeps its timestamp
 * and node, stays for gc_grace_ms after its expiry, then goes. */
static void test_expired_value_kept_as_dated_tombstone_for_grace(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.gc_grace_ms = 60000;
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "k", 1, "base", 4, NULL, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK); /* base bottommost */
    uint64_t ts = (fake_now - 5000) << 16 | 3;
    uint64_t exp = fake_now + 1000;
    struct lsm_meta m = {exp, ts, 42};
    CHECK_EQ_INT(lsm_put(db, "k", 1, "expiring", 8, &m, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_flush(db), LSM_OK);
    fake_now = exp; /* expired */
    CHECK_EQ_INT(get(db, "k", 0, NULL).rc, LSM_NOTFOUND);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK(st.live_sst_bytes > 0); /* kept: grace runs from the expiry */
    struct got g = get(db, "k", 1, NULL);
    CHECK_EQ_INT(g.rc, LSM_OK);
    CHECK_EQ_INT(g.deleted, 1);
    CHECK_EQ_INT(g.len, 0);
    CHECK_EQ_INT(g.timestamp, ts); /* the value's own timestamp and node, not 0 */
    CHECK_EQ_INT(g.node, 42);
    CHECK_EQ_INT(g.expire_at, exp);
    CHECK_EQ_INT(get(db, "k", 0, NULL).rc, LSM_NOTFOUND); /* and "base" never returns */

    fake_now = exp + 60000 - 1; /* grace not over yet */
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    g = get(db, "k", 1, NULL);
    CHECK_EQ_INT(g.rc, LSM_OK);
    CHECK_EQ_INT(g.deleted, 1);
    CHECK_EQ_INT(g.timestamp, ts);

    fake_now = exp + 60000; /* over: dropped, nothing older below it */
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    lsm_stats(db, &st);
    CHECK_EQ_INT(st.live_sst_bytes, 0);
    CHECK_EQ_INT(get(db, "k", 1, NULL).rc, LSM_NOTFOUND);
    lsm_close(&db);
    remove_dir(dir);
}

/* A value without timestamp (as old files hold) keeps the old rule: once expired,
 * compaction drops it at once; a dated delete's grace counts from its timestamp. */
static void test_undated_expired_value_dropped_at_once(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.gc_grace_ms = 60000;
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    struct lsm_meta m = {fake_now + 10, 0, 5};
    CHECK_EQ_INT(lsm_put(db, "k", 1, "v", 1, &m, 0, NULL), LSM_OK);
    fake_now += 10;
    struct got g = get(db, "k", 1, NULL);
    CHECK_EQ_INT(g.rc, LSM_OK);
    CHECK_EQ_INT(g.deleted, 1);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK_EQ_INT(st.live_sst_bytes, 0);
    CHECK_EQ_INT(get(db, "k", 1, NULL).rc, LSM_NOTFOUND);
    lsm_close(&db);
    remove_dir(dir);
}

/* The GC horizon (a cluster's last complete repair): a tombstone past its grace
 * but dated at or after the horizon survives compaction; once the horizon moves
 * past it, it goes. A horizon alone (grace not over) drops nothing. */
static void test_tombstone_past_grace_kept_until_below_horizon(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.gc_grace_ms = 60000;
    o.gc_horizon_ms = 0; /* as a cluster node opens: nothing repaired yet */
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "k", 1, "old", 3, NULL, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK); /* old bottommost */
    uint64_t del_ms = fake_now;
    struct lsm_meta m = {0, del_ms << 16 | 7, 9};
    CHECK_EQ_INT(lsm_delete(db, "k", 1, &m, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_flush(db), LSM_OK);

    fake_now = del_ms + 60000; /* grace over, horizon 0: kept */
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    struct got g = get(db, "k", 1, NULL);
    CHECK_EQ_INT(g.rc, LSM_OK);
    CHECK_EQ_INT(g.deleted, 1);

    lsm_set_gc_horizon(db, del_ms); /* a repair started exactly at the delete: kept */
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    g = get(db, "k", 1, NULL);
    CHECK_EQ_INT(g.rc, LSM_OK);
    CHECK_EQ_INT(g.deleted, 1);
    CHECK_EQ_INT(g.timestamp, m.timestamp);
    CHECK_EQ_INT(get(db, "k", 0, NULL).rc, LSM_NOTFOUND); /* and "old" never returns */

    lsm_set_gc_horizon(db, del_ms + 1); /* below both: gone, and "old" with it */
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK_EQ_INT(st.live_sst_bytes, 0);
    CHECK_EQ_INT(get(db, "k", 1, NULL).rc, LSM_NOTFOUND);
    lsm_close(&db);
    remove_dir(dir);
}

/* The horizon does not shorten the grace period: a tombstone below the horizon
 * but within its grace stays. */
static void test_tombstone_below_horizon_kept_for_grace(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.gc_grace_ms = 60000;
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    lsm_set_gc_horizon(db, UINT64_MAX - 1);
    CHECK_EQ_INT(lsm_put(db, "k", 1, "old", 3, NULL, 0, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    struct lsm_meta m = {0, fake_now << 16, 9};
    CHECK_EQ_INT(lsm_delete(db, "k", 1, &m, 0, NULL), LSM_OK);
    fake_now += 59999;
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    struct got g = get(db, "k", 1, NULL);
    CHECK_EQ_INT(g.rc, LSM_OK);
    CHECK_EQ_INT(g.deleted, 1);
    fake_now += 1;
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    CHECK_EQ_INT(get(db, "k", 1, NULL).rc, LSM_NOTFOUND);
    lsm_close(&db);
    remove_dir(dir);
}

/* ---- a model: random puts, deletes, flushes, compactions and bounded scans ---------- */

#define MODEL_KEYS 40

struct model_entry {
    int state; /* 0 never written, 1 live, 2 deleted */
    uint64_t ts;
    uint32_t node;
    char val[16];
};

static uint64_t model_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* 0 when lsm_get, with and without include_tombstones, agrees with the model. */
static int model_get_mismatch(struct lsm_db *db, const struct model_entry *m,
                              const char *k)
{
    struct got g = get(db, k, 1, NULL), plain = get(db, k, 0, NULL);
    int bad;
    if (m->state == 0) {
        bad = g.rc != LSM_NOTFOUND || plain.rc != LSM_NOTFOUND;
    } else if (m->state == 1) {
        bad = g.rc != LSM_OK || g.deleted != 0 || g.timestamp != m->ts ||
              g.node != m->node || g.len != strlen(m->val) ||
              memcmp(g.val, m->val, g.len) != 0 || plain.rc != LSM_OK ||
              plain.deleted != 0 || plain.node != m->node;
    } else {
        bad = g.rc != LSM_OK || g.deleted != 1 || g.len != 0 || g.timestamp != m->ts ||
              g.node != m->node || plain.rc != LSM_NOTFOUND;
    }
    if (bad) {
        fprintf(stderr, "  get %s: state %d, rc %d/%d deleted %d ts %llu node %u\n", k,
                m->state, g.rc, plain.rc, g.deleted, (unsigned long long)g.timestamp,
                g.node);
    }
    return bad;
}

/* 0 when an iteration over [lo, hi) agrees with the model. */
static int model_scan_mismatch(struct lsm_db *db, const struct model_entry *m, int lo,
                               int hi, int tombstones)
{
    char from[8], upper[8];
    snprintf(from, sizeof(from), "m%02d", lo);
    snprintf(upper, sizeof(upper), "m%02d", hi);
    struct seen s[MODEL_KEYS + 1];
    int n = scan(db, from, upper, strlen(upper), tombstones, NULL, s, MODEL_KEYS + 1);
    int j = 0;
    for (int i = lo; i < hi && i < MODEL_KEYS; i++) {
        if (m[i].state == 0 || (m[i].state == 2 && !tombstones)) {
            continue;
        }
        char k[8];
        snprintf(k, sizeof(k), "m%02d", i);
        if (j >= n || strcmp(s[j].key, k) != 0 || s[j].deleted != (m[i].state == 2) ||
            s[j].ts != m[i].ts ||
            strcmp(s[j].val, m[i].state == 1 ? m[i].val : "") != 0) {
            fprintf(stderr, "  scan [%d, %d) tombstones %d: entry %d should be %s\n", lo,
                    hi, tombstones, j, k);
            return 1;
        }
        j++;
    }
    if (j != n) {
        fprintf(stderr, "  scan [%d, %d): %d entries, expected %d\n", lo, hi, n, j);
        return 1;
    }
    return 0;
}

static void test_model_tombstones_and_bounds_match_a_map(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    o.gc_grace_ms = UINT64_MAX; /* tombstones never go: the model keeps them all */
    o.memtable_size = 4096;
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    struct model_entry m[MODEL_KEYS] = {0};
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int op = 1; op <= 4000; op++) {
        int i = (int)(model_rand(&x) % MODEL_KEYS);
        char k[8];
        snprintf(k, sizeof(k), "m%02d", i);
        struct lsm_meta meta = {0, (uint64_t)op << 16, (uint32_t)(model_rand(&x) % 4)};
        unsigned r = (unsigned)(model_rand(&x) % 100);
        if (r < 45) {
            snprintf(m[i].val, sizeof(m[i].val), "v%d", op);
            CHECK_EQ_INT(lsm_put(db, k, 3, m[i].val, strlen(m[i].val), &meta, 0, NULL),
                         LSM_OK);
            m[i].state = 1;
        } else if (r < 75) {
            CHECK_EQ_INT(lsm_delete(db, k, 3, &meta, 0, NULL), LSM_OK);
            m[i].state = 2;
            m[i].val[0] = 0;
        } else if (r < 85) {
            CHECK_EQ_INT(model_get_mismatch(db, &m[i], k), 0);
            continue;
        } else if (r < 95) {
            int lo = (int)(model_rand(&x) % (MODEL_KEYS + 1));
            int hi = (int)(model_rand(&x) % (MODEL_KEYS + 1));
            CHECK_EQ_INT(model_scan_mismatch(db, m, lo, hi, (int)(model_rand(&x) & 1)),
                         0);
            continue;
        } else if (r < 98) {
            CHECK_EQ_INT(lsm_flush(db), LSM_OK);
            continue;
        } else {
            char lo[8], hi[8];
            snprintf(lo, sizeof(lo), "m%02d", (int)(model_rand(&x) % MODEL_KEYS));
            snprintf(hi, sizeof(hi), "m%02d", (int)(model_rand(&x) % MODEL_KEYS));
            CHECK_EQ_INT(lsm_compact_range(db, lo, 3, hi, 3), LSM_OK);
            continue;
        }
        m[i].ts = meta.timestamp;
        m[i].node = meta.node;
    }
    for (int pass = 0; pass < 2;
         pass++) { /* as left, then after reopen and full compaction */
        for (int i = 0; i < MODEL_KEYS; i++) {
            char k[8];
            snprintf(k, sizeof(k), "m%02d", i);
            CHECK_EQ_INT(model_get_mismatch(db, &m[i], k), 0);
        }
        CHECK_EQ_INT(model_scan_mismatch(db, m, 0, MODEL_KEYS, 1), 0);
        CHECK_EQ_INT(model_scan_mismatch(db, m, 0, MODEL_KEYS, 0), 0);
        lsm_close(&db);
        CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
        CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK);
    }
    lsm_close(&db);
    remove_dir(dir);
}

int main(void)
{
    TEST_RUN(test_node_survives_wal_replay_memtable_flush_compaction_and_reopen);
    TEST_RUN(test_old_format_wal_replays_with_node_zero);
    TEST_RUN(test_get_without_tombstones_option_hides_deletes_as_before);
    TEST_RUN(test_get_include_tombstones_returns_newest_tombstone_with_meta);
    TEST_RUN(test_iter_include_tombstones_yields_newest_version_only);
    TEST_RUN(test_iter_upper_bound_empty_range);
    TEST_RUN(test_iter_upper_bound_between_and_equal_to_keys);
    TEST_RUN(test_iter_upper_bound_reads_no_table_past_it);
    TEST_RUN(test_expired_value_kept_as_dated_tombstone_for_grace);
    TEST_RUN(test_undated_expired_value_dropped_at_once);
    TEST_RUN(test_tombstone_past_grace_kept_until_below_horizon);
    TEST_RUN(test_tombstone_below_horizon_kept_for_grace);
    TEST_RUN(test_model_tombstones_and_bounds_match_a_map);
    TEST_MAIN_END();
}
