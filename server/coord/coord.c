/* server/coord/coord.c: the coordinator seam on one node: thin wrappers over the store
 * interface (server/store/store.h) that stamp every write with its version and add what
 * every read owes the statistics (hits, misses, LRU/LFU). What a write owes WATCH,
 * server.dirty and persistence is done by the store's event subscribers
 * (events.h); cache and persistent mode differ only behind the store interface.
 * See coord.h for the contract; the cluster plugs in here.
 */
#include "server/coord/coord.h"
#include "server/store/store.h"

/* VERSIONS: every write stamps the value it leaves (or the tombstone of a removal)
 * with a version, an HLC timestamp and this node's tag (DESIGN.md "Values and
 * versions"). The rule:
 *   1. A key's versions strictly increase: a write's version is above the version
 *      of the value it replaces, also one restored from disk or received from a
 *      peer whose clock is ahead (hlc_observe), and after debug-clock-offset-ms
 *      moved the clock back. Two writes of one key never share a version.
 *   2. A write's version is at or above every timestamp the clock handed out or
 *      observed before it (a flush marker at F removes what is below F, never a
 *      value written after the flush).
 *   3. The writes of one command (call(): EXEC's queued commands are one) share
 *      one version where 1 and 2 allow: its first write takes a new tick; a later
 *      write reuses it while it is still the clock's last timestamp (nothing
 *      ticked or was observed since: 2) and the key holds an older version (1:
 *      MSET k a k b, SET then DEL of a key inside EXEC). Otherwise the write takes
 *      a new tick, which the command's later writes share in turn.
 * So the clock is read once per command, not once per key (MSET's ten keys: one
 * tick). A write outside any command (unit tests calling coord_* directly)
 * follows the same rule, sharing the last command's version where it may. */
uint64_t coord_cmd_hlc;

/* A new tick above old's version (NULL: nothing held), which the rest of the
 * command may share. */
static inline struct kv_version stamp_tick(const struct kv_entry *old) {
    if (old) {
        hlc_observe(ks_entry_version(old).hlc);
    }
    long long ms = server.mstime;
    uint64_t hlc = hlc_tick(ms > 0 ? (uint64_t)ms : 0);
    coord_cmd_hlc = hlc;
    struct kv_version v = {hlc, server.node_tag};
    return v;
}

/* The version of a write that replaces `old` (NULL: nothing held): see VERSIONS. */
static inline struct kv_version stamp(const struct kv_entry *old) {
    uint64_t hlc = coord_cmd_hlc;
    if (hlc == 0 || hlc != hlc_last() || (old && ks_entry_version(old).hlc >= hlc)) {
        return stamp_tick(old);
    }
    struct kv_version v = {hlc, server.node_tag};
    return v;
}

/* Finds key in db (store_lookup: read through the backend on a dict miss); an
 * expired key is deleted and reported absent. */
static inline struct kv_entry *lookup(struct kv_db *db, const struct kv_slice *key,
                                      uint64_t *token) {
    *token = ks_token(key->p, key->len);
    return store_lookup(db, key->p, key->len, *token);
}

/* coord_lookup's body, inline in the typed lookup every HSET and HGET makes. */
static inline struct kv_entry *lookup_counted(struct client *c, const struct kv_slice *key,
                                              unsigned flags) {
    uint64_t token;
    struct kv_entry *e = lookup(c->db, key, &token);
    if (!(flags & COORD_NOSTATS)) {
        if (e) {
            server.stat_keyspace_hits++;
        } else {
            server.stat_keyspace_misses++;
        }
    }
    if (e && !(flags & COORD_NOTOUCH) && !(c->flags & CLIENT_NO_TOUCH)) {
        ks_entry_touch(e);
    }
    return e;
}

struct kv_entry *coord_lookup(struct client *c, const struct kv_slice *key, unsigned flags) {
    return lookup_counted(c, key, flags);
}

struct kv_entry *coord_lookup_read(struct client *c, const struct kv_slice *key) {
    uint64_t token;
    struct kv_entry *e = lookup(c->db, key, &token);
    if (e == NULL) {
        server.stat_keyspace_misses++;
        return NULL;
    }
    server.stat_keyspace_hits++;
    if (!(c->flags & CLIENT_NO_TOUCH)) {
        ks_entry_touch(e);
    }
    return e;
}

struct kv_entry *coord_lookup_write(struct client *c, const struct kv_slice *key) {
    uint64_t token;
    struct kv_entry *e = lookup(c->db, key, &token);
    if (e && !(c->flags & CLIENT_NO_TOUCH)) {
        ks_entry_touch(e);
    }
    return e;
}

struct kv_entry *coord_lookup_write_db(struct client *c, int db_id, const struct kv_slice *key) {
    uint64_t token;
    (void)c;
    return lookup(server.db[db_id], key, &token);
}

struct kv_entry *coord_touch(struct client *c, const struct kv_slice *key) {
    uint64_t token;
    struct kv_entry *e = lookup(c->db, key, &token);
    if (e) {
        ks_entry_touch(e);
    }
    return e;
}

/* The LRU/LFU of a value that replaces `old` under the same key, as Redis's
 * overwrite: under LFU the write counts as an access of the key and the counter
 * carries over (a hot key stays hot when rewritten); under LRU it is new. */
static inline void overwrite_lru(struct client *c, struct kv_entry *old, struct kv_entry *e) {
    if (ks_policy_is_lfu()) {
        if (!(c->flags & CLIENT_NO_TOUCH)) {
            ks_entry_touch(old);
        }
        e->lru = old->lru;
    } else {
        ks_entry_init_lru(e);
    }
}

/* Stores a string or int value for key: in place over an old string, otherwise
 * as a new entry. */
static struct kv_entry *set_value(struct client *c, const struct kv_slice *key, int enc,
                                  long long iv, const char *p, size_t len,
                                  long long expire_at, unsigned flags) {
    struct kv_db *db = c->db;
    uint64_t token;
    struct kv_entry *old = lookup(db, key, &token), *e;
    int existed = old != NULL;
    long long old_exp = old ? ks_entry_expire(old) : 0;
    struct kv_version ver = stamp(old);

    if (old && (flags & COORD_KEEPTTL) && expire_at == 0) {
        expire_at = ks_entry_expire(old);
    }
    if (old && old->type == KS_TYPE_STRING) {
        e = old;
        if (expire_at == 0 && ks_entry_has_expire(e)) {
            e = ks_persist(db, e);
        }
        e = ks_entry_reshape(db, e, enc, len, 0);
        e->flags &= (uint8_t)~KE_RAW;
        if (expire_at) {
            e = ks_set_expire(db, e, expire_at);
        }
        overwrite_lru(c, e, e);
    } else {
        e = ks_entry_new(KS_TYPE_STRING, enc, key->p, key->len, len, expire_at, 0);
        if (old) {
            overwrite_lru(c, old, e);
        }
        store_link(db, old, e, token);
    }
    if (enc == KS_ENC_INT) {
        ks_val_set_int(e, iv);
    } else {
        size_t n;
        memcpy(ks_val_bytes(e, &n), p, len);
    }
    ks_entry_set_version(e, ver);
    store_written(c, db, key, e, existed, old_exp, NULL, 0, 0);
    return e;
}

struct kv_entry *coord_set_str(struct client *c, const struct kv_slice *key, const char *p,
                               size_t len, long long expire_at, unsigned flags) {
    long long iv = 0;
    int enc = obj_str_pick_enc(p, len, &iv);
    if (enc == KS_ENC_INT && (flags & COORD_NOINT)) {
        enc = len <= KS_EMBSTR_MAX ? KS_ENC_EMBSTR : KS_ENC_RAW;
    }
    return set_value(c, key, enc, iv, p, len, expire_at, flags);
}

struct kv_entry *coord_set_int(struct client *c, const struct kv_slice *key, long long v,
                               long long expire_at, unsigned flags) {
    return set_value(c, key, KS_ENC_INT, v, NULL, 0, expire_at, flags);
}

struct kv_entry *coord_put(struct client *c, int db_id, struct kv_entry *e, unsigned flags) {
    if (db_id < 0) {
        db_id = c->db_id;
    }
    struct kv_db *db = server.db[db_id];
    size_t klen;
    const char *k = ks_entry_key(e, &klen);
    struct kv_slice key = {k, klen};
    uint64_t token;
    struct kv_entry *old = lookup(db, &key, &token);
    int existed = old != NULL;
    long long old_exp = old ? ks_entry_expire(old) : 0;
    if (old && (flags & COORD_KEEPTTL) && ks_entry_has_expire(old)) {
        e = ks_set_expire(NULL, e, ks_entry_expire(old));
    }
    ks_entry_set_version(e, stamp(old));
    store_link(db, old, e, token);
    k = ks_entry_key(e, &klen); /* e may have moved */
    key.p = k;
    store_written(c, db, &key, e, existed, old_exp, NULL, 0, 0);
    return e;
}

int coord_delete(struct client *c, const struct kv_slice *key, int lazy) {
    uint64_t token;
    struct kv_entry *e = lookup(c->db, key, &token);
    if (e == NULL) {
        return 0;
    }
    return store_delete(c, c->db, key, e, token, stamp(e), lazy);
}

struct kv_entry *coord_set_expire(struct client *c, const struct kv_slice *key,
                                  struct kv_entry *e, long long when) {
    long long old_exp = ks_entry_expire(e);
    struct kv_version ver = stamp(e);
    if (when <= server.mstime) {
        store_delete(c, c->db, key, e, ks_token(key->p, key->len), ver, 0);
        return NULL;
    }
    e = ks_set_expire(c->db, e, when);
    ks_entry_set_version(e, ver);
    store_written(c, c->db, key, e, 1, old_exp, NULL, 0, 0);
    return e;
}

struct kv_entry *coord_persist(struct client *c, const struct kv_slice *key,
                               struct kv_entry *e) {
    long long old_exp = ks_entry_expire(e);
    struct kv_version ver = stamp(e);
    e = ks_persist(c->db, e);
    ks_entry_set_version(e, ver);
    store_written(c, c->db, key, e, 1, old_exp, NULL, 0, 0);
    return e;
}

void coord_hash_modified(struct client *c, const struct kv_slice *key, struct kv_entry *e,
                         const struct kv_slice *fields, size_t n, size_t stride) {
    ks_entry_set_version(e, stamp(e));
    store_written(c, c->db, key, e, 1, ks_entry_expire(e), fields, n, stride);
}

void coord_modified(struct client *c, const struct kv_slice *key, struct kv_entry *e) {
    ks_entry_set_version(e, stamp(e));
    store_written(c, c->db, key, e, 1, ks_entry_expire(e), NULL, 0, 0);
}

void coord_rename(struct client *c, const struct kv_slice *src, const struct kv_slice *dst) {
    struct kv_db *db = c->db;
    uint64_t token;
    struct kv_entry *e = lookup(db, src, &token);
    if (e == NULL) {
        return;
    }
    store_deleting(c, db, src, e, stamp(e));
    struct kv_entry *ne = ks_take_rekeyed(db, e, dst->p, dst->len, ks_entry_expire(e));
    coord_put(c, c->db_id, ne, 0);
}

size_t coord_flush(struct client *c, int db_id, int async) {
    return store_flush(c, db_id, async);
}

uint64_t coord_scan(struct client *c, uint64_t cursor, long count,
                    void (*fn)(struct kv_entry *e, void *arg), void *arg) {
    return store_scan(c->db_id, cursor, count, fn, arg);
}

void coord_foreach(struct client *c, void (*fn)(struct kv_entry *e, void *arg), void *arg) {
    store_foreach(c->db_id, fn, arg);
}

struct kv_entry *coord_random(struct client *c) {
    return store_random(c->db_id);
}

size_t coord_db_size(struct client *c) {
    return store_db_size(c->db_id);
}

void coord_expire_entry(struct client *c, struct kv_entry *e) {
    store_expire_entry(c->db, e);
}

/* ---- typed lookups and in-place changes (coord.h) ----
 * These resolve the client's database here, so handlers never name it. */

int coord_lookup_type_or_reply(struct client *c, const struct kv_slice *key, int type,
                               unsigned flags, struct kv_entry **ep) {
    struct kv_entry *e = lookup_counted(c, key, flags);
    if (e && e->type != type) {
        reply_wrongtype(c);
        *ep = NULL;
        return -1;
    }
    *ep = e;
    return 0;
}

struct kv_entry *coord_str_append(struct client *c, const struct kv_slice *key,
                                  struct kv_entry *e, const char *p, size_t len) {
    e = obj_str_append(c->db, e, p, len);
    coord_modified(c, key, e);
    return e;
}

struct kv_entry *coord_str_setrange(struct client *c, const struct kv_slice *key,
                                    struct kv_entry *e, size_t off, const char *p,
                                    size_t len) {
    e = obj_str_setrange(c->db, e, off, p, len);
    coord_modified(c, key, e);
    return e;
}

int coord_hash_set(struct client *c, struct kv_entry **ep, const char *f, size_t flen,
                   const char *v, size_t vlen) {
    return hash_set(c->db, ep, f, flen, v, vlen);
}

int coord_hash_del(struct client *c, struct kv_entry **ep, const char *f, size_t flen) {
    return hash_del(c->db, ep, f, flen);
}

void coord_db_overhead(int db_id, size_t *keys, size_t *main_bytes, size_t *expires_bytes) {
    struct kv_db *db = server.db[db_id];
    *keys = ks_db_size(db);
    *main_bytes = kv_dict_slots(&db->keys) * sizeof(void *);
    *expires_bytes = db->vol_cap * sizeof(void *);
}

int coord_reply_over_limit(struct client *c) {
    return client_check_output_limits(c) || (c->flags & CLIENT_CLOSE_ASAP);
}

void coord_close_client(struct client *c) {
    client_close_async(c);
}
