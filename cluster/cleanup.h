/* cluster/cleanup.h: private to cluster/: the ranges a node keeps for KVD CLEANUP
 * (cleanup.c). server/ sees cluster.h's cluster_kept_ranges only. */
#ifndef KVD_CLUSTER_CLEANUP_H
#define KVD_CLUSTER_CLEANUP_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "cluster/ring.h"

/* The token ranges member self replicates at replication factor n in ring cur
 * and, when fut is not NULL, in ring fut: sorted, adjacent ones merged. Pure.
 * *out is a new array (free() it; NULL when none); returns its length. */
size_t cleanup_kept_spans(const struct ring *cur, const struct ring *fut, uint32_t self,
                          size_t n, struct cluster_span **out);

#endif
