/* cluster/cluster.c: the cluster runtime on the server's event loop. See cluster.h.
 *
 * HOW IT WORKS.
 * - Membership (gossip.h): the node's view of the members lives in a gossip
 *   machine (this node first). Every peer address it knows (the seeds, then the
 *   address of every member learned) gets one link (link.h), bound to bind_ip
 *   and authenticated with the secret. Once a second the node's heartbeat rises
 *   and it gossips (`KVD.PEER GOSSIP <SYN>` answered by the ACK, then
 *   `KVD.PEER GOSSIP2 <ACK2>` when the peer asked for states) with two random
 *   live members, maybe one that is down, and every seed that has not answered
 *   yet (also at once when a link comes up). When the ring's part of the view
 *   changes, the member list is rebuilt from it and so is the ring. The node is
 *   ready once every seed that is not itself answered one SYN.
 * - Failure detection: a member is down while its link is not up, or while its
 *   phi (gossip.h, phi.h; heartbeats heard directly or through others) is at
 *   phi-convict-threshold or above; suspect from half of it. The coordinator
 *   skips a down member at once (tag_up) and hints its writes.
 * - Clock (skew.h): each ACK carries the peer's clock; the offset to each peer
 *   is estimated from the fastest recent exchange, and while this node is more
 *   than cluster-max-clock-offset-ms from the median it refuses to coordinate
 *   writes (cluster_write, cluster_writes_allowed), logged once per transition.
 * - Coordinator: the ops run on cluster/node.c. node.c asks to send requests;
 *   requests to this node itself are served through the store callbacks, from a
 *   deferred event (never a link to itself, never inside the node call);
 *   requests to a peer go over its link, their answers decoded (msg.h) and fed
 *   back by op id. Results are copied to a queue of done callbacks that a
 *   deferred event runs, so a callback never runs inside cluster_read/write (the
 *   contract), and cluster_cancel removes a queued result or marks the live op.
 *   One timer is kept armed at cnode_next_deadline.
 * - Hints (hints.h, in node.c) are kept in memory, and in persistent mode
 *   mirrored into the hint log (hintlog.h, config hint_dir): appends written at
 *   the end of the loop turn, fdatasync once a second, loaded at start, so a
 *   restarted coordinator still delivers them. They are sent when the target's
 *   link comes up and from a 100 ms tick.
 * - The peer side: struct cluster_peer is one client connection speaking
 *   KVD.PEER: HELLO/AUTH through auth.h's listener, then GOSSIP, GOSSIP2, READ,
 *   WRITE, MWRITE (replica.h on the store callbacks), SCAN, FLUSH. Until the secret is proved, every other
 *   verb is refused and the connection closed.
 *
 * Wire form of the gossip messages: gossip.h.
 */
#include "cluster/cluster.h"

#include <errno.h>
#include <stdarg.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "cluster/auth.h"
#include "cluster/gossip.h"
#include "cluster/join.h"
#include "cluster/keyless.h"
#include "cluster/merkle.h"
#include "cluster/repair.h"
#include "cluster/repair_rt.h"
#include "cluster/hintlog.h"
#include "cluster/link.h"
#include "cluster/mem.h"
#include "cluster/node.h"
#include "cluster/replica.h"
#include "cluster/ring.h"
#include "cluster/scan.h"
#include "cluster/skew.h"

#define CL_TICK_MS 100          /* hints and membership timer */
#define CL_GOSSIP_EVERY 10      /* a gossip round every this many ticks (1 s) */
#define CL_GOSSIP_FANOUT 2      /* live members gossiped with per round */
#define CL_REFUSAL_LOG_MS 10000 /* a refused exchange is logged at most this often */
#define CL_HOST_MAX 255

struct peer_rt {                /* one peer address and its link */
    char addr[RING_ADDR_MAX + 1];
    char host[CL_HOST_MAX + 1];
    int port;
    struct link *link;
    int up;                     /* link up (authenticated) */
    int is_seed;
    int answered;               /* answered our gossip at least once */
    int asking;                 /* a gossip SYN in flight */
    int auth_warned;            /* its failed handshake was logged */
    int is_self;                /* this node (its address, or it answered as us): not asked */
    struct cluster *cl;
};

/* what a finished or refused request hands to its callback, from the loop */
enum { DQ_DONE = 1, DQ_LOCAL, DQ_FAIL_REPLY };

struct dq {
    int kind;
    struct dq *next;
    /* DQ_DONE */
    uint64_t id;
    int is_read;
    cluster_read_done *rcb;
    cluster_write_done *wcb;
    void *ctx;
    int status;
    int found;
    struct msg_record rec;      /* rec.val owned */
    char err[320];
    /* DQ_LOCAL (a request to this node's own replica) and DQ_FAIL_REPLY */
    int verb;
    uint32_t from;              /* DQ_FAIL_REPLY: the replica that failed */
    int is_hint;
    uint64_t seq;
    unsigned db;
    char *key;                  /* owned */
    size_t klen;
};

struct creq {                   /* a caller's request while its op runs */
    uint64_t id;
    int is_read;
    cluster_read_done *rcb;
    cluster_write_done *wcb;
    void *ctx;
};

struct rreq {                   /* one request on a link */
    struct cluster *cl;
    uint64_t id;                /* op id, or hint seq */
    uint32_t tag;
    int verb;
    int is_hint;
    int is_gossip;
    struct peer_rt *peer;       /* gossip */
    uint64_t t_send;            /* gossip: our clock when the SYN left */
};

/* Requests to one replica queued in one loop turn, sent as one message: the reads
 * of one db as one READ of many keys, the writes as one MWRITE (msg.h). */
#define CL_OUTBOX_MAX 256       /* requests in one message at most */

struct obox_item {
    struct rreq *rq;
    char *key;                  /* owned */
    size_t klen;
    struct msg_record rec;      /* WRITE: rec.val owned */
};

struct obox {
    uint32_t tag;
    int verb;
    unsigned db;
    size_t n, cap;
    struct obox_item *it;
};

struct mreq {                   /* one coalesced message on a link */
    struct cluster *cl;
    int verb;
    size_t n;
    struct rreq *rq[];
};

struct cluster {
    struct event_base *base;
    /* config, strings copied */
    char node_id[RING_ID_MAX + 1];
    uint32_t tag;
    char *secret;
    size_t secret_len;
    char bind_ip[CL_HOST_MAX + 1];
    char self_addr[RING_ADDR_MAX + 1];
    int n, w, r;
    int timeout_ms;
    struct cluster_store store;
    /* membership: members[0] is this node */
    struct ring_member *members;
    size_t nmembers;
    struct ring ring;           /* current: members normal or leaving (reads, writes) */
    struct ring future;         /* normal or joining: pending writes (join.h) */
    int has_future;             /* the two differ: a member joins or leaves */
    uint64_t ring_version;      /* +1 per rebuild */
    struct peer_rt **peers;
    size_t npeers;
    size_t nseeds;
    /* coordinator */
    struct cnode node;
    struct dq *dq_head, *dq_tail;
    size_t dq_len;
    struct event *defer_ev;
    struct obox *obox;          /* this turn's requests per (replica, verb, db) */
    size_t nobox, capobox, queued;
    struct event *flush_ev;     /* sends them if cluster_send_queued did not */
    struct event *deadline_ev;
    uint64_t armed_at;          /* deadline the timer is armed for (0: none) */
    struct event *tick_ev;
    unsigned ticks;
    uint64_t nonce_ctr;
    int stopping;
    char why[320];
    uint64_t merge_conflicts;   /* rings that could not be built */
    /* membership (gossip.h), failure detection, clock offset (skew.h) */
    struct gossip *gossip;
    uint64_t gossip_epoch;      /* the gossip ring_epoch members were built from */
    struct skew skew;
    uint64_t gossip_rounds;
    uint64_t refusal_logged_at; /* mono ms of the last refused exchange logged */
    char last_refusal[192];     /* the last refused exchange, for INFO */
    uint64_t write_bytes;       /* record bytes of WRITEs sent to peers (writes, read
                                   repairs, hints): what a big hash's field records save */
    uint64_t write_records;     /* those records */
    void (*log)(int level, const char *msg);
    struct keyless *kl;         /* SCAN and FLUSH ops (keyless.c) */
    struct repairer *rep;       /* anti-entropy repair (repair_rt.c) */
    struct joiner *join;        /* joining and leaving (join.c) */
    /* durable hints (persistent mode): the hint log and its end-of-turn flush */
    struct hintlog *hintlog;
    struct event *hintlog_ev;
    /* this node's replica: write acks waiting for the store's durability */
    struct local_acks *acks_open;     /* collected in this dq_run pass */
    struct local_acks *acks_waiting;  /* asked store.when_durable, not answered */
};

struct cluster_peer {
    struct cluster *cl;
    struct auth_listener auth;
};

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void cl_log(const struct cluster *cl, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cl_log(const struct cluster *cl, int level, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cl->log) {
        cl->log(level, msg);
    } else if (level >= CLUSTER_LOG_NOTICE) {
        fprintf(stderr, "cluster: %s\n", msg);
    }
}

/* ---- members ---- */

static void member_free(struct ring_member *m) {
    free(m->tokens);
    m->tokens = NULL;
}

static long member_by_tag(const struct cluster *cl, uint32_t tag) {
    for (size_t i = 0; i < cl->nmembers; i++) {
        if (cl->members[i].tag == tag) {
            return (long)i;
        }
    }
    return -1;
}

static struct peer_rt *peer_by_addr(const struct cluster *cl, const char *addr) {
    for (size_t i = 0; i < cl->npeers; i++) {
        if (strcmp(cl->peers[i]->addr, addr) == 0) {
            return cl->peers[i];
        }
    }
    return NULL;
}

static int split_addr(const char *addr, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= hostlen) {
        return -1;
    }
    char *endp;
    errno = 0;
    long pt = strtol(colon + 1, &endp, 10);
    if (errno || *endp || endp == colon + 1 || pt < 1 || pt > 65535) {
        return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    if (host[0] == '[') { /* [v6]:port */
        size_t hl = strlen(host);
        if (hl < 2 || host[hl - 1] != ']') {
            return -1;
        }
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    *port = (int)pt;
    return 0;
}

/* the gossip status of member m of cl->members */
static int member_status(const struct cluster *cl, size_t m) {
    long g = m == 0 ? 0 : gossip_find_tag(cl->gossip, cl->members[m].tag);
    return g >= 0 ? cl->gossip->mb[g].status : GOSSIP_NORMAL;
}

/* Builds the ring of the members whose status is not `without` (current: not
 * joining; future: not leaving). *out is left empty when none is (a joining node
 * that has heard of nobody yet). RING_OK or RING_INVALID with err. */
static int ring_without(const struct cluster *cl, int without, struct ring *out, char *err,
                        size_t errlen) {
    struct ring_member *v = cl_calloc(cl->nmembers, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < cl->nmembers; i++) {
        int st = member_status(cl, i);
        if (st != without && st != GOSSIP_LEFT) {
            v[n++] = cl->members[i]; /* shallow: ring_build copies */
        }
    }
    int rc = RING_OK;
    memset(out, 0, sizeof *out);
    if (n > 0) {
        rc = ring_build(out, v, n, err, errlen);
    }
    free(v);
    return rc;
}

static void rebuild_ring(struct cluster *cl) {
    struct ring cur, fut;
    char err[128];
    if (ring_without(cl, GOSSIP_JOINING, &cur, err, sizeof err) != RING_OK ||
        ring_without(cl, GOSSIP_LEAVING, &fut, err, sizeof err) != RING_OK) {
        ring_destroy(&cur);
        cl_log(cl, CLUSTER_LOG_WARNING, "ring not rebuilt: %s", err);
        cl->merge_conflicts++;
        return;
    }
    ring_destroy(&cl->ring);
    ring_destroy(&cl->future);
    cl->ring = cur;
    cl->future = fut;
    cl->has_future = 0;
    for (size_t i = 0; i < cl->nmembers; i++) {
        int st = member_status(cl, i);
        cl->has_future |= st == GOSSIP_JOINING || st == GOSSIP_LEAVING;
    }
    cl->ring_version++;
}

static void peer_link_state(void *ctx, enum link_state state, const char *why);
static void gossip_send(struct cluster *cl, struct peer_rt *p);
static void kick_defer(struct cluster *cl);
static void dq_run(struct cluster *cl);
static void rearm(struct cluster *cl);
static void hints_log_tick(struct cluster *cl);

static struct peer_rt *peer_add(struct cluster *cl, const char *addr, int is_seed) {
    struct peer_rt *p = peer_by_addr(cl, addr);
    if (p) {
        p->is_seed |= is_seed;
        return p;
    }
    p = cl_calloc(1, sizeof *p);
    p->cl = cl;
    p->is_seed = is_seed;
    snprintf(p->addr, sizeof p->addr, "%s", addr);
    if (split_addr(addr, p->host, sizeof p->host, &p->port) != 0) {
        free(p);
        return NULL;
    }
    cl->peers = cl_realloc(cl->peers, (cl->npeers + 1) * sizeof *cl->peers);
    cl->peers[cl->npeers++] = p;
    if (strcmp(addr, cl->self_addr) == 0) {
        p->is_self = 1;
        p->answered = 1;
        return p;
    }
    struct link_config lc = {0};
    lc.host = p->host;
    lc.port = p->port;
    lc.source_addr = cl->bind_ip[0] ? cl->bind_ip : NULL;
    lc.secret = cl->secret;
    lc.secret_len = cl->secret_len;
    lc.node_id = cl->node_id;
    lc.node_id_len = strlen(cl->node_id);
    lc.connect_timeout_ms = cl->timeout_ms;
    lc.request_timeout_ms = cl->timeout_ms;
    lc.backoff_max_ms = 2000;
    lc.on_state = peer_link_state;
    lc.state_ctx = p;
    p->link = link_create(cl->base, &lc);
    return p;
}

/* The hints held for members another node removed (KVD REMOVENODE, a replace)
 * once they left: they will never be delivered. */
static void drop_removed_hints(struct cluster *cl) {
    const struct gossip *g = cl->gossip;
    struct hints *h = cl->node.hints;
    for (size_t i = 1; i < g->n; i++) {
        uint32_t tag = g->mb[i].m.tag;
        if (!gossip_removed(g, i) || g->mb[i].status != GOSSIP_LEFT ||
            hints_pending(h, tag) == 0) {
            continue;
        }
        size_t n = 0;
        for (const struct hint *x; (x = hints_peek(h, tag, 0)) != NULL; n++) {
            if (hints_ack(h, tag, x->seq) != HINTS_OK) {
                break;
            }
        }
        cl_log(cl, CLUSTER_LOG_NOTICE, "dropped %zu hints for %s: it was removed", n,
               g->mb[i].m.id);
    }
}

/* Rebuilds the member list (this node first) and the ring from the gossip view
 * when the part the ring depends on changed; every member's address gets a link. */
static void sync_members(struct cluster *cl) {
    const struct gossip *g = cl->gossip;
    if (g->ring_epoch == cl->gossip_epoch) {
        return;
    }
    cl->gossip_epoch = g->ring_epoch;
    for (size_t i = 1; i < cl->nmembers; i++) {
        member_free(&cl->members[i]);
    }
    cl->nmembers = 1;
    cl->members = cl_realloc(cl->members, g->n * sizeof *cl->members);
    for (size_t i = 1; i < g->n; i++) {
        if (!gossip_in_ring(g, i)) {
            continue;
        }
        struct ring_member *m = &cl->members[cl->nmembers++];
        *m = g->mb[i].m;
        m->tokens = cl_memdup(m->tokens, m->ntokens * sizeof *m->tokens);
        peer_add(cl, m->addr, 0);
    }
    drop_removed_hints(cl);
    rebuild_ring(cl);
}

/* this node's wall clock (the store's, debug-clock-offset-ms included) */
static uint64_t wall_ms(const struct cluster *cl) {
    return cl->store.now_ms ? cl->store.now_ms(cl->store.ctx) : (uint64_t)time(NULL) * 1000;
}

static void gossip_log(void *ctx, int level, const char *msg) {
    cl_log(ctx, level, "%s", msg);
}

/* a refused or malformed exchange: logged loudly, at most every few seconds */
static void refusal_note(struct cluster *cl, const char *who, const char *why) {
    snprintf(cl->last_refusal, sizeof cl->last_refusal, "%s: %s", who, why);
    uint64_t now = mono_ms();
    if (cl->refusal_logged_at == 0 || now - cl->refusal_logged_at >= CL_REFUSAL_LOG_MS) {
        cl->refusal_logged_at = now;
        cl_log(cl, CLUSTER_LOG_WARNING, "gossip with %s refused: %s", who, why);
    }
}

/* ---- links ---- */

static int tag_up(void *ctx, uint32_t tag) {
    struct cluster *cl = ctx;
    if (tag == cl->tag) {
        return 1;
    }
    long i = member_by_tag(cl, tag);
    if (i < 0) {
        return 0;
    }
    struct peer_rt *p = peer_by_addr(cl, cl->members[i].addr);
    if (p == NULL || !p->up) {
        return 0;
    }
    long g = gossip_find_tag(cl->gossip, tag);
    return g < 0 || gossip_health(cl->gossip, (size_t)g, mono_ms(), NULL) != GOSSIP_DOWN;
}

/* "up", "suspect" or "down" for member tag, and its phi */
static const char *tag_state(const struct cluster *cl, uint32_t tag, double *phi) {
    *phi = 0;
    long g = gossip_find_tag(cl->gossip, tag);
    int health = g < 0 ? GOSSIP_UP : gossip_health(cl->gossip, (size_t)g, mono_ms(), phi);
    if (!tag_up((void *)cl, tag)) {
        return "down";
    }
    return gossip_health_name(health);
}

static void gossip2_reply(void *ctx, int status, const redisReply *reply) {
    struct rreq *rq = ctx;
    struct cluster *cl = rq->cl;
    struct peer_rt *p = rq->peer;
    free(rq);
    if (!cl->stopping && status == LINK_OK && reply && reply->type == REDIS_REPLY_ERROR) {
        refusal_note(cl, p->addr, reply->str);
    }
}

/* The peer's ACK to our SYN: learn its states, measure the clock, send the ACK2. */
static void gossip_ack(struct cluster *cl, struct peer_rt *p, uint64_t t_send,
                       const redisReply *reply) {
    uint64_t t_recv = wall_ms(cl);
    struct msg_buf ack2 = {0};
    struct gossip_peer from;
    char err[192];
    int need = 0;
    int rc = gossip_on_ack(cl->gossip, mono_ms(), t_recv, reply->str, reply->len, &ack2, &need,
                           &from, err, sizeof err);
    if (rc != GOSSIP_OK) {
        refusal_note(cl, p->addr, err);
    } else if (strcmp(from.id, cl->node_id) == 0) {
        /* the seed is this node under another address: never asked again (its link
         * idles until cluster_stop) */
        p->answered = 1;
        p->is_self = 1;
    } else {
        p->answered = 1;
        long i = gossip_find(cl->gossip, from.id);
        if (i > 0) {
            skew_sample(&cl->skew, cl->gossip->mb[i].m.tag, t_send, from.wall_ms, t_recv);
        }
        if (need) {
            const char *argv[3] = {MSG_COMMAND, "GOSSIP2", ack2.p};
            size_t argvlen[3] = {strlen(MSG_COMMAND), 7, ack2.len};
            struct rreq *rq = cl_calloc(1, sizeof *rq);
            *rq = (struct rreq){.cl = cl, .is_gossip = 1, .peer = p};
            if (link_send(p->link, 3, argv, argvlen, gossip2_reply, rq) != LINK_OK) {
                free(rq);
            }
        }
        sync_members(cl);
    }
    msg_buf_free(&ack2);
}

static void gossip_reply(void *ctx, int status, const redisReply *reply) {
    struct rreq *rq = ctx;
    struct cluster *cl = rq->cl;
    struct peer_rt *p = rq->peer;
    uint64_t t_send = rq->t_send;
    free(rq);
    if (cl->stopping) {
        return;
    }
    p->asking = 0;
    if (status != LINK_OK || reply == NULL) {
        return;
    }
    if (reply->type == REDIS_REPLY_STRING) {
        gossip_ack(cl, p, t_send, reply);
    } else {
        refusal_note(cl, p->addr, reply->type == REDIS_REPLY_ERROR ? reply->str
                                                                   : "a reply that is no ACK");
    }
}

static void gossip_send(struct cluster *cl, struct peer_rt *p) {
    if (p->is_self || p->link == NULL || !p->up || p->asking) {
        return;
    }
    struct msg_buf b = {0};
    uint64_t t_send = wall_ms(cl);
    gossip_syn(cl->gossip, t_send, &b);
    const char *argv[3] = {MSG_COMMAND, "GOSSIP", b.p};
    size_t argvlen[3] = {strlen(MSG_COMMAND), 6, b.len};
    struct rreq *rq = cl_calloc(1, sizeof *rq);
    *rq = (struct rreq){.cl = cl, .is_gossip = 1, .peer = p, .t_send = t_send};
    if (link_send(p->link, 3, argv, argvlen, gossip_reply, rq) == LINK_OK) {
        p->asking = 1;
    } else {
        free(rq);
    }
    msg_buf_free(&b);
}

/* the clock guard: logged once per transition */
static void clock_check(struct cluster *cl) {
    if (!skew_check(&cl->skew, wall_ms(cl))) {
        return;
    }
    if (!cl->skew.ok) {
        cl_log(cl, CLUSTER_LOG_WARNING,
               "CLOCK: this node is %lld ms off the median of its %zu peers "
               "(cluster-max-clock-offset-ms %lld): it refuses to coordinate writes until "
               "its clock is back in range",
               (long long)cl->skew.offset, cl->skew.peers, (long long)cl->skew.max_ms);
    } else {
        cl_log(cl, CLUSTER_LOG_NOTICE,
               "clock: back within cluster-max-clock-offset-ms (%lld ms off %zu peers): "
               "coordinating writes again",
               (long long)cl->skew.offset, cl->skew.peers);
    }
}

/* One round (every second): the heartbeat rises, gossip with a few members and
 * with every seed not heard yet, the clock guard. */
static void gossip_round(struct cluster *cl) {
    cl->gossip_rounds++;
    if (cl->store.load) {
        gossip_set_load(cl->gossip, cl->store.load(cl->store.ctx));
    }
    gossip_tick(cl->gossip);
    uint32_t tags[CL_GOSSIP_FANOUT + 1];
    size_t k = gossip_pick(cl->gossip, mono_ms(), CL_GOSSIP_FANOUT, tags,
                           CL_GOSSIP_FANOUT + 1);
    for (size_t i = 0; i < k; i++) {
        long m = member_by_tag(cl, tags[i]);
        struct peer_rt *p = m > 0 ? peer_by_addr(cl, cl->members[m].addr) : NULL;
        if (p) {
            gossip_send(cl, p);
        }
    }
    for (size_t i = 0; i < cl->npeers; i++) {
        if (cl->peers[i]->is_seed && !cl->peers[i]->answered) {
            gossip_send(cl, cl->peers[i]);
        }
    }
    clock_check(cl);
}

static void peer_link_state(void *ctx, enum link_state state, const char *why) {
    struct peer_rt *p = ctx;
    struct cluster *cl = p->cl;
    if (cl->stopping) {
        return;
    }
    int was = p->up;
    p->up = state == LINK_STATE_UP;
    if (p->up != was) {
        cl_log(cl, p->up ? CLUSTER_LOG_NOTICE : CLUSTER_LOG_WARNING, "link to %s %s%s%s",
               p->addr, link_state_name(state), why && *why ? ": " : "", why ? why : "");
    } else if (state == LINK_STATE_AUTH_FAILED && !p->auth_warned) {
        cl_log(cl, CLUSTER_LOG_WARNING, "link to %s: %s", p->addr, why ? why : "auth failed");
        p->auth_warned = 1; /* once: it redials every few seconds */
    }
    if (p->up) {
        p->auth_warned = 0;
    }
    if (p->up && !was) {
        gossip_send(cl, p);
        cnode_hints_send(&cl->node, mono_ms());
        rearm(cl);
    }
}

/* ---- the coordinator's I/O (cnode_io) ---- */

static void dq_push(struct cluster *cl, struct dq *d) {
    d->next = NULL;
    if (cl->dq_tail) {
        cl->dq_tail->next = d;
    } else {
        cl->dq_head = d;
    }
    cl->dq_tail = d;
    cl->dq_len++;
    kick_defer(cl);
}

static void dq_free(struct dq *d) {
    free(d->key);
    free((void *)d->rec.val);
    free(d);
}

static void fail_later(struct cluster *cl, uint64_t id, uint32_t from, int verb, int is_hint) {
    struct dq *d = cl_calloc(1, sizeof *d);
    d->kind = DQ_FAIL_REPLY;
    d->id = id;
    d->seq = id;
    d->from = from;
    d->verb = verb;
    d->is_hint = is_hint;
    dq_push(cl, d);
}

/* One request's answer: item (a read's, NULL when it failed) or ok (a write's). */
static void rreq_answer(struct cluster *cl, struct rreq *rq, int ok, const struct msg_item *item,
                        uint64_t now) {
    if (rq->verb == MSG_READ) {
        if (ok && item->found && cl->store.observe) {
            cl->store.observe(cl->store.ctx, item->rec.v.hlc);
        }
        cnode_on_read_reply(&cl->node, rq->id, rq->tag, ok ? item : NULL, now);
    } else if (rq->is_hint) {
        cnode_on_hint_reply(&cl->node, rq->tag, rq->id, ok, now);
    } else {
        cnode_on_write_reply(&cl->node, rq->id, rq->tag, ok, now);
    }
    free(rq);
}

static void remote_reply(void *ctx, int status, const redisReply *reply) {
    struct rreq *rq = ctx;
    struct cluster *cl = rq->cl;
    if (cl->stopping) {
        free(rq);
        return;
    }
    char err[128];
    int ok = 0;
    struct msg_item item = {0};
    if (rq->verb == MSG_READ) {
        ok = status == LINK_OK && msg_decode_read_reply(reply, 1, &item, err, sizeof err) ==
                                      MSG_OK;
    } else {
        int applied = 0;
        ok = status == LINK_OK &&
             msg_decode_write_reply(reply, &applied, err, sizeof err) == MSG_OK;
    }
    rreq_answer(cl, rq, ok, &item, mono_ms());
    dq_run(cl);
}

/* The reply to a coalesced message: each request gets its item; an error, a
 * malformed reply or a failed link fails them all. */
static void remote_mreply(void *ctx, int status, const redisReply *reply) {
    struct mreq *m = ctx;
    struct cluster *cl = m->cl;
    if (cl->stopping) {
        for (size_t i = 0; i < m->n; i++) {
            free(m->rq[i]);
        }
        free(m);
        return;
    }
    char err[128];
    struct msg_item items[CL_OUTBOX_MAX];
    int applied[CL_OUTBOX_MAX];
    int ok = status == LINK_OK && m->n <= CL_OUTBOX_MAX &&
             (m->verb == MSG_READ
                  ? msg_decode_read_reply(reply, m->n, items, err, sizeof err)
                  : msg_decode_mwrite_reply(reply, m->n, applied, err, sizeof err)) == MSG_OK;
    uint64_t now = mono_ms();
    static const struct msg_item none = {0};
    for (size_t i = 0; i < m->n; i++) {
        rreq_answer(cl, m->rq[i], ok, ok && m->verb == MSG_READ ? &items[i] : &none, now);
    }
    free(m);
    dq_run(cl);
}

static struct link *link_of_tag(struct cluster *cl, uint32_t tag) {
    long i = member_by_tag(cl, tag);
    if (i < 0) {
        return NULL;
    }
    struct peer_rt *p = peer_by_addr(cl, cl->members[i].addr);
    return p ? p->link : NULL;
}

static void send_one(struct cluster *cl, uint32_t tag, int verb, uint64_t id, int is_hint,
                     unsigned db, const char *key, size_t klen, const struct msg_record *rec) {
    struct link *l = link_of_tag(cl, tag);
    struct msg_argv a;
    if (verb == MSG_READ) {
        struct kv_slice k = {key, klen};
        msg_encode_read(&a, db, &k, 1);
    } else {
        msg_encode_write(&a, db, key, klen, rec);
    }
    struct rreq *rq = cl_calloc(1, sizeof *rq);
    *rq = (struct rreq){.cl = cl, .id = id, .tag = tag, .verb = verb, .is_hint = is_hint};
    int rc = l ? link_send(l, a.argc, a.argv, a.argvlen, remote_reply, rq) : LINK_DOWN;
    msg_argv_free(&a);
    if (rc != LINK_OK) {
        free(rq);
        fail_later(cl, id, tag, verb, is_hint);
    }
}

/* Sends one box as one message (one request: as before, READ or WRITE) and
 * empties it. */
static void flush_box(struct cluster *cl, struct obox *b) {
    size_t n = b->n;
    b->n = 0;
    cl->queued -= n;
    if (n == 0) {
        return;
    }
    if (n == 1) {
        struct obox_item *x = &b->it[0];
        struct rreq *rq = x->rq;
        uint64_t id = rq->id;
        free(rq);
        send_one(cl, b->tag, b->verb, id, 0, b->db, x->key, x->klen, &x->rec);
        free(x->key);
        free((void *)x->rec.val);
        return;
    }
    struct link *l = link_of_tag(cl, b->tag);
    struct msg_argv a;
    if (b->verb == MSG_READ) {
        struct kv_slice keys[CL_OUTBOX_MAX];
        for (size_t i = 0; i < n; i++) {
            keys[i] = (struct kv_slice){b->it[i].key, b->it[i].klen};
        }
        msg_encode_read(&a, b->db, keys, n);
    } else {
        struct msg_write w[CL_OUTBOX_MAX];
        for (size_t i = 0; i < n; i++) {
            w[i] = (struct msg_write){b->it[i].key, b->it[i].klen, &b->it[i].rec};
        }
        msg_encode_mwrite(&a, b->db, w, n);
    }
    struct mreq *m = cl_calloc(1, sizeof *m + n * sizeof m->rq[0]);
    m->cl = cl;
    m->verb = b->verb;
    m->n = n;
    for (size_t i = 0; i < n; i++) {
        m->rq[i] = b->it[i].rq;
    }
    int rc = l ? link_send(l, a.argc, a.argv, a.argvlen, remote_mreply, m) : LINK_DOWN;
    msg_argv_free(&a);
    for (size_t i = 0; i < n; i++) {
        if (rc != LINK_OK) {
            fail_later(cl, m->rq[i]->id, b->tag, b->verb, 0);
            free(m->rq[i]);
        }
        free(b->it[i].key);
        free((void *)b->it[i].rec.val);
    }
    if (rc != LINK_OK) {
        free(m);
    }
}

void cluster_send_queued(struct cluster *cl) {
    if (cl == NULL || cl->queued == 0) {
        return;
    }
    for (size_t i = 0; i < cl->nobox; i++) {
        flush_box(cl, &cl->obox[i]);
    }
    evtimer_del(cl->flush_ev);
    /* written now, one write per peer, not from the next turn's write event */
    for (size_t i = 0; i < cl->npeers; i++) {
        if (cl->peers[i]->link && cl->peers[i]->up) {
            link_flush(cl->peers[i]->link);
        }
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg) {
    cluster_send_queued(arg);
}

/* Queues a request for the replica tag: sent with the others of this turn (by
 * cluster_send_queued, from the server's before-sleep, or the flush timer). */
static void send_remote(struct cluster *cl, uint32_t tag, int verb, uint64_t id, int is_hint,
                        unsigned db, const char *key, size_t klen,
                        const struct msg_record *rec) {
    if (verb == MSG_WRITE) {
        cl->write_bytes += MSG_REC_HDR + rec->vlen;
        cl->write_records++;
    }
    if (is_hint) {
        send_one(cl, tag, verb, id, is_hint, db, key, klen, rec);
        return;
    }
    struct obox *b = NULL;
    for (size_t i = 0; i < cl->nobox && b == NULL; i++) {
        struct obox *x = &cl->obox[i];
        if (x->tag == tag && x->verb == verb && x->db == db) {
            b = x;
        }
    }
    if (b == NULL) {
        if (cl->nobox == cl->capobox) {
            cl->capobox = cl->capobox ? cl->capobox * 2 : 8;
            cl->obox = cl_realloc(cl->obox, cl->capobox * sizeof *cl->obox);
        }
        b = &cl->obox[cl->nobox++];
        *b = (struct obox){tag, verb, db, 0, 0, NULL};
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->it = cl_realloc(b->it, b->cap * sizeof *b->it);
    }
    struct obox_item *x = &b->it[b->n++];
    x->rq = cl_calloc(1, sizeof *x->rq);
    *x->rq = (struct rreq){.cl = cl, .id = id, .tag = tag, .verb = verb};
    x->key = cl_memdup(key, klen);
    x->klen = klen;
    memset(&x->rec, 0, sizeof x->rec);
    if (verb == MSG_WRITE) {
        x->rec = *rec;
        x->rec.val = rec->vlen ? cl_memdup(rec->val, rec->vlen) : NULL;
    }
    if (cl->queued++ == 0) {
        struct timeval tv = {0, 0};
        evtimer_add(cl->flush_ev, &tv);
    }
    if (b->n >= CL_OUTBOX_MAX) {
        flush_box(cl, b);
    }
}

static void io_send(void *ctx, uint32_t tag, int verb, const struct op *op) {
    struct cluster *cl = ctx;
    struct msg_buf diff = {0};
    struct msg_record rec = op_send_record(op, tag, &diff);
    if (tag != cl->tag) {
        send_remote(cl, tag, verb, op->id, 0, op->db, op->key, op->klen, &rec);
        msg_buf_free(&diff);
        return;
    }
    /* our own replica: through the store, from the loop */
    struct dq *d = cl_calloc(1, sizeof *d);
    d->kind = DQ_LOCAL;
    d->id = op->id;
    d->verb = verb;
    d->db = op->db;
    d->key = cl_memdup(op->key, op->klen);
    d->klen = op->klen;
    if (verb == MSG_WRITE) {
        d->rec = rec;
        d->rec.val = rec.vlen ? cl_memdup(rec.val, rec.vlen) : NULL;
    }
    msg_buf_free(&diff);
    dq_push(cl, d);
}

static void io_send_hint(void *ctx, uint32_t target, const struct hint *h) {
    struct cluster *cl = ctx;
    send_remote(cl, target, MSG_WRITE, h->seq, 1, h->db, h->key, h->klen, &h->rec);
}

static void io_completed(void *ctx, const struct op *op, void *user) {
    struct cluster *cl = ctx;
    struct creq *cr = user;
    struct dq *d = cl_calloc(1, sizeof *d);
    d->kind = DQ_DONE;
    d->id = cr->id;
    d->is_read = cr->is_read;
    d->rcb = cr->rcb;
    d->wcb = cr->wcb;
    d->ctx = cr->ctx;
    free(cr);
    d->status = op->result == OP_OK ? CLUSTER_OK : CLUSTER_FAILED;
    if (d->status != CLUSTER_OK) {
        op_error_text(op, d->err, sizeof d->err);
    } else if (op->kind == OP_READ && op->rec.found) {
        d->found = 1;
        d->rec = op_msg_record(op);
        d->rec.val = op->rec.vlen ? cl_memdup(op->rec.val, op->rec.vlen) : NULL;
    }
    dq_push(cl, d);
}

/* ---- this node's replica acknowledges a write once it is durable ----
 * The writes applied in one dq_run pass form one group that asks the store once
 * (store.when_durable): the group's acks go to their ops when the store says the
 * batch is stored (and, under appendfsync always, synced: one fsync for the turn). */

struct local_acks {
    struct cluster *cl;
    uint64_t handle;          /* store.when_durable's */
    uint64_t *ids;            /* op ids to acknowledge */
    size_t n, cap;
    struct local_acks *next;  /* in cl->acks_waiting */
};

static void local_acks_free(struct local_acks *g) {
    free(g->ids);
    free(g);
}

/* acknowledges (ok 1) or fails every op of g */
static void local_acks_answer(struct cluster *cl, struct local_acks *g, int ok) {
    uint64_t now = mono_ms();
    for (size_t i = 0; i < g->n; i++) {
        cnode_on_write_reply(&cl->node, g->ids[i], cl->tag, ok, now);
    }
}

static void local_acks_done(void *arg, int ok) {
    struct local_acks *g = arg;
    struct cluster *cl = g->cl;
    for (struct local_acks **pp = &cl->acks_waiting; *pp; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    }
    local_acks_answer(cl, g, ok);
    local_acks_free(g);
    rearm(cl);
}

/* the local replica applied op id's write (ok) or failed it */
static void local_write_ack(struct cluster *cl, uint64_t id, int ok, uint64_t now) {
    if (!ok || cl->store.when_durable == NULL) {
        cnode_on_write_reply(&cl->node, id, cl->tag, ok, now);
        return;
    }
    struct local_acks *g = cl->acks_open;
    if (g == NULL) {
        g = cl->acks_open = cl_calloc(1, sizeof *g);
        g->cl = cl;
    }
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 16;
        g->ids = cl_realloc(g->ids, g->cap * sizeof *g->ids);
    }
    g->ids[g->n++] = id;
}

/* end of an dq_run pass: the group asks the store when it is durable */
static void local_acks_seal(struct cluster *cl) {
    struct local_acks *g = cl->acks_open;
    if (g == NULL) {
        return;
    }
    cl->acks_open = NULL;
    g->handle = cl->store.when_durable(cl->store.ctx, local_acks_done, g);
    if (g->handle == 0) { /* durable already */
        local_acks_answer(cl, g, 1);
        local_acks_free(g);
        return;
    }
    g->next = cl->acks_waiting;
    cl->acks_waiting = g;
}

/* cluster_stop: the store forgets the groups (their ops are freed with the node) */
static void local_acks_stop(struct cluster *cl) {
    if (cl->acks_open) {
        local_acks_free(cl->acks_open);
        cl->acks_open = NULL;
    }
    while (cl->acks_waiting) {
        struct local_acks *g = cl->acks_waiting;
        cl->acks_waiting = g->next;
        if (cl->store.durable_cancel) {
            cl->store.durable_cancel(cl->store.ctx, g->handle);
        }
        local_acks_free(g);
    }
}

static void run_local(struct cluster *cl, struct dq *d, uint64_t now) {
    if (d->verb == MSG_READ) {
        struct msg_item item = {0};
        int rc = cl->store.read(cl->store.ctx, d->db, d->key, d->klen, &item.rec);
        item.found = rc == 1;
        cnode_on_read_reply(&cl->node, d->id, cl->tag, rc < 0 ? NULL : &item, now);
    } else {
        int rc = cl->store.apply(cl->store.ctx, d->db, d->key, d->klen, &d->rec);
        local_write_ack(cl, d->id, rc >= 0, now);
    }
}

static void run_done(struct dq *d) {
    if (d->is_read) {
        d->rcb(d->ctx, d->status, d->status == CLUSTER_OK && d->found ? &d->rec : NULL,
               d->status == CLUSTER_OK ? NULL : d->err);
    } else {
        d->wcb(d->ctx, d->status, d->status == CLUSTER_OK ? NULL : d->err);
    }
}

/* runs the entries queued so far, one at a time from the head (so a callback's
 * cluster_cancel still removes a later one); entries queued meanwhile wait for
 * the next run. Called from the zero timer, and at the end of a peer's reply
 * (remote_reply: outside any cluster_read/cluster_write and outside the cnode,
 * so a done-callback may run there: the reply's results reach their callers in
 * the same loop turn, not one turn later) */
static void dq_run(struct cluster *cl) {
    size_t n = cl->dq_len;
    while (n-- > 0 && cl->dq_head) {
        struct dq *d = cl->dq_head;
        cl->dq_head = d->next;
        if (cl->dq_head == NULL) {
            cl->dq_tail = NULL;
        }
        cl->dq_len--;
        uint64_t now = mono_ms();
        if (d->kind == DQ_DONE) {
            run_done(d);
        } else if (d->kind == DQ_LOCAL) {
            run_local(cl, d, now);
        } else if (d->is_hint) {
            cnode_on_hint_reply(&cl->node, d->from, d->seq, 0, now);
        } else if (d->verb == MSG_READ) {
            cnode_on_read_reply(&cl->node, d->id, d->from, NULL, now);
        } else {
            cnode_on_write_reply(&cl->node, d->id, d->from, 0, now);
        }
        dq_free(d);
    }
    local_acks_seal(cl);
    if (cl->dq_head) {
        kick_defer(cl);
    } else {
        evtimer_del(cl->defer_ev);
    }
    rearm(cl);
}

static void on_defer(evutil_socket_t fd, short what, void *arg) {
    dq_run(arg);
}

static void kick_defer(struct cluster *cl) {
    if (!event_pending(cl->defer_ev, EV_TIMEOUT, NULL)) {
        struct timeval tv = {0, 0};
        evtimer_add(cl->defer_ev, &tv);
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
    struct cluster *cl = arg;
    cl->armed_at = 0;
    cnode_tick(&cl->node, mono_ms());
    rearm(cl);
}

static void rearm(struct cluster *cl) {
    uint64_t dl = cnode_next_deadline(&cl->node);
    if (dl == cl->armed_at) {
        return;
    }
    cl->armed_at = dl;
    if (dl == 0) {
        evtimer_del(cl->deadline_ev);
        return;
    }
    uint64_t now = mono_ms();
    uint64_t wait = dl > now ? dl - now : 0;
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
    evtimer_add(cl->deadline_ev, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    struct cluster *cl = arg;
    cl->ticks++;
    if (cl->ticks % CL_GOSSIP_EVERY == 0) {
        gossip_round(cl);
    }
    hints_log_tick(cl);
    cnode_hints_send(&cl->node, mono_ms());
    keyless_tick(cl->kl);
    repairer_tick(cl->rep);
    joiner_tick(cl->join);
    rearm(cl);
}

/* ---- durable hints: the hint log (hintlog.h) ---- */

#define CL_HINTLOG_SYNC_TICKS 10 /* fdatasync the hint log every second */

/* wall clock (the store's, with its debug offset) minus the monotonic clock the
 * hints run on */
static int64_t hints_wall_offset(const struct cluster *cl) {
    uint64_t wall = cl->store.now_ms ? cl->store.now_ms(cl->store.ctx) : mono_ms();
    return (int64_t)wall - (int64_t)mono_ms();
}

static void hints_log_line(void *ctx, const char *msg) {
    cl_log(ctx, CLUSTER_LOG_WARNING, "%s", msg);
}

static void on_hintlog_flush(evutil_socket_t fd, short what, void *arg) {
    struct cluster *cl = arg;
    hintlog_flush(cl->hintlog, cl->node.hints, hints_wall_offset(cl));
}

/* the log has records to write: at the end of this loop turn (one write per file
 * for all the turn's hints) */
static void hints_log_dirty(void *ctx) {
    struct cluster *cl = ctx;
    if (!cl->stopping && !event_pending(cl->hintlog_ev, EV_TIMEOUT, NULL)) {
        struct timeval tv = {0, 0};
        evtimer_add(cl->hintlog_ev, &tv);
    }
}

/* Opens the hint log in dir and loads what a previous run left (before any op can
 * add a hint). 0, or -1 with err. */
static int hints_log_start(struct cluster *cl, const char *dir, char *err, size_t errlen) {
    if (dir == NULL || dir[0] == 0) {
        return 0;
    }
    cl->hintlog = hintlog_open(dir, hints_log_line, cl, err, errlen);
    if (cl->hintlog == NULL) {
        return -1;
    }
    cl->hintlog_ev = evtimer_new(cl->base, on_hintlog_flush, cl);
    const struct hints_stats before = cl->node.hints->stats;
    size_t n = hintlog_load(cl->hintlog, cl->node.hints, mono_ms(), hints_wall_offset(cl));
    hintlog_on_dirty(cl->hintlog, hints_log_dirty, cl);
    const struct hints_stats *hs = &cl->node.hints->stats;
    const struct hintlog_stats *ls = hintlog_stats(cl->hintlog);
    if (n || ls->skipped) {
        cl_log(cl, CLUSTER_LOG_NOTICE,
               "hint log %s: %zu hints loaded for %zu targets (%" PRIu64
               " out of the window, %" PRIu64 " over hinted-handoff-max-bytes, %" PRIu64
               " damaged records skipped)",
               dir, n, hints_targets(cl->node.hints, NULL, 0),
               hs->dropped_window - before.dropped_window,
               hs->dropped_bytes + hs->dropped_big - before.dropped_bytes - before.dropped_big,
               ls->skipped);
    }
    return 0;
}

/* the 100 ms tick: the clocks' offset, and a sync every second */
static void hints_log_tick(struct cluster *cl) {
    if (cl->hintlog == NULL) {
        return;
    }
    hintlog_set_wall_offset(cl->hintlog, hints_wall_offset(cl));
    if (cl->ticks % CL_HINTLOG_SYNC_TICKS == 0) {
        hintlog_sync(cl->hintlog);
    }
}

/* writes and syncs what is buffered and closes the log (its files stay) */
static void hints_log_stop(struct cluster *cl) {
    if (cl->hintlog_ev) {
        event_free(cl->hintlog_ev);
        cl->hintlog_ev = NULL;
    }
    if (cl->hintlog) {
        hintlog_flush(cl->hintlog, cl->node.hints, hints_wall_offset(cl));
        hints_observe(cl->node.hints, NULL); /* the log is going */
        hintlog_close(&cl->hintlog);
    }
}

static void hints_log_info(const struct cluster *cl, struct msg_buf *out);
static void gossip_info(const struct cluster *cl, struct msg_buf *out);

/* ---- start, stop ---- */

static int config_check(const struct cluster_config *c, char *err, size_t errlen) {
    size_t il = c->node_id ? strlen(c->node_id) : 0;
    if (il == 0 || il > RING_ID_MAX || il > AUTH_ID_MAX) {
        snprintf(err, errlen, "the node id must be 1..%d bytes", RING_ID_MAX);
        return -1;
    }
    if (c->tag == 0) {
        snprintf(err, errlen, "the node tag must not be 0");
        return -1;
    }
    if (c->tokens == NULL || c->ntokens == 0 || c->ntokens > RING_MAX_TOKENS) {
        snprintf(err, errlen, "the node needs 1..%d tokens", RING_MAX_TOKENS);
        return -1;
    }
    for (size_t i = 1; i < c->ntokens; i++) {
        if (c->tokens[i] <= c->tokens[i - 1]) {
            snprintf(err, errlen, "the node's tokens must be sorted and distinct");
            return -1;
        }
    }
    size_t sl = c->secret ? strlen(c->secret) : 0;
    if (sl == 0 || sl > AUTH_SECRET_MAX) {
        snprintf(err, errlen, "cluster-secret is required (1..%d bytes)", AUTH_SECRET_MAX);
        return -1;
    }
    if (c->replication_factor < 1 || c->replication_factor > RING_MAX_REPLICAS) {
        snprintf(err, errlen, "replication-factor must be 1..%d", RING_MAX_REPLICAS);
        return -1;
    }
    if (c->write_quorum < 1 || c->write_quorum > c->replication_factor) {
        snprintf(err, errlen, "write-quorum must be 1..replication-factor (%d)",
                 c->replication_factor);
        return -1;
    }
    if (c->read_quorum < 1 || c->read_quorum > c->replication_factor) {
        snprintf(err, errlen, "read-quorum must be 1..replication-factor (%d)",
                 c->replication_factor);
        return -1;
    }
    if (!(c->weight > 0 && c->weight <= 1000)) {
        snprintf(err, errlen, "node-weight must be > 0 and <= 1000");
        return -1;
    }
    if (c->announce_ip == NULL || c->announce_ip[0] == 0 ||
        strlen(c->announce_ip) > CL_HOST_MAX - 8 || c->announce_port < 1 ||
        c->announce_port > 65535) {
        snprintf(err, errlen, "the announced address is missing or bad");
        return -1;
    }
    if (c->bind_ip && strlen(c->bind_ip) > CL_HOST_MAX) {
        snprintf(err, errlen, "the bind address is too long");
        return -1;
    }
    if (c->request_timeout_ms < 1) {
        snprintf(err, errlen, "cluster-request-timeout must be >= 1 ms");
        return -1;
    }
    return 0;
}

/* parses the seed list into peers; -1 with err on a bad entry */
static int seeds_add(struct cluster *cl, const char *seeds, char *err, size_t errlen) {
    if (seeds == NULL) {
        return 0;
    }
    const char *p = seeds;
    while (*p) {
        while (*p == ',' || *p == ' ') {
            p++;
        }
        const char *e = p;
        while (*e && *e != ',' && *e != ' ') {
            e++;
        }
        if (e == p) {
            break;
        }
        if ((size_t)(e - p) > RING_ADDR_MAX) {
            snprintf(err, errlen, "cluster-seeds: an address is too long");
            return -1;
        }
        char addr[RING_ADDR_MAX + 1], host[CL_HOST_MAX + 1];
        int port;
        memcpy(addr, p, (size_t)(e - p));
        addr[e - p] = 0;
        if (split_addr(addr, host, sizeof host, &port) != 0) {
            snprintf(err, errlen, "cluster-seeds: '%s' is not host:port", addr);
            return -1;
        }
        if (peer_by_addr(cl, addr) == NULL) {
            cl->nseeds++;
        }
        peer_add(cl, addr, 1);
        p = e;
    }
    return 0;
}

static void gossip_start(struct cluster *cl, const struct cluster_config *cfg,
                         const struct ring_member *me) {
    struct gossip_self gs = {0};
    gs.m = me;
    gs.generation = cfg->generation ? cfg->generation : 1;
    gs.rf = (unsigned)cfg->replication_factor;
    gossip_fingerprint(cfg->secret, strlen(cfg->secret), gs.fp);
    gs.convict = cfg->phi_convict_threshold > 0 ? cfg->phi_convict_threshold : 8;
    phi_config_default(&gs.phi);
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
        seed = mono_ms() ^ cl->tag;
    }
    gs.seed = seed | 1;
    gs.log = gossip_log;
    gs.log_ctx = cl;
    cl->gossip = gossip_new(&gs);
    cl->gossip_epoch = cl->gossip->ring_epoch;
}

struct cluster *cluster_start(struct event_base *base, const struct cluster_config *cfg,
                              const struct cluster_store *store, char *err, size_t errlen) {
    if (config_check(cfg, err, errlen) != 0) {
        return NULL;
    }
    if (store == NULL || store->read == NULL || store->apply == NULL) {
        snprintf(err, errlen, "the cluster needs the store's read and apply");
        return NULL;
    }
    struct cluster *cl = cl_calloc(1, sizeof *cl);
    cl->base = base;
    snprintf(cl->node_id, sizeof cl->node_id, "%s", cfg->node_id);
    cl->tag = cfg->tag;
    cl->secret_len = strlen(cfg->secret);
    cl->secret = cl_memdup(cfg->secret, cl->secret_len + 1);
    snprintf(cl->bind_ip, sizeof cl->bind_ip, "%s", cfg->bind_ip ? cfg->bind_ip : "");
    if (strchr(cfg->announce_ip, ':')) {
        snprintf(cl->self_addr, sizeof cl->self_addr, "[%s]:%d", cfg->announce_ip,
                 cfg->announce_port);
    } else {
        snprintf(cl->self_addr, sizeof cl->self_addr, "%s:%d", cfg->announce_ip,
                 cfg->announce_port);
    }
    cl->n = cfg->replication_factor;
    cl->w = cfg->write_quorum;
    cl->r = cfg->read_quorum;
    cl->timeout_ms = cfg->request_timeout_ms;
    cl->log = cfg->log;
    cl->store = *store;
    skew_init(&cl->skew, cfg->max_clock_offset_ms > 0 ? cfg->max_clock_offset_ms : 500);
    cl->members = cl_calloc(1, sizeof *cl->members);
    cl->nmembers = 1;
    struct ring_member *me = &cl->members[0];
    snprintf(me->id, sizeof me->id, "%s", cfg->node_id);
    me->tag = cfg->tag;
    snprintf(me->addr, sizeof me->addr, "%s", cl->self_addr);
    me->weight = cfg->weight;
    me->tokens = cl_memdup(cfg->tokens, cfg->ntokens * sizeof *cfg->tokens);
    me->ntokens = cfg->ntokens;
    gossip_start(cl, cfg, me);
    struct cnode_io io = {cl, tag_up, io_send, io_completed, io_send_hint};
    cnode_init(&cl->node, cl->tag, (uint64_t)cl->timeout_ms, cfg->hint_window_ms,
              cfg->hint_max_bytes, &io);
    cl->defer_ev = evtimer_new(base, on_defer, cl);
    cl->flush_ev = evtimer_new(base, on_flush, cl);
    cl->deadline_ev = evtimer_new(base, on_deadline, cl);
    cl->tick_ev = event_new(base, -1, EV_PERSIST, on_tick, cl);
    cl->kl = keyless_new(cl);
    cl->rep = repairer_new(cl, cfg->repair_interval_s, cfg->repair_bytes_per_sec);
    if (cfg->long_absence) {
        repairer_hold(cl->rep);
        cl_log(cl, CLUSTER_LOG_WARNING,
               "down longer than gc-grace-seconds: repairing after a long absence; "
               "client commands and peers' reads are refused until every range it "
               "replicates is repaired");
    }
    char rerr[128];
    if (ring_build(&cl->ring, cl->members, 1, rerr, sizeof rerr) != RING_OK) {
        snprintf(err, errlen, "%s", rerr);
        cluster_stop(cl);
        return NULL;
    }
    /* after the ring: a joining node leaves it at once (its status) */
    struct join_resume resume = {0};
    if (cfg->join && cfg->join_resume) {
        char perr[160];
        if (join_resume_parse(cfg->join_resume, cfg->join_resume_len, cfg->node_id, &resume,
                              perr, sizeof perr) != 0) {
            snprintf(err, errlen, "the join file (node-join) is corrupt: %s; remove it to "
                                  "join from the start", perr);
            cluster_stop(cl);
            return NULL;
        }
    }
    struct joiner_config jc = {cfg->join,      cfg->replace,    cfg->stream_bytes_per_sec,
                               cfg->save_tokens, cfg->on_left, cfg->save_join,
                               resume.ntokens ? &resume : NULL};
    cl->join = joiner_new(cl, &jc);
    if (seeds_add(cl, cfg->seeds, err, errlen) != 0 ||
        hints_log_start(cl, cfg->hint_dir, err, errlen) != 0) {
        cluster_stop(cl);
        return NULL;
    }
    struct timeval tv = {0, CL_TICK_MS * 1000};
    event_add(cl->tick_ev, &tv);
    return cl;
}

void cluster_stop(struct cluster *cl) {
    if (cl == NULL) {
        return;
    }
    cl->stopping = 1;
    for (size_t i = 0; i < cl->npeers; i++) {
        if (cl->peers[i]->link) {
            link_destroy(&cl->peers[i]->link);
        }
        free(cl->peers[i]);
    }
    free(cl->peers);
    keyless_free(cl->kl); /* after the links: their callbacks ran */
    cl->kl = NULL;
    repairer_free(cl->rep);
    cl->rep = NULL;
    joiner_free(cl->join);
    cl->join = NULL;
    for (size_t i = 0; i < cl->nobox; i++) {
        struct obox *b = &cl->obox[i];
        for (size_t k = 0; k < b->n; k++) {
            free(b->it[k].rq);
            free(b->it[k].key);
            free((void *)b->it[k].rec.val);
        }
        free(b->it);
    }
    free(cl->obox);
    if (cl->flush_ev) {
        event_free(cl->flush_ev);
    }
    struct dq *d = cl->dq_head;
    while (d) {
        struct dq *next = d->next;
        dq_free(d);
        d = next;
    }
    hints_log_stop(cl); /* before the hints are freed */
    local_acks_stop(cl);
    /* the ops' user pointers (struct creq) are freed with them */
    cnode_free_users(&cl->node, free);
    cnode_free(&cl->node);
    gossip_free(&cl->gossip);
    skew_free(&cl->skew);
    for (size_t i = 0; i < cl->nmembers; i++) {
        member_free(&cl->members[i]);
    }
    free(cl->members);
    ring_destroy(&cl->ring);
    ring_destroy(&cl->future);
    if (cl->defer_ev) {
        event_free(cl->defer_ev);
    }
    if (cl->deadline_ev) {
        event_free(cl->deadline_ev);
    }
    if (cl->tick_ev) {
        event_free(cl->tick_ev);
    }
    if (cl->secret) {
        memset(cl->secret, 0, cl->secret_len);
        free(cl->secret);
    }
    free(cl);
}

static int seeds_answered(const struct cluster *cl, const char **why) {
    size_t answered = 0;
    for (size_t i = 0; i < cl->npeers; i++) {
        answered += cl->peers[i]->is_seed && cl->peers[i]->answered;
    }
    if (answered >= cl->nseeds) {
        return 1;
    }
    if (why) {
        struct cluster *m = (struct cluster *)cl; /* the text buffer only */
        snprintf(m->why, sizeof m->why, "waiting for the seeds: %zu of %zu answered%s%s",
                 answered, cl->nseeds, cl->last_refusal[0] ? "; last refusal: " : "",
                 cl->last_refusal);
        *why = m->why;
    }
    return 0;
}

int cluster_write_quorum(const struct cluster *cl) {
    return cl->w;
}

int cluster_others_moving(const struct cluster *cl) {
    for (size_t i = 1; i < cl->nmembers; i++) {
        int st = member_status(cl, i);
        if (st == GOSSIP_JOINING || st == GOSSIP_LEAVING) {
            return 1;
        }
    }
    return 0;
}

int cluster_seeds_answered(const struct cluster *cl) {
    return seeds_answered(cl, NULL);
}

int cluster_ready(const struct cluster *cl, const char **why) {
    if (!cluster_ring_known(cl, why)) {
        return 0;
    }
    struct cluster *m = (struct cluster *)cl; /* the text buffer only */
    if (!repairer_serving(cl->rep, m->why, sizeof m->why)) {
        if (why) {
            *why = m->why;
        }
        return 0;
    }
    return 1;
}

int cluster_ring_known(const struct cluster *cl, const char **why) {
    if (!seeds_answered(cl, why)) {
        return 0;
    }
    const char *no = NULL;
    if (cl->join && joiner_left(cl->join)) {
        no = "this node left the cluster (KVD LEAVE): stop it";
    } else if (cl->gossip->self_removed) {
        no = "this node was removed from the cluster (KVD REMOVENODE or cluster-replace): "
             "stop it; to join again, wipe its dir and start it with cluster-join";
    } else if (cl->join && joiner_refused(cl->join)) {
        struct cluster *m = (struct cluster *)cl; /* the text buffer only */
        snprintf(m->why, sizeof m->why, "cluster-replace refused: %s",
                 joiner_refused(cl->join));
        no = m->why;
    } else if (cl->ring.nvnodes == 0) {
        no = "joining: no member of the ring is known yet";
    }
    if (no && why) {
        *why = no;
    }
    return no == NULL;
}

int cluster_replicas(const struct cluster *cl) {
    return cl->n;
}

int cluster_writes_allowed(const struct cluster *cl, const char **why) {
    if (cl->skew.ok) {
        return 1;
    }
    if (why) {
        struct cluster *m = (struct cluster *)cl; /* the text buffer only */
        snprintf(m->why, sizeof m->why,
                 "this node's clock is %lld ms off its peers' median (more than "
                 "cluster-max-clock-offset-ms %lld): it coordinates no writes until its clock "
                 "is back in range; write through another node",
                 (long long)cl->skew.offset, (long long)cl->skew.max_ms);
        *why = m->why;
    }
    return 0;
}

/* ---- coordinator ---- */

static uint64_t refuse_later(struct cluster *cl, int is_read, cluster_read_done *rcb,
                             cluster_write_done *wcb, void *ctx, const char *err) {
    struct dq *d = cl_calloc(1, sizeof *d);
    d->kind = DQ_DONE;
    d->id = cl->node.next_id++;
    d->is_read = is_read;
    d->rcb = rcb;
    d->wcb = wcb;
    d->ctx = ctx;
    d->status = CLUSTER_FAILED;
    snprintf(d->err, sizeof d->err, "%s", err);
    uint64_t id = d->id;
    dq_push(cl, d);
    return id;
}

uint64_t cluster_read(struct cluster *cl, unsigned db, const char *key, size_t klen, int r,
                      cluster_read_done *cb, void *ctx) {
    const char *why;
    if (!cluster_ready(cl, &why)) {
        return refuse_later(cl, 1, cb, NULL, ctx, why);
    }
    if (r < 1 || r > cl->n || db > MSG_MAX_DB) {
        return refuse_later(cl, 1, cb, NULL, ctx, "bad read quorum or db");
    }
    struct creq *cr = cl_calloc(1, sizeof *cr);
    *cr = (struct creq){0, 1, cb, NULL, ctx};
    uint64_t next = cl->node.next_id;
    cr->id = next;
    cnode_read_pending(&cl->node, &cl->ring, cluster_future_of(cl), (size_t)cl->n, db, key,
                       klen, (size_t)r, mono_ms(), cr);
    rearm(cl);
    return next;
}

uint64_t cluster_write(struct cluster *cl, unsigned db, const char *key, size_t klen,
                       const struct msg_record *rec, int w, cluster_write_done *cb,
                       void *ctx) {
    const char *why;
    if (!cluster_ready(cl, &why)) {
        return refuse_later(cl, 0, NULL, cb, ctx, why);
    }
    if (w < 1 || w > cl->n || db > MSG_MAX_DB) {
        return refuse_later(cl, 0, NULL, cb, ctx, "bad write quorum or db");
    }
    if (!cluster_writes_allowed(cl, &why)) {
        return refuse_later(cl, 0, NULL, cb, ctx, why);
    }
    struct creq *cr = cl_calloc(1, sizeof *cr);
    *cr = (struct creq){0, 0, NULL, cb, ctx};
    uint64_t next = cl->node.next_id;
    cr->id = next;
    cnode_write_pending(&cl->node, &cl->ring, cluster_future_of(cl), (size_t)cl->n, db, key,
                        klen, rec, (size_t)w, mono_ms(), cr);
    rearm(cl);
    return next;
}

void cluster_cancel(struct cluster *cl, uint64_t id) {
    if (cl->kl && keyless_cancel(cl->kl, id)) {
        return;
    }
    void *user = cnode_cancel_user(&cl->node, id);
    free(user);
    struct dq **pp = &cl->dq_head, *prev = NULL;
    while (*pp) {
        struct dq *d = *pp;
        if (d->kind == DQ_DONE && d->id == id) {
            *pp = d->next;
            if (cl->dq_tail == d) {
                cl->dq_tail = prev;
            }
            cl->dq_len--;
            dq_free(d);
            return;
        }
        prev = d;
        pp = &d->next;
    }
}

/* ---- for keyless.c (keyless.h) ---- */

struct event_base *cluster_base_of(struct cluster *cl) {
    return cl->base;
}

const struct cluster_store *cluster_store_of(const struct cluster *cl) {
    return &cl->store;
}

const struct ring *cluster_ring_of(const struct cluster *cl) {
    return &cl->ring;
}

uint32_t cluster_self_tag(const struct cluster *cl) {
    return cl->tag;
}

int cluster_tag_up(struct cluster *cl, uint32_t tag) {
    return tag_up(cl, tag);
}

int cluster_stopping(const struct cluster *cl) {
    return cl->stopping;
}

int cluster_timeout_ms(const struct cluster *cl) {
    return cl->timeout_ms;
}

int64_t cluster_max_clock_offset_ms(const struct cluster *cl) {
    return cl->skew.max_ms;
}

int cluster_send_tag(struct cluster *cl, uint32_t tag, int argc, const char *const *argv,
                     const size_t *argvlen, link_done_fn done, void *ctx) {
    struct link *l = link_of_tag(cl, tag);
    return l ? link_send(l, argc, argv, argvlen, done, ctx) : LINK_DOWN;
}

uint64_t cluster_next_id(struct cluster *cl) {
    return cl->node.next_id++;
}

struct gossip *cluster_gossip_of(struct cluster *cl) {
    return cl->gossip;
}

const struct ring *cluster_future_of(const struct cluster *cl) {
    return cl->has_future && cl->future.nvnodes > 0 ? &cl->future : NULL;
}

void cluster_set_self_tokens(struct cluster *cl, const uint64_t *tokens, size_t n) {
    struct ring_member *me = &cl->members[0];
    uint64_t *t = cl_memdup(tokens, n * sizeof *tokens);
    free(me->tokens);
    me->tokens = t;
    me->ntokens = n;
    gossip_set_tokens(cl->gossip, tokens, n);
    sync_members(cl);
}

void cluster_set_self_status(struct cluster *cl, int status) {
    gossip_set_status(cl->gossip, status);
    cl_log(cl, CLUSTER_LOG_NOTICE, "this node's status: %s", gossip_status_name(status));
    sync_members(cl);
}

int cluster_leave(struct cluster *cl, const char **why) {
    if (!cluster_ready(cl, why)) {
        return -1;
    }
    return joiner_leave(cl->join, why);
}

int cluster_join(struct cluster *cl, const char *addr, size_t len, int holds_keys,
                 const char **why) {
    char a[RING_ADDR_MAX + 1], host[CL_HOST_MAX + 1];
    int port;
    if (len == 0 || len > RING_ADDR_MAX || memchr(addr, 0, len)) {
        *why = "the address must be host:port";
        return -1;
    }
    memcpy(a, addr, len);
    a[len] = 0;
    if (split_addr(a, host, sizeof host, &port) != 0 || port < 1 || port > 65535) {
        *why = "the address must be host:port";
        return -1;
    }
    if (cl->nseeds > 0 || cl->gossip->n > 1) {
        *why = "this node is a member of a cluster already (it has seeds or knows members)";
        return -1;
    }
    if (strcmp(a, cl->self_addr) == 0) {
        *why = "that is this node's own address";
        return -1;
    }
    if (holds_keys) {
        *why = "this node holds keys (they would hide behind ranges it does not own): "
               "start it on an empty dir";
        return -1;
    }
    if (joiner_join(cl->join, why) != 0) {
        return -1;
    }
    cl->nseeds++;
    peer_add(cl, a, 1);
    cl_log(cl, CLUSTER_LOG_NOTICE, "KVD JOIN: joining the cluster of %s", a);
    return 0;
}

int cluster_remove_node(struct cluster *cl, const char *id, size_t len, const char **why) {
    char buf[RING_ID_MAX + 1];
    if (len == 0 || len > RING_ID_MAX || memchr(id, 0, len)) {
        *why = "no member has that id (see KVD NODES)";
        return -1;
    }
    if (!cluster_ready(cl, why)) {
        return -1;
    }
    memcpy(buf, id, len);
    buf[len] = 0;
    return joiner_remove(cl->join, buf, why);
}

void cluster_set_stream_rate(struct cluster *cl, uint64_t bytes_per_sec) {
    joiner_set_rate(cl->join, bytes_per_sec);
}

int cluster_member_health(const struct cluster *cl, size_t i, double *phi) {
    return gossip_health(cl->gossip, i, mono_ms(), phi);
}

void cluster_gossip_changed(struct cluster *cl) {
    sync_members(cl);
}

struct repairer *cluster_repairer_of(struct cluster *cl) {
    return cl->rep;
}

void cluster_note(const struct cluster *cl, int level, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cl_log(cl, level, "%s", msg);
}

struct keyless *cluster_keyless_of(struct cluster *cl) {
    return cl->kl;
}

/* ---- the peer side ---- */

struct cluster_peer *cluster_peer_new(struct cluster *cl) {
    struct cluster_peer *p = cl_calloc(1, sizeof *p);
    p->cl = cl;
    auth_listener_init(&p->auth, cl->secret, cl->secret_len, cl->node_id, strlen(cl->node_id));
    return p;
}

void cluster_peer_free(struct cluster_peer *p) {
    free(p);
}

int cluster_peer_authenticated(const struct cluster_peer *p) {
    return p && auth_listener_authenticated(&p->auth);
}

int cluster_is_peer_host(const struct cluster *cl, const char *ip) {
    for (size_t i = 0; i < cl->npeers; i++) {
        const struct peer_rt *p = cl->peers[i];
        if (!p->is_self && strcmp(p->host, ip) == 0) {
            return 1;
        }
    }
    return 0;
}

/* KVD.PEER GOSSIP <SYN> -> $<ACK>; KVD.PEER GOSSIP2 <ACK2> -> +OK; a refused or
 * malformed message -> -ERR <why> (logged). */
static void gossip_answer(struct cluster *cl, const struct kv_slice *argv, size_t argc,
                          int is_syn, struct msg_buf *out) {
    if (argc != 3) {
        msg_reply_error(out, "bad KVD.PEER GOSSIP");
        return;
    }
    struct msg_buf ack = {0};
    struct gossip_peer from = {{0}};
    char err[192];
    int rc = is_syn ? gossip_on_syn(cl->gossip, mono_ms(), wall_ms(cl), argv[2].p, argv[2].len,
                                    &ack, &from, err, sizeof err)
                    : gossip_on_ack2(cl->gossip, mono_ms(), argv[2].p, argv[2].len, &from, err,
                                     sizeof err);
    if (rc != GOSSIP_OK) {
        refusal_note(cl, from.id[0] ? from.id : "a peer", err);
        msg_reply_error(out, err);
    } else if (is_syn) {
        msg_buf_bulk(out, ack.p, ack.len);
    } else {
        msg_buf_put(out, "+OK\r\n", 5);
    }
    msg_buf_free(&ack);
    sync_members(cl);
}

/* KVD.PEER REMOVED id -> :0..100, this node's progress pulling what it gains
 * from member id's removal (join.h) */
static void removed_answer(struct cluster *cl, const struct kv_slice *argv, size_t argc,
                           struct msg_buf *out) {
    char id[RING_ID_MAX + 1];
    if (argc != 3 || argv[2].len == 0 || argv[2].len > RING_ID_MAX ||
        memchr(argv[2].p, 0, argv[2].len)) {
        msg_reply_error(out, "ERR KVD.PEER REMOVED takes one node id");
        return;
    }
    memcpy(id, argv[2].p, argv[2].len);
    id[argv[2].len] = 0;
    char line[32];
    int n = snprintf(line, sizeof line, ":%u\r\n", joiner_remove_progress(cl->join, id));
    msg_buf_put(out, line, (size_t)n);
}

int cluster_peer_command(struct cluster *cl, struct cluster_peer *p,
                         const struct kv_slice *argv, size_t argc, struct msg_buf *out) {
    if (argc < 2) {
        msg_reply_error(out, "ERR wrong number of arguments for 'kvd.peer' command");
        return 0;
    }
    if (msg_word_is(argv[1], "HELLO") || msg_word_is(argv[1], "AUTH")) {
        uint8_t rnd[32], nonce[AUTH_NONCE_LEN];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
            for (size_t i = 0; i < sizeof rnd; i++) {
                rnd[i] = (uint8_t)(mono_ms() >> (i % 8));
            }
        }
        auth_nonce_make(rnd, sizeof rnd, ++cl->nonce_ctr, nonce);
        struct auth_reply r;
        auth_listener_step_argv(&p->auth, (int)argc - 1, argv + 1, nonce, &r);
        if (r.kind == AUTH_REPLY_PAIR) {
            msg_buf_put(out, "*2\r\n", 4);
            msg_buf_bulk(out, r.a, r.alen);
            msg_buf_bulk(out, r.b, r.blen);
        } else if (r.kind == AUTH_REPLY_BULK) {
            msg_buf_bulk(out, r.a, r.alen);
        } else {
            msg_buf_put(out, "-", 1);
            msg_buf_put(out, r.a, r.alen);
            msg_buf_put(out, "\r\n", 2);
        }
        if (r.close) {
            cl_log(cl, CLUSTER_LOG_WARNING, "peer refused: %s", p->auth.why);
        }
        return r.close ? 1 : 0;
    }
    if (!auth_listener_authenticated(&p->auth)) {
        msg_buf_put(out, "-NOAUTH peer not authenticated\r\n", 32);
        return 1;
    }
    if (msg_word_is(argv[1], "GOSSIP") || msg_word_is(argv[1], "GOSSIP2")) {
        gossip_answer(cl, argv, argc, argv[1].len == 6, out);
        return 0;
    }
    if ((msg_word_is(argv[1], "READ") || msg_word_is(argv[1], "SCAN")) &&
        !repairer_serving(cl->rep, cl->why, sizeof cl->why)) {
        /* back after a long absence: its data may lack tombstones the others
         * dropped; counted in a quorum it would bring deleted values back */
        msg_reply_error(out, cl->why);
        return 0;
    }
    if (msg_word_is(argv[1], "READ") || msg_word_is(argv[1], "WRITE") || msg_word_is(argv[1], "MWRITE")) {
        struct replica_store st = {cl->store.ctx, cl->store.read, cl->store.apply,
                                   cl->store.observe};
        replica_handle(&st, argv, argc, out);
        return 0;
    }
    if (msg_word_is(argv[1], "SCAN") || msg_word_is(argv[1], "FLUSH")) {
        scan_peer_answer(&cl->store, argv, argc, out);
        return 0;
    }
    if (msg_word_is(argv[1], "MERKLE")) {
        merkle_peer_answer(&cl->store, argv, argc, out);
        return 0;
    }
    if (msg_word_is(argv[1], "RANGE")) {
        repair_range_answer(&cl->store, argv, argc, out);
        return 0;
    }
    if (msg_word_is(argv[1], "REPAIR")) {
        repairer_peer_answer(cl->rep, argv, argc, out);
        return 0;
    }
    if (msg_word_is(argv[1], "REMOVED")) {
        removed_answer(cl, argv, argc, out);
        return 0;
    }
    msg_reply_error(out, "ERR unknown KVD.PEER verb");
    return 0;
}

/* ---- operators' views ---- */

static void text(struct msg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text(struct msg_buf *b, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    msg_buf_put(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* member m's share: in the current ring, or (joining) the future one */
static double member_share(const struct cluster *cl, uint32_t tag) {
    long i = ring_find_tag(&cl->ring, tag);
    if (i >= 0) {
        return ring_share(&cl->ring, (size_t)i, (size_t)cl->n);
    }
    i = cl->has_future ? ring_find_tag(&cl->future, tag) : -1;
    return i >= 0 ? ring_share(&cl->future, (size_t)i, (size_t)cl->n) : 0;
}

void cluster_nodes_text(const struct cluster *cl, struct msg_buf *out) {
    for (size_t i = 0; i < cl->nmembers; i++) {
        const struct ring_member *m = &cl->members[i];
        int self = m->tag == cl->tag;
        double phi;
        const char *state = tag_state(cl, m->tag, &phi);
        if (self && !repairer_serving(cl->rep, NULL, 0)) {
            state = "repairing";
        }
        long g = self ? 0 : gossip_find_tag(cl->gossip, m->tag);
        const struct gossip_member *x = g >= 0 ? &cl->gossip->mb[g] : NULL;
        int removed = g > 0 && gossip_removed(cl->gossip, (size_t)g);
        text(out, "%s %s %s %.2f%% phi=%.2f gen=%" PRIu64 " status=%s%s", m->id, m->addr,
             state, member_share(cl, m->tag) * 100.0, phi,
             x && !removed ? x->generation : 0,
             removed ? "removing" : gossip_status_name(x ? x->status : GOSSIP_NORMAL),
             self ? " myself" : "");
        if (self) {
            joiner_progress(cl->join, out);
        } else {
            joiner_member_progress(cl->join, m->tag, out);
        }
        text(out, "\n");
    }
}

void cluster_ring_text(const struct cluster *cl, struct msg_buf *out) {
    for (size_t i = 0; i < cl->ring.nvnodes; i++) {
        const struct ring_vnode *v = &cl->ring.vnodes[i];
        text(out, "%" PRIu64 " %s\n", v->token, cl->ring.members[v->member].id);
    }
}

size_t cluster_key_nodes(const struct cluster *cl, const char *key, size_t klen,
                         struct msg_buf *out) {
    if (!cluster_ready(cl, NULL)) {
        return 0;
    }
    uint32_t idx[RING_MAX_REPLICAS];
    size_t k = ring_replicas(&cl->ring, ring_key_token(key, klen), (size_t)cl->n, idx);
    for (size_t i = 0; i < k; i++) {
        const struct ring_member *m = &cl->ring.members[idx[i]];
        text(out, "%s %s\n", m->id, m->addr);
    }
    return k;
}

void cluster_info(const struct cluster *cl, struct msg_buf *out) {
    size_t up = 0;
    for (size_t i = 0; i < cl->nmembers; i++) {
        up += tag_up((void *)cl, cl->members[i].tag);
    }
    const struct cnode_stats *s = &cl->node.st;
    const struct hints_stats *hs = &cl->node.hints->stats;
    text(out, "ready:%d\r\n", cluster_ready(cl, NULL));
    text(out, "node_id:%s\r\n", cl->node_id);
    text(out, "members:%zu\r\n", cl->nmembers);
    text(out, "members_up:%zu\r\n", up);
    text(out, "members_down:%zu\r\n", cl->nmembers - up);
    text(out, "replication_factor:%d\r\n", cl->n);
    text(out, "write_quorum:%d\r\n", cl->w);
    text(out, "read_quorum:%d\r\n", cl->r);
    text(out, "ring_vnodes:%zu\r\n", cl->ring.nvnodes);
    text(out, "ring_version:%" PRIu64 "\r\n", cl->ring_version);
    text(out, "coordinator_reads:%" PRIu64 "\r\n", s->reads);
    text(out, "coordinator_writes:%" PRIu64 "\r\n", s->writes);
    text(out, "reads_missed_quorum:%" PRIu64 "\r\n", s->reads_failed);
    text(out, "writes_missed_quorum:%" PRIu64 "\r\n", s->writes_failed);
    text(out, "unavailable:%" PRIu64 "\r\n", s->unavailable);
    text(out, "read_repairs:%" PRIu64 "\r\n", s->read_repairs);
    text(out, "hints_pending:%zu\r\n", cl->node.hints->count);
    text(out, "hints_pending_bytes:%zu\r\n", cl->node.hints->bytes);
    text(out, "flushes_pending:%zu\r\n", keyless_pending_flushes(cl->kl));
    text(out, "hints_added:%" PRIu64 "\r\n", s->hints_added);
    text(out, "hints_delivered:%" PRIu64 "\r\n", s->hints_delivered);
    text(out, "hints_dropped:%" PRIu64 "\r\n",
         hs->dropped_window + hs->dropped_bytes + hs->dropped_big);
    hints_log_info(cl, out);
    repairer_info(cl->rep, out);
    joiner_info(cl->join, out);
    text(out, "membership_conflicts:%" PRIu64 "\r\n", cl->merge_conflicts);
    text(out, "write_records_sent:%" PRIu64 "\r\n", cl->write_records);
    text(out, "write_bytes_sent:%" PRIu64 "\r\n", cl->write_bytes);
    gossip_info(cl, out);
    for (size_t i = 1; i < cl->nmembers; i++) {
        const struct ring_member *m = &cl->members[i];
        struct peer_rt *p = peer_by_addr(cl, m->addr);
        uint32_t p50 = 0, p99 = 0;
        if (p && p->link) {
            p50 = link_rtt_percentile(p->link, 50);
            p99 = link_rtt_percentile(p->link, 99);
        }
        double phi;
        const char *state = tag_state(cl, m->tag, &phi);
        long g = gossip_find_tag(cl->gossip, m->tag);
        int64_t off = 0;
        uint64_t rtt;
        skew_peer_offset(&cl->skew, m->tag, wall_ms(cl), &off, &rtt);
        text(out,
             "peer%zu:id=%s,addr=%s,state=%s,phi=%.2f,generation=%" PRIu64
             ",heartbeat=%" PRIu64 ",load=%" PRIu64 ",clock_offset_ms=%lld,hints=%zu"
             ",rtt_p50_us=%" PRIu32 ",rtt_p99_us=%" PRIu32 "\r\n",
             i - 1, m->id, m->addr, state, phi, g >= 0 ? cl->gossip->mb[g].generation : 0,
             g >= 0 ? cl->gossip->mb[g].heartbeat : 0, g >= 0 ? cl->gossip->mb[g].load : 0,
             (long long)off,
             hints_pending(cl->node.hints, m->tag), p50, p99);
    }
}

/* INFO: gossip, failure detection, the clock guard, refused members */
static void gossip_info(const struct cluster *cl, struct msg_buf *out) {
    const struct gossip *g = cl->gossip;
    size_t suspect = 0, refused = 0;
    for (size_t i = 1; i < g->n; i++) {
        refused += g->mb[i].refused[0] != 0;
        suspect += gossip_in_ring(g, i) &&
                   gossip_health(g, i, mono_ms(), NULL) == GOSSIP_SUSPECT;
    }
    text(out, "generation:%" PRIu64 "\r\n", g->mb[0].generation);
    text(out, "heartbeat:%" PRIu64 "\r\n", g->mb[0].heartbeat);
    text(out, "members_suspect:%zu\r\n", suspect);
    text(out, "members_refused:%zu\r\n", refused);
    text(out, "phi_convict_threshold:%.2f\r\n", g->convict);
    text(out, "gossip_rounds:%" PRIu64 "\r\n", cl->gossip_rounds);
    text(out, "gossip_states_applied:%" PRIu64 "\r\n", g->st.states_applied);
    text(out, "gossip_invalid:%" PRIu64 "\r\n", g->st.invalid);
    text(out, "gossip_refused:%" PRIu64 "\r\n", g->st.refused);
    text(out, "gossip_last_refusal:%s\r\n", cl->last_refusal);
    text(out, "clock_offset_ms:%lld\r\n", (long long)cl->skew.offset);
    text(out, "clock_peers:%zu\r\n", cl->skew.peers);
    text(out, "clock_max_offset_ms:%lld\r\n", (long long)cl->skew.max_ms);
    text(out, "clock_ok:%d\r\n", cl->skew.ok);
    for (size_t i = 1, k = 0; i < g->n; i++) {
        if (g->mb[i].refused[0]) {
            text(out, "refused%zu:id=%s,addr=%s,why=%s\r\n", k++, g->mb[i].m.id,
                 g->mb[i].m.addr, g->mb[i].refused);
        }
    }
}

/* INFO: the hints' drops by cause and the hint log's state */
static void hints_log_info(const struct cluster *cl, struct msg_buf *out) {
    const struct hints_stats *hs = &cl->node.hints->stats;
    text(out, "hints_dropped_window:%" PRIu64 "\r\n", hs->dropped_window);
    text(out, "hints_refused_full:%" PRIu64 "\r\n", hs->dropped_bytes + hs->dropped_big);
    text(out, "hints_durable:%d\r\n", cl->hintlog != NULL);
    if (cl->hintlog) {
        const struct hintlog_stats *ls = hintlog_stats(cl->hintlog);
        text(out, "hints_log_loaded:%" PRIu64 "\r\n", ls->loaded);
        text(out, "hints_log_skipped:%" PRIu64 "\r\n", ls->skipped);
        text(out, "hints_log_errors:%" PRIu64 "\r\n", ls->errors);
    }
}
