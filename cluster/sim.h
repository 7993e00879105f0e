/* cluster/sim.h: the deterministic cluster simulator (DESIGN.md "Cluster", in the
 * manner of FoundationDB's and TigerBeetle's simulation testing). Many nodes run in
 * one process on a virtual clock, each with a fake store (key -> record, applied
 * last-write-wins by kv_record_cmp), its own HLC (virtual time + a skew), its hint
 * store, and coordinator ops (cluster/op.h). Every message between nodes is real
 * bytes: requests encoded by cluster/msg.c and parsed by proto's request parser,
 * replies parsed by hiredis's reader. A seeded network delays (reordering follows),
 * drops, slows beyond the timeout, partitions; nodes crash and restart (keeping
 * their store and hints, the hints through hints_encode/decode, or losing both
 * like a cache node) or pause (SIGSTOP: everything sent
 * to them waits, then runs in a burst). With opts.gossip each node also runs the
 * gossip machine (gossip.h) on a fast clock and its coordinator skips the
 * replicas phi says are down (is_up). Clients run SET/GET/DEL through
 * random coordinators. Everything is a pure function of the seed: a failing seed
 * replays exactly (cluster/sim_test --seed S).
 *
 * Invariants checked (cluster/README.md "Simulator"):
 *  1. read-your-acknowledged-writes, Dynamo style (when W + R > N, or forced):
 *     a GET that starts after a write was acknowledged returns that write's
 *     version or a newer one (kv_record_cmp); a returned value is exactly the one
 *     written with its version (nothing invented or mixed); and reads are
 *     monotonic: a GET that starts after another GET of the key completed returns
 *     that GET's record or a newer one (blocking read repair; checked when 2R > N:
 *     only intersecting read quorums can promise it).
 *  2. hint convergence (runs without crashes and without dropped hints): after
 *     healing and hint delivery, every replica of every key holds the same record.
 *  3. repair convergence (every run): after a repair pass (a read at ALL of every
 *     key, or with merkle_repair the Merkle sessions of cluster/repair.h, every
 *     node repairing every range it replicates), every replica of every key holds
 *     the same record, and that record is at least every acknowledged write.
 *  Writes whose replica lost its store in a crash after the write was issued are
 *  exempt from 1 and 3 (a cache node forgets).
 *  4. no crash, no undefined behaviour (the sanitizer build runs it too).
 * And by kind of run (cluster/README.md "Simulator"): after a join or leave with
 * lossless hints, each of the N replicas of every key in the new ring holds every
 * acknowledged write before any repair, and a leaver is out of every member's
 * gossip view; with tombstone GC a value older than an acknowledged DEL is a
 * resurrection (an absent key is right where a DEL at or above stood); big hashes
 * are checked field by field.
 */
#ifndef KVD_CLUSTER_SIM_H
#define KVD_CLUSTER_SIM_H

#include <stddef.h>
#include <stdint.h>

#define SIM_MAX_NODES 16

struct sim_opts {
    uint64_t seed;
    int nodes;               /* members (<= SIM_MAX_NODES) */
    int n, w, r;             /* replication factor, write and read quorums */
    int clients;             /* concurrent clients, one op at a time each */
    int ops_per_client;
    int keys;                /* distinct keys (spread over dbs) */
    int dbs;                 /* databases used */
    double drop;             /* probability a message is lost */
    double slow;             /* probability a message is late beyond the timeout */
    unsigned delay_max_ms;   /* a message takes 1..delay_max_ms */
    unsigned timeout_ms;     /* cluster-request-timeout */
    unsigned max_skew_ms;    /* each node's clock is off by up to this */
    int partitions;          /* 1: cut and heal links between node groups */
    int crashes;             /* 1: crash and restart nodes */
    int crash_loses_store;   /* 1: a crash loses the store and hints (cache mode) */
    int pauses;              /* 1: pause nodes (SIGSTOP/SIGCONT): what they were sent
                                and their timers wait, then run in a burst */
    unsigned fault_every_ms; /* mean time between faults */
    int check_reads;         /* assert invariant 1 (default: w + r > n) */
    int force_hint_check;    /* assert invariant 2 even when hints were dropped
                                (tests that the checker can fail) */
    uint64_t hint_window_ms;
    size_t hint_max_bytes;
    int gossip;              /* 1: nodes gossip (a round every 10 ms) and the
                                coordinators skip replicas their phi says are
                                down (is_up); 0: every replica counts as up */
    int verbose;             /* print the event trace to stderr */
    int join;                /* 1: the last node joins mid-workload (join.h): it starts
                                out of the ring with balanced tokens; at join_at_ms
                                writes start reaching it as a pending replica; after
                                a settle it streams its ranges (join_plan, repair
                                sessions, a lost request failing after a timeout,
                                partial ranges retried); then the ring includes it.
                                Needs crashes and pauses off. */
    int leave;               /* 1: the last node leaves mid-workload (join.h, KVD
                                LEAVE): at join_at_ms it gossips leaving and writes
                                start reaching the replicas its ranges gain, as
                                pending replicas; after a settle it pushes each
                                range it replicates to them (join_plan leaving,
                                repair sessions that must complete, retried); then
                                the ring drops it and it gossips left. Needs crashes
                                and pauses off; not with join. */
    int remove;              /* 1: the last node dies at join_at_ms and is removed
                                (join.h, KVD REMOVENODE): the ring keeps it, the
                                future ring drops it, so the members that gain its
                                ranges get their writes as pending replicas; after a
                                settle each gainer in turn pulls what it gains from
                                the survivors (join_plan_remove, sessions that must
                                complete, retried); then the ring drops it and every
                                node drops its hints for it. It never restarts.
                                Needs crashes and pauses off; not with join or
                                leave. */
    unsigned join_at_ms;     /* virtual ms into the run when the join or leave starts
                                (0: 100) */
    int join_skip_stream;    /* 1: the ring changes without streaming (join or leave;
                                tests that the checker can fail) */
    int join_skip_pending;   /* 1: writes skip the pending replicas (the same) */
    int read_skip_pending;   /* 1: reads do not send their winner to the pending
                                replicas (op.h op_read_start_pending; the code before
                                the simulator found the non-monotonic read it allows
                                after a leave: leave seed 1157) */
    int join_cut_peer;       /* 1: the joiner cannot reach node 1 from the start of its
                                stream until the healing (a current replica down for
                                it: join_session_enough must carry the join) */
    int merkle_repair;       /* 1: the repair pass is Merkle anti-entropy (repair.h:
                                every node repairs each range it replicates with its
                                other replicas) instead of reads at ALL */
    unsigned repair_every_ms;/* > 0: background repair while the workload runs, as
                                repair_rt.c does: every node repairs each range it
                                replicates, one session at a time, a pass every this
                                often, over the faulty network (a lost request fails
                                after a timeout: the session ends partial; a partial
                                range waits for the next pass). Not with join/leave. */
    int skip_repair_pass;    /* 1: no repair pass at the end (tests that the checker
                                can fail: replicas differ) */
    /* Tombstone GC and long absence (repair_rt.c cluster_gc_horizon, repairer_hold):
     * with gc_grace_ms each node drops a tombstone dated before both its clock less
     * the grace and its horizon: the oldest start of its last complete session of
     * each range it replicates (0 while one has none since it started), less the
     * request timeout and max_skew_ms. Needs repair_every_ms. */
    unsigned gc_grace_ms;
    int gc_no_horizon;       /* 1: drop on the grace alone (Cassandra's rule; tests
                                that the checker finds a resurrection) */
    unsigned absent_ms;      /* > 0: node 2 crashes (keeping its store) at
                                absent_at_ms and stays down this long; back after
                                more than gc_grace_ms, it is held: it answers READ
                                with an error until each range it replicates had a
                                complete session that started after it came back */
    unsigned absent_at_ms;
    int absent_no_hold;      /* 1: it serves at once (the gate off) */
    int hashes;              /* 1: the workload is big hashes (fields.h): HSET and
                                HDEL of one of SIM_HASH_FIELDS fields ship a delta
                                of field records, DEL a tombstone; replicas merge per
                                field (fields_merge); reads are checked per field */
    int hash_lww;            /* 1: replicas apply field records last-write-wins
                                whole, not per field (tests that the checker can
                                fail: a field written concurrently is lost) */
};

#define SIM_HASH_FIELDS 4

struct sim_stats {
    uint64_t writes_ok, writes_failed, writes_unknown;
    uint64_t reads_ok, reads_failed, reads_checked;
    uint64_t messages, dropped, crashes, restarts, partitions, pauses;
    uint64_t hints_added, hints_delivered, hints_dropped;
    uint64_t divergent_before_repair; /* keys whose replicas differed after hints */
    uint64_t repair_sessions, repair_partial, repair_records; /* merkle_repair */
    uint64_t joined, stream_ranges, stream_retries, stream_records; /* join */
    uint64_t join_done_ms, join_workload_end_ms; /* when it joined, the workload ended */
    uint64_t stream_partial_enough; /* sessions that lost a peer yet had enough */
    uint64_t left;                    /* leave: the ring dropped the leaver */
    uint64_t not_on_n_replicas;       /* join/leave: (key, replica) pairs of the final
                                         ring missing an acknowledged write after hint
                                         delivery (lossless hints: a violation) */
    uint64_t end_ms;                  /* virtual time at the end */
    uint64_t seen_down;               /* is_up answered 0 (gossip: phi said down) */
    uint64_t background_sessions, background_complete; /* repair_every_ms */
    uint64_t tombstones_dropped;      /* gc_grace_ms */
    uint64_t held_ms, held_refused;   /* absent_ms: how long it was held, READs it refused */
};

struct sim_result {
    int ok;             /* 1: every invariant held */
    char why[512];      /* the first violation */
    struct sim_stats st;
};

/* The standard run of a seed: 5 nodes, N=3; the seed picks the variant (seed % 7):
 * 0 W=2 R=2, crashes keep the store; 1 W=2 R=2, crashes lose store and hints;
 * 2 W=2 R=2, no crashes (hint convergence checked); 3 W=1 R=1 (ONE, convergence
 * only); 4 W=3 R=1; 5 W=1 R=3; 6 W=2 R=2 hot keys (8 clients, 2 keys, slow links). */
void sim_opts_for_seed(struct sim_opts *o, uint64_t seed);

/* Runs one simulation. Returns 0 when every invariant held (res->ok = 1), -1
 * otherwise with res->why. Deterministic in *o. */
int sim_run(const struct sim_opts *o, struct sim_result *res);

/* Membership by gossip (gossip.c) on the virtual clock: nodes that each know one
 * seed, a round a second at random phases, a seeded network (1..delay_max_ms,
 * drop). Invariants (sim.c "gossip on the virtual clock"): membership converges
 * (every node knows every member with its tokens and generation) within 12
 * rounds; a partitioned node and the others see each other down (phi) within
 * 15 s and up within 15 s of healing; a restarted node's new generation reaches
 * everyone within 12 rounds. */
struct sim_gossip_opts {
    uint64_t seed;
    int nodes;               /* 2..SIM_MAX_NODES */
    unsigned delay_max_ms;
    double drop;
    int verbose;
};

struct sim_gossip_result {
    int ok;
    char why[512];
    int rounds_to_converge;  /* join: rounds until every node knew every member */
    uint64_t detect_ms;      /* partition: until both sides saw each other down */
    uint64_t recover_ms;     /* healing: until both sides saw each other up */
    int restart_rounds;      /* restart: rounds until the new generation was known */
    uint64_t messages;
};

int sim_gossip_run(const struct sim_gossip_opts *o, struct sim_gossip_result *res);

#endif
