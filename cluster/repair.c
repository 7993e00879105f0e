/* cluster/repair.c: the RANGE verb and the repair session of one token range.
 * See repair.h ("HOW A SESSION WORKS") for the protocol and the wire format. */
#include "cluster/repair.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/mem.h"
#include "cluster/scan.h"

struct repair_push {
    unsigned db;
    char *key;
    size_t klen;
};

/* t < end, end 0 meaning 2^64 */
static int below(uint64_t t, uint64_t end) {
    return end == 0 || t < end;
}

/* ---- pages ---- */

void repair_page_free(struct repair_page *p) {
    for (size_t i = 0; i < p->n; i++) {
        free(p->recs[i].key);
        free((void *)p->recs[i].rec.val);
    }
    free(p->recs);
    memset(p, 0, sizeof *p);
}

static void page_add(struct repair_page *p, uint64_t token, unsigned db, const char *key,
                     size_t klen, const struct msg_record *rec) {
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->recs = cl_realloc(p->recs, p->cap * sizeof *p->recs);
    }
    struct repair_rec *d = &p->recs[p->n++];
    d->token = token;
    d->db = db;
    d->key = cl_memdup(key, klen);
    d->klen = klen;
    d->rec = *rec;
    d->rec.val = rec->vlen ? cl_memdup(rec->val, rec->vlen) : NULL;
}

/* the keys of a range as the store's range callback gives them, bounded as a
 * page is (count, bytes, never splitting a token) */
struct collect {
    struct scan_page keys;
    size_t count, bytes, maxbytes;
    uint64_t from, to, last, next;
    int bounded;
};

static int collect_one(void *arg, const struct cluster_key *k) {
    struct collect *c = arg;
    if (k->token < c->from || !below(k->token, c->to)) {
        return 0; /* not asked for (a store must not give it; ignored) */
    }
    if (c->bounded && c->keys.n > 0 && k->token != c->last &&
        (c->keys.n >= c->count || c->bytes >= c->maxbytes)) {
        c->next = k->token;
        return 1;
    }
    scan_page_add(&c->keys, k);
    c->bytes += REPAIR_ITEM_HDR + MSG_REC_HDR + k->klen + 64; /* the value unknown: a guess */
    c->last = k->token;
    return 0;
}

/* the keys (with versions, no values) of [from, to), all of them (bounded 0) or a
 * page; out->next is where the next page starts */
static int collect_keys(const struct cluster_store *st, uint64_t from, uint64_t to, int bounded,
                        size_t count, size_t maxbytes, struct scan_page *out) {
    struct collect c = {{0}, count, 0, maxbytes, from, to, 0, to, bounded};
    if (st->range == NULL || st->range(st->ctx, CLUSTER_DB_ALL, from, to, collect_one, &c) != 0) {
        scan_page_free(&c.keys);
        memset(out, 0, sizeof *out);
        return -1;
    }
    *out = c.keys;
    out->next = c.next;
    return 0;
}

int repair_range_local(const struct cluster_store *st, uint64_t from, uint64_t to, size_t count,
                       size_t maxbytes, struct repair_page *out) {
    memset(out, 0, sizeof *out);
    out->next = to;
    struct scan_page keys;
    if (count < 1 || maxbytes < 1 || (to != 0 && to <= from) ||
        collect_keys(st, from, to, 1, count, maxbytes, &keys) != 0) {
        return -1;
    }
    out->next = keys.next;
    /* values read after the iteration: a read may load into the store's cache */
    for (size_t i = 0; i < keys.n; i++) {
        const struct cluster_key *k = &keys.keys[i];
        struct msg_record rec;
        int rc = st->read(st->ctx, k->db, k->key, k->klen, &rec);
        if (rc < 0) {
            scan_page_free(&keys);
            repair_page_free(out);
            return -1;
        }
        if (rc == 1) { /* 0: gone since the scan */
            page_add(out, k->token, k->db, k->key, k->klen, &rec);
        }
    }
    scan_page_free(&keys);
    return 0;
}

void repair_encode_range(struct msg_argv *out, uint64_t from, uint64_t to, size_t count,
                         size_t maxbytes) {
    out->argc = 6;
    out->argv = cl_calloc(6, sizeof *out->argv);
    out->argvlen = cl_calloc(6, sizeof *out->argvlen);
    out->buf = cl_malloc(4 * 24);
    out->argv[0] = MSG_COMMAND, out->argvlen[0] = sizeof MSG_COMMAND - 1;
    out->argv[1] = "RANGE", out->argvlen[1] = 5;
    uint64_t nums[4] = {from, to, count, maxbytes};
    for (int i = 0; i < 4; i++) {
        char *b = out->buf + i * 24;
        out->argv[2 + i] = b;
        out->argvlen[2 + i] = (size_t)snprintf(b, 24, "%llu", (unsigned long long)nums[i]);
    }
}

static void reply_page(const struct repair_page *pg, struct msg_buf *out) {
    char h[32], nb[32];
    int k = snprintf(h, sizeof h, "*%zu\r\n", pg->n + 1);
    msg_buf_put(out, h, (size_t)k);
    int nl = snprintf(nb, sizeof nb, "%llu", (unsigned long long)pg->next);
    msg_buf_bulk_header(out, (size_t)nl);
    msg_buf_put(out, nb, (size_t)nl);
    msg_buf_put(out, "\r\n", 2);
    for (size_t i = 0; i < pg->n; i++) {
        const struct repair_rec *r = &pg->recs[i];
        unsigned char hdr[REPAIR_ITEM_HDR + MSG_REC_HDR];
        msg_put_be(hdr, r->token, 8);
        msg_put_be(hdr + 8, r->db, 2);
        msg_put_be(hdr + 10, r->klen, 4);
        msg_record_header(&r->rec, hdr + REPAIR_ITEM_HDR);
        msg_buf_bulk_header(out, sizeof hdr + r->klen + r->rec.vlen);
        msg_buf_put(out, hdr, REPAIR_ITEM_HDR);
        msg_buf_put(out, r->key, r->klen);
        msg_buf_put(out, hdr + REPAIR_ITEM_HDR, MSG_REC_HDR);
        msg_buf_put(out, r->rec.val, r->rec.vlen);
        msg_buf_put(out, "\r\n", 2);
    }
}

void repair_range_answer(const struct cluster_store *st, const struct kv_slice *argv,
                         size_t argc, struct msg_buf *out) {
    uint64_t from, to, count, maxbytes;
    if (argc != 6) {
        msg_reply_error(out, MSG_COMMAND " RANGE: wrong number of arguments");
        return;
    }
    if (scan_parse_u64(argv[2].p, argv[2].len, &from) != 0 ||
        scan_parse_u64(argv[3].p, argv[3].len, &to) != 0 || (to != 0 && to <= from)) {
        msg_reply_error(out, MSG_COMMAND " RANGE: bad token range");
        return;
    }
    if (scan_parse_u64(argv[4].p, argv[4].len, &count) != 0 || count < 1 ||
        count > REPAIR_RANGE_MAX_COUNT) {
        msg_reply_error(out, MSG_COMMAND " RANGE: count must be 1..1024");
        return;
    }
    if (scan_parse_u64(argv[5].p, argv[5].len, &maxbytes) != 0 || maxbytes < 1 ||
        maxbytes > REPAIR_RANGE_MAX_BYTES) {
        msg_reply_error(out, MSG_COMMAND " RANGE: maxbytes must be 1..4194304");
        return;
    }
    struct repair_page pg;
    if (repair_range_local(st, from, to, (size_t)count, (size_t)maxbytes, &pg) != 0) {
        msg_reply_error(out, MSG_COMMAND " RANGE: the store failed to read the range");
        return;
    }
    reply_page(&pg, out);
    repair_page_free(&pg);
}

static int fail(char *err, size_t errlen, const char *what) {
    snprintf(err, errlen, "%s", what);
    return MSG_INVALID;
}

/* one item of a RANGE reply into out, checked against [last, next) */
static int decode_item(const redisReply *e, uint64_t last, uint64_t next,
                       struct repair_page *out) {
    if (e == NULL || e->type != REDIS_REPLY_STRING || e->len < REPAIR_ITEM_HDR + MSG_REC_HDR) {
        return -1;
    }
    const unsigned char *u = (const unsigned char *)e->str;
    uint64_t token = msg_get_be(u, 8);
    uint64_t db = msg_get_be(u + 8, 2);
    uint64_t klen = msg_get_be(u + 10, 4);
    if (token < last || !below(token, next) ||
        klen > e->len - REPAIR_ITEM_HDR - MSG_REC_HDR) {
        return -1;
    }
    const char *key = e->str + REPAIR_ITEM_HDR;
    struct msg_record rec;
    if (msg_record_parse(key + klen, e->len - REPAIR_ITEM_HDR - klen, &rec) != MSG_OK ||
        ring_key_token(key, (size_t)klen) != token) {
        return -1;
    }
    page_add(out, token, (unsigned)db, key, (size_t)klen, &rec);
    return 0;
}

int repair_range_decode(const redisReply *r, uint64_t from, uint64_t to,
                        struct repair_page *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (r == NULL) {
        return fail(err, errlen, "no reply");
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%.*s", r->len > 200 ? 200 : (int)r->len, r->str ? r->str : "");
        return MSG_REMOTE;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0] == NULL ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->elements > REPAIR_RANGE_MAX_COUNT + 1) {
        return fail(err, errlen, "RANGE reply: not an array of next and up to 1024 items");
    }
    uint64_t next;
    if (scan_parse_u64(r->element[0]->str, r->element[0]->len, &next) != 0 ||
        (to != 0 && (next == 0 || next > to)) || (next != 0 && next <= from)) {
        return fail(err, errlen, "RANGE reply: next token out of the range");
    }
    out->next = next;
    uint64_t last = from;
    for (size_t i = 1; i < r->elements; i++) {
        if (decode_item(r->element[i], last, next, out) != 0) {
            repair_page_free(out);
            return fail(err, errlen, "RANGE reply: bad item");
        }
        last = out->recs[out->n - 1].token;
    }
    return MSG_OK;
}

size_t repair_reply_bytes(const redisReply *r) {
    if (r == NULL) {
        return 0;
    }
    size_t n = 16;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_ERROR ||
        r->type == REDIS_REPLY_STATUS) {
        n += r->len;
    } else if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++) {
            n += repair_reply_bytes(r->element[i]);
        }
    }
    return n;
}

/* ---- the ring's ranges ---- */

static void span_push(struct repair_span **v, size_t *n, size_t *cap, uint64_t from,
                      uint64_t to) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = cl_realloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = (struct repair_span){from, to};
}

size_t repair_ring_ranges(const struct ring *g, struct repair_span **out) {
    struct repair_span *v = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < g->nvnodes; i++) {
        uint64_t t = g->vnodes[i].token;
        if (i == 0) {
            uint64_t last = g->vnodes[g->nvnodes - 1].token;
            if (last != UINT64_MAX) {
                span_push(&v, &n, &cap, last + 1, 0);
            }
            span_push(&v, &n, &cap, 0, t + 1); /* t + 1 may wrap to 0: the ring's end */
        } else if (g->vnodes[i - 1].token != t) {
            span_push(&v, &n, &cap, g->vnodes[i - 1].token + 1, t + 1);
        }
    }
    *out = v;
    return n;
}

/* ---- the session ---- */

void repair_session_init(struct repair_session *s, const struct cluster_store *st,
                         uint64_t from, uint64_t to, const uint32_t *peers, size_t npeers,
                         uint64_t first_id) {
    memset(s, 0, sizeof *s);
    s->st = st;
    s->from = from;
    s->to = to;
    s->npeers = npeers < RING_MAX_REPLICAS ? npeers : RING_MAX_REPLICAS;
    memcpy(s->peers, peers, s->npeers * sizeof *peers);
    s->pass = 1;
    s->next_id = first_id ? first_id : 1;
    s->phase = RP_ROOT;
}

static void push_clear(struct repair_session *s) {
    for (size_t i = 0; i < s->npush; i++) {
        free(s->push[i].key);
    }
    s->npush = s->pushed = 0;
}

/* forgets what was learned of the current peer */
static void peer_reset(struct repair_session *s) {
    merkle_free(&s->local);
    free(s->subs);
    free(s->runs);
    s->subs = NULL;
    s->runs = NULL;
    s->nsubs = s->capsubs = s->sub = 0;
    s->nruns = s->capruns = s->run = 0;
    push_clear(s);
}

void repair_session_free(struct repair_session *s) {
    peer_reset(s);
    free(s->push);
    s->push = NULL;
    s->cappush = 0;
}

/* done with the current peer (well or not): on to the next */
static void next_peer(struct repair_session *s) {
    peer_reset(s);
    s->cur++;
    s->phase = RP_ROOT;
}

static void peer_failed(struct repair_session *s) {
    s->failed[s->cur] = 1;
    next_peer(s);
}

static size_t live_peers(const struct repair_session *s) {
    size_t n = 0;
    for (size_t i = 0; i < s->npeers; i++) {
        n += !s->failed[i];
    }
    return n;
}

int repair_session_complete(const struct repair_session *s) {
    return s->phase == RP_DONE && live_peers(s) == s->npeers;
}

static size_t argv_bytes(const struct msg_argv *a) {
    size_t n = 16;
    for (int i = 0; i < a->argc; i++) {
        n += a->argvlen[i] + 16;
    }
    return n;
}

static void emit(struct repair_session *s, struct repair_send *out) {
    out->tag = s->peers[s->cur];
    out->id = s->next_id++;
    out->bytes = argv_bytes(&out->a);
    s->waiting = out->id;
    s->st_.requests++;
    s->st_.bytes_out += out->bytes;
}

/* the end of a pass: another one when records were pulled (the peers asked
 * before the one that had them have not got them) */
static int pass_over(struct repair_session *s) {
    if (s->pulled_in_pass && s->pass < REPAIR_MAX_PASSES && live_peers(s) > 1) {
        s->pass++;
        s->cur = 0;
        s->pulled_in_pass = 0;
        return 0;
    }
    s->phase = RP_DONE;
    return 1;
}

static int send_root(struct repair_session *s, struct repair_send *out) {
    if (merkle_build(s->st, s->from, s->to, 0, &s->local) != 0) {
        for (size_t i = 0; i < s->npeers; i++) {
            s->failed[i] = 1; /* this node cannot read its range: nobody is repaired */
        }
        s->phase = RP_DONE;
        return -1;
    }
    merkle_encode_request(&out->a, s->from, s->to, 0);
    emit(s, out);
    return 1;
}

static void start_run(struct repair_session *s) {
    s->fetch_from = s->runs[s->run].from;
    s->fetch_to = s->runs[s->run].to;
}

/* the next MWRITE of the push list: up to REPAIR_PUSH_BATCH keys of one db, read
 * from the store now; 0 when nothing was left to send */
static int send_push(struct repair_session *s, struct repair_send *out) {
    while (s->pushed < s->npush) {
        unsigned db = s->push[s->pushed].db;
        struct msg_write w[REPAIR_PUSH_BATCH];
        struct msg_record recs[REPAIR_PUSH_BATCH];
        size_t n = 0;
        while (s->pushed < s->npush && n < REPAIR_PUSH_BATCH && s->push[s->pushed].db == db) {
            const struct repair_push *p = &s->push[s->pushed++];
            struct msg_record r;
            if (s->st->read(s->st->ctx, db, p->key, p->klen, &r) != 1) {
                continue; /* gone, or unreadable: the next repair sees it */
            }
            recs[n] = r;
            recs[n].val = r.vlen ? cl_memdup(r.val, r.vlen) : NULL; /* borrowed until the next read */
            w[n] = (struct msg_write){p->key, p->klen, &recs[n]};
            n++;
        }
        if (n == 0) {
            continue;
        }
        msg_encode_mwrite(&out->a, db, w, n);
        for (size_t i = 0; i < n; i++) {
            free((void *)recs[i].val);
        }
        s->batch = n;
        emit(s, out);
        return 1;
    }
    push_clear(s);
    return 0;
}

int repair_session_next(struct repair_session *s, struct repair_send *out) {
    memset(out, 0, sizeof *out);
    if (s->waiting) {
        return 0;
    }
    for (;;) {
        switch (s->phase) {
        case RP_DONE:
            return -1;
        case RP_NEXT_PEER:
            next_peer(s);
            break;
        case RP_ROOT:
            if (s->cur >= s->npeers) {
                if (pass_over(s)) {
                    return -1;
                }
            } else if (s->failed[s->cur]) {
                s->cur++;
            } else {
                return send_root(s, out);
            }
            break;
        case RP_TOP:
            merkle_encode_request(&out->a, s->from, s->to, REPAIR_TOP_DEPTH);
            emit(s, out);
            return 1;
        case RP_LEAVES:
            merkle_encode_request(&out->a, s->subs[s->sub].from, s->subs[s->sub].to, s->depth);
            emit(s, out);
            return 1;
        case RP_FETCH:
            if (s->run >= s->nruns) {
                s->phase = RP_NEXT_PEER;
                break;
            }
            repair_encode_range(&out->a, s->fetch_from, s->fetch_to, REPAIR_PAGE_COUNT,
                                REPAIR_PAGE_BYTES);
            emit(s, out);
            return 1;
        case RP_PUSH:
            if (send_push(s, out)) {
                return 1;
            }
            s->phase = RP_FETCH;
            break;
        }
    }
}

/* ---- replies ---- */

/* this node's tree of the current sub-range at the leaves' depth, to compare
 * with the peer's of the same tokens (the same call: the same shape) */
static void begin_sub(struct repair_session *s) {
    merkle_free(&s->local);
    if (merkle_build(s->st, s->subs[s->sub].from, s->subs[s->sub].to, s->depth, &s->local) != 0) {
        peer_failed(s);
        return;
    }
    s->phase = RP_LEAVES;
}

static void on_root(struct repair_session *s, const redisReply *r) {
    uint64_t leaf, nkeys;
    char err[128];
    if (merkle_reply_decode(r, 0, &leaf, &nkeys, err, sizeof err) != MSG_OK) {
        peer_failed(s);
        return;
    }
    if (leaf == merkle_root(&s->local)) {
        next_peer(s); /* in sync */
        return;
    }
    s->peer_nkeys = nkeys;
    unsigned depth = merkle_depth_for(nkeys > s->local.nkeys ? nkeys : s->local.nkeys);
    merkle_free(&s->local); /* the next trees take a second scan, only for a range
                               that differs */
    if (depth <= REPAIR_TOP_DEPTH) {
        s->depth = depth;
        span_push(&s->subs, &s->nsubs, &s->capsubs, s->from, s->to);
        begin_sub(s);
        return;
    }
    s->depth = depth - REPAIR_TOP_DEPTH;
    if (merkle_build(s->st, s->from, s->to, REPAIR_TOP_DEPTH, &s->local) != 0) {
        peer_failed(s);
        return;
    }
    s->phase = RP_TOP;
}

/* the peer's leaves (reply r at depth) against s->local: calls add(s, lo, hi) with
 * the tokens of each leaf that differs, in order; -1 on a bad reply. A leaf past
 * the range is empty on both sides: a peer that says otherwise is lying about
 * tokens nobody holds, and such leaves are dropped. */
static int differing(struct repair_session *s, const redisReply *r, unsigned depth,
                     void (*add)(struct repair_session *, uint64_t, uint64_t)) {
    size_t n = (size_t)1 << depth;
    uint64_t *leaves = cl_malloc(n * sizeof *leaves), nkeys;
    char err[128];
    if (merkle_reply_decode(r, depth, leaves, &nkeys, err, sizeof err) != MSG_OK) {
        free(leaves);
        return -1;
    }
    size_t *diff = cl_malloc(n * sizeof *diff);
    size_t nd = merkle_diff(&s->local, leaves, diff);
    for (size_t i = 0; i < nd; i++) {
        uint64_t lo, hi;
        if (merkle_leaf_range(&s->local, diff[i], &lo, &hi) == 0) {
            add(s, lo, hi);
        }
    }
    free(diff);
    free(leaves);
    return 0;
}

static void add_sub(struct repair_session *s, uint64_t lo, uint64_t hi) {
    span_push(&s->subs, &s->nsubs, &s->capsubs, lo, hi);
}

/* adjacent differing leaves make one run: one stream of pages */
static void add_run(struct repair_session *s, uint64_t lo, uint64_t hi) {
    s->st_.leaves_differing++;
    if (s->nruns > 0 && s->runs[s->nruns - 1].to == lo) {
        s->runs[s->nruns - 1].to = hi;
    } else {
        span_push(&s->runs, &s->nruns, &s->capruns, lo, hi);
    }
}

static void on_top(struct repair_session *s, const redisReply *r) {
    if (differing(s, r, REPAIR_TOP_DEPTH, add_sub) != 0) {
        peer_failed(s);
        return;
    }
    if (s->nsubs == 0) {
        next_peer(s);
        return;
    }
    s->sub = 0;
    begin_sub(s);
}

static void on_leaves(struct repair_session *s, const redisReply *r) {
    if (differing(s, r, s->depth, add_run) != 0) {
        peer_failed(s);
        return;
    }
    if (++s->sub < s->nsubs) {
        begin_sub(s);
        return;
    }
    merkle_free(&s->local);
    if (s->nruns == 0) {
        next_peer(s);
        return;
    }
    s->run = 0;
    start_run(s);
    s->phase = RP_FETCH;
}

static int rec_cmp_key(uint64_t t1, unsigned d1, const char *k1, size_t l1, uint64_t t2,
                       unsigned d2, const char *k2, size_t l2) {
    if (t1 != t2) {
        return t1 < t2 ? -1 : 1;
    }
    if (d1 != d2) {
        return d1 < d2 ? -1 : 1;
    }
    size_t n = l1 < l2 ? l1 : l2;
    int c = n ? memcmp(k1, k2, n) : 0;
    return c ? c : (l1 < l2 ? -1 : l1 > l2 ? 1 : 0);
}

static int page_qcmp(const void *a, const void *b) {
    const struct repair_rec *x = a, *y = b;
    return rec_cmp_key(x->token, x->db, x->key, x->klen, y->token, y->db, y->key, y->klen);
}

static int keys_qcmp(const void *a, const void *b) {
    const struct cluster_key *x = a, *y = b;
    return rec_cmp_key(x->token, x->db, x->key, x->klen, y->token, y->db, y->key, y->klen);
}

static void push_add(struct repair_session *s, const struct cluster_key *k) {
    if (s->npush == s->cappush) {
        s->cappush = s->cappush ? s->cappush * 2 : 64;
        s->push = cl_realloc(s->push, s->cappush * sizeof *s->push);
    }
    s->push[s->npush++] = (struct repair_push){k->db, cl_memdup(k->key, k->klen), k->klen};
}

static int push_qcmp(const void *a, const void *b) {
    const struct repair_push *x = a, *y = b;
    return x->db < y->db ? -1 : x->db > y->db ? 1 : 0;
}

static void pull(struct repair_session *s, const struct repair_rec *p) {
    if (s->st->observe) {
        s->st->observe(s->st->ctx, p->rec.v.hlc);
    }
    if (s->st->apply(s->st->ctx, p->db, p->key, p->klen, &p->rec) == 1) {
        s->st_.records_pulled++;
        s->pulled_in_pass++;
    }
}

/* compares a peer's page of [lo, page->next) with this node's records of the
 * same tokens: pulls the peer's newer ones, queues this node's newer ones */
static int reconcile(struct repair_session *s, uint64_t lo, struct repair_page *page) {
    struct scan_page mine;
    if (collect_keys(s->st, lo, page->next, 0, 0, 0, &mine) != 0) {
        return -1;
    }
    if (page->n) {
        qsort(page->recs, page->n, sizeof *page->recs, page_qcmp);
    }
    if (mine.n) {
        qsort(mine.keys, mine.n, sizeof *mine.keys, keys_qcmp);
    }
    size_t i = 0, j = 0;
    while (i < page->n || j < mine.n) {
        const struct repair_rec *p = i < page->n ? &page->recs[i] : NULL;
        const struct cluster_key *m = j < mine.n ? &mine.keys[j] : NULL;
        int c = p == NULL   ? 1
                : m == NULL ? -1
                            : rec_cmp_key(p->token, p->db, p->key, p->klen, m->token, m->db,
                                          m->key, m->klen);
        if (c < 0) {
            pull(s, p), i++; /* only the peer has it */
        } else if (c > 0) {
            push_add(s, m), j++; /* only this node has it */
        } else {
            int v = kv_record_cmp(p->rec.v, p->rec.deleted, m->v, m->deleted);
            if (v > 0) {
                pull(s, p);
            } else if (v < 0) {
                push_add(s, m);
            } else if (fields_digest(&p->rec) != m->digest) {
                /* one version, other fields (a big hash, merkle.h): each side
                 * lacks some; both merge per field (fields.h), then agree */
                pull(s, p);
                push_add(s, m);
            }
            i++, j++;
        }
    }
    scan_page_free(&mine);
    if (s->npush > 1) {
        qsort(s->push, s->npush, sizeof *s->push, push_qcmp);
    }
    return 0;
}

static void on_page(struct repair_session *s, const redisReply *r) {
    struct repair_page page;
    char err[128];
    if (repair_range_decode(r, s->fetch_from, s->fetch_to, &page, err, sizeof err) != MSG_OK) {
        peer_failed(s);
        return;
    }
    int rc = reconcile(s, s->fetch_from, &page);
    s->fetch_from = page.next;
    repair_page_free(&page);
    if (rc != 0) {
        peer_failed(s); /* this node's store failed: no use going on with the peer */
        return;
    }
    if (s->fetch_from == s->fetch_to && ++s->run < s->nruns) {
        start_run(s);
    }
    s->phase = s->npush ? RP_PUSH : RP_FETCH;
}

static void on_push(struct repair_session *s, const redisReply *r) {
    int applied[REPAIR_PUSH_BATCH];
    char err[128];
    if (msg_decode_mwrite_reply(r, s->batch, applied, err, sizeof err) != MSG_OK) {
        peer_failed(s);
        return;
    }
    for (size_t i = 0; i < s->batch; i++) {
        s->st_.records_pushed += applied[i] == 1;
    }
}

void repair_session_on_reply(struct repair_session *s, uint64_t id, const redisReply *r) {
    if (id == 0 || id != s->waiting) {
        return;
    }
    s->waiting = 0;
    s->st_.bytes_in += repair_reply_bytes(r);
    if (r == NULL) {
        peer_failed(s);
        return;
    }
    switch (s->phase) {
    case RP_ROOT:
        on_root(s, r);
        break;
    case RP_TOP:
        on_top(s, r);
        break;
    case RP_LEAVES:
        on_leaves(s, r);
        break;
    case RP_FETCH:
        on_page(s, r);
        break;
    case RP_PUSH:
        on_push(s, r);
        break;
    default:
        break;
    }
}
