/* cluster/phi.h: the phi accrual failure detector of one member (Hayashibara,
 * Defago, Yared, Katayama, "The phi accrual failure detector", SRDS 2004).
 *
 * Instead of a boolean "up/down after T seconds", the detector answers how
 * suspicious the silence since the last heartbeat is, on a continuous scale:
 *
 *   phi(t) = -log10( P(a heartbeat arrives later than t after the last one) )
 *
 * where P comes from a normal distribution fitted to the recent inter-arrival
 * intervals (mean and standard deviation over a bounded window). phi 1 means a
 * 10% chance that a heartbeat this late is still normal, phi 8 one in 10^8. The
 * caller compares phi with a threshold (phi-convict-threshold): a network whose
 * heartbeats arrive irregularly raises the standard deviation, so the detector
 * waits longer before it convicts, by itself.
 *
 * Worked example: intervals of 1000 ms with a standard deviation of 100 ms; 1200
 * ms after the last heartbeat y = (1200 - 1000) / 100 = 2, P(later) = 0.0228,
 * phi = 1.64; at 1600 ms y = 6, P = 1e-9, phi = 9.0 (convicted at 8).
 *
 * Details that make it work in practice (as in Cassandra and Akka):
 * - Before any interval is known the detector assumes initial_ms with a standard
 *   deviation of initial_ms / 4, so a member heard once is still judged.
 * - The standard deviation never goes below min_std_ms (default 400): perfectly
 *   regular heartbeats would otherwise convict a member a few ms late, and a
 *   loaded machine's one-off 2 s pause must not convict a healthy member.
 * - An interval longer than max_interval_ms is not a sample (a member that was
 *   down for a minute and came back must not teach the detector that a
 *   minute of silence is normal); the arrival still resets the clock.
 *
 * Pure code: time is passed in (ms, any monotonic origin); no allocation (the
 * window is inside the struct). Loop thread or simulator; no globals.
 */
#ifndef KVD_CLUSTER_PHI_H
#define KVD_CLUSTER_PHI_H

#include <stddef.h>
#include <stdint.h>

#define PHI_WINDOW_MAX 1000  /* intervals kept at most (the oldest dropped) */
#define PHI_MAX 100.0        /* phi is capped here (P below 1e-100) */

struct phi_config {
    size_t window;           /* intervals kept, 1..PHI_WINDOW_MAX (0: the max) */
    double initial_ms;       /* the interval assumed before any sample (> 0) */
    double min_std_ms;       /* floor of the standard deviation (> 0) */
    double max_interval_ms;  /* longer intervals are not samples */
};

struct phi {
    struct phi_config c;
    uint64_t last;                  /* time of the last heartbeat; 0: none yet */
    uint32_t iv[PHI_WINDOW_MAX];    /* intervals (ms), a ring of c.window */
    size_t n, head;                 /* samples held; next slot to write */
    uint64_t sum, sumsq;            /* of the held samples (exact: integers) */
};

/* The defaults for heartbeats gossiped about once a second. */
void phi_config_default(struct phi_config *c);
/* Resets p to "never heard" with config c (bad fields replaced by defaults). */
void phi_init(struct phi *p, const struct phi_config *c);
/* A heartbeat arrived at now (ms). now before the last arrival counts as now. */
void phi_heartbeat(struct phi *p, uint64_t now);
/* phi at now: 0 before any heartbeat; at most PHI_MAX. */
double phi_value(const struct phi *p, uint64_t now);
/* The fitted mean and standard deviation of the intervals (ms), as used. */
void phi_stats(const struct phi *p, double *mean, double *std);

#endif
