/* server/store/persist_meta.c: persistent mode, the expiry index's active expiry, and the
 * counts and markers record (write_counts / load_meta). Shared state and helpers:
 * persist_int.h; the design: PERSIST.md.
 */
#include "server/store/persist_int.h"

/* ------------------------------------------------------------------------------
 * Active expiry over the expiry index
 *
 * HOW IT WORKS: every live key with a TTL has one index entry
 * meta||'x'||expire_at:u64be||db||key (kept in step by persist_put/del), so the
 * keys due by now are one prefix of the index, in expiry order. A cycle walks it
 * from the start up to now: each entry is a key that expired (its index entry is
 * deleted, its data gets a tombstone, the count drops), or a stale entry of a
 * flushed database (dropped). Whatever the walk reached, the engine's compaction
 * may drop by itself: its clock (compaction_clock) is this watermark, not the
 * wall clock, so an expired entry is never dropped before it was counted.
 * ------------------------------------------------------------------------------ */
uint64_t compaction_clock(void) {
    return atomic_load(&P.watermark);
}

/* One entry of the walk: index key ik[0..ilen) (prefix length sn) due at exp, whose
 * value v[0..vlen) holds the flush timestamp it was written under. An expired key
 * is deleted (cached) or announced (on disk); a stale entry (its database flushed
 * since, the cache disagreeing, the data gone) is dropped. kb is the walk's key
 * buffer, reused from entry to entry. */
static void expire_entry(const unsigned char *ik, size_t ilen, size_t sn, long long exp,
                         const char *v, size_t vlen, const struct lsm_read_options *ro,
                         struct pbuf *kb) {
    int db = get_db(ik + sn + 8);
    const char *key = (const char *)ik + sn + 10;
    size_t klen = ilen - sn - 10;
    uint64_t ts = 0;
    if (vlen == 8) {
        memcpy(&ts, v, 8);
    }
    if (db >= server.databases ||
        ts < atomic_load_explicit(&P.flush_ts[db], memory_order_relaxed)) {
        batch_del(ik, ilen, 0); /* stale: the database was flushed since */
        return;
    }
    struct kv_db *kdb = server.db[db];
    uint64_t token = ks_token(key, klen);
    struct kv_entry *e = ks_find(kdb, key, klen, token);
    if (e && ks_entry_expire(e) == exp) {
        ks_expire_now(kdb, e, token); /* deletes through persist_expired */
        return;
    }
    if (e) {
        /* the cache disagrees with the index (never expected): drop the entry */
        batch_del(ik, ilen, 0);
        return;
    }
    /* Not cached: the data must be there, not yet expired by compaction (its
     * clock is the watermark, set only after a pass's deletions are written).
     * It can be missing only after a machine crash lost the WAL tail holding
     * this entry's deletion while a compaction had dropped the data: then it
     * was not counted at the recount either. */
    data_key(db, key, klen, token);
    int rc = lsm_get(P.db, ro, P.kbuf.p, P.kbuf.len, &P.val);
    if (rc != LSM_OK || (long long)P.val.expire_at != exp ||
        P.val.timestamp < atomic_load_explicit(&P.flush_ts[db], memory_order_relaxed)) {
        if (rc == LSM_OK || rc == LSM_NOTFOUND) {
            batch_del(ik, ilen, 0);
        }
        return;
    }
    pbuf_reserve(kb, klen);
    memcpy(kb->p, key, klen);
    struct kv_version ver = {P.val.timestamp, P.val.node};
    /* announced as any expiry: persist_on_event writes the tombstone */
    struct store_ev ev = {.type = STORE_EV_EXPIRED, .db = db, .key = kb->p, .klen = klen,
                          .version = ver, .old_expire = exp, .existed = 1};
    store_emit(&ev);
}

/* One walk of the index in order, from the first entry up to now or until the
 * budget is spent; then the deletions are committed and, when the walk reached
 * now, the compaction clock moves up to it (in that order: the invariant above). */
void expire_cycle(long long budget_us) {
    if (P.db == NULL || !server.active_expire_enabled) {
        return;
    }
    commit();
    long long start = kv_ustime(), now = server.mstime;
    struct lsm_read_options ro = raw_read();
    struct lsm_iter *it = lsm_iter_create(P.db, &ro);
    unsigned char seek[META_LEN + 1];
    size_t sn = meta_key(seek, 'x');
    lsm_iter_seek(it, seek, sn);
    long n = 0;
    int done = 0;
    struct pbuf kb = {0};
    for (;; lsm_iter_next(it)) {
        if (!lsm_iter_valid(it)) {
            done = 1;
            break;
        }
        size_t ilen, vlen;
        const unsigned char *ik = (const unsigned char *)lsm_iter_key(it, &ilen);
        if (ilen < sn + 10 || memcmp(ik, seek, sn) != 0) {
            done = 1;
            break;
        }
        long long exp = (long long)get_be64(ik + sn);
        if (exp > now) {
            done = 1;
            break;
        }
        if ((++n & 31) == 0 && kv_ustime() - start > budget_us) {
            break;
        }
        const char *v = lsm_iter_value(it, &vlen);
        expire_entry(ik, ilen, sn, exp, v, vlen, &ro, &kb);
    }
    kv_free(kb.p);
    lsm_iter_destroy(&it);
    P.expire_more = !done;
    if (commit() == 0 && done) {
        atomic_store(&P.watermark, (uint64_t)now);
    }
}

/* ------------------------------------------------------------------------------
 * Counts and markers: meta||'c' := version:u8(1) clean:u8 hlc:u64le watermark:u64le
 *                                   ndbs:u8 (count:i64le vcount:i64le)*ndbs
 * (ndbs: the low byte of the number of databases; the length says the rest)
 * ------------------------------------------------------------------------------ */
void write_counts(struct lsm_db *db, int clean) {
    size_t n = 1 + 1 + 8 + 8 + 1 + (size_t)server.databases * 16;
    unsigned char *v = kv_malloc(n);
    v[0] = 1;
    v[1] = (unsigned char)clean;
    uint64_t h = hlc_last(), wm = atomic_load(&P.watermark);
    memcpy(v + 2, &h, 8);
    memcpy(v + 10, &wm, 8);
    v[18] = (unsigned char)server.databases;
    for (int i = 0; i < server.databases; i++) {
        memcpy(v + 19 + i * 16, &P.count[i], 8);
        memcpy(v + 27 + i * 16, &P.vcount[i], 8);
    }
    unsigned char k[META_LEN + 1];
    size_t kn = meta_key(k, 'c');
    lsm_put(db, k, kn, v, n, NULL, LSM_WRITE_SYNC, NULL);
    kv_free(v);
}

/* Reads markers and counts (recounting by a scan when the last run did not end
 * cleanly). Runs on the loader thread: touches only P's counters, which nobody
 * reads before the loader is done. */
int load_meta(struct lsm_db *db) {
    struct lsm_read_options ro = raw_read();
    struct lsm_value v = LSM_VALUE_INIT;
    unsigned char k[META_LEN + 3];
    for (int d = 0; d < server.databases; d++) {
        size_t n = meta_key(k, 'f');
        k[n++] = (unsigned char)(d >> 8);
        k[n++] = (unsigned char)d;
        uint64_t ts = 0;
        if (lsm_get(db, &ro, k, n, &v) == LSM_OK && v.len == 8) {
            memcpy(&ts, v.data, 8);
        }
        atomic_store(&P.flush_ts[d], ts);
        P.count[d] = P.vcount[d] = 0;
    }
    size_t kn = meta_key(k, 'c');
    int clean = 0;
    uint64_t hmax = 0;
    if (lsm_get(db, &ro, k, kn, &v) == LSM_OK && v.len >= 19 && v.data[0] == 1 &&
        v.data[1] == 1 && (unsigned char)v.data[18] == (unsigned char)server.databases &&
        v.len == 19 + (size_t)server.databases * 16) {
        clean = 1;
        memcpy(&hmax, v.data + 2, 8);
        uint64_t wm;
        memcpy(&wm, v.data + 10, 8);
        atomic_store(&P.watermark, wm);
        for (int i = 0; i < server.databases; i++) {
            memcpy(&P.count[i], v.data + 19 + i * 16, 8);
            memcpy(&P.vcount[i], v.data + 27 + i * 16, 8);
        }
    }
    lsm_value_free(&v);
    if (!clean) {
        /* the last run did not close cleanly: count by a scan (PERSIST.md) */
        struct lsm_iter *it = lsm_iter_create(db, &ro);
        for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
            size_t ilen;
            const unsigned char *ik = (const unsigned char *)lsm_iter_key(it, &ilen);
            if (ilen < DKEY) {
                continue;
            }
            struct lsm_meta m = lsm_iter_meta(it);
            if (m.timestamp > hmax) {
                hmax = m.timestamp;
            }
            if (is_meta(it)) {
                break;
            }
            int d = get_db(ik + 8);
            if (d >= server.databases ||
                m.timestamp < atomic_load_explicit(&P.flush_ts[d], memory_order_relaxed)) {
                continue;
            }
            P.count[d]++;
            if (m.expire_at) {
                P.vcount[d]++;
            }
        }
        int rc = lsm_iter_status(it);
        lsm_iter_destroy(&it);
        if (rc != LSM_OK) {
            return rc;
        }
    }
    for (int d = 0; d < server.databases; d++) {
        uint64_t f = atomic_load(&P.flush_ts[d]);
        if (f > hmax) {
            hmax = f;
        }
    }
    hlc_observe(hmax);
    write_counts(db, 0); /* from now on a crash means "recount" */
    return LSM_OK;
}
