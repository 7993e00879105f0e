/* cluster/op.h: the coordinator's operations on one key, as state machines with
 * no I/O (etcd raft's shape): the caller starts an op, feeds it replies and timer
 * ticks, and each step fills a struct op_actions with what to do next: messages to
 * send, hints to keep, whether the client's result is now decided, whether the op
 * is over. Sockets, timers, the hint store and reply writing are the caller's
 * (the link and the server; the simulator in tests). No globals.
 *
 * WRITE op (quorum write, Dynamo): the versioned record goes to all n replicas;
 * the result is OK at W acknowledgements, FAILED ("got x of W") once W can no
 * longer be reached (errors) or at the deadline. The op lives on after OK until
 * every replica answered or the deadline passed, so that each replica that did not
 * acknowledge (error, timeout, or known down at the start) becomes a hint. Hints
 * never count toward W. If fewer than W replicas are up at the start, the op fails
 * at once and sends nothing (Cassandra's "unavailable": the write did not happen).
 * A FAILED write that reached some replicas is indeterminate: it may appear later.
 *
 * READ op (quorum read with blocking read repair, Cassandra 4.0): READ goes to all
 * up replicas; at R answers the newest record by kv_record_cmp wins (a big hash's
 * field records are merged per field instead, fields_merge: the winner is the
 * merge, a replica holds it when its answer covers it, and its repair carries only
 * the fields it lacks) (a tombstone
 * above a value of the same version; "nothing" below everything); each replica
 * that answered something older or nothing is sent the winner (WRITE) and the
 * result is held until R replicas are known to hold the winner (answered it or
 * acknowledged the repair), so a value once returned is never followed by an older
 * one on a later quorum read. The op then lingers until the deadline: a late
 * answer that is older is repaired in the background (not awaited). FAILED when
 * fewer than R answer or the repairs do not complete in time.
 *
 * Late replies (after the op decided or after a replica's request was given up)
 * are ignored; duplicate replies are ignored. Ops are found by id by the caller;
 * a reply for an id no longer live is dropped by the caller.
 */
#ifndef KVD_CLUSTER_OP_H
#define KVD_CLUSTER_OP_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/msg.h"
#include "cluster/ring.h"

#define OP_MAX_REPLICAS RING_MAX_REPLICAS

enum op_kind { OP_READ = 1, OP_WRITE = 2 };
enum op_result { OP_PENDING = 0, OP_OK = 1, OP_FAILED = 2 };

/* One message to send: verb MSG_READ (db, key) or MSG_WRITE (db, key, op->rec). */
struct op_send {
    uint32_t node; /* replica tag */
    int verb;      /* enum msg_verb */
};

/* What a step asks the caller to do. Filled by every op_* step (reset first). */
struct op_actions {
    size_t nsend;
    struct op_send send[OP_MAX_REPLICAS]; /* requests to send now */
    size_t nhint;
    uint32_t hint[OP_MAX_REPLICAS]; /* keep (db, key, op->rec) as a hint for these */
    int completed; /* 1: the result (op->result) was decided by this step */
    int finished;  /* 1: the op wants nothing more; the caller destroys it */
};

/* An owned record (a copy: replies and requests are short-lived). */
struct op_record {
    int found;           /* 0: nothing (no value, no tombstone) */
    struct kv_version v;
    int deleted;
    uint64_t expire_at;
    char *val;           /* owned, vlen bytes */
    size_t vlen;
    int fields;          /* a big hash's field records (fields.h) */
};

struct op {
    int kind;            /* enum op_kind */
    uint64_t id;         /* the caller's id (replies are matched by it) */
    unsigned db;
    char *key;           /* owned */
    size_t klen;
    size_t n;                          /* replicas */
    uint32_t nodes[OP_MAX_REPLICAS];   /* replica tags, ring order */
    uint8_t st[OP_MAX_REPLICAS];       /* per replica state (op.c) */
    struct op_record seen[OP_MAX_REPLICAS]; /* read: what each answered (val kept only
                                               for field records: repair diffs them) */
    size_t need;         /* W or R */
    size_t npending;     /* the last npending nodes are pending (a member joining or
                            leaving, ring.h ring_write_set); write: need is then W +
                            npending; read: need stays R, and the result waits for
                            R + npending holders (op_read_start_pending) */
    size_t acks;         /* write: acknowledgements; read: answers */
    size_t holders;      /* read: replicas known to hold the winner */
    int phase;           /* read: gather, repair, linger (op.c) */
    int result;          /* enum op_result */
    int unavailable;     /* 1: failed at start, fewer than need replicas up */
    uint64_t timeout_ms;
    uint64_t deadline;   /* ms, the caller's clock: call op_tick at or after it */
    struct op_record rec;/* write: the record shipped; read: the winner so far */
};

/* Starts a WRITE of rec to nodes[0..n) (n 1..OP_MAX_REPLICAS, need 1..), copying
 * key and record. down (may be NULL) marks replicas known to be down: they get a
 * hint at once and no request. */
void op_write_start(struct op *op, uint64_t id, unsigned db, const char *key, size_t klen,
                    const uint32_t *nodes, size_t n, size_t need,
                    const struct msg_record *rec, const uint8_t *down, uint64_t now,
                    uint64_t timeout_ms, struct op_actions *out);

/* op_write_start to nodes[0..n) of which the last npending (< n) are pending
 * replicas (a member joining, or the new owners of a leaving member's range):
 * the write needs need + npending acknowledgements, any replica's counting
 * (Cassandra's blockFor = W + pending). Why not W among the current replicas
 * only: once the change is done the range's replicas are the current ones minus
 * npending plus the pending ones, so W + npending acknowledgements leave at
 * least W of them holding the write, and a quorum read still meets it; W among
 * the current ones could leave W - npending (the simulator found that stale
 * read). Unavailable when fewer than need + npending are up. */
void op_write_start_pending(struct op *op, uint64_t id, unsigned db, const char *key,
                            size_t klen, const uint32_t *nodes, size_t n, size_t npending,
                            size_t need, const struct msg_record *rec, const uint8_t *down,
                            uint64_t now, uint64_t timeout_ms, struct op_actions *out);

/* Starts a READ of (db, key) from nodes[0..n) at quorum need. */
void op_read_start(struct op *op, uint64_t id, unsigned db, const char *key, size_t klen,
                   const uint32_t *nodes, size_t n, size_t need, const uint8_t *down,
                   uint64_t now, uint64_t timeout_ms, struct op_actions *out);
/* op_read_start while members join or leave: nodes[0..n) of which the last
 * npending (< n) are pending replicas (ring.h ring_write_set). READ goes to the
 * current ones (need answers decide the winner, as always); the pending ones are
 * sent the winner (a repair WRITE) at the decision, and the result waits until
 * need + npending replicas hold it (unavailable when fewer are up). Why: a value
 * a read returns may sit on R current replicas only (a failed write, or read
 * repair among the replicas that answered); once the ring changes, the range's
 * replicas lose npending of them, and a quorum read there could return an older
 * one (the simulator found that non-monotonic read after a leave). need +
 * npending holders leave at least need of them in the new replica set, as W +
 * npending does for writes. A winner of "nothing" needs no repair. */
void op_read_start_pending(struct op *op, uint64_t id, unsigned db, const char *key,
                           size_t klen, const uint32_t *nodes, size_t n, size_t npending,
                           size_t need, const uint8_t *down, uint64_t now, uint64_t timeout_ms,
                           struct op_actions *out);

/* A READ reply from node: item is the decoded answer, NULL when the request failed
 * (error reply, malformed reply, link lost). Read ops only; others ignore it. */
void op_on_read_reply(struct op *op, uint32_t node, const struct msg_item *item,
                      uint64_t now, struct op_actions *out);

/* A WRITE reply from node (a write's ack or a read's repair ack): ok 1 for :0/:1,
 * 0 for a failure. */
void op_on_write_reply(struct op *op, uint32_t node, int ok, uint64_t now,
                       struct op_actions *out);

/* The clock: at or after op->deadline, gives up what is outstanding. */
void op_tick(struct op *op, uint64_t now, struct op_actions *out);

/* For a FAILED op, the reason in words ("got 1 of 2 write acknowledgements"). */
void op_error_text(const struct op *op, char *buf, size_t len);

/* The op's record as a message record (borrowing op's memory). */
struct msg_record op_msg_record(const struct op *op);
/* What to send node for a MSG_WRITE step: op_msg_record, except a READ's repair
 * of a big hash's field records to a replica that answered field records: only the
 * fields it lacks (fields_diff), written into buf (the caller's; out borrows it). */
struct msg_record op_send_record(const struct op *op, uint32_t node, struct msg_buf *buf);

/* Frees what the op owns. */
void op_destroy(struct op *op);

#endif
