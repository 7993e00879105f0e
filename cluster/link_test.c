/* cluster/link_test.c: a link against a fake peer in the same process: a small
 * libevent listener that parses requests with proto/resp.h, runs the listener side
 * of cluster/auth.h for KVD.PEER, and answers the rest as each test tells it (echo,
 * delayed, never, half a frame, garbage, huge frames, unsolicited replies, or not
 * reading at all). Every wait is bounded by a deadline on the loop. */
#include "cluster/link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cluster/auth.h"
#include "cluster/fake_peer_test.h"
#include "proto/resp.h"
#include "tests/test.h"

static const char secret[] = "s3cret-of-the-cluster";

/* ------------------------------------------------------------------------------
 * Fake peer
 * ------------------------------------------------------------------------------ */

enum peer_mode {
    PEER_ECHO = 0,   /* PING -> +PONG, ECHO x -> $x, DELAY ms x -> $x after ms */
    PEER_SILENT,     /* authenticates, then never answers */
    PEER_NO_READ,    /* authenticates, then stops reading its socket */
    PEER_HALF,       /* answers the first request with half a bulk, then nothing */
    PEER_GARBAGE,    /* answers with bytes that are not RESP */
    PEER_HUGE_BULK,  /* answers with a header announcing $999999999999 */
    PEER_HUGE_ARRAY, /* answers with *2000000000 */
    PEER_STREAM,     /* answers with a 2 MB bulk, all of it */
    PEER_DOUBLE,     /* answers every request twice */
    PEER_RANDOM,     /* answers with seeded random RESP-like fragments */
};

struct peer;

struct pconn {
    struct peer *peer;
    int fd;
    struct event *rev, *wev, *delay_ev;
    struct fp_in rd; /* input and the request being handled (fake_peer_test.h) */
    char *out;
    size_t outlen, outcap;
    struct auth_listener auth;
    /* delayed replies, released in order */
    struct delayed {
        uint64_t at_us;
        char *bytes;
        size_t len;
    } dq[64];
    int dq_head, dq_n;
    uint64_t dq_last_us;
    int mode;
    int dead;
};

struct peer {
    struct event_base *base;
    int lfd;
    int port;
    struct event *lev;
    const char *secret;
    int mode;                 /* for connections accepted from now on */
    int accepted;
    char last_peer_ip[64];    /* getpeername of the last accepted connection */
    int commands;             /* non-KVD.PEER commands received */
    int peer_verbs;           /* KVD.PEER commands received */
    int user_before_auth;     /* non-PEER commands before the connection authenticated */
    struct pconn *conns[16];
    int nconns;
    uint64_t nonce_ctr;
    uint64_t rng;             /* PEER_RANDOM's generator */
};

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void pconn_close(struct pconn *c)
{
    if (c->dead) {
        return;
    }
    c->dead = 1;
    event_free(c->rev);
    event_free(c->wev);
    event_free(c->delay_ev);
    close(c->fd);
    fp_in_free(&c->rd);
    for (int i = 0; i < c->dq_n; i++) {
        free(c->dq[(c->dq_head + i) % 64].bytes);
    }
    free(c->out);
}

static void pconn_flush(struct pconn *c)
{
    while (c->outlen > 0) {
        ssize_t n = write(c->fd, c->out, c->outlen);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            event_add(c->wev, NULL);
            return;
        }
        if (n <= 0) {
            pconn_close(c);
            return;
        }
        memmove(c->out, c->out + n, c->outlen - (size_t)n);
        c->outlen -= (size_t)n;
    }
}

static void pconn_write(struct pconn *c, const void *p, size_t n)
{
    if (c->outlen + n > c->outcap) {
        c->outcap = (c->outlen + n) * 2;
        c->out = realloc(c->out, c->outcap);
    }
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
    pconn_flush(c);
}

static void pconn_bulk(struct pconn *c, const char *p, size_t n)
{
    char hdr[32];
    int h = snprintf(hdr, sizeof(hdr), "$%zu\r\n", n);
    pconn_write(c, hdr, (size_t)h);
    pconn_write(c, p, n);
    pconn_write(c, "\r\n", 2);
}

static void pconn_on_writable(evutil_socket_t fd, short what, void *arg)
{
    pconn_flush(arg);
}

static void pconn_on_delay(evutil_socket_t fd, short what, void *arg)
{
    struct pconn *c = arg;
    uint64_t now = mono_us();
    while (c->dq_n > 0 && c->dq[c->dq_head].at_us <= now) {
        struct delayed *d = &c->dq[c->dq_head];
        pconn_bulk(c, d->bytes, d->len);
        free(d->bytes);
        c->dq_head = (c->dq_head + 1) % 64;
        c->dq_n--;
        if (c->dead) {
            return;
        }
    }
    if (c->dq_n > 0) {
        uint64_t wait = c->dq[c->dq_head].at_us - now;
        struct timeval tv = {(time_t)(wait / 1000000), (suseconds_t)(wait % 1000000)};
        evtimer_add(c->delay_ev, &tv);
    }
}

/* KVD.PEER as server/ will handle it: auth_listener_step_argv on the parsed words. */
static void pconn_peer_verb(struct pconn *c)
{
    struct peer *p = c->peer;
    uint8_t rnd[32], nonce[AUTH_NONCE_LEN];
    memset(rnd, 0x5a, sizeof(rnd));
    auth_nonce_make(rnd, sizeof(rnd), ++p->nonce_ctr + 1000 * (uint64_t)p->port, nonce);
    struct auth_reply r;
    p->peer_verbs++;
    auth_listener_step_argv(&c->auth, c->rd.parser.argc - 1, c->rd.parser.argv + 1, nonce, &r);
    if (r.kind == AUTH_REPLY_PAIR) {
        pconn_write(c, "*2\r\n", 4);
        pconn_bulk(c, r.a, r.alen);
        pconn_bulk(c, r.b, r.blen);
    } else if (r.kind == AUTH_REPLY_BULK) {
        pconn_bulk(c, r.a, r.alen);
    } else {
        pconn_write(c, "-", 1);
        pconn_write(c, r.a, r.alen);
        pconn_write(c, "\r\n", 2);
    }
    if (r.close) {
        pconn_close(c);
    } else if (auth_listener_authenticated(&c->auth) && c->mode == PEER_NO_READ) {
        event_del(c->rev);
    }
}

static int arg_is(const struct kv_slice *a, const char *s)
{
    return a->len == strlen(s) && strncasecmp(a->p, s, a->len) == 0;
}

/* Writes one reply made of random pieces: valid and broken headers (huge, negative,
 * non-numeric lengths, deep nesting), short payloads, stray CRLFs and random bytes. */
static void pconn_random_reply(struct pconn *c)
{
    static const char *pieces[] = {
        "+OK\r\n", "-ERR x\r\n", ":12\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*-1\r\n",
        "*2\r\n", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n",
        "$999999999999\r\n", "*2000000000\r\n", "$-7\r\n", "*-9\r\n", "$abc\r\n",
        ":9999999999999999999999\r\n", "$5\r\nab", "\r\n", "*0\r\n", "%2\r\n", "~1\r\n",
        "$2\r\nabcdef\r\n", "*3\r\n:1\r\n", "+", "\n", "$0\r\n\r\n",
    };
    struct peer *p = c->peer;
    int n = 1 + (int)(p->rng % 4);
    for (int i = 0; i < n; i++) {
        p->rng = p->rng * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t x = p->rng >> 17;
        if (x % 7 == 0) {
            char junk[8];
            for (size_t j = 0; j < sizeof(junk); j++) {
                junk[j] = (char)(x >> (j * 5));
            }
            pconn_write(c, junk, 1 + x % sizeof(junk));
        } else {
            const char *piece = pieces[x % (sizeof(pieces) / sizeof(pieces[0]))];
            pconn_write(c, piece, strlen(piece));
        }
        if (c->dead) {
            return;
        }
    }
}

static void pconn_command(struct pconn *c)
{
    struct kv_slice *argv = c->rd.parser.argv;
    int argc = c->rd.parser.argc;
    if (argc >= 1 && arg_is(&argv[0], "KVD.PEER")) {
        pconn_peer_verb(c);
        return;
    }
    c->peer->commands++;
    if (!auth_listener_authenticated(&c->auth)) {
        c->peer->user_before_auth++;
        pconn_write(c, "-NOAUTH peer not authenticated\r\n", 32);
        pconn_close(c);
        return;
    }
    switch (c->mode) {
    case PEER_SILENT:
    case PEER_NO_READ:
        return;
    case PEER_HALF:
        pconn_write(c, "$10\r\nhel", 8);
        c->mode = PEER_SILENT;
        return;
    case PEER_GARBAGE:
        pconn_write(c, "hello, this is not RESP\r\n", 25);
        return;
    case PEER_HUGE_BULK:
        pconn_write(c, "$999999999999\r\nabc", 18);
        return;
    case PEER_HUGE_ARRAY:
        pconn_write(c, "*2000000000\r\n:1\r\n", 17);
        return;
    case PEER_STREAM: {
        size_t n = 2u << 20;
        char *big = malloc(n);
        memset(big, 'x', n);
        pconn_bulk(c, big, n);
        free(big);
        return;
    }
    case PEER_DOUBLE:
        pconn_write(c, "+OK\r\n+OK\r\n", 10);
        return;
    case PEER_RANDOM:
        pconn_random_reply(c);
        return;
    default:
        break;
    }
    if (argc >= 1 && arg_is(&argv[0], "PING")) {
        pconn_write(c, "+PONG\r\n", 7);
    } else if (argc == 2 && arg_is(&argv[0], "ECHO")) {
        pconn_bulk(c, argv[1].p, argv[1].len);
    } else if (argc == 3 && arg_is(&argv[0], "DELAY") && c->dq_n < 64) {
        long ms = strtol(argv[1].p, NULL, 10);
        uint64_t at = mono_us() + (uint64_t)ms * 1000u;
        if (at < c->dq_last_us) {
            at = c->dq_last_us; /* replies stay in order */
        }
        c->dq_last_us = at;
        struct delayed *d = &c->dq[(c->dq_head + c->dq_n) % 64];
        d->at_us = at;
        d->bytes = malloc(argv[2].len + 1);
        memcpy(d->bytes, argv[2].p, argv[2].len);
        d->len = argv[2].len;
        c->dq_n++;
        pconn_on_delay(-1, 0, c);
    } else {
        pconn_write(c, "+OK\r\n", 5);
    }
}

/* One request (fp_in_read's callback): handled; a NO_READ peer stops consuming
 * once authenticated. */
static int pconn_request(void *arg)
{
    struct pconn *c = arg;
    pconn_command(c);
    if (c->dead) {
        return FP_CLOSED;
    }
    if (c->mode == PEER_NO_READ && auth_listener_authenticated(&c->auth)) {
        return FP_STOP; /* stop consuming too */
    }
    return FP_GO_ON;
}

static void pconn_on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct pconn *c = arg;
    if (fp_in_read(&c->rd, fd, pconn_request, c) < 0) {
        pconn_close(c);
    }
}

static void peer_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct peer *p = arg;
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd = accept(lfd, (struct sockaddr *)&sa, &sl);
    if (fd < 0) {
        return;
    }
    if (p->nconns >= 16) {
        close(fd);
        return;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    struct sockaddr_in pa;
    socklen_t pl = sizeof(pa);
    getpeername(fd, (struct sockaddr *)&pa, &pl);
    inet_ntop(AF_INET, &pa.sin_addr, p->last_peer_ip, sizeof(p->last_peer_ip));
    struct pconn *c = calloc(1, sizeof(*c));
    c->peer = p;
    c->fd = fd;
    c->mode = p->mode;
    fp_in_init(&c->rd);
    auth_listener_init(&c->auth, p->secret, strlen(p->secret), "fake-peer", 9);
    c->rev = event_new(p->base, fd, EV_READ | EV_PERSIST, pconn_on_readable, c);
    c->wev = event_new(p->base, fd, EV_WRITE, pconn_on_writable, c);
    c->delay_ev = evtimer_new(p->base, pconn_on_delay, c);
    event_add(c->rev, NULL);
    p->conns[p->nconns++] = c;
    p->accepted++;
}

/* Listens on 127.0.0.1 (port 0: any free port; else that port, for restarts). */
static int peer_start(struct peer *p, struct event_base *base, int port, const char *sec,
                      int mode, int accept_conns)
{
    memset(p, 0, sizeof(*p));
    p->base = base;
    p->secret = sec;
    p->mode = mode;
    p->lfd = fp_listen(port, &p->port);
    if (p->lfd < 0) {
        return -1;
    }
    if (accept_conns) {
        p->lev = event_new(base, p->lfd, EV_READ | EV_PERSIST, peer_on_accept, p);
        event_add(p->lev, NULL);
    }
    return 0;
}

static void peer_stop(struct peer *p)
{
    for (int i = 0; i < p->nconns; i++) {
        pconn_close(p->conns[i]);
        free(p->conns[i]);
    }
    p->nconns = 0;
    if (p->lev) {
        event_free(p->lev);
        p->lev = NULL;
    }
    close(p->lfd);
}

/* ------------------------------------------------------------------------------
 * Loop helpers and a callback recorder
 * ------------------------------------------------------------------------------ */

/* Runs the loop until cond(arg) is true or ms pass; returns cond's last value. */
static int run_until(struct event_base *base, int (*cond)(void *), void *arg, int ms)
{
    uint64_t end = mono_us() + (uint64_t)ms * 1000u;
    while (!(cond && cond(arg)) && mono_us() < end) {
        struct timeval tv = {0, 5000};
        event_base_loopexit(base, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
    return cond ? cond(arg) : 0;
}

static void run_for(struct event_base *base, int ms)
{
    run_until(base, NULL, NULL, ms);
}

struct rec {
    int calls;
    int status;
    int type;
    char str[64];
    int order;            /* completion order across recs */
};
static int rec_seq;

static void rec_done(void *ctx, int status, const redisReply *reply)
{
    struct rec *r = ctx;
    r->calls++;
    r->status = status;
    r->order = ++rec_seq;
    r->type = reply ? reply->type : 0;
    if (reply && reply->str) {
        snprintf(r->str, sizeof(r->str), "%.*s", (int)reply->len, reply->str);
    }
}

static int rec_called(void *arg)
{
    return ((struct rec *)arg)->calls > 0;
}

struct state_log {
    int n;
    int states[32];
    char last_why[160];
    struct link *l;
};

static void log_state(void *ctx, enum link_state st, const char *why)
{
    struct state_log *s = ctx;
    if (s->n < 32) {
        s->states[s->n++] = (int)st;
    }
    snprintf(s->last_why, sizeof(s->last_why), "%s", why);
}

static int link_up(void *arg)
{
    struct link_stats st;
    link_get_stats(arg, &st);
    return st.state == LINK_STATE_UP;
}
static int link_auth_failed(void *arg)
{
    struct link_stats st;
    link_get_stats(arg, &st);
    return st.state == LINK_STATE_AUTH_FAILED;
}
static int link_reconnected(void *arg)
{
    struct link_stats st;
    link_get_stats(arg, &st);
    return st.state == LINK_STATE_UP && st.connects >= 2;
}
static int link_not_up(void *arg)
{
    struct link_stats st;
    link_get_stats(arg, &st);
    return st.state != LINK_STATE_UP;
}

static void base_config(struct link_config *cfg, int port, struct state_log *log);

/* Most tests' start: a fake peer on base (secret sec, mode, accepting connections or
 * not) and a link config to it logging into log. 0, or -1 when the peer could not
 * listen. */
static int peer_and_config(struct event_base *base, struct peer *p, const char *sec, int mode,
                           int accept_conns, struct link_config *cfg, struct state_log *log)
{
    if (peer_start(p, base, 0, sec, mode, accept_conns) != 0) {
        return -1;
    }
    base_config(cfg, p->port, log);
    return 0;
}

/* Most tests' end: the link, the peer and the base gone. */
static void teardown(struct link **l, struct peer *p, struct event_base *base)
{
    link_destroy(l);
    peer_stop(p);
    event_base_free(base);
}

static void base_config(struct link_config *cfg, int port, struct state_log *log)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->host = "127.0.0.1";
    cfg->port = port;
    cfg->secret = secret;
    cfg->secret_len = strlen(secret);
    cfg->node_id = "node-under-test";
    cfg->node_id_len = 15;
    cfg->connect_timeout_ms = 1000;
    cfg->request_timeout_ms = 1000;
    cfg->backoff_min_ms = 20;
    cfg->backoff_max_ms = 100;
    cfg->on_state = log_state;
    cfg->state_ctx = log;
}

static int send1(struct link *l, const char *a0, const char *a1, struct rec *r)
{
    const char *argv[2] = {a0, a1};
    size_t lens[2] = {strlen(a0), a1 ? strlen(a1) : 0};
    return link_send(l, a1 ? 2 : 1, argv, lens, rec_done, r);
}

static int send_delay(struct link *l, int ms, const char *payload, struct rec *r)
{
    char num[16];
    snprintf(num, sizeof(num), "%d", ms);
    const char *argv[3] = {"DELAY", num, payload};
    size_t lens[3] = {5, strlen(num), strlen(payload)};
    return link_send(l, 3, argv, lens, rec_done, r);
}

/* ------------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------------ */

/* Requests issued before the handshake wait for it; the peer sees HELLO and AUTH
 * first; replies come back in order; state goes connecting -> up. */
static void test_link_handshake_then_requests_flow(void)
{
    struct peer p;
    struct state_log log = {0};
    struct link_config cfg;
    struct event_base *base = event_base_new();
    CHECK(peer_and_config(base, &p, secret, PEER_ECHO, 1, &cfg, &log) == 0);
    struct link *l = link_create(base, &cfg);
    CHECK(l != NULL);
    struct rec early = {0}, ping = {0};
    CHECK_EQ_INT(send1(l, "ECHO", "early", &early), LINK_OK);
    CHECK_EQ_INT(early.calls, 0); /* never called from inside link_send */
    CHECK(run_until(base, link_up, l, 2000));
    CHECK(run_until(base, rec_called, &early, 2000));
    CHECK_EQ_INT(early.status, LINK_OK);
    CHECK_EQ_STR(early.str, "early");
    CHECK_EQ_INT(p.user_before_auth, 0);
    CHECK_EQ_INT(p.peer_verbs, 2);
    CHECK(auth_listener_authenticated(&p.conns[0]->auth));
    CHECK_EQ_MEM(p.conns[0]->auth.peer_id, p.conns[0]->auth.peer_id_len,
                 "node-under-test", 15);
    CHECK_EQ_INT(send1(l, "PING", NULL, &ping), LINK_OK);
    CHECK(run_until(base, rec_called, &ping, 2000));
    CHECK_EQ_INT(ping.type, REDIS_REPLY_STATUS);
    CHECK_EQ_STR(ping.str, "PONG");
    struct link_stats st;
    link_get_stats(l, &st);
    CHECK_EQ_STR(st.peer_id, "fake-peer");
    CHECK_EQ_INT(st.connects, 1);
    CHECK_EQ_INT(st.ok, 2);
    CHECK(log.n >= 1 && log.states[log.n - 1] == LINK_STATE_UP);
    CHECK(link_rtt_percentile(l, 50) > 0);
    uint32_t rtt[8];
    CHECK_EQ_INT(link_rtt_samples(l, rtt, 8), 2);
    link_destroy(&l);
    CHECK(l == NULL);
    peer_stop(&p);
    event_base_free(base);
}

/* A peer with another secret: the link ends AUTH_FAILED, reports why, fails the
 * waiting request with LINK_DOWN, and the peer never received it. */
static void test_link_wrong_secret_closed_and_reported(void)
{
    struct peer p;
    struct state_log log = {0};
    struct link_config cfg;
    struct event_base *base = event_base_new();
    CHECK(peer_and_config(base, &p, "another secret", PEER_ECHO, 1, &cfg, &log) == 0);
    cfg.backoff_min_ms = 500;
    cfg.backoff_max_ms = 1000;
    struct link *l = link_create(base, &cfg);
    struct rec r = {0};
    CHECK_EQ_INT(send1(l, "ECHO", "x", &r), LINK_OK);
    CHECK(run_until(base, link_auth_failed, l, 2000));
    CHECK(run_until(base, rec_called, &r, 1000));
    CHECK_EQ_INT(r.status, LINK_DOWN);
    CHECK_EQ_INT(p.commands, 0);
    struct link_stats st;
    link_get_stats(l, &st);
    CHECK_EQ_INT(st.auth_failures, 1);
    CHECK_EQ_INT(st.connects, 0);
    CHECK(strstr(st.last_error, "AUTH") != NULL);
    CHECK(strstr(log.last_why, "authentication failed") != NULL);
    /* while auth-failed, sends fail fast without a callback */
    struct rec r2 = {0};
    CHECK_EQ_INT(send1(l, "PING", NULL, &r2), LINK_DOWN);
    run_for(base, 20);
    CHECK_EQ_INT(r2.calls, 0);
    teardown(&l, &p, base);
}

/* The link, not the peer, is the impostor check too: a peer that answers HELLO but
 * cannot prove the secret back (it accepts any AUTH) is refused by the dialer. */
static void test_link_listener_without_secret_refused_by_dialer(void)
{
    struct event_base *base = event_base_new();
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 8) == 0);
    socklen_t sl = sizeof(sa);
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    struct state_log log = {0};
    struct link_config cfg;
    base_config(&cfg, ntohs(sa.sin_port), &log);
    struct link *l = link_create(base, &cfg);
    run_for(base, 50);
    int fd = accept(lfd, NULL, NULL);
    CHECK(fd >= 0);
    /* answer HELLO with an id and a nonce, AUTH with 64 hex digits of nonsense */
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    CHECK(n > 0);
    const char hello[] = "*2\r\n$3\r\nimp\r\n$64\r\n"
                         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n";
    CHECK(write(fd, hello, sizeof(hello) - 1) == (ssize_t)(sizeof(hello) - 1));
    run_for(base, 50);
    n = read(fd, buf, sizeof(buf));
    CHECK(n > 0 && memmem(buf, (size_t)n, "AUTH", 4) != NULL);
    const char proof[] =
        "$64\r\nffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\r\n";
    CHECK(write(fd, proof, sizeof(proof) - 1) == (ssize_t)(sizeof(proof) - 1));
    CHECK(run_until(base, link_auth_failed, l, 2000));
    struct link_stats st;
    link_get_stats(l, &st);
    CHECK(strstr(st.last_error, "another secret") != NULL);
    link_destroy(&l);
    close(fd);
    close(lfd);
    event_base_free(base);
}

/* A request that times out completes once with LINK_TIMEOUT; its reply, arriving
 * later, is counted and dropped; the connection (still answering) stays up and in
 * step. */
static void test_link_request_timeout_fires_once_late_reply_ignored(void)
{
    struct peer p;
    struct state_log log = {0};
    struct link_config cfg;
    struct event_base *base = event_base_new();
    CHECK(peer_and_config(base, &p, secret, PEER_ECHO, 1, &cfg, &log) == 0);
    cfg.request_timeout_ms = 300;
    struct link *l = link_create(base, &cfg);
    CHECK(run_until(base, link_up, l, 2000));
    struct rec a = {0}, b = {0}, c = {0};
    CHECK_EQ_INT(send_delay(l, 100, "a", &a), LINK_OK);
    run_for(base, 60);
    /* b is answered ~500 ms after it was sent, after its 300 ms timeout; a, answered
     * during b's lifetime, shows the connection is alive, so it stays open */
    CHECK_EQ_INT(send_delay(l, 500, "b", &b), LINK_OK);
    CHECK(run_until(base, rec_called, &a, 1000));
    CHECK_EQ_INT(a.status, LINK_OK);
    CHECK(run_until(base, rec_called, &b, 1000));
    CHECK_EQ_INT(b.status, LINK_TIMEOUT);
    CHECK_EQ_INT(b.calls, 1);
    run_for(base, 600); /* the late reply arrives meanwhile */
    CHECK_EQ_INT(b.calls, 1);
    struct link_stats st;
    link_get_stats(l, &st);
    CHECK_EQ_INT(st.late_replies, 1);
    CHECK_EQ_INT(st.timeouts, 1);
    CHECK_EQ_INT(st.connects, 1);
    CHECK_EQ_INT(st.state, LINK_STATE_UP);
    CHECK_EQ_INT(send1(l, "ECHO", "after", &c), LINK_OK);
    CHECK(run_until(base, rec_called, &c, 1000));
    CHECK_EQ_INT(c.status, LINK_OK);
    CHECK_EQ_STR(c.str, "after");
    teardown(&l, &p, base);
}

/* A peer that accepts the connection (backlog) but never answers, like a SIGSTOPped
 * node: the connect timeout (which covers the handshake) fires, the link is DOWN and
 * the waiting request fails with LINK_DOWN. */
static void test_link_unanswered_handshake_hits_connect_timeout(void)
{
    struct peer p;
    struct state_log log = {0};
    struct link_config cfg;
    /* a peer that never accepts */
    struct event_base *base = event_base_new();
    CHECK(peer_and_config(base, &p, secret, PEER_ECHO, 0, &cfg, &log) == 0);
    cfg.connect_timeout_ms = 150;
    cfg.request_timeout_ms = 5000;
    cfg.backoff_min_ms = 2000;
    cfg.backoff_max_ms = 2000;
    struct link *l = link_create(base, &cfg);
    struct rec r = {0};
    CHECK_EQ_INT(send1(l, "PING", NULL, &r), LINK_OK);
    uint64_t t0 = mono_us();
    CHECK(run_until(base, rec_called, &r, 2000));
    uint64_t took = mono_us() - t0;
    CHECK_EQ_INT(r.status, LINK_DOWN);
    CHECK(took >= 100000 && took < 1000000);
    struct link_stats st;
    link_get_stats(l, &st);
    CHECK_EQ_INT(st.state, LINK_STATE_DOWN);
    CHECK(strstr(st.last_error, "connect timeout") != NULL);
    teardown(&l, &p, base);
}

struct many {
    int calls, ok, timeout, down, other;
};
static void many_done(void *ctx, int status, const redisReply *reply)
{
    struct many *m = ctx;
    m->calls++;
    if (status == LINK_OK) {
        m->ok++;
    } else if (status == LINK_TIMEOUT) {
        m->timeout++;
    } else if (status == LINK_DOWN) {
        m->down++;
    } else {
        m->other++;
    }
}
struct many_wait {
    struct many *m;
    int want;
};
static int many_done_all(void *arg)
{
    struct many_wait *w = arg;
    return w->m->calls >= w->want;
}

static long rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* A peer that authenticates and then never reads: the link keeps at most
 * max_inflight_bytes on the socket and max_queued_bytes queued, refuses the rest at
 * once, and every accepted request times out (or fails when the stalled connection is
 * closed), each exactly once. */
static void test_link_peer_never_reads_requests_time_out_memory_bounded(void)
{
    struct peer p;
    struct state_log log = {0};
    struct link_config cfg;
    struct event_base *base = event_base_new();
    CHECK(peer_and_config(base, &p, secret, PEER_NO_READ, 1, &cfg, &log) == 0);
    cfg.request_timeout_ms = 300;
    cfg.max_inflight = 64;
    cfg.max_inflight_bytes = 256 * 1024;
    cfg.max_queued_bytes = 1024 * 1024;
    cfg.backoff_min_ms = 5000;
    cfg.backoff_max_ms = 5000;
    struct link *l = link_create(base, &cfg);
    CHECK(run_until(base, link_up, l, 2000));
    static char big[16384];
    memset(big, 'v', sizeof(big));
    const char *argv[3] = {"SET", "k", big};
    size_t lens[3] = {3, 1, sizeof(big)};
    struct many m = {0};
    int accepted = 0, refused = 0;
    /* several loop turns so the socket buffers fill first */
    for (int turn = 0; turn < 40 && refused == 0; turn++) {
        for (int i = 0; i < 64; i++) {
            int rc = link_send(l, 3, argv, lens, many_done, &m);
            if (rc == LINK_OK) {
                accepted++;
            } else {
                CHECK_EQ_INT(rc, LINK_REFUSED);
                refused++;
            }
        }
        run_for(base, 5);
    }
    CHECK(refused > 0);
    struct link_stats st;
    link_get_stats(l, &st);
    CHECK(st.queued_bytes <= cfg.max_queued_bytes);
    CHECK(st.inflight <= cfg.max_inflight);
    CHECK(st.inflight_bytes <= cfg.max_inflight_bytes + sizeof(big) + 64);
    CHECK(st.out_buffered <= st.inflight_bytes);
    /* what the link can hold: the socket's share of in-flight plus the queue */
    CHECK((size_t)accepted * sizeof(big) <= cfg.max_queued_bytes + cfg.max_inflight_bytes +
                                                 (size_t)(64 * sizeof(big)) + (8u << 20));
    struct many_wait w = {&m, accepted};
    CHECK(run_until(base, many_done_all, &w, 3000));
    CHECK_EQ_INT(m.calls, accepted);
    CHECK_EQ_INT(m.ok, 0);
    CHECK_EQ_INT(m.other, 0);
    CHECK(m.timeout > 0);
    run_for(base, 50);
    CHECK_EQ_INT(m.calls, accepted); /* nothing completes twice */
    teardown(&l, &p, base);
}

/* A peer that answers half a bulk and stalls: the request times out, the stalled
 * connection is closed, the link redials and serves again. */
static void test_link_half_frame_times_out_then_recovers(void)
{
    struct peer p;
    struct state_log log = {0};
    struct link_config cfg;
    struct event_base *base = event_base_new();
    CHECK(peer_and_config(base, &p, secret, PEER_HALF, 1, &cfg, &log) == 0);
    cfg.request_timeout_ms = 150;
    struct link *l = link_create(base, &cfg);
    CHECK(run_until(base, link_up, l, 2000));
    p.mode = PEER_ECHO; /* the next connection behaves */
    struct rec r = {0}, r2 = {0};
    CHECK_EQ_INT(send1(l, "ECHO", "half", &r), LINK_OK);
    CHECK(run_until(base, rec_called, &r, 1000));
    CHECK_EQ_INT(r.status, LINK_TIMEOUT);
    CHECK(run_until(base, link_reconnected, l, 2000));
    CHECK_EQ_INT(send1(l, "ECHO", "whole", &r2), LINK_OK);
    CHECK(run_until(base, rec_called, &r2, 1000));
    CHECK_EQ_INT(r2.status, LINK_OK);
    CHECK_EQ_STR(r2.str, "whole");
    CHECK_EQ_INT(r.calls, 1);
    struct link_stats st;
    link_get_stats(l, &st);
    CHECK_EQ_INT(st.disconnects, 1);
    teardown(&l, &p, base);
}

/* One bad-reply scenario: the peer in `mode` answers one request; the link must close
 * with an error well before the request timeout, end the request with want_status, say
 * why, and allocate nothing near what was announced. */
static void bad_reply_case(int mode, const char *why_part, long long max_bulk,
                           size_t max_reply_bytes, int want_status)
{
    struct peer p;
    struct state_log log = {0};
    struct link_config cfg;
    struct event_base *base = event_base_new();
    CHECK(peer_and_config(base, &p, secret, mode, 1, &cfg, &log) == 0);
    cfg.request_timeout_ms = 3000;
    cfg.backoff_min_ms = 5000;
    cfg.backoff_max_ms = 5000;
    cfg.max_bulk_len = max_bulk;
    cfg.max_reply_bytes = max_reply_bytes;
    cfg.max_elements = 1000;
    struct link *l = link_create(base, &cfg);
    CHECK(run_until(base, link_up, l, 2000));
    long rss0 = rss_kb();
    struct rec r = {0};
    uint64_t t0 = mono_us();
    CHECK_EQ_INT(send1(l, "ECHO", "x", &r), LINK_OK);
    CHECK(run_until(base, rec_called, &r, 2500));
    CHECK(mono_us() - t0 < 1500000);
    CHECK_EQ_INT(r.status, want_status);
    CHECK(run_until(base, link_not_up, l, 500));
    struct link_stats st;
    link_get_stats(l, &st);
    if (strstr(st.last_error, why_part) == NULL) {
        fprintf(stderr, "  last_error: %s\n", st.last_error);
    }
    CHECK(strstr(st.last_error, why_part) != NULL);
    CHECK(rss_kb() - rss0 < 64 * 1024);
    CHECK_EQ_INT(r.calls, 1);
    teardown(&l, &p, base);
}

static void test_link_garbage_reply_closes_link(void)
{
    bad_reply_case(PEER_GARBAGE, "Protocol error", 0, 0, LINK_DOWN);
}

static void test_link_huge_bulk_header_closes_without_allocating(void)
{
    bad_reply_case(PEER_HUGE_BULK, "max_bulk_len", 1 << 20, 0, LINK_DOWN);
}

static void test_link_huge_array_header_closes_without_allocating(void)
{
    bad_reply_case(PEER_HUGE_ARRAY, "max_elements", 1 << 20, 0, LINK_DOWN);
}

static void test_link_reply_over_max_reply_bytes_closes(void)
{
    bad_reply_case(PEER_STREAM, "max_reply_bytes", 4 << 20, 256 * 1024, LINK_DOWN);
}

/* The first +OK answers the request; the second, unasked, would make hiredis 0.14
 * assert: the link closes instead. */
static void test_link_unsolicited_reply_closes_instead_of_asserting(void)
{
    bad_reply_case(PEER_DOUBLE, "nobody asked", 0, 0, LINK_OK);
}

/* The peer goes away: requests in flight fail with LINK_DOWN, sends while down fail
 * fast, and when the peer listens again on the same port the link comes back. */
static void test_link_peer_restart_reconnects(void)
{
    struct event_base *base = event_base_new();
    struct peer p;
    CHECK(peer_start(&p, base, 0, secret, PEER_ECHO, 1) == 0);
    int port = p.port;
    struct state_log log = {0};
    struct link_config cfg;
    base_config(&cfg, port, &log);
    cfg.backoff_min_ms = 50;
    cfg.backoff_max_ms = 200;
    struct link *l = link_create(base, &cfg);
    CHECK(run_until(base, link_up, l, 2000));
    struct rec r = {0};
    CHECK_EQ_INT(send_delay(l, 500, "never", &r), LINK_OK);
    run_for(base, 20);
    peer_stop(&p);
    CHECK(run_until(base, rec_called, &r, 1000));
    CHECK_EQ_INT(r.status, LINK_DOWN);
    CHECK(run_until(base, link_not_up, l, 500));
    struct rec r2 = {0};
    struct link_stats st;
    link_get_stats(l, &st);
    if (st.state == LINK_STATE_DOWN) {
        CHECK_EQ_INT(send1(l, "PING", NULL, &r2), LINK_DOWN);
    }
    run_for(base, 300); /* a few failed redials */
    CHECK(peer_start(&p, base, port, secret, PEER_ECHO, 1) == 0);
    CHECK(run_until(base, link_reconnected, l, 3000));
    struct rec r3 = {0};
    CHECK_EQ_INT(send1(l, "ECHO", "back", &r3), LINK_OK);
    CHECK(run_until(base, rec_called, &r3, 1000));
    CHECK_EQ_INT(r3.status, LINK_OK);
    CHECK_EQ_STR(r3.str, "back");
    teardown(&l, &p, base);
}

/* The link binds its source address: a link from 127.0.0.2 reaches a listener on
 * 127.0.0.1 as 127.0.0.2 (a link without one arrives as 127.0.0.1). */
static void test_link_binds_source_address(void)
{
    struct peer p;
    struct state_log log = {0};
    struct link_config cfg;
    struct event_base *base = event_base_new();
    CHECK(peer_and_config(base, &p, secret, PEER_ECHO, 1, &cfg, &log) == 0);
    struct link *plain = link_create(base, &cfg);
    CHECK(run_until(base, link_up, plain, 2000));
    CHECK_EQ_STR(p.last_peer_ip, "127.0.0.1");
    cfg.source_addr = "127.0.0.2";
    struct link *bound = link_create(base, &cfg);
    CHECK(run_until(base, link_up, bound, 2000));
    CHECK_EQ_INT(p.accepted, 2);
    CHECK_EQ_STR(p.last_peer_ip, "127.0.0.2");
    link_destroy(&plain);
    link_destroy(&bound);
    peer_stop(&p);
    event_base_free(base);
}

/* Requests issued in one loop turn leave in one write. */
static void test_link_sends_of_one_turn_leave_in_one_write(void)
{
    struct peer p;
    struct state_log log = {0};
    struct link_config cfg;
    struct event_base *base = event_base_new();
    CHECK(peer_and_config(base, &p, secret, PEER_ECHO, 1, &cfg, &log) == 0);
    struct link *l = link_create(base, &cfg);
    CHECK(run_until(base, link_up, l, 2000));
    run_for(base, 20);
    struct link_stats before, after;
    link_get_stats(l, &before);
    struct many m = {0};
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    for (int i = 0; i < 100; i++) {
        CHECK_EQ_INT(link_send(l, 1, argv, lens, many_done, &m), LINK_OK);
    }
    link_get_stats(l, &after);
    CHECK_EQ_INT(after.write_calls, before.write_calls); /* nothing flushed yet */
    CHECK_EQ_INT(after.inflight, 100);
    struct many_wait w = {&m, 100};
    CHECK(run_until(base, many_done_all, &w, 2000));
    CHECK_EQ_INT(m.ok, 100);
    link_get_stats(l, &after);
    CHECK_EQ_INT(after.write_calls - before.write_calls, 1);
    teardown(&l, &p, base);
}

/* Queue limits while connecting, verbs a link cannot carry, and destroy with work
 * pending: each accepted request gets exactly one LINK_DOWN. */
static void test_link_queue_bound_refusals_and_destroy_completes_pending(void)
{
    struct peer p;
    struct state_log log = {0};
    struct link_config cfg;
    struct event_base *base = event_base_new();
    CHECK(peer_and_config(base, &p, secret, PEER_SILENT, 1, &cfg, &log) == 0);
    cfg.max_queued_bytes = 4096;
    struct link *l = link_create(base, &cfg);
    struct many m = {0};
    static char val[1000];
    memset(val, 'q', sizeof(val));
    const char *argv[2] = {"ECHO", val};
    size_t lens[2] = {4, sizeof(val)};
    int accepted = 0, refused = 0;
    for (int i = 0; i < 10; i++) {
        int rc = link_send(l, 2, argv, lens, many_done, &m);
        accepted += rc == LINK_OK;
        refused += rc == LINK_REFUSED;
    }
    CHECK(accepted >= 2 && accepted <= 4);
    CHECK_EQ_INT(accepted + refused, 10);
    const char *sub[2] = {"subscribe", "ch"};
    size_t sublen[2] = {9, 2};
    CHECK_EQ_INT(link_send(l, 2, sub, sublen, many_done, &m), LINK_REFUSED);
    CHECK_EQ_INT(link_send(l, 0, sub, sublen, many_done, &m), LINK_REFUSED);
    CHECK(run_until(base, link_up, l, 2000));
    run_for(base, 20); /* queued requests now in flight, never answered */
    struct link_stats st;
    link_get_stats(l, &st);
    CHECK_EQ_INT(st.inflight, accepted);
    CHECK_EQ_INT(m.calls, 0);
    link_destroy(&l);
    CHECK_EQ_INT(m.calls, accepted);
    CHECK_EQ_INT(m.down, accepted);
    peer_stop(&p);
    event_base_free(base);
}

/* Seeded random replies over many connections: whatever the bytes, the node never
 * crashes, each accepted request completes exactly once, and the link keeps redialling
 * and ends usable once the peer behaves. */
static void test_link_random_replies_never_crash(void)
{
    struct event_base *base = event_base_new();
    struct peer p;
    CHECK(peer_start(&p, base, 0, secret, PEER_RANDOM, 1) == 0);
    p.rng = 20261203;
    struct state_log log = {0};
    struct link_config cfg;
    base_config(&cfg, p.port, &log);
    cfg.request_timeout_ms = 100;
    cfg.backoff_min_ms = 1;
    cfg.backoff_max_ms = 5;
    cfg.max_bulk_len = 1 << 20;
    cfg.max_elements = 1000;
    struct link *l = link_create(base, &cfg);
    struct many m = {0};
    int accepted = 0;
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    uint64_t end = mono_us() + 1500000;
    for (int round = 0; round < 2000 && mono_us() < end; round++) {
        for (int i = 0; i < 3; i++) {
            accepted += link_send(l, 1, argv, lens, many_done, &m) == LINK_OK;
        }
        run_for(base, 2);
        if (p.nconns >= 12) {
            break; /* the fake peer keeps 16 connections at most */
        }
    }
    CHECK(accepted > 0);
    CHECK(p.accepted >= 3);
    fprintf(stderr, "random replies: %d connections, %d requests so far: %d ok, %d timeout, "
            "%d down\n", p.accepted, accepted, m.ok, m.timeout, m.down);
    p.mode = PEER_ECHO;
    struct many_wait w = {&m, accepted};
    CHECK(run_until(base, many_done_all, &w, 3000));
    CHECK_EQ_INT(m.calls, accepted);
    CHECK_EQ_INT(m.other, 0);
    link_destroy(&l);
    CHECK_EQ_INT(m.calls, accepted);
    peer_stop(&p);
    event_base_free(base);
}

/* Destroying the link from inside its own callback is deferred safely. */
struct self_destroy {
    struct link *l;
    int calls;
};
static void destroy_in_done(void *ctx, int status, const redisReply *reply)
{
    struct self_destroy *s = ctx;
    s->calls++;
    link_destroy(&s->l);
}
static int self_destroyed(void *arg)
{
    return ((struct self_destroy *)arg)->l == NULL;
}

static void test_link_destroy_inside_callback_is_safe(void)
{
    struct peer p;
    struct state_log log = {0};
    struct link_config cfg;
    struct event_base *base = event_base_new();
    CHECK(peer_and_config(base, &p, secret, PEER_ECHO, 1, &cfg, &log) == 0);
    struct self_destroy s = {0};
    s.l = link_create(base, &cfg);
    CHECK(run_until(base, link_up, s.l, 2000));
    struct many m = {0};
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    CHECK_EQ_INT(link_send(s.l, 1, argv, lens, destroy_in_done, &s), LINK_OK);
    CHECK_EQ_INT(link_send(s.l, 1, argv, lens, many_done, &m), LINK_OK);
    CHECK(run_until(base, self_destroyed, &s, 2000));
    run_for(base, 50); /* the deferred free runs */
    CHECK_EQ_INT(s.calls, 1);
    CHECK_EQ_INT(m.calls, 1); /* answered in the same read, or failed at the free */
    peer_stop(&p);
    event_base_free(base);
}

/* Redial delays double from the minimum to the cap, each jittered into [d/2, d]. */
static void test_link_backoff_doubles_to_cap_with_jitter(void)
{
    for (int f = 1; f <= 40; f++) {
        uint64_t cap = 100;
        for (int i = 1; i < f && cap < 5000; i++) {
            cap *= 2;
        }
        if (cap > 5000) {
            cap = 5000;
        }
        uint32_t lo = UINT32_MAX, hi = 0;
        uint64_t x = 0x9e3779b97f4a7c15ull;
        for (int k = 0; k < 2000; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t d = link_backoff_ms(f, 100, 5000, x >> 11);
            CHECK(d >= cap / 2 && d <= cap);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        CHECK(hi > lo); /* jittered, not one fixed value */
    }
    CHECK(link_backoff_ms(1, 100, 5000, 0) == 50);
    CHECK(link_backoff_ms(1000, 100, 5000, UINT64_MAX) <= 5000);
    CHECK(link_backoff_ms(3, 0, 0, 12345) <= 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    TEST_RUN(test_link_backoff_doubles_to_cap_with_jitter);
    TEST_RUN(test_link_handshake_then_requests_flow);
    TEST_RUN(test_link_wrong_secret_closed_and_reported);
    TEST_RUN(test_link_listener_without_secret_refused_by_dialer);
    TEST_RUN(test_link_request_timeout_fires_once_late_reply_ignored);
    TEST_RUN(test_link_unanswered_handshake_hits_connect_timeout);
    TEST_RUN(test_link_peer_never_reads_requests_time_out_memory_bounded);
    TEST_RUN(test_link_half_frame_times_out_then_recovers);
    TEST_RUN(test_link_garbage_reply_closes_link);
    TEST_RUN(test_link_huge_bulk_header_closes_without_allocating);
    TEST_RUN(test_link_huge_array_header_closes_without_allocating);
    TEST_RUN(test_link_reply_over_max_reply_bytes_closes);
    TEST_RUN(test_link_unsolicited_reply_closes_instead_of_asserting);
    TEST_RUN(test_link_peer_restart_reconnects);
    TEST_RUN(test_link_binds_source_address);
    TEST_RUN(test_link_sends_of_one_turn_leave_in_one_write);
    TEST_RUN(test_link_queue_bound_refusals_and_destroy_completes_pending);
    TEST_RUN(test_link_destroy_inside_callback_is_safe);
    TEST_RUN(test_link_random_replies_never_crash);
    TEST_MAIN_END();
}
