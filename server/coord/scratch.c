/* server/coord/scratch.c: the cluster coordinator's per-command SCRATCH keyspace
 * (DESIGN.md "Cluster", steps 1-3). A command that runs through the cluster sees
 * the records its keys' replicas answered, loaded into a set of databases of its
 * own, never into the node's store; its unchanged handler runs there; what it
 * changed is read back as records to ship. The steps themselves (reads, writes,
 * holding the reply) are server/cmd/coordinate.c's; cluster/ does the network.
 *
 * HOW IT WORKS
 *   coord_scratch_enter swaps, for the duration of one call():
 *     - server.db (the array every coord_* call and SELECT resolve a database
 *       through) for an array of scratch databases, and c->db with it;
 *     - store_be (the persistent backend) for none, so a miss in the scratch
 *       keyspace never reads the node's engine;
 *     - the store's event subscribers (WATCH, dirty counters, persistence) for
 *       one recorder, which notes every key written or deleted and holds the
 *       running client's reply (CLIENT_HOLD_CLUSTER) at the first change, so
 *       call() records that reply as depending on the writes (client.c).
 *   coord_scratch_leave turns each noted key (sorted, once each) into a change:
 *   the value's envelope (persist_encode) with its expire-at, or a tombstone when
 *   the key is absent; empties the scratch databases and restores everything.
 *   Nothing of the node's own keyspace, engine, WATCH state or counters is
 *   touched while a scratch run is in force.
 *
 * Threading: loop thread only; one scratch run at a time (not re-entrant).
 */
#include <stdlib.h>
#include <string.h>

#include "server/coord/coord.h"
#include "server/store/store.h"

struct dirty {
    int db;
    char *key;
    size_t klen;
    int whole;             /* the change named no fields (or deleted the key) */
    struct kv_slice *f;    /* the hash fields it named: owned copies */
    size_t nf;
    size_t seq;            /* the order changes were made in */
};

static struct kv_db **scratch;             /* server.databases of them, kept */
static int nscratch;
static struct kv_db **saved_db;            /* the node's, while a run is in force */
static struct store_backend saved_be;
static struct client *scratch_client;
static struct dirty *dirty;
static size_t ndirty, capdirty;
static struct dirty *loaded;               /* keys loaded as field records */
static size_t nloaded, caploaded;

/* Was key loaded from field records (so that naming its changed fields is
 * enough)? */
static int loaded_as_fields(int db, const char *key, size_t klen) {
    for (size_t i = 0; i < nloaded; i++) {
        if (loaded[i].db == db && loaded[i].klen == klen && memcmp(loaded[i].key, key, klen) == 0) {
            return 1;
        }
    }
    return 0;
}

int coord_scratch_active(void) {
    return saved_db != NULL;
}

static void record(const struct store_ev *ev, void *arg) {
    (void)arg;
    if (ev->key == NULL || ev->db < 0) {
        return;
    }
    if (ndirty == capdirty) {
        capdirty = capdirty ? capdirty * 2 : 8;
        dirty = kv_realloc(dirty, capdirty * sizeof(*dirty));
    }
    char *k = kv_malloc(ev->klen + 1);
    if (ev->klen) {
        memcpy(k, ev->key, ev->klen);
    }
    k[ev->klen] = '\0';
    struct dirty *x = &dirty[ndirty++];
    *x = (struct dirty){ev->db, k, ev->klen, 1, NULL, 0, ndirty};
    if (ev->type == STORE_EV_WRITTEN && ev->fields && ev->nfields > 0) {
        x->whole = 0;
        x->f = kv_malloc(ev->nfields * sizeof(*x->f));
        for (size_t i = 0; i < ev->nfields; i++) {
            const struct kv_slice *f = &ev->fields[i * ev->stride];
            char *p = kv_malloc(f->len ? f->len : 1);
            memcpy(p, f->p, f->len);
            x->f[x->nf++] = (struct kv_slice){p, f->len};
        }
    }
    struct client *c = ev->c ? ev->c : scratch_client;
    if (c && !(c->hold_now & CLIENT_HOLD_CLUSTER)) {
        /* every command that changes a key: its reply is a span of its own even
         * when an earlier command of the pipeline batch holds c already */
        client_hold(c, CLIENT_HOLD_CLUSTER);
    }
}

void coord_scratch_enter(struct client *c) {
    int n = server.databases > 0 ? server.databases : 16;
    if (scratch == NULL || nscratch != n) {
        /* created once (databases is fixed at start-up) and kept, empty */
        scratch = kv_calloc((size_t)n, sizeof(*scratch));
        for (int i = 0; i < n; i++) {
            scratch[i] = kv_calloc(1, sizeof(**scratch));
            scratch[i]->id = i;
            kv_dict_init(&scratch[i]->keys);
        }
        nscratch = n;
    }
    saved_db = server.db;
    server.db = scratch;
    c->db = scratch[c->db_id];
    saved_be = store_be;
    memset(&store_be, 0, sizeof(store_be));
    store_subs_isolate(STORE_EV_BIT(STORE_EV_WRITTEN) | STORE_EV_BIT(STORE_EV_DELETED), record,
                       NULL);
    scratch_client = c;
    ndirty = 0;
}

int coord_scratch_load(int db_id, const char *key, size_t klen, struct kv_version v,
                       long long expire_at, const char *val, size_t vlen) {
    if (!coord_scratch_active() || db_id < 0 || db_id >= nscratch) {
        return -1;
    }
    if (expire_at > 0 && expire_at <= server.mstime) {
        return 0; /* expired: absent, as the node's own lookup would say */
    }
    struct kv_entry *e = persist_decode(key, klen, val, vlen, expire_at);
    if (e == NULL) {
        return -1;
    }
    ks_entry_set_version(e, v);
    uint64_t token = ks_token(key, klen);
    struct kv_db *db = scratch[db_id];
    struct kv_entry *old = ks_find(db, key, klen, token);
    if (old) {
        ks_replace(db, old, e, token); /* the same key named twice: the last one */
    } else {
        ks_insert(db, e, token);
    }
    return 1;
}

int coord_scratch_load_hash(int db_id, const char *key, size_t klen, struct kv_version v,
                            long long expire_at, const struct store_field *f, size_t n) {
    if (!coord_scratch_active() || db_id < 0 || db_id >= nscratch) {
        return -1;
    }
    if (expire_at > 0 && expire_at <= server.mstime) {
        return 0;
    }
    struct kv_entry *e = hash_new_table(key, klen, expire_at);
    for (size_t i = 0; i < n; i++) {
        if (!f[i].deleted) {
            hash_set(NULL, &e, f[i].f, f[i].flen, f[i].val, f[i].vlen);
        }
    }
    if (hash_len(e) == 0) {
        ks_entry_free(e);
        return 0;
    }
    if (nloaded == caploaded) {
        caploaded = caploaded ? caploaded * 2 : 4;
        loaded = kv_realloc(loaded, caploaded * sizeof(*loaded));
    }
    char *k = kv_malloc(klen ? klen : 1);
    memcpy(k, key, klen);
    loaded[nloaded++] = (struct dirty){.db = db_id, .key = k, .klen = klen};
    ks_entry_set_version(e, v);
    uint64_t token = ks_token(key, klen);
    struct kv_db *db = scratch[db_id];
    struct kv_entry *old = ks_find(db, key, klen, token);
    if (old) {
        ks_replace(db, old, e, token);
    } else {
        ks_insert(db, e, token);
    }
    return 1;
}

static int dirty_cmp(const void *a, const void *b) {
    const struct dirty *x = a, *y = b;
    if (x->db != y->db) {
        return x->db < y->db ? -1 : 1;
    }
    size_t m = x->klen < y->klen ? x->klen : y->klen;
    int r = m ? memcmp(x->key, y->key, m) : 0;
    if (r != 0) {
        return r;
    }
    return x->klen < y->klen ? -1 : x->klen > y->klen;
}

/* By key, then in the order the changes were made. */
static int dirty_order(const void *a, const void *b) {
    int c = dirty_cmp(a, b);
    if (c != 0) {
        return c;
    }
    const struct dirty *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void dirty_free(struct dirty *d) {
    for (size_t i = 0; i < d->nf; i++) {
        kv_free((char *)d->f[i].p);
    }
    kv_free(d->f);
    d->f = NULL;
    d->nf = 0;
}

/* Folds a later change of the same key into the kept one (to: its fields). */
static void dirty_fold(struct dirty *to, struct dirty *from) {
    kv_free(from->key);
    if (to->whole || from->whole) {
        to->whole = 1;
        dirty_free(to);
        dirty_free(from);
        return;
    }
    to->f = kv_realloc(to->f, (to->nf + from->nf) * sizeof(*to->f));
    memcpy(to->f + to->nf, from->f, from->nf * sizeof(*from->f));
    to->nf += from->nf;
    kv_free(from->f);
    from->f = NULL;
    from->nf = 0;
}

static void field_out(struct coord_field *o, const char *f, size_t flen, const char *v,
                      size_t vlen, int deleted) {
    char *p = kv_malloc(flen + vlen + 1);
    memcpy(p, f, flen);
    if (vlen) {
        memcpy(p + flen, v, vlen);
    }
    *o = (struct coord_field){p, flen, deleted ? NULL : p + flen, vlen, deleted};
}

struct all_ctx {
    struct coord_change *x;
    size_t cap;
};

static void all_field(const char *f, size_t flen, const char *v, size_t vlen, void *arg) {
    struct all_ctx *a = arg;
    field_out(&a->x->fv[a->x->nfv++], f, flen, v, vlen, 0);
}

/* A big hash's field records: every field (whole), else the fields d named, each
 * with its value now or as deleted. */
static void big_fields(struct coord_change *x, struct kv_entry *e, struct dirty *d) {
    x->big = 1;
    x->whole = d->whole || !loaded_as_fields(d->db, d->key, d->klen);
    if (x->whole) {
        x->fv = kv_malloc((hash_len(e) ? hash_len(e) : 1) * sizeof(*x->fv));
        struct all_ctx a = {x, hash_len(e)};
        hash_foreach(e, all_field, &a);
        return;
    }
    x->fv = kv_malloc(d->nf * sizeof(*x->fv));
    for (size_t i = 0; i < d->nf; i++) {
        const char *v = NULL;
        size_t vlen = 0;
        int present = hash_get(e, d->f[i].p, d->f[i].len, &v, &vlen);
        field_out(&x->fv[x->nfv++], d->f[i].p, d->f[i].len, v, present ? vlen : 0, !present);
    }
}

/* The final state of key d as a change. */
static void change_of(struct coord_change *x, struct dirty *d) {
    x->db = d->db;
    x->key = d->key;
    x->klen = d->klen;
    struct kv_entry *e = NULL;
    if (x->db >= 0 && x->db < nscratch) {
        e = ks_find(scratch[x->db], x->key, x->klen, ks_token(x->key, x->klen));
    }
    if (e && !ks_entry_expired(e)) {
        persist_encode(e, &x->val, &x->vlen);
        x->expire_at = ks_entry_expire(e);
        if (e->type == KS_TYPE_HASH && e->enc == KS_ENC_HASHTABLE) {
            big_fields(x, e, d);
        }
    } else {
        x->deleted = 1;
    }
    dirty_free(d);
}

size_t coord_scratch_leave(struct client *c, struct coord_change **out) {
    *out = NULL;
    size_t n = 0;
    if (!coord_scratch_active()) {
        return 0;
    }
    if (ndirty > 0) {
        qsort(dirty, ndirty, sizeof(*dirty), dirty_order);
        struct coord_change *ch = kv_calloc(ndirty, sizeof(*ch));
        size_t kept = 0;
        for (size_t i = 1; i <= ndirty; i++) {
            if (i < ndirty && dirty_cmp(&dirty[kept], &dirty[i]) == 0) {
                dirty_fold(&dirty[kept], &dirty[i]);
                continue;
            }
            change_of(&ch[n++], &dirty[kept]);
            kept = i;
        }
        *out = ch;
    }
    ndirty = 0;
    for (size_t i = 0; i < nloaded; i++) {
        kv_free(loaded[i].key);
    }
    nloaded = 0;
    for (int i = 0; i < nscratch; i++) {
        if (ks_db_size(scratch[i]) > 0 || scratch[i]->vol_len > 0) {
            ks_flush_db(scratch[i], 0);
        }
    }
    server.db = saved_db;
    saved_db = NULL;
    c->db = server.db[c->db_id];
    store_be = saved_be;
    store_subs_restore();
    scratch_client = NULL;
    return n;
}

void coord_changes_free(struct coord_change *ch, size_t n) {
    for (size_t i = 0; i < n; i++) {
        kv_free(ch[i].key);
        kv_free(ch[i].val);
        for (size_t j = 0; j < ch[i].nfv; j++) {
            kv_free(ch[i].fv[j].f);
        }
        kv_free(ch[i].fv);
    }
    kv_free(ch);
}
