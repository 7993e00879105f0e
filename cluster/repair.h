/* cluster/repair.h: anti-entropy repair of one token range between this node and
 * the range's other replicas (issue 11 "Anti-entropy"), as a pure state machine,
 * and the KVD.PEER RANGE verb that gives a replica's full records of a token
 * sub-range. The trees are merkle.h's; the runtime that picks ranges, sends the
 * requests over the links, paces them and reports in INFO is repair_rt.c; the
 * simulator drives the same session over its network (sim.c).
 *
 * HOW A SESSION WORKS. For each peer in turn (sequentially, one request in
 * flight): build this node's root of the range (one scan of the range), ask the
 * peer for its root (MERKLE depth 0: 16 bytes); equal roots end that peer. Else
 * the leaves' depth D is chosen from both key counts (merkle_depth_for). Up to
 * REPAIR_TOP_DEPTH the peer's leaves at D are asked and diffed with this node's.
 * Deeper, in two levels: the peer's tree at REPAIR_TOP_DEPTH (128 leaves, 1 KiB)
 * first, then, for each of its leaves that differs, the peer's tree of only that
 * leaf's tokens at D - REPAIR_TOP_DEPTH, each diffed with this node's tree of the
 * same tokens: the leaves that cross the network follow the differences, not the
 * range's size (at D = 13 a single level sends 64 KiB for one differing key, two
 * levels about 1.5 KiB). For each run of adjacent differing leaves, page through
 * the peer's records of the run (RANGE, resumable by token). Each page is compared
 * with this node's records of the same tokens: a newer or missing record of the
 * peer is applied here (last-write-wins: applying an older one is a no-op
 * anyway), a newer or missing record of this node is pushed to the peer with
 * MWRITE, read from the store when it is sent. Records of one version whose
 * content digests differ (big hashes, merkle.h) go both ways: the peer's full
 * field record is applied here (per field), then this node's merged one is pushed
 * (a FIELDS record: store->read's form), so both end with the union of the
 * fields, each at its newest version. Only the records under differing
 * leaves cross the network. A pass that pulled records from some peer is
 * followed by another pass (at most REPAIR_MAX_PASSES), so a record learned
 * from the second peer reaches the first: after a session every replica that
 * answered holds, for every key of the range, the newest record any of them
 * held at the start (writes made meanwhile are the coordinator's business).
 * A peer that fails (an error, a bad reply, a timeout, its link down) is
 * dropped for the rest of the session, which then finishes "partial".
 *
 * Wire format of RANGE (beside msg.h's and scan.h's verbs):
 *
 *   KVD.PEER RANGE from to count maxbytes -> *(1+k): $next, then k items
 *
 *   [from, to) a token range as in scan.h; count 1..REPAIR_RANGE_MAX_COUNT;
 *   maxbytes 1..REPAIR_RANGE_MAX_BYTES. The replica answers its records (every
 *   db, tombstones included) with from <= token < next in token order: at least
 *   every record of the first token present, then more until count records or
 *   maxbytes of items were given and the token changes. next is the first token
 *   not given, or `to` when the range is exhausted.
 *   item := token:u64be db:u16be klen:u32be key[klen] record(msg.h)
 *
 * Pure code: no I/O, no globals; the store is struct cluster_store.
 */
#ifndef KVD_CLUSTER_REPAIR_H
#define KVD_CLUSTER_REPAIR_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "cluster/merkle.h"
#include "cluster/ring.h"

#define REPAIR_RANGE_MAX_COUNT 1024      /* most records of one RANGE reply */
#define REPAIR_RANGE_MAX_BYTES (4u << 20) /* a page stops growing past this */
#define REPAIR_PAGE_COUNT 512            /* what a session asks per page */
#define REPAIR_PAGE_BYTES (1u << 20)
#define REPAIR_PUSH_BATCH 256            /* records per MWRITE of a push */
#define REPAIR_MAX_PASSES 3
#define REPAIR_ITEM_HDR (8 + 2 + 4)
#define REPAIR_TOP_DEPTH 7 /* the first level of a deep comparison: 128 leaves */

/* One record of a page, owned (key and value). */
struct repair_rec {
    uint64_t token;
    unsigned db;
    char *key;
    size_t klen;
    struct msg_record rec; /* rec.val owned */
};

/* A page of records of [from, next). Owned; repair_page_free. */
struct repair_page {
    uint64_t next; /* 0: the ring's end */
    struct repair_rec *recs;
    size_t n, cap;
};

void repair_page_free(struct repair_page *p);

/* The page of [from, to) as the verb answers it (count, maxbytes >= 1). 0, or -1
 * (no range callback, a bad range, a store error). */
int repair_range_local(const struct cluster_store *st, uint64_t from, uint64_t to, size_t count,
                       size_t maxbytes, struct repair_page *out);
void repair_encode_range(struct msg_argv *out, uint64_t from, uint64_t to, size_t count,
                         size_t maxbytes);
/* The replica side of RANGE: exactly one reply appended to out. */
void repair_range_answer(const struct cluster_store *st, const struct kv_slice *argv,
                         size_t argc, struct msg_buf *out);
/* Decodes a RANGE reply for [from, to): every length, from < next <= to, tokens
 * ascending in [from, next), every record. MSG_OK, MSG_REMOTE or MSG_INVALID. */
int repair_range_decode(const redisReply *r, uint64_t from, uint64_t to,
                        struct repair_page *out, char *err, size_t errlen);

/* ---- the ring's ranges ---- */

/* A token range [from, to) (to 0: the ring's end). */
struct repair_span {
    uint64_t from, to;
};

/* The ranges of ring g: vnode T owns (previous token, T], i.e. [prev + 1, T + 1);
 * the first vnode's range wraps and is split at the ring's end; an empty range
 * (two vnodes on one token) is left out. *out is a new array (free() it). Returns
 * how many. The replicas of a range are ring_replicas(g, from). */
size_t repair_ring_ranges(const struct ring *g, struct repair_span **out);

/* ---- the session ---- */

struct repair_stats {
    uint64_t bytes_in;        /* reply bytes received (trees, pages, acks) */
    uint64_t bytes_out;       /* request bytes sent (records pushed included) */
    uint64_t records_pulled;  /* peers' records applied here */
    uint64_t records_pushed;  /* this node's records the peers applied */
    uint64_t leaves_differing;
    uint64_t requests;
};

enum repair_phase { RP_ROOT, RP_TOP, RP_LEAVES, RP_FETCH, RP_PUSH, RP_NEXT_PEER, RP_DONE };

/* What a session wants sent: argv to peer tag; its reply (or NULL for a failure)
 * goes back through repair_session_on_reply with id. */
struct repair_send {
    uint32_t tag;
    uint64_t id;
    struct msg_argv a; /* owned by the caller once returned: msg_argv_free */
    size_t bytes;      /* the request's size on the wire, about */
};

struct repair_push; /* a queued key to push (repair.c) */

struct repair_session {
    const struct cluster_store *st;
    uint64_t from, to;                  /* the range: [from, to), to 0 the ring's end */
    uint32_t peers[RING_MAX_REPLICAS];  /* the other replicas */
    size_t npeers;
    unsigned char failed[RING_MAX_REPLICAS];
    size_t cur;                         /* peer index of the pass */
    int pass;                           /* 1.. */
    int pulled_in_pass;                 /* records pulled in this pass */
    enum repair_phase phase;
    uint64_t next_id, waiting;          /* the request in flight (0: none) */
    struct merkle local;                /* this node's tree being compared */
    unsigned depth;                     /* of the leaves asked under each sub-range */
    uint64_t peer_nkeys;
    struct repair_span *subs;           /* the sub-ranges whose leaves are asked */
    size_t nsubs, capsubs, sub;         /* count, capacity, the one being asked */
    struct repair_span *runs;           /* token spans of adjacent differing leaves */
    size_t nruns, capruns, run;         /* count, capacity, the one being fetched */
    uint64_t fetch_from, fetch_to;      /* what is left of the run */
    struct repair_push *push;           /* keys to push to the current peer */
    size_t npush, cappush, pushed;
    size_t batch;                       /* records in the MWRITE in flight */
    struct repair_stats st_;            /* this session's counters */
};

/* Starts a session for [from, to) with peers[0..npeers) (this node excluded). */
void repair_session_init(struct repair_session *s, const struct cluster_store *st,
                         uint64_t from, uint64_t to, const uint32_t *peers, size_t npeers,
                         uint64_t first_id);
void repair_session_free(struct repair_session *s);
/* The next request to send: 1 (*out filled), 0 (waiting for a reply), -1 (the
 * session is over: repair_session_complete says how). */
int repair_session_next(struct repair_session *s, struct repair_send *out);
/* The reply to request id (NULL: it failed: link down, timeout). A reply for
 * another id is ignored. */
void repair_session_on_reply(struct repair_session *s, uint64_t id, const redisReply *r);
/* Once over: 1 when every peer took part to the end, 0 partial. */
int repair_session_complete(const struct repair_session *s);
/* The bytes of a reply as it crossed the wire, about (rate limiting, INFO). */
size_t repair_reply_bytes(const redisReply *r);

#endif
