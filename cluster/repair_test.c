/* cluster/repair_test.c: the repair session (repair.h) between fake stores in one
 * process: requests answered by the peers' verbs (merkle_peer_answer,
 * repair_range_answer, replica_handle's MWRITE), replies parsed by hiredis.
 * Divergent replicas become identical (a big hash at one version with other
 * fields too, by its content digest); in-sync replicas exchange roots only; a
 * peer that fails or lies leaves the session partial, never crashed; the RANGE
 * verb pages by count and bytes and refuses malformed input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/fake_store_test.h"
#include "cluster/repair.h"
#include "cluster/replica.h"
#include "proto/resp.h"
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

enum { PEER_OK, PEER_DOWN, PEER_GARBAGE };

/* answers argv as a replica with store st would; mode spoils it */
static redisReply *answer(struct fstore *peer, const struct msg_argv *a, int mode) {
    if (mode == PEER_DOWN) {
        return NULL;
    }
    struct kv_slice argv[2 * REPAIR_PUSH_BATCH + 4];
    for (int i = 0; i < a->argc; i++) {
        argv[i] = (struct kv_slice){a->argv[i], a->argvlen[i]};
    }
    struct cluster_store st = fs_store(peer);
    struct msg_buf out = {0};
    if (mode == PEER_GARBAGE) {
        msg_buf_put(&out, "*2\r\n$1\r\n5\r\n$3\r\nabc\r\n", 20);
    } else if (strcmp(a->argv[1], "MERKLE") == 0) {
        merkle_peer_answer(&st, argv, (size_t)a->argc, &out);
    } else if (strcmp(a->argv[1], "RANGE") == 0) {
        repair_range_answer(&st, argv, (size_t)a->argc, &out);
    } else {
        struct replica_store rs = {peer, fs_read, fs_apply, NULL};
        replica_handle(&rs, argv, (size_t)a->argc, &out);
    }
    redisReply *r = parse_reply(&out);
    msg_buf_free(&out);
    return r;
}

/* runs a session of self against peers (tags 1..n = index + 1) to its end */
static int run_session(struct fstore *self, struct fstore *peers, const int *modes, size_t n,
                       struct repair_stats *st) {
    struct cluster_store cs = fs_store(self);
    uint32_t tags[RING_MAX_REPLICAS];
    for (size_t i = 0; i < n; i++) {
        tags[i] = (uint32_t)(i + 1);
    }
    struct repair_session s;
    repair_session_init(&s, &cs, 0, 0, tags, n, 1);
    struct repair_send out;
    int steps = 0;
    while (repair_session_next(&s, &out) == 1 && steps++ < 100000) {
        redisReply *r = answer(&peers[out.tag - 1], &out.a, modes ? modes[out.tag - 1] : 0);
        msg_argv_free(&out.a);
        repair_session_on_reply(&s, out.id, r);
        if (r) {
            freeReplyObject(r);
        }
    }
    int complete = repair_session_complete(&s);
    *st = s.st_;
    repair_session_free(&s);
    return complete;
}

static void fill(struct fstore *s, int from, int to, uint64_t hlc, uint32_t node) {
    for (int k = from; k < to; k++) {
        char key[32];
        snprintf(key, sizeof key, "key:%d", k);
        fs_put(s, (unsigned)(k % 4), key, hlc, node, 0);
    }
}

static void test_repair_divergent_replicas_converge(void) {
    struct fstore self = {0}, peers[2] = {{0}, {0}};
    fill(&self, 0, 3000, 100, 1);
    fill(&peers[0], 0, 3000, 100, 1);
    fill(&peers[1], 0, 3000, 100, 1);
    fill(&self, 0, 10, 200, 1);          /* self newer on 10 keys */
    fill(&peers[0], 10, 20, 300, 2);     /* peer 1 newer on 10 */
    fill(&peers[1], 20, 30, 400, 3);     /* peer 2 newer on 10: must reach peer 1 */
    fill(&peers[1], 5000, 5005, 50, 3);  /* only peer 2 holds 5 keys */
    fs_put(&peers[0], 1, "key:1", 900, 2, 1); /* a newer tombstone */
    struct repair_stats st;
    CHECK(run_session(&self, peers, NULL, 2, &st));
    CHECK(fs_equal(&self, &peers[0]));
    CHECK(fs_equal(&self, &peers[1]));
    CHECK_EQ_INT(self.n, 3005);
    struct fs_rec *t = fs_find(&peers[1], 1, "key:1", 5);
    CHECK(t && t->rec.deleted && t->rec.v.hlc == 900);
    CHECK_EQ_INT(st.records_pulled, 10 + 1 + 10 + 5);
    CHECK(st.records_pushed >= 10 + 10 + 1 + 10 + 5); /* to both peers */
    /* only records near the differing ones moved: far less than the 3000 */
    CHECK(st.bytes_in < 3000 * 40);
    fs_free(&self);
    fs_free(&peers[0]);
    fs_free(&peers[1]);
}

static void test_repair_in_sync_exchanges_roots_only(void) {
    struct fstore self = {0}, peers[2] = {{0}, {0}};
    fill(&self, 0, 2000, 100, 1);
    fill(&peers[0], 0, 2000, 100, 1);
    fill(&peers[1], 0, 2000, 100, 1);
    struct repair_stats st;
    CHECK(run_session(&self, peers, NULL, 2, &st));
    CHECK_EQ_INT(st.requests, 2);
    CHECK_EQ_INT(st.records_pulled + st.records_pushed, 0);
    CHECK(st.bytes_in < 200);
    fs_free(&self);
    fs_free(&peers[0]);
    fs_free(&peers[1]);
}

/* one differing key among 20,000: the leaves asked follow the difference (a
 * 128-leaf tree, then the 64-leaf tree under its one differing leaf), not the
 * range's size (one level of 8,192 leaves is 64 KiB) */
static void test_repair_sparse_difference_moves_few_leaves(void) {
    struct fstore self = {0}, peers[1] = {{0}};
    fill(&self, 0, 20000, 100, 1);
    fill(&peers[0], 0, 20000, 100, 1);
    fill(&peers[0], 777, 778, 200, 2);
    struct repair_stats st;
    CHECK(run_session(&self, peers, NULL, 1, &st));
    CHECK(fs_equal(&self, &peers[0]));
    CHECK_EQ_INT(st.records_pulled, 1);
    CHECK_EQ_INT(st.leaves_differing, 1);
    CHECK(st.bytes_in < 4096);
    fs_free(&self);
    fs_free(&peers[0]);
}

/* a wiped replica gets everything back, pushed */
static void test_repair_restores_an_empty_replica(void) {
    struct fstore self = {0}, peers[1] = {{0}};
    fill(&self, 0, 2500, 100, 1);
    struct repair_stats st;
    CHECK(run_session(&self, peers, NULL, 1, &st));
    CHECK(fs_equal(&self, &peers[0]));
    CHECK_EQ_INT(st.records_pushed, 2500);
    /* and the other way: this node empty */
    struct fstore empty = {0};
    CHECK(run_session(&empty, &self, NULL, 1, &st));
    CHECK(fs_equal(&self, &empty));
    CHECK_EQ_INT(st.records_pulled, 2500);
    fs_free(&self);
    fs_free(&empty);
    fs_free(&peers[0]);
}

/* a peer down or answering garbage: partial, the other peer still repaired */
static void test_repair_failing_peer_is_partial(void) {
    for (int mode = PEER_DOWN; mode <= PEER_GARBAGE; mode++) {
        struct fstore self = {0}, peers[2] = {{0}, {0}};
        fill(&self, 0, 500, 100, 1);
        fill(&peers[1], 0, 400, 100, 1);
        int modes[2] = {mode, PEER_OK};
        struct repair_stats st;
        CHECK(!run_session(&self, peers, modes, 2, &st));
        CHECK(fs_equal(&self, &peers[1]));
        CHECK_EQ_INT(peers[0].n, 0);
        fs_free(&self);
        fs_free(&peers[0]);
        fs_free(&peers[1]);
    }
    /* this node's own store failing: nobody repaired, nothing sent */
    struct fstore self = {0}, peers[1] = {{0}};
    self.fail = 1;
    struct repair_stats st;
    CHECK(!run_session(&self, peers, NULL, 1, &st));
    CHECK_EQ_INT(st.requests, 0);
    fs_free(&self);
}

/* a big hash "bh" in db 0 as a FIELDS record at version top, floor 1, with the
 * fields "name@hlc" (hlc 0: a tombstone at version 3), ascending */
static void put_big_hash(struct fstore *s, uint64_t top, const char *const *spec, size_t n) {
    struct msg_buf val = {0};
    fields_put_head(&val, (struct kv_version){1, 1}, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const char *at = strchr(spec[i], '@');
        uint64_t hlc = strtoull(at + 1, NULL, 10);
        struct fields_entry e = {{hlc ? hlc : 3, 1}, hlc == 0, spec[i], (size_t)(at - spec[i]),
                                 "v", 1};
        fields_put(&val, &e);
    }
    struct msg_record r = {.v = {top, 1}, .val = val.p, .vlen = val.len, .fields = 1};
    CHECK(fields_record_ok(&r));
    fs_apply(s, 0, "bh", 2, &r);
    msg_buf_free(&val);
}

static uint32_t big_hash_fields(struct fstore *s) {
    struct fs_rec *e = fs_find(s, 0, "bh", 2);
    struct kv_version floor;
    uint32_t n = 0;
    if (e == NULL || fields_check(e->rec.val, e->rec.vlen, e->rec.v, &floor, &n, NULL, 0) != 0) {
        return 0;
    }
    return n;
}

/* Two replicas of a big hash at one version (6) with other fields: this node
 * missed f1@5 (its hint dropped) but has f3@4 the peer missed, and a tombstone
 * of f4 the peer lacks. Versions alone make the trees equal; the content digest
 * makes them differ, and the session leaves both with every field. */
static void test_repair_big_hash_same_version_other_fields(void) {
    struct fstore self = {0}, peers[1] = {{0}};
    fill(&self, 0, 1000, 100, 1);
    fill(&peers[0], 0, 1000, 100, 1);
    put_big_hash(&self, 6, (const char *const[]){"f2@6", "f3@4", "f4@0"}, 3);
    put_big_hash(&peers[0], 6, (const char *const[]){"f1@5", "f2@6"}, 2);
    struct cluster_store a = fs_store(&self), b = fs_store(&peers[0]);
    struct merkle ma, mb;
    CHECK_EQ_INT(merkle_build(&a, 0, 0, 0, &ma), 0);
    CHECK_EQ_INT(merkle_build(&b, 0, 0, 0, &mb), 0);
    CHECK(merkle_root(&ma) != merkle_root(&mb));
    merkle_free(&ma);
    merkle_free(&mb);
    struct repair_stats st;
    CHECK(run_session(&self, peers, NULL, 1, &st));
    CHECK(fs_equal(&self, &peers[0]));
    CHECK_EQ_INT(big_hash_fields(&self), 4);
    CHECK_EQ_INT(st.records_pulled, 1);
    CHECK_EQ_INT(st.records_pushed, 1);
    /* in sync now: a second session exchanges roots only */
    CHECK(run_session(&self, peers, NULL, 1, &st));
    CHECK_EQ_INT(st.requests, 1);
    CHECK_EQ_INT(st.records_pulled + st.records_pushed, 0);
    fs_free(&self);
    fs_free(&peers[0]);
}

static redisReply *range_reply(struct fstore *s, const char *const *w) {
    struct kv_slice argv[8];
    size_t argc = 0;
    for (; w[argc]; argc++) {
        argv[argc] = (struct kv_slice){w[argc], strlen(w[argc])};
    }
    struct cluster_store st = fs_store(s);
    struct msg_buf out = {0};
    repair_range_answer(&st, argv, argc, &out);
    redisReply *r = parse_reply(&out);
    msg_buf_free(&out);
    return r;
}

/* RANGE pages by count, resumes by token, covers the range exactly once */
static void test_repair_range_pages_resume_by_token(void) {
    struct fstore s = {0};
    fill(&s, 0, 1000, 100, 1);
    uint64_t from = 0;
    size_t seen = 0;
    int pages = 0;
    do {
        char f[24];
        snprintf(f, sizeof f, "%llu", (unsigned long long)from);
        redisReply *r = range_reply(&s, (const char *const[]){"KVD.PEER", "RANGE", f, "0", "100",
                                                              "4194304", NULL});
        struct repair_page pg;
        char err[128];
        CHECK(r != NULL);
        int rc = repair_range_decode(r, from, 0, &pg, err, sizeof err);
        freeReplyObject(r);
        CHECK_EQ_INT(rc, MSG_OK);
        CHECK(pg.n <= 101);
        seen += pg.n;
        for (size_t i = 0; i < pg.n; i++) {
            struct fs_rec *e = fs_find(&s, pg.recs[i].db, pg.recs[i].key, pg.recs[i].klen);
            CHECK(e && e->rec.vlen == pg.recs[i].rec.vlen &&
                  memcmp(e->rec.val, pg.recs[i].rec.val, e->rec.vlen) == 0);
        }
        from = pg.next;
        repair_page_free(&pg);
        pages++;
    } while (from != 0 && pages < 100);
    CHECK_EQ_INT(seen, 1000);
    CHECK(pages >= 10);
    /* a byte bound of 1 gives one token a page */
    redisReply *r = range_reply(&s, (const char *const[]){"KVD.PEER", "RANGE", "0", "0", "1000",
                                                          "1", NULL});
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    freeReplyObject(r);
    fs_free(&s);
}

static void test_repair_range_refuses_garbage(void) {
    static const char *const bad[][8] = {
        {"KVD.PEER", "RANGE", "0", "0", "10", NULL},
        {"KVD.PEER", "RANGE", "5", "5", "10", "100", NULL},
        {"KVD.PEER", "RANGE", "0", "0", "0", "100", NULL},
        {"KVD.PEER", "RANGE", "0", "0", "1025", "100", NULL},
        {"KVD.PEER", "RANGE", "0", "0", "10", "0", NULL},
        {"KVD.PEER", "RANGE", "0", "0", "10", "4194305", NULL},
        {"KVD.PEER", "RANGE", "x", "0", "10", "100", NULL},
    };
    struct fstore s = {0};
    fill(&s, 0, 10, 100, 1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        redisReply *r = range_reply(&s, bad[i]);
        CHECK(r && r->type == REDIS_REPLY_ERROR);
        freeReplyObject(r);
    }
    fs_free(&s);
}

/* replies a peer might send for RANGE [100, 200) that must be refused */
static void test_repair_range_decode_refuses_garbage(void) {
    /* a well-formed item for key "a" with its true token, then spoilt copies */
    unsigned char item[64];
    uint64_t tok = ring_key_token("a", 1);
    size_t n = 0;
    for (int i = 0; i < 8; i++) {
        item[n++] = (unsigned char)(tok >> (56 - 8 * i));
    }
    item[n++] = 0, item[n++] = 0;                           /* db */
    item[n++] = 0, item[n++] = 0, item[n++] = 0, item[n++] = 1; /* klen */
    item[n++] = 'a';
    struct msg_record rec = {{5, 1}, 0, 0, NULL, 0};
    msg_record_header(&rec, item + n);
    n += MSG_REC_HDR;
    char err[128];
    struct repair_page pg;
    char lo[24], hi[24];
    snprintf(lo, sizeof lo, "%llu", (unsigned long long)tok);
    snprintf(hi, sizeof hi, "%llu", (unsigned long long)(tok + 1));
    for (int spoil = 0; spoil < 7; spoil++) {
        unsigned char it[64];
        memcpy(it, item, n);
        size_t len = n;
        const char *next = hi;
        if (spoil == 1) {
            it[7] ^= 1; /* token not the key's */
        } else if (spoil == 2) {
            it[13] = 200; /* klen past the item */
        } else if (spoil == 3) {
            len = 20; /* short */
        } else if (spoil == 4) {
            it[14 + 1 + 12] = 0x80; /* unknown flag bits */
        } else if (spoil == 5) {
            next = lo; /* next not past from */
        } else if (spoil == 6) {
            next = "0"; /* past `to` */
        }
        struct msg_buf b = {0};
        char h[64];
        int hl = snprintf(h, sizeof h, "*2\r\n$%zu\r\n%s\r\n$%zu\r\n", strlen(next), next, len);
        msg_buf_put(&b, h, (size_t)hl);
        msg_buf_put(&b, it, len);
        msg_buf_put(&b, "\r\n", 2);
        redisReply *r = parse_reply(&b);
        msg_buf_free(&b);
        CHECK(r != NULL);
        int rc = repair_range_decode(r, tok, tok + 1, &pg, err, sizeof err);
        freeReplyObject(r);
        if (spoil == 0) {
            CHECK_EQ_INT(rc, MSG_OK);
            CHECK_EQ_INT(pg.n, 1);
            repair_page_free(&pg);
        } else {
            CHECK_EQ_INT(rc, MSG_INVALID);
            CHECK_EQ_INT(pg.n, 0);
        }
    }
}

int main(void) {
    TEST_RUN(test_repair_divergent_replicas_converge);
    TEST_RUN(test_repair_in_sync_exchanges_roots_only);
    TEST_RUN(test_repair_sparse_difference_moves_few_leaves);
    TEST_RUN(test_repair_restores_an_empty_replica);
    TEST_RUN(test_repair_failing_peer_is_partial);
    TEST_RUN(test_repair_big_hash_same_version_other_fields);
    TEST_RUN(test_repair_range_pages_resume_by_token);
    TEST_RUN(test_repair_range_refuses_garbage);
    TEST_RUN(test_repair_range_decode_refuses_garbage);
    TEST_MAIN_END();
}
