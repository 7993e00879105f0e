/* cluster/skew.c: clock offset to the peers and the write guard. See skew.h. */
#include "cluster/skew.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/mem.h"

void skew_init(struct skew *s, int64_t max_ms) {
    memset(s, 0, sizeof *s);
    s->max_ms = max_ms;
    s->ok = 1;
}

void skew_free(struct skew *s) {
    free(s->p);
    s->p = NULL;
    s->n = 0;
}

static struct skew_peer *peer_of(const struct skew *s, uint32_t tag) {
    for (size_t i = 0; i < s->n; i++) {
        if (s->p[i].tag == tag) {
            return &s->p[i];
        }
    }
    return NULL;
}

void skew_sample(struct skew *s, uint32_t tag, uint64_t t_send, uint64_t peer_ms,
                 uint64_t t_recv) {
    if (t_recv < t_send) {
        return;
    }
    struct skew_peer *p = peer_of(s, tag);
    if (p == NULL) {
        s->p = cl_realloc(s->p, (s->n + 1) * sizeof *s->p);
        p = &s->p[s->n++];
        memset(p, 0, sizeof *p);
        p->tag = tag;
    }
    /* halves first, so the sum cannot overflow */
    int64_t mid = (int64_t)(t_send / 2 + t_recv / 2 + (t_send % 2 + t_recv % 2) / 2);
    p->s[p->head] = (struct skew_sample){(int64_t)peer_ms - mid, t_recv - t_send, t_recv};
    p->head = (p->head + 1) % SKEW_WINDOW;
    if (p->n < SKEW_WINDOW) {
        p->n++;
    }
}

/* the recent sample with the smallest round trip, or NULL */
static const struct skew_sample *best(const struct skew_peer *p, uint64_t now) {
    const struct skew_sample *b = NULL;
    for (size_t i = 0; i < p->n; i++) {
        if (p->s[i].at + SKEW_RECENT_MS <= now) {
            continue;
        }
        if (b == NULL || p->s[i].rtt < b->rtt) {
            b = &p->s[i];
        }
    }
    return b;
}

int skew_peer_offset(const struct skew *s, uint32_t tag, uint64_t now, int64_t *offset,
                     uint64_t *rtt) {
    const struct skew_peer *p = peer_of(s, tag);
    const struct skew_sample *b = p ? best(p, now) : NULL;
    if (b == NULL) {
        return 0;
    }
    *offset = b->offset;
    *rtt = b->rtt;
    return 1;
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t abs64(int64_t v) {
    return v < 0 ? -v : v;
}

int skew_check(struct skew *s, uint64_t now) {
    int64_t *v = cl_malloc((s->n + 1) * sizeof *v);
    size_t k = 0;
    v[k++] = 0; /* this node */
    for (size_t i = 0; i < s->n; i++) {
        const struct skew_sample *b = best(&s->p[i], now);
        if (b) {
            v[k++] = b->offset;
        }
    }
    qsort(v, k, sizeof *v, cmp64);
    int64_t med = v[k / 2];
    if (k % 2 == 0 && abs64(v[k / 2 - 1]) > abs64(med)) {
        med = v[k / 2 - 1];
    }
    free(v);
    s->peers = k - 1;
    s->offset = -med;
    int ok = abs64(s->offset) <= s->max_ms;
    int changed = ok != s->ok;
    s->ok = ok;
    return changed;
}
