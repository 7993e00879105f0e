/* cluster/paxos.h: per-key consensus (issue 12), the pure core: a CASPaxos
 * register per key with flexible quorums (phase 1 on R replicas, phase 2 on W,
 * R + W > N). cluster/PAXOS.md is the spec: messages, states, round trips, and
 * why each rule is there. This file holds the two state machines and the gate:
 *
 * - the ACCEPTOR of one key (a replica): paxos_acceptor_prepare / _accept, pure
 *   functions of its three ballots and the ballot asked; the value itself is the
 *   store's record, whose version IS the accepted ballot;
 * - the GATE of one replica: a node that forgot its promises (cache mode,
 *   restarted) refuses phase 1 until it has rejoined and every ballot minted
 *   before its restart (paxos_gate_*);
 * - the PROPOSER of one command on one key (a coordinator), etcd raft's shape
 *   like op.h: paxos_start, then replies and ticks fed in, each step filling a
 *   struct paxos_actions (messages to send, "run the command now", completed,
 *   finished).
 *
 * - the MESSAGES: KVD.PEER PREPARE / ACCEPT and their replies, encoded and
 *   strictly decoded, and the replica side of both against struct paxos_store.
 *
 * Not here: persisting promises (the store's callbacks), the links, the command
 * seam (which runs the unchanged handler on the value phase 1 found), read
 * repair and hints in consensus mode: PAXOS.md "Integration" lists them for the
 * session that wires this in. No I/O, no globals: time, the HLC and randomness
 * come in through struct paxos_env.
 */
#ifndef KVD_CLUSTER_PAXOS_H
#define KVD_CLUSTER_PAXOS_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/msg.h"
#include "cluster/ring.h"
#include "proto/version.h"

#define PAXOS_MAX_REPLICAS RING_MAX_REPLICAS
#define PAXOS_MAX_ATTEMPTS 16 /* most rounds one command may take */

/* ---- ballots ----
 * A ballot is a struct kv_version (HLC timestamp, node tag), ordered by
 * kv_version_cmp: unique per proposer (the tag), above every ballot the proposer
 * heard of (the HLC observes them), and the version of the record it writes, so
 * at consistency ONE last-write-wins still orders consensus writes. {0, 0} is
 * "no ballot". */
static inline int paxos_ballot_zero(struct kv_version b) {
    return b.hlc == 0 && b.node == 0;
}

static inline struct kv_version paxos_ballot_max(struct kv_version a, struct kv_version b) {
    return kv_version_cmp(a, b) >= 0 ? a : b;
}

/* ---- the acceptor of one key ---- */

/* What a replica keeps for one key besides the record (PAXOS.md "Acceptor state").
 * accepted and origin describe the record the store holds; promised is new state
 * the store must keep (durably in persistent mode) beside it. */
struct paxos_acceptor {
    struct kv_version promised; /* highest ballot promised or accepted */
    struct kv_version accepted; /* the held record's version; zero: none */
    struct kv_version origin;   /* the held content's origin (PAXOS.md "Origin") */
};

/* A replica's vote. */
enum paxos_vote {
    PAXOS_PROMISE = 1,    /* phase 1 yes: here is what I accepted */
    PAXOS_ACCEPTED = 2,   /* phase 2 yes: the value is stored */
    PAXOS_REJECT = 3,     /* no: *highest is the ballot to beat */
    PAXOS_NOT_VOTING = 4, /* the gate holds: count me as failed */
};

/* The gate of one replica (every key): open for a node whose promises survive
 * (persistent mode, or first start). */
struct paxos_gate {
    struct kv_version floor; /* refuse every ballot below it */
    int holding;             /* 1: refuse phase 1 until paxos_gate_rejoined */
    uint64_t max_age_ms;     /* paxos_gate_tick keeps floor >= clock - this; 0 off */
};

/* An open gate. max_age_ms (0: none): a ballot older than that by this node's
 * clock is refused (paxos_gate_tick), so a proposal's messages cannot be accepted
 * after its lifetime however long the network held them: what makes "wait until
 * every proposal that saw my forgotten promises is over" enforceable (PAXOS.md
 * "Cache mode"). It must exceed a round's timeout + 2 x the clock offset bound +
 * the tick period, so that no live round is refused. */
void paxos_gate_init(struct paxos_gate *g, uint64_t max_age_ms);
/* Raises the floor to (wall_ms - max_age_ms, 0): called from the node's tick and
 * before a batch of votes. */
void paxos_gate_tick(struct paxos_gate *g, uint64_t wall_ms);
/* A node that forgot its promises and values (cache mode) starts: every ballot
 * minted before now must be refused. A ballot's HLC is at most the proposer's
 * wall clock plus what it observed ahead of it (kv_hlc_observe_bounded), and the
 * proposer's wall clock is at most 2 x max offset from this one (the clock guard),
 * so the floor is wall_ms + margin_ms with margin_ms = 2 x
 * cluster-max-clock-offset-ms + the HLC's max_ahead bound. Phase 1 is refused
 * (PAXOS_NOT_VOTING) until paxos_gate_rejoined: its empty answer would hide a
 * chosen value. */
void paxos_gate_restart_forgetful(struct paxos_gate *g, uint64_t wall_ms, uint64_t margin_ms);
/* A complete repair of every range this node replicates has run since the
 * restart (repair_rt.c's hold after a long absence) and max_age_ms + 2 x the
 * clock offset bound have passed since it, so no ballot its forgotten promises
 * were about can be accepted anywhere (PAXOS.md "Durability and restarts"). */
void paxos_gate_rejoined(struct paxos_gate *g);

/* Phase 1: promise b, or refuse it. PAXOS_PROMISE (a->promised raised to b; the
 * caller answers with the held record and a->origin, after the new promise is
 * durable), PAXOS_REJECT (*highest = the ballot to beat) or PAXOS_NOT_VOTING. A
 * repeated prepare of the ballot already promised is promised again (a duplicated
 * message), one at or below the accepted ballot is rejected. g may be NULL. */
int paxos_acceptor_prepare(struct paxos_acceptor *a, const struct paxos_gate *g,
                           struct kv_version b, struct kv_version *highest);

/* Phase 2: accept (b, content of origin), or refuse it. PAXOS_ACCEPTED: the caller
 * stores the record at version b with origin (durably before it answers); a
 * repeated accept of the accepted ballot is accepted again and stores nothing new.
 * PAXOS_REJECT when b is below the promise, the accepted ballot or the gate's
 * floor. This check guards EVERY way a record reaches a replica in consensus
 * mode: a read repair, a hint or an anti-entropy push is a late copy of an accept
 * and must pass it too (PAXOS.md "Every write is an accept"). */
int paxos_acceptor_accept(struct paxos_acceptor *a, const struct paxos_gate *g,
                          struct kv_version b, struct kv_version origin,
                          struct kv_version *highest);

/* ---- values ---- */

/* An accepted value: a record (msg.h's fields) and its origin. Owned. */
struct paxos_value {
    int found;                /* 0: nothing accepted (the key does not exist) */
    struct kv_version ballot; /* the accepted ballot = the record's version */
    struct kv_version origin; /* ballot of the proposal that computed this content */
    int deleted;              /* tombstone */
    uint64_t expire_at;       /* Unix ms, 0 none */
    char *val;                /* owned, vlen bytes */
    size_t vlen;
};

/* dst = a copy of src (dst's old bytes freed). */
void paxos_value_copy(struct paxos_value *dst, const struct paxos_value *src);
void paxos_value_free(struct paxos_value *v);

/* ---- the proposer of one command ---- */

enum paxos_kind {
    PAXOS_READ = 1,  /* GET and friends: no change; finishes what it saw */
    PAXOS_WRITE = 2, /* a command that may change the value (SET, INCR, ...) */
};
enum paxos_verb { PAXOS_MSG_PREPARE = 1, PAXOS_MSG_ACCEPT = 2 };
enum paxos_result {
    PAXOS_PENDING = 0,
    PAXOS_OK = 1,            /* decided; p->value is the register's value now */
    PAXOS_FAILED = 2,        /* nothing was changed by this command */
    PAXOS_INDETERMINATE = 3, /* the change may or may not have been applied (once) */
};

/* The proposer's view of the world: its node's tag, HLC and clock, randomness. */
struct paxos_env {
    uint32_t tag;                   /* this node: every ballot's node */
    uint64_t *hlc;                  /* this node's HLC (proto/hlc.h arithmetic) */
    uint64_t (*wall_ms)(void *ctx); /* Unix ms, the node's clock */
    uint64_t (*rand)(void *ctx);    /* uniform 64 bits, for backoff */
    void *ctx;
};

/* Tuning of one command. */
struct paxos_config {
    size_t r, w;             /* phase 1 and phase 2 quorums: r + w > n */
    uint64_t timeout_ms;     /* of one round (phase 1 or phase 2) */
    uint64_t backoff_ms;     /* first backoff after a lost round; doubles, jittered */
    unsigned max_attempts;   /* rounds of phase 1, 1..PAXOS_MAX_ATTEMPTS */
};

/* One message to send: PREPARE (db, key, p->ballot) or ACCEPT (db, key, p->value,
 * whose ballot is p->ballot and origin p->value.origin). */
struct paxos_send {
    uint32_t node;
    int verb; /* enum paxos_verb */
};

/* What a step asks the caller to do (reset by every step). */
struct paxos_actions {
    size_t nsend;
    struct paxos_send send[PAXOS_MAX_REPLICAS];
    int need_value; /* 1: phase 1 is done: run the command on p->base and call
                       paxos_propose (a WRITE only) */
    int completed;  /* 1: p->result was decided by this step */
    int finished;   /* 1: the proposer wants nothing more; destroy it */
};

/* Rules broken on purpose, for the model checker to show it catches each
 * (paxos_test.c); 0 in every real use. */
enum paxos_mutation {
    PAXOS_MUT_RETRY_WITHOUT_PHASE1 = 1, /* a retry re-sends the accept, higher ballot */
    PAXOS_MUT_REAPPLY_ON_RETRY = 2,     /* a retry runs the command again */
    PAXOS_MUT_READ_ANY_ANSWER = 4,      /* a 1-RTT read without W agreeing answers */
};

struct paxos_proposer {
    uint64_t id;                     /* the caller's (replies are routed by it) */
    int kind;                        /* enum paxos_kind */
    size_t n;
    uint32_t nodes[PAXOS_MAX_REPLICAS];
    uint8_t down[PAXOS_MAX_REPLICAS];/* known down at start: never asked */
    uint8_t st[PAXOS_MAX_REPLICAS];  /* per replica, this round (paxos.c) */
    struct kv_version seen[PAXOS_MAX_REPLICAS]; /* phase 1: accepted ballot each
                                                   promise reported */
    struct paxos_config cfg;
    const struct paxos_env *env;
    int phase;                       /* paxos.c's PH_* */
    unsigned attempt;                /* rounds of phase 1 started */
    unsigned rtts;                   /* round trips used (phase 1 + phase 2) */
    struct kv_version ballot;        /* this round's */
    struct kv_version highest;       /* highest ballot heard of */
    struct paxos_value base;         /* phase 1: highest accepted value in the promises */
    size_t base_votes;               /* promises that reported base.ballot */
    struct paxos_value value;        /* phase 2: proposed; at OK: the result */
    int fixed;                       /* 1: our change was sent in an accept: its
                                        content is final, never recomputed */
    struct kv_version fixed_on;      /* origin of the base our change was computed on */
    size_t votes;                    /* this round: promises or accepts */
    int result;                      /* enum paxos_result */
    int why;                         /* FAILED/INDETERMINATE: paxos.c's WHY_* */
    uint64_t deadline;               /* call paxos_tick at or after it */
    int mutate;                      /* enum paxos_mutation bits; tests only */
};

/* Starts a command on nodes[0..n) (1..PAXOS_MAX_REPLICAS), down[i] (may be NULL)
 * marking replicas known down. Fails at once (FAILED, finished, nothing sent)
 * when r + w <= n (consensus needs intersecting quorums: use Dynamo mode), a
 * quorum is 0 or above n, or fewer than max(r, w) replicas are up. Otherwise
 * sends PREPARE to every up replica. env must outlive the proposer. */
void paxos_start(struct paxos_proposer *p, const struct paxos_env *env, uint64_t id, int kind,
                 const uint32_t *nodes, size_t n, const uint8_t *down,
                 const struct paxos_config *cfg, uint64_t now, struct paxos_actions *out);

/* Replies; ballot is the ballot the replica answered (replies to an earlier
 * round, duplicates and unknown nodes are ignored). accepted: what the replica
 * holds (found 0: nothing), borrowed. */
void paxos_on_promise(struct paxos_proposer *p, uint32_t node, struct kv_version ballot,
                      const struct paxos_value *accepted, uint64_t now,
                      struct paxos_actions *out);
void paxos_on_accepted(struct paxos_proposer *p, uint32_t node, struct kv_version ballot,
                       uint64_t now, struct paxos_actions *out);
void paxos_on_reject(struct paxos_proposer *p, uint32_t node, struct kv_version ballot,
                     struct kv_version highest, uint64_t now, struct paxos_actions *out);
/* The request failed: error reply, NOT_VOTING, link lost. */
void paxos_on_failure(struct paxos_proposer *p, uint32_t node, struct kv_version ballot,
                      uint64_t now, struct paxos_actions *out);

/* After need_value: the command ran on p->base. change is the new content
 * (found, deleted, expire_at, val, vlen; ballot and origin are set here), or NULL
 * when the command changed nothing (SET NX on an existing key, a WRONGTYPE
 * error): then phase 2 is skipped when p->base is known chosen. The caller keeps
 * the command's reply: a retry that finds this change already applied completes
 * with it, never running the command twice. */
void paxos_propose(struct paxos_proposer *p, const struct paxos_value *change, uint64_t now,
                   struct paxos_actions *out);

/* The clock: at or after p->deadline a round is lost (retried after a backoff,
 * or the command ends) or a backoff is over (the next round starts). */
void paxos_tick(struct paxos_proposer *p, uint64_t now, struct paxos_actions *out);

/* For a FAILED or INDETERMINATE command, why, in words. */
void paxos_error_text(const struct paxos_proposer *p, char *buf, size_t len);

void paxos_destroy(struct paxos_proposer *p);

/* ---- messages (PAXOS.md "Messages") ----
 *
 *   KVD.PEER PREPARE db key ballot          ballot := hlc:u64be node:u32be (12 bytes)
 *   KVD.PEER ACCEPT  db key record origin   record as msg.h, its version the ballot;
 *                                           origin a 12-byte ballot
 *   reply := *4 :vote $ballot item origin
 *     PROMISE  :1 the ballot promised, item = ($-1 | $record held), origin = ($-1 |
 *              $origin) (nil exactly when the item is)
 *     ACCEPTED :2 the ballot accepted, $-1, $-1
 *     REJECT   :3 the ballot to beat, $-1, $-1
 *   -ERR text: malformed, the store failed, or NOTVOTING (the gate holds)
 */

#define PAXOS_BALLOT_LEN 12

enum paxos_msg_verb { PAXOS_REQ_PREPARE = 1, PAXOS_REQ_ACCEPT = 2 };

/* A decoded request; pointers borrow from the argv. */
struct paxos_request {
    int verb;                 /* enum paxos_msg_verb */
    unsigned db;
    struct kv_slice key;
    struct kv_version ballot; /* PREPARE: asked; ACCEPT: the record's version */
    struct msg_record rec;    /* ACCEPT */
    struct kv_version origin; /* ACCEPT */
};

/* A decoded reply; rec borrows from the redisReply. */
struct paxos_reply {
    int vote;                 /* PAXOS_PROMISE, PAXOS_ACCEPTED or PAXOS_REJECT */
    struct kv_version ballot; /* answered, or the ballot to beat */
    int found;                /* PROMISE: a record is held */
    struct msg_record rec;
    struct kv_version origin;
};

void paxos_encode_prepare(struct msg_argv *out, unsigned db, const char *key, size_t klen,
                          struct kv_version ballot);
/* The record's value is copied into out->buf. */
void paxos_encode_accept(struct msg_argv *out, unsigned db, const char *key, size_t klen,
                         const struct msg_record *rec, struct kv_version origin);
/* argv[0..argc) is KVD.PEER PREPARE|ACCEPT ...: MSG_OK, or MSG_INVALID with err. */
int paxos_decode_request(const struct kv_slice *argv, size_t argc, struct paxos_request *out,
                         char *err, size_t errlen);

/* Replies, appended to b. rec NULL: nothing held. */
void paxos_reply_promise(struct msg_buf *b, struct kv_version ballot,
                         const struct msg_record *rec, struct kv_version origin);
void paxos_reply_vote(struct msg_buf *b, int vote, struct kv_version ballot);
/* MSG_OK, MSG_REMOTE (an error reply: err has its text) or MSG_INVALID. */
int paxos_decode_reply(const redisReply *r, struct paxos_reply *out, char *err, size_t errlen);

/* ---- the replica side ---- */

/* The store as a replica's acceptor sees it. Called on the loop thread. */
struct paxos_store {
    void *ctx;
    /* The key's acceptor state (zero when none) and record: 1 a record is held
     * (*rec borrowed until the next call; a->accepted is its version), 0 none, -1
     * error. */
    int (*load)(void *ctx, unsigned db, const char *key, size_t klen, struct paxos_acceptor *a,
                struct msg_record *rec);
    /* Keeps a->promised for the key (a key with no record too): 0, -1 error. In
     * persistent mode the server holds the reply until it is durable, as it holds
     * a KVD.PEER WRITE's. */
    int (*promise)(void *ctx, unsigned db, const char *key, size_t klen,
                   const struct paxos_acceptor *a);
    /* Stores rec (version a->accepted) with a->origin and a->promised: 0, -1. */
    int (*accept)(void *ctx, unsigned db, const char *key, size_t klen,
                  const struct paxos_acceptor *a, const struct msg_record *rec);
};

/* Handles a PREPARE or ACCEPT (argv as paxos_decode_request) against st behind
 * gate g (may be NULL) and appends exactly one reply to out. */
void paxos_replica_handle(const struct paxos_store *st, const struct paxos_gate *g,
                          const struct kv_slice *argv, size_t argc, struct msg_buf *out);

#endif
