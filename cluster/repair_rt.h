/* cluster/repair_rt.h: private to cluster/: the runtime of anti-entropy repair
 * (repair_rt.c) as cluster.c drives it. server/ includes cluster.h only
 * (cluster_repair, the repair fields of struct cluster_config, INFO).
 *
 * Threading: loop thread only.
 */
#ifndef KVD_CLUSTER_REPAIR_RT_H
#define KVD_CLUSTER_REPAIR_RT_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"

struct repairer;

/* interval_s: a background pass over this node's ranges starts every this many
 * seconds (0: none); bytes_per_sec: the pace of all repair traffic (0: none). */
struct repairer *repairer_new(struct cluster *cl, unsigned interval_s, uint64_t bytes_per_sec);
/* After the links are destroyed (their callbacks ran). */
void repairer_free(struct repairer *r);
/* The 100 ms tick: the rate budget, the background pass, the next requests. */
void repairer_tick(struct repairer *r);
/* KVD.PEER REPAIR from to: a peer hands this node a range it replicates. */
void repairer_peer_answer(struct repairer *r, const struct kv_slice *argv, size_t argc,
                          struct msg_buf *out);
/* INFO lines. */
void repairer_info(const struct repairer *r, struct msg_buf *out);
/* The node is back after a long absence (cluster_config.long_absence): from now
 * it repairs every range it replicates at once, retrying partial ones, and is not
 * serving until each had a complete session that started after this call. */
void repairer_hold(struct repairer *r);
/* 1 when serving (r NULL too); 0 with why, when not NULL ("repairing after a long absence ...:
 * 3 of 48 ranges repaired") while held. */
int repairer_serving(const struct repairer *r, char *why, size_t whylen);

/* ---- cluster.c, for repair_rt.c (beside keyless.h's) ---- */
struct repairer *cluster_repairer_of(struct cluster *cl);
/* cluster_ready without the repair after a long absence: the ring is known (why
 * as cluster_ready's). */
int cluster_ring_known(const struct cluster *cl, const char **why);
/* A line in the node's log (cluster_config.log). */
void cluster_note(const struct cluster *cl, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
