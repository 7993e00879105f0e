/* server/persist.c: persistent mode: the keyspace written through to the LSM engine,
 * read through on a miss, counted, expired through an on-disk expiry index, and
 * made durable per appendfsync. See persist.h for the layout and PERSIST.md for the
 * design and its measurements. What it leaves to others: Redis semantics of every
 * command (the handlers, on the in-memory entries), the engine's own recovery,
 * compaction and caching (engine/), how replies are held and rewritten (client.c's
 * client_hold / client_release / client_fail_held: persist.c only says when).
 */
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine/engine.h"
#include "server/events.h"
#include "server/hlc.h"
#include "server/obj.h"
#include "server/persist.h"
#include "server/server_int.h"

#define META_LEN 10              /* 0xff x 10: the meta namespace */
#define DKEY 10                  /* token:u64be db:u16be before a data key's key */
#define ENVELOPE_VERSION 1       /* on disk: never renumber */
#define MAX_DBS 32768            /* the db's top bit marks a field record; 0xffff meta */
#define ENV_FIELDS 0x80          /* envelope flag: a hash whose fields are records */
#define FKEY (META_LEN + 11)     /* meta 'h' db:u16be gen:u64be before a field */
#define BATCH_COMMIT_BYTES (4u << 20)
#define MEMTABLE_MAX_ENTRIES 50000

/* ------------------------------------------------------------------------------
 * State
 * ------------------------------------------------------------------------------ */
struct pbuf {
    char *p;
    size_t len, cap;
};

/* A key written in this turn: its entry (flag KE_DIRTY) is encoded once, at the
 * batch's write, however many commands changed it (a hot hash under pipelining). */
struct dirty_key {
    int db;
    uint64_t token;
    size_t koff, klen;             /* in P.dkeys */
};

/* A field of a big hash changed in this turn (HSET, HDEL...): its record is
 * written at the batch's write, from the hash's value then. */
struct field_op {
    uint64_t gen;                  /* the hash's store_gen */
    size_t off, len;               /* the field's bytes in P.fbytes */
};

static struct {
    struct lsm_db *db;
    char dir[1024];                /* the engine's directory */
    struct lsm_batch *batch;       /* this turn's writes */
    struct dirty_key *dirty;       /* keys whose envelope is written at commit */
    size_t ndirty, capdirty;
    struct dirty_key *dirty_tmp;   /* sort_dirty's scratch, capdirty entries */
    uint32_t *dirty_cnt;           /* and its bucket counts */
    size_t capcnt;
    struct pbuf dkeys;             /* their key bytes */
    size_t dirty_bytes;            /* estimate, to write a large turn early */
    struct field_op *fops;         /* fields of big hashes changed in this turn */
    size_t nfops, capfops;
    struct pbuf fbytes;            /* their bytes */
    struct pbuf fkey;              /* a field record's key */
    uint64_t *deleted;             /* keys deleted in the batch: token ^ db mix, 0 empty */
    size_t del_cap, del_n;
    _Atomic uint64_t *flush_ts;    /* per db: flush marker (read by compaction) */
    long long *count, *vcount;     /* per db: live keys, keys with a TTL */
    struct client **wrote;         /* clients with writes in the batch */
    size_t nwrote, capwrote;
    struct client **held;          /* clients waiting for a WAL sync */
    size_t nheld, capheld;
    int fault_armed;               /* DEBUG ENGINE-FAULT: no automatic recovery */
    long long last_recover_ms;
    uint64_t last_seq, sync_asked;
    long long sync_start_us;       /* when the sync in flight was asked */
    long long sync_avg_us;         /* moving average of a WAL sync's latency */
    struct event *sync_ev;
    long long last_everysec_ms;
    int write_failed;              /* a batch could not be written: cache dropped */
    char errmsg[256];
    _Atomic uint64_t watermark;    /* expiry index processed up to (compaction clock) */
    int expire_more;               /* the last cycle stopped early */
    struct pbuf kbuf, vbuf;
    struct lsm_value val;
    struct kv_entry **temps;       /* SCAN/RANDOMKEY temporary entries */
    size_t ntemps, captemps;
    long long changes;             /* writes since the last SAVE / flush */
    long long last_save;
    /* loading */
    pthread_t loader;
    int loader_started;
    int load_pipe[2];
    struct event *load_ev;
    _Atomic int load_done;
    int load_rc;
    char load_err[256];
    struct lsm_db *loaded;
    long long load_start_ms, load_ms;
    /* background SAVE / BGREWRITEAOF */
    pthread_t bg;
    _Atomic int bg_running;        /* 0 none, 1 flush, 2 compaction */
    int bg_started;
    _Atomic int bg_last_ok;
    _Atomic int bgrewrite_last_ok;
    int bg_scheduled;              /* 1 flush, 2 compaction: waits for the running one */
} P;

static void temps_free(void) {
    for (size_t i = 0; i < P.ntemps; i++) {
        ks_entry_free(P.temps[i]);
    }
    P.ntemps = 0;
}

static void pbuf_reserve(struct pbuf *b, size_t n) {
    if (b->cap < n) {
        b->cap = n < 256 ? 256 : n * 2;
        b->p = kv_realloc(b->p, b->cap);
    }
}

static void put_be64(unsigned char *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

static inline int get_db(const unsigned char *p) {
    return p[0] << 8 | p[1];
}

static uint64_t get_be64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* token:u64be db:u16be key into P.kbuf */
static void data_key(int db, const char *key, size_t klen, uint64_t token) {
    pbuf_reserve(&P.kbuf, DKEY + klen);
    unsigned char *p = (unsigned char *)P.kbuf.p;
    put_be64(p, token);
    p[8] = (unsigned char)(db >> 8);
    p[9] = (unsigned char)db;
    memcpy(p + DKEY, key, klen);
    P.kbuf.len = DKEY + klen;
}

/* meta || tag [|| u64be] [|| db] [|| key] into b */
static size_t meta_key(unsigned char *out, char tag) {
    memset(out, 0xff, META_LEN);
    out[META_LEN] = (unsigned char)tag;
    return META_LEN + 1;
}

static void index_key(struct pbuf *b, long long expire_at, int db, const char *key, size_t klen) {
    pbuf_reserve(b, META_LEN + 11 + klen);
    unsigned char *p = (unsigned char *)b->p;
    size_t n = meta_key(p, 'x');
    put_be64(p + n, (uint64_t)expire_at);
    p[n + 8] = (unsigned char)(db >> 8);
    p[n + 9] = (unsigned char)db;
    memcpy(p + n + 10, key, klen);
    b->len = n + 10 + klen;
}

/* meta 'h' db gen [field] into b: a big hash's field record in files written
 * before versions (or their prefix). */
static void old_field_key(struct pbuf *b, int db, uint64_t gen, const char *f, size_t flen) {
    pbuf_reserve(b, FKEY + flen);
    unsigned char *p = (unsigned char *)b->p;
    size_t n = meta_key(p, 'h');
    p[n] = (unsigned char)(db >> 8);
    p[n + 1] = (unsigned char)db;
    put_be64(p + n + 2, gen);
    if (flen) {
        memcpy(p + FKEY, f, flen);
    }
    b->len = FKEY + flen;
}

/* token (0x8000|db) klen:u32be key [field] into b: a big hash's field record (or
 * the prefix of all of them), right after the key's data record. */
static void field_key(struct pbuf *b, int db, const char *key, size_t klen, uint64_t token,
                      const char *f, size_t flen) {
    pbuf_reserve(b, DKEY + 4 + klen + flen);
    unsigned char *p = (unsigned char *)b->p;
    put_be64(p, token);
    p[8] = (unsigned char)((db >> 8) | 0x80);
    p[9] = (unsigned char)db;
    p[10] = (unsigned char)(klen >> 24);
    p[11] = (unsigned char)(klen >> 16);
    p[12] = (unsigned char)(klen >> 8);
    p[13] = (unsigned char)klen;
    memcpy(p + DKEY + 4, key, klen);
    if (flen) {
        memcpy(p + DKEY + 4 + klen, f, flen);
    }
    b->len = DKEY + 4 + klen + flen;
}

/* Is this engine key a big hash's field record (token layout)? The db field's top
 * bit; the meta namespace (db 0xffff after ten 0xff) is not one. */
static inline int is_field_key(const unsigned char *k, size_t klen) {
    return klen >= DKEY + 4 && (k[8] & 0x80) &&
           !(k[8] == 0xff && k[9] == 0xff && get_be64(k) == UINT64_MAX);
}

static uint64_t next_local_gen(void);

/* ------------------------------------------------------------------------------
 * The envelope
 *
 *   envelope := version:u8(1) type:u8 enc:u8 flags:u8 payload
 *   payload  := bytes                            string raw / embstr
 *             | i64le                            string int
 *             | count:u16le item*                hash listpack (the in-memory blob)
 *             | count:u32le (field value)*       hash hashtable, items as listpack's:
 *             | count:u32le gen:u64le            hash hashtable, flags ENV_FIELDS: each
 *                                                field is a record meta 'h' db gen field
 *   item     := len:u8 bytes (len < 255) | 255 len:u32le bytes
 * expire-at and the write timestamp live in the engine's entry metadata.
 * ------------------------------------------------------------------------------ */
struct enc_ctx {
    struct pbuf *b;
};

static void put_item(struct pbuf *b, const char *s, size_t len) {
    pbuf_reserve(b, b->len + 5 + len);
    unsigned char *p = (unsigned char *)b->p + b->len;
    if (len < 255) {
        *p++ = (unsigned char)len;
        b->len += 1;
    } else {
        uint32_t n = (uint32_t)len;
        *p++ = 255;
        memcpy(p, &n, 4);
        p += 4;
        b->len += 5;
    }
    memcpy(p, s, len);
    b->len += len;
}

static void enc_field(const char *f, size_t flen, const char *v, size_t vlen, void *arg) {
    struct pbuf *b = arg;
    put_item(b, f, flen);
    put_item(b, v, vlen);
}

static void encode_into(const struct kv_entry *e, struct pbuf *b) {
    b->len = 0;
    pbuf_reserve(b, 16);
    unsigned char *h = (unsigned char *)b->p;
    h[0] = ENVELOPE_VERSION;
    h[1] = (unsigned char)e->type;
    h[2] = (unsigned char)e->enc;
    h[3] = (unsigned char)(e->flags & KE_RAW);
    b->len = 4;
    if (e->enc == KS_ENC_INT) {
        long long v = ks_val_int(e);
        memcpy(b->p + 4, &v, 8);
        b->len = 12;
    } else if (e->enc == KS_ENC_HASHTABLE) {
        uint32_t n = (uint32_t)hash_len(e);
        memcpy(b->p + 4, &n, 4);
        b->len = 8;
        hash_foreach(e, enc_field, b);
    } else {
        size_t n;
        const unsigned char *v = ks_val_bytes(e, &n);
        pbuf_reserve(b, 4 + n);
        memcpy(b->p + 4, v, n);
        b->len = 4 + n;
    }
}

void persist_encode(const struct kv_entry *e, char **out, size_t *len) {
    struct pbuf b = {0};
    encode_into(e, &b);
    *out = b.p;
    *len = b.len;
}

static const unsigned char *get_item(const unsigned char *p, const unsigned char *end,
                                     const char **s, size_t *len) {
    if (p >= end) {
        return NULL;
    }
    size_t n;
    if (p[0] != 255) {
        n = p[0];
        p += 1;
    } else {
        if (end - p < 5) {
            return NULL;
        }
        uint32_t v;
        memcpy(&v, p + 1, 4);
        n = v;
        p += 5;
    }
    if ((size_t)(end - p) < n) {
        return NULL;
    }
    *s = (const char *)p;
    *len = n;
    return p + n;
}

struct kv_entry *persist_decode(const char *key, size_t klen, const char *v, size_t vlen,
                                long long expire_at) {
    const unsigned char *p = (const unsigned char *)v, *end = p + vlen;
    if (vlen < 4 || p[0] != ENVELOPE_VERSION) {
        return NULL;
    }
    int type = p[1], enc = p[2], flags = p[3];
    p += 4;
    size_t n = (size_t)(end - p);
    struct kv_entry *e;
    if (type == KS_TYPE_STRING && enc == KS_ENC_INT) {
        if (n != 8) {
            return NULL;
        }
        long long iv;
        memcpy(&iv, p, 8);
        e = ks_entry_new(KS_TYPE_STRING, KS_ENC_INT, key, klen, 0, expire_at, 0);
        ks_val_set_int(e, iv);
    } else if ((type == KS_TYPE_STRING && (enc == KS_ENC_RAW || enc == KS_ENC_EMBSTR)) ||
               (type == KS_TYPE_HASH && enc == KS_ENC_LISTPACK)) {
        if (type == KS_TYPE_HASH && n < 2) {
            return NULL;
        }
        e = ks_entry_new(type, enc, key, klen, n, expire_at, 0);
        size_t m;
        memcpy(ks_val_bytes(e, &m), p, n);
        e->flags |= (uint8_t)(flags & KE_RAW);
    } else if (type == KS_TYPE_HASH && enc == KS_ENC_HASHTABLE && (flags & ENV_FIELDS)) {
        if (n != 12) {
            return NULL;
        }
        uint64_t gen;
        memcpy(&gen, p + 4, 8);
        e = hash_new_table(key, klen, expire_at); /* persist_load reads the fields */
        if (gen != 0) {
            ks_val_dict(e)->store_gen = gen; /* the old meta 'h' form */
            ks_val_dict(e)->store_old = 1;
        } else {
            ks_val_dict(e)->store_gen = next_local_gen();
        }
    } else if (type == KS_TYPE_HASH && enc == KS_ENC_HASHTABLE) {
        if (n < 4) {
            return NULL;
        }
        uint32_t count;
        memcpy(&count, p, 4);
        p += 4;
        e = hash_new_table(key, klen, expire_at);
        for (uint32_t i = 0; i < count; i++) {
            const char *f, *fv;
            size_t flen, fvlen;
            p = get_item(p, end, &f, &flen);
            if (p) {
                p = get_item(p, end, &fv, &fvlen);
            }
            if (p == NULL) {
                ks_entry_free(e);
                return NULL;
            }
            hash_set(NULL, &e, f, flen, fv, fvlen);
        }
    } else {
        return NULL;
    }
    return e;
}

/* ------------------------------------------------------------------------------
 * Keys deleted in the pending batch (so a dict miss does not read the old version)
 * ------------------------------------------------------------------------------ */
static uint64_t del_hash(uint64_t token, int db) {
    uint64_t h = token ^ ((uint64_t)(db + 1) * 0x9e3779b97f4a7c15ull);
    return h ? h : 1;
}

static void deleted_add(uint64_t token, int db) {
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

static int deleted_has(uint64_t token, int db) {
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

static void deleted_clear(void) {
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
    c->flags |= flag;
}

static void held_add(struct client *c) {
    if (!(c->flags & CLIENT_PERSIST_HELD)) {
        client_list_add(&P.held, &P.nheld, &P.capheld, c, CLIENT_PERSIST_HELD);
    }
}

/* The writes of c were not stored (or their sync failed): each write's reply in
 * its held output becomes -MISCONF, the rest of the output stays as it was
 * (client_fail_held; if c is running, when its command ends). The caller
 * takes c off P.wrote / P.held. */
static void fail_client(struct client *c) {
    char msg[512];
    snprintf(msg, sizeof(msg), "MISCONF Errors writing to the AOF file: %s",
             P.errmsg[0] ? P.errmsg : "write failed");
    c->flags &= ~(CLIENT_PERSIST_WROTE | CLIENT_PERSIST_HELD);
    c->durable_wait = 0;
    client_fail_held(c, CLIENT_HOLD_PERSIST, msg);
}

/* Every client waiting for a write or a sync: their writes fail. */
static void fail_pending_clients(void) {
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
    client_hold(c, CLIENT_HOLD_PERSIST); /* this command's reply waits, every time */
    if (!(c->flags & CLIENT_PERSIST_WROTE)) {
        client_list_add(&P.wrote, &P.nwrote, &P.capwrote, c, CLIENT_PERSIST_WROTE);
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

static void drop_cache(void) {
    for (int i = 0; i < server.databases && server.db; i++) {
        ks_flush_db(server.db[i], 0);
    }
}

/* Writes the pending batch. On failure the clients whose writes were in it are
 * disconnected before any reply reaches them (nothing unstored is acknowledged),
 * and the cache, which may hold those values, is dropped in before-sleep. */
static void encode_dirty(void);

static int commit(void) {
    encode_dirty();
    if (P.db == NULL || lsm_batch_count(P.batch) == 0) {
        deleted_clear();
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
    for (size_t i = 0; i < P.nwrote; i++) {
        struct client *c = P.wrote[i];
        c->flags &= ~CLIENT_PERSIST_WROTE;
        if (server.appendfsync == PERSIST_FSYNC_ALWAYS) {
            c->durable_wait = seq;
            held_add(c);
        } else if (!(c->flags & CLIENT_PERSIST_HELD)) {
            client_release(c, CLIENT_HOLD_PERSIST); /* (held: its sync releases it) */
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
static void batch_tomb(const void *k, size_t klen, long long expire_at, struct kv_version ver) {
    struct lsm_meta m = {(uint64_t)expire_at, ver.hlc, ver.node};
    lsm_batch_delete(P.batch, k, klen, &m);
}

/* An undated tombstone (meta records, field records of a dropped gen): compaction
 * drops it at once. */
static void batch_del(const void *k, size_t klen, uint64_t ts) {
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
static struct lsm_read_options raw_read(void) {
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
static uint64_t next_local_gen(void) {
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
static void load_fields(int db, struct kv_entry *e) {
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
static void del_generic(int db_id, const char *key, size_t klen, long long old_expire,
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

static int is_meta(struct lsm_iter *it) {
    size_t ilen;
    const unsigned char *ik = (const unsigned char *)lsm_iter_key(it, &ilen);
    return ilen > META_LEN && get_be64(ik) == UINT64_MAX && get_db(ik + 8) == 0xffff;
}

/* SCAN. HOW IT WORKS: data keys are sorted by token, so "the keys with token >=
 * cursor" is one engine seek. A page ends after `count` keys of the database (or
 * after visiting SCAN_VISIT_MAX entries of other databases or flushed ones: an
 * empty page, as Redis's SCAN may return), always at a boundary of a block of
 * 2^11 tokens, and the cursor is the first token of the next block. Cursors are
 * thus multiples of 2048, exact as a double (clients such as node-redis 4 parse
 * them with Number()), and a key is never returned twice: the next page starts
 * past every block already returned. Example: last key returned 0x...a7ff3,
 * next entry 0x...a8012: the cursor is 0x...a8000. */
#define SCAN_BLOCK_BITS 11
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
 * Records for the store (server/store.c): tombstones and token ranges
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
static uint64_t compaction_clock(void) {
    return atomic_load(&P.watermark);
}

static void expire_cycle(long long budget_us) {
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
        int db = get_db(ik + sn + 8);
        const char *key = (const char *)ik + sn + 10;
        size_t klen = ilen - sn - 10;
        const char *v = lsm_iter_value(it, &vlen);
        uint64_t ts = 0;
        if (vlen == 8) {
            memcpy(&ts, v, 8);
        }
        if (db >= server.databases ||
            ts < atomic_load_explicit(&P.flush_ts[db], memory_order_relaxed)) {
            batch_del(ik, ilen, 0); /* stale: the database was flushed since */
            continue;
        }
        struct kv_db *kdb = server.db[db];
        uint64_t token = ks_token(key, klen);
        struct kv_entry *e = ks_find(kdb, key, klen, token);
        if (e && ks_entry_expire(e) == exp) {
            ks_expire_now(kdb, e, token); /* deletes through persist_expired */
            continue;
        }
        if (e) {
            /* the cache disagrees with the index (never expected): drop the entry */
            batch_del(ik, ilen, 0);
            continue;
        }
        /* Not cached: the data must be there, not yet expired by compaction (its
         * clock is the watermark, set only after a pass's deletions are written).
         * It can be missing only after a machine crash lost the WAL tail holding
         * this entry's deletion while a compaction had dropped the data: then it
         * was not counted at the recount either. */
        data_key(db, key, klen, token);
        int rc = lsm_get(P.db, &ro, P.kbuf.p, P.kbuf.len, &P.val);
        if (rc != LSM_OK || (long long)P.val.expire_at != exp ||
            P.val.timestamp < atomic_load_explicit(&P.flush_ts[db], memory_order_relaxed)) {
            if (rc == LSM_OK || rc == LSM_NOTFOUND) {
                batch_del(ik, ilen, 0);
            }
            continue;
        }
        pbuf_reserve(&kb, klen);
        memcpy(kb.p, key, klen);
        struct kv_version ver = {P.val.timestamp, P.val.node};
        /* announced as any expiry: persist_on_event writes the tombstone */
        struct store_ev ev = {.type = STORE_EV_EXPIRED, .db = db, .key = kb.p, .klen = klen,
                              .version = ver, .old_expire = exp, .existed = 1};
        store_emit(&ev);
    }
    kv_free(kb.p);
    lsm_iter_destroy(&it);
    P.expire_more = !done;
    /* the deletions first, then the compaction clock: an expired entry is never
     * dropped while its index entry could still be read back */
    if (commit() == 0 && done) {
        atomic_store(&P.watermark, (uint64_t)now);
    }
}

/* ------------------------------------------------------------------------------
 * Counts and markers: meta||'c' := version:u8(1) clean:u8 hlc:u64le watermark:u64le
 *                                   ndbs:u8 (count:i64le vcount:i64le)*ndbs
 * (ndbs: the low byte of the number of databases; the length says the rest)
 * ------------------------------------------------------------------------------ */
static void write_counts(struct lsm_db *db, int clean) {
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
static int load_meta(struct lsm_db *db) {
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

/* ------------------------------------------------------------------------------
 * Open, load, close
 * ------------------------------------------------------------------------------ */
static void engine_options(struct lsm_options *o) {
    lsm_options_init(o);
    long long budget = server.maxmemory > 0 ? server.maxmemory : (1ll << 30);
    size_t mt = (size_t)(budget / 8), bc = (size_t)(budget / 4);
    if (mt < (1u << 20)) mt = 1u << 20;
    if (bc < (1u << 20)) bc = 1u << 20;
    if (mt > (64u << 20)) mt = 64u << 20;
    o->memtable_size = server.memtable_size > 0 ? (size_t)server.memtable_size : mt;
    /* a skiplist insert costs O(log entries) cache misses: small entries flush by
     * count (about 4 MB of 16-byte SETs), large ones by size (PERSIST.md, Memory);
     * a memtable-size set by hand is the only limit */
    o->memtable_max_entries = server.memtable_size > 0 ? 0 : MEMTABLE_MAX_ENTRIES;
    /* L0 -> L1 merges rewrite most of L1 when keys are random (tokens): merging 8
     * flushed tables at a time instead of 4 halves that work (1 KiB SET then INCR
     * -P 16, 3 rounds: SET 344k -> 372k, INCR 604k -> 716k requests/s) */
    o->l0_compaction_trigger = 8;
    o->bg_nice = server.engine_bg_nice;
    o->block_cache_size = server.block_cache_size > 0 ? (size_t)server.block_cache_size : bc;
    o->sync_mode = LSM_SYNC_NONE;
    o->clock_ms = compaction_clock;
    o->gc_grace_ms = (uint64_t)server.gc_grace_seconds * 1000;
    o->compaction_filter = NULL; /* set after open: see flushed_filter */
}

/* Compaction filter: data of a flushed database older than its marker. */
static int flushed_filter(void *arg, const char *key, size_t klen, const struct lsm_meta *m) {
    (void)arg;
    const unsigned char *k = (const unsigned char *)key;
    int d;
    if (klen >= FKEY && k[META_LEN] == 'h' && get_be64(k) == UINT64_MAX &&
        get_db(k + 8) == 0xffff) {
        d = get_db(k + META_LEN + 1); /* old form: meta 'h' db gen field */
    } else if (is_field_key(k, klen)) {
        d = get_db(k + 8) & 0x7fff;   /* token (0x8000|db) klen key field */
    } else if (klen >= DKEY) {
        d = get_db(k + 8);
    } else {
        return 0;
    }
    if (d >= server.databases) {
        return 0; /* the meta namespace, or a database no longer configured */
    }
    return m->timestamp < atomic_load_explicit(&P.flush_ts[d], memory_order_relaxed);
}

static int open_engine(const char *dir, struct lsm_db **out, char *err, size_t errlen) {
    struct lsm_options o;
    engine_options(&o);
    o.compaction_filter = flushed_filter;
    struct lsm_err e = {0};
    int rc = lsm_open(dir, &o, out, &e);
    if (rc != LSM_OK) {
        snprintf(err, errlen, "%s", e.msg[0] ? e.msg : "cannot open the engine");
        return -1;
    }
    rc = load_meta(*out);
    if (rc != LSM_OK) {
        snprintf(err, errlen, "reading the keyspace's metadata: %s", lsm_errmsg(*out));
        lsm_close(out);
        return -1;
    }
    return 0;
}

static void sync_cb(evutil_socket_t fd, short what, void *arg);
static void release_held(void);
static int bg_start(int what);

static void engine_ready(struct lsm_db *db) {
    P.db = db;
    if (P.batch == NULL) {
        P.batch = lsm_batch_create();
    }
    P.write_failed = 0;
    P.errmsg[0] = '\0';
    P.last_seq = P.sync_asked = lsm_durable_seq(db);
    P.sync_start_us = 0;
    if (server.base) {
        P.sync_ev = event_new(server.base, lsm_sync_fd(db), EV_READ | EV_PERSIST, sync_cb, NULL);
        event_add(P.sync_ev, NULL);
    }
}

static void alloc_dbs(void) {
    if (P.count == NULL) {
        P.flush_ts = kv_calloc((size_t)server.databases, sizeof(*P.flush_ts));
        P.count = kv_calloc((size_t)server.databases, sizeof(*P.count));
        P.vcount = kv_calloc((size_t)server.databases, sizeof(*P.vcount));
    }
}

int persist_open_sync(const char *dir, char *err, size_t errlen) {
    if (server.databases > MAX_DBS - 1) {
        snprintf(err, errlen, "mode persistent supports at most %d databases", MAX_DBS - 1);
        return -1;
    }
    alloc_dbs();
    snprintf(P.dir, sizeof(P.dir), "%s", dir);
    struct lsm_db *db;
    if (open_engine(P.dir, &db, err, errlen) != 0) {
        return -1;
    }
    engine_ready(db);
    P.last_save = kv_mstime() / 1000;
    return 0;
}

static void *loader_main(void *arg) {
    (void)arg;
    kv_alloc_thread_register();
    struct lsm_db *db = NULL;
    P.load_rc = open_engine(P.dir, &db, P.load_err, sizeof(P.load_err));
    P.loaded = db;
    kv_alloc_thread_unregister();
    atomic_store(&P.load_done, 1);
    char b = 1;
    ssize_t w = write(P.load_pipe[1], &b, 1);
    (void)w;
    return NULL;
}

static void load_cb(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    (void)arg;
    char b;
    ssize_t r = read(fd, &b, 1);
    (void)r;
    if (!atomic_load(&P.load_done)) {
        return;
    }
    pthread_join(P.loader, NULL);
    P.loader_started = 0;
    event_free(P.load_ev);
    P.load_ev = NULL;
    close(P.load_pipe[0]);
    close(P.load_pipe[1]);
    if (P.load_rc != 0) {
        server_log(LL_WARNING, "Fatal error loading the dataset: %s", P.load_err);
        exit(1);
    }
    engine_ready(P.loaded);
    P.load_ms = kv_mstime() - P.load_start_ms;
    long long keys = 0;
    for (int i = 0; i < server.databases; i++) {
        keys += P.count[i];
    }
    server.loading = 0;
    server_log(LL_NOTICE, "DB loaded from disk: %.3f seconds (%lld keys)", P.load_ms / 1000.0,
               keys);
}

int persist_start(void) {
    if (server.databases > MAX_DBS - 1) {
        server_log(LL_WARNING, "mode persistent supports at most %d databases", MAX_DBS - 1);
        return -1;
    }
    char cwd[900];
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        server_log(LL_WARNING, "getcwd: %s", strerror(errno));
        return -1;
    }
    snprintf(P.dir, sizeof(P.dir), "%s/data", cwd);
    alloc_dbs();
    if (pipe(P.load_pipe) != 0) {
        server_log(LL_WARNING, "pipe: %s", strerror(errno));
        return -1;
    }
    P.load_ev = event_new(server.base, P.load_pipe[0], EV_READ | EV_PERSIST, load_cb, NULL);
    event_add(P.load_ev, NULL);
    server.loading = 1;
    P.load_start_ms = kv_mstime();
    P.last_save = P.load_start_ms / 1000;
    atomic_store(&P.load_done, 0);
    if (pthread_create(&P.loader, NULL, loader_main, NULL) != 0) {
        server_log(LL_WARNING, "cannot start the loader thread");
        return -1;
    }
    P.loader_started = 1;
    server_log(LL_NOTICE, "Loading the dataset from %s in the background", P.dir);
    return 0;
}

static void bg_join(void) {
    if (P.bg_started) {
        pthread_join(P.bg, NULL);
        P.bg_started = 0;
    }
}

void persist_close(void) {
    if (P.loader_started) {
        pthread_join(P.loader, NULL);
        P.loader_started = 0;
        if (P.load_ev) {
            event_free(P.load_ev);
            P.load_ev = NULL;
            close(P.load_pipe[0]);
            close(P.load_pipe[1]);
        }
        if (P.loaded) {
            engine_ready(P.loaded);
        }
    }
    bg_join();
    temps_free();
    if (P.db) {
        commit();
        if (!P.write_failed && lsm_bg_error(P.db) == LSM_OK) {
            write_counts(P.db, 1);
        }
        if (P.sync_ev) {
            event_free(P.sync_ev);
            P.sync_ev = NULL;
        }
        lsm_close(&P.db);
        server_log(LL_NOTICE, "The engine was closed cleanly.");
    }
    P.loaded = NULL;
    if (P.batch) {
        lsm_batch_destroy(&P.batch);
    }
    kv_free(P.deleted);
    kv_free(P.wrote);
    kv_free(P.held);
    kv_free(P.temps);
    kv_free(P.dirty);
    kv_free(P.dirty_tmp);
    kv_free(P.dirty_cnt);
    kv_free(P.dkeys.p);
    P.dirty = P.dirty_tmp = NULL;
    P.dirty_cnt = NULL;
    P.capcnt = 0;
    P.ndirty = P.capdirty = 0;
    P.dkeys = (struct pbuf){0};
    kv_free(P.fops);
    kv_free(P.fbytes.p);
    kv_free(P.fkey.p);
    P.fops = NULL;
    P.nfops = P.capfops = 0;
    P.fbytes = P.fkey = (struct pbuf){0};
    kv_free(P.kbuf.p);
    kv_free(P.vbuf.p);
    lsm_value_free(&P.val);
    struct lsm_value z = LSM_VALUE_INIT;
    P.val = z;
    P.deleted = NULL;
    P.del_cap = P.del_n = 0;
    P.wrote = NULL;
    P.nwrote = P.capwrote = 0;
    P.held = NULL;
    P.nheld = P.capheld = 0;
    P.temps = NULL;
    P.ntemps = P.captemps = 0;
    P.kbuf = (struct pbuf){0};
    P.vbuf = (struct pbuf){0};
    kv_free((void *)P.flush_ts);
    kv_free(P.count);
    kv_free(P.vcount);
    P.flush_ts = NULL;
    P.count = P.vcount = NULL;
}

struct lsm_db *persist_engine(void) {
    return P.db;
}

/* Opens the engine again after persist_reopen closed it; while it cannot (the
 * disk is still full), the node answers -LOADING and the cron retries. */
static int reopen_finish(char *err, size_t errlen) {
    struct lsm_db *db;
    if (open_engine(P.dir, &db, err, errlen) != 0) {
        server.loading = 1;
        return -1;
    }
    engine_ready(db);
    server.loading = 0;
    return 0;
}

int persist_reopen(char *err, size_t errlen) {
    if (P.db == NULL) {
        if (P.dir[0] && server.loading && !P.loader_started) {
            return reopen_finish(err, errlen);
        }
        snprintf(err, errlen, "the engine is not open");
        return -1;
    }
    if (!P.write_failed && lsm_bg_error(P.db) != LSM_OK) {
        P.write_failed = 1;
        snprintf(P.errmsg, sizeof(P.errmsg), "%s", lsm_errmsg(P.db));
    }
    if (!P.write_failed) {
        commit(); /* a healthy engine: nothing is lost by reopening */
    }
    lsm_batch_clear(P.batch);
    deleted_clear();
    /* whatever waits for the old engine is answered now: stored and synced if
     * healthy, -MISCONF (maybe stored: ambiguous, never a false +OK) if not */
    if (P.write_failed) {
        fail_pending_clients();
    } else if (P.nheld) {
        lsm_sync_wal(P.db, UINT64_MAX);
        release_held();
    }
    bg_join();
    if (P.sync_ev) {
        event_free(P.sync_ev);
        P.sync_ev = NULL;
    }
    lsm_close(&P.db);
    drop_cache();
    return reopen_finish(err, errlen);
}

/* ------------------------------------------------------------------------------
 * Durability and the loop
 * ------------------------------------------------------------------------------ */
static void release_held(void) {
    uint64_t durable = lsm_durable_seq(P.db);
    for (size_t i = 0; i < P.nheld;) {
        struct client *c = P.held[i];
        if (c->durable_wait <= durable) {
            c->durable_wait = 0;
            c->flags &= ~CLIENT_PERSIST_HELD;
            P.held[i] = P.held[--P.nheld];
            if (!(c->flags & CLIENT_PERSIST_WROTE)) {
                /* (in this turn's batch too: that batch releases it; a reply it
                 * held for the synced batch may then still become -MISCONF if
                 * the newer batch fails: ambiguous, never a false +OK) */
                client_release(c, CLIENT_HOLD_PERSIST);
            }
        } else {
            i++;
        }
    }
}

/* The sync thread advanced the durable sequence: release the clients it covers.
 * (Pacing the next sync request after a release, so the released clients' next
 * writes join it, was measured here: slower on this loaded 2-core VM, where each
 * thread hand-off costs more than the grouping gains. Requests go at once.) */
static void sync_cb(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    (void)arg;
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof(v));
    (void)r;
    if (P.db == NULL) {
        return;
    }
    if (P.sync_start_us && lsm_durable_seq(P.db) >= P.sync_asked) {
        long long took = kv_ustime() - P.sync_start_us;
        P.sync_avg_us = P.sync_avg_us ? (P.sync_avg_us * 7 + took) / 8 : took;
        P.sync_start_us = 0;
    }
    release_held();
}

static void request_sync(void) {
    if (P.nheld == 0 || P.last_seq <= P.sync_asked) {
        return;
    }
    /* asked at once even with a sync in flight: the engine's sync thread then
     * starts the next fsync as soon as the current one ends, with no hand-off
     * back to the loop in between */
    if (server.appendfsync_in_loop) {
        /* Redis's way: the loop itself fsyncs (blocking every client for it) and
         * replies at once: no thread hand-off (see PERSIST.md, measurements) */
        lsm_sync_wal(P.db, P.last_seq);
        P.sync_asked = P.last_seq;
        release_held();
        return;
    }
    lsm_sync_wal_async(P.db, P.last_seq);
    P.sync_asked = P.last_seq;
    if (P.sync_start_us == 0) {
        P.sync_start_us = kv_ustime();
    }
}

void persist_before_sleep(void) {
    if (P.db == NULL) {
        return;
    }
    int failed = P.write_failed;
    commit();
    if (P.write_failed && !failed) {
        drop_cache(); /* it may hold values that were never stored */
    }
    if (P.nheld) {
        release_held(); /* an earlier sync may already cover them */
    }
    request_sync();
    if (P.expire_more) {
        expire_cycle(1000);
    }
}

/* The engine's sticky error (a failed fsync on its sync thread, a failed flush or
 * compaction): writes are refused from now on, waiting replies become -MISCONF. */
static void check_engine_error(void) {
    if (P.db == NULL || P.write_failed || lsm_bg_error(P.db) == LSM_OK) {
        return;
    }
    P.write_failed = 1;
    snprintf(P.errmsg, sizeof(P.errmsg), "%s", lsm_errmsg(P.db));
    server_log(LL_WARNING, "The engine refuses writes: %s", P.errmsg);
    commit(); /* fails: the pending writes are answered -MISCONF */
    fail_pending_clients();
    drop_cache();
}

/* Free bytes on the engine's file system, or UINT64_MAX when unknown. */
static uint64_t free_bytes(void) {
    struct statvfs st;
    if (statvfs(P.dir, &st) != 0) {
        return UINT64_MAX;
    }
    return (uint64_t)st.f_bavail * st.f_frsize;
}

/* Automatic recovery after a write error: once a second, when no fault is armed
 * and the disk has room for a memtable's worth of replay and a WAL segment, the
 * engine is reopened (the sticky error is cleared only by a reopen). */
static void maybe_recover(void) {
    if (P.fault_armed || !(P.write_failed || (P.db == NULL && server.loading &&
                                              !P.loader_started && P.dir[0]))) {
        return;
    }
    long long now = kv_mstime();
    if (now - P.last_recover_ms < 1000) {
        return;
    }
    P.last_recover_ms = now;
    struct lsm_options o;
    engine_options(&o);
    if (free_bytes() < o.memtable_size + (16u << 20)) {
        return;
    }
    char err[256];
    if (persist_reopen(err, sizeof(err)) == 0) {
        server_log(LL_NOTICE, "The engine was reopened: writes are accepted again");
    } else {
        server_log(LL_WARNING, "Reopening the engine failed: %s", err);
    }
}

void persist_set_fault_armed(int on) {
    P.fault_armed = on;
}

void persist_cron(void) {
    if (P.db == NULL) {
        maybe_recover();
        return;
    }
    if (server.appendfsync == PERSIST_FSYNC_EVERYSEC && server.mstime - P.last_everysec_ms >= 1000) {
        P.last_everysec_ms = server.mstime;
        if (P.last_seq > lsm_durable_seq(P.db)) {
            lsm_sync_wal_async(P.db, UINT64_MAX);
        }
    }
    if (P.bg_scheduled && !atomic_load(&P.bg_running)) {
        int what = P.bg_scheduled;
        P.bg_scheduled = 0;
        bg_start(what);
    }
    int hz = server.hz > 0 ? server.hz : 10;
    expire_cycle(250000 / hz); /* a quarter of a tick, as Redis's slow cycle */
    check_engine_error();
    maybe_recover();
}

void persist_expire_due(void) {
    expire_cycle(5000);
}

void persist_evict_prepare(void) {
    commit();
}

/* ------------------------------------------------------------------------------
 * Errors, INFO, SAVE
 * ------------------------------------------------------------------------------ */
const char *persist_write_error(void) {
    if (P.db == NULL) {
        return NULL;
    }
    if (P.write_failed) {
        return P.errmsg;
    }
    check_engine_error();
    return P.write_failed ? P.errmsg : NULL;
}

void persist_info(struct persist_info *out) {
    memset(out, 0, sizeof(*out));
    out->loading = server.loading;
    out->loading_start_ms = P.load_start_ms;
    out->changes_since_save = P.changes;
    out->last_save_time = P.last_save;
    out->last_write_ok = !P.write_failed;
    out->last_bgrewrite_ok = atomic_load(&P.bgrewrite_last_ok) == 0;
    int bg = atomic_load(&P.bg_running);
    out->bgsave_in_progress = bg == 1;
    out->bgrewrite_in_progress = bg == 2;
    out->held_clients = (long long)P.nheld;
    if (P.db) {
        struct lsm_stats st;
        lsm_stats(P.db, &st);
        out->wal_syncs = (long long)st.wal_syncs;
    }
}

size_t persist_info_engine(char *buf, size_t cap) {
    if (P.db == NULL) {
        return (size_t)snprintf(buf, cap, "engine_open:0\r\n");
    }
    struct lsm_stats st;
    lsm_stats(P.db, &st);
    char files[128] = "", bytes[256] = "";
    size_t fn = 0, bn = 0;
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        fn += (size_t)snprintf(files + fn, sizeof(files) - fn, "%s%d", l ? "," : "",
                               st.files_per_level[l]);
        bn += (size_t)snprintf(bytes + bn, sizeof(bytes) - bn, "%s%llu", l ? "," : "",
                               (unsigned long long)st.bytes_per_level[l]);
    }
    long long cached = 0;
    for (int i = 0; i < server.databases; i++) {
        cached += (long long)ks_db_size(server.db[i]);
    }
    int n = snprintf(
        buf, cap,
        "engine_open:1\r\n"
        "engine_dir:%s\r\n"
        "memtable_bytes:%llu\r\n"
        "immutable_memtables:%d\r\n"
        "files_per_level:%s\r\n"
        "bytes_per_level:%s\r\n"
        "live_sst_bytes:%llu\r\n"
        "pending_compaction_bytes:%llu\r\n"
        "block_cache_hits:%llu\r\n"
        "block_cache_misses:%llu\r\n"
        "block_cache_hit_rate:%.4f\r\n"
        "bloom_useful:%llu\r\n"
        "write_slowdowns:%llu\r\n"
        "write_stalls:%llu\r\n"
        "write_stall_micros:%llu\r\n"
        "wal_syncs:%llu\r\n"
        "wal_bytes:%llu\r\n"
        "flushes:%llu\r\n"
        "compactions:%llu\r\n"
        "write_amplification:%.2f\r\n"
        "space_amplification:%.2f\r\n"
        "last_sequence:%llu\r\n"
        "durable_sequence:%llu\r\n"
        "cached_keys:%lld\r\n"
        "held_clients:%zu\r\n"
        "wal_sync_avg_us:%lld\r\n"
        "expiry_watermark_ms:%llu\r\n"
        "last_load_ms:%lld\r\n",
        P.dir, (unsigned long long)st.memtable_bytes, st.immutable_memtables, files, bytes,
        (unsigned long long)st.live_sst_bytes, (unsigned long long)st.pending_compaction_bytes,
        (unsigned long long)st.block_cache_hits, (unsigned long long)st.block_cache_misses,
        st.block_cache_hit_rate, (unsigned long long)st.bloom_useful,
        (unsigned long long)st.write_slowdowns, (unsigned long long)st.write_stalls,
        (unsigned long long)st.write_stall_micros, (unsigned long long)st.wal_syncs,
        (unsigned long long)st.wal_bytes, (unsigned long long)st.flushes,
        (unsigned long long)st.compactions, st.write_amplification, st.space_amplification,
        (unsigned long long)st.last_sequence, (unsigned long long)st.durable_sequence, cached,
        P.nheld, P.sync_avg_us, (unsigned long long)atomic_load(&P.watermark), P.load_ms);
    return n < 0 ? 0 : ((size_t)n >= cap ? cap - 1 : (size_t)n);
}

int persist_save(const char **err) {
    if (P.db == NULL) {
        *err = "ERR the engine is not open";
        return -1;
    }
    if (commit() != 0 || lsm_flush(P.db) != LSM_OK) {
        *err = "ERR Background save failed: the engine refuses writes";
        return -1;
    }
    P.changes = 0;
    P.last_save = kv_mstime() / 1000;
    server.lastsave = P.last_save;
    return 0;
}

static void *bg_main(void *arg) {
    (void)arg;
    kv_alloc_thread_register();
    int what = atomic_load(&P.bg_running);
    int rc = what == 1 ? lsm_flush(P.db) : lsm_compact_range(P.db, NULL, 0, NULL, 0);
    if (what == 1) {
        atomic_store(&P.bg_last_ok, rc);
    } else {
        atomic_store(&P.bgrewrite_last_ok, rc);
    }
    kv_alloc_thread_unregister();
    atomic_store(&P.bg_running, 0);
    return NULL;
}

static int bg_start(int what) {
    if (P.db == NULL) {
        return -1;
    }
    int running = atomic_load(&P.bg_running);
    if (running == what) {
        return -1;
    }
    if (running) {
        P.bg_scheduled = what; /* started by the cron when the other one ends */
        return 1;
    }
    bg_join();
    commit();
    atomic_store(&P.bg_running, what);
    if (pthread_create(&P.bg, NULL, bg_main, NULL) != 0) {
        atomic_store(&P.bg_running, 0);
        return -1;
    }
    P.bg_started = 1;
    if (what == 1) {
        P.changes = 0;
        P.last_save = kv_mstime() / 1000;
        server.lastsave = P.last_save;
    }
    return 0;
}

int persist_bgsave(void) {
    return bg_start(1);
}

int persist_bgrewrite(void) {
    return bg_start(2);
}
