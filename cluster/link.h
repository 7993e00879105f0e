/* cluster/link.h: an outgoing, persistent, authenticated connection to one peer node,
 * on the caller's libevent loop, over hiredis's async API. This is the socket edge of
 * the cluster: the protocol code above hands it argv arrays and gets one callback per
 * request; nothing else in cluster/ touches sockets. cluster/LINKS.md says how a link
 * behaves; this header gives the contracts.
 *
 * What a link does:
 * - dials host:port from the node's own address (source_addr), runs the handshake of
 *   cluster/auth.h before any request goes out (requests issued meanwhile wait), and
 *   keeps reconnecting after any failure, with a bounded, jittered exponential backoff;
 * - sends requests pipelined; all requests issued in one loop turn leave in one
 *   write(2) (hiredis buffers; the link never flushes per request);
 * - bounds what it holds: at most max_inflight requests (and max_inflight_bytes) are
 *   on the socket unanswered; beyond that requests wait in a queue bounded by
 *   max_queued_bytes; beyond that link_send refuses at once;
 * - times every request: one that gets no reply within request_timeout_ms completes
 *   with LINK_TIMEOUT, exactly once; its late reply, if any, is dropped. A connection
 *   on which nothing was answered during a whole request timeout is declared stalled,
 *   closed and redialled;
 * - checks replies: a reply nobody asked for, a bulk string longer than max_bulk_len
 *   (seen from its header, before its bytes arrive), an array longer than
 *   max_elements, more than max_reply_bytes of one unfinished reply, or bytes that are
 *   not RESP, close the connection with an error (requests in flight complete with
 *   LINK_DOWN), never crash or allocate for a length the peer merely announced;
 * - keeps round-trip samples of successful requests and counters.
 *
 * Threading: everything runs on the thread of the event base given to link_create.
 * Callbacks (done, on_state) are never called from inside link_send or link_create.
 */
#ifndef KVD_CLUSTER_LINK_H
#define KVD_CLUSTER_LINK_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "cluster/auth.h"

/* How a request ended (the status of its done callback, or what link_send refused). */
enum link_status {
    LINK_OK = 0,       /* the peer replied (the reply may be a RESP error) */
    LINK_TIMEOUT = -1, /* no reply within request_timeout_ms; it may still have run */
    LINK_DOWN = -2,    /* the link is down, or went down with the request in flight
                          (in flight: it may have run; waiting: it never left) */
    LINK_REFUSED = -3, /* not accepted: queue full, or a verb a link cannot carry */
};

/* What the link is doing, as reported to on_state and link_stats. */
enum link_state {
    LINK_STATE_CONNECTING = 1, /* TCP connect and handshake under way */
    LINK_STATE_UP,             /* authenticated: requests flow */
    LINK_STATE_DOWN,           /* failed (refused, timeout, reset, bad reply); redials */
    LINK_STATE_AUTH_FAILED,    /* the peer failed the handshake (other secret, not a
                                  kvd peer port); redials with backoff like DOWN */
};

/* Called once per accepted request. reply is hiredis's parsed reply when status is
 * LINK_OK (borrowed: valid only during the call; copy what you keep), NULL otherwise.
 * The callback may call link_send; it may call link_destroy (see there). */
typedef void (*link_done_fn)(void *ctx, int status, const redisReply *reply);

/* Called on every state change with a short reason ("connect timeout", "peer proof
 * wrong: the peer has another secret", ...), borrowed for the call. */
typedef void (*link_state_fn)(void *ctx, enum link_state state, const char *why);

struct link_config {
    const char *host;            /* peer address to dial (numeric IP or name) */
    int port;
    const char *source_addr;     /* local address to bind before connecting (the
                                    node's own bind address); NULL or "": any */
    const void *secret;          /* cluster secret (copied) */
    size_t secret_len;
    const char *node_id;         /* our node id (copied), sent in HELLO */
    size_t node_id_len;
    int connect_timeout_ms;      /* TCP connect plus handshake; 0: 1000 */
    int request_timeout_ms;      /* per request, from link_send; 0: 1000 */
    int max_inflight;            /* requests on the socket unanswered; 0: 1024 */
    size_t max_inflight_bytes;   /* their encoded bytes; 0: 8 MiB (one bigger request
                                    may still go alone) */
    size_t max_queued_bytes;     /* waiting requests' bytes (plus overhead); 0: 16 MiB */
    int backoff_min_ms;          /* first redial delay; 0: 100 */
    int backoff_max_ms;          /* delay cap (doubles up to it, then jittered down
                                    by up to half); 0: 5000 */
    long long max_bulk_len;      /* longest bulk string in a reply; 0: 512 MiB */
    long long max_elements;      /* most elements in one reply array; 0: 1M */
    size_t max_reply_bytes;      /* most bytes buffered of unfinished replies; 0:
                                    max_bulk_len + 64 KiB */
    link_state_fn on_state;      /* may be NULL */
    void *state_ctx;
};

struct link;

/* Creates a link and starts dialling at once (state CONNECTING). Returns NULL when
 * the config is unusable (no host, bad port, empty or too long secret or node id).
 * Free with link_destroy. */
struct link *link_create(struct event_base *base, const struct link_config *cfg);

/* Completes every request still pending with LINK_DOWN (their callbacks run now),
 * closes the connection, frees the link and sets *lp to NULL. Called from inside one
 * of this link's own callbacks, the work is deferred to the next loop turn (the
 * remaining callbacks then run from the loop); the link accepts nothing meanwhile. */
void link_destroy(struct link **lp);

/* Sends argv[0..argc) (byte strings) to the peer. Returns LINK_OK when the request
 * was accepted: done(ctx, ...) will then be called exactly once, later, from the loop.
 * Returns, without ever calling done:
 *   LINK_DOWN     the link is down or auth-failed and waiting to redial (fail fast);
 *   LINK_REFUSED  the queue is full, argc < 1, or argv[0] is a verb that would turn
 *                 the connection into a push stream (SUBSCRIBE, MONITOR, ...).
 * While the link is CONNECTING, accepted requests wait for the handshake. */
int link_send(struct link *l, int argc, const char *const *argv, const size_t *argvlen,
              link_done_fn done, void *ctx);
/* Writes what link_send handed to the connection now, rather than from the write
 * event of the next loop turn (a sender that has finished its turn's requests
 * saves the peer a turn). Does nothing unless the link is up and not inside one of
 * its own handlers. A failed write closes the connection as a failed write event
 * would: the requests in flight complete with LINK_DOWN from inside this call. */
void link_flush(struct link *l);

struct link_stats {
    enum link_state state;
    int inflight;                /* requests on the socket unanswered (incl. timed out) */
    int queued;                  /* requests waiting for room or the handshake */
    size_t inflight_bytes;
    size_t queued_bytes;
    size_t out_buffered;         /* bytes in hiredis's output buffer, not yet written */
    uint64_t sent;               /* requests accepted by link_send */
    uint64_t ok, timeouts, down, refused;  /* how they ended / were refused */
    uint64_t late_replies;       /* replies that arrived after their timeout */
    uint64_t connects;           /* handshakes completed */
    uint64_t disconnects;        /* connections lost or closed after being opened */
    uint64_t auth_failures;
    uint64_t write_calls;        /* times the socket was written (one per loop turn
                                    with output, unless the socket was full) */
    char peer_id[AUTH_ID_MAX + 1]; /* the peer's node id once authenticated */
    char last_error[128];        /* why the last connection failed */
};

/* Fills *out with the link's current counters and state. */
void link_get_stats(const struct link *l, struct link_stats *out);

#define LINK_RTT_SAMPLES 1024

/* Copies up to max of the most recent round-trip times (microseconds, from link_send
 * to the reply, successful requests only) into out; returns how many. */
int link_rtt_samples(const struct link *l, uint32_t *out, int max);

/* The pct-th percentile (0..100) of the kept round-trip samples, in microseconds;
 * 0 when there are none. */
uint32_t link_rtt_percentile(const struct link *l, double pct);

/* The redial delay after `failures` consecutive failures (1 for the first): min_ms
 * doubled per further failure, capped at max_ms, then jittered down uniformly to
 * between half of that and all of it by rnd (any random number), so peers that failed
 * together do not redial together. Pure. */
uint32_t link_backoff_ms(int failures, int min_ms, int max_ms, uint64_t rnd);

/* Name of a state ("connecting", "up", "down", "auth-failed") and of a status. */
const char *link_state_name(enum link_state s);
const char *link_status_name(int status);

#endif
