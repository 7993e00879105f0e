/* cluster/join.h: private to cluster/: joining and leaving the ring (join.c), as
 * cluster.c drives it. server/ sees only cluster.h (cluster_config.join,
 * cluster_leave, KVD NODES, INFO).
 *
 * HOW IT WORKS. The ring a coordinator reads from is the current one: members
 * normal or leaving. The future ring is the members normal or joining. While the
 * two differ, a write goes to both replica sets (ring.h ring_write_set: the
 * future-only replicas are pending and the write needs W + pending
 * acknowledgements, op.h), so a member that is joining gets every write made while it streams, and
 * the new owners of a leaving member's ranges get every write made while it
 * hands them over.
 *
 *   joining: wait for the seeds, a non-empty current ring and no other member
 *            joining or leaving, for JOIN_VIEW_MS in a row (the view of the
 *            ring has settled: one change at a time); take balanced
 *            tokens (ring_tokens_balance) and gossip them with status joining;
 *            wait JOIN_SETTLE_MS so that every coordinator hears of it (writes
 *            sent to the old replicas only are then over); stream: for each
 *            range of the future ring this node replicates, a repair session
 *            (repair.h) against the range's current replicas pulls every record
 *            any of them holds; a partial session is queued again (retried);
 *            then save the tokens and gossip normal.
 *   leaving: gossip leaving; wait JOIN_SETTLE_MS; for each range of the current
 *            ring this node replicates, a repair session against the replicas
 *            the range gains once this node is gone pushes this node's records;
 *            then gossip left.
 *
 * Sessions run one at a time, one request in flight, paced by
 * repair-throughput-mb-per-sec like repair (its own byte budget), on the loop's
 * 100 ms tick: streaming never blocks the loop. The plan (the ranges and their
 * peers) is made once when streaming starts; its size is bounded by the ring's
 * ranges.
 *
 * Threading: loop thread only.
 */
#ifndef KVD_CLUSTER_JOIN_H
#define KVD_CLUSTER_JOIN_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "cluster/msg.h"
#include "cluster/repair.h"
#include "cluster/ring.h"

#define JOIN_SETTLE_MS 3000 /* gossip's reach before streaming (Cassandra: ring_delay) */
#define JOIN_VIEW_MS 2000   /* a steady view of the ring before taking tokens */

/* One range to stream: [from, to) (to 0: the ring's end) and the peers of its
 * session. */
struct join_task {
    uint64_t from, to;
    uint32_t peers[RING_MAX_REPLICAS];
    size_t npeers;
};

/* The plan of self's change from ring cur to ring fut (pure; unit-tested):
 * leaving 0 (self joins: in fut, not in cur): each range of fut that self
 * replicates in fut, with peers its replicas in cur; leaving 1 (self leaves: in
 * cur, not in fut): each range of cur that self replicates in cur, with peers the
 * replicas it has in fut and not in cur. Ranges with no peer are left out.
 * *out is a new array (free() it); returns its length. */
size_t join_plan(const struct ring *cur, const struct ring *fut, uint32_t self, size_t n,
                 int leaving, struct join_task **out);

/* 1 when a finished stream session s counts: a leaver's (push) only when every
 * new replica took all of it; a joiner's (pull) once at least c - w + 1 of the
 * range's c current replicas answered to the end (at least 1): every write
 * acknowledged by w of them is on one of those. So one replica down does not stop
 * a join at N=3, W=2. (Writes acknowledged at a lower W than the write-quorum
 * given may be missed; anti-entropy repair brings them later.) */
int join_session_enough(const struct repair_session *s, size_t w, int leaving);

struct joiner;

/* join: cluster_config.join; bytes_per_sec: the pace (0: unlimited). */
struct joiner *joiner_new(struct cluster *cl, int join, uint64_t bytes_per_sec,
                          int (*save_tokens)(const uint64_t *, size_t), void (*on_left)(void));
void joiner_free(struct joiner *j);
/* The 100 ms tick. */
void joiner_tick(struct joiner *j);
/* cluster_leave. */
int joiner_leave(struct joiner *j, const char **why);
/* 1 once this node left (status left gossiped). */
int joiner_left(const struct joiner *j);
/* KVD NODES' suffix for this node while it streams: " stream=42%" (else ""). */
void joiner_progress(const struct joiner *j, struct msg_buf *out);
/* INFO lines (join_*). */
void joiner_info(const struct joiner *j, struct msg_buf *out);

/* ---- cluster.c, for join.c ---- */
struct gossip *cluster_gossip_of(struct cluster *cl);
/* The future ring while a member joins or leaves, else NULL. */
const struct ring *cluster_future_of(const struct cluster *cl);
/* This node's tokens changed (gossip, its member entry, the rings). */
void cluster_set_self_tokens(struct cluster *cl, const uint64_t *tokens, size_t n);
/* This node's status changed (gossip, the rings). */
void cluster_set_self_status(struct cluster *cl, int status);
/* write-quorum (the configured default W). */
int cluster_write_quorum(const struct cluster *cl);
/* 1 when a member other than this node is joining or leaving. */
int cluster_others_moving(const struct cluster *cl);
/* 1 when the seeds all answered (cluster_ready without the join's own checks). */
int cluster_seeds_answered(const struct cluster *cl);

#endif
