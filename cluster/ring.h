/* cluster/ring.h: the token ring (DESIGN.md "Cluster"): members, their vnode
 * tokens, a key's token and its replica set.
 *
 * HOW IT WORKS. Each member owns a few tokens (vnodes: `vnodes` per node, scaled by
 * its weight) on the 64-bit ring of key tokens. A key's token is XXH3_64bits(key),
 * the same function as the store's ks_token (server/ks_dict.c) and the SCAN cursor.
 * A vnode with token T owns the range (previous token, T]; a key belongs to the
 * first vnode clockwise from its token (token >= key token, wrapping past the top
 * to the lowest vnode), and its N replicas are the members of the vnodes met going
 * on clockwise from there, each member counted once. Example with vnodes A:10,
 * B:20, A:30, C:40: a key of token 15 has replicas B, A, C (A's 30 is the second
 * distinct member; C's 40 the third); a key of token 45 wraps to A:10 and gets A, B, C.
 *
 * Every node must compute the same ring from the same membership, whatever order
 * it learned the members in: ring_build sorts members by id (then tag) and vnodes
 * by token, two equal tokens of different members ordered by member tag. Ids and
 * tags must be unique; a member's tokens are sorted and distinct.
 *
 * Tokens are drawn once per node from a seed (ring_tokens_generate: the simulator
 * passes a seeded value so a run replays; a real node draws a random seed once and
 * keeps the tokens in `dir`, ring_tokens_encode/decode giving the bytes).
 *
 * Pure code: no I/O, no globals. A ring is immutable after ring_build; a new
 * membership builds a new ring.
 */
#ifndef KVD_CLUSTER_RING_H
#define KVD_CLUSTER_RING_H

#include <stddef.h>
#include <stdint.h>

#define RING_ID_MAX 64         /* longest node id */
#define RING_ADDR_MAX 255      /* longest "ip:port" */
#define RING_MAX_TOKENS 4096   /* most tokens of one member */
#define RING_MAX_MEMBERS 1024  /* most members of a ring */
#define RING_MAX_REPLICAS 16   /* largest replication factor */

/* A member: what gossip (part 2) or the seeds tell about a node. */
struct ring_member {
    char id[RING_ID_MAX + 1];     /* node id, NUL-terminated, unique */
    uint32_t tag;                 /* 32-bit node tag (versions' tie-break), unique, != 0 */
    char addr[RING_ADDR_MAX + 1]; /* "ip:port" peers dial */
    double weight;                /* share scale (1.0 normal) */
    uint64_t *tokens;             /* sorted ascending, distinct */
    size_t ntokens;               /* 1..RING_MAX_TOKENS */
};

/* One token on the ring. */
struct ring_vnode {
    uint64_t token;  /* position */
    uint32_t member; /* index into ring.members */
};

struct ring {
    struct ring_member *members; /* sorted by id then tag; tokens owned */
    size_t nmembers;
    struct ring_vnode *vnodes;   /* sorted by token, then member tag */
    size_t nvnodes;
};

enum ring_status { RING_OK = 0, RING_INVALID = -1 };

/* The token of a key: XXH3_64bits, exactly the store's ks_token. */
uint64_t ring_key_token(const void *key, size_t len);

/* How many tokens a member of this weight gets: round(vnodes * weight), at least
 * 1, at most RING_MAX_TOKENS. vnodes 0 or weight <= 0 (or not a number) count as 1
 * token. */
size_t ring_token_count(unsigned vnodes, double weight);

/* Fills out[0..n) with n distinct tokens in ascending order, a pure function of
 * seed (splitmix64). n <= RING_MAX_TOKENS. */
void ring_tokens_generate(uint64_t seed, uint64_t *out, size_t n);

/* Builds *r from members[0..n) (any order), copying them (tokens included).
 * Returns RING_OK, or RING_INVALID with err set ("duplicate node tag 7") when n is 0
 * or > RING_MAX_MEMBERS, an id is empty or unterminated, an id or tag repeats, a tag
 * is 0, or a member's tokens are empty, too many, unsorted or repeated. On error *r
 * is left empty (ring_destroy is still safe). */
int ring_build(struct ring *r, const struct ring_member *members, size_t n, char *err,
               size_t errlen);

/* Frees what ring_build allocated; *r becomes empty. */
void ring_destroy(struct ring *r);

/* The replica set of a token: the first min(n, nmembers, RING_MAX_REPLICAS)
 * distinct members clockwise, written as member indices to out (room for
 * RING_MAX_REPLICAS), first replica first. Returns how many. */
size_t ring_replicas(const struct ring *r, uint64_t token, size_t n, uint32_t *out);

/* ring_replicas as member tags (room for RING_MAX_REPLICAS). Returns how many. */
size_t ring_replica_tags(const struct ring *r, uint64_t token, size_t n, uint32_t *tags);

/* 1 when tag is among the n tags. */
int ring_tags_have(const uint32_t *tags, size_t n, uint32_t tag);

/* 1 when the member with this tag is among the first n replicas of token. */
int ring_replicates(const struct ring *r, uint64_t token, size_t n, uint32_t tag);

/* The index of the member with this tag, or -1. */
long ring_find_tag(const struct ring *r, uint32_t tag);

/* The fraction of the token space (0..1) for which member index m is among the
 * first nrep replicas (nrep 1: its primary share). */
double ring_share(const struct ring *r, size_t m, size_t nrep);

/* Tokens for a member joining r (DESIGN.md "Cluster", joining): n (1..RING_MAX_TOKENS)
 * distinct tokens, ascending, none equal to a token of r, chosen for the replica
 * shares at replication factor nrep. Greedy: each new token is one of the cuts of
 * the BALANCE_CANDIDATES widest ranges (of r plus the tokens chosen so far): a cut
 * takes min(half the range, a token's fair width 2^64 / (T + n)) from its low end;
 * the one kept leaves every member's replica share nearest its fair share (nrep x
 * its tokens / all tokens, the joiner counted at n: token counts follow
 * node-weight), by sum of (share - fair)^2 / fair. An empty r gets n evenly
 * spaced tokens. Writes out[0..k), returns k (< n only when no range is 2 wide).
 * Pure: the same ring gives the same tokens. */
size_t ring_tokens_balance(const struct ring *r, size_t n, size_t nrep, uint64_t *out);

/* The replicas a write of token must reach while members join or leave
 * (Cassandra's pending endpoints): first the current ring's replicas, then those
 * of the future ring that are not among them (pending: they get the write so
 * that no write made while they stream is missed; the write then needs W +
 * pending acknowledgements, op.h op_write_start_pending). Tags, at most
 * RING_MAX_REPLICAS in all (pending ones beyond are dropped: only with n close
 * to RING_MAX_REPLICAS). fut NULL: no change is pending. Returns the count;
 * *npending gets how many of them (at the end) are pending. */
size_t ring_write_set(const struct ring *cur, const struct ring *fut, uint64_t token,
                      size_t n, uint32_t *tags, size_t *npending);

/* Token bytes (for `dir` and for messages):
 *   tokens := count:u32be token:u64be{count}     count 1..RING_MAX_TOKENS, ascending
 * ring_tokens_encoded_len(n) bytes are written by ring_tokens_encode. */
size_t ring_tokens_encoded_len(size_t n);
void ring_tokens_encode(const uint64_t *tokens, size_t n, unsigned char *out);
/* Decodes buf[0..len): the length must be exactly that of the count it declares, the
 * count 1..RING_MAX_TOKENS, the tokens strictly ascending. On RING_OK *out is a new
 * array (free() it) of *n tokens; on RING_INVALID nothing is allocated. */
int ring_tokens_decode(const void *buf, size_t len, uint64_t **out, size_t *n);

#endif
