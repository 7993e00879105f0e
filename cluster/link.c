/* cluster/link.c: one outgoing peer connection (see link.h and LINKS.md).
 *
 * HOW IT WORKS
 * A link owns at most one connection (struct link_conn) at a time. A connection is a
 * hiredis async context attached to the loop through this file's own event hooks (not
 * hiredis's stock libevent adapter, because the link must look at the reader after
 * every read and count writes); hiredis formats nothing here: requests are encoded
 * once by redisFormatCommandArgv and handed over with redisAsyncFormattedCommand.
 *
 * Every request handed to hiredis sits in the connection's in-flight FIFO in the
 * order sent; hiredis answers callbacks in the same order, so a reply (or the NULL
 * hiredis passes for each pending callback when the connection dies) always belongs
 * to the FIFO's head. A request that times out is completed at once and marked
 * finished, but stays in the FIFO until its reply or NULL pops it: its late reply is
 * counted and dropped. Requests waiting for room or the handshake sit in the link's
 * queue. Every unfinished user request is also on the link's timeline, in issue order;
 * all share one timeout, so issue order is deadline order and one timer, armed for the
 * timeline's head, times them all.
 *
 * hiredis 0.14 has no reader limits and asserts on a reply nobody asked for, so the
 * reader gets this file's reply constructors: they count root replies against
 * requests sent (one too many is an error, not an assert), refuse long arrays before
 * allocating them, and refuse long strings; after each read the link also refuses a
 * string header announcing more than max_bulk_len and more than max_reply_bytes of
 * unfinished reply. A constructor's refusal is a reader error: hiredis then fails the
 * connection, which the link sees through its hooks.
 *
 * Teardown paths all end in conn_detach (the link forgets the connection, fails its
 * queue, schedules the redial; idempotent) and conn_cleanup (hiredis's cleanup hook,
 * called once from redisAsyncFree after every pending callback got its NULL). A
 * connection is freed in conn_cleanup, or after the event handler that was running
 * when hiredis freed its context returns.
 */
#include "cluster/link.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <hiredis/async.h>

/* ------------------------------------------------------------------------------ */

struct link_req {
    struct link_req *next, *prev;     /* in the link's queue or a conn's in-flight FIFO */
    struct link_req *t_next, *t_prev; /* on the link's timeline while unfinished */
    link_done_fn done;
    void *ctx;
    char *cmd;                        /* encoded request while queued (owned) */
    size_t cmdlen;
    uint64_t deadline_us;
    uint64_t sent_us;                 /* when handed to hiredis */
    uint64_t issued_us;               /* when link_send accepted it */
    int kind;                         /* REQ_USER, REQ_HELLO, REQ_AUTH */
    int finished;                     /* done already called (timed out) */
    int on_timeline;
};

enum { REQ_USER = 0, REQ_HELLO, REQ_AUTH };

struct req_list {
    struct link_req *head, *tail;
    int count;
};

struct link_conn {
    struct link *link;
    redisAsyncContext *ac;            /* NULL once hiredis freed it */
    struct event *rev, *wev;
    struct req_list inflight;         /* handed to hiredis, in order */
    size_t inflight_bytes;
    uint64_t expect_roots;            /* requests sent minus root replies begun */
    uint64_t last_reply_us;           /* when the last reply completed */
    int busy;                         /* inside one of our event handlers */
    int gone;                         /* hiredis freed the context */
    int detached;                     /* the link no longer uses this connection */
    int fail_state;                   /* LINK_STATE_DOWN or _AUTH_FAILED on failure */
    char why[128];                    /* our reason for closing, if ours */
};

struct link {
    struct event_base *base;
    struct link_config cfg;           /* strings point into the copies below */
    char *host, *source_addr;
    uint8_t *secret;
    char *node_id;
    enum link_state state;
    struct link_conn *conn;           /* current connection or NULL */
    struct auth_dialer dialer;
    struct req_list queue;            /* waiting for room or the handshake */
    size_t queued_bytes;
    struct link_req *t_head, *t_tail; /* timeline: unfinished user requests */
    struct event *req_timer;
    struct event *conn_timer;         /* connect + handshake deadline */
    struct event *retry_timer;        /* backoff before redialling */
    struct event *free_ev;            /* deferred destroy */
    int attempts;                     /* failures since the last UP */
    int depth;                        /* user callbacks running */
    int destroying;
    uint64_t nonce_ctr;
    uint64_t rng;
    struct link_stats st;
    uint32_t rtt[LINK_RTT_SAMPLES];
    uint64_t rtt_n;                   /* samples ever recorded */
};

static redisReplyObjectFunctions link_reply_fns;
static void link_handshake_reply(struct link_conn *c, int kind, redisReply *reply);
static int link_send_internal(struct link_conn *c, int kind, const struct auth_msg *m);
static void link_on_free_ev(evutil_socket_t fd, short what, void *arg);

static void *xmalloc(size_t n)
{
    void *p = malloc(n == 0 ? 1 : n);
    if (p == NULL) {
        fprintf(stderr, "cluster/link: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
    if (p == NULL) {
        fprintf(stderr, "cluster/link: out of memory allocating %zu x %zu\n", n, size);
        abort();
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *p = xmalloc(n + 1);
    memcpy(p, s, n + 1);
    return p;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct timeval tv_ms(long ms)
{
    struct timeval tv;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

static uint64_t next_rand(struct link *l)
{
    /* xorshift64*: jitter only, seeded from getrandom */
    l->rng ^= l->rng >> 12;
    l->rng ^= l->rng << 25;
    l->rng ^= l->rng >> 27;
    return l->rng * 0x2545f4914f6cdd1dull;
}

static void copy_why(char *dst, size_t cap, const char *why)
{
    snprintf(dst, cap, "%s", why ? why : "");
}

/* ------------------------------------------------------------------------------
 * Lists
 * ------------------------------------------------------------------------------ */

static void list_push(struct req_list *q, struct link_req *r)
{
    r->next = NULL;
    r->prev = q->tail;
    if (q->tail) {
        q->tail->next = r;
    } else {
        q->head = r;
    }
    q->tail = r;
    q->count++;
}

static struct link_req *list_pop(struct req_list *q)
{
    struct link_req *r = q->head;
    if (r == NULL) {
        return NULL;
    }
    q->head = r->next;
    if (q->head) {
        q->head->prev = NULL;
    } else {
        q->tail = NULL;
    }
    r->next = r->prev = NULL;
    q->count--;
    return r;
}

static void list_remove(struct req_list *q, struct link_req *r)
{
    if (r->prev) {
        r->prev->next = r->next;
    } else {
        q->head = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    } else {
        q->tail = r->prev;
    }
    r->next = r->prev = NULL;
    q->count--;
}

static void timeline_add(struct link *l, struct link_req *r)
{
    r->t_next = NULL;
    r->t_prev = l->t_tail;
    if (l->t_tail) {
        l->t_tail->t_next = r;
    } else {
        l->t_head = r;
    }
    l->t_tail = r;
    r->on_timeline = 1;
}

static void timeline_remove(struct link *l, struct link_req *r)
{
    if (!r->on_timeline) {
        return;
    }
    if (r->t_prev) {
        r->t_prev->t_next = r->t_next;
    } else {
        l->t_head = r->t_next;
    }
    if (r->t_next) {
        r->t_next->t_prev = r->t_prev;
    } else {
        l->t_tail = r->t_prev;
    }
    r->t_next = r->t_prev = NULL;
    r->on_timeline = 0;
}

static void arm_req_timer(struct link *l)
{
    if (l->t_head == NULL) {
        evtimer_del(l->req_timer);
        return;
    }
    uint64_t now = now_us(), d = l->t_head->deadline_us;
    uint64_t wait = d > now ? d - now : 0;
    struct timeval tv;
    tv.tv_sec = (time_t)(wait / 1000000u);
    tv.tv_usec = (suseconds_t)(wait % 1000000u);
    evtimer_add(l->req_timer, &tv);
}

/* ------------------------------------------------------------------------------
 * Completing requests
 * ------------------------------------------------------------------------------ */

static void record_rtt(struct link *l, uint64_t us)
{
    l->rtt[l->rtt_n % LINK_RTT_SAMPLES] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    l->rtt_n++;
}

/* Calls the user's callback once and marks the request finished. */
static void req_finish(struct link *l, struct link_req *r, int status,
                       const redisReply *reply)
{
    if (r->finished) {
        return;
    }
    r->finished = 1;
    timeline_remove(l, r);
    if (r->kind != REQ_USER) {
        return;
    }
    switch (status) {
    case LINK_OK:
        l->st.ok++;
        record_rtt(l, now_us() - r->issued_us);
        break;
    case LINK_TIMEOUT:
        l->st.timeouts++;
        break;
    default:
        l->st.down++;
        break;
    }
    l->depth++;
    r->done(r->ctx, status, reply);
    l->depth--;
}

static void req_free(struct link_req *r)
{
    free(r->cmd);
    free(r);
}

static void set_state(struct link *l, enum link_state s, const char *why)
{
    if (l->state == s) {
        return;
    }
    l->state = s;
    if (s == LINK_STATE_DOWN || s == LINK_STATE_AUTH_FAILED) {
        copy_why(l->st.last_error, sizeof(l->st.last_error), why);
    }
    if (l->cfg.on_state) {
        l->depth++;
        l->cfg.on_state(l->cfg.state_ctx, s, why);
        l->depth--;
    }
}

static void fail_queue(struct link *l)
{
    struct link_req *r;
    while ((r = list_pop(&l->queue)) != NULL) {
        l->queued_bytes -= r->cmdlen + sizeof(*r);
        req_finish(l, r, LINK_DOWN, NULL);
        req_free(r);
    }
}

/* ------------------------------------------------------------------------------
 * Connection lifecycle
 * ------------------------------------------------------------------------------ */

static void conn_open(struct link *l);

uint32_t link_backoff_ms(int failures, int min_ms, int max_ms, uint64_t rnd)
{
    if (min_ms < 1) {
        min_ms = 1;
    }
    if (max_ms < min_ms) {
        max_ms = min_ms;
    }
    uint64_t delay = (uint64_t)min_ms;
    for (int i = 1; i < failures && delay < (uint64_t)max_ms; i++) {
        delay *= 2;
    }
    if (delay > (uint64_t)max_ms) {
        delay = (uint64_t)max_ms;
    }
    uint64_t half = delay / 2;
    return (uint32_t)(half + rnd % (delay - half + 1));
}

static void schedule_redial(struct link *l)
{
    if (l->destroying) {
        return;
    }
    uint32_t delay = link_backoff_ms(l->attempts, l->cfg.backoff_min_ms,
                                     l->cfg.backoff_max_ms, next_rand(l));
    struct timeval tv = tv_ms((long)delay);
    evtimer_add(l->retry_timer, &tv);
}

/* The link stops using connection c (idempotent): state DOWN or AUTH_FAILED, queued
 * requests fail with LINK_DOWN, a redial is scheduled. In-flight requests are failed
 * by hiredis's NULL callbacks or conn_cleanup. */
static void conn_detach(struct link_conn *c, const char *why)
{
    struct link *l = c->link;
    if (c->detached) {
        return;
    }
    c->detached = 1;
    if (why && c->why[0] == '\0') {
        copy_why(c->why, sizeof(c->why), why);
    }
    if (l->conn != c) {
        return;
    }
    l->conn = NULL;
    evtimer_del(l->conn_timer);
    l->attempts++;
    if (l->state == LINK_STATE_UP) {
        l->st.disconnects++;
    }
    if (c->fail_state == LINK_STATE_AUTH_FAILED) {
        l->st.auth_failures++;
    }
    schedule_redial(l);
    set_state(l, c->fail_state, c->why[0] ? c->why : "connection lost");
    fail_queue(l);
}

/* Closes c on our initiative: the link forgets it first (so callbacks that run
 * during the close see the link down), then hiredis frees it, calling every pending
 * callback with NULL. Inside a hiredis callback the free is deferred by hiredis until
 * the callback returns. c must not be used after this call. */
static void conn_close(struct link_conn *c, int fail_state, const char *why)
{
    if (!c->detached) {
        c->fail_state = fail_state;
    }
    conn_detach(c, why);
    if (!c->gone && c->ac != NULL) {
        redisAsyncContext *ac = c->ac;
        if (!(ac->c.flags & REDIS_FREEING)) {
            redisAsyncFree(ac);
        }
    }
}

/* hiredis's cleanup hook: the context is being freed; every pending callback has
 * run. Frees the connection unless one of its event handlers is running. */
static void conn_cleanup(void *privdata)
{
    struct link_conn *c = privdata;
    struct link *l = c->link;
    if (c->rev) {
        event_free(c->rev);
        c->rev = NULL;
    }
    if (c->wev) {
        event_free(c->wev);
        c->wev = NULL;
    }
    if (c->ac != NULL) {
        if (c->why[0] == '\0' && c->ac->err) {
            copy_why(c->why, sizeof(c->why), c->ac->errstr);
        }
        c->ac->data = NULL;
        c->ac->ev.data = NULL;
    }
    c->ac = NULL;
    c->gone = 1;
    conn_detach(c, "connection closed");
    /* hiredis ran every callback, so nothing should be left; be safe anyway */
    struct link_req *r;
    while ((r = list_pop(&c->inflight)) != NULL) {
        req_finish(l, r, LINK_DOWN, NULL);
        req_free(r);
    }
    if (!c->busy) {
        free(c);
    }
}

static void conn_add_read(void *p)
{
    struct link_conn *c = p;
    event_add(c->rev, NULL);
}
static void conn_del_read(void *p)
{
    struct link_conn *c = p;
    event_del(c->rev);
}
static void conn_add_write(void *p)
{
    struct link_conn *c = p;
    event_add(c->wev, NULL);
}
static void conn_del_write(void *p)
{
    struct link_conn *c = p;
    event_del(c->wev);
}

/* Reads the decimal length of a bulk header at p[0..n) ending in CRLF. Returns 1
 * with *len set, 0 when the line is incomplete, -1 when it is not a number. */
static int peek_bulk_len(const char *p, size_t n, long long *len)
{
    long long v = 0;
    size_t i = 0;
    int neg = 0;
    if (n > 0 && p[0] == '-') {
        neg = 1;
        i = 1;
    }
    for (; i < n && i < 24; i++) {
        if (p[i] == '\r') {
            *len = neg ? -v : v;
            return 1;
        }
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
        if (v > (LLONG_MAX - 9) / 10) {
            *len = LLONG_MAX;
            return 1;
        }
        v = v * 10 + (p[i] - '0');
    }
    return i >= 24 ? -1 : 0;
}

/* After a read: refuses a reply in progress that announces or buffers too much.
 * Relies on hiredis 0.14's public reader struct: rstack[ridx] is the item being
 * read, and for a bulk string its header digits start at buf+pos. */
static const char *reader_over_limit(struct link_conn *c)
{
    struct link *l = c->link;
    redisReader *r = c->ac->c.reader;
    if (r == NULL || r->buf == NULL || r->len < r->pos) {
        return NULL;
    }
    size_t unparsed = r->len - r->pos;
    if (unparsed > l->cfg.max_reply_bytes) {
        return "reply exceeds max_reply_bytes";
    }
    if (r->ridx >= 0 && r->ridx < 9 && r->rstack[r->ridx].type == REDIS_REPLY_STRING) {
        long long len = 0;
        int rc = peek_bulk_len(r->buf + r->pos, unparsed, &len);
        if (rc < 0) {
            return "malformed bulk length in reply";
        }
        if (rc > 0 && len > l->cfg.max_bulk_len) {
            return "reply bulk length exceeds max_bulk_len";
        }
    }
    return NULL;
}

static void conn_on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct link_conn *c = arg;
    c->busy = 1;
    redisAsyncHandleRead(c->ac);
    c->busy = 0;
    if (c->gone) {
        free(c);
        return;
    }
    const char *why = reader_over_limit(c);
    if (why != NULL) {
        conn_close(c, LINK_STATE_DOWN, why); /* frees c */
    }
}

static void conn_on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct link_conn *c = arg;
    c->link->st.write_calls++;
    c->busy = 1;
    redisAsyncHandleWrite(c->ac);
    c->busy = 0;
    if (c->gone) {
        free(c);
    }
}

void link_flush(struct link *l)
{
    struct link_conn *c = l->conn;
    if (l->destroying || l->state != LINK_STATE_UP || l->depth > 0 || c == NULL || c->busy ||
        c->gone || c->detached || c->ac == NULL || !(c->ac->c.flags & REDIS_CONNECTED)) {
        return;
    }
    conn_on_writable(-1, EV_WRITE, c);
}

static void pump(struct link *l);

/* hiredis reply callback for every request: pops the in-flight head it belongs to. */
static void conn_on_reply(redisAsyncContext *ac, void *reply_v, void *privdata)
{
    struct link_conn *c = privdata;
    struct link *l = c->link;
    redisReply *reply = reply_v;
    struct link_req *r = list_pop(&c->inflight);
    if (r == NULL) {
        return; /* cannot happen: one callback per request sent */
    }
    c->inflight_bytes -= r->cmdlen;
    if (reply == NULL) {
        /* the connection is dying: hiredis flushes its callbacks */
        conn_detach(c, ac->err ? ac->errstr : "connection lost");
        req_finish(l, r, LINK_DOWN, NULL);
        req_free(r);
        return;
    }
    c->last_reply_us = now_us();
    if (r->kind == REQ_USER) {
        if (r->finished) {
            l->st.late_replies++;
        } else {
            req_finish(l, r, LINK_OK, reply);
        }
        req_free(r);
        if (!c->detached) {
            pump(l);
        }
        return;
    }
    int kind = r->kind;
    req_free(r);
    if (c->detached) {
        return;
    }
    link_handshake_reply(c, kind, reply);
}

/* Hands an encoded request to hiredis on connection c. Returns 0, or -1 when
 * hiredis refused it (context closing). */
static int conn_submit(struct link_conn *c, struct link_req *r, const char *cmd, size_t len)
{
    if (redisAsyncFormattedCommand(c->ac, conn_on_reply, c, cmd, len) != REDIS_OK) {
        return -1;
    }
    r->sent_us = now_us();
    c->expect_roots++;
    c->inflight_bytes += len;
    list_push(&c->inflight, r);
    return 0;
}

static void conn_on_connect(const redisAsyncContext *ac, int status)
{
    struct link_conn *c = ac->data;
    if (c == NULL || status == REDIS_OK) {
        return;
    }
    char why[160];
    snprintf(why, sizeof(why), "connect failed: %s", ac->errstr);
    c->fail_state = LINK_STATE_DOWN;
    conn_detach(c, why);
}

static void conn_on_disconnect(const redisAsyncContext *ac, int status)
{
    /* conn_cleanup already ran and cleared ac->data; nothing to do */
}

/* ------------------------------------------------------------------------------
 * Reply constructors with limits (the reader's privdata is the connection)
 * ------------------------------------------------------------------------------ */

static redisReply *reply_new(const redisReadTask *task, int type)
{
    struct link_conn *c = task->privdata;
    if (task->parent == NULL && c != NULL) {
        if (c->expect_roots == 0) {
            copy_why(c->why, sizeof(c->why), "peer sent a reply nobody asked for");
            return NULL;
        }
        c->expect_roots--;
    }
    redisReply *r = xcalloc(1, sizeof(*r));
    r->type = type;
    return r;
}

static void *reply_attach(const redisReadTask *task, redisReply *r)
{
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;
        if (parent == NULL || parent->type != REDIS_REPLY_ARRAY || task->idx < 0 ||
            (size_t)task->idx >= parent->elements) {
            freeReplyObject(r);
            return NULL;
        }
        parent->element[task->idx] = r;
    }
    return r;
}

static void *reply_string(const redisReadTask *task, char *str, size_t len)
{
    struct link_conn *c = task->privdata;
    if (c != NULL && (long long)len > c->link->cfg.max_bulk_len) {
        copy_why(c->why, sizeof(c->why), "reply string exceeds max_bulk_len");
        return NULL;
    }
    redisReply *r = reply_new(task, task->type);
    if (r == NULL) {
        return NULL;
    }
    r->str = xmalloc(len + 1);
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return reply_attach(task, r);
}

static void *reply_array(const redisReadTask *task, int elements)
{
    struct link_conn *c = task->privdata;
    if (elements < 0 || (c != NULL && elements > c->link->cfg.max_elements)) {
        if (c != NULL) {
            copy_why(c->why, sizeof(c->why), "reply array exceeds max_elements");
        }
        return NULL;
    }
    redisReply *r = reply_new(task, REDIS_REPLY_ARRAY);
    if (r == NULL) {
        return NULL;
    }
    if (elements > 0) {
        r->element = xcalloc((size_t)elements, sizeof(redisReply *));
    }
    r->elements = (size_t)elements;
    return reply_attach(task, r);
}

static void *reply_integer(const redisReadTask *task, long long value)
{
    redisReply *r = reply_new(task, REDIS_REPLY_INTEGER);
    if (r == NULL) {
        return NULL;
    }
    r->integer = value;
    return reply_attach(task, r);
}

static void *reply_nil(const redisReadTask *task)
{
    redisReply *r = reply_new(task, REDIS_REPLY_NIL);
    if (r == NULL) {
        return NULL;
    }
    return reply_attach(task, r);
}

static redisReplyObjectFunctions link_reply_fns = {
    reply_string, reply_array, reply_integer, reply_nil, freeReplyObject,
};

/* ------------------------------------------------------------------------------
 * Dialling and the handshake
 * ------------------------------------------------------------------------------ */

static void conn_fail_now(struct link *l, redisAsyncContext *ac, const char *why)
{
    char buf[160];
    snprintf(buf, sizeof(buf), "%s: %s", why, ac && ac->errstr ? ac->errstr : "?");
    if (ac != NULL) {
        redisAsyncFree(ac);
    }
    l->attempts++;
    schedule_redial(l);
    set_state(l, LINK_STATE_DOWN, buf);
    fail_queue(l);
}

static void conn_open(struct link *l)
{
    if (l->destroying || l->conn != NULL) {
        return;
    }
    set_state(l, LINK_STATE_CONNECTING, "dialling");
    const char *src = l->source_addr;
    redisAsyncContext *ac = src ? redisAsyncConnectBind(l->host, l->cfg.port, src)
                                : redisAsyncConnect(l->host, l->cfg.port);
    if (ac == NULL || ac->err) {
        conn_fail_now(l, ac, "connect failed");
        return;
    }
    struct link_conn *c = xcalloc(1, sizeof(*c));
    c->link = l;
    c->ac = ac;
    c->fail_state = LINK_STATE_DOWN;
    c->last_reply_us = now_us();
    ac->data = c;
    ac->c.reader->fn = &link_reply_fns;
    ac->c.reader->privdata = c;
    c->rev = event_new(l->base, ac->c.fd, EV_READ, conn_on_readable, c);
    c->wev = event_new(l->base, ac->c.fd, EV_WRITE, conn_on_writable, c);
    ac->ev.data = c;
    ac->ev.addRead = conn_add_read;
    ac->ev.delRead = conn_del_read;
    ac->ev.addWrite = conn_add_write;
    ac->ev.delWrite = conn_del_write;
    ac->ev.cleanup = conn_cleanup;
    redisAsyncSetConnectCallback(ac, conn_on_connect);
    redisAsyncSetDisconnectCallback(ac, conn_on_disconnect);
    event_add(c->rev, NULL);
    event_add(c->wev, NULL);
    l->conn = c;
    struct timeval tv = tv_ms(l->cfg.connect_timeout_ms);
    evtimer_add(l->conn_timer, &tv);

    /* the HELLO goes into hiredis's buffer now and leaves once the socket connects */
    uint8_t rnd[32], nonce[AUTH_NONCE_LEN];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        for (size_t i = 0; i < sizeof(rnd); i++) {
            rnd[i] = (uint8_t)next_rand(l);
        }
    }
    auth_nonce_make(rnd, sizeof(rnd), ++l->nonce_ctr, nonce);
    struct auth_msg m;
    auth_dialer_start(&l->dialer, l->secret, l->cfg.secret_len, l->node_id,
                      l->cfg.node_id_len, nonce, &m);
    if (link_send_internal(c, REQ_HELLO, &m) != 0) {
        conn_close(c, LINK_STATE_DOWN, "cannot queue HELLO");
    }
}

static int link_send_internal(struct link_conn *c, int kind, const struct auth_msg *m)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, m->argc, (const char **)m->argv, m->argvlen);
    if (n < 0 || cmd == NULL) {
        return -1;
    }
    struct link_req *r = xcalloc(1, sizeof(*r));
    r->kind = kind;
    r->cmdlen = (size_t)n;
    int rc = conn_submit(c, r, cmd, (size_t)n);
    free(cmd);
    if (rc != 0) {
        free(r);
    }
    return rc;
}

static void auth_failed(struct link_conn *c, const char *why)
{
    conn_close(c, LINK_STATE_AUTH_FAILED, why);
}

static void link_handshake_reply(struct link_conn *c, int kind, redisReply *reply)
{
    struct link *l = c->link;
    char why[160];
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "peer refused %s: %.100s",
                 kind == REQ_HELLO ? "HELLO" : "AUTH", reply->str);
        auth_dialer_fail(&l->dialer, why);
        auth_failed(c, why);
        return;
    }
    if (kind == REQ_HELLO) {
        struct auth_msg m;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_STRING) {
            auth_failed(c, "peer answered HELLO with something else");
            return;
        }
        if (auth_dialer_on_hello(&l->dialer, reply->element[0]->str,
                                 reply->element[0]->len, reply->element[1]->str,
                                 reply->element[1]->len, &m) != AUTH_OK) {
            auth_failed(c, l->dialer.why);
            return;
        }
        if (link_send_internal(c, REQ_AUTH, &m) != 0) {
            conn_close(c, LINK_STATE_DOWN, "cannot queue AUTH");
        }
        return;
    }
    if (reply->type != REDIS_REPLY_STRING ||
        auth_dialer_on_proof(&l->dialer, reply->str, reply->len) != AUTH_OK) {
        auth_failed(c, reply->type == REDIS_REPLY_STRING
                           ? l->dialer.why
                           : "peer answered AUTH with something else");
        return;
    }
    evtimer_del(l->conn_timer);
    memcpy(l->st.peer_id, l->dialer.peer_id, l->dialer.peer_id_len);
    l->st.peer_id[l->dialer.peer_id_len] = '\0';
    l->st.connects++;
    l->attempts = 0;
    set_state(l, LINK_STATE_UP, "authenticated");
    if (l->conn == c) {
        pump(l);
    }
}

/* ------------------------------------------------------------------------------
 * Timers
 * ------------------------------------------------------------------------------ */

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    struct link *l = arg;
    if (l->conn != NULL && l->state == LINK_STATE_CONNECTING) {
        conn_close(l->conn, LINK_STATE_DOWN, "connect timeout (connect or handshake)");
    }
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    conn_open(arg);
}

static void on_req_timer(evutil_socket_t fd, short what, void *arg)
{
    struct link *l = arg;
    uint64_t now = now_us();
    struct link_req *r;
    while ((r = l->t_head) != NULL && r->deadline_us <= now) {
        if (r->cmd != NULL) {
            /* still queued: never sent */
            list_remove(&l->queue, r);
            l->queued_bytes -= r->cmdlen + sizeof(*r);
            req_finish(l, r, LINK_TIMEOUT, NULL);
            req_free(r);
            continue;
        }
        /* in flight: complete now, leave it in the FIFO for its late reply */
        req_finish(l, r, LINK_TIMEOUT, NULL);
        struct link_conn *c = l->conn;
        if (c != NULL && c->last_reply_us <= r->sent_us) {
            /* nothing answered during its whole lifetime: the peer is stalled */
            conn_close(c, LINK_STATE_DOWN, "peer stalled: no reply within request timeout");
        }
    }
    if (!l->destroying) {
        arm_req_timer(l);
    }
}

/* ------------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------------ */

/* Moves queued requests onto the socket while the link is up and has room. */
static void pump(struct link *l)
{
    struct link_conn *c = l->conn;
    if (c == NULL || l->state != LINK_STATE_UP) {
        return;
    }
    struct link_req *r;
    while ((r = l->queue.head) != NULL && c->inflight.count < l->cfg.max_inflight &&
           (c->inflight_bytes + r->cmdlen <= l->cfg.max_inflight_bytes ||
            c->inflight.count == 0)) {
        list_pop(&l->queue);
        l->queued_bytes -= r->cmdlen + sizeof(*r);
        char *cmd = r->cmd;
        r->cmd = NULL;
        if (conn_submit(c, r, cmd, r->cmdlen) != 0) {
            free(cmd);
            req_finish(l, r, LINK_DOWN, NULL);
            req_free(r);
            conn_close(c, LINK_STATE_DOWN, "hiredis refused a request");
            return;
        }
        free(cmd);
    }
}

static int is_push_verb(const char *p, size_t n)
{
    static const char *verbs[] = {"subscribe", "psubscribe", "ssubscribe", "unsubscribe",
                                  "punsubscribe", "sunsubscribe", "monitor"};
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strlen(verbs[i]) == n && strncasecmp(p, verbs[i], n) == 0) {
            return 1;
        }
    }
    return 0;
}

int link_send(struct link *l, int argc, const char *const *argv, const size_t *argvlen,
              link_done_fn done, void *ctx)
{
    if (l->destroying || l->state == LINK_STATE_DOWN || l->state == LINK_STATE_AUTH_FAILED) {
        l->st.refused++;
        return LINK_DOWN;
    }
    if (argc < 1 || argv == NULL || argvlen == NULL || done == NULL ||
        is_push_verb(argv[0], argvlen[0])) {
        l->st.refused++;
        return LINK_REFUSED;
    }
    struct link_conn *c = l->conn;
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, (const char **)argv, argvlen);
    if (n < 0 || cmd == NULL) {
        l->st.refused++;
        return LINK_REFUSED;
    }
    size_t len = (size_t)n;
    int direct = c != NULL && l->state == LINK_STATE_UP && l->queue.count == 0 &&
                 c->inflight.count < l->cfg.max_inflight &&
                 (c->inflight_bytes + len <= l->cfg.max_inflight_bytes ||
                  c->inflight.count == 0);
    if (!direct && l->queued_bytes + len + sizeof(struct link_req) > l->cfg.max_queued_bytes) {
        free(cmd);
        l->st.refused++;
        return LINK_REFUSED;
    }
    struct link_req *r = xcalloc(1, sizeof(*r));
    r->kind = REQ_USER;
    r->done = done;
    r->ctx = ctx;
    r->cmdlen = len;
    r->issued_us = now_us();
    r->deadline_us = r->issued_us + (uint64_t)l->cfg.request_timeout_ms * 1000u;
    if (direct) {
        if (conn_submit(c, r, cmd, len) != 0) {
            free(cmd);
            free(r);
            l->st.refused++;
            return LINK_DOWN;
        }
        free(cmd);
    } else {
        r->cmd = cmd;
        list_push(&l->queue, r);
        l->queued_bytes += len + sizeof(*r);
    }
    l->st.sent++;
    int was_empty = l->t_head == NULL;
    timeline_add(l, r);
    if (was_empty) {
        arm_req_timer(l);
    }
    return LINK_OK;
}

/* ------------------------------------------------------------------------------
 * Create, destroy, observe
 * ------------------------------------------------------------------------------ */

struct link *link_create(struct event_base *base, const struct link_config *cfg)
{
    if (base == NULL || cfg == NULL || cfg->host == NULL || cfg->host[0] == '\0' ||
        cfg->port <= 0 || cfg->port > 65535 || cfg->secret == NULL ||
        cfg->secret_len == 0 || cfg->secret_len > AUTH_SECRET_MAX || cfg->node_id == NULL ||
        cfg->node_id_len == 0 || cfg->node_id_len > AUTH_ID_MAX) {
        return NULL;
    }
    struct link *l = xcalloc(1, sizeof(*l));
    l->base = base;
    l->cfg = *cfg;
    l->host = xstrdup(cfg->host);
    l->source_addr =
        cfg->source_addr && cfg->source_addr[0] ? xstrdup(cfg->source_addr) : NULL;
    l->secret = xmalloc(cfg->secret_len);
    memcpy(l->secret, cfg->secret, cfg->secret_len);
    l->node_id = xmalloc(cfg->node_id_len);
    memcpy(l->node_id, cfg->node_id, cfg->node_id_len);
    l->cfg.host = l->host;
    l->cfg.source_addr = l->source_addr;
    l->cfg.secret = l->secret;
    l->cfg.node_id = l->node_id;
    struct link_config *k = &l->cfg;
    if (k->connect_timeout_ms <= 0) k->connect_timeout_ms = 1000;
    if (k->request_timeout_ms <= 0) k->request_timeout_ms = 1000;
    if (k->max_inflight <= 0) k->max_inflight = 1024;
    if (k->max_inflight_bytes == 0) k->max_inflight_bytes = 8u << 20;
    if (k->max_queued_bytes == 0) k->max_queued_bytes = 16u << 20;
    if (k->backoff_min_ms <= 0) k->backoff_min_ms = 100;
    if (k->backoff_max_ms < k->backoff_min_ms) k->backoff_max_ms = 5000;
    if (k->backoff_max_ms < k->backoff_min_ms) k->backoff_max_ms = k->backoff_min_ms;
    if (k->max_bulk_len <= 0) k->max_bulk_len = 512ll << 20;
    if (k->max_elements <= 0) k->max_elements = 1024 * 1024;
    if (k->max_elements > INT32_MAX) k->max_elements = INT32_MAX;
    if (k->max_reply_bytes == 0) k->max_reply_bytes = (size_t)k->max_bulk_len + 65536;
    if (getrandom(&l->rng, sizeof(l->rng), 0) != (ssize_t)sizeof(l->rng) || l->rng == 0) {
        l->rng = now_us() | 1;
    }
    l->req_timer = evtimer_new(base, on_req_timer, l);
    l->conn_timer = evtimer_new(base, on_conn_timer, l);
    l->retry_timer = evtimer_new(base, on_retry_timer, l);
    l->free_ev = event_new(base, -1, 0, link_on_free_ev, l);
    /* no callbacks from inside link_create: dial with on_state muted */
    l->state = LINK_STATE_CONNECTING;
    link_state_fn on_state = l->cfg.on_state;
    l->cfg.on_state = NULL;
    conn_open(l);
    l->cfg.on_state = on_state;
    return l;
}

static void link_free_now(struct link *l)
{
    l->destroying = 1;
    evtimer_del(l->retry_timer);
    evtimer_del(l->conn_timer);
    if (l->conn != NULL) {
        conn_close(l->conn, LINK_STATE_DOWN, "link destroyed");
    }
    fail_queue(l);
    /* in-flight requests of the closed connection were failed by hiredis's NULL
     * callbacks; anything still on the timeline (cannot happen) is failed here */
    struct link_req *r;
    while ((r = l->t_head) != NULL) {
        req_finish(l, r, LINK_DOWN, NULL);
    }
    event_free(l->req_timer);
    event_free(l->conn_timer);
    event_free(l->retry_timer);
    event_free(l->free_ev);
    volatile uint8_t *s = l->secret;
    for (size_t i = 0; i < l->cfg.secret_len; i++) {
        s[i] = 0;
    }
    free(l->secret);
    free(l->node_id);
    free(l->host);
    free(l->source_addr);
    free(l);
}

static void link_on_free_ev(evutil_socket_t fd, short what, void *arg)
{
    link_free_now(arg);
}

void link_destroy(struct link **lp)
{
    struct link *l = lp ? *lp : NULL;
    if (l == NULL) {
        return;
    }
    *lp = NULL;
    if (l->depth > 0 || (l->conn != NULL && l->conn->busy)) {
        if (!l->destroying) {
            l->destroying = 1;
            event_active(l->free_ev, 0, 0);
        }
        return;
    }
    link_free_now(l);
}

void link_get_stats(const struct link *l, struct link_stats *out)
{
    *out = l->st;
    out->state = l->state;
    out->queued = l->queue.count;
    out->queued_bytes = l->queued_bytes;
    out->inflight = l->conn ? l->conn->inflight.count : 0;
    out->inflight_bytes = l->conn ? l->conn->inflight_bytes : 0;
    out->out_buffered = 0;
    if (l->conn != NULL && l->conn->ac != NULL && l->conn->ac->c.obuf != NULL) {
        out->out_buffered = sdslen(l->conn->ac->c.obuf);
    }
}

int link_rtt_samples(const struct link *l, uint32_t *out, int max)
{
    uint64_t have = l->rtt_n < LINK_RTT_SAMPLES ? l->rtt_n : LINK_RTT_SAMPLES;
    int n = max < (int)have ? max : (int)have;
    for (int i = 0; i < n; i++) {
        out[i] = l->rtt[(l->rtt_n - 1 - (uint64_t)i) % LINK_RTT_SAMPLES];
    }
    return n;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

uint32_t link_rtt_percentile(const struct link *l, double pct)
{
    uint32_t tmp[LINK_RTT_SAMPLES];
    int n = link_rtt_samples(l, tmp, LINK_RTT_SAMPLES);
    if (n == 0) {
        return 0;
    }
    qsort(tmp, (size_t)n, sizeof(tmp[0]), cmp_u32);
    if (pct < 0) pct = 0;
    if (pct > 100) pct = 100;
    int idx = (int)((pct / 100.0) * (n - 1) + 0.5);
    return tmp[idx];
}

const char *link_state_name(enum link_state s)
{
    switch (s) {
    case LINK_STATE_CONNECTING: return "connecting";
    case LINK_STATE_UP: return "up";
    case LINK_STATE_DOWN: return "down";
    case LINK_STATE_AUTH_FAILED: return "auth-failed";
    }
    return "?";
}

const char *link_status_name(int status)
{
    switch (status) {
    case LINK_OK: return "ok";
    case LINK_TIMEOUT: return "timeout";
    case LINK_DOWN: return "down";
    case LINK_REFUSED: return "refused";
    }
    return "?";
}
