/* server/store/ks_evict.c: maxmemory eviction for cache mode. The eight Redis policies
 * (noeviction, allkeys-lru/lfu/random, volatile-lru/lfu/random/ttl) approximated
 * by sampling into a pool of candidates, run in bounded slices before commands and
 * from a timer until used memory is under maxmemory.
 *
 * What it leaves to others: the LRU/LFU numbers themselves (ks.c keeps the 24-bit
 * field of each entry), measuring memory (alloc.c's kv_used_memory, cheap enough
 * to read before every command), replying -OOM (commands.c: when
 * ks_evict_if_needed() returns -1 and the command may grow memory).
 *
 * HOW IT WORKS (the approach of Redis's evict.c; the code is our own)
 *
 * Exact LRU would need a list threaded through every key (16 bytes per key) and a
 * move on every read. Instead, each eviction samples a few keys
 * (maxmemory-samples, default 5) from every database and offers them to a small
 * pool of the best candidates seen so far (KS_EVPOOL_SIZE = 16), ordered by score,
 * where a higher score means "evict sooner":
 *     LRU:  idle time in ms (from the entry's 24-bit clock in seconds)
 *     LFU:  255 - the decayed 8-bit logarithmic counter
 *     TTL:  ULLONG_MAX - expire-at (nearest expiry scores highest)
 * The best-scored candidate is taken out, looked up again by key (it may have been
 * deleted or, for volatile-*, lost its TTL since it was sampled: then it is a
 * ghost and skipped) and deleted. The pool survives between evictions, so good
 * candidates found earlier are not forgotten: with 5 samples and a pool of 16 the
 * result is close to true LRU (Redis's measurements, and ours in the tests).
 * allkeys-* sample the database's table (a random stretch of buckets, cheap);
 * volatile-* sample the database's array of keys with a TTL, so keys without a
 * TTL are never candidates; the random policies take one random key, visiting the
 * databases round robin.
 *
 * The pool is sorted ascending; filled slots are a prefix. An offer with score s
 * finds the first slot k whose score is >= s (or is empty):
 *   - k == 0 and the pool is full: s is worse than everything held: dropped;
 *   - slot k empty: s goes there;
 *   - otherwise, when the last slot is free, slots k.. shift right to make room;
 *     when the pool is full, slots ..k-1 shift left, the worst (slot 0) falls
 *     out, and s goes to k-1.
 * Example with 4 slots holding [10 20 30 _]: offering 25 gives [10 20 25 30];
 * then offering 15 gives [15 20 25 30] (10 fell out); 5 is dropped; the next
 * eviction takes 30.
 *
 * Bounded work: one call frees keys until used memory is back under maxmemory,
 * checking the clock every 16 keys; past KS_EVICT_TIME_LIMIT_US (500 us, Redis's
 * default maxmemory-eviction-tenacity) it stops, lets the command run, and arms a
 * zero-delay timer that continues with one more slice per loop iteration (clients
 * are served in between) until memory is under the limit. So CONFIG SET maxmemory
 * far lower shrinks the data set over many loop turns without a stall. -1 (OOM for
 * commands that may grow memory) is answered only when nothing can be evicted:
 * noeviction, or a volatile policy with no key with a TTL left.
 *
 * Threading: loop thread only.
 */
#include <event2/event.h>
#include <limits.h>
#include <unistd.h>

#include "server/store/events.h"
#include "server/store/ks.h"

long long ks_evict_time_limit_us = KS_EVICT_TIME_LIMIT_US;

/* ---- the pool ---- */

#define EVPOOL_KEY_CACHE 64 /* each slot keeps a buffer of at least this size */

void ks_evpool_init(struct ks_evpool *p) {
    for (int i = 0; i < KS_EVPOOL_SIZE; i++) {
        p->slot[i].key = kv_malloc(EVPOOL_KEY_CACHE);
        p->slot[i].cap = EVPOOL_KEY_CACHE;
        p->slot[i].klen = 0;
        p->slot[i].db = -1;
        p->slot[i].score = 0;
        p->slot[i].token = 0;
    }
    p->policy = -1;
}

void ks_evpool_deinit(struct ks_evpool *p) {
    for (int i = 0; i < KS_EVPOOL_SIZE; i++) {
        kv_free(p->slot[i].key);
        p->slot[i].key = NULL;
        p->slot[i].db = -1;
    }
}

void ks_evpool_clear(struct ks_evpool *p) {
    for (int i = 0; i < KS_EVPOOL_SIZE; i++) {
        p->slot[i].db = -1;
    }
}

int ks_evpool_offer(struct ks_evpool *p, int db, const char *key, size_t klen,
                    uint64_t token, unsigned long long score) {
    struct ks_evpool_slot *s = p->slot;
    int k = 0;
    while (k < KS_EVPOOL_SIZE && s[k].db >= 0 && s[k].score < score) {
        k++;
    }
    if (k == 0 && s[KS_EVPOOL_SIZE - 1].db >= 0) {
        return 0; /* worse than every candidate held */
    }
    if (k < KS_EVPOOL_SIZE && s[k].db < 0) {
        /* an empty slot: take it */
    } else if (s[KS_EVPOOL_SIZE - 1].db < 0) {
        /* room on the right: shift k.. one slot right; the empty last slot's
         * buffer moves to k */
        struct ks_evpool_slot spare = s[KS_EVPOOL_SIZE - 1];
        memmove(s + k + 1, s + k, sizeof(*s) * (size_t)(KS_EVPOOL_SIZE - k - 1));
        s[k] = spare;
    } else {
        /* full: the worst (slot 0) falls out, ..k-1 shift left */
        struct ks_evpool_slot spare = s[0];
        k--;
        memmove(s, s + 1, sizeof(*s) * (size_t)k);
        s[k] = spare;
    }
    struct ks_evpool_slot *t = &s[k];
    if (klen > t->cap) {
        kv_free(t->key);
        t->key = kv_malloc(klen);
        t->cap = (uint32_t)klen;
    }
    memcpy(t->key, key, klen);
    t->klen = (uint32_t)klen;
    t->token = token;
    t->score = score;
    t->db = db;
    return 1;
}

int ks_evpool_best(const struct ks_evpool *p) {
    for (int k = KS_EVPOOL_SIZE - 1; k >= 0; k--) {
        if (p->slot[k].db >= 0) {
            return k;
        }
    }
    return -1;
}

void ks_evpool_remove(struct ks_evpool *p, int k) {
    struct ks_evpool_slot *t = &p->slot[k];
    t->db = -1;
    if (t->cap > 4 * EVPOOL_KEY_CACHE) { /* do not keep a huge key's buffer */
        kv_free(t->key);
        t->key = kv_malloc(EVPOOL_KEY_CACHE);
        t->cap = EVPOOL_KEY_CACHE;
    }
}

/* ---- scores ---- */

static int policy_is_volatile(int policy) {
    return policy == MM_VOLATILE_LRU || policy == MM_VOLATILE_LFU ||
           policy == MM_VOLATILE_RANDOM || policy == MM_VOLATILE_TTL;
}

unsigned long long ks_evict_score(const struct kv_entry *e, int policy) {
    switch (policy) {
    case MM_ALLKEYS_LFU:
    case MM_VOLATILE_LFU:
        return 255 - ks_entry_lfu(e);
    case MM_VOLATILE_TTL:
        return ULLONG_MAX - (unsigned long long)ks_entry_expire(e);
    default:
        return (unsigned long long)ks_entry_idle_ms(e);
    }
}

#define EVICT_MAX_SAMPLES 64

/* Samples db for the policy and offers what it found to the pool. Returns the
 * number of keys sampled. */
static size_t pool_populate(struct ks_evpool *p, struct kv_db *db, int policy) {
    struct kv_entry *sample[EVICT_MAX_SAMPLES];
    size_t want = server.maxmemory_samples > 0 ? (size_t)server.maxmemory_samples : 5;
    if (want > EVICT_MAX_SAMPLES) {
        want = EVICT_MAX_SAMPLES;
    }
    size_t n;
    if (policy_is_volatile(policy)) {
        n = want < db->vol_len ? want : db->vol_len;
        for (size_t i = 0; i < n; i++) {
            sample[i] = db->vol[ks_rand64() % db->vol_len];
        }
    } else {
        n = kv_dict_sample(&db->keys, sample, want);
    }
    for (size_t i = 0; i < n; i++) {
        struct kv_entry *e = sample[i];
        size_t klen;
        const char *k = ks_entry_key(e, &klen);
        unsigned long long score = ks_evict_score(e, policy);
        /* a quick reject before hashing the key: worse than a full pool's worst */
        if (p->slot[KS_EVPOOL_SIZE - 1].db >= 0 && score <= p->slot[0].score) {
            continue;
        }
        ks_evpool_offer(p, db->id, k, klen, ks_token(k, klen), score);
    }
    return n;
}

static int ndbs(void) {
    return server.databases > 0 ? server.databases : 16;
}

/* Picks the key to evict under the policy: its database and entry, the entry's
 * token in *token. Returns NULL when there is nothing to evict. */
static struct kv_entry *pick_victim(struct ks_evpool *p, int policy, struct kv_db **dbp,
                                    uint64_t *token) {
    int nd = ndbs();
    int vol = policy_is_volatile(policy);
    if (policy == MM_ALLKEYS_RANDOM || policy == MM_VOLATILE_RANDOM) {
        static unsigned next_db;
        for (int i = 0; i < nd; i++) {
            struct kv_db *db = server.db[next_db++ % (unsigned)nd];
            struct kv_entry *e = NULL;
            if (vol && db->vol_len) {
                e = db->vol[ks_rand64() % db->vol_len];
            } else if (!vol) {
                e = kv_dict_random(&db->keys);
            }
            if (e) {
                *dbp = db;
                *token = ks_entry_token(e);
                return e;
            }
        }
        return NULL;
    }
    if (p->policy != policy) { /* scores of another policy mean nothing here */
        ks_evpool_clear(p);
        p->policy = policy;
    }
    for (;;) {
        size_t total = 0;
        for (int i = 0; i < nd; i++) {
            struct kv_db *db = server.db[i];
            if ((vol ? db->vol_len : db->keys.count) > 0) {
                total += pool_populate(p, db, policy);
            }
        }
        if (total == 0) {
            ks_evpool_clear(p); /* only ghosts can be left */
            return NULL;
        }
        int k;
        while ((k = ks_evpool_best(p)) >= 0) {
            struct ks_evpool_slot *s = &p->slot[k];
            struct kv_db *db = server.db[s->db];
            struct kv_entry *e = ks_find(db, s->key, s->klen, s->token);
            *token = s->token;
            ks_evpool_remove(p, k);
            if (e != NULL && (!vol || ks_entry_has_expire(e))) {
                *dbp = db;
                return e;
            }
        }
        /* every candidate was a ghost: sample again */
    }
}

static const struct ks_backing *backing;

void ks_set_backing(const struct ks_backing *b) {
    backing = b;
}

/* Deletes an evicted key as Redis does: STORE_EV_EVICTED first (WATCH sees it,
 * evicted_keys counts it).
 * Freed synchronously (Redis's lazyfree-lazy-eviction no). */
static void evict_entry(struct kv_db *db, struct kv_entry *e, uint64_t token) {
    size_t klen;
    const char *k = ks_entry_key(e, &klen);
    if (backing) {
        /* a clean cached entry: the backing store has it; dropping it changes nothing */
        ks_delete(db, k, klen, token, 0);
        return;
    }
    ks_announce_gone(db, STORE_EV_EVICTED, e, k, klen);
    ks_delete(db, k, klen, token, 0);
}

/* ---- the loop ---- */

static struct ks_evpool pool;
static int pool_ready;
static struct event *evict_ev;
static int evict_timer_armed;

static void evict_timer_cb(evutil_socket_t fd, short what, void *arg);

static void arm_timer(void) {
    if (server.base == NULL) {
        return; /* no loop (unit tests): the next call continues */
    }
    if (evict_ev == NULL) {
        evict_ev = event_new(server.base, -1, 0, evict_timer_cb, NULL);
    }
    if (!evict_timer_armed) {
        struct timeval now = {0, 0};
        event_add(evict_ev, &now);
        evict_timer_armed = 1;
    }
}

static void evict_timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    evict_timer_armed = 0;
    if (ks_perform_evictions() == KS_EVICT_RUNNING) {
        arm_timer();
    }
}

/* Persistent mode's memory budget without maxmemory (PERSIST.md "Memory"). */
#define KS_PERSIST_DEFAULT_BUDGET (1ull << 30)

int ks_evict_over_limit(size_t *tofree) {
    size_t max = (size_t)server.maxmemory;
    if (server.maxmemory <= 0) {
        if (!backing) {
            return 0;
        }
        max = KS_PERSIST_DEFAULT_BUDGET;
    }
    size_t used = kv_used_memory();
    if (used <= max) {
        return 0;
    }
    if (tofree) {
        *tofree = used - max;
    }
    return 1;
}

int ks_perform_evictions(void) {
    size_t tofree;
    if (server.db == NULL || !ks_evict_over_limit(&tofree)) {
        return KS_EVICT_OK;
    }
    int policy = server.maxmemory_policy;
    if (backing) {
        /* only clean cached entries go, by recency (or frequency under LFU);
         * a write in the pending batch must reach the backing store first */
        policy = ks_policy_is_lfu() ? MM_ALLKEYS_LFU : MM_ALLKEYS_LRU;
        if (backing->evict_prepare) {
            backing->evict_prepare();
        }
    } else if (policy == MM_NOEVICTION) {
        return KS_EVICT_FAIL;
    }
    if (!pool_ready) { /* before measuring: the pool's own bytes count */
        ks_evpool_init(&pool);
        pool_ready = 1;
        if (!ks_evict_over_limit(&tofree)) {
            return KS_EVICT_OK;
        }
    }
    long long start = kv_ustime();
    size_t freed = 0;
    long keys = 0;
    while (freed < tofree) {
        struct kv_db *db;
        uint64_t token;
        struct kv_entry *e = pick_victim(&pool, policy, &db, &token);
        if (e == NULL) {
            goto cant_free;
        }
        size_t before = kv_used_memory();
        evict_entry(db, e, token);
        size_t after = kv_used_memory();
        freed += before > after ? before - after : 0;
        if (++keys % 16 == 0 && kv_ustime() - start > ks_evict_time_limit_us) {
            arm_timer(); /* still over: continue from the loop */
            return KS_EVICT_RUNNING;
        }
    }
    return evict_timer_armed ? KS_EVICT_RUNNING : KS_EVICT_OK;

cant_free:
    /* Nothing left to evict. Memory may still be on its way back from the lazy-free
     * thread: wait for it a little, never long. */
    while (ks_lazyfree_pending() && kv_ustime() - start < ks_evict_time_limit_us) {
        if (!ks_evict_over_limit(NULL)) {
            return KS_EVICT_OK;
        }
        usleep(100);
    }
    return ks_evict_over_limit(NULL) ? KS_EVICT_FAIL : KS_EVICT_OK;
}

int ks_evict_if_needed(void) {
    int rc = ks_perform_evictions();
    /* persistent mode never refuses: data beyond memory lives on disk */
    return rc == KS_EVICT_FAIL && !backing ? -1 : 0;
}

void ks_evict_start(void) {
    if (server.db == NULL || server.maxmemory <= 0) {
        return;
    }
    size_t used = kv_used_memory();
    if (used > (size_t)server.maxmemory) {
        server_log(LL_WARNING,
                   "WARNING: the new maxmemory value set via CONFIG SET (%lld) is smaller "
                   "than the current memory usage (%zu). This will result in key eviction "
                   "and/or the inability to accept new write commands depending on the "
                   "maxmemory-policy.", server.maxmemory, used);
        if (server.maxmemory_policy != MM_NOEVICTION) {
            arm_timer();
        }
    }
}

void ks_evict_cron(void) {
    /* CONFIG SET maxmemory lower with no command after it: start from here */
    if (!evict_timer_armed && server.maxmemory_policy != MM_NOEVICTION &&
        ks_evict_over_limit(NULL)) {
        ks_perform_evictions();
    }
}

void ks_evict_deinit(void) {
    if (evict_ev) {
        event_free(evict_ev);
        evict_ev = NULL;
        evict_timer_armed = 0;
    }
    if (pool_ready) {
        ks_evpool_deinit(&pool);
        pool_ready = 0;
    }
}
