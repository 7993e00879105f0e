/* engine/iterator.h: internal iterators over internal keys, and their merge.
 *
 * An iiter walks (internal key, entry value) pairs in internal-key order. Sources:
 * a memtable, one table, a whole level >= 1 (its disjoint tables one after the
 * other, each opened only when reached). The merging iterator combines any number
 * of them into one ordered stream with a binary heap; it keeps every version of a
 * key (newest first), leaving visibility to its users: the DB iterator (snapshot,
 * tombstones, expiry; engine/db.c) and compaction (engine/compaction.c).
 *
 * Ownership: iiter_destroy frees the iterator and releases what it pinned (the
 * memtable or file reference it took at creation). The merging iterator owns its
 * children. Not thread-safe: one iterator, one thread.
 */
#ifndef KVD_ENGINE_ITERATOR_H
#define KVD_ENGINE_ITERATOR_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/memtable.h"
#include "engine/status.h"
#include "engine/version.h"

struct iiter;

struct iiter_ops {
    void (*seek_first)(struct iiter *it);
    void (*seek)(struct iiter *it, const char *ikey, size_t len); /* first >= ikey */
    void (*next)(struct iiter *it);
    void (*destroy)(struct iiter *it);
    int (*status)(const struct iiter *it, struct lsm_err *err);
};

/* Every iterator keeps its current entry in these fields (valid when key != NULL),
 * so the merge reads them without an indirect call. */
struct iiter {
    const struct iiter_ops *ops;
    const char *key; /* current internal key, NULL when not valid */
    size_t key_len;
    const char *val; /* current entry value */
    size_t val_len;
};

static inline bool iiter_valid(const struct iiter *it)
{
    return it->key != NULL;
}
static inline void iiter_seek_first(struct iiter *it)
{
    it->ops->seek_first(it);
}
static inline void iiter_seek(struct iiter *it, const char *k, size_t n)
{
    it->ops->seek(it, k, n);
}
static inline void iiter_next(struct iiter *it)
{
    it->ops->next(it);
}
static inline int iiter_status(const struct iiter *it, struct lsm_err *err)
{
    return it->ops->status(it, err);
}
void iiter_destroy(struct iiter **it);

/* Over a memtable; takes a reference on mt. */
struct iiter *iiter_memtable(struct memtable *mt);
/* Over one table; takes a reference on f. opt (copied; its upper bound bytes are
 * borrowed for the iterator's life) says how blocks are read; with opt->upper set,
 * no table whose smallest key is >= the bound is opened and no data block holding
 * only keys >= it is read (keys >= it in a block already read may still come out:
 * the caller stops there). */
struct iiter *iiter_table(struct file_meta *f, const struct sst_iter_options *opt);
/* Over level (>= 1) of v: takes a reference on each of its tables. */
struct iiter *iiter_level(struct version *v, int level,
                          const struct sst_iter_options *opt);
/* Over files[0..n) (disjoint, ordered by key); takes a reference on each. */
struct iiter *iiter_files(struct file_meta **files, int n,
                          const struct sst_iter_options *opt);
/* Merges children (takes ownership of the array's iterators, not the array). */
struct iiter *iiter_merge(struct iiter **children, int n);

#endif
