/* server/store/hashver.c: a cluster replica's big hashes, field by field (issue 10:
 * "Big hashes replicate field records, not the whole hash"; the record form and
 * its merge rules are cluster/fields.h's, which this file applies to the store
 * without knowing the wire).
 *
 * A big hash (hashtable encoding) that has received field records keeps, beside
 * its fields, a second dict (kv_dict.vers) with one versioned entry per field a
 * field record wrote: its version, and whether it is a tombstone (value byte 1).
 * kv_dict.floor is the key floor: every field write older than it was superseded
 * by a whole-key write. A field with no entry in vers carries the floor's version.
 * The hash entry's own version is the newest record applied to the key as a whole
 * (it orders the key's TTL and the whole-key writes against the fields).
 *
 * HOW IT WORKS (a worked example). A replica holds h = {a@5, b@6}, floor 1.
 *   field record {b = tombstone@8, c = "3"@7}, floor 1, version 8:
 *     b: 8 > 6, deleted (vers: b tombstone@8); c: inserted (vers: c@7);
 *     the entry's version becomes 8.
 *   a plain tombstone (DEL) at 7, older than the key's 8: the floor rises to 7,
 *     a@5 goes (and any tombstone below 7); c@7 stays: h = {c}.
 *   a late field record {b = "2"@6}: below b's tombstone@8, ignored.
 * Every replica ends with the same fields whatever order these arrive in.
 *
 * Bounds: tombstones stay until a floor passes them; at most HASHVER_MAX_TOMBS
 * per hash: beyond, the oldest are forgotten (counted: INFO kvdcluster
 * field_tombstones_dropped; an older write of that field arriving
 * later would then be applied).
 *
 * Limits (README "Cluster mode"): the versions, tombstones and floor live in
 * memory: in persistent mode the field records on disk carry the hash's version,
 * so a hash reloaded from disk (restart, or evicted from the cache) has every
 * field at its version and no tombstones; read repair converges it again. A hash
 * whose last live field goes away is deleted (its tombstones with it).
 *
 * Threading: loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "server/store/store.h"

#define HASHVER_MAX_TOMBS 65536

static uint64_t tombs_dropped;

uint64_t store_field_tombstones_dropped(void) {
    return tombs_dropped;
}

static struct kv_dict *vers_of(struct kv_entry *e) {
    struct kv_dict *d = ks_val_dict(e);
    if (d->vers == NULL) {
        d->vers = kv_malloc(sizeof(*d->vers));
        kv_dict_init(d->vers);
        d->floor = ks_entry_version(e);
    }
    return d->vers;
}

/* The record of field f in hash dict d: 1 with its version and kind, 0 none. */
static int field_state(struct kv_dict *d, const char *f, size_t flen, uint64_t tok,
                       struct kv_version *v, int *deleted) {
    struct kv_entry *ve = d->vers ? kv_dict_find(d->vers, f, flen, tok) : NULL;
    if (ve) {
        size_t n;
        *v = ks_entry_version(ve);
        *deleted = ks_val_bytes(ve, &n)[0] == 1;
        return 1;
    }
    if (kv_dict_find(d, f, flen, tok)) {
        *v = d->floor;
        *deleted = 0;
        return 1;
    }
    return 0;
}

static void vers_set(struct kv_dict *vers, const char *f, size_t flen, uint64_t tok,
                     struct kv_version v, int deleted) {
    struct kv_entry *ne = ks_entry_new(KS_TYPE_STRING, KS_ENC_EMBSTR, f, flen, 1, 0, 0);
    size_t n;
    ks_val_bytes(ne, &n)[0] = deleted ? 1 : 0;
    ks_entry_set_version(ne, v);
    struct kv_entry *old = kv_dict_unlink(vers, f, flen, tok);
    kv_free(old);
    kv_dict_insert(vers, ne, tok);
}

struct floor_ctx {
    struct kv_dict *d;
    struct kv_version floor;
    struct kv_entry **drop; /* fields (of d) below the floor */
    size_t n, cap;
    struct kv_entry **dropv; /* version entries below it */
    size_t nv, capv;
};

static void push(struct kv_entry ***a, size_t *n, size_t *cap, struct kv_entry *e) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *a = kv_realloc(*a, *cap * sizeof(**a));
    }
    (*a)[(*n)++] = e;
}

static void floor_field(struct kv_entry *fe, void *arg) {
    struct floor_ctx *x = arg;
    size_t flen;
    const char *f = ks_entry_key(fe, &flen);
    struct kv_entry *ve = kv_dict_find(x->d->vers, f, flen, ks_token(f, flen));
    struct kv_version v = ve ? ks_entry_version(ve) : x->d->floor;
    if (kv_version_cmp(v, x->floor) < 0) {
        push(&x->drop, &x->n, &x->cap, fe);
    }
}

static void floor_vers(struct kv_entry *ve, void *arg) {
    struct floor_ctx *x = arg;
    if (kv_version_cmp(ks_entry_version(ve), x->floor) < 0) {
        push(&x->dropv, &x->nv, &x->capv, ve);
    }
}

/* Raises e's floor to floor: drops every field and tombstone older. Returns how
 * many live fields went. */
static size_t raise_floor(struct kv_entry *e, struct kv_version floor) {
    struct kv_dict *d = ks_val_dict(e);
    struct kv_dict *vers = vers_of(e);
    if (kv_version_cmp(floor, d->floor) <= 0) {
        return 0;
    }
    struct floor_ctx x = {d, floor, NULL, 0, 0, NULL, 0, 0};
    kv_dict_foreach(d, floor_field, &x);
    kv_dict_foreach(vers, floor_vers, &x);
    for (size_t i = 0; i < x.n; i++) {
        size_t flen;
        const char *f = ks_entry_key(x.drop[i], &flen);
        ks_entry_free(kv_dict_unlink(d, f, flen, ks_token(f, flen)));
    }
    for (size_t i = 0; i < x.nv; i++) {
        size_t flen;
        const char *f = ks_entry_key(x.dropv[i], &flen);
        kv_free(kv_dict_unlink(vers, f, flen, ks_token(f, flen)));
    }
    d->floor = floor;
    kv_free(x.drop);
    kv_free(x.dropv);
    kv_dict_maybe_shrink(d);
    return x.n;
}

/* Applies one field record to hash e; 1 when it changed something. */
static int apply_one(struct kv_db *db, struct kv_entry **ep, const struct store_field *f) {
    struct kv_dict *d = ks_val_dict(*ep);
    if (kv_version_cmp(f->v, d->floor) < 0) {
        return 0;
    }
    uint64_t tok = ks_token(f->f, f->flen);
    struct kv_version cur;
    int cur_deleted;
    if (field_state(d, f->f, f->flen, tok, &cur, &cur_deleted) &&
        kv_record_cmp(f->v, f->deleted, cur, cur_deleted) <= 0) {
        return 0;
    }
    if (f->deleted) {
        hash_del(db, ep, f->f, f->flen);
    } else {
        hash_set(db, ep, f->f, f->flen, f->val, f->vlen);
    }
    vers_set(vers_of(*ep), f->f, f->flen, tok, f->v, f->deleted);
    return 1;
}

struct tomb_ctx {
    struct kv_entry **v;
    size_t n, cap;
};

static void tomb_collect(struct kv_entry *ve, void *arg) {
    size_t n;
    if (ks_val_bytes(ve, &n)[0] == 1) {
        struct tomb_ctx *x = arg;
        push(&x->v, &x->n, &x->cap, ve);
    }
}

static int tomb_older(const void *a, const void *b) {
    return kv_version_cmp(ks_entry_version(*(struct kv_entry *const *)a),
                          ks_entry_version(*(struct kv_entry *const *)b));
}

/* Keeps at most HASHVER_MAX_TOMBS tombstones in vers: forgets the oldest tenth
 * beyond it. */
static void bound_tombs(struct kv_dict *vers) {
    if (vers->count <= HASHVER_MAX_TOMBS) {
        return;
    }
    struct tomb_ctx x = {NULL, 0, 0};
    kv_dict_foreach(vers, tomb_collect, &x);
    if (x.n > HASHVER_MAX_TOMBS) {
        qsort(x.v, x.n, sizeof(*x.v), tomb_older);
        size_t drop = x.n - HASHVER_MAX_TOMBS + HASHVER_MAX_TOMBS / 10;
        for (size_t i = 0; i < drop; i++) {
            size_t flen;
            const char *f = ks_entry_key(x.v[i], &flen);
            kv_free(kv_dict_unlink(vers, f, flen, ks_token(f, flen)));
        }
        tombs_dropped += drop;
    }
    kv_free(x.v);
}

/* The state held for a key that is not a live big hash: 1 with its version and
 * kind, 0 nothing, -1 error. */
static int held_plain(int db_id, struct kv_entry *e, const char *key, size_t klen,
                      uint64_t token, struct kv_version *v, int *deleted) {
    if (e) {
        *v = ks_entry_version(e);
        *deleted = ks_entry_expired(e);
        return 1;
    }
    if (!persist_on()) {
        return 0;
    }
    long long texp;
    *deleted = 1;
    return persist_read_deleted(db_id, key, klen, token, v, &texp);
}

static int is_big_hash(const struct kv_entry *e) {
    return e && e->type == KS_TYPE_HASH && e->enc == KS_ENC_HASHTABLE && !ks_entry_expired(e);
}

/* The key's live fields are gone: it is deleted, with a tombstone at the floor
 * (persistent mode) so that field writes above the floor still apply later. */
static void delete_emptied(struct kv_db *db, const char *key, size_t klen, uint64_t token,
                           struct kv_entry *e) {
    struct store_ev ev = {.type = STORE_EV_DELETED, .db = db->id, .key = key, .klen = klen,
                          .e = e, .version = ks_val_dict(e)->floor,
                          .old_expire = ks_entry_expire(e), .existed = 1, .applied = 1};
    store_emit(&ev);
    ks_delete(db, key, klen, token, 0);
}

/* Field records over a key that is not a big hash (nothing, a tombstone, another
 * value or a small hash) at version held: a new big hash of the fields at or above
 * max(floor, held). */
static int apply_new(struct kv_db *db, const char *key, size_t klen, uint64_t token,
                     struct kv_entry *old, const struct store_fields *r, struct kv_version held) {
    struct kv_version floor = kv_version_cmp(r->floor, held) >= 0 ? r->floor : held;
    long long exp = r->expire_at > 0 && r->expire_at <= server.mstime ? 0 : r->expire_at;
    struct kv_entry *e = hash_new_table(key, klen, exp);
    ks_entry_set_version(e, r->version);
    vers_of(e);
    ks_val_dict(e)->floor = floor;
    for (size_t i = 0; i < r->n; i++) {
        apply_one(NULL, &e, &r->f[i]);
    }
    if (hash_len(e) == 0 || (r->expire_at > 0 && r->expire_at <= server.mstime)) {
        ks_entry_free(e);
        if (old) {
            struct kv_slice ks = {key, klen};
            store_delete(NULL, db, &ks, old, token, floor, 0);
            return STORE_APPLIED;
        }
        return STORE_IGNORED;
    }
    int existed = old != NULL;
    long long old_exp = old ? ks_entry_expire(old) : 0;
    struct kv_slice ks = {key, klen};
    store_link(db, old, e, token);
    store_written(NULL, db, &ks, e, existed, old_exp, NULL, 0, 0);
    return STORE_APPLIED;
}

/* Field records over a live big hash: per field, in place. */
static int apply_in_place(struct kv_db *db, const char *key, size_t klen, uint64_t token,
                          struct kv_entry *e, const struct store_fields *r) {
    vers_of(e);
    size_t dropped = raise_floor(e, r->floor);
    struct kv_slice *changed = kv_malloc((r->n ? r->n : 1) * sizeof(*changed));
    size_t nch = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (apply_one(db, &e, &r->f[i])) {
            changed[nch++] = (struct kv_slice){r->f[i].f, r->f[i].flen};
        }
    }
    long long old_exp = ks_entry_expire(e);
    int newer = kv_version_cmp(r->version, ks_entry_version(e)) > 0;
    if (newer) {
        e = r->expire_at ? ks_set_expire(db, e, r->expire_at) : ks_persist(db, e);
        ks_entry_set_version(e, r->version);
    }
    int rc = dropped || nch || newer ? STORE_APPLIED : STORE_IGNORED;
    if (rc == STORE_APPLIED) {
        bound_tombs(ks_val_dict(e)->vers);
        struct kv_slice ks = {key, klen};
        if (hash_len(e) == 0 || ks_entry_expired(e)) {
            delete_emptied(db, key, klen, token, e);
        } else if (dropped) {
            store_written(NULL, db, &ks, e, 1, old_exp, NULL, 0, 0); /* stored whole */
        } else {
            store_written(NULL, db, &ks, e, 1, old_exp, changed, nch, 1);
        }
    }
    kv_free(changed);
    return rc;
}

int store_apply_fields(int db_id, const char *key, size_t klen, const struct store_fields *r) {
    if (db_id < 0 || db_id >= server.databases || server.db == NULL ||
        (persist_on() && persist_engine() == NULL)) {
        return STORE_ERROR;
    }
    if (r->version.hlc < store_floor(db_id)) {
        return STORE_IGNORED;
    }
    struct kv_db *db = server.db[db_id];
    uint64_t token = ks_token(key, klen);
    struct kv_entry *e = store_peek(db, key, klen, token);
    hlc_observe(r->version.hlc);
    if (is_big_hash(e)) {
        return apply_in_place(db, key, klen, token, e, r);
    }
    struct kv_version held = {0, 0};
    int deleted = 0;
    int have = held_plain(db_id, e, key, klen, token, &held, &deleted);
    if (have < 0) {
        return STORE_ERROR;
    }
    if (have && kv_record_cmp(held, deleted, r->version, 0) > 0) {
        return STORE_IGNORED; /* a whole-key write newer than the key's version */
    }
    if (e && ks_entry_expired(e)) {
        ks_expire_now(db, e, token);
        e = NULL;
    }
    return apply_new(db, key, klen, token, e, r, have ? held : (struct kv_version){0, 0});
}

int store_hash_floor_raise(struct kv_db *db, const char *key, size_t klen, uint64_t token,
                           struct kv_entry *e, struct kv_version v) {
    if (!is_big_hash(e) || kv_version_cmp(v, ks_val_dict(e)->vers ? ks_val_dict(e)->floor
                                                                   : ks_entry_version(e)) <= 0) {
        return STORE_IGNORED;
    }
    hlc_observe(v.hlc);
    long long old_exp = ks_entry_expire(e);
    size_t dropped = raise_floor(e, v);
    if (hash_len(e) == 0) {
        delete_emptied(db, key, klen, token, e);
    } else if (dropped) {
        struct kv_slice ks = {key, klen};
        store_written(NULL, db, &ks, e, 1, old_exp, NULL, 0, 0);
    }
    return STORE_APPLIED;
}

struct read_ctx {
    struct kv_dict *d;
    store_field_fn *fn;
    void *arg;
};

static void read_live(struct kv_entry *fe, void *arg) {
    struct read_ctx *x = arg;
    struct store_field f = {0};
    f.f = ks_entry_key(fe, &f.flen);
    f.val = (const char *)ks_val_bytes(fe, &f.vlen);
    struct kv_entry *ve = x->d->vers ? kv_dict_find(x->d->vers, f.f, f.flen,
                                                    ks_token(f.f, f.flen)) : NULL;
    f.v = ve ? ks_entry_version(ve) : x->d->floor;
    x->fn(x->arg, &f);
}

static void read_tomb(struct kv_entry *ve, void *arg) {
    size_t n;
    if (ks_val_bytes(ve, &n)[0] != 1) {
        return;
    }
    struct read_ctx *x = arg;
    struct store_field f = {0};
    f.f = ks_entry_key(ve, &f.flen);
    f.v = ks_entry_version(ve);
    f.deleted = 1;
    x->fn(x->arg, &f);
}

int store_read_fields(int db_id, const char *key, size_t klen, struct store_fields *head,
                      store_field_fn *fn, void *arg) {
    if (db_id < 0 || db_id >= server.databases || server.db == NULL) {
        return -1;
    }
    struct kv_db *db = server.db[db_id];
    struct kv_entry *e = store_peek(db, key, klen, ks_token(key, klen));
    if (!is_big_hash(e)) {
        return 0;
    }
    struct kv_dict *d = ks_val_dict(e);
    memset(head, 0, sizeof(*head));
    head->version = ks_entry_version(e);
    head->expire_at = ks_entry_expire(e);
    head->floor = d->vers ? d->floor : head->version;
    struct read_ctx x = {d, fn, arg};
    if (d->vers == NULL) {
        d->floor = head->version; /* what read_live reports for every field */
    }
    kv_dict_foreach(d, read_live, &x);
    if (d->vers) {
        kv_dict_foreach(d->vers, read_tomb, &x);
    }
    return 1;
}
