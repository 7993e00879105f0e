/* cluster/op.c: quorum write and quorum read with blocking read repair. See op.h.
 * Leaves sending, timers, hints storage and client replies to the caller. */
#include "cluster/op.h"

#include <stdio.h>
#include <string.h>

#include "cluster/fields.h"
#include "cluster/mem.h"

/* per replica state */
enum {
    RS_IDLE = 0,   /* not asked (down at start) or given up (deadline) */
    RS_PENDING,    /* request sent, no answer yet */
    RS_ACKED,      /* write: acknowledged */
    RS_FAILED,     /* request failed */
    RS_ANSWERED,   /* read: answered (seen[i]) */
    RS_REPAIRING,  /* read: repair write sent */
    RS_REPAIRED,   /* read: repair acknowledged */
    RS_LATER,      /* read: a pending replica (up), not asked; sent the winner at
                      the decision */
};

/* read phases */
enum { PH_GATHER = 0, PH_REPAIR, PH_LINGER };

static void actions_reset(struct op_actions *out) {
    out->nsend = 0;
    out->nhint = 0;
    out->completed = 0;
    out->finished = 0;
}

static void send_to(struct op_actions *out, uint32_t node, int verb) {
    out->send[out->nsend++] = (struct op_send){node, verb};
}

static int record_cmp(const struct op_record *a, const struct op_record *b);

static void record_set(struct op_record *dst, const struct msg_record *src) {
    free(dst->val);
    dst->found = 1;
    dst->v = src->v;
    dst->deleted = src->deleted;
    dst->expire_at = src->expire_at;
    dst->vlen = src->vlen;
    dst->val = src->vlen ? cl_memdup(src->val, src->vlen) : NULL;
    dst->fields = src->fields;
}

static struct msg_record as_msg(const struct op_record *r) {
    return (struct msg_record){r->v, r->deleted, r->expire_at, r->val, r->vlen, r->fields};
}

/* Does a replica that answered seen hold the winner w? Field records: when its
 * answer covers w (fields_covers); anything else: the same record. */
static int holds(const struct op_record *seen, const struct op_record *w) {
    if (seen->found && w->found && (seen->fields || w->fields)) {
        if (!seen->fields || !w->fields) {
            return 0;
        }
        struct msg_record a = as_msg(seen), b = as_msg(w);
        return fields_covers(&a, &b);
    }
    return record_cmp(seen, w) == 0;
}

/* Folds an answer into the winner: per field when either is field records. */
static void winner_fold(struct op *op, const struct msg_record *rec) {
    struct op_record tmp = {0};
    if (!op->rec.found || !(op->rec.fields || rec->fields)) {
        tmp.found = 1;
        tmp.v = rec->v;
        tmp.deleted = rec->deleted;
        if (record_cmp(&tmp, &op->rec) > 0) {
            record_set(&op->rec, rec);
        }
        return;
    }
    struct msg_buf buf = {0};
    struct msg_record a = as_msg(&op->rec), m;
    fields_merge(&a, rec, &buf, &m);
    record_set(&op->rec, &m);
    msg_buf_free(&buf);
}

/* "nothing" sorts below every record */
static int record_cmp(const struct op_record *a, const struct op_record *b) {
    if (!a->found || !b->found) {
        return a->found - b->found;
    }
    return kv_record_cmp(a->v, a->deleted, b->v, b->deleted);
}

static long slot_of(const struct op *op, uint32_t node, int state) {
    for (size_t i = 0; i < op->n; i++) {
        if (op->nodes[i] == node && op->st[i] == state) {
            return (long)i;
        }
    }
    return -1;
}

static size_t count_state(const struct op *op, int state) {
    size_t c = 0;
    for (size_t i = 0; i < op->n; i++) {
        c += op->st[i] == state;
    }
    return c;
}

static void decide(struct op *op, int result, struct op_actions *out) {
    if (op->result == OP_PENDING) {
        op->result = result;
        out->completed = 1;
    }
}

/* common start: copies, sends verb to the up replicas; 0, or -1 when fewer than
 * need are up (then the op is FAILED and finished, nothing sent) */
static int start(struct op *op, int kind, uint64_t id, unsigned db, const char *key,
                 size_t klen, const uint32_t *nodes, size_t n, size_t npending, size_t need,
                 const uint8_t *down, uint64_t now, uint64_t timeout_ms,
                 struct op_actions *out) {
    memset(op, 0, sizeof *op);
    actions_reset(out);
    op->kind = kind;
    op->id = id;
    op->db = db;
    op->key = cl_memdup(key, klen);
    op->klen = klen;
    op->n = n > OP_MAX_REPLICAS ? OP_MAX_REPLICAS : n;
    memcpy(op->nodes, nodes, op->n * sizeof *nodes);
    op->need = need;
    op->npending = npending < op->n ? npending : 0;
    op->timeout_ms = timeout_ms;
    op->deadline = now + timeout_ms;
    /* a read asks the current replicas only and needs the pending ones up too
     * (read_decide sends them the winner) */
    size_t asked = kind == OP_READ ? op->n - op->npending : op->n, up = 0, up_asked = 0;
    for (size_t i = 0; i < op->n; i++) {
        up += !(down && down[i]);
        up_asked += i < asked && !(down && down[i]);
    }
    size_t need_all = kind == OP_READ ? need + op->npending : need;
    if (up_asked < need || up < need_all || need == 0) {
        op->unavailable = 1;
        decide(op, OP_FAILED, out);
        out->finished = 1;
        return -1;
    }
    for (size_t i = 0; i < op->n; i++) {
        if (down && down[i]) {
            continue;
        }
        if (i >= asked) {
            op->st[i] = RS_LATER;
            continue;
        }
        op->st[i] = RS_PENDING;
        send_to(out, op->nodes[i], kind == OP_WRITE ? MSG_WRITE : MSG_READ);
    }
    return 0;
}

void op_write_start(struct op *op, uint64_t id, unsigned db, const char *key, size_t klen,
                    const uint32_t *nodes, size_t n, size_t need,
                    const struct msg_record *rec, const uint8_t *down, uint64_t now,
                    uint64_t timeout_ms, struct op_actions *out) {
    op_write_start_pending(op, id, db, key, klen, nodes, n, 0, need, rec, down, now,
                           timeout_ms, out);
}

void op_write_start_pending(struct op *op, uint64_t id, unsigned db, const char *key,
                            size_t klen, const uint32_t *nodes, size_t n, size_t npending,
                            size_t need, const struct msg_record *rec, const uint8_t *down,
                            uint64_t now, uint64_t timeout_ms, struct op_actions *out) {
    /* Cassandra's blockFor: W + pending, every acknowledgement counting */
    if (start(op, OP_WRITE, id, db, key, klen, nodes, n, npending, need + npending, down, now,
              timeout_ms, out) != 0) {
        record_set(&op->rec, rec);
        return;
    }
    record_set(&op->rec, rec);
    for (size_t i = 0; i < op->n; i++) {
        if (down && down[i]) {
            out->hint[out->nhint++] = op->nodes[i];
        }
    }
}

void op_read_start(struct op *op, uint64_t id, unsigned db, const char *key, size_t klen,
                   const uint32_t *nodes, size_t n, size_t need, const uint8_t *down,
                   uint64_t now, uint64_t timeout_ms, struct op_actions *out) {
    start(op, OP_READ, id, db, key, klen, nodes, n, 0, need, down, now, timeout_ms, out);
}

void op_read_start_pending(struct op *op, uint64_t id, unsigned db, const char *key,
                           size_t klen, const uint32_t *nodes, size_t n, size_t npending,
                           size_t need, const uint8_t *down, uint64_t now, uint64_t timeout_ms,
                           struct op_actions *out) {
    start(op, OP_READ, id, db, key, klen, nodes, n, npending, need, down, now, timeout_ms, out);
}

/* ---- write ---- */

static void write_step(struct op *op, struct op_actions *out) {
    if (op->acks >= op->need) {
        decide(op, OP_OK, out);
    } else if (op->acks + count_state(op, RS_PENDING) < op->need) {
        decide(op, OP_FAILED, out);
    }
    if (count_state(op, RS_PENDING) == 0) {
        out->finished = 1;
    }
}

static void write_reply(struct op *op, uint32_t node, int ok, struct op_actions *out) {
    long i = slot_of(op, node, RS_PENDING);
    if (i < 0) {
        return; /* late, duplicate or unknown */
    }
    if (ok) {
        op->st[i] = RS_ACKED;
        op->acks++;
    } else {
        op->st[i] = RS_FAILED;
        out->hint[out->nhint++] = node;
    }
    write_step(op, out);
}

/* ---- read ---- */

static void read_finish_check(struct op *op, struct op_actions *out) {
    if (op->result == OP_FAILED ||
        (op->phase == PH_LINGER && count_state(op, RS_PENDING) == 0 &&
         count_state(op, RS_REPAIRING) == 0)) {
        out->finished = 1;
    }
}

/* holders the result waits for: R, plus the pending replicas (op.h
 * op_read_start_pending) */
static size_t holders_needed(const struct op *op) {
    return op->need + op->npending;
}

/* the repair phase's test: enough holders, or no way to get them */
static void repair_step(struct op *op, struct op_actions *out) {
    if (op->holders >= holders_needed(op)) {
        decide(op, OP_OK, out);
        op->phase = PH_LINGER;
    } else if (op->holders + count_state(op, RS_REPAIRING) + count_state(op, RS_PENDING) <
               holders_needed(op)) {
        decide(op, OP_FAILED, out);
    }
}

/* R answers are in: the winner is op->rec; repair the answers below it */
static void read_decide(struct op *op, uint64_t now, struct op_actions *out) {
    for (size_t i = 0; i < op->n; i++) {
        if (op->st[i] == RS_LATER && !op->rec.found) {
            op->holders++; /* "nothing" won: nothing older can follow it */
        } else if (op->st[i] == RS_LATER) {
            op->st[i] = RS_REPAIRING;
            send_to(out, op->nodes[i], MSG_WRITE);
        }
        if (op->st[i] != RS_ANSWERED) {
            continue;
        }
        if (holds(&op->seen[i], &op->rec)) {
            op->holders++;
        } else {
            op->st[i] = RS_REPAIRING;
            send_to(out, op->nodes[i], MSG_WRITE);
        }
    }
    op->phase = PH_REPAIR;
    repair_step(op, out);
    if (op->phase == PH_REPAIR) {
        op->deadline = now + op->timeout_ms; /* the repairs get a full timeout */
    }
}

/* an answer after the decision: count it, or repair it in the background */
static void read_late_answer(struct op *op, size_t i, struct op_actions *out) {
    int c = record_cmp(&op->seen[i], &op->rec);
    if (holds(&op->seen[i], &op->rec)) {
        op->holders++;
    } else if (c < 0 || op->rec.fields || op->seen[i].fields) {
        op->st[i] = RS_REPAIRING;
        send_to(out, op->nodes[i], MSG_WRITE);
    }
    if (op->phase == PH_REPAIR) {
        repair_step(op, out);
    }
}

static void read_reply(struct op *op, uint32_t node, const struct msg_item *item,
                       uint64_t now, struct op_actions *out) {
    long i = slot_of(op, node, RS_PENDING);
    if (i < 0 || op->result == OP_FAILED) {
        return;
    }
    if (item == NULL) {
        op->st[i] = RS_FAILED;
    } else {
        op->st[i] = RS_ANSWERED;
        op->acks++;
        struct op_record *s = &op->seen[i];
        s->found = item->found;
        if (item->found) {
            s->v = item->rec.v;
            s->deleted = item->rec.deleted;
            s->expire_at = item->rec.expire_at;
            if (item->rec.fields) {
                record_set(s, &item->rec); /* kept: holds() and the repair diff */
            }
        }
        if (op->phase != PH_GATHER) {
            read_late_answer(op, (size_t)i, out);
        } else {
            if (item->found) {
                winner_fold(op, &item->rec);
            }
            if (op->acks >= op->need) {
                read_decide(op, now, out);
            }
        }
    }
    if (op->phase == PH_GATHER && op->acks + count_state(op, RS_PENDING) < op->need) {
        decide(op, OP_FAILED, out);
    } else if (op->phase == PH_REPAIR) {
        repair_step(op, out);
    }
    read_finish_check(op, out);
}

static void read_repair_reply(struct op *op, uint32_t node, int ok, struct op_actions *out) {
    long i = slot_of(op, node, RS_REPAIRING);
    if (i < 0 || op->result == OP_FAILED) {
        return;
    }
    op->st[i] = ok ? RS_REPAIRED : RS_FAILED;
    op->holders += ok != 0;
    if (op->phase == PH_REPAIR) {
        repair_step(op, out);
    }
    read_finish_check(op, out);
}

/* ---- entry points ---- */

void op_on_read_reply(struct op *op, uint32_t node, const struct msg_item *item,
                      uint64_t now, struct op_actions *out) {
    actions_reset(out);
    if (op->kind == OP_READ) {
        read_reply(op, node, item, now, out);
    }
}

void op_on_write_reply(struct op *op, uint32_t node, int ok, uint64_t now,
                       struct op_actions *out) {
    actions_reset(out);
    if (op->kind == OP_WRITE) {
        write_reply(op, node, ok, out);
    } else {
        read_repair_reply(op, node, ok, out);
    }
}

void op_tick(struct op *op, uint64_t now, struct op_actions *out) {
    actions_reset(out);
    if (now < op->deadline) {
        return;
    }
    for (size_t i = 0; i < op->n; i++) {
        if (op->st[i] == RS_PENDING || op->st[i] == RS_REPAIRING) {
            if (op->kind == OP_WRITE) {
                out->hint[out->nhint++] = op->nodes[i];
            }
            op->st[i] = RS_IDLE;
        }
    }
    decide(op, OP_FAILED, out); /* no-op when already decided */
    out->finished = 1;
}

void op_error_text(const struct op *op, char *buf, size_t len) {
    if (op->kind == OP_WRITE) {
        if (op->unavailable) {
            snprintf(buf, len, "got 0 of %zu write acknowledgements: fewer replicas up",
                     op->need);
        } else {
            snprintf(buf, len, "got %zu of %zu write acknowledgements", op->acks, op->need);
        }
    } else if (op->phase == PH_GATHER || op->unavailable) {
        snprintf(buf, len, "got %zu of %zu read answers", op->acks, op->need);
    } else {
        snprintf(buf, len, "read repair: %zu of %zu replicas hold the newest version",
                 op->holders, holders_needed(op));
    }
}

struct msg_record op_msg_record(const struct op *op) {
    return as_msg(&op->rec);
}

struct msg_record op_send_record(const struct op *op, uint32_t node, struct msg_buf *buf) {
    struct msg_record w = as_msg(&op->rec);
    if (op->kind != OP_READ || !op->rec.fields) {
        return w;
    }
    for (size_t i = 0; i < op->n; i++) {
        if (op->nodes[i] == node && op->seen[i].found && op->seen[i].fields) {
            struct msg_record a = as_msg(&op->seen[i]), d;
            fields_diff(&a, &w, buf, &d);
            return d;
        }
    }
    return w;
}

void op_destroy(struct op *op) {
    free(op->key);
    free(op->rec.val);
    for (size_t i = 0; i < op->n; i++) {
        free(op->seen[i].val);
        op->seen[i].val = NULL;
    }
    op->key = NULL;
    op->rec.val = NULL;
}
