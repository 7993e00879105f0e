/* cluster/fields_test.c: field records of big hashes (cluster/fields.c): the codec
 * round trip, every malformed value refused (and a bounded fuzz of mutations), the
 * per-field merge (commutative, floors, plain records against field records), and
 * the read repair diff. */
#include "cluster/fields.h"

#include <stdlib.h>
#include <string.h>

#include "tests/test.h"

static uint64_t rng_state = 2463534242ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A FIELDS record from "field=value@hlc" / "field=-@hlc" (tombstone) specs, in
 * the order given; floor and the record's version as given. */
struct built {
    struct msg_buf val;
    struct msg_record rec;
};

static void build(struct built *b, uint64_t top, uint64_t floor, const char *const *spec,
                  size_t n) {
    memset(b, 0, sizeof(*b));
    fields_put_head(&b->val, (struct kv_version){floor, 1}, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(spec[i], '='), *at = strchr(spec[i], '@');
        struct fields_entry e = {{strtoull(at + 1, NULL, 10), 1}, eq[1] == '-', spec[i],
                                 (size_t)(eq - spec[i]), eq + 1, (size_t)(at - eq - 1)};
        fields_put(&b->val, &e);
    }
    b->rec = (struct msg_record){.v = {top, 1}, .val = b->val.p, .vlen = b->val.len,
                                 .fields = 1};
}

/* "f=v@5 g=-@7" of a FIELDS record (floor first as "floor@N"). */
static void show(const struct msg_record *r, char *out, size_t cap) {
    struct kv_version floor;
    uint32_t n;
    size_t used = 0;
    if (fields_check(r->val, r->vlen, r->v, &floor, &n, NULL, 0) != MSG_OK) {
        snprintf(out, cap, "INVALID");
        return;
    }
    used += (size_t)snprintf(out, cap, "floor@%llu", (unsigned long long)floor.hlc);
    struct fields_iter it;
    fields_iter_init(&it, r->val, r->vlen);
    struct fields_entry e;
    while (fields_next(&it, &e) && used < cap) {
        used += (size_t)snprintf(out + used, cap - used, " %.*s=%.*s@%llu", (int)e.flen, e.f,
                                 e.deleted ? 1 : (int)e.vlen, e.deleted ? "-" : e.val,
                                 (unsigned long long)e.v.hlc);
    }
}

static void test_fields_round_trip_through_a_record(void) {
    const char *spec[] = {"a=1@5", "b=-@7", "long-field=xyz@9"};
    struct built b;
    build(&b, 9, 3, spec, 3);
    unsigned char hdr[MSG_REC_HDR];
    msg_record_header(&b.rec, hdr);
    struct msg_buf bytes = {0};
    msg_buf_put(&bytes, hdr, sizeof hdr);
    msg_buf_put(&bytes, b.rec.val, b.rec.vlen);
    struct msg_record out;
    CHECK_EQ_INT(msg_record_parse(bytes.p, bytes.len, &out), MSG_OK);
    CHECK_EQ_INT(out.fields, 1);
    char s[256];
    show(&out, s, sizeof s);
    CHECK_EQ_STR(s, "floor@3 a=1@5 b=-@7 long-field=xyz@9");
    msg_buf_free(&bytes);
    msg_buf_free(&b.val);
}

static void test_fields_malformed_values_are_refused(void) {
    struct kv_version floor;
    uint32_t n;
    char err[128];
    struct built b;
    const char *unsorted[] = {"b=1@5", "a=1@5"}, *dup[] = {"a=1@5", "a=2@6"};
    const char *below[] = {"a=1@2"}, *above[] = {"a=1@10"};
    build(&b, 9, 0, unsorted, 2);
    CHECK_EQ_INT(fields_check(b.rec.val, b.rec.vlen, b.rec.v, &floor, &n, err, sizeof err),
                 MSG_INVALID);
    msg_buf_free(&b.val);
    build(&b, 9, 0, dup, 2);
    CHECK_EQ_INT(fields_check(b.rec.val, b.rec.vlen, b.rec.v, &floor, &n, err, sizeof err),
                 MSG_INVALID);
    msg_buf_free(&b.val);
    build(&b, 9, 3, below, 1); /* an entry older than the floor */
    CHECK_EQ_INT(fields_check(b.rec.val, b.rec.vlen, b.rec.v, &floor, &n, err, sizeof err),
                 MSG_INVALID);
    msg_buf_free(&b.val);
    build(&b, 9, 0, above, 1); /* an entry newer than the record */
    CHECK_EQ_INT(fields_check(b.rec.val, b.rec.vlen, b.rec.v, &floor, &n, err, sizeof err),
                 MSG_INVALID);
    msg_buf_free(&b.val);
    const char *ok[] = {"a=1@5", "b=22@6"};
    build(&b, 9, 0, ok, 2);
    CHECK_EQ_INT(fields_check(b.rec.val, b.rec.vlen, b.rec.v, &floor, &n, err, sizeof err),
                 MSG_OK);
    /* every truncation, a count larger than the entries, trailing bytes */
    for (size_t len = 0; len < b.rec.vlen; len++) {
        CHECK_EQ_INT(fields_check(b.rec.val, len, b.rec.v, &floor, &n, NULL, 0), MSG_INVALID);
    }
    fields_put_count(&b.val, 0, 0xffffffffu);
    CHECK_EQ_INT(fields_check(b.val.p, b.val.len, b.rec.v, &floor, &n, NULL, 0), MSG_INVALID);
    fields_put_count(&b.val, 0, 2);
    msg_buf_put(&b.val, "x", 1);
    CHECK_EQ_INT(fields_check(b.val.p, b.val.len, b.rec.v, &floor, &n, NULL, 0), MSG_INVALID);
    msg_buf_free(&b.val);
    /* a tombstone entry with a value; a huge field length */
    build(&b, 9, 0, ok, 1);
    b.val.p[FIELDS_HDR + 12] = MSG_REC_DELETED;
    CHECK_EQ_INT(fields_check(b.val.p, b.val.len, b.rec.v, &floor, &n, NULL, 0), MSG_INVALID);
    b.val.p[FIELDS_HDR + 12] = 0;
    b.val.p[FIELDS_HDR + 13] = (char)0xff;
    CHECK_EQ_INT(fields_check(b.val.p, b.val.len, b.rec.v, &floor, &n, NULL, 0), MSG_INVALID);
    msg_buf_free(&b.val);
}

static void test_fields_fuzz_mutations_never_crash(void) {
    const char *spec[] = {"a=1@5", "bb=-@6", "c=333@7", "d=4@8"};
    struct built b;
    build(&b, 9, 2, spec, 4);
    size_t accepted = 0;
    for (int round = 0; round < 20000; round++) {
        char *m = malloc(b.rec.vlen + 8);
        memcpy(m, b.rec.val, b.rec.vlen);
        size_t len = b.rec.vlen - rnd() % 4 + rnd() % 4;
        for (int k = 0; k < 1 + (int)(rnd() % 3); k++) {
            m[rnd() % (b.rec.vlen + 4)] = (char)rnd();
        }
        struct kv_version floor;
        uint32_t n;
        if (fields_check(m, len, b.rec.v, &floor, &n, NULL, 0) == MSG_OK) {
            accepted++; /* then a walk must stay inside and agree with the count */
            struct fields_iter it;
            fields_iter_init(&it, m, len);
            struct fields_entry e;
            uint32_t seen = 0;
            while (fields_next(&it, &e)) {
                CHECK(e.f >= m && e.f + e.flen <= m + len);
                seen++;
            }
            CHECK_EQ_INT(seen, n);
        }
        free(m);
    }
    CHECK(accepted < 20000);
    msg_buf_free(&b.val);
}

static void merged(const struct msg_record *a, const struct msg_record *b, char *s, size_t cap) {
    struct msg_buf v = {0};
    struct msg_record m;
    fields_merge(a, b, &v, &m);
    if (m.fields) {
        show(&m, s, cap);
    } else {
        snprintf(s, cap, "plain@%llu%s", (unsigned long long)m.v.hlc, m.deleted ? " deleted" : "");
    }
    msg_buf_free(&v);
}

static void test_fields_merge_is_per_field_and_commutative(void) {
    const char *x[] = {"a=1@5", "b=2@6"}, *y[] = {"a=9@4", "b=-@8", "c=3@7"};
    struct built bx, by;
    build(&bx, 6, 1, x, 2);
    build(&by, 8, 1, y, 3);
    char s1[256], s2[256];
    merged(&bx.rec, &by.rec, s1, sizeof s1);
    merged(&by.rec, &bx.rec, s2, sizeof s2);
    CHECK_EQ_STR(s1, "floor@1 a=1@5 b=-@8 c=3@7");
    CHECK_EQ_STR(s2, s1);
    CHECK(!fields_covers(&bx.rec, &by.rec));
    CHECK(fields_covers(&bx.rec, &bx.rec));
    CHECK(fields_covers(&bx.rec, NULL));
    msg_buf_free(&bx.val);
    msg_buf_free(&by.val);
}

static void test_fields_floor_and_plain_records(void) {
    const char *x[] = {"a=1@5", "b=2@9"};
    struct built bx;
    build(&bx, 9, 1, x, 2);
    char s[256];
    /* a DEL at 7: drops a (5), keeps b (9), the hash stays */
    struct msg_record del7 = {.v = {7, 1}, .deleted = 1};
    merged(&bx.rec, &del7, s, sizeof s);
    CHECK_EQ_STR(s, "floor@7 b=2@9");
    merged(&del7, &bx.rec, s, sizeof s);
    CHECK_EQ_STR(s, "floor@7 b=2@9");
    /* a SET at 10: newer than every field, wins whole */
    struct msg_record set10 = {.v = {10, 1}, .val = "xx", .vlen = 2};
    merged(&bx.rec, &set10, s, sizeof s);
    CHECK_EQ_STR(s, "plain@10");
    /* a floor from another field record */
    const char *y[] = {"c=3@8"};
    struct built by;
    build(&by, 8, 6, y, 1);
    merged(&bx.rec, &by.rec, s, sizeof s);
    CHECK_EQ_STR(s, "floor@6 b=2@9 c=3@8");
    msg_buf_free(&bx.val);
    msg_buf_free(&by.val);
}

static void test_fields_diff_sends_only_what_is_missing(void) {
    const char *held[] = {"a=1@5", "b=2@6"}, *win[] = {"a=1@5", "b=-@8", "c=3@7"};
    struct built bh, bw;
    build(&bh, 6, 1, held, 2);
    build(&bw, 8, 1, win, 3);
    struct msg_buf v = {0};
    struct msg_record d;
    fields_diff(&bh.rec, &bw.rec, &v, &d);
    char s[256];
    show(&d, s, sizeof s);
    CHECK_EQ_STR(s, "floor@1 b=-@8 c=3@7");
    /* applying the diff gives what applying the whole winner gives */
    char s1[256], s2[256];
    merged(&bh.rec, &d, s1, sizeof s1);
    merged(&bh.rec, &bw.rec, s2, sizeof s2);
    CHECK_EQ_STR(s1, s2);
    /* nothing held: the whole winner */
    fields_diff(NULL, &bw.rec, &v, &d);
    CHECK_EQ_INT(d.vlen, bw.rec.vlen);
    msg_buf_free(&v);
    msg_buf_free(&bh.val);
    msg_buf_free(&bw.val);
}

/* the content digest: the fields' names, versions and tombstone flags and the
 * floor, in any order; not the values (a field's version names its value) */
static void test_fields_digest_covers_fields_versions_floor(void) {
    struct built a, b;
    build(&a, 9, 1, (const char *const[]){"f1=x@5", "f2=y@6", "f3=-@7"}, 3);
    uint64_t d = fields_digest(&a.rec);
    CHECK(d != 0);
    uint64_t sum = fields_digest_floor((struct kv_version){1, 1});
    sum += fields_digest_entry("f3", 2, (struct kv_version){7, 1}, 1); /* any order */
    sum += fields_digest_entry("f1", 2, (struct kv_version){5, 1}, 0);
    sum += fields_digest_entry("f2", 2, (struct kv_version){6, 1}, 0);
    CHECK(fields_digest_final(sum) == d);
    const char *const other[][3] = {
        {"f1=x@5", "f2=y@6", "f3=z@7"},  /* a tombstone now a value */
        {"f1=x@4", "f2=y@6", "f3=-@7"},  /* one field's version */
        {"f0=x@5", "f2=y@6", "f3=-@7"},  /* one field's name */
    };
    for (size_t i = 0; i < 3; i++) {
        build(&b, 9, 1, other[i], 3);
        CHECK(fields_digest(&b.rec) != d);
        msg_buf_free(&b.val);
    }
    build(&b, 9, 1, (const char *const[]){"f1=x@5", "f2=y@6"}, 2); /* a field less */
    CHECK(fields_digest(&b.rec) != d);
    msg_buf_free(&b.val);
    build(&b, 9, 2, (const char *const[]){"f1=x@5", "f2=y@6", "f3=-@7"}, 3); /* floor */
    CHECK(fields_digest(&b.rec) != d);
    msg_buf_free(&b.val);
    build(&b, 9, 1, (const char *const[]){"f1=X@5", "f2=Y@6", "f3=-@7"}, 3); /* values */
    CHECK(fields_digest(&b.rec) == d);
    msg_buf_free(&b.val);
    struct msg_record plain = {.v = {9, 1}, .val = "abc", .vlen = 3};
    CHECK_EQ_INT(fields_digest(&plain), 0);
    msg_buf_free(&a.val);
}

int main(void) {
    TEST_RUN(test_fields_digest_covers_fields_versions_floor);
    TEST_RUN(test_fields_round_trip_through_a_record);
    TEST_RUN(test_fields_malformed_values_are_refused);
    TEST_RUN(test_fields_fuzz_mutations_never_crash);
    TEST_RUN(test_fields_merge_is_per_field_and_commutative);
    TEST_RUN(test_fields_floor_and_plain_records);
    TEST_RUN(test_fields_diff_sends_only_what_is_missing);
    TEST_MAIN_END();
}
