/* cluster/cleanup.c: which token ranges a node must keep (KVD CLEANUP, issue 11).
 *
 * After a join, the members that replicated the joiner's ranges still hold their
 * records: they cost space, never correctness. KVD CLEANUP drops them; the store
 * does the dropping (server/store/cleanup.c), this file says what to keep: every
 * range this node replicates in the current ring and, were a change pending, in
 * the future one. While a member joins or leaves (or is in any state but normal)
 * ranges are moving: cluster_kept_ranges refuses rather than guess, as it does
 * before the node is ready. */
#include "cluster/cleanup.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/gossip.h"
#include "cluster/join.h"
#include "cluster/keyless.h"
#include "cluster/repair.h"

/* Appends the ranges of g that self replicates to v. */
static void add_ring(const struct ring *g, uint32_t self, size_t n, struct cluster_span **v,
                     size_t *len, size_t *cap) {
    struct repair_span *sp = NULL;
    size_t k = g->nvnodes ? repair_ring_ranges(g, &sp) : 0;
    for (size_t i = 0; i < k; i++) {
        if (!ring_replicates(g, sp[i].from, n, self)) {
            continue;
        }
        if (*len == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            *v = realloc(*v, *cap * sizeof **v);
            if (*v == NULL) {
                abort();
            }
        }
        (*v)[(*len)++] = (struct cluster_span){sp[i].from, sp[i].to};
    }
    free(sp);
}

/* a span's end as a number that orders: to 0 is the ring's end */
static unsigned __int128 span_end(const struct cluster_span *s) {
    return s->to == 0 ? (unsigned __int128)1 << 64 : s->to;
}

static int cmp_from(const void *a, const void *b) {
    const struct cluster_span *x = a, *y = b;
    return x->from < y->from ? -1 : x->from > y->from;
}

size_t cleanup_kept_spans(const struct ring *cur, const struct ring *fut, uint32_t self,
                          size_t n, struct cluster_span **out) {
    struct cluster_span *v = NULL;
    size_t len = 0, cap = 0;
    add_ring(cur, self, n, &v, &len, &cap);
    if (fut) {
        add_ring(fut, self, n, &v, &len, &cap);
    }
    if (len > 1) {
        qsort(v, len, sizeof *v, cmp_from);
    }
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (k > 0 && span_end(&v[k - 1]) >= v[i].from) {
            if (span_end(&v[i]) > span_end(&v[k - 1])) {
                v[k - 1].to = v[i].to;
            }
            continue;
        }
        v[k++] = v[i];
    }
    *out = v;
    return k;
}

/* 1 when every member of the ring is normal (or gone); else *why */
static int all_normal(struct cluster *cl, const char **why) {
    const struct gossip *g = cluster_gossip_of(cl);
    for (size_t i = 0; i < g->n; i++) {
        int st = g->mb[i].status;
        if (st == GOSSIP_NORMAL || st == GOSSIP_LEFT || !gossip_in_ring(g, i)) {
            continue;
        }
        *why = st == GOSSIP_JOINING   ? "a member is joining: ranges are moving, retry when it is normal"
               : st == GOSSIP_LEAVING ? "a member is leaving: ranges are moving, retry when it left"
                                      : "a member is not normal: ranges are moving";
        return 0;
    }
    if (cluster_future_of(cl) != NULL) {
        *why = "a change of the ring is pending: ranges are moving";
        return 0;
    }
    return 1;
}

int cluster_kept_ranges(struct cluster *cl, struct cluster_span **out, size_t *n,
                        const char **why) {
    *out = NULL;
    *n = 0;
    if (!cluster_ready(cl, why) || !all_normal(cl, why)) {
        return -1;
    }
    *n = cleanup_kept_spans(cluster_ring_of(cl), cluster_future_of(cl), cluster_self_tag(cl),
                            (size_t)cluster_replicas(cl), out);
    return 0;
}
