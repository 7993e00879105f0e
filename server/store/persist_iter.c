/* server/store/persist_iter.c: persistent mode, iteration: SCAN, KEYS (foreach), RANDOMKEY
 * over the engine, and records for the store (tombstone reads, token ranges). Shared
 * state and helpers: persist_int.h; the design: PERSIST.md.
 */
#include "server/store/persist_int.h"

/* A temporary entry holding only a key and a type (SCAN TYPE, KEYS). */
static struct kv_entry *temp_entry(const char *key, size_t klen, const char *v, size_t vlen) {
    struct kv_entry *e = ks_entry_new(KS_TYPE_STRING, KS_ENC_RAW, key, klen, 0, 0, 0);
    if (vlen >= 4) {
        e->type = (unsigned char)v[1] & 15;
        e->enc = (unsigned char)v[2] & 15;
        if (e->enc == KS_ENC_HASHTABLE || e->enc == KS_ENC_INT) {
            e->enc = KS_ENC_RAW; /* the value area is a length prefix, nothing else */
        }
    }
    return e;
}

static void temp_keep(struct kv_entry *e) {
    if (P.ntemps == P.captemps) {
        P.captemps = P.captemps ? P.captemps * 2 : 32;
        P.temps = kv_realloc(P.temps, P.captemps * sizeof(*P.temps));
    }
    P.temps[P.ntemps++] = e;
}

/* Is the engine entry at it a live key of db_id? Fills key. */
static int iter_live(struct lsm_iter *it, int db_id, const char **key, size_t *klen,
                     uint64_t *token) {
    size_t ilen;
    const unsigned char *ik = (const unsigned char *)lsm_iter_key(it, &ilen);
    if (ilen < DKEY) {
        return 0;
    }
    *token = get_be64(ik);
    if (get_db(ik + 8) != db_id) {
        return 0;
    }
    struct lsm_meta m = lsm_iter_meta(it);
    if (m.timestamp < atomic_load_explicit(&P.flush_ts[db_id], memory_order_relaxed)) {
        return 0;
    }
    if (m.expire_at != 0 && (long long)m.expire_at <= server.mstime) {
        return 0;
    }
    *key = (const char *)ik + DKEY;
    *klen = ilen - DKEY;
    return 1;
}

int is_meta(struct lsm_iter *it) {
    size_t ilen;
    const unsigned char *ik = (const unsigned char *)lsm_iter_key(it, &ilen);
    return ilen > META_LEN && get_be64(ik) == UINT64_MAX && get_db(ik + 8) == 0xffff;
}

/* SCAN. HOW IT WORKS: data keys are sorted by token, so "the keys with token >=
 * cursor" is one engine seek. A page ends after `count` keys of the database (or
 * after visiting SCAN_VISIT_MAX entries of other databases or flushed ones: an
 * empty page, as Redis's SCAN may return), always at a boundary of a block of
 * 2^11 tokens, and the next position is the first token of the next block (the
 * client sees its block number, position >> 11, below 2^53: ks.h), and a key is
 * never returned twice: the next page starts
 * past every block already returned. Example: last key returned 0x...a7ff3,
 * next entry 0x...a8012: the cursor is 0x...a8000. */
#define SCAN_BLOCK_BITS KS_SCAN_BLOCK_BITS /* the blocks of kv_dict_scan (ks.h) */
#define SCAN_VISIT_MAX 100000
uint64_t persist_scan(int db_id, uint64_t cursor, long count,
                      void (*fn)(struct kv_entry *e, void *arg), void *arg) {
    temps_free();
    if (P.db == NULL) {
        return 0;
    }
    commit();
    struct lsm_read_options ro = raw_read();
    struct lsm_iter *it = lsm_iter_create(P.db, &ro);
    unsigned char seek[8];
    put_be64(seek, cursor);
    lsm_iter_seek(it, seek, 8);
    long emitted = 0, visited = 0, limit = SCAN_VISIT_MAX + count;
    uint64_t next = 0, last = 0;
    int have_last = 0;
    for (; lsm_iter_valid(it) && !is_meta(it); lsm_iter_next(it)) {
        const char *key;
        size_t klen;
        uint64_t token;
        size_t ilen;
        const unsigned char *ik = (const unsigned char *)lsm_iter_key(it, &ilen);
        token = ilen >= 8 ? get_be64(ik) : 0;
        if (have_last && (token >> SCAN_BLOCK_BITS) != (last >> SCAN_BLOCK_BITS) &&
            (emitted >= count || visited >= limit)) {
            next = token >> SCAN_BLOCK_BITS << SCAN_BLOCK_BITS;
            break;
        }
        visited++;
        if (!iter_live(it, db_id, &key, &klen, &token)) {
            if (!have_last || token != last) {
                last = token;
                have_last = 1;
            }
            continue;
        }
        size_t vlen;
        const char *v = lsm_iter_value(it, &vlen);
        struct kv_entry *e = temp_entry(key, klen, v, vlen);
        temp_keep(e);
        fn(e, arg);
        emitted++;
        last = token;
        have_last = 1;
    }
    lsm_iter_destroy(&it);
    return next;
}

void persist_foreach(int db_id, void (*fn)(struct kv_entry *e, void *arg), void *arg) {
    temps_free();
    if (P.db == NULL) {
        return;
    }
    commit();
    struct lsm_read_options ro = raw_read();
    struct lsm_iter *it = lsm_iter_create(P.db, &ro);
    for (lsm_iter_seek_first(it); lsm_iter_valid(it) && !is_meta(it); lsm_iter_next(it)) {
        const char *key;
        size_t klen, vlen;
        uint64_t token;
        if (!iter_live(it, db_id, &key, &klen, &token)) {
            continue;
        }
        const char *v = lsm_iter_value(it, &vlen);
        struct kv_entry *e = temp_entry(key, klen, v, vlen);
        fn(e, arg);
        ks_entry_free(e);
    }
    lsm_iter_destroy(&it);
}

struct kv_entry *persist_random(int db_id) {
    temps_free();
    if (P.db == NULL || persist_db_size(db_id) == 0) {
        return NULL;
    }
    commit();
    struct lsm_read_options ro = raw_read();
    struct lsm_iter *it = lsm_iter_create(P.db, &ro);
    unsigned char seek[8];
    put_be64(seek, ks_rand64());
    lsm_iter_seek(it, seek, 8);
    struct kv_entry *e = NULL;
    for (int pass = 0; pass < 2 && e == NULL; pass++) {
        if (pass == 1) {
            lsm_iter_seek_first(it);
        }
        for (; lsm_iter_valid(it) && !is_meta(it); lsm_iter_next(it)) {
            const char *key;
            size_t klen, vlen;
            uint64_t token;
            if (iter_live(it, db_id, &key, &klen, &token)) {
                const char *v = lsm_iter_value(it, &vlen);
                e = temp_entry(key, klen, v, vlen);
                temp_keep(e);
                break;
            }
        }
    }
    lsm_iter_destroy(&it);
    return e;
}

/* ------------------------------------------------------------------------------
 * Records for the store (server/store/store.c): tombstones and token ranges
 * ------------------------------------------------------------------------------ */
/* The flush marker of db as a tombstone's version (node 0), hlc 0 when none. */
static struct kv_version flush_version(int db) {
    struct kv_version v = {atomic_load_explicit(&P.flush_ts[db], memory_order_relaxed), 0};
    return v;
}

int persist_read_deleted(int db_id, const char *key, size_t klen, uint64_t token,
                         struct kv_version *ver, long long *expire_at) {
    if (P.db == NULL) {
        return -1;
    }
    if (deleted_has(token, db_id)) {
        commit(); /* the tombstone is in the pending batch: make it readable */
    }
    data_key(db_id, key, klen, token);
    struct lsm_read_options ro = raw_read();
    ro.include_tombstones = 1;
    int rc = lsm_get(P.db, &ro, P.kbuf.p, P.kbuf.len, &P.val);
    if (rc != LSM_OK && rc != LSM_NOTFOUND) {
        server_log(LL_WARNING, "Engine read error: %s", lsm_errmsg(P.db));
        return -1;
    }
    struct kv_version fv = flush_version(db_id);
    if (rc == LSM_OK && P.val.deleted && P.val.timestamp >= fv.hlc) {
        ver->hlc = P.val.timestamp;
        ver->node = P.val.node;
        *expire_at = (long long)P.val.expire_at;
        return 1;
    }
    /* nothing, or only what the flush marker hides: the marker is the tombstone */
    if (fv.hlc != 0) {
        *ver = fv;
        *expire_at = 0;
        return 1;
    }
    return 0;
}

void persist_tombstone(int db_id, const char *key, size_t klen, int existed,
                       long long old_expire, long long tomb_expire, struct kv_version ver) {
    if (P.db == NULL) {
        return;
    }
    if (existed) {
        del_generic(db_id, key, klen, old_expire, tomb_expire, ver);
        return;
    }
    uint64_t token = ks_token(key, klen);
    data_key(db_id, key, klen, token);
    batch_tomb(P.kbuf.p, P.kbuf.len, tomb_expire, ver);
    deleted_add(token, db_id);
    P.changes++;
}

/* HOW THE RANGE ITERATOR WORKS: data keys are token:u64be db:u16be key, so the
 * tokens [start, end) of every database are one engine range: seek(be64(start)),
 * upper bound be64(end) (or the meta namespace when end is 0, the end of the
 * ring). The pending batch is written first and the iterator reads a snapshot of
 * that moment. Tombstones come from include_tombstones; a value expired by now is
 * reported as the tombstone it becomes (its own version and expire-at); entries a
 * flush marker hides are skipped (the marker stands for them: a per-database range
 * tombstone, persist_read_deleted reports it per key). A big hash's header is
 * expanded into a self-contained envelope (every field), so a record is always
 * what store_apply takes. */
struct persist_iter {
    struct lsm_iter *it;
    unsigned char lo[8], hi[META_LEN];
    struct pbuf val;  /* an expanded big hash */
    int first;
};

struct persist_iter *persist_iter_range(uint64_t start, uint64_t end) {
    if (P.db == NULL) {
        return NULL;
    }
    commit();
    struct persist_iter *pi = kv_calloc(1, sizeof(*pi));
    struct lsm_read_options ro = raw_read();
    ro.include_tombstones = 1;
    ro.fill_cache = 0;
    put_be64(pi->lo, start);
    if (end != 0) {
        put_be64(pi->hi, end);
        ro.upper_bound = pi->hi;
        ro.upper_bound_len = 8;
    } else {
        memset(pi->hi, 0xff, META_LEN); /* the meta namespace */
        ro.upper_bound = pi->hi;
        ro.upper_bound_len = META_LEN;
    }
    pi->it = lsm_iter_create(P.db, &ro);
    pi->first = 1;
    return pi;
}

int persist_iter_next(struct persist_iter *pi, struct persist_rec *out) {
    if (pi->first) {
        lsm_iter_seek(pi->it, pi->lo, 8);
        pi->first = 0;
    } else {
        lsm_iter_next(pi->it);
    }
    for (; lsm_iter_valid(pi->it); lsm_iter_next(pi->it)) {
        size_t ilen, vlen;
        const unsigned char *ik = (const unsigned char *)lsm_iter_key(pi->it, &ilen);
        if (ilen < DKEY || is_field_key(ik, ilen)) {
            continue; /* field records come inside their hash's envelope */
        }
        int db = get_db(ik + 8);
        struct lsm_meta m = lsm_iter_meta(pi->it);
        if (db >= server.databases ||
            m.timestamp < atomic_load_explicit(&P.flush_ts[db], memory_order_relaxed)) {
            continue;
        }
        out->db = db;
        out->token = get_be64(ik);
        out->key = (const char *)ik + DKEY;
        out->klen = ilen - DKEY;
        out->ver.hlc = m.timestamp;
        out->ver.node = m.node;
        out->expire_at = (long long)m.expire_at;
        out->deleted = lsm_iter_deleted(pi->it) ||
                       (m.expire_at != 0 && (long long)m.expire_at <= server.mstime);
        out->val = NULL;
        out->vlen = 0;
        if (out->deleted) {
            return 1;
        }
        const char *v = lsm_iter_value(pi->it, &vlen);
        if (vlen >= 4 && ((const unsigned char *)v)[3] & ENV_FIELDS) {
            struct kv_entry *e = persist_decode(out->key, out->klen, v, vlen, out->expire_at);
            if (e == NULL) {
                server_log(LL_WARNING, "Engine value of a key in db %d is malformed", db);
                continue;
            }
            load_fields(db, e);
            encode_into(e, &pi->val);
            ks_entry_free(e);
            v = pi->val.p;
            vlen = pi->val.len;
        }
        out->val = v;
        out->vlen = vlen;
        return 1;
    }
    if (lsm_iter_status(pi->it) != LSM_OK) {
        server_log(LL_WARNING, "Engine read error: %s", lsm_errmsg(P.db));
        return -1;
    }
    return 0;
}

void persist_iter_destroy(struct persist_iter **pi) {
    if (*pi == NULL) {
        return;
    }
    lsm_iter_destroy(&(*pi)->it);
    kv_free((*pi)->val.p);
    kv_free(*pi);
    *pi = NULL;
}
