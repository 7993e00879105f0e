/* server/store/persist_write.c: persistent mode, the write-through: the keys deleted in the
 * pending batch, the dirty keys and the turn's batch (commit), big hashes' field
 * records, the store-event subscriber (persist_on_event), put / del / expired / flush.
 * Shared state and helpers: persist_int.h; the design: PERSIST.md.
 */
#include "server/store/persist_int.h"

/* ------------------------------------------------------------------------------
 * Keys deleted in the pending batch (so a dict miss does not read the old version)
 * ------------------------------------------------------------------------------ */
static uint64_t del_hash(uint64_t token, int db) {
    uint64_t h = token ^ ((uint64_t)(db + 1) * 0x9e3779b97f4a7c15ull);
    return h ? h : 1;
}

void deleted_add(uint64_t token, int db) {
    if ((P.del_n + 1) * 2 > P.del_cap) {
        size_t ncap = P.del_cap ? P.del_cap * 2 : 64;
        uint64_t *nt = kv_calloc(ncap, sizeof(*nt));
        for (size_t i = 0; i < P.del_cap; i++) {
            if (P.deleted[i]) {
                size_t j = P.deleted[i] & (ncap - 1);
                while (nt[j]) {
                    j = (j + 1) & (ncap - 1);
                }
                nt[j] = P.deleted[i];
            }
        }
        kv_free(P.deleted);
        P.deleted = nt;
        P.del_cap = ncap;
    }
    uint64_t h = del_hash(token, db);
    size_t j = h & (P.del_cap - 1);
    while (P.deleted[j] && P.deleted[j] != h) {
        j = (j + 1) & (P.del_cap - 1);
    }
    if (!P.deleted[j]) {
        P.deleted[j] = h;
        P.del_n++;
    }
}

int deleted_has(uint64_t token, int db) {
    if (P.del_n == 0) {
        return 0;
    }
    uint64_t h = del_hash(token, db);
    size_t j = h & (P.del_cap - 1);
    while (P.deleted[j]) {
        if (P.deleted[j] == h) {
            return 1;
        }
        j = (j + 1) & (P.del_cap - 1);
    }
    return 0;
}

void deleted_clear(void) {
    if (P.del_n) {
        if (P.del_cap > 4096) {
            kv_free(P.deleted);
            P.deleted = NULL;
            P.del_cap = 0;
        } else {
            memset(P.deleted, 0, P.del_cap * sizeof(*P.deleted));
        }
        P.del_n = 0;
    }
}

/* ------------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------------ */
/* Appends c to a list of clients (P.wrote, P.held) and sets its flag. */
static void client_list_add(struct client ***list, size_t *n, size_t *cap,
                            struct client *c, unsigned flag) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *list = kv_realloc(*list, *cap * sizeof(**list));
    }
    (*list)[(*n)++] = c;
    writer_of(c)->flags |= flag;
}

static void held_add(struct client *c) {
    if (!(writer_of(c)->flags & PERSIST_WRITER_HELD)) {
        client_list_add(&P.held, &P.nheld, &P.capheld, c, PERSIST_WRITER_HELD);
    }
}

/* The writes of c were not stored (or their sync failed): each write's reply in
 * its held output becomes -MISCONF, the rest of the output stays as it was
 * (the fail hook: client_fail_held; if c is running, when its command ends). The caller
 * takes c off P.wrote / P.held. */
static void fail_client(struct client *c) {
    char msg[512];
    snprintf(msg, sizeof(msg), "MISCONF Errors writing to the AOF file: %s",
             P.errmsg[0] ? P.errmsg : "write failed");
    writer_of(c)->flags &= ~(PERSIST_WRITER_WROTE | PERSIST_WRITER_HELD);
    writer_of(c)->durable_wait = 0;
    persist_hooks.fail(c, msg);
}

struct persist_client_hooks persist_hooks;

void persist_set_client_hooks(const struct persist_client_hooks *h) {
    persist_hooks = *h;
}

/* ---- durability for writers that are not clients (persist_when_durable) ---- */

uint64_t persist_when_durable(void (*fn)(void *arg, int ok), void *arg) {
    if (P.db == NULL) {
        return 0;
    }
    int always = server.appendfsync == PERSIST_FSYNC_ALWAYS;
    int pending = P.ndirty || P.nfops || lsm_batch_count(P.batch);
    int state = P.write_failed ? WAITER_FAILED : pending ? WAITER_BATCH : WAITER_WRITTEN;
    if (state == WAITER_WRITTEN && (!always || lsm_durable_seq(P.db) >= P.last_seq)) {
        return 0; /* stored, and synced when that is asked */
    }
    if (P.nwaiters == P.capwaiters) {
        P.capwaiters = P.capwaiters ? P.capwaiters * 2 : 16;
        P.waiters = kv_realloc(P.waiters, P.capwaiters * sizeof(*P.waiters));
    }
    struct durable_waiter *w = &P.waiters[P.nwaiters++];
    *w = (struct durable_waiter){++P.next_waiter, fn, arg, state, P.last_seq};
    return w->id;
}

void persist_durable_cancel(uint64_t handle) {
    for (size_t i = 0; i < P.nwaiters; i++) {
        if (P.waiters[i].id == handle) {
            memmove(&P.waiters[i], &P.waiters[i + 1],
                    (P.nwaiters - i - 1) * sizeof(*P.waiters));
            P.nwaiters--;
            return;
        }
    }
}

/* the batch holding the waiters' writes was written as seq (or failed: ok 0) */
static void waiters_written(uint64_t seq, int ok) {
    for (size_t i = 0; i < P.nwaiters; i++) {
        struct durable_waiter *w = &P.waiters[i];
        if (!ok && w->state != WAITER_FAILED) {
            w->state = WAITER_FAILED; /* written ones too: their sync will not come */
        } else if (ok && w->state == WAITER_BATCH) {
            w->state = WAITER_WRITTEN;
            w->seq = seq;
        }
    }
}

int persist_waiters_need_sync(void) {
    return P.nwaiters > 0 && server.appendfsync == PERSIST_FSYNC_ALWAYS;
}

void persist_waiters_run(void) {
    if (P.nwaiters == 0) {
        return;
    }
    int always = server.appendfsync == PERSIST_FSYNC_ALWAYS;
    uint64_t durable = P.db ? lsm_durable_seq(P.db) : 0;
    struct durable_waiter ready[64];
    size_t nready = 0, keep = 0;
    /* the ready ones leave the list before any callback runs (a callback may ask
     * or cancel); more than fit in ready wait for the next run */
    for (size_t i = 0; i < P.nwaiters; i++) {
        struct durable_waiter *w = &P.waiters[i];
        int go = w->state == WAITER_FAILED ||
                 (w->state == WAITER_WRITTEN && (!always || w->seq <= durable));
        if (go && nready < sizeof(ready) / sizeof(ready[0])) {
            ready[nready++] = *w;
        } else {
            P.waiters[keep++] = *w;
        }
    }
    P.nwaiters = keep;
    for (size_t i = 0; i < nready; i++) {
        ready[i].fn(ready[i].arg, ready[i].state != WAITER_FAILED);
    }
}

/* Every client waiting for a write or a sync: their writes fail. */
void fail_pending_clients(void) {
    waiters_written(0, 0);
    for (size_t i = 0; i < P.nwrote; i++) {
        fail_client(P.wrote[i]);
    }
    P.nwrote = 0;
    for (size_t i = 0; i < P.nheld; i++) {
        fail_client(P.held[i]);
    }
    P.nheld = 0;
}

void persist_client_wrote(struct client *c) {
    if (c == NULL || P.db == NULL) {
        return;
    }
    persist_hooks.hold(c); /* this command's reply waits, every time */
    if (!(writer_of(c)->flags & PERSIST_WRITER_WROTE)) {
        client_list_add(&P.wrote, &P.nwrote, &P.capwrote, c, PERSIST_WRITER_WROTE);
    }
}

void persist_client_gone(struct client *c) {
    for (size_t i = 0; i < P.nwrote; i++) {
        if (P.wrote[i] == c) {
            P.wrote[i] = P.wrote[--P.nwrote];
            break;
        }
    }
    for (size_t i = 0; i < P.nheld; i++) {
        if (P.held[i] == c) {
            P.held[i] = P.held[--P.nheld];
            break;
        }
    }
}

void drop_cache(void) {
    for (int i = 0; i < server.databases && server.db; i++) {
        ks_flush_db(server.db[i], 0);
    }
}

/* Writes the pending batch. On failure the clients whose writes were in it are
 * disconnected before any reply reaches them (nothing unstored is acknowledged),
 * and the cache, which may hold those values, is dropped in before-sleep. */
static void encode_dirty(void);

/* Nothing to write this turn: the clients that wrote (a peer's WRITE that found
 * a newer version held) wait for what is already written, synced under always. */
static void commit_nothing(void) {
    int always = server.appendfsync == PERSIST_FSYNC_ALWAYS;
    int synced = !always || lsm_durable_seq(P.db) >= P.last_seq;
    for (size_t i = 0; i < P.nwrote; i++) {
        struct client *c = P.wrote[i];
        writer_of(c)->flags &= ~PERSIST_WRITER_WROTE;
        if (!synced) {
            if (writer_of(c)->durable_wait < P.last_seq) {
                writer_of(c)->durable_wait = P.last_seq;
            }
            held_add(c);
        } else if (!(writer_of(c)->flags & PERSIST_WRITER_HELD)) {
            persist_hooks.release(c);
        }
    }
    P.nwrote = 0;
    waiters_written(P.last_seq, 1);
}

int commit(void) {
    encode_dirty();
    if (P.db == NULL || lsm_batch_count(P.batch) == 0) {
        deleted_clear();
        if (P.db) {
            commit_nothing();
        }
        return 0;
    }
    uint64_t seq = 0;
    int rc = lsm_write(P.db, P.batch, LSM_WRITE_NOSYNC, &seq);
    lsm_batch_clear(P.batch);
    deleted_clear();
    if (rc != LSM_OK) {
        if (!P.write_failed) {
            snprintf(P.errmsg, sizeof(P.errmsg), "%s", lsm_errmsg(P.db));
            server_log(LL_WARNING, "Error writing to the engine: %s", P.errmsg);
        }
        P.write_failed = 1;
        fail_pending_clients();
        return -1;
    }
    P.last_seq = seq;
    waiters_written(seq, 1);
    for (size_t i = 0; i < P.nwrote; i++) {
        struct client *c = P.wrote[i];
        writer_of(c)->flags &= ~PERSIST_WRITER_WROTE;
        if (server.appendfsync == PERSIST_FSYNC_ALWAYS) {
            writer_of(c)->durable_wait = seq;
            held_add(c);
        } else if (!(writer_of(c)->flags & PERSIST_WRITER_HELD)) {
            persist_hooks.release(c); /* (held: its sync releases it) */
        }
    }
    P.nwrote = 0;
    return 0;
}

/* A value carrying a version (data and field records) or a bare timestamp (meta
 * records: node 0). */
static void batch_put_v(const void *k, size_t klen, const void *v, size_t vlen,
                        long long expire_at, struct kv_version ver) {
    struct lsm_meta m = {(uint64_t)expire_at, ver.hlc, ver.node};
    lsm_batch_put(P.batch, k, klen, v, vlen, &m);
}

static void batch_put(const void *k, size_t klen, const void *v, size_t vlen,
                      long long expire_at, uint64_t ts) {
    struct kv_version ver = {ts, 0};
    batch_put_v(k, klen, v, vlen, expire_at, ver);
}

/* A tombstone carrying a version (and, for an expiry, the expire-at the grace
 * period counts from): see PERSIST.md "Versions and tombstones". */
void batch_tomb(const void *k, size_t klen, long long expire_at, struct kv_version ver) {
    struct lsm_meta m = {(uint64_t)expire_at, ver.hlc, ver.node};
    lsm_batch_delete(P.batch, k, klen, &m);
}

/* An undated tombstone (meta records, field records of a dropped gen): compaction
 * drops it at once. */
void batch_del(const void *k, size_t klen, uint64_t ts) {
    struct lsm_meta m = {0, ts, 0};
    lsm_batch_delete(P.batch, k, klen, &m);
}

void persist_after_call(void) {
    if (P.db && (lsm_batch_size(P.batch) > BATCH_COMMIT_BYTES ||
                 P.dirty_bytes > BATCH_COMMIT_BYTES)) {
        commit(); /* a large turn is written in parts, between commands */
    }
}

/* Keeps the expiry index in step: one entry per live key with a TTL. */
static void index_update(int db, const char *key, size_t klen, long long old_exp,
                         long long new_exp, uint64_t ts) {
    if (old_exp == new_exp) {
        return;
    }
    struct pbuf b = {0};
    if (old_exp) {
        index_key(&b, old_exp, db, key, klen);
        batch_del(b.p, b.len, 0);
        P.vcount[db]--;
    }
    if (new_exp) {
        index_key(&b, new_exp, db, key, klen);
        unsigned char tsb[8];
        memcpy(tsb, &ts, 8);
        batch_put(b.p, b.len, tsb, 8, 0, 0);
        P.vcount[db]++;
    }
    kv_free(b.p);
}

/* Sorts the turn's dirty keys by token. Tokens are uniform hashes, so one
 * counting pass on the top bits (about two buckets per key) leaves the array
 * nearly sorted and an insertion sort finishes it: two linear passes instead of
 * qsort's n log n calls of a comparison (6% of the loop under SET -P 16). The
 * order among equal tokens does not matter. */
static void sort_dirty(void) {
    size_t n = P.ndirty;
    if (n < 2) {
        return;
    }
    unsigned bits = 8;
    while (bits < 16 && ((size_t)1 << bits) < 2 * n) {
        bits++;
    }
    size_t nb = (size_t)1 << bits;
    if (P.capcnt < nb + 1) {
        P.capcnt = nb + 1;
        P.dirty_cnt = kv_realloc(P.dirty_cnt, P.capcnt * sizeof(*P.dirty_cnt));
    }
    P.dirty_tmp = kv_realloc(P.dirty_tmp, P.capdirty * sizeof(*P.dirty_tmp));
    uint32_t *cnt = P.dirty_cnt;
    memset(cnt, 0, (nb + 1) * sizeof(*cnt));
    for (size_t i = 0; i < n; i++) {
        cnt[(P.dirty[i].token >> (64 - bits)) + 1]++;
    }
    for (size_t b = 0; b < nb; b++) {
        cnt[b + 1] += cnt[b];
    }
    for (size_t i = 0; i < n; i++) {
        P.dirty_tmp[cnt[P.dirty[i].token >> (64 - bits)]++] = P.dirty[i];
    }
    for (size_t i = 1; i < n; i++) {
        struct dirty_key d = P.dirty_tmp[i];
        size_t j = i;
        while (j > 0 && P.dirty_tmp[j - 1].token > d.token) {
            P.dirty_tmp[j] = P.dirty_tmp[j - 1];
            j--;
        }
        P.dirty_tmp[j] = d;
    }
    struct dirty_key *t = P.dirty; /* the sorted array becomes the list */
    P.dirty = P.dirty_tmp;
    P.dirty_tmp = t;
}

/* ------------------------------------------------------------------------------
 * Big hashes: one record per field
 *
 * HOW IT WORKS: a hash in the hashtable encoding (more than
 * hash-max-listpack-entries fields, or a long field) is stored as a header, its
 * envelope with ENV_FIELDS (count, gen), plus one record per field under
 * meta 'h' db gen field. gen is the write timestamp of the hash's first write in
 * this form: unique (HLC), so a hash deleted and created again never sees the old
 * fields, even those not yet reclaimed. A turn that changes a few fields writes
 * those records and the header, not the whole hash: HSET is O(1) on disk. The
 * whole hash is written once, when it gets its gen (first write as a hashtable,
 * after a RENAME). Deleting or replacing it tombstones its records (O(fields), as
 * Redis's DEL of a hash); FLUSHDB's marker covers them (flushed_filter).
 * ------------------------------------------------------------------------------ */
struct lsm_read_options raw_read(void) {
    struct lsm_read_options ro = LSM_READ_OPTIONS_INIT;
    ro.now_ms = 1; /* the server decides about expiry (and counts it) */
    return ro;
}

static int fop_cmp(const void *a, const void *b) {
    const struct field_op *x = a, *y = b;
    if (x->gen != y->gen) {
        return x->gen < y->gen ? -1 : 1;
    }
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(P.fbytes.p + x->off, P.fbytes.p + y->off, n);
    if (c) {
        return c;
    }
    return x->len < y->len ? -1 : x->len > y->len;
}

void persist_hash_fields(int db_id, const struct kv_entry *e, const struct kv_slice *fields,
                         size_t n, size_t stride) {
    (void)db_id;
    if (P.db == NULL || e->enc != KS_ENC_HASHTABLE || ks_val_dict(e)->store_gen == 0) {
        return; /* written whole at the turn's end */
    }
    uint64_t gen = ks_val_dict(e)->store_gen;
    for (size_t i = 0; i < n; i++) {
        const struct kv_slice *f = &fields[i * stride];
        if (P.nfops == P.capfops) {
            P.capfops = P.capfops ? P.capfops * 2 : 64;
            P.fops = kv_realloc(P.fops, P.capfops * sizeof(*P.fops));
        }
        pbuf_reserve(&P.fbytes, P.fbytes.len + f->len);
        memcpy(P.fbytes.p + P.fbytes.len, f->p, f->len);
        P.fops[P.nfops++] = (struct field_op){gen, P.fbytes.len, f->len};
        P.fbytes.len += f->len;
        P.dirty_bytes += f->len + 32;
    }
}

struct fields_ctx {
    int db;
    const char *key;
    size_t klen;
    uint64_t token;
    struct kv_version ver;
};

static void put_field(const char *f, size_t flen, const char *v, size_t vlen, void *arg) {
    const struct fields_ctx *x = arg;
    field_key(&P.fkey, x->db, x->key, x->klen, x->token, f, flen);
    batch_put_v(P.fkey.p, P.fkey.len, v, vlen, 0, x->ver);
}

static void drop_old_fields(int db, uint64_t gen);

/* A local id grouping a hash's changed fields within a turn (P.fops): unique in
 * this process, never stored. */
uint64_t next_local_gen(void) {
    static uint64_t n;
    return ++n;
}

/* The field records of big hash e for this turn, carrying the hash's version ver:
 * all of them when it is not stored as records yet (or only in the old meta 'h'
 * form, which is dropped), else the fields the turn's commands changed (P.fops,
 * sorted by local gen). */
static void write_fields(int db, const struct kv_entry *e, struct kv_version ver) {
    struct kv_dict *d = ks_val_dict(e);
    size_t klen;
    const char *key = ks_entry_key(e, &klen);
    if (d->store_gen == 0 || d->store_old) {
        if (d->store_old) {
            drop_old_fields(db, d->store_gen);
            d->store_old = 0;
        }
        d->store_gen = next_local_gen();
        struct fields_ctx x = {db, key, klen, ks_token(key, klen), ver};
        hash_foreach(e, put_field, &x);
        return;
    }
    uint64_t token = ks_token(key, klen);
    size_t lo = 0, hi = P.nfops;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (P.fops[mid].gen < d->store_gen) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    for (size_t i = lo; i < P.nfops && P.fops[i].gen == d->store_gen; i++) {
        const struct field_op *o = &P.fops[i];
        if (i > lo && fop_cmp(o - 1, o) == 0) {
            continue; /* the same field changed twice this turn */
        }
        const char *f = P.fbytes.p + o->off, *v;
        size_t vlen;
        field_key(&P.fkey, db, key, klen, token, f, o->len);
        if (hash_get(e, f, o->len, &v, &vlen)) {
            batch_put_v(P.fkey.p, P.fkey.len, v, vlen, 0, ver);
        } else {
            batch_tomb(P.fkey.p, P.fkey.len, 0, ver);
        }
    }
}

/* Tombstones every engine record under prefix pre (undated: dropped at once). */
static void drop_prefix(const struct pbuf *pre) {
    struct lsm_read_options ro = raw_read();
    struct lsm_iter *it = lsm_iter_create(P.db, &ro);
    for (lsm_iter_seek(it, pre->p, pre->len); lsm_iter_valid(it); lsm_iter_next(it)) {
        size_t ilen;
        const char *ik = lsm_iter_key(it, &ilen);
        if (ilen < pre->len || memcmp(ik, pre->p, pre->len) != 0) {
            break;
        }
        batch_del(ik, ilen, 0);
    }
    lsm_iter_destroy(&it);
}

/* Old form: every field record of generation gen. */
static void drop_old_fields(int db, uint64_t gen) {
    struct pbuf pre = {0};
    old_field_key(&pre, db, gen, NULL, 0);
    drop_prefix(&pre);
    kv_free(pre.p);
}

/* Where a stored big hash keeps its field records. */
struct fields_loc {
    int stored;        /* 0: none */
    int old;           /* meta 'h' db gen (files written before versions) */
    uint64_t gen;
};

/* Tombstones every field record of key's hash at loc (a hash deleted or replaced). */
static void drop_fields(int db, const char *key, size_t klen, uint64_t token,
                        const struct fields_loc *loc) {
    if (!loc->stored) {
        return;
    }
    if (loc->old) {
        drop_old_fields(db, loc->gen);
        return;
    }
    struct pbuf pre = {0};
    field_key(&pre, db, key, klen, token, NULL, 0);
    drop_prefix(&pre);
    kv_free(pre.p);
}

/* Where key's stored big hash keeps its fields, from the cached entry, else the
 * engine. The cached entry forgets it: a hash renamed keeps its dict and is then
 * written whole under its new key. */
static struct fields_loc take_fields(int db, const char *key, size_t klen, uint64_t token) {
    struct fields_loc loc = {0, 0, 0};
    struct kv_entry *e = ks_find(server.db[db], key, klen, token);
    if (e) {
        if (e->type == KS_TYPE_HASH && e->enc == KS_ENC_HASHTABLE &&
            ks_val_dict(e)->store_gen) {
            struct kv_dict *d = ks_val_dict(e);
            loc = (struct fields_loc){1, d->store_old, d->store_gen};
            d->store_gen = 0;
            d->store_old = 0;
        }
        return loc;
    }
    data_key(db, key, klen, token);
    struct lsm_read_options ro = raw_read();
    if (lsm_get(P.db, &ro, P.kbuf.p, P.kbuf.len, &P.val) != LSM_OK || P.val.len != 16 ||
        P.val.data[1] != KS_TYPE_HASH || !(P.val.data[3] & ENV_FIELDS)) {
        return loc;
    }
    uint64_t gen;
    memcpy(&gen, P.val.data + 8, 8);
    loc = (struct fields_loc){1, gen != 0, gen};
    return loc;
}

void persist_replaced(int db_id, struct kv_entry *old) {
    if (P.db == NULL || old->type != KS_TYPE_HASH || old->enc != KS_ENC_HASHTABLE ||
        ks_val_dict(old)->store_gen == 0) {
        return;
    }
    struct kv_dict *d = ks_val_dict(old);
    struct fields_loc loc = {1, d->store_old, d->store_gen};
    size_t klen;
    const char *key = ks_entry_key(old, &klen);
    drop_fields(db_id, key, klen, ks_token(key, klen), &loc);
    d->store_gen = 0;
    d->store_old = 0;
}

/* Fills e, a big hash's header just decoded, with its field records (token form:
 * those written after the database's flush marker only). */
void load_fields(int db, struct kv_entry *e) {
    struct lsm_read_options ro = raw_read();
    struct pbuf pre = {0};
    struct kv_dict *d = ks_val_dict(e);
    size_t klen;
    const char *key = ks_entry_key(e, &klen);
    if (d->store_old) {
        old_field_key(&pre, db, d->store_gen, NULL, 0);
    } else {
        field_key(&pre, db, key, klen, ks_token(key, klen), NULL, 0);
    }
    uint64_t flushed = atomic_load_explicit(&P.flush_ts[db], memory_order_relaxed);
    struct lsm_iter *it = lsm_iter_create(P.db, &ro);
    for (lsm_iter_seek(it, pre.p, pre.len); lsm_iter_valid(it); lsm_iter_next(it)) {
        size_t ilen, vlen;
        const char *ik = lsm_iter_key(it, &ilen);
        if (ilen < pre.len || memcmp(ik, pre.p, pre.len) != 0) {
            break;
        }
        if (!d->store_old && lsm_iter_meta(it).timestamp < flushed) {
            continue; /* a hash of this key from before a flush */
        }
        const char *v = lsm_iter_value(it, &vlen);
        hash_set(NULL, &e, ik + pre.len, ilen - pre.len, v, vlen);
        d = ks_val_dict(e);
    }
    if (lsm_iter_status(it) != LSM_OK) {
        server_log(LL_WARNING, "Engine read error: %s", lsm_errmsg(P.db));
    }
    lsm_iter_destroy(&it);
    kv_free(pre.p);
}

/* Writes the envelopes of the turn's dirty keys into the batch, in key order
 * (token first): the memtable's skiplist inserts then walk nodes just visited,
 * which are in the CPU cache, instead of a random path each. A put's place
 * relative to a delete of the same key does not matter: a key deleted after its
 * put is no longer in the dict (skipped), one deleted before it has its tombstone
 * in the batch already. */
static void encode_dirty(void) {
    sort_dirty();
    if (P.nfops > 1) {
        qsort(P.fops, P.nfops, sizeof(*P.fops), fop_cmp);
    }
    for (size_t i = 0; i < P.ndirty; i++) {
        struct dirty_key *d = &P.dirty[i];
        const char *key = P.dkeys.p + d->koff;
        struct kv_entry *e = ks_find(server.db[d->db], key, d->klen, d->token);
        if (e == NULL || !(e->flags & KE_DIRTY)) {
            continue; /* deleted since (a tombstone is in the batch), or done */
        }
        e->flags &= (uint8_t)~KE_DIRTY;
        struct kv_version ver = ks_entry_version(e); /* stamped by the coordinator */
        if (e->type == KS_TYPE_HASH && e->enc == KS_ENC_HASHTABLE) {
            write_fields(d->db, e, ver);
            pbuf_reserve(&P.vbuf, 16);
            unsigned char *h = (unsigned char *)P.vbuf.p;
            h[0] = ENVELOPE_VERSION;
            h[1] = KS_TYPE_HASH;
            h[2] = KS_ENC_HASHTABLE;
            h[3] = ENV_FIELDS;
            uint32_t cnt = (uint32_t)hash_len(e);
            uint64_t gen0 = 0; /* fields under the key's token */
            memcpy(h + 4, &cnt, 4);
            memcpy(h + 8, &gen0, 8);
            P.vbuf.len = 16;
        } else {
            encode_into(e, &P.vbuf);
        }
        data_key(d->db, key, d->klen, d->token);
        batch_put_v(P.kbuf.p, P.kbuf.len, P.vbuf.p, P.vbuf.len, ks_entry_expire(e), ver);
    }
    P.ndirty = 0;
    P.nfops = 0;
    P.fbytes.len = 0;
    if (P.fbytes.cap > (1u << 20)) {
        kv_free(P.fbytes.p);
        P.fbytes = (struct pbuf){0};
    }
    P.dkeys.len = 0;
    P.dirty_bytes = 0;
    if (P.dkeys.cap > (1u << 20)) {
        kv_free(P.dkeys.p);
        P.dkeys = (struct pbuf){0};
    }
}

void persist_put(int db_id, const struct kv_entry *e, int existed, long long old_expire) {
    if (P.db == NULL) {
        return;
    }
    size_t klen;
    const char *key = ks_entry_key(e, &klen);
    uint64_t ts = ks_entry_version(e).hlc; /* the index entry's date, for flush markers */
    long long exp = ks_entry_expire(e);
    if (!(e->flags & KE_DIRTY)) {
        ((struct kv_entry *)e)->flags |= KE_DIRTY;
        if (P.ndirty == P.capdirty) {
            P.capdirty = P.capdirty ? P.capdirty * 2 : 64;
            P.dirty = kv_realloc(P.dirty, P.capdirty * sizeof(*P.dirty));
        }
        pbuf_reserve(&P.dkeys, P.dkeys.len + klen);
        memcpy(P.dkeys.p + P.dkeys.len, key, klen);
        P.dirty[P.ndirty++] = (struct dirty_key){db_id, ks_token(key, klen), P.dkeys.len, klen};
        P.dkeys.len += klen;
        P.dirty_bytes += klen + 64;
    }
    if (!existed) {
        P.count[db_id]++;
        old_expire = 0;
    }
    index_update(db_id, key, klen, old_expire, exp, ts);
    P.changes++;
}

/* The tombstone carries ver and tomb_expire (an expiry's expire-at, else 0). */
void del_generic(int db_id, const char *key, size_t klen, long long old_expire,
                 long long tomb_expire, struct kv_version ver) {
    if (P.db == NULL) {
        return;
    }
    uint64_t token = ks_token(key, klen);
    struct fields_loc loc = take_fields(db_id, key, klen, token);
    drop_fields(db_id, key, klen, token, &loc);
    data_key(db_id, key, klen, token);
    batch_tomb(P.kbuf.p, P.kbuf.len, tomb_expire, ver);
    deleted_add(token, db_id);
    index_update(db_id, key, klen, old_expire, 0, 0);
    P.count[db_id]--;
    P.changes++;
}

void persist_del(int db_id, const char *key, size_t klen, long long old_expire,
                 struct kv_version ver) {
    del_generic(db_id, key, klen, old_expire, 0, ver);
}

void persist_expired(int db_id, const char *key, size_t klen, long long old_expire,
                     struct kv_version ver) {
    /* the value's own version and expire-at: what every replica, and compaction,
     * make of it (PERSIST.md "Versions and tombstones") */
    del_generic(db_id, key, klen, old_expire, old_expire, ver);
}

void persist_on_event(const struct store_ev *ev, void *arg) {
    (void)arg;
    switch (ev->type) {
    case STORE_EV_REPLACING:
        persist_replaced(ev->db, ev->e);
        break;
    case STORE_EV_WRITTEN:
        if (ev->fields) {
            persist_hash_fields(ev->db, ev->e, ev->fields, ev->nfields, ev->stride);
        }
        persist_put(ev->db, ev->e, ev->existed, ev->old_expire);
        persist_client_wrote(ev->c);
        break;
    case STORE_EV_DELETED:
        if (ev->applied) {
            persist_tombstone(ev->db, ev->key, ev->klen, ev->existed, ev->old_expire,
                              ev->expire_at, ev->version);
        } else {
            persist_del(ev->db, ev->key, ev->klen, ev->old_expire, ev->version);
            persist_client_wrote(ev->c);
        }
        break;
    case STORE_EV_EXPIRED:
        persist_expired(ev->db, ev->key, ev->klen, ev->old_expire, ev->version);
        break;
    case STORE_EV_FLUSH_BEFORE:
        persist_flush(ev->db);
        persist_client_wrote(ev->c);
        break;
    default:
        break; /* EVICTED: never in persistent mode; FLUSHED: done before */
    }
}

void persist_flush(int db_id) {
    if (P.db == NULL) {
        return;
    }
    uint64_t ts = hlc_tick((uint64_t)server.mstime);
    int lo = db_id < 0 ? 0 : db_id, hi = db_id < 0 ? server.databases - 1 : db_id;
    for (int d = lo; d <= hi; d++) {
        unsigned char k[META_LEN + 3];
        size_t n = meta_key(k, 'f');
        k[n++] = (unsigned char)(d >> 8);
        k[n++] = (unsigned char)d;
        batch_put(k, n, &ts, 8, 0, 0);
        atomic_store(&P.flush_ts[d], ts);
        P.count[d] = 0;
        P.vcount[d] = 0;
    }
    P.changes++;
}

void persist_flush_at(int db_id, uint64_t ts) {
    if (P.db == NULL) {
        return;
    }
    int lo = db_id < 0 ? 0 : db_id, hi = db_id < 0 ? server.databases - 1 : db_id;
    for (int d = lo; d <= hi; d++) {
        if (ts <= atomic_load_explicit(&P.flush_ts[d], memory_order_relaxed)) {
            continue; /* a floor is never lowered */
        }
        unsigned char k[META_LEN + 3];
        size_t n = meta_key(k, 'f');
        k[n++] = (unsigned char)(d >> 8);
        k[n++] = (unsigned char)d;
        batch_put(k, n, &ts, 8, 0, 0);
        atomic_store(&P.flush_ts[d], ts);
    }
    P.changes++;
    /* what stays at or above ts is still counted: recount (the iterator writes the
     * pending batch, the marker included, before its snapshot) */
    for (int d = lo; d <= hi; d++) {
        P.count[d] = 0;
        P.vcount[d] = 0;
    }
    struct persist_iter *pi = persist_iter_range(0, 0);
    if (pi == NULL) {
        return;
    }
    struct persist_rec r;
    while (persist_iter_next(pi, &r) == 1) {
        if (r.db < lo || r.db > hi || r.deleted) {
            continue;
        }
        P.count[r.db]++;
        if (r.expire_at) {
            P.vcount[r.db]++;
        }
    }
    persist_iter_destroy(&pi);
}
