/* server/cmd/coordinate.c: the coordinator path of cluster mode (issue 10;
 * DESIGN.md "Cluster", the four steps): every client command that is not
 * node-local runs as prefetch, run, ship, hold. The network, quorums, read repair
 * and hints are cluster/'s (cluster/cluster.h, the contract called here); the
 * scratch keyspace is server/coord/scratch.c's; waiting uses the facility of
 * pipeline.c (client_suspend / client_resume) and the held replies of client.c.
 * With cluster-enabled no nothing here runs: process_command tests one pointer
 * (server.cluster, started by server/net/server.c).
 *
 * HOW IT WORKS
 *   1. prefetch: process_command calls coordinate_command after every check. The
 *      command's keys (command_keys; for EXEC those of every queued command, in
 *      the database each runs in; COPY ... DB n's destination in n) are read with
 *      cluster_read at the connection's R, deduplicated. PIPELINE BATCH: for any
 *      command but EXEC, the complete commands already in the query buffer behind
 *      it (client_pending_input; after a multibulk command) are parsed without being
 *      consumed and, up to the
 *      first that cannot join (node-local, keyless, EXEC/MULTI, a bad arity; at
 *      most AHEAD_MAX_CMDS commands and AHEAD_MAX_KEYS keys), their keys are read
 *      in the same round. BLIND WRITES (SET without NX/XX/GET/KEEPTTL, SETEX,
 *      PSETEX, MSET: neither reply nor stored value depends on the old value)
 *      read nothing, and a key a blind write of the batch writes before anything
 *      reads it is not read either. The client is suspended (c->cop holds the
 *      op) and each answer's record is copied into the op; when the last
 *      answers, client_resume puts the client on the ready list.
 *   2. run: the ready client passes process_command again (the checks see the
 *      server as it is now); coordinate_command runs it: the scratch keyspace is
 *      entered, the command's own keys loaded from the op (persist_decode), the
 *      unchanged handler run with call(), the changes collected
 *      (coord_scratch_leave). A command one of whose keys failed its read
 *      answers "-NOQUORUM <a> of <b> required replicas answered" (a blind write
 *      needs no read and runs). The next commands of the pipeline are parsed as
 *      usual and run the same way, one after the other, as long as the batch
 *      knows their keys (batch_covers): each sees what the earlier ones wrote
 *      (the op's record of a key is replaced by what a command wrote), so
 *      read-your-writes inside a batch is exact.
 *   3. ship: each command's changes get one version (hlc_now, above every
 *      version read: read_done observes them; with this node's tag) and are
 *      cluster_write'n at the connection's W at once, a value with its
 *      expire-at or a tombstone. Each command has its own version, so the
 *      versions order the batch's writes as the commands ran; a blind write's
 *      version is the coordinator's clock (last-write-wins, as in Cassandra: a
 *      replica holding a higher version from a clock ahead keeps it).
 *   4. hold: a command's first change holds its reply (CLIENT_HOLD_CLUSTER), a
 *      span of its own; later replies queue behind it. The batch ends after the
 *      last command the look-ahead saw, at a command it does not know (which
 *      waits and then runs afresh: its reads must see the batch's writes), or
 *      when the parse loop stops (coordinate_input_end); the client then waits
 *      once for all the batch's writes. When every write answered,
 *      coordinate_resume (from run_waiting) releases the replies; the replies of
 *      the commands a write of which missed W are rewritten (client_fail_held_at)
 *      into "-NOQUORUM wrote to <a> of <b> required replicas; the write is
 *      indeterminate", only theirs: a later command that read an indeterminate
 *      value reports what it wrote itself, and that reached W. A batch that
 *      changed nothing is not held. EXEC is one batch of its own: its queued
 *      commands run in one call(), one version, a failed read refuses it whole
 *      and a failed write rewrites its one reply.
 *   Keyless commands (CMD_KEYSPACE_FANOUT: SCAN KEYS DBSIZE RANDOMKEY FLUSHDB
 *   FLUSHALL) go to fanout.c, which walks the ring range by range (c->cop->fan;
 *   the client waits until fanout_done); inside MULTI coordinate_gate refuses them
 *   ("-ERR <NAME> inside MULTI is not supported in a kvd cluster"), except when
 *   this node is the ring's only member: it then holds every key and answers them
 *   from its own data, as one node does.
 *   WATCH (outside MULTI) reads its keys at R like a prefetch, then runs the
 *   node's own WATCH and notes each key's version (multi_watch_note); EXEC reads
 *   the watched keys again with the transaction's and sets CLIENT_DIRTY_CAS when
 *   any differs (multi_watch_differs), or when another command through this node
 *   is shipping a write to one of them (the inflight marks below: every write a
 *   command or a batch's command ships while watch_any() is marked until its op
 *   ends), so the handler answers nil. WATCH and the keyless commands never join
 *   a batch: they end it (the look-ahead stops at them; an open batch's writes
 *   are waited for before they run afresh). While !cluster_ready:
 *   "-CLUSTERDOWN <why>". A write command while this node's clock is too far
 *   from its peers' (cluster_writes_allowed): "-CLOCKSKEW <why>"; reads run.
 *   A client freed while waiting: every outstanding request is cluster_cancel'led
 *   and the op freed (coordinate_forget, from client_wait_forget).
 *
 * Threading: loop thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cluster/cluster.h"
#include "server/cmd/cmd.h"

#define AHEAD_MAX_CMDS 64   /* commands one batch's look-ahead takes at most */
#define AHEAD_MAX_KEYS 512  /* keys it prefetches at most */

enum { OP_READING, OP_READ_DONE, OP_BATCH, OP_WRITING, OP_WRITE_DONE };

/* what the op knows of a key */
enum {
    KEY_READING = 0, /* a quorum read is outstanding */
    KEY_KNOWN,       /* read, or written by a command of the batch: rec is its state */
    KEY_UNKNOWN,     /* never read (a blind write's key): only a blind write may use it */
    KEY_FAILED,      /* the read missed its quorum */
};

struct op_key {
    struct coord_op *op;
    int db;
    char *key;            /* owned */
    size_t klen;
    uint64_t id;          /* outstanding request, 0 when answered */
    int state;            /* KEY_* */
    int found;            /* a record came back (or was written): rec */
    struct msg_record rec;/* rec.val owned (copied) */
};

/* The writes of one command: a slot each (the write's ctx), never moved. */
struct op_cmdw;
struct op_wslot {
    struct op_cmdw *cw;
    uint64_t id;          /* outstanding request, 0 when answered */
};
struct op_cmdw {
    struct coord_op *op;
    size_t out0;          /* where its reply starts in the pending output (its span) */
    int failed;           /* one of its writes missed W */
    size_t n;
    struct op_wslot w[];
};

struct coord_op {
    struct client *c;
    int phase;
    int batch;            /* 1: a pipeline batch (every command but EXEC) */
    int ahead;            /* batch: looked-ahead commands not run yet */
    int rerun;            /* batch: the waiting command runs afresh once it is done */
    int tail;             /* batch: the client waits with no command (end of input) */
    struct op_key *keys;
    size_t nkeys, capkeys, pending;
    int failed;           /* a read failed (EXEC refuses whole) */
    char err[160];
    struct op_cmdw **cw;  /* the commands that wrote, in order */
    size_t ncw, capcw, wpending, wfailed;
    char werr[160];
    size_t *cur;          /* the running command's keys (indexes into keys) */
    size_t ncur, capcur;
    int cur_blind;        /* the running command is a blind write */
    struct fanout *fan;   /* a keyless command across the cluster (fanout.c) */
    struct inflight **inf;/* the keys it is shipping, marked for WATCH (or NULL) */
    size_t ninf, capinf;
};

/* ---- keys being shipped, for WATCH ----
 * While some client WATCHes (watch_any), each key a command ships is marked
 * until the command's op ends (its writes answered, or its client gone; a
 * batch's marks last until the whole batch's writes answered). An EXEC whose
 * watched key is marked aborts: another command's write to it is on its way, so
 * the transaction's reads may already be stale (the check-then-ship race of two
 * EXECs through this node, which the versions alone cannot see). */
struct inflight {
    int db;
    char *key;
    size_t klen;
    int refs;
};

static struct inflight **inflight;
static size_t ninflight, capinflight;

static struct inflight *inflight_find(int db, const char *key, size_t klen) {
    for (size_t i = 0; i < ninflight; i++) {
        struct inflight *f = inflight[i];
        if (f->db == db && f->klen == klen && (klen == 0 || memcmp(f->key, key, klen) == 0)) {
            return f;
        }
    }
    return NULL;
}

static struct inflight *inflight_mark(int db, const char *key, size_t klen) {
    struct inflight *f = inflight_find(db, key, klen);
    if (f == NULL) {
        if (ninflight == capinflight) {
            capinflight = capinflight ? capinflight * 2 : 16;
            inflight = kv_realloc(inflight, capinflight * sizeof(*inflight));
        }
        f = kv_calloc(1, sizeof(*f));
        f->db = db;
        f->key = kv_malloc(klen ? klen : 1);
        if (klen) {
            memcpy(f->key, key, klen);
        }
        f->klen = klen;
        inflight[ninflight++] = f;
    }
    f->refs++;
    return f;
}

static void inflight_release(struct inflight *f) {
    if (--f->refs > 0) {
        return;
    }
    for (size_t i = 0; i < ninflight; i++) {
        if (inflight[i] == f) {
            inflight[i] = inflight[--ninflight];
            break;
        }
    }
    kv_free(f->key);
    kv_free(f);
}

/* op ships (db, key) while some client WATCHes: marked until op ends */
static void op_mark_inflight(struct coord_op *op, int db, const char *key, size_t klen) {
    if (op->ninf == op->capinf) {
        op->capinf = op->capinf ? op->capinf * 2 : 8;
        op->inf = kv_realloc(op->inf, op->capinf * sizeof(*op->inf));
    }
    op->inf[op->ninf++] = inflight_mark(db, key, klen);
}

int coordinate_replicas(void) {
    return server.cluster ? cluster_replicas(server.cluster) : 0;
}

void coordinate_levels(const struct client *c, int *r, int *w) {
    *r = c->cons_r > 0 ? c->cons_r : server.read_quorum;
    *w = c->cons_w > 0 ? c->cons_w : server.write_quorum;
    *r = *r > 0 ? *r : 1;
    *w = *w > 0 ? *w : 1;
    int n = coordinate_replicas();
    if (n > 0) {
        *r = *r > n ? n : *r;
        *w = *w > n ? n : *w;
    }
}

static void op_free(struct coord_op *op) {
    if (op == NULL) {
        return;
    }
    for (size_t i = 0; i < op->nkeys; i++) {
        if (op->keys[i].id && server.cluster) {
            cluster_cancel(server.cluster, op->keys[i].id);
        }
        kv_free(op->keys[i].key);
        kv_free((char *)op->keys[i].rec.val);
    }
    for (size_t i = 0; i < op->ncw; i++) {
        struct op_cmdw *cw = op->cw[i];
        for (size_t k = 0; k < cw->n; k++) {
            if (cw->w[k].id && server.cluster) {
                cluster_cancel(server.cluster, cw->w[k].id);
            }
        }
        kv_free(cw);
    }
    kv_free(op->keys);
    kv_free(op->cw);
    kv_free(op->cur);
    fanout_free(op->fan);
    for (size_t i = 0; i < op->ninf; i++) {
        inflight_release(op->inf[i]);
    }
    kv_free(op->inf);
    kv_free(op);
}

void coordinate_forget(struct client *c) {
    op_free(c->cop);
    c->cop = NULL;
}

/* ---- step 0: what is refused in cluster mode ---- */

/* 1 when this node is the ring's only member: it holds every key, so its own data
 * is the whole key space (KVD NODES has one line). */
static int sole_member(void) {
    struct msg_buf b = {0};
    cluster_nodes_text(server.cluster, &b);
    size_t lines = 0;
    for (size_t i = 0; i < b.len; i++) {
        lines += b.p[i] == '\n';
    }
    msg_buf_free(&b);
    return lines == 1;
}

int coordinate_gate(struct client *c, const struct kv_command *run) {
    const char *what = NULL;
    if (run->flags & CMD_KEYSPACE_FANOUT) {
        if (!(c->flags & CLIENT_MULTI) || sole_member()) {
            return 0; /* fanout.c (coordinate_command), or the sole member's own data */
        }
        what = run->parent ? run->parent->name : run->name;
    }
    if (what == NULL) {
        return 0;
    }
    char up[64];
    size_t k;
    for (k = 0; what[k] && k < sizeof(up) - 1; k++) {
        up[k] = (char)(what[k] >= 'a' && what[k] <= 'z' ? what[k] - 32 : what[k]);
    }
    up[k] = '\0';
    if (c->flags & CLIENT_MULTI) {
        c->flags |= CLIENT_DIRTY_EXEC;
    }
    reply_errorf(c, "ERR %s inside MULTI is not supported in a kvd cluster", up);
    return 1;
}

/* ---- the keys of one invocation ---- */

/* 1 for a blind write: a command whose reply and stored value do not depend on
 * what its keys held (SET without NX/XX/GET/KEEPTTL, SETEX, PSETEX, MSET). Its
 * keys need no prefetch; its version is the coordinator's clock (see the README,
 * "blind writes"). */
static int blind_write(const struct kv_command *cmd, int argc, const struct kv_slice *argv) {
    if (cmd->proc == cmd_setex || cmd->proc == cmd_psetex || cmd->proc == cmd_mset) {
        return 1;
    }
    if (cmd->proc != cmd_set) {
        return 0;
    }
    for (int i = 3; i < argc; i += 2) { /* an option and its argument */
        const struct kv_slice *a = &argv[i];
        int ttl = (a->len == 2 && (strncasecmp(a->p, "ex", 2) == 0 ||
                                   strncasecmp(a->p, "px", 2) == 0)) ||
                  (a->len == 4 && (strncasecmp(a->p, "exat", 4) == 0 ||
                                   strncasecmp(a->p, "pxat", 4) == 0));
        if (!ttl) {
            return 0; /* NX XX GET KEEPTTL, or an error the handler reports */
        }
    }
    return 1;
}

/* The index of (db, key) in op->keys, or -1. */
static long find_key(const struct coord_op *op, int db, const char *k, size_t klen) {
    for (size_t i = 0; i < op->nkeys; i++) {
        const struct op_key *x = &op->keys[i];
        if (x->db == db && x->klen == klen && (klen == 0 || memcmp(x->key, k, klen) == 0)) {
            return (long)i;
        }
    }
    return -1;
}

/* Adds (db, key) in state; no read is outstanding while keys are added (the
 * array may move). Returns its index. */
static size_t add_key(struct coord_op *op, int db, const char *k, size_t klen, int state) {
    if (op->nkeys == op->capkeys) {
        op->capkeys = op->capkeys ? op->capkeys * 2 : 8;
        op->keys = kv_realloc(op->keys, op->capkeys * sizeof(*op->keys));
    }
    struct op_key *x = &op->keys[op->nkeys];
    memset(x, 0, sizeof(*x));
    x->op = op;
    x->db = db;
    x->key = kv_malloc(klen + 1);
    if (klen) {
        memcpy(x->key, k, klen);
    }
    x->key[klen] = '\0';
    x->klen = klen;
    x->state = state;
    return op->nkeys++;
}

/* A database number argument (SELECT n, COPY ... DB n): 0 with *id, else -1. */
static int db_arg(const struct kv_slice *a, int *id) {
    char buf[32];
    if (a->len == 0 || a->len >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, a->p, a->len);
    buf[a->len] = '\0';
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (*end != '\0' || v < 0 || v >= server.databases) {
        return -1;
    }
    *id = (int)v;
    return 0;
}

typedef int key_fn(struct coord_op *op, int db, const struct kv_slice *k, void *arg);

/* Calls fn for each key of one invocation in database db (COPY ... DB n: the
 * destination in n; WATCH: its arguments); stops at fn's first nonzero answer
 * and returns it. */
static int each_key(struct coord_op *op, const struct kv_command *cmd, int argc,
                    const struct kv_slice *argv, int db, key_fn *fn, void *arg) {
    if (cmd->proc == cmd_watch) {
        int rc = 0; /* WATCH key [key ...]: read at R, versions noted */
        for (int i = 1; i < argc && rc == 0; i++) {
            rc = fn(op, db, &argv[i], arg);
        }
        return rc;
    }
    if (cmd->flags & CMD_NODE_LOCAL) {
        return 0;
    }
    int small[16];
    int *pos = argc <= 16 ? small : kv_malloc((size_t)argc * sizeof(int));
    int n = command_keys(cmd, argc, argv, pos, argc);
    n = n > argc ? argc : n;
    int dst_db = db;
    if (cmd->proc == cmd_copy) {
        for (int i = 3; i + 1 < argc; i++) {
            if (argv[i].len == 2 && strncasecmp(argv[i].p, "db", 2) == 0) {
                db_arg(&argv[i + 1], &dst_db);
            }
        }
    }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        rc = fn(op, (cmd->proc == cmd_copy && i == 1) ? dst_db : db, &argv[pos[i]], arg);
    }
    if (pos != small) {
        kv_free(pos);
    }
    return rc;
}

/* each_key's fn for a prefetch: *arg is 1 when the command is a blind write. A
 * key is read once; a key a blind write of the batch writes first is not read at
 * all (the commands after it see the written value). */
static int want_key(struct coord_op *op, int db, const struct kv_slice *k, void *arg) {
    int blind = *(int *)arg;
    if (find_key(op, db, k->p, k->len) < 0) {
        add_key(op, db, k->p, k->len, blind ? KEY_UNKNOWN : KEY_READING);
    }
    return 0;
}

/* The keys of one invocation, to prefetch. Returns the database the next queued
 * command runs in (SELECT). */
static int gather(struct coord_op *op, const struct kv_command *cmd, int argc,
                  const struct kv_slice *argv, int db) {
    if (cmd->proc == cmd_select) {
        int id;
        return argc == 2 && db_arg(&argv[1], &id) == 0 ? id : db;
    }
    int blind = op->batch && blind_write(cmd, argc, argv);
    each_key(op, cmd, argc, argv, db, want_key, &blind);
    return db;
}

/* EXEC: the keys c WATCHes are read again with the transaction's */
static void gather_watched(void *arg, int db, const char *key, size_t klen) {
    struct coord_op *op = arg;
    if (find_key(op, db, key, klen) < 0) {
        add_key(op, db, key, klen, KEY_READING);
    }
}

/* multi_watch_differs' reader: what the prefetch read for (db, key) */
static int watched_now(void *arg, int db, const char *key, size_t klen, int *found,
                       struct kv_version *v, int *deleted) {
    struct coord_op *op = arg;
    if (inflight_find(db, key, klen)) {
        return -1; /* another command's write to it is on its way: changed */
    }
    long i = find_key(op, db, key, klen);
    if (i < 0 || op->keys[i].state != KEY_KNOWN) {
        return -1;
    }
    *found = op->keys[i].found;
    *v = op->keys[i].rec.v;
    *deleted = op->keys[i].rec.deleted;
    return 0;
}

/* ---- step 1: prefetch ---- */

/* The row that runs a looked-ahead command when it may join the batch (keyed,
 * not node-local, arity right), else NULL. */
static const struct kv_command *batchable(int argc, const struct kv_slice *argv) {
    if (argc <= 0) {
        return NULL;
    }
    const struct kv_command *q = command_resolve(argc, argv);
    if (q == NULL || (q->arity > 0 && q->arity != argc) || argc < -q->arity) {
        return NULL;
    }
    if (q->parent && ((q->parent->arity > 0 && q->parent->arity != argc) ||
                      argc < -q->parent->arity)) {
        return NULL;
    }
    if (q->flags & (CMD_NODE_LOCAL | CMD_KEYSPACE_FANOUT | CMD_RUNS_QUEUED | CMD_MULTI_CTL |
                    CMD_PROTECTED)) {
        return NULL;
    }
    return q;
}

/* Pipelining: the complete commands already in c's query buffer after the one
 * running are parsed (not consumed) and, up to the first that cannot join a
 * batch, their keys added to the prefetch. Returns how many joined. */
static int look_ahead(struct client *c, struct coord_op *op) {
    const char *p;
    size_t len;
    client_pending_input(c, &p, &len);
    if (len == 0) {
        return 0;
    }
    struct resp_parser ps;
    resp_parser_init(&ps, &c->parser.lim);
    int joined = 0;
    size_t off = 0;
    while (off < len && joined < AHEAD_MAX_CMDS && op->nkeys < AHEAD_MAX_KEYS) {
        size_t consumed = 0;
        if (resp_parse(&ps, p + off, len - off, &consumed) != RESP_OK || consumed == 0) {
            break;
        }
        off += consumed;
        if (ps.argc == 0) {
            continue; /* an empty command: skipped, as the parse loop does */
        }
        const struct kv_command *q = batchable(ps.argc, ps.argv);
        if (q == NULL) {
            break;
        }
        gather(op, q, ps.argc, ps.argv, c->db_id);
        joined++;
    }
    resp_parser_deinit(&ps);
    return joined;
}

static void read_done(void *ctx, int status, const struct msg_record *rec, const char *err) {
    struct op_key *x = ctx;
    struct coord_op *op = x->op;
    x->id = 0;
    if (status != CLUSTER_OK) {
        x->state = KEY_FAILED;
        if (!op->failed) {
            op->failed = 1;
            snprintf(op->err, sizeof(op->err), "%s", err ? err : "read failed");
        }
    } else {
        x->state = KEY_KNOWN;
        if (rec) {
            hlc_observe(rec->v.hlc);
            x->found = 1;
            x->rec = *rec;
            x->rec.val = NULL;
            if (rec->vlen > 0 && rec->val) {
                char *v = kv_malloc(rec->vlen);
                memcpy(v, rec->val, rec->vlen);
                x->rec.val = v;
            } else {
                x->rec.vlen = 0;
            }
        }
    }
    if (--op->pending == 0) {
        op->phase = OP_READ_DONE;
        client_resume(op->c);
    }
}

/* Issues the reads of every key in KEY_READING; returns how many. */
static size_t start_reads(struct client *c, struct coord_op *op) {
    int r, w;
    coordinate_levels(c, &r, &w);
    size_t n = 0;
    for (size_t i = 0; i < op->nkeys; i++) {
        n += op->keys[i].state == KEY_READING;
    }
    op->pending = n;
    for (size_t i = 0; i < op->nkeys && n > 0; i++) {
        struct op_key *x = &op->keys[i];
        if (x->state == KEY_READING) {
            x->id = cluster_read(server.cluster, (unsigned)x->db, x->key, x->klen, r,
                                 read_done, x);
        }
    }
    return n;
}

/* "got 1 of 2 read answers" -> "1 of 2 required replicas answered". */
static void quorum_error(char *out, size_t cap, const char *err, int write) {
    int a, b;
    if (err && sscanf(err, "got %d of %d", &a, &b) == 2) {
        if (write) {
            snprintf(out, cap, "NOQUORUM wrote to %d of %d required replicas; the write is "
                     "indeterminate", a, b);
        } else {
            snprintf(out, cap, "NOQUORUM %d of %d required replicas answered", a, b);
        }
    } else if (write) {
        snprintf(out, cap, "NOQUORUM %s; the write is indeterminate",
                 err ? err : "write failed");
    } else {
        snprintf(out, cap, "NOQUORUM %s", err ? err : "read failed");
    }
}

/* ---- steps 2-4: run, ship, hold ---- */

static void write_done(void *ctx, int status, const char *err) {
    struct op_wslot *s = ctx;
    struct op_cmdw *cw = s->cw;
    struct coord_op *op = cw->op;
    s->id = 0;
    if (status != CLUSTER_OK) {
        cw->failed = 1;
        if (op->wfailed++ == 0) {
            snprintf(op->werr, sizeof(op->werr), "%s", err ? err : "write failed");
        }
    }
    if (--op->wpending == 0 && op->phase == OP_WRITING) {
        op->phase = OP_WRITE_DONE;
        client_resume(op->c);
    }
}

/* Loads a big hash's field records (checked by the cluster when they arrived). */
static int load_fields(const struct op_key *x, long long exp) {
    struct kv_version floor;
    uint32_t n;
    if (fields_check(x->rec.val, x->rec.vlen, x->rec.v, &floor, &n, NULL, 0) != MSG_OK) {
        return -1;
    }
    struct store_field *f = kv_malloc((n ? n : 1) * sizeof(*f));
    struct fields_iter it;
    fields_iter_init(&it, x->rec.val, x->rec.vlen);
    struct fields_entry e;
    size_t i = 0;
    while (i < n && fields_next(&it, &e)) {
        f[i++] = (struct store_field){e.v, e.deleted, e.f, e.flen, e.val, e.vlen};
    }
    int rc = coord_scratch_load_hash(x->db, x->key, x->klen, x->rec.v, exp, f, i);
    kv_free(f);
    return rc;
}

/* Loads key x into the scratch keyspace (a live record only). */
static void load_key(const struct op_key *x) {
    if (x->state != KEY_KNOWN || !x->found || x->rec.deleted) {
        return;
    }
    long long exp = x->rec.expire_at > (uint64_t)INT64_MAX ? 0 : (long long)x->rec.expire_at;
    if (x->rec.fields) {
        if (load_fields(x, exp) < 0) {
            server_log(LL_WARNING, "cluster: a replica's field records for a key are "
                       "malformed; the key is read as absent");
        }
        return;
    }
    if (coord_scratch_load(x->db, x->key, x->klen, x->rec.v, exp, x->rec.val, x->rec.vlen) < 0) {
        server_log(LL_WARNING, "cluster: a replica's record for a key is malformed; "
                   "the key is read as absent");
    }
}

static int coord_field_cmp(const void *a, const void *b) {
    const struct coord_field *x = a, *y = b;
    struct fields_entry ex = {.f = x->f, .flen = x->flen}, ey = {.f = y->f, .flen = y->flen};
    return fields_entry_cmp(&ex, &ey);
}

/* A big hash's change as field records at version v into buf: the named fields
 * above the floor the coordinator read (a delta: the hash was read as field
 * records), or every field above a floor at v (ch->whole: the command did not
 * name them, or the hash was not read as field records; the write supersedes
 * whatever older fields a replica holds, as a whole-key write does). */
static void fields_record(struct coord_change *ch, const struct op_key *x, struct kv_version v,
                          struct msg_buf *buf, struct msg_record *rec) {
    struct kv_version floor = v;
    if (!ch->whole && x && x->found && x->rec.fields) {
        uint32_t n;
        fields_check(x->rec.val, x->rec.vlen, x->rec.v, &floor, &n, NULL, 0);
    }
    qsort(ch->fv, ch->nfv, sizeof(*ch->fv), coord_field_cmp);
    buf->len = 0;
    fields_put_head(buf, floor, 0);
    uint32_t n = 0;
    for (size_t i = 0; i < ch->nfv; i++) {
        const struct coord_field *f = &ch->fv[i];
        if (i > 0 && coord_field_cmp(&ch->fv[i - 1], f) == 0) {
            continue; /* named twice: the same final state */
        }
        struct fields_entry e = {v, f->deleted, f->f, f->flen, f->val, f->vlen};
        fields_put(buf, &e);
        n++;
    }
    fields_put_count(buf, 0, n);
    *rec = (struct msg_record){.v = v, .expire_at = (uint64_t)ch->expire_at, .val = buf->p,
                               .vlen = buf->len, .fields = 1};
}

/* What the batch's later commands read for key x after this command's record rec:
 * rec itself, or for a delta the merge of what was read and rec. val gets the
 * bytes (owned by x from then on). */
static void key_after(struct op_key *x, const struct msg_record *rec) {
    struct msg_buf m = {0};
    struct msg_record out = *rec;
    if (rec->fields && x->found && x->rec.fields) {
        fields_merge(&x->rec, rec, &m, &out);
    } else {
        msg_buf_put(&m, rec->val, rec->vlen);
        out.val = m.p;
    }
    kv_free((char *)x->rec.val);
    x->state = KEY_KNOWN;
    x->found = 1;
    x->rec = out;
    if (out.vlen) {
        char *p = kv_malloc(out.vlen);
        memcpy(p, m.p, out.vlen);
        x->rec.val = p;
    } else {
        x->rec.val = NULL;
    }
    msg_buf_free(&m);
}

/* Ships one command's changes with one version (above everything this node has
 * seen: hlc_now) and makes them what the batch's later commands see. */
static void ship(struct client *c, struct coord_op *op, struct coord_change *ch, size_t n,
                 size_t out0) {
    int r, w;
    coordinate_levels(c, &r, &w);
    struct kv_version v = {hlc_now(), server.node_tag};
    struct op_cmdw *cw = kv_calloc(1, sizeof(*cw) + n * sizeof(cw->w[0]));
    cw->op = op;
    cw->out0 = out0;
    cw->n = n;
    if (op->ncw == op->capcw) {
        op->capcw = op->capcw ? op->capcw * 2 : 4;
        op->cw = kv_realloc(op->cw, op->capcw * sizeof(*op->cw));
    }
    op->cw[op->ncw++] = cw;
    op->wpending += n;
    struct msg_buf fbuf = {0};
    for (size_t i = 0; i < n; i++) {
        struct msg_record rec = {.v = v,
                                 .deleted = ch[i].deleted,
                                 .expire_at = ch[i].deleted ? 0
                                                            : (uint64_t)ch[i].expire_at,
                                 .val = ch[i].deleted ? NULL : ch[i].val,
                                 .vlen = ch[i].deleted ? 0 : ch[i].vlen};
        long k = find_key(op, ch[i].db, ch[i].key, ch[i].klen);
        if (ch[i].big) {
            fields_record(&ch[i], k >= 0 ? &op->keys[k] : NULL, v, &fbuf, &rec);
        }
        cw->w[i].cw = cw;
        if (watch_any()) {
            op_mark_inflight(op, ch[i].db, ch[i].key, ch[i].klen);
        }
        cw->w[i].id = cluster_write(server.cluster, (unsigned)ch[i].db, ch[i].key,
                                    ch[i].klen, &rec, w, write_done, &cw->w[i]);
        /* the batch's later commands read what this one wrote */
        if (k < 0) {
            k = (long)add_key(op, ch[i].db, ch[i].key, ch[i].klen, KEY_KNOWN);
        }
        key_after(&op->keys[k], &rec);
    }
    msg_buf_free(&fbuf);
}

/* Runs run on the scratch keyspace with the keys listed in op->cur (or, for EXEC,
 * every key of the op) and ships what it changed. */
static void run_one(struct client *c, const struct kv_command *run, struct coord_op *op,
                    int all_keys) {
    coord_scratch_enter(c);
    size_t nk = all_keys ? op->nkeys : op->ncur;
    for (size_t i = 0; i < nk; i++) {
        load_key(&op->keys[all_keys ? i : op->cur[i]]);
    }
    size_t out0 = resp_out_pending(&c->out);
    call(c, run);
    struct coord_change *ch;
    size_t n = coord_scratch_leave(c, &ch);
    if (n > 0) {
        ship(c, op, ch, n, out0);
    }
    coord_changes_free(ch, n);
}

/* The batch's writes have all answered: the replies of the commands whose writes
 * missed W become NOQUORUM (only theirs: each command's writes are its own, with
 * their own version; a later command that read an indeterminate write reports
 * what it itself wrote, which did reach W), the rest are released. */
static void settle(struct client *c, struct coord_op *op) {
    if (!(c->hold & CLIENT_HOLD_CLUSTER)) {
        return;
    }
    if (op->wfailed == 0) {
        client_release(c, CLIENT_HOLD_CLUSTER);
        return;
    }
    char msg[256];
    quorum_error(msg, sizeof(msg), op->werr, 1);
    size_t nf = 0;
    size_t *starts = kv_malloc(op->ncw * sizeof(*starts) + 1);
    for (size_t i = 0; i < op->ncw; i++) {
        if (op->cw[i]->failed) {
            starts[nf++] = op->cw[i]->out0;
        }
    }
    client_fail_held_at(c, CLIENT_HOLD_CLUSTER, msg, starts, nf);
    kv_free(starts);
}

/* Ends c's batch. Nothing outstanding: settled now, returns 0. Else c waits for
 * the writes (suspended with the running command, if any) and 1 is returned;
 * coordinate_resume settles it. */
static int batch_end(struct client *c, struct coord_op *op, int rerun, int tail) {
    if (op->wpending == 0) {
        settle(c, op);
        coordinate_forget(c);
        return 0;
    }
    op->phase = OP_WRITING;
    op->rerun = rerun;
    op->tail = tail;
    client_suspend(c);
    return 1;
}

/* each_key's fn for the coverage test: records the key's index in op->cur; 1 when
 * the batch cannot run the command from what it knows. */
static int cover_key(struct coord_op *op, int db, const struct kv_slice *k, void *arg) {
    int blind = *(int *)arg;
    long i = find_key(op, db, k->p, k->len);
    if (i < 0) {
        if (!blind) {
            return 1; /* never read: a fresh prefetch, after the batch's writes */
        }
        i = (long)add_key(op, db, k->p, k->len, KEY_UNKNOWN);
    } else if (op->keys[i].state == KEY_UNKNOWN && !blind) {
        return 1; /* a blind write that did not write it (an error) came first */
    }
    if (op->ncur == op->capcur) {
        op->capcur = op->capcur ? op->capcur * 2 : 8;
        op->cur = kv_realloc(op->cur, op->capcur * sizeof(*op->cur));
    }
    op->cur[op->ncur++] = (size_t)i;
    return 0;
}

/* 1 when run can run in c's batch from what the batch knows: op->cur then lists
 * its keys. */
static int batch_covers(struct client *c, const struct kv_command *run, struct coord_op *op) {
    op->ncur = 0;
    if (run->flags & (CMD_NODE_LOCAL | CMD_KEYSPACE_FANOUT | CMD_RUNS_QUEUED)) {
        return 0;
    }
    op->cur_blind = blind_write(run, c->argc, c->argv);
    return each_key(op, run, c->argc, c->argv, c->db_id, cover_key, &op->cur_blind) == 0;
}

/* 1 when a key the running command reads missed its read quorum (a blind write
 * reads none). */
static int cur_read_failed(const struct coord_op *op) {
    for (size_t i = 0; i < op->ncur && !op->cur_blind; i++) {
        if (op->keys[op->cur[i]].state == KEY_FAILED) {
            return 1;
        }
    }
    return 0;
}

/* Runs one command of c's batch: NOQUORUM when a key it reads was not read, else
 * on the scratch keyspace. The batch ends (c waits for its writes) after the
 * last command the look-ahead saw. Returns 1 (the command is taken). */
static int batch_run(struct client *c, const struct kv_command *run, struct coord_op *op) {
    if (cur_read_failed(op)) {
        char msg[256];
        quorum_error(msg, sizeof(msg), op->err, 0);
        reply_error(c, msg);
    } else {
        run_one(c, run, op, 0);
    }
    op->phase = OP_BATCH;
    if (op->ahead-- > 0) {
        return 1; /* the next command of the pipeline continues the batch */
    }
    batch_end(c, op, 0, 0);
    return 1;
}

int coordinate_wants(struct client *c, const struct kv_command *run) {
    if (run->flags & CMD_KEYSPACE_FANOUT) {
        /* outside MULTI: across the ring (fanout.c), unless this node is the sole
         * member, which answers from its own data */
        return !(c->flags & CLIENT_MULTI) && (c->cop != NULL || !sole_member());
    }
    if (run->proc == cmd_watch) {
        return !(c->flags & CLIENT_MULTI); /* (inside MULTI: Redis's own error) */
    }
    if (!(run->flags & CMD_NODE_LOCAL)) {
        return 1;
    }
    /* EXEC of a transaction that will run (not aborted) with data commands */
    /* (a transaction with a fanout command passed the gate only on the sole
     * member: it runs on the node's own data, as one node's) */
    if ((run->flags & CMD_RUNS_QUEUED) && (c->flags & CLIENT_MULTI) &&
        !(c->multi_flags & CMD_KEYSPACE_FANOUT) &&
        !(c->flags & (CLIENT_DIRTY_EXEC | CLIENT_DIRTY_CAS))) {
        return 1;
    }
    return 0;
}

static void refuse_whole(struct client *c, const struct kv_command *run, const char *msg) {
    if ((c->flags & CLIENT_MULTI) && (run->flags & CMD_RUNS_QUEUED)) {
        multi_discard_state(c); /* EXEC answered: the transaction is over */
    }
    reply_error(c, msg);
}

/* A keyless command across the ring: fanout.c walks it, c waits until
 * fanout_done. Returns 1 (the command is taken). */
static int fan_begin(struct client *c, const struct kv_command *run) {
    struct coord_op *op = kv_calloc(1, sizeof(*op));
    op->c = c;
    c->cop = op;
    if (!fanout_start(c, run, &op->fan)) {
        coordinate_forget(c); /* replied (bad arguments) */
        return 1;
    }
    client_suspend(c);
    return 1;
}

/* A new op for run: its keys (and, for a pipeline batch, those of the commands
 * queued behind it; for EXEC those of the queued commands and the watched ones;
 * WATCH's own, in an op of its own) read at R. Returns 1 when c waits for the
 * reads. */
static int op_begin(struct client *c, const struct kv_command *run) {
    struct coord_op *op = kv_calloc(1, sizeof(*op));
    op->c = c;
    c->cop = op;
    if (run->flags & CMD_RUNS_QUEUED) {
        int db = c->db_id;
        for (int i = 0; i < c->mcount; i++) {
            int qargc;
            const struct kv_slice *qargv;
            const struct kv_command *q = multi_queued(c, i, &qargc, &qargv);
            db = gather(op, q, qargc, qargv, db);
        }
        multi_watched_foreach(c, gather_watched, op);
    } else if (run->proc == cmd_watch) {
        gather(op, run, c->argc, c->argv, c->db_id); /* not a batch: never joined */
    } else {
        op->batch = 1;
        gather(op, run, c->argc, c->argv, c->db_id);
        op->ahead = look_ahead(c, op);
    }
    if (start_reads(c, op) == 0) {
        op->phase = OP_READ_DONE;
        return 0;
    }
    op->phase = OP_READING;
    client_suspend(c);
    return 1;
}

/* WATCH's keys were read at R: the node's own WATCH (+OK), then their versions. */
static void watch_noted(struct client *c, const struct kv_command *run, struct coord_op *op) {
    call(c, run);
    for (size_t i = 0; i < op->nkeys; i++) {
        struct op_key *x = &op->keys[i];
        multi_watch_note(c, x->db, x->key, x->klen, x->found, x->rec.v, x->rec.deleted);
    }
}

/* EXEC or WATCH (the single-command path): refused whole on a failed read.
 * WATCH notes the versions read. EXEC aborts (CLIENT_DIRTY_CAS: the handler
 * answers nil) when a watched key changed or is being shipped, else runs, its
 * writes waited for with the command. */
static void exec_run(struct client *c, const struct kv_command *run, struct coord_op *op) {
    if (op->failed) {
        char msg[256];
        quorum_error(msg, sizeof(msg), op->err, 0);
        coordinate_forget(c);
        refuse_whole(c, run, msg);
        return;
    }
    if (run->proc == cmd_watch) {
        watch_noted(c, run, op);
        coordinate_forget(c);
        return;
    }
    if (multi_watch_differs(c, watched_now, op)) {
        c->flags |= CLIENT_DIRTY_CAS; /* a watched key changed through some node */
    }
    run_one(c, run, op, 1);
    if (op->wpending == 0) {
        coordinate_forget(c);
        return;
    }
    op->phase = OP_WRITING;
    client_suspend(c);
}

int coordinate_command(struct client *c, const struct kv_command *run) {
    struct coord_op *op = c->cop;
    if (op != NULL && op->phase == OP_BATCH) {
        if (batch_covers(c, run, op)) {
            return batch_run(c, run, op);
        }
        if (batch_end(c, op, 1, 0)) {
            return 1; /* runs afresh when the batch's writes have answered */
        }
        op = NULL;
    }
    if (!coordinate_wants(c, run)) {
        return 0;
    }
    if (op == NULL) {
        const char *why = NULL;
        if (!cluster_ready(server.cluster, &why)) {
            char msg[256];
            snprintf(msg, sizeof(msg), "CLUSTERDOWN %s", why ? why : "the cluster is not ready");
            refuse_whole(c, run, msg);
            return 1;
        }
        if ((run->flags & CMD_WRITE) && !cluster_writes_allowed(server.cluster, &why)) {
            char msg[400];
            snprintf(msg, sizeof(msg), "CLOCKSKEW %s", why);
            refuse_whole(c, run, msg);
            return 1;
        }
        if (run->flags & CMD_KEYSPACE_FANOUT) {
            return fan_begin(c, run);
        }
        if (op_begin(c, run)) {
            return 1;
        }
        op = c->cop;
    }
    if (op->fan) {
        if (fanout_done(op->fan)) { /* (else not reached: a waiting client does not run) */
            fanout_reply(c, op->fan);
            coordinate_forget(c);
        }
        return 1;
    }
    if (op->phase != OP_READ_DONE) {
        return 1; /* not reached: a waiting client does not run */
    }
    if (!op->batch) {
        exec_run(c, run, op); /* EXEC, WATCH */
        return 1;
    }
    if (!batch_covers(c, run, op)) {
        /* not reached: the first command's keys were gathered by the same rules */
        coordinate_forget(c);
        reply_error(c, "ERR the cluster coordinator lost this command's keys");
        return 1;
    }
    return batch_run(c, run, op);
}

int coordinate_batch_open(const struct client *c) {
    return c->cop != NULL && c->cop->phase == OP_BATCH;
}

void coordinate_input_end(struct client *c) {
    struct coord_op *op = c->cop;
    if (op != NULL && op->phase == OP_BATCH && !(c->flags & CLIENT_WAITING)) {
        batch_end(c, op, 0, 1);
    }
}

int coordinate_resume(struct client *c) {
    struct coord_op *op = c->cop;
    if (op == NULL || op->phase != OP_WRITE_DONE) {
        return 0;
    }
    int rc = !op->batch ? 1 : op->rerun ? 0 : op->tail ? 2 : 1;
    if (!op->batch && op->wfailed) {
        char msg[256];
        quorum_error(msg, sizeof(msg), op->werr, 1);
        client_fail_held(c, CLIENT_HOLD_CLUSTER, msg); /* EXEC: its one reply */
    } else {
        settle(c, op);
    }
    coordinate_forget(c);
    return rc;
}
