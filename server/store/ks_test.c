/* server/store/ks_test.c: unit tests of the keyspace (server/ks*.c), value encodings
 * (obj.c, hashobj.c), the coordinator seam and the key families' handlers, run
 * in-process on a fake client (no socket: replies accumulate in c->out).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/base.h"
#include "server/store/hlc.h"
#include "server/test_client.h"
#include "tests/test.h"

#ifndef KVD_NO_JEMALLOC
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
#endif

/* ---- fixtures ---- */

static struct client tc;

static void setup(void) {
    tclient_fresh_cache(&tc);
}

static struct kv_slice sl(const char *s) {
    return (struct kv_slice){s, strlen(s)};
}

/* Runs one command line on the test client (server/test_client.h). A test that
 * set server.mstime keeps its clock. */
static const char *run(const char *line) {
    server.mstime = server.mstime ? server.mstime : kv_mstime();
    return tclient_run(&tc, line, TCLIENT_HANDLER);
}

#define RUN_EQ(line, want) CHECK_EQ_STR(run(line), want)

static struct kv_entry *mk_str(const char *key, const char *val, long long exp) {
    return obj_str_new(key, strlen(key), val, strlen(val), exp);
}

/* ---- glob ---- */

static void test_glob_matches_like_redis(void) {
    static const struct {
        const char *pat, *s;
        int nocase, want;
    } cases[] = {
        {"*", "", 0, 1},          {"*", "abc", 0, 1},       {"a*c", "abcbc", 0, 1},
        {"a*c", "abcb", 0, 0},    {"h?llo", "hello", 0, 1}, {"h?llo", "hllo", 0, 0},
        {"h[ae]llo", "hallo", 0, 1}, {"h[^e]llo", "hello", 0, 0}, {"h[^e]llo", "hallo", 0, 1},
        {"h[a-b]llo", "hbllo", 0, 1}, {"h[b-a]llo", "hallo", 0, 1}, {"h\\*llo", "h*llo", 0, 1},
        {"h\\*llo", "hello", 0, 0}, {"HELLO", "hello", 1, 1}, {"HELLO", "hello", 0, 0},
        {"*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0, 0},
        {"[", "a", 0, 0},         {"a\\", "a\\", 0, 1},     {"[a\\]]", "]", 0, 1},
        {"user:*:name", "user:42:name", 0, 1}, {"*?", "", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = kv_glob_match(cases[i].pat, strlen(cases[i].pat), cases[i].s,
                                strlen(cases[i].s), cases[i].nocase);
        if (got != cases[i].want) {
            TEST_FAIL_AT("glob %s ~ %s: %d", cases[i].pat, cases[i].s, got);
            return;
        }
    }
}

/* ---- entries and the dict ---- */

static void test_entry_layout_with_version_fits_64_bytes(void) {
    setup();
    struct kv_entry *e = mk_str("key:000000000001", "value:0000000001", 0);
    CHECK_EQ_INT(ks_entry_size(e), 59);
#ifndef KVD_NO_JEMALLOC
    CHECK_EQ_INT(kv_malloc_size(e), 64);
#endif
    CHECK_EQ_STR(obj_encoding_name(e), "embstr");
    CHECK(ks_entry_version(e).hlc == 0 && ks_entry_version(e).node == 0);
    struct kv_version ver = {0x0123456789abcdefull, 0xfeedbeefu};
    ks_entry_set_version(e, ver);
    e = ks_set_expire(NULL, e, 12345);
    CHECK_EQ_INT(ks_entry_expire(e), 12345);
    CHECK(kv_version_cmp(ks_entry_version(e), ver) == 0);
    size_t klen, vlen;
    const char *k = ks_entry_key(e, &klen);
    CHECK_EQ_MEM(k, klen, "key:000000000001", 16);
    const char *v = obj_str(e, NULL, &vlen);
    CHECK_EQ_MEM(v, vlen, "value:0000000001", 16);
    e = ks_persist(NULL, e);
    CHECK_EQ_INT(ks_entry_expire(e), 0);
    CHECK(kv_version_cmp(ks_entry_version(e), ver) == 0);
    v = obj_str(e, NULL, &vlen);
    CHECK_EQ_MEM(v, vlen, "value:0000000001", 16);
    struct kv_entry *d = ks_entry_dup(e, "other", 5, 777);
    CHECK(kv_version_cmp(ks_entry_version(d), ver) == 0);
    CHECK_EQ_INT(ks_entry_expire(d), 777);
    ks_entry_free(d);
    ks_entry_free(e);

    /* a hashtable hash's field entries carry no version: 14 + 1 + 1 + 1 bytes */
    struct kv_entry *f = ks_field_new(KS_ENC_EMBSTR, "f", 1, 1);
    CHECK_EQ_INT(ks_entry_size(f), 17);
    CHECK(ks_entry_version(f).hlc == 0);
    ks_entry_set_version(f, ver); /* ignored */
    CHECK(ks_entry_version(f).hlc == 0);
    size_t fl;
    const char *fk = ks_entry_key(f, &fl);
    CHECK_EQ_MEM(fk, fl, "f", 1);
    ks_entry_free(f);

    char buf[OBJ_LL_BUF];
    e = mk_str("n", "-12345", 0);
    CHECK_EQ_STR(obj_encoding_name(e), "int");
    v = obj_str(e, buf, &vlen);
    CHECK_EQ_MEM(v, vlen, "-12345", 6);
    ks_entry_free(e);

    /* long key and long value use the wide length forms */
    char big[1000];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    e = mk_str(big, big, 99);
    k = ks_entry_key(e, &klen);
    v = obj_str(e, buf, &vlen);
    CHECK_EQ_INT(klen, 999);
    CHECK_EQ_INT(vlen, 999);
    CHECK_EQ_MEM(k, klen, big, 999);
    CHECK_EQ_STR(obj_encoding_name(e), "raw");
    CHECK_EQ_INT(ks_entry_expire(e), 99);
    ks_entry_free(e);
}

static void test_string_append_and_setrange_grow_across_length_forms(void) {
    setup();
    struct kv_entry *e = mk_str("k", "12", 0);
    char want[600];
    strcpy(want, "12");
    for (int i = 0; i < 50; i++) {
        e = obj_str_append(NULL, e, "abcdefghij", 10);
        strcat(want, "abcdefghij");
    }
    size_t vlen;
    const char *v = obj_str(e, NULL, &vlen);
    CHECK_EQ_MEM(v, vlen, want, strlen(want));
    CHECK_EQ_STR(obj_encoding_name(e), "raw");
    e = obj_str_setrange(NULL, e, 600, "Z", 1);
    v = obj_str(e, NULL, &vlen);
    CHECK_EQ_INT(vlen, 601);
    CHECK(v[599] == 0 && v[600] == 'Z');
    ks_entry_free(e);
}

static void test_dict_insert_find_delete_100k(void) {
    setup();
    struct kv_db *db = server.db[0];
    char key[32];
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(key, sizeof(key), "key:%d", i);
        ks_insert(db, obj_str_new(key, (size_t)n, "v", 1, 0), ks_token(key, (size_t)n));
    }
    CHECK_EQ_INT(ks_db_size(db), 100000);
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(key, sizeof(key), "key:%d", i);
        CHECK(ks_find(db, key, (size_t)n, ks_token(key, (size_t)n)) != NULL);
    }
    for (int i = 0; i < 100000; i += 2) {
        int n = snprintf(key, sizeof(key), "key:%d", i);
        CHECK_EQ_INT(ks_delete(db, key, (size_t)n, ks_token(key, (size_t)n), 0), 1);
    }
    CHECK_EQ_INT(ks_db_size(db), 50000);
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(key, sizeof(key), "key:%d", i);
        int found = ks_find(db, key, (size_t)n, ks_token(key, (size_t)n)) != NULL;
        CHECK_EQ_INT(found, i % 2);
    }
    /* delete nearly everything: the table shrinks and stays correct */
    for (int i = 1; i < 99990; i += 2) {
        int n = snprintf(key, sizeof(key), "key:%d", i);
        ks_delete(db, key, (size_t)n, ks_token(key, (size_t)n), 0);
    }
    size_t before = kv_dict_slots(&db->keys);
    ks_cron();
    while (kv_dict_rehash(&db->keys, 100)) {
    }
    CHECK(kv_dict_slots(&db->keys) < before);
    for (int i = 99991; i < 100000; i += 2) {
        int n = snprintf(key, sizeof(key), "key:%d", i);
        CHECK(ks_find(db, key, (size_t)n, ks_token(key, (size_t)n)) != NULL);
    }
    CHECK_EQ_INT(ks_db_size(db), 5);
}

struct seen {
    unsigned char *count; /* per stable key */
    int nstable;
    uint64_t last_token;
    int out_of_order;
};

static void seen_one(struct kv_entry *e, void *arg) {
    struct seen *s = arg;
    size_t klen;
    const char *k = ks_entry_key(e, &klen);
    uint64_t t = ks_entry_token(e);
    if (t < s->last_token) {
        s->out_of_order++;
    }
    s->last_token = t;
    if (klen > 7 && memcmp(k, "stable:", 7) == 0) {
        s->count[atoi(k + 7)]++;
    }
}

static void test_scan_returns_every_stable_key_once_under_churn(void) {
    setup();
    struct kv_db *db = server.db[0];
    enum { NSTABLE = 20000 };
    char key[32];
    for (int i = 0; i < NSTABLE; i++) {
        int n = snprintf(key, sizeof(key), "stable:%d", i);
        ks_insert(db, obj_str_new(key, (size_t)n, "v", 1, 0), ks_token(key, (size_t)n));
    }
    struct seen s = {calloc(NSTABLE, 1), NSTABLE, 0, 0};
    uint64_t cursor = 0;
    int calls = 0, churn = 0;
    do {
        s.last_token = cursor;
        cursor = kv_dict_scan(&db->keys, cursor, 7, seen_one, &s);
        calls++;
        /* grow hard (several resizes), then delete the churn to force shrinks */
        for (int k = 0; k < 40 && calls < 2000; k++, churn++) {
            int n = snprintf(key, sizeof(key), "churn:%d", churn);
            ks_insert(db, obj_str_new(key, (size_t)n, "v", 1, 0), ks_token(key, (size_t)n));
        }
        if (calls >= 2000 && churn > 0) {
            for (int k = 0; k < 200 && churn > 0; k++) {
                churn--;
                int n = snprintf(key, sizeof(key), "churn:%d", churn);
                ks_delete(db, key, (size_t)n, ks_token(key, (size_t)n), 0);
            }
            kv_dict_maybe_shrink(&db->keys);
        }
        kv_dict_rehash(&db->keys, 3);
    } while (cursor != 0);
    int bad = 0;
    for (int i = 0; i < NSTABLE; i++) {
        if (s.count[i] != 1) {
            bad++;
        }
    }
    free(s.count);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(s.out_of_order, 0);
    CHECK(calls > 100);
}

static void test_scan_cursor_resumes_after_last_token(void) {
    setup();
    struct kv_db *db = server.db[0];
    char key[32];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        ks_insert(db, obj_str_new(key, (size_t)n, "v", 1, 0), ks_token(key, (size_t)n));
    }
    struct seen s = {calloc(1, 1), 0, 0, 0};
    uint64_t cursor = kv_dict_scan(&db->keys, 0, 10, seen_one, &s);
    CHECK(cursor != 0);
    CHECK(cursor > s.last_token); /* next cursor is past everything emitted */
    /* every key with token < cursor was emitted: a second scan from the cursor
     * starts strictly after */
    uint64_t prev = s.last_token;
    s.last_token = 0;
    kv_dict_scan(&db->keys, cursor, 1, seen_one, &s);
    CHECK(s.last_token >= cursor && s.last_token > prev);
    free(s.count);
}

/* A page ends only at a block start (ks.h KS_SCAN_BLOCK_BITS): every position
 * kv_dict_scan returns is a multiple of 2^11, above every token emitted. */
static void test_scan_positions_are_block_starts(void) {
    setup();
    struct kv_db *db = server.db[0];
    char key[32];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(key, sizeof(key), "stable:%d", i);
        ks_insert(db, obj_str_new(key, (size_t)n, "v", 1, 0), ks_token(key, (size_t)n));
    }
    struct seen s = {calloc(10000, 1), 10000, 0, 0};
    uint64_t pos = 0;
    int calls = 0, unaligned = 0, not_past = 0;
    do {
        pos = kv_dict_scan(&db->keys, pos, 3, seen_one, &s);
        calls++;
        if (pos % ((uint64_t)1 << KS_SCAN_BLOCK_BITS) != 0) {
            unaligned++;
        }
        if (pos != 0 && pos <= s.last_token) {
            not_past++;
        }
    } while (pos != 0 && calls < 100000);
    int bad = 0;
    for (int i = 0; i < 10000; i++) {
        bad += s.count[i] != 1;
    }
    free(s.count);
    CHECK_EQ_INT(unaligned, 0);
    CHECK_EQ_INT(not_past, 0);
    CHECK_EQ_INT(bad, 0);
    CHECK(calls > 1000 && calls < 100000);
}

/* The reply of "SCAN|HSCAN ... " as the test client prints it: its cursor and
 * the number of elements; -1 when it is not a scan reply. */
static int scan_reply_parse(const char *r, unsigned long long *cursor, int *n) {
    return sscanf(r, "*2 $%*d %llu *%d", cursor, n) == 2 ? 0 : -1;
}

/* A SCAN-family loop to its end: "<prefix> <cursor> COUNT 10" until the cursor is 0
 * (at most 100,000 calls). Counts the elements, the calls, the cursors >= 2^53,
 * those that did not grow, and replies that were not scan replies. */
struct scan_walk {
    long total;
    int calls, big, backwards, bad;
};

static struct scan_walk scan_walk_all(const char *prefix) {
    struct scan_walk w = {0};
    unsigned long long cursor = 0, prev = 0;
    char line[128];
    do {
        snprintf(line, sizeof(line), "%s %llu COUNT 10", prefix, cursor);
        int n;
        if (scan_reply_parse(run(line), &cursor, &n) != 0) {
            w.bad++;
            break;
        }
        w.total += n;
        w.big += cursor >= (1ULL << 53);
        w.backwards += cursor != 0 && cursor <= prev;
        prev = cursor;
        w.calls++;
    } while (cursor != 0 && w.calls < 100000);
    return w;
}

/* node-redis 4 reads the cursor with Number(): every SCAN/HSCAN cursor kvd replies
 * stays below 2^53, strictly grows, and a full loop over 10,000 keys (and 1,000
 * hashtable fields) returns each exactly once; a cursor >= 2^53 is the end. */
static void test_cmd_scan_cursors_below_2_53_and_complete(void) {
    setup();
    char line[128];
    for (int i = 0; i < 10000; i++) {
        snprintf(line, sizeof(line), "SET k%d v", i);
        run(line);
    }
    struct scan_walk w = scan_walk_all("SCAN");
    CHECK_EQ_INT(w.bad, 0);
    CHECK_EQ_INT(w.big, 0);
    CHECK_EQ_INT(w.backwards, 0);
    CHECK_EQ_INT(w.total, 10000); /* nothing written meanwhile: each key once */
    CHECK(w.calls > 500);
    RUN_EQ("SCAN 9007199254740992", "*2 $1 0 *0");
    RUN_EQ("SCAN 18446744073709551615 COUNT 5", "*2 $1 0 *0");
    RUN_EQ("SCAN 9007199254740992 COUNT 0", "-ERR syntax error");

    for (int i = 0; i < 1000; i++) {
        snprintf(line, sizeof(line), "HSET big f%d v", i);
        run(line);
    }
    RUN_EQ("OBJECT ENCODING big", "$9 hashtable");
    w = scan_walk_all("HSCAN big");
    CHECK_EQ_INT(w.bad, 0);
    CHECK_EQ_INT(w.big, 0);
    CHECK_EQ_INT(w.backwards, 0);
    CHECK_EQ_INT(w.total, 2000); /* field and value per field */
    CHECK(w.calls > 50);
    RUN_EQ("HSCAN big 9007199254740992", "*2 $1 0 *0");
    RUN_EQ("DEL big", ":1");
}

/* Keys whose tokens share their top 32 bits share a bucket and a link tag in every
 * table up to 2^16 buckets (ks_dict.c "TAGGED LINKS"): the lookup must still tell
 * them apart by key, and chains must stay in token order. */
struct tok_key {
    uint64_t token;
    int i;
};

static int tok_key_cmp(const void *a, const void *b) {
    uint64_t x = ((const struct tok_key *)a)->token, y = ((const struct tok_key *)b)->token;
    return x < y ? -1 : x > y;
}

static void test_dict_tells_apart_keys_with_equal_tags(void) {
    setup();
    struct kv_db *db = server.db[0];
    enum { N = 300000, MAXPAIRS = 6 };
    struct tok_key *all = malloc(N * sizeof(*all));
    char key[32], key2[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "c%d", i);
        all[i] = (struct tok_key){ks_token(key, (size_t)n), i};
    }
    qsort(all, N, sizeof(*all), tok_key_cmp);
    int pa[MAXPAIRS], pb[MAXPAIRS], npairs = 0;
    for (int i = 1; i < N && npairs < MAXPAIRS; i++) {
        if (all[i].token >> 32 == all[i - 1].token >> 32 && all[i].token != all[i - 1].token) {
            pa[npairs] = all[i - 1].i; /* the smaller token */
            pb[npairs] = all[i].i;
            npairs++;
            i++;
        }
    }
    free(all);
    CHECK(npairs >= 2); /* about 10 expected among 300k keys */
    /* pair 0: only its larger-token key is in; the rest: both, inserted between
     * filler keys so that they move through several rehashes */
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(key, sizeof(key), "f%d", i);
        ks_insert(db, obj_str_new(key, (size_t)n, "v", 1, 0), ks_token(key, (size_t)n));
        if (i % 3000 == 0 && i / 3000 < npairs) {
            int p = i / 3000;
            for (int m = 0; m < 2; m++) {
                if (p == 0 && m == 0) {
                    continue;
                }
                n = snprintf(key, sizeof(key), "c%d", m ? pb[p] : pa[p]);
                ks_insert(db, obj_str_new(key, (size_t)n, key, (size_t)n, 0),
                          ks_token(key, (size_t)n));
            }
        }
    }
    for (int p = 0; p < npairs; p++) {
        for (int m = 0; m < 2; m++) {
            int n = snprintf(key, sizeof(key), "c%d", m ? pb[p] : pa[p]);
            struct kv_entry *e = ks_find(db, key, (size_t)n, ks_token(key, (size_t)n));
            if (p == 0 && m == 0) {
                CHECK(e == NULL); /* its twin is in, with the same tag */
                continue;
            }
            CHECK(e != NULL && ks_entry_key_eq(e, key, (size_t)n));
        }
    }
    /* replacing one twin (the link keeps its tag), deleting the other */
    int n = snprintf(key, sizeof(key), "c%d", pa[1]);
    uint64_t t = ks_token(key, (size_t)n);
    ks_replace(db, ks_find(db, key, (size_t)n, t), obj_str_new(key, (size_t)n, "new", 3, 0), t);
    int n2 = snprintf(key2, sizeof(key2), "c%d", pb[1]);
    CHECK_EQ_INT(ks_delete(db, key2, (size_t)n2, ks_token(key2, (size_t)n2), 0), 1);
    struct kv_entry *e = ks_find(db, key, (size_t)n, t);
    size_t vlen;
    CHECK(e != NULL && e->enc != KS_ENC_INT && memcmp(ks_val_bytes(e, &vlen), "new", 3) == 0);
    CHECK(ks_find(db, key2, (size_t)n2, ks_token(key2, (size_t)n2)) == NULL);
    /* the whole table in token order, nothing lost (finish any rehash first) */
    while (kv_dict_rehash(&db->keys, 100)) {
    }
    struct seen s = {calloc(1, 1), 0, 0, 0};
    uint64_t cursor = 0;
    size_t before = 0;
    do {
        cursor = kv_dict_scan(&db->keys, cursor, 100, seen_one, &s);
    } while (cursor != 0 && ++before < 100000);
    CHECK_EQ_INT(s.out_of_order, 0);
    free(s.count);
    CHECK_EQ_INT(ks_db_size(db), 20000 + (size_t)(2 * npairs - 1) - 1);
}

/* ---- expiry ---- */

static void test_lazy_expiry_never_returns_expired_value(void) {
    setup();
    long long now = server.mstime;
    long long expired_before = server.stat_expiredkeys;
    struct kv_slice k = sl("temp");
    coord_set_str(&tc, &k, "x", 1, now + 100, 0);
    CHECK(coord_lookup_read(&tc, &k) != NULL);
    server.mstime = now + 100;
    CHECK(coord_lookup_read(&tc, &k) == NULL);
    CHECK_EQ_INT(server.stat_expiredkeys, expired_before + 1);
    CHECK_EQ_INT(ks_db_size(tc.db), 0);
    CHECK_EQ_INT(ks_db_expires(tc.db), 0);
}

static void test_active_expiry_removes_expired_keys(void) {
    setup();
    struct kv_db *db = server.db[0];
    long long now = kv_mstime();
    char key[32];
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(key, sizeof(key), "e%d", i);
        long long when = i % 4 == 0 ? now + 3600000 : now - 1;
        ks_insert(db, obj_str_new(key, (size_t)n, "v", 1, when), ks_token(key, (size_t)n));
    }
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof(key), "p%d", i);
        ks_insert(db, obj_str_new(key, (size_t)n, "v", 1, 0), ks_token(key, (size_t)n));
    }
    CHECK_EQ_INT(ks_db_expires(db), 20000);
    for (int i = 0; i < 200 && ks_db_expires(db) > 5000; i++) {
        ks_active_expire_cycle(0);
    }
    CHECK_EQ_INT(ks_db_expires(db), 5000);
    CHECK_EQ_INT(ks_db_size(db), 6000);
    CHECK(ks_db_avg_ttl(db) > 0);
    /* the volatile array stays consistent: every slot points to a TTL key */
    for (size_t i = 0; i < db->vol_len; i++) {
        CHECK(ks_entry_has_expire(db->vol[i]));
    }
}

static void test_dict_sample_finds_entries_mid_rehash(void) {
    setup();
    struct kv_dict d;
    kv_dict_init(&d);
    char key[32];
    /* 2^14 + 1 keys: the table has just started growing to 2^15 buckets, so the
     * new table's upper half is empty and table 0's low buckets are moved */
    for (int i = 0; i <= 1 << 14; i++) {
        int n = snprintf(key, sizeof(key), "s%d", i);
        kv_dict_insert(&d, obj_str_new(key, (size_t)n, "v", 1, 0), ks_token(key, (size_t)n));
    }
    CHECK(kv_dict_is_rehashing(&d));
    struct kv_entry *out[8];
    size_t total = 0;
    for (int r = 0; r < 2000; r++) {
        size_t n = kv_dict_sample(&d, out, 5);
        CHECK(n >= 1 && n <= 5);
        for (size_t k = 0; k < n; k++) {
            CHECK(out[k] != NULL && out[k]->type == KS_TYPE_STRING);
        }
        total += n;
    }
    CHECK(total > 2000 * 4); /* nearly always full samples */
    CHECK_EQ_INT(kv_dict_sample(&d, out, 0), 0);
    kv_dict_clear(&d, ks_entry_free);
    CHECK_EQ_INT(kv_dict_sample(&d, out, 5), 0);
}

/* ---- hashes ---- */

/* HSET of an existing field of a hashtable hash: a value of the same length is
 * written over the old one (the same field entry), another length replaces the
 * entry in its link; every field stays readable, also mid-rehash. */
static void test_hashtable_field_overwrite_in_place_or_relinked(void) {
    setup();
    struct kv_entry *e = hash_new("h", 1, 0);
    char big[200], f[32];
    memset(big, 'a', sizeof(big));
    CHECK_EQ_INT(hash_set(NULL, &e, "f", 1, big, 100), 1);
    CHECK_EQ_STR(obj_encoding_name(e), "hashtable");
    struct kv_dict *d = ks_val_dict(e);
    uint64_t tok = ks_token("f", 1);
    for (int i = 0; i < 1000; i++) {
        int fl = snprintf(f, sizeof(f), "g%d", i);
        CHECK_EQ_INT(hash_set(NULL, &e, f, (size_t)fl, f, (size_t)fl), 1);
        if (i % 97 == 0) { /* overwrite f now and then, also while the dict rehashes */
            struct kv_entry *fe = kv_dict_find(d, "f", 1, tok);
            big[0] = (char)('b' + i % 20);
            CHECK_EQ_INT(hash_set(NULL, &e, "f", 1, big, 100), 0);
            CHECK(kv_dict_find(d, "f", 1, tok) == fe); /* in place */
        }
    }
    const char *got;
    size_t glen;
    CHECK(hash_get(e, "f", 1, &got, &glen));
    CHECK_EQ_MEM(got, glen, big, 100);
    CHECK_EQ_INT(hash_set(NULL, &e, "f", 1, "short", 5), 0);
    CHECK(hash_get(e, "f", 1, &got, &glen));
    CHECK_EQ_MEM(got, glen, "short", 5);
    CHECK_EQ_INT(hash_set(NULL, &e, "f", 1, big, sizeof(big)), 0);
    CHECK(hash_get(e, "f", 1, &got, &glen));
    CHECK_EQ_MEM(got, glen, big, sizeof(big));
    CHECK_EQ_INT(hash_len(e), 1001);
    for (int i = 0; i < 1000; i++) {
        int fl = snprintf(f, sizeof(f), "g%d", i);
        CHECK(hash_get(e, f, (size_t)fl, &got, &glen));
        CHECK_EQ_MEM(got, glen, f, (size_t)fl);
    }
    ks_entry_free(e);
}

static void test_hash_listpack_converts_to_hashtable(void) {
    setup();
    struct kv_entry *e = hash_new("h", 1, 0);
    char f[32], v[32];
    /* up to the limit (hash-max-listpack-entries, 512 as Redis 7.0) it stays compact */
    const int max = (int)ks_hash_max_listpack_entries;
    for (int i = 0; i < max; i++) {
        int fl = snprintf(f, sizeof(f), "f%d", i), vl = snprintf(v, sizeof(v), "v%d", i);
        CHECK_EQ_INT(hash_set(NULL, &e, f, (size_t)fl, v, (size_t)vl), 1);
    }
    CHECK_EQ_STR(obj_encoding_name(e), "listpack");
    CHECK_EQ_INT(hash_set(NULL, &e, "f5", 2, "longer-value", 12), 0);
    CHECK_EQ_INT(hash_set(NULL, &e, "f6", 2, "", 0), 0);
    CHECK_EQ_INT(hash_del(NULL, &e, "f7", 2), 1);
    CHECK_EQ_INT(hash_del(NULL, &e, "f7", 2), 0);
    CHECK_EQ_INT(hash_len(e), max - 1);
    CHECK_EQ_INT(hash_set(NULL, &e, "f7", 2, "back", 4), 1);
    CHECK_EQ_INT(hash_set(NULL, &e, "extra", 5, "x", 1), 1);
    CHECK_EQ_STR(obj_encoding_name(e), "hashtable");
    CHECK_EQ_INT(hash_len(e), max + 1);
    const char *got;
    size_t glen;
    CHECK(hash_get(e, "f5", 2, &got, &glen));
    CHECK_EQ_MEM(got, glen, "longer-value", 12);
    CHECK(hash_get(e, "f6", 2, &got, &glen) && glen == 0);
    CHECK(hash_get(e, "f7", 2, &got, &glen));
    CHECK_EQ_MEM(got, glen, "back", 4);
    CHECK(hash_get(e, "f100", 4, &got, &glen));
    CHECK_EQ_MEM(got, glen, "v100", 4);
    ks_entry_free(e);

    /* a value longer than hash-max-listpack-value converts at once */
    e = hash_new("h2", 2, 0);
    char big[100];
    memset(big, 'x', sizeof(big));
    hash_set(NULL, &e, "a", 1, "1", 1);
    CHECK_EQ_STR(obj_encoding_name(e), "listpack");
    hash_set(NULL, &e, "b", 1, big, sizeof(big));
    CHECK_EQ_STR(obj_encoding_name(e), "hashtable");
    CHECK(hash_get(e, "a", 1, &got, &glen));
    CHECK_EQ_MEM(got, glen, "1", 1);
    ks_entry_free(e);
}

/* ---- commands end to end on the fake client ---- */

static void test_cmd_strings(void) {
    setup();
    RUN_EQ("SET foo bar", "+OK");
    RUN_EQ("GET foo", "$3 bar");
    RUN_EQ("SET foo 12345", "+OK");
    RUN_EQ("OBJECT ENCODING foo", "$3 int");
    RUN_EQ("INCR foo", ":12346");
    RUN_EQ("INCRBY foo -6", ":12340");
    RUN_EQ("DECRBY foo -9223372036854775808", "-ERR decrement would overflow");
    RUN_EQ("SET big 9223372036854775807", "+OK");
    RUN_EQ("INCR big", "-ERR increment or decrement would overflow");
    RUN_EQ("APPEND foo xyz", ":8");
    RUN_EQ("GET foo", "$8 12340xyz");
    RUN_EQ("INCR foo", "-ERR value is not an integer or out of range");
    RUN_EQ("STRLEN foo", ":8");
    RUN_EQ("GETRANGE foo 1 -2", "$6 2340xy");
    RUN_EQ("GETRANGE foo -1 -5", "$0 ");
    RUN_EQ("SETRANGE foo 10 AB", ":12");
    RUN_EQ("SETRANGE foo -1 AB", "-ERR offset is out of range");
    RUN_EQ("SETRANGE foo 536870911 AB", "-ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    RUN_EQ("SETRANGE nokey 2 xy", ":4");
    RUN_EQ("SET foo v NX", "$-1");
    RUN_EQ("SET foo v XX GET", "$12 12340xyz");
    RUN_EQ("SET foo v NX XX", "-ERR syntax error");
    RUN_EQ("SET foo v EX 0", "-ERR invalid expire time in 'set' command");
    RUN_EQ("SET foo v EX abc", "-ERR value is not an integer or out of range");
    RUN_EQ("SET foo v EX 100 KEEPTTL", "-ERR syntax error");
    RUN_EQ("SET foo v EX 100", "+OK");
    RUN_EQ("TTL foo", ":100");
    RUN_EQ("SET foo w KEEPTTL", "+OK");
    RUN_EQ("TTL foo", ":100");
    RUN_EQ("SET foo w", "+OK");
    RUN_EQ("TTL foo", ":-1");
    RUN_EQ("SETNX foo z", ":0");
    RUN_EQ("SETNX foo2 z", ":1");
    RUN_EQ("SETEX foo 0 z", "-ERR invalid expire time in 'setex' command");
    RUN_EQ("PSETEX foo 1500 z", "+OK");
    RUN_EQ("PTTL foo", ":1500");
    RUN_EQ("GETSET foo y", "$1 z");
    RUN_EQ("GETEX foo PX 5000", "$1 y");
    RUN_EQ("PTTL foo", ":5000");
    RUN_EQ("GETEX foo PERSIST", "$1 y");
    RUN_EQ("TTL foo", ":-1");
    RUN_EQ("GETEX foo KEEPTTL", "-ERR syntax error");
    RUN_EQ("GETDEL foo", "$1 y");
    RUN_EQ("GET foo", "$-1");
    RUN_EQ("MSET a 1 b 2", "+OK");
    RUN_EQ("MSET a 1 b", "-ERR wrong number of arguments for 'mset' command");
    RUN_EQ("MGET a b nokey2", "*3 $1 1 $1 2 $-1");
    RUN_EQ("MSETNX a 3 c 4", ":0");
    RUN_EQ("MSETNX c 3 d 4", ":1");
    RUN_EQ("SET f 10.5", "+OK");
    RUN_EQ("INCRBYFLOAT f 0.1", "$4 10.6");
    RUN_EQ("INCRBYFLOAT f -5.6", "$1 5");
    RUN_EQ("INCRBYFLOAT f abc", "-ERR value is not a valid float");
    RUN_EQ("SET g 1e308", "+OK");
    CHECK(strlen(run("INCRBYFLOAT g 1e308")) > 300); /* fixed notation, as Redis */
    RUN_EQ("HSET h a 1", ":1");
    RUN_EQ("GET h", "-WRONGTYPE Operation against a key holding the wrong kind of value");
    RUN_EQ("SET h x GET", "-WRONGTYPE Operation against a key holding the wrong kind of value");
    RUN_EQ("SET h x", "+OK");
    RUN_EQ("GET h", "$1 x");
}

static void test_cmd_keys(void) {
    setup();
    RUN_EQ("MSET a 1 b 2 c 3", "+OK");
    RUN_EQ("EXISTS a a b zz", ":3");
    RUN_EQ("TYPE a", "+string");
    RUN_EQ("TYPE zz", "+none");
    RUN_EQ("DEL a zz", ":1");
    RUN_EQ("UNLINK b", ":1");
    RUN_EQ("DBSIZE", ":1");
    RUN_EQ("RENAME zz q", "-ERR no such key");
    RUN_EQ("EXPIRE c 100", ":1");
    RUN_EQ("RENAME c d", "+OK");
    RUN_EQ("TTL d", ":100");
    RUN_EQ("RENAME d d", "+OK");
    RUN_EQ("SET e 5", "+OK");
    RUN_EQ("RENAMENX d e", ":0");
    RUN_EQ("RENAMENX d f", ":1");
    RUN_EQ("KEYS e*", "*1 $1 e");
    RUN_EQ("KEYS ?", "*2 $1 f $1 e");
    RUN_EQ("KEYS f*", "*1 $1 f");
    RUN_EQ("COPY f f", "-ERR source and destination objects are the same");
    RUN_EQ("COPY f g", ":1");
    RUN_EQ("COPY f g", ":0");
    RUN_EQ("COPY f g REPLACE", ":1");
    RUN_EQ("COPY f g DB 99", "-ERR DB index is out of range");
    RUN_EQ("COPY f g DB 1", ":1");
    RUN_EQ("TTL g", ":100");
    RUN_EQ("OBJECT ENCODING e", "$3 int");
    RUN_EQ("OBJECT ENCODING nokey", "$-1");
    RUN_EQ("OBJECT REFCOUNT e", ":1");
    RUN_EQ("OBJECT IDLETIME e", ":0");
    RUN_EQ("OBJECT FREQ e", "-ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
    RUN_EQ("OBJECT ENCODING", "-ERR wrong number of arguments for 'object|encoding' command");
    RUN_EQ("OBJECT foo x", "-ERR unknown subcommand 'foo'. Try OBJECT HELP.");
    RUN_EQ("SCAN abc", "-ERR invalid cursor");
    RUN_EQ("SCAN 0 COUNT 0", "-ERR syntax error");
    RUN_EQ("SCAN 0 COUNT 100 MATCH e", "*2 $1 0 *1 $1 e");
    RUN_EQ("SCAN 0 TYPE hash", "*2 $1 0 *0");
    RUN_EQ("TOUCH e f nokey", ":2");
    RUN_EQ("FLUSHDB foo", "-ERR syntax error");
    RUN_EQ("FLUSHDB ASYNC", "+OK");
    RUN_EQ("DBSIZE", ":0");
    RUN_EQ("RANDOMKEY", "$-1");
    RUN_EQ("SET only 1", "+OK");
    RUN_EQ("RANDOMKEY", "$4 only");
    RUN_EQ("MEMORY USAGE nokey", "$-1");
    RUN_EQ("MEMORY USAGE only SAMPLES -1", "-ERR syntax error");
    RUN_EQ("SET soon v PX 10", "+OK");
    server.mstime += 10;
    RUN_EQ("SCAN 0 MATCH soon", "*2 $1 0 *0");
    CHECK_EQ_INT(ks_db_size(tc.db), 1); /* SCAN deleted the expired key */
    RUN_EQ("FLUSHALL", "+OK");
}

static void test_cmd_expire(void) {
    setup();
    RUN_EQ("SET k v", "+OK");
    RUN_EQ("TTL k", ":-1");
    RUN_EQ("TTL nokey", ":-2");
    RUN_EQ("EXPIRE k 10 foo", "-ERR Unsupported option foo");
    RUN_EQ("EXPIRE k abc foo", "-ERR Unsupported option foo");
    RUN_EQ("EXPIRE k 10 NX XX", "-ERR NX and XX, GT or LT options at the same time are not compatible");
    RUN_EQ("EXPIRE k 10 GT LT", "-ERR GT and LT options at the same time are not compatible");
    RUN_EQ("EXPIRE k 9223372036854775807", "-ERR invalid expire time in 'expire' command");
    RUN_EQ("EXPIRE k 100 XX", ":0");
    RUN_EQ("EXPIRE k 100 GT", ":0");
    RUN_EQ("EXPIRE k 100 LT", ":1");
    RUN_EQ("EXPIRE k 50 NX", ":0");
    RUN_EQ("EXPIRE k 50 GT", ":0");
    RUN_EQ("EXPIRE k 200 GT", ":1");
    RUN_EQ("TTL k", ":200");
    RUN_EQ("PERSIST k", ":1");
    RUN_EQ("PERSIST k", ":0");
    RUN_EQ("PEXPIREAT k 99999999999500", ":1");
    RUN_EQ("EXPIRETIME k", ":100000000000");
    RUN_EQ("PEXPIRETIME k", ":99999999999500");
    RUN_EQ("EXPIRE k -1", ":1");
    RUN_EQ("EXISTS k", ":0");
    RUN_EQ("EXPIRE nokey 10", ":0");
}

static void test_cmd_hashes(void) {
    setup();
    RUN_EQ("HSET h a 1 b 2", ":2");
    RUN_EQ("HSET h a 3", ":0");
    RUN_EQ("HSET h a", "-ERR wrong number of arguments for 'hset' command");
    RUN_EQ("HGET h a", "$1 3");
    RUN_EQ("HGET h zz", "$-1");
    RUN_EQ("HMGET h a zz b", "*3 $1 3 $-1 $1 2");
    RUN_EQ("HGETALL h", "*4 $1 a $1 3 $1 b $1 2");
    RUN_EQ("HKEYS h", "*2 $1 a $1 b");
    RUN_EQ("HVALS h", "*2 $1 3 $1 2");
    RUN_EQ("HLEN h", ":2");
    RUN_EQ("HSTRLEN h a", ":1");
    RUN_EQ("HEXISTS h b", ":1");
    RUN_EQ("HSETNX h a 9", ":0");
    RUN_EQ("HSETNX h c 9", ":1");
    RUN_EQ("HINCRBY h c 10", ":19");
    RUN_EQ("HINCRBY h c x", "-ERR value is not an integer or out of range");
    RUN_EQ("HINCRBY h c 9223372036854775807", "-ERR increment or decrement would overflow");
    RUN_EQ("HSET h s x", ":1");
    RUN_EQ("HINCRBY h s 1", "-ERR hash value is not an integer");
    RUN_EQ("HINCRBYFLOAT h s 1", "-ERR hash value is not a float");
    RUN_EQ("HINCRBYFLOAT h c 0.5", "$4 19.5");
    RUN_EQ("HINCRBYFLOAT new f 2.5", "$3 2.5");
    RUN_EQ("HDEL h a b c s zz", ":4");
    RUN_EQ("EXISTS h", ":0");
    RUN_EQ("HSCAN h 0", "*2 $1 0 *0");
    RUN_EQ("HSCAN new x", "-ERR invalid cursor");
    RUN_EQ("HSCAN new 0 MATCH f*", "*2 $1 0 *2 $1 f $3 2.5");
    RUN_EQ("HRANDFIELD nokey", "$-1");
    RUN_EQ("HRANDFIELD nokey 2", "*0");
    RUN_EQ("HRANDFIELD new", "$1 f");
    RUN_EQ("HRANDFIELD new 5 WITHVALUES", "*2 $1 f $3 2.5");
    RUN_EQ("HRANDFIELD new -2", "*2 $1 f $1 f");
    RUN_EQ("HRANDFIELD new 1 foo", "-ERR syntax error");
    RUN_EQ("SET s v", "+OK");
    RUN_EQ("HSET s a 1", "-WRONGTYPE Operation against a key holding the wrong kind of value");
    RUN_EQ("OBJECT ENCODING new", "$8 listpack");
}

struct field_seen {
    unsigned char count[1000];
};

static void field_seen_one(const char *f, size_t flen, const char *v, size_t vlen, void *arg) {
    struct field_seen *s = arg;
    (void)flen;
    (void)v;
    (void)vlen;
    s->count[atoi(f + 1)]++;
}

/* A big hash: hashtable encoding; HSCAN by cursor covers every field once. */
static void test_cmd_hscan_large_hash(void) {
    setup();
    char line[128];
    for (int i = 0; i < 1000; i++) {
        snprintf(line, sizeof(line), "HSET big f%d v%d", i, i);
        run(line);
    }
    RUN_EQ("OBJECT ENCODING big", "$9 hashtable");
    RUN_EQ("HLEN big", ":1000");
    struct kv_slice key = sl("big");
    struct kv_entry *e = coord_lookup_read(&tc, &key);
    CHECK(e != NULL);
    struct field_seen s;
    memset(&s, 0, sizeof(s));
    int calls = 0;
    uint64_t cursor = 0;
    do {
        cursor = hash_scan(e, cursor, 10, field_seen_one, &s);
        calls++;
    } while (cursor != 0 && calls < 10000);
    CHECK(calls > 5 && calls < 10000);
    for (int i = 0; i < 1000; i++) {
        CHECK_EQ_INT(s.count[i], 1);
    }
    RUN_EQ("HDEL big f0", ":1");
    RUN_EQ("DEL big", ":1");
}

/* Random SET/APPEND/SETRANGE/EXPIRE/PERSIST/DEL against a plain model: entries
 * move when they grow or gain a TTL; the dict link and the volatile array must
 * follow them. */
static void test_model_random_string_ops(void) {
    setup();
    enum { NKEYS = 300, OPS = 20000 };
    static char model[NKEYS][1200];
    static int exists[NKEYS], ttl[NKEYS];
    memset(exists, 0, sizeof(exists));
    memset(ttl, 0, sizeof(ttl));
    char line[1400], val[700], want[1300];
    srand(7);
    for (int op = 0; op < OPS; op++) {
        int k = rand() % NKEYS, r = rand() % 7;
        int vl = (rand() % 3 == 0) ? rand() % 600 + 1 : rand() % 20 + 1;
        for (int i = 0; i < vl; i++) {
            val[i] = (char)('a' + (op + i) % 26);
        }
        if (rand() % 4 == 0) {
            vl = snprintf(val, sizeof(val), "%d", rand() - RAND_MAX / 2);
        }
        val[vl] = '\0';
        if (r == 0 || (r == 1 && strlen(model[k]) + (size_t)vl >= 1100)) {
            snprintf(line, sizeof(line), "SET k%d %s", k, val);
            run(line);
            snprintf(model[k], sizeof(model[k]), "%s", val);
            exists[k] = 1;
            ttl[k] = 0;
        } else if (r == 1) {
            snprintf(line, sizeof(line), "APPEND k%d %s", k, val);
            run(line);
            strcat(model[k], val);
            exists[k] = 1;
        } else if (r == 2 && exists[k]) {
            size_t off = strlen(model[k]) / 2;
            snprintf(line, sizeof(line), "SETRANGE k%d %zu %s", k, off, val);
            run(line);
            if (off + (size_t)vl < 1100) {
                size_t oldlen = strlen(model[k]);
                memcpy(model[k] + off, val, (size_t)vl);
                if (off + (size_t)vl > oldlen) {
                    model[k][off + (size_t)vl] = '\0';
                }
            } else {
                snprintf(line, sizeof(line), "DEL k%d", k);
                run(line);
                exists[k] = 0;
                model[k][0] = '\0';
            }
        } else if (r == 3) {
            snprintf(line, sizeof(line), "EXPIRE k%d 1000", k);
            run(line);
            ttl[k] = exists[k];
        } else if (r == 4) {
            snprintf(line, sizeof(line), "PERSIST k%d", k);
            run(line);
            ttl[k] = 0;
        } else if (r == 5) {
            snprintf(line, sizeof(line), "DEL k%d", k);
            run(line);
            exists[k] = ttl[k] = 0;
            model[k][0] = '\0';
        } else {
            snprintf(line, sizeof(line), "GET k%d", k);
            const char *got = run(line);
            if (exists[k]) {
                int n = snprintf(want, 32, "$%zu ", strlen(model[k]));
                memcpy(want + n, model[k], strlen(model[k]) + 1);
            } else {
                snprintf(want, sizeof(want), "$-1");
            }
            CHECK_EQ_STR(got, want);
        }
    }
    size_t nexists = 0, nttl = 0;
    for (int k = 0; k < NKEYS; k++) {
        nexists += (size_t)exists[k];
        nttl += (size_t)ttl[k];
        snprintf(line, sizeof(line), "TTL k%d", k);
        CHECK_EQ_STR(run(line), !exists[k] ? ":-2" : ttl[k] ? ":1000" : ":-1");
    }
    CHECK_EQ_INT(ks_db_size(tc.db), nexists);
    CHECK_EQ_INT(ks_db_expires(tc.db), nttl);
    for (size_t i = 0; i < tc.db->vol_len; i++) {
        CHECK(ks_entry_has_expire(tc.db->vol[i]));
    }
}

static struct kv_version version_of(const char *key) {
    struct kv_slice k = sl(key);
    struct kv_entry *e = coord_lookup(&tc, &k, COORD_NOTOUCH | COORD_NOSTATS);
    struct kv_version none = {0, 0};
    return e ? ks_entry_version(e) : none;
}

static void test_every_write_stamps_a_newer_version_even_when_the_clock_goes_back(void) {
    setup();
    server.node_tag = 0x5eed;
    const char *cmds[] = {
        "SET k 1", "INCR k", "APPEND k x", "SETRANGE k 0 y", "EXPIRE k 1000", "PERSIST k",
        "SET k 5 KEEPTTL", "INCRBYFLOAT k 1.5", "GETSET k 2", "SET k 3 EX 100000", "GETEX k PERSIST",
        "RENAME k k2", "COPY k2 k", "HSET h f v", "HINCRBY h n 1", "HDEL h f", "HSET h g w",
    };
    struct kv_version prev = {0, 0};
    long long now = kv_mstime();
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        /* every other command runs an hour earlier than the one before */
        server.mstime = now - (long long)(i % 2) * 3600000;
        const char *r = run(cmds[i]);
        CHECK(r[0] != '-');
        const char *key = strstr(cmds[i], " h ") ? "h" : strstr(cmds[i], "k2") ? "k2" : "k";
        if (strncmp(cmds[i], "COPY", 4) == 0) {
            key = "k";
        }
        struct kv_version v = version_of(key);
        if (kv_version_cmp(v, prev) <= 0) {
            TEST_FAIL_AT("after %s: version %llx <= %llx", cmds[i], (unsigned long long)v.hlc,
                         (unsigned long long)prev.hlc);
        }
        CHECK_EQ_INT(v.node, 0x5eed);
        prev = v;
    }
    /* a version held in memory that is far ahead (restored from disk, later a
     * peer's) is still exceeded by the next write */
    struct kv_slice k = sl("k");
    struct kv_entry *e = coord_lookup(&tc, &k, COORD_NOTOUCH);
    struct kv_version ahead = {HLC_MAKE((uint64_t)now + 86400000, 7), 1};
    ks_entry_set_version(e, ahead);
    RUN_EQ("SET k 9", "+OK");
    CHECK(kv_version_cmp(version_of("k"), ahead) > 0);
    server.node_tag = 0;
}

static void test_memory_per_key(void) {
#ifdef KVD_NO_JEMALLOC
    printf("memory per key: skipped (no jemalloc)\n");
#else
    setup();
    struct kv_db *db = server.db[0];
    uint64_t epoch = 1;
    size_t sz = sizeof(epoch), before, after;
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    sz = sizeof(before);
    mallctl("stats.allocated", &before, &sz, NULL, 0);
    char key[32], val[32];
    enum { N = 100000 };
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key:%012d", i);
        snprintf(val, sizeof(val), "val:%012d", i);
        ks_insert(db, obj_str_new(key, 16, val, 16, 0), ks_token(key, 16));
    }
    mallctl("epoch", &epoch, &sz, &epoch, sizeof(epoch));
    sz = sizeof(after);
    mallctl("stats.allocated", &after, &sz, NULL, 0);
    double per_key = (double)(after - before) / N;
    printf("memory per key (16-byte key, 16-byte value, %d keys): %.1f bytes\n", N, per_key);
    CHECK(per_key < 80);
#endif
}

int main(void) {
    TEST_RUN(test_glob_matches_like_redis);
    TEST_RUN(test_entry_layout_with_version_fits_64_bytes);
    TEST_RUN(test_string_append_and_setrange_grow_across_length_forms);
    TEST_RUN(test_dict_insert_find_delete_100k);
    TEST_RUN(test_scan_returns_every_stable_key_once_under_churn);
    TEST_RUN(test_scan_cursor_resumes_after_last_token);
    TEST_RUN(test_scan_positions_are_block_starts);
    TEST_RUN(test_cmd_scan_cursors_below_2_53_and_complete);
    TEST_RUN(test_dict_sample_finds_entries_mid_rehash);
    TEST_RUN(test_dict_tells_apart_keys_with_equal_tags);
    TEST_RUN(test_lazy_expiry_never_returns_expired_value);
    TEST_RUN(test_active_expiry_removes_expired_keys);
    TEST_RUN(test_hash_listpack_converts_to_hashtable);
    TEST_RUN(test_hashtable_field_overwrite_in_place_or_relinked);
    TEST_RUN(test_cmd_strings);
    TEST_RUN(test_cmd_keys);
    TEST_RUN(test_cmd_expire);
    TEST_RUN(test_cmd_hashes);
    TEST_RUN(test_cmd_hscan_large_hash);
    TEST_RUN(test_model_random_string_ops);
    TEST_RUN(test_every_write_stamps_a_newer_version_even_when_the_clock_goes_back);
    TEST_RUN(test_memory_per_key);
    ks_deinit();
    resp_out_deinit(&tc.out);
    TEST_MAIN_END();
}
