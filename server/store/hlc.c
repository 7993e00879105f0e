/* server/store/hlc.c: the hybrid logical clock. See hlc.h. */
#include "server/store/hlc.h"

long long kv_mstime(void); /* server/base/state.c: the one clock */

static uint64_t hlc_state; /* the last timestamp handed out or observed */

uint64_t hlc_tick(uint64_t wall_ms) {
    uint64_t phys = HLC_MS(hlc_state);
    if (wall_ms > phys) {
        hlc_state = HLC_MAKE(wall_ms, 0);
    } else {
        /* the clock stood still or went back: count logically; a logical part
         * that overflows carries into the physical part, still monotonic */
        hlc_state++;
    }
    return hlc_state;
}

uint64_t hlc_now(void) {
    long long ms = kv_mstime();
    return hlc_tick(ms > 0 ? (uint64_t)ms : 0);
}

void hlc_observe(uint64_t ts) {
    if (ts > hlc_state) {
        hlc_state = ts;
    }
}

uint64_t hlc_last(void) {
    return hlc_state;
}

void hlc_reset(void) {
    hlc_state = 0;
}
