/* engine/dropset.c: the drop set of lsm_set_drop_ranges (dropset.h). */
#include "engine/dropset.h"

#include <stdlib.h>
#include <string.h>

#include "engine/dbformat.h"
#include "engine/status.h"

/* [begin, end) of user keys; end_open: no upper bound. Bytes owned. */
struct drange {
    char *begin, *end;
    size_t blen, elen;
    bool end_open;
};

struct dropset {
    atomic_int refs;
    uint64_t upto_seq;
    uint64_t generation;
    struct drange *r; /* sorted by begin, disjoint */
    size_t n;
};

static char *dup_bytes(const void *p, size_t n) {
    char *d = lsm_malloc(n ? n : 1);
    if (n) {
        memcpy(d, p, n);
    }
    return d;
}

static bool range_empty(const struct lsm_range *r) {
    return r->end != NULL &&
           user_key_compare(r->begin ? r->begin : "", r->begin ? r->blen : 0, r->end, r->elen) >= 0;
}

static int cmp_begin(const void *a, const void *b) {
    const struct drange *x = a, *y = b;
    return user_key_compare(x->begin, x->blen, y->begin, y->blen);
}

/* end of x >= begin of y: the two touch or overlap (x sorted before y) */
static bool reaches(const struct drange *x, const struct drange *y) {
    return x->end_open || user_key_compare(x->end, x->elen, y->begin, y->blen) >= 0;
}

/* Merges the sorted ranges in place; returns how many are left. */
static size_t merge_ranges(struct drange *r, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k > 0 && reaches(&r[k - 1], &r[i])) {
            struct drange *p = &r[k - 1];
            if (!p->end_open &&
                (r[i].end_open || user_key_compare(r[i].end, r[i].elen, p->end, p->elen) > 0)) {
                lsm_free(p->end);
                p->end = r[i].end;
                p->elen = r[i].elen;
                p->end_open = r[i].end_open;
                r[i].end = NULL;
            }
            lsm_free(r[i].begin);
            lsm_free(r[i].end);
            continue;
        }
        r[k++] = r[i];
    }
    return k;
}

struct dropset *dropset_create(const struct lsm_range *r, size_t n, uint64_t upto_seq,
                               uint64_t generation) {
    struct drange *v = lsm_calloc(n ? n : 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (range_empty(&r[i])) {
            continue;
        }
        v[k].begin = dup_bytes(r[i].begin, r[i].begin ? r[i].blen : 0);
        v[k].blen = r[i].begin ? r[i].blen : 0;
        v[k].end_open = r[i].end == NULL;
        v[k].end = v[k].end_open ? NULL : dup_bytes(r[i].end, r[i].elen);
        v[k].elen = v[k].end_open ? 0 : r[i].elen;
        k++;
    }
    qsort(v, k, sizeof *v, cmp_begin);
    k = merge_ranges(v, k);
    if (k == 0) {
        lsm_free(v);
        return NULL;
    }
    struct dropset *d = lsm_calloc(1, sizeof *d);
    atomic_init(&d->refs, 1);
    d->upto_seq = upto_seq;
    d->generation = generation;
    d->r = v;
    d->n = k;
    return d;
}

struct dropset *dropset_ref(struct dropset *d) {
    if (d) {
        atomic_fetch_add(&d->refs, 1);
    }
    return d;
}

void dropset_unref(struct dropset *d) {
    if (d == NULL || atomic_fetch_sub(&d->refs, 1) != 1) {
        return;
    }
    for (size_t i = 0; i < d->n; i++) {
        lsm_free(d->r[i].begin);
        lsm_free(d->r[i].end);
    }
    lsm_free(d->r);
    lsm_free(d);
}

bool dropset_drops(const struct dropset *d, const char *k, size_t klen, uint64_t seq) {
    if (d == NULL || seq > d->upto_seq) {
        return false;
    }
    /* the last range whose begin <= k */
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (user_key_compare(d->r[mid].begin, d->r[mid].blen, k, klen) <= 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == 0) {
        return false;
    }
    const struct drange *r = &d->r[lo - 1];
    return r->end_open || user_key_compare(k, klen, r->end, r->elen) < 0;
}

uint64_t dropset_generation(const struct dropset *d) {
    return d ? d->generation : 0;
}
