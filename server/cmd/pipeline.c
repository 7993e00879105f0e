/* server/cmd/pipeline.c: the parse loop of dispatch (pipelining: every complete
 * command of a read runs before the next read; CLIENT REPLY SKIP's bookkeeping)
 * and the facility that lets a command wait before it runs. Reading the socket is
 * the network's (server/net/net.c: client_read calls client_process_input);
 * a client's state, closing and held replies are the client layer's
 * (server/client/client.c).
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
 *   - Cluster batches (coordinate.c): a cluster command of a pipeline may finish
 *     without the client waiting while its writes are out (its batch is open):
 *     the commands parsed after it join the batch (they see its writes) or end
 *     it (they wait, then run afresh). When the parse loop stops with a batch
 *     open, coordinate_input_end suspends the client with no command; when the
 *     writes answered run_waiting runs no command and no after_command for it.
 *     client_pending_input shows the coordinator the unparsed bytes behind the
 *     running command (its look-ahead parses them without consuming them).
 *   - DEBUG (CMD_PROTECTED) never waits for DEBUG SET-COMMAND-DELAY, so a test
 *     can always change the delay; it still keeps its place in the pipeline.
 *
 */
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server/cmd/cmd.h"

#define QBUF_FREE_ABOVE (1024 * 1024)  /* emptied buffers above this: at once */
#define QBUF_MOVE_ALWAYS (16 * 1024)   /* an unparsed rest this small moves at once */

static struct client *ready_head, *ready_tail; /* FIFO, linked by next_ready */
int client_delay_set;                          /* cmd.h */
static long long delay_ms;                     /* DEBUG SET-COMMAND-DELAY (server's) */
static double delay_prob = 1.0;
static uint64_t delay_rng;                     /* xorshift64* state, 0: unseeded */


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
    if (c->cop) {
        coordinate_input_end(c); /* a cluster batch open: its writes are waited for */
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
    } else if (c->qpos > 0 &&
               (c->qlen - c->qpos <= QBUF_MOVE_ALWAYS || c->qpos >= c->qlen - c->qpos)) {
        /* the unparsed rest to the front: at once when it is small; a large rest
         * (a client suspended with a long pipeline behind it, e.g. redis-cli
         * --pipe through the cluster, where every command waits) only once as
         * many bytes were consumed, so moving costs O(1) per byte, not a move of
         * the whole rest per command (quadratic: 100k SETs took 25 s) */
        memmove(c->qbuf, c->qbuf + c->qpos, c->qlen - c->qpos);
        c->qlen -= c->qpos;
        c->qpos = 0;
    }
    if ((c->flags & CLIENT_CLOSE_AFTER_REPLY) && c->fd >= 0) {
        if (client_hooks.stop_reading) {
            client_hooks.stop_reading(c);
        }
        client_queue_write(c);
    }
}

/* Nothing is recorded per command for it (the parse loop stays as fast): a
 * command running from the parse loop is not consumed yet and its arguments
 * point into the buffer, so for a multibulk command the rest starts after its
 * last argument's CRLF; a waiting command (wait_argv) was consumed. An inline
 * command gets no look-ahead. */
void client_pending_input(const struct client *c, const char **p, size_t *len) {
    *p = NULL;
    *len = 0;
    if (c->qbuf == NULL || c->qpos >= c->qlen) {
        return;
    }
    size_t off = c->qpos;
    if (c->argc > 0 && c->argv != c->wait_argv) {
        const struct kv_slice *last = &c->argv[c->argc - 1];
        uintptr_t b = (uintptr_t)c->qbuf, a = (uintptr_t)last->p;
        if (c->qbuf[c->qpos] != '*' || a < b || a - b + last->len + 2 > c->qlen) {
            return; /* inline, or not in the buffer */
        }
        off = (size_t)(a - b) + last->len + 2;
    }
    if (off < c->qlen) {
        *p = c->qbuf + off;
        *len = c->qlen - off;
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
void client_wait_forget(struct client *c) {
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
    coordinate_forget(c); /* cluster requests cancelled: their callbacks never run */
}

/* Runs c's waiting command, then the rest of its pipeline. */
static void run_waiting(struct client *c) {
    c->flags &= ~CLIENT_WAITING;
    c->flags |= CLIENT_WAITED;
    c->last_interaction_ms = server.mstime; /* idle time starts when the wait ends */
    c->argc = c->wait_argc;
    c->argv = c->wait_argv;
    /* a cluster batch's writes answered: 1 its last command is done, 2 it waited
     * with no command (end of input), 0 the command runs (afresh) */
    int done = coordinate_resume(c);
    if (done == 0) {
        process_command(c);
    }
    c->flags &= ~CLIENT_WAITED;
    if (c->flags & CLIENT_WAITING) {
        c->argc = 0;           /* it waits again: keeps its copy */
        c->argv = NULL;
        c->cmd = NULL;
        return;
    }
    if (c->cop && !coordinate_batch_open(c)) {
        coordinate_forget(c); /* it waited for reads, then a check refused it */
    }
    if (done != 2) {
        after_command(c);
    }
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

