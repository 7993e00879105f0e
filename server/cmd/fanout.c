/* server/cmd/fanout.c: the keyless commands across a kvd cluster (issue 10): SCAN,
 * KEYS, DBSIZE, RANDOMKEY, FLUSHDB and FLUSHALL through any node, when the ring
 * has more than one member (a sole member answers them from its own data, as one
 * node). coordinate.c hands them here (coordinate_command) and keeps the client
 * suspended until fanout_done; the ring, the replicas and the merge of their
 * answers are cluster/'s (cluster_scan, cluster_flush).
 *
 * HOW EACH ONE WORKS (README "Cluster": how exact each is)
 *   SCAN cursor: the cursor is a block number, the top 53 bits of a token (ks.h
 *     KS_SCAN_BLOCK_BITS): it starts at token cursor << 11. A step (cluster_scan)
 *     reads the keys of [token, end of the ring range holding it) from R live
 *     replicas, merged (newest version per key); tombstones and expired keys are
 *     dropped, MATCH and TYPE applied here; steps continue into the next ranges
 *     until COUNT records were seen or SCAN_STEPS steps ran. The next token (a
 *     range end or a page's next key) is rarely a block start: the reply's cursor
 *     is its block, next >> 11, so the next call starts at or before it (a key
 *     in that block's head may come twice, none is skipped); while that block is
 *     the one the call started in, the call reads on, so a cursor always grows.
 *     0 is the ring's end, so an empty database answers cursor 0 at once. Every
 *     key present on W replicas for the whole scan is returned at least once
 *     (W + R > N).
 *   KEYS pattern: every step from 0 to the ring's end, the client waiting (the
 *     loop serves the others between steps).
 *   DBSIZE: the same full scan, counting the distinct live keys (exact when nothing
 *     changes during the count).
 *   RANDOMKEY: the first live key at or after a random token, wrapping once; nil
 *     when the database is empty.
 *   FLUSHDB / FLUSHALL [ASYNC|SYNC]: one HLC version V (hlc_now); every member
 *     deletes the database's records older than V and keeps V as its floor
 *     (store_flush_below); OK once every range has W replicas that flushed,
 *     "-NOQUORUM ..." otherwise; a member that missed it is sent it again until it
 *     acknowledges (cluster_flush).
 *
 * Threading: loop thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cluster/cluster.h"
#include "server/cmd/cmd.h"

#define SCAN_STEPS 256       /* ranges one SCAN call visits at most (an empty db: all) */
#define FULL_STEP_COUNT 1000 /* records per step of KEYS / DBSIZE */
#define RANDOM_STEP_COUNT 16 /* records per step of RANDOMKEY */

enum { FAN_SCAN = 1, FAN_KEYS, FAN_DBSIZE, FAN_RANDOMKEY, FAN_FLUSH };

struct fan_key {
    char *p;
    size_t len;
};

struct fanout {
    struct client *c;
    int kind;
    int done;
    int failed;
    char err[200];
    uint64_t id;           /* the outstanding cluster request, 0 when none */
    unsigned db;
    int r, w;
    /* scan state */
    uint64_t cursor;       /* next step's start */
    uint64_t scan_from;    /* SCAN: the call's first token (a block start) */
    uint64_t start;        /* RANDOMKEY: the random token */
    int wrapped;           /* RANDOMKEY: went past the ring's end */
    size_t seen;           /* records seen (SCAN's COUNT) */
    long count;            /* SCAN COUNT */
    int steps;
    char *pat;             /* MATCH (NULL: every key) */
    size_t plen;
    char *type;            /* TYPE (NULL: every type) */
    size_t tlen;
    struct fan_key *keys;  /* collected (SCAN, KEYS, RANDOMKEY) */
    size_t nkeys, capkeys;
    long long live;        /* DBSIZE */
};

void fanout_free(struct fanout *f) {
    if (f == NULL) {
        return;
    }
    if (f->id && server.cluster) {
        cluster_cancel(server.cluster, f->id);
    }
    for (size_t i = 0; i < f->nkeys; i++) {
        kv_free(f->keys[i].p);
    }
    kv_free(f->keys);
    kv_free(f->pat);
    kv_free(f->type);
    kv_free(f);
}

int fanout_done(const struct fanout *f) {
    return f->done;
}

static const char *type_name(unsigned t) {
    switch (t) {
    case KS_TYPE_STRING: return "string";
    case KS_TYPE_LIST: return "list";
    case KS_TYPE_SET: return "set";
    case KS_TYPE_ZSET: return "zset";
    case KS_TYPE_HASH: return "hash";
    default: return "unknown";
    }
}

static void keep_key(struct fanout *f, const struct cluster_key *k) {
    if (f->nkeys == f->capkeys) {
        f->capkeys = f->capkeys ? f->capkeys * 2 : 32;
        f->keys = kv_realloc(f->keys, f->capkeys * sizeof(*f->keys));
    }
    char *p = kv_malloc(k->klen ? k->klen : 1);
    if (k->klen) {
        memcpy(p, k->key, k->klen);
    }
    f->keys[f->nkeys++] = (struct fan_key){p, k->klen};
}

static int wanted(const struct fanout *f, const struct cluster_key *k, long long now) {
    if (k->deleted || (k->expire_at != 0 && k->expire_at <= (uint64_t)now)) {
        return 0;
    }
    if (f->pat && !kv_glob_match(f->pat, f->plen, k->key, k->klen, 0)) {
        return 0;
    }
    if (f->type) {
        const char *t = type_name(k->type);
        if (strlen(t) != f->tlen || strncasecmp(t, f->type, f->tlen) != 0) {
            return 0;
        }
    }
    return 1;
}

static void finish(struct fanout *f) {
    f->done = 1;
    f->id = 0;
    client_resume(f->c);
}

static void step(struct fanout *f);

static void scan_done(void *ctx, int status, uint64_t next, const struct cluster_key *keys,
                      size_t n, const char *err) {
    struct fanout *f = ctx;
    f->id = 0;
    if (status != CLUSTER_OK) {
        f->failed = 1;
        snprintf(f->err, sizeof(f->err), "%s", err ? err : "scan failed");
        finish(f);
        return;
    }
    long long now = kv_mstime();
    f->steps++;
    f->seen += n;
    for (size_t i = 0; i < n; i++) {
        const struct cluster_key *k = &keys[i];
        if (f->kind == FAN_RANDOMKEY && f->wrapped && k->token >= f->start) {
            break; /* back where it started: seen already */
        }
        if (!wanted(f, k, now)) {
            continue;
        }
        if (f->kind == FAN_DBSIZE) {
            f->live++;
        } else {
            keep_key(f, k);
            if (f->kind == FAN_RANDOMKEY) {
                finish(f);
                return;
            }
        }
    }
    f->cursor = next;
    switch (f->kind) {
    case FAN_SCAN:
        if (next == 0) {
            finish(f);
            return;
        }
        /* the reply's cursor is a block number: next (a range end, vnode token + 1,
         * or a page's next key) rounded down to its block start, which re-reads at
         * most that block's head and skips nothing; the call reads on while that
         * would not move past the block it started at */
        if ((f->seen >= (size_t)f->count || f->steps >= SCAN_STEPS) &&
            ks_scan_block(next) > ks_scan_block(f->scan_from)) {
            f->cursor = ks_scan_block(next) << KS_SCAN_BLOCK_BITS;
            finish(f);
            return;
        }
        break;
    case FAN_RANDOMKEY:
        if (next == 0) {
            if (f->wrapped || f->start == 0) {
                finish(f); /* the whole ring: empty */
                return;
            }
            f->wrapped = 1;
        } else if (f->wrapped && next >= f->start) {
            finish(f);
            return;
        }
        break;
    default: /* KEYS, DBSIZE: the whole ring */
        if (next == 0) {
            finish(f);
            return;
        }
        break;
    }
    step(f);
}

static void step(struct fanout *f) {
    size_t count = FULL_STEP_COUNT;
    if (f->kind == FAN_SCAN) {
        long left = f->count - (long)f->seen;
        count = left < 1 ? 1 : (size_t)left;
    } else if (f->kind == FAN_RANDOMKEY) {
        count = RANDOM_STEP_COUNT;
    }
    f->id = cluster_scan(server.cluster, f->db, f->cursor, count, f->r, scan_done, f);
}

static void flush_done(void *ctx, int status, const char *err) {
    struct fanout *f = ctx;
    if (status != CLUSTER_OK) {
        f->failed = 1;
        int a, b;
        if (err && sscanf(err, "got %d of %d", &a, &b) == 2) {
            snprintf(f->err, sizeof(f->err), "NOQUORUM flushed on %d of %d required replicas; "
                     "the flush is indeterminate", a, b);
        } else {
            snprintf(f->err, sizeof(f->err), "NOQUORUM %s; the flush is indeterminate",
                     err ? err : "flush failed");
        }
    }
    finish(f);
}

static char *dup_slice(const struct kv_slice *s, size_t *len) {
    char *p = kv_malloc(s->len ? s->len : 1);
    if (s->len) {
        memcpy(p, s->p, s->len);
    }
    *len = s->len;
    return p;
}

static uint64_t random_token(void) {
    return ((uint64_t)random() << 42) ^ ((uint64_t)random() << 21) ^ (uint64_t)random();
}

int fanout_start(struct client *c, const struct kv_command *run, struct fanout **out) {
    *out = NULL;
    struct fanout *f = kv_calloc(1, sizeof(*f));
    f->c = c;
    f->db = (unsigned)c->db_id;
    coordinate_levels(c, &f->r, &f->w);
    if (run->proc == cmd_scan) {
        uint64_t cursor;
        const struct kv_slice *pat, *type = NULL;
        long count;
        int rc = keys_scan_cursor_or_reply(c, 1, &cursor);
        if (rc < 0 || keys_scan_opts_or_reply(c, 2, &pat, &count, &type) != 0) {
            fanout_free(f);
            return 0;
        }
        if (rc > 0) {
            keys_reply_scan_end(c); /* a cursor past every block (>= 2^53) */
            fanout_free(f);
            return 0;
        }
        f->kind = FAN_SCAN;
        f->cursor = f->scan_from = cursor;
        f->count = count;
        if (pat) {
            f->pat = dup_slice(pat, &f->plen);
        }
        if (type) {
            f->type = dup_slice(type, &f->tlen);
        }
    } else if (run->proc == cmd_keys) {
        f->kind = FAN_KEYS;
        const struct kv_slice *p = &c->argv[1];
        if (!(p->len == 1 && p->p[0] == '*')) {
            f->pat = dup_slice(p, &f->plen);
        }
    } else if (run->proc == cmd_dbsize) {
        f->kind = FAN_DBSIZE;
    } else if (run->proc == cmd_randomkey) {
        f->kind = FAN_RANDOMKEY;
        f->start = random_token();
        f->cursor = f->start;
    } else if (run->proc == cmd_flushdb || run->proc == cmd_flushall) {
        /* [ASYNC|SYNC], as one node parses them (both accepted: a replica's flush
         * frees what it deletes at once) */
        if (c->argc > 2 || (c->argc == 2 && !arg_is(c, 1, "async") && !arg_is(c, 1, "sync"))) {
            reply_syntax_error(c);
            fanout_free(f);
            return 0;
        }
        f->kind = FAN_FLUSH;
        int db = run->proc == cmd_flushall ? -1 : c->db_id;
        f->id = cluster_flush(server.cluster, db, hlc_now(), f->w, flush_done, f);
        *out = f;
        return 1;
    } else {
        reply_error(c, "ERR this command is not supported in a kvd cluster");
        fanout_free(f);
        return 0;
    }
    step(f);
    *out = f;
    return 1;
}

void fanout_reply(struct client *c, struct fanout *f) {
    if (f->failed) {
        if (f->kind == FAN_FLUSH) {
            reply_error(c, f->err);
            return;
        }
        int a, b;
        if (sscanf(f->err, "got %d of %d", &a, &b) == 2) {
            reply_errorf(c, "NOQUORUM %d of %d required replicas answered", a, b);
        } else {
            reply_errorf(c, "NOQUORUM %s", f->err);
        }
        return;
    }
    switch (f->kind) {
    case FAN_SCAN: {
        reply_array(c, 2);
        keys_reply_scan_cursor(c, f->cursor);
        reply_array(c, (long long)f->nkeys);
        for (size_t i = 0; i < f->nkeys; i++) {
            reply_bulk(c, f->keys[i].p, f->keys[i].len);
        }
        break;
    }
    case FAN_KEYS:
        reply_array(c, (long long)f->nkeys);
        for (size_t i = 0; i < f->nkeys; i++) {
            reply_bulk(c, f->keys[i].p, f->keys[i].len);
        }
        break;
    case FAN_DBSIZE:
        reply_int(c, f->live);
        break;
    case FAN_RANDOMKEY:
        if (f->nkeys == 0) {
            reply_null(c);
        } else {
            reply_bulk(c, f->keys[0].p, f->keys[0].len);
        }
        break;
    default:
        reply_ok(c);
        break;
    }
}
