/* server/store/store.c: the store as versioned records (store.h): the last-write-wins
 * apply, the record read, and the token-range iterator, over the in-memory
 * keyspace (ks.h) and, in persistent mode, the engine through persist.c. What it
 * leaves to others: stamping local writes (coord.c), the on-disk layout and the
 * batch (persist.c), replication (the cluster, later).
 */
#include <stdlib.h>
#include <string.h>

#include "server/store/hlc.h"
#include "server/store/persist.h"
#include "server/store/store.h"

static struct {
    char *enc;        /* store_get_record's envelope */
    size_t enclen;
} S;

/* ------------------------------------------------------------------------------
 * Events (events.h) and the backend
 * ------------------------------------------------------------------------------ */
struct store_sub store_subs[STORE_MAX_SUBS];
int store_nsubs;
unsigned store_ev_mask;
struct store_sub_call store_by_type[STORE_EV_COUNT][STORE_MAX_SUBS + 1];
long long *store_count_by_type[STORE_EV_COUNT][STORE_MAX_SUBS + 1];
struct store_backend store_be;

static struct {
    long long *counter;
    unsigned mask;
} counters[STORE_MAX_SUBS];
static int ncounters;
static int isolated;             /* store_subs_isolate in force: iso alone hears */
static struct store_sub iso;

/* Rebuilds the dispatch tables (events.h) from store_subs and the counters, or,
 * while isolated, from iso alone (no counter). */
static void subs_rebuild(void) {
    const struct store_sub *subs = isolated ? &iso : store_subs;
    int nsubs = isolated ? 1 : store_nsubs;
    int ncount = isolated ? 0 : ncounters;
    store_ev_mask = 0;
    for (int t = 0; t < STORE_EV_COUNT; t++) {
        int n = 0;
        for (int i = 0; i < ncount; i++) {
            if (counters[i].mask & STORE_EV_BIT(t)) {
                store_count_by_type[t][n++] = counters[i].counter;
            }
        }
        store_count_by_type[t][n] = NULL;
        n = 0;
        for (int i = 0; i < nsubs; i++) {
            const struct store_sub *s = &subs[i];
            if (s->mask & STORE_EV_BIT(t)) {
                store_by_type[t][n++] = (struct store_sub_call){s->fn, s->arg};
            }
        }
        store_by_type[t][n] = (struct store_sub_call){NULL, NULL};
    }
    for (int i = 0; i < nsubs; i++) {
        store_ev_mask |= subs[i].mask & STORE_EV_ALL;
    }
}

void store_subs_isolate(unsigned mask, store_sub_fn fn, void *arg) {
    iso = (struct store_sub){fn, arg, mask, STORE_SUB_OBSERVER};
    isolated = 1;
    subs_rebuild();
}

void store_subs_restore(void) {
    isolated = 0;
    subs_rebuild();
}

int store_subscribe(int rank, unsigned mask, store_sub_fn fn, void *arg) {
    for (int i = 0; i < store_nsubs; i++) {
        if (store_subs[i].fn == fn && store_subs[i].arg == arg) {
            store_subs[i].mask = mask;
            subs_rebuild();
            return 0;
        }
    }
    if (store_nsubs == STORE_MAX_SUBS) {
        return -1;
    }
    int at = store_nsubs; /* after every subscriber of the same or a lower rank */
    while (at > 0 && store_subs[at - 1].rank > rank) {
        store_subs[at] = store_subs[at - 1];
        at--;
    }
    store_subs[at] = (struct store_sub){fn, arg, mask, rank};
    store_nsubs++;
    subs_rebuild();
    return 0;
}

int store_subscribe_count(unsigned mask, long long *counter) {
    int i = 0;
    while (i < ncounters && counters[i].counter != counter) {
        i++;
    }
    if (mask == 0) {
        if (i < ncounters) {
            counters[i] = counters[--ncounters];
            subs_rebuild();
        }
        return 0;
    }
    if (i == ncounters) {
        if (ncounters == STORE_MAX_SUBS) {
            return -1;
        }
        counters[ncounters++].counter = counter;
    }
    counters[i].mask = mask;
    subs_rebuild();
    return 0;
}

void store_unsubscribe(store_sub_fn fn, void *arg) {
    for (int i = 0; i < store_nsubs; i++) {
        if (store_subs[i].fn == fn && store_subs[i].arg == arg) {
            memmove(&store_subs[i], &store_subs[i + 1],
                    (size_t)(store_nsubs - i - 1) * sizeof(store_subs[0]));
            store_nsubs--;
            subs_rebuild();
            return;
        }
    }
}

static const struct ks_backing persist_backing = {persist_evict_prepare};

static uint64_t *floors;      /* per database: store_flush_below's (lazy) */
static int nfloors;

void store_init(void) {
    if (floors) { /* a fresh store: no cluster flush yet (persistent mode: its markers) */
        memset(floors, 0, (size_t)nfloors * sizeof(*floors));
    }
    if (persist_on()) {
        store_be = (struct store_backend){persist_load,    persist_db_size, persist_expire_due,
                                          persist_scan,    persist_foreach, persist_random};
        ks_set_backing(&persist_backing);
        store_subscribe(STORE_SUB_BACKEND,
                        STORE_EV_BIT(STORE_EV_WRITTEN) | STORE_EV_BIT(STORE_EV_REPLACING) |
                            STORE_EV_BIT(STORE_EV_DELETED) | STORE_EV_BIT(STORE_EV_EXPIRED) |
                            STORE_EV_BIT(STORE_EV_FLUSH_BEFORE),
                        persist_on_event, NULL);
    } else {
        store_be = (struct store_backend){0};
        ks_set_backing(NULL);
        store_unsubscribe(persist_on_event, NULL);
    }
}

/* ------------------------------------------------------------------------------
 * The coordinator's calls (store.h)
 * ------------------------------------------------------------------------------ */
size_t store_flush(struct client *c, int db_id, int async) {
    int lo = db_id < 0 ? 0 : db_id, hi = db_id < 0 ? server.databases - 1 : db_id;
    size_t n = 0;
    if (store_be.count) { /* before the backend forgets them */
        for (int i = lo; i <= hi; i++) {
            n += store_be.count(i);
        }
    }
    struct store_ev ev = {.type = STORE_EV_FLUSH_BEFORE, .db = db_id, .c = c};
    store_emit(&ev);
    for (int i = lo; i <= hi; i++) {
        size_t m = ks_flush_db(server.db[i], async);
        if (store_be.count == NULL) {
            n += m;
        }
    }
    ev.type = STORE_EV_FLUSHED;
    ev.count = n;
    store_emit(&ev);
    return n;
}

uint64_t store_scan(int db_id, uint64_t cursor, long count,
                    void (*fn)(struct kv_entry *e, void *arg), void *arg) {
    if (store_be.scan) {
        return store_be.scan(db_id, cursor, count, fn, arg);
    }
    return kv_dict_scan(&server.db[db_id]->keys, cursor, count, fn, arg);
}

void store_foreach(int db_id, void (*fn)(struct kv_entry *e, void *arg), void *arg) {
    if (store_be.foreach) {
        store_be.foreach(db_id, fn, arg);
        return;
    }
    kv_dict_foreach(&server.db[db_id]->keys, fn, arg);
}

struct kv_entry *store_random(int db_id) {
    if (store_be.random) {
        return store_be.random(db_id);
    }
    struct kv_db *db = server.db[db_id];
    /* Expired keys are deleted as they are drawn, so this ends: every turn either
     * returns or removes a key (Redis's RANDOMKEY on a primary does the same). */
    for (;;) {
        struct kv_entry *e = kv_dict_random(&db->keys);
        if (e == NULL || !ks_entry_expired(e)) {
            return e;
        }
        ks_expire_now(db, e, ks_entry_token(e));
    }
}

size_t store_db_size(int db_id) {
    if (store_be.count) {
        store_be.expire_due();
        return store_be.count(db_id);
    }
    return ks_db_size(server.db[db_id]);
}

void store_expire_entry(struct kv_db *db, struct kv_entry *e) {
    if (store_be.load) {
        return; /* the backend's iteration never hands out expired keys */
    }
    ks_expire_now(db, e, ks_entry_token(e));
}

/* A value's envelope must be one store_apply can decode on its own. */
static int envelope_ok(const struct store_record *r) {
    return r->value != NULL && r->vlen >= 4 &&
           !(((const unsigned char *)r->value)[3] & PERSIST_ENV_FIELDS);
}

/* ------------------------------------------------------------------------------
 * Apply and read
 * ------------------------------------------------------------------------------ */
/* ---- cluster flushes (store_flush_below) ---- */

uint64_t store_floor(int db_id) {
    return db_id >= 0 && db_id < nfloors ? floors[db_id] : 0;
}

struct below_ctx {
    uint64_t hlc;
    struct kv_entry **v;
    size_t n, cap, total;
};

static void below_collect(struct kv_entry *e, void *arg) {
    struct below_ctx *b = arg;
    b->total++;
    if (ks_entry_version(e).hlc >= b->hlc) {
        return;
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->v = kv_realloc(b->v, b->cap * sizeof(*b->v));
    }
    b->v[b->n++] = e;
}

int store_flush_below(int db_id, uint64_t hlc) {
    if (db_id < -1 || db_id >= server.databases || server.db == NULL) {
        return -1;
    }
    if (nfloors < server.databases) {
        floors = kv_realloc(floors, (size_t)server.databases * sizeof(*floors));
        memset(floors + nfloors, 0, (size_t)(server.databases - nfloors) * sizeof(*floors));
        nfloors = server.databases;
    }
    hlc_observe(hlc);
    int lo = db_id < 0 ? 0 : db_id, hi = db_id < 0 ? server.databases - 1 : db_id;
    for (int d = lo; d <= hi; d++) {
        if (hlc > floors[d]) {
            floors[d] = hlc;
        }
        struct kv_db *db = server.db[d];
        struct below_ctx b = {hlc, NULL, 0, 0, 0};
        kv_dict_foreach(&db->keys, below_collect, &b);
        if (b.n > 0 && b.n == b.total) {
            ks_flush_db(db, 0); /* everything is older: the fast way */
        } else {
            for (size_t i = 0; i < b.n; i++) {
                size_t klen;
                const char *k = ks_entry_key(b.v[i], &klen);
                char *key = kv_malloc(klen ? klen : 1);
                memcpy(key, k, klen);
                ks_delete(db, key, klen, ks_token(key, klen), 0);
                kv_free(key);
            }
        }
        kv_free(b.v);
    }
    if (persist_on()) {
        persist_flush_at(db_id, hlc);
    }
    return 0;
}

int store_apply(int db_id, const char *key, size_t klen, const struct store_record *r) {
    if (db_id < 0 || db_id >= server.databases || server.db == NULL ||
        (persist_on() && persist_engine() == NULL)) {
        return STORE_ERROR;
    }
    if (!r->deleted && !envelope_ok(r)) {
        return STORE_ERROR;
    }
    if (r->version.hlc < store_floor(db_id)) {
        return STORE_IGNORED; /* older than a cluster flush of its database */
    }
    struct kv_db *db = server.db[db_id];
    uint64_t token = ks_token(key, klen);
    struct kv_entry *e = store_peek(db, key, klen, token);
    struct kv_version held = {0, 0};
    int held_deleted = 0, have = 0;
    if (e) {
        held = ks_entry_version(e);
        held_deleted = ks_entry_expired(e); /* the tombstone it becomes */
        have = 1;
    } else if (persist_on()) {
        long long texp;
        int rc = persist_read_deleted(db_id, key, klen, token, &held, &texp);
        if (rc < 0) {
            return STORE_ERROR;
        }
        held_deleted = 1;
        have = rc == 1;
    }
    if (have && kv_record_cmp(r->version, r->deleted, held, held_deleted) <= 0) {
        /* older than a big hash's last write, maybe newer than some of its fields */
        return e ? store_hash_floor_raise(db, key, klen, token, e, r->version) : STORE_IGNORED;
    }
    /* a value already expired is stored as the tombstone it becomes */
    int tomb = r->deleted || (r->expire_at != 0 && r->expire_at <= server.mstime);
    struct kv_entry *ne = NULL;
    if (!tomb) {
        ne = persist_decode(key, klen, r->value, r->vlen, r->expire_at);
        if (ne == NULL) {
            return STORE_ERROR;
        }
        ks_entry_set_version(ne, r->version);
    }
    hlc_observe(r->version.hlc);
    if (e && ks_entry_expired(e)) {
        ks_expire_now(db, e, token); /* its own tombstone first, counted out */
        e = NULL;
    }
    int existed = e != NULL;
    long long old_exp = e ? ks_entry_expire(e) : 0;
    struct kv_slice ks = {key, klen};
    if (tomb) {
        struct store_ev ev = {.type = STORE_EV_DELETED, .db = db_id, .key = key, .klen = klen,
                              .e = e, .version = r->version, .old_expire = old_exp,
                              .expire_at = r->expire_at, .existed = existed, .applied = 1};
        store_emit(&ev);
        if (e) {
            ks_delete(db, key, klen, token, 0);
        }
        return STORE_APPLIED;
    }
    store_link(db, e, ne, token);
    store_written(NULL, db, &ks, ne, existed, old_exp, NULL, 0, 0);
    return STORE_APPLIED;
}

int store_get_record(int db_id, const char *key, size_t klen, struct store_record *out) {
    if (db_id < 0 || db_id >= server.databases || server.db == NULL) {
        return -1;
    }
    memset(out, 0, sizeof(*out));
    struct kv_db *db = server.db[db_id];
    uint64_t token = ks_token(key, klen);
    struct kv_entry *e = store_peek(db, key, klen, token);
    if (e) {
        out->version = ks_entry_version(e);
        out->expire_at = ks_entry_expire(e);
        if (ks_entry_expired(e)) {
            out->deleted = 1;
            return 1;
        }
        kv_free(S.enc);
        persist_encode(e, &S.enc, &S.enclen);
        out->value = S.enc;
        out->vlen = S.enclen;
        return 1;
    }
    if (!persist_on()) {
        return 0;
    }
    int rc = persist_read_deleted(db_id, key, klen, token, &out->version, &out->expire_at);
    out->deleted = rc == 1;
    return rc;
}

/* ------------------------------------------------------------------------------
 * Token ranges
 *
 * HOW THE CACHE-MODE ITERATOR WORKS: each database's dict is in token order
 * (kv_dict_scan), but the range must come out ordered across databases. It goes
 * window by window: from the cursor, each database emits up to WINDOW keys and the
 * token just past them (or its end); below the smallest of those tokens every
 * database has emitted everything, so that stretch is complete: those entries are
 * sorted by (token, db, key), copied (key and envelope, so nothing points into the
 * dict between calls), and handed out; the next window starts there.
 * ------------------------------------------------------------------------------ */
#define WINDOW 64

struct win_ref {
    uint64_t token;
    int db;
    struct kv_entry *e;
};

struct win_item {
    uint64_t token;
    int db;
    size_t koff, klen, voff, vlen;
    struct kv_version ver;
    int deleted;
    long long expire_at;
};

struct store_iter {
    struct persist_iter *pi;  /* persistent mode */
    uint64_t cursor, end;     /* cache mode: next window's start; end (0 = ring end) */
    int done;
    struct win_ref *refs;
    size_t nrefs, caprefs;
    struct win_item *items;
    size_t nitems, capitems, next;
    char *arena;
    size_t alen, acap;
    int scan_db;              /* the database kv_dict_scan is collecting for */
};

static void collect(struct kv_entry *e, void *arg) {
    struct store_iter *it = arg;
    if (it->nrefs == it->caprefs) {
        it->caprefs = it->caprefs ? it->caprefs * 2 : 256;
        it->refs = kv_realloc(it->refs, it->caprefs * sizeof(*it->refs));
    }
    it->refs[it->nrefs++] = (struct win_ref){ks_entry_token(e), it->scan_db, e};
}

static int ref_cmp(const void *a, const void *b) {
    const struct win_ref *x = a, *y = b;
    if (x->token != y->token) {
        return x->token < y->token ? -1 : 1;
    }
    if (x->db != y->db) {
        return x->db < y->db ? -1 : 1;
    }
    size_t xl, yl;
    const char *xk = ks_entry_key(x->e, &xl), *yk = ks_entry_key(y->e, &yl);
    int c = memcmp(xk, yk, xl < yl ? xl : yl);
    if (c) {
        return c;
    }
    return xl < yl ? -1 : xl > yl;
}

static size_t arena_put(struct store_iter *it, const void *p, size_t n) {
    if (it->alen + n > it->acap) {
        it->acap = (it->alen + n) * 2 + 256;
        it->arena = kv_realloc(it->arena, it->acap);
    }
    size_t off = it->alen;
    if (n) {
        memcpy(it->arena + off, p, n);
    }
    it->alen += n;
    return off;
}

/* Loads the next window of cache mode into it->items; 0 when none is left. */
static int load_window(struct store_iter *it) {
    it->nitems = it->next = 0;
    it->alen = 0;
    while (!it->done && it->nitems == 0) {
        it->nrefs = 0;
        uint64_t limit = 0; /* 0: the end of the ring */
        for (int i = 0; i < server.databases; i++) {
            it->scan_db = i;
            uint64_t n = kv_dict_scan(&server.db[i]->keys, it->cursor, WINDOW, collect, it);
            if (n != 0 && (limit == 0 || n < limit)) {
                limit = n;
            }
        }
        if (it->end != 0 && (limit == 0 || limit > it->end)) {
            limit = it->end;
        }
        if (it->nrefs > 1) {
            qsort(it->refs, it->nrefs, sizeof(*it->refs), ref_cmp);
        }
        for (size_t i = 0; i < it->nrefs; i++) {
            const struct win_ref *r = &it->refs[i];
            if (limit != 0 && r->token >= limit) {
                break; /* the next window has it */
            }
            if (it->nitems == it->capitems) {
                it->capitems = it->capitems ? it->capitems * 2 : 256;
                it->items = kv_realloc(it->items, it->capitems * sizeof(*it->items));
            }
            struct win_item *w = &it->items[it->nitems++];
            size_t klen;
            const char *k = ks_entry_key(r->e, &klen);
            w->token = r->token;
            w->db = r->db;
            w->klen = klen;
            w->koff = arena_put(it, k, klen);
            w->ver = ks_entry_version(r->e);
            w->expire_at = ks_entry_expire(r->e);
            w->deleted = ks_entry_expired(r->e);
            w->voff = w->vlen = 0;
            if (!w->deleted) {
                char *v;
                size_t vlen;
                persist_encode(r->e, &v, &vlen);
                w->voff = arena_put(it, v, vlen);
                w->vlen = vlen;
                kv_free(v);
            }
        }
        if (limit == 0 || (it->end != 0 && limit >= it->end)) {
            it->done = 1;
        } else {
            it->cursor = limit;
        }
    }
    return it->nitems > 0;
}

struct store_iter *store_iter_range(uint64_t start, uint64_t end) {
    struct store_iter *it = kv_calloc(1, sizeof(*it));
    it->cursor = start;
    it->end = end;
    if (end != 0 && start >= end) {
        it->done = 1;
        return it;
    }
    if (persist_on()) {
        it->pi = persist_iter_range(start, end);
        if (it->pi == NULL) {
            it->done = 1;
        }
    }
    return it;
}

int store_iter_next(struct store_iter *it, struct store_item *out) {
    if (it->pi) {
        struct persist_rec pr;
        int rc = persist_iter_next(it->pi, &pr);
        if (rc <= 0) {
            persist_iter_destroy(&it->pi);
            it->done = 1;
            return rc;
        }
        out->db = pr.db;
        out->token = pr.token;
        out->key = pr.key;
        out->klen = pr.klen;
        out->rec.version = pr.ver;
        out->rec.deleted = pr.deleted;
        out->rec.expire_at = pr.expire_at;
        out->rec.value = pr.val;
        out->rec.vlen = pr.vlen;
        return 1;
    }
    if (persist_on() || (it->next == it->nitems && !load_window(it))) {
        return 0;
    }
    const struct win_item *w = &it->items[it->next++];
    out->db = w->db;
    out->token = w->token;
    out->key = it->arena + w->koff;
    out->klen = w->klen;
    out->rec.version = w->ver;
    out->rec.deleted = w->deleted;
    out->rec.expire_at = w->expire_at;
    out->rec.value = w->deleted ? NULL : it->arena + w->voff;
    out->rec.vlen = w->vlen;
    return 1;
}

void store_iter_destroy(struct store_iter **itp) {
    struct store_iter *it = *itp;
    if (it == NULL) {
        return;
    }
    persist_iter_destroy(&it->pi);
    kv_free(it->refs);
    kv_free(it->items);
    kv_free(it->arena);
    kv_free(it);
    *itp = NULL;
}
