/* cluster/ring.c: the token ring. See ring.h. Leaves membership (who is in the
 * ring) to its callers and gossip (part 2). */
#include "cluster/ring.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "cluster/mem.h"

uint64_t ring_key_token(const void *key, size_t len) {
    return XXH3_64bits(key, len);
}

size_t ring_token_count(unsigned vnodes, double weight) {
    if (vnodes == 0 || !(weight > 0)) {
        return 1;
    }
    double c = floor((double)vnodes * weight + 0.5);
    if (c < 1) {
        return 1;
    }
    if (c > RING_MAX_TOKENS) {
        return RING_MAX_TOKENS;
    }
    return (size_t)c;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void ring_tokens_generate(uint64_t seed, uint64_t *out, size_t n) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        out[i] = splitmix64(&s);
    }
    /* a repeat (chance ~n^2/2^65) is replaced by a fresh draw until none is left */
    for (;;) {
        qsort(out, n, sizeof *out, cmp_u64);
        int dup = 0;
        for (size_t i = 1; i < n; i++) {
            if (out[i] == out[i - 1]) {
                out[i] = splitmix64(&s);
                dup = 1;
            }
        }
        if (!dup) {
            return;
        }
    }
}

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return RING_INVALID;
}

static int cmp_member(const void *a, const void *b) {
    const struct ring_member *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c != 0) {
        return c;
    }
    return x->tag < y->tag ? -1 : x->tag > y->tag;
}

/* vnode order needs the member tags: sorted through a context-free copy */
struct vnode_key {
    uint64_t token;
    uint32_t tag;
    uint32_t member;
};

static int cmp_vnode(const void *a, const void *b) {
    const struct vnode_key *x = a, *y = b;
    if (x->token != y->token) {
        return x->token < y->token ? -1 : 1;
    }
    return x->tag < y->tag ? -1 : x->tag > y->tag;
}

static int check_member(const struct ring_member *m, char *err, size_t errlen) {
    if (memchr(m->id, '\0', sizeof m->id) == NULL || m->id[0] == '\0') {
        return fail(err, errlen, "node id empty or longer than %d bytes", RING_ID_MAX);
    }
    if (memchr(m->addr, '\0', sizeof m->addr) == NULL) {
        return fail(err, errlen, "node %s: address too long", m->id);
    }
    if (m->tag == 0) {
        return fail(err, errlen, "node %s: tag 0", m->id);
    }
    if (m->ntokens == 0 || m->ntokens > RING_MAX_TOKENS || m->tokens == NULL) {
        return fail(err, errlen, "node %s: %zu tokens (1..%d)", m->id, m->ntokens,
                    RING_MAX_TOKENS);
    }
    for (size_t i = 1; i < m->ntokens; i++) {
        if (m->tokens[i] <= m->tokens[i - 1]) {
            return fail(err, errlen, "node %s: tokens not ascending", m->id);
        }
    }
    return RING_OK;
}

static int build_vnodes(struct ring *r) {
    size_t total = 0;
    for (size_t i = 0; i < r->nmembers; i++) {
        total += r->members[i].ntokens;
    }
    struct vnode_key *keys = cl_malloc(total * sizeof *keys);
    size_t k = 0;
    for (size_t i = 0; i < r->nmembers; i++) {
        for (size_t j = 0; j < r->members[i].ntokens; j++) {
            keys[k++] = (struct vnode_key){r->members[i].tokens[j], r->members[i].tag,
                                           (uint32_t)i};
        }
    }
    qsort(keys, total, sizeof *keys, cmp_vnode);
    r->vnodes = cl_malloc(total * sizeof *r->vnodes);
    for (size_t i = 0; i < total; i++) {
        r->vnodes[i] = (struct ring_vnode){keys[i].token, keys[i].member};
    }
    r->nvnodes = total;
    free(keys);
    return RING_OK;
}

int ring_build(struct ring *r, const struct ring_member *members, size_t n, char *err,
               size_t errlen) {
    memset(r, 0, sizeof *r);
    if (n == 0 || n > RING_MAX_MEMBERS) {
        return fail(err, errlen, "%zu members (1..%d)", n, RING_MAX_MEMBERS);
    }
    for (size_t i = 0; i < n; i++) {
        if (check_member(&members[i], err, errlen) != RING_OK) {
            return RING_INVALID;
        }
    }
    struct ring_member *ms = cl_malloc(n * sizeof *ms);
    memcpy(ms, members, n * sizeof *ms);
    qsort(ms, n, sizeof *ms, cmp_member);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(ms[i].id, ms[i - 1].id) == 0) {
            fail(err, errlen, "duplicate node id %s", ms[i].id);
            free(ms);
            return RING_INVALID;
        }
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            if (ms[i].tag == ms[j].tag) {
                uint32_t tag = ms[i].tag;
                free(ms);
                return fail(err, errlen, "duplicate node tag %u", (unsigned)tag);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        ms[i].tokens = cl_memdup(ms[i].tokens, ms[i].ntokens * sizeof(uint64_t));
    }
    r->members = ms;
    r->nmembers = n;
    return build_vnodes(r);
}

void ring_destroy(struct ring *r) {
    for (size_t i = 0; i < r->nmembers; i++) {
        free(r->members[i].tokens);
    }
    free(r->members);
    free(r->vnodes);
    memset(r, 0, sizeof *r);
}

/* index of the first vnode with token >= t, wrapping to 0 */
static size_t first_vnode(const struct ring *r, uint64_t t) {
    size_t lo = 0, hi = r->nvnodes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->vnodes[mid].token < t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo == r->nvnodes ? 0 : lo;
}

static size_t walk_from(const struct ring *r, size_t start, size_t n, uint32_t *out) {
    if (n > RING_MAX_REPLICAS) {
        n = RING_MAX_REPLICAS;
    }
    if (n > r->nmembers) {
        n = r->nmembers;
    }
    size_t got = 0;
    for (size_t step = 0; step < r->nvnodes && got < n; step++) {
        uint32_t m = r->vnodes[(start + step) % r->nvnodes].member;
        size_t j = 0;
        while (j < got && out[j] != m) {
            j++;
        }
        if (j == got) {
            out[got++] = m;
        }
    }
    return got;
}

size_t ring_replicas(const struct ring *r, uint64_t token, size_t n, uint32_t *out) {
    if (r->nvnodes == 0) {
        return 0;
    }
    return walk_from(r, first_vnode(r, token), n, out);
}

long ring_find_tag(const struct ring *r, uint32_t tag) {
    for (size_t i = 0; i < r->nmembers; i++) {
        if (r->members[i].tag == tag) {
            return (long)i;
        }
    }
    return -1;
}

double ring_share(const struct ring *r, size_t m, size_t nrep) {
    if (r->nvnodes == 0 || m >= r->nmembers) {
        return 0;
    }
    double total = 0;
    uint32_t reps[RING_MAX_REPLICAS];
    for (size_t i = 0; i < r->nvnodes; i++) {
        size_t got = walk_from(r, i, nrep, reps);
        size_t j = 0;
        while (j < got && reps[j] != m) {
            j++;
        }
        if (j == got) {
            continue;
        }
        /* the range (previous token, this token], modulo 2^64 */
        uint64_t prev = r->vnodes[(i + r->nvnodes - 1) % r->nvnodes].token;
        uint64_t width = r->vnodes[i].token - prev;
        total += r->nvnodes == 1 ? 18446744073709551616.0 : (double)width;
    }
    return total / 18446744073709551616.0;
}

size_t ring_tokens_encoded_len(size_t n) {
    return 4 + 8 * n;
}

void ring_tokens_encode(const uint64_t *tokens, size_t n, unsigned char *out) {
    uint32_t c = (uint32_t)n;
    for (int b = 0; b < 4; b++) {
        out[b] = (unsigned char)(c >> (24 - 8 * b));
    }
    for (size_t i = 0; i < n; i++) {
        for (int b = 0; b < 8; b++) {
            out[4 + 8 * i + (size_t)b] = (unsigned char)(tokens[i] >> (56 - 8 * b));
        }
    }
}

int ring_tokens_decode(const void *buf, size_t len, uint64_t **out, size_t *n) {
    const unsigned char *p = buf;
    if (len < 4) {
        return RING_INVALID;
    }
    uint32_t c = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (c == 0 || c > RING_MAX_TOKENS || len != ring_tokens_encoded_len(c)) {
        return RING_INVALID;
    }
    uint64_t prev = 0;
    for (size_t i = 0; i < c; i++) {
        uint64_t t = 0;
        for (int b = 0; b < 8; b++) {
            t = t << 8 | p[4 + 8 * i + (size_t)b];
        }
        if (i > 0 && t <= prev) {
            return RING_INVALID;
        }
        prev = t;
    }
    uint64_t *toks = cl_malloc(c * sizeof *toks);
    for (size_t i = 0; i < c; i++) {
        uint64_t t = 0;
        for (int b = 0; b < 8; b++) {
            t = t << 8 | p[4 + 8 * i + (size_t)b];
        }
        toks[i] = t;
    }
    *out = toks;
    *n = c;
    return RING_OK;
}

/* ---- joining (ring_tokens_balance) and pending replicas (ring_write_set) ---- */

#define BALANCE_CANDIDATES 32 /* widest ranges tried for each new token */

/* every member's share of the ring as one of the first nrep replicas */
static void shares_all(const struct ring *g, size_t nrep, double *out) {
    memset(out, 0, g->nmembers * sizeof *out);
    uint32_t reps[RING_MAX_REPLICAS];
    for (size_t i = 0; i < g->nvnodes; i++) {
        uint64_t prev = g->vnodes[(i + g->nvnodes - 1) % g->nvnodes].token;
        double w = g->nvnodes == 1 ? 1.0
                                   : (double)(uint64_t)(g->vnodes[i].token - prev) /
                                         18446744073709551616.0;
        size_t k = walk_from(g, i, nrep, reps);
        for (size_t j = 0; j < k; j++) {
            out[reps[j]] += w;
        }
    }
}

/* The joining member (tag jtag, jfinal tokens once complete) and the search's
 * scratch. */
struct balance {
    const struct ring *r;
    size_t nrep;
    struct ring_member *ms;  /* r's members (shallow) then the joiner */
    uint64_t *jt;            /* the joiner's tokens, sorted, one spare */
    size_t jfinal;
    double total_final;      /* every member's tokens, the joiner's final count included */
    double *sh;
};

/* How far ring g's replica shares are from each member's fair one (nrep x its
 * tokens / all tokens, at most 1): sum of (share - fair)^2 / fair, whose minimum
 * under a fixed total is shares proportional to the fair ones. */
static double imbalance(struct balance *b, const struct ring *g, uint32_t jtag) {
    shares_all(g, b->nrep, b->sh);
    double cost = 0;
    for (size_t m = 0; m < g->nmembers; m++) {
        size_t nt = g->members[m].tag == jtag ? b->jfinal : g->members[m].ntokens;
        double fair = (double)b->nrep * (double)nt / b->total_final;
        fair = fair > 1 ? 1 : fair;
        cost += (b->sh[m] - fair) * (b->sh[m] - fair) / fair;
    }
    return cost;
}

/* the imbalance with the joiner holding jt[0..k) plus token c */
static double try_token(struct balance *b, size_t k, uint64_t c) {
    size_t at = k;
    while (at > 0 && b->jt[at - 1] > c) {
        at--;
    }
    if (at > 0 && b->jt[at - 1] == c) {
        return -1;
    }
    memmove(b->jt + at + 1, b->jt + at, (k - at) * sizeof *b->jt);
    b->jt[at] = c;
    struct ring_member *j = &b->ms[b->r->nmembers];
    j->tokens = b->jt;
    j->ntokens = k + 1;
    struct ring g;
    double cost = -1;
    if (ring_build(&g, b->ms, b->r->nmembers + 1, NULL, 0) == RING_OK) {
        cost = imbalance(b, &g, j->tag);
        ring_destroy(&g);
    }
    memmove(b->jt + at, b->jt + at + 1, (k - at) * sizeof *b->jt);
    return cost;
}

/* the cut of ring g's vnode i: min(half its range, fair) from its low end; 0 when
 * the range is too narrow */
static uint64_t cut_of(const struct ring *g, size_t i, unsigned __int128 fair, int *ok) {
    uint64_t prev = g->vnodes[(i + g->nvnodes - 1) % g->nvnodes].token;
    unsigned __int128 w = g->nvnodes == 1 ? (unsigned __int128)1 << 64
                                          : (unsigned __int128)(uint64_t)(g->vnodes[i].token - prev);
    unsigned __int128 take = w / 2 < fair ? w / 2 : fair;
    *ok = take > 0;
    return prev + (uint64_t)take;
}

/* the next token: the best of the cuts of the BALANCE_CANDIDATES widest ranges
 * of r plus the joiner's k tokens; 0 when none fits */
static int balance_step(struct balance *b, size_t k, unsigned __int128 fair, uint64_t *best) {
    struct ring g;
    const struct ring *cur = b->r;
    if (k > 0) {
        b->ms[b->r->nmembers].tokens = b->jt;
        b->ms[b->r->nmembers].ntokens = k;
        if (ring_build(&g, b->ms, b->r->nmembers + 1, NULL, 0) != RING_OK) {
            return 0;
        }
        cur = &g;
    }
    uint8_t *tried = cl_calloc(cur->nvnodes, 1);
    double best_cost = -1;
    for (size_t c = 0; c < BALANCE_CANDIDATES && c < cur->nvnodes; c++) {
        size_t w = cur->nvnodes; /* the widest not tried yet */
        for (size_t i = 0; i < cur->nvnodes; i++) {
            uint64_t pi = cur->vnodes[(i + cur->nvnodes - 1) % cur->nvnodes].token;
            uint64_t pw = w < cur->nvnodes ? cur->vnodes[(w + cur->nvnodes - 1) % cur->nvnodes].token : 0;
            if (!tried[i] && (w == cur->nvnodes ||
                              cur->vnodes[i].token - pi > cur->vnodes[w].token - pw)) {
                w = i;
            }
        }
        tried[w] = 1;
        int ok;
        uint64_t t = cut_of(cur, w, fair, &ok);
        double cost = ok ? try_token(b, k, t) : -1;
        if (cost >= 0 && (best_cost < 0 || cost < best_cost)) {
            best_cost = cost;
            *best = t;
        }
    }
    free(tried);
    if (cur == &g) {
        ring_destroy(&g);
    }
    return best_cost >= 0;
}

/* Greedy: each new token is the cut, among those of the widest ranges, that
 * leaves the replica shares nearest the fair ones. Cost: n x BALANCE_CANDIDATES
 * ring builds, fine for a join (once per node) on the rings kvd runs. */
size_t ring_tokens_balance(const struct ring *r, size_t n, size_t nrep, uint64_t *out) {
    if (n == 0 || n > RING_MAX_TOKENS) {
        return 0;
    }
    unsigned __int128 ring = (unsigned __int128)1 << 64;
    if (r->nvnodes == 0) { /* an empty ring: even spacing */
        for (size_t j = 0; j < n; j++) {
            out[j] = (uint64_t)(ring * j / n);
        }
        return n;
    }
    struct balance b = {r, nrep ? nrep : 1, NULL, NULL, n, (double)(r->nvnodes + n), NULL};
    b.ms = cl_calloc(r->nmembers + 1, sizeof *b.ms);
    memcpy(b.ms, r->members, r->nmembers * sizeof *b.ms);
    struct ring_member *j = &b.ms[r->nmembers];
    j->id[0] = '\x01'; /* no real id: those are printable */
    j->weight = 1;
    for (j->tag = 1; ring_find_tag(r, j->tag) >= 0; j->tag++) {
    }
    b.jt = cl_malloc((n + 1) * sizeof *b.jt);
    b.sh = cl_malloc((r->nmembers + 1) * sizeof *b.sh);
    unsigned __int128 fair = ring / (r->nvnodes + n);
    size_t k = 0;
    uint64_t t;
    while (k < n && balance_step(&b, k, fair, &t)) {
        size_t at = k;
        while (at > 0 && b.jt[at - 1] > t) {
            at--;
        }
        memmove(b.jt + at + 1, b.jt + at, (k - at) * sizeof *b.jt);
        b.jt[at] = t;
        k++;
    }
    memcpy(out, b.jt, k * sizeof *out);
    free(b.jt);
    free(b.sh);
    free(b.ms);
    return k;
}

size_t ring_replica_tags(const struct ring *r, uint64_t token, size_t n, uint32_t *tags) {
    uint32_t idx[RING_MAX_REPLICAS];
    size_t k = ring_replicas(r, token, n, idx);
    for (size_t i = 0; i < k; i++) {
        tags[i] = r->members[idx[i]].tag;
    }
    return k;
}

int ring_tags_have(const uint32_t *tags, size_t n, uint32_t tag) {
    for (size_t i = 0; i < n; i++) {
        if (tags[i] == tag) {
            return 1;
        }
    }
    return 0;
}

int ring_replicates(const struct ring *r, uint64_t token, size_t n, uint32_t tag) {
    uint32_t tags[RING_MAX_REPLICAS];
    return ring_tags_have(tags, ring_replica_tags(r, token, n, tags), tag);
}

size_t ring_write_set(const struct ring *cur, const struct ring *fut, uint64_t token,
                      size_t n, uint32_t *tags, size_t *npending) {
    size_t k = ring_replica_tags(cur, token, n, tags);
    size_t base = k;
    uint32_t f[RING_MAX_REPLICAS];
    size_t nf = fut ? ring_replica_tags(fut, token, n, f) : 0;
    for (size_t i = 0; i < nf && k < RING_MAX_REPLICAS; i++) {
        if (!ring_tags_have(tags, base, f[i])) {
            tags[k++] = f[i];
        }
    }
    *npending = k - base;
    return k;
}
