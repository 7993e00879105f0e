/* cluster/gossip.c: membership by gossip. See gossip.h (the exchange, the wire
 * form, why digests). What it leaves to others: links and timers (cluster.c, the
 * simulator), the ring built from its members (ring.c), the clock offset (skew.c).
 */
#include "cluster/gossip.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cluster/auth.h"
#include "cluster/mem.h"

#define MAGIC "KVG1"
#define DIGEST_MIN (1 + 1 + 24)           /* shortest digest on the wire */
#define STATE_MIN (DIGEST_MIN + 8 + 1)    /* shortest state */

/* ---- bytes ---- */

static void w8(struct msg_buf *b, unsigned v) {
    unsigned char c = (unsigned char)v;
    msg_buf_put(b, &c, 1);
}

static void w16(struct msg_buf *b, unsigned v) {
    unsigned char c[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    msg_buf_put(b, c, 2);
}

static void w32(struct msg_buf *b, uint32_t v) {
    unsigned char c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (unsigned char)(v >> (24 - 8 * i));
    }
    msg_buf_put(b, c, 4);
}

static void w64(struct msg_buf *b, uint64_t v) {
    unsigned char c[8];
    for (int i = 0; i < 8; i++) {
        c[i] = (unsigned char)(v >> (56 - 8 * i));
    }
    msg_buf_put(b, c, 8);
}

static void wstr(struct msg_buf *b, const char *s) {
    size_t n = strlen(s);
    w8(b, (unsigned)n);
    msg_buf_put(b, s, n);
}

struct rd {                      /* a reader that turns sticky-bad past the end */
    const unsigned char *p, *end;
    int bad;
};

static int need(struct rd *r, size_t n) {
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return 0;
    }
    return 1;
}

static uint64_t rn(struct rd *r, int bytes) {
    uint64_t v = 0;
    if (!need(r, (size_t)bytes)) {
        return 0;
    }
    for (int i = 0; i < bytes; i++) {
        v = v << 8 | *r->p++;
    }
    return v;
}

/* a length-prefixed string of 1..max bytes without NUL into out */
static void rstr(struct rd *r, char *out, size_t max) {
    size_t n = (size_t)rn(r, 1);
    out[0] = 0;
    if (r->bad || n == 0 || n > max || !need(r, n) || memchr(r->p, 0, n)) {
        r->bad = 1;
        return;
    }
    memcpy(out, r->p, n);
    out[n] = 0;
    r->p += n;
}

/* ---- decoded messages ---- */

struct g_digest {
    char id[RING_ID_MAX + 1];
    uint64_t gen, hb, ver;
};

struct g_state {
    struct g_digest d;
    uint64_t load;
    int full;
    struct ring_member m;        /* full: tokens owned */
    int status;
    unsigned rf;
    uint8_t fp[GOSSIP_FP_LEN];
};

struct g_msg {
    int kind;
    struct gossip_peer from;
    unsigned rf;
    uint8_t fp[GOSSIP_FP_LEN];
    struct g_state *st;
    size_t nst;
    struct g_digest *dg;
    size_t ndg;
};

static void msg_free(struct g_msg *m) {
    for (size_t i = 0; i < m->nst; i++) {
        free(m->st[i].m.tokens);
    }
    free(m->st);
    free(m->dg);
    m->st = NULL;
    m->dg = NULL;
    m->nst = m->ndg = 0;
}

static void rdigest(struct rd *r, struct g_digest *d) {
    rstr(r, d->id, RING_ID_MAX);
    d->gen = rn(r, 8);
    d->hb = rn(r, 8);
    d->ver = rn(r, 8);
}

/* the heavy part of a state; tokens allocated on success only */
static void rbody(struct rd *r, struct g_state *s) {
    s->m.tag = (uint32_t)rn(r, 4);
    rstr(r, s->m.addr, RING_ADDR_MAX);
    uint64_t wb = rn(r, 8);
    memcpy(&s->m.weight, &wb, 8);
    s->status = (int)rn(r, 1);
    s->rf = (unsigned)rn(r, 1);
    if (need(r, GOSSIP_FP_LEN)) {
        memcpy(s->fp, r->p, GOSSIP_FP_LEN);
        r->p += GOSSIP_FP_LEN;
    }
    uint64_t count = rn(r, 4);
    if (r->bad || s->m.tag == 0 || strchr(s->m.addr, ':') == NULL ||
        !(s->m.weight > 0 && s->m.weight <= 1000) || s->status > GOSSIP_LEFT ||
        count == 0 || count > RING_MAX_TOKENS || !need(r, count * 8)) {
        r->bad = 1;
        return;
    }
    r->p -= 4; /* ring_tokens_decode reads the count again */
    if (ring_tokens_decode(r->p, 4 + count * 8, &s->m.tokens, &s->m.ntokens) != RING_OK) {
        r->bad = 1;
        return;
    }
    r->p += 4 + count * 8;
}

static void rstate(struct rd *r, struct g_state *s) {
    memset(s, 0, sizeof *s);
    rdigest(r, &s->d);
    s->load = rn(r, 8);
    s->full = (int)rn(r, 1);
    if (r->bad || s->full > 1) {
        r->bad = 1;
        return;
    }
    if (s->full) {
        rbody(r, s);
        snprintf(s->m.id, sizeof s->m.id, "%s", s->d.id);
    }
}

/* a count, then room for count items of at least min bytes each */
static size_t rcount(struct rd *r, size_t min) {
    size_t n = (size_t)rn(r, 2);
    if (n > RING_MAX_MEMBERS || (n && !need(r, n * min))) {
        r->bad = 1;
        return 0;
    }
    return n;
}

static void rstates(struct rd *r, struct g_msg *m) {
    size_t n = rcount(r, STATE_MIN);
    if (r->bad || n == 0) {
        return;
    }
    m->st = cl_calloc(n, sizeof *m->st);
    for (size_t i = 0; i < n && !r->bad; i++) {
        rstate(r, &m->st[i]);
        m->nst = i + 1; /* its tokens (if any) are freed with the message */
    }
}

static void rdigests(struct rd *r, struct g_msg *m) {
    size_t n = rcount(r, DIGEST_MIN);
    if (r->bad || n == 0) {
        return;
    }
    m->dg = cl_calloc(n, sizeof *m->dg);
    m->ndg = n;
    for (size_t i = 0; i < n && !r->bad; i++) {
        rdigest(r, &m->dg[i]);
    }
}

/* Decodes a whole message of the kind expected. GOSSIP_OK with *m filled (free
 * with msg_free), else GOSSIP_INVALID with nothing allocated. */
static int msg_decode(const void *buf, size_t len, int kind, struct g_msg *m, char *err,
                      size_t errlen) {
    memset(m, 0, sizeof *m);
    if (len > GOSSIP_MAX_MSG) {
        return msg_fail(err, errlen, GOSSIP_INVALID, "gossip message of %zu bytes (at most %u)", len,
                    GOSSIP_MAX_MSG);
    }
    struct rd r = {buf, (const unsigned char *)buf + len, 0};
    if (!need(&r, 4) || memcmp(r.p, MAGIC, 4) != 0) {
        return msg_fail(err, errlen, GOSSIP_INVALID, "not a gossip message (bad magic)");
    }
    r.p += 4;
    m->kind = (int)rn(&r, 1);
    if (r.bad || m->kind != kind) {
        return msg_fail(err, errlen, GOSSIP_INVALID, "gossip message of kind %d where %d was expected", m->kind,
                    kind);
    }
    rstr(&r, m->from.id, RING_ID_MAX);
    m->from.wall_ms = rn(&r, 8);
    m->rf = (unsigned)rn(&r, 1);
    if (need(&r, GOSSIP_FP_LEN)) {
        memcpy(m->fp, r.p, GOSSIP_FP_LEN);
        r.p += GOSSIP_FP_LEN;
    }
    if (kind != GOSSIP_SYN) {
        rstates(&r, m);
    }
    if (kind != GOSSIP_ACK2) {
        rdigests(&r, m);
    }
    if (!r.bad && r.p != r.end) {
        r.bad = 1;
    }
    if (r.bad) {
        size_t at = (size_t)(r.p - (const unsigned char *)buf);
        msg_free(m);
        return msg_fail(err, errlen, GOSSIP_INVALID, "malformed gossip message near byte %zu of %zu", at, len);
    }
    return GOSSIP_OK;
}

/* ---- the machine ---- */

static void glog(struct gossip *g, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void glog(struct gossip *g, int level, const char *fmt, ...) {
    if (g->log == NULL) {
        return;
    }
    char line[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    g->log(g->log_ctx, level, line);
}

void gossip_fingerprint(const char *secret, size_t len, uint8_t fp[GOSSIP_FP_LEN]) {
    char hex[AUTH_FINGERPRINT_HEX + 1];
    auth_fingerprint(secret, len, hex);
    auth_hex_decode(hex, AUTH_FINGERPRINT_HEX, fp, GOSSIP_FP_LEN);
}

struct gossip *gossip_new(const struct gossip_self *self) {
    struct gossip *g = cl_calloc(1, sizeof *g);
    g->mb = cl_calloc(1, sizeof *g->mb);
    g->n = 1;
    struct gossip_member *me = &g->mb[0];
    me->m = *self->m;
    me->m.tokens = cl_memdup(self->m->tokens, self->m->ntokens * sizeof(uint64_t));
    me->generation = self->generation;
    me->heartbeat = 1;
    me->version = 1;
    me->status = GOSSIP_NORMAL;
    me->rf = self->rf;
    memcpy(me->fp, self->fp, GOSSIP_FP_LEN);
    g->rng = self->seed ? self->seed : 0x9e3779b97f4a7c15ull;
    g->convict = self->convict > 0 ? self->convict : 8;
    g->phic = self->phi;
    phi_init(&me->phi, &g->phic);
    g->log = self->log;
    g->log_ctx = self->log_ctx;
    g->ring_epoch = 1;
    return g;
}

void gossip_free(struct gossip **gp) {
    struct gossip *g = *gp;
    if (g == NULL) {
        return;
    }
    for (size_t i = 0; i < g->n; i++) {
        free(g->mb[i].m.tokens);
    }
    free(g->mb);
    free(g);
    *gp = NULL;
}

void gossip_tick(struct gossip *g) {
    g->mb[0].heartbeat++;
}

void gossip_set_status(struct gossip *g, int status) {
    if (g->mb[0].status != status) {
        g->mb[0].status = status;
        g->mb[0].version++;
        g->ring_epoch++;
    }
}

void gossip_set_tokens(struct gossip *g, const uint64_t *tokens, size_t n) {
    struct ring_member *m = &g->mb[0].m;
    uint64_t *t = cl_memdup(tokens, n * sizeof *tokens);
    free(m->tokens);
    m->tokens = t;
    m->ntokens = n;
    g->mb[0].version++;
    g->ring_epoch++;
}

void gossip_remove(struct gossip *g, size_t i, int status) {
    struct gossip_member *x = &g->mb[i];
    if (i == 0 || (gossip_removed(g, i) && x->status == status)) {
        return;
    }
    x->generation = GOSSIP_GEN_REMOVED;
    x->version++;
    x->status = status;
    g->ring_epoch++;
    glog(g, 1, "member %s at %s removed (status %s)", x->m.id, x->m.addr,
         gossip_status_name(status));
}

int gossip_removed(const struct gossip *g, size_t i) {
    return i < g->n && g->mb[i].generation == GOSSIP_GEN_REMOVED;
}

void gossip_set_load(struct gossip *g, uint64_t load) {
    g->mb[0].load = load;
}

long gossip_find(const struct gossip *g, const char *id) {
    for (size_t i = 0; i < g->n; i++) {
        if (strcmp(g->mb[i].m.id, id) == 0) {
            return (long)i;
        }
    }
    return -1;
}

long gossip_find_tag(const struct gossip *g, uint32_t tag) {
    for (size_t i = 0; i < g->n; i++) {
        if (g->mb[i].m.tag == tag) {
            return (long)i;
        }
    }
    return -1;
}

int gossip_in_ring(const struct gossip *g, size_t i) {
    return i < g->n && g->mb[i].refused[0] == 0 && g->mb[i].status != GOSSIP_LEFT;
}

int gossip_health(const struct gossip *g, size_t i, uint64_t now, double *phi) {
    double v = i == 0 ? 0 : phi_value(&g->mb[i].phi, now);
    if (phi) {
        *phi = v;
    }
    if (v >= g->convict) {
        return GOSSIP_DOWN;
    }
    return v >= g->convict / 2 ? GOSSIP_SUSPECT : GOSSIP_UP;
}

const char *gossip_health_name(int health) {
    return health == GOSSIP_UP ? "up" : health == GOSSIP_SUSPECT ? "suspect" : "down";
}

const char *gossip_status_name(int status) {
    static const char *const names[] = {"joining", "normal", "leaving", "left"};
    return status >= 0 && status <= GOSSIP_LEFT ? names[status] : "?";
}

static uint64_t rnd(struct gossip *g) {
    g->rng ^= g->rng << 13;
    g->rng ^= g->rng >> 7;
    g->rng ^= g->rng << 17;
    return g->rng;
}

size_t gossip_pick(struct gossip *g, uint64_t now, size_t fanout, uint32_t *tags, size_t max) {
    size_t nlive = 0, ndown = 0, k = 0;
    uint32_t *live = cl_malloc(g->n * sizeof *live), *down = cl_malloc(g->n * sizeof *down);
    for (size_t i = 1; i < g->n; i++) {
        if (!gossip_in_ring(g, i)) {
            continue;
        }
        if (gossip_health(g, i, now, NULL) == GOSSIP_DOWN) {
            down[ndown++] = g->mb[i].m.tag;
        } else {
            live[nlive++] = g->mb[i].m.tag;
        }
    }
    while (k < fanout && k < max && nlive > 0) { /* without repetition */
        size_t j = (size_t)(rnd(g) % nlive);
        tags[k++] = live[j];
        live[j] = live[--nlive];
    }
    if (ndown > 0 && k < max && rnd(g) % (nlive + k + 1) < ndown) {
        tags[k++] = down[rnd(g) % ndown];
    }
    free(live);
    free(down);
    return k;
}

/* ---- encoding ---- */

static void header(const struct gossip *g, int kind, uint64_t wall_ms, struct msg_buf *b) {
    const struct gossip_member *me = &g->mb[0];
    msg_buf_put(b, MAGIC, 4);
    w8(b, (unsigned)kind);
    wstr(b, me->m.id);
    w64(b, wall_ms);
    w8(b, me->rf);
    msg_buf_put(b, me->fp, GOSSIP_FP_LEN);
}

static void wdigest(struct msg_buf *b, const char *id, uint64_t gen, uint64_t hb, uint64_t ver) {
    wstr(b, id);
    w64(b, gen);
    w64(b, hb);
    w64(b, ver);
}

static size_t state_len(const struct gossip_member *x, int full) {
    size_t n = 1 + strlen(x->m.id) + 24 + 8 + 1;
    if (full) {
        n += 4 + 1 + strlen(x->m.addr) + 8 + 1 + 1 + GOSSIP_FP_LEN +
             ring_tokens_encoded_len(x->m.ntokens);
    }
    return n;
}

static void wstate(struct msg_buf *b, const struct gossip_member *x, int full) {
    wdigest(b, x->m.id, x->generation, x->heartbeat, x->version);
    w64(b, x->load);
    w8(b, (unsigned)full);
    if (!full) {
        return;
    }
    w32(b, x->m.tag);
    wstr(b, x->m.addr);
    uint64_t wb;
    memcpy(&wb, &x->m.weight, 8);
    w64(b, wb);
    w8(b, (unsigned)x->status);
    w8(b, x->rf);
    msg_buf_put(b, x->fp, GOSSIP_FP_LEN);
    size_t tl = ring_tokens_encoded_len(x->m.ntokens);
    unsigned char *t = cl_malloc(tl);
    ring_tokens_encode(x->m.tokens, x->m.ntokens, t);
    msg_buf_put(b, t, tl);
    free(t);
}

static void patch16(struct msg_buf *b, size_t at, size_t v) {
    b->p[at] = (char)(v >> 8);
    b->p[at + 1] = (char)v;
}

void gossip_syn(struct gossip *g, uint64_t wall_ms, struct msg_buf *out) {
    header(g, GOSSIP_SYN, wall_ms, out);
    w16(out, (unsigned)g->n);
    for (size_t i = 0; i < g->n; i++) {
        const struct gossip_member *x = &g->mb[i];
        wdigest(out, x->m.id, x->generation, x->heartbeat, x->version);
    }
}

/* What to send of member x to a peer whose digest of it is d (NULL: it lacks it):
 * 0 nothing, 1 heartbeat and load, 2 the full state. */
static int newer_part(const struct gossip_member *x, const struct g_digest *d) {
    if (d == NULL || x->generation > d->gen) {
        return 2;
    }
    if (x->generation < d->gen) {
        return 0;
    }
    if (x->version > d->ver) {
        return 2;
    }
    return x->heartbeat > d->hb ? 1 : 0;
}

/* Appends the states in `send` (per member: newer_part) from a random start, as
 * many as fit in GOSSIP_MAX_MSG; the count goes first. */
static void wstates(struct gossip *g, const unsigned char *send, struct msg_buf *b,
                    size_t reserve) {
    size_t at = b->len, count = 0;
    w16(b, 0);
    size_t start = g->n ? (size_t)(rnd(g) % g->n) : 0;
    for (size_t k = 0; k < g->n; k++) {
        size_t i = (start + k) % g->n;
        if (send[i] == 0) {
            continue;
        }
        size_t len = state_len(&g->mb[i], send[i] == 2);
        if (b->len + len + reserve > GOSSIP_MAX_MSG) {
            continue; /* next round: another start */
        }
        wstate(b, &g->mb[i], send[i] == 2);
        count++;
    }
    patch16(b, at, count);
}

/* ---- applying states ---- */

/* why member i may not enter the ring ("" when it may). Two members with one tag:
 * this node keeps its own, else the smaller id wins, whatever the order in which
 * they were heard, so every node refuses the same one. */
static void refusal(const struct gossip *g, size_t i, char *why, size_t cap) {
    const struct gossip_member *me = &g->mb[0], *s = &g->mb[i];
    why[0] = 0;
    if (i == 0) {
        return;
    }
    if (s->rf != me->rf) {
        snprintf(why, cap, "its replication-factor %u differs from ours (%u)", s->rf, me->rf);
        return;
    }
    if (memcmp(s->fp, me->fp, GOSSIP_FP_LEN) != 0) {
        snprintf(why, cap, "its cluster-secret differs from ours (fingerprint)");
        return;
    }
    for (size_t j = 0; j < g->n; j++) {
        const struct gossip_member *o = &g->mb[j];
        if (j != i && o->m.tag == s->m.tag && (j == 0 || strcmp(o->m.id, s->m.id) < 0)) {
            snprintf(why, cap, "its tag %u is %s's", s->m.tag, o->m.id);
            return;
        }
    }
}

/* re-decides member i's refusal; 1 when it changed (logged) */
static int recheck(struct gossip *g, size_t i) {
    struct gossip_member *x = &g->mb[i];
    char why[GOSSIP_REFUSED_MAX];
    refusal(g, i, why, sizeof why);
    if (strcmp(why, x->refused) == 0) {
        return 0;
    }
    if (why[0]) {
        glog(g, 2, "member %s at %s refused: %s", x->m.id, x->m.addr, why);
        g->st.refused++;
    } else if (x->refused[0]) {
        glog(g, 1, "member %s at %s accepted again", x->m.id, x->m.addr);
    }
    snprintf(x->refused, sizeof x->refused, "%s", why);
    return 1;
}

/* after member i's tag changed from old: every member holding either tag */
static int recheck_tags(struct gossip *g, uint32_t old, uint32_t now) {
    int changed = 0;
    for (size_t j = 1; j < g->n; j++) {
        if (g->mb[j].m.tag == old || g->mb[j].m.tag == now) {
            changed |= recheck(g, j);
        }
    }
    return changed;
}

static int ring_fields_differ(const struct gossip_member *a, const struct g_state *s) {
    return a->m.tag != s->m.tag || strcmp(a->m.addr, s->m.addr) != 0 ||
           a->m.weight != s->m.weight || a->status != s->status ||
           a->m.ntokens != s->m.ntokens ||
           memcmp(a->m.tokens, s->m.tokens, s->m.ntokens * sizeof(uint64_t)) != 0;
}

/* takes the body of s (its tokens move) into member i */
static void take_body(struct gossip *g, size_t i, struct g_state *s) {
    struct gossip_member *x = &g->mb[i];
    int changed = ring_fields_differ(x, s);
    uint32_t old_tag = x->m.tag;
    free(x->m.tokens);
    x->m = s->m;
    s->m.tokens = NULL;
    s->m.ntokens = 0;
    x->status = s->status;
    x->rf = s->rf;
    memcpy(x->fp, s->fp, GOSSIP_FP_LEN);
    changed |= recheck(g, i);
    changed |= recheck_tags(g, old_tag, x->m.tag);
    if (changed) {
        g->ring_epoch++;
    }
}

static void add_member(struct gossip *g, uint64_t now, struct g_state *s) {
    g->mb = cl_realloc(g->mb, (g->n + 1) * sizeof *g->mb);
    struct gossip_member *x = &g->mb[g->n];
    memset(x, 0, sizeof *x);
    phi_init(&x->phi, &g->phic);
    g->n++;
    take_body(g, g->n - 1, s);
    x = &g->mb[g->n - 1];
    x->generation = s->d.gen;
    x->heartbeat = s->d.hb;
    x->version = s->d.ver;
    x->load = s->load;
    phi_heartbeat(&x->phi, now);
    g->ring_epoch++;
    if (x->refused[0] == 0) {
        glog(g, 1, "member %s at %s joined (generation %llu, %zu tokens, %s)", x->m.id,
             x->m.addr, (unsigned long long)x->generation, x->m.ntokens,
             gossip_status_name(x->status));
    }
}

/* Applies one state received at now when it is newer than what we hold. */
static void apply_state(struct gossip *g, uint64_t now, struct g_state *s) {
    if (strcmp(s->d.id, g->mb[0].m.id) == 0) {
        /* ourselves: we know best, unless the others removed us */
        if (s->d.gen == GOSSIP_GEN_REMOVED && !g->self_removed) {
            g->self_removed = 1;
            g->ring_epoch++;
            glog(g, 2, "this node was removed from the cluster (KVD REMOVENODE or "
                       "cluster-replace): it serves no more; wipe its dir to join again");
        }
        return;
    }
    long i = gossip_find(g, s->d.id);
    if (i < 0) {
        if (s->full && g->n < RING_MAX_MEMBERS) {
            add_member(g, now, s);
            g->st.states_applied++;
        }
        return;
    }
    struct gossip_member *x = &g->mb[i];
    int newgen = s->d.gen > x->generation;
    if (s->d.gen < x->generation || (newgen && !s->full)) {
        return;
    }
    if (newgen || (s->full && s->d.ver > x->version)) {
        take_body(g, (size_t)i, s);
        x = &g->mb[i];
        if (newgen && s->d.gen == GOSSIP_GEN_REMOVED) {
            glog(g, 1, "member %s at %s removed (status %s)", x->m.id, x->m.addr,
                 gossip_status_name(x->status));
        } else if (newgen) {
            glog(g, 1, "member %s restarted (generation %llu -> %llu)", x->m.id,
                 (unsigned long long)x->generation, (unsigned long long)s->d.gen);
        }
        x->generation = s->d.gen;
        x->version = s->d.ver;
        if (newgen) {
            x->heartbeat = 0;
        }
        g->st.states_applied++;
    }
    if (s->d.hb > x->heartbeat) {
        x->heartbeat = s->d.hb;
        x->load = s->load;
        phi_heartbeat(&x->phi, now);
        g->st.states_applied++;
    }
}

static void apply_states(struct gossip *g, uint64_t now, struct g_msg *m) {
    for (size_t i = 0; i < m->nst; i++) {
        apply_state(g, now, &m->st[i]);
    }
}

/* ---- the three messages ---- */

/* decodes and checks the sender agrees with us */
static int receive(struct gossip *g, const void *buf, size_t len, int kind, struct g_msg *m,
                   struct gossip_peer *from, char *err, size_t errlen) {
    int rc = msg_decode(buf, len, kind, m, err, errlen);
    if (rc != GOSSIP_OK) {
        g->st.invalid++;
        return rc;
    }
    if (from) {
        *from = m->from;
    }
    const struct gossip_member *me = &g->mb[0];
    if (m->rf != me->rf || memcmp(m->fp, me->fp, GOSSIP_FP_LEN) != 0) {
        if (err && errlen && m->rf != me->rf) {
            snprintf(err, errlen, "gossip refused: %s has replication-factor %u, ours is %u",
                     m->from.id, m->rf, me->rf);
        } else if (err && errlen) {
            snprintf(err, errlen, "gossip refused: %s has another cluster-secret", m->from.id);
        }
        g->st.refused++;
        msg_free(m);
        return GOSSIP_REFUSED;
    }
    return GOSSIP_OK;
}

int gossip_on_syn(struct gossip *g, uint64_t now, uint64_t wall_ms, const void *buf,
                  size_t len, struct msg_buf *ack, struct gossip_peer *from, char *err,
                  size_t errlen) {
    (void)now; /* a SYN carries no states: no heartbeat arrives with it */
    struct g_msg m;
    int rc = receive(g, buf, len, GOSSIP_SYN, &m, from, err, errlen);
    if (rc != GOSSIP_OK) {
        return rc;
    }
    g->st.syns++;
    unsigned char *send = cl_calloc(g->n, 1);
    unsigned char *seen = cl_calloc(g->n, 1);
    struct msg_buf wants = {0};
    size_t nwants = 0;
    for (size_t k = 0; k < m.ndg; k++) {
        const struct g_digest *d = &m.dg[k];
        long i = gossip_find(g, d->id);
        if (i < 0) {
            wdigest(&wants, d->id, 0, 0, 0); /* everything */
            nwants++;
            continue;
        }
        const struct gossip_member *x = &g->mb[i];
        seen[i] = 1;
        send[i] = (unsigned char)newer_part(x, d);
        if (d->gen > x->generation || (d->gen == x->generation &&
                                       (d->ver > x->version || d->hb > x->heartbeat))) {
            wdigest(&wants, x->m.id, x->generation, x->heartbeat, x->version);
            nwants++;
        }
    }
    for (size_t i = 0; i < g->n; i++) {
        if (!seen[i]) {
            send[i] = 2;
        }
    }
    header(g, GOSSIP_ACK, wall_ms, ack);
    wstates(g, send, ack, 2 + wants.len);
    w16(ack, (unsigned)nwants);
    msg_buf_put(ack, wants.p, wants.len);
    msg_buf_free(&wants);
    free(send);
    free(seen);
    msg_free(&m);
    return GOSSIP_OK;
}

int gossip_on_ack(struct gossip *g, uint64_t now, uint64_t wall_ms, const void *buf,
                  size_t len, struct msg_buf *ack2, int *need_ack2, struct gossip_peer *from,
                  char *err, size_t errlen) {
    struct g_msg m;
    int rc = receive(g, buf, len, GOSSIP_ACK, &m, from, err, errlen);
    if (rc != GOSSIP_OK) {
        return rc;
    }
    g->st.acks++;
    apply_states(g, now, &m);
    unsigned char *send = cl_calloc(g->n, 1);
    size_t nsend = 0;
    for (size_t k = 0; k < m.ndg; k++) {
        long i = gossip_find(g, m.dg[k].id);
        if (i >= 0) {
            send[i] = (unsigned char)newer_part(&g->mb[i], &m.dg[k]);
            nsend += send[i] != 0;
        }
    }
    *need_ack2 = nsend > 0;
    if (nsend > 0) {
        header(g, GOSSIP_ACK2, wall_ms, ack2);
        wstates(g, send, ack2, 0);
    }
    free(send);
    msg_free(&m);
    return GOSSIP_OK;
}

int gossip_on_ack2(struct gossip *g, uint64_t now, const void *buf, size_t len,
                   struct gossip_peer *from, char *err, size_t errlen) {
    struct g_msg m;
    int rc = receive(g, buf, len, GOSSIP_ACK2, &m, from, err, errlen);
    if (rc != GOSSIP_OK) {
        return rc;
    }
    g->st.ack2s++;
    apply_states(g, now, &m);
    msg_free(&m);
    return GOSSIP_OK;
}
