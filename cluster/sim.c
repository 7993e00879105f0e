/* cluster/sim.c: the deterministic cluster simulator. See sim.h.
 *
 * HOW IT WORKS. One event queue ordered by (virtual ms, sequence number) drives
 * everything: message deliveries, op timers, client steps, faults and hint
 * delivery ticks. Processing an event may schedule others; nothing reads a real
 * clock or an address-dependent order, and one xorshift generator seeded from the
 * options draws every random choice, so a seed is a replayable run.
 * A run has three phases: the workload (clients + faults), healing (faults stop,
 * partitions heal, nodes restart, hints drain), and a repair pass (a read at ALL
 * of every key), with the invariant checks of sim.h along the way and at the end.
 */
#include "cluster/sim.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cluster/fields.h"
#include "cluster/gossip.h"
#include "cluster/hints.h"
#include "cluster/join.h"
#include "cluster/mem.h"
#include "cluster/msg.h"
#include "cluster/node.h"
#include "cluster/op.h"
#include "cluster/repair.h"
#include "cluster/replica.h"
#include "cluster/ring.h"
#include "proto/hlc.h"
#include "proto/resp.h"

#define SIM_START_MS 1000000u /* virtual time starts here: skews stay positive */
#define HINT_TICK_MS 20
#define THINK_MAX_MS 5
#define KEY_MAX 24

/* ---- events ---- */

enum { EV_DELIVER, EV_OP_TIMER, EV_CLIENT, EV_CLIENT_TIMEOUT, EV_FAULT, EV_HINT_TICK,
       EV_GOSSIP_TICK, EV_GOSSIP_DELIVER, EV_GOSSIP_PHASE, EV_JOIN, EV_STREAM_TIMEOUT,
       EV_REPAIR_TICK, EV_REPAIR_TIMEOUT, EV_ABSENCE };

struct sim_msg {
    int from, to;    /* node indexes */
    int is_reply;
    int is_hint;     /* a hint delivery: id is the hint's seq */
    int verb;        /* the request's verb (replies: of the request answered) */
    uint64_t id;     /* the coordinator's op id, or the hint's seq */
    uint64_t epoch;  /* the requester's incarnation: a reply to an earlier one is
                        dropped (its connections died with it) */
    char *bytes;     /* RESP bytes, owned */
    size_t len;
};

struct ev {
    uint64_t at, seq;
    int kind;
    int node;           /* EV_OP_TIMER, EV_HINT_TICK */
    int client;         /* EV_CLIENT, EV_CLIENT_TIMEOUT */
    uint64_t id;        /* op id */
    struct sim_msg *m;  /* EV_DELIVER */
};

/* ---- nodes ---- */

struct sim_entry {
    unsigned db;
    char key[KEY_MAX];
    size_t klen;
    struct op_record rec; /* found = 1 */
};

struct sim;

struct sim_node {
    struct sim *sim;
    int idx;
    uint32_t tag;
    int up;
    uint64_t epoch;        /* incarnation: +1 per crash */
    struct msg_buf disk;   /* persistent mode: the hints while it is down */
    uint64_t paused_until; /* SIGSTOP: its events wait until then */
    int64_t skew;
    uint64_t hlc;
    struct sim_entry *store;
    size_t nstore;
    struct cnode node;     /* the coordinator (cluster/node.c), while live */
    int live;              /* node initialised: not crashed */
    uint64_t armed_dl;     /* the op deadline an EV_OP_TIMER is queued for */
    /* Merkle repair (merkle_repair): the store as repair.h sees it, the session
     * running and the next of the ring's ranges to visit */
    struct cluster_store cst;
    struct repair_session rs;
    int rs_active;
    size_t rs_next;
    /* background repair (repair_every_ms), as repair_rt.c keeps it: per range the
     * start (this node's clock) of its last complete session, 0 none since the
     * node started (not persisted); the running session's range and start */
    uint64_t *complete_start;
    size_t rs_span;
    uint64_t session_start;
    int rs_final;          /* the running session belongs to the final pass */
    uint64_t next_pass;    /* virtual ms of its next pass */
    uint64_t down_since;   /* virtual ms of its last crash */
    int held;              /* back after a long absence: refuses READ (repairer_hold) */
    uint64_t held_since;   /* its clock when it came back */
    uint64_t held_at;      /* virtual ms when it came back */
    struct gossip *g;      /* opts.gossip: its membership view (NULL: none) */
    uint64_t generation;   /* +1 per restart */
};

/* ---- history ---- */

enum { W_PENDING, W_OK, W_FAILED, W_UNKNOWN };

struct sim_write {
    int key;
    struct kv_version v;
    int deleted;
    char val[32];
    size_t vlen;
    uint64_t issued, acked; /* history sequence numbers; acked 0 = not acked */
    int status;
    int field;              /* hashes: the field HSET or HDEL wrote; -1: the whole key */
    int field_del;          /* hashes: HDEL */
};

struct sim_read { /* a completed GET, for monotonic reads */
    int key;
    uint64_t started, completed; /* history sequence numbers */
    int found, deleted;
    struct kv_version v;
    struct kv_version fv[SIM_HASH_FIELDS]; /* hashes: each field's deciding version */
    unsigned char fhas[SIM_HASH_FIELDS];   /* hashes: the field has a value */
};

struct sim_client {
    int busy, done_ops;
    uint64_t cur;       /* op id in progress */
    int key, is_write;
    size_t write;       /* index into writes when is_write */
    uint64_t started;   /* history sequence number */
};

struct sim {
    struct sim_opts o;
    struct sim_result *res;
    uint64_t rng;
    uint64_t now, evseq, hseq, next_id;
    struct ev *heap;
    size_t nheap, capheap;
    struct sim_node nodes[SIM_MAX_NODES];
    struct ring ring;
    struct sim_client *clients;
    struct sim_write *writes;
    size_t nwrites, capwrites;
    struct sim_read *reads;
    size_t nreads, capreads;
    uint64_t wiped[SIM_MAX_NODES][64]; /* history seq of store losses per node */
    size_t nwiped[SIM_MAX_NODES];
    int cut[SIM_MAX_NODES][SIM_MAX_NODES];
    int healing;
    struct resp_parser parser;
    redisReader *reader;
    struct repair_span *spans; /* the ring's ranges (merkle_repair) */
    size_t nspans;
    /* join (opts.join): the ring with the joiner, the phase, the stream plan */
    struct ring future;
    int join_phase;            /* JP_* */
    struct join_task *jt;      /* the joiner's plan; retried ranges appended */
    size_t njt, jnext, jcur;
    uint64_t jwait;            /* the stream request in flight (0: none) */
    int jnode;                 /* the node that streams: the mover, or (remove) the
                                  gainer in hand */
    uint64_t repair_id;        /* the next repair session's first request id */
    int final_pass;            /* the repair pass at the end runs: no background pass */
    uint64_t final_partial;    /* sessions of that pass that ended partial */
    uint64_t absent_until;     /* absent_ms: node 2 stays down until then */
};

#define SIM_ABSENT 1 /* the node that goes away for long (absent_ms): node 2 */

enum { JP_NONE, JP_OUT, JP_PENDING, JP_STREAM, JP_IN };

#define SIM_VERB_REPAIR 100 /* a repair session's request (sim_msg.verb) */

static uint64_t rnd(struct sim *s) {
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

static uint64_t rnd_below(struct sim *s, uint64_t n) {
    return n ? rnd(s) % n : 0;
}

static int chance(struct sim *s, double p) {
    return (double)(rnd(s) >> 11) / 9007199254740992.0 < p;
}

static void trace(struct sim *s, const char *fmt, ...) {
    if (!s->o.verbose) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%8llu] ", (unsigned long long)(s->now - SIM_START_MS));
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void violation(struct sim *s, const char *fmt, ...) {
    if (!s->res->ok) {
        return; /* keep the first */
    }
    s->res->ok = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->res->why, sizeof s->res->why, fmt, ap);
    va_end(ap);
    trace(s, "VIOLATION %s", s->res->why);
}

/* ---- heap ---- */

static int ev_less(const struct ev *a, const struct ev *b) {
    return a->at != b->at ? a->at < b->at : a->seq < b->seq;
}

static void ev_push(struct sim *s, struct ev e) {
    e.seq = s->evseq++;
    if (s->nheap == s->capheap) {
        s->capheap = s->capheap ? s->capheap * 2 : 256;
        s->heap = cl_realloc(s->heap, s->capheap * sizeof *s->heap);
    }
    size_t i = s->nheap++;
    while (i > 0 && ev_less(&e, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
}

static struct ev ev_pop(struct sim *s) {
    struct ev top = s->heap[0], last = s->heap[--s->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->nheap) {
            break;
        }
        if (c + 1 < s->nheap && ev_less(&s->heap[c + 1], &s->heap[c])) {
            c++;
        }
        if (!ev_less(&s->heap[c], &last)) {
            break;
        }
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->nheap) {
        s->heap[i] = last;
    }
    return top;
}

static void at(struct sim *s, uint64_t when, int kind, int node, int client, uint64_t id) {
    ev_push(s, (struct ev){when, 0, kind, node, client, id, NULL});
}

/* ---- keys ---- */

static unsigned key_db(const struct sim *s, int k) {
    return (unsigned)(k % s->o.dbs);
}

static size_t key_name(int k, char *buf) {
    return (size_t)snprintf(buf, KEY_MAX, "key:%d", k);
}

static size_t key_replicas(const struct sim *s, int k, uint32_t *tags) {
    char name[KEY_MAX];
    size_t len = key_name(k, name);
    uint32_t idx[RING_MAX_REPLICAS];
    size_t n = ring_replicas(&s->ring, ring_key_token(name, len), (size_t)s->o.n, idx);
    for (size_t i = 0; i < n; i++) {
        tags[i] = s->ring.members[idx[i]].tag;
    }
    return n;
}

static int node_of(uint32_t tag) {
    return (int)tag - 1; /* tags are 1..nodes */
}

/* ---- network ---- */

static void net_send(struct sim *s, int from, int to, int is_reply, int is_hint, int verb,
                     uint64_t id, uint64_t epoch, struct msg_buf *bytes) {
    struct sim_msg *m = cl_calloc(1, sizeof *m);
    *m = (struct sim_msg){from, to, is_reply, is_hint, verb, id, epoch, bytes->p, bytes->len};
    memset(bytes, 0, sizeof *bytes); /* the message owns the bytes now */
    s->res->st.messages++;
    uint64_t delay = 1 + rnd_below(s, s->o.delay_max_ms);
    if (from != to && !s->healing) {
        if (chance(s, s->o.drop)) {
            s->res->st.dropped++;
            free(m->bytes);
            free(m);
            return;
        }
        if (chance(s, s->o.slow)) {
            delay += s->o.timeout_ms + rnd_below(s, 2 * s->o.timeout_ms);
        }
    }
    ev_push(s, (struct ev){s->now + delay, 0, EV_DELIVER, to, -1, id, m});
}

/* ---- the fake store ---- */

static struct sim_entry *store_find(struct sim_node *n, unsigned db, const char *key,
                                    size_t klen) {
    for (size_t i = 0; i < n->nstore; i++) {
        struct sim_entry *e = &n->store[i];
        if (e->db == db && e->klen == klen && memcmp(e->key, key, klen) == 0) {
            return e;
        }
    }
    return NULL;
}

static void entry_set(struct sim_entry *e, const struct msg_record *rec) {
    char *val = rec->vlen ? cl_memdup(rec->val, rec->vlen) : NULL; /* rec may borrow e's */
    free(e->rec.val);
    e->rec = (struct op_record){1, rec->v, rec->deleted, rec->expire_at, val, rec->vlen,
                                rec->fields};
}

/* a big hash's field records merge per field (fields.h) into what is held: 1
 * when that changed it */
static int store_merge_fields(struct sim_entry *e, const struct msg_record *rec) {
    struct msg_record cur = {e->rec.v, e->rec.deleted, e->rec.expire_at, e->rec.val,
                             e->rec.vlen, e->rec.fields};
    if (fields_covers(&cur, rec)) {
        return 0;
    }
    struct msg_buf b = {0};
    struct msg_record m;
    fields_merge(&cur, rec, &b, &m);
    entry_set(e, &m);
    msg_buf_free(&b);
    return 1;
}

/* last-write-wins apply (field records: merged per field): 1 when applied, 0
 * when what is held is newer or equal */
static int store_apply(struct sim_node *n, unsigned db, const char *key, size_t klen,
                       const struct msg_record *rec) {
    struct sim_entry *e = store_find(n, db, key, klen);
    if (e && (rec->fields || e->rec.fields) && !n->sim->o.hash_lww) {
        return store_merge_fields(e, rec);
    }
    if (e && kv_record_cmp(rec->v, rec->deleted, e->rec.v, e->rec.deleted) <= 0) {
        return 0;
    }
    if (e == NULL) {
        if (klen > KEY_MAX) {
            return 0;
        }
        n->store = cl_realloc(n->store, (n->nstore + 1) * sizeof *n->store);
        e = &n->store[n->nstore++];
        memset(e, 0, sizeof *e);
        e->db = db;
        memcpy(e->key, key, klen);
        e->klen = klen;
    }
    entry_set(e, rec);
    return 1;
}

static void store_wipe(struct sim_node *n) {
    for (size_t i = 0; i < n->nstore; i++) {
        free(n->store[i].rec.val);
    }
    free(n->store);
    n->store = NULL;
    n->nstore = 0;
}

static uint64_t node_wall(const struct sim *s, const struct sim_node *n) {
    return (uint64_t)((int64_t)s->now + n->skew);
}

/* ---- the replica side: cluster/replica.c on the fake store ---- */

static int fake_read(void *ctx, unsigned db, const char *key, size_t klen,
                     struct msg_record *out) {
    struct sim_entry *e = store_find(ctx, db, key, klen);
    if (e == NULL) {
        return 0;
    }
    *out = (struct msg_record){e->rec.v, e->rec.deleted, e->rec.expire_at, e->rec.val,
                               e->rec.vlen, e->rec.fields};
    return 1;
}

static int fake_apply(void *ctx, unsigned db, const char *key, size_t klen,
                      const struct msg_record *rec) {
    return store_apply(ctx, db, key, klen, rec);
}

static void fake_observe(void *ctx, uint64_t hlc) {
    struct sim_node *n = ctx;
    kv_hlc_observe(&n->hlc, hlc);
}

static int fake_range(void *ctx, unsigned db, uint64_t from, uint64_t to, cluster_range_fn *fn,
                      void *arg);

/* one request on the replica side: repair's verbs on the fake store as the
 * runtime's peer side answers them, the rest through replica.c */
static void repair_peer_side(struct sim_node *n, const struct kv_slice *argv, size_t argc,
                             struct msg_buf *out) {
    struct cluster_store st = {n, fake_read, fake_apply, fake_observe, NULL, fake_range};
    if (argc >= 2 && argv[1].len == 6 && memcmp(argv[1].p, "MERKLE", 6) == 0) {
        merkle_peer_answer(&st, argv, argc, out);
    } else if (argc >= 2 && argv[1].len == 5 && memcmp(argv[1].p, "RANGE", 5) == 0) {
        repair_range_answer(&st, argv, argc, out);
    } else {
        struct replica_store rs = {n, fake_read, fake_apply, fake_observe};
        replica_handle(&rs, argv, argc, out);
    }
}

static void replica_deliver(struct sim *s, struct sim_msg *m) {
    struct sim_node *n = &s->nodes[m->to];
    size_t used = 0;
    resp_parser_reset(&s->parser);
    struct msg_buf out = {0};
    if (resp_parse(&s->parser, m->bytes, m->len, &used) != RESP_OK || used != m->len) {
        violation(s, "node %u could not parse a request it was sent", n->tag);
        msg_reply_error(&out, "bad request");
    } else if (n->held && s->parser.argc >= 2 && s->parser.argv[1].len == 4 &&
               memcmp(s->parser.argv[1].p, "READ", 4) == 0) {
        /* back after a long absence, not repaired yet: its data may lack what
         * the others hold, and counted in a quorum it would hand that out */
        s->res->st.held_refused++;
        msg_reply_error(&out, "repairing after a long absence");
    } else {
        repair_peer_side(n, s->parser.argv, (size_t)s->parser.argc, &out);
    }
    net_send(s, m->to, m->from, 1, m->is_hint, m->verb, m->id, m->epoch, &out);
}

/* ---- the coordinator side: cluster/node.c, driven as the runtime drives it ---- */

static void client_done(struct sim *s, int client, const struct op *op);
static void data_gossip_new(struct sim *s, struct sim_node *n);

/* user pointers of ops: the client index + 1 (0: the repair pass) */
static void *client_user(int client) {
    return (void *)(intptr_t)(client + 1);
}

static int io_is_up(void *ctx, uint32_t tag) {
    struct sim_node *n = ctx;
    if (n->g == NULL || tag == n->tag) {
        return 1; /* without gossip a message to a down node is lost and times out */
    }
    long k = gossip_find_tag(n->g, tag);
    int up = k < 0 || gossip_health(n->g, (size_t)k, n->sim->now, NULL) != GOSSIP_DOWN;
    n->sim->res->st.seen_down += !up;
    return up;
}

static void io_send(void *ctx, uint32_t tag, int verb, const struct op *op) {
    struct sim_node *n = ctx;
    struct sim *s = n->sim;
    struct msg_argv a;
    if (verb == MSG_READ) {
        struct kv_slice k = {op->key, op->klen};
        msg_encode_read(&a, op->db, &k, 1);
    } else {
        struct msg_buf diff = {0};
        struct msg_record r = op_send_record(op, tag, &diff);
        msg_encode_write(&a, op->db, op->key, op->klen, &r);
        msg_buf_free(&diff);
    }
    struct msg_buf b = {0};
    msg_argv_to_resp(&a, &b);
    msg_argv_free(&a);
    net_send(s, n->idx, node_of(tag), 0, 0, verb, op->id, n->epoch, &b);
}

static void io_completed(void *ctx, const struct op *op, void *user) {
    struct sim_node *n = ctx;
    client_done(n->sim, (int)(intptr_t)user - 1, op);
}

static void io_send_hint(void *ctx, uint32_t target, const struct hint *h) {
    struct sim_node *n = ctx;
    struct msg_argv a;
    msg_encode_write(&a, h->db, h->key, h->klen, &h->rec);
    struct msg_buf b = {0};
    msg_argv_to_resp(&a, &b);
    msg_argv_free(&a);
    net_send(n->sim, n->idx, node_of(target), 0, 1, MSG_WRITE, h->seq, n->epoch, &b);
}

static void node_live_init(struct sim *s, struct sim_node *n) {
    struct cnode_io io = {n, io_is_up, io_send, io_completed, io_send_hint};
    cnode_init(&n->node, n->tag, s->o.timeout_ms, s->o.hint_window_ms, s->o.hint_max_bytes,
               &io);
    n->live = 1;
    n->armed_dl = 0;
}

/* the node's counters into the run's, before its coordinator goes */
static void node_fold_stats(struct sim *s, struct sim_node *n) {
    s->res->st.hints_added += n->node.st.hints_added;
    s->res->st.hints_delivered += n->node.st.hints_delivered;
    n->node.st.hints_added = n->node.st.hints_delivered = 0;
}

/* keeps an EV_OP_TIMER queued for the node's earliest op deadline */
static void node_arm(struct sim *s, int node) {
    struct sim_node *n = &s->nodes[node];
    uint64_t dl = n->live ? cnode_next_deadline(&n->node) : 0;
    if (dl && dl != n->armed_dl) {
        n->armed_dl = dl;
        at(s, dl, EV_OP_TIMER, node, -1, 0);
    }
}

static size_t write_replicas(const struct sim *s, int k, uint32_t *tags, size_t *npending);

static void start_read(struct sim *s, int node, int client, int k, size_t need) {
    uint32_t tags[RING_MAX_REPLICAS];
    size_t npending;
    size_t nrep = write_replicas(s, k, tags, &npending);
    if (s->o.read_skip_pending) {
        nrep -= npending, npending = 0;
    }
    char name[KEY_MAX];
    size_t len = key_name(k, name);
    struct sim_node *n = &s->nodes[node];
    n->node.next_id = s->next_id; /* ids unique over every node and incarnation */
    cnode_read_on_pending(&n->node, tags, nrep, npending, key_db(s, k), name, len, need, s->now,
                          client_user(client));
    s->next_id = n->node.next_id;
    node_arm(s, node);
}

/* an op's replicas: during a join or leave also those that will replicate the
 * key once it is done, as pending replicas (ring.h ring_write_set; a read sends
 * them its winner) */
static size_t write_replicas(const struct sim *s, int k, uint32_t *tags, size_t *npending) {
    *npending = 0;
    if ((s->join_phase != JP_PENDING && s->join_phase != JP_STREAM) ||
        s->o.join_skip_pending) {
        return key_replicas(s, k, tags);
    }
    char name[KEY_MAX];
    size_t len = key_name(k, name);
    return ring_write_set(&s->ring, &s->future, ring_key_token(name, len), (size_t)s->o.n,
                          tags, npending);
}

static void start_write(struct sim *s, int node, int client, int k, size_t wi) {
    struct sim_write *w = &s->writes[wi];
    uint32_t tags[RING_MAX_REPLICAS];
    size_t npending;
    size_t nrep = write_replicas(s, k, tags, &npending);
    char name[KEY_MAX];
    size_t len = key_name(k, name);
    struct msg_record r = {w->v, w->deleted, 0, w->deleted ? NULL : w->val, w->vlen};
    struct msg_buf delta = {0};
    if (w->field >= 0) { /* HSET/HDEL: a delta of one field record at its version */
        char f[8];
        size_t flen = (size_t)snprintf(f, sizeof f, "f%d", w->field);
        fields_put_head(&delta, (struct kv_version){0, 0}, 1);
        struct fields_entry e = {w->v, w->field_del, f, flen, w->val, w->vlen};
        fields_put(&delta, &e);
        r = (struct msg_record){w->v, 0, 0, delta.p, delta.len, 1};
    }
    struct sim_node *n = &s->nodes[node];
    s->clients[client].cur = s->next_id;
    n->node.next_id = s->next_id;
    cnode_write_on_pending(&n->node, tags, nrep, npending, key_db(s, k), name, len, &r,
                           (size_t)s->o.w, s->now, client_user(client));
    msg_buf_free(&delta);
    s->next_id = n->node.next_id;
    node_arm(s, node);
}

static void repair_reply(struct sim *s, int node, uint64_t id, const redisReply *r);

static void coord_reply(struct sim *s, struct sim_msg *m) {
    struct sim_node *n = &s->nodes[m->to];
    redisReaderFeed(s->reader, m->bytes, m->len);
    void *rp = NULL;
    if (redisReaderGetReply(s->reader, &rp) != REDIS_OK || rp == NULL) {
        violation(s, "node %u could not parse a reply", n->tag);
        redisReaderFree(s->reader);
        s->reader = redisReaderCreate();
        return;
    }
    redisReply *r = rp;
    uint32_t from = s->nodes[m->from].tag;
    char err[128];
    if (m->verb == SIM_VERB_REPAIR) {
        repair_reply(s, m->to, m->id, r);
        freeReplyObject(r);
        return;
    }
    if (m->is_hint) {
        int applied;
        int ok = msg_decode_write_reply(r, &applied, err, sizeof err) == MSG_OK;
        cnode_on_hint_reply(&n->node, from, m->id, ok, s->now);
    } else if (m->verb == MSG_READ) {
        struct msg_item item;
        int rc = msg_decode_read_reply(r, 1, &item, err, sizeof err);
        if (rc == MSG_INVALID) { /* an error reply (MSG_REMOTE) is a failed replica */
            violation(s, "node %u: bad READ reply from %u: %s", n->tag, from, err);
        }
        if (rc == MSG_OK && item.found && cnode_live(&n->node, m->id)) {
            kv_hlc_observe(&n->hlc, item.rec.v.hlc);
        }
        cnode_on_read_reply(&n->node, m->id, from, rc == MSG_OK ? &item : NULL, s->now);
    } else {
        int applied = 0;
        int rc = msg_decode_write_reply(r, &applied, err, sizeof err);
        if (rc != MSG_OK) {
            violation(s, "node %u: bad WRITE reply from %u: %s", n->tag, from, err);
        }
        cnode_on_write_reply(&n->node, m->id, from, rc == MSG_OK, s->now);
    }
    /* a late reply of a finished op is ignored by cnode */
    node_arm(s, m->to);
    freeReplyObject(r);
}

static void deliver(struct sim *s, struct sim_msg *m) {
    int dead = !s->nodes[m->to].up || (s->cut[m->from][m->to] && !s->healing) ||
               (m->is_reply && m->epoch != s->nodes[m->to].epoch);
    if (dead) {
        s->res->st.dropped++;
    } else if (m->is_reply) {
        coord_reply(s, m);
    } else {
        replica_deliver(s, m);
    }
    free(m->bytes);
    free(m);
}

/* ---- hints delivery: hints_due on a timer and after each ack ---- */

static void hint_tick(struct sim *s, int node) {
    struct sim_node *n = &s->nodes[node];
    if (!n->up) {
        return;
    }
    cnode_hints_send(&n->node, s->now);
    at(s, s->now + HINT_TICK_MS, EV_HINT_TICK, node, -1, 0);
}

/* ---- clients and history ---- */

static size_t write_new(struct sim *s, int k, struct kv_version v, int deleted) {
    for (size_t i = 0; i < s->nwrites; i++) {
        if (kv_version_cmp(s->writes[i].v, v) == 0) {
            violation(s, "version %llu/%u issued twice", (unsigned long long)v.hlc, v.node);
        }
    }
    if (s->nwrites == s->capwrites) {
        s->capwrites = s->capwrites ? s->capwrites * 2 : 256;
        s->writes = cl_realloc(s->writes, s->capwrites * sizeof *s->writes);
    }
    struct sim_write *w = &s->writes[s->nwrites];
    memset(w, 0, sizeof *w);
    w->key = k;
    w->v = v;
    w->deleted = deleted;
    if (!deleted) {
        w->vlen = (size_t)snprintf(w->val, sizeof w->val, "v%llu.%u",
                                   (unsigned long long)s->nwrites, v.node);
    }
    w->issued = ++s->hseq;
    w->status = W_PENDING;
    w->field = -1;
    return s->nwrites++;
}

/* 1 when a replica of key k lost its store after history point since */
static int wiped_since(const struct sim *s, int k, uint64_t since) {
    uint32_t tags[RING_MAX_REPLICAS];
    size_t n = key_replicas(s, k, tags);
    for (size_t i = 0; i < n; i++) {
        int node = node_of(tags[i]);
        for (size_t j = 0; j < s->nwiped[node]; j++) {
            if (s->wiped[node][j] > since) {
                return 1;
            }
        }
    }
    return 0;
}

static int write_exempt(const struct sim *s, const struct sim_write *w) {
    return wiped_since(s, w->key, w->issued);
}

/* With tombstone GC (gc_grace_ms) a collected tombstone reads as nothing, so
 * "absent" (nothing, or a tombstone of any version) is a right answer where the
 * key was deleted: when some DEL of key k (acknowledged or not: its tombstone may
 * have been applied, then collected) has a version >= v. A value older than
 * that DEL is still wrong: a resurrection. */
static int absent_covers(const struct sim *s, int k, const struct op_record *r,
                         struct kv_version v) {
    if (!s->o.gc_grace_ms || (r->found && !r->deleted)) {
        return 0;
    }
    for (size_t i = 0; i < s->nwrites; i++) {
        const struct sim_write *w = &s->writes[i];
        if (w->key == k && w->deleted && kv_version_cmp(w->v, v) >= 0) {
            return 1;
        }
    }
    return 0;
}

/* monotonic reads: a read that started after another read of the key completed
 * returns that read's record or a newer one (what blocking read repair buys) */
static void check_monotonic(struct sim *s, int k, uint64_t started, const struct op_record *r) {
    for (size_t i = 0; i < s->nreads; i++) {
        const struct sim_read *p = &s->reads[i];
        if (p->key != k || p->completed >= started || !p->found || wiped_since(s, k, p->started)) {
            continue;
        }
        if ((!r->found || kv_record_cmp(r->v, r->deleted, p->v, p->deleted) < 0) &&
            !absent_covers(s, k, r, p->v)) {
            violation(s, "key:%d non-monotonic read: got %s %llu/%u after an earlier read "
                         "returned version %llu/%u",
                      k, r->found ? "version" : "nothing", (unsigned long long)r->v.hlc,
                      r->v.node, (unsigned long long)p->v.hlc, p->v.node);
            return;
        }
    }
    if (s->nreads == s->capreads) {
        s->capreads = s->capreads ? s->capreads * 2 : 256;
        s->reads = cl_realloc(s->reads, s->capreads * sizeof *s->reads);
    }
    s->reads[s->nreads++] = (struct sim_read){k, started, ++s->hseq, r->found, r->deleted, r->v};
}

static int rec_vs_write(const struct op_record *r, const struct sim_write *w) {
    if (!r->found) {
        return -1;
    }
    return kv_record_cmp(r->v, r->deleted, w->v, w->deleted);
}

/* ---- big hashes (opts.hashes): each field checked on its own ---- */

/* Field f of a hash as record r holds it: the version that decides it (its
 * entry's; else the floor's, or a tombstone's: what deleted it; 0 for nothing)
 * and its value when it has one. ok 0: r is not a record a hash can be. */
struct field_state {
    int ok, has;
    struct kv_version v;
    const char *val;
    size_t vlen;
};

static struct field_state field_of(const struct op_record *r, int f) {
    struct field_state st = {1, 0, {0, 0}, NULL, 0};
    if (!r->found || (!r->fields && r->deleted)) {
        st.v = r->found ? r->v : st.v;
        return st;
    }
    struct kv_version floor;
    uint32_t count;
    if (!r->fields || fields_check(r->val, r->vlen, r->v, &floor, &count, NULL, 0) != MSG_OK) {
        st.ok = 0;
        return st;
    }
    char name[8];
    size_t nlen = (size_t)snprintf(name, sizeof name, "f%d", f);
    st.v = floor;
    struct fields_iter it;
    struct fields_entry e;
    fields_iter_init(&it, r->val, r->vlen);
    while (fields_next(&it, &e)) {
        if (e.flen == nlen && memcmp(e.f, name, nlen) == 0) {
            st = (struct field_state){1, !e.deleted, e.v, e.val, e.vlen};
        }
    }
    return st;
}

/* 1 when write w decides field f: an HSET or HDEL of f, or a DEL of the key */
static int write_touches(const struct sim_write *w, int f) {
    return w->field == f || w->field < 0;
}

/* An absent field is a right answer where a write at or above version v deleted
 * it (an HDEL of it or a DEL of the key, acknowledged or not): which version
 * stands for the absence (a floor, a tombstone) is the store's business. */
static int field_deleted_since(const struct sim *s, int k, int f, struct kv_version v) {
    for (size_t i = 0; i < s->nwrites; i++) {
        const struct sim_write *w = &s->writes[i];
        if (w->key == k && write_touches(w, f) && (w->field < 0 || w->field_del) &&
            kv_version_cmp(w->v, v) >= 0) {
            return 1;
        }
    }
    return 0;
}

/* 1 when field state st keeps write w (of key k, deciding field f) */
static int field_keeps(const struct sim *s, int k, int f, const struct field_state *st,
                       const struct sim_write *w) {
    return kv_version_cmp(st->v, w->v) >= 0 || (!st->has && field_deleted_since(s, k, f, w->v));
}

/* a field value read back is exactly one HSET made */
static int field_value_made(const struct sim *s, int k, int f, const struct field_state *st) {
    for (size_t i = 0; i < s->nwrites; i++) {
        const struct sim_write *w = &s->writes[i];
        if (w->key == k && w->field == f && !w->field_del && kv_version_cmp(w->v, st->v) == 0) {
            return st->vlen == w->vlen && memcmp(st->val, w->val, w->vlen) == 0;
        }
    }
    return 0;
}

static struct sim_read *read_record(struct sim *s) {
    if (s->nreads == s->capreads) {
        s->capreads = s->capreads ? s->capreads * 2 : 256;
        s->reads = cl_realloc(s->reads, s->capreads * sizeof *s->reads);
    }
    struct sim_read *p = &s->reads[s->nreads++];
    memset(p, 0, sizeof *p);
    return p;
}

/* monotonic reads of a hash, field by field: a read that started after another
 * of the key completed decides each field by that read's version or a newer one
 * (or finds it absent where a delete at or above that version stood) */
static void check_hash_monotonic(struct sim *s, int k, uint64_t started,
                                 const struct field_state *st) {
    for (size_t i = 0; i < s->nreads; i++) {
        const struct sim_read *p = &s->reads[i];
        if (p->key != k || p->completed >= started || wiped_since(s, k, p->started)) {
            continue;
        }
        for (int f = 0; f < SIM_HASH_FIELDS; f++) {
            if (kv_version_cmp(st[f].v, p->fv[f]) < 0 &&
                !(!st[f].has && field_deleted_since(s, k, f, p->fv[f]))) {
                violation(s, "key:%d field f%d non-monotonic read: got version %llu/%u after "
                             "an earlier read had %llu/%u",
                          k, f, (unsigned long long)st[f].v.hlc, st[f].v.node,
                          (unsigned long long)p->fv[f].hlc, p->fv[f].node);
                return;
            }
        }
    }
    struct sim_read *p = read_record(s);
    p->key = k, p->started = started, p->completed = ++s->hseq;
    for (int f = 0; f < SIM_HASH_FIELDS; f++) {
        p->fv[f] = st[f].v, p->fhas[f] = (unsigned char)st[f].has;
    }
}

/* invariant 1 for a hash, field by field: every field read back holds a value an
 * HSET made, and is decided by a version at least that of each write of it (or
 * DEL of the key) acknowledged before the read started; reads are monotonic per
 * field when 2R > N */
static void check_hash_read(struct sim *s, int k, uint64_t started, const struct op_record *r) {
    struct field_state sts[SIM_HASH_FIELDS];
    for (int f = 0; f < SIM_HASH_FIELDS; f++) {
        struct field_state st = sts[f] = field_of(r, f);
        if (!st.ok || (st.has && !field_value_made(s, k, f, &st))) {
            violation(s, "key:%d field f%d: read %s no HSET made (version %llu/%u)", k, f,
                      st.ok ? "a value" : "a record", (unsigned long long)st.v.hlc, st.v.node);
            return;
        }
        for (size_t i = 0; s->o.check_reads && i < s->nwrites; i++) {
            const struct sim_write *w = &s->writes[i];
            if (w->key != k || w->status != W_OK || w->acked >= started || !write_touches(w, f) ||
                write_exempt(s, w) || field_keeps(s, k, f, &st, w)) {
                continue;
            }
            violation(s, "key:%d field f%d stale read: got version %llu/%u, but %s of version "
                         "%llu/%u was acknowledged before the read started",
                      k, f, (unsigned long long)st.v.hlc, st.v.node,
                      w->field < 0 ? "DEL" : w->field_del ? "HDEL" : "HSET",
                      (unsigned long long)w->v.hlc, w->v.node);
            return;
        }
    }
    if (s->o.check_reads && 2 * s->o.r > s->o.n) {
        check_hash_monotonic(s, k, started, sts);
    }
}

/* invariant 1 on a read that started at history point `started` */
static void check_read(struct sim *s, int k, uint64_t started, const struct op_record *r) {
    if (s->o.hashes) {
        s->res->st.reads_checked += s->o.check_reads;
        check_hash_read(s, k, started, r);
        return;
    }
    if (r->found) {
        const struct sim_write *src = NULL;
        for (size_t i = 0; i < s->nwrites; i++) {
            if (s->writes[i].key == k && kv_version_cmp(s->writes[i].v, r->v) == 0) {
                src = &s->writes[i];
            }
        }
        if (src == NULL || src->deleted != r->deleted ||
            (!r->deleted && (r->vlen != src->vlen ||
                              (r->vlen && memcmp(r->val, src->val, r->vlen) != 0)))) {
            violation(s, "key:%d read a record no write made (version %llu/%u)", k,
                      (unsigned long long)r->v.hlc, r->v.node);
            return;
        }
    }
    if (!s->o.check_reads) {
        return;
    }
    s->res->st.reads_checked++;
    if (2 * s->o.r > s->o.n) { /* only read quorums that intersect can be monotonic */
        check_monotonic(s, k, started, r);
    }
    for (size_t i = 0; i < s->nwrites; i++) {
        const struct sim_write *w = &s->writes[i];
        if (w->key != k || w->status != W_OK || w->acked >= started || write_exempt(s, w)) {
            continue;
        }
        if (rec_vs_write(r, w) < 0 && !absent_covers(s, k, r, w->v)) {
            violation(s, "key:%d %s: got %s %llu/%u, but write %s of version %llu/%u "
                         "was acknowledged before the read started",
                      k, w->deleted && r->found && !r->deleted ? "resurrection" : "stale read",
                      r->found ? (r->deleted ? "tombstone" : "value") : "nothing",
                      (unsigned long long)r->v.hlc, r->v.node, w->deleted ? "DEL" : w->val,
                      (unsigned long long)w->v.hlc, w->v.node);
            return;
        }
    }
}

static void client_next(struct sim *s, int ci) {
    at(s, s->now + rnd_below(s, THINK_MAX_MS + 1), EV_CLIENT, -1, ci, 0);
}

static void client_done(struct sim *s, int client, const struct op *op) {
    if (client < 0) {
        if (op->result != OP_OK) {
            violation(s, "repair pass: read of %.*s failed", (int)op->klen, op->key);
        }
        return;
    }
    struct sim_client *cl = &s->clients[client];
    if (!cl->busy || cl->cur != op->id) {
        return; /* the client gave up on it */
    }
    cl->busy = 0;
    if (cl->is_write) {
        struct sim_write *w = &s->writes[cl->write];
        w->status = op->result == OP_OK ? W_OK : W_FAILED;
        if (w->status == W_OK) {
            w->acked = ++s->hseq;
            s->res->st.writes_ok++;
        } else {
            s->res->st.writes_failed++;
        }
    } else if (op->result == OP_OK) {
        s->res->st.reads_ok++;
        check_read(s, cl->key, cl->started, &op->rec);
    } else {
        s->res->st.reads_failed++;
    }
    trace(s, "client %d: %s key:%d %s, version %llu/%u, replicas %u %u %u %u (%zu pending), "
             "%zu answered", client, cl->is_write ? "write" : "read", cl->key,
          op->result == OP_OK ? "ok" : "failed", (unsigned long long)op->rec.v.hlc,
          op->rec.v.node, op->nodes[0], op->n > 1 ? op->nodes[1] : 0,
          op->n > 2 ? op->nodes[2] : 0, op->n > 3 ? op->nodes[3] : 0, op->npending, op->acks);
    client_next(s, client);
}

/* 1 when node i has left the cluster (it coordinates nothing any more) */
static int node_left(const struct sim *s, int i) {
    return s->o.leave && s->join_phase == JP_IN && i == s->o.nodes - 1;
}

/* 1 when node i is the member being removed (or removed): dead, never back */
static int node_removed(const struct sim *s, int i) {
    return s->o.remove && s->join_phase != JP_OUT && s->join_phase != JP_NONE &&
           i == s->o.nodes - 1;
}

static int pick_up_node(struct sim *s) {
    int up[SIM_MAX_NODES], n = 0;
    for (int i = 0; i < s->o.nodes; i++) {
        if (s->nodes[i].up && s->nodes[i].paused_until <= s->now && !node_left(s, i)) {
            up[n++] = i;
        }
    }
    return n ? up[rnd_below(s, (uint64_t)n)] : -1;
}

static void client_step(struct sim *s, int ci) {
    struct sim_client *cl = &s->clients[ci];
    if (cl->busy || cl->done_ops >= s->o.ops_per_client) {
        return;
    }
    int node = pick_up_node(s);
    if (node < 0) {
        at(s, s->now + 10, EV_CLIENT, -1, ci, 0);
        return;
    }
    cl->done_ops++;
    cl->busy = 1;
    cl->key = (int)rnd_below(s, (uint64_t)s->o.keys);
    uint64_t dice = rnd_below(s, 100);
    cl->is_write = dice < 55;
    cl->started = ++s->hseq;
    struct sim_node *n = &s->nodes[node];
    if (cl->is_write) {
        struct kv_version v = {kv_hlc_tick(&n->hlc, node_wall(s, n)), n->tag};
        cl->write = write_new(s, cl->key, v, dice >= 45);
        if (s->o.hashes && dice < 45) { /* HSET below 35, HDEL from 35 */
            struct sim_write *w = &s->writes[cl->write];
            w->field = (int)rnd_below(s, SIM_HASH_FIELDS);
            w->field_del = dice >= 35;
            w->vlen = w->field_del ? 0 : w->vlen;
        }
        start_write(s, node, ci, cl->key, cl->write);
    } else {
        uint64_t id = s->next_id;
        cl->cur = id;
        start_read(s, node, ci, cl->key, (size_t)s->o.r);
    }
    at(s, s->now + 4 * (uint64_t)s->o.timeout_ms, EV_CLIENT_TIMEOUT, -1, ci, cl->cur);
}

static void client_timeout(struct sim *s, int ci, uint64_t id) {
    struct sim_client *cl = &s->clients[ci];
    if (!cl->busy || cl->cur != id) {
        return;
    }
    cl->busy = 0; /* the coordinator crashed: the outcome is unknown */
    if (cl->is_write) {
        s->writes[cl->write].status = W_UNKNOWN;
        s->res->st.writes_unknown++;
    } else {
        s->res->st.reads_failed++;
    }
    client_next(s, ci);
}

/* ---- faults ---- */

static void node_crash(struct sim *s, int i) {
    struct sim_node *n = &s->nodes[i];
    n->up = 0;
    s->res->st.crashes++;
    n->epoch++;
    struct hints *h = n->node.hints;
    const struct hints_stats *hs = &h->stats;
    s->res->st.hints_dropped += hs->dropped_window + hs->dropped_bytes + hs->dropped_big;
    n->disk.len = 0;
    if (!s->o.crash_loses_store) { /* persistent mode: hints kept as bytes */
        hints_encode(h, &n->disk);
        trace(s, "node %u keeps %zu hints as %zu bytes", n->tag, h->count, n->disk.len);
    } else {
        store_wipe(n);
        s->res->st.hints_dropped += h->count;
    }
    /* its repair session dies with it, and what it knew of past sessions (not
     * persisted: repair_rt.c) */
    if (n->rs_active) {
        repair_session_free(&n->rs);
        n->rs_active = 0;
    }
    n->rs_next = s->nspans;
    if (n->complete_start) {
        memset(n->complete_start, 0, s->nspans * sizeof *n->complete_start);
    }
    n->down_since = s->now;
    /* its ops die with it (no callbacks: their clients time out) */
    node_fold_stats(s, n);
    gossip_free(&n->g); /* its view of the members too */
    cnode_free(&n->node);
    n->live = 0;
    if (s->o.crash_loses_store) {
        if (s->nwiped[i] < 64) {
            s->wiped[i][s->nwiped[i]++] = ++s->hseq;
        } else {
            violation(s, "simulator: too many crashes of one node to track");
        }
    }
    /* the HLC high-water mark survives (a restarted node must never reissue a
     * version it used before: README "Simulator") */
    trace(s, "node %u crashes%s", n->tag, s->o.crash_loses_store ? " and loses its store" : "");
}

static void node_restart(struct sim *s, int i) {
    struct sim_node *n = &s->nodes[i];
    node_live_init(s, n);
    if (n->disk.len && hints_decode(n->node.hints, n->disk.p, n->disk.len, s->now) != HINTS_OK) {
        violation(s, "node %u: its hints did not decode after a restart", n->tag);
    }
    n->disk.len = 0;
    s->nodes[i].up = 1;
    n->next_pass = s->now; /* repairs at once, as the runtime queues a pass */
    if (s->o.gc_grace_ms && !s->o.absent_no_hold && s->now - n->down_since > s->o.gc_grace_ms) {
        n->held = 1; /* dir/node-alive older than the grace: cluster_config.long_absence */
        n->held_since = node_wall(s, n);
        n->held_at = s->now;
        trace(s, "node %u back after %llu ms away: held until repaired", n->tag,
              (unsigned long long)(s->now - n->down_since));
    }
    if (s->o.gossip) {
        data_gossip_new(s, n); /* a new generation, knowing only itself */
    }
    s->res->st.restarts++;
    at(s, s->now + HINT_TICK_MS, EV_HINT_TICK, i, -1, 0);
    trace(s, "node %u restarts", s->nodes[i].tag);
}

static void fault(struct sim *s) {
    if (s->healing) {
        return;
    }
    int down[SIM_MAX_NODES], nd = 0, away = 0;
    for (int i = 0; i < s->o.nodes; i++) {
        if (!s->nodes[i].up && i == SIM_ABSENT && s->now < s->absent_until) {
            away = 1; /* away for long (absent_ms): not restarted by a fault */
        } else if (!s->nodes[i].up && !node_removed(s, i)) {
            down[nd++] = i;
        }
    }
    uint64_t what = rnd_below(s, 5);
    if (what == 0 && s->o.crashes && nd + away < 2) {
        int i = pick_up_node(s);
        if (i >= 0) {
            node_crash(s, i);
        }
    } else if (what == 1 && nd > 0) {
        node_restart(s, down[rnd_below(s, (uint64_t)nd)]);
    } else if (what == 2 && s->o.partitions) {
        int side[SIM_MAX_NODES];
        for (int i = 0; i < s->o.nodes; i++) {
            side[i] = (int)rnd_below(s, 2);
        }
        for (int a = 0; a < s->o.nodes; a++) {
            for (int b = 0; b < s->o.nodes; b++) {
                s->cut[a][b] = side[a] != side[b];
            }
        }
        s->res->st.partitions++;
        trace(s, "partition");
    } else if (what == 3) {
        memset(s->cut, 0, sizeof s->cut);
        trace(s, "partition healed");
    } else if (what == 4 && s->o.pauses) {
        int i = pick_up_node(s);
        if (i >= 0) { /* SIGSTOP then SIGCONT: everything it was sent waits */
            uint64_t t = s->o.timeout_ms;
            s->nodes[i].paused_until = s->now + t + rnd_below(s, 4 * t);
            s->res->st.pauses++;
            trace(s, "node %u paused until %llu", s->nodes[i].tag,
                  (unsigned long long)(s->nodes[i].paused_until - SIM_START_MS));
        }
    }
    uint64_t every = s->o.fault_every_ms ? s->o.fault_every_ms : 100;
    at(s, s->now + every / 2 + rnd_below(s, every), EV_FAULT, -1, -1, 0);
}

/* ---- gossip in the data simulation (opts.gossip) ----
 * The runtime's gossip machine per node on a fast clock (a round every
 * DATA_GOSSIP_MS, phi scaled to it), over the same faulty network: cut links,
 * drops, pauses (its events wait), crashes (the view is lost; the node comes
 * back with generation + 1 and learns the others from the first SYN). The
 * coordinators' is_up reads it, so ops skip and hint the replicas it says are
 * down, and every invariant is checked with that path taken. */

#define DATA_GOSSIP_MS 10

static void data_gossip_new(struct sim *s, struct sim_node *n) {
    struct ring_member m = {.tag = n->tag, .weight = 1, .ntokens = 1};
    uint64_t tok = n->tag;
    m.tokens = &tok;
    snprintf(m.id, sizeof m.id, "sim-%02d", n->idx);
    snprintf(m.addr, sizeof m.addr, "10.9.0.%d:7000", n->idx + 1);
    struct gossip_self gs = {.m = &m, .generation = ++n->generation, .rf = 3, .convict = 8};
    gossip_fingerprint("sim", 3, gs.fp);
    gs.phi = (struct phi_config){0, DATA_GOSSIP_MS, DATA_GOSSIP_MS / 2.0, 20.0 * DATA_GOSSIP_MS};
    gs.seed = rnd(s) | 1;
    n->g = gossip_new(&gs);
}

static void data_gossip_send(struct sim *s, int from, int to, int kind, struct msg_buf *b) {
    s->res->st.messages++;
    if ((s->cut[from][to] && !s->healing) || chance(s, s->o.drop)) {
        s->res->st.dropped++;
        msg_buf_free(b);
        return;
    }
    struct sim_msg *m = cl_calloc(1, sizeof *m);
    *m = (struct sim_msg){.from = from, .to = to, .verb = kind,
                          .epoch = s->nodes[from].epoch, .bytes = b->p, .len = b->len};
    *b = (struct msg_buf){0};
    uint64_t delay = 1 + rnd_below(s, s->o.delay_max_ms ? s->o.delay_max_ms : 1);
    ev_push(s, (struct ev){.at = s->now + delay, .kind = EV_GOSSIP_DELIVER, .m = m});
}

static void data_gossip_round(struct sim *s, int i) {
    struct sim_node *n = &s->nodes[i];
    at(s, s->now + DATA_GOSSIP_MS, EV_GOSSIP_TICK, i, -1, 0);
    if (!n->up || n->g == NULL) {
        return;
    }
    gossip_tick(n->g);
    uint32_t tags[3];
    size_t k = gossip_pick(n->g, s->now, 2, tags, 3);
    if (n->g->n < (size_t)s->o.nodes) { /* after a restart: ask a neighbour */
        tags[k++] = (uint32_t)((i + 1) % s->o.nodes + 1);
    }
    for (size_t j = 0; j < k; j++) {
        struct msg_buf b = {0};
        gossip_syn(n->g, s->now, &b);
        data_gossip_send(s, i, node_of(tags[j]), GOSSIP_SYN, &b);
    }
}

static void data_gossip_deliver(struct sim *s, struct sim_msg *m) {
    struct sim_node *n = &s->nodes[m->to];
    int dead = !n->up || n->g == NULL || (s->cut[m->from][m->to] && !s->healing) ||
               m->epoch != s->nodes[m->from].epoch;
    struct msg_buf out = {0};
    char err[192];
    int rc = GOSSIP_OK, need = 0;
    if (dead) {
        s->res->st.dropped++;
    } else if (m->verb == GOSSIP_SYN) {
        rc = gossip_on_syn(n->g, s->now, s->now, m->bytes, m->len, &out, NULL, err, sizeof err);
        if (rc == GOSSIP_OK) {
            data_gossip_send(s, m->to, m->from, GOSSIP_ACK, &out);
        }
    } else if (m->verb == GOSSIP_ACK) {
        rc = gossip_on_ack(n->g, s->now, s->now, m->bytes, m->len, &out, &need, NULL, err,
                           sizeof err);
        if (rc == GOSSIP_OK && need) {
            data_gossip_send(s, m->to, m->from, GOSSIP_ACK2, &out);
        }
    } else {
        rc = gossip_on_ack2(n->g, s->now, m->bytes, m->len, NULL, err, sizeof err);
    }
    msg_buf_free(&out);
    free(m->bytes);
    free(m);
    if (rc != GOSSIP_OK) {
        violation(s, "gossip refused between simulated nodes: %s", err);
    }
}

/* every node starts knowing every other (the cluster was formed before the run) */
static void data_gossip_start(struct sim *s) {
    for (int i = 0; i < s->o.nodes; i++) {
        data_gossip_new(s, &s->nodes[i]);
        at(s, s->now + rnd_below(s, DATA_GOSSIP_MS), EV_GOSSIP_TICK, i, -1, 0);
    }
    for (int i = 1; i < s->o.nodes; i++) {
        struct msg_buf syn = {0}, ack = {0}, ack2 = {0};
        int need = 0;
        gossip_syn(s->nodes[i].g, s->now, &syn);
        gossip_on_syn(s->nodes[0].g, s->now, s->now, syn.p, syn.len, &ack, NULL, NULL, 0);
        gossip_on_ack(s->nodes[i].g, s->now, s->now, ack.p, ack.len, &ack2, &need, NULL, NULL,
                      0);
        if (need) {
            gossip_on_ack2(s->nodes[0].g, s->now, ack2.p, ack2.len, NULL, NULL, 0);
        }
        msg_buf_free(&syn);
        msg_buf_free(&ack);
        msg_buf_free(&ack2);
    }
}

/* every node sees every node up (gossip and phi) */
static int members_all_up(const struct sim *s) {
    for (int i = 0; i < s->o.nodes; i++) {
        for (int j = 0; j < s->o.nodes; j++) {
            const struct sim_node *n = &s->nodes[i];
            if (node_removed(s, i) || node_removed(s, j)) {
                continue;
            }
            long k = n->g ? gossip_find_tag(n->g, s->nodes[j].tag) : -1;
            if (k < 0 || gossip_health(n->g, (size_t)k, s->now, NULL) == GOSSIP_DOWN) {
                return 0;
            }
        }
    }
    return 1;
}

/* ---- the loop ---- */

/* the node an event runs on, or -1 */
static int event_node(const struct ev *e) {
    switch (e->kind) {
    case EV_DELIVER:
    case EV_GOSSIP_DELIVER:
        return e->m->to;
    case EV_OP_TIMER:
    case EV_HINT_TICK:
    case EV_GOSSIP_TICK:
    case EV_JOIN:
    case EV_STREAM_TIMEOUT:
    case EV_REPAIR_TICK:
    case EV_REPAIR_TIMEOUT:
        return e->node;
    default:
        return -1;
    }
}

static void join_step(struct sim *s);
static void stream_reply(struct sim *s, uint64_t id, const redisReply *r);
static void repair_tick(struct sim *s, int node);
static void repair_timeout(struct sim *s, int node, uint64_t id);
static void absence_step(struct sim *s);

static void process(struct sim *s, struct ev *e) {
    s->now = e->at;
    int node = event_node(e);
    if (node >= 0 && s->nodes[node].paused_until > s->now) {
        struct ev later = *e; /* a paused node: runs it on SIGCONT, order kept */
        later.at = s->nodes[node].paused_until;
        ev_push(s, later);
        return;
    }
    switch (e->kind) {
    case EV_DELIVER:
        deliver(s, e->m);
        break;
    case EV_OP_TIMER: {
        struct sim_node *n = &s->nodes[e->node];
        if (n->up && n->live) {
            if (n->armed_dl <= s->now) {
                n->armed_dl = 0;
            }
            cnode_tick(&n->node, s->now);
            node_arm(s, e->node);
        }
        break;
    }
    case EV_CLIENT:
        client_step(s, e->client);
        break;
    case EV_CLIENT_TIMEOUT:
        client_timeout(s, e->client, e->id);
        break;
    case EV_FAULT:
        fault(s);
        break;
    case EV_HINT_TICK:
        hint_tick(s, e->node);
        break;
    case EV_GOSSIP_TICK:
        data_gossip_round(s, e->node);
        break;
    case EV_GOSSIP_DELIVER:
        data_gossip_deliver(s, e->m);
        break;
    case EV_JOIN:
        join_step(s);
        break;
    case EV_STREAM_TIMEOUT:
        stream_reply(s, e->id, NULL);
        break;
    case EV_REPAIR_TICK:
        repair_tick(s, e->node);
        break;
    case EV_REPAIR_TIMEOUT:
        repair_timeout(s, e->node, e->id);
        break;
    case EV_ABSENCE:
        absence_step(s);
        break;
    }
}

static int clients_finished(const struct sim *s) {
    for (int i = 0; i < s->o.clients; i++) {
        if (s->clients[i].busy || s->clients[i].done_ops < s->o.ops_per_client) {
            return 0;
        }
    }
    return 1;
}

static int quiescent(const struct sim *s) {
    int dead = s->o.remove ? s->o.nodes - 1 : -1;
    for (int i = 0; i < s->o.nodes; i++) {
        const struct sim_node *n = &s->nodes[i];
        /* hints for a removed member wait for the removal's end, which drops them */
        size_t held = n->live ? n->node.hints->count : 0;
        if (held && dead >= 0 && node_removed(s, dead)) {
            held -= hints_pending(n->node.hints, s->nodes[dead].tag);
        }
        if (n->live && (n->node.nops || held)) {
            return 0;
        }
    }
    return 1;
}

/* runs events until done(s) or the queue is empty or the virtual time limit */
static void run_until(struct sim *s, int (*done)(const struct sim *), uint64_t limit) {
    while (s->nheap && !done(s) && s->now < limit) {
        struct ev e = ev_pop(s);
        process(s, &e);
    }
}

/* the record of key k on replica tag: equal on all replicas? */
static int replicas_agree(struct sim *s, int k, struct op_record *out) {
    uint32_t tags[RING_MAX_REPLICAS];
    size_t n = key_replicas(s, k, tags);
    char name[KEY_MAX];
    size_t len = key_name(k, name);
    const struct op_record *first = NULL;
    static const struct op_record none = {0};
    for (size_t i = 0; i < n; i++) {
        struct sim_entry *e = store_find(&s->nodes[node_of(tags[i])], key_db(s, k), name, len);
        const struct op_record *r = e ? &e->rec : &none;
        if (first == NULL) {
            first = r;
            continue;
        }
        if (s->o.gc_grace_ms && (!first->found || first->deleted) && (!r->found || r->deleted)) {
            continue; /* both absent: a collected tombstone is nothing */
        }
        if (first->fields || r->fields) { /* big hashes: the same fields, each alike */
            struct msg_record a = {first->v, first->deleted, first->expire_at, first->val,
                                   first->vlen, first->fields};
            struct msg_record b = {r->v, r->deleted, r->expire_at, r->val, r->vlen, r->fields};
            if (!first->found || !r->found || !fields_covers(&a, &b) || !fields_covers(&b, &a)) {
                return 0;
            }
            continue;
        }
        if (first->found != r->found ||
            (r->found && (kv_record_cmp(first->v, first->deleted, r->v, r->deleted) != 0 ||
                          first->vlen != r->vlen ||
                          (r->vlen && memcmp(first->val, r->val, r->vlen) != 0)))) {
            return 0;
        }
    }
    *out = first ? *first : none;
    return 1;
}

static void heal(struct sim *s) {
    s->healing = 1;
    memset(s->cut, 0, sizeof s->cut);
    for (int i = 0; i < s->o.nodes; i++) {
        if (!s->nodes[i].up && !node_removed(s, i)) {
            node_restart(s, i);
        }
        s->nodes[i].paused_until = 0; /* SIGCONT; what waited still arrives late */
    }
    trace(s, "healing");
}

/* ---- Merkle repair (merkle_repair): repair.h's sessions over the network ---- */

/* the keys of a node in [from, to) (db CLUSTER_DB_ALL: all), in token order */
static int fake_range(void *ctx, unsigned db, uint64_t from, uint64_t to, cluster_range_fn *fn,
                      void *arg) {
    struct sim_node *n = ctx;
    struct cluster_key *keys = cl_calloc(n->nstore + 1, sizeof *keys);
    size_t m = 0;
    for (size_t i = 0; i < n->nstore; i++) {
        const struct sim_entry *e = &n->store[i];
        uint64_t t = ring_key_token(e->key, e->klen);
        if ((db == CLUSTER_DB_ALL || e->db == db) && t >= from && (to == 0 || t < to)) {
            struct msg_record r = {e->rec.v, e->rec.deleted, e->rec.expire_at, e->rec.val,
                                   e->rec.vlen, e->rec.fields};
            keys[m++] = (struct cluster_key){t, e->key, e->klen, e->rec.v, e->rec.deleted,
                                             e->rec.expire_at, 0, e->db, fields_digest(&r)};
        }
    }
    for (size_t i = 1; i < m; i++) { /* insertion sort by token: stores are small */
        struct cluster_key k = keys[i];
        size_t j = i;
        while (j > 0 && keys[j - 1].token > k.token) {
            keys[j] = keys[j - 1];
            j--;
        }
        keys[j] = k;
    }
    for (size_t i = 0; i < m && !fn(arg, &keys[i]); i++) {
    }
    free(keys);
    return 0;
}

/* 1 when node tag replicates span i; its other replicas into peers */
static int span_replicas(const struct sim *s, size_t i, uint32_t tag, uint32_t *peers,
                         size_t *np) {
    uint32_t idx[RING_MAX_REPLICAS];
    size_t nrep = ring_replicas(&s->ring, s->spans[i].from, (size_t)s->o.n, idx);
    int mine = 0;
    *np = 0;
    for (size_t j = 0; j < nrep; j++) {
        uint32_t t = s->ring.members[idx[j]].tag;
        if (t == tag) {
            mine = 1;
        } else {
            peers[(*np)++] = t;
        }
    }
    return mine;
}

/* starts the node's session for its next range that it replicates; 0 when none */
static int repair_next_range(struct sim *s, struct sim_node *n) {
    while (n->rs_next < s->nspans) {
        size_t i = n->rs_next++;
        uint32_t peers[RING_MAX_REPLICAS];
        size_t np;
        if (span_replicas(s, i, n->tag, peers, &np)) {
            /* ids apart from every other session's: a late reply matches none */
            repair_session_init(&n->rs, &n->cst, s->spans[i].from, s->spans[i].to, peers, np,
                                s->repair_id);
            s->repair_id += 1000000;
            n->rs_active = 1;
            n->rs_span = i;
            n->session_start = node_wall(s, n);
            n->rs_final = s->final_pass;
            return 1;
        }
    }
    return 0;
}

/* a session of the node ended: counted; a complete one dates its range */
static void repair_session_end(struct sim *s, struct sim_node *n) {
    int complete = repair_session_complete(&n->rs);
    s->res->st.repair_sessions++;
    s->res->st.repair_partial += !complete;
    s->res->st.repair_records += n->rs.st_.records_pulled + n->rs.st_.records_pushed;
    if (!n->rs_final) {
        s->res->st.background_sessions++;
        s->res->st.background_complete += complete;
    }
    s->final_partial += n->rs_final && !complete;
    if (complete && n->complete_start) {
        n->complete_start[n->rs_span] = n->session_start;
    }
    repair_session_free(&n->rs);
    n->rs_active = 0;
}

/* sends the node's next repair request (one in flight), moving on to its next
 * range when a session ends */
static void repair_pump(struct sim *s, int node) {
    struct sim_node *n = &s->nodes[node];
    for (;;) {
        if (!n->rs_active && !repair_next_range(s, n)) {
            return;
        }
        struct repair_send out;
        int rc = repair_session_next(&n->rs, &out);
        if (rc == 0) {
            return;
        }
        if (rc < 0) {
            repair_session_end(s, n);
            continue;
        }
        struct msg_buf b = {0};
        msg_argv_to_resp(&out.a, &b);
        msg_argv_free(&out.a);
        net_send(s, node, node_of(out.tag), 0, 0, SIM_VERB_REPAIR, out.id, n->epoch, &b);
        /* a lost request fails after a timeout, as on a link */
        at(s, s->now + 4 * (uint64_t)s->o.timeout_ms + 2 * s->o.delay_max_ms, EV_REPAIR_TIMEOUT,
           node, -1, out.id);
        return;
    }
}

static void stream_reply(struct sim *s, uint64_t id, const redisReply *r);

static void repair_reply(struct sim *s, int node, uint64_t id, const redisReply *r) {
    struct sim_node *n = &s->nodes[node];
    if (s->join_phase == JP_STREAM && node == s->jnode) {
        stream_reply(s, id, r);
    } else if (n->rs_active) {
        repair_session_on_reply(&n->rs, id, r);
        repair_pump(s, node);
    }
}

static int repairs_done(const struct sim *s) {
    for (int i = 0; i < s->o.nodes; i++) {
        if (!node_removed(s, i) && (s->nodes[i].rs_active || s->nodes[i].rs_next < s->nspans)) {
            return 0;
        }
    }
    return 1;
}

/* the request id in flight timed out: the session drops that peer */
static void repair_timeout(struct sim *s, int node, uint64_t id) {
    struct sim_node *n = &s->nodes[node];
    if (n->up && n->rs_active && n->rs.waiting == id) {
        repair_session_on_reply(&n->rs, id, NULL);
        repair_pump(s, node);
    }
}

/* the ranges of the ring and each node's store as repair.h sees it */
static void repair_setup(struct sim *s) {
    free(s->spans);
    s->nspans = repair_ring_ranges(&s->ring, &s->spans);
    for (int i = 0; i < s->o.nodes; i++) {
        struct sim_node *n = &s->nodes[i];
        n->cst = (struct cluster_store){n, fake_read, fake_apply, fake_observe, NULL, fake_range};
        n->rs_next = s->nspans;
    }
}

/* every node repairs every range it replicates, all at once; after healing
 * (nothing lost, every node up) every session must complete */
static void merkle_pass(struct sim *s) {
    if (s->spans == NULL || s->o.join || s->o.leave || s->o.remove) {
        repair_setup(s); /* the ring may have changed */
    }
    s->final_pass = 1;
    for (int i = 0; i < s->o.nodes; i++) {
        if (node_removed(s, i)) {
            continue; /* dead: replicates nothing */
        }
        s->nodes[i].rs_next = 0;
        repair_pump(s, i);
    }
    run_until(s, repairs_done, s->now + 600000);
    if (!repairs_done(s)) {
        violation(s, "Merkle repair sessions still running 600 s after they started");
    }
    if (s->final_partial) {
        violation(s, "%llu Merkle repair sessions ended partial with every node up",
                  (unsigned long long)s->final_partial);
    }
}

/* ---- background repair, tombstone GC and long absence (repair_every_ms,
 * gc_grace_ms, absent_ms): repair_rt.c's rules on the virtual clock ---- */

/* the node's GC horizon (cluster_gc_horizon): the oldest start of the last
 * complete session of each range it replicates, less the request timeout and the
 * clock offset; 0 while a range had none */
static uint64_t node_horizon(const struct sim *s, const struct sim_node *n) {
    uint64_t h = UINT64_MAX;
    for (size_t i = 0; i < s->nspans; i++) {
        uint32_t peers[RING_MAX_REPLICAS];
        size_t np;
        if (span_replicas(s, i, n->tag, peers, &np) && n->complete_start[i] < h) {
            h = n->complete_start[i];
        }
    }
    uint64_t margin = (uint64_t)s->o.timeout_ms + s->o.max_skew_ms;
    return h == UINT64_MAX || h <= margin ? 0 : h - margin;
}

/* the engine's compaction: drops the tombstones dated before the grace and the
 * horizon (gc_no_horizon: the grace alone) */
static void gc_step(struct sim *s, struct sim_node *n) {
    uint64_t wall = node_wall(s, n);
    uint64_t cut = wall > s->o.gc_grace_ms ? wall - s->o.gc_grace_ms : 0;
    uint64_t h = s->o.gc_no_horizon ? UINT64_MAX : node_horizon(s, n);
    cut = h < cut ? h : cut;
    for (size_t i = 0; i < n->nstore;) {
        struct sim_entry *e = &n->store[i];
        if (e->rec.deleted && KV_HLC_MS(e->rec.v.hlc) < cut) {
            free(e->rec.val);
            *e = n->store[--n->nstore];
            s->res->st.tombstones_dropped++;
        } else {
            i++;
        }
    }
}

/* held after a long absence: serving again once each range it replicates had a
 * complete session that started after it came back (repair_rt.c absent_step) */
static void held_step(struct sim *s, struct sim_node *n) {
    for (size_t i = 0; i < s->nspans; i++) {
        uint32_t peers[RING_MAX_REPLICAS];
        size_t np;
        if (span_replicas(s, i, n->tag, peers, &np) && n->complete_start[i] < n->held_since) {
            return;
        }
    }
    n->held = 0;
    s->res->st.held_ms += s->now - n->held_at;
    trace(s, "node %u repaired after its long absence: serving again", n->tag);
}

/* every 100 ms on each node: GC, the held check, and a pass when one is due
 * (held: again every second until every range is repaired) */
static void repair_tick(struct sim *s, int node) {
    struct sim_node *n = &s->nodes[node];
    at(s, s->now + 100, EV_REPAIR_TICK, node, -1, 0);
    if (!n->up || !n->live) {
        return;
    }
    if (s->o.gc_grace_ms) {
        gc_step(s, n);
    }
    if (n->held && !n->rs_active) {
        held_step(s, n);
    }
    if (!s->final_pass && !n->rs_active && n->rs_next >= s->nspans && s->now >= n->next_pass) {
        n->next_pass = s->now + (n->held ? 1000 : s->o.repair_every_ms);
        n->rs_next = 0;
        repair_pump(s, node);
    }
}

/* absent_ms: node 2 goes (keeping its store), and comes back absent_ms later */
static void absence_step(struct sim *s) {
    struct sim_node *n = &s->nodes[SIM_ABSENT];
    if (s->absent_until == 0) {
        s->absent_until = s->now + s->o.absent_ms;
        if (n->up) {
            node_crash(s, SIM_ABSENT);
        }
        trace(s, "node %u goes away for %u ms", n->tag, s->o.absent_ms);
        at(s, s->absent_until, EV_ABSENCE, -1, -1, 0);
    } else if (!n->up && !s->healing) {
        node_restart(s, SIM_ABSENT);
    }
}

/* ---- join (opts.join) and leave (opts.leave): the last node joins or leaves
 * mid-workload. The same phases both ways: out (the ring before), pending (writes
 * also reach the future ring's new replicas), stream (the mover's sessions of
 * join_plan), in (the ring is the future one). ---- */

#define SIM_STREAM_ID0 (1ull << 40) /* stream request ids: apart from the ops' */

/* the node that joins or leaves */
static int joiner(const struct sim *s) {
    return s->o.nodes - 1;
}

static const char *move_name(const struct sim *s) {
    return s->o.leave ? "leave" : s->o.remove ? "removal" : "join";
}

/* the leaver's status in its own gossip view, which spreads from there */
static void leaver_gossip_status(struct sim *s, int status) {
    struct sim_node *n = &s->nodes[joiner(s)];
    if (s->o.leave && n->g) {
        gossip_set_status(n->g, status);
    }
}

/* the removal ended: every node drops its hints for the removed member (the
 * runtime's drop_removed_hints), delivering and acknowledging none of them */
static void removed_drop_hints(struct sim *s) {
    uint32_t dead = s->nodes[s->o.nodes - 1].tag;
    for (int i = 0; i < s->o.nodes - 1; i++) {
        struct hints *h = s->nodes[i].live ? s->nodes[i].node.hints : NULL;
        for (const struct hint *x; h && (x = hints_peek(h, dead, 0)) != NULL;) {
            if (hints_ack(h, dead, x->seq) != HINTS_OK) {
                break;
            }
        }
    }
}

/* the ring becomes the future one: with the joiner, or without the leaver */
static void join_in(struct sim *s) {
    struct ring g;
    char err[128];
    if (ring_build(&g, s->future.members, s->future.nmembers, err, sizeof err) != RING_OK) {
        violation(s, "%s: ring: %s", move_name(s), err);
        return;
    }
    ring_destroy(&s->ring);
    s->ring = g;
    s->join_phase = JP_IN;
    s->res->st.joined = !s->o.leave && !s->o.remove;
    s->res->st.left = s->o.leave || s->o.remove;
    if (s->o.remove) {
        removed_drop_hints(s);
    }
    s->res->st.join_done_ms = s->now - SIM_START_MS;
    leaver_gossip_status(s, GOSSIP_LEFT);
    trace(s, "%s: node %d is %s the ring", move_name(s), joiner(s) + 1,
          s->o.leave ? "out of" : "in");
}

/* the joiner's session of the task in hand ended: done, or again at the end */
static void stream_session_end(struct sim *s, struct sim_node *n) {
    s->res->st.stream_records += n->rs.st_.records_pulled + n->rs.st_.records_pushed;
    /* a leave's and a removal's sessions must complete (join.c session_end) */
    int enough = join_session_enough(&n->rs, (size_t)s->o.w, s->o.leave || s->o.remove);
    s->res->st.stream_partial_enough += !repair_session_complete(&n->rs) && enough;
    if (!enough) {
        s->res->st.stream_retries++;
        s->jt = cl_realloc(s->jt, (s->njt + 1) * sizeof *s->jt);
        s->jt[s->njt++] = s->jt[s->jcur];
    }
    repair_session_free(&n->rs);
    n->rs_active = 0;
}

/* sends the joiner's next stream request (one in flight, failed after a timeout
 * like a link's), moving on through the plan; the ring takes it at the end */
static int next_gainer(struct sim *s);

static void stream_pump(struct sim *s) {
    while (s->jwait == 0) {
        struct sim_node *n = &s->nodes[s->jnode];
        if (!n->rs_active) {
            if (s->jnext == s->njt && s->o.remove && next_gainer(s)) {
                continue; /* the next gainer's plan */
            }
            if (s->jnext == s->njt) {
                join_in(s);
                return;
            }
            s->jcur = s->jnext++;
            const struct join_task *t = &s->jt[s->jcur];
            repair_session_init(&n->rs, &n->cst, t->from, t->to, t->peers, t->npeers,
                                SIM_STREAM_ID0 + s->res->st.stream_ranges * 100000);
            s->res->st.stream_ranges++;
            n->rs_active = 1;
        }
        struct repair_send out;
        int rc = repair_session_next(&n->rs, &out);
        if (rc < 0) {
            stream_session_end(s, n);
            continue;
        }
        if (rc == 0) {
            return;
        }
        struct msg_buf b = {0};
        msg_argv_to_resp(&out.a, &b);
        msg_argv_free(&out.a);
        s->jwait = out.id;
        net_send(s, s->jnode, node_of(out.tag), 0, 0, SIM_VERB_REPAIR, out.id, n->epoch, &b);
        at(s, s->now + 4 * (uint64_t)s->o.timeout_ms + 2 * s->o.delay_max_ms,
           EV_STREAM_TIMEOUT, s->jnode, -1, out.id);
    }
}

/* a reply to the stream request in flight, or NULL: it timed out */
static void stream_reply(struct sim *s, uint64_t id, const redisReply *r) {
    if (s->join_phase != JP_STREAM || id != s->jwait) {
        return; /* late: its request was given up */
    }
    s->jwait = 0;
    repair_session_on_reply(&s->nodes[s->jnode].rs, id, r);
    stream_pump(s);
}

/* EV_JOIN: out -> pending writes; after a settle longer than any message can
 * take (every write started before reached its replicas) -> stream */
/* removal: the plan of the next member after jnode that gains ranges from the
 * removed one (join_plan_remove: peers the survivors); 0 when none is left */
static int next_gainer(struct sim *s) {
    uint32_t dead = s->nodes[s->o.nodes - 1].tag;
    while (++s->jnode < s->o.nodes - 1) {
        struct sim_node *n = &s->nodes[s->jnode];
        free(s->jt);
        s->njt = join_plan_remove(&s->ring, &s->future, n->tag, dead, (size_t)s->o.n, &s->jt);
        s->jnext = 0;
        if (s->njt > 0) {
            n->cst = (struct cluster_store){n, fake_read, fake_apply, fake_observe, NULL,
                                            fake_range};
            trace(s, "removal: node %d pulls %zu ranges", s->jnode + 1, s->njt);
            return 1;
        }
    }
    s->jnode = s->o.nodes - 1;
    return 0;
}

static void join_step(struct sim *s) {
    if (s->join_phase == JP_OUT && s->o.remove) {
        /* dead for good, and removed at once; the hints it held die with it */
        s->res->st.hints_dropped += s->nodes[s->o.nodes - 1].node.hints->count;
        node_crash(s, s->o.nodes - 1);
    }
    if (s->join_phase == JP_PENDING && s->o.remove && !s->o.join_skip_stream) {
        s->jnode = -1;
        s->join_phase = JP_STREAM;
        next_gainer(s); /* none: the pump ends the removal at once */
        stream_pump(s);
        return;
    }
    if (s->join_phase == JP_OUT) {
        s->join_phase = JP_PENDING;
        leaver_gossip_status(s, GOSSIP_LEAVING);
        trace(s, "%s: node %d pending", move_name(s), joiner(s) + 1);
        at(s, s->now + 4 * (uint64_t)s->o.timeout_ms + 2 * s->o.delay_max_ms, EV_JOIN,
           joiner(s), -1, 0);
    } else if (s->join_phase == JP_PENDING && s->o.join_skip_stream) {
        join_in(s);
    } else if (s->join_phase == JP_PENDING) {
        struct sim_node *n = &s->nodes[joiner(s)];
        n->cst = (struct cluster_store){n, fake_read, fake_apply, fake_observe, NULL, fake_range};
        s->njt = join_plan(&s->ring, &s->future, n->tag, (size_t)s->o.n, s->o.leave, &s->jt);
        s->jnext = 0;
        s->join_phase = JP_STREAM;
        if (s->o.join_cut_peer) {
            s->cut[joiner(s)][0] = s->cut[0][joiner(s)] = 1;
        }
        trace(s, "%s: node %d streams %zu ranges", move_name(s), joiner(s) + 1, s->njt);
        stream_pump(s);
    }
}

static int join_finished(const struct sim *s) {
    return s->join_phase == JP_NONE || s->join_phase == JP_IN;
}

/* After a join or leave with lossless hints: each of the N replicas of every
 * key in the final ring holds every acknowledged write (or newer). Streaming,
 * pending writes and hints together must put it there, before any repair. */
static void check_moved_ranges_hold_writes(struct sim *s) {
    char name[KEY_MAX];
    for (int k = 0; k < s->o.keys; k++) {
        uint32_t tags[RING_MAX_REPLICAS];
        size_t n = key_replicas(s, k, tags), len = key_name(k, name);
        for (size_t i = 0; i < n; i++) {
            struct sim_entry *e = store_find(&s->nodes[node_of(tags[i])], key_db(s, k), name, len);
            static const struct op_record none = {0};
            const struct op_record *r = e ? &e->rec : &none;
            for (size_t j = 0; j < s->nwrites; j++) {
                const struct sim_write *w = &s->writes[j];
                if (w->key == k && w->status == W_OK && !write_exempt(s, w) &&
                    rec_vs_write(r, w) < 0) {
                    s->res->st.not_on_n_replicas++;
                    violation(s, "key:%d: after the %s, replica %u lacks acknowledged write %s "
                                 "(version %llu/%u)",
                              k, move_name(s), tags[i], w->deleted ? "DEL" : w->val,
                              (unsigned long long)w->v.hlc, w->v.node);
                    break;
                }
            }
        }
    }
}

/* 1 when every other node's gossip view has the leaver left, out of its ring */
static int leaver_known_left(const struct sim *s) {
    uint32_t tag = s->nodes[joiner(s)].tag;
    for (int i = 0; i < joiner(s); i++) {
        const struct gossip *g = s->nodes[i].g;
        long k = g ? gossip_find_tag(g, tag) : -1;
        if (k < 0 || g->mb[k].status != GOSSIP_LEFT || gossip_in_ring(g, (size_t)k)) {
            return 0;
        }
    }
    return 1;
}

/* the leaver is out of the ring (it replicates no range) and, by gossip, out of
 * every member's view of the ring */
static void check_leaver_out(struct sim *s) {
    struct repair_span *sp = NULL;
    size_t nsp = repair_ring_ranges(&s->ring, &sp);
    for (size_t i = 0; i < nsp; i++) {
        uint32_t idx[RING_MAX_REPLICAS];
        size_t nrep = ring_replicas(&s->ring, sp[i].from, (size_t)s->o.n, idx);
        for (size_t j = 0; j < nrep; j++) {
            if (s->ring.members[idx[j]].tag == s->nodes[joiner(s)].tag) {
                violation(s, "leave: the leaver still replicates a range");
            }
        }
    }
    free(sp);
    if (s->o.gossip) {
        run_until(s, leaver_known_left, s->now + 60000);
        if (!leaver_known_left(s)) {
            violation(s, "leave: some member's gossip view still has the leaver in the ring "
                         "60 s after it left");
        }
    }
}

/* 1 when hash record r keeps write w: each field w decides is decided in r by a
 * version at least w's */
static int hash_write_kept(const struct sim *s, const struct op_record *r,
                           const struct sim_write *w) {
    for (int f = 0; f < SIM_HASH_FIELDS; f++) {
        struct field_state st = field_of(r, f);
        if (write_touches(w, f) && !field_keeps(s, w->key, f, &st, w)) {
            return 0;
        }
    }
    return 1;
}

/* 1 when r is a value older than an acknowledged DEL of key k */
static int resurrected(const struct sim *s, int k, const struct op_record *r) {
    for (size_t i = 0; r->found && !r->deleted && i < s->nwrites; i++) {
        const struct sim_write *w = &s->writes[i];
        if (w->key == k && w->deleted && w->status == W_OK && rec_vs_write(r, w) < 0) {
            return 1;
        }
    }
    return 0;
}

static void final_checks(struct sim *s, int hints_lossless) {
    if ((s->o.join || s->o.leave || s->o.remove) && hints_lossless) {
        check_moved_ranges_hold_writes(s);
    }
    for (int k = 0; k < s->o.keys; k++) {
        struct op_record r;
        if (!replicas_agree(s, k, &r)) {
            s->res->st.divergent_before_repair++;
        }
    }
    if (hints_lossless && s->res->st.divergent_before_repair) {
        violation(s, "%llu keys differ between replicas after hint delivery",
                  (unsigned long long)s->res->st.divergent_before_repair);
    }
    if (s->o.skip_repair_pass) {
        /* no repair: what follows must find the replicas that differ */
    } else if (s->o.merkle_repair) {
        merkle_pass(s);
    } else { /* the repair pass: a read at ALL of every key */
        int up = s->o.nodes - (s->o.remove ? 1 : 0); /* the removed one is dead */
        for (int k = 0; k < s->o.keys; k++) {
            start_read(s, (int)(rnd_below(s, (uint64_t)up)), -1, k, (size_t)s->o.n);
        }
        run_until(s, quiescent, s->now + 60000);
    }
    for (int k = 0; k < s->o.keys; k++) {
        struct op_record r;
        if (!replicas_agree(s, k, &r)) {
            violation(s, "key:%d: replicas differ after %s", k,
                      s->o.skip_repair_pass ? "healing, with no repair pass" : "the repair pass");
            continue;
        }
        for (size_t i = 0; i < s->nwrites; i++) {
            const struct sim_write *w = &s->writes[i];
            if (w->key == k && w->status == W_OK && !write_exempt(s, w) &&
                (s->o.hashes ? !hash_write_kept(s, &r, w)
                             : rec_vs_write(&r, w) < 0 && !absent_covers(s, k, &r, w->v))) {
                violation(s, "key:%d: acknowledged write %s (version %llu/%u) lost%s: the "
                             "replicas hold %s %llu/%u",
                          k, w->deleted ? "DEL" : w->val, (unsigned long long)w->v.hlc, w->v.node,
                          resurrected(s, k, &r) ? " (a resurrection)" : "",
                          r.found ? (r.deleted ? "a tombstone" : "a value") : "nothing",
                          (unsigned long long)r.v.hlc, r.v.node);
            }
        }
    }
}

/* the ring (and for a join or leave the future one, with the change queued) */
static void sim_rings_init(struct sim *s, struct ring_member *ms, uint64_t (*toks)[16]) {
    const struct sim_opts *o = &s->o;
    char err[128];
    s->jnode = o->nodes - 1;
    if (o->join) { /* the last node starts out of the ring, with balanced tokens */
        if (ring_build(&s->ring, ms, (size_t)o->nodes - 1, err, sizeof err) != RING_OK ||
            ring_tokens_balance(&s->ring, 16, (size_t)o->n, toks[o->nodes - 1]) != 16 ||
            ring_build(&s->future, ms, (size_t)o->nodes, err, sizeof err) != RING_OK) {
            violation(s, "join ring: %s", err);
        }
        s->join_phase = JP_OUT;
        at(s, s->now + (o->join_at_ms ? o->join_at_ms : 100), EV_JOIN, o->nodes - 1, -1, 0);
    } else if (ring_build(&s->ring, ms, (size_t)o->nodes, err, sizeof err) != RING_OK) {
        violation(s, "ring: %s", err);
    } else if (o->leave || o->remove) { /* the future ring: every member but the last */
        if (ring_build(&s->future, ms, (size_t)o->nodes - 1, err, sizeof err) != RING_OK) {
            violation(s, "leave ring: %s", err);
        }
        s->join_phase = JP_OUT;
        at(s, s->now + (o->join_at_ms ? o->join_at_ms : 100), EV_JOIN, o->nodes - 1, -1, 0);
    }
}

static void sim_init(struct sim *s, const struct sim_opts *o, struct sim_result *res) {
    memset(s, 0, sizeof *s);
    memset(res, 0, sizeof *res);
    res->ok = 1;
    s->o = *o;
    s->res = res;
    s->rng = o->seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    if (s->rng == 0) {
        s->rng = 1;
    }
    s->now = SIM_START_MS;
    s->next_id = 1;
    struct resp_limits lim = {1 << 20, 1024, 1024};
    resp_parser_init(&s->parser, &lim);
    s->reader = redisReaderCreate();
    struct ring_member ms[SIM_MAX_NODES];
    uint64_t toks[SIM_MAX_NODES][16];
    memset(ms, 0, sizeof ms);
    for (int i = 0; i < o->nodes; i++) {
        struct sim_node *n = &s->nodes[i];
        n->tag = (uint32_t)(i + 1);
        n->up = 1;
        n->skew = (int64_t)rnd_below(s, 2 * (uint64_t)o->max_skew_ms + 1) - (int64_t)o->max_skew_ms;
        n->sim = s;
        n->idx = i;
        node_live_init(s, n);
        snprintf(ms[i].id, sizeof ms[i].id, "sim-%02d", i);
        ms[i].tag = n->tag;
        ms[i].weight = 1.0;
        ms[i].ntokens = 16;
        ms[i].tokens = toks[i];
        ring_tokens_generate(rnd(s), toks[i], 16);
        at(s, s->now + HINT_TICK_MS, EV_HINT_TICK, i, -1, 0);
    }
    sim_rings_init(s, ms, toks);
    s->repair_id = 1;
    if (o->repair_every_ms) { /* background repair: the ring's ranges, a tick a node */
        repair_setup(s);
        for (int i = 0; i < o->nodes; i++) {
            s->nodes[i].complete_start = cl_calloc(s->nspans + 1, sizeof(uint64_t));
            s->nodes[i].next_pass = s->now + o->repair_every_ms;
            at(s, s->now + rnd_below(s, 100), EV_REPAIR_TICK, i, -1, 0);
        }
    }
    if (o->absent_ms) {
        at(s, s->now + o->absent_at_ms, EV_ABSENCE, -1, -1, 0);
    }
    s->clients = cl_calloc((size_t)o->clients, sizeof *s->clients);
    for (int c = 0; c < o->clients; c++) {
        client_next(s, c);
    }
    if (o->crashes || o->partitions || o->pauses) {
        at(s, s->now + o->fault_every_ms, EV_FAULT, -1, -1, 0);
    }
    if (o->gossip) {
        data_gossip_start(s);
    }
}

static void sim_free(struct sim *s) {
    while (s->nheap) {
        struct ev e = ev_pop(s);
        if (e.m) {
            free(e.m->bytes);
            free(e.m);
        }
    }
    free(s->heap);
    for (int i = 0; i < s->o.nodes; i++) {
        struct sim_node *n = &s->nodes[i];
        if (n->live) {
            cnode_free(&n->node);
        }
        store_wipe(n);
        msg_buf_free(&n->disk);
        gossip_free(&n->g);
        free(n->complete_start);
    }
    ring_destroy(&s->ring);
    ring_destroy(&s->future);
    free(s->jt);
    for (int i = 0; i < s->o.nodes; i++) {
        if (s->nodes[i].rs_active) {
            repair_session_free(&s->nodes[i].rs);
        }
    }
    free(s->spans);
    free(s->clients);
    free(s->writes);
    free(s->reads);
    resp_parser_deinit(&s->parser);
    redisReaderFree(s->reader);
}

void sim_opts_for_seed(struct sim_opts *o, uint64_t seed) {
    memset(o, 0, sizeof *o);
    o->seed = seed;
    o->nodes = 5;
    o->n = 3, o->w = 2, o->r = 2;
    o->clients = 4;
    o->ops_per_client = 60;
    o->keys = 6;
    o->dbs = 2;
    o->drop = 0.05;
    o->slow = 0.03;
    o->delay_max_ms = 10;
    o->timeout_ms = 50;
    o->max_skew_ms = 30;
    o->partitions = 1;
    o->crashes = 1;
    o->pauses = 1;
    o->fault_every_ms = 80;
    o->hint_window_ms = 3 * 3600 * 1000ull;
    o->hint_max_bytes = 1 << 20;
    o->gossip = 1;
    switch (seed % 7) {
    case 1:
        o->crash_loses_store = 1;
        break;
    case 2:
        o->crashes = 0;
        break;
    case 3:
        o->w = 1, o->r = 1;
        break;
    case 4:
        o->w = 3, o->r = 1;
        break;
    case 5:
        o->w = 1, o->r = 3;
        break;
    case 6: /* hot keys: many clients on two keys, slow links */
        o->clients = 8;
        o->keys = 2;
        o->slow = 0.10;
        o->delay_max_ms = 20;
        break;
    }
    o->check_reads = o->w + o->r > o->n;
}

int sim_run(const struct sim_opts *o, struct sim_result *res) {
    struct sim s;
    if (o->nodes < 1 || o->nodes > SIM_MAX_NODES || o->n < 1 || o->w < 1 || o->r < 1 ||
        o->clients < 1 || o->keys < 1 || o->dbs < 1 || (o->join + o->leave + o->remove > 1) ||
        ((o->join || o->leave) && o->nodes < 2) ||
        (o->remove && (o->nodes <= o->n || o->crashes || o->pauses)) ||
        (o->repair_every_ms && (o->join || o->leave || o->remove)) ||
        (o->gc_grace_ms && !o->repair_every_ms) ||
        (o->absent_ms && (o->crash_loses_store || o->nodes <= SIM_ABSENT)) ||
        (o->hashes && (o->join || o->leave || o->remove || o->gc_grace_ms))) {
        memset(res, 0, sizeof *res);
        snprintf(res->why, sizeof res->why, "bad simulator options");
        return -1;
    }
    sim_init(&s, o, res);
    run_until(&s, clients_finished, s.now + 600000);
    if (!clients_finished(&s)) {
        violation(&s, "the workload did not finish in 600 s of virtual time");
    }
    res->st.join_workload_end_ms = s.now - SIM_START_MS;
    heal(&s);
    run_until(&s, quiescent, s.now + 120000);
    if (!quiescent(&s)) {
        violation(&s, "hints or ops still pending 120 s after healing");
    }
    run_until(&s, join_finished, s.now + 600000);
    if (!join_finished(&s)) {
        violation(&s, "%s: the mover still streams 600 s after the workload", move_name(&s));
    }
    if (o->leave && join_finished(&s)) {
        check_leaver_out(&s);
    }
    if (o->gossip) { /* the repair pass starts once every node sees every node up */
        run_until(&s, members_all_up, s.now + 120000);
        if (!members_all_up(&s)) {
            violation(&s, "gossip: members still seen down 120 s after healing");
        }
    }
    size_t dropped = 0;
    for (int i = 0; i < o->nodes; i++) {
        if (!s.nodes[i].live) {
            continue; /* removed: its stats were folded when it died */
        }
        const struct hints_stats *h = &s.nodes[i].node.hints->stats;
        dropped += h->dropped_window + h->dropped_bytes + h->dropped_big;
        node_fold_stats(&s, &s.nodes[i]);
    }
    res->st.hints_dropped += dropped;
    final_checks(&s, o->force_hint_check || (!o->crashes && res->st.hints_dropped == 0));
    res->st.end_ms = s.now - SIM_START_MS;
    sim_free(&s);
    return res->ok ? 0 : -1;
}

/* ---- gossip on the virtual clock (sim_gossip_run; sim.h) ----
 *
 * HOW IT WORKS. Each node is a gossip machine (gossip.c, the runtime's code) with
 * a round every 1000 ms at its own random phase: its heartbeat rises, it sends a
 * SYN to gossip_pick's members (fanout 2) and to its seed until the seed answered.
 * Messages are the real bytes, delivered after 1..delay_max_ms, or lost (drop, a
 * partition, a crashed end). The phases of a run, each with its invariant:
 *   1. join: node i knows only its seed (node i-1); every node must know every
 *      member with its true tokens and generation within SIM_GOSSIP_MAX_ROUNDS;
 *   2. partition: the last node is cut from all others; each side must see the
 *      other down (phi) within SIM_GOSSIP_DETECT_MS, then after healing up again
 *      within SIM_GOSSIP_DETECT_MS;
 *   3. restart: node 1 crashes and comes back with generation + 1; every node must
 *      know the new generation within SIM_GOSSIP_MAX_ROUNDS rounds.
 */

#define SIM_GOSSIP_MAX_ROUNDS 12
#define SIM_GOSSIP_DETECT_MS 15000
#define SIM_GOSSIP_TOKENS 8

enum { GP_JOIN, GP_SETTLE, GP_CUT, GP_HEAL, GP_RESTART, GP_DONE };

struct gsim {
    struct sim s;                    /* clock, rng, events, trace, violation */
    struct sim_result sr;
    struct sim_gossip_opts o;
    struct gossip *g[SIM_MAX_NODES]; /* NULL while crashed */
    struct ring_member m[SIM_MAX_NODES];
    uint64_t tokens[SIM_MAX_NODES][SIM_GOSSIP_TOKENS];
    uint64_t gen[SIM_MAX_NODES];
    int answered[SIM_MAX_NODES];     /* its seed answered a SYN */
    int phase;
    uint64_t phase_at;               /* when the phase began */
    uint64_t start;
    struct sim_gossip_result *res;
};

static int gsim_partner_cut(const struct gsim *x, int a, int b) {
    return x->s.cut[a][b] || x->g[a] == NULL || x->g[b] == NULL;
}

static void gsim_send(struct gsim *x, int from, int to, int kind, struct msg_buf *b) {
    struct sim *s = &x->s;
    x->res->messages++;
    if (gsim_partner_cut(x, from, to) || chance(s, x->o.drop)) {
        msg_buf_free(b);
        return;
    }
    struct sim_msg *m = cl_calloc(1, sizeof *m);
    *m = (struct sim_msg){.from = from, .to = to, .verb = kind, .epoch = x->gen[from],
                          .bytes = b->p, .len = b->len};
    *b = (struct msg_buf){0};
    uint64_t delay = 1 + rnd_below(s, x->o.delay_max_ms ? x->o.delay_max_ms : 1);
    ev_push(s, (struct ev){.at = s->now + delay, .kind = EV_GOSSIP_DELIVER, .m = m});
}

static void gsim_syn(struct gsim *x, int from, int to) {
    struct msg_buf b = {0};
    gossip_syn(x->g[from], x->s.now, &b);
    gsim_send(x, from, to, GOSSIP_SYN, &b);
}

static void gsim_round(struct gsim *x, int i) {
    struct sim *s = &x->s;
    at(s, s->now + 1000, EV_GOSSIP_TICK, i, -1, 0);
    if (x->g[i] == NULL) {
        return;
    }
    gossip_tick(x->g[i]);
    uint32_t tags[3];
    size_t k = gossip_pick(x->g[i], s->now, 2, tags, 3);
    for (size_t j = 0; j < k; j++) {
        gsim_syn(x, i, (int)(tags[j] - 1));
    }
    if (i > 0 && !x->answered[i]) {
        gsim_syn(x, i, i - 1);
    }
}

static void gsim_deliver(struct gsim *x, struct sim_msg *m) {
    struct gossip *g = x->g[m->to];
    if (g == NULL || x->s.cut[m->from][m->to] || m->epoch != x->gen[m->from]) {
        return; /* lost with its connection */
    }
    struct msg_buf out = {0};
    char err[192];
    int rc, need = 0;
    if (m->verb == GOSSIP_SYN) {
        rc = gossip_on_syn(g, x->s.now, x->s.now, m->bytes, m->len, &out, NULL, err, sizeof err);
        if (rc == GOSSIP_OK) {
            gsim_send(x, m->to, m->from, GOSSIP_ACK, &out);
        }
    } else if (m->verb == GOSSIP_ACK) {
        rc = gossip_on_ack(g, x->s.now, x->s.now, m->bytes, m->len, &out, &need, NULL, err,
                           sizeof err);
        if (rc == GOSSIP_OK && m->to > 0 && m->from == m->to - 1) {
            x->answered[m->to] = 1;
        }
        if (rc == GOSSIP_OK && need) {
            gsim_send(x, m->to, m->from, GOSSIP_ACK2, &out);
        }
    } else {
        rc = gossip_on_ack2(g, x->s.now, m->bytes, m->len, NULL, err, sizeof err);
    }
    msg_buf_free(&out);
    if (rc != GOSSIP_OK) {
        violation(&x->s, "node %d refused a gossip message of node %d: %s", m->to, m->from, err);
    }
}

/* 1 when every live node knows every node with its true tokens and generation */
static int gsim_converged(const struct gsim *x) {
    for (int i = 0; i < x->o.nodes; i++) {
        const struct gossip *g = x->g[i];
        if (g == NULL) {
            continue;
        }
        for (int j = 0; j < x->o.nodes; j++) {
            long k = gossip_find(g, x->m[j].id);
            if (k < 0 || g->mb[k].generation != x->gen[j] || !gossip_in_ring(g, (size_t)k) ||
                g->mb[k].m.ntokens != SIM_GOSSIP_TOKENS ||
                memcmp(g->mb[k].m.tokens, x->tokens[j], sizeof x->tokens[j]) != 0) {
                return 0;
            }
        }
    }
    return 1;
}

/* 1 when observer a sees b in health h (by phi) */
static int gsim_sees(const struct gsim *x, int a, int b, int h) {
    long k = gossip_find(x->g[a], x->m[b].id);
    return k >= 0 && gossip_health(x->g[a], (size_t)k, x->s.now, NULL) == h;
}

/* the partitioned node (the last) and the others see each other in health h */
static int gsim_split_seen(const struct gsim *x, int h) {
    int p = x->o.nodes - 1;
    for (int i = 0; i < p; i++) {
        if (!gsim_sees(x, i, p, h) || !gsim_sees(x, p, i, h)) {
            return 0;
        }
    }
    return 1;
}

static void gsim_cut(struct gsim *x, int on) {
    int p = x->o.nodes - 1;
    for (int i = 0; i < p; i++) {
        x->s.cut[i][p] = x->s.cut[p][i] = on;
    }
}

static void gsim_node_start(struct gsim *x, int i) {
    struct gossip_self gs = {0};
    gs.m = &x->m[i];
    gs.generation = x->gen[i];
    gs.rf = 3;
    gossip_fingerprint("sim", 3, gs.fp);
    gs.convict = 8;
    phi_config_default(&gs.phi);
    gs.seed = rnd(&x->s) | 1;
    x->g[i] = gossip_new(&gs);
    x->answered[i] = 0;
}

/* the phase machine, every 100 ms of virtual time */
static void gsim_phase(struct gsim *x) {
    struct sim *s = &x->s;
    uint64_t in = s->now - x->phase_at;
    at(s, s->now + 100, EV_GOSSIP_PHASE, -1, -1, 0);
    switch (x->phase) {
    case GP_JOIN:
        if (gsim_converged(x)) {
            x->res->rounds_to_converge = (int)((s->now - x->start + 999) / 1000);
            x->phase = GP_SETTLE;
            x->phase_at = s->now;
        } else if (in > SIM_GOSSIP_MAX_ROUNDS * 1000u) {
            violation(s, "membership did not converge within %d rounds", SIM_GOSSIP_MAX_ROUNDS);
        }
        break;
    case GP_SETTLE: /* phi learns the intervals */
        if (in >= 20000) {
            gsim_cut(x, 1);
            trace(s, "partition: node %d cut from the others", x->o.nodes - 1);
            x->phase = GP_CUT;
            x->phase_at = s->now;
        }
        break;
    case GP_CUT:
        if (gsim_split_seen(x, GOSSIP_DOWN)) {
            x->res->detect_ms = in;
            gsim_cut(x, 0);
            trace(s, "healed");
            x->phase = GP_HEAL;
            x->phase_at = s->now;
        } else if (in > SIM_GOSSIP_DETECT_MS) {
            violation(s, "a partitioned node was not seen down within %d ms",
                      SIM_GOSSIP_DETECT_MS);
        }
        break;
    case GP_HEAL:
        if (gsim_split_seen(x, GOSSIP_UP)) {
            x->res->recover_ms = in;
            gossip_free(&x->g[1]); /* crash node 1; it restarts at once, a new generation */
            x->gen[1]++;
            gsim_node_start(x, 1);
            trace(s, "node 1 restarted, generation %llu", (unsigned long long)x->gen[1]);
            x->phase = GP_RESTART;
            x->phase_at = s->now;
        } else if (in > SIM_GOSSIP_DETECT_MS) {
            violation(s, "after healing a node was not seen up within %d ms",
                      SIM_GOSSIP_DETECT_MS);
        }
        break;
    case GP_RESTART:
        if (gsim_converged(x)) {
            x->res->restart_rounds = (int)((in + 999) / 1000);
            x->phase = GP_DONE;
        } else if (in > SIM_GOSSIP_MAX_ROUNDS * 1000u) {
            violation(s, "a restarted node's generation did not spread within %d rounds",
                      SIM_GOSSIP_MAX_ROUNDS);
        }
        break;
    }
}

static void gsim_init(struct gsim *x, const struct sim_gossip_opts *o,
                      struct sim_gossip_result *res) {
    memset(x, 0, sizeof *x);
    memset(res, 0, sizeof *res);
    x->o = *o;
    x->res = res;
    x->s.res = &x->sr;
    x->sr.ok = 1;
    x->s.o.verbose = o->verbose;
    x->s.rng = o->seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    x->s.now = x->start = x->phase_at = SIM_START_MS;
    for (int i = 0; i < o->nodes; i++) {
        struct ring_member *m = &x->m[i];
        snprintf(m->id, sizeof m->id, "g%02d", i);
        snprintf(m->addr, sizeof m->addr, "10.0.0.%d:7000", i + 1);
        m->tag = (uint32_t)(i + 1);
        m->weight = 1;
        ring_tokens_generate(rnd(&x->s), x->tokens[i], SIM_GOSSIP_TOKENS);
        m->tokens = x->tokens[i];
        m->ntokens = SIM_GOSSIP_TOKENS;
        x->gen[i] = 1 + rnd_below(&x->s, 1000);
        gsim_node_start(x, i);
        at(&x->s, x->s.now + rnd_below(&x->s, 1000), EV_GOSSIP_TICK, i, -1, 0);
    }
    at(&x->s, x->s.now + 100, EV_GOSSIP_PHASE, -1, -1, 0);
}

int sim_gossip_run(const struct sim_gossip_opts *o, struct sim_gossip_result *res) {
    if (o->nodes < 2 || o->nodes > SIM_MAX_NODES) {
        memset(res, 0, sizeof *res);
        snprintf(res->why, sizeof res->why, "nodes must be 2..%d", SIM_MAX_NODES);
        return -1;
    }
    struct gsim *x = cl_malloc(sizeof *x);
    gsim_init(x, o, res);
    uint64_t limit = x->start + 120000;
    while (x->s.nheap && x->phase != GP_DONE && x->sr.ok && x->s.now < limit) {
        struct ev e = ev_pop(&x->s);
        x->s.now = e.at;
        if (e.kind == EV_GOSSIP_TICK) {
            gsim_round(x, e.node);
        } else if (e.kind == EV_GOSSIP_DELIVER) {
            gsim_deliver(x, e.m);
            free(e.m->bytes);
            free(e.m);
        } else {
            gsim_phase(x);
        }
    }
    if (x->sr.ok && x->phase != GP_DONE) {
        violation(&x->s, "the run did not finish (phase %d)", x->phase);
    }
    res->ok = x->sr.ok;
    snprintf(res->why, sizeof res->why, "%s", x->sr.why);
    while (x->s.nheap) {
        struct ev e = ev_pop(&x->s);
        if (e.m) {
            free(e.m->bytes);
            free(e.m);
        }
    }
    free(x->s.heap);
    for (int i = 0; i < o->nodes; i++) {
        gossip_free(&x->g[i]);
    }
    free(x);
    return res->ok ? 0 : -1;
}
