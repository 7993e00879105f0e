/* server/store/hlc.h: the node's hybrid logical clock (Kulkarni et al., 2014), the write
 * timestamp of every stored entry (DESIGN.md "Values and versions").
 *
 * A timestamp is 48 bits of physical Unix milliseconds and 16 logical bits:
 * ts = ms << 16 | logical. hlc_now() never returns a value <= one it returned
 * before, even when the wall clock steps back: it then keeps the last physical
 * part and counts the logical part up (and, past 65535 in one millisecond,
 * borrows the next millisecond). hlc_observe() folds in a timestamp seen from
 * elsewhere (a peer, the data on disk at start) so later local ones are newer.
 *
 * VERSIONS OF WRITES (server/coord/coord.c "VERSIONS" has the whole rule): a key's
 * versions strictly increase, a write is at or above everything the clock handed
 * out or observed before it, and the writes of one command share one tick while
 * hlc_last() is still that tick and the key holds an older version. So a command
 * that writes ten keys ticks once; a key written twice ticks again.
 *
 * Threading: one clock per process, loop thread only.
 */
#ifndef KVD_HLC_H
#define KVD_HLC_H

#include <stdint.h>

#include "proto/hlc.h"

#define HLC_MS(ts) KV_HLC_MS(ts)
#define HLC_LOGICAL(ts) KV_HLC_LOGICAL(ts)
#define HLC_MAKE(ms, l) KV_HLC_MAKE(ms, l)

/* The last timestamp handed out or observed; read and written only through the
 * functions below (inline: every write stamps one, hlc.c keeps the rest). The
 * arithmetic is proto/hlc.h's, which the cluster's simulator runs per node. */
extern uint64_t hlc_state;

/* A new timestamp, > every earlier one from hlc_now/hlc_observe, taking the
 * physical part from wall_ms (Unix ms; the caller's clock). When the clock stood
 * still or went back, the logical part counts up (and carries into the physical
 * part past 65535: still monotonic). */
static inline uint64_t hlc_tick(uint64_t wall_ms) {
    return kv_hlc_tick(&hlc_state, wall_ms);
}
/* hlc_tick(kv_mstime()): the node's one clock, debug-clock-offset-ms included. */
uint64_t hlc_now(void);
/* Makes later timestamps greater than ts. */
static inline void hlc_observe(uint64_t ts) {
    kv_hlc_observe(&hlc_state, ts);
}
/* The last timestamp handed out or observed (0 at start). */
static inline uint64_t hlc_last(void) {
    return hlc_state;
}
/* Forgets everything (tests). */
void hlc_reset(void);

#endif
