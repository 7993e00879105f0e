/* cluster/node.h: one node's coordinator, as a state machine with no I/O, driven
 * by both the real runtime (cluster/cluster.c, on libevent and links) and the
 * simulator (cluster/sim.c, on a virtual clock), so the simulator tests the code
 * that runs.
 *
 * What it keeps: the table of live coordinator ops (cluster/op.h) by id, each
 * started from the ring's replica set of its key and the members' up/down state
 * (asked through cnode_io.is_up); the routing of replies to their op (a reply for
 * an id no longer live, or from a replica the op no longer waits for, is
 * ignored); the hints the ops ask for (cluster/hints.h), delivered with
 * hints_due/hints_delivered, one in flight per target; the deadlines of the ops
 * (cnode_next_deadline / cnode_tick); counters for INFO.
 *
 * What it leaves to the driver (struct cnode_io): sending requests and hints
 * (encoding, links, the local store for this node's own replica), telling who is
 * up, reporting a decided result to the client, the clock (passed in as now) and
 * arming a timer for cnode_next_deadline.
 *
 * Callbacks run inside the node_* call that caused them (cnode_read may report a
 * failure at once: the driver defers it if its own contract needs that). A
 * callback must not call cnode_free; it may call cnode_cancel and start new ops.
 *
 * Pure code: no I/O, no globals, no clock of its own. The prefix is cnode_, not
 * node_: server/store/node.c owns node_init (libserver and libcluster link into
 * one binary).
 */
#ifndef KVD_CLUSTER_NODE_H
#define KVD_CLUSTER_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/hints.h"
#include "cluster/msg.h"
#include "cluster/op.h"
#include "cluster/ring.h"

struct cnode_io {
    void *ctx;
    /* 1 when the member of this tag is up (reachable); this node's own tag: 1. */
    int (*is_up)(void *ctx, uint32_t tag);
    /* Send verb (MSG_READ of (op->db, op->key), or MSG_WRITE of op_msg_record(op))
     * to replica tag; its answer comes back through cnode_on_read_reply /
     * cnode_on_write_reply with op->id. op is valid only during the call. */
    void (*send)(void *ctx, uint32_t tag, int verb, const struct op *op);
    /* The op's result is decided (op->result OP_OK or OP_FAILED; for a read,
     * op_msg_record(op) / op->rec.found give the winner). Once per op, never
     * after cnode_cancel. user is what cnode_read/cnode_write were given. */
    void (*completed)(void *ctx, const struct op *op, void *user);
    /* Send hint h (a KVD.PEER WRITE of h->db, h->key, h->rec) to target; its
     * answer comes back through cnode_on_hint_reply(target, h->seq). h is valid
     * only during the call. May be NULL when the driver has no hints. */
    void (*send_hint)(void *ctx, uint32_t target, const struct hint *h);
};

struct cnode_stats {
    uint64_t reads, writes;          /* ops started */
    uint64_t reads_failed;           /* reads that missed their quorum */
    uint64_t writes_failed;          /* writes that missed their quorum */
    uint64_t unavailable;            /* of those, refused at start (too few up) */
    uint64_t read_repairs;           /* repair writes sent by reads */
    uint64_t hints_added;
    uint64_t hints_sent;             /* hint deliveries sent */
    uint64_t hints_delivered;        /* acknowledged */
    uint64_t late_replies;           /* replies for ops no longer live */
};

struct cnode_op; /* node.c */
struct cnode_dl; /* node.c */

struct cnode {
    uint32_t self;          /* this node's tag */
    uint64_t timeout_ms;    /* cluster-request-timeout */
    struct cnode_io io;
    struct hints *hints;
    struct cnode_op **buckets; /* ops by id, chained */
    size_t nbuckets;          /* power of two */
    size_t nops;
    struct cnode_dl *heap;     /* (deadline, id), min first; stale entries skipped */
    size_t nheap, capheap;
    uint64_t next_id;
    struct cnode_stats st;
};

/* Prepares n (ids start at 1). Free with cnode_free. */
void cnode_init(struct cnode *n, uint32_t self, uint64_t timeout_ms, uint64_t hint_window_ms,
               size_t hint_max_bytes, const struct cnode_io *io);
/* Frees the ops (no callbacks run) and the hints. */
void cnode_free(struct cnode *n);

/* A quorum read of (db, key) at need answers from the key's first nrep replicas
 * on ring r (r must hold at least one member). Returns the op id (> 0). */
uint64_t cnode_read(struct cnode *n, const struct ring *r, size_t nrep, unsigned db,
                   const char *key, size_t klen, size_t need, uint64_t now, void *user);
/* A quorum write of rec (copied) to the key's nrep replicas, done at need acks. */
uint64_t cnode_write(struct cnode *n, const struct ring *r, size_t nrep, unsigned db,
                    const char *key, size_t klen, const struct msg_record *rec, size_t need,
                    uint64_t now, void *user);
/* cnode_write while members join or leave: to the key's replicas on ring cur
 * and, as pending replicas (op.h op_write_start_pending: need + pending
 * acknowledgements), those of ring fut not among them (ring.h ring_write_set).
 * fut NULL: cnode_write. */
uint64_t cnode_write_pending(struct cnode *n, const struct ring *cur, const struct ring *fut,
                            size_t nrep, unsigned db, const char *key, size_t klen,
                            const struct msg_record *rec, size_t need, uint64_t now,
                            void *user);
/* cnode_write_on with the last npending of tags pending (op.h
 * op_write_start_pending: need + npending acknowledgements): the simulator's
 * write sets during a join. */
uint64_t cnode_write_on_pending(struct cnode *n, const uint32_t *tags, size_t ntags,
                               size_t npending, unsigned db, const char *key, size_t klen,
                               const struct msg_record *rec, size_t need, uint64_t now,
                               void *user);
/* The same with the replica tags given (the simulator's replica sets). */
uint64_t cnode_read_on(struct cnode *n, const uint32_t *tags, size_t ntags, unsigned db,
                      const char *key, size_t klen, size_t need, uint64_t now, void *user);
/* cnode_read while members join or leave: READ to the key's replicas on ring
 * cur; the winner also goes to the pending replicas of ring fut and the result
 * waits for need + pending holders (op.h op_read_start_pending). fut NULL:
 * cnode_read. cnode_read_on_pending: the same with the tags given, the last
 * npending pending. */
uint64_t cnode_read_pending(struct cnode *n, const struct ring *cur, const struct ring *fut,
                           size_t nrep, unsigned db, const char *key, size_t klen, size_t need,
                           uint64_t now, void *user);
uint64_t cnode_read_on_pending(struct cnode *n, const uint32_t *tags, size_t ntags,
                              size_t npending, unsigned db, const char *key, size_t klen,
                              size_t need, uint64_t now, void *user);
uint64_t cnode_write_on(struct cnode *n, const uint32_t *tags, size_t ntags, unsigned db,
                       const char *key, size_t klen, const struct msg_record *rec,
                       size_t need, uint64_t now, void *user);

/* The caller is gone: completed will not run for id. The op goes on. */
void cnode_cancel(struct cnode *n, uint64_t id);
/* cnode_cancel that also hands back the op's user pointer (NULL when the op is
 * gone, already reported or cancelled), for the caller to free. */
void *cnode_cancel_user(struct cnode *n, uint64_t id);
/* Calls fn on the user pointer of every live op not yet reported (before
 * cnode_free, to free what the caller attached). */
void cnode_free_users(struct cnode *n, void (*fn)(void *));
/* 1 while op id is live (not finished). */
int cnode_live(const struct cnode *n, uint64_t id);

/* A READ answer from replica `from` for op id: item NULL when the request failed
 * (error or malformed reply, timeout, link down). */
void cnode_on_read_reply(struct cnode *n, uint64_t id, uint32_t from, const struct msg_item *item,
                        uint64_t now);
/* A WRITE answer (a write's ack or a read's repair ack): ok 0 on failure. */
void cnode_on_write_reply(struct cnode *n, uint64_t id, uint32_t from, int ok, uint64_t now);

/* The earliest deadline of a live op (0: none): call cnode_tick at or after it. */
uint64_t cnode_next_deadline(struct cnode *n);
/* Gives up what is outstanding in every op whose deadline is <= now. */
void cnode_tick(struct cnode *n, uint64_t now);

/* Hint delivery: drops expired hints, then sends (io.send_hint) the next hint of
 * every target that is up and has none in flight. Call it from a timer and when a
 * target comes up. Returns how many were sent. */
size_t cnode_hints_send(struct cnode *n, uint64_t now);
/* The answer to hint seq sent to target (ok 0: failed, offered again later). On
 * success the target's next hint is sent at once. */
void cnode_on_hint_reply(struct cnode *n, uint32_t target, uint64_t seq, int ok, uint64_t now);

#endif
