/* cluster/scan_test.c: the range step, the merge of replicas' pages, the SCAN and
 * FLUSH verbs on a fake store (bounds, token boundaries, bad arguments) and the
 * decoding of SCAN replies (scan.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/scan.h"
#include "tests/test.h"

/* ---- a fake store: records sorted by token ---- */

#define FS_MAX 64

static struct cluster_key fs[FS_MAX];
static size_t nfs;
static int fs_fail;
static int fs_flushed_db = -2;
static uint64_t fs_flushed_hlc;

static void fs_add(uint64_t token, const char *key, uint64_t hlc, int deleted, unsigned type) {
    struct cluster_key k = {token, key, strlen(key), {hlc, 1}, deleted, 0, type};
    size_t j = nfs++;
    while (j > 0 && fs[j - 1].token > token) {
        fs[j] = fs[j - 1];
        j--;
    }
    fs[j] = k;
}

static int fs_range(void *ctx, unsigned db, uint64_t from, uint64_t to, cluster_range_fn *fn,
                    void *arg) {
    (void)ctx;
    if (fs_fail || db > 15) {
        return -1;
    }
    for (size_t i = 0; i < nfs; i++) {
        if (fs[i].token >= from && (to == 0 || fs[i].token < to) && fn(arg, &fs[i])) {
            break;
        }
    }
    return 0;
}

static int fs_flush(void *ctx, int db, uint64_t hlc) {
    (void)ctx;
    fs_flushed_db = db;
    fs_flushed_hlc = hlc;
    return 0;
}

static const struct cluster_store st = {.range = fs_range, .flush = fs_flush};

static redisReply *parse(const struct msg_buf *b) {
    redisReader *r = redisReaderCreate();
    redisReaderFeed(r, b->p, b->len);
    void *reply = NULL;
    if (redisReaderGetReply(r, &reply) != REDIS_OK) {
        reply = NULL;
    }
    redisReaderFree(r);
    return reply;
}

/* Answers argv (words separated by spaces) with the fake store. */
static redisReply *ask(const char *line) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", line);
    struct kv_slice argv[16];
    size_t argc = 0;
    for (char *t = strtok(buf, " "); t && argc < 16; t = strtok(NULL, " ")) {
        argv[argc++] = (struct kv_slice){t, strlen(t)};
    }
    struct msg_buf out = {0};
    scan_peer_answer(&st, argv, argc, &out);
    redisReply *r = parse(&out);
    msg_buf_free(&out);
    return r;
}

static void test_scan_range_end_is_the_owning_vnode_plus_one(void) {
    uint64_t ta[] = {10, 30}, tb[] = {20}, tc[] = {UINT64_MAX};
    struct ring_member ms[3] = {0};
    strcpy(ms[0].id, "A"), ms[0].tag = 1, ms[0].tokens = ta, ms[0].ntokens = 2;
    strcpy(ms[1].id, "B"), ms[1].tag = 2, ms[1].tokens = tb, ms[1].ntokens = 1;
    strcpy(ms[2].id, "C"), ms[2].tag = 3, ms[2].tokens = tc, ms[2].ntokens = 2 - 1;
    struct ring r;
    CHECK_EQ_INT(ring_build(&r, ms, 3, NULL, 0), RING_OK);
    CHECK(scan_range_end(&r, 0) == 11);   /* (max, 10] wraps: [0, 11) */
    CHECK(scan_range_end(&r, 10) == 11);
    CHECK(scan_range_end(&r, 11) == 21);  /* (10, 20] */
    CHECK(scan_range_end(&r, 25) == 31);
    CHECK(scan_range_end(&r, 31) == 0);   /* (30, max]: to the ring's end */
    CHECK(scan_range_end(&r, UINT64_MAX) == 0);
    ring_destroy(&r);
    /* without a vnode at the top, the tail past the last token is its own step */
    ms[2].tokens = (uint64_t[]){40};
    CHECK_EQ_INT(ring_build(&r, ms, 3, NULL, 0), RING_OK);
    CHECK(scan_range_end(&r, 41) == 0);
    CHECK(scan_range_end(&r, 40) == 41);
    ring_destroy(&r);
    struct ring empty = {0};
    CHECK(scan_range_end(&empty, 5) == 0);
}

static void test_scan_merge_keeps_the_newest_below_the_smallest_next(void) {
    struct scan_page a = {0}, b = {0}, out;
    struct cluster_key k1 = {5, "x", 1, {100, 1}, 0, 0, 0};
    struct cluster_key k1new = {5, "x", 1, {200, 2}, 1, 0, 0}; /* newer: a tombstone */
    struct cluster_key k2 = {7, "y", 1, {100, 1}, 0, 0, 4};
    struct cluster_key k3 = {9, "z", 1, {100, 1}, 0, 0, 0}; /* beyond b's next */
    struct cluster_key k0 = {5, "w", 1, {50, 1}, 0, 0, 0};  /* same token, other key */
    scan_page_add(&a, &k1);
    scan_page_add(&a, &k2);
    scan_page_add(&a, &k3);
    a.next = 0; /* a went to the range's end */
    scan_page_add(&b, &k0);
    scan_page_add(&b, &k1new);
    b.next = 8; /* b stopped at token 8 */
    struct scan_page pages[2] = {a, b};
    scan_merge(pages, 2, &out);
    CHECK(out.next == 8);
    CHECK_EQ_INT(out.n, 3);
    CHECK_EQ_MEM(out.keys[0].key, out.keys[0].klen, "w", 1);
    CHECK_EQ_MEM(out.keys[1].key, out.keys[1].klen, "x", 1);
    CHECK(out.keys[1].deleted && out.keys[1].v.hlc == 200); /* the newest copy */
    CHECK_EQ_MEM(out.keys[2].key, out.keys[2].klen, "y", 1);
    CHECK_EQ_INT(out.keys[2].type, 4);
    scan_page_free(&out);
    /* one page: itself; no page: nothing, next 0 */
    scan_merge(pages, 1, &out);
    CHECK(out.next == 0 && out.n == 3);
    scan_page_free(&out);
    scan_merge(pages, 0, &out);
    CHECK(out.next == 0 && out.n == 0);
    scan_page_free(&a);
    scan_page_free(&b);
}

static void test_peer_scan_stops_at_count_on_a_token_boundary(void) {
    nfs = 0;
    fs_add(10, "a", 1, 0, 0);
    fs_add(20, "b1", 1, 0, 0);
    fs_add(20, "b2", 1, 1, 0); /* the same token: never split */
    fs_add(30, "c", 1, 0, 4);
    redisReply *r = ask("KVD.PEER SCAN 0 0 0 2");
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 4);
    struct scan_page pg;
    CHECK_EQ_INT(scan_reply_decode(r, 0, 0, &pg, NULL, 0), MSG_OK);
    CHECK(pg.next == 30);
    CHECK_EQ_INT(pg.n, 3);
    CHECK(pg.keys[2].deleted && pg.keys[2].token == 20);
    scan_page_free(&pg);
    freeReplyObject(r);
    /* the rest, to the range's end */
    r = ask("KVD.PEER SCAN 0 30 0 2");
    CHECK_EQ_INT(scan_reply_decode(r, 30, 0, &pg, NULL, 0), MSG_OK);
    CHECK(pg.next == 0 && pg.n == 1 && pg.keys[0].type == 4);
    scan_page_free(&pg);
    freeReplyObject(r);
    /* a bounded range: next is its end */
    r = ask("KVD.PEER SCAN 0 11 25 100");
    CHECK_EQ_INT(scan_reply_decode(r, 11, 25, &pg, NULL, 0), MSG_OK);
    CHECK(pg.next == 25 && pg.n == 2);
    scan_page_free(&pg);
    freeReplyObject(r);
    /* scan_local gives the same page */
    CHECK_EQ_INT(scan_local(&st, 0, 0, 0, 1, &pg), 0);
    CHECK(pg.next == 20 && pg.n == 1);
    scan_page_free(&pg);
}

static void test_peer_scan_and_flush_refuse_bad_arguments(void) {
    const char *bad[] = {
        "KVD.PEER SCAN 0 0 0",                      /* too few */
        "KVD.PEER SCAN 0 0 0 10 extra",             /* too many */
        "KVD.PEER SCAN 65536 0 0 10",               /* db */
        "KVD.PEER SCAN -1 0 0 10",
        "KVD.PEER SCAN 01 0 0 10",
        "KVD.PEER SCAN 16 0 0 10",                  /* the store has no such db */
        "KVD.PEER SCAN 0 5 5 10",                   /* empty range */
        "KVD.PEER SCAN 0 9 3 10",
        "KVD.PEER SCAN 0 18446744073709551616 0 10", /* 2^64 */
        "KVD.PEER SCAN 0 0 0 0",
        "KVD.PEER SCAN 0 0 0 10001",
        "KVD.PEER SCAN 0 0 0 ten",
        "KVD.PEER FLUSH 0",
        "KVD.PEER FLUSH zero 5",
        "KVD.PEER FLUSH 0 0",
        "KVD.PEER FLUSH 0 5 6",
        "KVD.PEER FLUSH 70000 5",
        "KVD.PEER NOSUCH 0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        redisReply *r = ask(bad[i]);
        if (!(r && r->type == REDIS_REPLY_ERROR)) {
            TEST_FAIL_AT("not refused: %s", bad[i]);
        }
        freeReplyObject(r);
    }
    fs_fail = 1;
    redisReply *r = ask("KVD.PEER SCAN 0 0 0 10");
    CHECK(r && r->type == REDIS_REPLY_ERROR);
    freeReplyObject(r);
    fs_fail = 0;
    CHECK_EQ_INT(fs_flushed_db, -2); /* no refused FLUSH reached the store */
    r = ask("KVD.PEER FLUSH ALL 12345");
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    CHECK_EQ_INT(fs_flushed_db, -1);
    CHECK(fs_flushed_hlc == 12345);
    freeReplyObject(r);
    r = ask("KVD.PEER FLUSH 3 99");
    CHECK(r && r->type == REDIS_REPLY_INTEGER);
    CHECK_EQ_INT(fs_flushed_db, 3);
    freeReplyObject(r);
    /* a store without the callbacks */
    struct cluster_store none = {0};
    struct kv_slice argv[6] = {{"KVD.PEER", 8}, {"SCAN", 4}, {"0", 1}, {"0", 1}, {"0", 1},
                               {"5", 1}};
    struct msg_buf out = {0};
    scan_peer_answer(&none, argv, 6, &out);
    CHECK(out.len > 0 && out.p[0] == '-');
    msg_buf_free(&out);
}

static redisReply *reply_of(const char *resp) {
    struct msg_buf b = {(char *)resp, strlen(resp), strlen(resp)};
    return parse(&b);
}

static void test_scan_reply_decode_checks_every_item(void) {
    struct scan_page pg;
    const char *bad[] = {
        "*0\r\n",                                   /* no next */
        ":5\r\n",                                   /* not an array */
        "*1\r\n$2\r\n05\r\n",                       /* leading zero */
        "*1\r\n$3\r\n100\r\n",                      /* next beyond to (50) */
        "*1\r\n$1\r\n5\r\n",                        /* next <= from (10) */
        "*2\r\n$2\r\n20\r\n$3\r\nabc\r\n",          /* item too short */
        "*2\r\n$2\r\n20\r\n:1\r\n",                 /* item not a string */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        redisReply *r = reply_of(bad[i]);
        if (r == NULL || scan_reply_decode(r, 10, 50, &pg, NULL, 0) != MSG_INVALID) {
            TEST_FAIL_AT("accepted: %zu", i);
        }
        if (r) {
            freeReplyObject(r);
        }
    }
    redisReply *r = reply_of("-ERR busy\r\n");
    char err[64];
    CHECK_EQ_INT(scan_reply_decode(r, 10, 50, &pg, err, sizeof err), MSG_REMOTE);
    CHECK_EQ_STR(err, "ERR busy");
    freeReplyObject(r);
    /* an item whose token is out of [from, next) */
    nfs = 0;
    fs_add(40, "late", 1, 0, 0);
    r = ask("KVD.PEER SCAN 0 0 0 10");
    CHECK_EQ_INT(scan_reply_decode(r, 0, 0, &pg, NULL, 0), MSG_OK);
    scan_page_free(&pg);
    CHECK_EQ_INT(scan_reply_decode(r, 41, 0, &pg, NULL, 0), MSG_INVALID);
    freeReplyObject(r);
    r = reply_of("*1\r\n$1\r\n0\r\n"); /* the end of the ring */
    CHECK_EQ_INT(scan_reply_decode(r, 10, 0, &pg, NULL, 0), MSG_OK);
    CHECK(pg.next == 0 && pg.n == 0);
    freeReplyObject(r);
}

int main(void) {
    TEST_RUN(test_scan_range_end_is_the_owning_vnode_plus_one);
    TEST_RUN(test_scan_merge_keeps_the_newest_below_the_smallest_next);
    TEST_RUN(test_peer_scan_stops_at_count_on_a_token_boundary);
    TEST_RUN(test_peer_scan_and_flush_refuse_bad_arguments);
    TEST_RUN(test_scan_reply_decode_checks_every_item);
    TEST_MAIN_END();
}
