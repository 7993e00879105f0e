/* server/store/hlc.c: the hybrid logical clock. See hlc.h (tick, observe and last
 * are inline there). */
#include "server/store/hlc.h"

long long kv_mstime(void); /* server/base/state.c: the one clock */

uint64_t hlc_state;

uint64_t hlc_now(void) {
    long long ms = kv_mstime();
    return hlc_tick(ms > 0 ? (uint64_t)ms : 0);
}

void hlc_reset(void) {
    hlc_state = 0;
}
