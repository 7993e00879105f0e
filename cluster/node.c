/* cluster/node.c: one node's coordinator glue. See node.h.
 *
 * HOW IT WORKS. Live ops sit in a chained hash table by id (ids count up from 1,
 * so the low bits spread them) and their deadlines in a binary min-heap of
 * (deadline, id); an entry whose op is gone or whose deadline moved is skipped
 * when it reaches the top. Every op step (start, reply, tick) ends in act(), which
 * carries out the step's struct op_actions: requests through io.send, hints into
 * the hint store, the result through io.completed, the op freed when finished,
 * its new deadline pushed on the heap.
 */
#include "cluster/node.h"

#include <string.h>

#include "cluster/mem.h"

struct cnode_op {
    struct op op;
    void *user;
    int reported; /* completed ran, or the caller cancelled */
    struct cnode_op *next;
};

struct cnode_dl {
    uint64_t deadline, id;
};

void cnode_init(struct cnode *n, uint32_t self, uint64_t timeout_ms, uint64_t hint_window_ms,
               size_t hint_max_bytes, const struct cnode_io *io) {
    memset(n, 0, sizeof *n);
    n->self = self;
    n->timeout_ms = timeout_ms;
    n->io = *io;
    n->hints = hints_create(hint_window_ms, hint_max_bytes);
    n->nbuckets = 64;
    n->buckets = cl_calloc(n->nbuckets, sizeof *n->buckets);
    n->next_id = 1;
}

void cnode_free(struct cnode *n) {
    for (size_t b = 0; b < n->nbuckets; b++) {
        struct cnode_op *o = n->buckets[b];
        while (o) {
            struct cnode_op *next = o->next;
            op_destroy(&o->op);
            free(o);
            o = next;
        }
    }
    free(n->buckets);
    free(n->heap);
    hints_destroy(&n->hints);
    memset(n, 0, sizeof *n);
}

/* ---- the table ---- */

static struct cnode_op **slot(const struct cnode *n, uint64_t id) {
    struct cnode_op **pp = &n->buckets[id & (n->nbuckets - 1)];
    while (*pp && (*pp)->op.id != id) {
        pp = &(*pp)->next;
    }
    return pp;
}

static struct cnode_op *find(const struct cnode *n, uint64_t id) {
    return *slot(n, id);
}

static void grow(struct cnode *n) {
    size_t nb = n->nbuckets * 2;
    struct cnode_op **b = cl_calloc(nb, sizeof *b);
    for (size_t i = 0; i < n->nbuckets; i++) {
        struct cnode_op *o = n->buckets[i];
        while (o) {
            struct cnode_op *next = o->next;
            o->next = b[o->op.id & (nb - 1)];
            b[o->op.id & (nb - 1)] = o;
            o = next;
        }
    }
    free(n->buckets);
    n->buckets = b;
    n->nbuckets = nb;
}

static void insert(struct cnode *n, struct cnode_op *o) {
    if (n->nops + 1 > n->nbuckets) {
        grow(n);
    }
    struct cnode_op **head = &n->buckets[o->op.id & (n->nbuckets - 1)];
    o->next = *head;
    *head = o;
    n->nops++;
}

static void remove_op(struct cnode *n, struct cnode_op *o) {
    struct cnode_op **pp = slot(n, o->op.id);
    if (*pp == o) {
        *pp = o->next;
        n->nops--;
    }
    op_destroy(&o->op);
    free(o);
}

/* ---- deadlines ---- */

static int dl_less(const struct cnode_dl *a, const struct cnode_dl *b) {
    return a->deadline != b->deadline ? a->deadline < b->deadline : a->id < b->id;
}

static void dl_push(struct cnode *n, uint64_t deadline, uint64_t id) {
    if (n->nheap == n->capheap) {
        n->capheap = n->capheap ? n->capheap * 2 : 64;
        n->heap = cl_realloc(n->heap, n->capheap * sizeof *n->heap);
    }
    struct cnode_dl e = {deadline, id};
    size_t i = n->nheap++;
    while (i > 0 && dl_less(&e, &n->heap[(i - 1) / 2])) {
        n->heap[i] = n->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    n->heap[i] = e;
}

static void dl_pop(struct cnode *n) {
    struct cnode_dl last = n->heap[--n->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n->nheap) {
            break;
        }
        if (c + 1 < n->nheap && dl_less(&n->heap[c + 1], &n->heap[c])) {
            c++;
        }
        if (!dl_less(&n->heap[c], &last)) {
            break;
        }
        n->heap[i] = n->heap[c];
        i = c;
    }
    if (n->nheap) {
        n->heap[i] = last;
    }
}

/* drops heap entries whose op is gone or whose deadline moved */
static void dl_clean(struct cnode *n) {
    while (n->nheap) {
        struct cnode_op *o = find(n, n->heap[0].id);
        if (o && o->op.deadline == n->heap[0].deadline) {
            return;
        }
        dl_pop(n);
    }
}

uint64_t cnode_next_deadline(struct cnode *n) {
    dl_clean(n);
    return n->nheap ? n->heap[0].deadline : 0;
}

/* ---- steps ---- */

/* carries out what one op step asked for; o may be freed */
static void act(struct cnode *n, struct cnode_op *o, const struct op_actions *a,
                uint64_t old_deadline, uint64_t now) {
    for (size_t i = 0; i < a->nsend; i++) {
        if (o->op.kind == OP_READ && a->send[i].verb == MSG_WRITE) {
            n->st.read_repairs++;
        }
        n->io.send(n->io.ctx, a->send[i].node, a->send[i].verb, &o->op);
    }
    for (size_t i = 0; i < a->nhint; i++) {
        struct msg_record r = op_msg_record(&o->op);
        if (hints_add(n->hints, a->hint[i], now, o->op.db, o->op.key, o->op.klen, &r) ==
            HINTS_OK) {
            n->st.hints_added++;
        }
    }
    if (a->completed) {
        if (o->op.result == OP_FAILED) {
            if (o->op.kind == OP_READ) {
                n->st.reads_failed++;
            } else {
                n->st.writes_failed++;
            }
            n->st.unavailable += o->op.unavailable != 0;
        }
        if (!o->reported) {
            o->reported = 1;
            n->io.completed(n->io.ctx, &o->op, o->user);
        }
    }
    if (a->finished) {
        remove_op(n, o);
    } else if (o->op.deadline != old_deadline) {
        dl_push(n, o->op.deadline, o->op.id);
    }
}

static size_t replicas_of(const struct ring *r, size_t nrep, const char *key, size_t klen,
                          uint32_t *tags) {
    uint32_t idx[RING_MAX_REPLICAS];
    size_t k = ring_replicas(r, ring_key_token(key, klen), nrep, idx);
    for (size_t i = 0; i < k; i++) {
        tags[i] = r->members[idx[i]].tag;
    }
    return k;
}

static struct cnode_op *op_new(struct cnode *n, void *user, const uint32_t *tags, size_t ntags,
                              uint8_t *down) {
    /* not zeroed: op_read_start / op_write_start clear the op (its per-replica
     * arrays are most of it, and a second memset showed in the profile) */
    struct cnode_op *o = cl_malloc(sizeof *o);
    o->user = user;
    o->reported = 0;
    o->next = NULL;
    for (size_t i = 0; i < ntags; i++) {
        down[i] = !n->io.is_up(n->io.ctx, tags[i]);
    }
    return o;
}

uint64_t cnode_read_on(struct cnode *n, const uint32_t *tags, size_t ntags, unsigned db,
                      const char *key, size_t klen, size_t need, uint64_t now, void *user) {
    return cnode_read_on_pending(n, tags, ntags, 0, db, key, klen, need, now, user);
}

uint64_t cnode_read_on_pending(struct cnode *n, const uint32_t *tags, size_t ntags,
                              size_t npending, unsigned db, const char *key, size_t klen,
                              size_t need, uint64_t now, void *user) {
    uint8_t down[OP_MAX_REPLICAS];
    ntags = ntags > OP_MAX_REPLICAS ? OP_MAX_REPLICAS : ntags;
    struct cnode_op *o = op_new(n, user, tags, ntags, down);
    struct op_actions a;
    n->st.reads++;
    op_read_start_pending(&o->op, n->next_id++, db, key, klen, tags, ntags, npending, need,
                          down, now, n->timeout_ms, &a);
    insert(n, o);
    uint64_t id = o->op.id;
    act(n, o, &a, 0, now);
    return id;
}

uint64_t cnode_write_on_pending(struct cnode *n, const uint32_t *tags, size_t ntags,
                               size_t npending, unsigned db, const char *key, size_t klen,
                               const struct msg_record *rec, size_t need, uint64_t now,
                               void *user) {
    uint8_t down[OP_MAX_REPLICAS];
    ntags = ntags > OP_MAX_REPLICAS ? OP_MAX_REPLICAS : ntags;
    struct cnode_op *o = op_new(n, user, tags, ntags, down);
    struct op_actions a;
    n->st.writes++;
    op_write_start_pending(&o->op, n->next_id++, db, key, klen, tags, ntags, npending, need,
                           rec, down, now, n->timeout_ms, &a);
    insert(n, o);
    uint64_t id = o->op.id;
    act(n, o, &a, 0, now);
    return id;
}

uint64_t cnode_read(struct cnode *n, const struct ring *r, size_t nrep, unsigned db,
                   const char *key, size_t klen, size_t need, uint64_t now, void *user) {
    uint32_t tags[RING_MAX_REPLICAS];
    size_t k = replicas_of(r, nrep, key, klen, tags);
    return cnode_read_on(n, tags, k, db, key, klen, need, now, user);
}

uint64_t cnode_read_pending(struct cnode *n, const struct ring *cur, const struct ring *fut,
                           size_t nrep, unsigned db, const char *key, size_t klen, size_t need,
                           uint64_t now, void *user) {
    uint32_t tags[RING_MAX_REPLICAS];
    size_t npending;
    size_t k = ring_write_set(cur, fut, ring_key_token(key, klen), nrep, tags, &npending);
    return cnode_read_on_pending(n, tags, k, npending, db, key, klen, need, now, user);
}

uint64_t cnode_write_on(struct cnode *n, const uint32_t *tags, size_t ntags, unsigned db,
                       const char *key, size_t klen, const struct msg_record *rec,
                       size_t need, uint64_t now, void *user) {
    return cnode_write_on_pending(n, tags, ntags, 0, db, key, klen, rec, need, now, user);
}

uint64_t cnode_write_pending(struct cnode *n, const struct ring *cur, const struct ring *fut,
                            size_t nrep, unsigned db, const char *key, size_t klen,
                            const struct msg_record *rec, size_t need, uint64_t now,
                            void *user) {
    uint32_t tags[RING_MAX_REPLICAS];
    size_t npending;
    size_t k = ring_write_set(cur, fut, ring_key_token(key, klen), nrep, tags, &npending);
    return cnode_write_on_pending(n, tags, k, npending, db, key, klen, rec, need, now, user);
}

uint64_t cnode_write(struct cnode *n, const struct ring *r, size_t nrep, unsigned db,
                    const char *key, size_t klen, const struct msg_record *rec, size_t need,
                    uint64_t now, void *user) {
    uint32_t tags[RING_MAX_REPLICAS];
    size_t k = replicas_of(r, nrep, key, klen, tags);
    return cnode_write_on(n, tags, k, db, key, klen, rec, need, now, user);
}

void cnode_cancel(struct cnode *n, uint64_t id) {
    struct cnode_op *o = find(n, id);
    if (o) {
        o->reported = 1;
        o->user = NULL;
    }
}

void *cnode_cancel_user(struct cnode *n, uint64_t id) {
    struct cnode_op *o = find(n, id);
    if (o == NULL || o->reported) {
        return NULL;
    }
    void *u = o->user;
    o->reported = 1;
    o->user = NULL;
    return u;
}

void cnode_free_users(struct cnode *n, void (*fn)(void *)) {
    for (size_t b = 0; b < n->nbuckets; b++) {
        for (struct cnode_op *o = n->buckets[b]; o; o = o->next) {
            if (!o->reported && o->user) {
                fn(o->user);
                o->user = NULL;
                o->reported = 1;
            }
        }
    }
}

int cnode_live(const struct cnode *n, uint64_t id) {
    return find(n, id) != NULL;
}

void cnode_on_read_reply(struct cnode *n, uint64_t id, uint32_t from, const struct msg_item *item,
                        uint64_t now) {
    struct cnode_op *o = find(n, id);
    if (o == NULL) {
        n->st.late_replies++;
        return;
    }
    struct op_actions a;
    uint64_t dl = o->op.deadline;
    op_on_read_reply(&o->op, from, item, now, &a);
    act(n, o, &a, dl, now);
}

void cnode_on_write_reply(struct cnode *n, uint64_t id, uint32_t from, int ok, uint64_t now) {
    struct cnode_op *o = find(n, id);
    if (o == NULL) {
        n->st.late_replies++;
        return;
    }
    struct op_actions a;
    uint64_t dl = o->op.deadline;
    op_on_write_reply(&o->op, from, ok, now, &a);
    act(n, o, &a, dl, now);
}

void cnode_tick(struct cnode *n, uint64_t now) {
    for (;;) {
        dl_clean(n);
        if (n->nheap == 0 || n->heap[0].deadline > now) {
            return;
        }
        struct cnode_op *o = find(n, n->heap[0].id);
        dl_pop(n);
        struct op_actions a;
        op_tick(&o->op, now, &a); /* at its deadline an op always finishes */
        act(n, o, &a, 0, now);
    }
}

/* ---- hints ---- */

size_t cnode_hints_send(struct cnode *n, uint64_t now) {
    if (n->io.send_hint == NULL) {
        return 0;
    }
    hints_expire(n->hints, now);
    struct hint_send due[64];
    size_t sent = 0;
    size_t k = hints_due(n->hints, now, n->timeout_ms, due, 64);
    for (size_t i = 0; i < k; i++) {
        if (!n->io.is_up(n->io.ctx, due[i].target)) {
            /* not now: offered again by the next call */
            hints_delivered(n->hints, due[i].target, due[i].hint->seq, 0);
            continue;
        }
        n->st.hints_sent++;
        sent++;
        n->io.send_hint(n->io.ctx, due[i].target, due[i].hint);
    }
    return sent;
}

void cnode_on_hint_reply(struct cnode *n, uint32_t target, uint64_t seq, int ok, uint64_t now) {
    if (hints_delivered(n->hints, target, seq, ok) == HINTS_OK && ok) {
        n->st.hints_delivered++;
        cnode_hints_send(n, now);
    }
}
