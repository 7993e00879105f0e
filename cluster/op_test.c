/* cluster/op_test.c: the coordinator's quorum write and quorum read with blocking
 * read repair (cluster/op.c), driven by hand: replies, errors, timeouts, late and
 * duplicate replies, replicas known down. */
#include "cluster/op.h"

#include <string.h>

#include "cluster/fields.h"

#include "tests/test.h"

static const uint32_t NODES[3] = {11, 22, 33};

static struct msg_record rec_at(uint64_t hlc, uint32_t node, int del, const char *val) {
    return (struct msg_record){{hlc, node}, del, 0, val, val ? strlen(val) : 0};
}

static int sends_to(const struct op_actions *a, uint32_t node, int verb) {
    for (size_t i = 0; i < a->nsend; i++) {
        if (a->send[i].node == node && a->send[i].verb == verb) {
            return 1;
        }
    }
    return 0;
}

static int hints_for(const struct op_actions *a, uint32_t node) {
    for (size_t i = 0; i < a->nhint; i++) {
        if (a->hint[i] == node) {
            return 1;
        }
    }
    return 0;
}

/* A write of "k" = "v" (hlc 100, node 1) as op 1 to replicas 11, 22, 33 at quorum
 * w, at time 1000 with a 50 ms timeout, none known down. */
static void write_k(struct op *op, size_t w, struct op_actions *a) {
    struct msg_record r = rec_at(100, 1, 0, "v");
    op_write_start(op, 1, 0, "k", 1, NODES, 3, w, &r, NULL, 1000, 50, a);
}

/* A read of "k" as op id from replicas 11, 22, 33 at quorum 2, at time 1000 with a
 * 50 ms timeout, none known down. */
static void read_k(struct op *op, uint64_t id, struct op_actions *a) {
    op_read_start(op, id, 0, "k", 1, NODES, 3, 2, NULL, 1000, 50, a);
}

static void test_op_write_completes_at_w_acks_and_ignores_duplicates(void) {
    struct op op;
    struct op_actions a;
    write_k(&op, 2, &a);
    CHECK_EQ_INT(a.nsend, 3);
    CHECK(sends_to(&a, 11, MSG_WRITE) && sends_to(&a, 22, MSG_WRITE) &&
          sends_to(&a, 33, MSG_WRITE));
    op_on_write_reply(&op, 11, 1, 1001, &a);
    CHECK_EQ_INT(a.completed, 0);
    op_on_write_reply(&op, 11, 1, 1001, &a); /* duplicate: not a second ack */
    CHECK_EQ_INT(a.completed, 0);
    CHECK_EQ_INT(op.acks, 1);
    op_on_write_reply(&op, 99, 1, 1001, &a); /* not a replica */
    CHECK_EQ_INT(op.acks, 1);
    op_on_write_reply(&op, 33, 1, 1002, &a);
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(op.result, OP_OK);
    CHECK_EQ_INT(a.finished, 0); /* 22 still outstanding */
    op_on_write_reply(&op, 22, 1, 1003, &a);
    CHECK_EQ_INT(a.completed, 0);
    CHECK_EQ_INT(a.finished, 1);
    CHECK_EQ_INT(a.nhint, 0);
    op_destroy(&op);
}

static void test_op_write_times_out_with_got_x_of_w_and_hints_the_missing(void) {
    struct op op;
    struct op_actions a;
    write_k(&op, 2, &a);
    op_on_write_reply(&op, 22, 1, 1010, &a);
    op_tick(&op, 1049, &a); /* before the deadline: nothing */
    CHECK_EQ_INT(a.completed, 0);
    CHECK_EQ_INT(a.finished, 0);
    op_tick(&op, 1050, &a);
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(a.finished, 1);
    CHECK_EQ_INT(op.result, OP_FAILED);
    CHECK_EQ_INT(a.nhint, 2);
    CHECK(hints_for(&a, 11) && hints_for(&a, 33) && !hints_for(&a, 22));
    char text[128];
    op_error_text(&op, text, sizeof text);
    CHECK_EQ_STR(text, "got 1 of 2 write acknowledgements");
    op_on_write_reply(&op, 11, 1, 1060, &a); /* late: ignored */
    CHECK_EQ_INT(op.acks, 1);
    CHECK_EQ_INT(a.completed, 0);
    op_destroy(&op);
}

static void test_op_write_hints_a_replica_that_missed_an_ok_write(void) {
    struct op op;
    struct op_actions a;
    write_k(&op, 2, &a);
    op_on_write_reply(&op, 11, 1, 1001, &a);
    op_on_write_reply(&op, 22, 1, 1001, &a);
    CHECK_EQ_INT(op.result, OP_OK);
    op_tick(&op, 1050, &a);
    CHECK_EQ_INT(a.completed, 0); /* already decided: stays OK */
    CHECK_EQ_INT(op.result, OP_OK);
    CHECK_EQ_INT(a.nhint, 1);
    CHECK(hints_for(&a, 33));
    op_destroy(&op);
}

static void test_op_write_fails_early_when_errors_make_w_unreachable(void) {
    struct op op;
    struct op_actions a;
    write_k(&op, 3, &a);
    op_on_write_reply(&op, 22, 0, 1001, &a); /* an error reply: hint, W=3 lost */
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(op.result, OP_FAILED);
    CHECK(hints_for(&a, 22));
    CHECK_EQ_INT(a.finished, 0); /* the others may still take it */
    op_on_write_reply(&op, 11, 1, 1002, &a);
    op_on_write_reply(&op, 33, 1, 1002, &a);
    CHECK_EQ_INT(a.finished, 1);
    CHECK_EQ_INT(op.result, OP_FAILED); /* hints never count toward W */
    op_destroy(&op);
}

static void test_op_write_known_down_replicas_are_hinted_not_asked(void) {
    struct op op;
    struct op_actions a;
    struct msg_record r = rec_at(100, 1, 0, "v");
    uint8_t down[3] = {0, 1, 0};
    op_write_start(&op, 1, 0, "k", 1, NODES, 3, 2, &r, down, 1000, 50, &a);
    CHECK_EQ_INT(a.nsend, 2);
    CHECK(!sends_to(&a, 22, MSG_WRITE));
    CHECK_EQ_INT(a.nhint, 1);
    CHECK(hints_for(&a, 22));
    op_destroy(&op);
    /* fewer up than W: fails at once, sends and hints nothing */
    uint8_t down2[3] = {1, 1, 0};
    op_write_start(&op, 2, 0, "k", 1, NODES, 3, 2, &r, down2, 1000, 50, &a);
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(a.finished, 1);
    CHECK_EQ_INT(op.result, OP_FAILED);
    CHECK_EQ_INT(op.unavailable, 1);
    CHECK_EQ_INT(a.nsend, 0);
    CHECK_EQ_INT(a.nhint, 0);
    op_destroy(&op);
}


/* A pending replica (a member joining, op.h) raises what a write needs to W +
 * pending, every acknowledgement counting: with 11, 22, 33 current and 44
 * pending at W 2, two acks are not enough, three are; two failures make 3
 * unreachable; two replicas down make it unavailable; a pending replica down
 * gets a hint and the three others must all acknowledge. */
static void test_op_write_pending_replica_raises_the_quorum(void) {
    static const uint32_t four[4] = {11, 22, 33, 44};
    struct op op;
    struct op_actions a;
    struct msg_record r = rec_at(100, 1, 0, "v");
    op_write_start_pending(&op, 1, 0, "k", 1, four, 4, 1, 2, &r, NULL, 1000, 50, &a);
    CHECK_EQ_INT(a.nsend, 4);
    CHECK(sends_to(&a, 44, MSG_WRITE));
    CHECK_EQ_INT(op.need, 3);
    op_on_write_reply(&op, 44, 1, 1001, &a); /* the pending replica's ack counts */
    op_on_write_reply(&op, 11, 1, 1001, &a);
    CHECK_EQ_INT(a.completed, 0); /* 2 of 3 */
    op_on_write_reply(&op, 22, 0, 1001, &a); /* 33 can still make 3 */
    CHECK_EQ_INT(a.completed, 0);
    op_on_write_reply(&op, 33, 1, 1002, &a);
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(op.result, OP_OK);
    op_destroy(&op);
    op_write_start_pending(&op, 2, 0, "k", 1, four, 4, 1, 2, &r, NULL, 1000, 50, &a);
    op_on_write_reply(&op, 44, 1, 1001, &a);
    op_on_write_reply(&op, 11, 0, 1001, &a);
    CHECK_EQ_INT(a.completed, 0);
    op_on_write_reply(&op, 22, 0, 1001, &a); /* 44 + 33 at most: 2 < 3 */
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(op.result, OP_FAILED);
    op_destroy(&op);
    uint8_t down[4] = {1, 1, 0, 0};
    op_write_start_pending(&op, 3, 0, "k", 1, four, 4, 1, 2, &r, down, 1000, 50, &a);
    CHECK_EQ_INT(op.unavailable, 1);
    CHECK_EQ_INT(a.nsend, 0);
    op_destroy(&op);
    uint8_t joiner_down[4] = {0, 0, 0, 1};
    op_write_start_pending(&op, 4, 0, "k", 1, four, 4, 1, 2, &r, joiner_down, 1000, 50, &a);
    CHECK_EQ_INT(op.unavailable, 0);
    CHECK(hints_for(&a, 44));
    op_on_write_reply(&op, 11, 1, 1001, &a);
    op_on_write_reply(&op, 22, 1, 1001, &a);
    CHECK_EQ_INT(a.completed, 0);
    op_on_write_reply(&op, 33, 1, 1001, &a);
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(op.result, OP_OK);
    op_destroy(&op);
}

static struct msg_item found(uint64_t hlc, uint32_t node, int del, const char *val) {
    return (struct msg_item){1, rec_at(hlc, node, del, val)};
}

static void test_op_read_newest_wins_and_waits_for_the_repair(void) {
    struct op op;
    struct op_actions a;
    op_read_start(&op, 7, 3, "key", 3, NODES, 3, 2, NULL, 1000, 50, &a);
    CHECK_EQ_INT(a.nsend, 3);
    CHECK(sends_to(&a, 22, MSG_READ));
    struct msg_item old = found(100, 1, 0, "old"), newer = found(200, 2, 0, "new");
    op_on_read_reply(&op, 11, &old, 1001, &a);
    CHECK_EQ_INT(a.completed, 0);
    op_on_read_reply(&op, 22, &newer, 1002, &a);
    /* R=2 answered: 11 is stale, gets the winner, and the result waits */
    CHECK_EQ_INT(a.completed, 0);
    CHECK_EQ_INT(a.nsend, 1);
    CHECK(sends_to(&a, 11, MSG_WRITE));
    struct msg_record w = op_msg_record(&op);
    CHECK_EQ_MEM(w.val, w.vlen, "new", 3);
    CHECK(w.v.hlc == 200);
    op_on_write_reply(&op, 11, 1, 1003, &a);
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(op.result, OP_OK);
    CHECK_EQ_INT(a.finished, 0); /* 33 outstanding: lingers */
    /* a late, older answer is repaired in the background */
    struct msg_item nothing = {0};
    op_on_read_reply(&op, 33, &nothing, 1004, &a);
    CHECK(sends_to(&a, 33, MSG_WRITE));
    CHECK_EQ_INT(a.finished, 0);
    op_on_write_reply(&op, 33, 1, 1005, &a);
    CHECK_EQ_INT(a.finished, 1);
    CHECK_EQ_INT(op.result, OP_OK);
    op_destroy(&op);
}

/* A read while a member moves (op_read_start_pending): 11, 22, 33 current, 44
 * pending, R 2. READ goes to the current ones only; at the decision the pending
 * replica is sent the winner and the result waits for R + 1 holders, so that
 * after the change at least R of the new replicas hold what was returned. Fewer
 * than R + 1 up makes the read unavailable; a winner of nothing needs no
 * repair. */
static void test_op_read_pending_replica_gets_the_winner_before_the_result(void) {
    static const uint32_t four[4] = {11, 22, 33, 44};
    struct op op;
    struct op_actions a;
    op_read_start_pending(&op, 1, 0, "k", 1, four, 4, 1, 2, NULL, 1000, 50, &a);
    CHECK_EQ_INT(a.nsend, 3);
    CHECK(!sends_to(&a, 44, MSG_READ));
    struct msg_item x = found(100, 1, 0, "x");
    op_on_read_reply(&op, 11, &x, 1001, &a);
    op_on_read_reply(&op, 22, &x, 1001, &a);
    /* 11 and 22 agree, yet 44 must hold x before the result */
    CHECK_EQ_INT(a.completed, 0);
    CHECK_EQ_INT(a.nsend, 1);
    CHECK(sends_to(&a, 44, MSG_WRITE));
    op_on_write_reply(&op, 44, 1, 1002, &a);
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(op.result, OP_OK);
    op_destroy(&op);
    /* the pending replica refuses the repair: 2 of 3 holders, failed */
    op_read_start_pending(&op, 2, 0, "k", 1, four, 4, 1, 2, NULL, 1000, 50, &a);
    op_on_read_reply(&op, 11, &x, 1001, &a);
    op_on_read_reply(&op, 22, &x, 1001, &a);
    op_on_write_reply(&op, 44, 0, 1002, &a);
    CHECK_EQ_INT(op.result, OP_PENDING); /* 33 may still answer x */
    op_on_read_reply(&op, 33, &x, 1003, &a);
    CHECK_EQ_INT(op.result, OP_OK);
    op_destroy(&op);
    /* the pending replica down: every current replica must hold x (then the two
     * that stay do) */
    static const uint8_t down[4] = {0, 0, 0, 1}, two_down[4] = {0, 0, 1, 1};
    op_read_start_pending(&op, 3, 0, "k", 1, four, 4, 1, 2, down, 1000, 50, &a);
    op_on_read_reply(&op, 11, &x, 1001, &a);
    op_on_read_reply(&op, 22, &x, 1001, &a);
    CHECK_EQ_INT(a.nsend, 0);
    CHECK_EQ_INT(op.result, OP_PENDING);
    op_on_read_reply(&op, 33, &x, 1001, &a);
    CHECK_EQ_INT(op.result, OP_OK);
    op_destroy(&op);
    /* two of four down: fewer than R + 1 up, unavailable, nothing sent */
    op_read_start_pending(&op, 3, 0, "k", 1, four, 4, 1, 2, two_down, 1000, 50, &a);
    CHECK_EQ_INT(a.nsend, 0);
    CHECK_EQ_INT(op.result, OP_FAILED);
    op_destroy(&op);
    /* nothing anywhere: not found at R answers, no repair */
    struct msg_item nothing = {0};
    op_read_start_pending(&op, 4, 0, "k", 1, four, 4, 1, 2, NULL, 1000, 50, &a);
    op_on_read_reply(&op, 11, &nothing, 1001, &a);
    op_on_read_reply(&op, 33, &nothing, 1001, &a);
    CHECK_EQ_INT(a.nsend, 0);
    CHECK_EQ_INT(op.result, OP_OK);
    CHECK_EQ_INT(op.rec.found, 0);
    op_destroy(&op);
}

static void test_op_read_equal_answers_complete_without_repair(void) {
    struct op op;
    struct op_actions a;
    read_k(&op, 7, &a);
    struct msg_item x = found(100, 1, 0, "x");
    op_on_read_reply(&op, 33, &x, 1001, &a);
    op_on_read_reply(&op, 11, &x, 1001, &a);
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(a.nsend, 0);
    CHECK_EQ_INT(op.result, OP_OK);
    CHECK_EQ_INT(op.rec.found, 1);
    op_tick(&op, 1050, &a); /* the straggler never answers */
    CHECK_EQ_INT(a.finished, 1);
    CHECK_EQ_INT(op.result, OP_OK);
    op_destroy(&op);
}

static void test_op_read_of_nothing_anywhere_is_not_found(void) {
    struct op op;
    struct op_actions a;
    read_k(&op, 7, &a);
    struct msg_item nothing = {0};
    op_on_read_reply(&op, 11, &nothing, 1001, &a);
    op_on_read_reply(&op, 22, &nothing, 1001, &a);
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(a.nsend, 0);
    CHECK_EQ_INT(op.rec.found, 0);
    op_destroy(&op);
}

static void test_op_read_tombstone_beats_value_of_same_version(void) {
    struct op op;
    struct op_actions a;
    read_k(&op, 7, &a);
    struct msg_item val = found(100, 1, 0, "v"), tomb = found(100, 1, 1, NULL);
    op_on_read_reply(&op, 11, &tomb, 1001, &a);
    op_on_read_reply(&op, 22, &val, 1001, &a);
    CHECK(sends_to(&a, 22, MSG_WRITE));
    CHECK_EQ_INT(op.rec.deleted, 1);
    op_destroy(&op);
}

static void test_op_read_fails_when_r_is_not_reached(void) {
    struct op op;
    struct op_actions a;
    read_k(&op, 7, &a);
    struct msg_item x = found(100, 1, 0, "x");
    op_on_read_reply(&op, 11, &x, 1001, &a);
    op_tick(&op, 1050, &a);
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(op.result, OP_FAILED);
    char text[128];
    op_error_text(&op, text, sizeof text);
    CHECK_EQ_STR(text, "got 1 of 2 read answers");
    op_destroy(&op);
    /* two failed requests out of three: failed at once, no wait */
    read_k(&op, 8, &a);
    op_on_read_reply(&op, 11, NULL, 1001, &a);
    CHECK_EQ_INT(a.completed, 0);
    op_on_read_reply(&op, 22, NULL, 1001, &a);
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(a.finished, 1);
    CHECK_EQ_INT(op.result, OP_FAILED);
    op_destroy(&op);
}

static void test_op_read_fails_when_the_repair_times_out(void) {
    struct op op;
    struct op_actions a;
    read_k(&op, 7, &a);
    struct msg_item old = found(100, 1, 0, "o"), newer = found(200, 1, 0, "n");
    op_on_read_reply(&op, 11, &old, 1040, &a);
    op_on_read_reply(&op, 22, &newer, 1045, &a);
    CHECK(sends_to(&a, 11, MSG_WRITE));
    op_tick(&op, 1060, &a); /* the repair phase has its own deadline: 1095 */
    CHECK_EQ_INT(a.completed, 0);
    op_tick(&op, 1095, &a);
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(op.result, OP_FAILED);
    char text[128];
    op_error_text(&op, text, sizeof text);
    CHECK_EQ_STR(text, "read repair: 1 of 2 replicas hold the newest version");
    op_destroy(&op);
}

static void test_op_read_late_equal_answer_completes_the_repair_phase(void) {
    struct op op;
    struct op_actions a;
    read_k(&op, 7, &a);
    struct msg_item old = found(100, 1, 0, "o"), newer = found(200, 1, 0, "n");
    op_on_read_reply(&op, 11, &old, 1001, &a);
    op_on_read_reply(&op, 22, &newer, 1002, &a);
    CHECK_EQ_INT(a.completed, 0);
    op_on_read_reply(&op, 33, &newer, 1003, &a); /* a second holder of the winner */
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(op.result, OP_OK);
    op_destroy(&op);
}

/* A FIELDS record: fields (name, value, hlc) at floor 1, version top. */
static struct msg_record fields_rec(struct msg_buf *b, uint64_t top, const char *const *f,
                                    const char *const *v, const uint64_t *hlc, size_t n) {
    b->len = 0;
    fields_put_head(b, (struct kv_version){1, 1}, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        struct fields_entry e = {{hlc[i], 1}, 0, f[i], strlen(f[i]), v[i], strlen(v[i])};
        fields_put(b, &e);
    }
    return (struct msg_record){.v = {top, 1}, .val = b->p, .vlen = b->len, .fields = 1};
}

static void test_op_read_merges_big_hash_fields_and_repairs_only_what_is_missing(void) {
    struct op op;
    struct op_actions a;
    read_k(&op, 7, &a);
    /* two coordinators wrote a@5 and b@6 to different replicas: whole-record LWW
     * would return only one of them */
    const char *fa[] = {"a"}, *fb[] = {"b"}, *v[] = {"1"};
    const uint64_t h5[] = {5}, h6[] = {6};
    struct msg_buf b1 = {0}, b2 = {0};
    struct msg_record r1 = fields_rec(&b1, 5, fa, v, h5, 1), r2 = fields_rec(&b2, 6, fb, v, h6, 1);
    struct msg_item i1 = {1, r1}, i2 = {1, r2};
    op_on_read_reply(&op, 11, &i1, 1001, &a);
    op_on_read_reply(&op, 22, &i2, 1001, &a);
    CHECK_EQ_INT(a.completed, 0); /* neither holds the merge: both are repaired */
    CHECK(sends_to(&a, 11, MSG_WRITE) && sends_to(&a, 22, MSG_WRITE));
    CHECK_EQ_INT(op.rec.fields, 1);
    struct msg_record w = op_msg_record(&op);
    CHECK(fields_covers(&w, &r1) && fields_covers(&w, &r2));
    /* node 11's repair carries only b */
    struct msg_buf d = {0};
    struct msg_record rep = op_send_record(&op, 11, &d);
    struct kv_version floor;
    uint32_t n;
    CHECK_EQ_INT(fields_check(rep.val, rep.vlen, rep.v, &floor, &n, NULL, 0), MSG_OK);
    CHECK_EQ_INT(n, 1);
    struct fields_iter it;
    struct fields_entry e;
    fields_iter_init(&it, rep.val, rep.vlen);
    CHECK(fields_next(&it, &e) && e.flen == 1 && e.f[0] == 'b');
    op_on_write_reply(&op, 11, 1, 1002, &a);
    op_on_write_reply(&op, 22, 1, 1002, &a);
    CHECK_EQ_INT(a.completed, 1);
    CHECK_EQ_INT(op.result, OP_OK);
    msg_buf_free(&d);
    msg_buf_free(&b1);
    msg_buf_free(&b2);
    op_destroy(&op);
}

int main(void) {
    TEST_RUN(test_op_read_merges_big_hash_fields_and_repairs_only_what_is_missing);
    TEST_RUN(test_op_write_completes_at_w_acks_and_ignores_duplicates);
    TEST_RUN(test_op_write_times_out_with_got_x_of_w_and_hints_the_missing);
    TEST_RUN(test_op_write_hints_a_replica_that_missed_an_ok_write);
    TEST_RUN(test_op_write_fails_early_when_errors_make_w_unreachable);
    TEST_RUN(test_op_write_known_down_replicas_are_hinted_not_asked);
    TEST_RUN(test_op_write_pending_replica_raises_the_quorum);
    TEST_RUN(test_op_read_newest_wins_and_waits_for_the_repair);
    TEST_RUN(test_op_read_pending_replica_gets_the_winner_before_the_result);
    TEST_RUN(test_op_read_equal_answers_complete_without_repair);
    TEST_RUN(test_op_read_of_nothing_anywhere_is_not_found);
    TEST_RUN(test_op_read_tombstone_beats_value_of_same_version);
    TEST_RUN(test_op_read_fails_when_r_is_not_reached);
    TEST_RUN(test_op_read_fails_when_the_repair_times_out);
    TEST_RUN(test_op_read_late_equal_answer_completes_the_repair_phase);
    TEST_MAIN_END();
}
