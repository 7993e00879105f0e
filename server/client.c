/* server/client.c: a client's life: creation on accept, the query buffer and the
 * parse-execute loop (pipelining: every complete command of a read runs before
 * the next read), backpressure limits, the before-sleep write list, closing (never
 * inside the client's own callback: marked, then freed in before-sleep), timeouts
 * and the CLIENT LIST line; and the facility that lets a command wait before it
 * runs and a reply be held until what it acknowledges is true. Sockets and events
 * are net.c's; when to hold or release (fsync, W acks) is the holder's business
 * (persist.c; the cluster later).
 *
 * HOW IT WORKS: A COMMAND CAN WAIT
 *   One command in flight per client. process_command runs every check (auth,
 *   arity, OOM, MISCONF, MULTI queueing) and then asks client_wait_before_call
 *   (the step where the cluster will fetch keys; today DEBUG SET-COMMAND-DELAY).
 *   To wait, the step calls client_suspend: c->argv, which points into the query
 *   buffer (that memmove and realloc move), is copied into c->wait_argv, the
 *   client gets CLIENT_WAITING and client_process_input stops parsing it. Its
 *   later pipelined commands stay unparsed in the query buffer (reading goes on,
 *   bounded by client-query-buffer-limit, so a disconnect is seen); every other
 *   client is served meanwhile. Whoever ends the wait (here a libevent timer per
 *   waiting client) calls client_resume, which only appends the client to the
 *   ready list: nothing runs inside another callback or another client's call().
 *   The loop's before-sleep step (net.c) calls client_run_ready, which runs each
 *   ready command through process_command again with CLIENT_WAITED (the checks
 *   see the server as it is now: a write error or OOM that came meanwhile
 *   rejects it; the wait step lets it through), then CLIENT REPLY SKIP's
 *   bookkeeping, then client_process_input for the rest of the pipeline, which
 *   may wait again. Example, pipeline "SET k 1; GET k; PING" with the SET
 *   delayed 5 ms: turn 1 parses SET, suspends it, stops; 5 ms later the timer
 *   readies the client; before-sleep runs SET (+OK), then GET ($1 1) and PING.
 *   Replies are in order and GET sees the SET (read-your-writes on a connection).
 *   - MULTI: queued commands answer +QUEUED at once and never wait; EXEC (and
 *     MULTI, DISCARD, WATCH, QUIT: any command that reaches call()) waits as a
 *     whole, and its queued commands then run back to back. A key touched by
 *     another client while EXEC waits fails the transaction, as if that write
 *     came before EXEC.
 *   - CLIENT REPLY OFF/SKIP: applied when the command runs (after_command runs
 *     after it, not at the suspension). QUIT answers +OK after everything sent
 *     before it. MONITOR shows a command when it runs. The slow log and
 *     commandstats measure the run (call()), not the wait.
 *   - A waiting client that disconnects, is CLIENT KILLed, passes `timeout` (its
 *     idle time counts from its last read or write, as for any client) or its
 *     output limit: closed as usual; client_free removes its timer and its ready
 *     list entry and frees the copy. SHUTDOWN leaves waiting commands unrun.
 *   - DEBUG (CMD_PROTECTED) never waits for DEBUG SET-COMMAND-DELAY, so a test
 *     can always change the delay; it still keeps its place in the pipeline.
 *
 * HOW IT WORKS: A REPLY CAN BE HELD
 *   c->hold is a set of reasons (CLIENT_HOLD_*); while it is not empty
 *   net_write_now writes nothing of c's output, so later replies queue behind
 *   (pipelines stay in order; the client keeps running commands). A holder calls
 *   client_hold(c, reason) while c runs a command whose reply depends on it
 *   (persist.c: a write not yet stored, or not yet fsynced under appendfsync
 *   always). call() brackets each top-level command with client_call_begin/end,
 *   which records that command's reply as a span [start, end) of the pending
 *   output with the reasons it depends on. Nothing is consumed while held, so
 *   the offsets stay valid. client_release drops a reason; client_fail_held
 *   rebuilds the pending output with each span of that reason replaced by the
 *   error (a reply that acknowledged a write that did not happen becomes
 *   -MISCONF, later -the cluster's "W acks missing"), shifting the other spans.
 *   A failure while the client itself runs (a batch written from inside EXEC)
 *   is applied when its command ends, to its reply too.
 */
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "server/server.h"
#include "server/server_int.h"

#define QBUF_CHUNK 16384               /* bytes read at a time, at least */
#define QBUF_IDLE_MS 2000              /* buffers of clients idle this long: trimmed */
#define QBUF_FREE_ABOVE (1024 * 1024)  /* emptied buffers above this: at once */
#define QBUF_WASTE_MIN 4096            /* the cron trims only buffers wasting more */
#define QBUF_RESIZE_ABOVE (32 * 1024)  /* busy clients: only buffers larger than this */

static struct client *clients_pending_write;
static struct client **to_close;
static int nto_close, to_close_cap;

/* A reply that depends on holds: bytes [start, end) of the pending output. */
struct client_span {
    size_t start, end;
    uint32_t reasons;              /* CLIENT_HOLD_* */
};

static struct client *ready_head, *ready_tail; /* FIFO, linked by next_ready */
struct client *client_running;                 /* in call() at top level, or NULL */
int client_delay_set;                          /* server_int.h */
static long long delay_ms;                     /* DEBUG SET-COMMAND-DELAY (server's) */
static double delay_prob = 1.0;
static uint64_t delay_rng;                     /* xorshift64* state, 0: unseeded */

static void client_wait_forget(struct client *c);

static void resp_limits_from_config(struct resp_limits *lim) {
    lim->max_bulk_len = server.proto_max_bulk_len;
    lim->max_multibulk_len = INT_MAX;
    lim->max_inline_len = 64 * 1024;
}

struct client *client_create(int fd) {
    struct client *c = kv_calloc(1, sizeof(*c));
    c->id = ++server.next_client_id;
    c->fd = fd;
    c->resp = 2;
    c->db_id = 0;
    c->db = server.db ? server.db[0] : NULL;
    c->authenticated = server.requirepass == NULL || server.requirepass[0] == '\0';
    c->ctime_ms = server.mstime;
    c->delay_prob = 1.0;
    c->last_interaction_ms = server.mstime;
    struct resp_limits lim;
    resp_limits_from_config(&lim);
    resp_parser_init(&c->parser, &lim);
    resp_out_init(&c->out, 2);
    c->next = server.clients;
    if (server.clients) {
        server.clients->prev = c;
    }
    server.clients = c;
    server.nclients++;
    return c;
}

void client_free(struct client *c) {
    if (c->flags & (CLIENT_PERSIST_WROTE | CLIENT_PERSIST_HELD)) {
        persist_client_gone(c);
    }
    if (c->flags & CLIENT_MONITOR) {
        monitor_remove(c);
    }
    client_wait_forget(c);
    unwatch_all(c);
    if (c->flags & CLIENT_MULTI || c->mstate) {
        multi_discard_state(c);
    }
    if (c->fd >= 0) {
        net_client_uninstall(c);
        close(c->fd);
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else if (server.clients == c) {
        server.clients = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    server.nclients--;
    resp_parser_deinit(&c->parser);
    resp_out_deinit(&c->out);
    kv_free(c->qbuf);
    kv_free(c->name);
    kv_free(c->lib_name);
    kv_free(c->lib_ver);
    kv_free(c->spans);
    kv_free(c->fail_msg);
    kv_free(c);
}

void client_close_async(struct client *c) {
    if (c->flags & CLIENT_CLOSE_ASAP) {
        return;
    }
    c->flags |= CLIENT_CLOSE_ASAP;
    if (c->fd >= 0) {
        net_stop_reading(c);
    }
    if (nto_close == to_close_cap) {
        to_close_cap = to_close_cap ? to_close_cap * 2 : 16;
        to_close = kv_realloc(to_close, sizeof(*to_close) * (size_t)to_close_cap);
    }
    to_close[nto_close++] = c;
}

void client_free_pending_closes(void) {
    /* client_free may not add entries (it never closes other clients) */
    for (int i = 0; i < nto_close; i++) {
        client_free(to_close[i]);
    }
    nto_close = 0;
    if (to_close_cap > 64) {
        kv_free(to_close);
        to_close = NULL;
        to_close_cap = 0;
    }
}

void client_queue_write(struct client *c) {
    if (c->flags & CLIENT_PENDING_WRITE) {
        return;
    }
    c->flags |= CLIENT_PENDING_WRITE;
    c->next_pending = clients_pending_write;
    clients_pending_write = c;
}

void client_handle_pending_writes(void) {
    while (clients_pending_write) {
        struct client *c = clients_pending_write;
        clients_pending_write = c->next_pending;
        c->next_pending = NULL;
        c->flags &= ~CLIENT_PENDING_WRITE;
        if (c->flags & CLIENT_CLOSE_ASAP) {
            continue;
        }
        if (client_check_output_limits(c)) {
            continue;
        }
        net_write_now(c);
    }
}

struct client *client_by_id(uint64_t id) {
    for (struct client *c = server.clients; c; c = c->next) {
        if (c->id == id) {
            return c;
        }
    }
    return NULL;
}

void client_set_db(struct client *c, int id) {
    c->db_id = id;
    c->db = server.db ? server.db[id] : NULL;
}

/* Redis's client-output-buffer-limit for the normal class. */
int client_check_output_limits(struct client *c) {
    long long hard = server.client_output_buffer_limit_hard;
    long long soft = server.client_output_buffer_limit_soft;
    if (hard == 0 && soft == 0) {
        return 0;
    }
    long long used = (long long)resp_out_pending(&c->out);
    int over = hard > 0 && used >= hard;
    if (!over && soft > 0 && used >= soft) {
        long long now = server.mstime / 1000;
        if (c->obuf_soft_since == 0) {
            c->obuf_soft_since = now;
        } else if (now - c->obuf_soft_since > server.client_output_buffer_limit_secs) {
            over = 1;
        }
    } else if (!over) {
        c->obuf_soft_since = 0;
    }
    if (!over || (c->flags & CLIENT_CLOSE_ASAP)) {
        return over;
    }
    char info[1024];
    size_t n = client_info_line(c, info, sizeof(info));
    if (n > 0 && info[n - 1] == '\n') {
        info[n - 1] = '\0';
    }
    server_log(LL_WARNING,
               "Client %s scheduled to be closed ASAP for overcoming of output buffer limits.",
               info);
    client_close_async(c);
    return 1;
}

/* After each top-level command: CLIENT REPLY SKIP applies to exactly the next one. */
static void after_command(struct client *c) {
    c->flags &= ~CLIENT_REPLY_SKIP;
    if (c->flags & CLIENT_REPLY_SKIP_NEXT) {
        c->flags |= CLIENT_REPLY_SKIP;
        c->flags &= ~CLIENT_REPLY_SKIP_NEXT;
    }
}

void client_process_input(struct client *c) {
    while (c->qpos < c->qlen &&
           !(c->flags & (CLIENT_CLOSE_AFTER_REPLY | CLIENT_CLOSE_ASAP | CLIENT_WAITING)) &&
           !server.shutdown_asap) {
        size_t consumed = 0;
        int rc = resp_parse(&c->parser, c->qbuf + c->qpos, c->qlen - c->qpos, &consumed);
        if (rc == RESP_AGAIN) {
            break;
        }
        if (rc == RESP_ERR_PROTO) {
            server_log(LL_VERBOSE, "Protocol error (%s) from client: id=%llu addr=%s",
                       c->parser.err, (unsigned long long)c->id, c->addr);
            c->flags &= ~(CLIENT_REPLY_OFF | CLIENT_REPLY_SKIP);
            reply_errorf(c, "ERR %s", c->parser.err);
            c->flags |= CLIENT_CLOSE_AFTER_REPLY;
            c->qpos = c->qlen;
            break;
        }
        if (c->parser.argc > 0) {
            c->argc = c->parser.argc;
            c->argv = c->parser.argv;
            process_command(c);
            if (!(c->flags & CLIENT_WAITING)) {
                after_command(c); /* a waiting command: when it has run */
            }
            c->argc = 0;
            c->argv = NULL;
            c->cmd = NULL;
            if (c->flags & CLIENT_PENDING_WRITE) {
                client_check_output_limits(c);
            }
        }
        c->qpos += consumed;
    }
    call_batch_end();
    if (c->qpos == c->qlen) {
        c->qpos = c->qlen = 0;
        if (c->qcap > QBUF_FREE_ABOVE) {
            /* grown for a big argument: give it back now, not after 2 s idle */
            kv_free(c->qbuf);
            c->qbuf = NULL;
            c->qcap = 0;
        }
    } else if (c->qpos > 0) {
        memmove(c->qbuf, c->qbuf + c->qpos, c->qlen - c->qpos);
        c->qlen -= c->qpos;
        c->qpos = 0;
    }
    if ((c->flags & CLIENT_CLOSE_AFTER_REPLY) && c->fd >= 0) {
        net_stop_reading(c);
        client_queue_write(c);
    }
}

/* ------------------------------------------------------------------------------
 * A command can wait (see HOW IT WORKS at the top)
 * ------------------------------------------------------------------------------ */
void client_suspend(struct client *c) {
    if (c->argv != c->wait_argv) {
        /* one allocation: argc slices, then each argument's bytes and a NUL;
         * the total is bounded by the query buffer the arguments came from */
        size_t bytes = (size_t)c->argc * (sizeof(struct kv_slice) + 1);
        for (int i = 0; i < c->argc; i++) {
            bytes += c->argv[i].len;
        }
        kv_free(c->wait_argv);
        struct kv_slice *copy = kv_malloc(bytes ? bytes : 1);
        char *p = (char *)(copy + c->argc);
        for (int i = 0; i < c->argc; i++) {
            if (c->argv[i].len) {
                memcpy(p, c->argv[i].p, c->argv[i].len);
            }
            p[c->argv[i].len] = '\0';
            copy[i] = (struct kv_slice){p, c->argv[i].len};
            p += c->argv[i].len + 1;
        }
        c->wait_argv = copy;
        c->wait_argc = c->argc;
        c->argv = copy;
    }
    c->flags |= CLIENT_WAITING;
}

void client_resume(struct client *c) {
    if (!(c->flags & CLIENT_WAITING) || (c->flags & CLIENT_READY)) {
        return;
    }
    if (c->wait_ev) {
        event_del(c->wait_ev); /* resumed by someone else before its timer */
    }
    c->flags |= CLIENT_READY;
    c->next_ready = NULL;
    if (ready_tail) {
        ready_tail->next_ready = c;
    } else {
        ready_head = c;
    }
    ready_tail = c;
}

int client_ready_pending(void) {
    return ready_head != NULL;
}

static struct client *ready_pop(void) {
    struct client *c = ready_head;
    if (c) {
        ready_head = c->next_ready;
        if (ready_head == NULL) {
            ready_tail = NULL;
        }
        c->next_ready = NULL;
        c->flags &= ~CLIENT_READY;
    }
    return c;
}

/* c is being freed: off the ready list, its timer and its copy gone. */
static void client_wait_forget(struct client *c) {
    if (c->flags & CLIENT_READY) {
        struct client *prev = NULL;
        for (struct client *r = ready_head; r; prev = r, r = r->next_ready) {
            if (r == c) {
                if (prev) {
                    prev->next_ready = c->next_ready;
                } else {
                    ready_head = c->next_ready;
                }
                if (ready_tail == c) {
                    ready_tail = prev;
                }
                break;
            }
        }
        c->flags &= ~CLIENT_READY;
    }
    if (c->wait_ev) {
        event_free(c->wait_ev);
        c->wait_ev = NULL;
    }
    kv_free(c->wait_argv);
    c->wait_argv = NULL;
    c->wait_argc = 0;
    c->flags &= ~CLIENT_WAITING;
}

/* Runs c's waiting command, then the rest of its pipeline. */
static void run_waiting(struct client *c) {
    c->flags &= ~CLIENT_WAITING;
    c->flags |= CLIENT_WAITED;
    c->last_interaction_ms = server.mstime; /* idle time starts when the wait ends */
    c->argc = c->wait_argc;
    c->argv = c->wait_argv;
    process_command(c);
    c->flags &= ~CLIENT_WAITED;
    if (c->flags & CLIENT_WAITING) {
        c->argc = 0;           /* it waits again: keeps its copy */
        c->argv = NULL;
        c->cmd = NULL;
        return;
    }
    after_command(c);
    kv_free(c->wait_argv);
    c->wait_argv = NULL;
    c->wait_argc = 0;
    c->argc = 0;
    c->argv = NULL;
    c->cmd = NULL;
    if (c->flags & CLIENT_PENDING_WRITE) {
        client_check_output_limits(c);
    }
    client_process_input(c); /* the commands that queued behind it */
}

void client_run_ready(void) {
    struct client *last = ready_tail;
    while (ready_head && !server.shutdown_asap) {
        struct client *c = ready_pop();
        if (!(c->flags & CLIENT_CLOSE_ASAP)) {
            run_waiting(c);
        }
        if (c == last) {
            break;
        }
    }
}

static void wait_timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    client_resume(arg);
}

/* Uniform in [0, 1). */
static double delay_rand(void) {
    if (delay_rng == 0) {
        delay_rng = (uint64_t)kv_ustime() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
    }
    delay_rng ^= delay_rng >> 12;
    delay_rng ^= delay_rng << 25;
    delay_rng ^= delay_rng >> 27;
    return (double)((delay_rng * 0x2545f4914f6cdd1dULL) >> 11) / 9007199254740992.0;
}

void client_set_command_delay(struct client *c, long long ms, double prob) {
    if (ms > 0) {
        client_delay_set = 1;
    }
    if (c == NULL) {
        delay_ms = ms;
        delay_prob = prob;
    } else {
        c->delay_own = ms >= 0;
        c->delay_ms = ms;
        c->delay_prob = prob;
    }
}

int client_wait_check(struct client *c, const struct kv_command *run) {
    if (c->flags & CLIENT_WAITED) {
        return 0; /* it has waited: it runs now */
    }
    long long ms = c->delay_own ? c->delay_ms : delay_ms;
    double prob = c->delay_own ? c->delay_prob : delay_prob;
    if (ms <= 0 || server.base == NULL || (run->flags & CMD_PROTECTED)) {
        return 0;
    }
    if (prob < 1.0 && delay_rand() >= prob) {
        return 0;
    }
    if (c->wait_ev == NULL) {
        c->wait_ev = evtimer_new(server.base, wait_timer_cb, c);
    }
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    client_suspend(c);
    evtimer_add(c->wait_ev, &tv);
    return 1;
}

/* ------------------------------------------------------------------------------
 * A reply can be held (see HOW IT WORKS at the top)
 * ------------------------------------------------------------------------------ */
/* A client that held once (persistent mode: every write's reply waits for the
 * WAL) holds again at its next batch: a small array is kept for it rather than
 * freed and grown again each time (a realloc per batch); a large one is freed. */
#define SPANS_KEEP 64

static void spans_clear(struct client *c) {
    c->nspans = 0;
    if (c->capspans > SPANS_KEEP) {
        kv_free(c->spans);
        c->spans = NULL;
        c->capspans = 0;
    }
}

static void span_add(struct client *c, size_t start, size_t end, uint32_t reasons) {
    if (end <= start) {
        return; /* no reply (CLIENT REPLY OFF) */
    }
    if (c->nspans == c->capspans) {
        c->capspans = c->capspans ? c->capspans * 2 : 4;
        c->spans = kv_realloc(c->spans, (size_t)c->capspans * sizeof(*c->spans));
    }
    c->spans[c->nspans++] = (struct client_span){start, end, reasons};
}

void client_hold(struct client *c, uint32_t reason) {
    c->hold |= reason;
    if (c == client_running) {
        c->hold_now |= reason;
    }
}

/* reason no longer holds c; when nothing does, its recorded spans are dropped.
 * Returns 1 when c's output is free to be written. */
static int hold_drop(struct client *c, uint32_t reason) {
    c->hold &= ~reason;
    c->hold_now &= ~reason;
    if (c->hold != 0) {
        return 0;
    }
    spans_clear(c);
    return 1;
}

void client_release(struct client *c, uint32_t reason) {
    if (hold_drop(c, reason)) {
        if (c->fd >= 0) {
            client_queue_write(c);
        }
        return;
    }
    int k = 0;
    for (int i = 0; i < c->nspans; i++) {
        c->spans[i].reasons &= ~reason;
        if (c->spans[i].reasons) {
            c->spans[k++] = c->spans[i];
        }
    }
    c->nspans = k;
}

void client_fail_held(struct client *c, uint32_t reason, const char *msg) {
    if (c == client_running) {
        c->fail_now |= reason;
        if (c->fail_msg == NULL) {
            c->fail_msg = kv_strndup(msg, strlen(msg));
        }
        return;
    }
    int any = 0;
    for (int i = 0; i < c->nspans && !any; i++) {
        any = (c->spans[i].reasons & reason) != 0;
    }
    if (!any) {
        client_release(c, reason); /* no reply of it to rewrite */
        return;
    }
    /* take the pending output out, then write it back with the spans of reason
     * replaced (nothing was consumed while held: the offsets are exact) */
    size_t total = resp_out_pending(&c->out);
    char *all = kv_malloc(total ? total : 1);
    size_t got = 0;
    while (got < total) {
        struct iovec iov[64];
        int n = resp_out_iov(&c->out, iov, 64);
        if (n <= 0) {
            break;
        }
        size_t chunk = 0;
        for (int i = 0; i < n && got + chunk + iov[i].iov_len <= total; i++) {
            memcpy(all + got + chunk, iov[i].iov_base, iov[i].iov_len);
            chunk += iov[i].iov_len;
        }
        if (chunk == 0) {
            break;
        }
        resp_out_consume(&c->out, chunk);
        got += chunk;
    }
    size_t len = strlen(msg), pos = 0;
    int k = 0;
    for (int i = 0; i < c->nspans; i++) {
        struct client_span sp = c->spans[i];
        if (sp.start < pos || sp.end > got) {
            continue; /* cannot happen: spans are in order within the output */
        }
        resp_write_raw(&c->out, all + pos, sp.start - pos);
        size_t start = resp_out_pending(&c->out);
        if (sp.reasons & reason) {
            server.stat_total_error_replies++;
            errorstat_count(msg, len);
            resp_write_error(&c->out, msg, len);
        } else {
            resp_write_raw(&c->out, all + sp.start, sp.end - sp.start);
        }
        sp.reasons &= ~reason;
        if (sp.reasons) {
            c->spans[k++] = (struct client_span){start, resp_out_pending(&c->out), sp.reasons};
        }
        pos = sp.end;
    }
    resp_write_raw(&c->out, all + pos, got - pos);
    kv_free(all);
    c->nspans = k;
    hold_drop(c, reason);
    if (c->fd >= 0) {
        client_queue_write(c);
    }
}

void client_call_finish(struct client *c, size_t out0) {
    uint32_t reasons = (c->hold_now & c->hold) | c->fail_now;
    c->hold_now = 0;
    if (reasons) {
        c->hold |= reasons;
        span_add(c, out0, resp_out_pending(&c->out), reasons);
    }
    if (c->fail_now) {
        uint32_t failed = c->fail_now;
        char *msg = c->fail_msg;
        c->fail_now = 0;
        c->fail_msg = NULL;
        client_fail_held(c, failed, msg);
        kv_free(msg);
    }
}

void client_read(struct client *c) {
    size_t want = resp_parser_want(&c->parser);
    size_t readlen = QBUF_CHUNK;
    if (want > readlen) {
        /* a big bulk is coming: read it in as few calls as possible, growing the
         * buffer geometrically so memory follows what has arrived, not what was
         * announced */
        size_t grow = c->qlen > QBUF_CHUNK ? c->qlen : QBUF_CHUNK;
        readlen = want < grow ? want : grow;
    }
    if (c->qcap - c->qlen < readlen) {
        size_t need = c->qlen + readlen;
        size_t cap = c->qcap ? c->qcap : QBUF_CHUNK;
        while (cap < need) {
            cap *= 2;
        }
        if (want > QBUF_CHUNK && cap > c->qlen + want) {
            cap = c->qlen + want;  /* exactly what the bulk needs, no slack */
        }
        c->qbuf = kv_realloc(c->qbuf, cap);
        c->qcap = cap;
    }
    ssize_t n = read(c->fd, c->qbuf + c->qlen, c->qcap - c->qlen);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return;
        }
        server_log(LL_VERBOSE, "Reading from client: %s", strerror(errno));
        client_close_async(c);
        return;
    }
    if (n == 0) {
        server_log(LL_VERBOSE, "Client closed connection id=%llu addr=%s",
                   (unsigned long long)c->id, c->addr);
        client_close_async(c);
        return;
    }
    c->qlen += (size_t)n;
    if (c->qlen > c->qbuf_peak) {
        c->qbuf_peak = c->qlen;
    }
    server.stat_net_input_bytes += n;
    server.stat_total_reads++;
    c->last_interaction_ms = server.mstime;
    if ((long long)(c->qlen - c->qpos) > server.client_query_buffer_limit) {
        char info[1024];
        size_t il = client_info_line(c, info, sizeof(info));
        if (il > 0 && info[il - 1] == '\n') {
            info[il - 1] = '\0';
        }
        char head[64];
        size_t hl = c->qlen - c->qpos < 32 ? c->qlen - c->qpos : 32;
        kv_repr(head, sizeof(head), c->qbuf + c->qpos, hl);
        server_log(LL_WARNING,
                   "Closing client that reached max query buffer length: %s (qbuf initial bytes: %s)",
                   info, head);
        client_close_async(c);
        return;
    }
    client_process_input(c);
}

/* Gives back query-buffer space a client no longer needs, as Redis's
 * clientsCronResizeQueryBuffer. A buffer wasting more than QBUF_WASTE_MIN bytes
 * is cut to what it holds when the client has been idle QBUF_IDLE_MS, or, for a
 * busy client, when it is over QBUF_RESIZE_ABOVE and more than twice the peak
 * it reached since the last cron (down to that peak: it will soon be needed
 * again). Example: a 900 KiB SET followed by "*1\r\n$4\r\nPI" leaves 10 bytes in
 * a ~1 MiB buffer; 2 s later it is 10 bytes. The bytes held never move relative
 * to each other, and the parser keeps offsets, not pointers, so a moved buffer
 * is safe between commands. Called from client_cron only. */
static void client_resize_qbuf(struct client *c, long long idle) {
    size_t peak = c->qbuf_peak;
    /* the peak of the next period starts at what is held, or at what the bulk
     * being read needs */
    c->qbuf_peak = c->qlen + resp_parser_want(&c->parser);
    if (c->argv != NULL || c->qpos != 0 || c->qcap - c->qlen <= QBUF_WASTE_MIN) {
        return; /* a command is using the buffer, or little to gain */
    }
    size_t target;
    if (idle > QBUF_IDLE_MS) {
        target = c->qlen;
    } else if (c->qcap > QBUF_RESIZE_ABOVE && c->qcap / 2 > peak) {
        target = peak > c->qlen ? peak : c->qlen;
    } else {
        return;
    }
    if (target == 0) {
        kv_free(c->qbuf);
        c->qbuf = NULL;
    } else {
        c->qbuf = kv_realloc(c->qbuf, target);
    }
    c->qcap = target;
}

void client_cron(void) {
    long long now = server.mstime;
    for (struct client *c = server.clients; c; c = c->next) {
        if (c->flags & CLIENT_CLOSE_ASAP) {
            continue;
        }
        long long idle = now - c->last_interaction_ms;
        /* As Redis exempts blocked clients: one whose command waits, or whose
         * reply is held until what it acknowledges is true, is not idle. */
        if (server.timeout > 0 && !(c->flags & (CLIENT_MONITOR | CLIENT_WAITING)) &&
            !client_output_held(c) && idle > (long long)server.timeout * 1000) {
            server_log(LL_VERBOSE, "Closing idle client");
            client_close_async(c);
            continue;
        }
        client_resize_qbuf(c, idle);
    }
}

static void client_flags_string(const struct client *c, char *p) {
    char *s = p;
    if (c->flags & CLIENT_MONITOR) *p++ = 'O';
    if (c->flags & CLIENT_WAITING) *p++ = 'b'; /* as Redis's blocked clients */
    if (c->flags & CLIENT_MULTI) *p++ = 'x';
    if (c->flags & CLIENT_DIRTY_CAS) *p++ = 'd';
    if (c->flags & CLIENT_CLOSE_AFTER_REPLY) *p++ = 'c';
    if (c->flags & CLIENT_CLOSE_ASAP) *p++ = 'A';
    if (c->flags & CLIENT_NO_EVICT) *p++ = 'e';
    if (c->flags & CLIENT_NO_TOUCH) *p++ = 'T';
    if (p == s) *p++ = 'N';
    *p = '\0';
}

size_t client_info_line(const struct client *c, char *buf, size_t cap) {
    char flags[16];
    client_flags_string(c, flags);
    size_t argv_mem = 0;
    for (int i = 0; i < c->argc; i++) {
        argv_mem += c->argv[i].len;
    }
    size_t pending = resp_out_pending(&c->out);
    size_t obl = c->out.len - c->out.sent;
    if (obl > pending) {
        obl = pending;
    }
    size_t omem = pending - obl;
    size_t oll = omem ? (omem + RESP_OUT_INLINE - 1) / RESP_OUT_INLINE : 0;
    size_t tot = sizeof(*c) + c->qcap + omem + (size_t)c->multi_mem;
    const char *cmd = c->lastcmd ? c->lastcmd->name : "NULL";
    long long now = server.mstime;
    int w = (c->write_ev != NULL && (c->flags & CLIENT_WRITE_INSTALLED));
    int n = snprintf(buf, cap,
        "id=%llu addr=%s laddr=%s fd=%d name=%s age=%lld idle=%lld flags=%s db=%d sub=0 "
        "psub=0 ssub=0 multi=%d qbuf=%zu qbuf-free=%zu argv-mem=%zu multi-mem=%lld "
        "rbs=%d rbp=%zu obl=%zu oll=%zu omem=%zu tot-mem=%zu events=%s cmd=%s user=default "
        "redir=-1 resp=%d lib-name=%s lib-ver=%s\n",
        (unsigned long long)c->id, c->addr, c->laddr, c->fd, c->name ? c->name : "",
        (now - c->ctime_ms) / 1000, (now - c->last_interaction_ms) / 1000, flags, c->db_id,
        (c->flags & CLIENT_MULTI) ? c->mcount : -1, c->qlen - c->qpos,
        c->qcap - c->qlen, argv_mem, c->multi_mem, RESP_OUT_INLINE, c->out.len, obl, oll,
        omem, tot, w ? "rw" : "r", cmd, c->resp, c->lib_name ? c->lib_name : "",
        c->lib_ver ? c->lib_ver : "");
    if (n < 0) {
        return 0;
    }
    return (size_t)n < cap ? (size_t)n : cap - 1;
}
