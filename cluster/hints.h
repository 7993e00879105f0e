/* cluster/hints.h: hinted handoff storage (DESIGN.md "Cluster", Cassandra's
 * hints): writes a replica missed, kept by the coordinator per target node and
 * delivered in order (as KVD.PEER WRITE) when the target answers again, removed on
 * its acknowledgement. Hints never count toward W (cluster/op.h).
 *
 * Bounds: a hint older than the window (hinted-handoff-window, ms) is dropped
 * (hints_expire, and at every add); the total size is bounded by max_bytes
 * (hinted-handoff-max-bytes): a new hint that does not fit is refused (the hints
 * already kept stay: they are older, and their targets get them in order, as
 * Cassandra's max_hints_size_per_host). Every drop and refusal is counted (struct
 * hints_stats). The window should not
 * exceed the tombstone grace period (seam-today.md pitfall 4): a hint older than
 * that could resurrect a value whose tombstone was collected.
 *
 * In memory, with an observer (hints_observe) through which persistent mode
 * mirrors every hint kept and removed into its hint log (cluster/hintlog.h), and a
 * serialise/deserialise pair (the simulator's crashes):
 *   hints := "KVH1" count:u32be hint{count}
 *   hint  := target:u32be created_ms:u64be db:u16be klen:u32be key[klen]
 *            rlen:u32be record[rlen]          record: as in cluster/msg.h
 *
 * Pure code: no I/O, no globals, time passed in. hints_due/hints_delivered keep
 * one hint in flight per target (in order, retried after a timeout); sending and
 * the timer are the caller's.
 */
#ifndef KVD_CLUSTER_HINTS_H
#define KVD_CLUSTER_HINTS_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/msg.h"

#define HINT_OVERHEAD 64 /* bytes counted per hint beyond key and value */

enum hints_status { HINTS_OK = 0, HINTS_DROPPED = -1, HINTS_INVALID = -2 };

struct hint {
    uint64_t seq;          /* order of arrival, over all targets */
    uint32_t target;       /* node tag */
    uint64_t created_ms;
    unsigned db;
    char *key;             /* owned */
    size_t klen;
    struct msg_record rec; /* rec.val owned by the hint */
    size_t bytes;          /* what it counts toward max_bytes */
};

struct hints_stats {
    uint64_t added;
    uint64_t delivered;      /* acknowledged and removed */
    uint64_t dropped_window; /* older than the window */
    uint64_t dropped_bytes;  /* refused: max_bytes was reached */
    uint64_t dropped_big;    /* one hint larger than max_bytes: never kept */
};

struct hints_queue; /* per target (hints.c) */

/* Told of every hint kept and every hint removed (delivered, expired); the hint is
 * valid only during the call. pending: the target's hints still pending after the
 * removal. Callbacks must not change the hints. */
struct hints_observer {
    void *ctx;
    void (*added)(void *ctx, const struct hint *x);
    void (*removed)(void *ctx, const struct hint *x, size_t pending);
};

struct hints {
    uint64_t window_ms;
    size_t max_bytes;
    struct hints_queue *qs; /* one per target seen */
    size_t nq;
    uint64_t next_seq;
    size_t count, bytes;    /* pending over all targets */
    struct hints_stats stats;
    struct hints_observer obs; /* zero: none */
};

/* A new, empty hint store; free with hints_destroy. */
struct hints *hints_create(uint64_t window_ms, size_t max_bytes);
void hints_destroy(struct hints **h);

/* Keeps a copy of (db, key, rec) for target, created now. First drops what the
 * window expired. HINTS_OK, or HINTS_DROPPED when it does not fit under max_bytes
 * (counted in dropped_bytes; dropped_big when the hint alone is larger). */
int hints_add(struct hints *h, uint32_t target, uint64_t now, unsigned db, const char *key,
              size_t klen, const struct msg_record *rec);
/* The same for a hint created earlier (created <= now; a hint loaded from the hint
 * log): HINTS_DROPPED also when it is already out of the window (dropped_window). */
int hints_add_created(struct hints *h, uint32_t target, uint64_t created, uint64_t now,
                      unsigned db, const char *key, size_t klen, const struct msg_record *rec);

/* Sets (or, with NULL, clears) the observer. */
void hints_observe(struct hints *h, const struct hints_observer *obs);

/* Drops hints created at or before now - window_ms. */
void hints_expire(struct hints *h, uint64_t now);

/* Pending hints for target. */
size_t hints_pending(const struct hints *h, uint32_t target);

/* The i-th oldest pending hint for target (0 = next to deliver), or NULL. Valid
 * until the next call that changes h. */
const struct hint *hints_peek(const struct hints *h, uint32_t target, size_t i);

/* The target acknowledged the hint numbered seq: removes it. HINTS_OK, or
 * HINTS_INVALID when there is no such pending hint (already dropped). */
int hints_ack(struct hints *h, uint32_t target, uint64_t seq);

/* Delivery, one hint in flight per target so that each target gets its hints in
 * order. A hint to send now. */
struct hint_send {
    uint32_t target;
    const struct hint *hint; /* valid until the next call that changes h */
};

/* The hints to send now, at most max, written to out: for every target with
 * pending hints and none in flight, its oldest hint, now marked in flight until
 * now + timeout_ms (then it is offered again: the target did not answer). Call it
 * from a timer, and after hints_delivered to keep a target's queue moving. Sending
 * to a target known down is the caller's choice (skip it in out). */
size_t hints_due(struct hints *h, uint64_t now, uint64_t timeout_ms, struct hint_send *out,
                 size_t max);

/* The target answered the WRITE of hint seq: ok 1 (acknowledged: removed), 0
 * (error: offered again by the next hints_due). HINTS_OK when seq was the hint in
 * flight (or still pending, for a late ack after a retry), HINTS_INVALID otherwise
 * (already delivered or dropped: ignore). */
int hints_delivered(struct hints *h, uint32_t target, uint64_t seq, int ok);

/* Forgets what is in flight (the links were reset, the node restarted). */
void hints_flight_reset(struct hints *h);

/* Writes the targets that have pending hints to out (room for max), returns how
 * many there are (may exceed max). */
size_t hints_targets(const struct hints *h, uint32_t *out, size_t max);

/* Serialises every pending hint in arrival order, appended to b. */
void hints_encode(const struct hints *h, struct msg_buf *b);

/* Adds the hints of buf[0..len) (hints_encode's bytes) to h, in order, under h's
 * bounds (window against now, max_bytes). The whole buffer is checked first: on
 * HINTS_INVALID (bad magic, count, lengths, record, trailing bytes) nothing is
 * added. */
int hints_decode(struct hints *h, const void *buf, size_t len, uint64_t now);

#endif
