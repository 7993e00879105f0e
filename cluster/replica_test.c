/* cluster/replica_test.c: the replica side (cluster/replica.c) against a tiny store
 * of callbacks: LWW applies, reads with tombstones, store errors and malformed
 * requests, each answered by exactly one reply parsed back with hiredis. */
#include "cluster/replica.h"

#include <string.h>

#include "tests/test.h"

struct tiny {
    char key[8][16];
    struct msg_record rec[8];
    char val[8][32];
    int n;
    int fail;          /* 1: every call errs */
    uint64_t observed; /* last hlc observed */
};

static int tiny_find(struct tiny *t, const char *key, size_t klen) {
    for (int i = 0; i < t->n; i++) {
        if (strlen(t->key[i]) == klen && memcmp(t->key[i], key, klen) == 0) {
            return i;
        }
    }
    return -1;
}

static int tiny_read(void *ctx, unsigned db, const char *key, size_t klen,
                     struct msg_record *out) {
    struct tiny *t = ctx;
    if (t->fail) {
        return -1;
    }
    int i = tiny_find(t, key, klen);
    if (i < 0) {
        return 0;
    }
    *out = t->rec[i];
    return 1;
}

static int tiny_apply(void *ctx, unsigned db, const char *key, size_t klen,
                      const struct msg_record *rec) {
    struct tiny *t = ctx;
    if (t->fail) {
        return -1;
    }
    int i = tiny_find(t, key, klen);
    if (i >= 0 && kv_record_cmp(rec->v, rec->deleted, t->rec[i].v, t->rec[i].deleted) <= 0) {
        return 0;
    }
    if (i < 0) {
        i = t->n++;
        memcpy(t->key[i], key, klen);
        t->key[i][klen] = 0;
    }
    t->rec[i] = *rec;
    memcpy(t->val[i], rec->val ? rec->val : "", rec->vlen);
    t->rec[i].val = t->val[i];
    return 1;
}

static void tiny_observe(void *ctx, uint64_t hlc) {
    ((struct tiny *)ctx)->observed = hlc;
}

/* sends an encoded request through replica_handle; returns the parsed reply */
static redisReply *roundtrip(struct tiny *t, struct msg_argv *a) {
    struct kv_slice argv[8];
    for (int i = 0; i < a->argc && i < 8; i++) {
        argv[i] = (struct kv_slice){a->argv[i], a->argvlen[i]};
    }
    struct replica_store st = {t, tiny_read, tiny_apply, tiny_observe};
    struct msg_buf out = {0};
    replica_handle(&st, argv, (size_t)a->argc, &out);
    msg_argv_free(a);
    redisReader *rd = redisReaderCreate();
    redisReaderFeed(rd, out.p, out.len);
    void *r = NULL;
    if (redisReaderGetReply(rd, &r) != REDIS_OK) {
        r = NULL;
    }
    void *extra = NULL; /* exactly one reply */
    if (r && redisReaderGetReply(rd, &extra) == REDIS_OK && extra) {
        freeReplyObject(extra);
        freeReplyObject(r);
        r = NULL;
    }
    redisReaderFree(rd);
    msg_buf_free(&out);
    return r;
}

static int write_rc(struct tiny *t, const char *key, uint64_t hlc, int del, const char *val) {
    struct msg_record rec = {{hlc, 1}, del, 0, val, val ? strlen(val) : 0};
    struct msg_argv a;
    msg_encode_write(&a, 0, key, strlen(key), &rec);
    redisReply *r = roundtrip(t, &a);
    int applied = -1;
    if (r == NULL || msg_decode_write_reply(r, &applied, NULL, 0) != MSG_OK) {
        applied = -1;
    }
    if (r) {
        freeReplyObject(r);
    }
    return applied;
}

static void test_replica_write_applies_last_write_wins(void) {
    struct tiny t = {0};
    CHECK_EQ_INT(write_rc(&t, "k", 100, 0, "a"), 1);
    CHECK_EQ_INT(t.observed, 100);
    CHECK_EQ_INT(write_rc(&t, "k", 50, 0, "old"), 0);  /* older: kept */
    CHECK_EQ_INT(write_rc(&t, "k", 100, 0, "a"), 0);   /* the same write again */
    CHECK_EQ_INT(write_rc(&t, "k", 100, 1, NULL), 1);  /* tombstone of that version */
    CHECK_EQ_INT(write_rc(&t, "k", 200, 0, "b"), 1);
    CHECK_EQ_INT(t.n, 1);
    CHECK_EQ_MEM(t.val[0], t.rec[0].vlen, "b", 1);
}

static void test_replica_read_returns_records_tombstones_and_nothing(void) {
    struct tiny t = {0};
    write_rc(&t, "v", 10, 0, "val");
    write_rc(&t, "d", 20, 1, NULL);
    struct kv_slice keys[3] = {{"v", 1}, {"missing", 7}, {"d", 1}};
    struct msg_argv a;
    msg_encode_read(&a, 0, keys, 3);
    redisReply *r = roundtrip(&t, &a);
    CHECK(r != NULL);
    struct msg_item items[3];
    CHECK_EQ_INT(msg_decode_read_reply(r, 3, items, NULL, 0), MSG_OK);
    CHECK_EQ_INT(items[0].found, 1);
    CHECK_EQ_MEM(items[0].rec.val, items[0].rec.vlen, "val", 3);
    CHECK_EQ_INT(items[0].rec.v.hlc, 10);
    CHECK_EQ_INT(items[1].found, 0);
    CHECK_EQ_INT(items[2].found, 1);
    CHECK_EQ_INT(items[2].rec.deleted, 1);
    freeReplyObject(r);
}

static void test_replica_store_errors_and_bad_requests_get_one_error(void) {
    struct tiny t = {0};
    write_rc(&t, "v", 10, 0, "val");
    t.fail = 1;
    struct kv_slice keys[2] = {{"v", 1}, {"w", 1}};
    struct msg_argv a;
    msg_encode_read(&a, 0, keys, 2);
    redisReply *r = roundtrip(&t, &a);
    CHECK(r != NULL);
    CHECK_EQ_INT(r->type, REDIS_REPLY_ERROR); /* not a half-written array */
    freeReplyObject(r);
    CHECK_EQ_INT(write_rc(&t, "v", 99, 0, "x"), -1);
    t.fail = 0;
    const char *argv[] = {"KVD.PEER", "WRITE", "0", "k", "short-record"};
    size_t lens[] = {8, 5, 1, 1, 12};
    struct kv_slice sl[5];
    for (int i = 0; i < 5; i++) {
        sl[i] = (struct kv_slice){argv[i], lens[i]};
    }
    struct replica_store st = {&t, tiny_read, tiny_apply, NULL};
    struct msg_buf out = {0};
    replica_handle(&st, sl, 5, &out);
    CHECK(out.len > 5 && memcmp(out.p, "-ERR ", 5) == 0);
    CHECK(memchr(out.p, '\n', out.len) == out.p + out.len - 1); /* one line */
    msg_buf_free(&out);
}

static void test_replica_mwrite_applies_each_write_and_answers_each(void) {
    struct tiny t = {0};
    write_rc(&t, "old", 500, 0, "newer");
    struct msg_record r1 = {{100, 1}, 0, 0, "a", 1};
    struct msg_record r2 = {{100, 1}, 0, 0, "stale", 5};
    struct msg_record r3 = {{300, 1}, 1, 0, NULL, 0};
    struct msg_write w[3] = {{"k", 1, &r1}, {"old", 3, &r2}, {"gone", 4, &r3}};
    struct msg_argv a;
    msg_encode_mwrite(&a, 0, w, 3);
    CHECK_EQ_INT(a.argc, 9);
    struct kv_slice argv[9];
    for (int i = 0; i < 9; i++) {
        argv[i] = (struct kv_slice){a.argv[i], a.argvlen[i]};
    }
    struct replica_store st = {&t, tiny_read, tiny_apply, tiny_observe};
    struct msg_buf out = {0};
    replica_handle(&st, argv, 9, &out);
    msg_argv_free(&a);
    CHECK_EQ_MEM(out.p, out.len, "*3\r\n:1\r\n:0\r\n:1\r\n", 16);
    CHECK_EQ_INT(t.n, 3);                     /* k and gone added, old kept */
    CHECK_EQ_MEM(t.val[0], t.rec[0].vlen, "newer", 5); /* "old": written first */
    CHECK_EQ_INT(t.observed, 300);
    msg_buf_free(&out);
    /* a store error: one error, no half-written array */
    t.fail = 1;
    msg_encode_mwrite(&a, 0, w, 3);
    for (int i = 0; i < 9; i++) {
        argv[i] = (struct kv_slice){a.argv[i], a.argvlen[i]};
    }
    replica_handle(&st, argv, 9, &out);
    msg_argv_free(&a);
    CHECK(out.len > 5 && memcmp(out.p, "-ERR ", 5) == 0);
    msg_buf_free(&out);
}

int main(void) {
    TEST_RUN(test_replica_write_applies_last_write_wins);
    TEST_RUN(test_replica_read_returns_records_tombstones_and_nothing);
    TEST_RUN(test_replica_store_errors_and_bad_requests_get_one_error);
    TEST_RUN(test_replica_mwrite_applies_each_write_and_answers_each);
    TEST_MAIN_END();
}
