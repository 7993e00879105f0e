/* proto/hlc.h: the pure arithmetic of the hybrid logical clock (Kulkarni et al.,
 * 2014) on a caller-owned `last` value, so that one process can run many clocks (the
 * cluster simulator runs one per simulated node) and layers below server/ can use
 * it. server/hlc.c keeps the node's one clock; it can be rewritten on top of these.
 *
 * A timestamp is 48 bits of physical Unix milliseconds and 16 logical bits:
 * ts = ms << 16 | logical (the same layout as server/hlc.h and proto/version.h).
 * No I/O, no globals; time is passed in.
 */
#ifndef KVD_PROTO_HLC_H
#define KVD_PROTO_HLC_H

#include <stdint.h>

#define KV_HLC_MS(ts) ((uint64_t)(ts) >> 16)
#define KV_HLC_LOGICAL(ts) ((uint64_t)(ts) & 0xffffu)
#define KV_HLC_MAKE(ms, l) (((uint64_t)(ms) << 16) | (uint64_t)(l))

/* A new timestamp > *last (and > every timestamp observed into *last), taking the
 * physical part from wall_ms when the wall clock is ahead, else counting the
 * logical part up (an overflow carries into the physical part: still monotonic).
 * Stores it in *last and returns it. */
static inline uint64_t kv_hlc_tick(uint64_t *last, uint64_t wall_ms) {
    if (wall_ms > KV_HLC_MS(*last)) {
        *last = KV_HLC_MAKE(wall_ms, 0);
    } else {
        (*last)++;
    }
    return *last;
}

/* Folds in a timestamp seen elsewhere (a peer's record): later ticks are > ts. */
static inline void kv_hlc_observe(uint64_t *last, uint64_t ts) {
    if (ts > *last) {
        *last = ts;
    }
}

/* kv_hlc_observe, refusing a timestamp whose physical part is more than
 * max_ahead_ms ahead of wall_ms (a peer with a clock far ahead would otherwise
 * drag this clock forward for good: seam-today.md pitfall 6). Returns 0 when
 * observed, -1 when refused (*last unchanged). */
static inline int kv_hlc_observe_bounded(uint64_t *last, uint64_t ts, uint64_t wall_ms,
                                         uint64_t max_ahead_ms) {
    if (KV_HLC_MS(ts) > wall_ms && KV_HLC_MS(ts) - wall_ms > max_ahead_ms) {
        return -1;
    }
    kv_hlc_observe(last, ts);
    return 0;
}

#endif
