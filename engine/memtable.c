/* engine/memtable.c: skiplist memtable over a chunked arena (see memtable.h).
 *
 * HOW IT WORKS
 * Each entry is one node, allocated from the arena and never moved or freed:
 *
 *   | prefix u64 | height:4 klen:28 | vlen u32 | trailer u64 | next[height] | user key |
 *   trailer u64le | value, or a pointer to it |
 *
 * A value longer than MT_INLINE_VALUE_MAX lives in a second bump region of the
 * same arena (vlen's top bit says so) and the node holds a pointer to it: nodes
 * then sit densely in their own chunks, so a search, which touches only node
 * headers, misses the cache far less often than with 1 KiB values between them.
 *
 * prefix is the key's first 8 bytes read big-endian (zero padded): comparing it
 * orders most pairs of keys without touching the key bytes, which sit on another
 * cache line; only equal prefixes fall back to memcmp.
 *
 * The trailer is kept twice: native in the header for fast comparison, and
 * little-endian after the key so that key || trailer is the internal key the table
 * builder takes without copying. The skiplist is LevelDB's: a node gets height h
 * with probability (1/4)^(h-1), at most MT_MAX_HEIGHT; an insert finds the
 * predecessor at every level, fills the new node's links, then publishes it bottom
 * up with release stores, so a reader (acquire loads) sees either the old list or
 * a fully linked node. Only one writer runs at a time (the caller guarantees it).
 *
 * Example: inserting ("b", seq 7) into a -> b@5 -> c finds prev = a at level 0, so
 * a -> b@7 -> b@5 -> c: the newer version of b comes first, as the order wants.
 *
 * Inserts in ascending order (a server's batch sorted by key) search from the
 * previous insert's predecessors (the writer's finger), not from the head: climb
 * from level 0 while the finger's successor still sorts before the new key, then
 * descend from there. For keys k apart in the list that costs O(log k), not
 * O(log n), and the nodes it touches are the ones the last insert just visited.
 * A key that sorts before the last insert searches from the head.
 */
#include "engine/memtable.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "engine/status.h"

#define MT_MAX_HEIGHT 12
#define MT_INLINE_VALUE_MAX 128
#define NODE_VALUE_OUT 0x80000000u /* in vlen: the node holds a pointer to the value */

/* ---- arena chunks ------------------------------------------------------------------ */

struct arena_chunk {
    struct arena_chunk *next; /* pool free list / memtable's chunk list */
    size_t size;              /* usable bytes after the header */
};

struct arena_pool {
    pthread_mutex_t mu;
    size_t chunk_size;        /* usable bytes per chunk */
    size_t max_cached;        /* free chunks kept at most */
    size_t ncached;           /* free chunks now in the list */
    struct arena_chunk *free; /* free list */
};

struct arena_pool *arena_pool_create(size_t chunk_size, size_t max_cached)
{
    struct arena_pool *p = lsm_calloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    p->chunk_size = chunk_size;
    p->max_cached = max_cached;
    return p;
}

void arena_pool_destroy(struct arena_pool **pp)
{
    struct arena_pool *p = *pp;
    if (p == NULL) {
        return;
    }
    while (p->free != NULL) {
        struct arena_chunk *c = p->free;
        p->free = c->next;
        lsm_free(c);
    }
    pthread_mutex_destroy(&p->mu);
    lsm_free(p);
    *pp = NULL;
}

static struct arena_chunk *chunk_get(struct arena_pool *p, size_t min_size)
{
    struct arena_chunk *c = NULL;
    if (p != NULL && min_size <= p->chunk_size) {
        pthread_mutex_lock(&p->mu);
        if (p->free != NULL) {
            c = p->free;
            p->free = c->next;
            p->ncached--;
        }
        pthread_mutex_unlock(&p->mu);
        min_size = p->chunk_size;
    } else if (p == NULL && min_size < 256 * 1024) {
        min_size = 256 * 1024;
    }
    if (c == NULL) {
        c = lsm_malloc(sizeof(*c) + min_size);
        c->size = min_size;
    }
    c->next = NULL;
    return c;
}

static void chunk_put(struct arena_pool *p, struct arena_chunk *c)
{
    if (p != NULL && c->size == p->chunk_size) {
        pthread_mutex_lock(&p->mu);
        if (p->ncached < p->max_cached) {
            c->next = p->free;
            p->free = c;
            p->ncached++;
            c = NULL;
        }
        pthread_mutex_unlock(&p->mu);
    }
    lsm_free(c);
}

/* ---- skiplist ------------------------------------------------------------------------ */

struct mt_node {
    uint64_t prefix;                  /* first 8 key bytes, big-endian, zero padded */
    uint32_t klen;                    /* user key length */
    uint32_t vlen;                    /* value length */
    uint64_t trailer;                 /* seq << 8 | kind */
    _Atomic(struct mt_node *) next[]; /* height links, then key, trailer, value */
};

struct memtable {
    atomic_int refs;            /* references; the last unref frees */
    struct arena_pool *pool;    /* where chunks come from and go back */
    struct arena_chunk *chunks; /* chunks owned, newest first */
    char *alloc_ptr;            /* bump pointer in the newest node chunk */
    size_t alloc_left;          /* bytes left in it */
    char *val_ptr;              /* the same for the chunk of long values */
    size_t val_left;
    atomic_size_t bytes;        /* bytes handed out (what counts as size) */
    atomic_uint_fast64_t count; /* entries */
    atomic_int max_height;      /* current height of the list */
    uint64_t rnd;               /* xorshift state for node heights */
    struct mt_node *head;       /* sentinel with MT_MAX_HEIGHT links */
    /* the writer's finger: the last node inserted and its predecessors */
    struct mt_node *last;
    struct mt_node *finger[MT_MAX_HEIGHT];
};

/* n bytes from the bump region (*ptr, *left), which moves to a new chunk when
 * the current one is short. */
static void *bump_alloc(struct memtable *mt, char **ptr, size_t *left, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if (n > *left) {
        struct arena_chunk *c = chunk_get(mt->pool, n);
        c->next = mt->chunks;
        mt->chunks = c;
        *ptr = (char *)(c + 1);
        *left = c->size;
    }
    void *r = *ptr;
    *ptr += n;
    *left -= n;
    atomic_fetch_add_explicit(&mt->bytes, n, memory_order_relaxed);
    return r;
}

static void *arena_alloc(struct memtable *mt, size_t n)
{
    return bump_alloc(mt, &mt->alloc_ptr, &mt->alloc_left, n);
}

static inline const char *node_key(const struct mt_node *n, int height)
{
    return (const char *)&n->next[height];
}

/* The node's height lives in the top 4 bits of klen (keys are < 256 MiB). */
#define NODE_HEIGHT_SHIFT 28
#define NODE_KLEN_MASK ((1u << NODE_HEIGHT_SHIFT) - 1)

static inline int node_height(const struct mt_node *n)
{
    return (int)(n->klen >> NODE_HEIGHT_SHIFT);
}

static inline uint32_t node_klen(const struct mt_node *n)
{
    return n->klen & NODE_KLEN_MASK;
}

static inline const char *node_ukey(const struct mt_node *n)
{
    return node_key(n, node_height(n));
}

static inline const char *node_value(const struct mt_node *n)
{
    const char *p = node_ukey(n) + node_klen(n) + 8;
    if (n->vlen & NODE_VALUE_OUT) {
        const char *v;
        memcpy(&v, p, sizeof(v));
        return v;
    }
    return p;
}

static inline size_t node_vlen(const struct mt_node *n)
{
    return n->vlen & ~NODE_VALUE_OUT;
}

static inline uint64_t key_prefix(const char *key, size_t klen)
{
    uint64_t p = 0;
    if (klen >= 8) {
        memcpy(&p, key, 8);
        return __builtin_bswap64(p);
    }
    for (size_t i = 0; i < klen; i++) {
        p |= (uint64_t)(unsigned char)key[i] << (56 - 8 * i);
    }
    return p;
}

static struct mt_node *node_make(struct memtable *mt, int height, const void *key,
                                 size_t klen, uint64_t trailer, const void *val,
                                 size_t vlen)
{
    int out = vlen > MT_INLINE_VALUE_MAX;
    size_t sz = sizeof(struct mt_node) + (size_t)height * sizeof(void *) + klen + 8 +
                (out ? sizeof(char *) : vlen);
    struct mt_node *n = arena_alloc(mt, sz);
    n->prefix = key_prefix(key, klen);
    n->klen = (uint32_t)klen | ((uint32_t)height << NODE_HEIGHT_SHIFT);
    n->vlen = (uint32_t)vlen | (out ? NODE_VALUE_OUT : 0);
    n->trailer = trailer;
    char *p = (char *)&n->next[height];
    if (klen > 0) {
        memcpy(p, key, klen);
    }
    for (int i = 0; i < 8; i++) {
        p[klen + i] = (char)(trailer >> (8 * i));
    }
    if (out) {
        char *v = bump_alloc(mt, &mt->val_ptr, &mt->val_left, vlen);
        memcpy(v, val, vlen);
        memcpy(p + klen + 8, &v, sizeof(v));
    } else if (vlen > 0) {
        memcpy(p + klen + 8, val, vlen);
    }
    for (int i = 0; i < height; i++) {
        atomic_init(&n->next[i], NULL);
    }
    return n;
}

/* <0 when node n sorts before (key, trailer), 0 equal, >0 after; prefix is
 * key_prefix(key, klen). */
static inline int node_cmp(const struct mt_node *n, uint64_t prefix, const char *key,
                           size_t klen, uint64_t trailer)
{
    if (n->prefix != prefix) {
        return n->prefix < prefix ? -1 : 1;
    }
    uint32_t nk = node_klen(n);
    size_t m = nk < klen ? nk : klen;
    int c = m ? memcmp(node_ukey(n), key, m) : 0;
    if (c != 0) {
        return c;
    }
    if (nk != klen) {
        return nk < klen ? -1 : 1;
    }
    /* larger trailer (newer) sorts first */
    if (n->trailer > trailer) {
        return -1;
    }
    return n->trailer < trailer ? 1 : 0;
}

static inline struct mt_node *node_next(const struct mt_node *n, int level)
{
    return atomic_load_explicit(&((struct mt_node *)n)->next[level],
                                memory_order_acquire);
}

/* First node >= (key, trailer); fills prev[] when not NULL. */
static struct mt_node *find_ge(const struct memtable *mt, const char *key, size_t klen,
                               uint64_t trailer, struct mt_node **prev)
{
    struct mt_node *x = mt->head;
    int level = atomic_load_explicit(&mt->max_height, memory_order_relaxed) - 1;
    uint64_t prefix = key_prefix(key, klen);
    for (;;) {
        struct mt_node *next = node_next(x, level);
        if (next != NULL && node_cmp(next, prefix, key, klen, trailer) < 0) {
            x = next;
            continue;
        }
        if (prev != NULL) {
            prev[level] = x;
        }
        if (level == 0) {
            return next;
        }
        level--;
    }
}

struct memtable *memtable_create(struct arena_pool *pool)
{
    struct memtable *mt = lsm_calloc(1, sizeof(*mt));
    atomic_init(&mt->refs, 1);
    mt->pool = pool;
    atomic_init(&mt->bytes, 0);
    atomic_init(&mt->count, 0);
    atomic_init(&mt->max_height, 1);
    mt->rnd = 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)mt;
    mt->head = node_make(mt, MT_MAX_HEIGHT, NULL, 0, 0, NULL, 0);
    for (int i = 0; i < MT_MAX_HEIGHT; i++) {
        mt->finger[i] = mt->head;
    }
    return mt;
}

void memtable_ref(struct memtable *mt)
{
    atomic_fetch_add_explicit(&mt->refs, 1, memory_order_relaxed);
}

void memtable_unref(struct memtable *mt)
{
    if (mt == NULL ||
        atomic_fetch_sub_explicit(&mt->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    while (mt->chunks != NULL) {
        struct arena_chunk *c = mt->chunks;
        mt->chunks = c->next;
        chunk_put(mt->pool, c);
    }
    lsm_free(mt);
}

static int random_height(struct memtable *mt)
{
    uint64_t x = mt->rnd;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    mt->rnd = x;
    int h = 1;
    while (h < MT_MAX_HEIGHT && (x & 3) == 0) {
        h++;
        x >>= 2;
    }
    return h;
}

void memtable_add(struct memtable *mt, uint64_t seq, int kind, const void *key,
                  size_t klen, const void *val, size_t vlen)
{
    uint64_t trailer = (seq << 8) | (uint64_t)(kind & 0xff);
    struct mt_node **prev = mt->finger;
    int cur = atomic_load_explicit(&mt->max_height, memory_order_relaxed);
    uint64_t prefix = key_prefix(key, klen);
    struct mt_node *x = mt->head;
    int level = cur - 1;
    if (mt->last != NULL && node_cmp(mt->last, prefix, key, klen, trailer) < 0) {
        /* every finger[l] sorts before the key; from level 0 up, the first level
         * whose successor is not before the key is right, and so is every level
         * above it (a node between there and the key would be at the lower level
         * too) */
        level = 0;
        while (level < cur - 1) {
            struct mt_node *next = node_next(prev[level], level);
            if (next == NULL || node_cmp(next, prefix, key, klen, trailer) >= 0) {
                break;
            }
            level++;
        }
        x = prev[level];
    }
    for (;;) {
        struct mt_node *next = node_next(x, level);
        if (next != NULL && node_cmp(next, prefix, key, klen, trailer) < 0) {
            x = next;
            continue;
        }
        prev[level] = x;
        if (level == 0) {
            break;
        }
        level--;
    }
    int h = random_height(mt);
    if (h > cur) {
        for (int i = cur; i < h; i++) {
            prev[i] = mt->head;
        }
        /* readers seeing the new height before the links just find NULL at the
         * new levels from head and drop down: harmless */
        atomic_store_explicit(&mt->max_height, h, memory_order_relaxed);
    }
    struct mt_node *n = node_make(mt, h, key, klen, trailer, val, vlen);
    for (int i = 0; i < h; i++) {
        atomic_store_explicit(&n->next[i], node_next(prev[i], i), memory_order_relaxed);
        atomic_store_explicit(&prev[i]->next[i], n, memory_order_release);
        prev[i] = n; /* the finger for a next, larger key */
    }
    mt->last = n;
    atomic_fetch_add_explicit(&mt->count, 1, memory_order_relaxed);
}

size_t memtable_bytes(const struct memtable *mt)
{
    return atomic_load_explicit(&((struct memtable *)mt)->bytes, memory_order_relaxed);
}

uint64_t memtable_count(const struct memtable *mt)
{
    return atomic_load_explicit(&((struct memtable *)mt)->count, memory_order_relaxed);
}

int memtable_get(const struct memtable *mt, const void *key, size_t klen,
                 uint64_t snap_seq, int *kind, const char **val, size_t *vlen,
                 uint64_t *seq)
{
    uint64_t trailer = (snap_seq << 8) | 0xff;
    struct mt_node *n = find_ge(mt, key, klen, trailer, NULL);
    if (n == NULL || node_klen(n) != klen ||
        (klen > 0 && memcmp(node_ukey(n), key, klen) != 0)) {
        return 0;
    }
    *kind = (int)(n->trailer & 0xff);
    *val = node_value(n);
    *vlen = node_vlen(n);
    if (seq != NULL) {
        *seq = n->trailer >> 8;
    }
    return 1;
}

/* ---- iterator ------------------------------------------------------------------------- */

void memtable_iter_init(struct memtable_iter *it, const struct memtable *mt)
{
    it->mt = mt;
    it->node = NULL;
}

int memtable_iter_valid(const struct memtable_iter *it)
{
    return it->node != NULL;
}

void memtable_iter_seek_first(struct memtable_iter *it)
{
    it->node = node_next(it->mt->head, 0);
}

void memtable_iter_seek(struct memtable_iter *it, const void *key, size_t klen,
                        uint64_t seq)
{
    it->node = find_ge(it->mt, key, klen, (seq << 8) | 0xff, NULL);
}

void memtable_iter_next(struct memtable_iter *it)
{
    it->node = node_next(it->node, 0);
}

const char *memtable_iter_ikey(const struct memtable_iter *it, size_t *ikey_len)
{
    *ikey_len = node_klen(it->node) + 8;
    return node_ukey(it->node);
}

const char *memtable_iter_value(const struct memtable_iter *it, size_t *vlen)
{
    *vlen = node_vlen(it->node);
    return node_value(it->node);
}

uint64_t memtable_iter_trailer(const struct memtable_iter *it)
{
    return it->node->trailer;
}
