/* cluster/skew.h: this node's clock offset from its peers, measured on the round
 * trips it already makes (gossip), and the guard that stops it coordinating writes
 * while the offset is too large (DESIGN.md "Cluster": last-write-wins on HLC would
 * otherwise let a node whose clock is behind lose writes silently, and one ahead
 * win every conflict).
 *
 * HOW IT WORKS. NTP's one-exchange estimate: this node sends at t_send (its clock),
 * the peer answers with its clock p, the answer arrives at t_recv:
 *
 *   offset(peer) = p - (t_send + t_recv) / 2      error at most rtt / 2
 *
 * Per peer the last SKEW_WINDOW samples are kept and, of those younger than
 * SKEW_RECENT_MS, the one with the smallest round trip is the estimate (queueing only adds delay, so the fastest exchange is
 * the most exact: NTP's clock filter). This node's own offset is then minus the
 * median of {0 (itself), every peer's estimate} over the peers with a recent
 * sample. With an even count the median is the middle value farther from
 * this node: when the cluster is split evenly no side can tell it is right, and
 * both refuse (safe) rather than both accept.
 *
 * Example: peers at +2000, +1990, +2010 (this node is 2 s behind): values {0, 1990,
 * 2000, 2010}, median 2000 (the farther of 1990 and 2000), this node's offset -2000:
 * out of range at 500. A healthy node of the same cluster sees {0, 0, 0, -2000}
 * (one peer behind): median 0, in range.
 *
 * Pure: times are passed in (ms, the node's wall clock); no allocation beyond the
 * peer table. Loop thread or simulator.
 */
#ifndef KVD_CLUSTER_SKEW_H
#define KVD_CLUSTER_SKEW_H

#include <stddef.h>
#include <stdint.h>

#define SKEW_WINDOW 8          /* samples kept per peer */
#define SKEW_RECENT_MS 10000   /* older samples are not used (a clock that jumped is
                                  seen within this long); a peer with none is left out */

struct skew_sample {
    int64_t offset;            /* peer minus this node, ms */
    uint64_t rtt;              /* ms */
    uint64_t at;               /* t_recv */
};

struct skew_peer {
    uint32_t tag;
    struct skew_sample s[SKEW_WINDOW];
    size_t n, head;
};

struct skew {
    struct skew_peer *p;
    size_t n;
    int64_t max_ms;            /* cluster-max-clock-offset-ms */
    int ok;                    /* last verdict: 1 in range */
    int64_t offset;            /* last estimate of this node's offset, ms */
    size_t peers;              /* peers the last estimate used */
};

void skew_init(struct skew *s, int64_t max_ms);
void skew_free(struct skew *s);
/* One exchange with peer tag: sent at t_send, answered with peer_ms, received at
 * t_recv (t_recv < t_send is ignored). */
void skew_sample(struct skew *s, uint32_t tag, uint64_t t_send, uint64_t peer_ms,
                 uint64_t t_recv);
/* The estimate of peer tag at now: 1 with *offset and *rtt, 0 when it has no
 * recent sample. */
int skew_peer_offset(const struct skew *s, uint32_t tag, uint64_t now, int64_t *offset,
                     uint64_t *rtt);
/* Recomputes s->offset, s->peers and s->ok at now. Returns 1 when s->ok changed
 * (the caller logs the transition), else 0. With no peer heard, ok. */
int skew_check(struct skew *s, uint64_t now);

#endif
