/* engine/block.h: a sorted block of key/value entries with prefix-compressed keys and
 * restart points (engine/FORMAT.md "Block"), its builder and an iterator that works
 * in place on the block's bytes.
 *
 * This layer does not know about checksums, files or the cache: the table (sst.c)
 * frames blocks on disk. Keys are compared with the function given to the iterator
 * (internal keys: ikey_compare), so a block can hold any ordered keys.
 */
#ifndef KVD_ENGINE_BLOCK_H
#define KVD_ENGINE_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/dbformat.h"
#include "engine/status.h"

typedef int (*block_cmp_fn)(const char *a, size_t alen, const char *b, size_t blen);

/* ------------------------------------------------------------------------------
 * Builder. Keys must be added in increasing order (the caller's promise).
 * ------------------------------------------------------------------------------ */
struct block_builder {
    struct lsm_buf buf;      /* encoded entries so far */
    struct lsm_buf restarts; /* restart offsets, u32 each (host order while building) */
    struct lsm_buf last_key; /* previous key, for prefix compression */
    int restart_interval;    /* keys per restart point, >= 1 */
    int counter;             /* keys since the last restart */
    uint32_t num_entries;    /* entries added since reset */
};

void block_builder_init(struct block_builder *b, int restart_interval);
void block_builder_add(struct block_builder *b, const char *key, size_t klen,
                       const char *value, size_t vlen);
/* Size of the block if finished now. */
size_t block_builder_estimate(const struct block_builder *b);
static inline bool block_builder_empty(const struct block_builder *b)
{
    return b->num_entries == 0;
}
/* Appends the restart trailer and returns the finished block, valid until the next
 * reset; *len is its size. */
const char *block_builder_finish(struct block_builder *b, size_t *len);
/* Empties the builder for the next block, keeping its buffers. */
void block_builder_reset(struct block_builder *b);
void block_builder_free(struct block_builder *b);

/* ------------------------------------------------------------------------------
 * A parsed block: borrowed bytes plus where the restart array is.
 * ------------------------------------------------------------------------------ */
struct block {
    const char *data;      /* the block contents (owned elsewhere) */
    size_t size;           /* contents length */
    uint32_t restarts_off; /* offset of the restart array */
    uint32_t num_restarts; /* >= 1 */
};

/* Checks the trailer and fills *blk; LSM_CORRUPT when it is malformed. */
int block_parse(const char *data, size_t size, struct block *blk);

/* ------------------------------------------------------------------------------
 * Iterator. Lives on the caller's stack or inside another object; allocates only
 * when a key is longer than its inline buffer (then keeps that memory until
 * block_iter_free). Entries are checked as they are decoded: a malformed entry makes
 * the iterator invalid with status LSM_CORRUPT, never a read out of bounds.
 * ------------------------------------------------------------------------------ */
struct block_iter {
    const struct block *blk;
    block_cmp_fn cmp;
    uint32_t cur;         /* offset of the current entry; restarts_off when invalid */
    uint32_t next;        /* offset of the entry after it */
    uint32_t restart_idx; /* restart point the last seek started from */
    const char *value;    /* current value (points into the block) */
    uint32_t value_len;
    char *key; /* current key: key_inline or heap */
    size_t key_len;
    size_t key_cap;
    int status; /* LSM_OK, or LSM_CORRUPT once a bad entry was seen */
    char key_inline[64];
};

void block_iter_init(struct block_iter *it, const struct block *blk, block_cmp_fn cmp);
void block_iter_free(struct block_iter *it);
static inline bool block_iter_valid(const struct block_iter *it)
{
    return it->cur < it->blk->restarts_off && it->status == 0;
}
void block_iter_seek_to_first(struct block_iter *it);
void block_iter_seek_to_last(struct block_iter *it);
/* Positions at the first entry with key >= target (invalid when none). */
void block_iter_seek(struct block_iter *it, const char *target, size_t tlen);
void block_iter_next(struct block_iter *it);
/* Key and value of the current entry; valid until the iterator moves. */
static inline const char *block_iter_key(const struct block_iter *it)
{
    return it->key;
}
static inline size_t block_iter_key_len(const struct block_iter *it)
{
    return it->key_len;
}
static inline const char *block_iter_value(const struct block_iter *it)
{
    return it->value;
}
static inline size_t block_iter_value_len(const struct block_iter *it)
{
    return it->value_len;
}
static inline int block_iter_status(const struct block_iter *it)
{
    return it->status;
}

#endif
