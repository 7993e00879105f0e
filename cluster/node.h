/* cluster/node.h: one node's coordinator, as a state machine with no I/O, driven
 * by both the real runtime (cluster/cluster.c, on libevent and links) and the
 * simulator (cluster/sim.c, on a virtual clock), so the simulator tests the code
 * that runs.
 *
 * What it keeps: the table of live coordinator ops (cluster/op.h) by id, each
 * started from the ring's replica set of its key and the members' up/down state
 * (asked through node_io.is_up); the routing of replies to their op (a reply for
 * an id no longer live, or from a replica the op no longer waits for, is
 * ignored); the hints the ops ask for (cluster/hints.h), delivered with
 * hints_due/hints_delivered, one in flight per target; the deadlines of the ops
 * (node_next_deadline / node_tick); counters for INFO.
 *
 * What it leaves to the driver (struct node_io): sending requests and hints
 * (encoding, links, the local store for this node's own replica), telling who is
 * up, reporting a decided result to the client, the clock (passed in as now) and
 * arming a timer for node_next_deadline.
 *
 * Callbacks run inside the node_* call that caused them (node_read may report a
 * failure at once: the driver defers it if its own contract needs that). A
 * callback must not call node_free; it may call node_cancel and start new ops.
 *
 * Pure code: no I/O, no globals, no clock of its own.
 */
#ifndef KVD_CLUSTER_NODE_H
#define KVD_CLUSTER_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/hints.h"
#include "cluster/msg.h"
#include "cluster/op.h"
#include "cluster/ring.h"

struct node_io {
    void *ctx;
    /* 1 when the member of this tag is up (reachable); this node's own tag: 1. */
    int (*is_up)(void *ctx, uint32_t tag);
    /* Send verb (MSG_READ of (op->db, op->key), or MSG_WRITE of op_msg_record(op))
     * to replica tag; its answer comes back through node_on_read_reply /
     * node_on_write_reply with op->id. op is valid only during the call. */
    void (*send)(void *ctx, uint32_t tag, int verb, const struct op *op);
    /* The op's result is decided (op->result OP_OK or OP_FAILED; for a read,
     * op_msg_record(op) / op->rec.found give the winner). Once per op, never
     * after node_cancel. user is what node_read/node_write were given. */
    void (*completed)(void *ctx, const struct op *op, void *user);
    /* Send hint h (a KVD.PEER WRITE of h->db, h->key, h->rec) to target; its
     * answer comes back through node_on_hint_reply(target, h->seq). h is valid
     * only during the call. May be NULL when the driver has no hints. */
    void (*send_hint)(void *ctx, uint32_t target, const struct hint *h);
};

struct node_stats {
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

struct node_op; /* node.c */
struct node_dl; /* node.c */

struct node {
    uint32_t self;          /* this node's tag */
    uint64_t timeout_ms;    /* cluster-request-timeout */
    struct node_io io;
    struct hints *hints;
    struct node_op **buckets; /* ops by id, chained */
    size_t nbuckets;          /* power of two */
    size_t nops;
    struct node_dl *heap;     /* (deadline, id), min first; stale entries skipped */
    size_t nheap, capheap;
    uint64_t next_id;
    struct node_stats st;
};

/* Prepares n (ids start at 1). Free with node_free. */
void node_init(struct node *n, uint32_t self, uint64_t timeout_ms, uint64_t hint_window_ms,
               size_t hint_max_bytes, const struct node_io *io);
/* Frees the ops (no callbacks run) and the hints. */
void node_free(struct node *n);

/* A quorum read of (db, key) at need answers from the key's first nrep replicas
 * on ring r (r must hold at least one member). Returns the op id (> 0). */
uint64_t node_read(struct node *n, const struct ring *r, size_t nrep, unsigned db,
                   const char *key, size_t klen, size_t need, uint64_t now, void *user);
/* A quorum write of rec (copied) to the key's nrep replicas, done at need acks. */
uint64_t node_write(struct node *n, const struct ring *r, size_t nrep, unsigned db,
                    const char *key, size_t klen, const struct msg_record *rec, size_t need,
                    uint64_t now, void *user);
/* The same with the replica tags given (the simulator's replica sets). */
uint64_t node_read_on(struct node *n, const uint32_t *tags, size_t ntags, unsigned db,
                      const char *key, size_t klen, size_t need, uint64_t now, void *user);
uint64_t node_write_on(struct node *n, const uint32_t *tags, size_t ntags, unsigned db,
                       const char *key, size_t klen, const struct msg_record *rec,
                       size_t need, uint64_t now, void *user);

/* The caller is gone: completed will not run for id. The op goes on. */
void node_cancel(struct node *n, uint64_t id);
/* node_cancel that also hands back the op's user pointer (NULL when the op is
 * gone, already reported or cancelled), for the caller to free. */
void *node_cancel_user(struct node *n, uint64_t id);
/* Calls fn on the user pointer of every live op not yet reported (before
 * node_free, to free what the caller attached). */
void node_free_users(struct node *n, void (*fn)(void *));
/* 1 while op id is live (not finished). */
int node_live(const struct node *n, uint64_t id);

/* A READ answer from replica `from` for op id: item NULL when the request failed
 * (error or malformed reply, timeout, link down). */
void node_on_read_reply(struct node *n, uint64_t id, uint32_t from, const struct msg_item *item,
                        uint64_t now);
/* A WRITE answer (a write's ack or a read's repair ack): ok 0 on failure. */
void node_on_write_reply(struct node *n, uint64_t id, uint32_t from, int ok, uint64_t now);

/* The earliest deadline of a live op (0: none): call node_tick at or after it. */
uint64_t node_next_deadline(struct node *n);
/* Gives up what is outstanding in every op whose deadline is <= now. */
void node_tick(struct node *n, uint64_t now);

/* Hint delivery: drops expired hints, then sends (io.send_hint) the next hint of
 * every target that is up and has none in flight. Call it from a timer and when a
 * target comes up. Returns how many were sent. */
size_t node_hints_send(struct node *n, uint64_t now);
/* The answer to hint seq sent to target (ok 0: failed, offered again later). On
 * success the target's next hint is sent at once. */
void node_on_hint_reply(struct node *n, uint32_t target, uint64_t seq, int ok, uint64_t now);

#endif
