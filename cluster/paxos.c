/* cluster/paxos.c: the acceptor, the gate and the proposer of per-key consensus.
 * See paxos.h for the contract and PAXOS.md for the protocol and its proofs.
 * Leaves messages, persistence, timers and the command itself to the caller. */
#include "cluster/paxos.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cluster/mem.h"
#include "proto/hlc.h"

/* ---- acceptor and gate ---- */

void paxos_gate_init(struct paxos_gate *g, uint64_t max_age_ms) {
    memset(g, 0, sizeof *g);
    g->max_age_ms = max_age_ms;
}

static void gate_raise(struct paxos_gate *g, uint64_t ms) {
    struct kv_version f = {KV_HLC_MAKE(ms, 0), 0};
    g->floor = paxos_ballot_max(g->floor, f);
}

void paxos_gate_tick(struct paxos_gate *g, uint64_t wall_ms) {
    if (g->max_age_ms && wall_ms > g->max_age_ms) {
        gate_raise(g, wall_ms - g->max_age_ms);
    }
}

void paxos_gate_restart_forgetful(struct paxos_gate *g, uint64_t wall_ms, uint64_t margin_ms) {
    gate_raise(g, wall_ms + margin_ms);
    g->holding = 1;
}

void paxos_gate_rejoined(struct paxos_gate *g) {
    g->holding = 0;
}

static struct kv_version acceptor_highest(const struct paxos_acceptor *a,
                                          const struct paxos_gate *g) {
    struct kv_version h = paxos_ballot_max(a->promised, a->accepted);
    return g ? paxos_ballot_max(h, g->floor) : h;
}

int paxos_acceptor_prepare(struct paxos_acceptor *a, const struct paxos_gate *g,
                           struct kv_version b, struct kv_version *highest) {
    if (g && g->holding) {
        return PAXOS_NOT_VOTING;
    }
    /* promise only above what was accepted (a ballot is proposed once) and at or
     * above what was promised (the same prepare twice: a duplicate) */
    if (kv_version_cmp(b, a->promised) < 0 || kv_version_cmp(b, a->accepted) <= 0 ||
        (g && kv_version_cmp(b, g->floor) < 0)) {
        *highest = acceptor_highest(a, g);
        return PAXOS_REJECT;
    }
    a->promised = b;
    return PAXOS_PROMISE;
}

int paxos_acceptor_accept(struct paxos_acceptor *a, const struct paxos_gate *g,
                          struct kv_version b, struct kv_version origin,
                          struct kv_version *highest) {
    if (kv_version_cmp(b, a->promised) < 0 || kv_version_cmp(b, a->accepted) < 0 ||
        (g && kv_version_cmp(b, g->floor) < 0)) {
        *highest = acceptor_highest(a, g);
        return PAXOS_REJECT;
    }
    /* b == accepted: the same accept again (one value per ballot): nothing new */
    a->promised = b;
    a->accepted = b;
    a->origin = origin;
    return PAXOS_ACCEPTED;
}

/* ---- values ---- */

void paxos_value_copy(struct paxos_value *dst, const struct paxos_value *src) {
    if (dst == src) {
        return;
    }
    free(dst->val);
    *dst = *src;
    dst->val = src->vlen ? cl_memdup(src->val, src->vlen) : NULL;
}

void paxos_value_free(struct paxos_value *v) {
    free(v->val);
    memset(v, 0, sizeof *v);
}

/* The order phase 1 picks the highest accepted value by: ballot, then a
 * tombstone above a value of the same ballot (an expiry tombstone carries the
 * version of the value it expires); nothing below everything. */
static int value_cmp(const struct paxos_value *a, const struct paxos_value *b) {
    if (!a->found || !b->found) {
        return a->found - b->found;
    }
    return kv_record_cmp(a->ballot, a->deleted, b->ballot, b->deleted);
}

static int same_ballot(struct kv_version a, struct kv_version b) {
    return kv_version_cmp(a, b) == 0;
}

/* ---- proposer ---- */

/* per replica state, one round */
enum { RS_IDLE = 0, RS_PENDING, RS_YES, RS_NO };

/* phases */
enum { PH_PREPARE = 1, PH_VALUE, PH_ACCEPT, PH_BACKOFF, PH_DONE };

/* why a command failed or is indeterminate */
enum { WHY_NONE = 0, WHY_QUORUMS, WHY_DOWN, WHY_ROUNDS, WHY_FOREIGN };

static void actions_reset(struct paxos_actions *out) {
    out->nsend = 0;
    out->need_value = 0;
    out->completed = 0;
    out->finished = 0;
}

static void finish(struct paxos_proposer *p, int result, int why, struct paxos_actions *out) {
    p->result = result;
    p->why = why;
    p->phase = PH_DONE;
    out->completed = 1;
    out->finished = 1;
}

/* A ballot above every ballot heard of: the HLC observes the highest, then ticks. */
static struct kv_version mint_ballot(struct paxos_proposer *p) {
    const struct paxos_env *e = p->env;
    kv_hlc_observe(e->hlc, p->highest.hlc);
    uint64_t t = kv_hlc_tick(e->hlc, e->wall_ms(e->ctx));
    return (struct kv_version){t, e->tag};
}

/* Sends verb to every replica not known down; every slot pending. */
static void send_round(struct paxos_proposer *p, int verb, uint64_t now,
                       struct paxos_actions *out) {
    p->votes = 0;
    for (size_t i = 0; i < p->n; i++) {
        p->st[i] = p->down[i] ? RS_IDLE : RS_PENDING;
        if (!p->down[i]) {
            out->send[out->nsend++] = (struct paxos_send){p->nodes[i], verb};
        }
    }
    p->rtts++;
    p->deadline = now + p->cfg.timeout_ms;
}

static void send_accepts(struct paxos_proposer *p, uint64_t now, struct paxos_actions *out) {
    p->value.ballot = p->ballot;
    p->phase = PH_ACCEPT;
    send_round(p, PAXOS_MSG_ACCEPT, now, out);
}

static void start_round(struct paxos_proposer *p, uint64_t now, struct paxos_actions *out) {
    p->attempt++;
    p->ballot = mint_ballot(p);
    p->highest = paxos_ballot_max(p->highest, p->ballot);
    paxos_value_free(&p->base);
    p->base_votes = 0;
    if (p->fixed && (p->mutate & PAXOS_MUT_RETRY_WITHOUT_PHASE1)) {
        send_accepts(p, now, out); /* the known-wrong retry: no phase 1 */
        return;
    }
    memset(p->seen, 0, sizeof p->seen);
    p->phase = PH_PREPARE;
    send_round(p, PAXOS_MSG_PREPARE, now, out);
}

/* A round could not reach its quorum: back off and retry, or end. */
static void round_lost(struct paxos_proposer *p, uint64_t now, struct paxos_actions *out) {
    if (p->attempt >= p->cfg.max_attempts) {
        finish(p, p->fixed ? PAXOS_INDETERMINATE : PAXOS_FAILED, WHY_ROUNDS, out);
        return;
    }
    /* exponential, jittered: two proposers that collided rarely collide again */
    unsigned shift = p->attempt - 1 < 6 ? p->attempt - 1 : 6;
    uint64_t d = p->cfg.backoff_ms << shift;
    uint64_t jitter = d ? p->env->rand(p->env->ctx) % d : 0;
    p->phase = PH_BACKOFF;
    for (size_t i = 0; i < p->n; i++) {
        p->st[i] = RS_IDLE; /* replies to the lost round are ignored */
    }
    p->deadline = now + d / 2 + jitter;
}

void paxos_start(struct paxos_proposer *p, const struct paxos_env *env, uint64_t id, int kind,
                 const uint32_t *nodes, size_t n, const uint8_t *down,
                 const struct paxos_config *cfg, uint64_t now, struct paxos_actions *out) {
    memset(p, 0, sizeof *p);
    actions_reset(out);
    p->id = id;
    p->kind = kind;
    p->env = env;
    p->cfg = *cfg;
    p->n = n > PAXOS_MAX_REPLICAS ? PAXOS_MAX_REPLICAS : n;
    memcpy(p->nodes, nodes, p->n * sizeof *nodes);
    size_t up = 0;
    for (size_t i = 0; i < p->n; i++) {
        p->down[i] = down && down[i];
        up += !p->down[i];
    }
    if (p->cfg.max_attempts == 0 || p->cfg.max_attempts > PAXOS_MAX_ATTEMPTS) {
        p->cfg.max_attempts = PAXOS_MAX_ATTEMPTS;
    }
    if (cfg->r == 0 || cfg->w == 0 || cfg->r > p->n || cfg->w > p->n ||
        cfg->r + cfg->w <= p->n) {
        finish(p, PAXOS_FAILED, WHY_QUORUMS, out);
    } else if (up < cfg->r || up < cfg->w) {
        finish(p, PAXOS_FAILED, WHY_DOWN, out);
    } else {
        start_round(p, now, out);
    }
}

static long pending_slot(const struct paxos_proposer *p, uint32_t node, struct kv_version b) {
    if (!same_ballot(b, p->ballot)) {
        return -1; /* a reply to an earlier round */
    }
    for (size_t i = 0; i < p->n; i++) {
        if (p->nodes[i] == node && p->st[i] == RS_PENDING) {
            return (long)i;
        }
    }
    return -1;
}

static size_t pending_count(const struct paxos_proposer *p) {
    size_t c = 0;
    for (size_t i = 0; i < p->n; i++) {
        c += p->st[i] == RS_PENDING;
    }
    return c;
}

/* How many promises reported exactly the highest accepted ballot (the value is
 * chosen when they are W: PAXOS.md "One round trip"). */
static size_t count_base_votes(const struct paxos_proposer *p) {
    size_t c = 0;
    struct kv_version top = p->base.found ? p->base.ballot : (struct kv_version){0, 0};
    for (size_t i = 0; i < p->n; i++) {
        c += p->st[i] == RS_YES && same_ballot(p->seen[i], top);
    }
    return c;
}

static void complete_with_base(struct paxos_proposer *p, struct paxos_actions *out) {
    paxos_value_copy(&p->value, &p->base);
    finish(p, PAXOS_OK, WHY_NONE, out);
}

/* Re-proposes what phase 1 found, at this round's ballot, keeping its origin:
 * finishing a value someone else (or a lost round of ours) left half accepted.
 * Nothing found becomes a tombstone (reads as nothing). */
static void propose_base(struct paxos_proposer *p, uint64_t now, struct paxos_actions *out) {
    paxos_value_copy(&p->value, &p->base);
    if (!p->value.found) {
        p->value.found = 1;
        p->value.deleted = 1;
        p->value.origin = (struct kv_version){0, 0};
    }
    send_accepts(p, now, out);
}

/* Phase 1 of a retry after our change was sent: is it applied, or can it still be? */
static void phase1_done_fixed(struct paxos_proposer *p, uint64_t now, struct paxos_actions *out) {
    struct kv_version o = p->base.found ? p->base.origin : (struct kv_version){0, 0};
    if (same_ballot(o, p->value.origin) || same_ballot(o, p->fixed_on)) {
        /* ours is the highest (maybe chosen already), or nothing happened since
         * the value we computed on: (re)propose our change, computed once */
        send_accepts(p, now, out);
    } else if (p->mutate & PAXOS_MUT_REAPPLY_ON_RETRY) {
        p->fixed = 0;
        p->phase = PH_VALUE;
        out->need_value = 1;
    } else {
        /* someone else's value is on top: ours may be beneath it or lost */
        finish(p, PAXOS_INDETERMINATE, WHY_FOREIGN, out);
    }
}

static void phase1_done(struct paxos_proposer *p, uint64_t now, struct paxos_actions *out) {
    p->base_votes = count_base_votes(p);
    int chosen = p->base_votes >= p->cfg.w || (p->mutate & PAXOS_MUT_READ_ANY_ANSWER);
    if (p->fixed) {
        phase1_done_fixed(p, now, out);
    } else if (p->kind == PAXOS_READ) {
        if (chosen) {
            complete_with_base(p, out);
        } else {
            propose_base(p, now, out);
        }
    } else {
        p->phase = PH_VALUE;
        out->need_value = 1;
    }
}

void paxos_on_promise(struct paxos_proposer *p, uint32_t node, struct kv_version ballot,
                      const struct paxos_value *accepted, uint64_t now,
                      struct paxos_actions *out) {
    actions_reset(out);
    long i = p->phase == PH_PREPARE ? pending_slot(p, node, ballot) : -1;
    if (i < 0) {
        return;
    }
    p->st[i] = RS_YES;
    p->votes++;
    if (accepted->found) {
        p->seen[i] = accepted->ballot;
        p->highest = paxos_ballot_max(p->highest, accepted->ballot);
        if (value_cmp(accepted, &p->base) > 0) {
            paxos_value_copy(&p->base, accepted);
        }
    }
    if (p->votes >= p->cfg.r) {
        phase1_done(p, now, out);
    }
}

void paxos_propose(struct paxos_proposer *p, const struct paxos_value *change, uint64_t now,
                   struct paxos_actions *out) {
    actions_reset(out);
    if (p->phase != PH_VALUE) {
        return;
    }
    if (change == NULL) {
        if (p->base_votes >= p->cfg.w) {
            complete_with_base(p, out); /* nothing to change, and it is chosen */
        } else {
            propose_base(p, now, out);
        }
        return;
    }
    paxos_value_copy(&p->value, change);
    p->value.found = 1;
    p->value.origin = p->ballot; /* this proposal computed it */
    p->fixed = 1;
    p->fixed_on = p->base.found ? p->base.origin : (struct kv_version){0, 0};
    send_accepts(p, now, out);
}

void paxos_on_accepted(struct paxos_proposer *p, uint32_t node, struct kv_version ballot,
                       uint64_t now, struct paxos_actions *out) {
    (void)now;
    actions_reset(out);
    long i = p->phase == PH_ACCEPT ? pending_slot(p, node, ballot) : -1;
    if (i < 0) {
        return;
    }
    p->st[i] = RS_YES;
    if (++p->votes >= p->cfg.w) {
        finish(p, PAXOS_OK, WHY_NONE, out);
    }
}

/* A no from one replica: the round goes on while its quorum is reachable. */
static void vote_no(struct paxos_proposer *p, long i, uint64_t now, struct paxos_actions *out) {
    p->st[i] = RS_NO;
    size_t need = p->phase == PH_PREPARE ? p->cfg.r : p->cfg.w;
    if (p->votes + pending_count(p) < need) {
        round_lost(p, now, out);
    }
}

void paxos_on_reject(struct paxos_proposer *p, uint32_t node, struct kv_version ballot,
                     struct kv_version highest, uint64_t now, struct paxos_actions *out) {
    actions_reset(out);
    int live = p->phase == PH_PREPARE || p->phase == PH_ACCEPT;
    long i = live ? pending_slot(p, node, ballot) : -1;
    if (i < 0) {
        return;
    }
    p->highest = paxos_ballot_max(p->highest, highest);
    vote_no(p, i, now, out);
}

void paxos_on_failure(struct paxos_proposer *p, uint32_t node, struct kv_version ballot,
                      uint64_t now, struct paxos_actions *out) {
    actions_reset(out);
    int live = p->phase == PH_PREPARE || p->phase == PH_ACCEPT;
    long i = live ? pending_slot(p, node, ballot) : -1;
    if (i >= 0) {
        vote_no(p, i, now, out);
    }
}

void paxos_tick(struct paxos_proposer *p, uint64_t now, struct paxos_actions *out) {
    actions_reset(out);
    if (p->phase == PH_DONE || now < p->deadline) {
        return;
    }
    if (p->phase == PH_BACKOFF) {
        start_round(p, now, out);
    } else {
        round_lost(p, now, out);
    }
}

void paxos_error_text(const struct paxos_proposer *p, char *buf, size_t len) {
    switch (p->why) {
    case WHY_QUORUMS:
        snprintf(buf, len, "consensus needs 1 <= R, W <= N and R + W > N (R %zu, W %zu, N %zu)",
                 p->cfg.r, p->cfg.w, p->n);
        break;
    case WHY_DOWN:
        snprintf(buf, len, "fewer replicas up than R %zu and W %zu", p->cfg.r, p->cfg.w);
        break;
    case WHY_FOREIGN:
        snprintf(buf, len, "outcome unknown: another command's value is on top of ours, "
                           "which may or may not include it");
        break;
    case WHY_ROUNDS:
        snprintf(buf, len, "%s: %u rounds lost to conflicts or failures",
                 p->result == PAXOS_INDETERMINATE ? "outcome unknown" : "not applied",
                 p->attempt);
        break;
    default:
        snprintf(buf, len, "no error");
    }
}

void paxos_destroy(struct paxos_proposer *p) {
    paxos_value_free(&p->base);
    paxos_value_free(&p->value);
}

/* ---- messages ---- */

static void ballot_put(unsigned char *p, struct kv_version b) {
    msg_put_be(p, b.hlc, 8);
    msg_put_be(p + 8, b.node, 4);
}

static int ballot_get(const char *p, size_t len, struct kv_version *b) {
    if (len != PAXOS_BALLOT_LEN) {
        return -1;
    }
    const unsigned char *u = (const unsigned char *)p;
    b->hlc = msg_get_be(u, 8);
    b->node = (uint32_t)msg_get_be(u + 8, 4);
    return 0;
}

/* argv with room for the db's digits, ballots and a record */
static void argv_alloc(struct msg_argv *a, int argc, size_t buflen) {
    a->argc = argc;
    a->argv = cl_calloc((size_t)argc, sizeof *a->argv);
    a->argvlen = cl_calloc((size_t)argc, sizeof *a->argvlen);
    a->buf = cl_malloc(buflen);
}

static void argv_head(struct msg_argv *a, const char *verb, unsigned db, const char *key,
                      size_t klen) {
    a->argv[0] = MSG_COMMAND, a->argvlen[0] = sizeof MSG_COMMAND - 1;
    a->argv[1] = verb, a->argvlen[1] = strlen(verb);
    a->argv[2] = a->buf, a->argvlen[2] = (size_t)snprintf(a->buf, 8, "%u", db);
    a->argv[3] = key, a->argvlen[3] = klen;
}

void paxos_encode_prepare(struct msg_argv *out, unsigned db, const char *key, size_t klen,
                          struct kv_version ballot) {
    argv_alloc(out, 5, 8 + PAXOS_BALLOT_LEN);
    argv_head(out, "PREPARE", db, key, klen);
    ballot_put((unsigned char *)out->buf + 8, ballot);
    out->argv[4] = out->buf + 8, out->argvlen[4] = PAXOS_BALLOT_LEN;
}

void paxos_encode_accept(struct msg_argv *out, unsigned db, const char *key, size_t klen,
                         const struct msg_record *rec, struct kv_version origin) {
    argv_alloc(out, 6, 8 + PAXOS_BALLOT_LEN + MSG_REC_HDR + rec->vlen);
    argv_head(out, "ACCEPT", db, key, klen);
    unsigned char *o = (unsigned char *)out->buf + 8, *r = o + PAXOS_BALLOT_LEN;
    ballot_put(o, origin);
    msg_record_header(rec, r);
    if (rec->vlen) {
        memcpy(r + MSG_REC_HDR, rec->val, rec->vlen);
    }
    out->argv[4] = (const char *)r, out->argvlen[4] = MSG_REC_HDR + rec->vlen;
    out->argv[5] = (const char *)o, out->argvlen[5] = PAXOS_BALLOT_LEN;
}

static int decode_accept(const struct kv_slice *argv, struct paxos_request *out, char *err,
                         size_t errlen) {
    if (msg_record_parse(argv[4].p, argv[4].len, &out->rec) != MSG_OK) {
        return msg_fail(err, errlen, MSG_INVALID, MSG_COMMAND " ACCEPT: bad record");
    }
    if (out->rec.fields) {
        return msg_fail(err, errlen, MSG_INVALID, MSG_COMMAND " ACCEPT: field records not supported");
    }
    if (ballot_get(argv[5].p, argv[5].len, &out->origin) != 0) {
        return msg_fail(err, errlen, MSG_INVALID, MSG_COMMAND " ACCEPT: bad origin");
    }
    out->ballot = out->rec.v;
    if (kv_version_cmp(out->origin, out->ballot) > 0 || paxos_ballot_zero(out->ballot)) {
        return msg_fail(err, errlen, MSG_INVALID, MSG_COMMAND " ACCEPT: origin above the ballot");
    }
    return MSG_OK;
}

int paxos_decode_request(const struct kv_slice *argv, size_t argc, struct paxos_request *out,
                         char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (argc < 2 || !msg_word_is(argv[0], MSG_COMMAND)) {
        return msg_fail(err, errlen, MSG_INVALID, "not a " MSG_COMMAND " message");
    }
    if (msg_word_is(argv[1], "PREPARE")) {
        out->verb = PAXOS_REQ_PREPARE;
    } else if (msg_word_is(argv[1], "ACCEPT")) {
        out->verb = PAXOS_REQ_ACCEPT;
    } else {
        return msg_fail(err, errlen, MSG_INVALID, MSG_COMMAND ": not PREPARE or ACCEPT");
    }
    if (argc != (out->verb == PAXOS_REQ_PREPARE ? 5u : 6u)) {
        return msg_fail(err, errlen, MSG_INVALID, MSG_COMMAND " %s: wrong number of arguments",
                    out->verb == PAXOS_REQ_PREPARE ? "PREPARE" : "ACCEPT");
    }
    if (msg_parse_db(argv[2], &out->db) != 0) {
        return msg_fail(err, errlen, MSG_INVALID, MSG_COMMAND ": bad db");
    }
    out->key = argv[3];
    if (out->verb == PAXOS_REQ_ACCEPT) {
        return decode_accept(argv, out, err, errlen);
    }
    if (ballot_get(argv[4].p, argv[4].len, &out->ballot) != 0 || paxos_ballot_zero(out->ballot)) {
        return msg_fail(err, errlen, MSG_INVALID, MSG_COMMAND " PREPARE: bad ballot");
    }
    return MSG_OK;
}

static void reply_head(struct msg_buf *b, int vote, struct kv_version ballot) {
    unsigned char bal[PAXOS_BALLOT_LEN];
    char hdr[16];
    int h = snprintf(hdr, sizeof hdr, "*4\r\n:%d\r\n", vote);
    msg_buf_put(b, hdr, (size_t)h);
    ballot_put(bal, ballot);
    msg_buf_bulk(b, bal, sizeof bal);
}

void paxos_reply_promise(struct msg_buf *b, struct kv_version ballot,
                         const struct msg_record *rec, struct kv_version origin) {
    reply_head(b, PAXOS_PROMISE, ballot);
    if (rec == NULL) {
        msg_buf_put(b, "$-1\r\n$-1\r\n", 10);
        return;
    }
    unsigned char hdr[MSG_REC_HDR], org[PAXOS_BALLOT_LEN];
    msg_record_header(rec, hdr);
    msg_buf_bulk_header(b, MSG_REC_HDR + rec->vlen);
    msg_buf_put(b, hdr, sizeof hdr);
    msg_buf_put(b, rec->val, rec->vlen);
    msg_buf_put(b, "\r\n", 2);
    ballot_put(org, origin);
    msg_buf_bulk(b, org, sizeof org);
}

void paxos_reply_vote(struct msg_buf *b, int vote, struct kv_version ballot) {
    reply_head(b, vote, ballot);
    msg_buf_put(b, "$-1\r\n$-1\r\n", 10);
}

static int is_nil(const redisReply *e) {
    return e->type == REDIS_REPLY_NIL;
}

static int is_ballot(const redisReply *e, struct kv_version *b) {
    return e->type == REDIS_REPLY_STRING && ballot_get(e->str, (size_t)e->len, b) == 0;
}

/* PROMISE's held record and origin: both nil, or a record below the promised
 * ballot and its origin at or below the record's version. */
static int decode_promise(const redisReply *r, struct paxos_reply *out, char *err,
                          size_t errlen) {
    const redisReply *item = r->element[2], *org = r->element[3];
    if (is_nil(item) && is_nil(org)) {
        return MSG_OK;
    }
    if (item->type != REDIS_REPLY_STRING ||
        msg_record_parse(item->str, (size_t)item->len, &out->rec) != MSG_OK || out->rec.fields ||
        !is_ballot(org, &out->origin)) {
        return msg_fail(err, errlen, MSG_INVALID, "PROMISE reply: bad record or origin");
    }
    if (kv_version_cmp(out->rec.v, out->ballot) >= 0 ||
        kv_version_cmp(out->origin, out->rec.v) > 0) {
        return msg_fail(err, errlen, MSG_INVALID, "PROMISE reply: ballots out of order");
    }
    out->found = 1;
    return MSG_OK;
}

int paxos_decode_reply(const redisReply *r, struct paxos_reply *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (r == NULL) {
        return msg_fail(err, errlen, MSG_INVALID, "no reply");
    }
    if (r->type == REDIS_REPLY_ERROR) {
        int n = r->len > 200 ? 200 : (int)r->len;
        return msg_fail(err, errlen, MSG_REMOTE, "%.*s", n, r->str ? r->str : "");
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 || r->element[0] == NULL ||
        r->element[1] == NULL || r->element[2] == NULL || r->element[3] == NULL) {
        return msg_fail(err, errlen, MSG_INVALID, "paxos reply: not an array of 4");
    }
    const redisReply *v = r->element[0];
    if (v->type != REDIS_REPLY_INTEGER || v->integer < PAXOS_PROMISE ||
        v->integer > PAXOS_REJECT || !is_ballot(r->element[1], &out->ballot)) {
        return msg_fail(err, errlen, MSG_INVALID, "paxos reply: bad vote or ballot");
    }
    out->vote = (int)v->integer;
    if (out->vote == PAXOS_PROMISE) {
        return decode_promise(r, out, err, errlen);
    }
    if (!is_nil(r->element[2]) || !is_nil(r->element[3])) {
        return msg_fail(err, errlen, MSG_INVALID, "paxos reply: a vote with a record");
    }
    return MSG_OK;
}

/* ---- the replica side ---- */

static const char PREPARE_FAILED[] = MSG_COMMAND " PREPARE: the store failed";
static const char ACCEPT_FAILED[] = MSG_COMMAND " ACCEPT: the store failed";

/* The key's acceptor state and held record (rc 1: a record; 0: none), or -1
 * after answering failed. */
static int replica_load(const struct paxos_store *st, const struct paxos_request *q,
                        struct paxos_acceptor *a, struct msg_record *held, const char *failed,
                        struct msg_buf *out) {
    memset(a, 0, sizeof *a);
    int rc = st->load(st->ctx, q->db, q->key.p, q->key.len, a, held);
    if (rc < 0) {
        msg_reply_error(out, failed);
    }
    return rc;
}

static void replica_prepare(const struct paxos_store *st, const struct paxos_gate *g,
                            const struct paxos_request *q, struct msg_buf *out) {
    struct paxos_acceptor a;
    struct msg_record held;
    struct kv_version hi = {0, 0};
    int rc = replica_load(st, q, &a, &held, PREPARE_FAILED, out);
    if (rc < 0) {
        return;
    }
    int vote = paxos_acceptor_prepare(&a, g, q->ballot, &hi);
    if (vote == PAXOS_NOT_VOTING) {
        msg_reply_error(out, "NOTVOTING this node restarted without its promises and has "
                             "not rejoined");
        return;
    }
    if (vote == PAXOS_REJECT) {
        paxos_reply_vote(out, PAXOS_REJECT, hi);
        return;
    }
    /* the reply first (held is borrowed until the next store call), then the
     * promise; a failed promise replaces the reply with an error */
    size_t mark = out->len;
    paxos_reply_promise(out, q->ballot, rc == 1 ? &held : NULL, a.origin);
    if (st->promise(st->ctx, q->db, q->key.p, q->key.len, &a) != 0) {
        out->len = mark;
        msg_reply_error(out, PREPARE_FAILED);
    }
}

static void replica_accept(const struct paxos_store *st, const struct paxos_gate *g,
                           const struct paxos_request *q, struct msg_buf *out) {
    struct paxos_acceptor a;
    struct msg_record held;
    struct kv_version hi = {0, 0};
    int rc = replica_load(st, q, &a, &held, ACCEPT_FAILED, out);
    if (rc < 0) {
        return;
    }
    int duplicate = rc == 1 && kv_version_cmp(a.accepted, q->ballot) == 0;
    int vote = paxos_acceptor_accept(&a, g, q->ballot, q->origin, &hi);
    if (vote != PAXOS_ACCEPTED) {
        paxos_reply_vote(out, PAXOS_REJECT, hi);
        return;
    }
    if (!duplicate && st->accept(st->ctx, q->db, q->key.p, q->key.len, &a, &q->rec) != 0) {
        msg_reply_error(out, ACCEPT_FAILED);
        return;
    }
    paxos_reply_vote(out, PAXOS_ACCEPTED, q->ballot);
}

void paxos_replica_handle(const struct paxos_store *st, const struct paxos_gate *g,
                          const struct kv_slice *argv, size_t argc, struct msg_buf *out) {
    struct paxos_request q;
    char err[128];
    if (paxos_decode_request(argv, argc, &q, err, sizeof err) != MSG_OK) {
        msg_reply_error(out, err);
    } else if (q.verb == PAXOS_REQ_PREPARE) {
        replica_prepare(st, g, &q, out);
    } else {
        replica_accept(st, g, &q, out);
    }
}
