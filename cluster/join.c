/* cluster/join.c: joining and leaving the ring (join.h): the plan of ranges to
 * stream, and the runtime that streams them with repair sessions (repair.h) over
 * the links, paced, one request in flight, on the loop's 100 ms tick.
 *
 * Threading: loop thread only.
 */
#include "cluster/join.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/gossip.h"
#include "cluster/keyless.h"
#include "cluster/link.h"
#include "cluster/mem.h"
#include "cluster/repair.h"

/* ---- the plan (pure) ---- */

static size_t tags_of(const struct ring *g, uint64_t token, size_t n, uint32_t *tags) {
    uint32_t idx[RING_MAX_REPLICAS];
    size_t k = ring_replicas(g, token, n, idx);
    for (size_t i = 0; i < k; i++) {
        tags[i] = g->members[idx[i]].tag;
    }
    return k;
}

static int in_tags(const uint32_t *tags, size_t n, uint32_t tag) {
    for (size_t i = 0; i < n; i++) {
        if (tags[i] == tag) {
            return 1;
        }
    }
    return 0;
}

/* the task of one range: its peers, 0 when self has nothing to do there */
static size_t plan_range(const struct ring *cur, const struct ring *fut, uint32_t self,
                         size_t n, int leaving, uint64_t from, uint32_t *peers) {
    uint32_t c[RING_MAX_REPLICAS], f[RING_MAX_REPLICAS];
    size_t nc = tags_of(cur, from, n, c), nf = tags_of(fut, from, n, f), np = 0;
    if (!leaving) { /* pull from the current replicas what self will replicate */
        if (!in_tags(f, nf, self)) {
            return 0;
        }
        for (size_t i = 0; i < nc; i++) {
            if (c[i] != self) {
                peers[np++] = c[i];
            }
        }
        return np;
    }
    if (!in_tags(c, nc, self)) { /* push to the range's new replicas */
        return 0;
    }
    for (size_t i = 0; i < nf; i++) {
        if (!in_tags(c, nc, f[i])) {
            peers[np++] = f[i];
        }
    }
    return np;
}

size_t join_plan(const struct ring *cur, const struct ring *fut, uint32_t self, size_t n,
                 int leaving, struct join_task **out) {
    /* the ring with self is the finer one: its ranges each lie in one range of
     * the other */
    struct repair_span *sp;
    size_t ns = repair_ring_ranges(leaving ? cur : fut, &sp);
    struct join_task *t = cl_calloc(ns ? ns : 1, sizeof *t);
    size_t k = 0;
    for (size_t i = 0; i < ns; i++) {
        t[k].npeers = plan_range(cur, fut, self, n, leaving, sp[i].from, t[k].peers);
        if (t[k].npeers) {
            t[k].from = sp[i].from;
            t[k].to = sp[i].to;
            k++;
        }
    }
    free(sp);
    *out = t;
    return k;
}

int join_session_enough(const struct repair_session *s, size_t w, int leaving) {
    if (repair_session_complete(s)) {
        return 1;
    }
    if (leaving) {
        return 0;
    }
    size_t ok = 0;
    for (size_t i = 0; i < s->npeers; i++) {
        ok += !s->failed[i];
    }
    size_t need = s->npeers >= w ? s->npeers - w + 1 : 1;
    return ok >= need;
}

/* ---- the runtime ---- */

enum js_state {
    JS_NORMAL = 0,  /* nothing to do */
    JS_JOIN_WAIT,   /* joining: waiting for the seeds and a current ring */
    JS_JOIN_SETTLE, /* joining: tokens gossiped, letting every node hear of them */
    JS_JOIN_STREAM, /* joining: pulling the ranges */
    JS_JOIN_SAVE,   /* joining: streamed; keeping the tokens */
    JS_LEAVE_SETTLE,
    JS_LEAVE_STREAM, /* leaving: pushing the ranges */
    JS_LEFT,
};

static const char *const js_names[] = {"normal",    "join-wait",    "join-settle",
                                       "joining",   "join-save",    "leave-settle",
                                       "leaving",   "left"};

struct joiner {
    struct cluster *cl;
    int state;
    int (*save_tokens)(const uint64_t *, size_t);
    void (*on_left)(void);
    uint64_t rate;            /* bytes per second, 0 unlimited */
    int64_t budget;
    uint64_t now_ms;          /* ticks x 100 */
    uint64_t settle_until;
    uint64_t view_since;      /* joining: since when the view is steady (0: not) */
    struct join_task *tasks;  /* the plan; a retried task goes again at the end */
    size_t ntasks, next, done;
    int active;               /* a session runs for tasks[cur] */
    size_t cur;
    struct repair_session s;
    uint64_t next_id;
    int in_flight;
    /* totals of the stream */
    uint64_t started_ms, ended_ms, bytes, records, retries;
};

struct js_req {
    struct joiner *j;
    uint64_t id;
};

struct joiner *joiner_new(struct cluster *cl, int join, uint64_t bytes_per_sec,
                          int (*save_tokens)(const uint64_t *, size_t), void (*on_left)(void)) {
    struct joiner *j = cl_calloc(1, sizeof *j);
    j->cl = cl;
    j->rate = bytes_per_sec;
    j->budget = bytes_per_sec ? (int64_t)(bytes_per_sec / 10) : 1;
    j->save_tokens = save_tokens;
    j->on_left = on_left;
    j->next_id = 1;
    if (join) {
        j->state = JS_JOIN_WAIT;
        cluster_set_self_status(cl, GOSSIP_JOINING);
    }
    return j;
}

void joiner_free(struct joiner *j) {
    if (j == NULL) {
        return;
    }
    if (j->active) {
        repair_session_free(&j->s);
    }
    free(j->tasks);
    free(j);
}

static void stream_start(struct joiner *j, int leaving) {
    const struct ring *fut = cluster_future_of(j->cl);
    const struct ring *cur = cluster_ring_of(j->cl);
    free(j->tasks);
    j->tasks = NULL;
    j->ntasks = fut ? join_plan(cur, fut, cluster_self_tag(j->cl),
                                (size_t)cluster_replicas(j->cl), leaving, &j->tasks)
                    : 0;
    j->next = j->done = 0;
    j->started_ms = j->now_ms;
    j->state = leaving ? JS_LEAVE_STREAM : JS_JOIN_STREAM;
}

/* the session of tasks[cur] is over: done, or queued again when partial */
static void session_end(struct joiner *j) {
    const struct repair_stats *st = &j->s.st_;
    j->bytes += st->bytes_in + st->bytes_out;
    j->records += st->records_pulled + st->records_pushed;
    if (join_session_enough(&j->s, (size_t)cluster_write_quorum(j->cl),
                            j->state == JS_LEAVE_STREAM)) {
        j->done++;
    } else { /* too many peers failed: the range goes again after the others */
        j->retries++;
        j->tasks = cl_realloc(j->tasks, (j->ntasks + 1) * sizeof *j->tasks);
        j->tasks[j->ntasks++] = j->tasks[j->cur];
    }
    repair_session_free(&j->s);
    j->active = 0;
}

static void stream_step(struct joiner *j);

static void on_reply(void *ctx, int status, const redisReply *reply) {
    struct js_req *q = ctx;
    struct joiner *j = q->j;
    uint64_t id = q->id;
    free(q);
    if (cluster_stopping(j->cl)) {
        return;
    }
    j->in_flight = 0;
    if (!j->active) {
        return;
    }
    if (j->rate) {
        j->budget -= (int64_t)repair_reply_bytes(status == LINK_OK ? reply : NULL);
    }
    repair_session_on_reply(&j->s, id, status == LINK_OK ? reply : NULL);
    stream_step(j);
}

/* sends what the session wants while the budget allows; starts the next task's
 * session when one ends. Returns 1 once every task is done. */
static int pump(struct joiner *j) {
    while (!j->in_flight && (j->budget > 0 || !j->rate)) {
        if (!j->active) {
            if (j->next == j->ntasks) {
                return 1;
            }
            j->cur = j->next++;
            const struct join_task *t = &j->tasks[j->cur];
            repair_session_init(&j->s, cluster_store_of(j->cl), t->from, t->to, t->peers,
                                t->npeers, j->next_id);
            j->active = 1;
        }
        struct repair_send out;
        int rc = repair_session_next(&j->s, &out);
        j->next_id = j->s.next_id;
        if (rc < 0) {
            session_end(j);
            continue;
        }
        if (rc == 0) {
            return 0;
        }
        if (j->rate) {
            j->budget -= (int64_t)out.bytes;
        }
        struct js_req *q = cl_calloc(1, sizeof *q);
        *q = (struct js_req){j, out.id};
        j->in_flight = 1;
        if (cluster_send_tag(j->cl, out.tag, out.a.argc, out.a.argv, out.a.argvlen, on_reply,
                             q) != LINK_OK) {
            free(q);
            j->in_flight = 0;
            repair_session_on_reply(&j->s, out.id, NULL); /* the peer is away */
        }
        msg_argv_free(&out.a);
    }
    return 0;
}

/* joining, the seeds answered and someone is in the ring: balanced tokens */
static void take_tokens(struct joiner *j) {
    const struct ring *cur = cluster_ring_of(j->cl);
    const struct gossip *g = cluster_gossip_of(j->cl);
    size_t n = g->mb[0].m.ntokens;
    uint64_t *t = cl_malloc(n * sizeof *t);
    size_t k = ring_tokens_balance(cur, n, (size_t)cluster_replicas(j->cl), t);
    if (k > 0) {
        cluster_set_self_tokens(j->cl, t, k);
        j->settle_until = j->now_ms + JOIN_SETTLE_MS;
        j->state = JS_JOIN_SETTLE;
    }
    free(t);
}

/* streamed: keep the tokens, then gossip normal */
static void join_finish(struct joiner *j) {
    const struct gossip *g = cluster_gossip_of(j->cl);
    const struct ring_member *me = &g->mb[0].m;
    if (j->save_tokens && j->save_tokens(me->tokens, me->ntokens) != 0) {
        j->state = JS_JOIN_SAVE; /* retried next tick; logged by the saver */
        return;
    }
    j->state = JS_NORMAL;
    cluster_set_self_status(j->cl, GOSSIP_NORMAL);
}

static void stream_step(struct joiner *j) {
    if (!pump(j)) {
        return;
    }
    j->ended_ms = j->now_ms;
    if (j->state == JS_JOIN_STREAM) {
        join_finish(j);
    } else {
        if (j->on_left) {
            j->on_left();
        }
        j->state = JS_LEFT;
        cluster_set_self_status(j->cl, GOSSIP_LEFT);
    }
}

void joiner_tick(struct joiner *j) {
    j->now_ms += 100;
    if (j->rate) {
        j->budget += (int64_t)(j->rate / 10);
        if (j->budget > (int64_t)j->rate) {
            j->budget = (int64_t)j->rate; /* at most one second banked */
        }
    }
    switch (j->state) {
    case JS_JOIN_WAIT:
        if (!cluster_seeds_answered(j->cl) || cluster_ring_of(j->cl)->nvnodes == 0 ||
            cluster_others_moving(j->cl)) {
            j->view_since = 0;
        } else if (j->view_since == 0) {
            j->view_since = j->now_ms;
        } else if (j->now_ms - j->view_since >= JOIN_VIEW_MS) {
            take_tokens(j);
        }
        break;
    case JS_JOIN_SETTLE:
    case JS_LEAVE_SETTLE:
        if (j->now_ms >= j->settle_until) {
            stream_start(j, j->state == JS_LEAVE_SETTLE);
        }
        break;
    case JS_JOIN_STREAM:
    case JS_LEAVE_STREAM:
        stream_step(j);
        break;
    case JS_JOIN_SAVE:
        join_finish(j);
        break;
    default:
        break;
    }
}

int joiner_leave(struct joiner *j, const char **why) {
    if (j->state != JS_NORMAL) {
        *why = j->state == JS_LEFT ? "this node left the cluster already"
               : j->state >= JS_LEAVE_SETTLE ? "this node is leaving already"
                                              : "this node is joining: let it finish first";
        return -1;
    }
    const struct ring *cur = cluster_ring_of(j->cl);
    if (cur->nmembers < 2) {
        *why = "this node is the last member of the ring";
        return -1;
    }
    cluster_set_self_status(j->cl, GOSSIP_LEAVING);
    j->settle_until = j->now_ms + JOIN_SETTLE_MS;
    j->state = JS_LEAVE_SETTLE;
    return 0;
}

int joiner_left(const struct joiner *j) {
    return j->state == JS_LEFT;
}

static void text(struct msg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text(struct msg_buf *b, const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0) {
        msg_buf_put(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    }
}

/* ranges done of the plan's distinct ranges (retries do not count twice) */
static unsigned percent(const struct joiner *j) {
    size_t total = j->ntasks - j->retries;
    return total ? (unsigned)(j->done * 100 / total) : 100;
}

void joiner_progress(const struct joiner *j, struct msg_buf *out) {
    if (j->state == JS_JOIN_STREAM || j->state == JS_LEAVE_STREAM) {
        text(out, " stream=%u%%", percent(j));
    }
}

void joiner_info(const struct joiner *j, struct msg_buf *out) {
    uint64_t end = j->ended_ms ? j->ended_ms : j->now_ms;
    uint64_t ms = j->started_ms && end > j->started_ms ? end - j->started_ms : 0;
    text(out, "join_state:%s\r\n", js_names[j->state]);
    text(out, "stream_ranges:%zu\r\n", j->ntasks - j->retries);
    text(out, "stream_ranges_done:%zu\r\n", j->done);
    text(out, "stream_percent:%u\r\n", percent(j));
    text(out, "stream_retries:%" PRIu64 "\r\n", j->retries);
    text(out, "stream_bytes:%" PRIu64 "\r\n", j->bytes);
    text(out, "stream_records:%" PRIu64 "\r\n", j->records);
    text(out, "stream_ms:%" PRIu64 "\r\n", ms);
}
