/* server/client/client_test.c: the client layer's "a command can wait, a reply can be
 * held" facility without sockets. Clients with fd -1 get their query buffer filled
 * by hand and run through client_process_input; a real libevent base drives the
 * DEBUG SET-COMMAND-DELAY timers; the output queue is read back. Held replies are
 * driven through client_hold / client_release / client_fail_held directly. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/net/net.h"
#include "tests/test.h"

#define HOLD_A CLIENT_HOLD_PERSIST
#define HOLD_B (1u << 7) /* a second reason, as the cluster's will be */

/* Everything pending in c's output, consumed, "\r\n" shown as " ". */
static const char *drain(struct client *c) {
    static char out[65536];
    size_t n = 0;
    while (resp_out_pending(&c->out) > 0) {
        struct iovec iov[16];
        int k = resp_out_iov(&c->out, iov, 16);
        if (k <= 0) {
            break;
        }
        size_t took = 0;
        for (int i = 0; i < k; i++) {
            for (size_t j = 0; j < iov[i].iov_len && n + 2 < sizeof(out); j++) {
                char ch = ((char *)iov[i].iov_base)[j];
                if (ch != '\r') {
                    out[n++] = ch == '\n' ? ' ' : ch;
                }
            }
            took += iov[i].iov_len;
        }
        resp_out_consume(&c->out, took);
    }
    if (n > 0 && out[n - 1] == ' ') {
        n--;
    }
    out[n] = '\0';
    return out;
}

/* Appends bytes to c's query buffer (as client_read would). */
static void feed(struct client *c, const char *s) {
    size_t len = strlen(s);
    if (c->qcap - c->qlen < len) {
        c->qcap = c->qlen + len + 64;
        c->qbuf = kv_realloc(c->qbuf, c->qcap);
    }
    memcpy(c->qbuf + c->qlen, s, len);
    c->qlen += len;
}

/* Lets timers fire and runs the ready clients until c waits for nothing
 * (bounded: 2 s). */
static int run_until_idle(struct client *c) {
    long long deadline = kv_mstime() + 2000;
    while ((c->flags & CLIENT_WAITING) && kv_mstime() < deadline) {
        if (!client_ready_pending()) {
            event_base_loop(server.base, EVLOOP_ONCE);
        }
        client_run_ready();
    }
    return (c->flags & CLIENT_WAITING) ? -1 : 0;
}

static struct client *fresh(long long delay_ms) {
    struct client *c = client_create(-1);
    client_set_command_delay(c, delay_ms, 1.0);
    return c;
}

static void done(struct client *c) {
    client_free(c);
    client_free_pending_closes();
}

/* ---- waiting ---- */

static void test_pipeline_waits_in_order_and_argv_is_copied(void) {
    struct client *c = fresh(3);
    feed(c, "SET wk 1\r\nGET wk\r\nPING\r\n");
    client_process_input(c);
    CHECK(c->flags & CLIENT_WAITING);
    CHECK_EQ_STR(drain(c), "");              /* nothing ran yet */
    CHECK_EQ_INT(c->wait_argc, 3);
    /* the rest of the pipeline moved to the front of the query buffer, over the
     * bytes the waiting command was parsed from: its arguments are a copy */
    CHECK_EQ_MEM(c->qbuf, c->qlen, "GET wk\r\nPING\r\n", 14);
    CHECK_EQ_MEM(c->wait_argv[0].p, c->wait_argv[0].len, "SET", 3);
    CHECK_EQ_MEM(c->wait_argv[1].p, c->wait_argv[1].len, "wk", 2);
    CHECK_EQ_MEM(c->wait_argv[2].p, c->wait_argv[2].len, "1", 1);
    CHECK(c->wait_argv[0].p < c->qbuf || c->wait_argv[0].p >= c->qbuf + c->qcap);
    CHECK_EQ_INT(run_until_idle(c), 0);
    CHECK_EQ_STR(drain(c), "+OK $1 1 +PONG"); /* every command waited, in order */
    CHECK_EQ_INT(c->qlen, 0);
    done(c);
}

/* A long pipeline behind a waiting command is not moved to the front of the query
 * buffer after every command (that was quadratic): the consumed bytes stay until
 * they are as many as the rest, and every command still runs, in order. */
static void test_long_pipeline_behind_waits_is_not_moved_per_command(void) {
    struct client *c = fresh(1);
    enum { N = 400 };
    char val[101];
    memset(val, 'v', 100);
    val[100] = '\0';
    for (int i = 0; i < N; i++) {
        char cmd[160];
        snprintf(cmd, sizeof cmd, "SET lp%d %s%d\r\n", i, val, i);
        feed(c, cmd);
    }
    feed(c, "STRLEN lp399\r\n");
    size_t total = c->qlen;
    CHECK(total > 2 * 16 * 1024); /* larger than what moves at once */
    client_process_input(c);
    CHECK(c->flags & CLIENT_WAITING);
    CHECK(c->qpos > 0);           /* the first command's bytes: not moved out */
    CHECK_EQ_INT(c->qlen, total); /* nor the rest moved over them */
    int moved_early = 0, moves = 0; /* moves: of a rest above 16 KiB */
    long long deadline = kv_mstime() + 10000;
    while ((c->flags & CLIENT_WAITING) && kv_mstime() < deadline) {
        size_t qlen_before = c->qlen;
        if (!client_ready_pending()) {
            event_base_loop(server.base, EVLOOP_ONCE);
        }
        client_run_ready();
        if (c->qlen < qlen_before && c->qlen > 0) { /* moved (nothing is fed here) */
            size_t consumed = qlen_before - c->qlen, rest = c->qlen;
            moves += rest > 16 * 1024;
            moved_early |= rest > 16 * 1024 && consumed < rest;
        }
    }
    CHECK(!(c->flags & CLIENT_WAITING));
    CHECK(!moved_early);
    CHECK(moves < 10); /* moves of a large rest: a few, not one per command */
    const char *out = drain(c);
    size_t olen = strlen(out);
    CHECK_EQ_STR(olen > 12 ? out + olen - 12 : out, "+OK +OK :103"); /* STRLEN, last */
    CHECK_EQ_INT(c->qlen, 0);
    done(c);
}

static void test_other_client_runs_while_one_waits(void) {
    struct client *a = fresh(200), *b = fresh(0);
    feed(a, "SET other 1\r\n");
    client_process_input(a);
    CHECK(a->flags & CLIENT_WAITING);
    feed(b, "GET other\r\nPING\r\n");
    client_process_input(b);
    CHECK_EQ_STR(drain(b), "$-1 +PONG");    /* answered at once, before a's SET */
    CHECK_EQ_INT(run_until_idle(a), 0);
    CHECK_EQ_STR(drain(a), "+OK");
    done(a);
    done(b);
}

static void test_multi_queues_without_waiting_and_exec_waits(void) {
    struct client *c = fresh(2);
    feed(c, "MULTI\r\nINCR mq\r\nINCR mq\r\nEXEC\r\n");
    client_process_input(c);
    CHECK(c->flags & CLIENT_WAITING);       /* MULTI waits */
    long long deadline = kv_mstime() + 2000;
    while (!client_ready_pending() && kv_mstime() < deadline) {
        event_base_loop(server.base, EVLOOP_ONCE);
    }
    client_run_ready();                      /* MULTI runs, the INCRs queue, EXEC waits */
    CHECK(c->flags & CLIENT_WAITING);
    CHECK_EQ_STR(drain(c), "+OK +QUEUED +QUEUED");
    CHECK_EQ_INT(run_until_idle(c), 0);
    CHECK_EQ_STR(drain(c), "*2 :1 :2");
    done(c);
}

static void test_client_reply_skip_applies_to_the_waiting_command(void) {
    struct client *c = fresh(2);
    feed(c, "CLIENT REPLY SKIP\r\nSET rs 3\r\nGET rs\r\n");
    client_process_input(c);
    CHECK_EQ_INT(run_until_idle(c), 0);
    CHECK_EQ_STR(drain(c), "$1 3");
    done(c);
}

static void test_quit_answers_after_the_earlier_commands(void) {
    struct client *c = fresh(2);
    feed(c, "PING\r\nQUIT\r\nPING\r\n");
    client_process_input(c);
    CHECK_EQ_INT(run_until_idle(c), 0);
    CHECK_EQ_STR(drain(c), "+PONG +OK");
    CHECK(c->flags & CLIENT_CLOSE_AFTER_REPLY);
    done(c);
}

static void test_freed_while_waiting_or_ready_leaves_nothing(void) {
    struct client *a = fresh(50), *b = fresh(50);
    feed(a, "SET fw 1\r\n");
    client_process_input(a);
    feed(b, "SET fw 2\r\n");
    client_process_input(b);
    CHECK(a->flags & CLIENT_WAITING);
    client_resume(b);                         /* b on the ready list */
    CHECK(client_ready_pending());
    done(b);                                  /* freed while ready */
    CHECK(!client_ready_pending());
    client_close_async(a);                    /* CLIENT KILL while waiting */
    client_free_pending_closes();             /* its timer goes with it */
    event_base_loop(server.base, EVLOOP_NONBLOCK);
    client_run_ready();
    struct client *r = fresh(0);
    feed(r, "GET fw\r\n");
    client_process_input(r);
    CHECK_EQ_STR(drain(r), "$-1");            /* neither command ran */
    done(r);
}

static void test_resume_before_the_timer_runs_once(void) {
    struct client *c = fresh(1000);
    feed(c, "INCR ro\r\n");
    client_process_input(c);
    client_resume(c);
    client_resume(c);                         /* idempotent */
    client_run_ready();
    CHECK(!(c->flags & CLIENT_WAITING));
    CHECK_EQ_STR(drain(c), ":1");
    event_base_loop(server.base, EVLOOP_NONBLOCK); /* the timer was removed */
    CHECK(!client_ready_pending());
    done(c);
}

/* ---- holding ---- */

/* Runs one "command" on c at top level: fn writes its reply. */
static void as_command(struct client *c, void (*fn)(struct client *)) {
    size_t out0 = resp_out_pending(&c->out);
    client_call_begin(c);
    fn(c);
    client_call_end(c, out0);
}
static void write_ok_held_a(struct client *c) {
    client_hold(c, HOLD_A);
    reply_ok(c);
}
static void write_int_unheld(struct client *c) {
    reply_int(c, 7);
}
static void write_bulk_held_ab(struct client *c) {
    reply_bulk(c, "v", 1);
    client_hold(c, HOLD_A);
    client_hold(c, HOLD_B);
}
static void write_ok_held_b(struct client *c) {
    client_hold(c, HOLD_B);
    reply_ok(c);
}
static void write_fails_while_running(struct client *c) {
    reply_array(c, 2);
    client_hold(c, HOLD_A);
    reply_int(c, 1);
    client_fail_held(c, HOLD_A, "MISCONF now");
    reply_int(c, 2);
}

static void test_failed_hold_rewrites_only_its_replies(void) {
    struct client *c = fresh(0);
    reply_simple(c, "before");
    as_command(c, write_ok_held_a);
    as_command(c, write_int_unheld);
    as_command(c, write_ok_held_a);
    CHECK(client_output_held(c));
    CHECK_EQ_INT(c->nspans, 2);
    long long errs = server.stat_total_error_replies;
    client_fail_held(c, HOLD_A, "MISCONF Errors writing");
    CHECK(!client_output_held(c));
    CHECK_EQ_INT(server.stat_total_error_replies - errs, 2);
    CHECK_EQ_STR(drain(c), "+before -MISCONF Errors writing :7 -MISCONF Errors writing");
    done(c);
}

static void test_release_keeps_the_replies_and_writes(void) {
    struct client *c = fresh(0);
    as_command(c, write_ok_held_a);
    as_command(c, write_int_unheld);
    CHECK(client_output_held(c));
    client_release(c, HOLD_A);
    CHECK(!client_output_held(c));
    CHECK_EQ_INT(c->nspans, 0);
    CHECK_EQ_STR(drain(c), "+OK :7");
    done(c);
}

/* A client holds at every batch in persistent mode: its small span array is kept
 * from one hold to the next (no realloc per batch); a large one is freed. */
static void test_release_keeps_a_small_span_array_frees_a_large_one(void) {
    struct client *c = fresh(0);
    as_command(c, write_ok_held_a);
    const void *spans = c->spans;
    CHECK(spans != NULL);
    client_release(c, HOLD_A);
    CHECK_EQ_INT(c->nspans, 0);
    CHECK(c->spans == spans);
    as_command(c, write_ok_held_a);
    CHECK(c->spans == spans);
    CHECK_EQ_INT(c->nspans, 1);
    for (int i = 0; i < 200; i++) {
        as_command(c, write_ok_held_a);
    }
    CHECK_EQ_INT(c->nspans, 201);
    client_release(c, HOLD_A);
    CHECK_EQ_INT(c->nspans, 0);
    CHECK(c->spans == NULL);
    CHECK(!client_output_held(c));
    drain(c);
    done(c);
}

static void test_two_reasons_fail_and_release_apart(void) {
    struct client *c = fresh(0);
    as_command(c, write_bulk_held_ab);
    as_command(c, write_ok_held_b);
    as_command(c, write_ok_held_a);
    client_fail_held(c, HOLD_A, "ERR a failed"); /* spans shift: the B ones stay right */
    CHECK(client_output_held(c));               /* B still holds */
    client_fail_held(c, HOLD_B, "ERR b failed");
    CHECK(!client_output_held(c));
    /* the first reply depended on both: A's error, then B's rewrote it again */
    CHECK_EQ_STR(drain(c), "-ERR b failed -ERR b failed -ERR a failed");
    as_command(c, write_bulk_held_ab);
    as_command(c, write_ok_held_b);
    client_release(c, HOLD_B);
    client_fail_held(c, HOLD_A, "ERR a");
    CHECK_EQ_STR(drain(c), "-ERR a +OK");
    done(c);
}

static void test_failure_while_running_applies_when_the_command_ends(void) {
    struct client *c = fresh(0);
    reply_simple(c, "first");
    as_command(c, write_fails_while_running);
    CHECK(!client_output_held(c));
    CHECK_EQ_INT(c->fail_now, 0);
    CHECK(c->fail_msg == NULL);
    CHECK_EQ_STR(drain(c), "+first -MISCONF now");
    done(c);
}

static void test_fail_without_held_replies_only_releases(void) {
    struct client *c = fresh(0);
    client_hold(c, HOLD_A); /* not running: output held, no span */
    reply_int(c, 5);
    client_fail_held(c, HOLD_A, "ERR x");
    CHECK(!client_output_held(c));
    CHECK_EQ_STR(drain(c), ":5");
    done(c);
}

int main(void) {
    config_init();
    server.loglevel = LL_WARNING;
    commands_init();
    ks_init();
    server_subscribe_events();
    server.base = event_base_new();
    TEST_RUN(test_pipeline_waits_in_order_and_argv_is_copied);
    TEST_RUN(test_long_pipeline_behind_waits_is_not_moved_per_command);
    TEST_RUN(test_other_client_runs_while_one_waits);
    TEST_RUN(test_multi_queues_without_waiting_and_exec_waits);
    TEST_RUN(test_client_reply_skip_applies_to_the_waiting_command);
    TEST_RUN(test_quit_answers_after_the_earlier_commands);
    TEST_RUN(test_freed_while_waiting_or_ready_leaves_nothing);
    TEST_RUN(test_resume_before_the_timer_runs_once);
    TEST_RUN(test_failed_hold_rewrites_only_its_replies);
    TEST_RUN(test_release_keeps_the_replies_and_writes);
    TEST_RUN(test_release_keeps_a_small_span_array_frees_a_large_one);
    TEST_RUN(test_two_reasons_fail_and_release_apart);
    TEST_RUN(test_failure_while_running_applies_when_the_command_ends);
    TEST_RUN(test_fail_without_held_replies_only_releases);
    while (server.clients) {
        client_free(server.clients);
    }
    ks_deinit();
    event_base_free(server.base);
    server.base = NULL;
    config_deinit();
    TEST_MAIN_END();
}
