/* server/base/state.c: the node's global state (struct kv_server server: the
 * config values, the runtime pointers, the counters), the one clock, and the
 * shutdown request. The layers above fill and read the state; this file owns only
 * its storage and the clock.
 */
#include <event2/event.h>
#include <time.h>

#include "server/base/base.h"

struct kv_server server;
int net_bound_port;

long long kv_ustime(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 +
           server.debug_clock_offset_ms * 1000;
}

long long kv_mstime(void) {
    return kv_ustime() / 1000;
}

long long kv_time_sync(void) {
    long long us = kv_ustime();
    server.ustime = us;
    server.mstime = us / 1000;
    return us;
}

void server_request_shutdown(int from_signal) {
    (void)from_signal;
    server.shutdown_asap = 1;
    if (server.base) {
        event_base_loopbreak(server.base);
    }
}
