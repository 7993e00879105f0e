/* cluster/join.h: private to cluster/: joining and leaving the ring (join.c), as
 * cluster.c drives it. server/ sees only cluster.h (cluster_config.join and
 * .replace, cluster_leave, cluster_remove_node, KVD NODES, INFO).
 *
 * HOW IT WORKS. The ring a coordinator reads from is the current one: members
 * normal or leaving. The future ring is the members normal or joining. While the
 * two differ, a write goes to both replica sets (ring.h ring_write_set: the
 * future-only replicas are pending and the write needs W + pending
 * acknowledgements, op.h), so a member that is joining gets every write made
 * while it streams, and
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
 *            any of them holds; a partial session is retried after the
 *            others, 200 ms later at the earliest;
 *            then save the tokens and gossip normal.
 *   leaving: gossip leaving; wait JOIN_SETTLE_MS; for each range of the current
 *            ring this node replicates, a repair session against the replicas
 *            the range gains once this node is gone pushes this node's records;
 *            then gossip left.
 *   removing (KVD REMOVENODE id, on any live node X, for a member D that is
 *            down): X gossips D's state on its behalf at generation
 *            GOSSIP_GEN_REMOVED with status leaving (gossip.h: D's own gossip
 *            never wins again, and D, if it restarts, hears it was removed and
 *            serves no more). The current ring keeps D (down: coordinators hint
 *            its writes), the future ring drops it, so each range D replicated
 *            gains a replica that gets the range's writes as a pending replica.
 *            Every node that sees D removed waits JOIN_SETTLE_MS, then pulls
 *            each range it gains (join_plan_remove) from the range's surviving
 *            replicas, each session complete (every survivor answered). X asks
 *            each such gainer every second how far it got (KVD.PEER REMOVED
 *            id -> 0..100); once all say 100, X gossips D left (still at the
 *            removed generation), and every node drops its hints for D.
 *   replacing (cluster-replace D, a fresh node R): R waits for the seeds, sees D
 *            normal and down by phi (refused, and serves nothing, when D's
 *            heartbeat rises, D is unknown or not normal); R takes D's tokens
 *            with status joining and gossips D removed (leaving), so the future
 *            ring has R where the current one has D: R is the only gainer. R
 *            pulls D's ranges from the survivors, coordinates like X, and at the
 *            end keeps its tokens, gossips normal and D left.
 *
 * Sessions run one at a time, one request in flight, paced by
 * stream-throughput-mb-per-sec (their own byte budget, apart from repair's), on the loop's
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

/* The plan of self's part in the removal of member dead (KVD REMOVENODE, or a
 * replace): cur is the ring with dead, fut the ring without it (and, for a
 * replace, with the replacing node at dead's tokens). Each range of cur that self
 * replicates in fut and not in cur, with peers its other replicas in cur (the
 * survivors: dead left out). Ranges with no survivor are left out (nobody holds
 * them). *out is a new array (free() it); returns its length. */
size_t join_plan_remove(const struct ring *cur, const struct ring *fut, uint32_t self,
                        uint32_t dead, size_t n, struct join_task **out);

/* 1 when a finished stream session s counts: a leaver's (push) only when every
 * new replica took all of it; a joiner's (pull) once at least c - w + 1 of the
 * range's c current replicas answered to the end (at least 1): every write
 * acknowledged by w of them is on one of those. So one replica down does not stop
 * a join at N=3, W=2. (Writes acknowledged at a lower W than the write-quorum
 * given may be missed; anti-entropy repair brings them later.) */
int join_session_enough(const struct repair_session *s, size_t w, int leaving);

/* ---- the resume file (dir/node-join; pure; unit-tested) ----
 *
 * A joiner in persistent mode keeps, while it streams, the tokens it took and the
 * ranges it has streamed, so that a restart resumes the join at the SAME tokens
 * (its data on disk is then the right data) instead of taking new ones. It is
 * never a membership marker: dir/node-tokens, written at the end, is the only one.
 * Text, one item a line, every line ending in '\n':
 *
 *   kvd-node-join 1
 *   id <node id>
 *   tokens <n>          n in 1..RING_MAX_TOKENS, then n lines: ascending decimal
 *   <token>
 *   done <k>            k in 0..JOIN_RESUME_MAX_RANGES, then k lines
 *   <from> <to>         a range streamed to the end (decimal; to 0: the ring's end)
 *   sum <16 hex>        XXH3-64 of every byte before this line
 *
 * A file that does not parse exactly so is corrupt: the node refuses to start
 * (the operator removes the file, and the node joins from the start). */
#define JOIN_RESUME_MAX_RANGES (RING_MAX_MEMBERS * 64)
#define JOIN_RESUME_VERSION 1

struct join_range {
    uint64_t from, to;
};

struct join_resume {
    uint64_t *tokens;
    size_t ntokens;
    struct join_range *done;
    size_t ndone;
};

/* Appends the file's text for node id to out: tokens[0..n) (ascending), and each
 * tasks[i] with finished[i] set as done. */
void join_resume_encode(const char *id, const uint64_t *tokens, size_t n,
                        const struct join_task *tasks, const unsigned char *finished,
                        size_t ntasks, struct msg_buf *out);
/* Parses buf[0..len) for node id into *r (join_resume_free it): 0, or -1 with err
 * (and *r empty): malformed, truncated, a bad checksum, another node's id. Every
 * count is checked against the bytes left before anything is allocated. */
int join_resume_parse(const char *buf, size_t len, const char *id, struct join_resume *r,
                      char *err, size_t errlen);
void join_resume_free(struct join_resume *r);

struct joiner;

struct joiner_config {
    int join;                 /* cluster_config.join */
    const char *replace;      /* cluster_config.replace: the dead member's id, or NULL */
    uint64_t bytes_per_sec;   /* the pace of streaming (0: unlimited) */
    int (*save_tokens)(const uint64_t *, size_t);
    void (*on_left)(void);
    /* cluster_config.save_join (NULL: cache mode, nothing kept) */
    int (*save_join)(const char *text, size_t len);
    /* the parsed join file of the run before, or NULL: taken over (emptied) */
    struct join_resume *resume;
};

struct joiner *joiner_new(struct cluster *cl, const struct joiner_config *cfg);
void joiner_free(struct joiner *j);
/* stream-throughput-mb-per-sec changed (CONFIG SET): the new pace, at once. */
void joiner_set_rate(struct joiner *j, uint64_t bytes_per_sec);
/* The 100 ms tick. */
void joiner_tick(struct joiner *j);
/* cluster_leave. */
int joiner_leave(struct joiner *j, const char **why);
/* cluster_join: this node, alone, joins through the seed just added (as
 * cluster-join at a first start). 0, or -1 with *why. */
int joiner_join(struct joiner *j, const char **why);
/* 1 once this node left (status left gossiped). */
int joiner_left(const struct joiner *j);
/* cluster_remove_node: this node removes member id (down by phi, normal, nobody
 * else moving; or already being removed, when its coordinator died: this node
 * takes over). 0, or -1 with *why. */
int joiner_remove(struct joiner *j, const char *id, const char **why);
/* KVD.PEER REMOVED id: how far this node got pulling the ranges it gains from
 * the removal of member id: 0..99 (0 also: it has not heard of it yet), 100
 * done. */
unsigned joiner_remove_progress(const struct joiner *j, const char *id);
/* cluster-replace was refused (the member is alive, unknown, not normal): why,
 * else NULL. */
const char *joiner_refused(const struct joiner *j);
/* KVD NODES' suffix for this node while it streams: " stream=42%" (else ""). */
void joiner_progress(const struct joiner *j, struct msg_buf *out);
/* KVD NODES' suffix for member tag while this node removes it: " removing=42%". */
void joiner_member_progress(const struct joiner *j, uint32_t tag, struct msg_buf *out);
/* INFO lines (join_*, stream_*, remove_*). */
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
/* Member i of the gossip view: its health by phi now (gossip_health). */
int cluster_member_health(const struct cluster *cl, size_t i, double *phi);
/* join.c changed another member's gossip state (gossip_remove): the rings follow. */
void cluster_gossip_changed(struct cluster *cl);
/* 1 when the seeds all answered (cluster_ready without the join's own checks). */
int cluster_seeds_answered(const struct cluster *cl);

#endif
