/* server/cmd/cmd_hash.c: the hash family. HSET HSETNX HGET HMSET HMGET HGETALL HDEL
 * HEXISTS HLEN HSTRLEN HINCRBY HINCRBYFLOAT HKEYS HVALS HSCAN HRANDFIELD, with
 * Redis 7.0's replies and errors. Encodings (listpack, hashtable) are in
 * server/store/hashobj.c; keys go through the coordinator.
 *
 * A write either builds a new detached hash and stores it with coord_put, or
 * changes the stored one with coord_hash_set/coord_hash_del and reports it once
 * with coord_hash_modified, naming the fields; a hash left empty is deleted. Type
 * checks (WRONGTYPE) are coord_lookup_type_or_reply's.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>

#include "server/cmd/cmd.h"
#include "server/coord/coord.h"

/* The hash at key for writing: *ep is the stored hash, or a new detached one
 * (*created = 1), or the reply was WRONGTYPE (returns -1). */
static int hash_for_write_or_reply(struct client *c, struct kv_entry **ep, int *created) {
    const struct kv_slice *key = &c->argv[1];
    *created = 0;
    if (coord_lookup_type_or_reply(c, key, KS_TYPE_HASH, COORD_NOSTATS, ep) != 0) {
        return -1;
    }
    if (*ep == NULL) {
        *ep = hash_new(key->p, key->len, 0);
        *created = 1;
    }
    return 0;
}

/* Hands a written hash to the coordinator: fields argv[2], argv[2 + stride], ...
 * (n of them) changed. */
static void hash_written(struct client *c, struct kv_entry *e, int created, size_t n,
                         size_t stride) {
    if (created) {
        coord_put(c, -1, e, 0);
    } else {
        coord_hash_modified(c, &c->argv[1], e, &c->argv[2], n, stride);
    }
}

/* Field argv[2] of the hash at key, for a command that may then set it: *ep is
 * the hash (NULL when the key is absent) and *v the field's value (NULL when the
 * field is absent). Replies WRONGTYPE and returns -1 for a key of another type. */
static int hash_field_or_reply(struct client *c, struct kv_entry **ep, const char **v,
                               size_t *vlen) {
    struct kv_entry *e;
    *v = NULL;
    *vlen = 0;
    if (coord_lookup_type_or_reply(c, &c->argv[1], KS_TYPE_HASH, COORD_NOSTATS, &e) != 0) {
        *ep = NULL;
        return -1;
    }
    *ep = e;
    if (e == NULL) {
        return 0;
    }
    if (!hash_get(e, c->argv[2].p, c->argv[2].len, v, vlen)) {
        *v = NULL;
    }
    return 0;
}

/* Sets field argv[2] of hash e to v, creating the hash at key when e is NULL, and
 * hands the change to the coordinator. */
static void hash_set_field(struct client *c, struct kv_entry *e, const char *v,
                           size_t vlen) {
    int created = e == NULL;
    if (created) {
        e = hash_new(c->argv[1].p, c->argv[1].len, 0);
        hash_set(NULL, &e, c->argv[2].p, c->argv[2].len, v, vlen);
    } else {
        coord_hash_set(c, &e, c->argv[2].p, c->argv[2].len, v, vlen);
    }
    hash_written(c, e, created, 1, 1);
}

/* The hash at key for reading; NULL when absent (no reply) or after WRONGTYPE
 * (*err = 1). */
static struct kv_entry *hash_for_read(struct client *c, int *err) {
    struct kv_entry *e;
    *err = coord_lookup_type_or_reply(c, &c->argv[1], KS_TYPE_HASH, 0, &e) != 0;
    return e;
}

static void hset_generic(struct client *c, int hmset) {
    if (c->argc % 2 == 1) {
        reply_arity_error(c);
        return;
    }
    struct kv_entry *e;
    int created;
    if (hash_for_write_or_reply(c, &e, &created) != 0) {
        return;
    }
    long long added = 0;
    for (int j = 2; j < c->argc; j += 2) {
        const struct kv_slice *f = &c->argv[j], *v = &c->argv[j + 1];
        added += created ? hash_set(NULL, &e, f->p, f->len, v->p, v->len)
                         : coord_hash_set(c, &e, f->p, f->len, v->p, v->len);
    }
    hash_written(c, e, created, (size_t)(c->argc - 2) / 2, 2);
    if (hmset) {
        reply_ok(c);
    } else {
        reply_int(c, added);
    }
}

void cmd_hset(struct client *c) {
    hset_generic(c, 0);
}

void cmd_hmset(struct client *c) {
    hset_generic(c, 1);
}

void cmd_hsetnx(struct client *c) {
    struct kv_entry *e;
    const char *v;
    size_t vlen;
    if (hash_field_or_reply(c, &e, &v, &vlen) != 0) {
        return;
    }
    if (v != NULL) {
        reply_int(c, 0);
        return;
    }
    hash_set_field(c, e, c->argv[3].p, c->argv[3].len);
    reply_int(c, 1);
}

void cmd_hget(struct client *c) {
    int err;
    struct kv_entry *e = hash_for_read(c, &err);
    const char *v;
    size_t vlen;
    if (err) {
        return;
    }
    if (e && hash_get(e, c->argv[2].p, c->argv[2].len, &v, &vlen)) {
        reply_bulk(c, v, vlen);
    } else {
        reply_null(c);
    }
}

void cmd_hmget(struct client *c) {
    int err;
    struct kv_entry *e = hash_for_read(c, &err);
    if (err) {
        return;
    }
    reply_array(c, c->argc - 2);
    for (int j = 2; j < c->argc; j++) {
        const char *v;
        size_t vlen;
        if (e && hash_get(e, c->argv[j].p, c->argv[j].len, &v, &vlen)) {
            reply_bulk(c, v, vlen);
        } else {
            reply_null(c);
        }
    }
}

struct emit_ctx {
    struct client *c;
    int fields, values;
    const struct kv_slice *pat;
    long long n;
};

static void emit_pair(const char *f, size_t flen, const char *v, size_t vlen, void *arg) {
    struct emit_ctx *x = arg;
    if (x->pat && !kv_glob_match(x->pat->p, x->pat->len, f, flen, 0)) {
        return;
    }
    if (x->fields) {
        reply_bulk(x->c, f, flen);
    }
    if (x->values) {
        reply_bulk(x->c, v, vlen);
    }
    x->n++;
}

/* HGETALL HKEYS HVALS */
static void getall_generic(struct client *c, int fields, int values) {
    int err;
    struct kv_entry *e = hash_for_read(c, &err);
    if (err) {
        return;
    }
    long long n = e ? (long long)hash_len(e) : 0;
    if (fields && values) {
        reply_map(c, n);
    } else {
        reply_array(c, n);
    }
    if (e) {
        struct emit_ctx x = {c, fields, values, NULL, 0};
        hash_foreach(e, emit_pair, &x);
    }
}

void cmd_hgetall(struct client *c) {
    getall_generic(c, 1, 1);
}

void cmd_hkeys(struct client *c) {
    getall_generic(c, 1, 0);
}

void cmd_hvals(struct client *c) {
    getall_generic(c, 0, 1);
}

void cmd_hdel(struct client *c) {
    struct kv_entry *e;
    if (coord_lookup_type_or_reply(c, &c->argv[1], KS_TYPE_HASH, COORD_NOSTATS, &e) != 0) {
        return;
    }
    if (e == NULL) {
        reply_int(c, 0);
        return;
    }
    long long deleted = 0;
    for (int j = 2; j < c->argc; j++) {
        deleted += coord_hash_del(c, &e, c->argv[j].p, c->argv[j].len);
        if (hash_len(e) == 0) {
            break;
        }
    }
    if (hash_len(e) == 0) {
        coord_delete(c, &c->argv[1], 0);
    } else if (deleted) {
        coord_hash_modified(c, &c->argv[1], e, &c->argv[2], (size_t)(c->argc - 2), 1);
    }
    reply_int(c, deleted);
}

void cmd_hexists(struct client *c) {
    int err;
    struct kv_entry *e = hash_for_read(c, &err);
    const char *v;
    size_t vlen;
    if (!err) {
        reply_int(c, e && hash_get(e, c->argv[2].p, c->argv[2].len, &v, &vlen));
    }
}

void cmd_hlen(struct client *c) {
    int err;
    struct kv_entry *e = hash_for_read(c, &err);
    if (!err) {
        reply_int(c, e ? (long long)hash_len(e) : 0);
    }
}

void cmd_hstrlen(struct client *c) {
    int err;
    struct kv_entry *e = hash_for_read(c, &err);
    const char *v;
    size_t vlen;
    if (!err) {
        reply_int(c, e && hash_get(e, c->argv[2].p, c->argv[2].len, &v, &vlen)
                         ? (long long)vlen : 0);
    }
}

void cmd_hincrby(struct client *c) {
    long long incr, value = 0;
    if (arg_ll_or_reply(c, 3, &incr) != 0) {
        return;
    }
    struct kv_entry *e;
    const char *v;
    size_t vlen;
    if (hash_field_or_reply(c, &e, &v, &vlen) != 0) {
        return;
    }
    if (v != NULL && resp_str2ll(v, vlen, &value) != 0) {
        reply_error(c, "ERR hash value is not an integer");
        return;
    }
    if (kv_add_overflows(value, incr)) {
        reply_error(c, "ERR increment or decrement would overflow");
        return;
    }
    value += incr;
    char buf[32];
    int n = resp_ll2str(buf, value);
    hash_set_field(c, e, buf, (size_t)n);
    reply_int(c, value);
}

void cmd_hincrbyfloat(struct client *c) {
    long double incr, value = 0;
    if (arg_ld_or_reply(c, 3, &incr) != 0) {
        return;
    }
    if (isnan(incr) || isinf(incr)) {
        reply_error(c, "ERR value is NaN or Infinity");
        return;
    }
    struct kv_entry *e;
    const char *v;
    size_t vlen;
    if (hash_field_or_reply(c, &e, &v, &vlen) != 0) {
        return;
    }
    if (v != NULL && resp_str2ld(v, vlen, &value) != 0) {
        reply_error(c, "ERR hash value is not a float");
        return;
    }
    value += incr;
    if (isnan(value) || isinf(value)) {
        reply_error(c, "ERR increment would produce NaN or Infinity");
        return;
    }
    char buf[5 * 1024]; /* Redis's MAX_LONG_DOUBLE_CHARS */
    int n = resp_ld2str(buf, sizeof(buf), value);
    hash_set_field(c, e, buf, (size_t)n);
    reply_bulk(c, buf, (size_t)n);
}

/* Field/value pairs gathered before replying (HSCAN's cursor comes first but is
 * known only after the walk; HRANDFIELD picks among them). They point into the
 * hash, which does not change while they are used. */
struct pairs {
    struct kv_slice *v; /* 2 per pair */
    size_t n, cap;      /* pairs */
    const struct kv_slice *pat;
};

static void pairs_add(const char *f, size_t flen, const char *v, size_t vlen, void *arg) {
    struct pairs *p = arg;
    if (p->pat && !kv_glob_match(p->pat->p, p->pat->len, f, flen, 0)) {
        return;
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->v = kv_realloc(p->v, p->cap * 2 * sizeof(*p->v));
    }
    p->v[2 * p->n] = (struct kv_slice){f, flen};
    p->v[2 * p->n + 1] = (struct kv_slice){v, vlen};
    p->n++;
}

void cmd_hscan(struct client *c) {
    uint64_t cursor;
    const struct kv_slice *pat;
    long count;
    int rc = keys_scan_cursor_or_reply(c, 2, &cursor);
    if (rc < 0) {
        return;
    }
    int err;
    struct kv_entry *e = hash_for_read(c, &err);
    if (err) {
        return;
    }
    if (e == NULL) {
        /* as Redis: a missing key answers the empty scan before options are read */
        keys_reply_scan_end(c);
        return;
    }
    if (keys_scan_opts_or_reply(c, 3, &pat, &count, NULL) != 0) {
        return;
    }
    if (rc > 0) {
        keys_reply_scan_end(c); /* a cursor past every block (>= 2^53) */
        return;
    }
    struct pairs p = {NULL, 0, 0, pat};
    uint64_t next = hash_scan(e, cursor, count, pairs_add, &p);
    reply_array(c, 2);
    keys_reply_scan_cursor(c, next);
    reply_array(c, (long long)p.n * 2);
    for (size_t i = 0; i < p.n * 2; i++) {
        reply_bulk(c, p.v[i].p, p.v[i].len);
    }
    kv_free(p.v);
}

static void reply_field(struct client *c, const char *f, size_t flen, const char *v,
                        size_t vlen, int withvalues) {
    if (withvalues && c->resp > 2) {
        reply_array(c, 2);
    }
    reply_bulk(c, f, flen);
    if (withvalues) {
        reply_bulk(c, v, vlen);
    }
}

/* HRANDFIELD's repeating form (a negative count) writes count elements: unless a
 * client-output-buffer-limit hard limit of at most this many bytes stops it
 * first (Redis streams on until memory runs out), kvd refuses a count whose reply
 * must pass this many bytes and closes a client whose reply passes it anyway
 * (long fields). */
#define HRANDFIELD_REPLY_MAX (256LL * 1024 * 1024)
#define RESP_MIN_BULK 6 /* "$0\r\n\r\n": the smallest element of the reply */

/* Does the client's hard output limit stop a reply before HRANDFIELD_REPLY_MAX?
 * (0, or a value past LLONG_MAX stored negative, is no limit.) */
static int hrandfield_client_limited(void) {
    long long hard = server.client_output_buffer_limit_hard;
    return hard > 0 && hard <= HRANDFIELD_REPLY_MAX;
}

/* Stops a repeating HRANDFIELD reply that went over the client's output limit
 * (Redis 7.0 stops there too: the client is being closed) or over
 * HRANDFIELD_REPLY_MAX. Returns 1 when stopped. */
static int hrandfield_reply_stopped(struct client *c) {
    if (coord_reply_over_limit(c)) {
        return 1;
    }
    if (!hrandfield_client_limited() &&
        (long long)resp_out_pending(&c->out) > HRANDFIELD_REPLY_MAX) {
        server_log(LL_WARNING, "Closing client id=%llu: HRANDFIELD reply over %lld bytes",
                   (unsigned long long)c->id, HRANDFIELD_REPLY_MAX);
        coord_close_client(c);
        return 1;
    }
    return 0;
}

/* HRANDFIELD key count [WITHVALUES], as Redis's hrandfieldWithCountCommand:
 * a negative count may repeat fields, a positive one returns distinct ones.
 * The count's range was checked by the caller (cmd_hrandfield). */
static void hrandfield_count(struct client *c, long long l, int withvalues) {
    int err;
    struct kv_entry *e = hash_for_read(c, &err);
    if (err) {
        return;
    }
    if (e == NULL || l == 0) {
        reply_array(c, 0);
        return;
    }
    size_t size = hash_len(e);
    long long mult = (withvalues && c->resp == 2) ? 2 : 1;
    if (l < 0) {
        long long count = -l; /* l >= -LONG_MAX: no overflow */
        if (!hrandfield_client_limited() && count > HRANDFIELD_REPLY_MAX / RESP_MIN_BULK / mult) {
            reply_error(c, "ERR value is out of range");
            return;
        }
        reply_array(c, count * mult);
        for (long long i = 0; i < count; i++) {
            const char *f, *v;
            size_t flen, vlen;
            if (i % 1024 == 1023 && hrandfield_reply_stopped(c)) {
                break; /* the client is closed: the rest would be dropped */
            }
            hash_random(e, &f, &flen, &v, &vlen);
            reply_field(c, f, flen, v, vlen, withvalues);
        }
        return;
    }
    struct pairs p = {NULL, 0, 0, NULL};
    hash_foreach(e, pairs_add, &p);
    size_t count = (unsigned long long)l >= size ? size : (size_t)l;
    /* a partial Fisher-Yates shuffle picks `count` distinct pairs */
    for (size_t i = 0; i < count && count < size; i++) {
        size_t j = i + (size_t)(obj_rand64() % (size - i));
        struct kv_slice f = p.v[2 * i], v = p.v[2 * i + 1];
        p.v[2 * i] = p.v[2 * j];
        p.v[2 * i + 1] = p.v[2 * j + 1];
        p.v[2 * j] = f;
        p.v[2 * j + 1] = v;
    }
    reply_array(c, (long long)count * mult);
    for (size_t i = 0; i < count; i++) {
        reply_field(c, p.v[2 * i].p, p.v[2 * i].len, p.v[2 * i + 1].p, p.v[2 * i + 1].len,
                    withvalues);
    }
    kv_free(p.v);
}

void cmd_hrandfield(struct client *c) {
    if (c->argc >= 3) {
        long long l;
        if (arg_range_ll_or_reply(c, 2, -LONG_MAX, LONG_MAX, &l) != 0) {
            return;
        }
        if (c->argc > 4 || (c->argc == 4 && !arg_is(c, 3, "withvalues"))) {
            reply_syntax_error(c);
            return;
        }
        if (c->argc == 4 && (l < -LONG_MAX / 2 || l > LONG_MAX / 2)) {
            /* as Redis 7.0.15: count * 2 replies must not overflow */
            reply_error(c, "ERR value is out of range");
            return;
        }
        hrandfield_count(c, l, c->argc == 4);
        return;
    }
    int err;
    struct kv_entry *e = hash_for_read(c, &err);
    if (err) {
        return;
    }
    if (e == NULL) {
        reply_null(c);
        return;
    }
    const char *f, *v;
    size_t flen, vlen;
    hash_random(e, &f, &flen, &v, &vlen);
    reply_bulk(c, f, flen);
}
