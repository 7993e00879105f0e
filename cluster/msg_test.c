/* cluster/msg_test.c: internal messages (cluster/msg.c): round trips through the
 * real parsers (proto's request parser, hiredis's reply reader), every malformed
 * field refused, and a bounded fuzz loop of random and truncated inputs. */
#include "cluster/msg.h"

#include <stdlib.h>
#include <string.h>

#include "tests/test.h"

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* argv -> RESP bytes -> proto's parser -> decode; p keeps the parsed argv */
static int via_parser(const struct msg_argv *a, struct msg_buf *bytes, struct resp_parser *p,
                      struct msg_request *req) {
    msg_argv_to_resp(a, bytes);
    struct resp_limits lim = {512LL << 20, 1 << 20, 65536};
    resp_parser_init(p, &lim);
    size_t used = 0;
    if (resp_parse(p, bytes->p, bytes->len, &used) != RESP_OK || used != bytes->len) {
        return -1;
    }
    char err[128];
    return msg_decode_request(p->argv, (size_t)p->argc, req, err, sizeof err);
}

static redisReply *parse_reply(const char *p, size_t n) {
    redisReader *r = redisReaderCreate();
    redisReaderFeed(r, p, n);
    void *reply = NULL;
    if (redisReaderGetReply(r, &reply) != REDIS_OK) {
        reply = NULL;
    }
    redisReaderFree(r);
    return reply;
}

static void test_msg_read_request_round_trips(void) {
    struct kv_slice keys[3] = {{"a", 1}, {"", 0}, {"k\r\n\0x", 6}};
    struct msg_argv a;
    msg_encode_read(&a, 15, keys, 3);
    struct msg_buf bytes = {0};
    struct resp_parser p;
    struct msg_request req;
    CHECK_EQ_INT(via_parser(&a, &bytes, &p, &req), MSG_OK);
    CHECK_EQ_INT(req.verb, MSG_READ);
    CHECK_EQ_INT(req.db, 15);
    CHECK_EQ_INT(req.nkeys, 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_MEM(req.keys[i].p, req.keys[i].len, keys[i].p, keys[i].len);
    }
    resp_parser_deinit(&p);
    msg_buf_free(&bytes);
    msg_argv_free(&a);
}

static void test_msg_write_request_round_trips_value_and_tombstone(void) {
    for (int del = 0; del <= 1; del++) {
        struct msg_record rec = {{0x0123456789abcdefull, 0xfeedbeef}, del, 1700000000123ull,
                                 del ? NULL : "envelope\0bytes", del ? 0 : 14};
        struct msg_argv a;
        msg_encode_write(&a, 65535, "key", 3, &rec);
        struct msg_buf bytes = {0};
        struct resp_parser p;
        struct msg_request req;
        CHECK_EQ_INT(via_parser(&a, &bytes, &p, &req), MSG_OK);
        CHECK_EQ_INT(req.verb, MSG_WRITE);
        CHECK_EQ_INT(req.db, 65535);
        CHECK_EQ_MEM(req.keys[0].p, req.keys[0].len, "key", 3);
        CHECK(req.rec.v.hlc == rec.v.hlc);
        CHECK(req.rec.v.node == rec.v.node);
        CHECK_EQ_INT(req.rec.deleted, del);
        CHECK(req.rec.expire_at == rec.expire_at);
        CHECK_EQ_INT(req.rec.vlen, rec.vlen);
        if (rec.vlen) {
            CHECK_EQ_MEM(req.rec.val, req.rec.vlen, rec.val, rec.vlen);
        }
        resp_parser_deinit(&p);
        msg_buf_free(&bytes);
        msg_argv_free(&a);
    }
}

static int decode_words(const char **w, size_t n) {
    struct kv_slice argv[8];
    for (size_t i = 0; i < n; i++) {
        argv[i] = (struct kv_slice){w[i], strlen(w[i])};
    }
    struct msg_request req;
    char err[128];
    return msg_decode_request(argv, n, &req, err, sizeof err);
}

static void test_msg_malformed_requests_are_refused(void) {
    const char *ok[] = {"kvd.peer", "read", "0", "k"};
    CHECK_EQ_INT(decode_words(ok, 4), MSG_OK); /* command and verb: any case */
    const char *cases[][5] = {
        {"GET", "READ", "0", "k"},       {"KVD.PEER", "READX", "0", "k"},
        {"KVD.PEER", "READ", "0"},       {"KVD.PEER", "READ", "01", "k"},
        {"KVD.PEER", "READ", "-1", "k"}, {"KVD.PEER", "READ", "65536", "k"},
        {"KVD.PEER", "READ", "1a", "k"}, {"KVD.PEER", "READ", "", "k"},
        {"KVD.PEER", "WRITE", "0", "k"}, {"KVD.PEER", "WRITE", "0", "k", "short"},
        {"KVD.PEER"},
    };
    size_t ncases = sizeof cases / sizeof cases[0];
    for (size_t c = 0; c < ncases; c++) {
        size_t n = 0;
        while (n < 5 && cases[c][n]) {
            n++;
        }
        CHECK_EQ_INT(decode_words(cases[c], n), MSG_INVALID);
    }
    /* too many keys: refused by count, before anything else */
    size_t argc = 3 + MSG_MAX_KEYS + 1;
    struct kv_slice *argv = calloc(argc, sizeof *argv);
    argv[0] = (struct kv_slice){"KVD.PEER", 8};
    argv[1] = (struct kv_slice){"READ", 4};
    argv[2] = (struct kv_slice){"0", 1};
    for (size_t i = 3; i < argc; i++) {
        argv[i] = (struct kv_slice){"k", 1};
    }
    struct msg_request req;
    CHECK_EQ_INT(msg_decode_request(argv, argc, &req, NULL, 0), MSG_INVALID);
    CHECK_EQ_INT(msg_decode_request(argv, argc - 1, &req, NULL, 0), MSG_OK);
    free(argv);
}

static void test_msg_bad_record_bytes_are_refused(void) {
    struct msg_record rec = {{5, 6}, 0, 0, "v", 1}, out;
    unsigned char b[MSG_REC_HDR + 1];
    msg_record_header(&rec, b);
    b[MSG_REC_HDR] = 'v';
    CHECK_EQ_INT(msg_record_parse((char *)b, sizeof b, &out), MSG_OK);
    for (size_t n = 0; n < MSG_REC_HDR; n++) {
        CHECK_EQ_INT(msg_record_parse((char *)b, n, &out), MSG_INVALID);
    }
    b[12] = 0x04; /* unknown flag */
    CHECK_EQ_INT(msg_record_parse((char *)b, sizeof b, &out), MSG_INVALID);
    b[12] = MSG_REC_FIELDS; /* field records whose value is not a fields list */
    CHECK_EQ_INT(msg_record_parse((char *)b, sizeof b, &out), MSG_INVALID);
    b[12] = MSG_REC_DELETED; /* a tombstone with a value */
    CHECK_EQ_INT(msg_record_parse((char *)b, sizeof b, &out), MSG_INVALID);
    CHECK_EQ_INT(msg_record_parse((char *)b, MSG_REC_HDR, &out), MSG_OK);
    CHECK_EQ_INT(out.deleted, 1);
    b[13] = 0x80; /* expire_at >= 2^63 */
    CHECK_EQ_INT(msg_record_parse((char *)b, MSG_REC_HDR, &out), MSG_INVALID);
}

static void test_msg_read_reply_round_trips_through_hiredis(void) {
    struct msg_item items[3] = {
        {1, {{100, 1}, 0, 0, "hello", 5}},
        {0, {{0, 0}, 0, 0, NULL, 0}},
        {1, {{200, 2}, 1, 0, NULL, 0}},
    };
    struct msg_buf b = {0};
    msg_reply_read(&b, items, 3);
    redisReply *r = parse_reply(b.p, b.len);
    CHECK(r != NULL);
    struct msg_item out[3];
    char err[128];
    CHECK_EQ_INT(msg_decode_read_reply(r, 3, out, err, sizeof err), MSG_OK);
    CHECK_EQ_INT(out[0].found, 1);
    CHECK_EQ_MEM(out[0].rec.val, out[0].rec.vlen, "hello", 5);
    CHECK(out[0].rec.v.hlc == 100 && out[0].rec.v.node == 1);
    CHECK_EQ_INT(out[1].found, 0);
    CHECK_EQ_INT(out[2].found, 1);
    CHECK_EQ_INT(out[2].rec.deleted, 1);
    /* the wrong number of items is malformed */
    CHECK_EQ_INT(msg_decode_read_reply(r, 2, out, err, sizeof err), MSG_INVALID);
    freeReplyObject(r);
    msg_buf_free(&b);
}

static void test_msg_write_reply_and_errors_decode(void) {
    struct msg_buf b = {0};
    msg_reply_write(&b, 1);
    redisReply *r = parse_reply(b.p, b.len);
    int applied = -1;
    char err[128];
    CHECK_EQ_INT(msg_decode_write_reply(r, &applied, err, sizeof err), MSG_OK);
    CHECK_EQ_INT(applied, 1);
    freeReplyObject(r);
    msg_buf_free(&b);
    msg_reply_error(&b, "disk\r\nfull");
    r = parse_reply(b.p, b.len);
    CHECK_EQ_INT(msg_decode_write_reply(r, &applied, err, sizeof err), MSG_REMOTE);
    CHECK_EQ_STR(err, "ERR disk  full");
    struct msg_item it;
    CHECK_EQ_INT(msg_decode_read_reply(r, 1, &it, err, sizeof err), MSG_REMOTE);
    freeReplyObject(r);
    msg_buf_free(&b);
    const char *bad[] = {":2\r\n", "+OK\r\n", "$1\r\nx\r\n", "*1\r\n:1\r\n", "$-1\r\n"};
    for (size_t i = 0; i < 5; i++) {
        r = parse_reply(bad[i], strlen(bad[i]));
        CHECK(r != NULL);
        CHECK_EQ_INT(msg_decode_write_reply(r, &applied, err, sizeof err), MSG_INVALID);
        CHECK_EQ_INT(msg_decode_read_reply(r, 1, &it, err, sizeof err), MSG_INVALID);
        freeReplyObject(r);
    }
    CHECK_EQ_INT(msg_decode_write_reply(NULL, &applied, err, sizeof err), MSG_INVALID);
}

static void test_msg_mwrite_request_and_reply_round_trip(void) {
    struct msg_record r1 = {{100, 7}, 0, 12345, "value", 5};
    struct msg_record r2 = {{101, 7}, 1, 0, NULL, 0};
    struct msg_write w[2] = {{"k1", 2, &r1}, {"key2", 4, &r2}};
    struct msg_argv a;
    msg_encode_mwrite(&a, 3, w, 2);
    struct msg_buf bytes = {0};
    struct resp_parser p;
    struct msg_request req;
    CHECK_EQ_INT(via_parser(&a, &bytes, &p, &req), MSG_OK);
    CHECK_EQ_INT(req.verb, MSG_MWRITE);
    CHECK_EQ_INT(req.db, 3);
    CHECK_EQ_INT(req.nkeys, 2);
    CHECK_EQ_MEM(req.keys[0].p, req.keys[0].len, "k1", 2);
    CHECK_EQ_MEM(req.keys[2].p, req.keys[2].len, "key2", 4);
    struct msg_record got;
    CHECK_EQ_INT(msg_record_parse(req.keys[1].p, req.keys[1].len, &got), MSG_OK);
    CHECK_EQ_INT(got.v.hlc, 100);
    CHECK_EQ_INT(got.expire_at, 12345);
    CHECK_EQ_MEM(got.val, got.vlen, "value", 5);
    CHECK_EQ_INT(msg_record_parse(req.keys[3].p, req.keys[3].len, &got), MSG_OK);
    CHECK_EQ_INT(got.deleted, 1);
    resp_parser_deinit(&p);
    msg_buf_free(&bytes);
    msg_argv_free(&a);
    /* an odd count, no pair, or a bad record: refused */
    char err[128];
    struct kv_slice odd[6] = {{"KVD.PEER", 8}, {"MWRITE", 6}, {"0", 1}, {"k", 1}, {"r", 1},
                              {"k2", 2}};
    CHECK_EQ_INT(msg_decode_request(odd, 6, &req, err, sizeof err), MSG_INVALID);
    CHECK_EQ_INT(msg_decode_request(odd, 3, &req, err, sizeof err), MSG_INVALID);
    CHECK_EQ_INT(msg_decode_request(odd, 5, &req, err, sizeof err), MSG_INVALID);
    /* replies: one integer per write, in order */
    const char *ok = "*2\r\n:1\r\n:0\r\n";
    redisReply *r = parse_reply(ok, strlen(ok));
    int applied[2] = {-1, -1};
    CHECK_EQ_INT(msg_decode_mwrite_reply(r, 2, applied, err, sizeof err), MSG_OK);
    CHECK_EQ_INT(applied[0], 1);
    CHECK_EQ_INT(applied[1], 0);
    CHECK_EQ_INT(msg_decode_mwrite_reply(r, 3, applied, err, sizeof err), MSG_INVALID);
    freeReplyObject(r);
    const char *bad[] = {"*2\r\n:1\r\n:2\r\n", "*2\r\n:1\r\n$-1\r\n", ":1\r\n"};
    for (size_t i = 0; i < 3; i++) {
        r = parse_reply(bad[i], strlen(bad[i]));
        CHECK(r != NULL);
        CHECK_EQ_INT(msg_decode_mwrite_reply(r, 2, applied, err, sizeof err), MSG_INVALID);
        freeReplyObject(r);
    }
    r = parse_reply("-ERR full\r\n", 11);
    CHECK_EQ_INT(msg_decode_mwrite_reply(r, 2, applied, err, sizeof err), MSG_REMOTE);
    freeReplyObject(r);
    CHECK_EQ_INT(msg_decode_mwrite_reply(NULL, 2, applied, err, sizeof err), MSG_INVALID);
}

/* random argv: random words, often valid prefixes; decoding never crashes, and
 * what decodes re-encodes to the same request */
static void test_msg_fuzz_random_requests(void) {
    const char *words[] = {"KVD.PEER", "READ", "WRITE", "0", "7", "65535", "x", ""};
    char pool[8][32];
    size_t ok = 0;
    for (int iter = 0; iter < 20000; iter++) {
        struct kv_slice argv[8];
        size_t argc = rnd() % 8;
        for (size_t i = 0; i < argc; i++) {
            if (rnd() % 3) {
                const char *w = words[rnd() % 8];
                if (i < 3 && rnd() % 2) {
                    w = i == 0 ? "KVD.PEER" : i == 1 ? (rnd() % 2 ? "READ" : "WRITE") : "3";
                }
                argv[i] = (struct kv_slice){w, strlen(w)};
            } else {
                char *p = pool[i];
                size_t n = rnd() % 32;
                for (size_t j = 0; j < n; j++) {
                    p[j] = (char)rnd();
                }
                argv[i] = (struct kv_slice){p, n};
            }
        }
        struct msg_request req;
        if (msg_decode_request(argv, argc, &req, NULL, 0) != MSG_OK) {
            continue;
        }
        ok++;
        struct msg_argv a;
        if (req.verb == MSG_READ) {
            msg_encode_read(&a, req.db, req.keys, req.nkeys);
        } else {
            msg_encode_write(&a, req.db, req.keys[0].p, req.keys[0].len, &req.rec);
        }
        struct kv_slice back[8];
        CHECK_EQ_INT(a.argc, (int)argc);
        for (int i = 0; i < a.argc; i++) {
            back[i] = (struct kv_slice){a.argv[i], a.argvlen[i]};
        }
        struct msg_request req2;
        CHECK_EQ_INT(msg_decode_request(back, argc, &req2, NULL, 0), MSG_OK);
        CHECK_EQ_INT(req2.verb, req.verb);
        CHECK_EQ_INT(req2.db, req.db);
        CHECK_EQ_INT(req2.nkeys, req.nkeys);
        msg_argv_free(&a);
    }
    CHECK(ok > 100); /* the loop reached the decoder's success path too */
}

/* valid replies truncated at every length and with random bytes flipped: hiredis
 * parses what it can, and the decoder answers OK/INVALID without crashing */
static void test_msg_fuzz_truncated_and_mutated_replies(void) {
    struct msg_item items[2] = {{1, {{9, 9}, 0, 42, "abcdef", 6}}, {0}};
    struct msg_buf b = {0};
    msg_reply_read(&b, items, 2);
    size_t good = 0;
    for (size_t n = 0; n <= b.len; n++) {
        redisReply *r = parse_reply(b.p, n);
        struct msg_item out[2];
        if (r != NULL && msg_decode_read_reply(r, 2, out, NULL, 0) == MSG_OK) {
            good++;
        }
        if (r) {
            freeReplyObject(r);
        }
    }
    CHECK_EQ_INT(good, 1); /* only the whole reply */
    char *m = malloc(b.len);
    size_t decoded = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(m, b.p, b.len);
        int flips = 1 + (int)(rnd() % 3);
        for (int f = 0; f < flips; f++) {
            /* keep length digits small: a flip inside "*2"/"$27" stays 1-2 digits */
            m[rnd() % b.len] = (char)rnd();
        }
        redisReply *r = parse_reply(m, b.len - rnd() % 4);
        if (r == NULL) {
            continue;
        }
        struct msg_item out[2];
        int applied;
        if (msg_decode_read_reply(r, 2, out, NULL, 0) == MSG_OK) {
            decoded++;
            for (int i = 0; i < 2; i++) {
                CHECK(!out[i].found || out[i].rec.vlen <= b.len);
            }
        }
        (void)msg_decode_write_reply(r, &applied, NULL, 0);
        freeReplyObject(r);
    }
    CHECK(decoded > 0);
    free(m);
    msg_buf_free(&b);
}

int main(void) {
    TEST_RUN(test_msg_read_request_round_trips);
    TEST_RUN(test_msg_write_request_round_trips_value_and_tombstone);
    TEST_RUN(test_msg_malformed_requests_are_refused);
    TEST_RUN(test_msg_bad_record_bytes_are_refused);
    TEST_RUN(test_msg_read_reply_round_trips_through_hiredis);
    TEST_RUN(test_msg_write_reply_and_errors_decode);
    TEST_RUN(test_msg_mwrite_request_and_reply_round_trip);
    TEST_RUN(test_msg_fuzz_random_requests);
    TEST_RUN(test_msg_fuzz_truncated_and_mutated_replies);
    TEST_MAIN_END();
}
