/* cluster/scan.c: the range step, the SCAN/FLUSH verbs and the merge of pages.
 * See scan.h for the format and the contracts. */
#include "cluster/scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cluster/mem.h"

/* t < end, end 0 meaning 2^64 */
static int below(uint64_t t, uint64_t end) {
    return end == 0 || t < end;
}

/* a <= b with 0 meaning 2^64 (for ends) */
static int end_le(uint64_t a, uint64_t b) {
    if (b == 0) {
        return 1;
    }
    return a != 0 && a <= b;
}

void scan_page_free(struct scan_page *p) {
    for (size_t i = 0; i < p->n; i++) {
        free((void *)p->keys[i].key);
    }
    free(p->keys);
    memset(p, 0, sizeof *p);
}

void scan_page_add(struct scan_page *p, const struct cluster_key *k) {
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->keys = cl_realloc(p->keys, p->cap * sizeof *p->keys);
    }
    struct cluster_key *d = &p->keys[p->n++];
    *d = *k;
    char *key = cl_malloc(k->klen + 1);
    if (k->klen) {
        memcpy(key, k->key, k->klen);
    }
    key[k->klen] = '\0';
    d->key = key;
}

uint64_t scan_range_end(const struct ring *r, uint64_t cursor) {
    if (r->nvnodes == 0) {
        return 0;
    }
    size_t lo = 0, hi = r->nvnodes; /* first vnode with token >= cursor */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->vnodes[mid].token < cursor) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == r->nvnodes) {
        return 0; /* past the last vnode: to the ring's end (the first vnode's range) */
    }
    return r->vnodes[lo].token + 1; /* UINT64_MAX + 1 wraps to 0: the ring's end */
}

static int key_cmp(const struct cluster_key *a, const struct cluster_key *b) {
    if (a->token != b->token) {
        return a->token < b->token ? -1 : 1;
    }
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int c = n ? memcmp(a->key, b->key, n) : 0;
    if (c != 0) {
        return c;
    }
    return a->klen < b->klen ? -1 : a->klen > b->klen ? 1 : 0;
}

static int key_qcmp(const void *a, const void *b) {
    const struct cluster_key *const *x = a, *const *y = b;
    int c = key_cmp(*x, *y);
    if (c != 0) {
        return c;
    }
    /* the same key: newest first */
    return -kv_record_cmp((*x)->v, (*x)->deleted, (*y)->v, (*y)->deleted);
}

void scan_merge(const struct scan_page *pages, size_t n, struct scan_page *out) {
    memset(out, 0, sizeof *out);
    uint64_t next = 0;
    int first = 1;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (first || (pages[i].next != 0 && (next == 0 || pages[i].next < next))) {
            next = pages[i].next;
            first = 0;
        }
        total += pages[i].n;
    }
    out->next = next;
    if (total == 0) {
        return;
    }
    const struct cluster_key **all = cl_malloc(total * sizeof *all);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < pages[i].n; j++) {
            if (below(pages[i].keys[j].token, next)) {
                all[m++] = &pages[i].keys[j];
            }
        }
    }
    qsort(all, m, sizeof *all, key_qcmp);
    for (size_t i = 0; i < m; i++) {
        if (i > 0 && key_cmp(all[i], all[i - 1]) == 0) {
            continue; /* an older (or equal) copy of the key kept just before */
        }
        scan_page_add(out, all[i]);
    }
    free(all);
}

int scan_parse_u64(const char *p, size_t len, uint64_t *out) {
    if (len == 0 || len > 20 || (len > 1 && p[0] == '0')) {
        return -1;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int fail(char *err, size_t errlen, int code, const char *what) {
    if (err && errlen) {
        snprintf(err, errlen, "%s", what);
    }
    return code;
}

int scan_reply_decode(const redisReply *r, uint64_t from, uint64_t to, struct scan_page *out,
                      char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (r == NULL) {
        return fail(err, errlen, MSG_INVALID, "no reply");
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (err && errlen) {
            snprintf(err, errlen, "%.*s", r->len > 200 ? 200 : (int)r->len, r->str ? r->str : "");
        }
        return MSG_REMOTE;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0] == NULL ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        return fail(err, errlen, MSG_INVALID, "SCAN reply: not an array starting with next");
    }
    uint64_t next;
    if (scan_parse_u64(r->element[0]->str, r->element[0]->len, &next) != 0) {
        return fail(err, errlen, MSG_INVALID, "SCAN reply: bad next token");
    }
    /* from < next <= to, 0 meaning 2^64 for next and to */
    if (!end_le(next, to) || (next != 0 && next <= from)) {
        return fail(err, errlen, MSG_INVALID, "SCAN reply: next token out of the range");
    }
    out->next = next;
    uint64_t last = from;
    for (size_t i = 1; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e == NULL || e->type != REDIS_REPLY_STRING || e->len < SCAN_ITEM_HDR) {
            scan_page_free(out);
            return fail(err, errlen, MSG_INVALID, "SCAN reply: bad item");
        }
        const unsigned char *u = (const unsigned char *)e->str;
        struct cluster_key k = {0};
        k.token = msg_get_be(u, 8);
        struct msg_record rec;
        if (msg_record_parse(e->str + 8, MSG_REC_HDR, &rec) != MSG_OK || k.token < last ||
            !below(k.token, next)) {
            scan_page_free(out);
            return fail(err, errlen, MSG_INVALID, "SCAN reply: bad item record or token");
        }
        last = k.token;
        k.v = rec.v;
        k.deleted = rec.deleted;
        k.expire_at = rec.expire_at;
        k.type = u[8 + MSG_REC_HDR];
        k.key = e->str + SCAN_ITEM_HDR;
        k.klen = e->len - SCAN_ITEM_HDR;
        scan_page_add(out, &k);
    }
    return MSG_OK;
}

static void argv_alloc(struct msg_argv *a, int argc, size_t buflen) {
    a->argc = argc;
    a->argv = cl_calloc((size_t)argc, sizeof *a->argv);
    a->argvlen = cl_calloc((size_t)argc, sizeof *a->argvlen);
    a->buf = cl_malloc(buflen);
}

void scan_encode_request(struct msg_argv *out, unsigned db, uint64_t from, uint64_t to,
                         size_t count) {
    argv_alloc(out, 6, 4 * 24);
    out->argv[0] = MSG_COMMAND, out->argvlen[0] = sizeof MSG_COMMAND - 1;
    out->argv[1] = "SCAN", out->argvlen[1] = 4;
    uint64_t nums[4] = {db, from, to, count};
    for (int i = 0; i < 4; i++) {
        char *b = out->buf + i * 24;
        out->argv[2 + i] = b;
        out->argvlen[2 + i] = (size_t)snprintf(b, 24, "%llu", (unsigned long long)nums[i]);
    }
}

void scan_encode_flush(struct msg_argv *out, int db, uint64_t hlc) {
    argv_alloc(out, 4, 2 * 24);
    out->argv[0] = MSG_COMMAND, out->argvlen[0] = sizeof MSG_COMMAND - 1;
    out->argv[1] = "FLUSH", out->argvlen[1] = 5;
    if (db < 0) {
        memcpy(out->buf, "ALL", 3);
        out->argvlen[2] = 3;
    } else {
        out->argvlen[2] = (size_t)snprintf(out->buf, 24, "%d", db);
    }
    out->argv[2] = out->buf;
    out->argv[3] = out->buf + 24;
    out->argvlen[3] = (size_t)snprintf(out->buf + 24, 24, "%llu", (unsigned long long)hlc);
}

/* ---- the replica side ---- */


struct collect {
    struct scan_page *page;
    size_t count, bytes;
    uint64_t from, to;
    uint64_t last;      /* token of the last record given */
};

static int collect_one(void *arg, const struct cluster_key *k) {
    struct collect *c = arg;
    if (k->token < c->from || !below(k->token, c->to)) {
        return 0; /* not asked for (a store must not give it; ignored) */
    }
    if (c->page->n > 0 && k->token != c->last &&
        (c->page->n >= c->count || c->bytes >= SCAN_MAX_BYTES)) {
        c->page->next = k->token;
        return 1;
    }
    struct cluster_key x = *k;
    if (x.deleted) {
        x.type = 0;
        x.expire_at = 0;
    }
    scan_page_add(c->page, &x);
    c->bytes += SCAN_ITEM_HDR + 16 + k->klen;
    c->last = k->token;
    return 0;
}

int scan_local(const struct cluster_store *st, unsigned db, uint64_t from, uint64_t to,
               size_t count, struct scan_page *out) {
    memset(out, 0, sizeof *out);
    out->next = to;
    if (st->range == NULL || count < 1 || (to != 0 && to <= from)) {
        return -1;
    }
    struct collect c = {out, count, 0, from, to, 0};
    if (st->range(st->ctx, db, from, to, collect_one, &c) != 0) {
        scan_page_free(out);
        return -1;
    }
    return 0;
}

static void answer_scan(const struct cluster_store *st, const struct kv_slice *argv, size_t argc,
                        struct msg_buf *out) {
    uint64_t db, from, to, count;
    if (argc != 6) {
        msg_reply_error(out, MSG_COMMAND " SCAN: wrong number of arguments");
        return;
    }
    if (scan_parse_u64(argv[2].p, argv[2].len, &db) != 0 || db > MSG_MAX_DB) {
        msg_reply_error(out, MSG_COMMAND " SCAN: bad db");
        return;
    }
    if (scan_parse_u64(argv[3].p, argv[3].len, &from) != 0 ||
        scan_parse_u64(argv[4].p, argv[4].len, &to) != 0 || (to != 0 && to <= from)) {
        msg_reply_error(out, MSG_COMMAND " SCAN: bad token range");
        return;
    }
    if (scan_parse_u64(argv[5].p, argv[5].len, &count) != 0 || count < 1 ||
        count > SCAN_MAX_COUNT) {
        msg_reply_error(out, MSG_COMMAND " SCAN: count must be 1..10000");
        return;
    }
    if (st->range == NULL) {
        msg_reply_error(out, MSG_COMMAND " SCAN: not supported by this store");
        return;
    }
    struct scan_page pg;
    if (scan_local(st, (unsigned)db, from, to, (size_t)count, &pg) != 0) {
        msg_reply_error(out, MSG_COMMAND " SCAN: the store failed to read the range");
        return;
    }
    char nb[32];
    int nl = snprintf(nb, sizeof nb, "%llu", (unsigned long long)pg.next);
    char h[32];
    int k = snprintf(h, sizeof h, "*%zu\r\n", pg.n + 1);
    msg_buf_put(out, h, (size_t)k);
    msg_buf_bulk_header(out, (size_t)nl);
    msg_buf_put(out, nb, (size_t)nl);
    msg_buf_put(out, "\r\n", 2);
    for (size_t i = 0; i < pg.n; i++) {
        const struct cluster_key *x = &pg.keys[i];
        unsigned char hdr[SCAN_ITEM_HDR];
        msg_put_be(hdr, x->token, 8);
        struct msg_record rec = {x->v, x->deleted, x->expire_at, NULL, 0};
        msg_record_header(&rec, hdr + 8);
        hdr[8 + MSG_REC_HDR] = (unsigned char)x->type;
        msg_buf_bulk_header(out, SCAN_ITEM_HDR + x->klen);
        msg_buf_put(out, hdr, sizeof hdr);
        msg_buf_put(out, x->key, x->klen);
        msg_buf_put(out, "\r\n", 2);
    }
    scan_page_free(&pg);
}

static void answer_flush(const struct cluster_store *st, const struct kv_slice *argv,
                         size_t argc, struct msg_buf *out) {
    uint64_t db = 0, hlc;
    int all = 0;
    if (argc != 4) {
        msg_reply_error(out, MSG_COMMAND " FLUSH: wrong number of arguments");
        return;
    }
    if (msg_word_is(argv[2], "ALL")) {
        all = 1;
    } else if (scan_parse_u64(argv[2].p, argv[2].len, &db) != 0 || db > MSG_MAX_DB) {
        msg_reply_error(out, MSG_COMMAND " FLUSH: bad db");
        return;
    }
    if (scan_parse_u64(argv[3].p, argv[3].len, &hlc) != 0 || hlc == 0) {
        msg_reply_error(out, MSG_COMMAND " FLUSH: bad version");
        return;
    }
    if (st->flush == NULL) {
        msg_reply_error(out, MSG_COMMAND " FLUSH: not supported by this store");
        return;
    }
    if (st->observe) {
        st->observe(st->ctx, hlc);
    }
    if (st->flush(st->ctx, all ? -1 : (int)db, hlc) != 0) {
        msg_reply_error(out, MSG_COMMAND " FLUSH: the store failed to flush");
        return;
    }
    msg_buf_put(out, ":1\r\n", 4);
}

void scan_peer_answer(const struct cluster_store *st, const struct kv_slice *argv, size_t argc,
                      struct msg_buf *out) {
    if (argc >= 2 && msg_word_is(argv[1], "SCAN")) {
        answer_scan(st, argv, argc, out);
    } else if (argc >= 2 && msg_word_is(argv[1], "FLUSH")) {
        answer_flush(st, argv, argc, out);
    } else {
        msg_reply_error(out, MSG_COMMAND ": unknown verb");
    }
}
