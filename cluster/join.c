/* cluster/join.c: joining and leaving the ring (join.h): the plan of ranges to
 * stream, and the runtime that streams them with repair sessions (repair.h) over
 * the links, paced, one request in flight, on the loop's 100 ms tick.
 *
 * Threading: loop thread only.
 */
#include "cluster/join.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cluster/gossip.h"
#include "cluster/keyless.h"
#include "cluster/link.h"
#include "cluster/mem.h"
#include "cluster/repair.h"
#include "cluster/repair_rt.h"

/* ---- the plan (pure) ---- */

/* What a plan is for: a joiner pulls what it will replicate (from the current
 * replicas), a leaver pushes what it replicates (to the range's new replicas),
 * a member gaining a dead one's range pulls it (from the survivors). */
enum plan_kind { PLAN_PULL, PLAN_PUSH, PLAN_GAINED };

struct plan {
    const struct ring *cur, *fut;
    uint32_t self, dead; /* dead: PLAN_GAINED's removed member */
    size_t n;
    enum plan_kind kind;
};

/* tags but skip, into out; how many */
static size_t tags_except(const uint32_t *tags, size_t n, uint32_t skip, uint32_t *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (tags[i] != skip) {
            out[k++] = tags[i];
        }
    }
    return k;
}

/* the task of one range: its peers, 0 when self has nothing to do there */
static size_t plan_range(const struct plan *p, uint64_t from, uint32_t *peers) {
    uint32_t c[RING_MAX_REPLICAS], f[RING_MAX_REPLICAS];
    size_t nc = ring_replica_tags(p->cur, from, p->n, c);
    size_t nf = ring_replica_tags(p->fut, from, p->n, f), np = 0;
    int in_c = ring_tags_have(c, nc, p->self), in_f = ring_tags_have(f, nf, p->self);
    switch (p->kind) {
    case PLAN_PULL:
        return in_f ? tags_except(c, nc, p->self, peers) : 0;
    case PLAN_GAINED:
        return in_f && !in_c ? tags_except(c, nc, p->dead, peers) : 0;
    case PLAN_PUSH:
        for (size_t i = 0; in_c && i < nf; i++) {
            if (!ring_tags_have(c, nc, f[i])) {
                peers[np++] = f[i];
            }
        }
        return np;
    }
    return 0;
}

/* One task per range of over (the finer ring: its ranges each lie in one range
 * of the other) where self has something to do. */
static size_t plan_ranges(const struct ring *over, const struct plan *p, struct join_task **out) {
    struct repair_span *sp;
    size_t ns = repair_ring_ranges(over, &sp);
    struct join_task *t = cl_calloc(ns ? ns : 1, sizeof *t);
    size_t k = 0;
    for (size_t i = 0; i < ns; i++) {
        t[k].npeers = plan_range(p, sp[i].from, t[k].peers);
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

size_t join_plan(const struct ring *cur, const struct ring *fut, uint32_t self, size_t n,
                 int leaving, struct join_task **out) {
    /* the ring with self is the finer one */
    struct plan p = {cur, fut, self, 0, n, leaving ? PLAN_PUSH : PLAN_PULL};
    return plan_ranges(leaving ? cur : fut, &p, out);
}

size_t join_plan_remove(const struct ring *cur, const struct ring *fut, uint32_t self,
                        uint32_t dead, size_t n, struct join_task **out) {
    /* cur holds every token of fut but (for a replace) self's, which are the dead
     * member's: cur is the finer one */
    struct plan p = {cur, fut, self, dead, n, PLAN_GAINED};
    return plan_ranges(cur, &p, out);
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

/* ---- the resume file (pure) ---- */

/* printf to a msg_buf, a line at most 255 bytes (defined with the INFO lines) */
static void text(struct msg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void join_resume_encode(const char *id, const uint64_t *tokens, size_t n,
                        const struct join_task *tasks, const unsigned char *finished,
                        size_t ntasks, struct msg_buf *out) {
    size_t start = out->len, k = 0;
    text(out, "kvd-node-join %d\nid %s\ntokens %zu\n", JOIN_RESUME_VERSION, id, n);
    for (size_t i = 0; i < n; i++) {
        text(out, "%" PRIu64 "\n", tokens[i]);
    }
    for (size_t i = 0; i < ntasks; i++) {
        k += finished[i] != 0;
    }
    text(out, "done %zu\n", k);
    for (size_t i = 0; i < ntasks; i++) {
        if (finished[i]) {
            text(out, "%" PRIu64 " %" PRIu64 "\n", tasks[i].from, tasks[i].to);
        }
    }
    uint64_t sum = XXH3_64bits(out->p + start, out->len - start);
    text(out, "sum %016" PRIx64 "\n", sum);
}

/* A cursor over the file's lines. */
struct rcur {
    const char *p, *end;
};

/* the next line into line (NUL-terminated, without its '\n'): 0, or -1 when it
 * is missing, unterminated, too long or holds a NUL */
static int next_line(struct rcur *c, char *line, size_t cap) {
    if (c->p == NULL || c->p >= c->end) {
        return -1;
    }
    const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
    size_t n = nl ? (size_t)(nl - c->p) : 0;
    if (nl == NULL || n >= cap || memchr(c->p, 0, n)) {
        return -1;
    }
    memcpy(line, c->p, n);
    line[n] = 0;
    c->p = nl + 1;
    return 0;
}

/* a strict decimal u64 at s (no sign, no space), up to *rest: 0, or -1 */
static int parse_u64(const char *s, char **rest, uint64_t *v) {
    if (*s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    unsigned long long x = strtoull(s, rest, 10);
    if (errno) {
        return -1;
    }
    *v = (uint64_t)x;
    return 0;
}

/* "<word> <count>" with count <= max: 0, or -1 */
static int parse_count(struct rcur *c, const char *word, uint64_t max, uint64_t *n) {
    char line[64], *rest;
    size_t w = strlen(word);
    if (next_line(c, line, sizeof line) != 0 || strncmp(line, word, w) != 0 ||
        line[w] != ' ' || parse_u64(line + w + 1, &rest, n) != 0 || *rest || *n > max) {
        return -1;
    }
    return 0;
}

static int resume_fail(struct join_resume *r, char *err, size_t errlen, const char *why) {
    join_resume_free(r);
    snprintf(err, errlen, "%s", why);
    return -1;
}

/* the tokens part: "tokens n" and n ascending tokens */
static int parse_tokens(struct rcur *c, struct join_resume *r) {
    uint64_t n;
    char line[32], *rest;
    /* each token line takes 2 bytes at least: no allocation past the input */
    if (parse_count(c, "tokens", RING_MAX_TOKENS, &n) != 0 || n == 0 ||
        n > (uint64_t)(c->end - c->p) / 2) {
        return -1;
    }
    r->tokens = cl_malloc((size_t)n * sizeof *r->tokens);
    for (r->ntokens = 0; r->ntokens < n; r->ntokens++) {
        uint64_t v;
        if (next_line(c, line, sizeof line) != 0 || parse_u64(line, &rest, &v) != 0 ||
            *rest || (r->ntokens > 0 && v <= r->tokens[r->ntokens - 1])) {
            return -1;
        }
        r->tokens[r->ntokens] = v;
    }
    return 0;
}

/* the done part: "done k" and k ranges */
static int parse_done(struct rcur *c, struct join_resume *r) {
    uint64_t k;
    char line[64], *rest;
    /* each range line takes 4 bytes at least ("0 0\n") */
    if (parse_count(c, "done", JOIN_RESUME_MAX_RANGES, &k) != 0 ||
        k > (uint64_t)(c->end - c->p) / 4) {
        return -1;
    }
    r->done = cl_malloc((k ? (size_t)k : 1) * sizeof *r->done);
    for (r->ndone = 0; r->ndone < k; r->ndone++) {
        struct join_range *d = &r->done[r->ndone];
        if (next_line(c, line, sizeof line) != 0 || parse_u64(line, &rest, &d->from) != 0 ||
            *rest != ' ' || parse_u64(rest + 1, &rest, &d->to) != 0 || *rest) {
            return -1;
        }
    }
    return 0;
}

int join_resume_parse(const char *buf, size_t len, const char *id, struct join_resume *r,
                      char *err, size_t errlen) {
    struct rcur c = {buf, buf + len};
    char line[RING_ID_MAX + 32], want[RING_ID_MAX + 32];
    memset(r, 0, sizeof *r);
    snprintf(want, sizeof want, "kvd-node-join %d", JOIN_RESUME_VERSION);
    if (next_line(&c, line, sizeof line) != 0 || strcmp(line, want) != 0) {
        return resume_fail(r, err, errlen, "not a join file of this version (first line)");
    }
    snprintf(want, sizeof want, "id %s", id);
    if (next_line(&c, line, sizeof line) != 0 || strcmp(line, want) != 0) {
        return resume_fail(r, err, errlen, "another node's join file (its id line differs)");
    }
    if (parse_tokens(&c, r) != 0) {
        return resume_fail(r, err, errlen, "malformed tokens (want a count, then that "
                                           "many ascending decimal tokens)");
    }
    if (parse_done(&c, r) != 0) {
        return resume_fail(r, err, errlen, "malformed done ranges (want a count, then that "
                                           "many \"from to\" lines)");
    }
    size_t body = (size_t)(c.p - buf);
    char *rest;
    if (next_line(&c, line, sizeof line) != 0 || strncmp(line, "sum ", 4) != 0 ||
        strlen(line) != 20 || c.p != c.end) {
        return resume_fail(r, err, errlen, "truncated (no checksum line at the end)");
    }
    errno = 0;
    uint64_t sum = (uint64_t)strtoull(line + 4, &rest, 16);
    if (strspn(line + 4, "0123456789abcdef") != 16 || errno || *rest ||
        sum != XXH3_64bits(buf, body)) {
        return resume_fail(r, err, errlen, "checksum mismatch");
    }
    return 0;
}

void join_resume_free(struct join_resume *r) {
    free(r->tokens);
    free(r->done);
    memset(r, 0, sizeof *r);
}

/* ---- the runtime ---- */

#define STREAM_RETRY_MS 200 /* a partial session: the next one after this pause */

enum js_state {
    JS_NORMAL = 0,  /* nothing to do */
    JS_JOIN_WAIT,   /* joining: waiting for the seeds and a current ring */
    JS_JOIN_SETTLE, /* joining: tokens gossiped, letting every node hear of them */
    JS_JOIN_STREAM, /* joining: pulling the ranges */
    JS_JOIN_SAVE,   /* joining: streamed; keeping the tokens */
    JS_LEAVE_SETTLE,
    JS_LEAVE_STREAM, /* leaving: pushing the ranges */
    JS_LEFT,
    JS_REMOVE_SETTLE, /* a member is removed: letting every node hear of it */
    JS_REMOVE_STREAM, /* pulling the ranges this node gains */
    JS_REMOVE_DONE,   /* pulled; waiting for the removal to end */
    JS_REPLACE_WAIT,  /* replacing: waiting to see the dead member down */
    JS_REPLACE_SETTLE,
    JS_REPLACE_STREAM, /* replacing: pulling the dead member's ranges */
    JS_REPLACE_DONE,   /* pulled; the removal ends when every gainer is done */
    JS_REFUSED,        /* cluster-replace refused: serves nothing */
};

static const char *const js_names[] = {
    "normal",       "join-wait",      "join-settle",    "joining",        "join-save",
    "leave-settle", "leaving",        "left",           "remove-settle",  "remove-stream",
    "remove-done",  "replace-wait",   "replace-settle", "replacing",      "replace-done",
    "replace-refused"};

/* The node that removes a member (KVD REMOVENODE here, or this node replaces
 * it): once every node heard, it asks each member that gains ranges (the
 * gainers) how far it got, every second, and gossips the member left once all
 * are done. */
struct remover {
    char id[RING_ID_MAX + 1];
    uint32_t tag;
    uint64_t settle_until, next_poll;
    uint32_t *gainers;
    unsigned char *pct;       /* per gainer, its last answer: 0..100 */
    size_t ngainers;
    int planned;
    uint64_t round;           /* answers of an older round are ignored */
};

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
    struct join_task *tasks;  /* the plan */
    unsigned char *finished;  /* per task: streamed (a partial one goes again) */
    size_t ntasks, next, done;
    uint64_t pause_until;     /* after a partial session: the next one not before */
    int active;               /* a session runs for tasks[cur] */
    size_t cur;
    struct repair_session s;
    uint64_t next_id;
    int in_flight;
    /* totals of the stream */
    uint64_t started_ms, ended_ms, bytes, records, retries;
    /* removals: the member whose ranges this node pulls (0: none) */
    uint32_t rm_tag;
    struct remover *rm;       /* this node coordinates a removal (NULL: not) */
    uint64_t removals;        /* removals this node coordinated to the end */
    /* cluster-replace: the dead member's id, its heartbeat when first seen */
    char replace_id[RING_ID_MAX + 1];
    uint64_t replace_hb;
    int replace_seen;
    char refused[192];        /* why the replace was refused ("": it was not) */
    /* resuming a join (dir/node-join): the tokens and ranges of the run before;
     * prior[i]: tasks[i] was done then (re-checked last, see stream_start) */
    int (*save_join)(const char *, size_t);
    struct join_resume resume;
    unsigned char *prior;
    size_t resumed;           /* INFO stream_ranges_resumed */
};

struct js_req {
    struct joiner *j;
    uint64_t id;
};

struct joiner *joiner_new(struct cluster *cl, const struct joiner_config *cfg) {
    struct joiner *j = cl_calloc(1, sizeof *j);
    j->cl = cl;
    j->save_tokens = cfg->save_tokens;
    j->on_left = cfg->on_left;
    j->save_join = cfg->save_join;
    if (cfg->resume && cfg->join && !(cfg->replace && cfg->replace[0])) {
        j->resume = *cfg->resume; /* taken over */
    } else if (cfg->resume) {
        join_resume_free(cfg->resume);
    }
    j->next_id = 1;
    joiner_set_rate(j, cfg->bytes_per_sec);
    if (cfg->replace && cfg->replace[0]) {
        snprintf(j->replace_id, sizeof j->replace_id, "%s", cfg->replace);
        j->state = JS_REPLACE_WAIT;
        cluster_set_self_status(cl, GOSSIP_JOINING);
    } else if (cfg->join) {
        j->state = JS_JOIN_WAIT;
        cluster_set_self_status(cl, GOSSIP_JOINING);
    }
    return j;
}

static void remover_free(struct remover **rp) {
    if (*rp) {
        free((*rp)->gainers);
        free((*rp)->pct);
        free(*rp);
        *rp = NULL;
    }
}

void joiner_free(struct joiner *j) {
    if (j == NULL) {
        return;
    }
    if (j->active) {
        repair_session_free(&j->s);
    }
    remover_free(&j->rm);
    join_resume_free(&j->resume);
    free(j->tasks);
    free(j->finished);
    free(j->prior);
    free(j);
}

void joiner_set_rate(struct joiner *j, uint64_t bytes_per_sec) {
    j->rate = bytes_per_sec;
    j->budget = bytes_per_sec ? (int64_t)(bytes_per_sec / 10) : 1;
}

/* 1 when [from, to) was streamed before the restart */
static int resume_done(const struct join_resume *r, uint64_t from, uint64_t to) {
    for (size_t i = 0; i < r->ndone; i++) {
        if (r->done[i].from == from && r->done[i].to == to) {
            return 1;
        }
    }
    return 0;
}

/* A join resumed at its tokens: the ranges done before the restart go last
 * (prior), each still run as a session. They were streamed from c - W + 1
 * current replicas, but writes acknowledged while this node was down may be
 * missing here; the session compares Merkle trees first, so one in sync moves a
 * root hash, and one that is not pulls only its differing leaves. Last, so that
 * the window before this node turns normal is as short as can be. A range of
 * the plan that is not in the file (the ring changed) streams in full. */
static void resume_match(struct joiner *j) {
    size_t k = 0;
    for (size_t pass = 0; pass < 2; pass++) { /* stable: new ranges, then prior */
        for (size_t i = k; i < j->ntasks; i++) {
            int was = resume_done(&j->resume, j->tasks[i].from, j->tasks[i].to);
            if (was == (int)pass) {
                struct join_task t = j->tasks[i];
                memmove(&j->tasks[k + 1], &j->tasks[k], (i - k) * sizeof t);
                j->tasks[k] = t;
                j->prior[k++] = (unsigned char)was;
            }
        }
    }
    j->resumed = 0;
    for (size_t i = 0; i < j->ntasks; i++) {
        j->resumed += j->prior[i];
    }
    if (j->resumed) {
        cluster_note(j->cl, CLUSTER_LOG_NOTICE,
                     "join resumed: %zu of %zu ranges were streamed before the restart "
                     "(re-checked last by Merkle comparison)", j->resumed, j->ntasks);
    }
}

/* dir/node-join: the tokens and the ranges done so far (prior ones count: a
 * second restart keeps them). A failure is logged by the saver: the join goes
 * on (a restart then streams more again, nothing worse). */
static void resume_save(struct joiner *j) {
    if (j->save_join == NULL) {
        return;
    }
    const struct ring_member *me = &cluster_gossip_of(j->cl)->mb[0].m;
    unsigned char *done = cl_calloc(j->ntasks ? j->ntasks : 1, 1);
    for (size_t i = 0; i < j->ntasks; i++) {
        done[i] = j->finished[i] || (j->prior && j->prior[i]);
    }
    struct msg_buf b = {0};
    join_resume_encode(me->id, me->tokens, me->ntokens, j->tasks, done, j->ntasks, &b);
    j->save_join(b.p, b.len);
    msg_buf_free(&b);
    free(done);
}

/* the plan for this state: a join's or a leave's, or this node's part of the
 * removal of rm_tag (a replace's included) */
static void stream_start(struct joiner *j, int state) {
    const struct ring *fut = cluster_future_of(j->cl);
    const struct ring *cur = cluster_ring_of(j->cl);
    uint32_t self = cluster_self_tag(j->cl);
    size_t n = (size_t)cluster_replicas(j->cl);
    free(j->tasks);
    free(j->finished);
    j->tasks = NULL;
    j->ntasks = 0;
    if (fut && (state == JS_REMOVE_STREAM || state == JS_REPLACE_STREAM)) {
        j->ntasks = join_plan_remove(cur, fut, self, j->rm_tag, n, &j->tasks);
    } else if (fut) {
        j->ntasks = join_plan(cur, fut, self, n, state == JS_LEAVE_STREAM, &j->tasks);
    }
    j->finished = cl_calloc(j->ntasks ? j->ntasks : 1, 1);
    free(j->prior);
    j->prior = cl_calloc(j->ntasks ? j->ntasks : 1, 1);
    if (state == JS_JOIN_STREAM) {
        resume_match(j);
    }
    j->next = j->done = 0;
    j->retries = 0;
    j->started_ms = j->now_ms;
    j->ended_ms = 0;
    j->state = state;
}

/* the session of tasks[cur] is over: done, or left for another turn when
 * partial (the pump comes back to it cyclically, after STREAM_RETRY_MS: a peer
 * that is away costs no spin and the plan does not grow). A
 * joiner's counts once enough current replicas answered; a leaver's, a
 * removal's and a replace's only when complete (the dead member cannot answer:
 * every survivor must, since a write acknowledged by W may be on one of them
 * only). */
static void session_end(struct joiner *j) {
    const struct repair_stats *st = &j->s.st_;
    j->bytes += st->bytes_in + st->bytes_out;
    j->records += st->records_pulled + st->records_pushed;
    if (join_session_enough(&j->s, (size_t)cluster_write_quorum(j->cl),
                            j->state != JS_JOIN_STREAM)) {
        j->finished[j->cur] = 1;
        j->done++;
        if (j->state == JS_JOIN_STREAM) {
            resume_save(j);
        }
    } else { /* too many peers failed: the range goes again after the others */
        j->retries++;
        j->pause_until = j->now_ms + STREAM_RETRY_MS;
    }
    repair_session_free(&j->s);
    j->active = 0;
}

/* the removal this node pulled for ended (or never began): back to normal; a
 * reply still in flight is ignored (its id matches no session) */
static void stream_abort(struct joiner *j) {
    if (j->active) {
        repair_session_free(&j->s);
        j->active = 0;
    }
    j->rm_tag = 0;
    j->state = JS_NORMAL;
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
            if (j->done == j->ntasks) {
                return 1;
            }
            if (j->now_ms < j->pause_until) {
                return 0;
            }
            while (j->finished[j->next % j->ntasks]) {
                j->next++;
            }
            j->cur = j->next++ % j->ntasks;
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

/* 1 when a token of the join file is held by a member of cur (the ring moved
 * on while this node was down: its old place is gone) */
static int tokens_taken(const struct ring *cur, const struct join_resume *r) {
    for (size_t m = 0; m < cur->nmembers; m++) {
        const struct ring_member *x = &cur->members[m];
        for (size_t i = 0; i < x->ntokens; i++) {
            for (size_t k = 0; k < r->ntokens; k++) {
                if (x->tokens[i] == r->tokens[k]) {
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* joining, the seeds answered and someone is in the ring: balanced tokens, or
 * those of the join file (a restart mid-join) */
static void take_tokens(struct joiner *j) {
    const struct ring *cur = cluster_ring_of(j->cl);
    const struct gossip *g = cluster_gossip_of(j->cl);
    size_t n = g->mb[0].m.ntokens;
    if (j->resume.ntokens && !tokens_taken(cur, &j->resume)) {
        cluster_set_self_tokens(j->cl, j->resume.tokens, j->resume.ntokens);
        cluster_note(j->cl, CLUSTER_LOG_NOTICE,
                     "join resumed at the %zu tokens taken before the restart",
                     j->resume.ntokens);
        j->settle_until = j->now_ms + JOIN_SETTLE_MS;
        j->state = JS_JOIN_SETTLE;
        return;
    }
    if (j->resume.ntokens) {
        cluster_note(j->cl, CLUSTER_LOG_WARNING, "join file's tokens are another member's "
                                                 "now: joining from the start");
        join_resume_free(&j->resume);
    }
    uint64_t *t = cl_malloc(n * sizeof *t);
    size_t k = ring_tokens_balance(cur, n, (size_t)cluster_replicas(j->cl), t);
    if (k > 0) {
        cluster_set_self_tokens(j->cl, t, k);
        j->settle_until = j->now_ms + JOIN_SETTLE_MS;
        j->state = JS_JOIN_SETTLE;
        resume_save(j); /* the tokens, no range done yet */
    }
    free(t);
}

/* streamed: keep the tokens, then gossip normal. 0, or -1 (the tokens could not
 * be kept: retried next tick). */
static int join_finish(struct joiner *j) {
    const struct gossip *g = cluster_gossip_of(j->cl);
    const struct ring_member *me = &g->mb[0].m;
    if (j->save_tokens && j->save_tokens(me->tokens, me->ntokens) != 0) {
        j->state = JS_JOIN_SAVE; /* retried next tick; logged by the saver */
        return -1;
    }
    if (j->save_join) {
        j->save_join(NULL, 0); /* node-tokens is the marker now: the file goes */
    }
    j->state = JS_NORMAL;
    cluster_set_self_status(j->cl, GOSSIP_NORMAL);
    return 0;
}

static void stream_step(struct joiner *j) {
    if (!pump(j)) {
        return;
    }
    j->ended_ms = j->now_ms;
    switch (j->state) {
    case JS_JOIN_STREAM:
        join_finish(j);
        break;
    case JS_LEAVE_STREAM:
        if (j->on_left) {
            j->on_left();
        }
        j->state = JS_LEFT;
        cluster_set_self_status(j->cl, GOSSIP_LEFT);
        break;
    case JS_REMOVE_STREAM:
    case JS_REPLACE_STREAM:
        cluster_note(j->cl, CLUSTER_LOG_NOTICE,
                     "removal: pulled the %zu ranges this node gains (%" PRIu64 " records)",
                     j->ntasks, j->records);
        j->state = j->state == JS_REMOVE_STREAM ? JS_REMOVE_DONE : JS_REPLACE_DONE;
        break;
    default:
        break;
    }
}

/* ---- removals: every node's part ---- */

/* the member removed now (generation GOSSIP_GEN_REMOVED, status leaving): its
 * gossip index, or -1 */
static long removing_member(const struct gossip *g) {
    for (size_t i = 1; i < g->n; i++) {
        if (gossip_removed(g, i) && g->mb[i].status == GOSSIP_LEAVING &&
            g->mb[i].refused[0] == 0) {
            return (long)i;
        }
    }
    return -1;
}

/* 1 while member tag is still being removed */
static int still_removing(const struct joiner *j, uint32_t tag) {
    const struct gossip *g = cluster_gossip_of(j->cl);
    long i = gossip_find_tag(g, tag);
    return i > 0 && gossip_removed(g, (size_t)i) && g->mb[i].status == GOSSIP_LEAVING;
}

/* JS_NORMAL: a member is being removed: this node pulls what it gains, after
 * JOIN_SETTLE_MS (every coordinator then sends it the ranges' writes) */
static void remove_watch(struct joiner *j) {
    const struct gossip *g = cluster_gossip_of(j->cl);
    long i = removing_member(g);
    if (i > 0) {
        j->rm_tag = g->mb[i].m.tag;
        j->settle_until = j->now_ms + JOIN_SETTLE_MS;
        j->state = JS_REMOVE_SETTLE;
    }
}

static void remove_tick(struct joiner *j) {
    if (!still_removing(j, j->rm_tag)) {
        stream_abort(j);
        return;
    }
    if (j->state == JS_REMOVE_SETTLE && j->now_ms >= j->settle_until) {
        stream_start(j, JS_REMOVE_STREAM);
    }
    if (j->state == JS_REMOVE_STREAM) {
        stream_step(j);
    }
}

unsigned joiner_remove_progress(const struct joiner *j, const char *id) {
    const struct gossip *g = cluster_gossip_of(j->cl);
    long i = gossip_find(g, id);
    if (i <= 0 || j->rm_tag == 0 || g->mb[i].m.tag != j->rm_tag) {
        return 0; /* not heard of the removal yet */
    }
    if (j->state == JS_REMOVE_DONE || j->state == JS_REPLACE_DONE) {
        return 100;
    }
    if (j->state == JS_REMOVE_STREAM || j->state == JS_REPLACE_STREAM) {
        unsigned p = j->ntasks ? (unsigned)(j->done * 100 / j->ntasks) : 0;
        return p < 99 ? p : 99;
    }
    return 0;
}

/* ---- removals: the coordinator ---- */

static void remover_start(struct joiner *j, const char *id, uint32_t tag) {
    struct remover *r = cl_calloc(1, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    r->tag = tag;
    r->settle_until = j->now_ms + JOIN_SETTLE_MS;
    j->rm = r;
}

/* the gainers: the members of the future ring whose plan is not empty */
static void remover_plan(struct joiner *j) {
    struct remover *r = j->rm;
    const struct ring *cur = cluster_ring_of(j->cl), *fut = cluster_future_of(j->cl);
    size_t n = (size_t)cluster_replicas(j->cl);
    r->planned = 1;
    if (fut == NULL) {
        return;
    }
    r->gainers = cl_calloc(fut->nmembers ? fut->nmembers : 1, sizeof *r->gainers);
    r->pct = cl_calloc(fut->nmembers ? fut->nmembers : 1, 1);
    for (size_t i = 0; i < fut->nmembers; i++) {
        struct join_task *t;
        uint32_t tag = fut->members[i].tag;
        if (join_plan_remove(cur, fut, tag, r->tag, n, &t) > 0) {
            r->gainers[r->ngainers++] = tag;
        }
        free(t);
    }
}

struct rm_req {
    struct joiner *j;
    uint64_t round;
    size_t k;
};

static void on_progress(void *ctx, int status, const redisReply *reply) {
    struct rm_req *q = ctx;
    struct joiner *j = q->j;
    uint64_t round = q->round;
    size_t k = q->k;
    free(q);
    if (cluster_stopping(j->cl) || j->rm == NULL || j->rm->round != round) {
        return;
    }
    if (status == LINK_OK && reply && reply->type == REDIS_REPLY_INTEGER &&
        reply->integer >= 0 && reply->integer <= 100) {
        j->rm->pct[k] = (unsigned char)reply->integer;
    }
}

/* asks every gainer not done yet how far it got (this node answers itself) */
static void remover_poll(struct joiner *j) {
    struct remover *r = j->rm;
    r->round++;
    r->next_poll = j->now_ms + 1000;
    for (size_t k = 0; k < r->ngainers; k++) {
        if (r->pct[k] == 100) {
            continue;
        }
        if (r->gainers[k] == cluster_self_tag(j->cl)) {
            r->pct[k] = (unsigned char)joiner_remove_progress(j, r->id);
            continue;
        }
        const char *argv[3] = {MSG_COMMAND, "REMOVED", r->id};
        size_t argvlen[3] = {strlen(MSG_COMMAND), 7, strlen(r->id)};
        struct rm_req *q = cl_calloc(1, sizeof *q);
        *q = (struct rm_req){j, r->round, k};
        if (cluster_send_tag(j->cl, r->gainers[k], 3, argv, argvlen, on_progress, q) !=
            LINK_OK) {
            free(q);
        }
    }
}

static int remover_all_done(const struct remover *r) {
    for (size_t k = 0; k < r->ngainers; k++) {
        if (r->pct[k] != 100) {
            return 0;
        }
    }
    return 1;
}

/* every gainer has its ranges: the member is gone (and a replacing node, this
 * one, is normal at its tokens) */
static void remover_finish(struct joiner *j) {
    struct gossip *g = cluster_gossip_of(j->cl);
    long i = gossip_find(g, j->rm->id);
    const struct ring_member *me = &g->mb[0].m;
    int replacing = j->state == JS_REPLACE_DONE;
    if (replacing && j->save_tokens && j->save_tokens(me->tokens, me->ntokens) != 0) {
        return; /* retried next tick; logged by the saver */
    }
    /* the dead member out first, then this node in at its tokens: no ring of
     * this node's holds both */
    if (i > 0) {
        gossip_remove(g, (size_t)i, GOSSIP_LEFT);
        cluster_gossip_changed(j->cl);
    }
    if (replacing) {
        j->state = JS_NORMAL;
        j->rm_tag = 0;
        cluster_set_self_status(j->cl, GOSSIP_NORMAL);
    }
    cluster_note(j->cl, CLUSTER_LOG_NOTICE, "removal of %s done: %zu members pulled its ranges",
                 j->rm->id, j->rm->ngainers);
    j->removals++;
    remover_free(&j->rm);
}

static void remover_tick(struct joiner *j) {
    struct remover *r = j->rm;
    const struct gossip *g = cluster_gossip_of(j->cl);
    long i = gossip_find(g, r->id);
    if (i <= 0 || !gossip_removed(g, (size_t)i) || g->mb[i].status != GOSSIP_LEAVING) {
        remover_free(&j->rm); /* another node finished it */
        return;
    }
    if (j->now_ms < r->settle_until) {
        return;
    }
    if (!r->planned) {
        remover_plan(j);
    }
    if (remover_all_done(r)) {
        remover_finish(j);
    } else if (j->now_ms >= r->next_poll) {
        remover_poll(j);
    }
}

/* 1 when a member other than this node and member `but` joins or leaves */
static int others_moving(const struct gossip *g, long but) {
    for (size_t i = 1; i < g->n; i++) {
        int st = g->mb[i].status;
        if ((long)i != but && gossip_in_ring(g, i) &&
            (st == GOSSIP_JOINING || st == GOSSIP_LEAVING)) {
            return 1;
        }
    }
    return 0;
}

/* why member i may not be removed now, or NULL */
static const char *remove_refusal(struct joiner *j, long i) {
    struct gossip *g = cluster_gossip_of(j->cl);
    const struct gossip_member *x = &g->mb[i];
    static char why[256];
    if (x->refused[0]) {
        snprintf(why, sizeof why, "%s is not a member (refused: %s)", x->m.id, x->refused);
        return why;
    }
    if (x->status == GOSSIP_LEFT) {
        return "that node left the ring already";
    }
    int resume = gossip_removed(g, (size_t)i) && x->status == GOSSIP_LEAVING;
    double phi = 0;
    int health = cluster_member_health(j->cl, (size_t)i, &phi);
    if (!resume && health != GOSSIP_DOWN) {
        snprintf(why, sizeof why,
                 "%s is %s (phi=%.2f): only a member that is down can be removed; stop it "
                 "first, or run KVD LEAVE on it",
                 x->m.id, gossip_health_name(health), phi);
        return why;
    }
    if (!resume && x->status == GOSSIP_LEAVING) {
        return "that node is leaving: let it finish first";
    }
    if (others_moving(g, i)) {
        return "another member is joining, leaving or being removed: one change at a time";
    }
    return NULL;
}

int joiner_remove(struct joiner *j, const char *id, const char **why) {
    if (j->state != JS_NORMAL && j->state != JS_REMOVE_SETTLE &&
        j->state != JS_REMOVE_STREAM && j->state != JS_REMOVE_DONE) {
        *why = "this node is joining, leaving or replacing: let it finish first";
        return -1;
    }
    if (j->rm) {
        *why = strcmp(j->rm->id, id) == 0 ? NULL : "this node removes another member already";
        return *why ? -1 : 0;
    }
    struct gossip *g = cluster_gossip_of(j->cl);
    long i = gossip_find(g, id);
    if (i < 0) {
        *why = "no member has that id (see KVD NODES)";
        return -1;
    }
    if (i == 0) {
        *why = "that is this node: run KVD LEAVE to take it out of the ring";
        return -1;
    }
    if ((*why = remove_refusal(j, i)) != NULL) {
        return -1;
    }
    if (g->mb[i].status == GOSSIP_JOINING) {
        /* a joiner that died: in no current replica set, it holds nothing to
         * stream; out of the future ring at once */
        gossip_remove(g, (size_t)i, GOSSIP_LEFT);
        cluster_gossip_changed(j->cl);
        return 0;
    }
    gossip_remove(g, (size_t)i, GOSSIP_LEAVING);
    cluster_gossip_changed(j->cl);
    remover_start(j, id, g->mb[i].m.tag);
    return 0;
}

/* ---- cluster-replace ---- */

static void replace_refuse(struct joiner *j, const char *fmt, const char *id) {
    snprintf(j->refused, sizeof j->refused, fmt, id);
    cluster_note(j->cl, CLUSTER_LOG_WARNING, "cluster-replace refused: %s", j->refused);
    j->state = JS_REFUSED;
    /* out of both rings: its placeholder tokens take no writes, and it does not
     * hold up the others' joins and removals as a member that joins forever */
    cluster_set_self_status(j->cl, GOSSIP_LEFT);
}

/* takes the dead member's tokens, gossips it removed, and coordinates */
static void replace_take(struct joiner *j, long i) {
    struct gossip *g = cluster_gossip_of(j->cl);
    size_t n = g->mb[i].m.ntokens;
    uint64_t *t = cl_memdup(g->mb[i].m.tokens, n * sizeof *t);
    uint32_t tag = g->mb[i].m.tag;
    cluster_set_self_tokens(j->cl, t, n);
    free(t);
    gossip_remove(g, (size_t)i, GOSSIP_LEAVING);
    cluster_gossip_changed(j->cl);
    cluster_note(j->cl, CLUSTER_LOG_NOTICE, "cluster-replace: took the %zu tokens of %s", n,
                 j->replace_id);
    j->rm_tag = tag;
    j->settle_until = j->now_ms + JOIN_SETTLE_MS;
    j->state = JS_REPLACE_SETTLE;
    remover_start(j, j->replace_id, tag);
}

/* JS_REPLACE_WAIT: the seeds answered, the member to replace is known, normal
 * and down, nobody else moves, for JOIN_VIEW_MS in a row */
static void replace_wait(struct joiner *j) {
    struct gossip *g = cluster_gossip_of(j->cl);
    long i = gossip_find(g, j->replace_id);
    if (!cluster_seeds_answered(j->cl) || cluster_ring_of(j->cl)->nvnodes == 0) {
        j->view_since = 0;
        return;
    }
    if (j->view_since == 0) {
        j->view_since = j->now_ms;
    }
    int steady = j->now_ms - j->view_since >= JOIN_VIEW_MS;
    if (i < 0) {
        if (steady) {
            replace_refuse(j, "no member has the id %s", j->replace_id);
        }
        return;
    }
    const struct gossip_member *x = &g->mb[i];
    if (i == 0 || gossip_removed(g, (size_t)i) || x->status != GOSSIP_NORMAL) {
        replace_refuse(j, "%s is this node, or not a normal member (removed, left, joining "
                          "or leaving)", j->replace_id);
        return;
    }
    if (!j->replace_seen) {
        j->replace_seen = 1;
        j->replace_hb = x->heartbeat;
    } else if (x->heartbeat >= j->replace_hb + 3) {
        replace_refuse(j, "%s is alive (its heartbeat rises): only a dead member can be "
                          "replaced", j->replace_id);
        return;
    }
    if (steady && !others_moving(g, i) &&
        cluster_member_health(j->cl, (size_t)i, NULL) == GOSSIP_DOWN) {
        replace_take(j, i);
    }
}

const char *joiner_refused(const struct joiner *j) {
    return j->state == JS_REFUSED ? j->refused : NULL;
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
    case JS_NORMAL:
        remove_watch(j);
        break;
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
            stream_start(j, j->state == JS_LEAVE_SETTLE ? JS_LEAVE_STREAM : JS_JOIN_STREAM);
        }
        break;
    case JS_JOIN_STREAM:
    case JS_LEAVE_STREAM:
    case JS_REPLACE_STREAM:
        stream_step(j);
        break;
    case JS_JOIN_SAVE:
        join_finish(j);
        break;
    case JS_REMOVE_SETTLE:
    case JS_REMOVE_STREAM:
    case JS_REMOVE_DONE:
        remove_tick(j);
        break;
    case JS_REPLACE_WAIT:
        replace_wait(j);
        break;
    case JS_REPLACE_SETTLE:
        if (j->now_ms >= j->settle_until) {
            stream_start(j, JS_REPLACE_STREAM);
        }
        break;
    case JS_REPLACE_DONE:
        if (j->rm == NULL) { /* another node ended the removal (KVD REMOVENODE) */
            join_finish(j);
        }
        break;
    default:
        break;
    }
    if (j->rm) {
        remover_tick(j);
    }
}

int joiner_leave(struct joiner *j, const char **why) {
    if (j->state != JS_NORMAL) {
        *why = j->state == JS_LEFT ? "this node left the cluster already"
               : j->state == JS_LEAVE_SETTLE || j->state == JS_LEAVE_STREAM
                   ? "this node is leaving already"
               : j->state >= JS_REMOVE_SETTLE && j->state <= JS_REMOVE_DONE
                   ? "a member is being removed: let that finish first"
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

int joiner_join(struct joiner *j, const char **why) {
    if (j->state != JS_NORMAL) {
        *why = "this node is joining, leaving or replacing already";
        return -1;
    }
    j->view_since = 0;
    j->state = JS_JOIN_WAIT;
    cluster_set_self_status(j->cl, GOSSIP_JOINING);
    return 0;
}

int joiner_left(const struct joiner *j) {
    return j->state == JS_LEFT;
}

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

/* ranges done of the plan's */
static unsigned percent(const struct joiner *j) {
    return j->ntasks ? (unsigned)(j->done * 100 / j->ntasks) : 100;
}

static int streaming(const struct joiner *j) {
    return j->state == JS_JOIN_STREAM || j->state == JS_LEAVE_STREAM ||
           j->state == JS_REMOVE_STREAM || j->state == JS_REPLACE_STREAM;
}

/* the removal's progress: the mean of the gainers' answers */
static unsigned remover_percent(const struct remover *r) {
    unsigned sum = 0;
    for (size_t k = 0; k < r->ngainers; k++) {
        sum += r->pct[k];
    }
    return r->ngainers ? sum / (unsigned)r->ngainers : 0;
}

void joiner_progress(const struct joiner *j, struct msg_buf *out) {
    if (streaming(j)) {
        text(out, " stream=%u%%", percent(j));
    }
}

void joiner_member_progress(const struct joiner *j, uint32_t tag, struct msg_buf *out) {
    if (j->rm && j->rm->tag == tag) {
        text(out, " removing=%u%%", remover_percent(j->rm));
    }
}

void joiner_info(const struct joiner *j, struct msg_buf *out) {
    uint64_t end = j->ended_ms ? j->ended_ms : j->now_ms;
    uint64_t ms = j->started_ms && end > j->started_ms ? end - j->started_ms : 0;
    text(out, "join_state:%s\r\n", js_names[j->state]);
    text(out, "stream_ranges:%zu\r\n", j->ntasks);
    text(out, "stream_ranges_done:%zu\r\n", j->done);
    text(out, "stream_ranges_resumed:%zu\r\n", j->resumed);
    text(out, "stream_percent:%u\r\n", percent(j));
    text(out, "stream_retries:%" PRIu64 "\r\n", j->retries);
    text(out, "stream_bytes:%" PRIu64 "\r\n", j->bytes);
    text(out, "stream_records:%" PRIu64 "\r\n", j->records);
    text(out, "stream_ms:%" PRIu64 "\r\n", ms);
    text(out, "stream_throughput_bytes_per_sec:%" PRIu64 "\r\n", j->rate);
    text(out, "remove_node:%s\r\n", j->rm ? j->rm->id : "");
    text(out, "remove_gainers:%zu\r\n", j->rm ? j->rm->ngainers : 0);
    text(out, "remove_percent:%u\r\n", j->rm ? remover_percent(j->rm) : 0);
    text(out, "removals_done:%" PRIu64 "\r\n", j->removals);
    text(out, "replace_refused:%s\r\n", j->state == JS_REFUSED ? j->refused : "");
}
