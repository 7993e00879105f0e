/* cluster/scan.h: the pure parts of the keyless commands across the cluster
 * (SCAN, KEYS, DBSIZE, RANDOMKEY, FLUSHDB, FLUSHALL; issue 10): the range step
 * (which ring range holds a cursor), the KVD.PEER SCAN and FLUSH verbs (replica
 * side: one request against the store callbacks -> one reply; coordinator side:
 * the reply decoded), and the merge of R replicas' pages into one. The runtime
 * that sends them and waits (keyless.c) and what the server does with the keys
 * (server/cmd/fanout.c) are elsewhere.
 *
 * Wire format (beside msg.h's READ and WRITE):
 *
 *   KVD.PEER SCAN  db from to count   -> *(1+k): $next, then k items
 *   KVD.PEER FLUSH db|ALL hlc         -> :1 flushed | -ERR text
 *
 *   from, to, next, hlc := decimal u64, no sign, no leading zero
 *   [from, to) is a token range; to 0 is the ring's end (2^64); to != 0 needs
 *   to > from. count is 1..SCAN_MAX_COUNT.
 *   The replica answers its records of db (tombstones included) with from <= token
 *   < next, in token order: at least every record of the first token present, then
 *   more until count records (or SCAN_MAX_BYTES of reply) were given and the token
 *   changes, so a token's records are never split between two pages. next is then
 *   the first token not given, or `to` when the range is exhausted.
 *   item := token:u64be record_header(msg.h, MSG_REC_HDR bytes, no value)
 *           type:u8 key[rest]      (type: the server's value type code; 0 for a tombstone)
 *   FLUSH: the replica deletes db's records (every db: ALL) whose version's hlc is
 *   below hlc and keeps hlc as the db's floor: a later record below it is ignored.
 *
 * Pure code: no I/O, no globals.
 */
#ifndef KVD_CLUSTER_SCAN_H
#define KVD_CLUSTER_SCAN_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "cluster/ring.h"

#define SCAN_MAX_COUNT 10000          /* most records asked of a replica at once */
#define SCAN_MAX_BYTES (4u << 20)     /* a page stops growing past this (at a token change) */
#define SCAN_ITEM_HDR (8 + MSG_REC_HDR + 1)

/* One page: the keys of [from, next) of one replica, or of the merge. Owned. */
struct scan_page {
    uint64_t next;              /* 0: the ring's end */
    struct cluster_key *keys;   /* key bytes owned (one allocation each) */
    size_t n, cap;
};

void scan_page_free(struct scan_page *p);
/* Appends a copy of k to p. */
void scan_page_add(struct scan_page *p, const struct cluster_key *k);

/* The end (exclusive; 0 = the ring's end) of the ring range that holds token
 * cursor: the vnode that owns it is the first with token >= cursor, owning
 * (previous token, its token]; past the last vnode, the range runs to the end of
 * the ring (it wraps to the first vnode, whose replicas hold it). Every token in
 * [cursor, end) has the replicas of cursor. An empty ring: 0. */
uint64_t scan_range_end(const struct ring *r, uint64_t cursor);

/* Merges n pages of the same request: next is the smallest of theirs (0 counts as
 * 2^64), the keys below it are kept, one per key with the newest version by
 * kv_record_cmp, sorted by (token, key). out is filled (free with scan_page_free). */
void scan_merge(const struct scan_page *pages, size_t n, struct scan_page *out);

/* Decodes a SCAN reply for [from, to) into out (owned), checking every length,
 * that from < next <= to (0 = 2^64) and that the items' tokens are ascending in
 * [from, next). MSG_OK, MSG_REMOTE (an error reply) or MSG_INVALID, with err. */
int scan_reply_decode(const redisReply *r, uint64_t from, uint64_t to, struct scan_page *out,
                      char *err, size_t errlen);

/* The request's argv (free with msg_argv_free). */
void scan_encode_request(struct msg_argv *out, unsigned db, uint64_t from, uint64_t to,
                         size_t count);
/* db -1: ALL. */
void scan_encode_flush(struct msg_argv *out, int db, uint64_t hlc);

/* The replica side of SCAN and FLUSH (argv[1] names the verb): exactly one reply
 * appended to out. Every argument is checked (an error reply otherwise); a store
 * without range / flush answers an error. */
void scan_peer_answer(const struct cluster_store *st, const struct kv_slice *argv, size_t argc,
                      struct msg_buf *out);

/* The replica side of SCAN on this node's own store: the page of [from, to) as
 * the verb answers it (count 1..; next = to when exhausted). 0, or -1 (no range
 * callback, a bad range, a store error). */
int scan_local(const struct cluster_store *st, unsigned db, uint64_t from, uint64_t to,
               size_t count, struct scan_page *out);

/* Parses a decimal u64: no sign, no leading zero, no overflow. 0 or -1. */
int scan_parse_u64(const char *p, size_t len, uint64_t *out);

#endif
