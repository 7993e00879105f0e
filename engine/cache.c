/* engine/cache.c: the sharded LRU block cache (see engine/cache.h).
 *
 * How it works: an entry's refs counts the cache's own reference (while it is in
 * the table, in_cache) plus one per handle given out. An entry with refs == 1 and
 * in_cache is idle and sits on its shard's LRU list (head = most recent); lookups
 * take it off, the last release puts it back. Eviction removes idle entries from the
 * LRU tail while the shard's usage exceeds its share of the capacity. An entry that
 * is erased or replaced while pinned leaves the table at once and is freed by the
 * release that drops its last reference. Deleters run outside the shard lock.
 */
#include "engine/cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "engine/status.h"

#define CACHE_SHARD_BITS 4
#define CACHE_SHARDS (1 << CACHE_SHARD_BITS)

struct cache_handle {
    uint64_t file;
    uint64_t offset;
    void *value;
    cache_deleter_fn deleter;
    size_t charge;
    uint64_t hash;
    uint32_t refs;                  /* cache's reference (in_cache) + pins */
    bool in_cache;                  /* in the hash table */
    struct cache_handle *next_hash; /* bucket chain */
    struct cache_handle *prev;      /* LRU list, while idle */
    struct cache_handle *next;
};

struct cache_shard {
    pthread_mutex_t mu;
    struct cache_handle **buckets;
    size_t nbuckets; /* power of two */
    size_t count;    /* entries in the table */
    size_t usage;    /* charge of the entries in the table */
    size_t capacity;
    struct cache_handle lru; /* sentinel: lru.next is the most recent idle entry */
    uint64_t hits, misses, inserts, evictions;
    char pad[64]; /* keep neighbouring shards' locks off one cache line */
};

struct block_cache {
    struct cache_shard shards[CACHE_SHARDS];
    size_t capacity;
};

static uint64_t hash_key(uint64_t file, uint64_t offset)
{
    uint64_t h = file * 0x9e3779b97f4a7c15ull ^ (offset + 0x632be59bd9b4e019ull);
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static void lru_remove(struct cache_handle *e)
{
    e->next->prev = e->prev;
    e->prev->next = e->next;
    e->prev = e->next = NULL;
}

static void lru_push(struct cache_shard *s, struct cache_handle *e)
{
    e->next = s->lru.next;
    e->prev = &s->lru;
    e->next->prev = e;
    s->lru.next = e;
}

static void shard_set_capacity(struct cache_shard *s, size_t cap)
{
    s->capacity = cap;
}

struct block_cache *block_cache_create(size_t capacity)
{
    struct block_cache *c = lsm_calloc(1, sizeof(*c));
    c->capacity = capacity;
    for (int i = 0; i < CACHE_SHARDS; i++) {
        struct cache_shard *s = &c->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->nbuckets = 64;
        s->buckets = lsm_calloc(s->nbuckets, sizeof(*s->buckets));
        s->lru.next = s->lru.prev = &s->lru;
        shard_set_capacity(s, (capacity + CACHE_SHARDS - 1) / CACHE_SHARDS);
    }
    return c;
}

static void free_entry(struct cache_handle *e)
{
    if (e->deleter != NULL) {
        e->deleter(e->value);
    }
    lsm_free(e);
}

void block_cache_destroy(struct block_cache **cp)
{
    struct block_cache *c = *cp;
    if (c == NULL) {
        return;
    }
    for (int i = 0; i < CACHE_SHARDS; i++) {
        struct cache_shard *s = &c->shards[i];
        for (size_t b = 0; b < s->nbuckets; b++) {
            struct cache_handle *e = s->buckets[b];
            while (e != NULL) {
                struct cache_handle *next = e->next_hash;
                free_entry(e); /* no handle may be held: refs == 1 */
                e = next;
            }
        }
        lsm_free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    lsm_free(c);
    *cp = NULL;
}

static struct cache_shard *shard_of(struct block_cache *c, uint64_t h)
{
    return &c->shards[h >> (64 - CACHE_SHARD_BITS)];
}

static struct cache_handle **find_slot(struct cache_shard *s, uint64_t h, uint64_t file,
                                       uint64_t offset)
{
    struct cache_handle **pp = &s->buckets[h & (s->nbuckets - 1)];
    while (*pp != NULL &&
           ((*pp)->hash != h || (*pp)->file != file || (*pp)->offset != offset)) {
        pp = &(*pp)->next_hash;
    }
    return pp;
}

static void grow_table(struct cache_shard *s)
{
    size_t n = s->nbuckets * 2;
    struct cache_handle **b = lsm_calloc(n, sizeof(*b));
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct cache_handle *e = s->buckets[i];
        while (e != NULL) {
            struct cache_handle *next = e->next_hash;
            e->next_hash = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    lsm_free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

/* Takes e out of the table (caller holds the lock and has unlinked it from its
 * chain); returns e when its last reference went with it, to free after unlocking. */
static struct cache_handle *detach(struct cache_shard *s, struct cache_handle *e)
{
    e->in_cache = false;
    s->count--;
    s->usage -= e->charge;
    if (e->prev != NULL) {
        lru_remove(e);
    }
    return --e->refs == 0 ? e : NULL;
}

/* Evicts idle entries while over capacity; chains the victims through next_hash. */
static struct cache_handle *evict(struct cache_shard *s)
{
    struct cache_handle *victims = NULL;
    while (s->usage > s->capacity && s->lru.prev != &s->lru) {
        struct cache_handle *e = s->lru.prev;
        struct cache_handle **pp = find_slot(s, e->hash, e->file, e->offset);
        *pp = e->next_hash;
        s->evictions++;
        if (detach(s, e) != NULL) {
            e->next_hash = victims;
            victims = e;
        }
    }
    return victims;
}

static void free_chain(struct cache_handle *e)
{
    while (e != NULL) {
        struct cache_handle *next = e->next_hash;
        free_entry(e);
        e = next;
    }
}

struct cache_handle *block_cache_lookup(struct block_cache *c, uint64_t file,
                                        uint64_t offset)
{
    uint64_t h = hash_key(file, offset);
    struct cache_shard *s = shard_of(c, h);
    pthread_mutex_lock(&s->mu);
    struct cache_handle *e = *find_slot(s, h, file, offset);
    if (e != NULL) {
        if (e->refs == 1) {
            lru_remove(e); /* idle -> pinned */
        }
        e->refs++;
        s->hits++;
    } else {
        s->misses++;
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

struct cache_handle *block_cache_insert(struct block_cache *c, uint64_t file,
                                        uint64_t offset, void *value, size_t charge,
                                        cache_deleter_fn deleter)
{
    uint64_t h = hash_key(file, offset);
    struct cache_shard *s = shard_of(c, h);
    struct cache_handle *e = lsm_malloc(sizeof(*e));
    e->file = file;
    e->offset = offset;
    e->value = value;
    e->deleter = deleter;
    e->charge = charge;
    e->hash = h;
    e->refs = 1; /* the caller's pin */
    e->in_cache = false;
    e->next_hash = NULL;
    e->prev = e->next = NULL;

    struct cache_handle *dead = NULL;
    pthread_mutex_lock(&s->mu);
    s->inserts++;
    if (s->capacity > 0) {
        struct cache_handle **pp = find_slot(s, h, file, offset);
        struct cache_handle *old = *pp;
        if (old != NULL) {
            *pp = old->next_hash;
            dead = detach(s, old);
            if (dead != NULL) {
                dead->next_hash = NULL;
            }
        }
        e->next_hash = NULL;
        *find_slot(s, h, file, offset) = e;
        e->in_cache = true;
        e->refs++;
        s->count++;
        s->usage += charge;
        if (s->count > s->nbuckets) {
            grow_table(s);
        }
        struct cache_handle *victims = evict(s);
        if (dead != NULL) {
            dead->next_hash = victims;
        } else {
            dead = victims;
        }
    }
    pthread_mutex_unlock(&s->mu);
    free_chain(dead);
    return e;
}

void *cache_handle_value(const struct cache_handle *h)
{
    return h->value;
}

void block_cache_release(struct block_cache *c, struct cache_handle *e)
{
    struct cache_shard *s = shard_of(c, e->hash);
    struct cache_handle *dead = NULL;
    pthread_mutex_lock(&s->mu);
    if (--e->refs == 0) {
        dead = e; /* already out of the table */
        dead->next_hash = NULL;
    } else if (e->refs == 1 && e->in_cache) {
        lru_push(s, e);
        dead = evict(s); /* the cache may be over capacity from pinned entries */
    }
    pthread_mutex_unlock(&s->mu);
    free_chain(dead);
}

void block_cache_stats(struct block_cache *c, struct block_cache_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->capacity = c->capacity;
    for (int i = 0; i < CACHE_SHARDS; i++) {
        struct cache_shard *s = &c->shards[i];
        pthread_mutex_lock(&s->mu);
        out->hits += s->hits;
        out->misses += s->misses;
        out->inserts += s->inserts;
        out->evictions += s->evictions;
        out->usage += s->usage;
        out->entries += s->count;
        pthread_mutex_unlock(&s->mu);
    }
}

void block_cache_set_capacity(struct block_cache *c, size_t capacity)
{
    c->capacity = capacity;
    for (int i = 0; i < CACHE_SHARDS; i++) {
        struct cache_shard *s = &c->shards[i];
        pthread_mutex_lock(&s->mu);
        shard_set_capacity(s, (capacity + CACHE_SHARDS - 1) / CACHE_SHARDS);
        struct cache_handle *dead = evict(s);
        pthread_mutex_unlock(&s->mu);
        free_chain(dead);
    }
}
