/* cluster/node_test.c: the coordinator glue (cluster/node.c) on a recording fake
 * I/O: what it sends, reports and keeps as hints, op by op, with the clock passed
 * in. No sockets, no loop. */
#include "cluster/node.h"

#include <string.h>

#include "tests/test.h"

#define MAXS 4096

struct sent {
    uint32_t tag;
    int verb;
    uint64_t id;
};

struct fake {
    uint8_t down[8];      /* by tag */
    struct sent s[MAXS];
    int ns;
    int completed;
    int last_result;
    void *last_user;
    char last_err[128];
    int found;
    uint64_t found_hlc;
    uint64_t hint_seq[64];
    uint32_t hint_to[64];
    int nhints;
};

static int f_up(void *ctx, uint32_t tag) {
    struct fake *f = ctx;
    return tag < 8 && !f->down[tag];
}

static void f_send(void *ctx, uint32_t tag, int verb, const struct op *op) {
    struct fake *f = ctx;
    if (f->ns < MAXS) {
        f->s[f->ns++] = (struct sent){tag, verb, op->id};
    }
}

static void f_completed(void *ctx, const struct op *op, void *user) {
    struct fake *f = ctx;
    f->completed++;
    f->last_result = op->result;
    f->last_user = user;
    f->found = op->rec.found;
    f->found_hlc = op->rec.v.hlc;
    if (op->result == OP_FAILED) {
        op_error_text(op, f->last_err, sizeof f->last_err);
    }
}

static void f_hint(void *ctx, uint32_t target, const struct hint *h) {
    struct fake *f = ctx;
    if (f->nhints < 64) {
        f->hint_to[f->nhints] = target;
        f->hint_seq[f->nhints++] = h->seq;
    }
}

static void setup(struct cnode *n, struct fake *f) {
    memset(f, 0, sizeof *f);
    struct cnode_io io = {f, f_up, f_send, f_completed, f_hint};
    cnode_init(n, 1, 100, 3600000, 1 << 20, &io);
}

static int sent_to(const struct fake *f, uint32_t tag, int verb) {
    int c = 0;
    for (int i = 0; i < f->ns; i++) {
        c += f->s[i].tag == tag && f->s[i].verb == verb;
    }
    return c;
}

static const uint32_t three[3] = {1, 2, 3};

static struct msg_record rec_of(uint64_t hlc, const char *val) {
    struct msg_record r = {{hlc, 1}, 0, 0, val, strlen(val)};
    return r;
}

/* A write of "k" = "v" (hlc 10) through the node, on the first nrep of replicas
 * 1, 2, 3 at quorum w, at time 1000; returns the op's id (0 when it failed at once). */
static uint64_t write_k(struct cnode *n, size_t nrep, size_t w, void *user) {
    struct msg_record r = rec_of(10, "v");
    return cnode_write_on(n, three, nrep, 0, "k", 1, &r, w, 1000, user);
}

static void test_write_decides_at_w_then_finishes_when_all_answered(void) {
    struct cnode n;
    struct fake f;
    setup(&n, &f);
    int user;
    uint64_t id = write_k(&n, 3, 2, &user);
    CHECK(id > 0);
    CHECK_EQ_INT(f.ns, 3);
    CHECK_EQ_INT(sent_to(&f, 2, MSG_WRITE), 1);
    CHECK_EQ_INT(f.completed, 0);
    cnode_on_write_reply(&n, id, 1, 1, 1001);
    CHECK_EQ_INT(f.completed, 0);
    cnode_on_write_reply(&n, id, 3, 1, 1002);
    CHECK_EQ_INT(f.completed, 1);
    CHECK_EQ_INT(f.last_result, OP_OK);
    CHECK(f.last_user == &user);
    CHECK(cnode_live(&n, id)); /* lingers for replica 2 */
    cnode_on_write_reply(&n, id, 3, 1, 1003); /* a duplicate changes nothing */
    CHECK_EQ_INT(f.completed, 1);
    cnode_on_write_reply(&n, id, 2, 1, 1004);
    CHECK(!cnode_live(&n, id));
    CHECK_EQ_INT(n.nops, 0);
    CHECK_EQ_INT(n.hints->count, 0);
    CHECK_EQ_INT(cnode_next_deadline(&n), 0);
    cnode_free(&n);
}

static void test_late_reply_for_a_finished_op_is_counted_and_ignored(void) {
    struct cnode n;
    struct fake f;
    setup(&n, &f);
    uint64_t id = write_k(&n, 1, 1, NULL);
    cnode_on_write_reply(&n, id, 1, 1, 1001);
    CHECK(!cnode_live(&n, id));
    cnode_on_write_reply(&n, id, 1, 1, 1002);
    struct msg_item item = {0};
    cnode_on_read_reply(&n, id + 77, 2, &item, 1003);
    CHECK_EQ_INT(n.st.late_replies, 2);
    CHECK_EQ_INT(f.completed, 1);
    cnode_free(&n);
}

static void test_down_replica_gets_a_hint_delivered_when_up(void) {
    struct cnode n;
    struct fake f;
    setup(&n, &f);
    f.down[3] = 1;
    uint64_t id = write_k(&n, 3, 2, NULL);
    CHECK_EQ_INT(sent_to(&f, 3, MSG_WRITE), 0); /* known down: no request */
    CHECK_EQ_INT(n.st.hints_added, 1);
    CHECK_EQ_INT(hints_pending(n.hints, 3), 1);
    cnode_on_write_reply(&n, id, 1, 1, 1001);
    cnode_on_write_reply(&n, id, 2, 1, 1001);
    CHECK_EQ_INT(f.last_result, OP_OK);
    CHECK(!cnode_live(&n, id));
    /* while it is down nothing is sent */
    CHECK_EQ_INT(cnode_hints_send(&n, 1100), 0);
    CHECK_EQ_INT(f.nhints, 0);
    f.down[3] = 0;
    CHECK_EQ_INT(cnode_hints_send(&n, 1200), 1);
    CHECK_EQ_INT(f.nhints, 1);
    CHECK_EQ_INT(f.hint_to[0], 3);
    CHECK_EQ_INT(cnode_hints_send(&n, 1201), 0); /* one in flight per target */
    cnode_on_hint_reply(&n, 3, f.hint_seq[0], 1, 1202);
    CHECK_EQ_INT(n.st.hints_delivered, 1);
    CHECK_EQ_INT(hints_pending(n.hints, 3), 0);
    cnode_free(&n);
}

static void test_deadline_fails_write_with_count_and_hints_the_silent(void) {
    struct cnode n;
    struct fake f;
    setup(&n, &f);
    uint64_t id = write_k(&n, 3, 2, NULL);
    CHECK_EQ_INT(cnode_next_deadline(&n), 1100);
    cnode_on_write_reply(&n, id, 1, 1, 1010);
    cnode_tick(&n, 1099);
    CHECK_EQ_INT(f.completed, 0);
    cnode_tick(&n, 1100);
    CHECK_EQ_INT(f.completed, 1);
    CHECK_EQ_INT(f.last_result, OP_FAILED);
    CHECK_EQ_STR(f.last_err, "got 1 of 2 write acknowledgements");
    CHECK_EQ_INT(n.st.writes_failed, 1);
    CHECK_EQ_INT(hints_pending(n.hints, 2) + hints_pending(n.hints, 3), 2);
    CHECK(!cnode_live(&n, id));
    cnode_free(&n);
}

static void test_too_few_up_fails_at_once_without_sending(void) {
    struct cnode n;
    struct fake f;
    setup(&n, &f);
    f.down[2] = f.down[3] = 1;
    write_k(&n, 3, 2, NULL);
    CHECK_EQ_INT(f.ns, 0);
    CHECK_EQ_INT(f.completed, 1); /* inside the call: the driver defers it */
    CHECK_EQ_INT(f.last_result, OP_FAILED);
    CHECK_EQ_INT(n.st.unavailable, 1);
    CHECK_EQ_INT(n.hints->count, 0); /* the write did not happen: no hints */
    CHECK_EQ_INT(n.nops, 0);
    cnode_free(&n);
}

static void test_cancelled_op_never_reports_but_goes_on(void) {
    struct cnode n;
    struct fake f;
    setup(&n, &f);
    int user;
    uint64_t id = write_k(&n, 3, 2, &user);
    CHECK(cnode_cancel_user(&n, id) == &user);
    CHECK(cnode_cancel_user(&n, id) == NULL); /* only once */
    cnode_on_write_reply(&n, id, 1, 1, 1001);
    cnode_on_write_reply(&n, id, 2, 1, 1001);
    CHECK_EQ_INT(f.completed, 0);
    cnode_tick(&n, 2000); /* 3 never answered: still hinted */
    CHECK_EQ_INT(hints_pending(n.hints, 3), 1);
    CHECK_EQ_INT(f.completed, 0);
    cnode_free(&n);
}

static void test_read_repairs_the_stale_replica_before_answering(void) {
    struct cnode n;
    struct fake f;
    setup(&n, &f);
    uint64_t id = cnode_read_on(&n, three, 3, 0, "k", 1, 2, 1000, NULL);
    CHECK_EQ_INT(sent_to(&f, 1, MSG_READ) + sent_to(&f, 2, MSG_READ) +
                     sent_to(&f, 3, MSG_READ), 3);
    struct msg_item newer = {1, rec_of(20, "new")};
    struct msg_item older = {1, rec_of(10, "old")};
    cnode_on_read_reply(&n, id, 1, &newer, 1001);
    cnode_on_read_reply(&n, id, 2, &older, 1002);
    CHECK_EQ_INT(f.completed, 0); /* held until 2 hold the winner */
    CHECK_EQ_INT(sent_to(&f, 2, MSG_WRITE), 1);
    CHECK_EQ_INT(n.st.read_repairs, 1);
    cnode_on_write_reply(&n, id, 2, 1, 1003);
    CHECK_EQ_INT(f.completed, 1);
    CHECK_EQ_INT(f.last_result, OP_OK);
    CHECK(f.found);
    CHECK_EQ_INT(f.found_hlc, 20);
    cnode_tick(&n, 5000);
    CHECK_EQ_INT(n.nops, 0);
    cnode_free(&n);
}

static void test_read_fails_with_the_answer_count(void) {
    struct cnode n;
    struct fake f;
    setup(&n, &f);
    uint64_t id = cnode_read_on(&n, three, 3, 0, "k", 1, 2, 1000, NULL);
    cnode_on_read_reply(&n, id, 1, NULL, 1001); /* an error or a lost link */
    cnode_on_read_reply(&n, id, 2, NULL, 1001);
    CHECK_EQ_INT(f.completed, 1);
    CHECK_EQ_INT(f.last_result, OP_FAILED);
    CHECK_EQ_STR(f.last_err, "got 0 of 2 read answers");
    CHECK_EQ_INT(n.st.reads_failed, 1);
    cnode_free(&n);
}

static void test_many_live_ops_are_found_by_id_and_timed_in_order(void) {
    struct cnode n;
    struct fake f;
    setup(&n, &f);
    struct msg_record r = rec_of(10, "v");
    uint64_t ids[1000];
    for (int i = 0; i < 1000; i++) {
        ids[i] = cnode_write_on(&n, three, 1, 0, "k", 1, &r, 1, 1000 + (uint64_t)i, NULL);
    }
    CHECK_EQ_INT(n.nops, 1000);
    CHECK(n.nbuckets >= 1000);
    for (int i = 0; i < 1000; i += 2) { /* every other one acknowledged */
        cnode_on_write_reply(&n, ids[i], 1, 1, 1500);
    }
    CHECK_EQ_INT(n.nops, 500);
    CHECK_EQ_INT(f.completed, 500);
    CHECK_EQ_INT(cnode_next_deadline(&n), 1101); /* the oldest still live: ids[1] */
    cnode_tick(&n, 1600); /* deadlines 1100 + i: the odd i up to 499 */
    CHECK_EQ_INT(f.completed, 750);
    CHECK_EQ_INT(cnode_next_deadline(&n), 1601);
    cnode_tick(&n, 2099);
    CHECK_EQ_INT(f.completed, 1000);
    CHECK_EQ_INT(n.nops, 0);
    CHECK_EQ_INT(n.st.writes_failed, 500);
    cnode_free(&n);
}

static void test_ring_replica_set_is_used(void) {
    struct cnode n;
    struct fake f;
    setup(&n, &f);
    uint64_t t1[1] = {100}, t2[1] = {200}, t3[1] = {300};
    struct ring_member ms[3] = {
        {"a", 1, "h:1", 1.0, t1, 1}, {"b", 2, "h:2", 1.0, t2, 1}, {"c", 3, "h:3", 1.0, t3, 1}};
    struct ring ring;
    char err[64];
    CHECK(ring_build(&ring, ms, 3, err, sizeof err) == RING_OK);
    cnode_read(&n, &ring, 2, 0, "key", 3, 1, 1000, NULL);
    CHECK_EQ_INT(f.ns, 2); /* N = 2 of 3 members */
    uint32_t idx[RING_MAX_REPLICAS];
    size_t k = ring_replicas(&ring, ring_key_token("key", 3), 2, idx);
    CHECK_EQ_INT(k, 2);
    CHECK_EQ_INT(f.s[0].tag, ring.members[idx[0]].tag);
    CHECK_EQ_INT(f.s[1].tag, ring.members[idx[1]].tag);
    ring_destroy(&ring);
    cnode_free(&n);
}

int main(void) {
    TEST_RUN(test_write_decides_at_w_then_finishes_when_all_answered);
    TEST_RUN(test_late_reply_for_a_finished_op_is_counted_and_ignored);
    TEST_RUN(test_down_replica_gets_a_hint_delivered_when_up);
    TEST_RUN(test_deadline_fails_write_with_count_and_hints_the_silent);
    TEST_RUN(test_too_few_up_fails_at_once_without_sending);
    TEST_RUN(test_cancelled_op_never_reports_but_goes_on);
    TEST_RUN(test_read_repairs_the_stale_replica_before_answering);
    TEST_RUN(test_read_fails_with_the_answer_count);
    TEST_RUN(test_many_live_ops_are_found_by_id_and_timed_in_order);
    TEST_RUN(test_ring_replica_set_is_used);
    TEST_MAIN_END();
}
