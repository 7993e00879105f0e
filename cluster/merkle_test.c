/* cluster/merkle_test.c: Merkle trees over token ranges (merkle.h): the leaves
 * tile the range, equal data gives equal trees whatever the order within a
 * token, one differing record changes exactly its leaf, folding equals building
 * shallower, and the MERKLE verb and its reply decoder refuse malformed input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/fake_store_test.h"
#include "cluster/merkle.h"
#include "tests/test.h"

static redisReply *parse_reply(const struct msg_buf *b) {
    redisReader *rd = redisReaderCreate();
    redisReaderFeed(rd, b->p, b->len);
    void *r = NULL;
    if (redisReaderGetReply(rd, &r) != REDIS_OK) {
        r = NULL;
    }
    redisReaderFree(rd);
    return r;
}

/* argv from words: KVD.PEER MERKLE ... */
static size_t words(struct kv_slice *argv, const char *const *w) {
    size_t n = 0;
    for (; w[n]; n++) {
        argv[n] = (struct kv_slice){w[n], strlen(w[n])};
    }
    return n;
}

static void fill(struct fstore *s, int nkeys, int reverse) {
    for (int i = 0; i < nkeys; i++) {
        int k = reverse ? nkeys - 1 - i : i;
        char key[32];
        snprintf(key, sizeof key, "key:%d", k);
        fs_put(s, (unsigned)(k % 3), key, 1000 + (uint64_t)k, 1, k % 17 == 0);
    }
}

static void check_tiling(uint64_t from, uint64_t to, unsigned depth) {
    struct merkle m;
    CHECK(merkle_init(&m, from, to, depth) == 0);
    uint64_t expect = from;
    int ended = 0;
    for (size_t i = 0; i < ((size_t)1 << depth); i++) {
        uint64_t lo, hi;
        if (merkle_leaf_range(&m, i, &lo, &hi) != 0) {
            ended = 1;
            continue;
        }
        CHECK(!ended); /* the empty leaves are the last ones */
        CHECK(lo == expect);
        CHECK(merkle_leaf_of(&m, lo) == i);
        if (hi != to) {
            CHECK(merkle_leaf_of(&m, hi - 1) == i);
            CHECK(merkle_leaf_of(&m, hi) == i + 1);
        }
        expect = hi;
    }
    CHECK(expect == to); /* the last leaf ends the range */
    merkle_free(&m);
}

static void test_merkle_leaves_tile_the_range(void) {
    check_tiling(0, 0, 0);     /* the whole ring, root only */
    check_tiling(0, 0, 16);
    check_tiling(1000, 2000, 2);
    check_tiling(1000, 2000, 16); /* more leaves than tokens */
    check_tiling(5, 6, 3);
    check_tiling(UINT64_MAX - 100, 0, 4); /* to the ring's end */
    check_tiling(12345, 0, 7);
    check_tiling(0, 1ull << 63, 5);
    struct merkle m;
    CHECK(merkle_init(&m, 10, 10, 1) == -1);
    CHECK(merkle_init(&m, 10, 5, 1) == -1);
    CHECK(merkle_init(&m, 0, 0, MERKLE_MAX_DEPTH + 1) == -1);
}

static void test_merkle_equal_data_equal_roots_any_order(void) {
    struct fstore a = {0}, b = {0};
    fill(&a, 500, 0);
    fill(&b, 500, 1); /* the same records inserted in the other order */
    struct cluster_store sa = fs_store(&a), sb = fs_store(&b);
    struct merkle ta, tb;
    CHECK(merkle_build(&sa, 0, 0, 10, &ta) == 0);
    CHECK(merkle_build(&sb, 0, 0, 10, &tb) == 0);
    CHECK_EQ_INT(ta.nkeys, 500);
    CHECK(merkle_root(&ta) == merkle_root(&tb));
    CHECK(merkle_root(&ta) != 0);
    uint64_t leaves[1024];
    size_t diff[1024];
    for (size_t i = 0; i < 1024; i++) {
        leaves[i] = merkle_leaf_hash(&tb, i);
    }
    CHECK_EQ_INT(merkle_diff(&ta, leaves, diff), 0);
    merkle_free(&ta);
    merkle_free(&tb);
    fs_free(&a);
    fs_free(&b);
}

/* one record changes in version, tombstone flag, value's expiry, db: exactly the
 * leaf holding its token differs */
static void test_merkle_one_differing_record_one_leaf(void) {
    for (int change = 0; change < 4; change++) {
        struct fstore a = {0}, b = {0};
        fill(&a, 800, 0);
        fill(&b, 800, 0);
        const char *key = "key:123";
        struct fs_rec *e = fs_find(&b, 123 % 3, key, strlen(key));
        CHECK(e != NULL);
        if (change == 0) {
            e->rec.v.hlc++;
        } else if (change == 1) {
            e->rec.deleted = 1;
        } else if (change == 2) {
            e->rec.expire_at = 99;
        } else {
            e->db = 7;
        }
        struct cluster_store sa = fs_store(&a), sb = fs_store(&b);
        struct merkle ta, tb;
        unsigned depth = merkle_depth_for(800);
        CHECK((800u >> depth) <= MERKLE_LEAF_KEYS && (800u >> (depth - 1)) > MERKLE_LEAF_KEYS);
        CHECK(merkle_build(&sa, 0, 0, depth, &ta) == 0);
        CHECK(merkle_build(&sb, 0, 0, depth, &tb) == 0);
        CHECK(merkle_root(&ta) != merkle_root(&tb));
        size_t n = (size_t)1 << depth;
        uint64_t *leaves = cl_malloc(n * sizeof *leaves);
        size_t *diff = cl_malloc(n * sizeof *diff);
        for (size_t i = 0; i < n; i++) {
            leaves[i] = merkle_leaf_hash(&tb, i);
        }
        size_t nd = merkle_diff(&ta, leaves, diff);
        size_t want = merkle_leaf_of(&ta, ring_key_token(key, strlen(key)));
        free(leaves);
        merkle_free(&ta);
        merkle_free(&tb);
        fs_free(&a);
        fs_free(&b);
        CHECK_EQ_INT(nd, 1);
        CHECK_EQ_INT(diff[0], want);
        free(diff);
    }
}

/* a big hash's record: one version, other fields (its content digest) -> another
 * hash; the digest of a tombstone is no part of it */
static void test_merkle_record_hash_covers_the_digest(void) {
    struct cluster_key k = {ring_key_token("h", 1), "h", 1, {6, 1}, 0, 0, 4, 0, 0};
    uint64_t plain = merkle_record_hash(&k);
    k.digest = 0x1234;
    uint64_t d1 = merkle_record_hash(&k);
    k.digest = 0x1235;
    uint64_t d2 = merkle_record_hash(&k);
    CHECK(plain != d1 && d1 != d2 && plain != d2);
    k.deleted = 1;
    uint64_t t1 = merkle_record_hash(&k);
    k.digest = 0;
    CHECK_EQ_INT(merkle_record_hash(&k), t1);
}

static void test_merkle_fold_equals_a_shallower_build(void) {
    struct fstore a = {0};
    fill(&a, 300, 0);
    struct cluster_store sa = fs_store(&a);
    uint64_t from = 1ull << 60, to = 3ull << 62;
    struct merkle deep, shallow, folded;
    CHECK(merkle_build(&sa, from, to, MERKLE_MAX_DEPTH, &deep) == 0);
    for (unsigned d = 0; d <= 9; d += 3) {
        CHECK(merkle_build(&sa, from, to, d, &shallow) == 0);
        merkle_fold(&deep, d, &folded);
        CHECK_EQ_INT(folded.nkeys, shallow.nkeys);
        for (size_t i = 0; i < ((size_t)1 << d); i++) {
            CHECK(merkle_leaf_hash(&folded, i) == merkle_leaf_hash(&shallow, i));
        }
        CHECK(merkle_root(&folded) == merkle_root(&deep));
        merkle_free(&shallow);
        merkle_free(&folded);
    }
    CHECK(deep.nkeys > 0 && deep.nkeys < 300); /* only the range's records */
    merkle_free(&deep);
    fs_free(&a);
}

static void test_merkle_depth_bounds_keys_per_leaf(void) {
    CHECK_EQ_INT(merkle_depth_for(0), 0);
    CHECK_EQ_INT(merkle_depth_for(MERKLE_LEAF_KEYS), 0);
    CHECK_EQ_INT(merkle_depth_for(MERKLE_LEAF_KEYS + 1), 1);
    CHECK_EQ_INT(merkle_depth_for(1000000), 17 > MERKLE_MAX_DEPTH ? MERKLE_MAX_DEPTH : 17);
    CHECK_EQ_INT(merkle_depth_for(UINT64_MAX), MERKLE_MAX_DEPTH);
    for (uint64_t n = 1; n < 100000; n = n * 3 + 1) {
        unsigned d = merkle_depth_for(n);
        CHECK((n >> d) <= MERKLE_LEAF_KEYS || d == MERKLE_MAX_DEPTH);
    }
}

/* the verb end to end: the reply decodes to the replica's own tree */
static void test_merkle_verb_answers_the_tree(void) {
    struct fstore a = {0};
    fill(&a, 200, 0);
    struct cluster_store sa = fs_store(&a);
    struct msg_argv req;
    merkle_encode_request(&req, 0, 0, 5);
    struct kv_slice argv[8];
    for (int i = 0; i < req.argc; i++) {
        argv[i] = (struct kv_slice){req.argv[i], req.argvlen[i]};
    }
    struct msg_buf out = {0};
    merkle_peer_answer(&sa, argv, (size_t)req.argc, &out);
    msg_argv_free(&req);
    redisReply *r = parse_reply(&out);
    msg_buf_free(&out);
    CHECK(r != NULL);
    uint64_t leaves[32], nkeys;
    char err[128];
    CHECK_EQ_INT(merkle_reply_decode(r, 5, leaves, &nkeys, err, sizeof err), MSG_OK);
    CHECK_EQ_INT(merkle_reply_decode(r, 4, leaves, &nkeys, err, sizeof err), MSG_INVALID);
    freeReplyObject(r);
    CHECK_EQ_INT(nkeys, 200);
    struct merkle t;
    CHECK(merkle_build(&sa, 0, 0, 5, &t) == 0);
    size_t diff[32];
    CHECK_EQ_INT(merkle_diff(&t, leaves, diff), 0);
    merkle_free(&t);
    fs_free(&a);
}

/* malformed requests get an error reply; a failing store too */
static void test_merkle_verb_refuses_garbage(void) {
    static const char *const bad[][8] = {
        {"KVD.PEER", "MERKLE", "0", "0", NULL},            /* too few */
        {"KVD.PEER", "MERKLE", "0", "0", "1", "2", NULL},  /* too many */
        {"KVD.PEER", "MERKLE", "-1", "0", "3", NULL},      /* sign */
        {"KVD.PEER", "MERKLE", "10", "5", "3", NULL},      /* to < from */
        {"KVD.PEER", "MERKLE", "10", "10", "3", NULL},     /* empty */
        {"KVD.PEER", "MERKLE", "0", "0", "17", NULL},      /* too deep */
        {"KVD.PEER", "MERKLE", "0", "0", "99999999999999999999999", NULL},
        {"KVD.PEER", "MERKLE", "01", "0", "3", NULL},      /* leading zero */
        {"KVD.PEER", "MERKLE", "0", "x", "3", NULL},
        {"KVD.PEER", "MERKLE", "", "0", "3", NULL},
    };
    struct fstore a = {0};
    fill(&a, 10, 0);
    struct cluster_store sa = fs_store(&a);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct kv_slice argv[8];
        size_t argc = words(argv, bad[i]);
        struct msg_buf out = {0};
        merkle_peer_answer(&sa, argv, argc, &out);
        CHECK(out.len > 0 && out.p[0] == '-');
        msg_buf_free(&out);
    }
    a.fail = 1;
    struct kv_slice argv[8];
    size_t argc = words(argv, (const char *const[]){"KVD.PEER", "MERKLE", "0", "0", "2", NULL});
    struct msg_buf out = {0};
    merkle_peer_answer(&sa, argv, argc, &out);
    CHECK(out.len > 0 && out.p[0] == '-');
    msg_buf_free(&out);
    a.fail = 0;
    fs_free(&a);
}

/* replies a peer might send that must not be taken for a tree */
static void test_merkle_reply_decode_refuses_garbage(void) {
    static const char *const bad[] = {
        "$7\r\n1234567\r\n",          /* short of the count */
        "$16\r\n0123456789abcdef\r\n", /* count and one leaf: depth 0 needs exactly that */
        ":1\r\n",
        "*1\r\n$16\r\n0123456789abcdef\r\n",
        "$-1\r\n",
        "+OK\r\n",
    };
    char err[128];
    uint64_t leaves[4], nkeys;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct msg_buf b = {0};
        msg_buf_put(&b, bad[i], strlen(bad[i]));
        redisReply *r = parse_reply(&b);
        msg_buf_free(&b);
        CHECK(r != NULL);
        int rc = merkle_reply_decode(r, 1, leaves, &nkeys, err, sizeof err);
        int rc0 = merkle_reply_decode(r, 0, leaves, &nkeys, err, sizeof err);
        freeReplyObject(r);
        CHECK_EQ_INT(rc, MSG_INVALID);
        CHECK(rc0 == MSG_INVALID || i == 1); /* the second is a good depth-0 reply */
    }
    struct msg_buf b = {0};
    msg_buf_put(&b, "-ERR nope\r\n", 11);
    redisReply *r = parse_reply(&b);
    msg_buf_free(&b);
    CHECK_EQ_INT(merkle_reply_decode(r, 0, leaves, &nkeys, err, sizeof err), MSG_REMOTE);
    CHECK_EQ_INT(merkle_reply_decode(r, 40, leaves, &nkeys, err, sizeof err), MSG_REMOTE);
    freeReplyObject(r);
    CHECK_EQ_INT(merkle_reply_decode(NULL, 0, leaves, &nkeys, err, sizeof err), MSG_INVALID);
}

int main(void) {
    TEST_RUN(test_merkle_leaves_tile_the_range);
    TEST_RUN(test_merkle_equal_data_equal_roots_any_order);
    TEST_RUN(test_merkle_one_differing_record_one_leaf);
    TEST_RUN(test_merkle_record_hash_covers_the_digest);
    TEST_RUN(test_merkle_fold_equals_a_shallower_build);
    TEST_RUN(test_merkle_depth_bounds_keys_per_leaf);
    TEST_RUN(test_merkle_verb_answers_the_tree);
    TEST_RUN(test_merkle_verb_refuses_garbage);
    TEST_RUN(test_merkle_reply_decode_refuses_garbage);
    TEST_MAIN_END();
}
