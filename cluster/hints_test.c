/* cluster/hints_test.c: hinted handoff storage (cluster/hints.c): order per target,
 * removal on ack, the window and byte bounds (new hints refused when full,
 * counted), the observer, and the
 * serialised form with every truncation refused. */
#include "cluster/hints.h"

#include <stdio.h>
#include <string.h>

#include "tests/test.h"

static struct msg_record rec(uint64_t hlc, const char *val) {
    return (struct msg_record){{hlc, 1}, 0, 0, val, strlen(val)};
}

static void test_hints_are_kept_per_target_in_order_and_removed_on_ack(void) {
    struct hints *h = hints_create(60000, 1 << 20);
    struct msg_record r1 = rec(1, "one"), r2 = rec(2, "two"), r3 = rec(3, "three");
    CHECK_EQ_INT(hints_add(h, 7, 100, 0, "a", 1, &r1), HINTS_OK);
    CHECK_EQ_INT(hints_add(h, 8, 101, 0, "b", 1, &r2), HINTS_OK);
    CHECK_EQ_INT(hints_add(h, 7, 102, 3, "c", 1, &r3), HINTS_OK);
    CHECK_EQ_INT(hints_pending(h, 7), 2);
    CHECK_EQ_INT(hints_pending(h, 8), 1);
    CHECK_EQ_INT(hints_pending(h, 9), 0);
    uint32_t t[4];
    CHECK_EQ_INT(hints_targets(h, t, 4), 2);
    const struct hint *x = hints_peek(h, 7, 0);
    CHECK(x != NULL);
    CHECK_EQ_MEM(x->key, x->klen, "a", 1);
    CHECK_EQ_MEM(x->rec.val, x->rec.vlen, "one", 3);
    const struct hint *y = hints_peek(h, 7, 1);
    CHECK_EQ_INT(y->db, 3);
    CHECK(hints_peek(h, 7, 2) == NULL);
    uint64_t seq_c = y->seq;
    CHECK_EQ_INT(hints_ack(h, 7, seq_c), HINTS_OK); /* out of order ack is fine */
    CHECK_EQ_INT(hints_ack(h, 7, seq_c), HINTS_INVALID);
    CHECK_EQ_INT(hints_pending(h, 7), 1);
    CHECK_EQ_MEM(hints_peek(h, 7, 0)->key, 1, "a", 1);
    CHECK_EQ_INT(hints_ack(h, 7, hints_peek(h, 7, 0)->seq), HINTS_OK);
    CHECK_EQ_INT(hints_pending(h, 7), 0);
    CHECK_EQ_INT(hints_targets(h, t, 4), 1);
    CHECK_EQ_INT(h->stats.delivered, 2);
    CHECK_EQ_INT(h->count, 1);
    hints_destroy(&h);
    CHECK(h == NULL);
}

static void test_hints_older_than_the_window_are_dropped_and_counted(void) {
    struct hints *h = hints_create(1000, 1 << 20);
    struct msg_record r = rec(1, "v");
    hints_add(h, 7, 100, 0, "a", 1, &r);
    hints_add(h, 7, 600, 0, "b", 1, &r);
    hints_expire(h, 1099);
    CHECK_EQ_INT(hints_pending(h, 7), 2);
    hints_expire(h, 1100);
    CHECK_EQ_INT(hints_pending(h, 7), 1);
    CHECK_EQ_INT(h->stats.dropped_window, 1);
    hints_add(h, 8, 1700, 0, "c", 1, &r); /* an add expires too */
    CHECK_EQ_INT(hints_pending(h, 7), 0);
    CHECK_EQ_INT(h->stats.dropped_window, 2);
    CHECK_EQ_INT(h->count, 1);
    hints_destroy(&h);
}

static void test_hints_over_max_bytes_refuse_the_new_hint_and_keep_the_old(void) {
    size_t one = HINT_OVERHEAD + 1 + 10; /* key "k", 10-byte value */
    struct hints *h = hints_create(60000, 3 * one);
    struct msg_record r = rec(1, "0123456789");
    CHECK_EQ_INT(hints_add(h, 7, 1, 0, "k", 1, &r), HINTS_OK);
    CHECK_EQ_INT(hints_add(h, 8, 2, 0, "k", 1, &r), HINTS_OK);
    CHECK_EQ_INT(hints_add(h, 7, 3, 0, "k", 1, &r), HINTS_OK);
    CHECK_EQ_INT(h->bytes, 3 * one);
    CHECK_EQ_INT(hints_add(h, 9, 4, 0, "k", 1, &r), HINTS_DROPPED);
    CHECK_EQ_INT(h->count, 3);
    CHECK_EQ_INT(h->stats.dropped_bytes, 1);
    CHECK_EQ_INT(hints_pending(h, 9), 0);
    CHECK_EQ_INT(hints_pending(h, 7), 2); /* the older hints all stay */
    CHECK_EQ_INT(hints_peek(h, 7, 0)->created_ms, 1);
    /* room again after a delivery */
    CHECK_EQ_INT(hints_ack(h, 8, hints_peek(h, 8, 0)->seq), HINTS_OK);
    CHECK_EQ_INT(hints_add(h, 9, 5, 0, "k", 1, &r), HINTS_OK);
    CHECK_EQ_INT(hints_pending(h, 9), 1);
    struct msg_record big = rec(1, "this value alone is larger than the whole bound of hints"
                                   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    CHECK_EQ_INT(hints_add(h, 9, 6, 0, "k", 1, &big), HINTS_DROPPED);
    CHECK_EQ_INT(h->stats.dropped_big, 1);
    CHECK_EQ_INT(h->count, 3); /* nothing else pushed out for it */
    hints_destroy(&h);
}

struct obs_log {
    int added, removed;
    size_t last_pending;
    uint64_t last_seq;
};

static void obs_added(void *ctx, const struct hint *x) {
    struct obs_log *o = ctx;
    o->added++;
    o->last_seq = x->seq;
}

static void obs_removed(void *ctx, const struct hint *x, size_t pending) {
    struct obs_log *o = ctx;
    o->removed++;
    o->last_seq = x->seq;
    o->last_pending = pending;
}

static void test_hints_observer_sees_every_hint_kept_and_removed(void) {
    struct hints *h = hints_create(1000, 1 << 20);
    struct obs_log o = {0};
    struct hints_observer obs = {&o, obs_added, obs_removed};
    hints_observe(h, &obs);
    struct msg_record r = rec(1, "v");
    hints_add(h, 7, 100, 0, "a", 1, &r);
    hints_add(h, 7, 900, 0, "b", 1, &r);
    CHECK_EQ_INT(o.added, 2);
    CHECK_EQ_INT(hints_ack(h, 7, hints_peek(h, 7, 0)->seq), HINTS_OK);
    CHECK_EQ_INT(o.removed, 1);
    CHECK_EQ_INT(o.last_pending, 1);
    hints_expire(h, 1900); /* "b" (900) is out of the window */
    CHECK_EQ_INT(o.removed, 2);
    CHECK_EQ_INT(o.last_pending, 0);
    /* a hint loaded with its creation time: out of the window, refused */
    CHECK_EQ_INT(hints_add_created(h, 7, 500, 1900, 0, "c", 1, &r), HINTS_DROPPED);
    CHECK_EQ_INT(hints_add_created(h, 7, 1500, 1900, 0, "c", 1, &r), HINTS_OK);
    CHECK_EQ_INT(hints_peek(h, 7, 0)->created_ms, 1500);
    CHECK_EQ_INT(o.added, 3);
    hints_observe(h, NULL);
    hints_destroy(&h); /* destroying is not a removal: no callback */
    CHECK_EQ_INT(o.removed, 2);
}

static void test_hints_serialise_and_come_back_in_order(void) {
    struct hints *h = hints_create(60000, 1 << 20);
    struct msg_record r1 = rec(10, "x"), tomb = {{20, 2}, 1, 0, NULL, 0};
    r1.expire_at = 123456;
    hints_add(h, 7, 100, 0, "a", 1, &r1);
    hints_add(h, 8, 101, 65535, "bb", 2, &tomb);
    hints_add(h, 7, 102, 1, "", 0, &r1);
    struct msg_buf b = {0};
    hints_encode(h, &b);
    struct hints *g = hints_create(60000, 1 << 20);
    CHECK_EQ_INT(hints_decode(g, b.p, b.len, 200), HINTS_OK);
    CHECK_EQ_INT(g->count, 3);
    const struct hint *x = hints_peek(g, 7, 0), *y = hints_peek(g, 8, 0), *z = hints_peek(g, 7, 1);
    CHECK(x && y && z);
    CHECK(x->seq < y->seq && y->seq < z->seq); /* arrival order kept */
    CHECK_EQ_INT(x->created_ms, 100);
    CHECK_EQ_INT(x->rec.expire_at, 123456);
    CHECK_EQ_MEM(x->rec.val, x->rec.vlen, "x", 1);
    CHECK_EQ_INT(y->db, 65535);
    CHECK_EQ_INT(y->rec.deleted, 1);
    CHECK_EQ_INT(y->rec.v.hlc, 20);
    CHECK_EQ_INT(z->klen, 0);
    /* re-encoding gives the same bytes */
    struct msg_buf b2 = {0};
    hints_encode(g, &b2);
    CHECK_EQ_MEM(b.p, b.len, b2.p, b2.len);
    /* decoding under a window that expired them keeps none */
    struct hints *late = hints_create(1000, 1 << 20);
    CHECK_EQ_INT(hints_decode(late, b.p, b.len, 5000), HINTS_OK);
    CHECK_EQ_INT(late->count, 0);
    CHECK_EQ_INT(late->stats.dropped_window, 3);
    hints_destroy(&late);
    msg_buf_free(&b2);
    msg_buf_free(&b);
    hints_destroy(&g);
    hints_destroy(&h);
}

static void test_hints_bad_bytes_are_refused_and_add_nothing(void) {
    struct hints *h = hints_create(60000, 1 << 20);
    struct msg_record r = rec(10, "value");
    hints_add(h, 7, 100, 0, "a", 1, &r);
    hints_add(h, 8, 100, 0, "b", 1, &r);
    struct msg_buf b = {0};
    hints_encode(h, &b);
    struct hints *g = hints_create(60000, 1 << 20);
    for (size_t n = 0; n < b.len; n++) {
        CHECK_EQ_INT(hints_decode(g, b.p, n, 200), HINTS_INVALID);
    }
    CHECK_EQ_INT(g->count, 0);
    char *m = malloc(b.len + 1);
    memcpy(m, b.p, b.len);
    m[b.len] = 0;
    CHECK_EQ_INT(hints_decode(g, m, b.len + 1, 200), HINTS_INVALID); /* trailing byte */
    m[0] = 'X';
    CHECK_EQ_INT(hints_decode(g, m, b.len, 200), HINTS_INVALID);     /* magic */
    memcpy(m, b.p, b.len);
    m[4] = (char)0xff; /* a huge count: checked against the bytes, no allocation */
    CHECK_EQ_INT(hints_decode(g, m, b.len, 200), HINTS_INVALID);
    memcpy(m, b.p, b.len);
    m[8 + 4 + 8 + 2] = (char)0x7f; /* first key length huge */
    CHECK_EQ_INT(hints_decode(g, m, b.len, 200), HINTS_INVALID);
    memcpy(m, b.p, b.len);
    m[8 + 18 + 1 + 4 + 12] = 0x04; /* first record: unknown flag */
    CHECK_EQ_INT(hints_decode(g, m, b.len, 200), HINTS_INVALID);
    CHECK_EQ_INT(g->count, 0);
    CHECK_EQ_INT(hints_decode(g, b.p, b.len, 200), HINTS_OK);
    CHECK_EQ_INT(g->count, 2);
    free(m);
    msg_buf_free(&b);
    hints_destroy(&g);
    hints_destroy(&h);
}

static void test_hints_are_delivered_one_at_a_time_in_order_with_retries(void) {
    struct hints *h = hints_create(60000, 1 << 20);
    struct msg_record r1 = rec(1, "one"), r2 = rec(2, "two"), r3 = rec(3, "x");
    hints_add(h, 7, 100, 0, "a", 1, &r1);
    hints_add(h, 7, 101, 0, "b", 1, &r2);
    hints_add(h, 8, 102, 0, "c", 1, &r3);
    struct hint_send out[4];
    CHECK_EQ_INT(hints_due(h, 200, 50, out, 4), 2); /* the head of each target */
    CHECK_EQ_INT(out[0].target, 7);
    CHECK_EQ_MEM(out[0].hint->key, 1, "a", 1);
    CHECK_EQ_INT(out[1].target, 8);
    uint64_t a = out[0].hint->seq, c = out[1].hint->seq;
    CHECK_EQ_INT(hints_due(h, 210, 50, out, 4), 0); /* in flight: nothing more */
    CHECK_EQ_INT(hints_delivered(h, 7, a, 1), HINTS_OK);
    CHECK_EQ_INT(hints_due(h, 211, 50, out, 4), 1); /* target 7's next, in order */
    CHECK_EQ_MEM(out[0].hint->key, 1, "b", 1);
    uint64_t b = out[0].hint->seq;
    CHECK_EQ_INT(hints_delivered(h, 7, b, 0), HINTS_OK); /* an error: offered again */
    CHECK_EQ_INT(hints_due(h, 212, 50, out, 4), 1);
    CHECK_EQ_INT(out[0].hint->seq, b);
    /* target 8 never answered: offered again at the deadline (250) */
    CHECK_EQ_INT(hints_due(h, 249, 50, out, 4), 0);
    CHECK_EQ_INT(hints_due(h, 250, 50, out, 4), 1);
    CHECK_EQ_INT(out[0].target, 8);
    /* the first, late answer acknowledges it; the retry's answer is ignored */
    CHECK_EQ_INT(hints_delivered(h, 8, c, 1), HINTS_OK);
    CHECK_EQ_INT(hints_delivered(h, 8, c, 1), HINTS_INVALID);
    CHECK_EQ_INT(hints_pending(h, 8), 0);
    hints_flight_reset(h); /* b is offered again at once */
    CHECK_EQ_INT(hints_due(h, 260, 50, out, 4), 1);
    CHECK_EQ_INT(out[0].hint->seq, b);
    CHECK_EQ_INT(h->stats.delivered, 2);
    hints_destroy(&h);
}

int main(void) {
    TEST_RUN(test_hints_are_kept_per_target_in_order_and_removed_on_ack);
    TEST_RUN(test_hints_older_than_the_window_are_dropped_and_counted);
    TEST_RUN(test_hints_over_max_bytes_refuse_the_new_hint_and_keep_the_old);
    TEST_RUN(test_hints_observer_sees_every_hint_kept_and_removed);
    TEST_RUN(test_hints_serialise_and_come_back_in_order);
    TEST_RUN(test_hints_bad_bytes_are_refused_and_add_nothing);
    TEST_RUN(test_hints_are_delivered_one_at_a_time_in_order_with_retries);
    TEST_MAIN_END();
}
