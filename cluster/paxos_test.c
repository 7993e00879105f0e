/* cluster/paxos_test.c: per-key consensus (cluster/paxos.c). First the rules one
 * at a time, driven by hand; then a model checker: a tiny network of acceptors
 * and proposers with random delay, loss, duplication and forgetful restarts under
 * a seeded PRNG, thousands of seeds, each history checked (PAXOS.md "What the
 * checker checks"), and each rule broken on purpose to show the checker fails.
 *
 * PAXOS_SEEDS=n sets the seeds of the model run (default 2000); --seed S -v
 * replays one seed with its trace. */
#include "cluster/paxos.h"

#include <stdio.h>
#include <string.h>

#include <stdarg.h>

#include "cluster/mem.h"
#include "cluster/msg.h"
#include "proto/hlc.h"

#include "tests/test.h"

/* ---- a fixed environment for the hand-driven tests ---- */

static uint64_t fixed_wall = 1000;
static uint64_t fixed_wall_ms(void *ctx) {
    (void)ctx;
    return fixed_wall;
}
static uint64_t fixed_rand(void *ctx) {
    (void)ctx;
    return 7;
}

static const uint32_t NODES[3] = {11, 22, 33};

static struct kv_version B(uint64_t ms, uint32_t node) {
    return (struct kv_version){KV_HLC_MAKE(ms, 0), node};
}

static struct paxos_value val_at(struct kv_version b, struct kv_version origin, const char *s) {
    struct paxos_value v = {0};
    v.found = 1;
    v.ballot = b;
    v.origin = origin;
    v.val = (char *)s;
    v.vlen = strlen(s);
    return v;
}

static const struct paxos_value NOTHING = {0};

static int sends(const struct paxos_actions *a, uint32_t node, int verb) {
    for (size_t i = 0; i < a->nsend; i++) {
        if (a->send[i].node == node && a->send[i].verb == verb) {
            return 1;
        }
    }
    return 0;
}

struct fixture {
    uint64_t hlc;
    struct paxos_env env;
    struct paxos_config cfg;
    struct paxos_proposer p;
    struct paxos_actions a;
};

static void fixture_start(struct fixture *f, int kind, size_t r, size_t w) {
    memset(f, 0, sizeof *f);
    f->env = (struct paxos_env){5, &f->hlc, fixed_wall_ms, fixed_rand, NULL};
    f->cfg = (struct paxos_config){r, w, 50, 10, 4};
    paxos_start(&f->p, &f->env, 1, kind, NODES, 3, NULL, &f->cfg, 1000, &f->a);
}

static int val_is(const struct paxos_value *v, const char *s) {
    return v->found && v->vlen == strlen(s) && memcmp(v->val, s, v->vlen) == 0;
}

/* ---- acceptor and gate ---- */

static void test_acceptor_rejects_lower_ballots(void) {
    struct paxos_acceptor a = {0};
    struct kv_version h = {0, 0};
    CHECK_EQ_INT(paxos_acceptor_prepare(&a, NULL, B(5, 1), &h), PAXOS_PROMISE);
    CHECK_EQ_INT(paxos_acceptor_prepare(&a, NULL, B(4, 2), &h), PAXOS_REJECT);
    CHECK(kv_version_cmp(h, B(5, 1)) == 0);
    CHECK_EQ_INT(paxos_acceptor_accept(&a, NULL, B(4, 2), B(4, 2), &h), PAXOS_REJECT);
    CHECK(kv_version_cmp(h, B(5, 1)) == 0);
    /* the same ms, a lower node tag: lower */
    CHECK_EQ_INT(paxos_acceptor_accept(&a, NULL, B(5, 0), B(5, 0), &h), PAXOS_REJECT);
    CHECK_EQ_INT(paxos_acceptor_accept(&a, NULL, B(5, 1), B(5, 1), &h), PAXOS_ACCEPTED);
    CHECK(kv_version_cmp(a.accepted, B(5, 1)) == 0);
    /* a prepare at the accepted ballot is refused: that round is past phase 1 */
    CHECK_EQ_INT(paxos_acceptor_prepare(&a, NULL, B(5, 1), &h), PAXOS_REJECT);
    CHECK_EQ_INT(paxos_acceptor_prepare(&a, NULL, B(6, 3), &h), PAXOS_PROMISE);
    CHECK_EQ_INT(paxos_acceptor_accept(&a, NULL, B(5, 9), B(5, 9), &h), PAXOS_REJECT);
    CHECK(kv_version_cmp(h, B(6, 3)) == 0);
    /* an accept above the promise needs no prepare of its own */
    CHECK_EQ_INT(paxos_acceptor_accept(&a, NULL, B(7, 1), B(2, 2), &h), PAXOS_ACCEPTED);
    CHECK(kv_version_cmp(a.origin, B(2, 2)) == 0);
}

static void test_acceptor_duplicates_are_idempotent(void) {
    struct paxos_acceptor a = {0};
    struct kv_version h;
    CHECK_EQ_INT(paxos_acceptor_prepare(&a, NULL, B(5, 1), &h), PAXOS_PROMISE);
    CHECK_EQ_INT(paxos_acceptor_prepare(&a, NULL, B(5, 1), &h), PAXOS_PROMISE);
    CHECK_EQ_INT(paxos_acceptor_accept(&a, NULL, B(5, 1), B(5, 1), &h), PAXOS_ACCEPTED);
    CHECK_EQ_INT(paxos_acceptor_accept(&a, NULL, B(5, 1), B(5, 1), &h), PAXOS_ACCEPTED);
    CHECK(kv_version_cmp(a.promised, B(5, 1)) == 0);
}

static void test_gate_holds_a_forgetful_node(void) {
    struct paxos_gate g;
    paxos_gate_init(&g, 0);
    struct paxos_acceptor a = {0};
    struct kv_version h;
    CHECK_EQ_INT(paxos_acceptor_prepare(&a, &g, B(1, 1), &h), PAXOS_PROMISE);
    memset(&a, 0, sizeof a); /* a cache node restarted: all forgotten */
    paxos_gate_restart_forgetful(&g, 2000, 100);
    CHECK_EQ_INT(paxos_acceptor_prepare(&a, &g, B(3000, 1), &h), PAXOS_NOT_VOTING);
    /* a ballot minted before the restart (below the floor) is refused ... */
    CHECK_EQ_INT(paxos_acceptor_accept(&a, &g, B(2050, 1), B(2050, 1), &h), PAXOS_REJECT);
    CHECK(kv_version_cmp(h, B(2100, 0)) == 0);
    /* ... a newer one is accepted (storing a value forgets nothing) */
    CHECK_EQ_INT(paxos_acceptor_accept(&a, &g, B(2101, 1), B(2101, 1), &h), PAXOS_ACCEPTED);
    paxos_gate_rejoined(&g);
    CHECK_EQ_INT(paxos_acceptor_prepare(&a, &g, B(2200, 1), &h), PAXOS_PROMISE);
    CHECK_EQ_INT(paxos_acceptor_prepare(&a, &g, B(2099, 9), &h), PAXOS_REJECT);
}

/* ---- proposer, by hand ---- */

static void test_quorums_must_intersect(void) {
    struct fixture f;
    fixture_start(&f, PAXOS_WRITE, 1, 2); /* 1 + 2 <= 3 */
    CHECK_EQ_INT(f.a.nsend, 0);
    CHECK(f.a.completed && f.a.finished);
    CHECK_EQ_INT(f.p.result, PAXOS_FAILED);
    char buf[128];
    paxos_error_text(&f.p, buf, sizeof buf);
    CHECK(strstr(buf, "R + W > N") != NULL);
    paxos_destroy(&f.p);
}

static void test_proposer_picks_highest_accepted_value(void) {
    struct fixture f;
    fixture_start(&f, PAXOS_WRITE, 2, 2);
    CHECK(sends(&f.a, 11, PAXOS_MSG_PREPARE) && sends(&f.a, 33, PAXOS_MSG_PREPARE));
    struct kv_version b = f.p.ballot;
    struct paxos_value lo = val_at(B(10, 1), B(10, 1), "lo"), hi = val_at(B(20, 2), B(9, 9), "hi");
    paxos_on_promise(&f.p, 22, b, &hi, 1001, &f.a);
    CHECK_EQ_INT(f.a.need_value, 0);
    paxos_on_promise(&f.p, 11, b, &lo, 1001, &f.a);
    CHECK_EQ_INT(f.a.need_value, 1);
    CHECK(val_is(&f.p.base, "hi"));
    CHECK(kv_version_cmp(f.p.base.origin, B(9, 9)) == 0);
    struct paxos_value change = val_at(B(0, 0), B(0, 0), "new");
    paxos_propose(&f.p, &change, 1002, &f.a);
    CHECK_EQ_INT(f.a.nsend, 3);
    CHECK(sends(&f.a, 22, PAXOS_MSG_ACCEPT));
    CHECK(kv_version_cmp(f.p.value.ballot, b) == 0);
    CHECK(kv_version_cmp(f.p.value.origin, b) == 0);
    paxos_on_accepted(&f.p, 33, b, 1003, &f.a);
    paxos_on_accepted(&f.p, 33, b, 1003, &f.a); /* a duplicate counts once */
    CHECK_EQ_INT(f.a.completed, 0);
    paxos_on_accepted(&f.p, 11, b, 1003, &f.a);
    CHECK(f.a.completed);
    CHECK_EQ_INT(f.p.result, PAXOS_OK);
    CHECK_EQ_INT(f.p.rtts, 2);
    paxos_destroy(&f.p);
}

static void test_read_is_one_round_trip_when_w_answers_agree(void) {
    struct fixture f;
    fixture_start(&f, PAXOS_READ, 2, 2);
    struct kv_version b = f.p.ballot;
    struct paxos_value v = val_at(B(10, 1), B(10, 1), "v");
    paxos_on_promise(&f.p, 11, b, &v, 1001, &f.a);
    paxos_on_promise(&f.p, 33, b, &v, 1001, &f.a);
    CHECK(f.a.completed);
    CHECK_EQ_INT(f.a.nsend, 0);
    CHECK_EQ_INT(f.p.result, PAXOS_OK);
    CHECK_EQ_INT(f.p.rtts, 1);
    CHECK(val_is(&f.p.value, "v"));
    paxos_destroy(&f.p);
    /* nothing anywhere agrees too */
    fixture_start(&f, PAXOS_READ, 2, 2);
    paxos_on_promise(&f.p, 11, f.p.ballot, &NOTHING, 1001, &f.a);
    paxos_on_promise(&f.p, 22, f.p.ballot, &NOTHING, 1001, &f.a);
    CHECK(f.a.completed && f.p.result == PAXOS_OK && !f.p.value.found);
    paxos_destroy(&f.p);
}

static void test_read_finishes_what_it_saw_when_answers_differ(void) {
    struct fixture f;
    fixture_start(&f, PAXOS_READ, 2, 2);
    struct kv_version b = f.p.ballot;
    struct paxos_value old = val_at(B(10, 1), B(10, 1), "old");
    struct paxos_value half = val_at(B(20, 2), B(20, 2), "half"); /* on one replica only */
    paxos_on_promise(&f.p, 11, b, &old, 1001, &f.a);
    paxos_on_promise(&f.p, 22, b, &half, 1001, &f.a);
    CHECK_EQ_INT(f.a.completed, 0);
    CHECK_EQ_INT(f.a.nsend, 3);
    CHECK(sends(&f.a, 11, PAXOS_MSG_ACCEPT));
    CHECK(val_is(&f.p.value, "half"));
    CHECK(kv_version_cmp(f.p.value.ballot, b) == 0);       /* a new ballot ... */
    CHECK(kv_version_cmp(f.p.value.origin, B(20, 2)) == 0); /* ... the same content */
    paxos_on_accepted(&f.p, 11, b, 1002, &f.a);
    paxos_on_accepted(&f.p, 22, b, 1002, &f.a);
    CHECK(f.a.completed && f.p.result == PAXOS_OK);
    CHECK_EQ_INT(f.p.rtts, 2);
    paxos_destroy(&f.p);
}

static void test_read_at_r1_w3_needs_every_replica_to_agree(void) {
    struct fixture f;
    fixture_start(&f, PAXOS_READ, 1, 3);
    struct paxos_value v = val_at(B(10, 1), B(10, 1), "v");
    paxos_on_promise(&f.p, 22, f.p.ballot, &v, 1001, &f.a);
    /* one answer cannot show the value is on W = 3: finish it */
    CHECK_EQ_INT(f.a.completed, 0);
    CHECK(sends(&f.a, 33, PAXOS_MSG_ACCEPT));
    paxos_destroy(&f.p);
}

static void test_unchanged_write_skips_phase2_only_when_chosen(void) {
    struct fixture f;
    fixture_start(&f, PAXOS_WRITE, 2, 2);
    struct paxos_value v = val_at(B(10, 1), B(10, 1), "v");
    paxos_on_promise(&f.p, 11, f.p.ballot, &v, 1001, &f.a);
    paxos_on_promise(&f.p, 22, f.p.ballot, &v, 1001, &f.a);
    CHECK(f.a.need_value);
    paxos_propose(&f.p, NULL, 1001, &f.a); /* e.g. SET NX on an existing key */
    CHECK(f.a.completed && f.p.result == PAXOS_OK && f.a.nsend == 0);
    paxos_destroy(&f.p);
    fixture_start(&f, PAXOS_WRITE, 2, 2);
    paxos_on_promise(&f.p, 11, f.p.ballot, &v, 1001, &f.a);
    paxos_on_promise(&f.p, 22, f.p.ballot, &NOTHING, 1001, &f.a);
    paxos_propose(&f.p, NULL, 1001, &f.a);
    CHECK_EQ_INT(f.a.completed, 0);
    CHECK_EQ_INT(f.a.nsend, 3); /* v is on one replica: it is finished first */
    CHECK(val_is(&f.p.value, "v"));
    CHECK_EQ_INT(f.p.fixed, 0); /* no change of ours: a retry may recompute */
    paxos_destroy(&f.p);
}

static void test_rejected_round_retries_above_the_highest_ballot(void) {
    struct fixture f;
    fixture_start(&f, PAXOS_WRITE, 2, 2);
    struct kv_version b1 = f.p.ballot, them = B(5000, 9);
    paxos_on_reject(&f.p, 11, b1, them, 1001, &f.a);
    CHECK_EQ_INT(f.a.nsend, 0);
    paxos_on_reject(&f.p, 22, b1, them, 1001, &f.a); /* R = 2 no longer reachable */
    CHECK_EQ_INT(f.a.completed, 0);
    CHECK(f.p.deadline > 1001); /* backing off */
    paxos_tick(&f.p, f.p.deadline - 1, &f.a);
    CHECK_EQ_INT(f.a.nsend, 0);
    paxos_tick(&f.p, f.p.deadline, &f.a);
    CHECK_EQ_INT(f.a.nsend, 3);
    CHECK(kv_version_cmp(f.p.ballot, them) > 0);
    /* a late promise for the first round is ignored */
    paxos_on_promise(&f.p, 33, b1, &NOTHING, 1100, &f.a);
    CHECK_EQ_INT(f.p.votes, 0);
    paxos_destroy(&f.p);
}

/* An INCR whose accept may have landed: round 1 sends "1", loses phase 2; round 2
 * finds `found` on top. */
static void incr_retry(struct fixture *f, int own_on_top) {
    fixture_start(f, PAXOS_WRITE, 2, 2);
    struct kv_version b1 = f->p.ballot;
    paxos_on_promise(&f->p, 11, b1, &NOTHING, 1001, &f->a);
    paxos_on_promise(&f->p, 22, b1, &NOTHING, 1001, &f->a);
    struct paxos_value one = val_at(B(0, 0), B(0, 0), "1");
    paxos_propose(&f->p, &one, 1001, &f->a);
    paxos_on_accepted(&f->p, 11, b1, 1002, &f->a);
    paxos_on_failure(&f->p, 22, b1, 1002, &f->a);
    paxos_on_failure(&f->p, 33, b1, 1002, &f->a); /* outcome unknown */
    paxos_tick(&f->p, f->p.deadline, &f->a);       /* round 2 */
    struct kv_version b2 = f->p.ballot;
    struct paxos_value mine = val_at(b1, b1, "1");
    struct paxos_value theirs = val_at(B(900, 7), B(900, 7), "2"); /* built on ours? */
    paxos_on_promise(&f->p, 11, b2, own_on_top ? &mine : &theirs, 1100, &f->a);
    paxos_on_promise(&f->p, 33, b2, &NOTHING, 1100, &f->a);
}

static void test_retry_finds_its_own_change_and_does_not_reapply(void) {
    struct fixture f;
    incr_retry(&f, 1);
    CHECK_EQ_INT(f.a.need_value, 0); /* the command does not run again */
    CHECK(sends(&f.a, 22, PAXOS_MSG_ACCEPT));
    CHECK(val_is(&f.p.value, "1"));
    struct kv_version b2 = f.p.ballot;
    paxos_on_accepted(&f.p, 22, b2, 1101, &f.a);
    paxos_on_accepted(&f.p, 33, b2, 1101, &f.a);
    CHECK(f.a.completed && f.p.result == PAXOS_OK);
    paxos_destroy(&f.p);
}

static void test_retry_under_a_foreign_value_is_indeterminate(void) {
    struct fixture f;
    incr_retry(&f, 0);
    CHECK(f.a.completed);
    CHECK_EQ_INT(f.a.need_value, 0);
    CHECK_EQ_INT(f.a.nsend, 0);
    CHECK_EQ_INT(f.p.result, PAXOS_INDETERMINATE);
    char buf[160];
    paxos_error_text(&f.p, buf, sizeof buf);
    CHECK(strstr(buf, "outcome unknown") != NULL);
    paxos_destroy(&f.p);
}

static void test_rounds_run_out_failed_or_indeterminate(void) {
    struct fixture f;
    fixture_start(&f, PAXOS_WRITE, 2, 2);
    for (int round = 0; round < 4; round++) {
        paxos_tick(&f.p, f.p.deadline, &f.a); /* the round times out */
        if (f.a.completed) {
            break;
        }
        paxos_tick(&f.p, f.p.deadline, &f.a); /* the backoff ends */
    }
    CHECK_EQ_INT(f.p.result, PAXOS_FAILED); /* no accept ever sent: nothing changed */
    CHECK_EQ_INT(f.p.attempt, 4);
    paxos_destroy(&f.p);
}

/* The trace the age bound exists for (PAXOS.md "Cache mode"), acceptors i, j, l
 * driven by hand: P_p prepared p on {i, l}; P_b's b (< p) was accepted by j only;
 * i restarts, forgetting its promise, rejoins, and its repair copies b from j; a
 * read then finds b on {i, j} (W agree: one round trip); P_p's accept, held in
 * the network since before the restart, reaches l. Without the age bound l
 * accepts p and a second read returns P_p's value, which lacks b: the first read
 * is undone. With it, l refuses a ballot older than max_age. Returns 1 when the
 * second read saw what the first one did. */
static int forgotten_promise_trace(uint64_t max_age_ms) {
    struct paxos_acceptor i = {0}, j = {0}, l = {0};
    struct paxos_gate gi, gj, gl;
    paxos_gate_init(&gi, max_age_ms), paxos_gate_init(&gj, max_age_ms);
    paxos_gate_init(&gl, max_age_ms);
    struct kv_version h, b = B(100, 1), p = B(101, 2);
    paxos_acceptor_prepare(&j, &gj, b, &h);
    paxos_acceptor_prepare(&l, &gl, b, &h);
    paxos_acceptor_prepare(&i, &gi, p, &h);
    paxos_acceptor_prepare(&l, &gl, p, &h);
    paxos_acceptor_accept(&j, &gj, b, b, &h); /* b on j only: l promised p */
    memset(&i, 0, sizeof i);                  /* i restarts ... */
    paxos_gate_restart_forgetful(&gi, 200, 50);
    i.accepted = i.promised = i.origin = b;   /* ... its repair copies b from j ... */
    paxos_gate_rejoined(&gi);                 /* ... and it votes again at t=2000 */
    fixed_wall = 2000;
    struct fixture f;
    fixture_start(&f, PAXOS_READ, 2, 2);
    struct paxos_value vb = val_at(b, b, "b");
    paxos_on_promise(&f.p, 11, f.p.ballot, paxos_acceptor_prepare(&i, &gi, f.p.ballot, &h) ==
                     PAXOS_PROMISE ? &vb : &NOTHING, 2001, &f.a);
    paxos_on_promise(&f.p, 22, f.p.ballot, paxos_acceptor_prepare(&j, &gj, f.p.ballot, &h) ==
                     PAXOS_PROMISE ? &vb : &NOTHING, 2001, &f.a);
    int first_saw_b = f.p.result == PAXOS_OK && f.p.rtts == 1 && val_is(&f.p.value, "b");
    paxos_destroy(&f.p);
    /* P_p's held accept reaches l (a node's tick first) */
    paxos_gate_tick(&gl, 2002);
    struct paxos_value vp = val_at(p, p, "p");
    int l_took_p = paxos_acceptor_accept(&l, &gl, p, p, &h) == PAXOS_ACCEPTED;
    fixed_wall = 3000;
    fixture_start(&f, PAXOS_READ, 2, 2);
    paxos_gate_tick(&gj, 3000);
    paxos_acceptor_prepare(&l, &gl, f.p.ballot, &h);
    paxos_acceptor_prepare(&j, &gj, f.p.ballot, &h);
    paxos_on_promise(&f.p, 33, f.p.ballot, l_took_p ? &vp : &NOTHING, 3001, &f.a);
    paxos_on_promise(&f.p, 22, f.p.ballot, &vb, 3001, &f.a);
    int second_saw_b = val_is(&f.p.value, "b"); /* finished or agreed */
    paxos_destroy(&f.p);
    fixed_wall = 1000;
    return first_saw_b && second_saw_b;
}

static void test_age_bound_stops_a_proposal_older_than_a_restart(void) {
    CHECK_EQ_INT(forgotten_promise_trace(0), 0);   /* the hazard is real ... */
    CHECK_EQ_INT(forgotten_promise_trace(500), 1); /* ... and the bound closes it */
}

/* ---- messages and the replica side ---- */

static size_t to_slices(const struct msg_argv *a, struct kv_slice *sl) {
    for (int i = 0; i < a->argc; i++) {
        sl[i] = (struct kv_slice){a->argv[i], a->argvlen[i]};
    }
    return (size_t)a->argc;
}

static redisReply *parse_reply(const struct msg_buf *b) {
    redisReader *r = redisReaderCreate();
    redisReaderFeed(r, b->p, b->len);
    void *reply = NULL;
    if (redisReaderGetReply(r, &reply) != REDIS_OK) {
        reply = NULL;
    }
    redisReaderFree(r);
    return reply;
}

static void test_requests_encode_and_decode(void) {
    struct msg_argv a;
    struct kv_slice sl[8];
    struct paxos_request q;
    char err[128];
    paxos_encode_prepare(&a, 7, "key", 3, B(1234, 5));
    CHECK_EQ_INT(paxos_decode_request(sl, to_slices(&a, sl), &q, err, sizeof err), MSG_OK);
    CHECK_EQ_INT(q.verb, PAXOS_REQ_PREPARE);
    CHECK_EQ_INT(q.db, 7);
    CHECK_EQ_MEM(q.key.p, q.key.len, "key", 3);
    CHECK(kv_version_cmp(q.ballot, B(1234, 5)) == 0);
    msg_argv_free(&a);
    struct msg_record rec = {B(2000, 6), 0, 99, "val", 3, 0};
    paxos_encode_accept(&a, 0, "k", 1, &rec, B(1500, 2));
    CHECK_EQ_INT(paxos_decode_request(sl, to_slices(&a, sl), &q, err, sizeof err), MSG_OK);
    CHECK_EQ_INT(q.verb, PAXOS_REQ_ACCEPT);
    CHECK(kv_version_cmp(q.ballot, B(2000, 6)) == 0);
    CHECK(kv_version_cmp(q.origin, B(1500, 2)) == 0);
    CHECK_EQ_INT(q.rec.expire_at, 99);
    CHECK_EQ_MEM(q.rec.val, q.rec.vlen, "val", 3);
    msg_argv_free(&a);
}

static void test_malformed_requests_are_refused(void) {
    unsigned char bal[12], rec[MSG_REC_HDR], org[12];
    msg_put_be(bal, KV_HLC_MAKE(5, 0), 8), msg_put_be(bal + 8, 1, 4);
    struct msg_record r = {B(5, 1), 0, 0, NULL, 0, 0};
    msg_record_header(&r, rec);
    msg_put_be(org, KV_HLC_MAKE(6, 0), 8), msg_put_be(org + 8, 1, 4); /* above the ballot */
    const char *b = (const char *)bal, *rc = (const char *)rec, *o = (const char *)org;
    struct {
        struct kv_slice argv[7];
        size_t argc;
        const char *why;
    } cases[] = {
        {{{"KVD.PEER", 8}, {"PROPOSE", 7}}, 2, "PREPARE or ACCEPT"},
        {{{"KVD.PEER", 8}, {"PREPARE", 7}, {"0", 1}, {"k", 1}}, 4, "wrong number"},
        {{{"KVD.PEER", 8}, {"prepare", 7}, {"01", 2}, {"k", 1}, {b, 12}}, 5, "bad db"},
        {{{"KVD.PEER", 8}, {"PREPARE", 7}, {"65536", 5}, {"k", 1}, {b, 12}}, 5, "bad db"},
        {{{"KVD.PEER", 8}, {"PREPARE", 7}, {"0", 1}, {"k", 1}, {b, 11}}, 5, "bad ballot"},
        {{{"KVD.PEER", 8}, {"PREPARE", 7}, {"0", 1}, {"k", 1}, {b, 13}}, 5, "bad ballot"},
        {{{"KVD.PEER", 8}, {"ACCEPT", 6}, {"0", 1}, {"k", 1}, {rc, 20}, {b, 12}}, 6, "bad record"},
        {{{"KVD.PEER", 8}, {"ACCEPT", 6}, {"0", 1}, {"k", 1}, {rc, 21}, {b, 4}}, 6, "bad origin"},
        {{{"KVD.PEER", 8}, {"ACCEPT", 6}, {"0", 1}, {"k", 1}, {rc, 21}, {o, 12}}, 6, "above"},
        {{{"KVD.PEER", 8}, {"ACCEPT", 6}, {"0", 1}, {"k", 1}, {rc, 21}}, 5, "wrong number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct paxos_request q;
        char err[128] = "";
        CHECK_EQ_INT(paxos_decode_request(cases[i].argv, cases[i].argc, &q, err, sizeof err),
                     MSG_INVALID);
        if (strstr(err, cases[i].why) == NULL) {
            TEST_FAIL_AT("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].why);
            return;
        }
    }
    /* a good ACCEPT for contrast: origin at the ballot */
    struct kv_slice ok[6] = {{"KVD.PEER", 8}, {"ACCEPT", 6}, {"0", 1}, {"k", 1}, {rc, 21}, {b, 12}};
    struct paxos_request q;
    CHECK_EQ_INT(paxos_decode_request(ok, 6, &q, NULL, 0), MSG_OK);
}

/* Decodes the RESP bytes s as a paxos reply. */
static int decode_bytes(const char *s, size_t n, struct paxos_reply *out) {
    struct msg_buf b = {0};
    msg_buf_put(&b, s, n);
    redisReply *r = parse_reply(&b);
    char err[128];
    int rc = r ? paxos_decode_reply(r, out, err, sizeof err) : -99;
    if (r) {
        freeReplyObject(r);
    }
    msg_buf_free(&b);
    return rc;
}

static void test_replies_decode_strictly(void) {
    struct msg_buf b = {0};
    struct paxos_reply rep;
    struct msg_record rec = {B(10, 1), 0, 0, "v", 1, 0};
    paxos_reply_promise(&b, B(20, 2), &rec, B(9, 9));
    CHECK_EQ_INT(decode_bytes(b.p, b.len, &rep), MSG_OK);
    CHECK(rep.vote == PAXOS_PROMISE && rep.found);
    CHECK(kv_version_cmp(rep.rec.v, B(10, 1)) == 0 && kv_version_cmp(rep.origin, B(9, 9)) == 0);
    b.len = 0;
    paxos_reply_promise(&b, B(20, 2), NULL, B(0, 0));
    CHECK_EQ_INT(decode_bytes(b.p, b.len, &rep), MSG_OK);
    CHECK(rep.vote == PAXOS_PROMISE && !rep.found);
    b.len = 0;
    paxos_reply_vote(&b, PAXOS_REJECT, B(30, 3));
    CHECK_EQ_INT(decode_bytes(b.p, b.len, &rep), MSG_OK);
    CHECK(rep.vote == PAXOS_REJECT && kv_version_cmp(rep.ballot, B(30, 3)) == 0);
    /* a promise whose record is not below the ballot it promised */
    b.len = 0;
    paxos_reply_promise(&b, B(10, 1), &rec, B(9, 9));
    CHECK_EQ_INT(decode_bytes(b.p, b.len, &rep), MSG_INVALID);
    msg_buf_free(&b);
    const char bal[] = "$12\r\n000000000000\r\n";
    char buf[256];
    const char *bad[] = {
        "*3\r\n:1\r\n%s$-1\r\n",                /* three elements */
        "*4\r\n:4\r\n%s$-1\r\n$-1\r\n",         /* no such vote */
        "*4\r\n:2\r\n$3\r\nabc\r\n$-1\r\n$-1\r\n", /* a short ballot */
        "*4\r\n:2\r\n%s%s$-1\r\n",              /* a vote carrying a ballot as record */
        "*4\r\n:1\r\n%s$-1\r\n%s",              /* an origin without a record */
        "*4\r\n+1\r\n%s$-1\r\n$-1\r\n",         /* the vote not an integer */
        ":1\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int n = snprintf(buf, sizeof buf, bad[i], bal, bal);
        if (decode_bytes(buf, (size_t)n, &rep) != MSG_INVALID) {
            TEST_FAIL_AT("bad reply %zu decoded", i);
            return;
        }
    }
    CHECK_EQ_INT(decode_bytes("-ERR NOTVOTING x\r\n", 18, &rep), MSG_REMOTE);
}

/* A fake store of one key per replica, for the replica side. */
struct fake_acc {
    struct paxos_acceptor a;
    struct paxos_value rec;
    int fail;
    int promises, accepts;
};

static int fake_load(void *ctx, unsigned db, const char *key, size_t klen,
                     struct paxos_acceptor *a, struct msg_record *rec) {
    struct fake_acc *f = ctx;
    if (f->fail) {
        return -1;
    }
    *a = f->a;
    if (!f->rec.found) {
        return 0;
    }
    *rec = (struct msg_record){f->rec.ballot, f->rec.deleted, f->rec.expire_at, f->rec.val,
                               f->rec.vlen, 0};
    return 1;
}

static int fake_promise(void *ctx, unsigned db, const char *key, size_t klen,
                        const struct paxos_acceptor *a) {
    struct fake_acc *f = ctx;
    f->a = *a;
    f->promises++;
    return 0;
}

static int fake_accept(void *ctx, unsigned db, const char *key, size_t klen,
                       const struct paxos_acceptor *a, const struct msg_record *rec) {
    struct fake_acc *f = ctx;
    struct paxos_value v = {1, rec->v, a->origin, rec->deleted, rec->expire_at,
                            (char *)rec->val, rec->vlen};
    paxos_value_copy(&f->rec, &v);
    f->a = *a;
    f->accepts++;
    return 0;
}

/* One proposer step's messages, through bytes, to three replicas and back. */
static void pump(struct fixture *f, struct fake_acc *acc, const struct paxos_gate *gates) {
    struct paxos_store st[3];
    for (int pass = 0; pass < 8 && f->a.nsend; pass++) {
        struct paxos_actions a = f->a;
        for (size_t i = 0; i < a.nsend; i++) {
            int r = (int)(a.send[i].node / 11) - 1;
            st[r] = (struct paxos_store){&acc[r], fake_load, fake_promise, fake_accept};
            struct msg_argv m;
            struct kv_slice sl[8];
            if (a.send[i].verb == PAXOS_MSG_PREPARE) {
                paxos_encode_prepare(&m, 0, "k", 1, f->p.ballot);
            } else {
                struct msg_record rec = {f->p.value.ballot, f->p.value.deleted, 0, f->p.value.val,
                                         f->p.value.vlen, 0};
                paxos_encode_accept(&m, 0, "k", 1, &rec, f->p.value.origin);
            }
            struct msg_buf out = {0};
            paxos_replica_handle(&st[r], &gates[r], sl, to_slices(&m, sl), &out);
            msg_argv_free(&m);
            redisReply *reply = parse_reply(&out);
            struct paxos_reply rep;
            struct paxos_value held = {0};
            if (paxos_decode_reply(reply, &rep, NULL, 0) != MSG_OK) {
                paxos_on_failure(&f->p, a.send[i].node, f->p.ballot, 1001, &f->a);
            } else if (rep.vote == PAXOS_PROMISE) {
                held = (struct paxos_value){rep.found, rep.rec.v, rep.origin, rep.rec.deleted,
                                            rep.rec.expire_at, (char *)rep.rec.val, rep.rec.vlen};
                paxos_on_promise(&f->p, a.send[i].node, rep.ballot, &held, 1001, &f->a);
            } else if (rep.vote == PAXOS_ACCEPTED) {
                paxos_on_accepted(&f->p, a.send[i].node, rep.ballot, 1001, &f->a);
            } else {
                paxos_on_reject(&f->p, a.send[i].node, f->p.ballot, rep.ballot, 1001, &f->a);
            }
            if (reply) {
                freeReplyObject(reply);
            }
            msg_buf_free(&out);
            if (f->a.need_value) {
                struct paxos_value x = {1, {0, 0}, {0, 0}, 0, 0, "x", 1};
                paxos_propose(&f->p, &x, 1001, &f->a);
            }
            if (f->a.nsend) {
                break; /* the next round goes out; the rest of this one is late */
            }
        }
    }
}

static void test_replica_side_through_bytes(void) {
    struct fake_acc acc[3];
    struct paxos_gate gates[3];
    memset(acc, 0, sizeof acc);
    for (int i = 0; i < 3; i++) {
        paxos_gate_init(&gates[i], 0);
    }
    paxos_gate_restart_forgetful(&gates[2], 0, 0); /* node 33 holds: NOTVOTING */
    gates[2].floor = (struct kv_version){0, 0};
    struct fixture f;
    fixture_start(&f, PAXOS_WRITE, 2, 2);
    pump(&f, acc, gates);
    CHECK_EQ_INT(f.p.result, PAXOS_OK);
    CHECK_EQ_INT(acc[2].promises, 0); /* refused phase 1 ... */
    CHECK_EQ_INT(acc[2].accepts, 1);  /* ... and still accepted */
    for (int i = 0; i < 3; i++) {
        CHECK(val_is(&acc[i].rec, "x"));
        CHECK(kv_version_cmp(acc[i].rec.ballot, f.p.ballot) == 0);
        CHECK(kv_version_cmp(acc[i].a.origin, f.p.ballot) == 0);
    }
    struct kv_version wrote = f.p.ballot;
    paxos_destroy(&f.p);
    /* a read: the answers agree (11 and 22): one round trip, nothing written */
    fixed_wall = 2000; /* a later ballot: the fixture's HLC starts again at 0 */
    fixture_start(&f, PAXOS_READ, 2, 2);
    CHECK(kv_version_cmp(f.p.ballot, wrote) > 0);
    pump(&f, acc, gates);
    CHECK_EQ_INT(f.p.result, PAXOS_OK);
    CHECK_EQ_INT(f.p.rtts, 1);
    CHECK(val_is(&f.p.value, "x"));
    CHECK_EQ_INT(acc[0].accepts, 1);
    paxos_destroy(&f.p);
    /* a store error is an error reply: counted as a failure */
    acc[0].fail = acc[1].fail = 1;
    fixture_start(&f, PAXOS_READ, 2, 2);
    f.cfg.max_attempts = 1;
    f.p.cfg.max_attempts = 1;
    pump(&f, acc, gates);
    CHECK_EQ_INT(f.p.result, PAXOS_FAILED);
    paxos_destroy(&f.p);
    for (int i = 0; i < 3; i++) {
        paxos_value_free(&acc[i].rec);
    }
    fixed_wall = 1000;
}

/* ======================= the model checker ======================= */

#define M_MAX_ACC 5
#define M_MAX_PROP 3
#define M_KEYS 2
#define M_OPS 10        /* per proposer */
#define M_MAX_MSGS 4096
#define M_MAX_LIST 64   /* ids in one register */
#define M_MAX_HIST (M_MAX_PROP * M_OPS + M_KEYS * 5) /* + the final reads */
#define M_MAX_ACCEPTS 4096
#define M_EPOCH 1000000 /* the model's time 0 as Unix ms */

enum { M_PREPARE = 1, M_ACCEPT, M_PROMISE, M_ACCEPTED, M_REJECT, M_FAIL, M_TIMER, M_RESTART,
       M_REJOIN };
enum { OP_APPEND = 1, OP_READ, OP_CAPPEND }; /* CAPPEND: append unless len % 3 == 2 */

/* mutations of the model itself (the acceptor side) */
enum { MM_ACCEPT_IGNORES_PROMISE = 1, MM_FORGET_WITHOUT_GATE = 2 };

struct m_msg {
    int live;
    uint64_t at, seq;
    int kind, from, to, key; /* from/to: acceptor index, or proposer index */
    uint64_t op;             /* the proposer's op id (routes replies) */
    struct kv_version ballot, highest;
    struct paxos_value val;  /* owned */
};

struct m_acc {
    struct paxos_acceptor a[M_KEYS];
    struct paxos_value rec[M_KEYS];
    struct paxos_gate gate;
    int incarnation;
};

struct m_hist {
    int key, kind, result, applied;
    uint32_t id;
    uint64_t start, end;
    uint32_t list[M_MAX_LIST];
    size_t len;
};

struct model;
struct m_prop {
    struct model *m;
    uint64_t hlc;
    int64_t skew; /* ms, this node's clock against the model's */
    struct paxos_env env;
    struct paxos_proposer p;
    int busy, done_ops;
    struct m_hist *h; /* the op running */
};

struct m_accept_seen { int key; struct kv_version b; uint64_t digest; };

struct model {
    uint64_t rng, now, seq;
    int na, np, verbose, mut_model;
    struct paxos_config cfg;
    int mutate;        /* paxos_mutation bits for every proposer */
    int forgetful;     /* acceptors restart forgetting (cache mode) */
    int drop_pct, dup_pct;
    struct m_acc acc[M_MAX_ACC];
    struct m_prop prop[M_MAX_PROP];
    struct m_msg msgs[M_MAX_MSGS];
    size_t top;        /* slots at and above it were never used */
    struct m_hist hist[M_MAX_HIST];
    size_t nhist;
    struct m_accept_seen seen[M_MAX_ACCEPTS];
    size_t nseen;
    uint32_t final[M_KEYS][M_MAX_LIST];
    size_t final_len[M_KEYS];
    char violation[200];
    /* stats */
    unsigned long ok, failed, indet, one_rtt, reads_ok, restarts;
};

static uint64_t m_rand(struct model *m) {
    uint64_t x = m->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return m->rng = x;
}

static uint64_t m_below(struct model *m, uint64_t n) {
    return n ? m_rand(m) % n : 0;
}

static void m_violation(struct model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void m_violation(struct model *m, const char *fmt, ...) {
    if (m->violation[0]) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->violation, sizeof m->violation, fmt, ap);
    va_end(ap);
}

static struct m_msg *m_post(struct model *m, int kind, int from, int to, int key, uint64_t op,
                            uint64_t delay) {
    for (size_t i = 0; i < M_MAX_MSGS; i++) {
        if (!m->msgs[i].live) {
            struct m_msg *g = &m->msgs[i];
            memset(g, 0, sizeof *g);
            *g = (struct m_msg){1, m->now + delay, m->seq++, kind, from, to, key, op,
                                {0, 0}, {0, 0}, {0}};
            m->top = i + 1 > m->top ? i + 1 : m->top;
            return g;
        }
    }
    m_violation(m, "model: message table full");
    return NULL;
}

/* A network message: lost, late, duplicated at random. */
static void m_send(struct model *m, const struct m_msg *tmpl) {
    if (m_below(m, 100) < (uint64_t)m->drop_pct) {
        return;
    }
    int copies = m_below(m, 100) < (uint64_t)m->dup_pct ? 2 : 1;
    for (int c = 0; c < copies; c++) {
        uint64_t delay = 1 + m_below(m, 20);
        if (m_below(m, 100) < 3) {
            delay += 60 + m_below(m, 100); /* past the round's timeout */
        } else if (m_below(m, 1000) < 5) {
            delay += 500 + m_below(m, 1500); /* held in a buffer: past a proposal's life */
        }
        struct m_msg *g = m_post(m, tmpl->kind, tmpl->from, tmpl->to, tmpl->key, tmpl->op, delay);
        if (g == NULL) {
            return;
        }
        g->ballot = tmpl->ballot;
        g->highest = tmpl->highest;
        paxos_value_copy(&g->val, &tmpl->val);
    }
}

static uint64_t m_digest(const struct paxos_value *v) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)v->deleted;
    for (size_t i = 0; i < v->vlen; i++) {
        h = (h ^ (unsigned char)v->val[i]) * 1099511628211ull;
    }
    return h;
}

/* Invariant: one content per (key, ballot) accepted anywhere. */
static void m_note_accept(struct model *m, int key, const struct paxos_value *v) {
    uint64_t d = m_digest(v);
    for (size_t i = 0; i < m->nseen; i++) {
        if (m->seen[i].key == key && kv_version_cmp(m->seen[i].b, v->ballot) == 0) {
            if (m->seen[i].digest != d) {
                m_violation(m, "two values accepted at one ballot of key %d", key);
            }
            return;
        }
    }
    if (m->nseen < M_MAX_ACCEPTS) {
        m->seen[m->nseen++] = (struct m_accept_seen){key, v->ballot, d};
    }
}

/* ---- acceptor side ---- */

static int m_accept(struct model *m, struct m_acc *a, int key, const struct paxos_value *v,
                    struct kv_version *hi) {
    struct paxos_acceptor *st = &a->a[key];
    if (m->mut_model & MM_ACCEPT_IGNORES_PROMISE) {
        /* a plain last-write-wins apply (a repair or hint without the check) */
        if (kv_version_cmp(v->ballot, st->accepted) <= 0) {
            *hi = st->accepted;
            return kv_version_cmp(v->ballot, st->accepted) == 0 ? PAXOS_ACCEPTED : PAXOS_REJECT;
        }
        st->accepted = v->ballot;
        st->origin = v->origin;
        st->promised = paxos_ballot_max(st->promised, v->ballot);
    } else {
        int vote = paxos_acceptor_accept(st, &a->gate, v->ballot, v->origin, hi);
        if (vote != PAXOS_ACCEPTED) {
            return vote;
        }
    }
    if (!a->rec[key].found || kv_version_cmp(v->ballot, a->rec[key].ballot) != 0) {
        paxos_value_copy(&a->rec[key], v);
        m_note_accept(m, key, v);
    }
    return PAXOS_ACCEPTED;
}

/* A PREPARE or ACCEPT arrives at acceptor g->to: the reply goes back. */
static void m_acceptor_step(struct model *m, const struct m_msg *g) {
    struct m_acc *a = &m->acc[g->to];
    struct m_msg r = {0};
    paxos_gate_tick(&a->gate, M_EPOCH + m->now);
    r.from = g->to;
    r.to = g->from;
    r.key = g->key;
    r.op = g->op;
    r.ballot = g->kind == M_PREPARE ? g->ballot : g->val.ballot;
    int vote;
    if (g->kind == M_PREPARE) {
        vote = paxos_acceptor_prepare(&a->a[g->key], &a->gate, g->ballot, &r.highest);
        if (vote == PAXOS_PROMISE) {
            r.val = a->rec[g->key]; /* borrowed: m_send copies */
        }
    } else {
        vote = m_accept(m, a, g->key, &g->val, &r.highest);
    }
    r.kind = vote == PAXOS_PROMISE    ? M_PROMISE
             : vote == PAXOS_ACCEPTED ? M_ACCEPTED
             : vote == PAXOS_REJECT   ? M_REJECT
                                      : M_FAIL;
    m_send(m, &r);
}

/* The gates' age bound: above a round's timeout (50) and a usual message's
 * delay (up to 180) and 2 x the skew bound (60); below the 500+ ms some messages
 * are held. A restarted node rejoins after it and the clocks' spread: by then no
 * ballot it may have promised before its restart is accepted anywhere (PAXOS.md
 * "Cache mode"). */
#define M_MAX_AGE 300
#define M_LIFETIME (M_MAX_AGE + 100)

/* A cache node restarts: it forgot every promise and value. One at a time: a
 * value chosen on W replicas is lost when W of them forget it before a repair,
 * which no protocol survives (as W disks lost in persistent mode). */
static void m_restart(struct model *m, int i) {
    for (int j = 0; j < m->na; j++) {
        if (m->acc[j].gate.holding) {
            m_post(m, M_RESTART, i, i, 0, 0, 100);
            return;
        }
    }
    struct m_acc *a = &m->acc[i];
    for (int k = 0; k < M_KEYS; k++) {
        memset(&a->a[k], 0, sizeof a->a[k]);
        paxos_value_free(&a->rec[k]);
    }
    a->incarnation++;
    m->restarts++;
    if (!(m->mut_model & MM_FORGET_WITHOUT_GATE)) {
        /* the skews are below 30 ms: 2 x 30 and some */
        paxos_gate_restart_forgetful(&a->gate, M_EPOCH + m->now, 80);
        m_post(m, M_REJOIN, i, i, 0, 0, M_LIFETIME + m_below(m, 200));
    }
}

/* Rejoining: a repair with every other replica installs the newest record of each
 * key (a copy of accepts made elsewhere: data, not a vote of this node's), then
 * the gate opens. */
static void m_rejoin(struct model *m, int i) {
    struct m_acc *a = &m->acc[i];
    for (int j = 0; j < m->na; j++) {
        for (int k = 0; k < M_KEYS && j != i; k++) {
            const struct paxos_value *r = &m->acc[j].rec[k];
            if (r->found && (!a->rec[k].found || kv_version_cmp(r->ballot, a->rec[k].ballot) > 0)) {
                paxos_value_copy(&a->rec[k], r);
                a->a[k].accepted = r->ballot;
                a->a[k].origin = r->origin;
                a->a[k].promised = paxos_ballot_max(a->a[k].promised, r->ballot);
            }
        }
    }
    paxos_gate_rejoined(&a->gate);
}

/* ---- proposer side ---- */

static uint64_t m_prop_wall(void *ctx) {
    struct m_prop *pr = ctx;
    return (uint64_t)((int64_t)(M_EPOCH + pr->m->now) + pr->skew);
}

static uint64_t m_prop_rand(void *ctx) {
    struct m_prop *pr = ctx;
    return m_rand(pr->m);
}

static size_t m_list_decode(const struct paxos_value *v, uint32_t *out) {
    if (!v->found || v->deleted) {
        return 0;
    }
    size_t n = v->vlen / 4;
    for (size_t i = 0; i < n && i < M_MAX_LIST; i++) {
        out[i] = (uint32_t)msg_get_be((const unsigned char *)v->val + 4 * i, 4);
    }
    return n < M_MAX_LIST ? n : M_MAX_LIST;
}

/* The command: append the op's id to the list (CAPPEND: unless its length % 3 is
 * 2, then change nothing). Returns 0 when unchanged. */
static int m_command(const struct m_hist *h, const struct paxos_value *base,
                     struct paxos_value *out, unsigned char *buf) {
    uint32_t list[M_MAX_LIST];
    size_t n = m_list_decode(base, list);
    if ((h->kind == OP_CAPPEND && n % 3 == 2) || n + 1 >= M_MAX_LIST) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        msg_put_be(buf + 4 * i, list[i], 4);
    }
    msg_put_be(buf + 4 * n, h->id, 4);
    memset(out, 0, sizeof *out);
    out->found = 1;
    out->val = (char *)buf;
    out->vlen = 4 * (n + 1);
    return 1;
}

static void m_complete(struct model *m, struct m_prop *pr) {
    struct m_hist *h = pr->h;
    h->result = pr->p.result;
    h->end = m->now;
    if (h->result == PAXOS_OK) {
        h->len = m_list_decode(&pr->p.value, h->list);
        h->applied = h->kind != OP_READ && h->len && h->list[h->len - 1] == h->id;
        m->ok++;
        if (h->kind == OP_READ) {
            m->reads_ok++;
            m->one_rtt += pr->p.rtts == 1;
        }
    } else {
        m->failed += h->result == PAXOS_FAILED;
        m->indet += h->result == PAXOS_INDETERMINATE;
    }
    pr->busy = 0;
    pr->done_ops++;
    m_post(m, M_TIMER, -1, (int)(pr - m->prop), 0, 0, m_below(m, 10)); /* the next op */
}

static void m_act(struct model *m, struct m_prop *pr, struct paxos_actions *out) {
    int pi = (int)(pr - m->prop);
    while (out->need_value) {
        unsigned char buf[4 * M_MAX_LIST];
        struct paxos_value change;
        int changed = m_command(pr->h, &pr->p.base, &change, buf);
        paxos_propose(&pr->p, changed ? &change : NULL, m->now, out);
    }
    for (size_t i = 0; i < out->nsend; i++) {
        struct m_msg g = {0};
        g.kind = out->send[i].verb == PAXOS_MSG_PREPARE ? M_PREPARE : M_ACCEPT;
        g.from = pi;
        g.to = (int)out->send[i].node - 1;
        g.key = pr->h->key;
        g.op = pr->p.id;
        g.ballot = pr->p.ballot;
        if (g.kind == M_ACCEPT) {
            g.val = pr->p.value; /* borrowed: m_send copies */
        }
        m_send(m, &g);
    }
    if (out->completed) {
        m_complete(m, pr);
    } else if (!out->finished) {
        m_post(m, M_TIMER, -1, pi, 0, pr->p.id, pr->p.deadline - m->now);
    }
}

static void m_start_op(struct model *m, struct m_prop *pr, int key, int kind) {
    struct m_hist *h = &m->hist[m->nhist++];
    memset(h, 0, sizeof *h);
    h->id = (uint32_t)m->nhist;
    h->key = key;
    h->kind = kind;
    h->start = m->now;
    pr->h = h;
    pr->busy = 1;
    paxos_destroy(&pr->p);
    uint32_t nodes[M_MAX_ACC];
    for (int i = 0; i < m->na; i++) {
        nodes[i] = (uint32_t)i + 1;
    }
    struct paxos_actions out;
    paxos_start(&pr->p, &pr->env, h->id, kind == OP_READ ? PAXOS_READ : PAXOS_WRITE, nodes,
                (size_t)m->na, NULL, &m->cfg, m->now, &out);
    pr->p.mutate = m->mutate;
    m_act(m, pr, &out);
}

static void m_next_op(struct model *m, struct m_prop *pr) {
    if (pr->busy || pr->done_ops >= M_OPS) {
        return;
    }
    uint64_t r = m_below(m, 10);
    int kind = r < 5 ? OP_APPEND : r < 8 ? OP_READ : OP_CAPPEND;
    m_start_op(m, pr, (int)m_below(m, M_KEYS), kind);
}

/* A reply or a timer for proposer g->to. */
static void m_proposer_step(struct model *m, const struct m_msg *g) {
    struct m_prop *pr = &m->prop[g->to];
    if (g->kind == M_TIMER && g->op == 0) {
        m_next_op(m, pr);
        return;
    }
    if (!pr->busy || g->op != pr->p.id) {
        return; /* for an op that is over */
    }
    struct paxos_actions out;
    uint32_t tag = (uint32_t)g->from + 1;
    switch (g->kind) {
    case M_PROMISE:
        paxos_on_promise(&pr->p, tag, g->ballot, &g->val, m->now, &out);
        break;
    case M_ACCEPTED:
        paxos_on_accepted(&pr->p, tag, g->ballot, m->now, &out);
        break;
    case M_REJECT:
        paxos_on_reject(&pr->p, tag, g->ballot, g->highest, m->now, &out);
        break;
    case M_FAIL:
        paxos_on_failure(&pr->p, tag, g->ballot, m->now, &out);
        break;
    default:
        paxos_tick(&pr->p, m->now, &out);
    }
    m_act(m, pr, &out);
}

/* ---- the run ---- */

static struct m_msg *m_next_event(struct model *m) {
    struct m_msg *best = NULL;
    for (size_t i = 0; i < m->top; i++) {
        struct m_msg *g = &m->msgs[i];
        if (g->live && (best == NULL || g->at < best->at || (g->at == best->at && g->seq < best->seq))) {
            best = g;
        }
    }
    return best;
}

static void m_deliver(struct model *m, struct m_msg *g) {
    m->now = g->at;
    struct m_msg copy = *g;
    g->live = 0; /* copy owns the value now */
    memset(&g->val, 0, sizeof g->val);
    if (m->verbose) {
        fprintf(stderr, "t=%llu kind=%d %d->%d key=%d op=%llu b=%llx.%u\n",
                (unsigned long long)m->now, copy.kind, copy.from, copy.to, copy.key,
                (unsigned long long)copy.op, (unsigned long long)copy.ballot.hlc,
                copy.ballot.node);
    }
    if (copy.kind == M_PREPARE || copy.kind == M_ACCEPT) {
        m_acceptor_step(m, &copy);
    } else if (copy.kind == M_RESTART) {
        m_restart(m, copy.to);
    } else if (copy.kind == M_REJOIN) {
        m_rejoin(m, copy.to);
    } else {
        m_proposer_step(m, &copy);
    }
    paxos_value_free(&copy.val);
}

/* Runs events until none is left (or a bound: a livelock is a violation). */
static void m_drain(struct model *m) {
    for (unsigned long steps = 0; !m->violation[0]; steps++) {
        struct m_msg *g = m_next_event(m);
        if (g == NULL) {
            return;
        }
        if (steps > 200000) {
            m_violation(m, "model: no quiescence after %lu events", steps);
            return;
        }
        m_deliver(m, g);
    }
}

/* After the run, on a quiet network: the register's final list per key. */
static void m_final_reads(struct model *m) {
    m->drop_pct = m->dup_pct = 0;
    m->mutate = 0;
    struct m_prop *pr = &m->prop[0];
    for (int k = 0; k < M_KEYS && !m->violation[0]; k++) {
        int tries = 0;
        do {
            m_start_op(m, pr, k, OP_READ);
            pr->done_ops = M_OPS; /* no next op */
            m_drain(m);
        } while (pr->h->result != PAXOS_OK && ++tries < 5 && !m->violation[0]);
        if (pr->h->result != PAXOS_OK) {
            m_violation(m, "final read of key %d failed", k);
            return;
        }
        m->final_len[k] = pr->h->len;
        memcpy(m->final[k], pr->h->list, sizeof pr->h->list);
        m->nhist--; /* not part of the history */
    }
}

/* ---- the checker (PAXOS.md "What the checker checks") ---- */

static int m_in(const uint32_t *list, size_t n, uint32_t id) {
    for (size_t i = 0; i < n; i++) {
        if (list[i] == id) {
            return 1;
        }
    }
    return 0;
}

/* Each op alone against the final list of its key. */
static void m_check_op(struct model *m, const struct m_hist *h) {
    const uint32_t *fin = m->final[h->key];
    size_t flen = m->final_len[h->key];
    int in_final = m_in(fin, flen, h->id);
    if (h->result == PAXOS_FAILED && h->kind != OP_READ && in_final) {
        m_violation(m, "op %u FAILED but its append is in the final list", h->id);
    }
    if (h->result != PAXOS_OK) {
        return;
    }
    if (h->len > flen || memcmp(h->list, fin, h->len * sizeof *fin) != 0) {
        m_violation(m, "op %u returned a list that is not a prefix of the final one "
                       "(lost or reordered write)", h->id);
    } else if (h->kind == OP_APPEND && !h->applied) {
        m_violation(m, "append %u acknowledged, its id not last in its result", h->id);
    } else if (h->kind == OP_CAPPEND && !h->applied && m_in(h->list, h->len, h->id)) {
        m_violation(m, "conditional append %u applied twice", h->id);
    }
}

/* Real time: an op that ended before another started is not after it. */
static void m_check_order(struct model *m, const struct m_hist *a, const struct m_hist *b) {
    if (a->result != PAXOS_OK || b->result != PAXOS_OK || a->key != b->key ||
        a->end >= b->start) {
        return;
    }
    if (a->len > b->len || (b->applied && a->len == b->len)) {
        m_violation(m, "op %u (ended t=%llu, %zu ids) precedes op %u (started t=%llu, %zu "
                       "ids): stale", a->id, (unsigned long long)a->end, a->len, b->id,
                    (unsigned long long)b->start, b->len);
    }
}

static void m_check(struct model *m) {
    for (int k = 0; k < M_KEYS; k++) {
        for (size_t i = 0; i < m->final_len[k]; i++) {
            if (m_in(m->final[k], i, m->final[k][i])) {
                m_violation(m, "key %d: id %u applied twice", k, m->final[k][i]);
            }
        }
    }
    for (size_t i = 0; i < m->nhist && !m->violation[0]; i++) {
        m_check_op(m, &m->hist[i]);
        for (size_t j = 0; j < m->nhist; j++) {
            m_check_order(m, &m->hist[i], &m->hist[j]);
        }
    }
}

/* ---- one seed ---- */

struct m_variant {
    int na;
    size_t r, w;
    int forgetful;
};

static const struct m_variant VARIANTS[] = {
    {3, 2, 2, 0}, {3, 2, 2, 1}, {5, 3, 3, 1}, {3, 1, 3, 0}, {5, 2, 4, 0}, {5, 4, 2, 1},
};
#define NVARIANTS (sizeof VARIANTS / sizeof VARIANTS[0])

struct m_opts {
    int mutate;         /* paxos_mutation bits */
    int mut_model;      /* MM_* */
    size_t w_override;  /* phase 2 quorum forced after start (R + W' <= N) */
    int verbose;
};

static void m_free(struct model *m) {
    for (size_t i = 0; i < M_MAX_MSGS; i++) {
        paxos_value_free(&m->msgs[i].val);
    }
    for (int i = 0; i < M_MAX_ACC; i++) {
        for (int k = 0; k < M_KEYS; k++) {
            paxos_value_free(&m->acc[i].rec[k]);
        }
    }
    for (int i = 0; i < M_MAX_PROP; i++) {
        paxos_destroy(&m->prop[i].p);
    }
}

static void m_setup(struct model *m, uint64_t seed, const struct m_opts *o) {
    memset(m, 0, sizeof *m);
    const struct m_variant *v = &VARIANTS[seed % NVARIANTS];
    m->rng = seed * 0x9E3779B97F4A7C15ull + 1;
    m->na = v->na;
    m->np = 2 + (int)(seed / NVARIANTS % 2);
    m->cfg = (struct paxos_config){v->r, v->w, 50, 5, 6};
    m->mutate = o->mutate;
    m->mut_model = o->mut_model;
    m->verbose = o->verbose;
    m->forgetful = v->forgetful || (o->mut_model & MM_FORGET_WITHOUT_GATE);
    m->drop_pct = 5;
    m->dup_pct = 3;
    for (int i = 0; i < m->na; i++) {
        paxos_gate_init(&m->acc[i].gate, M_MAX_AGE);
    }
    for (int i = 0; i < m->np; i++) {
        struct m_prop *pr = &m->prop[i];
        pr->m = m;
        pr->skew = (int64_t)m_below(m, 61) - 30;
        pr->env = (struct paxos_env){(uint32_t)(100 + i), &pr->hlc, m_prop_wall, m_prop_rand, pr};
        m_post(m, M_TIMER, -1, i, 0, 0, m_below(m, 5));
    }
    for (int r = 0; m->forgetful && r < 2; r++) {
        int who = (int)m_below(m, (uint64_t)m->na);
        m_post(m, M_RESTART, who, who, 0, 0, 20 + m_below(m, 600));
    }
}

/* Runs one seed: 0 when every check held, -1 with m->violation. */
static int m_run(uint64_t seed, const struct m_opts *o, struct model *m) {
    m_setup(m, seed, o);
    if (o->w_override) {
        m->cfg.w = m->cfg.r + 1 > (size_t)m->na ? m->cfg.w : (size_t)m->na + 1 - m->cfg.r;
    }
    /* the override lands after paxos_start's check, through the proposers */
    for (unsigned long steps = 0; !m->violation[0]; steps++) {
        struct m_msg *g = m_next_event(m);
        if (g == NULL || steps > 400000) {
            break;
        }
        m_deliver(m, g);
        for (int i = 0; o->w_override && i < m->np; i++) {
            m->prop[i].p.cfg.w = o->w_override;
        }
    }
    if (!m->violation[0]) {
        m_final_reads(m);
    }
    if (!m->violation[0]) {
        m_check(m);
    }
    m_free(m);
    return m->violation[0] ? -1 : 0;
}

static struct model the_model; /* large: static, not on the stack */

/* Runs seeds [first, first + n): the count that failed; prints the first. */
static int m_seeds(uint64_t first, unsigned n, const struct m_opts *o, const char *name,
                   int quiet) {
    int failed = 0;
    unsigned long ok = 0, indet = 0, fail = 0, reads = 0, one = 0, restarts = 0;
    for (uint64_t s = first; s < first + n; s++) {
        if (m_run(s, o, &the_model) != 0) {
            if (failed++ == 0 && !quiet) {
                fprintf(stderr, "paxos model: seed %llu FAILED: %s\n  replay: "
                                "build/tests/paxos_test --seed %llu -v\n",
                        (unsigned long long)s, the_model.violation, (unsigned long long)s);
            }
        }
        ok += the_model.ok, indet += the_model.indet, fail += the_model.failed;
        reads += the_model.reads_ok, one += the_model.one_rtt, restarts += the_model.restarts;
    }
    fprintf(stderr, "paxos model [%s]: %u seeds, %d failed; ops ok %lu, failed %lu, "
                    "indeterminate %lu; reads in 1 RTT %lu of %lu; forgetful restarts %lu\n",
            name, n, failed, ok, fail, indet, one, reads, restarts);
    return failed;
}

static unsigned env_seeds(const char *name, unsigned dflt) {
    const char *e = getenv(name);
    long v = e ? atol(e) : 0;
    return v > 0 ? (unsigned)v : dflt;
}

static unsigned model_seeds(void) {
    return env_seeds("PAXOS_SEEDS", 2000);
}

static void test_model_holds_for_every_seed(void) {
    struct m_opts o = {0};
    CHECK_EQ_INT(m_seeds(1, model_seeds(), &o, "correct", 0), 0);
}

/* Each rule broken on purpose: the checker must find it within 600 seeds. */
static void test_model_fails_when_a_retry_skips_phase1(void) {
    struct m_opts o = {.mutate = PAXOS_MUT_RETRY_WITHOUT_PHASE1};
    CHECK(m_seeds(1, 600, &o, "retry without phase 1", 1) > 0);
}

static void test_model_fails_when_a_retry_reapplies(void) {
    struct m_opts o = {.mutate = PAXOS_MUT_REAPPLY_ON_RETRY};
    CHECK(m_seeds(1, 600, &o, "retry reapplies the command", 1) > 0);
}

static void test_model_fails_on_one_rtt_reads_without_w_agreeing(void) {
    struct m_opts o = {.mutate = PAXOS_MUT_READ_ANY_ANSWER};
    CHECK(m_seeds(1, 600, &o, "1-RTT read of any answer", 1) > 0);
}

static void test_model_fails_when_quorums_do_not_intersect(void) {
    struct m_opts o = {.w_override = 1}; /* N=3 R=2 W'=1, N=5 R=3 W'=1, ... */
    CHECK(m_seeds(1, 600, &o, "R + W' <= N", 1) > 0);
}

static void test_model_fails_when_accept_ignores_promises(void) {
    struct m_opts o = {.mut_model = MM_ACCEPT_IGNORES_PROMISE};
    CHECK(m_seeds(1, 600, &o, "accept ignores promises (plain LWW apply)", 1) > 0);
}

static void test_model_fails_when_a_forgetful_node_votes_at_once(void) {
    struct m_opts o = {.mut_model = MM_FORGET_WITHOUT_GATE};
    CHECK(m_seeds(1, 600, &o, "forgetful restart without the gate", 1) > 0);
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "--seed") == 0) {
        struct m_opts o = {.verbose = argc >= 4 && strcmp(argv[3], "-v") == 0};
        return m_seeds(strtoull(argv[2], NULL, 10), 1, &o, "replay", 0) ? 1 : 0;
    }
    TEST_RUN(test_acceptor_rejects_lower_ballots);
    TEST_RUN(test_acceptor_duplicates_are_idempotent);
    TEST_RUN(test_gate_holds_a_forgetful_node);
    TEST_RUN(test_quorums_must_intersect);
    TEST_RUN(test_proposer_picks_highest_accepted_value);
    TEST_RUN(test_read_is_one_round_trip_when_w_answers_agree);
    TEST_RUN(test_read_finishes_what_it_saw_when_answers_differ);
    TEST_RUN(test_read_at_r1_w3_needs_every_replica_to_agree);
    TEST_RUN(test_unchanged_write_skips_phase2_only_when_chosen);
    TEST_RUN(test_rejected_round_retries_above_the_highest_ballot);
    TEST_RUN(test_retry_finds_its_own_change_and_does_not_reapply);
    TEST_RUN(test_retry_under_a_foreign_value_is_indeterminate);
    TEST_RUN(test_rounds_run_out_failed_or_indeterminate);
    TEST_RUN(test_age_bound_stops_a_proposal_older_than_a_restart);
    TEST_RUN(test_requests_encode_and_decode);
    TEST_RUN(test_malformed_requests_are_refused);
    TEST_RUN(test_replies_decode_strictly);
    TEST_RUN(test_replica_side_through_bytes);
    TEST_RUN(test_model_holds_for_every_seed);
    TEST_RUN(test_model_fails_when_a_retry_skips_phase1);
    TEST_RUN(test_model_fails_when_a_retry_reapplies);
    TEST_RUN(test_model_fails_on_one_rtt_reads_without_w_agreeing);
    TEST_RUN(test_model_fails_when_quorums_do_not_intersect);
    TEST_RUN(test_model_fails_when_accept_ignores_promises);
    TEST_RUN(test_model_fails_when_a_forgetful_node_votes_at_once);
    TEST_MAIN_END();
}
