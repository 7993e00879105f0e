/* cluster/keyless.c: the runtime of the keyless operations (cluster.h: cluster_scan,
 * cluster_flush). A SCAN step asks the live replicas of the ring range holding
 * the cursor (scan.h) for their records in [cursor, range end), merges the first r
 * pages (scan_merge) and hands the result to its callback from a zero-timeout
 * event (the CALLBACK RULE of cluster.h). A FLUSH goes to every member, is decided
 * when each answered (or timed out), OK when every ring range has w replicas that
 * flushed, and is resent from the 100 ms tick
 * to each member that did not acknowledge, until it does (in memory: a restart of
 * the coordinator forgets them).
 *
 * An op lives until its callback ran (or it was cancelled) and every link request
 * it sent has called back; a late answer after the decision is dropped.
 *
 * Threading: loop thread only.
 */
#include "cluster/keyless.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/mem.h"
#include "cluster/scan.h"

#define KL_PENDING_MAX 1024 /* flushes kept for members that missed them */

struct kop {
    struct keyless *k;
    struct kop *next;
    uint64_t id;
    int is_flush;
    cluster_scan_done *scb;
    cluster_flush_done *fcb;
    void *ctx;
    int cancelled, decided, delivered;
    int status;
    char err[160];
    int outstanding;               /* link requests whose callback has not run */
    /* scan */
    unsigned db;
    uint64_t from, to;
    size_t need;                   /* r */
    struct scan_page pages[RING_MAX_REPLICAS];
    size_t npages, failed;
    struct scan_page result;
    /* flush */
    int fdb;
    uint64_t hlc;
    size_t w;
    uint32_t *tags;
    unsigned char *acked;
    size_t ntags, answered;
};

struct kreq {
    struct keyless *k;
    struct kop *op;                /* NULL: a resent flush (pend_seq) */
    size_t slot;
    uint64_t pend_seq;
};

struct pend {
    uint64_t seq;
    uint32_t tag;
    int db;
    uint64_t hlc;
    int inflight;
};

struct keyless {
    struct cluster *cl;
    struct kop *ops;
    struct event *ev;
    struct pend *pend;
    size_t npend, cappend;
    uint64_t pend_seq;
};

struct keyless *keyless_new(struct cluster *cl);

static void on_deliver(evutil_socket_t fd, short what, void *arg);

struct keyless *keyless_new(struct cluster *cl) {
    struct keyless *k = cl_calloc(1, sizeof *k);
    k->cl = cl;
    k->ev = evtimer_new(cluster_base_of(cl), on_deliver, k);
    return k;
}

static void op_free(struct kop *op) {
    for (size_t i = 0; i < op->npages; i++) {
        scan_page_free(&op->pages[i]);
    }
    scan_page_free(&op->result);
    free(op->tags);
    free(op->acked);
    free(op);
}

void keyless_free(struct keyless *k) {
    if (k == NULL) {
        return;
    }
    struct kop *op = k->ops;
    while (op) {
        struct kop *next = op->next;
        op_free(op);
        op = next;
    }
    if (k->ev) {
        event_free(k->ev);
    }
    free(k->pend);
    free(k);
}

/* unlinks and frees op when nothing can reach it any more */
static void maybe_free(struct kop *op) {
    if (op->outstanding > 0 || !(op->delivered || op->cancelled)) {
        return;
    }
    struct kop **pp = &op->k->ops;
    while (*pp && *pp != op) {
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = op->next;
    }
    op_free(op);
}

static void kick(struct keyless *k) {
    if (!event_pending(k->ev, EV_TIMEOUT, NULL)) {
        struct timeval tv = {0, 0};
        evtimer_add(k->ev, &tv);
    }
}

static void decide(struct kop *op, int status, const char *err) {
    if (op->decided) {
        return;
    }
    op->decided = 1;
    op->status = status;
    snprintf(op->err, sizeof op->err, "%s", err ? err : "");
    kick(op->k);
}

static void on_deliver(evutil_socket_t fd, short what, void *arg) {
    struct keyless *k = arg;
    for (;;) {
        struct kop *op = k->ops;
        while (op && !(op->decided && !op->delivered)) {
            op = op->next;
        }
        if (op == NULL) {
            break;
        }
        op->delivered = 1;
        if (!op->cancelled) {
            int ok = op->status == CLUSTER_OK;
            if (op->is_flush) {
                op->fcb(op->ctx, op->status, ok ? NULL : op->err);
            } else {
                op->scb(op->ctx, op->status, ok ? op->result.next : 0,
                        ok ? op->result.keys : NULL, ok ? op->result.n : 0,
                        ok ? NULL : op->err);
            }
        }
        maybe_free(op);
    }
}

static struct kop *op_new(struct keyless *k) {
    struct kop *op = cl_calloc(1, sizeof *op);
    op->k = k;
    op->id = cluster_next_id(k->cl);
    op->next = k->ops;
    k->ops = op;
    return op;
}

int keyless_cancel(struct keyless *k, uint64_t id) {
    for (struct kop *op = k->ops; op; op = op->next) {
        if (op->id == id) {
            op->cancelled = 1;
            maybe_free(op);
            return 1;
        }
    }
    return 0;
}

/* ---- SCAN ---- */

static void scan_check(struct kop *op) {
    if (op->decided) {
        return;
    }
    if (op->npages >= op->need) {
        scan_merge(op->pages, op->npages, &op->result);
        decide(op, CLUSTER_OK, NULL);
    } else if (op->npages + (size_t)op->outstanding < op->need) {
        char e[96];
        snprintf(e, sizeof e, "got %zu of %zu scan answers", op->npages, op->need);
        decide(op, CLUSTER_FAILED, e);
    }
}

static void scan_reply(void *ctx, int status, const redisReply *reply) {
    struct kreq *rq = ctx;
    struct kop *op = rq->op;
    struct keyless *k = rq->k;
    free(rq);
    op->outstanding--;
    if (cluster_stopping(k->cl)) {
        return; /* keyless_free frees the op */
    }
    if (!op->decided && !op->cancelled) {
        char err[128];
        struct scan_page pg;
        if (status == LINK_OK &&
            scan_reply_decode(reply, op->from, op->to, &pg, err, sizeof err) == MSG_OK) {
            op->pages[op->npages++] = pg;
        } else {
            op->failed++;
        }
        scan_check(op);
    }
    maybe_free(op);
}

uint64_t cluster_scan(struct cluster *cl, unsigned db, uint64_t cursor, size_t count, int r,
                      cluster_scan_done *cb, void *ctx) {
    struct keyless *k = cluster_keyless_of(cl);
    struct kop *op = op_new(k);
    op->scb = cb;
    op->ctx = ctx;
    op->db = db;
    op->from = cursor;
    const char *why;
    if (!cluster_ready(cl, &why)) {
        decide(op, CLUSTER_FAILED, why);
        return op->id;
    }
    int n = cluster_replicas(cl);
    if (r < 1 || r > n || db > MSG_MAX_DB) {
        decide(op, CLUSTER_FAILED, "bad read quorum or db");
        return op->id;
    }
    count = count < 1 ? 1 : count > SCAN_MAX_COUNT ? SCAN_MAX_COUNT : count;
    const struct ring *ring = cluster_ring_of(cl);
    op->to = scan_range_end(ring, cursor);
    op->need = (size_t)r;
    uint32_t idx[RING_MAX_REPLICAS];
    size_t nrep = ring_replicas(ring, cursor, (size_t)n, idx);
    if (nrep < op->need) {
        op->need = nrep; /* fewer members than N: each holds what it replicates */
    }
    const struct cluster_store *st = cluster_store_of(cl);
    for (size_t i = 0; i < nrep; i++) {
        uint32_t tag = ring->members[idx[i]].tag;
        if (tag == cluster_self_tag(cl)) {
            struct scan_page pg;
            if (scan_local(st, db, op->from, op->to, count, &pg) == 0) {
                op->pages[op->npages++] = pg;
            } else {
                op->failed++;
            }
            continue;
        }
        if (!cluster_tag_up(cl, tag)) {
            op->failed++;
            continue;
        }
        struct msg_argv a;
        scan_encode_request(&a, db, op->from, op->to, count);
        struct kreq *rq = cl_calloc(1, sizeof *rq);
        rq->k = k;
        rq->op = op;
        if (cluster_send_tag(cl, tag, a.argc, a.argv, a.argvlen, scan_reply, rq) == LINK_OK) {
            op->outstanding++;
        } else {
            free(rq);
            op->failed++;
        }
        msg_argv_free(&a);
    }
    if (op->need == 0) {
        decide(op, CLUSTER_FAILED, "the ring is empty");
    }
    /* enough answers already (this node's own), or too few replicas reachable */
    scan_check(op);
    return op->id;
}

/* ---- FLUSH ---- */

static void pend_add(struct keyless *k, uint32_t tag, int db, uint64_t hlc) {
    for (size_t i = 0; i < k->npend; i++) {
        struct pend *p = &k->pend[i];
        if (p->tag == tag && p->db == db && !p->inflight) {
            if (hlc > p->hlc) {
                p->hlc = hlc;
            }
            return;
        }
    }
    if (k->npend == KL_PENDING_MAX) {
        memmove(k->pend, k->pend + 1, (k->npend - 1) * sizeof *k->pend); /* oldest out */
        k->npend--;
    }
    if (k->npend == k->cappend) {
        k->cappend = k->cappend ? k->cappend * 2 : 8;
        k->pend = cl_realloc(k->pend, k->cappend * sizeof *k->pend);
    }
    k->pend[k->npend++] = (struct pend){++k->pend_seq, tag, db, hlc, 0};
}

size_t keyless_pending_flushes(const struct keyless *k) {
    return k ? k->npend : 0;
}

/* the smallest number of acknowledged replicas over the ring's ranges, each capped
 * at w and at the range's replica count: w when every range has its w */
static size_t flush_acks(const struct kop *op) {
    struct cluster *cl = op->k->cl;
    const struct ring *ring = cluster_ring_of(cl);
    int n = cluster_replicas(cl);
    size_t least = op->w;
    for (size_t v = 0; v < ring->nvnodes; v++) {
        uint32_t idx[RING_MAX_REPLICAS];
        size_t nrep = ring_replicas(ring, ring->vnodes[v].token, (size_t)n, idx);
        size_t need = op->w < nrep ? op->w : nrep, got = 0;
        for (size_t i = 0; i < nrep; i++) {
            uint32_t tag = ring->members[idx[i]].tag;
            for (size_t j = 0; j < op->ntags; j++) {
                if (op->tags[j] == tag && op->acked[j]) {
                    got++;
                    break;
                }
            }
        }
        size_t have = got >= need ? op->w : got;
        if (have < least) {
            least = have;
        }
    }
    return least;
}

/* decided once every member answered (acknowledged, failed, timed out or known
 * down): waiting for the live ones too (a flush is rare) makes every member that
 * is up observe the flush's version before the client hears OK, so a write made
 * after the OK through any of them is stamped above it */
static void flush_check(struct kop *op) {
    if (op->decided || op->answered < op->ntags) {
        return;
    }
    size_t got = flush_acks(op);
    if (got >= op->w) {
        decide(op, CLUSTER_OK, NULL);
    } else {
        char e[96];
        snprintf(e, sizeof e, "got %zu of %zu flush acknowledgements", got, op->w);
        decide(op, CLUSTER_FAILED, e);
    }
}

static int flush_ok(int status, const redisReply *reply) {
    return status == LINK_OK && reply && reply->type == REDIS_REPLY_INTEGER &&
           reply->integer == 1;
}

static void flush_reply(void *ctx, int status, const redisReply *reply) {
    struct kreq *rq = ctx;
    struct keyless *k = rq->k;
    struct kop *op = rq->op;
    if (cluster_stopping(k->cl)) {
        if (op) {
            op->outstanding--;
        }
        free(rq);
        return;
    }
    int ok = flush_ok(status, reply);
    if (op == NULL) { /* a resent flush */
        for (size_t i = 0; i < k->npend; i++) {
            if (k->pend[i].seq == rq->pend_seq) {
                if (ok) {
                    memmove(&k->pend[i], &k->pend[i + 1], (k->npend - i - 1) * sizeof *k->pend);
                    k->npend--;
                } else {
                    k->pend[i].inflight = 0;
                }
                break;
            }
        }
        free(rq);
        return;
    }
    op->outstanding--;
    op->answered++;
    if (ok) {
        op->acked[rq->slot] = 1;
    } else {
        pend_add(k, op->tags[rq->slot], op->fdb, op->hlc);
    }
    free(rq);
    flush_check(op);
    maybe_free(op);
}

static int send_flush(struct keyless *k, uint32_t tag, int db, uint64_t hlc, struct kreq *rq) {
    struct msg_argv a;
    scan_encode_flush(&a, db, hlc);
    int rc = cluster_send_tag(k->cl, tag, a.argc, a.argv, a.argvlen, flush_reply, rq);
    msg_argv_free(&a);
    return rc;
}

uint64_t cluster_flush(struct cluster *cl, int db, uint64_t hlc, int w, cluster_flush_done *cb,
                       void *ctx) {
    struct keyless *k = cluster_keyless_of(cl);
    struct kop *op = op_new(k);
    op->is_flush = 1;
    op->fcb = cb;
    op->ctx = ctx;
    op->fdb = db;
    op->hlc = hlc;
    const char *why;
    if (!cluster_ready(cl, &why)) {
        decide(op, CLUSTER_FAILED, why);
        return op->id;
    }
    if (w < 1 || w > cluster_replicas(cl) || db < -1 || db > MSG_MAX_DB || hlc == 0) {
        decide(op, CLUSTER_FAILED, "bad write quorum, db or version");
        return op->id;
    }
    op->w = (size_t)w;
    const struct ring *ring = cluster_ring_of(cl);
    op->ntags = ring->nmembers;
    op->tags = cl_calloc(op->ntags ? op->ntags : 1, sizeof *op->tags);
    op->acked = cl_calloc(op->ntags ? op->ntags : 1, 1);
    for (size_t i = 0; i < op->ntags; i++) {
        op->tags[i] = ring->members[i].tag;
    }
    const struct cluster_store *st = cluster_store_of(cl);
    for (size_t i = 0; i < op->ntags; i++) {
        uint32_t tag = op->tags[i];
        if (tag == cluster_self_tag(cl)) {
            op->answered++;
            if (st->flush && st->flush(st->ctx, db, hlc) == 0) {
                op->acked[i] = 1;
            }
            continue;
        }
        struct kreq *rq = cl_calloc(1, sizeof *rq);
        rq->k = k;
        rq->op = op;
        rq->slot = i;
        if (send_flush(k, tag, db, hlc, rq) == LINK_OK) {
            op->outstanding++;
        } else {
            free(rq);
            op->answered++;
            pend_add(k, tag, db, hlc);
        }
    }
    flush_check(op);
    return op->id;
}

void keyless_tick(struct keyless *k) {
    for (size_t i = 0; i < k->npend; i++) {
        struct pend *p = &k->pend[i];
        if (p->inflight || !cluster_tag_up(k->cl, p->tag)) {
            continue;
        }
        struct kreq *rq = cl_calloc(1, sizeof *rq);
        rq->k = k;
        rq->pend_seq = p->seq;
        if (send_flush(k, p->tag, p->db, p->hlc, rq) == LINK_OK) {
            p->inflight = 1;
        } else {
            free(rq);
        }
    }
}
