/* engine/dropset.h: private to engine/: the drop set behind lsm_set_drop_ranges
 * (engine.h): key ranges whose entries compaction removes, up to a sequence.
 *
 * A drop set is immutable once built and reference-counted: the database holds
 * one (db->drop, under mu) and every compaction takes its own reference at its
 * start, so replacing or clearing the set never frees what a running compaction
 * reads. Ranges are sorted and merged when built, so a lookup is a binary search.
 */
#ifndef KVD_ENGINE_DROPSET_H
#define KVD_ENGINE_DROPSET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

struct dropset;

/* A new set of the n ranges r (copied; empty ones left out), reference count 1,
 * for entries with sequence <= upto_seq, numbered generation. NULL when no range
 * is left. */
struct dropset *dropset_create(const struct lsm_range *r, size_t n, uint64_t upto_seq,
                               uint64_t generation);
struct dropset *dropset_ref(struct dropset *d);  /* NULL-safe; returns d */
void dropset_unref(struct dropset *d);           /* NULL-safe */

/* 1 when an entry of user key k with sequence seq is to be dropped. NULL-safe. */
bool dropset_drops(const struct dropset *d, const char *k, size_t klen, uint64_t seq);

uint64_t dropset_generation(const struct dropset *d); /* 0 for NULL */

#endif
