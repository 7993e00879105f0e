/* cluster/hintlog_test.c: the hint log (cluster/hintlog.c) on real files in a
 * temporary directory: hints come back after a "restart" (a new hint store loading
 * the directory) in order with their ages; a torn tail and a bad checksum are
 * skipped and counted, never fatal; a drained target's file is truncated to its
 * header; delivered records are rewritten away; the window and size bounds apply
 * at load. */
#include "cluster/fields.h"
#include "cluster/hintlog.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test.h"

static char dirbuf[256];
static int log_lines;

static void count_log(void *ctx, const char *msg) {
    (void)ctx;
    (void)msg;
    log_lines++;
}

static const char *fresh_dir(void) {
    snprintf(dirbuf, sizeof dirbuf, "/tmp/kvd-hintlog-test.XXXXXX");
    if (mkdtemp(dirbuf) == NULL) {
        abort();
    }
    return dirbuf;
}

static void remove_dir(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
}

static long file_size(const char *dir, uint32_t target) {
    char path[512];
    snprintf(path, sizeof path, "%s/%08x.log", dir, target);
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static struct msg_record rec(uint64_t hlc, const char *val) {
    return (struct msg_record){{hlc, 1}, 0, 0, val, strlen(val)};
}

/* a node's hint store with its log open on dir, loaded */
static struct hints *start(const char *dir, struct hintlog **l, uint64_t now, int64_t off,
                           size_t *loaded) {
    char err[256];
    struct hints *h = hints_create(60000, 1 << 20);
    *l = hintlog_open(dir, count_log, NULL, err, sizeof err);
    if (*l == NULL) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    size_t n = hintlog_load(*l, h, now, off);
    if (loaded) {
        *loaded = n;
    }
    return h;
}

static void stop(struct hints **h, struct hintlog **l) {
    hintlog_close(l);
    hints_destroy(h);
}

/* three hints for 7 (a, b, c) and one for 8, flushed; created at mono 100.. */
static void write_four(const char *dir, int64_t off) {
    struct hintlog *l;
    struct hints *h = start(dir, &l, 100, off, NULL);
    struct msg_record r1 = rec(1, "one"), r2 = rec(2, "two"), r3 = rec(3, "three");
    struct msg_record tomb = {{4, 2}, 1, 0, NULL, 0};
    r2.expire_at = 123456789;
    hints_add(h, 7, 100, 0, "a", 1, &r1);
    hints_add(h, 7, 101, 3, "b", 1, &r2);
    hints_add(h, 8, 102, 65535, "", 0, &tomb);
    hints_add(h, 7, 103, 0, "c", 1, &r3);
    hintlog_flush(l, h, off);
    stop(&h, &l);
}

static void test_hintlog_hints_come_back_in_order_after_a_restart(void) {
    const char *dir = fresh_dir();
    write_four(dir, 1000000); /* wall = mono + 1000000 */
    /* the restarted node's monotonic clock starts again low: the age counts */
    struct hintlog *l;
    size_t loaded;
    struct hints *h = start(dir, &l, 50, 1000000 + 103 - 50 + 10, &loaded);
    CHECK_EQ_INT(loaded, 4);
    CHECK_EQ_INT(hints_pending(h, 7), 3);
    CHECK_EQ_INT(hints_pending(h, 8), 1);
    const struct hint *a = hints_peek(h, 7, 0), *b = hints_peek(h, 7, 1), *c = hints_peek(h, 7, 2);
    CHECK_EQ_MEM(a->key, a->klen, "a", 1);
    CHECK_EQ_MEM(a->rec.val, a->rec.vlen, "one", 3);
    CHECK_EQ_MEM(b->key, b->klen, "b", 1);
    CHECK_EQ_INT(b->db, 3);
    CHECK_EQ_INT(b->rec.expire_at, 123456789);
    CHECK_EQ_INT(b->rec.v.hlc, 2);
    CHECK_EQ_MEM(c->key, c->klen, "c", 1);
    CHECK_EQ_INT(c->created_ms, 40); /* 10 ms old at load */
    CHECK_EQ_INT(a->created_ms, 37);
    const struct hint *t = hints_peek(h, 8, 0);
    CHECK_EQ_INT(t->db, 65535);
    CHECK_EQ_INT(t->klen, 0);
    CHECK(t->rec.deleted);
    CHECK_EQ_INT(t->rec.v.node, 2);
    CHECK_EQ_INT(hintlog_stats(l)->skipped, 0);
    stop(&h, &l);
    /* and again: the load rewrote the files, nothing doubled */
    h = start(dir, &l, 60, 1000000 + 103 - 50 + 10, &loaded);
    CHECK_EQ_INT(loaded, 4);
    CHECK_EQ_INT(hints_pending(h, 7), 3);
    stop(&h, &l);
    remove_dir(dir);
}

static void flip_byte(const char *dir, uint32_t target, long at_from_end) {
    char path[512];
    snprintf(path, sizeof path, "%s/%08x.log", dir, target);
    int fd = open(path, O_RDWR);
    struct stat sb;
    fstat(fd, &sb);
    unsigned char c;
    off_t at = sb.st_size - at_from_end;
    if (pread(fd, &c, 1, at) != 1) {
        abort();
    }
    c ^= 0x55;
    if (pwrite(fd, &c, 1, at) != 1) {
        abort();
    }
    close(fd);
}

static void test_hintlog_torn_tail_is_skipped_and_the_rest_loads(void) {
    const char *dir = fresh_dir();
    write_four(dir, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/%08x.log", dir, 7u);
    long size = file_size(dir, 7);
    CHECK(size > HINTLOG_HEADER);
    CHECK(truncate(path, size - 3) == 0); /* the last record ("c") torn */
    struct hintlog *l;
    size_t loaded;
    log_lines = 0;
    struct hints *h = start(dir, &l, 200, 0, &loaded);
    CHECK_EQ_INT(loaded, 3);
    CHECK_EQ_INT(hints_pending(h, 7), 2);
    CHECK_EQ_MEM(hints_peek(h, 7, 1)->key, 1, "b", 1);
    CHECK_EQ_INT(hintlog_stats(l)->skipped, 1);
    CHECK_EQ_INT(log_lines, 1);
    stop(&h, &l);
    /* the load rewrote the file whole: a second start sees no damage */
    log_lines = 0;
    h = start(dir, &l, 200, 0, &loaded);
    CHECK_EQ_INT(loaded, 3);
    CHECK_EQ_INT(hintlog_stats(l)->skipped, 0);
    CHECK_EQ_INT(log_lines, 0);
    stop(&h, &l);
    /* a file cut inside its header: skipped, nothing for that target */
    CHECK(truncate(path, 5) == 0);
    log_lines = 0;
    h = start(dir, &l, 200, 0, &loaded);
    CHECK_EQ_INT(loaded, 1);
    CHECK_EQ_INT(hints_pending(h, 7), 0);
    CHECK_EQ_INT(log_lines, 1);
    stop(&h, &l);
    remove_dir(dir);
}

static void test_hintlog_bad_checksum_skips_that_record_only(void) {
    const char *dir = fresh_dir();
    write_four(dir, 0);
    /* records of 7: a (26+1+21+3), b (26+1+21+3), c (26+1+21+5): a byte of b's value */
    flip_byte(dir, 7, (26 + 1 + 21 + 5) + 1);
    struct hintlog *l;
    size_t loaded;
    log_lines = 0;
    struct hints *h = start(dir, &l, 200, 0, &loaded);
    CHECK_EQ_INT(loaded, 3);
    CHECK_EQ_INT(hints_pending(h, 7), 2);
    CHECK_EQ_MEM(hints_peek(h, 7, 0)->key, 1, "a", 1);
    CHECK_EQ_MEM(hints_peek(h, 7, 1)->key, 1, "c", 1);
    CHECK_EQ_INT(hintlog_stats(l)->skipped, 1);
    CHECK_EQ_INT(log_lines, 1);
    stop(&h, &l);
    remove_dir(dir);
}

static void test_hintlog_drained_target_is_truncated_to_its_header(void) {
    const char *dir = fresh_dir();
    write_four(dir, 0);
    struct hintlog *l;
    struct hints *h = start(dir, &l, 200, 0, NULL);
    CHECK(file_size(dir, 7) > HINTLOG_HEADER);
    /* deliver 7's hints one by one: the file stays until the last */
    CHECK_EQ_INT(hints_ack(h, 7, hints_peek(h, 7, 0)->seq), HINTS_OK);
    CHECK_EQ_INT(hints_ack(h, 7, hints_peek(h, 7, 0)->seq), HINTS_OK);
    CHECK(file_size(dir, 7) > HINTLOG_HEADER);
    CHECK_EQ_INT(hints_ack(h, 7, hints_peek(h, 7, 0)->seq), HINTS_OK);
    CHECK_EQ_INT(file_size(dir, 7), HINTLOG_HEADER);
    CHECK_EQ_INT(hintlog_stats(l)->truncations, 1);
    /* a hint added and delivered before any flush never reaches the file */
    struct msg_record r = rec(9, "nine");
    hints_add(h, 7, 300, 0, "n", 1, &r);
    CHECK_EQ_INT(hints_ack(h, 7, hints_peek(h, 7, 0)->seq), HINTS_OK);
    hintlog_flush(l, h, 0);
    CHECK_EQ_INT(file_size(dir, 7), HINTLOG_HEADER);
    /* expired hints drain target 8 the same way */
    hints_expire(h, 102 + 60000);
    CHECK_EQ_INT(file_size(dir, 8), HINTLOG_HEADER);
    stop(&h, &l);
    size_t loaded;
    h = start(dir, &l, 400, 0, &loaded);
    CHECK_EQ_INT(loaded, 0);
    stop(&h, &l);
    remove_dir(dir);
}

static void test_hintlog_delivered_records_are_rewritten_away(void) {
    const char *dir = fresh_dir();
    struct hintlog *l;
    struct hints *h = start(dir, &l, 0, 0, NULL);
    hintlog_set_rewrite_min(l, 200);
    struct msg_record r = rec(1, "0123456789");
    char key[8];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        hints_add(h, 7, 10 + (uint64_t)i, 0, key, 2, &r);
    }
    hintlog_flush(l, h, 0);
    long full = file_size(dir, 7);
    CHECK_EQ_INT(full, HINTLOG_HEADER + 10 * (26 + 2 + 21 + 10));
    for (int i = 0; i < 6; i++) { /* 6 x 59 dead > 200 and > 4 x 59 live */
        CHECK_EQ_INT(hints_ack(h, 7, hints_peek(h, 7, 0)->seq), HINTS_OK);
    }
    CHECK_EQ_INT(file_size(dir, 7), full); /* until the flush */
    hintlog_flush(l, h, 0);
    CHECK_EQ_INT(file_size(dir, 7), HINTLOG_HEADER + 4 * (26 + 2 + 21 + 10));
    CHECK_EQ_INT(hintlog_stats(l)->rewrites, 1);
    /* appends after the rewrite go to the new file */
    hints_add(h, 7, 20, 0, "zz", 2, &r);
    hintlog_flush(l, h, 0);
    stop(&h, &l);
    size_t loaded;
    h = start(dir, &l, 30, 0, &loaded);
    CHECK_EQ_INT(loaded, 5);
    CHECK_EQ_MEM(hints_peek(h, 7, 0)->key, 2, "k6", 2);
    CHECK_EQ_MEM(hints_peek(h, 7, 4)->key, 2, "zz", 2);
    stop(&h, &l);
    remove_dir(dir);
}

static void test_hintlog_load_applies_the_window_and_the_size_bound(void) {
    const char *dir = fresh_dir();
    write_four(dir, 0); /* created (wall) 100..103 */
    char err[256];
    /* window 60 s: at wall 60101 the hints created at 100 and 101 are out */
    struct hints *h = hints_create(60000, 1 << 20);
    struct hintlog *l = hintlog_open(dir, count_log, NULL, err, sizeof err);
    CHECK(l != NULL);
    CHECK_EQ_INT(hintlog_load(l, h, 60101, 0), 2);
    CHECK_EQ_INT(h->stats.dropped_window, 2);
    stop(&h, &l);
    remove_dir(dir);
    dir = fresh_dir();
    write_four(dir, 0);
    /* room for two hints of 7 ("one", "two": 64 + 1 + 3 each) only */
    h = hints_create(60000, 2 * (HINT_OVERHEAD + 4));
    l = hintlog_open(dir, count_log, NULL, err, sizeof err);
    CHECK_EQ_INT(hintlog_load(l, h, 200, 0), 2);
    CHECK(h->stats.dropped_bytes >= 1);
    stop(&h, &l);
    remove_dir(dir);
}

static void test_hintlog_garbage_files_never_crash(void) {
    const char *dir = fresh_dir();
    char path[512];
    unsigned char junk[4096];
    uint64_t x = 88172645463325252ull;
    for (int round = 0; round < 50; round++) {
        size_t n = (size_t)(round * 37) % sizeof junk;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            junk[i] = (unsigned char)x;
        }
        if (round % 2 == 0 && n >= 9) { /* a good header, garbage records */
            memcpy(junk, "KVHL\x01\x00\x00\x00\x07", 9);
        }
        snprintf(path, sizeof path, "%s/%08x.log", dir, 7u);
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL);
        fwrite(junk, 1, n, f);
        fclose(f);
        struct hintlog *l;
        struct hints *h = start(dir, &l, 1000, 0, NULL);
        stop(&h, &l);
    }
    remove_dir(dir);
}

static void set_header_version(const char *dir, uint32_t target, unsigned char v) {
    char path[512];
    snprintf(path, sizeof path, "%s/%08x.log", dir, target);
    int fd = open(path, O_RDWR);
    if (fd < 0 || pwrite(fd, &v, 1, 4) != 1) {
        abort();
    }
    close(fd);
}

/* A big hash's field records survive the log; a version 1 log (plain records)
 * still loads; a version from the future is skipped whole. */
static void test_hintlog_field_records_and_versions(void) {
    const char *dir = fresh_dir();
    struct hintlog *l;
    struct hints *h = start(dir, &l, 100, 0, NULL);
    struct msg_buf fv = {0};
    fields_put_head(&fv, (struct kv_version){1, 1}, 1);
    struct fields_entry e = {{5, 1}, 0, "f", 1, "v", 1};
    fields_put(&fv, &e);
    struct msg_record fr = {.v = {5, 1}, .val = fv.p, .vlen = fv.len, .fields = 1};
    CHECK_EQ_INT(hints_add(h, 9, 100, 0, "h", 1, &fr), HINTS_OK);
    hintlog_flush(l, h, 0);
    stop(&h, &l);
    size_t loaded;
    h = start(dir, &l, 200, 0, &loaded);
    CHECK_EQ_INT(loaded, 1);
    const struct hint *x = hints_peek(h, 9, 0);
    CHECK(x != NULL && x->rec.fields == 1 && x->rec.vlen == fv.len &&
          memcmp(x->rec.val, fv.p, fv.len) == 0);
    stop(&h, &l);
    write_four(dir, 0);
    set_header_version(dir, 7, 1);
    h = start(dir, &l, 200, 0, &loaded);
    CHECK_EQ_INT(hints_pending(h, 7), 3);
    stop(&h, &l);
    set_header_version(dir, 7, 3);
    log_lines = 0;
    h = start(dir, &l, 200, 0, &loaded);
    CHECK_EQ_INT(hints_pending(h, 7), 0);
    CHECK_EQ_INT(log_lines, 1);
    stop(&h, &l);
    msg_buf_free(&fv);
    remove_dir(dir);
}

int main(void) {
    TEST_RUN(test_hintlog_field_records_and_versions);
    TEST_RUN(test_hintlog_hints_come_back_in_order_after_a_restart);
    TEST_RUN(test_hintlog_torn_tail_is_skipped_and_the_rest_loads);
    TEST_RUN(test_hintlog_bad_checksum_skips_that_record_only);
    TEST_RUN(test_hintlog_drained_target_is_truncated_to_its_header);
    TEST_RUN(test_hintlog_delivered_records_are_rewritten_away);
    TEST_RUN(test_hintlog_load_applies_the_window_and_the_size_bound);
    TEST_RUN(test_hintlog_garbage_files_never_crash);
    TEST_MAIN_END();
}
