/* engine/memtable.h: the in-memory write buffer, a skiplist over an arena.
 *
 * A memtable holds internal entries (user key, sequence, kind, encoded value) in
 * internal-key order: user key ascending, then sequence descending, so the newest
 * version of a key comes first. Each entry is one arena allocation holding the
 * skiplist links, the internal key (user key || trailer u64le, contiguous, as the
 * table builder wants it) and the value; nothing is freed until the whole memtable
 * is, and the arena's chunks go back to a pool so the next memtable reuses memory
 * that is already faulted in.
 *
 * Threading: ONE writer at a time (the DB's write leader or recovery) calls
 * memtable_add; any number of readers may call memtable_get and iterate
 * concurrently without locks (links are published with release stores). Lifetime
 * is reference counted: memtable_ref/memtable_unref from any thread.
 *
 * What it leaves to others: value encoding (engine/dbformat.h), sequence numbers
 * and the decision of when a memtable is full (engine/db.c).
 */
#ifndef KVD_ENGINE_MEMTABLE_H
#define KVD_ENGINE_MEMTABLE_H

#include <stddef.h>
#include <stdint.h>

/* A pool of fixed-size arena chunks shared by the memtables of one database.
 * Thread-safe. Keeps at most max_cached free chunks. */
struct arena_pool;
struct arena_pool *arena_pool_create(size_t chunk_size, size_t max_cached);
void arena_pool_destroy(struct arena_pool **p);

struct memtable;

/* Creates an empty memtable with one reference; pool may be NULL (plain malloc). */
struct memtable *memtable_create(struct arena_pool *pool);
void memtable_ref(struct memtable *mt);
/* Drops a reference; the last one frees the memtable and returns its chunks. */
void memtable_unref(struct memtable *mt);

/* Adds an entry. kind is the internal kind byte (0 deletion, 1 value). Single
 * writer only. Key and value are copied. */
void memtable_add(struct memtable *mt, uint64_t seq, int kind, const void *key,
                  size_t klen, const void *val, size_t vlen);

/* Arena bytes in use (what counts against memtable-size). Any thread. */
size_t memtable_bytes(const struct memtable *mt);
/* Number of entries added. */
uint64_t memtable_count(const struct memtable *mt);

/* Finds the newest entry for key with sequence <= snap_seq. Returns 1 and fills
 * *kind, *val and *vlen (borrowed: valid while the caller holds a reference) and *seq
 * (if not NULL); 0 when the memtable has no such entry. */
int memtable_get(const struct memtable *mt, const void *key, size_t klen,
                 uint64_t snap_seq, int *kind, const char **val, size_t *vlen,
                 uint64_t *seq);

/* An iterator over all entries in internal-key order. Plain struct, no
 * allocation; valid while the caller holds a reference on the memtable. */
struct memtable_iter {
    const struct memtable *mt;
    const struct mt_node *node;
};
void memtable_iter_init(struct memtable_iter *it, const struct memtable *mt);
int memtable_iter_valid(const struct memtable_iter *it);
void memtable_iter_seek_first(struct memtable_iter *it);
/* Positions at the first entry >= (key, seq) in internal-key order. */
void memtable_iter_seek(struct memtable_iter *it, const void *key, size_t klen,
                        uint64_t seq);
void memtable_iter_next(struct memtable_iter *it);
/* The internal key (user key || trailer u64le): ikey_len = user key length + 8. */
const char *memtable_iter_ikey(const struct memtable_iter *it, size_t *ikey_len);
const char *memtable_iter_value(const struct memtable_iter *it, size_t *vlen);
uint64_t memtable_iter_trailer(const struct memtable_iter *it); /* seq<<8 | kind */

#endif
