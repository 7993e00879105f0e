/* server/store/persist_read.c: persistent mode, the read-through: persist_load on a dict
 * miss, and the counts (DBSIZE). Shared state and helpers: persist_int.h; the design:
 * PERSIST.md.
 */
#include "server/store/persist_int.h"

/* ------------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------------ */
struct kv_entry *persist_load(struct kv_db *db, const char *key, size_t klen, uint64_t token) {
    if (P.db == NULL || deleted_has(token, db->id)) {
        return NULL;
    }
    /* Every key of the database is cached (its exact count says so: the dict holds
     * a subset of the live keys, expired ones not yet counted out included): a miss
     * is an absent key, no engine read. The common case of a data set that fits. */
    if ((long long)db->keys.count == P.count[db->id]) {
        return NULL;
    }
    data_key(db->id, key, klen, token);
    struct lsm_read_options ro = raw_read();
    int rc = lsm_get(P.db, &ro, P.kbuf.p, P.kbuf.len, &P.val);
    if (rc != LSM_OK) {
        if (rc != LSM_NOTFOUND) {
            server_log(LL_WARNING, "Engine read error: %s", lsm_errmsg(P.db));
        }
        return NULL;
    }
    if (P.val.timestamp < atomic_load_explicit(&P.flush_ts[db->id], memory_order_relaxed)) {
        return NULL;
    }
    struct kv_entry *e = persist_decode(key, klen, P.val.data, P.val.len,
                                        (long long)P.val.expire_at);
    if (e == NULL) {
        server_log(LL_WARNING, "Engine value of a key in db %d is malformed", db->id);
        return NULL;
    }
    struct kv_version ver = {P.val.timestamp, P.val.node};
    ks_entry_set_version(e, ver);
    if (e->enc == KS_ENC_HASHTABLE && ks_val_dict(e)->store_gen) {
        load_fields(db->id, e);
    }
    ks_insert(db, e, token);
    return e;
}

size_t persist_db_size(int db_id) {
    return P.count[db_id] > 0 ? (size_t)P.count[db_id] : 0;
}

size_t persist_db_expires(int db_id) {
    return P.vcount[db_id] > 0 ? (size_t)P.vcount[db_id] : 0;
}
