/* server/store/cleanup.h: dropping the keys of token ranges this node no longer
 * replicates (KVD CLEANUP, cleanup.c), brought by store.h. The caller (the KVD
 * command) says which ranges to keep; the store drops every other key without a
 * tombstone and without an event: nothing replicates, nothing counts as a delete.
 *
 * Cache mode: the keys leave the in-memory dictionary, a bounded number per loop
 * turn (store_cleanup_step from the cron), so a large keyspace never blocks the
 * loop. Persistent mode: the same sweep walks the engine over the dropped ranges,
 * takes each live key off the counts, the expiry index and the cache; then the
 * engine's drop set (engine.h lsm_set_drop_ranges, up to the engine sequence at
 * the start) and a full manual compaction on a thread remove the records from
 * disk. A restart before that ends recounts the keys at the next start and
 * leaves the rest on disk until the next KVD CLEANUP (space, never correctness).
 *
 * Threading: loop thread only.
 */
#ifndef KVD_STORE_CLEANUP_H
#define KVD_STORE_CLEANUP_H

#include <stddef.h>
#include <stdint.h>

/* A token range [from, to); to 0: the end of the token space. */
struct store_span {
    uint64_t from, to;
};

enum store_cleanup_state {
    CLEANUP_IDLE = 0,  /* none ran since start */
    CLEANUP_SWEEPING,  /* dropping keys from memory (and counts, index) */
    CLEANUP_COMPACTING,/* persistent: the engine's compaction removes the records */
    CLEANUP_DONE,
    CLEANUP_ABORTED,   /* stopped (the ranges changed): what went stays gone */
};

struct store_cleanup_stats {
    int state;                 /* enum store_cleanup_state */
    uint64_t runs;             /* cleanups started since start */
    uint64_t ranges;           /* dropped ranges of the last one */
    uint64_t ranges_done;      /* of those, swept */
    uint64_t keys_dropped;     /* keys dropped by the last one */
    uint64_t bytes_dropped;    /* their bytes (memory, or key + value on disk) */
    long long ms;              /* its duration so far */
    const char *why;           /* ABORTED: why ("" otherwise) */
};

/* Starts dropping every key whose token lies in none of keep[0..n) (sorted,
 * disjoint: cluster_kept_ranges). Returns how many ranges go (0: nothing to drop,
 * done at once), or -1 with err when a cleanup is running or the store is loading. */
long store_cleanup_start(const struct store_span *keep, size_t n, char *err, size_t errlen);

/* The cron's bounded share of the work (about a millisecond). */
void store_cleanup_step(void);

/* 1 while a cleanup runs (sweeping or compacting). */
int store_cleanup_running(void);

/* The kept ranges the running cleanup started with (valid while it runs). */
const struct store_span *store_cleanup_kept(size_t *n);

/* Stops the sweep (why: kept for INFO, static). Keys already dropped stay dropped;
 * persistent mode still compacts them away if the sweep had ended. */
void store_cleanup_abort(const char *why);

void store_cleanup_stats(struct store_cleanup_stats *out);

/* Tests: a step stops after about this many keys (0, the default: after about a
 * millisecond), so that a sweep can be cut short on purpose. */
void store_cleanup_set_step_limit(long keys);

/* Persistent mode, at close: waits for the compaction thread; returns 1 when the
 * counts no longer describe the records on disk (a cleanup did not finish: the
 * next start must recount). */
int store_cleanup_close(void);

#endif
