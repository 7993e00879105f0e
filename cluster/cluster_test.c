/* cluster/cluster_test.c: the cluster runtime (cluster.c) with real links on one
 * event_base: up to four runtimes in this process, each behind a small RESP
 * listener on 127.0.0.1 that feeds KVD.PEER commands to cluster_peer_command (as
 * the server does), each on a fake store (last-write-wins by kv_record_cmp).
 * Every wait runs the loop until a condition holds or a deadline passes. */
#include "cluster/cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cluster/fake_peer_test.h"
#include "cluster/auth.h"
#include "cluster/gossip.h"
#include "cluster/ring.h"
#include "proto/resp.h"
#include "proto/version.h"
#include "tests/test.h"

#define SECRET "the-secret-of-this-test-cluster"
#define MAXN 4
#define MAXC 32
#define MAXE 64

/* ---- fake store ---- */

struct fentry {
    unsigned db;
    char key[64];
    size_t klen;
    struct msg_record rec;
    char val[64];
};

struct fstore {
    struct fentry e[MAXE];
    int n;
    int applies;
    uint64_t hlc_seen;
};

static struct fentry *fs_find(struct fstore *s, unsigned db, const char *key, size_t klen) {
    for (int i = 0; i < s->n; i++) {
        if (s->e[i].db == db && s->e[i].klen == klen && memcmp(s->e[i].key, key, klen) == 0) {
            return &s->e[i];
        }
    }
    return NULL;
}

static int fs_read(void *ctx, unsigned db, const char *key, size_t klen, struct msg_record *out) {
    struct fentry *e = fs_find(ctx, db, key, klen);
    if (e == NULL) {
        return 0;
    }
    *out = e->rec;
    return 1;
}

static int fs_apply(void *ctx, unsigned db, const char *key, size_t klen,
                    const struct msg_record *rec) {
    struct fstore *s = ctx;
    struct fentry *e = fs_find(s, db, key, klen);
    if (e && kv_record_cmp(rec->v, rec->deleted, e->rec.v, e->rec.deleted) <= 0) {
        return 0;
    }
    if (klen > sizeof e->key || rec->vlen > sizeof e->val) {
        return -1;
    }
    if (e == NULL) {
        if (s->n == MAXE) {
            return -1;
        }
        e = &s->e[s->n++];
        e->db = db;
        memcpy(e->key, key, klen);
        e->klen = klen;
    }
    e->rec = *rec;
    if (rec->vlen) {
        memcpy(e->val, rec->val, rec->vlen);
    }
    e->rec.val = e->val;
    s->applies++;
    return 1;
}

static void fs_observe(void *ctx, uint64_t hlc) {
    struct fstore *s = ctx;
    if (hlc > s->hlc_seen) {
        s->hlc_seen = hlc;
    }
}

static uint64_t fs_now(void *ctx) {
    return (uint64_t)time(NULL) * 1000u;
}

static int by_token(const void *a, const void *b) {
    const struct cluster_key *x = a, *y = b;
    return x->token < y->token ? -1 : x->token > y->token;
}

static int fs_range(void *ctx, unsigned db, uint64_t from, uint64_t to, cluster_range_fn *fn,
                    void *arg) {
    struct fstore *s = ctx;
    struct cluster_key k[MAXE];
    size_t n = 0;
    for (int i = 0; i < s->n; i++) {
        struct fentry *e = &s->e[i];
        uint64_t t = ring_key_token(e->key, e->klen);
        if (e->db == db && t >= from && (to == 0 || t < to)) {
            k[n++] = (struct cluster_key){t, e->key, e->klen, e->rec.v, e->rec.deleted,
                                          e->rec.expire_at, 0};
        }
    }
    qsort(k, n, sizeof *k, by_token);
    for (size_t i = 0; i < n; i++) {
        if (fn(arg, &k[i])) {
            break;
        }
    }
    return 0;
}

static int fs_flush(void *ctx, int db, uint64_t hlc) {
    struct fstore *s = ctx;
    int j = 0;
    for (int i = 0; i < s->n; i++) {
        if ((db >= 0 && s->e[i].db != (unsigned)db) || s->e[i].rec.v.hlc >= hlc) {
            s->e[j] = s->e[i];
            s->e[j].rec.val = s->e[j].val;
            j++;
        }
    }
    s->n = j;
    return 0;
}

/* ---- a node: runtime + listener ---- */

struct tnode;

struct tconn {
    struct tnode *tn;
    int fd;
    struct event *rev;
    struct fp_in rd; /* input and the request being handled (fake_peer_test.h) */
    struct cluster_peer *peer;
    int dead;
};

struct tnode {
    struct event_base *base;
    struct cluster *cl;
    struct fstore st;
    int lfd, port;
    struct event *lev;
    struct tconn *conns[MAXC];
    int nconns;
    char id[16];
    uint64_t tokens[16];
    int closed_peers; /* connections closed by cluster_peer_command */
};

static void tconn_close(struct tconn *c) {
    if (c->dead) {
        return;
    }
    c->dead = 1;
    event_free(c->rev);
    close(c->fd);
    fp_in_free(&c->rd);
    cluster_peer_free(c->peer);
}

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && errno == EAGAIN) {
            usleep(100); /* test replies are small: the socket drains */
            continue;
        }
        if (w <= 0) {
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* One request (fp_in_read's callback): KVD.PEER to cluster_peer_command, as the
 * server does; anything else an error. */
static int tconn_request(void *arg) {
    struct tconn *c = arg;
    struct resp_parser *p = &c->rd.parser;
    struct msg_buf out = {0};
    int close_after = 0;
    if (p->argc >= 1 && p->argv[0].len == 8 && strncasecmp(p->argv[0].p, "KVD.PEER", 8) == 0) {
        close_after = cluster_peer_command(c->tn->cl, c->peer, p->argv, (size_t)p->argc, &out);
    } else {
        msg_reply_error(&out, "ERR unknown command");
    }
    write_all(c->fd, out.p, out.len);
    msg_buf_free(&out);
    if (close_after) {
        c->tn->closed_peers++;
        tconn_close(c);
        return FP_CLOSED;
    }
    return FP_GO_ON;
}

static void tconn_readable(evutil_socket_t fd, short what, void *arg) {
    struct tconn *c = arg;
    if (fp_in_read(&c->rd, fd, tconn_request, c) < 0) {
        tconn_close(c);
    }
}

static void tnode_accept(evutil_socket_t lfd, short what, void *arg) {
    struct tnode *tn = arg;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
        return;
    }
    if (tn->nconns >= MAXC || tn->cl == NULL) {
        close(fd);
        return;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    struct tconn *c = calloc(1, sizeof *c);
    c->tn = tn;
    c->fd = fd;
    fp_in_init(&c->rd);
    c->peer = cluster_peer_new(tn->cl);
    c->rev = event_new(tn->base, fd, EV_READ | EV_PERSIST, tconn_readable, c);
    event_add(c->rev, NULL);
    tn->conns[tn->nconns++] = c;
}

/* listens on 127.0.0.1:port (0: any free port) */
static int tnode_listen(struct tnode *tn, int port) {
    tn->lfd = fp_listen(port, &tn->port);
    if (tn->lfd < 0) {
        return -1;
    }
    tn->lev = event_new(tn->base, tn->lfd, EV_READ | EV_PERSIST, tnode_accept, tn);
    event_add(tn->lev, NULL);
    return 0;
}

/* closes the listener and every connection: to the others the node is gone */
static void tnode_unlisten(struct tnode *tn) {
    for (int i = 0; i < tn->nconns; i++) {
        tconn_close(tn->conns[i]);
        free(tn->conns[i]);
    }
    tn->nconns = 0;
    if (tn->lev) {
        event_free(tn->lev);
        tn->lev = NULL;
        close(tn->lfd);
    }
}

static const struct cluster_store *tnode_store(struct tnode *tn) {
    static struct cluster_store st[MAXN + 2];
    static int next;
    struct cluster_store *s = &st[next++ % (MAXN + 2)];
    *s = (struct cluster_store){&tn->st, fs_read, fs_apply, fs_observe, fs_now, fs_range,
                                fs_flush};
    return s;
}

static int log_warnings;

static void quiet_log(int level, const char *msg) {
    log_warnings += level == CLUSTER_LOG_WARNING;
    if (getenv("TEST_VERBOSE")) {
        fprintf(stderr, "  cluster: %s\n", msg);
    }
}

static void cfg_for(struct tnode *tn, struct cluster_config *c, int i, const char *seeds,
                    int n, int w, int r) {
    snprintf(tn->id, sizeof tn->id, "node-%c", 'a' + i);
    ring_tokens_generate(1000 + (uint64_t)i, tn->tokens, 16);
    *c = (struct cluster_config){0};
    c->node_id = tn->id;
    c->tag = (uint32_t)(i + 1);
    c->tokens = tn->tokens;
    c->ntokens = 16;
    c->weight = 1.0;
    c->bind_ip = "127.0.0.1";
    c->announce_ip = "127.0.0.1";
    c->announce_port = tn->port;
    c->seeds = seeds;
    c->secret = SECRET;
    c->replication_factor = n;
    c->write_quorum = w;
    c->read_quorum = r;
    c->request_timeout_ms = 300;
    c->hint_window_ms = 3600000;
    c->hint_max_bytes = 1 << 20;
    c->log = quiet_log;
}

static int tnode_start(struct tnode *tn, struct event_base *base, int i, const char *seeds,
                       int n, const char *secret) {
    memset(tn, 0, sizeof *tn);
    tn->base = base;
    if (tnode_listen(tn, 0) != 0) {
        return -1;
    }
    struct cluster_config c;
    cfg_for(tn, &c, i, seeds, n, n > 1 ? 2 : 1, n > 1 ? 2 : 1);
    if (secret) {
        c.secret = secret;
    }
    char err[160];
    tn->cl = cluster_start(base, &c, tnode_store(tn), err, sizeof err);
    if (tn->cl == NULL) {
        fprintf(stderr, "cluster_start: %s\n", err);
        return -1;
    }
    return 0;
}

static void tnode_stop(struct tnode *tn) {
    tnode_unlisten(tn);
    cluster_stop(tn->cl);
    tn->cl = NULL;
}

/* ---- loop helpers ---- */

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
}

/* runs the loop until cond(arg) or ms pass; returns cond's last value */
static int run_until(struct event_base *base, int (*cond)(void *), void *arg, unsigned ms) {
    uint64_t end = now_ms() + ms;
    struct event *wake = event_new(base, -1, EV_PERSIST, on_wake, NULL);
    struct timeval tv = {0, 10000};
    event_add(wake, &tv);
    int ok = cond(arg);
    while (!ok && now_ms() < end) {
        event_base_loop(base, EVLOOP_ONCE);
        ok = cond(arg);
    }
    event_free(wake);
    return ok;
}

static int never(void *arg) {
    return 0;
}

/* ---- results ---- */

struct res {
    int calls;
    int status;
    int found;
    char val[64];
    size_t vlen;
    struct kv_version v;
    char err[160];
};

static void read_done(void *ctx, int status, const struct msg_record *rec, const char *err) {
    struct res *r = ctx;
    r->calls++;
    r->status = status;
    r->found = rec != NULL;
    if (rec) {
        r->vlen = rec->vlen < sizeof r->val ? rec->vlen : sizeof r->val;
        memcpy(r->val, rec->val, r->vlen);
        r->v = rec->v;
    }
    snprintf(r->err, sizeof r->err, "%s", err ? err : "");
}

static void write_done(void *ctx, int status, const char *err) {
    struct res *r = ctx;
    r->calls++;
    r->status = status;
    snprintf(r->err, sizeof r->err, "%s", err ? err : "");
}

static int res_called(void *arg) {
    return ((struct res *)arg)->calls > 0;
}

static struct msg_record mkrec(uint64_t hlc, uint32_t node, const char *val) {
    struct msg_record r = {{hlc, node}, 0, 0, val, strlen(val)};
    return r;
}

/* ---- one node ---- */

static void test_one_node_writes_and_reads_through_its_store(void) {
    struct event_base *base = event_base_new();
    struct tnode a;
    CHECK(tnode_start(&a, base, 0, NULL, 1, NULL) == 0);
    const char *why = "unset";
    CHECK(cluster_ready(a.cl, &why) == 1);
    CHECK_EQ_INT(cluster_replicas(a.cl), 1);

    struct res w = {0};
    struct msg_record rec = mkrec(100, 1, "v1");
    cluster_write(a.cl, 0, "k", 1, &rec, 1, write_done, &w);
    CHECK_EQ_INT(w.calls, 0); /* never inside the call */
    CHECK(run_until(base, res_called, &w, 2000));
    CHECK_EQ_INT(w.status, CLUSTER_OK);
    CHECK_EQ_INT(a.st.n, 1);
    CHECK_EQ_MEM(a.st.e[0].val, a.st.e[0].rec.vlen, "v1", 2);

    struct res r = {0};
    cluster_read(a.cl, 0, "k", 1, 1, read_done, &r);
    CHECK_EQ_INT(r.calls, 0);
    CHECK(run_until(base, res_called, &r, 2000));
    CHECK_EQ_INT(r.status, CLUSTER_OK);
    CHECK(r.found);
    CHECK_EQ_MEM(r.val, r.vlen, "v1", 2);
    CHECK_EQ_INT(r.v.hlc, 100);

    struct res miss = {0};
    cluster_read(a.cl, 3, "k", 1, 1, read_done, &miss); /* another db */
    CHECK(run_until(base, res_called, &miss, 2000));
    CHECK_EQ_INT(miss.status, CLUSTER_OK);
    CHECK(!miss.found);

    /* an older write is acknowledged but does not replace the newer value */
    struct res w2 = {0};
    struct msg_record old = mkrec(50, 1, "old");
    cluster_write(a.cl, 0, "k", 1, &old, 1, write_done, &w2);
    CHECK(run_until(base, res_called, &w2, 2000));
    CHECK_EQ_INT(w2.status, CLUSTER_OK);
    CHECK_EQ_MEM(a.st.e[0].val, a.st.e[0].rec.vlen, "v1", 2);

    /* a quorum above N is refused (later, from the loop) */
    struct res bad = {0};
    cluster_read(a.cl, 0, "k", 1, 2, read_done, &bad);
    CHECK_EQ_INT(bad.calls, 0);
    CHECK(run_until(base, res_called, &bad, 2000));
    CHECK_EQ_INT(bad.status, CLUSTER_FAILED);

    tnode_stop(&a);
    event_base_free(base);
}

/* a store whose durability the test decides (persistent mode's when_durable) */
struct dstore {
    struct fstore fs; /* first: the fake store's callbacks take it */
    void (*fn)(void *arg, int ok);
    void *arg;
    int asks, cancels;
    uint64_t handle;
};

static uint64_t ds_when_durable(void *ctx, void (*fn)(void *arg, int ok), void *arg) {
    struct dstore *d = ctx;
    d->asks++;
    d->fn = fn;
    d->arg = arg;
    return ++d->handle;
}

static void ds_cancel(void *ctx, uint64_t handle) {
    struct dstore *d = ctx;
    if (handle == d->handle) {
        d->cancels++;
        d->fn = NULL;
    }
}

static void test_own_replica_acknowledges_only_once_the_store_says_durable(void) {
    struct event_base *base = event_base_new();
    struct tnode a;
    memset(&a, 0, sizeof a);
    a.base = base;
    CHECK(tnode_listen(&a, 0) == 0);
    struct cluster_config c;
    cfg_for(&a, &c, 0, NULL, 1, 1, 1);
    struct dstore ds = {0};
    struct cluster_store st = {.ctx = &ds,
                               .read = fs_read,
                               .apply = fs_apply,
                               .observe = fs_observe,
                               .now_ms = fs_now,
                               .when_durable = ds_when_durable,
                               .durable_cancel = ds_cancel};
    char err[160];
    a.cl = cluster_start(base, &c, &st, err, sizeof err);
    CHECK(a.cl != NULL);

    /* two writes of one turn: applied at once, acknowledged as one group, later */
    struct res w1 = {0}, w2 = {0};
    struct msg_record r1 = mkrec(100, 1, "v1"), r2 = mkrec(101, 1, "v2");
    cluster_write(a.cl, 0, "k1", 2, &r1, 1, write_done, &w1);
    cluster_write(a.cl, 0, "k2", 2, &r2, 1, write_done, &w2);
    run_until(base, never, NULL, 100);
    CHECK_EQ_INT(ds.fs.n, 2);
    CHECK_EQ_INT(ds.asks, 1);
    CHECK_EQ_INT(w1.calls + w2.calls, 0); /* not durable yet: no acknowledgement */
    ds.fn(ds.arg, 1);
    CHECK(run_until(base, res_called, &w2, 2000));
    CHECK_EQ_INT(w1.status, CLUSTER_OK);
    CHECK_EQ_INT(w2.status, CLUSTER_OK);

    /* the store failed to make it durable: the write fails (no false OK) */
    struct res w3 = {0};
    struct msg_record r3 = mkrec(102, 1, "v3");
    cluster_write(a.cl, 0, "k3", 2, &r3, 1, write_done, &w3);
    run_until(base, never, NULL, 50);
    CHECK_EQ_INT(ds.asks, 2);
    CHECK_EQ_INT(w3.calls, 0);
    ds.fn(ds.arg, 0);
    CHECK(run_until(base, res_called, &w3, 2000));
    CHECK_EQ_INT(w3.status, CLUSTER_FAILED);

    /* stopped while the store has not answered: the wait is cancelled */
    struct res w4 = {0};
    struct msg_record r4 = mkrec(103, 1, "v4");
    cluster_write(a.cl, 0, "k4", 2, &r4, 1, write_done, &w4);
    run_until(base, never, NULL, 50);
    CHECK_EQ_INT(ds.asks, 3);
    tnode_stop(&a);
    CHECK_EQ_INT(ds.cancels, 1);
    CHECK_EQ_INT(w4.calls, 0);
    event_base_free(base);
}

static void test_one_node_cancelled_callback_never_runs(void) {
    struct event_base *base = event_base_new();
    struct tnode a;
    CHECK(tnode_start(&a, base, 0, NULL, 1, NULL) == 0);
    struct res w = {0}, r = {0};
    struct msg_record rec = mkrec(100, 1, "v");
    uint64_t id = cluster_write(a.cl, 0, "k", 1, &rec, 1, write_done, &w);
    uint64_t id2 = cluster_read(a.cl, 0, "k", 1, 1, read_done, &r);
    CHECK(id != id2);
    cluster_cancel(a.cl, id);
    cluster_cancel(a.cl, id2);
    run_until(base, never, NULL, 200);
    CHECK_EQ_INT(w.calls, 0);
    CHECK_EQ_INT(r.calls, 0);
    CHECK_EQ_INT(a.st.n, 1); /* the write itself went on */
    /* cancelling a result already queued (not ready: refused at once) */
    struct res r2 = {0};
    uint64_t id3 = cluster_read(a.cl, 0, "k", 1, 5, read_done, &r2);
    cluster_cancel(a.cl, id3);
    run_until(base, never, NULL, 50);
    CHECK_EQ_INT(r2.calls, 0);
    /* stop with a request pending: its callback never runs */
    struct res r3 = {0};
    cluster_read(a.cl, 0, "k", 1, 1, read_done, &r3);
    tnode_stop(&a);
    CHECK_EQ_INT(r3.calls, 0);
    event_base_free(base);
}

struct cancel_other {
    struct cluster *cl;
    uint64_t other;
    int calls;
};

static void cancel_other_done(void *ctx, int status, const char *err) {
    struct cancel_other *co = ctx;
    co->calls++;
    cluster_cancel(co->cl, co->other);
}

static void test_callback_cancelling_a_queued_result_stops_it(void) {
    struct event_base *base = event_base_new();
    struct tnode a;
    CHECK(tnode_start(&a, base, 0, NULL, 1, NULL) == 0);
    struct msg_record rec = mkrec(100, 1, "v");
    struct cancel_other co = {a.cl, 0, 0};
    struct res second = {0};
    cluster_write(a.cl, 0, "k1", 2, &rec, 1, cancel_other_done, &co);
    co.other = cluster_write(a.cl, 0, "k2", 2, &rec, 1, write_done, &second);
    run_until(base, never, NULL, 200);
    CHECK_EQ_INT(co.calls, 1);
    CHECK_EQ_INT(second.calls, 0); /* cancelled by the first one's callback */
    CHECK_EQ_INT(a.st.n, 2);      /* both writes happened */
    tnode_stop(&a);
    event_base_free(base);
}

static int ready_of(void *arg) {
    return cluster_ready(arg, NULL);
}

static void test_seed_naming_itself_by_another_name_is_ready(void) {
    struct event_base *base = event_base_new();
    struct tnode a;
    memset(&a, 0, sizeof a);
    a.base = base;
    CHECK(tnode_listen(&a, 0) == 0);
    char seeds[64];
    snprintf(seeds, sizeof seeds, "localhost:%d", a.port); /* not "127.0.0.1:port" */
    struct cluster_config c;
    cfg_for(&a, &c, 0, seeds, 1, 1, 1);
    char err[160];
    a.cl = cluster_start(base, &c, tnode_store(&a), err, sizeof err);
    CHECK(a.cl != NULL);
    const char *why = NULL;
    CHECK(cluster_ready(a.cl, &why) == 0); /* it does not know yet */
    CHECK(run_until(base, ready_of, a.cl, 3000));
    struct msg_buf b = {0};
    cluster_nodes_text(a.cl, &b);
    int lines = 0;
    for (size_t i = 0; i < b.len; i++) {
        lines += b.p[i] == '\n';
    }
    msg_buf_free(&b);
    CHECK_EQ_INT(lines, 1); /* only itself */
    tnode_stop(&a);
    event_base_free(base);
}

static void test_one_node_seed_naming_itself_is_ready(void) {
    struct event_base *base = event_base_new();
    struct tnode a;
    memset(&a, 0, sizeof a);
    a.base = base;
    CHECK(tnode_listen(&a, 0) == 0);
    char seeds[64];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", a.port);
    struct cluster_config c;
    cfg_for(&a, &c, 0, seeds, 1, 1, 1);
    char err[160];
    a.cl = cluster_start(base, &c, tnode_store(&a), err, sizeof err);
    CHECK(a.cl != NULL);
    CHECK(cluster_ready(a.cl, NULL) == 1);
    struct msg_buf b = {0};
    CHECK_EQ_INT(cluster_key_nodes(a.cl, "x", 1, &b), 1);
    char want[128];
    snprintf(want, sizeof want, "node-a 127.0.0.1:%d\n", a.port);
    CHECK_EQ_MEM(b.p, b.len, want, strlen(want));
    b.len = 0;
    cluster_nodes_text(a.cl, &b);
    snprintf(want, sizeof want,
             "node-a 127.0.0.1:%d up 100.00%% phi=0.00 gen=1 status=normal myself\n", a.port);
    CHECK_EQ_MEM(b.p, b.len, want, strlen(want));
    b.len = 0;
    cluster_ring_text(a.cl, &b);
    int lines = 0;
    for (size_t i = 0; i < b.len; i++) {
        lines += b.p[i] == '\n';
    }
    CHECK_EQ_INT(lines, 16);
    msg_buf_free(&b);
    tnode_stop(&a);
    event_base_free(base);
}

static void test_unreachable_seed_not_ready_and_requests_fail_with_why(void) {
    struct event_base *base = event_base_new();
    struct tnode a, dead;
    memset(&dead, 0, sizeof dead);
    dead.base = base;
    CHECK(tnode_listen(&dead, 0) == 0);
    int dead_port = dead.port;
    tnode_unlisten(&dead); /* nobody listens there now */
    char seeds[64];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", dead_port);
    CHECK(tnode_start(&a, base, 0, seeds, 1, NULL) == 0);
    const char *why = NULL;
    CHECK(cluster_ready(a.cl, &why) == 0);
    CHECK_EQ_STR(why, "waiting for the seeds: 0 of 1 answered");
    struct res r = {0};
    cluster_read(a.cl, 0, "k", 1, 1, read_done, &r);
    CHECK_EQ_INT(r.calls, 0);
    CHECK(run_until(base, res_called, &r, 2000));
    CHECK_EQ_INT(r.status, CLUSTER_FAILED);
    CHECK_EQ_STR(r.err, "waiting for the seeds: 0 of 1 answered");
    CHECK_EQ_INT(cluster_key_nodes(a.cl, "k", 1, &(struct msg_buf){0}), 0);
    tnode_stop(&a);
    event_base_free(base);
}

static void test_bad_configs_refused(void) {
    struct event_base *base = event_base_new();
    struct tnode a;
    memset(&a, 0, sizeof a);
    a.port = 7000;
    struct cluster_config c;
    char err[160];
    struct cluster_store st = {&a.st, fs_read, fs_apply, fs_observe, fs_now};

    cfg_for(&a, &c, 0, NULL, 3, 2, 2);
    c.secret = "";
    CHECK(cluster_start(base, &c, &st, err, sizeof err) == NULL);
    CHECK(strstr(err, "cluster-secret") != NULL);
    cfg_for(&a, &c, 0, NULL, 3, 4, 2);
    CHECK(cluster_start(base, &c, &st, err, sizeof err) == NULL);
    CHECK(strstr(err, "write-quorum") != NULL);
    cfg_for(&a, &c, 0, NULL, 3, 2, 0);
    CHECK(cluster_start(base, &c, &st, err, sizeof err) == NULL);
    CHECK(strstr(err, "read-quorum") != NULL);
    cfg_for(&a, &c, 0, "127.0.0.1", 3, 2, 2);
    CHECK(cluster_start(base, &c, &st, err, sizeof err) == NULL);
    CHECK(strstr(err, "cluster-seeds") != NULL);
    cfg_for(&a, &c, 0, "127.0.0.1:99999", 3, 2, 2);
    CHECK(cluster_start(base, &c, &st, err, sizeof err) == NULL);
    cfg_for(&a, &c, 0, NULL, 3, 2, 2);
    uint64_t unsorted[2] = {5, 3};
    c.tokens = unsorted;
    c.ntokens = 2;
    CHECK(cluster_start(base, &c, &st, err, sizeof err) == NULL);
    cfg_for(&a, &c, 0, NULL, 3, 2, 2);
    c.tag = 0;
    CHECK(cluster_start(base, &c, &st, err, sizeof err) == NULL);
    event_base_free(base);
}

/* ---- the peer side without a network ---- */

static size_t argv_of(struct kv_slice *av, const char **words, size_t n) {
    for (size_t i = 0; i < n; i++) {
        av[i] = (struct kv_slice){words[i], strlen(words[i])};
    }
    return n;
}

static void test_peer_verbs_refused_before_authentication(void) {
    struct event_base *base = event_base_new();
    struct tnode a;
    CHECK(tnode_start(&a, base, 0, NULL, 1, NULL) == 0);
    struct cluster_peer *p = cluster_peer_new(a.cl);
    struct kv_slice av[4];
    struct msg_buf out = {0};
    const char *rd[] = {"KVD.PEER", "READ", "0", "k"};
    CHECK_EQ_INT(cluster_peer_command(a.cl, p, av, argv_of(av, rd, 4), &out), 1);
    CHECK_EQ_MEM(out.p, out.len, "-NOAUTH peer not authenticated\r\n", 32);
    CHECK(!cluster_peer_authenticated(p));
    out.len = 0;
    const char *mem[] = {"KVD.PEER", "GOSSIP", "x"};
    CHECK_EQ_INT(cluster_peer_command(a.cl, p, av, argv_of(av, mem, 3), &out), 1);
    out.len = 0;
    /* a HELLO then a wrong proof: refused and closed */
    char hex[65];
    memset(hex, 'a', 64);
    hex[64] = 0;
    const char *hello[] = {"KVD.PEER", "HELLO", "intruder", hex};
    CHECK_EQ_INT(cluster_peer_command(a.cl, p, av, argv_of(av, hello, 4), &out), 0);
    CHECK(out.len > 0 && out.p[0] == '*');
    out.len = 0;
    const char *auth[] = {"KVD.PEER", "AUTH", hex};
    CHECK_EQ_INT(cluster_peer_command(a.cl, p, av, argv_of(av, auth, 3), &out), 1);
    CHECK(out.len > 0 && out.p[0] == '-');
    CHECK(!cluster_peer_authenticated(p));
    msg_buf_free(&out);
    cluster_peer_free(p);
    tnode_stop(&a);
    event_base_free(base);
}

/* the n-th bulk string of a RESP reply in out (a tiny reader for the tests) */
static int nth_bulk(const struct msg_buf *out, int n, const char **p, size_t *len) {
    const char *q = out->p, *end = out->p + out->len;
    for (int k = 0; q < end; k++) {
        q = memchr(q, '$', (size_t)(end - q));
        if (q == NULL) {
            return -1;
        }
        char *e;
        long l = strtol(q + 1, &e, 10);
        if (l < 0 || e + 2 + l > end) {
            return -1;
        }
        if (k == n) {
            *p = e + 2;
            *len = (size_t)l;
            return 0;
        }
        q = e + 2 + l;
    }
    return -1;
}

/* authenticates p on a's runtime as a dialer named "probe" that knows SECRET */
static int peer_authenticate(struct cluster *cl, struct cluster_peer *p) {
    struct auth_dialer d;
    struct auth_msg hello, auth;
    uint8_t nonce[AUTH_NONCE_LEN] = {1, 2, 3};
    if (auth_dialer_start(&d, SECRET, strlen(SECRET), "probe", 5, nonce, &hello) != AUTH_OK) {
        return -1;
    }
    struct kv_slice av[4];
    struct msg_buf out = {0};
    for (int i = 0; i < hello.argc; i++) {
        av[i] = (struct kv_slice){hello.argv[i], hello.argvlen[i]};
    }
    cluster_peer_command(cl, p, av, (size_t)hello.argc, &out);
    const char *id, *nh;
    size_t idl, nhl;
    int rc = -1;
    if (nth_bulk(&out, 0, &id, &idl) == 0 && nth_bulk(&out, 1, &nh, &nhl) == 0 &&
        auth_dialer_on_hello(&d, id, idl, nh, nhl, &auth) == AUTH_OK) {
        for (int i = 0; i < auth.argc; i++) {
            av[i] = (struct kv_slice){auth.argv[i], auth.argvlen[i]};
        }
        out.len = 0;
        cluster_peer_command(cl, p, av, (size_t)auth.argc, &out);
        rc = cluster_peer_authenticated(p) ? 0 : -1;
    }
    msg_buf_free(&out);
    return rc;
}

static int gossip_verb(struct cluster *cl, struct cluster_peer *p, const char *verb,
                       const void *b, size_t n, struct msg_buf *out) {
    struct kv_slice av[3] = {{"KVD.PEER", 8}, {verb, strlen(verb)}, {b, n}};
    out->len = 0;
    return cluster_peer_command(cl, p, av, 3, out);
}

static void test_peer_gossip_answers_acks_and_refuses_garbage_without_harm(void) {
    struct event_base *base = event_base_new();
    struct tnode a;
    CHECK(tnode_start(&a, base, 0, NULL, 3, NULL) == 0);
    struct cluster_peer *p = cluster_peer_new(a.cl);
    CHECK(peer_authenticate(a.cl, p) == 0);
    /* a valid SYN from a member that runs N=3 with the same secret: an ACK */
    struct ring_member m = {.tag = 77, .weight = 1};
    uint64_t toks[2] = {5, 9};
    snprintf(m.id, sizeof m.id, "probe");
    snprintf(m.addr, sizeof m.addr, "127.0.0.9:1");
    m.tokens = toks;
    m.ntokens = 2;
    struct gossip_self gs = {.m = &m, .generation = 4, .rf = 3, .convict = 8, .seed = 1};
    gossip_fingerprint(SECRET, strlen(SECRET), gs.fp);
    phi_config_default(&gs.phi);
    struct gossip *g = gossip_new(&gs);
    struct msg_buf syn = {0}, out = {0};
    gossip_syn(g, 1000, &syn);
    CHECK_EQ_INT(gossip_verb(a.cl, p, "GOSSIP", syn.p, syn.len, &out), 0);
    CHECK(out.len > 0 && out.p[0] == '$');
    /* garbage, a truncated SYN and a wrong kind: -ERR, the connection stays */
    CHECK_EQ_INT(gossip_verb(a.cl, p, "GOSSIP", "garbage", 7, &out), 0);
    CHECK(out.len > 5 && memcmp(out.p, "-ERR ", 5) == 0);
    CHECK_EQ_INT(gossip_verb(a.cl, p, "GOSSIP", syn.p, syn.len - 3, &out), 0);
    CHECK(memcmp(out.p, "-ERR ", 5) == 0 && memmem(out.p, out.len, "malformed", 9));
    CHECK_EQ_INT(gossip_verb(a.cl, p, "GOSSIP2", syn.p, syn.len, &out), 0);
    CHECK(memcmp(out.p, "-ERR ", 5) == 0);
    struct kv_slice av[2] = {{"KVD.PEER", 8}, {"GOSSIP", 6}};
    out.len = 0;
    CHECK_EQ_INT(cluster_peer_command(a.cl, p, av, 2, &out), 0);
    CHECK(memcmp(out.p, "-ERR ", 5) == 0);
    /* another replication factor: refused, said so in INFO */
    gossip_free(&g);
    gs.rf = 2;
    g = gossip_new(&gs);
    syn.len = 0;
    gossip_syn(g, 1000, &syn);
    CHECK_EQ_INT(gossip_verb(a.cl, p, "GOSSIP", syn.p, syn.len, &out), 0);
    CHECK(memmem(out.p, out.len, "replication-factor 2, ours is 3", 31) != NULL);
    out.len = 0;
    cluster_info(a.cl, &out);
    CHECK(memmem(out.p, out.len, "gossip_last_refusal:probe: gossip refused", 41) != NULL);
    CHECK(memmem(out.p, out.len, "clock_ok:1\r\n", 12) != NULL);
    const char *why = NULL;
    CHECK(cluster_ready(a.cl, &why) == 1); /* no seeds: ready; the refusal is in INFO */
    gossip_free(&g);
    msg_buf_free(&syn);
    msg_buf_free(&out);
    cluster_peer_free(p);
    tnode_stop(&a);
    event_base_free(base);
}

/* ---- three nodes ---- */

struct trio {
    struct tnode *t;
    int n;
    size_t members;
};

/* every node knows every member and sees it up */
static int converged(void *arg) {
    struct trio *tr = arg;
    for (int i = 0; i < tr->n; i++) {
        if (!cluster_ready(tr->t[i].cl, NULL)) {
            return 0;
        }
        struct msg_buf b = {0};
        cluster_nodes_text(tr->t[i].cl, &b);
        size_t lines = 0, ups = 0;
        for (size_t j = 0; j < b.len; j++) {
            lines += b.p[j] == '\n';
        }
        for (const char *q = b.p; q && (q = memmem(q, b.len - (size_t)(q - b.p), " up ", 4));
             q += 4) {
            ups++;
        }
        msg_buf_free(&b);
        if (lines != tr->members || ups != tr->members) {
            return 0;
        }
    }
    return 1;
}

static int start_trio(struct event_base *base, struct tnode *t, char *seeds, size_t seedlen) {
    if (tnode_start(&t[0], base, 0, NULL, 3, NULL) != 0) {
        return -1;
    }
    snprintf(seeds, seedlen, "127.0.0.1:%d", t[0].port);
    if (tnode_start(&t[1], base, 1, seeds, 3, NULL) != 0 ||
        tnode_start(&t[2], base, 2, seeds, 3, NULL) != 0) {
        return -1;
    }
    struct trio tr = {t, 3, 3};
    return run_until(base, converged, &tr, 5000) ? 0 : -1;
}

static int count_holding(struct tnode *t, int n, const char *key, const char *val) {
    int c = 0;
    for (int i = 0; i < n; i++) {
        struct fentry *e = fs_find(&t[i].st, 0, key, strlen(key));
        c += e && e->rec.vlen == strlen(val) && memcmp(e->rec.val, val, e->rec.vlen) == 0;
    }
    return c;
}

struct holding {
    struct tnode *t;
    int n, want;
    const char *key, *val;
};

static int holding_ok(void *arg) {
    struct holding *h = arg;
    return count_holding(h->t, h->n, h->key, h->val) >= h->want;
}

static void test_three_nodes_converge_from_one_seed_and_replicate(void) {
    struct event_base *base = event_base_new();
    struct tnode t[3];
    char seeds[64];
    CHECK(start_trio(base, t, seeds, sizeof seeds) == 0);
    /* every node computes the same ring */
    struct msg_buf r0 = {0}, r2 = {0};
    cluster_ring_text(t[0].cl, &r0);
    cluster_ring_text(t[2].cl, &r2);
    CHECK(r0.len > 0);
    CHECK_EQ_MEM(r0.p, r0.len, r2.p, r2.len);
    msg_buf_free(&r0);
    msg_buf_free(&r2);
    struct msg_buf kn = {0};
    CHECK_EQ_INT(cluster_key_nodes(t[1].cl, "user:1", 6, &kn), 3);
    msg_buf_free(&kn);

    /* W=2 through node b: at least 2 stores hold it when acknowledged, all 3 soon */
    struct res w = {0};
    struct msg_record rec = mkrec(1000, 2, "hello");
    cluster_write(t[1].cl, 0, "user:1", 6, &rec, 2, write_done, &w);
    CHECK(run_until(base, res_called, &w, 3000));
    CHECK_EQ_INT(w.status, CLUSTER_OK);
    CHECK(count_holding(t, 3, "user:1", "hello") >= 2);
    struct holding h = {t, 3, 3, "user:1", "hello"};
    CHECK(run_until(base, holding_ok, &h, 3000));

    /* R=2 through node c returns it */
    struct res r = {0};
    cluster_read(t[2].cl, 0, "user:1", 6, 2, read_done, &r);
    CHECK(run_until(base, res_called, &r, 3000));
    CHECK_EQ_INT(r.status, CLUSTER_OK);
    CHECK(r.found);
    CHECK_EQ_MEM(r.val, r.vlen, "hello", 5);

    /* INFO's body names the members */
    struct msg_buf info = {0};
    cluster_info(t[0].cl, &info);
    CHECK(memmem(info.p, info.len, "members:3\r\n", 11) != NULL);
    CHECK(memmem(info.p, info.len, "members_up:3\r\n", 14) != NULL);
    msg_buf_free(&info);
    for (int i = 0; i < 3; i++) {
        tnode_stop(&t[i]);
    }
    event_base_free(base);
}

static int c_down_at_a(void *arg) {
    struct tnode *t = arg;
    struct msg_buf b = {0};
    cluster_nodes_text(t[0].cl, &b);
    int down = memmem(b.p, b.len, "node-c", 6) && memmem(b.p, b.len, " down ", 6);
    msg_buf_free(&b);
    return down;
}

static int hints_drained(void *arg) {
    struct msg_buf info = {0};
    cluster_info(arg, &info);
    int ok = memmem(info.p, info.len, "hints_delivered:1\r\n", 19) != NULL &&
             memmem(info.p, info.len, "hints_pending:0\r\n", 17) != NULL;
    msg_buf_free(&info);
    return ok;
}

static void test_stopped_peer_fails_w3_w2_hints_delivered_on_return(void) {
    struct event_base *base = event_base_new();
    struct tnode t[3];
    char seeds[64];
    CHECK(start_trio(base, t, seeds, sizeof seeds) == 0);
    int c_port = t[2].port;
    tnode_unlisten(&t[2]); /* node c's listener closed: to a and b it is gone */
    CHECK(run_until(base, c_down_at_a, t, 5000));

    struct res w3 = {0};
    struct msg_record rec = mkrec(2000, 1, "while-c-away");
    cluster_write(t[0].cl, 0, "k2", 2, &rec, 3, write_done, &w3);
    CHECK(run_until(base, res_called, &w3, 3000));
    CHECK_EQ_INT(w3.status, CLUSTER_FAILED);
    CHECK(strstr(w3.err, "got ") != NULL && strstr(w3.err, " of 3") != NULL);

    struct res w2 = {0};
    struct msg_record rec2 = mkrec(2001, 1, "w2");
    cluster_write(t[0].cl, 0, "k3", 2, &rec2, 2, write_done, &w2);
    CHECK(run_until(base, res_called, &w2, 3000));
    CHECK_EQ_INT(w2.status, CLUSTER_OK);
    CHECK(fs_find(&t[2].st, 0, "k3", 2) == NULL);
    struct msg_buf info = {0};
    cluster_info(t[0].cl, &info);
    CHECK(memmem(info.p, info.len, "hints_pending:0\r\n", 17) == NULL);
    msg_buf_free(&info);

    /* c comes back on its port: a delivers the hint */
    CHECK(tnode_listen(&t[2], c_port) == 0);
    struct holding h = {&t[2], 1, 1, "k3", "w2"};
    CHECK(run_until(base, holding_ok, &h, 8000));
    CHECK(run_until(base, hints_drained, t[0].cl, 3000)); /* and a saw the ack */
    for (int i = 0; i < 3; i++) {
        tnode_stop(&t[i]);
    }
    event_base_free(base);
}

static void test_node_with_wrong_secret_never_joins(void) {
    struct event_base *base = event_base_new();
    struct tnode a, d;
    log_warnings = 0;
    CHECK(tnode_start(&a, base, 0, NULL, 1, NULL) == 0);
    char seeds[64];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", a.port);
    CHECK(tnode_start(&d, base, 3, seeds, 1, "some-other-secret") == 0);
    run_until(base, never, NULL, 700);
    const char *why = NULL;
    CHECK(cluster_ready(d.cl, &why) == 0);
    CHECK(a.closed_peers >= 1); /* a refused its proof */
    CHECK(log_warnings > 0);    /* and said so */
    struct msg_buf b = {0};
    cluster_nodes_text(a.cl, &b);
    CHECK(memmem(b.p, b.len, "node-d", 6) == NULL);
    msg_buf_free(&b);
    tnode_stop(&d);
    tnode_stop(&a);
    event_base_free(base);
}

static void test_node_with_another_replication_factor_is_refused_and_says_why(void) {
    struct event_base *base = event_base_new();
    struct tnode a, d;
    log_warnings = 0;
    CHECK(tnode_start(&a, base, 0, NULL, 1, NULL) == 0);
    char seeds[64];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", a.port);
    CHECK(tnode_start(&d, base, 3, seeds, 2, NULL) == 0); /* N=2 against a's N=1 */
    run_until(base, never, NULL, 700);
    const char *why = NULL;
    CHECK(cluster_ready(d.cl, &why) == 0);
    CHECK(why && strstr(why, "last refusal") && strstr(why, "replication-factor 2"));
    CHECK(log_warnings > 0); /* both sides said so */
    struct msg_buf b = {0};
    cluster_nodes_text(a.cl, &b);
    CHECK(memmem(b.p, b.len, "node-d", 6) == NULL);
    b.len = 0;
    cluster_info(a.cl, &b);
    CHECK(memmem(b.p, b.len, "gossip_refused:0\r\n", 18) == NULL);
    msg_buf_free(&b);
    tnode_stop(&d);
    tnode_stop(&a);
    event_base_free(base);
}

/* ---- keyless: cluster_scan, cluster_flush (keyless.c) ---- */

struct scan_res {
    int calls, status;
    uint64_t next;
    char keys[MAXE][16];
    int deleted[MAXE];
    size_t n;
};

static void scan_done(void *ctx, int status, uint64_t next, const struct cluster_key *keys,
                      size_t n, const char *err) {
    struct scan_res *r = ctx;
    r->calls++;
    r->status = status;
    r->next = next;
    for (size_t i = 0; i < n && r->n < MAXE; i++, r->n++) {
        snprintf(r->keys[r->n], sizeof r->keys[r->n], "%.*s", (int)keys[i].klen, keys[i].key);
        r->deleted[r->n] = keys[i].deleted;
    }
}

static int scan_called(void *arg) {
    return ((struct scan_res *)arg)->calls > 0;
}

static void test_three_nodes_scan_the_ring_and_flush_at_a_version(void) {
    struct event_base *base = event_base_new();
    struct tnode t[3];
    char seeds[64];
    CHECK(start_trio(base, t, seeds, sizeof seeds) == 0);
    char key[16];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "s:%d", i);
        struct res w = {0};
        struct msg_record rec = mkrec(1000, 2, "v");
        cluster_write(t[i % 3].cl, 0, key, strlen(key), &rec, 3, write_done, &w);
        CHECK(run_until(base, res_called, &w, 3000) && w.status == CLUSTER_OK);
    }
    struct res w = {0};
    struct msg_record tomb = {{2000, 2}, 1, 0, NULL, 0};
    cluster_write(t[0].cl, 0, "s:3", 3, &tomb, 2, write_done, &w); /* newer: a tombstone */
    CHECK(run_until(base, res_called, &w, 3000) && w.status == CLUSTER_OK);
    /* every key once, range by range, through node c at R=2 */
    struct scan_res all = {0};
    uint64_t cursor = 0;
    int steps = 0;
    do {
        struct scan_res r = {0};
        cluster_scan(t[2].cl, 0, cursor, 4, 2, scan_done, &r);
        CHECK_EQ_INT(r.calls, 0); /* never inside the call */
        CHECK(run_until(base, scan_called, &r, 3000));
        CHECK_EQ_INT(r.status, CLUSTER_OK);
        CHECK(r.next == 0 || r.next > cursor);
        for (size_t i = 0; i < r.n && all.n < MAXE; i++, all.n++) {
            memcpy(all.keys[all.n], r.keys[i], sizeof r.keys[i]);
            all.deleted[all.n] = r.deleted[i];
        }
        cursor = r.next;
    } while (cursor != 0 && ++steps < 200);
    CHECK_EQ_INT(all.n, 20);
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "s:%d", i);
        int seen = 0, del = 0;
        for (size_t j = 0; j < all.n; j++) {
            if (strcmp(all.keys[j], key) == 0) {
                seen++;
                del = all.deleted[j];
            }
        }
        CHECK_EQ_INT(seen, 1);
        CHECK_EQ_INT(del, i == 3); /* the newest copy: the tombstone */
    }
    /* a cancelled step never calls back */
    struct scan_res c = {0};
    uint64_t id = cluster_scan(t[0].cl, 0, 0, 4, 2, scan_done, &c);
    cluster_cancel(t[0].cl, id);
    run_until(base, never, NULL, 200);
    CHECK_EQ_INT(c.calls, 0);
    /* bad arguments fail from the loop */
    struct scan_res bad = {0};
    cluster_scan(t[0].cl, 0, 0, 4, 9, scan_done, &bad);
    CHECK_EQ_INT(bad.calls, 0);
    CHECK(run_until(base, scan_called, &bad, 1000));
    CHECK_EQ_INT(bad.status, CLUSTER_FAILED);
    /* FLUSHDB 0 at version 1500: every member drops what is older */
    struct res f = {0};
    cluster_flush(t[1].cl, 0, 1500, 2, write_done, &f);
    CHECK_EQ_INT(f.calls, 0);
    CHECK(run_until(base, res_called, &f, 3000));
    CHECK_EQ_INT(f.status, CLUSTER_OK);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(t[i].st.n, 1); /* only the tombstone of version 2000 */
    }
    struct msg_buf info = {0};
    cluster_info(t[1].cl, &info);
    CHECK(memmem(info.p, info.len, "flushes_pending:0\r\n", 19) != NULL);
    msg_buf_free(&info);
    /* a cancelled flush still flushes, and never calls back */
    struct res fc = {0};
    id = cluster_flush(t[0].cl, -1, 3000, 2, write_done, &fc);
    cluster_cancel(t[0].cl, id);
    run_until(base, never, NULL, 200);
    CHECK_EQ_INT(fc.calls, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(t[i].st.n, 0);
    }
    for (int i = 0; i < 3; i++) {
        tnode_stop(&t[i]);
    }
    event_base_free(base);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    TEST_RUN(test_one_node_writes_and_reads_through_its_store);
    TEST_RUN(test_one_node_cancelled_callback_never_runs);
    TEST_RUN(test_own_replica_acknowledges_only_once_the_store_says_durable);
    TEST_RUN(test_one_node_seed_naming_itself_is_ready);
    TEST_RUN(test_callback_cancelling_a_queued_result_stops_it);
    TEST_RUN(test_seed_naming_itself_by_another_name_is_ready);
    TEST_RUN(test_unreachable_seed_not_ready_and_requests_fail_with_why);
    TEST_RUN(test_bad_configs_refused);
    TEST_RUN(test_peer_verbs_refused_before_authentication);
    TEST_RUN(test_peer_gossip_answers_acks_and_refuses_garbage_without_harm);
    TEST_RUN(test_three_nodes_converge_from_one_seed_and_replicate);
    TEST_RUN(test_three_nodes_scan_the_ring_and_flush_at_a_version);
    TEST_RUN(test_stopped_peer_fails_w3_w2_hints_delivered_on_return);
    TEST_RUN(test_node_with_wrong_secret_never_joins);
    TEST_RUN(test_node_with_another_replication_factor_is_refused_and_says_why);
    TEST_MAIN_END();
}
