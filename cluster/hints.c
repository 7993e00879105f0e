/* cluster/hints.c: hinted handoff storage. See hints.h. */
#include "cluster/hints.h"

#include <string.h>

#include "cluster/mem.h"

struct hints_queue {
    uint32_t target;
    struct hint **q; /* q[head..head+len) oldest first */
    size_t head, len, cap;
    int busy;               /* a hint is in flight */
    uint64_t busy_seq;      /* which */
    uint64_t busy_deadline; /* offered again from then */
};

struct hints *hints_create(uint64_t window_ms, size_t max_bytes) {
    struct hints *h = cl_calloc(1, sizeof *h);
    h->window_ms = window_ms;
    h->max_bytes = max_bytes;
    h->next_seq = 1;
    return h;
}

static void hint_free(struct hint *x) {
    free(x->key);
    free((char *)x->rec.val);
    free(x);
}

void hints_destroy(struct hints **hp) {
    struct hints *h = *hp;
    if (h == NULL) {
        return;
    }
    for (size_t i = 0; i < h->nq; i++) {
        struct hints_queue *q = &h->qs[i];
        for (size_t j = 0; j < q->len; j++) {
            hint_free(q->q[q->head + j]);
        }
        free(q->q);
    }
    free(h->qs);
    free(h);
    *hp = NULL;
}

static struct hints_queue *queue_of(const struct hints *h, uint32_t target) {
    for (size_t i = 0; i < h->nq; i++) {
        if (h->qs[i].target == target) {
            return &h->qs[i];
        }
    }
    return NULL;
}

static struct hints_queue *queue_get(struct hints *h, uint32_t target) {
    struct hints_queue *q = queue_of(h, target);
    if (q == NULL) {
        h->qs = cl_realloc(h->qs, (h->nq + 1) * sizeof *h->qs);
        q = &h->qs[h->nq++];
        memset(q, 0, sizeof *q);
        q->target = target;
    }
    return q;
}

static void queue_push(struct hints_queue *q, struct hint *x) {
    if (q->head + q->len == q->cap) {
        if (q->head > 0) { /* slide down before growing */
            memmove(q->q, q->q + q->head, q->len * sizeof *q->q);
            q->head = 0;
        }
        if (q->len == q->cap) {
            q->cap = q->cap ? q->cap * 2 : 8;
            q->q = cl_realloc(q->q, q->cap * sizeof *q->q);
        }
    }
    q->q[q->head + q->len++] = x;
}

/* removes the j-th pending hint of q and frees it */
static void queue_remove(struct hints *h, struct hints_queue *q, size_t j) {
    struct hint *x = q->q[q->head + j];
    h->count--;
    h->bytes -= x->bytes;
    if (h->obs.removed) {
        h->obs.removed(h->obs.ctx, x, q->len - 1);
    }
    hint_free(x);
    if (j == 0) {
        q->head++;
    } else {
        memmove(q->q + q->head + j, q->q + q->head + j + 1, (q->len - j - 1) * sizeof *q->q);
    }
    q->len--;
    if (q->len == 0) {
        q->head = 0;
    }
}

void hints_expire(struct hints *h, uint64_t now) {
    if (now < h->window_ms) {
        return;
    }
    uint64_t limit = now - h->window_ms;
    for (size_t i = 0; i < h->nq; i++) {
        struct hints_queue *q = &h->qs[i];
        while (q->len && q->q[q->head]->created_ms <= limit) {
            queue_remove(h, q, 0);
            h->stats.dropped_window++;
        }
    }
}

static int add_at(struct hints *h, uint32_t target, uint64_t created, uint64_t now,
                  unsigned db, const char *key, size_t klen, const struct msg_record *rec) {
    hints_expire(h, now);
    size_t bytes = HINT_OVERHEAD + klen + rec->vlen;
    if (bytes > h->max_bytes) {
        h->stats.dropped_big++;
        return HINTS_DROPPED;
    }
    if (now >= h->window_ms && created <= now - h->window_ms) {
        h->stats.dropped_window++; /* already out of the window (decode) */
        return HINTS_DROPPED;
    }
    if (h->max_bytes - h->bytes < bytes) {
        h->stats.dropped_bytes++; /* full: the new hint is refused, the older stay */
        return HINTS_DROPPED;
    }
    struct hint *x = cl_calloc(1, sizeof *x);
    x->seq = h->next_seq++;
    x->target = target;
    x->created_ms = created;
    x->db = db;
    x->key = cl_memdup(key, klen);
    x->klen = klen;
    x->rec = *rec;
    x->rec.val = rec->vlen ? cl_memdup(rec->val, rec->vlen) : NULL;
    x->bytes = bytes;
    queue_push(queue_get(h, target), x);
    h->count++;
    h->bytes += bytes;
    h->stats.added++;
    if (h->obs.added) {
        h->obs.added(h->obs.ctx, x);
    }
    return HINTS_OK;
}

int hints_add(struct hints *h, uint32_t target, uint64_t now, unsigned db, const char *key,
              size_t klen, const struct msg_record *rec) {
    return add_at(h, target, now, now, db, key, klen, rec);
}

int hints_add_created(struct hints *h, uint32_t target, uint64_t created, uint64_t now,
                      unsigned db, const char *key, size_t klen, const struct msg_record *rec) {
    return add_at(h, target, created > now ? now : created, now, db, key, klen, rec);
}

void hints_observe(struct hints *h, const struct hints_observer *obs) {
    if (obs) {
        h->obs = *obs;
    } else {
        memset(&h->obs, 0, sizeof h->obs);
    }
}

size_t hints_pending(const struct hints *h, uint32_t target) {
    const struct hints_queue *q = queue_of(h, target);
    return q ? q->len : 0;
}

const struct hint *hints_peek(const struct hints *h, uint32_t target, size_t i) {
    const struct hints_queue *q = queue_of(h, target);
    return q && i < q->len ? q->q[q->head + i] : NULL;
}

int hints_ack(struct hints *h, uint32_t target, uint64_t seq) {
    struct hints_queue *q = queue_of(h, target);
    for (size_t j = 0; q && j < q->len; j++) {
        if (q->q[q->head + j]->seq == seq) {
            queue_remove(h, q, j);
            h->stats.delivered++;
            return HINTS_OK;
        }
    }
    return HINTS_INVALID;
}

size_t hints_due(struct hints *h, uint64_t now, uint64_t timeout_ms, struct hint_send *out,
                 size_t max) {
    size_t n = 0;
    for (size_t i = 0; i < h->nq && n < max; i++) {
        struct hints_queue *q = &h->qs[i];
        if (q->busy && (q->len == 0 || q->q[q->head]->seq != q->busy_seq ||
                        now >= q->busy_deadline)) {
            q->busy = 0; /* dropped meanwhile, or timed out: offer again */
        }
        if (q->busy || q->len == 0) {
            continue;
        }
        q->busy = 1;
        q->busy_seq = q->q[q->head]->seq;
        q->busy_deadline = now + timeout_ms;
        out[n++] = (struct hint_send){q->target, q->q[q->head]};
    }
    return n;
}

int hints_delivered(struct hints *h, uint32_t target, uint64_t seq, int ok) {
    struct hints_queue *q = queue_of(h, target);
    if (q == NULL) {
        return HINTS_INVALID;
    }
    int was_flight = q->busy && q->busy_seq == seq;
    if (was_flight) {
        q->busy = 0;
    }
    if (ok) {
        return hints_ack(h, target, seq);
    }
    return was_flight ? HINTS_OK : HINTS_INVALID;
}

void hints_flight_reset(struct hints *h) {
    for (size_t i = 0; i < h->nq; i++) {
        h->qs[i].busy = 0;
    }
}

size_t hints_targets(const struct hints *h, uint32_t *out, size_t max) {
    size_t n = 0;
    for (size_t i = 0; i < h->nq; i++) {
        if (h->qs[i].len) {
            if (n < max) {
                out[n] = h->qs[i].target;
            }
            n++;
        }
    }
    return n;
}

/* ---- bytes ---- */

static void put_be(struct msg_buf *b, uint64_t v, int bytes) {
    unsigned char tmp[8];
    for (int i = 0; i < bytes; i++) {
        tmp[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    }
    if (b->cap - b->len < (size_t)bytes) {
        b->cap = (b->cap + (size_t)bytes) * 2;
        b->p = cl_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, tmp, (size_t)bytes);
    b->len += (size_t)bytes;
}


static int cmp_seq(const void *a, const void *b) {
    const struct hint *x = *(const struct hint *const *)a, *y = *(const struct hint *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void hints_encode(const struct hints *h, struct msg_buf *b) {
    struct hint **all = cl_malloc(h->count * sizeof *all);
    size_t n = 0;
    for (size_t i = 0; i < h->nq; i++) {
        for (size_t j = 0; j < h->qs[i].len; j++) {
            all[n++] = h->qs[i].q[h->qs[i].head + j];
        }
    }
    qsort(all, n, sizeof *all, cmp_seq);
    msg_buf_put(b, "KVH1", 4);
    put_be(b, n, 4);
    for (size_t i = 0; i < n; i++) {
        const struct hint *x = all[i];
        unsigned char hdr[MSG_REC_HDR];
        msg_record_header(&x->rec, hdr);
        put_be(b, x->target, 4);
        put_be(b, x->created_ms, 8);
        put_be(b, x->db, 2);
        put_be(b, x->klen, 4);
        msg_buf_put(b, x->key, x->klen);
        put_be(b, MSG_REC_HDR + x->rec.vlen, 4);
        msg_buf_put(b, hdr, sizeof hdr);
        msg_buf_put(b, x->rec.val, x->rec.vlen);
    }
    free(all);
}

struct reader {
    const unsigned char *p;
    size_t left;
};

static int get_be(struct reader *r, int bytes, uint64_t *v) {
    if (r->left < (size_t)bytes) {
        return -1;
    }
    *v = 0;
    for (int i = 0; i < bytes; i++) {
        *v = *v << 8 | r->p[i];
    }
    r->p += bytes;
    r->left -= (size_t)bytes;
    return 0;
}

/* one hint: fields borrowed from the buffer */
struct raw_hint {
    uint64_t target, created, db, klen, rlen;
    const char *key;
    struct msg_record rec;
};

static int read_hint(struct reader *r, struct raw_hint *x) {
    if (get_be(r, 4, &x->target) || get_be(r, 8, &x->created) || get_be(r, 2, &x->db) ||
        get_be(r, 4, &x->klen) || x->klen > r->left) {
        return -1;
    }
    x->key = (const char *)r->p;
    r->p += x->klen, r->left -= x->klen;
    if (get_be(r, 4, &x->rlen) || x->rlen > r->left ||
        msg_record_parse((const char *)r->p, x->rlen, &x->rec) != MSG_OK) {
        return -1;
    }
    r->p += x->rlen, r->left -= x->rlen;
    return 0;
}

int hints_decode(struct hints *h, const void *buf, size_t len, uint64_t now) {
    struct reader r = {buf, len};
    uint64_t count;
    if (len < 8 || memcmp(buf, "KVH1", 4) != 0) {
        return HINTS_INVALID;
    }
    r.p += 4, r.left -= 4;
    get_be(&r, 4, &count);
    /* pass 1: check everything (each hint is at least 22 + 21 bytes: the count
     * cannot run past the buffer) */
    struct reader check = r;
    for (uint64_t i = 0; i < count; i++) {
        struct raw_hint x;
        if (read_hint(&check, &x) != 0) {
            return HINTS_INVALID;
        }
    }
    if (check.left != 0) {
        return HINTS_INVALID;
    }
    for (uint64_t i = 0; i < count; i++) { /* pass 2: add */
        struct raw_hint x;
        read_hint(&r, &x);
        add_at(h, (uint32_t)x.target, x.created, now, (unsigned)x.db, x.key, x.klen, &x.rec);
    }
    return HINTS_OK;
}
