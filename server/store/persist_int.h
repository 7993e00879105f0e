/* server/store/persist_int.h: what the persist_*.c files share and nothing else includes:
 * the on-disk key layout constants, the one state (P), and the helpers each file
 * defines for the others. Public interface: persist.h. Loop thread only, except
 * what persist.c says of the loader and background threads.
 */
#ifndef KVD_PERSIST_INT_H
#define KVD_PERSIST_INT_H

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
#include "server/store/events.h"
#include "server/store/hlc.h"
#include "server/store/obj.h"
#include "server/store/persist.h"

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

/* A caller of persist_when_durable (the cluster's own replica acknowledgements). */
enum { WAITER_BATCH = 0, WAITER_WRITTEN, WAITER_FAILED };
struct durable_waiter {
    uint64_t id;
    void (*fn)(void *arg, int ok);
    void *arg;
    int state;                     /* WAITER_*: in the pending batch, written, failed */
    uint64_t seq;                  /* WRITTEN: the engine sequence it waits for */
};

struct persist_state {
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
    struct durable_waiter *waiters;/* persist_when_durable, in arrival order */
    size_t nwaiters, capwaiters;
    uint64_t next_waiter;
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
};

/* The one state of persistent mode (persist.c). */
extern struct persist_state persist_g;
#define P persist_g


/* ---- persist.c ---- */
void temps_free(void);
void pbuf_grow(struct pbuf *b, size_t n);
/* At least n bytes of capacity (inline: every key written reserves). */
static inline void pbuf_reserve(struct pbuf *b, size_t n) {
    if (b->cap < n) {
        pbuf_grow(b, n);
    }
}
void put_be64(unsigned char *p, uint64_t v);
uint64_t get_be64(const unsigned char *p);
void data_key(int db, const char *key, size_t klen, uint64_t token);
size_t meta_key(unsigned char *out, char tag);
void index_key(struct pbuf *b, long long expire_at, int db, const char *key, size_t klen);
void old_field_key(struct pbuf *b, int db, uint64_t gen, const char *f, size_t flen);
void field_key(struct pbuf *b, int db, const char *key, size_t klen, uint64_t token,
               const char *f, size_t flen);
int flushed_filter(void *arg, const char *key, size_t klen, const struct lsm_meta *m);

/* ---- persist_env.c ---- */
void encode_into(const struct kv_entry *e, struct pbuf *b);

/* ---- persist_write.c ---- */
void deleted_add(uint64_t token, int db);
int deleted_has(uint64_t token, int db);
void deleted_clear(void);
void fail_pending_clients(void);
/* Runs the persist_when_durable callbacks whose writes are now stored (and synced
 * under always) or failed; from the loop only (before-sleep, the sync event). */
void persist_waiters_run(void);
/* 1 when a waiter waits for a WAL sync (request_sync must ask for one). */
int persist_waiters_need_sync(void);
/* The client layer's hooks (persist_set_client_hooks). */
extern struct persist_client_hooks persist_hooks;
/* What persistence keeps of writer c: the first member of its struct client. */
static inline struct persist_writer *writer_of(struct client *c) {
    return (struct persist_writer *)(void *)c;
}
void drop_cache(void);
int commit(void);
void batch_tomb(const void *k, size_t klen, long long expire_at, struct kv_version ver);
void batch_del(const void *k, size_t klen, uint64_t ts);
struct lsm_read_options raw_read(void);
uint64_t next_local_gen(void);
void load_fields(int db, struct kv_entry *e);
void del_generic(int db_id, const char *key, size_t klen, long long old_expire,
                 long long tomb_expire, struct kv_version ver);

/* ---- persist_iter.c ---- */
int is_meta(struct lsm_iter *it);

/* ---- persist_meta.c ---- */
uint64_t compaction_clock(void);
void expire_cycle(long long budget_us);
void write_counts(struct lsm_db *db, int clean);
int load_meta(struct lsm_db *db);

static inline int get_db(const unsigned char *p) {
    return p[0] << 8 | p[1];
}

/* Is this engine key a big hash's field record (token layout)? The db field's top
 * bit; the meta namespace (db 0xffff after ten 0xff) is not one. */
static inline int is_field_key(const unsigned char *k, size_t klen) {
    return klen >= DKEY + 4 && (k[8] & 0x80) &&
           !(k[8] == 0xff && k[9] == 0xff && get_be64(k) == UINT64_MAX);
}

#endif
