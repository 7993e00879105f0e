/* server/cmd/coordinate_test.c: the cluster coordinator's four steps
 * (coordinate.c, server/coord/scratch.c) against a FAKE cluster: this file
 * implements cluster/cluster.h itself (so the real cluster/cluster.c is not
 * linked): one replica set held as a map of records, requests queued until the
 * test delivers them (the contract's callbacks never run inside the call), and
 * injectable failures for reads and writes. The client is in-process
 * (server/test_client.h) and goes through process_command, the ready list and
 * the held replies exactly as a connection does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "server/base/base.h"
#include "server/cmd/cmd.h"
#include "server/test_client.h"
#include "tests/test.h"

/* ---- the fake cluster ---- */

#define FAKE_MAX 64

struct fake_rec {
    int used;
    unsigned db;
    char key[64];
    size_t klen;
    struct msg_record rec;
    char val[512];
};

struct fake_req {
    uint64_t id;
    int write;
    int cancelled;
    int done;
    unsigned db;
    char key[64];
    size_t klen;
    int level;                 /* r or w asked */
    struct msg_record rec;     /* write: the record shipped (val in valbuf) */
    char valbuf[512];
    cluster_read_done *rcb;
    cluster_write_done *wcb;
    void *ctx;
    /* keyless (fanout.c): a SCAN step or a FLUSH */
    int kind;                  /* 0 read/write, FAKE_SCAN, FAKE_FLUSH */
    uint64_t cursor;
    int fdb;
    uint64_t hlc;
    cluster_scan_done *scb;
    cluster_flush_done *fcb;
};

enum { FAKE_SCAN = 1, FAKE_FLUSH };
#define FAKE_HALF (1ull << 63) /* a SCAN step covers [0, 2^63) or [2^63, end) */

struct cluster {
    int ready;
    int n;
    int fail_reads, fail_writes;
    const char *fail_key;      /* writes of this key fail (NULL: none) */
    uint64_t half_skew;        /* the split is FAKE_HALF + this (a range end off a block start) */
    int sole;                  /* KVD NODES has one line: this node alone */
    int clock_bad;             /* cluster_writes_allowed says no */
    struct fake_rec store[FAKE_MAX];
    struct fake_req req[FAKE_MAX];
    int nreq;
    uint64_t next_id;
};

static struct cluster fake;

static struct fake_rec *fake_find(unsigned db, const char *key, size_t klen) {
    for (int i = 0; i < FAKE_MAX; i++) {
        struct fake_rec *r = &fake.store[i];
        if (r->used && r->db == db && r->klen == klen && memcmp(r->key, key, klen) == 0) {
            return r;
        }
    }
    return NULL;
}

static void fake_put(unsigned db, const char *key, size_t klen, const struct msg_record *rec) {
    struct fake_rec *r = fake_find(db, key, klen);
    for (int i = 0; r == NULL && i < FAKE_MAX; i++) {
        if (!fake.store[i].used) {
            r = &fake.store[i];
        }
    }
    if (r == NULL || klen > sizeof(r->key) || rec->vlen > sizeof(r->val)) {
        abort();
    }
    r->used = 1;
    r->db = db;
    memcpy(r->key, key, klen);
    r->klen = klen;
    r->rec = *rec;
    if (rec->vlen) {
        memcpy(r->val, rec->val, rec->vlen);
    }
    r->rec.val = rec->vlen ? r->val : NULL;
}

/* A string value as the replicas would hold it: its envelope. */
static void fake_put_str(unsigned db, const char *key, const char *val, uint64_t hlc,
                         uint32_t node) {
    struct kv_entry *e = obj_str_new(key, strlen(key), val, strlen(val), 0);
    char *env;
    size_t len;
    persist_encode(e, &env, &len);
    ks_entry_free(e);
    struct msg_record rec = {.v = {hlc, node}, .val = env, .vlen = len};
    fake_put(db, key, strlen(key), &rec);
    kv_free(env);
}

static struct fake_req *fake_new_req(unsigned db, const char *key, size_t klen) {
    if (fake.nreq >= FAKE_MAX || klen > 64) {
        abort();
    }
    struct fake_req *q = &fake.req[fake.nreq++];
    memset(q, 0, sizeof(*q));
    q->id = ++fake.next_id;
    q->db = db;
    memcpy(q->key, key, klen);
    q->klen = klen;
    return q;
}

struct cluster *cluster_start(struct event_base *base, const struct cluster_config *cfg,
                              const struct cluster_store *store, char *err, size_t errlen) {
    (void)base, (void)cfg, (void)store, (void)err, (void)errlen;
    return &fake;
}
void cluster_stop(struct cluster *cl) {
    (void)cl;
}
int cluster_ready(const struct cluster *cl, const char **why) {
    if (!cl->ready) {
        *why = "waiting for the seeds: 0 of 2 answered";
    }
    return cl->ready;
}
int cluster_replicas(const struct cluster *cl) {
    return cl->n;
}
int cluster_writes_allowed(const struct cluster *cl, const char **why) {
    if (cl->clock_bad) {
        *why = "this node's clock is 2000 ms off its peers' median";
    }
    return !cl->clock_bad;
}
uint64_t cluster_read(struct cluster *cl, unsigned db, const char *key, size_t klen, int r,
                      cluster_read_done *cb, void *ctx) {
    struct fake_req *q = fake_new_req(db, key, klen);
    q->level = r;
    q->rcb = cb;
    q->ctx = ctx;
    (void)cl;
    return q->id;
}
uint64_t cluster_write(struct cluster *cl, unsigned db, const char *key, size_t klen,
                       const struct msg_record *rec, int w, cluster_write_done *cb,
                       void *ctx) {
    struct fake_req *q = fake_new_req(db, key, klen);
    q->write = 1;
    q->level = w;
    q->wcb = cb;
    q->ctx = ctx;
    q->rec = *rec;
    if (rec->vlen > sizeof(q->valbuf)) {
        abort();
    }
    if (rec->vlen) {
        memcpy(q->valbuf, rec->val, rec->vlen);
    }
    q->rec.val = rec->vlen ? q->valbuf : NULL;
    (void)cl;
    return q->id;
}
void cluster_cancel(struct cluster *cl, uint64_t id) {
    (void)cl;
    for (int i = 0; i < fake.nreq; i++) {
        if (fake.req[i].id == id) {
            fake.req[i].cancelled = 1;
        }
    }
}
uint64_t cluster_scan(struct cluster *cl, unsigned db, uint64_t cursor, size_t count, int r,
                      cluster_scan_done *cb, void *ctx) {
    struct fake_req *q = fake_new_req(db, "", 0);
    q->kind = FAKE_SCAN;
    q->cursor = cursor;
    q->level = r;
    q->scb = cb;
    q->ctx = ctx;
    (void)cl, (void)count;
    return q->id;
}
uint64_t cluster_flush(struct cluster *cl, int db, uint64_t hlc, int w, cluster_flush_done *cb,
                       void *ctx) {
    struct fake_req *q = fake_new_req(0, "", 0);
    q->kind = FAKE_FLUSH;
    q->fdb = db;
    q->hlc = hlc;
    q->level = w;
    q->fcb = cb;
    q->ctx = ctx;
    (void)cl;
    return q->id;
}
struct cluster_peer *cluster_peer_new(struct cluster *cl) {
    (void)cl;
    return NULL;
}
void cluster_peer_free(struct cluster_peer *p) {
    (void)p;
}
int cluster_peer_command(struct cluster *cl, struct cluster_peer *p,
                         const struct kv_slice *argv, size_t argc, struct msg_buf *out) {
    (void)cl, (void)p, (void)argv, (void)argc, (void)out;
    return 1;
}
int cluster_peer_authenticated(const struct cluster_peer *p) {
    (void)p;
    return 0;
}
void cluster_nodes_text(const struct cluster *cl, struct msg_buf *out) {
    if (cl->sole) {
        msg_reply_error(out, "one member"); /* any one line will do */
    }
}
void cluster_ring_text(const struct cluster *cl, struct msg_buf *out) {
    (void)cl, (void)out;
}
size_t cluster_key_nodes(const struct cluster *cl, const char *key, size_t klen,
                         struct msg_buf *out) {
    (void)cl, (void)key, (void)klen, (void)out;
    return 0;
}
void cluster_info(const struct cluster *cl, struct msg_buf *out) {
    (void)cl, (void)out;
}
size_t cluster_repair(struct cluster *cl, int full) {
    (void)cl, (void)full;
    return 0;
}
uint64_t cluster_gc_horizon(struct cluster *cl) {
    (void)cl;
    return 0;
}
int cluster_leave(struct cluster *cl, const char **why) {
    (void)cl;
    *why = "not in this test";
    return -1;
}
int cluster_kept_ranges(struct cluster *cl, struct cluster_span **out, size_t *n,
                        const char **why) {
    (void)cl;
    *out = NULL;
    *n = 0;
    *why = "not in this test";
    return -1;
}
int cluster_join(struct cluster *cl, const char *addr, size_t len, int holds_keys,
                 const char **why) {
    (void)cl;
    (void)holds_keys;
    (void)addr;
    (void)len;
    *why = "not in this test";
    return -1;
}
int cluster_remove_node(struct cluster *cl, const char *id, size_t len, const char **why) {
    (void)cl;
    (void)id;
    (void)len;
    *why = "not in this test";
    return -1;
}
void cluster_set_stream_rate(struct cluster *cl, uint64_t bytes_per_sec) {
    (void)cl;
    (void)bytes_per_sec;
}

void cluster_send_queued(struct cluster *cl) {
    (void)cl;
}
int cluster_is_peer_host(const struct cluster *cl, const char *ip) {
    (void)cl, (void)ip;
    return 0;
}

/* A SCAN step: the records of the half of the ring holding the cursor, in token
 * order, tombstones included (the fanout drops them). */
static void fake_scan_answer(struct fake_req *q) {
    if (fake.fail_reads) {
        q->scb(q->ctx, CLUSTER_FAILED, 0, NULL, 0, "got 1 of 2 scan answers");
        return;
    }
    uint64_t half = FAKE_HALF + fake.half_skew;
    uint64_t end = q->cursor < half ? half : 0;
    struct cluster_key keys[FAKE_MAX];
    size_t n = 0;
    for (int i = 0; i < FAKE_MAX; i++) {
        struct fake_rec *r = &fake.store[i];
        uint64_t t = r->used ? ks_token(r->key, r->klen) : 0;
        if (!r->used || r->db != q->db || t < q->cursor || (end && t >= end)) {
            continue;
        }
        struct cluster_key k = {t, r->key, r->klen, r->rec.v, r->rec.deleted,
                                r->rec.expire_at,
                                r->rec.vlen >= 2 ? (unsigned char)r->rec.val[1] : 0};
        size_t j = n++;
        while (j > 0 && keys[j - 1].token > t) {
            keys[j] = keys[j - 1];
            j--;
        }
        keys[j] = k;
    }
    q->scb(q->ctx, CLUSTER_OK, end, keys, n, NULL);
}

/* The loop's turn: answers every request not yet answered (not cancelled), then
 * runs the ready clients, as before-sleep does. Returns how many it answered. */
static int deliver(void) {
    int n = 0;
    for (int i = 0; i < fake.nreq; i++) {
        struct fake_req *q = &fake.req[i];
        if (q->done || q->cancelled) {
            continue;
        }
        q->done = 1;
        n++;
        if (q->kind == FAKE_SCAN) {
            fake_scan_answer(q);
        } else if (q->kind == FAKE_FLUSH) {
            if (fake.fail_writes) {
                q->fcb(q->ctx, CLUSTER_FAILED, "got 1 of 2 flush acknowledgements");
                continue;
            }
            for (int j = 0; j < FAKE_MAX; j++) {
                struct fake_rec *r = &fake.store[j];
                if (r->used && (q->fdb < 0 || (int)r->db == q->fdb) && r->rec.v.hlc < q->hlc) {
                    r->used = 0;
                }
            }
            q->fcb(q->ctx, CLUSTER_OK, NULL);
        } else if (q->write) {
            int fail_this = fake.fail_key && strlen(fake.fail_key) == q->klen &&
                            memcmp(fake.fail_key, q->key, q->klen) == 0;
            if (fake.fail_writes || fail_this) {
                char err[64];
                snprintf(err, sizeof(err), "got %d of %d write acknowledgements",
                         q->level - 1, q->level);
                q->wcb(q->ctx, CLUSTER_FAILED, err);
            } else {
                fake_put(q->db, q->key, q->klen, &q->rec);
                q->wcb(q->ctx, CLUSTER_OK, NULL);
            }
        } else if (fake.fail_reads) {
            char err[64];
            snprintf(err, sizeof(err), "got %d of %d read answers", q->level - 1, q->level);
            q->rcb(q->ctx, CLUSTER_FAILED, NULL, err);
        } else {
            struct fake_rec *r = fake_find(q->db, q->key, q->klen);
            q->rcb(q->ctx, CLUSTER_OK, r ? &r->rec : NULL, NULL);
        }
    }
    client_run_ready();
    return n;
}

static int count_writes(void) {
    int n = 0;
    for (int i = 0; i < fake.nreq; i++) {
        n += fake.req[i].write;
    }
    return n;
}

static struct fake_req *last_write(void) {
    for (int i = fake.nreq - 1; i >= 0; i--) {
        if (fake.req[i].write) {
            return &fake.req[i];
        }
    }
    return NULL;
}

/* ---- the client ---- */

static struct client tc;

static const char *squeeze(const char *raw) {
    static char out[8192];
    size_t n = 0;
    for (size_t i = 0; raw[i] && n + 1 < sizeof(out); i++) {
        if (raw[i] != '\r') {
            out[n++] = raw[i] == '\n' ? ' ' : raw[i];
        }
    }
    if (n > 0 && out[n - 1] == ' ') {
        n--;
    }
    out[n] = '\0';
    return out;
}

static char early[65536]; /* what tclient_run took at once (it consumes the output) */

/* Everything c was sent since the last call (held or not), squeezed. */
static const char *output(void) {
    static char raw[8192], all[65536 + 8192 + 2];
    tclient_take_output(&tc, raw, sizeof(raw));
    snprintf(all, sizeof(all), "%s%s%s", early, early[0] && raw[0] ? " " : "", squeeze(raw));
    early[0] = '\0';
    return all;
}

static void send_cmd(const char *line) {
    snprintf(early, sizeof(early), "%s", tclient_run(&tc, line, TCLIENT_PROCESS));
}

/* Runs line to completion: delivers until nothing is left (bounded). */
static const char *run(const char *line) {
    send_cmd(line);
    for (int i = 0; i < 10 && deliver() > 0; i++) {
    }
    return output();
}

static void setup(void) {
    tclient_fresh_cache(&tc);
    memset(&fake, 0, sizeof(fake));
    fake.ready = 1;
    fake.n = 3;
    server.node_tag = 7;
    server.cluster = &fake;
    server.read_quorum = 2;
    server.write_quorum = 2;
}

static void teardown(void) {
    coordinate_forget(&tc);
    server.cluster = NULL;
    tc.hold = 0;
}

static struct kv_entry *decode_write(const struct fake_req *q) {
    return persist_decode(q->key, q->klen, q->rec.val, q->rec.vlen, 0);
}

/* ---- tests ---- */

static void test_set_ships_one_record_with_a_version_above_what_was_read(void) {
    setup();
    uint64_t ahead = HLC_MAKE((uint64_t)kv_mstime() + 100000, 5); /* a clock far ahead */
    fake_put_str(0, "k", "old", ahead, 3);
    send_cmd("SET k new GET");               /* reads: its reply is the old value */
    CHECK_EQ_STR(output(), "");              /* waits for the read */
    CHECK(tc.flags & CLIENT_WAITING);
    CHECK_EQ_INT(fake.nreq, 1);
    CHECK_EQ_INT(fake.req[0].write, 0);
    CHECK_EQ_INT(fake.req[0].level, 2);      /* R from the defaults */
    CHECK_EQ_INT(deliver(), 1);              /* read answered: the handler runs, ships */
    CHECK_EQ_INT(count_writes(), 1);
    CHECK(tc.hold & CLIENT_HOLD_CLUSTER);    /* the reply is held until W */
    CHECK(tc.flags & CLIENT_WAITING);
    struct fake_req *w = last_write();
    CHECK_EQ_INT(w->level, 2);
    CHECK(w->rec.v.hlc > ahead);
    CHECK_EQ_INT(w->rec.v.node, 7);
    CHECK_EQ_INT(w->rec.deleted, 0);
    struct kv_entry *e = decode_write(w);
    CHECK(e != NULL);
    if (e) {
        size_t n;
        char buf[32];
        const char *p = obj_str(e, buf, &n);
        CHECK(n == 3 && memcmp(p, "new", 3) == 0);
        ks_entry_free(e);
    }
    CHECK_EQ_INT(deliver(), 1);              /* the write acknowledged */
    CHECK(!(tc.hold & CLIENT_HOLD_CLUSTER));
    CHECK(!(tc.flags & CLIENT_WAITING));
    CHECK(tc.cop == NULL);
    CHECK_EQ_STR(output(), "$3 old");
    /* never into the node's own store */
    CHECK(ks_find(server.db[0], "k", 1, ks_token("k", 1)) == NULL);
    teardown();
}

static void test_incr_runs_on_the_prefetched_value(void) {
    setup();
    fake_put_str(0, "n", "41", HLC_MAKE(1000, 0), 2);
    CHECK_EQ_STR(run("INCR n"), ":42");
    struct kv_entry *e = decode_write(last_write());
    CHECK(e != NULL);
    if (e) {
        size_t n;
        char buf[32];
        const char *p = obj_str(e, buf, &n);
        CHECK(n == 2 && memcmp(p, "42", 2) == 0);
        ks_entry_free(e);
    }
    CHECK_EQ_STR(run("GET n"), "$2 42");     /* read back from the replicas */
    CHECK(ks_db_size(server.db[0]) == 0);
    teardown();
}

static void test_a_read_changes_nothing_and_is_not_held(void) {
    setup();
    CHECK_EQ_STR(run("GET missing"), "$-1");
    CHECK_EQ_INT(count_writes(), 0);
    CHECK(tc.hold == 0);
    CHECK_EQ_STR(run("EXISTS a b"), ":0");
    CHECK_EQ_INT(fake.nreq, 3);              /* one read per key */
    teardown();
}

static void test_a_failed_write_rewrites_the_reply_into_noquorum(void) {
    setup();
    fake.fail_writes = 1;
    CHECK_EQ_STR(run("APPEND k v"),
                 "-NOQUORUM wrote to 1 of 2 required replicas; the write is indeterminate");
    CHECK(tc.hold == 0);
    CHECK(tc.cop == NULL);
    teardown();
}

static void test_a_failed_read_answers_noquorum_and_ships_nothing(void) {
    setup();
    fake.fail_reads = 1;
    CHECK_EQ_STR(run("INCR k"), "-NOQUORUM 1 of 2 required replicas answered");
    CHECK_EQ_INT(count_writes(), 0);
    CHECK(tc.cop == NULL);
    teardown();
}

static void test_del_ships_a_tombstone(void) {
    setup();
    fake_put_str(0, "d", "x", HLC_MAKE(1000, 0), 2);
    CHECK_EQ_STR(run("DEL d nothere"), ":1");
    CHECK_EQ_INT(count_writes(), 1);         /* the absent key is not written */
    struct fake_req *w = last_write();
    CHECK_EQ_INT(w->rec.deleted, 1);
    CHECK(w->klen == 1 && w->key[0] == 'd');
    CHECK_EQ_STR(run("GET d"), "$-1");
    teardown();
}

static void test_mset_ships_every_key_with_one_version(void) {
    setup();
    CHECK_EQ_STR(run("MSET a 1 b 2 c 3"), "+OK");
    CHECK_EQ_INT(count_writes(), 3);
    uint64_t v = last_write()->rec.v.hlc;
    for (int i = 0; i < fake.nreq; i++) {
        if (fake.req[i].write) {
            CHECK(fake.req[i].rec.v.hlc == v);
        }
    }
    CHECK_EQ_STR(run("MGET a b c x"), "*4 $1 1 $1 2 $1 3 $-1");
    /* a key named three times is shipped once, with its last value */
    int before = count_writes();
    CHECK_EQ_STR(run("MSET d 1 d 2 e 0 d 3"), "+OK");
    CHECK_EQ_INT(count_writes() - before, 2);
    CHECK_EQ_STR(run("MGET d e"), "*2 $1 3 $1 0");
    teardown();
}

static void test_a_client_freed_while_waiting_cancels_its_requests(void) {
    setup();
    struct client *c = client_create(-1);
    c->authenticated = 1;
    static struct kv_slice argv[3] = {{"APPEND", 6}, {"k", 1}, {"v", 1}};
    c->argc = 3;
    c->argv = argv;
    process_command(c);
    CHECK(c->flags & CLIENT_WAITING);
    CHECK(c->cop != NULL);
    CHECK_EQ_INT(fake.nreq, 1);
    client_free(c);                          /* disconnects while its read is out */
    CHECK_EQ_INT(fake.req[0].cancelled, 1);
    CHECK_EQ_INT(deliver(), 0);              /* the callback never runs */
    /* and while its write is out */
    c = client_create(-1);
    c->authenticated = 1;
    c->argc = 3;
    c->argv = argv;
    process_command(c);
    fake.req[1].done = 1;                    /* answer the read by hand */
    fake.req[1].rcb(fake.req[1].ctx, CLUSTER_OK, NULL, NULL);
    client_run_ready();
    CHECK_EQ_INT(count_writes(), 1);
    client_free(c);
    CHECK_EQ_INT(last_write()->cancelled, 1);
    CHECK_EQ_INT(deliver(), 0);
    teardown();
}

static void test_multi_exec_prefetches_every_queued_key_at_exec(void) {
    setup();
    fake_put_str(0, "b", "5", HLC_MAKE(1000, 0), 2);
    CHECK_EQ_STR(run("MULTI"), "+OK");
    CHECK_EQ_STR(run("SET a 1"), "+QUEUED");
    CHECK_EQ_STR(run("INCR b"), "+QUEUED");
    CHECK_EQ_STR(run("GET a"), "+QUEUED");
    CHECK_EQ_INT(fake.nreq, 0);              /* nothing read while queueing */
    send_cmd("EXEC");
    CHECK_EQ_INT(fake.nreq, 2);              /* a and b, once each */
    for (int i = 0; i < 10 && deliver() > 0; i++) {
    }
    CHECK_EQ_STR(output(), "*3 +OK :6 $1 1");
    CHECK_EQ_INT(count_writes(), 2);
    CHECK_EQ_STR(run("MGET a b"), "*2 $1 1 $1 6");
    teardown();
}

static void test_exec_with_a_failed_write_is_rewritten_whole(void) {
    setup();
    run("MULTI");
    run("SET a 1");
    fake.fail_writes = 1;
    CHECK_EQ_STR(run("EXEC"),
                 "-NOQUORUM wrote to 1 of 2 required replicas; the write is indeterminate");
    CHECK(!(tc.flags & CLIENT_MULTI));
    teardown();
}

static void test_fanout_commands_inside_multi_are_refused(void) {
    setup();
    run("MULTI");
    CHECK_EQ_STR(run("FLUSHDB"), "-ERR FLUSHDB inside MULTI is not supported in a kvd cluster");
    CHECK_EQ_STR(run("EXEC"), "-EXECABORT Transaction discarded because of previous errors.");
    CHECK_EQ_INT(fake.nreq, 0);
    CHECK_EQ_STR(run("PING"), "+PONG");      /* node-local: as always */
    teardown();
}

static void test_keyless_commands_scan_the_ring_in_steps(void) {
    setup();
    fake_put_str(0, "a", "1", 100, 7);
    fake_put_str(0, "b", "2", 100, 7);
    fake_put_str(0, "c", "3", 100, 7);
    fake_put_str(1, "other", "x", 100, 7);
    struct msg_record tomb = {.v = {200, 7}, .deleted = 1};
    fake_put(0, "gone", 4, &tomb);
    struct msg_record old = {.v = {50, 7}, .expire_at = 1000}; /* expired in 1970 */
    fake_put(0, "expired", 7, &old);
    CHECK_EQ_STR(run("DBSIZE"), ":3");
    const char *keys = run("KEYS *");
    CHECK(strncmp(keys, "*3 ", 3) == 0);
    CHECK(strstr(keys, "$1 a") && strstr(keys, "$1 b") && strstr(keys, "$1 c"));
    CHECK(!strstr(keys, "gone") && !strstr(keys, "expired") && !strstr(keys, "other"));
    CHECK_EQ_STR(run("KEYS b*"), "*1 $1 b");
    /* SCAN: the first step ends at the half of the ring (COUNT 1: one step), token
     * 2^63, whose block number (the cursor) is 2^52 */
    const char *sc = run("SCAN 0 COUNT 1");
    CHECK(strncmp(sc, "*2 $16 4503599627370496 ", 24) == 0);
    CHECK_EQ_STR(run("SCAN 4503599627370496 MATCH nomatch*"), "*2 $1 0 *0");
    CHECK_EQ_STR(run("SCAN 9223372036854775808"), "*2 $1 0 *0"); /* >= 2^53: the end */
    CHECK_EQ_STR(run("SCAN 0 COUNT 100 TYPE hash"), "*2 $1 0 *0");
    CHECK_EQ_STR(run("SCAN x"), "-ERR invalid cursor");
    CHECK_EQ_STR(run("SCAN 0 COUNT 0"), "-ERR syntax error");
    const char *rk = run("RANDOMKEY");
    CHECK(strcmp(rk, "$1 a") == 0 || strcmp(rk, "$1 b") == 0 || strcmp(rk, "$1 c") == 0);
    CHECK_EQ_STR(run("SELECT 2"), "+OK");
    CHECK_EQ_STR(run("RANDOMKEY"), "$-1");
    CHECK_EQ_STR(run("DBSIZE"), ":0");
    teardown();
}

/* A range end that is not a block start (vnode token + 1): the reply's cursor is
 * its block (rounded down: nothing skipped), and the next call from it returns
 * the rest. */
static void test_scan_cursor_rounds_an_unaligned_range_end_down(void) {
    setup();
    fake.half_skew = 5;
    fake_put_str(0, "a", "1", 100, 7);
    fake_put_str(0, "b", "2", 100, 7);
    fake_put_str(0, "c", "3", 100, 7);
    char first[256];
    snprintf(first, sizeof(first), "%s", run("SCAN 0 COUNT 1"));
    /* the step [0, 2^63 + 5) holds a key: the cursor is 2^63's block, 2^52 */
    CHECK(strncmp(first, "*2 $16 4503599627370496 ", 24) == 0);
    const char *rest = run("SCAN 4503599627370496 COUNT 100");
    CHECK(strncmp(rest, "*2 $1 0 ", 8) == 0);
    int found = 0;
    for (const char *k = "abc"; *k; k++) {
        char want[8];
        snprintf(want, sizeof(want), "$1 %c", *k);
        found += (strstr(first, want) != NULL) + (strstr(rest, want) != NULL);
    }
    CHECK_EQ_INT(found, 3); /* each key in exactly one of the two calls */
    teardown();
}

static void test_flush_goes_to_the_cluster_at_one_version(void) {
    setup();
    fake_put_str(0, "a", "1", 100, 7);
    fake_put_str(1, "b", "2", 100, 7);
    CHECK_EQ_STR(run("FLUSHDB"), "+OK");
    CHECK(fake_find(0, "a", 1) == NULL && fake_find(1, "b", 1) != NULL);
    CHECK_EQ_STR(run("FLUSHALL ASYNC"), "+OK");
    CHECK(fake_find(1, "b", 1) == NULL);
    CHECK_EQ_STR(run("FLUSHALL BOGUS"), "-ERR syntax error");
    fake.fail_writes = 1;
    CHECK_EQ_STR(run("FLUSHALL"),
                 "-NOQUORUM flushed on 1 of 2 required replicas; the flush is indeterminate");
    fake.fail_writes = 0;
    fake.fail_reads = 1;
    CHECK_EQ_STR(run("DBSIZE"), "-NOQUORUM 1 of 2 required replicas answered");
    teardown();
}

static void test_watch_aborts_exec_when_a_watched_version_changed(void) {
    setup();
    fake_put_str(0, "k", "1", 100, 7);
    CHECK_EQ_STR(run("WATCH k"), "+OK");
    fake_put_str(0, "k", "2", 300, 9); /* written through another node */
    CHECK_EQ_STR(run("MULTI"), "+OK");
    CHECK_EQ_STR(run("SET k 3"), "+QUEUED");
    CHECK_EQ_STR(run("EXEC"), "*-1");
    CHECK_EQ_INT(count_writes(), 0);
    /* unchanged: EXEC runs */
    CHECK_EQ_STR(run("WATCH k"), "+OK");
    CHECK_EQ_STR(run("MULTI"), "+OK");
    CHECK_EQ_STR(run("SET k 3"), "+QUEUED");
    CHECK_EQ_STR(run("EXEC"), "*1 +OK");
    CHECK_EQ_INT(count_writes(), 1);
    /* a key absent at WATCH and created since */
    CHECK_EQ_STR(run("WATCH new"), "+OK");
    fake_put_str(0, "new", "v", 400, 9);
    CHECK_EQ_STR(run("MULTI"), "+OK");
    CHECK_EQ_STR(run("GET new"), "+QUEUED");
    CHECK_EQ_STR(run("EXEC"), "*-1");
    /* UNWATCH forgets */
    CHECK_EQ_STR(run("WATCH k"), "+OK");
    fake_put_str(0, "k", "4", 500, 9);
    CHECK_EQ_STR(run("UNWATCH"), "+OK");
    CHECK_EQ_STR(run("MULTI"), "+OK");
    CHECK_EQ_STR(run("GET k"), "+QUEUED");
    CHECK_EQ_STR(run("EXEC"), "*1 $1 4");
    teardown();
}

static void test_the_sole_member_answers_fanout_commands_from_its_data(void) {
    setup();
    fake.sole = 1;
    CHECK_EQ_STR(run("DBSIZE"), ":0");
    CHECK_EQ_STR(run("FLUSHALL"), "+OK");
    CHECK_EQ_STR(run("MULTI"), "+OK");
    CHECK_EQ_STR(run("DBSIZE"), "+QUEUED");
    CHECK_EQ_STR(run("EXEC"), "*1 :0");
    CHECK_EQ_INT(fake.nreq, 0);
    teardown();
}

static void test_not_ready_answers_clusterdown(void) {
    setup();
    fake.ready = 0;
    CHECK_EQ_STR(run("GET k"), "-CLUSTERDOWN waiting for the seeds: 0 of 2 answered");
    CHECK_EQ_INT(fake.nreq, 0);
    CHECK_EQ_STR(run("PING"), "+PONG");
    teardown();
}

static void test_clock_skew_refuses_writes_but_not_reads(void) {
    setup();
    fake.clock_bad = 1;
    CHECK_EQ_STR(run("SET k v"), "-CLOCKSKEW this node's clock is 2000 ms off its peers' median");
    CHECK_EQ_STR(run("INCR n"), "-CLOCKSKEW this node's clock is 2000 ms off its peers' median");
    CHECK_EQ_INT(fake.nreq, 0);
    CHECK_EQ_STR(run("GET k"), "$-1"); /* reads run */
    fake.clock_bad = 0;
    CHECK_EQ_STR(run("SET k v"), "+OK");
    teardown();
}

static void test_consistency_sets_the_levels_used(void) {
    setup();
    CHECK_EQ_STR(run("KVD CONSISTENCY"), "+READ 2 WRITE 2");
    CHECK_EQ_STR(run("KVD CONSISTENCY ONE"), "+OK");
    CHECK_EQ_STR(run("KVD CONSISTENCY"), "+READ 1 WRITE 1");
    run("APPEND k v");
    CHECK_EQ_INT(fake.req[0].level, 1);
    CHECK_EQ_INT(last_write()->level, 1);
    CHECK_EQ_STR(run("KVD CONSISTENCY READ 3 WRITE quorum"), "+OK");
    CHECK_EQ_STR(run("KVD CONSISTENCY"), "+READ 3 WRITE 2");
    CHECK_EQ_STR(run("KVD CONSISTENCY ALL"), "+OK");
    CHECK_EQ_STR(run("KVD CONSISTENCY"), "+READ 3 WRITE 3");
    CHECK_EQ_STR(run("KVD CONSISTENCY READ 4"),
                 "-ERR consistency level must be between 1 and 3 (the replication factor)");
    CHECK_EQ_STR(run("KVD CONSISTENCY READ 0"),
                 "-ERR consistency level must be between 1 and 3 (the replication factor)");
    CHECK_EQ_STR(run("KVD CONSISTENCY READ"), "-ERR syntax error");
    CHECK_EQ_STR(run("KVD CONSISTENCY SOME"), "-ERR syntax error");
    CHECK_EQ_STR(run("KVD CONSISTENCY"), "+READ 3 WRITE 3"); /* errors changed nothing */
    CHECK_EQ_STR(run("RESET"), "+RESET");
    CHECK_EQ_STR(run("KVD CONSISTENCY"), "+READ 2 WRITE 2");
    teardown();
    CHECK_EQ_STR(run("KVD CONSISTENCY ONE"),
                 "-ERR KVD CONSISTENCY needs cluster mode (cluster-enabled yes)");
}

/* ---- pipeline batches ---- */

static int nreads(void) {
    return fake.nreq - count_writes();
}

/* lines ('|' between commands, ' ' between arguments) as RESP multibulk
 * commands (the look-ahead reads those; an inline command gets none). */
static size_t to_resp(const char *lines, char *out, size_t cap) {
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", lines);
    size_t n = 0;
    char *save1 = NULL;
    for (char *cmd = strtok_r(buf, "|", &save1); cmd; cmd = strtok_r(NULL, "|", &save1)) {
        char *args[64];
        int argc = 0;
        char *save2 = NULL;
        char *a = strtok_r(cmd, " ", &save2);
        while (a && argc < 64) {
            args[argc++] = a;
            a = strtok_r(NULL, " ", &save2);
        }
        n += (size_t)snprintf(out + n, cap - n, "*%d\r\n", argc);
        for (int i = 0; i < argc && n < cap; i++) {
            n += (size_t)snprintf(out + n, cap - n, "$%zu\r\n%s\r\n", strlen(args[i]), args[i]);
        }
    }
    return n < cap ? n : cap;
}

/* Puts the commands of lines in tc's query buffer as one read brings them, and
 * runs the parse loop as the network does. */
static void pipe_in(const char *lines) {
    struct resp_limits lim = {.max_bulk_len = 1 << 20, .max_multibulk_len = 1024,
                              .max_inline_len = 4096};
    if (tc.parser.lim.max_inline_len == 0) {
        resp_parser_init(&tc.parser, &lim);
    }
    static char enc[16384];
    size_t n = to_resp(lines, enc, sizeof(enc));
    if (tc.qcap < tc.qlen + n + 1) {
        tc.qcap = tc.qlen + n + 64;
        tc.qbuf = kv_realloc(tc.qbuf, tc.qcap);
    }
    memcpy(tc.qbuf + tc.qlen, enc, n);
    tc.qlen += n;
    client_process_input(&tc);
}

/* Delivers until nothing is left (bounded); returns how many turns answered. */
static int settle_all(void) {
    int turns = 0;
    while (turns < 20 && deliver() > 0) {
        turns++;
    }
    return turns;
}

static void pipe_done(void) {
    resp_parser_deinit(&tc.parser);
    kv_free(tc.qbuf);
    tc.qbuf = NULL;
    tc.qlen = tc.qcap = tc.qpos = 0;
}

static void test_a_blind_set_ships_without_a_read(void) {
    setup();
    uint64_t before = hlc_now();
    send_cmd("SET k v EX 100");
    CHECK_EQ_INT(nreads(), 0);               /* nothing it replies or stores depends on k */
    CHECK_EQ_INT(count_writes(), 1);
    CHECK(last_write()->rec.v.hlc > before); /* the coordinator's clock */
    CHECK(last_write()->rec.expire_at > 0);
    settle_all();
    CHECK_EQ_STR(output(), "+OK");
    CHECK_EQ_STR(run("SET k w NX"), "$-1");  /* NX reads: k exists */
    CHECK_EQ_INT(nreads(), 1);
    CHECK_EQ_STR(run("SET k w KEEPTTL"), "+OK"); /* keeps what it reads */
    CHECK_EQ_INT(nreads(), 2);
    CHECK_EQ_STR(run("TTL k"), ":100");
    teardown();
}

static void test_a_pipeline_runs_as_one_batch_with_its_replies_in_order(void) {
    setup();
    fake_put_str(0, "n", "10", HLC_MAKE(1000, 0), 2);
    pipe_in("SET k 1|INCR k|GET k|APPEND k x|DEL k|GET k|INCR n|EXISTS k n|PING|GET n");
    /* one round of reads for the batch (n only: k is written blind first) */
    CHECK_EQ_INT(nreads(), 1);
    CHECK_EQ_INT(count_writes(), 0);
    CHECK(tc.flags & CLIENT_WAITING);
    CHECK_EQ_INT(deliver(), 1);              /* the read: every command up to PING runs */
    CHECK_EQ_INT(count_writes(), 5);         /* SET INCR APPEND DEL INCR, each its own */
    CHECK(tc.flags & CLIENT_WAITING);        /* PING waits for the batch's writes */
    uint64_t prev = 0;
    for (int i = 0; i < fake.nreq; i++) {    /* each command's version above the last */
        if (fake.req[i].write) {
            CHECK(fake.req[i].rec.v.hlc > prev);
            prev = fake.req[i].rec.v.hlc;
        }
    }
    settle_all();
    CHECK_EQ_STR(output(), "+OK :2 $1 2 :2 :1 $-1 :11 :1 +PONG $2 11");
    CHECK(tc.cop == NULL);
    CHECK(tc.hold == 0);
    CHECK(!(tc.flags & CLIENT_WAITING));
    /* the replicas hold the final state */
    CHECK_EQ_STR(run("MGET k n"), "*2 $-1 $2 11");
    pipe_done();
    teardown();
}

static void test_a_batch_write_that_misses_w_rewrites_only_its_commands_replies(void) {
    setup();
    fake.fail_key = "b";
    pipe_in("SET a 1|SET b 2|GET a|INCR b|SET c 3");
    settle_all();
    CHECK_EQ_STR(output(), "+OK "
                           "-NOQUORUM wrote to 1 of 2 required replicas; the write is "
                           "indeterminate $1 1 "
                           "-NOQUORUM wrote to 1 of 2 required replicas; the write is "
                           "indeterminate +OK");
    CHECK(tc.hold == 0);
    CHECK(tc.cop == NULL);
    fake.fail_key = NULL;
    CHECK_EQ_STR(run("MGET a c"), "*2 $1 1 $1 3");
    pipe_done();
    teardown();
}

static void test_a_failed_read_answers_noquorum_for_the_commands_that_need_it(void) {
    setup();
    fake.fail_reads = 1;
    pipe_in("SET a 1|GET a|GET b|SET b 2|GET b");
    settle_all();
    CHECK_EQ_STR(output(), "+OK $1 1 -NOQUORUM 1 of 2 required replicas answered +OK $1 2");
    CHECK(tc.cop == NULL);
    pipe_done();
    teardown();
}

static void test_a_client_freed_mid_batch_cancels_its_writes(void) {
    setup();
    struct client *c = client_create(-1);
    c->authenticated = 1;
    static char in[256];
    size_t n = to_resp("SET a 1|SET b 2|GET a", in, sizeof(in));
    c->qbuf = kv_malloc(n);
    c->qcap = n;
    memcpy(c->qbuf, in, n);
    c->qlen = n;
    client_process_input(c);
    CHECK_EQ_INT(count_writes(), 2);
    CHECK(c->flags & CLIENT_WAITING);
    client_free(c);                          /* disconnects with its writes out */
    for (int i = 0; i < fake.nreq; i++) {
        CHECK_EQ_INT(fake.req[i].cancelled, 1);
    }
    CHECK_EQ_INT(deliver(), 0);              /* no callback runs */
    teardown();
}

static void test_watch_and_keyless_commands_end_a_batch_and_run_after_its_writes(void) {
    setup();
    pipe_in("SET a 1|GET a|WATCH a|SET b 2|DBSIZE|GET b");
    /* SET a, GET a: one batch (a written blind); WATCH is not in it */
    CHECK_EQ_INT(count_writes(), 1);
    CHECK_EQ_INT(nreads(), 0);
    CHECK(tc.flags & CLIENT_WAITING);        /* WATCH waits for the batch's write */
    CHECK_EQ_INT(deliver(), 1);              /* the write: WATCH runs afresh, reads a */
    CHECK_EQ_INT(nreads(), 1);
    CHECK_EQ_INT(fake.req[fake.nreq - 1].write, 0);
    settle_all();
    CHECK_EQ_STR(output(), "+OK $1 1 +OK +OK :2 $1 2");
    CHECK(tc.cop == NULL);
    CHECK(tc.hold == 0);
    /* WATCH noted the version the batch wrote: unchanged, EXEC runs */
    CHECK_EQ_STR(run("MULTI"), "+OK");
    CHECK_EQ_STR(run("GET a"), "+QUEUED");
    CHECK_EQ_STR(run("EXEC"), "*1 $1 1");
    pipe_done();
    teardown();
}

static void test_a_batch_write_in_flight_aborts_a_watching_exec(void) {
    setup();
    fake_put_str(0, "k", "1", 100, 7);
    CHECK_EQ_STR(run("WATCH k"), "+OK");
    CHECK_EQ_STR(run("MULTI"), "+OK");
    CHECK_EQ_STR(run("SET k 3"), "+QUEUED");
    struct client *c = client_create(-1);    /* another client's batch writes k */
    c->authenticated = 1;
    static char in[256];
    size_t n = to_resp("SET k 5|GET k", in, sizeof(in));
    c->qbuf = kv_malloc(n);
    c->qcap = n;
    memcpy(c->qbuf, in, n);
    c->qlen = n;
    client_process_input(c);
    CHECK_EQ_INT(count_writes(), 1);
    struct fake_req *w = last_write();
    w->cancelled = 1;                        /* held: not answered yet */
    /* the replicas still hold version 100: only the mark tells EXEC */
    CHECK_EQ_STR(run("EXEC"), "*-1");
    CHECK_EQ_INT(count_writes(), 1);
    w->cancelled = 0;
    CHECK_EQ_INT(deliver(), 1);              /* the batch's write lands: mark gone */
    CHECK(c->cop == NULL);
    client_free(c);
    CHECK_EQ_STR(run("WATCH k"), "+OK");
    CHECK_EQ_STR(run("MULTI"), "+OK");
    CHECK_EQ_STR(run("SET k 3"), "+QUEUED");
    CHECK_EQ_STR(run("EXEC"), "*1 +OK");
    teardown();
}

static void test_cluster_off_runs_on_the_node_as_always(void) {
    setup();
    teardown();                              /* detached: cluster-enabled no */
    CHECK_EQ_STR(run("SET k v"), "+OK");
    CHECK_EQ_INT(fake.nreq, 0);
    CHECK(ks_find(server.db[0], "k", 1, ks_token("k", 1)) != NULL);
    CHECK_EQ_STR(run("DBSIZE"), ":1");
}

int main(void) {
    TEST_RUN(test_set_ships_one_record_with_a_version_above_what_was_read);
    TEST_RUN(test_incr_runs_on_the_prefetched_value);
    TEST_RUN(test_a_read_changes_nothing_and_is_not_held);
    TEST_RUN(test_a_failed_write_rewrites_the_reply_into_noquorum);
    TEST_RUN(test_a_failed_read_answers_noquorum_and_ships_nothing);
    TEST_RUN(test_del_ships_a_tombstone);
    TEST_RUN(test_mset_ships_every_key_with_one_version);
    TEST_RUN(test_a_client_freed_while_waiting_cancels_its_requests);
    TEST_RUN(test_multi_exec_prefetches_every_queued_key_at_exec);
    TEST_RUN(test_exec_with_a_failed_write_is_rewritten_whole);
    TEST_RUN(test_fanout_commands_inside_multi_are_refused);
    TEST_RUN(test_keyless_commands_scan_the_ring_in_steps);
    TEST_RUN(test_scan_cursor_rounds_an_unaligned_range_end_down);
    TEST_RUN(test_flush_goes_to_the_cluster_at_one_version);
    TEST_RUN(test_watch_aborts_exec_when_a_watched_version_changed);
    TEST_RUN(test_the_sole_member_answers_fanout_commands_from_its_data);
    TEST_RUN(test_not_ready_answers_clusterdown);
    TEST_RUN(test_clock_skew_refuses_writes_but_not_reads);
    TEST_RUN(test_consistency_sets_the_levels_used);
    TEST_RUN(test_a_blind_set_ships_without_a_read);
    TEST_RUN(test_a_pipeline_runs_as_one_batch_with_its_replies_in_order);
    TEST_RUN(test_a_batch_write_that_misses_w_rewrites_only_its_commands_replies);
    TEST_RUN(test_a_failed_read_answers_noquorum_for_the_commands_that_need_it);
    TEST_RUN(test_a_client_freed_mid_batch_cancels_its_writes);
    TEST_RUN(test_watch_and_keyless_commands_end_a_batch_and_run_after_its_writes);
    TEST_RUN(test_a_batch_write_in_flight_aborts_a_watching_exec);
    TEST_RUN(test_cluster_off_runs_on_the_node_as_always);
    TEST_MAIN_END();
}
