/* cluster/gossip.h: membership by gossip, as a state machine with no I/O (DESIGN.md
 * "Cluster", part 2). The runtime (cluster.c, on links) and the simulator (sim.c,
 * on a virtual clock) feed it messages and ticks with `now` and send the bytes it
 * returns; it never reads a clock, a socket or a global.
 *
 * What it keeps: one state per member, this node's first: the ring's view (id,
 * tag, address, weight, tokens), a generation (bumped at each restart of the
 * member, kept in its dir), a heartbeat version (bumped by the member once per
 * round), a state version (bumped when anything but the heartbeat and load
 * changes), status (joining, normal, leaving, left), load, and what every member
 * must agree on: the replication factor and the cluster secret's fingerprint. A
 * member that disagrees is kept (so it is not asked for again) but refused: it
 * never enters the ring, and gossip_member.refused says why. Per member also a
 * phi accrual detector (phi.h) fed each time its heartbeat version rises.
 *
 * HOW IT WORKS (Cassandra's three-message exchange, over request/reply links):
 *
 *   A -> B  SYN   A's digest of every member: (id, generation, heartbeat, version)
 *   B -> A  ACK   the states B holds newer than A's digest says (the heavy body,
 *                 tokens included, only when the generation or version is newer;
 *                 else just the heartbeat and load), and B's digest of what A
 *                 holds newer or B lacks
 *   A -> B  ACK2  the states B asked for
 *
 * Why digests and not push-pull of whole states: a member's tokens are up to 32 KiB
 * and change almost never, while its heartbeat changes every second; a digest is
 * 89 bytes at most, so a round in a settled cluster of n members moves about 90n
 * bytes plus one heartbeat entry per changed member, not n x (tokens).
 *
 * Example: A knows {A g1 hb9 v1, C g1 hb4 v1}, B knows {B g2 hb7 v1, C g1 hb6 v1}.
 * A's SYN lists A and C. B answers C (hb6, no body: same version) and B (full: A
 * lacks it) and asks for A (g0: "everything"). A's ACK2 carries A in full. After
 * the round both know A, B and C at their newest heartbeats.
 *
 * Wire form (every integer big-endian; decoders refuse anything else, never read
 * past the end, allocate at most what the bytes announce and check, and leave the
 * state untouched on an error):
 *
 *   message := "KVG1" kind:u8 idlen:u8 id wall_ms:u64 rf:u8 fp:u8[8] body
 *              kind 1 SYN, 2 ACK, 3 ACK2; the header is the sender's; wall_ms its
 *              clock when it wrote the message (the clock-offset estimate)
 *   SYN  body := count:u16 digest{count}
 *   ACK  body := count:u16 state{count} count:u16 digest{count}
 *   ACK2 body := count:u16 state{count}
 *   digest := idlen:u8 id generation:u64 heartbeat:u64 version:u64
 *   state  := digest load:u64 full:u8(0|1) [tag:u32 alen:u8 addr weight:u64(IEEE-754)
 *             status:u8 rf:u8 fp:u8[8] tokens(ring.h)]
 *   counts 0..RING_MAX_MEMBERS; ids 1..RING_ID_MAX bytes, addresses 1..RING_ADDR_MAX
 *   with a ':' and no NUL; status 0..3; weight in (0, 1000]; a whole message at most
 *   GOSSIP_MAX_MSG bytes (an ACK that would be longer leaves states for the next
 *   round, starting from a random member so none starves).
 *
 * Threading: loop thread (or the simulator); one struct gossip per node.
 */
#ifndef KVD_CLUSTER_GOSSIP_H
#define KVD_CLUSTER_GOSSIP_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/msg.h"
#include "cluster/phi.h"
#include "cluster/ring.h"

#define GOSSIP_FP_LEN 8             /* = AUTH_FINGERPRINT_LEN */
#define GOSSIP_MAX_MSG (1u << 20)   /* bytes of one message at most */
#define GOSSIP_REFUSED_MAX 128
/* The generation another node gives a dead member it removes (KVD REMOVENODE,
 * cluster-replace): above any the member can reach by restarting, so its own
 * gossip never wins again, and a member told its own state at this generation
 * knows it was removed. */
#define GOSSIP_GEN_REMOVED UINT64_MAX

/* on the wire: never renumber */
enum gossip_status { GOSSIP_JOINING = 0, GOSSIP_NORMAL = 1, GOSSIP_LEAVING = 2, GOSSIP_LEFT = 3 };
enum gossip_kind { GOSSIP_SYN = 1, GOSSIP_ACK = 2, GOSSIP_ACK2 = 3 };
enum gossip_rc { GOSSIP_OK = 0, GOSSIP_INVALID = -1, GOSSIP_REFUSED = -2 };
enum gossip_health { GOSSIP_UP = 0, GOSSIP_SUSPECT = 1, GOSSIP_DOWN = 2 };

struct gossip_member {
    struct ring_member m;          /* id, tag, addr, weight, tokens (owned) */
    uint64_t generation;           /* the member's incarnation */
    uint64_t heartbeat;            /* +1 per round of the member */
    uint64_t version;              /* +1 per change of the fields below */
    int status;                    /* enum gossip_status */
    uint64_t load;                 /* bytes the member holds (informational) */
    unsigned rf;                   /* its replication-factor */
    uint8_t fp[GOSSIP_FP_LEN];     /* its cluster secret's fingerprint */
    char refused[GOSSIP_REFUSED_MAX]; /* "": in the ring; else why not */
    struct phi phi;                /* arrivals of its rising heartbeat */
};

struct gossip_stats {
    uint64_t syns, acks, ack2s;    /* messages handled */
    uint64_t invalid;              /* messages refused as malformed */
    uint64_t refused;              /* exchanges refused: a peer disagrees */
    uint64_t states_applied;       /* newer states taken */
};

/* What this node is, for gossip_new. */
struct gossip_self {
    const struct ring_member *m;   /* copied */
    uint64_t generation;
    unsigned rf;                   /* replication-factor, 1..255 */
    uint8_t fp[GOSSIP_FP_LEN];
    double convict;                /* phi-convict-threshold (> 0) */
    struct phi_config phi;
    uint64_t seed;                 /* of the random choice of peers */
    /* Log line on refusals and joins (NULL: silent). level is cluster.h's
     * cluster_log_level. */
    void (*log)(void *ctx, int level, const char *msg);
    void *log_ctx;
};

struct gossip {
    struct gossip_member *mb;      /* mb[0] is this node */
    size_t n;
    uint64_t rng;
    double convict;
    struct phi_config phic;
    uint64_t ring_epoch;           /* +1 per change the ring depends on */
    int self_removed;              /* a peer told us we were removed (see below) */
    struct gossip_stats st;
    void (*log)(void *ctx, int level, const char *msg);
    void *log_ctx;
};

/* The secret's fingerprint as bytes (auth.h's auth_fingerprint: the first 8 bytes
 * of HMAC-SHA256(secret, "fp")). It tells two secrets apart without revealing
 * either. */
void gossip_fingerprint(const char *secret, size_t len, uint8_t fp[GOSSIP_FP_LEN]);

/* A new machine knowing only this node. Free with gossip_free. */
struct gossip *gossip_new(const struct gossip_self *self);
void gossip_free(struct gossip **g);

/* One round (every second): this node's heartbeat rises. */
void gossip_tick(struct gossip *g);
/* This node's status or load changed (status bumps the version). */
void gossip_set_status(struct gossip *g, int status);
void gossip_set_load(struct gossip *g, uint64_t load);
/* Member i (not this node) is removed on its behalf: generation
 * GOSSIP_GEN_REMOVED, status GOSSIP_LEAVING while its ranges are streamed to
 * their new replicas, then GOSSIP_LEFT; the version rises so the change spreads. A
 * member removed this way that restarts hears its own state at that generation
 * and sets g->self_removed (it is never a member again under that id). */
void gossip_remove(struct gossip *g, size_t i, int status);
/* 1 when member i was removed by another node (generation GOSSIP_GEN_REMOVED). */
int gossip_removed(const struct gossip *g, size_t i);
/* This node's tokens changed (a joining node took balanced ones, ring.h
 * ring_tokens_balance): n 1..RING_MAX_TOKENS, sorted, distinct; copied. */
void gossip_set_tokens(struct gossip *g, const uint64_t *tokens, size_t n);

/* Chooses up to fanout members to gossip with this round, at random among the
 * members other than this node that are in the ring and not down by phi; and, with
 * probability down / (live + 1), one member that is down (so a member back from
 * the dead hears of the others even when it knows no seed). Writes their tags;
 * returns how many (<= max). */
size_t gossip_pick(struct gossip *g, uint64_t now, size_t fanout, uint32_t *tags, size_t max);

/* Appends a SYN (this node's digest) to out. wall_ms: this node's clock. */
void gossip_syn(struct gossip *g, uint64_t wall_ms, struct msg_buf *out);

/* What an incoming message said of its sender (every gossip_on_*). */
struct gossip_peer {
    char id[RING_ID_MAX + 1];
    uint64_t wall_ms;
};

/* B's side: handles a SYN received at now and appends the ACK to ack. GOSSIP_OK;
 * GOSSIP_INVALID (malformed: err says where) or GOSSIP_REFUSED (the sender's
 * replication factor or secret fingerprint differs from ours: err says which),
 * with nothing appended and nothing changed. */
int gossip_on_syn(struct gossip *g, uint64_t now, uint64_t wall_ms, const void *buf,
                  size_t len, struct msg_buf *ack, struct gossip_peer *from, char *err,
                  size_t errlen);
/* A's side: handles B's ACK and appends the ACK2 to ack2 (*need_ack2 0 when it
 * would carry nothing: then it need not be sent). Same returns. */
int gossip_on_ack(struct gossip *g, uint64_t now, uint64_t wall_ms, const void *buf,
                  size_t len, struct msg_buf *ack2, int *need_ack2, struct gossip_peer *from,
                  char *err, size_t errlen);
/* B's side: handles A's ACK2. Same returns. */
int gossip_on_ack2(struct gossip *g, uint64_t now, const void *buf, size_t len,
                   struct gossip_peer *from, char *err, size_t errlen);

/* The member of id or tag: its index, or -1. */
long gossip_find(const struct gossip *g, const char *id);
long gossip_find_tag(const struct gossip *g, uint32_t tag);
/* 1 when member i belongs in the ring (not refused, not left). */
int gossip_in_ring(const struct gossip *g, size_t i);
/* Member i's health by phi at now (this node: always up); *phi (may be NULL) gets
 * the value. Down at phi >= convict, suspect at phi >= convict / 2. */
int gossip_health(const struct gossip *g, size_t i, uint64_t now, double *phi);
const char *gossip_health_name(int health);
const char *gossip_status_name(int status);

#endif
