/* cluster/gossip_test.c: membership by gossip (cluster/gossip.c): the three-message
 * exchange, convergence, heartbeats feeding phi, restarts (generation), members
 * that disagree are refused, digests keep settled rounds small, and the wire form
 * refuses garbage (every truncation, every byte flipped, random bytes, lying
 * counts) without crashing or changing the state. Also the clock offset guard
 * (cluster/skew.c). */
#include "cluster/gossip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/skew.h"
#include "tests/test.h"

#define SECRET "s3cret"

struct tn {
    struct ring_member m;
    uint64_t tokens[4];
    struct gossip *g;
};

static void tn_init(struct tn *t, int i, uint64_t gen, unsigned rf, const char *secret) {
    memset(t, 0, sizeof *t);
    snprintf(t->m.id, sizeof t->m.id, "node-%d", i);
    snprintf(t->m.addr, sizeof t->m.addr, "127.0.0.%d:7000", i + 2);
    t->m.tag = (uint32_t)(100 + i);
    t->m.weight = 1.0;
    ring_tokens_generate((uint64_t)i * 7919 + 1, t->tokens, 4);
    t->m.tokens = t->tokens;
    t->m.ntokens = 4;
    struct gossip_self s = {0};
    s.m = &t->m;
    s.generation = gen;
    s.rf = rf;
    gossip_fingerprint(secret, strlen(secret), s.fp);
    s.convict = 8;
    phi_config_default(&s.phi);
    s.seed = (uint64_t)i + 1;
    t->g = gossip_new(&s);
}

/* one full exchange a -> b at now; returns the rc of the first step that failed */
static int exchange(struct gossip *a, struct gossip *b, uint64_t now, size_t *bytes) {
    struct msg_buf syn = {0}, ack = {0}, ack2 = {0};
    char err[160];
    gossip_syn(a, now, &syn);
    int rc = gossip_on_syn(b, now, now, syn.p, syn.len, &ack, NULL, err, sizeof err);
    int need = 0;
    if (rc == GOSSIP_OK) {
        rc = gossip_on_ack(a, now, now, ack.p, ack.len, &ack2, &need, NULL, err, sizeof err);
    }
    if (rc == GOSSIP_OK && need) {
        rc = gossip_on_ack2(b, now, ack2.p, ack2.len, NULL, err, sizeof err);
    }
    if (bytes) {
        *bytes = syn.len + ack.len + ack2.len;
    }
    msg_buf_free(&syn);
    msg_buf_free(&ack);
    msg_buf_free(&ack2);
    return rc;
}

static int knows_same(const struct gossip *a, const struct gossip *b) {
    if (a->n != b->n) {
        return 0;
    }
    for (size_t i = 0; i < a->n; i++) {
        long j = gossip_find(b, a->mb[i].m.id);
        if (j < 0) {
            return 0;
        }
        const struct gossip_member *x = &a->mb[i], *y = &b->mb[j];
        if (x->generation != y->generation || x->m.ntokens != y->m.ntokens ||
            memcmp(x->m.tokens, y->m.tokens, x->m.ntokens * 8) != 0 || x->m.tag != y->m.tag ||
            strcmp(x->m.addr, y->m.addr) != 0) {
            return 0;
        }
    }
    return 1;
}

static void test_gossip_exchange_teaches_both_sides(void) {
    struct tn a, b, c;
    tn_init(&a, 0, 1, 3, SECRET);
    tn_init(&b, 1, 1, 3, SECRET);
    tn_init(&c, 2, 1, 3, SECRET);
    CHECK_EQ_INT(exchange(a.g, b.g, 1000, NULL), GOSSIP_OK);
    CHECK_EQ_INT(a.g->n, 2);
    CHECK_EQ_INT(b.g->n, 2);
    CHECK(knows_same(a.g, b.g));
    CHECK_EQ_INT(exchange(c.g, b.g, 2000, NULL), GOSSIP_OK); /* c learns a through b */
    CHECK_EQ_INT(c.g->n, 3);
    CHECK(gossip_find(c.g, "node-0") >= 0);
    CHECK_EQ_INT(exchange(a.g, b.g, 3000, NULL), GOSSIP_OK);
    CHECK(knows_same(a.g, c.g) && knows_same(b.g, c.g));
    long i = gossip_find(a.g, "node-2");
    CHECK(i > 0 && gossip_in_ring(a.g, (size_t)i));
    CHECK_EQ_INT(a.g->mb[i].m.tag, 102);
    CHECK_EQ_INT(a.g->mb[i].status, GOSSIP_NORMAL);
    gossip_free(&a.g);
    gossip_free(&b.g);
    gossip_free(&c.g);
    CHECK(a.g == NULL);
}

static void test_gossip_heartbeats_feed_phi_and_silence_convicts(void) {
    struct tn a, b;
    tn_init(&a, 0, 1, 3, SECRET);
    tn_init(&b, 1, 1, 3, SECRET);
    uint64_t t = 10000;
    for (int r = 0; r < 30; r++, t += 1000) {
        gossip_tick(a.g);
        gossip_tick(b.g);
        CHECK_EQ_INT(exchange(a.g, b.g, t, NULL), GOSSIP_OK);
    }
    long i = gossip_find(a.g, "node-1");
    double phi;
    CHECK_EQ_INT(gossip_health(a.g, (size_t)i, t, &phi), GOSSIP_UP);
    CHECK(phi < 1);
    CHECK_EQ_INT(gossip_health(a.g, 0, t + 100000, &phi), GOSSIP_UP); /* itself */
    /* b stops: its heartbeat stops rising however often a gossips with others */
    int seen_suspect = 0;
    uint64_t down_at = 0;
    for (uint64_t dt = 0; dt < 20000 && !down_at; dt += 100) {
        int h = gossip_health(a.g, (size_t)i, t + dt, NULL);
        seen_suspect |= h == GOSSIP_SUSPECT;
        if (h == GOSSIP_DOWN) {
            down_at = dt;
        }
    }
    printf("gossip: 1 s rounds, a silent member is down after %llu ms\n",
           (unsigned long long)down_at);
    CHECK(seen_suspect);
    CHECK(down_at > 1000 && down_at < 5000);
    /* it comes back: up again at its next heartbeat */
    gossip_tick(b.g);
    CHECK_EQ_INT(exchange(b.g, a.g, t + down_at, NULL), GOSSIP_OK);
    CHECK_EQ_INT(gossip_health(a.g, (size_t)i, t + down_at + 10, NULL), GOSSIP_UP);
    gossip_free(&a.g);
    gossip_free(&b.g);
}

static void test_gossip_restart_bumps_generation_and_replaces_state(void) {
    struct tn a, b, b2;
    tn_init(&a, 0, 1, 3, SECRET);
    tn_init(&b, 1, 5, 3, SECRET);
    for (int r = 0; r < 20; r++) {
        gossip_tick(b.g);
    }
    CHECK_EQ_INT(exchange(a.g, b.g, 1000, NULL), GOSSIP_OK);
    long i = gossip_find(a.g, "node-1");
    CHECK_EQ_INT(a.g->mb[i].generation, 5);
    CHECK_EQ_INT(a.g->mb[i].heartbeat, 21);
    /* restarted: heartbeat back to 1, but a higher generation wins; new tokens too */
    tn_init(&b2, 1, 6, 3, SECRET);
    b2.g->mb[0].m.tokens[0] ^= 1; /* still sorted: tokens differ in the low bit */
    CHECK_EQ_INT(exchange(b2.g, a.g, 2000, NULL), GOSSIP_OK);
    CHECK_EQ_INT(a.g->mb[i].generation, 6);
    CHECK_EQ_INT(a.g->mb[i].heartbeat, 1);
    CHECK(a.g->mb[i].m.tokens[0] == b2.g->mb[0].m.tokens[0]);
    /* the old incarnation's newer heartbeat no longer counts */
    uint64_t epoch = a.g->ring_epoch;
    CHECK_EQ_INT(exchange(b.g, a.g, 3000, NULL), GOSSIP_OK);
    CHECK_EQ_INT(a.g->mb[i].generation, 6);
    CHECK_EQ_INT(a.g->mb[i].heartbeat, 1);
    CHECK_EQ_INT(a.g->ring_epoch, epoch);
    gossip_free(&a.g);
    gossip_free(&b.g);
    gossip_free(&b2.g);
}

static void test_gossip_status_change_travels_and_moves_the_ring_epoch(void) {
    struct tn a, b;
    tn_init(&a, 0, 1, 3, SECRET);
    tn_init(&b, 1, 1, 3, SECRET);
    CHECK_EQ_INT(exchange(a.g, b.g, 1000, NULL), GOSSIP_OK);
    uint64_t epoch = a.g->ring_epoch;
    gossip_set_status(b.g, GOSSIP_LEFT);
    CHECK_EQ_INT(exchange(a.g, b.g, 2000, NULL), GOSSIP_OK);
    long i = gossip_find(a.g, "node-1");
    CHECK_EQ_INT(a.g->mb[i].status, GOSSIP_LEFT);
    CHECK(!gossip_in_ring(a.g, (size_t)i));
    CHECK(a.g->ring_epoch > epoch);
    CHECK_EQ_STR(gossip_status_name(GOSSIP_LEFT), "left");
    gossip_free(&a.g);
    gossip_free(&b.g);
}

/* KVD REMOVENODE: a removes dead member d on its behalf (generation
 * GOSSIP_GEN_REMOVED). The removal reaches c; d's own gossip, even from a restart at
 * a higher generation, never wins back; d, restarted, hears it was removed. */
static void test_gossip_removal_wins_over_the_dead_member_and_tells_it(void) {
    struct tn a, c, d, d2;
    tn_init(&a, 0, 1, 3, SECRET);
    tn_init(&c, 2, 1, 3, SECRET);
    tn_init(&d, 3, 7, 3, SECRET);
    CHECK_EQ_INT(exchange(d.g, a.g, 1000, NULL), GOSSIP_OK);
    CHECK_EQ_INT(exchange(d.g, c.g, 1000, NULL), GOSSIP_OK);
    long i = gossip_find(a.g, "node-3");
    CHECK(i > 0 && gossip_in_ring(a.g, (size_t)i) && !gossip_removed(a.g, (size_t)i));
    uint64_t epoch = a.g->ring_epoch;
    gossip_remove(a.g, (size_t)i, GOSSIP_LEAVING);
    CHECK(gossip_removed(a.g, (size_t)i));
    CHECK_EQ_INT(a.g->mb[i].status, GOSSIP_LEAVING);
    CHECK(a.g->ring_epoch > epoch);
    CHECK_EQ_INT(exchange(a.g, c.g, 2000, NULL), GOSSIP_OK);
    long k = gossip_find(c.g, "node-3");
    CHECK(gossip_removed(c.g, (size_t)k) && c.g->mb[k].status == GOSSIP_LEAVING);
    /* the dead member's own newer heartbeat and a status change do not undo it */
    for (int r = 0; r < 5; r++) {
        gossip_tick(d.g);
    }
    gossip_set_status(d.g, GOSSIP_NORMAL);
    d.g->mb[0].version += 10;
    CHECK_EQ_INT(exchange(d.g, c.g, 3000, NULL), GOSSIP_OK);
    CHECK(gossip_removed(c.g, (size_t)k) && c.g->mb[k].status == GOSSIP_LEAVING);
    /* done: left, still at the removed generation */
    gossip_remove(a.g, (size_t)i, GOSSIP_LEFT);
    CHECK_EQ_INT(exchange(c.g, a.g, 4000, NULL), GOSSIP_OK);
    CHECK_EQ_INT(c.g->mb[k].status, GOSSIP_LEFT);
    CHECK(!gossip_in_ring(c.g, (size_t)k));
    /* restarted at a higher generation: still out, and told */
    tn_init(&d2, 3, 8, 3, SECRET);
    CHECK_EQ_INT(d2.g->self_removed, 0);
    CHECK_EQ_INT(exchange(d2.g, c.g, 5000, NULL), GOSSIP_OK);
    CHECK_EQ_INT(d2.g->self_removed, 1);
    CHECK(gossip_removed(c.g, (size_t)k) && c.g->mb[k].status == GOSSIP_LEFT);
    CHECK(!gossip_in_ring(c.g, (size_t)k));
    /* this node itself cannot be removed by its own hand */
    gossip_remove(a.g, 0, GOSSIP_LEFT);
    CHECK(!gossip_removed(a.g, 0));
    gossip_free(&a.g);
    gossip_free(&c.g);
    gossip_free(&d.g);
    gossip_free(&d2.g);
}

/* A joining node's new tokens (gossip_set_tokens) reach a peer that knew its
 * old ones: the state's version rises, so the next exchange carries them. */
static void test_gossip_new_tokens_travel_and_move_the_ring_epoch(void) {
    struct tn a, b;
    tn_init(&a, 0, 1, 3, SECRET);
    tn_init(&b, 1, 1, 3, SECRET);
    CHECK_EQ_INT(exchange(a.g, b.g, 1000, NULL), GOSSIP_OK);
    uint64_t epoch = a.g->ring_epoch, version = b.g->mb[0].version;
    uint64_t toks[3] = {10, 20, 30};
    gossip_set_status(b.g, GOSSIP_JOINING);
    gossip_set_tokens(b.g, toks, 3);
    CHECK(b.g->mb[0].version >= version + 2);
    CHECK_EQ_INT(exchange(a.g, b.g, 2000, NULL), GOSSIP_OK);
    long i = gossip_find(a.g, "node-1");
    CHECK(i >= 0);
    CHECK_EQ_INT(a.g->mb[i].m.ntokens, 3);
    CHECK(memcmp(a.g->mb[i].m.tokens, toks, sizeof toks) == 0);
    CHECK_EQ_INT(a.g->mb[i].status, GOSSIP_JOINING);
    CHECK(gossip_in_ring(a.g, (size_t)i)); /* joining members are in the view */
    CHECK(a.g->ring_epoch > epoch);
    gossip_free(&a.g);
    gossip_free(&b.g);
}

static void test_gossip_refuses_a_peer_with_another_replication_factor_or_secret(void) {
    struct tn a, b, c;
    tn_init(&a, 0, 1, 3, SECRET);
    tn_init(&b, 1, 1, 2, SECRET);
    tn_init(&c, 2, 1, 3, "another");
    struct msg_buf syn = {0}, ack = {0};
    char err[160];
    gossip_syn(b.g, 1, &syn);
    CHECK_EQ_INT(gossip_on_syn(a.g, 1, 1, syn.p, syn.len, &ack, NULL, err, sizeof err),
                 GOSSIP_REFUSED);
    CHECK(strstr(err, "replication-factor 2, ours is 3") != NULL);
    CHECK_EQ_INT(ack.len, 0);
    syn.len = 0;
    gossip_syn(c.g, 1, &syn);
    CHECK_EQ_INT(gossip_on_syn(a.g, 1, 1, syn.p, syn.len, &ack, NULL, err, sizeof err),
                 GOSSIP_REFUSED);
    CHECK(strstr(err, "cluster-secret") != NULL);
    CHECK_EQ_INT(a.g->n, 1);
    CHECK_EQ_INT(a.g->st.refused, 2);
    msg_buf_free(&syn);
    msg_buf_free(&ack);
    gossip_free(&a.g);
    gossip_free(&b.g);
    gossip_free(&c.g);
}

/* a member relayed by a third node with a disagreeing state is kept, refused */
static void test_gossip_relayed_member_that_disagrees_is_refused_not_in_ring(void) {
    struct tn a, b, x;
    tn_init(&a, 0, 1, 3, SECRET);
    tn_init(&b, 1, 1, 3, SECRET);
    tn_init(&x, 2, 1, 3, SECRET);
    x.g->mb[0].rf = 2;        /* a member whose state says another N... */
    x.g->mb[0].m.tag = 101;   /* ...and b's tag */
    CHECK_EQ_INT(exchange(x.g, b.g, 1000, NULL), GOSSIP_REFUSED); /* header rf 2 */
    x.g->mb[0].rf = 3;
    CHECK_EQ_INT(exchange(x.g, b.g, 1000, NULL), GOSSIP_OK);
    long i = gossip_find(b.g, "node-2");
    CHECK(i > 0);
    CHECK(!gossip_in_ring(b.g, (size_t)i));
    CHECK(strstr(b.g->mb[i].refused, "tag 101") != NULL);
    CHECK_EQ_INT(exchange(a.g, b.g, 2000, NULL), GOSSIP_OK);
    i = gossip_find(a.g, "node-2");
    CHECK(i > 0 && !gossip_in_ring(a.g, (size_t)i));
    gossip_free(&a.g);
    gossip_free(&b.g);
    gossip_free(&x.g);
}

static void test_gossip_settled_rounds_send_no_tokens(void) {
    struct tn t[5];
    for (int i = 0; i < 5; i++) {
        tn_init(&t[i], i, 1, 3, SECRET);
    }
    for (int r = 0; r < 3; r++) {
        for (int i = 1; i < 5; i++) {
            CHECK_EQ_INT(exchange(t[i].g, t[0].g, 1000, NULL), GOSSIP_OK);
        }
    }
    size_t first, settled, beat;
    struct tn fresh;
    tn_init(&fresh, 9, 1, 3, SECRET);
    CHECK_EQ_INT(exchange(fresh.g, t[0].g, 2000, &first), GOSSIP_OK);
    CHECK_EQ_INT(exchange(t[1].g, t[0].g, 2000, NULL), GOSSIP_OK);
    CHECK_EQ_INT(exchange(t[1].g, t[0].g, 2000, &settled), GOSSIP_OK);
    gossip_tick(t[0].g);
    CHECK_EQ_INT(exchange(t[1].g, t[0].g, 3000, &beat), GOSSIP_OK);
    printf("gossip: 6 members, bytes per exchange: first contact %zu, settled %zu, "
           "one heartbeat %zu\n", first, settled, beat);
    CHECK(settled < first / 2);
    CHECK(beat < settled + 80); /* a heartbeat entry, no tokens */
    for (int i = 0; i < 5; i++) {
        gossip_free(&t[i].g);
    }
    gossip_free(&fresh.g);
}

static void test_gossip_pick_chooses_distinct_live_members(void) {
    struct tn t[6];
    for (int i = 0; i < 6; i++) {
        tn_init(&t[i], i, 1, 3, SECRET);
        if (i > 0) {
            CHECK_EQ_INT(exchange(t[i].g, t[0].g, 1000, NULL), GOSSIP_OK);
        }
    }
    uint32_t tags[4];
    int hits[6] = {0};
    for (int r = 0; r < 200; r++) {
        size_t k = gossip_pick(t[0].g, 1500, 2, tags, 4);
        CHECK_EQ_INT(k, 2);
        CHECK(tags[0] != tags[1]);
        for (size_t j = 0; j < k; j++) {
            CHECK(tags[j] != 100); /* never itself */
            hits[tags[j] - 100]++;
        }
    }
    for (int i = 1; i < 6; i++) {
        CHECK(hits[i] > 40); /* about 80 each */
    }
    /* everyone silent for a minute: all down; one down member is still tried */
    size_t k = gossip_pick(t[0].g, 61000, 2, tags, 4);
    CHECK_EQ_INT(k, 1);
    for (int i = 0; i < 6; i++) {
        gossip_free(&t[i].g);
    }
}

/* ---- the wire: garbage never crashes and never changes anything ---- */

static int try_all(struct gossip *g, const void *p, size_t len) {
    struct msg_buf out = {0};
    char err[160];
    int need = 0;
    int r1 = gossip_on_syn(g, 5, 5, p, len, &out, NULL, err, sizeof err);
    int r2 = gossip_on_ack(g, 5, 5, p, len, &out, &need, NULL, err, sizeof err);
    int r3 = gossip_on_ack2(g, 5, p, len, NULL, err, sizeof err);
    msg_buf_free(&out);
    return (r1 == GOSSIP_OK) + (r2 == GOSSIP_OK) + (r3 == GOSSIP_OK);
}

static void test_gossip_truncated_flipped_and_random_bytes_are_refused(void) {
    struct tn a, b, c;
    tn_init(&a, 0, 1, 3, SECRET);
    tn_init(&b, 1, 1, 3, SECRET);
    tn_init(&c, 2, 1, 3, SECRET);
    CHECK_EQ_INT(exchange(b.g, c.g, 1000, NULL), GOSSIP_OK);
    struct msg_buf syn = {0}, ack = {0};
    char err[160];
    gossip_syn(a.g, 1, &syn);
    CHECK_EQ_INT(gossip_on_syn(b.g, 1, 1, syn.p, syn.len, &ack, NULL, err, sizeof err),
                 GOSSIP_OK);
    /* every strict prefix of a valid ACK is refused, and nothing changes */
    for (size_t n = 0; n < ack.len; n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, ack.p, n);
        CHECK_EQ_INT(try_all(a.g, copy, n), 0);
        free(copy);
    }
    CHECK_EQ_INT(a.g->n, 1);
    /* a trailing byte too */
    char *longer = malloc(ack.len + 1);
    memcpy(longer, ack.p, ack.len);
    longer[ack.len] = 0;
    CHECK_EQ_INT(try_all(a.g, longer, ack.len + 1), 0);
    free(longer);
    /* every byte flipped: no crash (some flips are still valid states) */
    for (size_t i = 0; i < ack.len; i++) {
        char *copy = malloc(ack.len);
        memcpy(copy, ack.p, ack.len);
        copy[i] ^= (char)0xff;
        struct tn t;
        tn_init(&t, 0, 1, 3, SECRET);
        try_all(t.g, copy, ack.len);
        CHECK(t.g->n <= 3);
        gossip_free(&t.g);
        free(copy);
    }
    /* random bytes, with and without a valid magic */
    uint64_t x = 88172645463325252ull;
    for (int r = 0; r < 2000; r++) {
        unsigned char buf[300];
        size_t n = 1 + (size_t)(r % 299);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = (unsigned char)x;
        }
        if (r % 2 && n > 5) {
            memcpy(buf, "KVG1", 4);
            buf[4] = (unsigned char)(1 + r % 3);
        }
        CHECK_EQ_INT(try_all(a.g, buf, n), 0);
    }
    CHECK_EQ_INT(a.g->n, 1);
    CHECK(a.g->st.invalid > 2000);
    msg_buf_free(&syn);
    msg_buf_free(&ack);
    gossip_free(&a.g);
    gossip_free(&b.g);
    gossip_free(&c.g);
}

static void test_gossip_lying_counts_and_oversized_messages_are_refused(void) {
    struct tn a;
    tn_init(&a, 0, 1, 3, SECRET);
    struct msg_buf syn = {0};
    gossip_syn(a.g, 1, &syn);
    char err[160];
    struct msg_buf out = {0};
    /* the count claims 60000 digests; the bytes hold one */
    size_t count_at = syn.len - (1 + strlen("node-0") + 24) - 2;
    syn.p[count_at] = (char)0xea;
    syn.p[count_at + 1] = 0x60;
    CHECK_EQ_INT(gossip_on_syn(a.g, 1, 1, syn.p, syn.len, &out, NULL, err, sizeof err),
                 GOSSIP_INVALID);
    CHECK(strstr(err, "malformed") != NULL);
    /* a message larger than the bound is refused before anything is read */
    char *big = calloc(1, GOSSIP_MAX_MSG + 1);
    memcpy(big, "KVG1", 4);
    CHECK_EQ_INT(gossip_on_syn(a.g, 1, 1, big, GOSSIP_MAX_MSG + 1, &out, NULL, err, sizeof err),
                 GOSSIP_INVALID);
    CHECK(strstr(err, "at most") != NULL);
    free(big);
    /* the kind must be the one expected */
    syn.len = 0;
    gossip_syn(a.g, 1, &syn);
    int need;
    CHECK_EQ_INT(gossip_on_ack(a.g, 1, 1, syn.p, syn.len, &out, &need, NULL, err, sizeof err),
                 GOSSIP_INVALID);
    CHECK_EQ_INT(out.len, 0);
    msg_buf_free(&syn);
    msg_buf_free(&out);
    gossip_free(&a.g);
}

/* ---- the clock offset guard (skew.c) ---- */

static void test_skew_keeps_the_fastest_exchange_and_flags_a_far_node(void) {
    struct skew s;
    skew_init(&s, 500);
    /* peer 1 is 2000 ms ahead; one slow exchange (rtt 400) skews its estimate */
    skew_sample(&s, 1, 10000, 12300, 10400);  /* offset 2100, rtt 400 */
    skew_sample(&s, 1, 11000, 13002, 11004);  /* offset 2000, rtt 4 */
    int64_t off;
    uint64_t rtt;
    CHECK(skew_peer_offset(&s, 1, 11010, &off, &rtt));
    CHECK_EQ_INT(off, 2000);
    CHECK_EQ_INT(rtt, 4);
    CHECK(!skew_peer_offset(&s, 9, 11010, &off, &rtt));
    skew_sample(&s, 2, 11000, 12990, 11000);  /* -10 + 2000 */
    CHECK_EQ_INT(skew_check(&s, 11010), 1);   /* changed: now out of range */
    CHECK(!s.ok);
    CHECK_EQ_INT(s.offset, -1990); /* median of {0, 1990, 2000} */
    CHECK_EQ_INT(s.peers, 2);
    /* a healthy node: peers at 0, 0 and one 2000 behind -> median 0 */
    struct skew h;
    skew_init(&h, 500);
    skew_sample(&h, 1, 1000, 1001, 1002);
    skew_sample(&h, 2, 1000, 999, 1002);
    skew_sample(&h, 3, 1000, -999 + 1000 - 1000 + 1, 1002);
    CHECK_EQ_INT(skew_check(&h, 1010), 0);
    CHECK(h.ok);
    CHECK(h.offset > -5 && h.offset < 5);
    /* stale peers are left out: back in range with none heard */
    CHECK_EQ_INT(skew_check(&s, 11004 + SKEW_RECENT_MS), 1);
    CHECK(s.ok);
    CHECK_EQ_INT(s.peers, 0);
    skew_sample(&s, 1, 5, 5, 4); /* received before sent: ignored */
    skew_free(&s);
    skew_free(&h);
}

static void test_skew_window_is_bounded(void) {
    struct skew s;
    skew_init(&s, 500);
    skew_sample(&s, 1, 0, 100, 2); /* the fastest, then pushed out */
    for (int i = 0; i < SKEW_WINDOW; i++) {
        skew_sample(&s, 1, 1000, 1000 + 700, 1000 + 10);
    }
    int64_t off;
    uint64_t rtt;
    CHECK(skew_peer_offset(&s, 1, 1010, &off, &rtt));
    CHECK_EQ_INT(rtt, 10);
    CHECK_EQ_INT(off, 695);
    CHECK_EQ_INT(s.p[0].n, SKEW_WINDOW);
    /* a clock that jumps is seen once the older, faster samples age out */
    skew_sample(&s, 1, 5000, 5000 + 2700, 5000 + 50);
    CHECK(skew_peer_offset(&s, 1, 5050, &off, &rtt));
    CHECK_EQ_INT(off, 695);
    CHECK(skew_peer_offset(&s, 1, 1010 + SKEW_RECENT_MS, &off, &rtt));
    CHECK_EQ_INT(off, 2675);
    skew_free(&s);
}

int main(void) {
    TEST_RUN(test_gossip_exchange_teaches_both_sides);
    TEST_RUN(test_gossip_heartbeats_feed_phi_and_silence_convicts);
    TEST_RUN(test_gossip_restart_bumps_generation_and_replaces_state);
    TEST_RUN(test_gossip_status_change_travels_and_moves_the_ring_epoch);
    TEST_RUN(test_gossip_new_tokens_travel_and_move_the_ring_epoch);
    TEST_RUN(test_gossip_removal_wins_over_the_dead_member_and_tells_it);
    TEST_RUN(test_gossip_refuses_a_peer_with_another_replication_factor_or_secret);
    TEST_RUN(test_gossip_relayed_member_that_disagrees_is_refused_not_in_ring);
    TEST_RUN(test_gossip_settled_rounds_send_no_tokens);
    TEST_RUN(test_gossip_pick_chooses_distinct_live_members);
    TEST_RUN(test_gossip_truncated_flipped_and_random_bytes_are_refused);
    TEST_RUN(test_gossip_lying_counts_and_oversized_messages_are_refused);
    TEST_RUN(test_skew_keeps_the_fastest_exchange_and_flags_a_far_node);
    TEST_RUN(test_skew_window_is_bounded);
    TEST_MAIN_END();
}
