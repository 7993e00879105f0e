/* cluster/repair_rt.c: the runtime of anti-entropy repair (cluster.h
 * cluster_repair; repair_rt.h). It keeps the ring's ranges with what their last
 * repair did, a queue of ranges to repair, and at most one repair session
 * (repair.h) at a time, whose requests it sends over the links and whose replies
 * it feeds back. Everything happens in bounded slices on the loop: a request
 * goes out only while the byte budget of repair-throughput-mb-per-sec (refilled
 * every 100 ms tick, at most one second's worth banked) is positive, and each
 * reply is a bounded page. A peer that goes away fails its part of the session
 * (partial); the range is repaired again at the next pass.
 *
 * Passes: a background pass over every range this node replicates starts every
 * repair-interval-seconds (from the start of the previous one); KVD REPAIR queues
 * the same at once; KVD REPAIR FULL also hands each range this node does not
 * replicate to its first replica that is up (KVD.PEER REPAIR from to), which
 * queues it there.
 *
 * Threading: loop thread only.
 */
#include "cluster/repair_rt.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/keyless.h"
#include "cluster/mem.h"
#include "cluster/repair.h"
#include "cluster/scan.h"

#define RR_QUEUE_MAX 65536 /* ranges waiting (a ring has at most 4M vnodes; plenty) */

struct rr_range {
    uint64_t from, to;       /* [from, to), to 0 the ring's end */
    uint64_t last_ms;        /* wall clock of the end of its last repair (0: never) */
    uint64_t complete_start_ms; /* of the start of its last complete repair (0: none
                                 * since this process started) */
    int last_complete;       /* that repair included every replica */
    uint64_t bytes, records; /* moved by that repair */
    uint64_t repairs;
};

struct rr_queued {
    uint64_t from, to;
};

struct repairer {
    struct cluster *cl;
    unsigned interval_s;
    uint64_t rate;             /* bytes per second, 0 unlimited */
    int64_t budget;            /* bytes that may go now */
    uint64_t fingerprint;      /* of the ring the ranges were made from */
    struct rr_range *ranges;
    size_t nranges;
    struct rr_queued *queue;
    size_t nqueue, capqueue, qhead;
    uint64_t next_pass_ms;     /* monotonic-ish: the tick count's ms */
    uint64_t now_ms;           /* ticks x 100 */
    int active;                /* a session runs */
    uint64_t session_start_ms; /* the store's clock when it started */
    struct repair_session s;
    /* back after a long absence (repairer_hold): not serving until every range it
     * replicates had a complete session that started after absent_since_ms */
    int absent;
    uint64_t absent_since_ms, absent_retry_ms; /* store clock; tick clock */
    size_t absent_done, absent_total;          /* ranges repaired of those, last looked */
    uint64_t horizon_ms;                       /* what cluster_gc_horizon last said */
    uint64_t next_id;
    int in_flight;             /* a link request not yet called back */
    /* totals */
    uint64_t passes, sessions_ok, sessions_partial, bytes_in, bytes_out, pulled, pushed;
    uint64_t delegated;
};

struct rr_req {
    struct repairer *r;
    uint64_t id;
};

struct repairer *cluster_repairer_of(struct cluster *cl);

struct repairer *repairer_new(struct cluster *cl, unsigned interval_s, uint64_t bytes_per_sec) {
    struct repairer *r = cl_calloc(1, sizeof *r);
    r->cl = cl;
    r->interval_s = interval_s;
    r->rate = bytes_per_sec;
    r->budget = bytes_per_sec ? (int64_t)(bytes_per_sec / 10) : INT64_MAX / 2;
    r->next_pass_ms = (uint64_t)interval_s * 1000; /* the first after one interval */
    r->next_id = 1;
    return r;
}

void repairer_free(struct repairer *r) {
    if (r == NULL) {
        return;
    }
    if (r->active) {
        repair_session_free(&r->s);
    }
    free(r->ranges);
    free(r->queue);
    free(r);
}

/* ---- the ranges of the ring ---- */

static uint64_t ring_fingerprint(const struct ring *g) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < g->nvnodes; i++) {
        h = (h ^ g->vnodes[i].token) * 1099511628211ull;
        h = (h ^ g->members[g->vnodes[i].member].tag) * 1099511628211ull;
    }
    return h ^ g->nvnodes;
}

/* the ring's ranges (repair_ring_ranges), keeping what is known of those that
 * did not change */
static void ranges_rebuild(struct repairer *r) {
    const struct ring *g = cluster_ring_of(r->cl);
    uint64_t fp = ring_fingerprint(g);
    if (fp == r->fingerprint && r->ranges) {
        return;
    }
    struct repair_span *sp;
    size_t n = repair_ring_ranges(g, &sp);
    struct rr_range *v = cl_calloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i].from = sp[i].from;
        v[i].to = sp[i].to;
    }
    free(sp);
    for (size_t i = 0; i < n; i++) { /* keep what is known of unchanged ranges */
        for (size_t j = 0; j < r->nranges; j++) {
            if (r->ranges[j].from == v[i].from && r->ranges[j].to == v[i].to) {
                v[i] = r->ranges[j];
                break;
            }
        }
    }
    free(r->ranges);
    r->ranges = v;
    r->nranges = n;
    r->fingerprint = fp;
}

/* the replicas of the range holding token from (its last token's replicas) */
static size_t range_replicas(struct repairer *r, uint64_t from, uint32_t *tags) {
    return ring_replica_tags(cluster_ring_of(r->cl), from, (size_t)cluster_replicas(r->cl), tags);
}

static int self_replicates(struct repairer *r, uint64_t from) {
    return ring_replicates(cluster_ring_of(r->cl), from, (size_t)cluster_replicas(r->cl),
                           cluster_self_tag(r->cl));
}

static struct rr_range *range_find(struct repairer *r, uint64_t from, uint64_t to) {
    for (size_t i = 0; i < r->nranges; i++) {
        if (r->ranges[i].from == from && r->ranges[i].to == to) {
            return &r->ranges[i];
        }
    }
    return NULL;
}

/* ---- the queue ---- */

static int queued(const struct repairer *r, uint64_t from, uint64_t to) {
    for (size_t i = r->qhead; i < r->nqueue; i++) {
        if (r->queue[i].from == from && r->queue[i].to == to) {
            return 1;
        }
    }
    return 0;
}

static int enqueue(struct repairer *r, uint64_t from, uint64_t to) {
    if (queued(r, from, to) || r->nqueue - r->qhead >= RR_QUEUE_MAX) {
        return 0;
    }
    if (r->qhead > 0 && r->qhead == r->nqueue) {
        r->qhead = r->nqueue = 0;
    }
    if (r->nqueue == r->capqueue) {
        r->capqueue = r->capqueue ? r->capqueue * 2 : 64;
        r->queue = cl_realloc(r->queue, r->capqueue * sizeof *r->queue);
    }
    r->queue[r->nqueue++] = (struct rr_queued){from, to};
    return 1;
}

/* every range this node replicates; returns how many were queued */
static size_t queue_own(struct repairer *r) {
    ranges_rebuild(r);
    size_t n = 0;
    for (size_t i = 0; i < r->nranges; i++) {
        if (self_replicates(r, r->ranges[i].from)) {
            n += (size_t)enqueue(r, r->ranges[i].from, r->ranges[i].to);
        }
    }
    return n;
}

/* ---- sessions ---- */

static void pump(struct repairer *r);

static void session_end(struct repairer *r) {
    int complete = repair_session_complete(&r->s);
    const struct repair_stats *st = &r->s.st_;
    struct rr_range *g = range_find(r, r->s.from, r->s.to);
    if (g) {
        const struct cluster_store *cs = cluster_store_of(r->cl);
        g->last_ms = cs->now_ms ? cs->now_ms(cs->ctx) : 0;
        g->last_complete = complete;
        if (complete) {
            g->complete_start_ms = r->session_start_ms;
        }
        g->bytes = st->bytes_in + st->bytes_out;
        g->records = st->records_pulled + st->records_pushed;
        g->repairs++;
    }
    r->sessions_ok += complete;
    r->sessions_partial += !complete;
    r->pulled += st->records_pulled;
    r->pushed += st->records_pushed;
    repair_session_free(&r->s);
    r->active = 0;
    if (r->qhead == r->nqueue) {
        r->passes++;
    }
}

/* the next queued range this node replicates, as a session; 0 when none */
static int session_start(struct repairer *r) {
    ranges_rebuild(r);
    while (r->qhead < r->nqueue) {
        struct rr_queued q = r->queue[r->qhead++];
        uint32_t tags[RING_MAX_REPLICAS], peers[RING_MAX_REPLICAS];
        size_t n = range_replicas(r, q.from, tags), np = 0;
        int mine = 0;
        for (size_t i = 0; i < n; i++) {
            if (tags[i] == cluster_self_tag(r->cl)) {
                mine = 1;
            } else {
                peers[np++] = tags[i];
            }
        }
        if (!mine || range_find(r, q.from, q.to) == NULL) {
            continue; /* the ring changed since it was queued */
        }
        const struct cluster_store *cs = cluster_store_of(r->cl);
        r->session_start_ms = cs->now_ms ? cs->now_ms(cs->ctx) : 0;
        repair_session_init(&r->s, cs, q.from, q.to, peers, np, r->next_id);
        r->active = 1;
        return 1;
    }
    return 0;
}

static void on_reply(void *ctx, int status, const redisReply *reply) {
    struct rr_req *q = ctx;
    struct repairer *r = q->r;
    uint64_t id = q->id;
    free(q);
    if (cluster_stopping(r->cl)) {
        return;
    }
    r->in_flight = 0;
    if (!r->active) {
        return;
    }
    size_t bytes = repair_reply_bytes(status == LINK_OK ? reply : NULL);
    r->bytes_in += bytes;
    if (r->rate) {
        r->budget -= (int64_t)bytes;
    }
    repair_session_on_reply(&r->s, id, status == LINK_OK ? reply : NULL);
    pump(r);
}

/* sends what the session wants while the budget allows; starts the next
 * session when one ends */
static void pump(struct repairer *r) {
    while (!r->in_flight && r->budget > 0) {
        if (!r->active && !session_start(r)) {
            return;
        }
        struct repair_send out;
        int rc = repair_session_next(&r->s, &out);
        r->next_id = r->s.next_id;
        if (rc < 0) {
            session_end(r);
            continue;
        }
        if (rc == 0) {
            return;
        }
        r->bytes_out += out.bytes;
        if (r->rate) {
            r->budget -= (int64_t)out.bytes;
        }
        struct rr_req *q = cl_calloc(1, sizeof *q);
        *q = (struct rr_req){r, out.id};
        r->in_flight = 1;
        if (cluster_send_tag(r->cl, out.tag, out.a.argc, out.a.argv, out.a.argvlen, on_reply, q) !=
            LINK_OK) {
            free(q);
            r->in_flight = 0;
            repair_session_on_reply(&r->s, out.id, NULL); /* the peer is away: partial */
        }
        msg_argv_free(&out.a);
    }
}

/* ---- back after a long absence; the GC horizon ---- */

static uint64_t store_now(const struct repairer *r) {
    const struct cluster_store *cs = cluster_store_of(r->cl);
    return cs->now_ms ? cs->now_ms(cs->ctx) : 0;
}

void repairer_hold(struct repairer *r) {
    r->absent = 1;
    r->absent_since_ms = store_now(r);
}

/* counts the ranges this node replicates and those whose last complete repair
 * started at or after since; queues the others when queue is set */
static void count_repaired_since(struct repairer *r, uint64_t since, int queue) {
    ranges_rebuild(r);
    r->absent_done = r->absent_total = 0;
    for (size_t i = 0; i < r->nranges; i++) {
        const struct rr_range *g = &r->ranges[i];
        if (!self_replicates(r, g->from)) {
            continue;
        }
        r->absent_total++;
        if (g->complete_start_ms != 0 && g->complete_start_ms >= since) {
            r->absent_done++;
        } else if (queue) {
            enqueue(r, g->from, g->to);
        }
    }
}

/* Between sessions: serve again once every range is repaired, else queue what is
 * left (at once the first time, then once a second: a replica that is away makes
 * sessions partial, retried until it answers). */
static void absent_step(struct repairer *r) {
    if (r->active || r->qhead != r->nqueue) {
        return;
    }
    int retry = r->now_ms >= r->absent_retry_ms;
    count_repaired_since(r, r->absent_since_ms, retry);
    if (r->absent_total > 0 && r->absent_done == r->absent_total) {
        r->absent = 0;
        cluster_note(r->cl, CLUSTER_LOG_WARNING,
                     "repaired after a long absence: all %zu ranges, serving again",
                     r->absent_total);
    } else if (retry) {
        r->absent_retry_ms = r->now_ms + 1000;
    }
}

int repairer_serving(const struct repairer *r, char *why, size_t whylen) {
    if (r == NULL || !r->absent) {
        return 1;
    }
    if (why == NULL) {
        return 0;
    }
    snprintf(why, whylen,
             "repairing after a long absence (down longer than gc-grace-seconds): "
             "%zu of %zu ranges repaired",
             r->absent_done, r->absent_total);
    return 0;
}

uint64_t cluster_gc_horizon(struct cluster *cl) {
    struct repairer *r = cluster_repairer_of(cl);
    if (r == NULL || !cluster_ring_known(cl, NULL)) {
        return 0;
    }
    ranges_rebuild(r);
    uint64_t h = UINT64_MAX;
    for (size_t i = 0; i < r->nranges; i++) {
        if (self_replicates(r, r->ranges[i].from) && r->ranges[i].complete_start_ms < h) {
            h = r->ranges[i].complete_start_ms;
        }
    }
    /* a write dated before the session started may still have been on its way to
     * the replicas (a request timeout) or dated by a clock behind this one: by at
     * most cluster-max-clock-offset-ms, since a node further off coordinates no
     * writes (the clock guard, skew.h) */
    uint64_t margin = (uint64_t)cluster_timeout_ms(cl) + (uint64_t)cluster_max_clock_offset_ms(cl);
    r->horizon_ms = h == UINT64_MAX || h <= margin ? 0 : h - margin;
    return r->horizon_ms;
}

void repairer_tick(struct repairer *r) {
    r->now_ms += 100;
    if (r->rate) {
        r->budget += (int64_t)(r->rate / 10);
        if (r->budget > (int64_t)r->rate) {
            r->budget = (int64_t)r->rate; /* at most one second banked */
        }
    }
    if (!cluster_ring_known(r->cl, NULL)) {
        return; /* (not cluster_ready: a node back after a long absence repairs) */
    }
    if (r->absent) {
        absent_step(r);
    }
    if (r->interval_s && r->now_ms >= r->next_pass_ms) {
        r->next_pass_ms = r->now_ms + (uint64_t)r->interval_s * 1000;
        if (!r->active && r->qhead == r->nqueue) {
            queue_own(r);
        }
    }
    pump(r);
}

/* ---- KVD REPAIR, KVD.PEER REPAIR ---- */

static void delegate_reply(void *ctx, int status, const redisReply *reply) {
    (void)ctx;
    (void)status;
    (void)reply; /* the peer queued it or not: FULL is best effort, INFO says */
}

/* hands a range this node does not replicate to its first replica up */
static int delegate(struct repairer *r, uint64_t from, uint64_t to) {
    uint32_t tags[RING_MAX_REPLICAS];
    size_t n = range_replicas(r, from, tags);
    for (size_t i = 0; i < n; i++) {
        if (!cluster_tag_up(r->cl, tags[i])) {
            continue;
        }
        char f[24], t[24];
        snprintf(f, sizeof f, "%" PRIu64, from);
        snprintf(t, sizeof t, "%" PRIu64, to);
        const char *argv[4] = {MSG_COMMAND, "REPAIR", f, t};
        size_t lens[4] = {sizeof MSG_COMMAND - 1, 6, strlen(f), strlen(t)};
        if (cluster_send_tag(r->cl, tags[i], 4, argv, lens, delegate_reply, NULL) == LINK_OK) {
            r->delegated++;
            return 1;
        }
    }
    return 0;
}

size_t cluster_repair(struct cluster *cl, int full) {
    struct repairer *r = cluster_repairer_of(cl);
    if (r == NULL || !cluster_ready(cl, NULL)) {
        return 0;
    }
    size_t n = queue_own(r);
    if (full) {
        for (size_t i = 0; i < r->nranges; i++) {
            if (!self_replicates(r, r->ranges[i].from)) {
                n += (size_t)delegate(r, r->ranges[i].from, r->ranges[i].to);
            }
        }
    }
    pump(r);
    return n;
}

void repairer_peer_answer(struct repairer *r, const struct kv_slice *argv, size_t argc,
                          struct msg_buf *out) {
    uint64_t from, to;
    if (argc != 4 || scan_parse_u64(argv[2].p, argv[2].len, &from) != 0 ||
        scan_parse_u64(argv[3].p, argv[3].len, &to) != 0 || (to != 0 && to <= from)) {
        msg_reply_error(out, MSG_COMMAND " REPAIR: expected a token range from to");
        return;
    }
    ranges_rebuild(r);
    if (range_find(r, from, to) == NULL || !self_replicates(r, from)) {
        msg_reply_error(out, MSG_COMMAND " REPAIR: not a range this node replicates");
        return;
    }
    int added = enqueue(r, from, to);
    msg_buf_put(out, added ? ":1\r\n" : ":0\r\n", 4);
}

/* ---- INFO ---- */

static void line(struct msg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void line(struct msg_buf *b, const char *fmt, ...) {
    char s[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s, sizeof s, fmt, ap);
    va_end(ap);
    if (n > 0) {
        msg_buf_put(b, s, (size_t)n < sizeof s ? (size_t)n : sizeof s - 1);
    }
}

void repairer_info(const struct repairer *r, struct msg_buf *out) {
    line(out, "repair_interval_seconds:%u\r\n", r->interval_s);
    line(out, "repair_throughput_bytes_per_sec:%" PRIu64 "\r\n", r->rate);
    line(out, "repair_running:%d\r\n", r->active);
    line(out, "repair_queued_ranges:%zu\r\n", r->nqueue - r->qhead);
    line(out, "repair_passes:%" PRIu64 "\r\n", r->passes);
    line(out, "repair_sessions_complete:%" PRIu64 "\r\n", r->sessions_ok);
    line(out, "repair_sessions_partial:%" PRIu64 "\r\n", r->sessions_partial);
    line(out, "repair_bytes_in:%" PRIu64 "\r\n", r->bytes_in);
    line(out, "repair_bytes_out:%" PRIu64 "\r\n", r->bytes_out);
    line(out, "repair_records_pulled:%" PRIu64 "\r\n", r->pulled);
    line(out, "repair_records_pushed:%" PRIu64 "\r\n", r->pushed);
    line(out, "repair_ranges_delegated:%" PRIu64 "\r\n", r->delegated);
    line(out, "repair_after_long_absence:%d\r\n", r->absent);
    uint64_t now = store_now(r);
    line(out, "tombstone_gc_horizon_seconds_ago:%lld\r\n",
         r->horizon_ms && now >= r->horizon_ms ? (long long)((now - r->horizon_ms) / 1000) : -1);
    for (size_t i = 0; i < r->nranges; i++) {
        const struct rr_range *g = &r->ranges[i];
        long long ago = g->last_ms && now >= g->last_ms ? (long long)((now - g->last_ms) / 1000)
                                                        : -1;
        line(out,
             "repair_range%zu:from=%" PRIu64 ",to=%" PRIu64 ",repairs=%" PRIu64
             ",last_repaired_seconds_ago=%lld,complete=%d,bytes=%" PRIu64 ",records=%" PRIu64
             "\r\n",
             i, g->from, g->to, g->repairs, ago, g->last_complete, g->bytes, g->records);
    }
}
