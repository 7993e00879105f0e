/* cluster/merkle.h: Merkle trees over a token range of a replica's records, for
 * anti-entropy repair (DESIGN.md "Cluster"; issue 11 "Anti-entropy"), and the
 * KVD.PEER MERKLE verb that asks a replica for its tree. Pure code: the records
 * come from cluster_store.range (token order); no I/O, no globals. The repair
 * session that compares trees and moves records is repair.h.
 *
 * HOW IT WORKS. A tree covers [from, to) (to 0: the ring's end) and every
 * database. Its leaves split the range into aligned blocks of 2^shift tokens
 * counted from `from`, where shift = bits(span - 1) - depth (at least 0): leaf
 * i holds the tokens from + i * 2^shift ... from + (i + 1) * 2^shift - 1. Because
 * the blocks are powers of two, leaf i of depth d is exactly leaves 2i and 2i+1
 * of depth d+1: a tree is built once at MERKLE_MAX_DEPTH and folded to any
 * smaller depth (merkle_fold), and depth 0 is the root. With a span that is not
 * a power of two the last leaves are empty.
 *
 * A record contributes h = XXH3(db, key, version, tombstone flag, expire_at,
 * digest): not its value, which its version identifies (two records with the
 * same version are the same write). A big hash is the exception: its version is
 * the newest write applied to the key, and two replicas can reach it with
 * different fields (one missed an older field write); its digest
 * (cluster_key.digest, fields.h "content digest") stands for the fields, so such
 * replicas' leaves differ and repair exchanges the records (repair.h). A leaf keeps the sum (mod 2^64) of its records'
 * h and their count; its hash is XXH3(sum, count), 0 when empty. The sum does
 * not depend on the order of records within a token, which the in-memory store
 * does not fix, and a repeated record does not cancel itself as with XOR.
 * Example: a range of 1000 tokens at depth 2: shift = bits(999) - 2 = 8, leaves
 * [from, from+256), [+256, +512), [+512, +768), [+768, +1000).
 *
 * Depth: merkle_depth_for(nkeys) is the smallest depth whose leaves hold at
 * most MERKLE_LEAF_KEYS keys on average, capped at MERKLE_MAX_DEPTH (65536
 * leaves, a 512 KiB reply). Only the records under leaves that differ are then
 * exchanged (repair.h).
 *
 * Wire format (beside msg.h's verbs):
 *
 *   KVD.PEER MERKLE from to depth   -> $bulk: nkeys:u64be leaf:u64be{2^depth}
 *
 *   from, to := decimal u64 (scan.h), to 0 = the ring's end, to != 0 needs to > from
 *   depth    := 0..MERKLE_MAX_DEPTH
 *   nkeys    := the records of the range (every db, tombstones included)
 */
#ifndef KVD_CLUSTER_MERKLE_H
#define KVD_CLUSTER_MERKLE_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"

#define MERKLE_MAX_DEPTH 16
#define MERKLE_LEAF_KEYS 2 /* a leaf holds about this many keys at the chosen depth */

/* A tree of [from, to) at depth: 2^depth leaves. Owned; merkle_free. */
struct merkle {
    uint64_t from, to;  /* to 0: the ring's end */
    unsigned depth;     /* 0..MERKLE_MAX_DEPTH */
    unsigned shift;     /* a leaf covers 2^shift tokens */
    uint64_t *sum;      /* per leaf: sum of the records' hashes */
    uint32_t *count;    /* per leaf: records */
    uint64_t nkeys;     /* records in the tree */
};

/* An empty tree of [from, to) at depth. 0, or -1 (depth too large, to <= from
 * with to != 0). */
int merkle_init(struct merkle *m, uint64_t from, uint64_t to, unsigned depth);
void merkle_free(struct merkle *m);

/* The leaf of token t (which must lie in the range). */
size_t merkle_leaf_of(const struct merkle *m, uint64_t t);
/* The tokens of leaf i: [*lo, *hi) (hi 0: the ring's end). 0, or -1 when the leaf
 * lies past the range (empty by construction). */
int merkle_leaf_range(const struct merkle *m, size_t i, uint64_t *lo, uint64_t *hi);

/* The hash of one record as the tree counts it. */
uint64_t merkle_record_hash(const struct cluster_key *k);
/* Adds a record (its token in the range; ignored otherwise). */
void merkle_add(struct merkle *m, const struct cluster_key *k);
/* Builds the tree of the store's records of [from, to) (every db) at depth. 0, or
 * -1 (a store error or no range callback; *m is then empty). */
int merkle_build(const struct cluster_store *st, uint64_t from, uint64_t to, unsigned depth,
                 struct merkle *m);
/* Folds m into out at a smaller (or equal) depth. */
void merkle_fold(const struct merkle *m, unsigned depth, struct merkle *out);

/* The hash of leaf i (0: empty). */
uint64_t merkle_leaf_hash(const struct merkle *m, size_t i);
/* The root: the leaf hash of depth 0. */
uint64_t merkle_root(const struct merkle *m);
/* The smallest depth whose leaves hold at most MERKLE_LEAF_KEYS keys on average. */
unsigned merkle_depth_for(uint64_t nkeys);

/* Compares m's leaves with a peer's (2^m->depth hashes): writes the indexes of
 * the leaves that differ to out (room for 2^depth), ascending; returns how many. */
size_t merkle_diff(const struct merkle *m, const uint64_t *peer, size_t *out);

/* ---- the verb ---- */

/* The request's argv (free with msg_argv_free). */
void merkle_encode_request(struct msg_argv *out, uint64_t from, uint64_t to, unsigned depth);
/* The replica side of MERKLE: exactly one reply appended to out (an error reply
 * for a malformed request or a store failure). */
void merkle_peer_answer(const struct cluster_store *st, const struct kv_slice *argv,
                        size_t argc, struct msg_buf *out);
/* Decodes a MERKLE reply of depth: the leaves into leaves[0..2^depth) (the
 * caller's), the peer's record count into *nkeys. MSG_OK, MSG_REMOTE (an error
 * reply) or MSG_INVALID (anything else, with err). */
int merkle_reply_decode(const redisReply *r, unsigned depth, uint64_t *leaves, uint64_t *nkeys,
                        char *err, size_t errlen);

#endif
