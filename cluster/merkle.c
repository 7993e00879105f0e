/* cluster/merkle.c: Merkle trees over a token range and the KVD.PEER MERKLE
 * verb. See merkle.h for the layout ("HOW IT WORKS") and the wire format. */
#include "cluster/merkle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cluster/mem.h"
#include "cluster/scan.h"

/* the span of [from, to) minus one, to 0 meaning 2^64: (to - from - 1) mod 2^64 */
static uint64_t span_m1(uint64_t from, uint64_t to) {
    return to - from - 1;
}

static unsigned bits_of(uint64_t x) {
    return x ? 64u - (unsigned)__builtin_clzll(x) : 0u;
}

int merkle_init(struct merkle *m, uint64_t from, uint64_t to, unsigned depth) {
    memset(m, 0, sizeof *m);
    if (depth > MERKLE_MAX_DEPTH || (to != 0 && to <= from)) {
        return -1;
    }
    unsigned b = bits_of(span_m1(from, to));
    m->from = from;
    m->to = to;
    m->depth = depth;
    m->shift = b > depth ? b - depth : 0;
    size_t n = (size_t)1 << depth;
    m->sum = cl_calloc(n, sizeof *m->sum);
    m->count = cl_calloc(n, sizeof *m->count);
    return 0;
}

void merkle_free(struct merkle *m) {
    free(m->sum);
    free(m->count);
    memset(m, 0, sizeof *m);
}

static int in_range(const struct merkle *m, uint64_t t) {
    return t >= m->from && (m->to == 0 || t < m->to);
}

size_t merkle_leaf_of(const struct merkle *m, uint64_t t) {
    return m->shift >= 64 ? 0 : (size_t)((t - m->from) >> m->shift);
}

int merkle_leaf_range(const struct merkle *m, size_t i, uint64_t *lo, uint64_t *hi) {
    uint64_t last = span_m1(m->from, m->to);
    if (i >= ((size_t)1 << m->depth)) {
        return -1;
    }
    if (m->shift >= 64) { /* depth 0 over the whole ring */
        *lo = m->from;
        *hi = m->to;
        return 0;
    }
    uint64_t lo_off = (uint64_t)i << m->shift;
    if (lo_off > last) {
        return -1;
    }
    uint64_t width = (uint64_t)1 << m->shift; /* shift <= 63 here */
    *lo = m->from + lo_off;
    /* the leaf's last offset is lo_off + width - 1: past the range's, the range ends it */
    *hi = (last - lo_off < width) ? m->to : m->from + lo_off + width;
    return 0;
}

uint64_t merkle_record_hash(const struct cluster_key *k) {
    /* db:u32 hlc:u64 node:u32 deleted:u8 expire_at:u64 digest:u64 (expire_at 0
     * for a tombstone: what a tombstone's expiry was is no part of it; digest 0
     * unless the version does not identify the content: a big hash) */
    unsigned char h[33];
    msg_put_be(h, k->db, 4);
    msg_put_be(h + 4, k->v.hlc, 8);
    msg_put_be(h + 12, k->v.node, 4);
    h[16] = k->deleted ? 1 : 0;
    msg_put_be(h + 17, k->deleted ? 0 : k->expire_at, 8);
    msg_put_be(h + 25, k->deleted ? 0 : k->digest, 8);
    return XXH3_64bits_withSeed(k->key, k->klen, XXH3_64bits(h, sizeof h));
}

void merkle_add(struct merkle *m, const struct cluster_key *k) {
    if (!in_range(m, k->token)) {
        return;
    }
    size_t i = merkle_leaf_of(m, k->token);
    m->sum[i] += merkle_record_hash(k);
    m->count[i]++;
    m->nkeys++;
}

static int build_one(void *arg, const struct cluster_key *k) {
    merkle_add(arg, k);
    return 0;
}

int merkle_build(const struct cluster_store *st, uint64_t from, uint64_t to, unsigned depth,
                 struct merkle *m) {
    if (st->range == NULL || merkle_init(m, from, to, depth) != 0) {
        memset(m, 0, sizeof *m);
        return -1;
    }
    if (st->range(st->ctx, CLUSTER_DB_ALL, from, to, build_one, m) != 0) {
        merkle_free(m);
        return -1;
    }
    return 0;
}

void merkle_fold(const struct merkle *m, unsigned depth, struct merkle *out) {
    if (depth > m->depth) {
        depth = m->depth;
    }
    merkle_init(out, m->from, m->to, depth); /* valid: m's range is */
    unsigned by = m->depth - depth;
    size_t n = (size_t)1 << m->depth;
    for (size_t i = 0; i < n; i++) {
        out->sum[i >> by] += m->sum[i];
        out->count[i >> by] += m->count[i];
    }
    out->nkeys = m->nkeys;
}

uint64_t merkle_leaf_hash(const struct merkle *m, size_t i) {
    if (m->count[i] == 0) {
        return 0;
    }
    unsigned char b[12];
    msg_put_be(b, m->sum[i], 8);
    msg_put_be(b + 8, m->count[i], 4);
    uint64_t h = XXH3_64bits(b, sizeof b);
    return h ? h : 1; /* 0 is kept for an empty leaf */
}

uint64_t merkle_root(const struct merkle *m) {
    uint64_t sum = 0, count = 0;
    size_t n = (size_t)1 << m->depth;
    for (size_t i = 0; i < n; i++) {
        sum += m->sum[i];
        count += m->count[i];
    }
    struct merkle r = {.sum = &sum, .count = (uint32_t[]){(uint32_t)count}};
    return merkle_leaf_hash(&r, 0);
}

unsigned merkle_depth_for(uint64_t nkeys) {
    unsigned d = 0;
    while (d < MERKLE_MAX_DEPTH && (nkeys >> d) > MERKLE_LEAF_KEYS) {
        d++;
    }
    return d;
}

size_t merkle_diff(const struct merkle *m, const uint64_t *peer, size_t *out) {
    size_t n = (size_t)1 << m->depth, k = 0;
    for (size_t i = 0; i < n; i++) {
        if (merkle_leaf_hash(m, i) != peer[i]) {
            out[k++] = i;
        }
    }
    return k;
}

/* ---- the verb ---- */

void merkle_encode_request(struct msg_argv *out, uint64_t from, uint64_t to, unsigned depth) {
    out->argc = 5;
    out->argv = cl_calloc(5, sizeof *out->argv);
    out->argvlen = cl_calloc(5, sizeof *out->argvlen);
    out->buf = cl_malloc(3 * 24);
    out->argv[0] = MSG_COMMAND, out->argvlen[0] = sizeof MSG_COMMAND - 1;
    out->argv[1] = "MERKLE", out->argvlen[1] = 6;
    uint64_t nums[3] = {from, to, depth};
    for (int i = 0; i < 3; i++) {
        char *b = out->buf + i * 24;
        out->argv[2 + i] = b;
        out->argvlen[2 + i] = (size_t)snprintf(b, 24, "%llu", (unsigned long long)nums[i]);
    }
}

void merkle_peer_answer(const struct cluster_store *st, const struct kv_slice *argv,
                        size_t argc, struct msg_buf *out) {
    uint64_t from, to, depth;
    if (argc != 5) {
        msg_reply_error(out, MSG_COMMAND " MERKLE: wrong number of arguments");
        return;
    }
    if (scan_parse_u64(argv[2].p, argv[2].len, &from) != 0 ||
        scan_parse_u64(argv[3].p, argv[3].len, &to) != 0 || (to != 0 && to <= from)) {
        msg_reply_error(out, MSG_COMMAND " MERKLE: bad token range");
        return;
    }
    if (scan_parse_u64(argv[4].p, argv[4].len, &depth) != 0 || depth > MERKLE_MAX_DEPTH) {
        msg_reply_error(out, MSG_COMMAND " MERKLE: depth must be 0..16");
        return;
    }
    struct merkle m;
    if (merkle_build(st, from, to, (unsigned)depth, &m) != 0) {
        msg_reply_error(out, MSG_COMMAND " MERKLE: the store failed to read the range");
        return;
    }
    size_t n = (size_t)1 << m.depth, len = 8 + 8 * n;
    msg_buf_bulk_header(out, len);
    unsigned char b[8];
    msg_put_be(b, m.nkeys, 8);
    msg_buf_put(out, b, 8);
    for (size_t i = 0; i < n; i++) {
        msg_put_be(b, merkle_leaf_hash(&m, i), 8);
        msg_buf_put(out, b, 8);
    }
    msg_buf_put(out, "\r\n", 2);
    merkle_free(&m);
}

int merkle_reply_decode(const redisReply *r, unsigned depth, uint64_t *leaves, uint64_t *nkeys,
                        char *err, size_t errlen) {
    if (r == NULL) {
        snprintf(err, errlen, "no reply");
        return MSG_INVALID;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%.*s", r->len > 200 ? 200 : (int)r->len, r->str ? r->str : "");
        return MSG_REMOTE;
    }
    size_t n = (size_t)1 << (depth > MERKLE_MAX_DEPTH ? 0 : depth);
    if (depth > MERKLE_MAX_DEPTH || r->type != REDIS_REPLY_STRING || r->len != 8 + 8 * n) {
        snprintf(err, errlen, "MERKLE reply: not a bulk of %zu leaves", n);
        return MSG_INVALID;
    }
    const unsigned char *u = (const unsigned char *)r->str;
    *nkeys = msg_get_be(u, 8);
    for (size_t i = 0; i < n; i++) {
        leaves[i] = msg_get_be(u + 8 + 8 * i, 8);
    }
    return MSG_OK;
}
