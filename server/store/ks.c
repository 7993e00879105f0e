/* server/store/ks.c: databases and entries. Allocation and reshaping of entries, the
 * volatile array of keys with a TTL, lazy-expiry deletion, the active expiry
 * cycle, flushing (with a lazy-free thread), LRU/LFU bookkeeping and the cron.
 *
 * The hash table itself is in ks_dict.c; value encodings (strings, packed hashes)
 * in obj.c and hashobj.c; the seam handlers use in coord.c. Everything here runs
 * on the loop thread except the lazy-free worker, which only frees memory handed
 * to it.
 */
#include <limits.h>
#include <pthread.h>

#include "server/store/events.h"
#include "server/store/ks.h"

size_t ks_hash_max_listpack_entries = 512;
size_t ks_hash_max_listpack_value = 64;

/* ---- entries ---- */

static inline void vidx_set(struct kv_entry *e, uint32_t i) {
    memcpy(e->data + ks_exp_off(e) + 8, &i, 4);
}
static inline uint32_t vidx_get(const struct kv_entry *e) {
    uint32_t i;
    memcpy(&i, e->data + ks_exp_off(e) + 8, 4);
    return i;
}

/* inline: ks_entry_new and ks_field_new (a hash field on every HSET) each get a
 * copy with their constants folded */
static inline struct kv_entry *entry_alloc(int type, int enc, const char *key, size_t klen,
                                    size_t vlen, long long expire_at, size_t extra,
                                    int versioned) {
    size_t voff = versioned ? KS_VERSION_SIZE : 0;
    size_t eoff = expire_at ? 12 : 0;
    size_t koff = klen < 255 ? 0 : 4;
    size_t size = KS_ENTRY_HDR + voff + eoff + koff + klen + ks_val_size(enc, vlen) + extra;
    struct kv_entry *e = kv_malloc(size);
    e->next = NULL;
    e->type = (unsigned)type;
    e->enc = (unsigned)enc;
    e->flags = (uint8_t)((expire_at ? KE_EXPIRE : 0) | (versioned ? 0 : KE_NOVER));
    e->klen8 = klen < 255 ? (uint8_t)klen : 255;
    unsigned char *p = e->data;
    if (versioned) {
        memset(p, 0, KS_VERSION_SIZE);
        p += KS_VERSION_SIZE;
    }
    if (expire_at) {
        memcpy(p, &expire_at, 8);
        vidx_set(e, 0);
        p += 12;
    }
    if (koff) {
        uint32_t n = (uint32_t)klen;
        memcpy(p, &n, 4);
        p += 4;
    }
    memcpy(p, key, klen);
    p += klen;
    if (ks_enc_prefixed(enc)) {
        ks_write_vlen(p, vlen);
    }
    ks_entry_init_lru(e);
    return e;
}

struct kv_entry *ks_entry_new(int type, int enc, const char *key, size_t klen,
                              size_t vlen, long long expire_at, size_t extra) {
    return entry_alloc(type, enc, key, klen, vlen, expire_at, extra, 1);
}

struct kv_entry *ks_field_new(int enc, const char *f, size_t flen, size_t vlen) {
    return entry_alloc(KS_TYPE_STRING, enc, f, flen, vlen, 0, 0, 0);
}

size_t ks_entry_size(const struct kv_entry *e) {
    size_t off = KS_ENTRY_HDR + ks_val_off(e);
    if (!ks_enc_prefixed(e->enc)) {
        return off + 8;
    }
    size_t len;
    const unsigned char *v = ks_val_bytes(e, &len);
    return (size_t)(v - (const unsigned char *)e) + len;
}

void ks_entry_free(struct kv_entry *e) {
    if (e->enc == KS_ENC_HASHTABLE) {
        struct kv_dict *d = ks_val_dict(e);
        kv_dict_clear(d, ks_entry_free);
        kv_free(d);
    }
    kv_free(e);
}

struct kv_entry *ks_entry_realloc(struct kv_db *db, struct kv_entry *e, size_t size) {
    if (db == NULL) {
        return kv_realloc(e, size);
    }
    struct kv_entry **link = kv_dict_link_of(&db->keys, e, ks_entry_token(e));
    struct kv_entry *ne = kv_realloc(e, size);
    if (ne != e) {
        kv_dict_link_set(link, ne);
        if (ne->flags & KE_EXPIRE) {
            db->vol[vidx_get(ne)] = ne;
        }
    }
    return ne;
}

struct kv_entry *ks_entry_reshape(struct kv_db *db, struct kv_entry *e, int enc,
                                  size_t vlen, size_t extra) {
    size_t voff = KS_ENTRY_HDR + ks_val_off(e);
    size_t old_pfx = 0, old_len = 8;
    if (ks_enc_prefixed(e->enc)) {
        old_pfx = ks_read_vlen((const unsigned char *)e + voff, &old_len);
    }
    size_t cur = voff + old_pfx + old_len; /* ks_entry_size(e), from what is read */
    int prefixed = ks_enc_prefixed(enc);
    size_t new_pfx = prefixed ? (vlen < 255 ? 1 : 9) : 0;
    size_t new_len = prefixed ? vlen : 8;
    size_t need = voff + new_pfx + new_len;
    size_t keep = (old_pfx && prefixed) ? (old_len < new_len ? old_len : new_len) : 0;
    size_t avail = need <= cur ? cur : kv_malloc_size(e); /* the usual overwrite: no call */

    if (need > avail) {
        e = ks_entry_realloc(db, e, need + extra);
        avail = need + extra;
    }
    unsigned char *v = (unsigned char *)e + voff;
    if (keep && old_pfx != new_pfx) {
        memmove(v + new_pfx, v + old_pfx, keep);
    }
    if (prefixed) {
        ks_write_vlen(v, vlen);
    }
    e->enc = (unsigned)enc;
    /* give back memory when the value shrank a lot */
    if (avail > 64 && need + extra < avail / 2 && need < cur) {
        e = ks_entry_realloc(db, e, need + extra);
    }
    return e;
}

struct dup_ctx {
    struct kv_dict *dst;
};

static void dup_field(struct kv_entry *f, void *arg) {
    struct dup_ctx *ctx = arg;
    size_t klen;
    const char *k = ks_entry_key(f, &klen);
    struct kv_entry *nf = ks_entry_dup(f, k, klen, 0);
    kv_dict_insert(ctx->dst, nf, ks_token(k, klen));
}

struct kv_entry *ks_entry_dup(const struct kv_entry *e, const char *key, size_t klen,
                              long long expire_at) {
    size_t vlen = 8;
    const unsigned char *src;
    if (ks_enc_prefixed(e->enc)) {
        src = ks_val_bytes(e, &vlen);
    } else {
        src = e->data + ks_val_off(e);
    }
    struct kv_entry *ne = entry_alloc(e->type, e->enc, key, klen, vlen, expire_at, 0,
                                      !(e->flags & KE_NOVER));
    ne->flags |= e->flags & KE_RAW;
    ne->lru = e->lru;
    ks_entry_set_version(ne, ks_entry_version(e));
    if (e->enc == KS_ENC_HASHTABLE) {
        struct kv_dict *d = kv_malloc(sizeof(*d));
        kv_dict_init(d);
        struct dup_ctx ctx = {d};
        kv_dict_foreach(ks_val_dict(e), dup_field, &ctx);
        memcpy(ks_val_area(ne), &d, sizeof(d));
    } else if (ks_enc_prefixed(e->enc)) {
        size_t n;
        memcpy(ks_val_bytes(ne, &n), src, vlen);
    } else {
        memcpy(ks_val_area(ne), src, 8);
    }
    return ne;
}

/* ---- databases ---- */

static void vol_add(struct kv_db *db, struct kv_entry *e) {
    if (db->vol_len == db->vol_cap) {
        db->vol_cap = db->vol_cap ? db->vol_cap * 2 : 16;
        db->vol = kv_realloc(db->vol, db->vol_cap * sizeof(*db->vol));
    }
    vidx_set(e, (uint32_t)db->vol_len);
    db->vol[db->vol_len++] = e;
}

static void vol_del(struct kv_db *db, struct kv_entry *e) {
    uint32_t i = vidx_get(e);
    struct kv_entry *last = db->vol[--db->vol_len];
    if (i != db->vol_len) {
        db->vol[i] = last;
        vidx_set(last, i);
    }
}

void ks_init(void) {
    int n = server.databases > 0 ? server.databases : 16;
    server.db = kv_calloc((size_t)n, sizeof(*server.db));
    for (int i = 0; i < n; i++) {
        struct kv_db *db = kv_calloc(1, sizeof(*db));
        db->id = i;
        kv_dict_init(&db->keys);
        server.db[i] = db;
    }
}

void ks_deinit(void) {
    if (server.db == NULL) {
        return;
    }
    int n = server.databases > 0 ? server.databases : 16;
    for (int i = 0; i < n; i++) {
        ks_flush_db(server.db[i], 0);
        kv_free(server.db[i]);
    }
    kv_free(server.db);
    server.db = NULL;
    ks_lazyfree_drain();
    ks_evict_deinit();
}

size_t ks_db_size(const struct kv_db *db) {
    return db->keys.count;
}

size_t ks_db_expires(const struct kv_db *db) {
    return db->vol_len;
}

long long ks_db_avg_ttl(const struct kv_db *db) {
    return db->avg_ttl;
}

void ks_insert(struct kv_db *db, struct kv_entry *e, uint64_t token) {
    kv_dict_insert(&db->keys, e, token);
    if (e->flags & KE_EXPIRE) {
        vol_add(db, e);
    }
}

void ks_replace(struct kv_db *db, struct kv_entry *old, struct kv_entry *e, uint64_t token) {
    struct kv_entry **link = kv_dict_link_of(&db->keys, old, token);
    e->next = old->next;
    kv_dict_link_set(link, e);
    if (old->flags & KE_EXPIRE) {
        vol_del(db, old);
    }
    if (e->flags & KE_EXPIRE) {
        vol_add(db, e);
    }
    ks_entry_free(old);
}

static void lazyfree_entry(struct kv_entry *e);

/* Values this large are freed by the lazy-free thread when asked (Redis's
 * LAZYFREE_THRESHOLD counts allocations; a field dict has one per field). */
#define KS_LAZYFREE_THRESHOLD 64

int ks_delete(struct kv_db *db, const char *key, size_t len, uint64_t token, int lazy) {
    struct kv_entry *e = kv_dict_unlink(&db->keys, key, len, token);
    if (e == NULL) {
        return 0;
    }
    if (e->flags & KE_EXPIRE) {
        vol_del(db, e);
    }
    if (lazy && e->enc == KS_ENC_HASHTABLE && ks_val_dict(e)->count > KS_LAZYFREE_THRESHOLD) {
        lazyfree_entry(e);
    } else {
        ks_entry_free(e);
    }
    return 1;
}

struct kv_entry *ks_take_rekeyed(struct kv_db *db, struct kv_entry *e, const char *key,
                                 size_t klen, long long expire_at) {
    size_t oklen;
    const char *okey = ks_entry_key(e, &oklen);
    kv_dict_unlink(&db->keys, okey, oklen, ks_token(okey, oklen));
    if (e->flags & KE_EXPIRE) {
        vol_del(db, e);
    }
    size_t vlen = 8;
    const unsigned char *src = ks_enc_prefixed(e->enc) ? ks_val_bytes(e, &vlen)
                                                       : e->data + ks_val_off(e);
    struct kv_entry *ne = ks_entry_new(e->type, e->enc, key, klen, vlen, expire_at, 0);
    ne->flags |= e->flags & KE_RAW;
    ne->lru = e->lru;
    ks_entry_set_version(ne, ks_entry_version(e));
    if (ks_enc_prefixed(e->enc)) {
        size_t n;
        memcpy(ks_val_bytes(ne, &n), src, vlen);
    } else {
        memcpy(ks_val_area(ne), src, 8); /* an int, or the field dict moving over */
    }
    kv_free(e);
    return ne;
}

void ks_announce_gone(struct kv_db *db, int type, struct kv_entry *e, const char *k,
                      size_t klen) {
    if (!store_wanted((enum store_event)type)) {
        store_count((enum store_event)type);
        return;
    }
    struct store_ev ev;
    store_ev_init(&ev, (enum store_event)type, db->id);
    ev.key = k;
    ev.klen = klen;
    ev.e = e;
    ev.version = ks_entry_version(e);
    ev.old_expire = ks_entry_expire(e);
    ev.existed = 1;
    store_emit(&ev);
}

void ks_expire_now(struct kv_db *db, struct kv_entry *e, uint64_t token) {
    size_t klen;
    const char *k = ks_entry_key(e, &klen);
    ks_announce_gone(db, STORE_EV_EXPIRED, e, k, klen); /* before the key bytes are freed */
    kv_dict_unlink(&db->keys, k, klen, token);
    if (e->flags & KE_EXPIRE) {
        vol_del(db, e);
    }
    ks_entry_free(e);
}

struct kv_entry *ks_set_expire(struct kv_db *db, struct kv_entry *e, long long when) {
    size_t off = ks_exp_off(e);
    if (e->flags & KE_EXPIRE) {
        memcpy(e->data + off, &when, 8);
        return e;
    }
    size_t size = ks_entry_size(e);
    if (size + 12 > kv_malloc_size(e)) {
        e = ks_entry_realloc(db, e, size + 12);
    }
    memmove(e->data + off + 12, e->data + off, size - KS_ENTRY_HDR - off);
    e->flags |= KE_EXPIRE;
    memcpy(e->data + off, &when, 8);
    if (db) {
        vol_add(db, e);
    }
    return e;
}

struct kv_entry *ks_persist(struct kv_db *db, struct kv_entry *e) {
    if (!(e->flags & KE_EXPIRE)) {
        return e;
    }
    if (db) {
        vol_del(db, e);
    }
    size_t size = ks_entry_size(e), off = ks_exp_off(e);
    memmove(e->data + off, e->data + off + 12, size - KS_ENTRY_HDR - off - 12);
    e->flags &= (uint8_t)~KE_EXPIRE;
    return e;
}

/* ---- lazy free: a worker thread that frees detached tables and values ---- */

struct lazyfree_job {
    struct lazyfree_job *next;
    struct kv_dict dict;      /* a whole database's table, or empty */
    struct kv_entry *entry;   /* one large value, or NULL */
};

static pthread_mutex_t lf_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lf_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t lf_done = PTHREAD_COND_INITIALIZER;
static struct lazyfree_job *lf_head;
static size_t lf_pending;
static int lf_started;

static void *lazyfree_main(void *arg) {
    (void)arg;
    kv_alloc_thread_register(); /* its frees count in kv_used_memory() */
    pthread_mutex_lock(&lf_mutex);
    for (;;) {
        while (lf_head == NULL) {
            pthread_cond_wait(&lf_cond, &lf_mutex);
        }
        struct lazyfree_job *job = lf_head;
        lf_head = job->next;
        pthread_mutex_unlock(&lf_mutex);
        kv_dict_clear(&job->dict, ks_entry_free);
        if (job->entry) {
            ks_entry_free(job->entry);
        }
        kv_free(job);
        pthread_mutex_lock(&lf_mutex);
        lf_pending--;
        pthread_cond_broadcast(&lf_done);
    }
    return NULL;
}

static void lazyfree_submit(struct lazyfree_job *job) {
    pthread_mutex_lock(&lf_mutex);
    if (!lf_started) {
        pthread_t t;
        if (pthread_create(&t, NULL, lazyfree_main, NULL) != 0) {
            pthread_mutex_unlock(&lf_mutex);
            kv_dict_clear(&job->dict, ks_entry_free); /* no thread: free here */
            if (job->entry) {
                ks_entry_free(job->entry);
            }
            kv_free(job);
            return;
        }
        pthread_detach(t);
        lf_started = 1;
    }
    job->next = lf_head;
    lf_head = job;
    lf_pending++;
    pthread_cond_signal(&lf_cond);
    pthread_mutex_unlock(&lf_mutex);
}

static void lazyfree_entry(struct kv_entry *e) {
    struct lazyfree_job *job = kv_calloc(1, sizeof(*job));
    kv_dict_init(&job->dict);
    job->entry = e;
    lazyfree_submit(job);
}

void ks_lazyfree_drain(void) {
    pthread_mutex_lock(&lf_mutex);
    while (lf_pending) {
        pthread_cond_wait(&lf_done, &lf_mutex);
    }
    pthread_mutex_unlock(&lf_mutex);
}

size_t ks_lazyfree_pending(void) {
    pthread_mutex_lock(&lf_mutex);
    size_t n = lf_pending;
    pthread_mutex_unlock(&lf_mutex);
    return n;
}

size_t ks_flush_db(struct kv_db *db, int async) {
    size_t n = db->keys.count;
    if (async && n > KS_LAZYFREE_THRESHOLD) {
        struct lazyfree_job *job = kv_calloc(1, sizeof(*job));
        job->dict = db->keys; /* the tables move to the job */
        lazyfree_submit(job);
    } else {
        kv_dict_clear(&db->keys, ks_entry_free);
    }
    kv_dict_init(&db->keys);
    kv_free(db->vol);
    db->vol = NULL;
    db->vol_len = db->vol_cap = 0;
    db->expire_cursor = 0;
    db->avg_ttl = 0;
    return n;
}

/* ---- LRU / LFU (Redis's 24-bit lru field) ---- */

static unsigned lfu_minutes(void) {
    return (unsigned)((server.mstime / 60000) & 65535);
}

unsigned ks_entry_lfu(const struct kv_entry *e) {
    unsigned ldt = e->lru >> 8, counter = e->lru & 255, now = lfu_minutes();
    unsigned elapsed = now >= ldt ? now - ldt : 65535 - ldt + now;
    unsigned periods = server.lfu_decay_time > 0 ? elapsed / (unsigned)server.lfu_decay_time : 0;
    return periods > counter ? 0 : counter - periods;
}

static unsigned lfu_log_incr(unsigned counter) {
    if (counter >= 255) {
        return 255;
    }
    double r = (double)(ks_rand64() >> 11) / (double)(1ull << 53);
    double base = counter > KS_LFU_INIT_VAL ? counter - KS_LFU_INIT_VAL : 0;
    double p = 1.0 / (base * server.lfu_log_factor + 1);
    return r < p ? counter + 1 : counter;
}

void ks_entry_init_lfu(struct kv_entry *e) {
    e->lru = (lfu_minutes() << 8) | KS_LFU_INIT_VAL;
}

void ks_entry_touch_lfu(struct kv_entry *e) {
    unsigned c = lfu_log_incr(ks_entry_lfu(e));
    e->lru = (lfu_minutes() << 8) | c;
}

long long ks_entry_idle_ms(const struct kv_entry *e) {
    unsigned clock = ks_lru_clock();
    if (clock >= e->lru) {
        return (long long)(clock - e->lru) * 1000;
    }
    return (long long)(clock + (KS_LRU_MAX - e->lru)) * 1000;
}

/* ---- active expiry ---- */

#define EXPIRE_KEYS_PER_LOOP 20
#define EXPIRE_FAST_DURATION 1000 /* us */
#define EXPIRE_SLOW_TIME_PERC 25
#define EXPIRE_ACCEPTABLE_STALE 10
#define EXPIRE_DBS_PER_CALL 16

static double expired_stale_perc;

/* One pass over up to `num` keys from db's volatile array, from its cursor.
 * Returns the keys sampled; *expired gets those deleted. */
static long expire_sample(struct kv_db *db, long num, long long now, long *expired,
                          long long *ttl_sum, long *ttl_n) {
    long sampled = 0;
    while (num-- > 0 && db->vol_len) {
        if (db->expire_cursor >= db->vol_len) {
            db->expire_cursor = 0;
        }
        struct kv_entry *e = db->vol[db->expire_cursor];
        long long t = ks_entry_expire(e);
        sampled++;
        if (t <= now) {
            /* the last key moves into this slot: look at the slot again */
            ks_expire_now(db, e, ks_entry_token(e));
            (*expired)++;
        } else {
            /* saturate: TTLs near the 64-bit limit would overflow the sum */
            long long d = t - now;
            *ttl_sum = d > LLONG_MAX - *ttl_sum ? LLONG_MAX : *ttl_sum + d;
            (*ttl_n)++;
            db->expire_cursor++;
        }
    }
    return sampled;
}

void ks_active_expire_cycle(int fast) {
    static unsigned current_db;
    static int timelimit_exit;
    static long long last_fast_cycle;

    if (!server.active_expire_enabled || server.db == NULL) {
        return;
    }
    int effort = server.active_expire_effort > 0 ? server.active_expire_effort - 1 : 0;
    long keys_per_loop = EXPIRE_KEYS_PER_LOOP + EXPIRE_KEYS_PER_LOOP / 4 * effort;
    long long fast_duration = EXPIRE_FAST_DURATION + EXPIRE_FAST_DURATION / 4 * effort;
    long long slow_perc = EXPIRE_SLOW_TIME_PERC + 2 * effort;
    double acceptable = EXPIRE_ACCEPTABLE_STALE - effort;
    long long start = kv_ustime();

    if (fast) {
        if (!timelimit_exit && expired_stale_perc < acceptable) {
            return;
        }
        if (start < last_fast_cycle + fast_duration * 2) {
            return;
        }
        last_fast_cycle = start;
    }
    int ndb = server.databases > 0 ? server.databases : 16;
    int dbs_per_call = ndb < EXPIRE_DBS_PER_CALL ? ndb : EXPIRE_DBS_PER_CALL;
    if (timelimit_exit) {
        dbs_per_call = ndb;
    }
    int hz = server.hz > 0 ? server.hz : 10;
    long long timelimit = fast ? fast_duration : 1000000LL * slow_perc / hz / 100;
    if (timelimit <= 0) {
        timelimit = 1;
    }
    timelimit_exit = 0;
    long long now = start / 1000;
    long total_sampled = 0, total_expired = 0;
    unsigned iteration = 0;

    for (int j = 0; j < dbs_per_call && !timelimit_exit; j++) {
        struct kv_db *db = server.db[current_db % (unsigned)ndb];
        current_db++;
        long sampled, expired;
        do {
            if (db->vol_len == 0) {
                db->avg_ttl = 0;
                break;
            }
            long long ttl_sum = 0;
            long ttl_n = 0;
            expired = 0;
            iteration++;
            sampled = expire_sample(db, keys_per_loop, now, &expired, &ttl_sum, &ttl_n);
            total_sampled += sampled;
            total_expired += expired;
            if (ttl_n) {
                long long avg = ttl_sum / ttl_n;
                db->avg_ttl = db->avg_ttl ? (db->avg_ttl / 50) * 49 + avg / 50 : avg;
            }
            if ((iteration & 0xf) == 0 && kv_ustime() - start > timelimit) {
                timelimit_exit = 1;
                break;
            }
        } while (sampled == 0 || expired * 100 / sampled > (long)acceptable);
    }
    double perc = total_sampled ? (double)total_expired / (double)total_sampled : 0;
    expired_stale_perc = perc * 100 * 0.05 + expired_stale_perc * 0.95;
}

/* ---- cron ---- */

void ks_cron(void) {
    if (server.db == NULL) {
        return;
    }
    int ndb = server.databases > 0 ? server.databases : 16;
    int rehashed = 0;
    for (int i = 0; i < ndb; i++) {
        struct kv_db *db = server.db[i];
        kv_dict_maybe_shrink(&db->keys);
        if (db->vol_cap > 64 && db->vol_len < db->vol_cap / 4) {
            db->vol_cap /= 2;
            db->vol = kv_realloc(db->vol, db->vol_cap * sizeof(*db->vol));
        }
        if (!rehashed && kv_dict_is_rehashing(&db->keys)) {
            kv_dict_rehash_ms(&db->keys, 1);
            rehashed = 1;
        }
    }
    ks_evict_cron();
}

