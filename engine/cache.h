/* engine/cache.h: the block cache, a sharded LRU keyed by (file number, block offset)
 * that holds decoded table blocks and charges their sizes against a capacity.
 *
 * How it works: 16 shards, each a mutex, an open hash table and an LRU list of the
 * entries nobody holds. A lookup or insert returns a handle that pins the entry
 * (refcount); a pinned entry is never freed, even when it is evicted or replaced:
 * it is freed by the release that drops the last reference. Usage counts pinned and
 * unpinned entries, so while many blocks are pinned the cache may exceed capacity.
 *
 * Values are opaque: the inserter gives a value pointer and a deleter that the cache
 * calls once nobody can see the entry any more. File numbers are never reused, so a
 * deleted table's blocks simply age out. All functions are thread-safe.
 */
#ifndef KVD_ENGINE_CACHE_H
#define KVD_ENGINE_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct block_cache;
struct cache_handle;

typedef void (*cache_deleter_fn)(void *value);

/* A cache holding up to capacity bytes of charge. capacity 0 keeps nothing once
 * released (every lookup misses). Free with block_cache_destroy. */
struct block_cache *block_cache_create(size_t capacity);
/* Frees every entry. No handle may still be held. Sets *c to NULL. */
void block_cache_destroy(struct block_cache **c);

/* The pinned entry for (file, offset), or NULL (a miss). Release the handle. */
struct cache_handle *block_cache_lookup(struct block_cache *c, uint64_t file,
                                        uint64_t offset);
/* Inserts value (the cache takes ownership: deleter(value) runs when it is gone),
 * replacing any entry with the same key, and returns it pinned. */
struct cache_handle *block_cache_insert(struct block_cache *c, uint64_t file,
                                        uint64_t offset, void *value, size_t charge,
                                        cache_deleter_fn deleter);
void *cache_handle_value(const struct cache_handle *h);
/* Drops a pin taken by lookup or insert. */
void block_cache_release(struct block_cache *c, struct cache_handle *h);

struct block_cache_stats {
    uint64_t hits;
    uint64_t misses;
    uint64_t inserts;
    uint64_t evictions;
    size_t usage; /* bytes charged, pinned entries included */
    size_t capacity;
    size_t entries;
};
void block_cache_stats(struct block_cache *c, struct block_cache_stats *out);
void block_cache_set_capacity(struct block_cache *c, size_t capacity);

#endif
