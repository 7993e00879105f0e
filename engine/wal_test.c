/* engine/wal_test.c: WAL segments written and read back; torn tails truncated at
 * every offset; damage in the middle reported with its offset. */
#include "engine/wal.h"

#include <stdio.h>
#include <unistd.h>

#include "tests/test.h"

static char dir[64];
static char path[128];

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* record i: length lens[i], bytes derived from i */
static void fill_record(char *p, size_t n, int i)
{
    for (size_t k = 0; k < n; k++) {
        p[k] = (char)(i * 31 + k * 7);
    }
}

static int write_log(const char *p, const size_t *lens, int n, uint64_t prealloc,
                     uint64_t *offsets)
{
    struct wal_writer_options opt = {.log_number = 7, .prealloc_bytes = prealloc};
    struct wal_writer *w;
    struct lsm_err err;
    int rc = wal_writer_create(p, &opt, &w, &err);
    for (int i = 0; rc == LSM_OK && i < n; i++) {
        char *buf = lsm_malloc(lens[i] + 1);
        fill_record(buf, lens[i], i);
        if (offsets) {
            offsets[i] = wal_writer_flushed_offset(w);
        }
        rc = wal_writer_append(w, buf, lens[i], &err);
        lsm_free(buf);
    }
    if (offsets) {
        offsets[n] = wal_writer_flushed_offset(w);
    }
    int rc2 = wal_writer_close(&w, true, &err);
    return rc != LSM_OK ? rc : rc2;
}

/* Reads the log at p; checks the first `expect` records; returns the status that
 * ended reading (LSM_NOTFOUND at a clean or torn end). */
static int read_log(const char *p, const size_t *lens, int *count, uint64_t *valid_end,
                    bool *torn, struct lsm_err *err)
{
    struct wal_reader *r;
    int rc = wal_reader_open(p, &r, err);
    if (rc != LSM_OK) {
        return rc;
    }
    *count = 0;
    const char *payload;
    size_t len;
    while ((rc = wal_reader_next(r, &payload, &len, err)) == LSM_OK) {
        int i = (*count)++;
        char *want = lsm_malloc(lens[i] + 1);
        fill_record(want, lens[i], i);
        int same = len == lens[i] && memcmp(payload, want, len) == 0;
        lsm_free(want);
        if (!same) {
            rc = LSM_INVALID;
            break;
        }
    }
    wal_reader_end(r, valid_end, torn);
    wal_reader_close(&r);
    return rc;
}

static void copy_prefix(const char *from, const char *to, uint64_t n)
{
    char *buf;
    size_t len;
    if (env_read_file(from, &buf, &len, NULL) != LSM_OK) {
        abort();
    }
    struct env_file *f;
    if (env_create(to, &f, NULL) != LSM_OK) {
        abort();
    }
    env_append(f, buf, n < len ? n : len, NULL);
    env_close(&f);
    lsm_free(buf);
}

static void patch_byte(const char *p, uint64_t off, char xor_with)
{
    struct env_file *f;
    if (env_open_rw(p, &f, NULL) != LSM_OK) {
        abort();
    }
    char c;
    size_t got;
    env_pread(f, &c, 1, off, &got, NULL);
    c ^= xor_with;
    env_pwrite(f, &c, 1, off, NULL);
    env_close(&f);
}

static void test_wal_roundtrip_sizes(void)
{
    size_t lens[] = {
        0,     1, 100, 32768 - 16 - 7, 0,  32768 - 7 - 1, 5, 32768, 70000,        32761,
        32762, 1, 0,   3 << 20,        17, 32768 * 3,     6, 0,     (5 << 20) + 3};
    int n = (int)(sizeof(lens) / sizeof(lens[0]));
    uint64_t offs[32];
    CHECK_EQ_INT(write_log(path, lens, n, 0, offs), LSM_OK);
    int count;
    uint64_t end;
    bool torn;
    struct lsm_err err;
    CHECK_EQ_INT(read_log(path, lens, &count, &end, &torn, &err), LSM_NOTFOUND);
    CHECK_EQ_INT(count, n);
    CHECK(!torn);
    CHECK_EQ_INT(end, offs[n]);
    unlink(path);
}

static void test_wal_padding_at_every_block_tail(void)
{
    /* records that leave 0..7 bytes at the end of a block */
    size_t lens[16];
    int n = 0;
    for (int left = 0; left <= 7; left++) {
        lens[n] = 32768 - 7 - (size_t)left - (n == 0 ? 16 : 0);
        n++;
    }
    CHECK_EQ_INT(write_log(path, lens, n, 0, NULL), LSM_OK);
    int count;
    uint64_t end;
    bool torn;
    CHECK_EQ_INT(read_log(path, lens, &count, &end, &torn, NULL), LSM_NOTFOUND);
    CHECK_EQ_INT(count, n);
    CHECK(!torn);
    unlink(path);
}

static void test_wal_empty_and_headerless_logs(void)
{
    size_t lens[1] = {0};
    CHECK_EQ_INT(write_log(path, lens, 0, 0, NULL), LSM_OK);
    int count;
    uint64_t end;
    bool torn;
    CHECK_EQ_INT(read_log(path, lens, &count, &end, &torn, NULL), LSM_NOTFOUND);
    CHECK_EQ_INT(count, 0);
    CHECK_EQ_INT(end, WAL_HEADER_SIZE);
    char p2[160];
    snprintf(p2, sizeof(p2), "%s.cut", path);
    copy_prefix(path, p2, 5); /* crash while writing the header */
    CHECK_EQ_INT(read_log(p2, lens, &count, &end, &torn, NULL), LSM_NOTFOUND);
    CHECK_EQ_INT(count, 0);
    CHECK(torn);
    patch_byte(path, 0, 1);
    struct lsm_err err;
    CHECK_EQ_INT(read_log(path, lens, &count, &end, &torn, &err), LSM_CORRUPT);
    CHECK(strstr(err.msg, "magic") != NULL);
    unlink(path);
    unlink(p2);
}

/* Cuts the log inside the last record at every offset (or every stride-th) and
 * checks that reading yields every earlier record and reports the cut as torn. */
static void check_torn_tail(const size_t *lens, int n, uint64_t stride, int *failures)
{
    uint64_t offs[64];
    if (write_log(path, lens, n, 0, offs) != LSM_OK) {
        (*failures)++;
        return;
    }
    char p2[160];
    snprintf(p2, sizeof(p2), "%s.cut", path);
    for (uint64_t cut = offs[n - 1]; cut < offs[n]; cut += stride) {
        copy_prefix(path, p2, cut);
        int count;
        uint64_t end;
        bool torn;
        int rc = read_log(p2, lens, &count, &end, &torn, NULL);
        if (rc != LSM_NOTFOUND || count != n - 1 || end != offs[n - 1]) {
            fprintf(stderr, "  cut at %llu: rc %d count %d end %llu\n",
                    (unsigned long long)cut, rc, count, (unsigned long long)end);
            (*failures)++;
            break;
        }
    }
    unlink(p2);
    unlink(path);
}

static void test_wal_torn_tail_is_truncated(void)
{
    int failures = 0;
    size_t small[] = {10, 200, 0, 300};
    check_torn_tail(small, 4, 1, &failures);
    size_t spanning[] = {32768 - 16 - 7 - 100, 1000}; /* last record crosses a block */
    check_torn_tail(spanning, 2, 1, &failures);
    size_t big[] = {50, 100000}; /* FIRST, MIDDLE..., LAST */
    check_torn_tail(big, 2, 13, &failures);
    CHECK_EQ_INT(failures, 0);
}

static void test_wal_torn_tail_with_garbage(void)
{
    size_t lens[] = {100, 100, 100, 5000};
    uint64_t offs[8];
    CHECK_EQ_INT(write_log(path, lens, 4, 0, offs), LSM_OK);
    /* the last append half-written: its second half is random bytes */
    for (uint64_t o = offs[3] + 2500; o < offs[4]; o++) {
        patch_byte(path, o, (char)(rnd() | 1));
    }
    int count;
    uint64_t end;
    bool torn;
    CHECK_EQ_INT(read_log(path, lens, &count, &end, &torn, NULL), LSM_NOTFOUND);
    CHECK_EQ_INT(count, 3);
    CHECK(torn);
    CHECK_EQ_INT(end, offs[3]);
    struct wal_reader *r;
    CHECK_EQ_INT(wal_reader_open(path, &r, NULL), LSM_OK);
    const char *payload;
    size_t len;
    while (wal_reader_next(r, &payload, &len, NULL) == LSM_OK) {
    }
    char want[64];
    snprintf(want, sizeof(want), "bad checksum at offset %llu",
             (unsigned long long)offs[3]);
    CHECK_EQ_STR(wal_reader_tail_reason(r), want);
    wal_reader_close(&r);
    unlink(path);
}

static void test_wal_flipped_byte_in_middle_is_reported(void)
{
    size_t lens[40];
    for (int i = 0; i < 40; i++) {
        lens[i] = 1500 + (size_t)i * 37; /* ~2.2 blocks */
    }
    uint64_t offs[41];
    CHECK_EQ_INT(write_log(path, lens, 40, 0, offs), LSM_OK);
    struct {
        uint64_t off;
        const char *what;
    } cases[] = {
        {offs[5] + 7 + 100, "bad checksum"}, /* payload byte */
        {offs[5] + 4, "bad checksum"},       /* length field, small change */
        {offs[5] + 5, "bad checksum"},       /* length field, big change */
        {offs[5] + 6, "bad fragment type"},  /* type byte */
        {offs[5] + 1, "bad checksum"},       /* crc itself */
        {offs[30] + 7 + 1, "bad checksum"},  /* in a later block */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        patch_byte(path, cases[c].off, 0x40);
        int count;
        uint64_t end;
        bool torn;
        struct lsm_err err;
        lsm_err_clear(&err);
        int rc = read_log(path, lens, &count, &end, &torn, &err);
        patch_byte(path, cases[c].off, 0x40); /* restore */
        CHECK_EQ_INT(rc, LSM_CORRUPT);
        int rec = cases[c].off >= offs[30] ? 30 : 5;
        CHECK_EQ_INT(count, rec);
        char where[64];
        snprintf(where, sizeof(where), "at offset %llu", (unsigned long long)offs[rec]);
        if (strstr(err.msg, where) == NULL || strstr(err.msg, path) == NULL) {
            fprintf(stderr, "  message: %s\n", err.msg);
        }
        CHECK(strstr(err.msg, where) != NULL);
        CHECK(strstr(err.msg, path) != NULL);
        CHECK(strstr(err.msg, "valid fragment at") != NULL);
    }
    unlink(path);
}

static void test_wal_zeroed_sector_in_middle_is_reported(void)
{
    size_t lens[20];
    for (int i = 0; i < 20; i++) {
        lens[i] = 4000;
    }
    uint64_t offs[21];
    CHECK_EQ_INT(write_log(path, lens, 20, 0, offs), LSM_OK);
    struct env_file *f;
    CHECK_EQ_INT(env_open_rw(path, &f, NULL), LSM_OK);
    char zeros[512] = {0};
    CHECK_EQ_INT(env_pwrite(f, zeros, sizeof(zeros), offs[3], NULL), LSM_OK);
    env_close(&f);
    int count;
    uint64_t end;
    bool torn;
    struct lsm_err err;
    CHECK_EQ_INT(read_log(path, lens, &count, &end, &torn, &err), LSM_CORRUPT);
    CHECK_EQ_INT(count, 3);
    CHECK(strstr(err.msg, "zeroed") != NULL);
    unlink(path);
}

static void test_wal_preallocated_and_group_commit(void)
{
    struct wal_writer_options opt = {.log_number = 9, .prealloc_bytes = 1 << 20};
    struct wal_writer *w;
    struct lsm_err err;
    CHECK_EQ_INT(wal_writer_create(path, &opt, &w, &err), LSM_OK);
    /* a group of batches: several records, one write, one sync */
    size_t lens[300];
    int n = 0;
    for (int g = 0; g < 30; g++) {
        for (int k = 0; k < 10; k++, n++) {
            lens[n] = (size_t)(rnd() % 3000);
            char buf[3000];
            fill_record(buf, lens[n], n);
            wal_writer_add(w, buf, lens[n]);
        }
        CHECK(wal_writer_pending(w) > 0);
        CHECK_EQ_INT(wal_writer_flush(w, &err), LSM_OK);
        CHECK_EQ_INT(wal_writer_pending(w), 0);
        CHECK_EQ_INT(wal_writer_sync(w, &err), LSM_OK);
    }
    /* read while the writer is open: the file is preallocated, its tail is zeros */
    struct env_file *f;
    CHECK_EQ_INT(env_open_read(path, &f, NULL), LSM_OK);
    CHECK_EQ_INT(f->size, 1 << 20);
    env_close(&f);
    int count;
    uint64_t end;
    bool torn;
    CHECK_EQ_INT(read_log(path, lens, &count, &end, &torn, &err), LSM_NOTFOUND);
    CHECK_EQ_INT(count, n);
    CHECK(!torn);
    CHECK_EQ_INT(end, wal_writer_flushed_offset(w));
    CHECK_EQ_INT(wal_writer_close(&w, true, &err), LSM_OK);
    CHECK_EQ_INT(env_open_read(path, &f, NULL), LSM_OK);
    CHECK_EQ_INT(f->size, end); /* close trims the preallocation */
    env_close(&f);
    unlink(path);
}

static void test_wal_fault_drop_unsynced_keeps_synced_records(void)
{
    CHECK_EQ_INT(env_sync_dir(dir, NULL), LSM_OK);
    env_fault_enable(true);
    struct wal_writer_options opt = {.log_number = 3, .prealloc_bytes = 64 << 10};
    struct wal_writer *w;
    struct lsm_err err;
    CHECK_EQ_INT(wal_writer_create(path, &opt, &w, &err), LSM_OK);
    CHECK_EQ_INT(env_sync_dir(dir, &err), LSM_OK);
    size_t lens[200];
    int synced = 0;
    for (int i = 0; i < 200; i++) {
        lens[i] = (size_t)(rnd() % 2000);
        char buf[2000];
        fill_record(buf, lens[i], i);
        CHECK_EQ_INT(wal_writer_append(w, buf, lens[i], &err), LSM_OK);
        if (i % 50 == 49 && i < 150) {
            CHECK_EQ_INT(wal_writer_sync(w, &err), LSM_OK);
            synced = i + 1;
        }
    }
    /* crash: whatever was not synced is lost */
    CHECK_EQ_INT(wal_writer_close(&w, false, &err), LSM_OK);
    CHECK(env_fault_drop_unsynced() >= 1);
    env_fault_enable(false);
    int count;
    uint64_t end;
    bool torn;
    CHECK_EQ_INT(read_log(path, lens, &count, &end, &torn, &err), LSM_NOTFOUND);
    CHECK_EQ_INT(count, synced);
    unlink(path);
}

static void test_wal_failed_sync_is_sticky(void)
{
    env_fault_enable(true);
    struct wal_writer_options opt = {.log_number = 1};
    struct wal_writer *w;
    struct lsm_err err;
    CHECK_EQ_INT(wal_writer_create(path, &opt, &w, &err), LSM_OK);
    CHECK_EQ_INT(wal_writer_append(w, "a", 1, &err), LSM_OK);
    env_fault_fail_sync(1);
    CHECK_EQ_INT(wal_writer_sync(w, &err), LSM_IOERR);
    CHECK_EQ_INT(wal_writer_append(w, "b", 1, &err), LSM_IOERR);
    CHECK(strstr(err.msg, "earlier") != NULL);
    CHECK_EQ_INT(wal_writer_sync(w, &err), LSM_IOERR);
    wal_writer_close(&w, false, NULL);
    env_fault_enable(false);
    unlink(path);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/kvd-wal-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/000007.log", dir);
    TEST_RUN(test_wal_roundtrip_sizes);
    TEST_RUN(test_wal_padding_at_every_block_tail);
    TEST_RUN(test_wal_empty_and_headerless_logs);
    TEST_RUN(test_wal_torn_tail_is_truncated);
    TEST_RUN(test_wal_torn_tail_with_garbage);
    TEST_RUN(test_wal_flipped_byte_in_middle_is_reported);
    TEST_RUN(test_wal_zeroed_sector_in_middle_is_reported);
    TEST_RUN(test_wal_preallocated_and_group_commit);
    TEST_RUN(test_wal_fault_drop_unsynced_keeps_synced_records);
    TEST_RUN(test_wal_failed_sync_is_sticky);
    rmdir(dir);
    TEST_MAIN_END();
}
