/* engine/sst_test.c: tables built and read back: point lookups at snapshots,
 * versions across block boundaries, iteration and seeks (cached and read-ahead),
 * properties, large buffered writes, empty tables, huge values, damage reported with
 * file and offset, and concurrent readers. */
#include "engine/sst.h"

#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "engine/bloom.h"
#include "engine/env.h"
#include "tests/test.h"

static char dir[64];
static char path[128];

/* entry i: user key "key%08d" (i / versions), seqno, kind, value */
struct ent {
    char ikey[32];
    size_t ikey_len;
    uint64_t seqno;
    unsigned kind;
};

static int nversions = 1;

static void make_ent(int i, struct ent *e)
{
    char uk[16];
    int k = i / nversions, v = i % nversions;
    int n = snprintf(uk, sizeof(uk), "key%08d", k * 2); /* odd numbers are absent */
    e->seqno = (uint64_t)(1000000 - v * 10 - k % 7);    /* newest version first */
    e->kind = (k % 13 == 5 && v == 0) ? LSM_KIND_DELETE : LSM_KIND_VALUE;
    e->ikey_len = ikey_encode(e->ikey, uk, (size_t)n, e->seqno, e->kind);
}

static void make_value(int i, struct lsm_buf *b)
{
    lsm_buf_clear(b);
    char v[128];
    int n = snprintf(
        v, sizeof(v), "value-%d-%.*s", i, i % 90,
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    entry_append(b, i % 5 == 0 ? 1700000000000ull + (uint64_t)i : 0,
                 i % 3 == 0 ? 500 + (uint64_t)i : 0, i % 7 == 0 ? 3 + (uint32_t)i : 0, v,
                 (size_t)n);
}

static int build(const char *p, int n, const struct sst_options *opt,
                 struct sst_props *props)
{
    struct sst_builder *b;
    struct lsm_err err;
    int rc = sst_builder_create(p, opt, &b, &err);
    if (rc != LSM_OK) {
        return rc;
    }
    struct lsm_buf v = {0};
    for (int i = 0; i < n && rc == LSM_OK; i++) {
        struct ent e;
        make_ent(i, &e);
        make_value(i, &v);
        rc = sst_builder_add(b, e.ikey, e.ikey_len, v.p, v.len);
    }
    lsm_buf_free(&v);
    if (rc != LSM_OK) {
        sst_builder_abandon(&b);
        return rc;
    }
    return sst_builder_finish(&b, true, props, &err);
}

static int lookup(struct sst_reader *r, const char *uk, size_t uklen, uint64_t snap,
                  struct sst_found *f, struct lsm_err *err)
{
    struct lookup_key lk;
    lookup_key_init(&lk, uk, uklen, snap);
    int rc = sst_reader_get(r, lk.p, lk.len, bloom_hash(uk, uklen), f, err);
    lookup_key_free(&lk);
    return rc;
}

/* Every entry found at its own seqno; absent keys not found; full scan in order. */
static void check_table(int n, const struct sst_options *opt, struct block_cache *cache,
                        int *failures)
{
    struct sst_props props;
    if (build(path, n, opt, &props) != LSM_OK) {
        (*failures)++;
        return;
    }
    static uint64_t file_number = 100; /* never reused: the cache is keyed by it */
    struct sst_reader *r;
    struct lsm_err err;
    if (sst_reader_open(path, file_number++, cache, &r, &err) != LSM_OK) {
        fprintf(stderr, "  open: %s\n", err.msg);
        (*failures)++;
        sst_props_free(&props);
        return;
    }
    const struct sst_props *rp = sst_reader_props(r);
    if (rp->num_entries != (uint64_t)n || rp->file_size != props.file_size ||
        rp->num_data_blocks != props.num_data_blocks ||
        rp->max_seqno != props.max_seqno || rp->smallest.len != props.smallest.len ||
        rp->largest.len != props.largest.len) {
        (*failures)++;
    }
    sst_props_free(&props);
    struct lsm_buf v = {0};
    for (int i = 0; i < n; i++) {
        struct ent e;
        make_ent(i, &e);
        make_value(i, &v);
        struct sst_found f;
        int rc = lookup(r, e.ikey, e.ikey_len - 8, e.seqno, &f, &err);
        if (rc != LSM_OK || f.seqno != e.seqno || f.kind != e.kind ||
            f.value_len != v.len || memcmp(f.value, v.p, v.len) != 0 ||
            f.ikey_len != e.ikey_len || memcmp(f.ikey, e.ikey, e.ikey_len) != 0) {
            fprintf(stderr, "  get %d: rc %d\n", i, rc);
            (*failures)++;
            if (rc == LSM_OK) {
                sst_found_release(&f);
            }
            break;
        }
        sst_found_release(&f);
        if (i % nversions == 0) {
            /* an absent neighbour (odd number), and a snapshot older than every version */
            char uk[16];
            int kn = snprintf(uk, sizeof(uk), "key%08d", (i / nversions) * 2 + 1);
            if (lookup(r, uk, (size_t)kn, LSM_MAX_SEQNO, &f, &err) != LSM_NOTFOUND ||
                lookup(r, e.ikey, e.ikey_len - 8, 1000, &f, &err) != LSM_NOTFOUND) {
                (*failures)++;
                break;
            }
        }
    }
    struct sst_iter_options io[2] = {{.fill_cache = true},
                                     {.fill_cache = false, .readahead = 64 << 10}};
    for (int m = 0; m < 2; m++) {
        struct sst_iter *it = sst_iter_create(r, &io[m]);
        int i = 0;
        for (sst_iter_seek_to_first(it); sst_iter_valid(it); sst_iter_next(it), i++) {
            struct ent e;
            make_ent(i, &e);
            make_value(i, &v);
            size_t kl, vl;
            const char *k = sst_iter_key(it, &kl), *val = sst_iter_value(it, &vl);
            if (kl != e.ikey_len || memcmp(k, e.ikey, kl) != 0 || vl != v.len ||
                memcmp(val, v.p, vl) != 0) {
                (*failures)++;
                break;
            }
        }
        if (i != n || sst_iter_status(it, &err) != LSM_OK) {
            fprintf(stderr, "  scan mode %d: %d of %d\n", m, i, n);
            (*failures)++;
        }
        for (int j = 0; j < n; j += 1 + n / 300) { /* seeks */
            struct ent e;
            make_ent(j, &e);
            sst_iter_seek(it, e.ikey, e.ikey_len);
            size_t kl;
            const char *k = sst_iter_valid(it) ? sst_iter_key(it, &kl) : NULL;
            if (k == NULL || kl != e.ikey_len || memcmp(k, e.ikey, kl) != 0) {
                (*failures)++;
                break;
            }
        }
        sst_iter_seek(it, "zzzzzzzzzzzz", 12);
        if (sst_iter_valid(it)) {
            (*failures)++;
        }
        sst_iter_destroy(&it);
    }
    lsm_buf_free(&v);
    sst_reader_close(&r);
    unlink(path);
}

static void test_sst_roundtrip_block_sizes_and_caches(void)
{
    int failures = 0;
    struct block_cache *cache = block_cache_create(8 << 20);
    size_t sizes[] = {64, 1024, 4096, 65536};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        struct sst_options opt;
        sst_options_default(&opt);
        opt.block_size = sizes[s];
        opt.restart_interval = s == 0 ? 1 : 16;
        check_table(5000, &opt, s % 2 ? cache : NULL, &failures);
    }
    struct block_cache_stats st;
    block_cache_stats(cache, &st);
    CHECK(st.hits > 0);
    block_cache_destroy(&cache);
    CHECK_EQ_INT(failures, 0);
}

static void test_sst_versions_across_block_boundaries(void)
{
    int failures = 0;
    nversions = 7;
    struct sst_options opt;
    sst_options_default(&opt);
    opt.block_size = 100; /* a key's versions straddle blocks */
    struct block_cache *cache = block_cache_create(1 << 20);
    check_table(7 * 400, &opt, cache, &failures);
    opt.bloom_bits_per_key = 0; /* and without a filter */
    check_table(7 * 100, &opt, NULL, &failures);
    nversions = 1;
    block_cache_destroy(&cache);
    CHECK_EQ_INT(failures, 0);

    /* a snapshot between versions sees the newest version at or below it */
    nversions = 3;
    sst_options_default(&opt);
    opt.block_size = 64;
    CHECK_EQ_INT(build(path, 3 * 50, &opt, NULL), LSM_OK);
    struct sst_reader *r;
    CHECK_EQ_INT(sst_reader_open(path, 1, NULL, &r, NULL), LSM_OK);
    for (int i = 0; i < 3 * 50; i++) {
        struct ent e;
        make_ent(i, &e);
        struct sst_found f;
        CHECK_EQ_INT(lookup(r, e.ikey, e.ikey_len - 8, e.seqno + 5, &f, NULL), LSM_OK);
        CHECK_EQ_INT(f.seqno, e.seqno);
        sst_found_release(&f);
    }
    sst_reader_close(&r);
    nversions = 1;
    unlink(path);
}

static void test_sst_properties(void)
{
    struct sst_props p;
    CHECK_EQ_INT(build(path, 1000, NULL, &p), LSM_OK);
    CHECK_EQ_INT(p.num_entries, 1000);
    int dels = 0;
    for (int i = 0; i < 1000; i++) {
        struct ent e;
        make_ent(i, &e);
        dels += e.kind == LSM_KIND_DELETE;
    }
    CHECK_EQ_INT(p.num_deletions, dels);
    CHECK_EQ_INT(p.num_expiring, 200);
    CHECK(p.oldest_expire_at == 1700000000000ull);
    CHECK_EQ_INT(p.min_write_ts, 500);
    CHECK_EQ_INT(p.max_write_ts, 500 + 999);
    struct ent first, last;
    make_ent(0, &first);
    make_ent(999, &last);
    CHECK_EQ_MEM(p.smallest.p, p.smallest.len, first.ikey, first.ikey_len);
    CHECK_EQ_MEM(p.largest.p, p.largest.len, last.ikey, last.ikey_len);
    struct sst_reader *r;
    CHECK_EQ_INT(sst_reader_open(path, 1, NULL, &r, NULL), LSM_OK);
    const struct sst_props *rp = sst_reader_props(r);
    CHECK_EQ_INT(rp->num_deletions, p.num_deletions);
    CHECK(rp->oldest_expire_at == p.oldest_expire_at);
    CHECK_EQ_INT(rp->min_seqno, p.min_seqno);
    CHECK_EQ_MEM(rp->largest.p, rp->largest.len, last.ikey, last.ikey_len);
    struct sst_props copy = {0};
    sst_props_copy(&copy, rp);
    CHECK_EQ_MEM(copy.smallest.p, copy.smallest.len, first.ikey, first.ikey_len);
    sst_props_free(&copy);
    sst_reader_close(&r);
    sst_props_free(&p);
    unlink(path);
}

/* Data blocks are buffered into large writes, not one write call per block; the
 * table still reads back whole (offsets in the index count the buffered bytes). */
static void test_sst_builder_writes_in_large_chunks(void)
{
    struct sst_props p;
    struct env_fault_stats st;
    env_fault_enable(true);
    CHECK_EQ_INT(build(path, 30000, NULL, &p), LSM_OK);
    env_fault_stats(&st);
    env_fault_enable(false);
    CHECK(p.num_data_blocks > 300);
    CHECK_EQ_INT(st.bytes_written, p.file_size);
    CHECK(st.writes <= p.file_size / (128 * 1024) + 2);
    sst_props_free(&p);
    int failures = 0;
    check_table(30000, NULL, NULL, &failures);
    CHECK_EQ_INT(failures, 0);
}

static void test_sst_empty_table(void)
{
    struct sst_props p;
    CHECK_EQ_INT(build(path, 0, NULL, &p), LSM_OK);
    CHECK_EQ_INT(p.num_entries, 0);
    CHECK_EQ_INT(p.smallest.len, 0);
    struct sst_reader *r;
    CHECK_EQ_INT(sst_reader_open(path, 1, NULL, &r, NULL), LSM_OK);
    struct sst_found f;
    CHECK_EQ_INT(lookup(r, "a", 1, LSM_MAX_SEQNO, &f, NULL), LSM_NOTFOUND);
    struct sst_iter *it = sst_iter_create(r, NULL);
    sst_iter_seek_to_first(it);
    CHECK(!sst_iter_valid(it));
    CHECK_EQ_INT(sst_iter_status(it, NULL), LSM_OK);
    sst_iter_destroy(&it);
    sst_reader_close(&r);
    sst_props_free(&p);
    unlink(path);
}

static void test_sst_huge_and_empty_values(void)
{
    struct sst_builder *b;
    CHECK_EQ_INT(sst_builder_create(path, NULL, &b, NULL), LSM_OK);
    size_t big = 6 << 20;
    char *v = lsm_malloc(big);
    for (size_t i = 0; i < big; i++) {
        v[i] = (char)(i * 131);
    }
    v[0] = 0; /* entry flags: none */
    char k[16];
    size_t kl = ikey_encode(k, "a", 1, 5, LSM_KIND_VALUE);
    CHECK_EQ_INT(sst_builder_add(b, k, kl, "\0", 1), LSM_OK);
    kl = ikey_encode(k, "b", 1, 5, LSM_KIND_VALUE);
    CHECK_EQ_INT(sst_builder_add(b, k, kl, v, big), LSM_OK);
    kl = ikey_encode(k, "c", 1, 5, LSM_KIND_VALUE);
    CHECK_EQ_INT(sst_builder_add(b, k, kl, "\0", 1), LSM_OK);
    CHECK_EQ_INT(sst_builder_finish(&b, false, NULL, NULL), LSM_OK);
    struct block_cache *cache = block_cache_create(1 << 20);
    struct sst_reader *r;
    CHECK_EQ_INT(sst_reader_open(path, 3, cache, &r, NULL), LSM_OK);
    struct sst_found f;
    CHECK_EQ_INT(lookup(r, "b", 1, LSM_MAX_SEQNO, &f, NULL), LSM_OK);
    CHECK_EQ_MEM(f.value, f.value_len, v, big);
    sst_found_release(&f);
    CHECK_EQ_INT(lookup(r, "c", 1, LSM_MAX_SEQNO, &f, NULL), LSM_OK);
    CHECK_EQ_INT(f.value_len, 1);
    sst_found_release(&f);
    struct sst_iter_options io = {.fill_cache = false};
    struct sst_iter *it = sst_iter_create(r, &io);
    int n = 0;
    for (sst_iter_seek_to_first(it); sst_iter_valid(it); sst_iter_next(it)) {
        n++;
    }
    CHECK_EQ_INT(n, 3);
    sst_iter_destroy(&it);
    sst_reader_close(&r);
    block_cache_destroy(&cache);
    lsm_free(v);
    unlink(path);
}

static void flip(const char *p, uint64_t off)
{
    struct env_file *f;
    char c;
    size_t got;
    if (env_open_rw(p, &f, NULL) != LSM_OK) {
        abort();
    }
    env_pread(f, &c, 1, off, &got, NULL);
    c ^= 0x10;
    env_pwrite(f, &c, 1, off, NULL);
    env_close(&f);
}

static void test_sst_damage_is_reported_with_file_and_offset(void)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/000012.sst", dir);
    struct sst_options opt;
    sst_options_default(&opt);
    struct sst_props props;
    CHECK_EQ_INT(build(p, 2000, &opt, &props), LSM_OK);
    sst_props_free(&props);
    /* a flipped byte inside the second data block (blocks are about 4 KiB) */
    struct sst_reader *r;
    struct sst_iter *it;
    uint64_t second_block = 0;
    flip(p, 5000); /* inside the second data block */
    CHECK_EQ_INT(sst_reader_open(p, 12, NULL, &r, NULL), LSM_OK);
    struct lsm_err err;
    int corrupt_gets = 0, ok_gets = 0;
    for (int i = 0; i < 2000; i++) {
        struct ent e;
        make_ent(i, &e);
        struct sst_found f;
        int rc = lookup(r, e.ikey, e.ikey_len - 8, e.seqno, &f, &err);
        if (rc == LSM_OK) {
            ok_gets++;
            sst_found_release(&f);
        } else {
            CHECK_EQ_INT(rc, LSM_CORRUPT);
            corrupt_gets++;
            if (second_block == 0) {
                unsigned long long off;
                CHECK(sscanf(err.msg, "sst 000012.sst: block at %llu: bad checksum",
                             &off) == 1);
                second_block = off;
            }
        }
    }
    CHECK(corrupt_gets > 0 && corrupt_gets < 100);
    CHECK(ok_gets > 1800);
    CHECK(second_block > 0 && second_block <= 5000 && 5000 < second_block + 4200);
    it = sst_iter_create(r, NULL);
    int n = 0;
    for (sst_iter_seek_to_first(it); sst_iter_valid(it); sst_iter_next(it)) {
        n++;
    }
    CHECK(n > 0 && n < 2000);
    CHECK_EQ_INT(sst_iter_status(it, &err), LSM_CORRUPT);
    CHECK(strstr(err.msg, "000012.sst: block at") != NULL);
    sst_iter_destroy(&it);
    sst_reader_close(&r);
    flip(p, 5000);

    /* footer, index/props damage and truncation fail the open */
    struct env_file *f;
    CHECK_EQ_INT(env_open_read(p, &f, NULL), LSM_OK);
    uint64_t size = f->size;
    env_close(&f);
    uint64_t spots[] = {size - 1, size - 20, size - SST_FOOTER_SIZE - 10,
                        size - 64 - 200};
    for (size_t s = 0; s < sizeof(spots) / sizeof(spots[0]); s++) {
        flip(p, spots[s]);
        CHECK_EQ_INT(sst_reader_open(p, 12, NULL, &r, &err), LSM_CORRUPT);
        CHECK(strstr(err.msg, "000012.sst") != NULL);
        flip(p, spots[s]);
    }
    CHECK_EQ_INT(sst_reader_open(p, 12, NULL, &r, &err), LSM_OK);
    sst_reader_close(&r);
    CHECK_EQ_INT(truncate(p, (off_t)size - 1), 0);
    CHECK_EQ_INT(sst_reader_open(p, 12, NULL, &r, &err), LSM_CORRUPT);
    CHECK_EQ_INT(truncate(p, 10), 0);
    CHECK_EQ_INT(sst_reader_open(p, 12, NULL, &r, &err), LSM_CORRUPT);
    CHECK(strstr(err.msg, "too short") != NULL);
    unlink(p);
}

static void test_sst_bloom_skips_absent_keys(void)
{
    CHECK_EQ_INT(build(path, 10000, NULL, NULL), LSM_OK);
    struct block_cache *cache = block_cache_create(8 << 20);
    struct sst_reader *r;
    CHECK_EQ_INT(sst_reader_open(path, 4, cache, &r, NULL), LSM_OK);
    for (int i = 0; i < 10000; i++) {
        char uk[16];
        int n = snprintf(uk, sizeof(uk), "key%08d", i * 2 + 1);
        struct sst_found f;
        CHECK_EQ_INT(lookup(r, uk, (size_t)n, LSM_MAX_SEQNO, &f, NULL), LSM_NOTFOUND);
    }
    struct block_cache_stats st;
    block_cache_stats(cache, &st);
    CHECK(st.hits + st.misses < 300); /* ~1% of the lookups reach a block */
    sst_reader_close(&r);
    block_cache_destroy(&cache);
    unlink(path);
}

static struct sst_reader *shared_reader;

static void *reader_thread(void *arg)
{
    uint64_t x = (uint64_t)(intptr_t)arg + 1;
    struct lsm_buf v = {0};
    void *bad = NULL;
    for (int k = 0; k < 20000 && bad == NULL; k++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int i = (int)((x >> 33) % 5000);
        struct ent e;
        make_ent(i, &e);
        make_value(i, &v);
        struct sst_found f;
        if (lookup(shared_reader, e.ikey, e.ikey_len - 8, e.seqno, &f, NULL) != LSM_OK) {
            bad = (void *)1;
            break;
        }
        if (f.value_len != v.len || memcmp(f.value, v.p, v.len) != 0) {
            bad = (void *)1;
        }
        sst_found_release(&f);
    }
    lsm_buf_free(&v);
    return bad;
}

static void test_sst_concurrent_readers(void)
{
    CHECK_EQ_INT(build(path, 5000, NULL, NULL), LSM_OK);
    struct block_cache *cache = block_cache_create(64 << 10); /* small: evictions */
    CHECK_EQ_INT(sst_reader_open(path, 5, cache, &shared_reader, NULL), LSM_OK);
    pthread_t t[3];
    for (intptr_t i = 0; i < 3; i++) {
        pthread_create(&t[i], NULL, reader_thread, (void *)i);
    }
    int bad = 0;
    for (int i = 0; i < 3; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        bad += rv != NULL;
    }
    CHECK_EQ_INT(bad, 0);
    struct block_cache_stats st;
    block_cache_stats(cache, &st);
    CHECK(st.evictions > 0);
    sst_reader_close(&shared_reader);
    block_cache_destroy(&cache);
    unlink(path);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/kvd-sst-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/000001.sst", dir);
    TEST_RUN(test_sst_roundtrip_block_sizes_and_caches);
    TEST_RUN(test_sst_versions_across_block_boundaries);
    TEST_RUN(test_sst_properties);
    TEST_RUN(test_sst_builder_writes_in_large_chunks);
    TEST_RUN(test_sst_empty_table);
    TEST_RUN(test_sst_huge_and_empty_values);
    TEST_RUN(test_sst_damage_is_reported_with_file_and_offset);
    TEST_RUN(test_sst_bloom_skips_absent_keys);
    TEST_RUN(test_sst_concurrent_readers);
    rmdir(dir);
    TEST_MAIN_END();
}
