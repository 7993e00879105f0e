/* cluster/sim_test.c: the deterministic cluster simulator (cluster/sim.c).
 *
 *   sim_test                      the unit run: replay, a few hundred seeds, and
 *                                 checks that the checker can fail
 *   sim_test --seed S [-v]        one seed (the variant is seed % 7), with its
 *                                 stats; -v prints the event trace
 *   sim_test --seeds K [--first F]  K seeds from F (tests/long/cluster-sim.sh)
 *   --kind join|leave|remove|repair|absence  the seeds of a kind of run (a member joins,
 *                                 leaves, dies and is removed; background repair in the faults; a long
 *                                 absence with tombstone GC); --gc-no-horizon and
 *                                 --absent-no-hold switch those mechanisms off
 *
 * A failing seed prints "sim: seed S FAILED: why" and the command that replays it.
 * SIM_SEEDS overrides the unit run's seed count (default 500).
 */
#include "cluster/sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/test.h"

static void print_stats(uint64_t seed, const struct sim_result *r) {
    const struct sim_stats *t = &r->st;
    printf("seed %llu: %s; writes ok %llu failed %llu unknown %llu; reads ok %llu failed %llu "
           "checked %llu; messages %llu dropped %llu; crashes %llu restarts %llu partitions "
           "%llu; hints added %llu delivered %llu dropped %llu; divergent before repair %llu; "
           "%llu ms virtual\n",
           (unsigned long long)seed, r->ok ? "ok" : r->why, (unsigned long long)t->writes_ok,
           (unsigned long long)t->writes_failed, (unsigned long long)t->writes_unknown,
           (unsigned long long)t->reads_ok, (unsigned long long)t->reads_failed,
           (unsigned long long)t->reads_checked, (unsigned long long)t->messages,
           (unsigned long long)t->dropped, (unsigned long long)t->crashes,
           (unsigned long long)t->restarts, (unsigned long long)t->partitions,
           (unsigned long long)t->hints_added, (unsigned long long)t->hints_delivered,
           (unsigned long long)t->hints_dropped, (unsigned long long)t->divergent_before_repair,
           (unsigned long long)t->end_ms);
}

typedef void opts_fn(struct sim_opts *o, uint64_t sim_seed);

/* --gc-no-horizon, --absent-no-hold: applied to every seed the command line runs */
static int cli_no_horizon, cli_no_hold;

/* runs seeds [first, first+count) with the options opts makes of each (kind: its
 * name for the replay line, "" the standard run); returns failures; sums stats
 * into total */
static int run_seeds_of(opts_fn *opts, const char *kind, uint64_t first, uint64_t count,
                        struct sim_stats *total) {
    int failed = 0;
    for (uint64_t seed = first; seed < first + count; seed++) {
        struct sim_opts o;
        struct sim_result r;
        opts(&o, seed);
        o.gc_no_horizon |= cli_no_horizon;
        o.absent_no_hold |= cli_no_hold;
        if (sim_run(&o, &r) != 0) {
            failed++;
            fprintf(stderr, "sim: seed %llu FAILED: %s\n  replay: build/tests/sim_test%s%s "
                    "--seed %llu -v\n", (unsigned long long)seed, r.why, *kind ? " --kind " : "",
                    kind, (unsigned long long)seed);
        }
        if (total) {
            uint64_t *a = (uint64_t *)total, *b = (uint64_t *)&r.st;
            for (size_t i = 0; i < sizeof *total / sizeof(uint64_t); i++) {
                a[i] += b[i];
            }
        }
    }
    return failed;
}

static int run_seeds(uint64_t first, uint64_t count, struct sim_stats *total) {
    return run_seeds_of(sim_opts_for_seed, "", first, count, total);
}

static void test_sim_a_seed_replays_exactly(void) {
    struct sim_opts o;
    struct sim_result a, b;
    sim_opts_for_seed(&o, 4242);
    CHECK_EQ_INT(sim_run(&o, &a), 0);
    CHECK_EQ_INT(sim_run(&o, &b), 0);
    CHECK(memcmp(&a.st, &b.st, sizeof a.st) == 0);
    CHECK(a.st.messages > 100);
    struct sim_result c;
    sim_opts_for_seed(&o, 4249); /* same variant, another seed: another run */
    sim_run(&o, &c);
    CHECK(memcmp(&a.st, &c.st, sizeof a.st) != 0);
}

static void test_sim_seeds_hold_every_invariant(void) {
    const char *env = getenv("SIM_SEEDS");
    uint64_t count = env ? strtoull(env, NULL, 10) : 500;
    struct sim_stats t;
    memset(&t, 0, sizeof t);
    clock_t start = clock();
    int failed = run_seeds(1, count, &t);
    double secs = (double)(clock() - start) / CLOCKS_PER_SEC;
    printf("sim: %llu seeds in %.2f s cpu, %d failed; writes ok %llu failed %llu unknown %llu, "
           "reads ok %llu (checked %llu) failed %llu, crashes %llu, partitions %llu, "
           "pauses %llu, messages %llu dropped %llu, hints %llu delivered %llu, replicas "
           "skipped as down by phi %llu\n",
           (unsigned long long)count, secs, failed, (unsigned long long)t.writes_ok,
           (unsigned long long)t.writes_failed, (unsigned long long)t.writes_unknown,
           (unsigned long long)t.reads_ok, (unsigned long long)t.reads_checked,
           (unsigned long long)t.reads_failed, (unsigned long long)t.crashes,
           (unsigned long long)t.partitions, (unsigned long long)t.pauses,
           (unsigned long long)t.messages,
           (unsigned long long)t.dropped, (unsigned long long)t.hints_added,
           (unsigned long long)t.hints_delivered, (unsigned long long)t.seen_down);
    CHECK_EQ_INT(failed, 0);
    /* the runs really exercised the faults and the paths that handle them */
    CHECK(t.crashes > 0 && t.restarts > 0 && t.partitions > 0 && t.dropped > 0);
    CHECK(t.pauses > 0);
    CHECK(t.writes_failed > 0 && t.reads_failed > 0 && t.writes_ok > 0);
    CHECK(t.hints_delivered > 0);
    CHECK(t.reads_checked > 0);
    CHECK(t.seen_down > 0); /* coordinators skipped replicas gossip said were down */
}

/* R=1 W=1 with invariant 1 asserted anyway: W + R <= N lets a read miss an
 * acknowledged write, and the checker must see it in some seed */
static void test_sim_checker_catches_stale_reads_at_r1_w1(void) {
    int caught = 0;
    for (uint64_t seed = 1; seed <= 200 && !caught; seed++) {
        struct sim_opts o;
        struct sim_result r;
        sim_opts_for_seed(&o, seed * 7); /* variant 0: crashes keep the store */
        o.w = 1, o.r = 1;
        o.check_reads = 1;
        if (sim_run(&o, &r) != 0) {
            caught = strstr(r.why, "stale read") != NULL;
            printf("sim: R=1 W=1 caught at seed %llu: %s\n", (unsigned long long)(seed * 7),
                   r.why);
        }
    }
    CHECK(caught);
}

/* no hints kept (max bytes 1) yet hint convergence asserted: must fail */
static void test_sim_checker_catches_divergence_without_hints(void) {
    int caught = 0;
    for (uint64_t seed = 1; seed <= 100 && !caught; seed++) {
        struct sim_opts o;
        struct sim_result r;
        sim_opts_for_seed(&o, seed * 7 + 2); /* variant 2: no crashes */
        o.hint_max_bytes = 1;
        o.force_hint_check = 1;
        if (sim_run(&o, &r) != 0) {
            caught = strstr(r.why, "after hint delivery") != NULL;
        }
    }
    CHECK(caught);
}

/* the options of a Merkle repair run: no hints kept (max bytes 0: every hint
 * refused), partitions, pauses and crashes that keep the store, more keys so that
 * ranges hold several; the read-at-ALL pass replaced by Merkle sessions */
static void merkle_opts_of_sim_seed(struct sim_opts *o, uint64_t sim_seed) {
    sim_opts_for_seed(o, sim_seed);
    o->hint_max_bytes = 0;
    o->keys = 40;
    o->merkle_repair = 1;
}

static void merkle_opts(struct sim_opts *o, uint64_t seed) {
    merkle_opts_of_sim_seed(o, seed * 7 + (seed % 2 ? 0 : 2)); /* variants 0 and 2 */
}

/* hints dropped, replicas diverge in partitions; after healing Merkle repair
 * alone makes every replica of every key identical and keeps every acknowledged
 * write (invariant 3); the divergence was real in some seed */
static void test_sim_merkle_repair_converges_without_hints(void) {
    uint64_t divergent = 0, records = 0, sessions = 0;
    int nseeds = getenv("SIM_MERKLE_SEEDS") ? atoi(getenv("SIM_MERKLE_SEEDS")) : 12;
    for (uint64_t seed = 1; seed <= (uint64_t)nseeds; seed++) {
        struct sim_opts o;
        struct sim_result r;
        merkle_opts(&o, seed);
        if (sim_run(&o, &r) != 0) {
            fprintf(stderr, "sim: merkle seed %llu FAILED: %s\n",
                    (unsigned long long)o.seed, r.why);
        }
        CHECK(r.ok);
        divergent += r.st.divergent_before_repair;
        records += r.st.repair_records;
        sessions += r.st.repair_sessions;
    }
    printf("sim: merkle repair over %d seeds: %llu keys divergent before repair, %llu "
           "sessions, %llu records moved\n",
           nseeds, (unsigned long long)divergent, (unsigned long long)sessions,
           (unsigned long long)records);
    CHECK(divergent > 0);
    CHECK(records >= divergent);
}

/* the options of a background repair run: merkle_opts with repair passes every
 * 300 ms on every node while the workload runs, through the drops, slow
 * messages, partitions, pauses and crashes; odd seeds lose their hints to the
 * window (1 ms) rather than to the byte bound */
static void background_opts_of_sim_seed(struct sim_opts *o, uint64_t sim_seed) {
    merkle_opts_of_sim_seed(o, sim_seed);
    o->repair_every_ms = 300;
    if (sim_seed % 7 == 0) {
        o->hint_max_bytes = 1 << 20;
        o->hint_window_ms = 1;
    }
}

static void background_opts(struct sim_opts *o, uint64_t seed) {
    background_opts_of_sim_seed(o, seed * 7 + (seed % 2 ? 0 : 2));
}

/* Repair sessions run in the faults (a lost request fails after a timeout, the
 * session ends partial, the range waits for the next pass); after healing, with
 * no hints, one pass makes every replica of every key hold the same newest
 * record, tombstones included, and keeps every acknowledged write. */
static void test_sim_repair_in_faults_then_converges_after_healing(void) {
    int nseeds = getenv("SIM_MERKLE_SEEDS") ? atoi(getenv("SIM_MERKLE_SEEDS")) : 12;
    uint64_t bg = 0, bg_complete = 0, divergent = 0, dropped_hints = 0;
    for (uint64_t seed = 1; seed <= (uint64_t)nseeds; seed++) {
        struct sim_opts o;
        struct sim_result r;
        background_opts(&o, seed);
        if (sim_run(&o, &r) != 0) {
            fprintf(stderr, "sim: background repair seed %llu FAILED: %s\n  replay: "
                    "build/tests/sim_test --kind repair --seed %llu -v\n",
                    (unsigned long long)o.seed, r.why, (unsigned long long)o.seed);
        }
        CHECK(r.ok);
        bg += r.st.background_sessions;
        bg_complete += r.st.background_complete;
        divergent += r.st.divergent_before_repair;
        dropped_hints += r.st.hints_dropped;
    }
    printf("sim: repair in faults over %d seeds: %llu background sessions, %llu partial; "
           "%llu hints dropped; %llu keys divergent before the last pass, none after\n",
           nseeds, (unsigned long long)bg, (unsigned long long)(bg - bg_complete),
           (unsigned long long)dropped_hints, (unsigned long long)divergent);
    CHECK(bg > bg_complete && bg_complete > 0); /* faults cut sessions short; others ended */
    CHECK(dropped_hints > 0);
}

/* the checker can fail: the same runs without the repair pass leave replicas
 * that differ (hints were lost) */
static void test_sim_repair_checker_catches_replicas_that_differ_without_repair(void) {
    int caught = 0;
    for (uint64_t seed = 1; seed <= 50 && !caught; seed++) {
        struct sim_opts o;
        struct sim_result r;
        merkle_opts(&o, seed);
        o.skip_repair_pass = 1;
        if (sim_run(&o, &r) != 0) {
            caught = strstr(r.why, "replicas differ after healing") != NULL;
            printf("sim: no repair pass caught at seed %llu: %s\n", (unsigned long long)o.seed,
                   r.why);
        }
    }
    CHECK(caught);
}

/* the options of a long-absence run: W=2 R=2, no hints (every write node 2
 * misses is left to repair), drops, slow messages, partitions and pauses but no
 * random crashes; background repair every 300 ms; tombstones collected after a
 * grace of 1 s; node 2 away from 0.5 s to 3 s (more than the grace) while
 * clients delete keys */
static void absence_opts_of_sim_seed(struct sim_opts *o, uint64_t sim_seed) {
    background_opts_of_sim_seed(o, sim_seed);
    o->crashes = 0;
    o->crash_loses_store = 0; /* the absent node comes back with its store */
    o->hint_max_bytes = 0;
    o->hint_window_ms = 3 * 3600 * 1000ull;
    o->keys = 20;
    o->ops_per_client = 200;
    o->gc_grace_ms = 1000;
    o->absent_at_ms = 500;
    o->absent_ms = 2500;
}

static void absence_opts(struct sim_opts *o, uint64_t seed) {
    absence_opts_of_sim_seed(o, seed * 7 + (seed % 2 ? 0 : 2));
}

/* A node comes back after longer than the grace. While it was away the others'
 * sessions of its ranges were partial, so their horizon stopped before the
 * first delete it missed and they kept those tombstones; back, it is held (READ
 * refused) until each of its ranges had a complete session, and no read or
 * repair brings back a deleted value. */
static void test_sim_long_absence_brings_nothing_back(void) {
    int nseeds = getenv("SIM_ABSENCE_SEEDS") ? atoi(getenv("SIM_ABSENCE_SEEDS")) : 8;
    uint64_t dropped = 0, held_ms = 0, refused = 0, checked = 0;
    for (uint64_t seed = 1; seed <= (uint64_t)nseeds; seed++) {
        struct sim_opts o;
        struct sim_result r;
        absence_opts(&o, seed);
        if (sim_run(&o, &r) != 0) {
            fprintf(stderr, "sim: absence seed %llu FAILED: %s\n  replay: "
                    "build/tests/sim_test --kind absence --seed %llu -v\n",
                    (unsigned long long)o.seed, r.why, (unsigned long long)o.seed);
        }
        CHECK(r.ok);
        dropped += r.st.tombstones_dropped;
        held_ms += r.st.held_ms;
        refused += r.st.held_refused;
        checked += r.st.reads_checked;
    }
    printf("sim: long absence over %d seeds: %llu tombstones collected, held %llu ms in all "
           "(%llu READs refused), %llu reads checked\n",
           nseeds, (unsigned long long)dropped, (unsigned long long)held_ms,
           (unsigned long long)refused, (unsigned long long)checked);
    CHECK(dropped > 0);  /* the GC ran: the horizon moved */
    CHECK(held_ms > 0 && refused > 0);
}

/* The checker finds the resurrection when tombstones are collected on the grace
 * alone (no horizon, Cassandra's rule), the gate on: a replica that missed a
 * DEL (partitioned, no hints) hands the older value back once the others dropped
 * the tombstone, by a read or by repair (the returning node's own repair
 * included: the gate stops its reads, not its pushes). */
static void test_sim_long_absence_checker_catches_a_resurrection(void) {
    int caught = 0;
    for (uint64_t seed = 1; seed <= 60 && !caught; seed++) {
        struct sim_opts o;
        struct sim_result r;
        absence_opts(&o, seed);
        o.gc_no_horizon = 1;
        if (sim_run(&o, &r) != 0) {
            caught = strstr(r.why, "resurrection") != NULL;
            printf("sim: long absence, GC on the grace alone: seed %llu: %s\n",
                   (unsigned long long)o.seed, r.why);
        }
    }
    CHECK(caught);
}

/* With the gate off (the node serves READ as soon as it is back) and the horizon
 * on, nothing comes back either: the others kept every tombstone the node missed
 * (their sessions with it were partial while it was away), so a quorum read
 * meets the tombstone, and repair carries it to the node. In this simulator the
 * horizon is what prevents a resurrection; the gate guards against what it does
 * not model (a replica dropped from the others' sessions by a ring change). */
static void test_sim_long_absence_horizon_alone_keeps_deletes(void) {
    int nseeds = getenv("SIM_ABSENCE_SEEDS") ? atoi(getenv("SIM_ABSENCE_SEEDS")) : 8;
    uint64_t dropped = 0, refused = 0;
    for (uint64_t seed = 1; seed <= (uint64_t)nseeds; seed++) {
        struct sim_opts o;
        struct sim_result r;
        absence_opts(&o, seed);
        o.absent_no_hold = 1;
        if (sim_run(&o, &r) != 0) {
            fprintf(stderr, "sim: absence (no hold) seed %llu FAILED: %s\n  replay: "
                    "build/tests/sim_test --kind absence --absent-no-hold --seed %llu -v\n",
                    (unsigned long long)o.seed, r.why, (unsigned long long)o.seed);
        }
        CHECK(r.ok);
        dropped += r.st.tombstones_dropped;
        refused += r.st.held_refused;
    }
    printf("sim: long absence, the gate off, %d seeds: %llu tombstones collected, no "
           "resurrection\n", nseeds, (unsigned long long)dropped);
    CHECK_EQ_INT(refused, 0); /* the gate was off indeed */
    CHECK(dropped > 0);
}

/* the options of a big-hash run: the seed's variant, 3 keys of 4 fields, HSET,
 * HDEL and DEL; the repair pass by Merkle sessions (their content digests) on
 * even seeds, by reads at ALL (per-field merge and repair diffs) on odd ones */
static void hash_opts_of_sim_seed(struct sim_opts *o, uint64_t sim_seed) {
    sim_opts_for_seed(o, sim_seed);
    o->hashes = 1;
    o->keys = o->keys < 3 ? o->keys : 3;
    o->merkle_repair = sim_seed % 2 == 0;
}

/* Big hashes under every variant's faults: every field read back holds a value
 * an HSET made and is at least every acknowledged HSET, HDEL or DEL of it; after
 * the repair pass every replica holds the same fields and keeps every
 * acknowledged write */
static void test_sim_hashes_hold_every_invariant(void) {
    int nseeds = getenv("SIM_HASH_SEEDS") ? atoi(getenv("SIM_HASH_SEEDS")) : 105;
    uint64_t checked = 0, writes = 0;
    int failed = 0;
    for (uint64_t seed = 1; seed <= (uint64_t)nseeds; seed++) {
        struct sim_opts o;
        struct sim_result r;
        hash_opts_of_sim_seed(&o, seed);
        if (sim_run(&o, &r) != 0) {
            failed++;
            fprintf(stderr, "sim: hash seed %llu FAILED: %s\n  replay: build/tests/sim_test "
                    "--kind hash --seed %llu -v\n",
                    (unsigned long long)seed, r.why, (unsigned long long)seed);
        }
        checked += r.st.reads_checked;
        writes += r.st.writes_ok;
    }
    printf("sim: big hashes over %d seeds: %llu writes acknowledged, %llu reads checked "
           "field by field, %d failed\n",
           nseeds, (unsigned long long)writes, (unsigned long long)checked, failed);
    CHECK_EQ_INT(failed, 0);
    CHECK(checked > 0);
}

/* the checker can fail: replicas that apply field records last-write-wins whole
 * lose a field written concurrently with another */
static void test_sim_hash_checker_catches_whole_record_lww(void) {
    int caught = 0;
    for (uint64_t seed = 1; seed <= 100 && !caught; seed++) {
        struct sim_opts o;
        struct sim_result r;
        hash_opts_of_sim_seed(&o, seed);
        o.hash_lww = 1;
        if (sim_run(&o, &r) != 0) {
            caught = 1;
            printf("sim: hashes applied last-write-wins whole caught at seed %llu: %s\n",
                   (unsigned long long)seed, r.why);
        }
    }
    CHECK(caught);
}

/* a Merkle run replays exactly from its seed */
static void test_sim_merkle_repair_replays(void) {
    struct sim_opts o;
    struct sim_result a, b;
    merkle_opts(&o, 3);
    CHECK_EQ_INT(sim_run(&o, &a), 0);
    CHECK_EQ_INT(sim_run(&o, &b), 0);
    CHECK(a.st.repair_records == b.st.repair_records && a.st.messages == b.st.messages &&
          a.st.end_ms == b.st.end_ms);
}

/* the options of a join run: 5 nodes, the fifth joining 1 s in; drops, slow
 * messages and partitions, fewer than by default (a stream session is one
 * request at a time: each loss costs it a timeout and a retry), no crashes or
 * pauses (join.h's settle assumes the coordinators live); W + R > N; keys and
 * ops enough that the join ends while clients run (about 16 s of them) */
static void join_opts_of_sim_seed(struct sim_opts *o, uint64_t sim_seed) {
    sim_opts_for_seed(o, sim_seed);
    o->crashes = 0;
    o->pauses = 0;
    o->keys = 200;
    o->ops_per_client = 1200;
    o->drop = 0.01;
    o->slow = 0.01;
    o->fault_every_ms = 300;
    o->join = 1;
    o->join_at_ms = 1000;
}

static void join_opts(struct sim_opts *o, uint64_t seed) {
    join_opts_of_sim_seed(o, seed * 7 + 2); /* variant 2: W=2 R=2, no crashes */
}

/* What moves in a run: a member joins, leaves, or dies and is removed. */
enum move { MOVE_JOIN, MOVE_LEAVE, MOVE_REMOVE };

static const struct move_kind {
    const char *name, *seeds_env, *sessions, *moved, *done;
    int default_seeds;
} MOVES[] = {
    [MOVE_JOIN] = {"join", "SIM_JOIN_SEEDS", "stream", "streamed", "joined", 20},
    [MOVE_LEAVE] = {"leave", "SIM_LEAVE_SEEDS", "push", "pushed", "left", 12},
    [MOVE_REMOVE] = {"removal", "SIM_REMOVE_SEEDS", "pull", "pulled", "removed", 12},
};

/* the options of a move run: the join's (drops, slow messages, partitions, no
 * crashes or pauses), the move 1 s in (a leave: the fifth node leaves; a removal:
 * it dies and is removed at once) */
static void move_opts_of_sim_seed(struct sim_opts *o, enum move m, uint64_t sim_seed) {
    join_opts_of_sim_seed(o, sim_seed);
    o->join = m == MOVE_JOIN;
    o->leave = m == MOVE_LEAVE;
    o->remove = m == MOVE_REMOVE;
}

static void move_opts(struct sim_opts *o, enum move m, uint64_t seed) {
    move_opts_of_sim_seed(o, m, seed * 7 + 2);
}

/* --kind leave and --kind remove */
static void leave_opts_of_sim_seed(struct sim_opts *o, uint64_t sim_seed) {
    move_opts_of_sim_seed(o, MOVE_LEAVE, sim_seed);
}

static void remove_opts_of_sim_seed(struct sim_opts *o, uint64_t sim_seed) {
    move_opts_of_sim_seed(o, MOVE_REMOVE, sim_seed);
}

/* A member moves mid-workload: every read that starts after a write was
 * acknowledged sees it, before, during and after the move (invariant 1, checked on
 * the ring of the moment); after it every key's N replicas of the new ring hold
 * every acknowledged write (a leave and a removal: after hint delivery, before any
 * repair); most moves end while clients still run. */
static void move_mid_workload(enum move m) {
    const struct move_kind *k = &MOVES[m];
    int nseeds = getenv(k->seeds_env) ? atoi(getenv(k->seeds_env)) : k->default_seeds;
    uint64_t ranges = 0, retries = 0, records = 0, checked = 0, mid = 0;
    for (uint64_t seed = 1; seed <= (uint64_t)nseeds; seed++) {
        struct sim_opts o;
        struct sim_result r;
        move_opts(&o, m, seed);
        if (sim_run(&o, &r) != 0) {
            fprintf(stderr, "sim: %s seed %llu FAILED: %s\n  replay: build/tests/sim_test "
                    "--kind %s --seed %llu -v\n", k->name,
                    (unsigned long long)o.seed, r.why, m == MOVE_REMOVE ? "remove" : k->name,
                    (unsigned long long)o.seed);
        }
        CHECK(r.ok);
        CHECK_EQ_INT(m == MOVE_JOIN ? r.st.joined : r.st.left, 1);
        ranges += r.st.stream_ranges;
        retries += r.st.stream_retries;
        records += r.st.stream_records;
        checked += r.st.reads_checked;
        mid += r.st.join_done_ms < r.st.join_workload_end_ms; /* done while clients ran */
    }
    printf("sim: %s over %d seeds: %llu %s sessions (%llu retried), %llu records %s, "
           "%llu reads checked, %s mid-workload in %llu seeds\n",
           k->name, nseeds, (unsigned long long)ranges, k->sessions,
           (unsigned long long)retries, (unsigned long long)records, k->moved,
           (unsigned long long)checked, k->done, (unsigned long long)mid);
    CHECK(records > 0);
    CHECK(mid * 2 >= (uint64_t)nseeds);
}

/* The checker can fail: the ring takes the move without streaming (skip_stream),
 * or writes made meanwhile skip the replicas that gain ranges (what the pending
 * replicas are for): some seed must read a stale value or lose a write. A leave's
 * and a removal's workload is short (150 ops a client, ending soon after the
 * move), so keys stay as they were before it and the loss is not overwritten. */
static void move_checker_catches(enum move m, int skip_stream) {
    int caught = 0;
    for (uint64_t seed = 1; seed <= 100 && !caught; seed++) {
        struct sim_opts o;
        struct sim_result r;
        move_opts(&o, m, seed);
        if (m != MOVE_JOIN) {
            o.ops_per_client = 150;
        }
        o.join_skip_stream = skip_stream;
        o.join_skip_pending = !skip_stream;
        if (sim_run(&o, &r) != 0) {
            caught = 1;
            printf("sim: a %s without %s caught at seed %llu: %s\n", MOVES[m].name,
                   skip_stream ? "streaming" : "pending writes", (unsigned long long)o.seed,
                   r.why);
        }
    }
    CHECK(caught);
}

static void test_sim_join_mid_workload_keeps_every_acknowledged_write(void) {
    move_mid_workload(MOVE_JOIN);
}

static void test_sim_join_checker_catches_a_join_without_streaming(void) {
    move_checker_catches(MOVE_JOIN, 1);
}

static void test_sim_join_checker_catches_a_join_without_pending_writes(void) {
    move_checker_catches(MOVE_JOIN, 0);
}

/* a current replica the joiner cannot reach for its whole stream (a cut link):
 * the ranges it holds still count as streamed from the other two (W=2 of 3,
 * join_session_enough), so the join ends while clients run, and every
 * acknowledged write is still read back */
static void test_sim_join_goes_on_with_a_replica_out_of_reach(void) {
    int nseeds = 10;
    uint64_t enough = 0, mid = 0;
    for (uint64_t seed = 1; seed <= (uint64_t)nseeds; seed++) {
        struct sim_opts o;
        struct sim_result r;
        join_opts(&o, seed);
        o.partitions = 0; /* the one cut stays */
        o.join_cut_peer = 1;
        if (sim_run(&o, &r) != 0) {
            fprintf(stderr, "sim: join (cut peer) seed %llu FAILED: %s\n",
                    (unsigned long long)o.seed, r.why);
        }
        CHECK(r.ok);
        CHECK_EQ_INT(r.st.joined, 1);
        enough += r.st.stream_partial_enough;
        mid += r.st.join_done_ms < r.st.join_workload_end_ms;
    }
    printf("sim: join with a replica out of reach, %d seeds: %llu sessions lost it and "
           "counted, joined mid-workload in %llu seeds\n",
           nseeds, (unsigned long long)enough, (unsigned long long)mid);
    CHECK(enough > 0);
    CHECK(mid * 2 >= (uint64_t)nseeds);
}

/* a join run replays exactly from its seed */
static void test_sim_join_replays(void) {
    struct sim_opts o;
    struct sim_result a, b;
    join_opts(&o, 5);
    CHECK_EQ_INT(sim_run(&o, &a), 0);
    CHECK_EQ_INT(sim_run(&o, &b), 0);
    CHECK(a.st.stream_records == b.st.stream_records && a.st.messages == b.st.messages &&
          a.st.end_ms == b.st.end_ms && a.st.join_done_ms == b.st.join_done_ms);
}

static void test_sim_leave_mid_workload_keeps_every_acknowledged_write(void) {
    move_mid_workload(MOVE_LEAVE);
}

static void test_sim_leave_checker_catches_a_leave_without_streaming_or_pending(void) {
    move_checker_catches(MOVE_LEAVE, 1);
    move_checker_catches(MOVE_LEAVE, 0);
}

/* The simulator found it: a read during a leave returned a value that a failed
 * write had put on two of the old replicas (the leaver among them), read repair
 * left it on those that answered, and once the ring dropped the leaver a quorum
 * read of the new replicas returned an older one. Reads now send their winner to
 * the pending replicas and wait for R + pending holders (op.h
 * op_read_start_pending); without that the seed still fails. */
static void test_sim_leave_reads_need_their_winner_on_the_pending_replicas(void) {
    struct sim_opts o;
    struct sim_result r;
    move_opts_of_sim_seed(&o, MOVE_LEAVE, 1157);
    CHECK_EQ_INT(sim_run(&o, &r), 0);
    o.read_skip_pending = 1;
    CHECK_EQ_INT(sim_run(&o, &r), -1);
    CHECK(strstr(r.why, "non-monotonic read") != NULL);
    printf("sim: leave seed 1157 with reads skipping the pending replicas: %s\n", r.why);
}

static void test_sim_remove_mid_workload_keeps_every_acknowledged_write(void) {
    move_mid_workload(MOVE_REMOVE);
}

static void test_sim_remove_checker_catches_a_removal_without_streaming_or_pending(void) {
    move_checker_catches(MOVE_REMOVE, 1);
    move_checker_catches(MOVE_REMOVE, 0);
}

/* a leave or a removal run replays exactly from its seed */
static void move_replays(enum move m) {
    struct sim_opts o;
    struct sim_result a, b;
    move_opts(&o, m, 4);
    CHECK_EQ_INT(sim_run(&o, &a), 0);
    CHECK_EQ_INT(sim_run(&o, &b), 0);
    CHECK(memcmp(&a.st, &b.st, sizeof a.st) == 0);
}

static void test_sim_remove_replays(void) {
    move_replays(MOVE_REMOVE);
}

static void test_sim_leave_replays(void) {
    move_replays(MOVE_LEAVE);
}

/* gossip on the virtual clock: 200 seeds of 5 nodes, rounds and times printed */
static void test_sim_gossip_converges_detects_and_recovers(void) {
    int seeds = 200, failed = 0, max_rounds = 0, max_restart = 0;
    double sum_rounds = 0;
    uint64_t max_detect = 0, max_recover = 0, sum_detect = 0;
    for (int seed = 1; seed <= seeds; seed++) {
        struct sim_gossip_opts o = {(uint64_t)seed, 5, 20, 0.01, 0};
        struct sim_gossip_result r;
        if (sim_gossip_run(&o, &r) != 0) {
            failed++;
            fprintf(stderr, "sim gossip: seed %d FAILED: %s\n", seed, r.why);
            continue;
        }
        sum_rounds += r.rounds_to_converge;
        max_rounds = r.rounds_to_converge > max_rounds ? r.rounds_to_converge : max_rounds;
        max_restart = r.restart_rounds > max_restart ? r.restart_rounds : max_restart;
        sum_detect += r.detect_ms;
        max_detect = r.detect_ms > max_detect ? r.detect_ms : max_detect;
        max_recover = r.recover_ms > max_recover ? r.recover_ms : max_recover;
    }
    printf("sim gossip: 5 nodes, one seed each, %d seeds: converged in %.2f rounds on average "
           "(max %d); partition seen down after %.0f ms on average (max %llu); up again "
           "within %llu ms of healing; a restart's generation known in <= %d rounds\n",
           seeds, sum_rounds / seeds, max_rounds, (double)sum_detect / seeds,
           (unsigned long long)max_detect, (unsigned long long)max_recover, max_restart);
    CHECK_EQ_INT(failed, 0);
    /* replayable: the same seed gives the same run */
    struct sim_gossip_opts o = {77, 7, 30, 0.05, 0};
    struct sim_gossip_result a, b;
    CHECK_EQ_INT(sim_gossip_run(&o, &a), 0);
    CHECK_EQ_INT(sim_gossip_run(&o, &b), 0);
    CHECK(a.messages == b.messages && a.detect_ms == b.detect_ms &&
          a.rounds_to_converge == b.rounds_to_converge);
}

/* the checker can fail: a network that loses everything never converges */
static void test_sim_gossip_checker_catches_no_convergence(void) {
    struct sim_gossip_opts o = {5, 5, 20, 1.0, 0};
    struct sim_gossip_result r;
    CHECK_EQ_INT(sim_gossip_run(&o, &r), -1);
    CHECK(strstr(r.why, "did not converge") != NULL);
    o.nodes = 1;
    CHECK_EQ_INT(sim_gossip_run(&o, &r), -1);
}

static void test_sim_refuses_bad_options(void) {
    struct sim_opts o;
    struct sim_result r;
    sim_opts_for_seed(&o, 1);
    o.nodes = 99;
    CHECK_EQ_INT(sim_run(&o, &r), -1);
}

/* the options of --kind, applied to a simulator seed; NULL: no such kind */
static opts_fn *opts_of_kind(const char *kind) {
    static const struct {
        const char *name;
        opts_fn *fn;
    } kinds[] = {{"", sim_opts_for_seed},
                 {"join", join_opts_of_sim_seed},
                 {"leave", leave_opts_of_sim_seed},
                 {"remove", remove_opts_of_sim_seed},
                 {"repair", background_opts_of_sim_seed},
                 {"absence", absence_opts_of_sim_seed},
                 {"hash", hash_opts_of_sim_seed}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(kind, kinds[i].name) == 0) {
            return kinds[i].fn;
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    uint64_t seed = 0, seeds = 0, first = 1;
    int have_seed = 0, verbose = 0;
    const char *kind = "";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10), have_seed = 1;
        } else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
            seeds = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--first") == 0 && i + 1 < argc) {
            first = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--kind") == 0 && i + 1 < argc) {
            kind = argv[++i];
        } else if (strcmp(argv[i], "--gc-no-horizon") == 0) {
            cli_no_horizon = 1;
        } else if (strcmp(argv[i], "--absent-no-hold") == 0) {
            cli_no_hold = 1;
        } else if (strcmp(argv[i], "-v") == 0) {
            verbose = 1;
        } else {
            fprintf(stderr,
                    "usage: %s [--kind join|leave|remove|repair|absence|hash] [--gc-no-horizon] "
                    "[--absent-no-hold] (--seed S [-v] | --seeds K [--first F])\n",
                    argv[0]);
            return 2;
        }
    }
    opts_fn *opts = opts_of_kind(kind);
    if (opts == NULL) {
        fprintf(stderr, "unknown kind %s\n", kind);
        return 2;
    }
    if (have_seed) {
        struct sim_opts o;
        struct sim_result r;
        opts(&o, seed);
        o.verbose = verbose;
        o.gc_no_horizon = cli_no_horizon;
        o.absent_no_hold = cli_no_hold;
        int rc = sim_run(&o, &r);
        print_stats(seed, &r);
        printf("%d passed, %d failed\n", rc == 0, rc != 0);
        return rc == 0 ? 0 : 1;
    }
    if (seeds) {
        clock_t start = clock();
        int failed = run_seeds_of(opts, kind, first, seeds, NULL);
        printf("sim: %llu seeds from %llu in %.1f s cpu\n", (unsigned long long)seeds,
               (unsigned long long)first, (double)(clock() - start) / CLOCKS_PER_SEC);
        printf("%llu passed, %d failed\n", (unsigned long long)(seeds - (uint64_t)failed), failed);
        return failed ? 1 : 0;
    }
    TEST_RUN(test_sim_a_seed_replays_exactly);
    TEST_RUN(test_sim_seeds_hold_every_invariant);
    TEST_RUN(test_sim_checker_catches_stale_reads_at_r1_w1);
    TEST_RUN(test_sim_checker_catches_divergence_without_hints);
    TEST_RUN(test_sim_merkle_repair_converges_without_hints);
    TEST_RUN(test_sim_merkle_repair_replays);
    TEST_RUN(test_sim_repair_in_faults_then_converges_after_healing);
    TEST_RUN(test_sim_repair_checker_catches_replicas_that_differ_without_repair);
    TEST_RUN(test_sim_long_absence_brings_nothing_back);
    TEST_RUN(test_sim_long_absence_checker_catches_a_resurrection);
    TEST_RUN(test_sim_long_absence_horizon_alone_keeps_deletes);
    TEST_RUN(test_sim_hashes_hold_every_invariant);
    TEST_RUN(test_sim_hash_checker_catches_whole_record_lww);
    TEST_RUN(test_sim_refuses_bad_options);
    TEST_RUN(test_sim_join_mid_workload_keeps_every_acknowledged_write);
    TEST_RUN(test_sim_join_checker_catches_a_join_without_streaming);
    TEST_RUN(test_sim_join_checker_catches_a_join_without_pending_writes);
    TEST_RUN(test_sim_join_goes_on_with_a_replica_out_of_reach);
    TEST_RUN(test_sim_join_replays);
    TEST_RUN(test_sim_leave_mid_workload_keeps_every_acknowledged_write);
    TEST_RUN(test_sim_leave_checker_catches_a_leave_without_streaming_or_pending);
    TEST_RUN(test_sim_leave_replays);
    TEST_RUN(test_sim_remove_mid_workload_keeps_every_acknowledged_write);
    TEST_RUN(test_sim_remove_checker_catches_a_removal_without_streaming_or_pending);
    TEST_RUN(test_sim_remove_replays);
    TEST_RUN(test_sim_leave_reads_need_their_winner_on_the_pending_replicas);
    TEST_RUN(test_sim_gossip_converges_detects_and_recovers);
    TEST_RUN(test_sim_gossip_checker_catches_no_convergence);
    TEST_MAIN_END();
}
