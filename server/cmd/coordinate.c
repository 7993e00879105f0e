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
 *      cluster_read at the connection's R, deduplicated; the client is suspended
 *      (c->cop holds the op) and each answer's record is copied into the op.
 *      When the last answers, client_resume puts the client on the ready list.
 *   2. run: the ready client passes process_command again (the checks see the
 *      server as it is now); coordinate_command finds its reads done: a failed
 *      read answers "-NOQUORUM <a> of <b> required replicas answered". Else the
 *      scratch keyspace is entered, each found live record loaded
 *      (persist_decode), the unchanged handler run with call(), and the changes
 *      collected (coord_scratch_leave).
 *   3. ship: one version for the whole command: hlc_observe of every version
 *      read, then hlc_now, with this node's tag; each change is cluster_write'n
 *      at the connection's W (a value with its expire-at, or a tombstone).
 *   4. hold: the handler's first change held the reply (CLIENT_HOLD_CLUSTER);
 *      the client stays suspended (its pipeline waits, so later commands see the
 *      writes). When every write answered, coordinate_resume (from run_waiting)
 *      releases the reply, or rewrites it (client_fail_held) into "-NOQUORUM
 *      wrote to <a> of <b> required replicas; the write is indeterminate". A
 *      command that changed nothing (every read) is not held.
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
 *   is shipping a write to one of them (the inflight marks below), so the
 *   handler answers nil. While
 *   !cluster_ready: "-CLUSTERDOWN <why>".
 *   A client freed while waiting: every outstanding request is cluster_cancel'led
 *   and the op freed (coordinate_forget, from client_wait_forget).
 *
 * Threading: loop thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "server/cmd/cmd.h"


enum { OP_READING, OP_READ_DONE, OP_WRITING, OP_WRITE_DONE };

struct op_key {
    struct coord_op *op;
    int db;
    char *key;            /* owned */
    size_t klen;
    uint64_t id;          /* outstanding request, 0 when answered */
    int found;            /* a record came back */
    struct msg_record rec;/* rec.val owned (copied) */
};

struct op_write {
    struct coord_op *op;
    uint64_t id;          /* outstanding request, 0 when answered */
};

struct coord_op {
    struct client *c;
    int phase;
    struct op_key *keys;
    size_t nkeys, pending;
    int failed;
    char err[160];
    struct op_write *w;
    size_t nw, wpending, wfailed;
    char werr[160];
    struct fanout *fan;   /* a keyless command across the cluster (fanout.c) */
    struct inflight **inf;/* the keys it is shipping, marked for WATCH (or NULL) */
    size_t ninf;
};

/* ---- keys being shipped, for WATCH ----
 * While some client WATCHes (watch_any), each key a command ships is marked
 * until the command's op ends (its writes answered, or its client gone). An EXEC
 * whose watched key is marked aborts: another command's write to it is on its
 * way, so the transaction's reads may already be stale (the check-then-ship race
 * of two EXECs through this node, which the versions alone cannot see). */
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
    for (size_t i = 0; i < op->nw; i++) {
        if (op->w[i].id && server.cluster) {
            cluster_cancel(server.cluster, op->w[i].id);
        }
    }
    kv_free(op->keys);
    kv_free(op->w);
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

/* ---- step 1: prefetch ---- */

static void add_key(struct coord_op *op, int db, const struct kv_slice *k) {
    for (size_t i = 0; i < op->nkeys; i++) {
        if (op->keys[i].db == db && op->keys[i].klen == k->len &&
            (k->len == 0 || memcmp(op->keys[i].key, k->p, k->len) == 0)) {
            return; /* each (db, key) is read once */
        }
    }
    struct op_key *x = &op->keys[op->nkeys++];
    memset(x, 0, sizeof(*x));
    x->op = op;
    x->db = db;
    x->key = kv_malloc(k->len + 1);
    if (k->len) {
        memcpy(x->key, k->p, k->len);
    }
    x->key[k->len] = '\0';
    x->klen = k->len;
}

/* The keys of one invocation, in database db (COPY ... DB n: the destination in
 * n). Returns the database the next queued command runs in (SELECT). */
static int gather(struct coord_op *op, const struct kv_command *cmd, int argc,
                  const struct kv_slice *argv, int db, size_t *cap) {
    if (cmd->proc == cmd_select) {
        long long id;
        char buf[32];
        if (argc == 2 && argv[1].len < sizeof(buf)) {
            memcpy(buf, argv[1].p, argv[1].len);
            buf[argv[1].len] = '\0';
            char *end;
            id = strtoll(buf, &end, 10);
            if (*end == '\0' && end != buf && id >= 0 && id < server.databases) {
                return (int)id;
            }
        }
        return db;
    }
    int *pos = NULL;
    int n;
    if (cmd->proc == cmd_watch) {
        n = argc - 1; /* WATCH key [key ...]: read at R, versions noted */
        pos = kv_malloc((size_t)(argc > 0 ? argc : 1) * sizeof(int));
        for (int i = 0; i < n; i++) {
            pos[i] = i + 1;
        }
    } else if (cmd->flags & CMD_NODE_LOCAL) {
        return db;
    } else {
        pos = kv_malloc((size_t)(argc > 0 ? argc : 1) * sizeof(int));
        n = command_keys(cmd, argc, argv, pos, argc);
    }
    if (n > argc) {
        n = argc;
    }
    if (n <= 0) {
        kv_free(pos);
        return db;
    }
    if (op->nkeys + (size_t)n > *cap) {
        *cap = (op->nkeys + (size_t)n) * 2;
        op->keys = kv_realloc(op->keys, *cap * sizeof(*op->keys));
        for (size_t i = 0; i < op->nkeys; i++) {
            op->keys[i].op = op;
        }
    }
    int dst_db = db;
    if (cmd->proc == cmd_copy) {
        for (int i = 3; i + 1 < argc; i++) {
            if (argv[i].len == 2 && strncasecmp(argv[i].p, "db", 2) == 0) {
                char buf[32];
                if (argv[i + 1].len < sizeof(buf)) {
                    memcpy(buf, argv[i + 1].p, argv[i + 1].len);
                    buf[argv[i + 1].len] = '\0';
                    char *end;
                    long long id = strtoll(buf, &end, 10);
                    if (*end == '\0' && end != buf && id >= 0 && id < server.databases) {
                        dst_db = (int)id;
                    }
                }
            }
        }
    }
    for (int i = 0; i < n; i++) {
        int kdb = (cmd->proc == cmd_copy && i == 1) ? dst_db : db;
        add_key(op, kdb, &argv[pos[i]]);
    }
    kv_free(pos);
    return db;
}

/* EXEC: the keys c WATCHes are read again with the transaction's */
struct watch_gather {
    struct coord_op *op;
    size_t *cap;
};

static void gather_watched(void *arg, int db, const char *key, size_t klen) {
    struct watch_gather *g = arg;
    struct coord_op *op = g->op;
    if (op->nkeys + 1 > *g->cap) {
        *g->cap = (op->nkeys + 1) * 2;
        op->keys = kv_realloc(op->keys, *g->cap * sizeof(*op->keys));
        for (size_t i = 0; i < op->nkeys; i++) {
            op->keys[i].op = op;
        }
    }
    struct kv_slice k = {key, klen};
    add_key(op, db, &k);
}

/* multi_watch_differs' reader: what the prefetch read for (db, key) */
static int watched_now(void *arg, int db, const char *key, size_t klen, int *found,
                       struct kv_version *v, int *deleted) {
    struct coord_op *op = arg;
    if (inflight_find(db, key, klen)) {
        return -1; /* another command's write to it is on its way: changed */
    }
    for (size_t i = 0; i < op->nkeys; i++) {
        struct op_key *x = &op->keys[i];
        if (x->db == db && x->klen == klen && (klen == 0 || memcmp(x->key, key, klen) == 0)) {
            *found = x->found;
            *v = x->rec.v;
            *deleted = x->rec.deleted;
            return 0;
        }
    }
    return -1;
}

static void read_done(void *ctx, int status, const struct msg_record *rec, const char *err) {
    struct op_key *x = ctx;
    struct coord_op *op = x->op;
    x->id = 0;
    if (status != CLUSTER_OK) {
        if (!op->failed) {
            op->failed = 1;
            snprintf(op->err, sizeof(op->err), "%s", err ? err : "read failed");
        }
    } else if (rec) {
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
    if (--op->pending == 0) {
        op->phase = OP_READ_DONE;
        client_resume(op->c);
    }
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
    struct op_write *x = ctx;
    struct coord_op *op = x->op;
    x->id = 0;
    if (status != CLUSTER_OK) {
        if (op->wfailed++ == 0) {
            snprintf(op->werr, sizeof(op->werr), "%s", err ? err : "write failed");
        }
    }
    if (--op->wpending == 0) {
        op->phase = OP_WRITE_DONE;
        client_resume(op->c);
    }
}

/* Runs run on the scratch keyspace with what was read, then ships its changes.
 * Returns 1 when c waits for writes (suspended), 0 when the command is done. */
static int run_and_ship(struct client *c, const struct kv_command *run, struct coord_op *op) {
    coord_scratch_enter(c);
    for (size_t i = 0; i < op->nkeys; i++) {
        struct op_key *x = &op->keys[i];
        hlc_observe(x->found ? x->rec.v.hlc : 0);
        if (x->found && !x->rec.deleted) {
            long long exp = x->rec.expire_at > (uint64_t)INT64_MAX ? 0
                                                                  : (long long)x->rec.expire_at;
            if (coord_scratch_load(x->db, x->key, x->klen, x->rec.v, exp, x->rec.val,
                                   x->rec.vlen) < 0) {
                server_log(LL_WARNING, "cluster: a replica's record for a key is malformed; "
                           "the key is read as absent");
            }
        }
    }
    call(c, run);
    struct coord_change *ch;
    size_t n = coord_scratch_leave(c, &ch);
    if (n == 0) {
        if (c->hold & CLIENT_HOLD_CLUSTER) {
            client_release(c, CLIENT_HOLD_CLUSTER);
        }
        return 0;
    }
    if (!(c->hold & CLIENT_HOLD_CLUSTER)) {
        client_hold(c, CLIENT_HOLD_CLUSTER); /* not reached: a change holds at once */
    }
    int r, w;
    coordinate_levels(c, &r, &w);
    struct kv_version v = {hlc_now(), server.node_tag};
    op->w = kv_calloc(n, sizeof(*op->w));
    op->nw = n;
    op->wpending = n;
    op->phase = OP_WRITING;
    client_suspend(c);
    for (size_t i = 0; i < n; i++) {
        struct msg_record rec = {.v = v,
                                 .deleted = ch[i].deleted,
                                 .expire_at = ch[i].deleted ? 0
                                                            : (uint64_t)ch[i].expire_at,
                                 .val = ch[i].deleted ? NULL : ch[i].val,
                                 .vlen = ch[i].deleted ? 0 : ch[i].vlen};
        op->w[i].op = op;
        if (watch_any()) {
            if (op->inf == NULL) {
                op->inf = kv_calloc(n, sizeof(*op->inf));
            }
            op->inf[op->ninf++] = inflight_mark(ch[i].db, ch[i].key, ch[i].klen);
        }
        op->w[i].id = cluster_write(server.cluster, (unsigned)ch[i].db, ch[i].key,
                                    ch[i].klen, &rec, w, write_done, &op->w[i]);
    }
    coord_changes_free(ch, n);
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

/* The keys run reads: its own, or for EXEC those of every queued command (in the
 * database each runs in) and the keys c WATCHes (read again: changed?). */
static void gather_all(struct client *c, const struct kv_command *run, struct coord_op *op) {
    size_t cap = 0;
    if (!(run->flags & CMD_RUNS_QUEUED)) {
        gather(op, run, c->argc, c->argv, c->db_id, &cap);
        return;
    }
    int db = c->db_id;
    for (int i = 0; i < c->mcount; i++) {
        int qargc;
        const struct kv_slice *qargv;
        const struct kv_command *q = multi_queued(c, i, &qargc, &qargv);
        db = gather(op, q, qargc, qargv, db, &cap);
    }
    struct watch_gather wg = {op, &cap};
    multi_watched_foreach(c, gather_watched, &wg);
}

/* WATCH's keys were read at R: the node's own WATCH (+OK), then their versions. */
static void watch_noted(struct client *c, const struct kv_command *run, struct coord_op *op) {
    call(c, run);
    for (size_t i = 0; i < op->nkeys; i++) {
        struct op_key *x = &op->keys[i];
        multi_watch_note(c, x->db, x->key, x->klen, x->found, x->rec.v, x->rec.deleted);
    }
}

int coordinate_command(struct client *c, const struct kv_command *run) {
    if (!coordinate_wants(c, run)) {
        return 0;
    }
    struct coord_op *op = c->cop;
    if (op == NULL) {
        const char *why = NULL;
        if (!cluster_ready(server.cluster, &why)) {
            char msg[256];
            snprintf(msg, sizeof(msg), "CLUSTERDOWN %s", why ? why : "the cluster is not ready");
            refuse_whole(c, run, msg);
            return 1;
        }
        op = kv_calloc(1, sizeof(*op));
        op->c = c;
        if (run->flags & CMD_KEYSPACE_FANOUT) {
            c->cop = op;
            if (!fanout_start(c, run, &op->fan)) {
                coordinate_forget(c); /* replied (bad arguments) */
                return 1;
            }
            client_suspend(c);
            return 1;
        }
        gather_all(c, run, op);
        if (op->nkeys == 0) {
            c->cop = op;
            op->phase = OP_READ_DONE;
        } else {
            int r, w;
            coordinate_levels(c, &r, &w);
            c->cop = op;
            op->phase = OP_READING;
            op->pending = op->nkeys;
            client_suspend(c);
            for (size_t i = 0; i < op->nkeys; i++) {
                struct op_key *x = &op->keys[i];
                x->id = cluster_read(server.cluster, (unsigned)x->db, x->key, x->klen, r,
                                     read_done, x);
            }
            return 1;
        }
    }
    if (op->fan) {
        if (!fanout_done(op->fan)) {
            return 1; /* not reached: a waiting client does not run */
        }
        fanout_reply(c, op->fan);
        coordinate_forget(c);
        return 1;
    }
    if (op->phase != OP_READ_DONE) {
        return 1; /* not reached: a waiting client does not run */
    }
    if (op->failed) {
        char msg[256];
        quorum_error(msg, sizeof(msg), op->err, 0);
        coordinate_forget(c);
        refuse_whole(c, run, msg);
        return 1;
    }
    if (run->proc == cmd_watch) {
        watch_noted(c, run, op);
        coordinate_forget(c);
        return 1;
    }
    if ((run->flags & CMD_RUNS_QUEUED) && multi_watch_differs(c, watched_now, op)) {
        c->flags |= CLIENT_DIRTY_CAS; /* a watched key changed through some node */
    }
    if (run_and_ship(c, run, op)) {
        return 1;
    }
    coordinate_forget(c);
    return 1;
}

int coordinate_resume(struct client *c) {
    struct coord_op *op = c->cop;
    if (op == NULL || op->phase != OP_WRITE_DONE) {
        return 0;
    }
    if (op->wfailed) {
        char msg[256];
        quorum_error(msg, sizeof(msg), op->werr, 1);
        client_fail_held(c, CLIENT_HOLD_CLUSTER, msg);
    } else {
        client_release(c, CLIENT_HOLD_CLUSTER);
    }
    coordinate_forget(c);
    return 1;
}
