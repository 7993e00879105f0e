/* server/store/ks_dict.c: the token-ordered chained hash table behind every database and
 * every large hash. Entries are struct kv_entry (server/store/ks.h), linked through their
 * own `next` field: the table adds 8 bytes per slot and nothing per entry.
 *
 * HOW IT WORKS
 *
 * token(key) = XXH3_64bits(key). A table has 2^bits buckets and a key lives in
 * bucket token >> (64 - bits): the TOP bits, not the low bits Redis uses. So bucket
 * i holds exactly the tokens in [i * 2^(64-bits), (i+1) * 2^(64-bits)), buckets are
 * in token order, and chains are kept sorted by token. Reading the buckets left to
 * right visits every key in token order, whatever the table size.
 *
 * Resizing (incremental, as Redis): a second table is allocated, and every
 * operation (and the cron, 1 ms per tick) moves a few buckets of table 0 into
 * table 1, in bucket order. Growing 2^k -> 2^(k+1) splits bucket i into 2i and
 * 2i+1; shrinking merges them back. Lookups check table 0 for buckets not yet
 * moved (index >= rehashidx) and table 1 otherwise.
 *
 * SCAN: a scan position IS a token: "continue with the first key whose token >=
 * position" (the client's cursor is position >> 11, ks.h KS_SCAN_BLOCK_BITS).
 * A call walks the buckets of the smaller table from bucket(position); for each such
 * bucket it gathers the keys of the matching token range from both tables (the
 * range covers several buckets of the larger one), sorts them by token and emits
 * them. It stops after `count` keys, but only between two BLOCKS of 2^11 tokens
 * (never inside one), and returns the first token of the next block, or 0 at the
 * end. Since positions name places on the token line rather than slots of a
 * table, a key present for the whole iteration is returned exactly once, across
 * any number of resizes, and cursors stay valid after a restart (the LSM engine
 * orders keys the same way, persist_iter.c stops on the same blocks).
 *
 * Worked example, tokens shortened to their first byte and blocks to 0x10 tokens,
 * count = 1. Four buckets (bits 2): bucket 0 = [00,40) holds a=12 b=3f; bucket
 * 2 = [80,c0) holds c=9a d=9a e=b0.
 *   SCAN 0   -> a; b is in another block, so stop: position 20 (after a's block)
 *   (the table grows to 8 buckets of width 20: a in 0, b in 1, c d in 4, e in 5)
 *   SCAN 20  -> bucket 0 has only a (< 20), bucket 1 gives b: position 40
 *   SCAN 40  -> buckets 2, 3 empty; bucket 4 gives c and d (same block): a0
 *   SCAN a0  -> e: position c0;   SCAN c0 -> buckets 6, 7 empty: 0 (done)
 * Each key came out once although the table doubled mid-iteration.
 *
 * TAGGED LINKS: tokens are not stored, yet a lookup compares them before keys.
 * A link (a bucket slot or an entry's `next`) holds the entry's address in its low
 * 48 bits and, in its top 16, the entry's TAG: the 16 token bits just below the
 * bucket index of the table the link is in, (token << bits) >> 48. Within a bucket
 * the chain is sorted by token, so it is sorted by tag too, and:
 *   - a lookup follows a link to an entry only when the tag is the key's (1 in
 *     65536 otherwise) and stops at the first larger tag: a miss touches no entry,
 *     a hit only the entry it returns, where an untagged chain cost a cache miss
 *     per entry passed;
 *   - an insertion walks the chain by tags, hashing an entry's key only when the
 *     tags are equal.
 * A rehash recomputes each moved entry's token anyway and tags it for its new
 * table. User-space addresses fit in 48 bits on the platforms kvd runs on
 * (x86-64 and arm64 without a high mmap hint); kv_dict_insert checks it. The
 * sanitizer build uses tag 0 throughout (LINK_TAGS). Links
 * are read through link_entry()/link_tag() only, written through link_make();
 * outside this file, kv_dict_link_set() swaps the entry of a link for another
 * with the same key.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "server/store/ks.h"

#define DICT_MIN_BITS 2
#define DICT_EMPTY_VISITS 10 /* per bucket of rehash work, as Redis */

uint64_t ks_token(const void *key, size_t len) {
    return XXH3_64bits(key, len);
}

static inline size_t bucket_of(uint64_t token, unsigned bits) {
    return (size_t)(token >> (64 - bits));
}

#define LINK_ADDR_BITS 48
#define LINK_ADDR_MASK (((uintptr_t)1 << LINK_ADDR_BITS) - 1)

/* Under AddressSanitizer every tag is 0: LeakSanitizer finds live entries by
 * their addresses in memory and would report tagged ones as leaked. The code
 * paths are the same (equal tags fall back to the key and the token). */
#if defined(__SANITIZE_ADDRESS__)
#define LINK_TAGS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LINK_TAGS 0
#endif
#endif
#ifndef LINK_TAGS
#define LINK_TAGS 1
#endif

/* The entry a link points to (NULL for a NULL link). */
static inline struct kv_entry *link_entry(const struct kv_entry *l) {
    return (struct kv_entry *)((uintptr_t)l & LINK_ADDR_MASK);
}
static inline unsigned link_tag(const struct kv_entry *l) {
    return (unsigned)((uintptr_t)l >> LINK_ADDR_BITS);
}
/* The tag of a token in a table of 2^bits buckets (see TAGGED LINKS). */
static inline unsigned token_tag(uint64_t token, unsigned bits) {
    return LINK_TAGS ? (unsigned)((token << bits) >> (64 - 16)) : 0;
}
/* A link to e (not NULL) with tag. */
static inline struct kv_entry *link_make(struct kv_entry *e, unsigned tag) {
    return (struct kv_entry *)((uintptr_t)e | ((uintptr_t)tag << LINK_ADDR_BITS));
}

void kv_dict_link_set(struct kv_entry **link, struct kv_entry *e) {
    *link = link_make(e, link_tag(*link));
}

void kv_dict_init(struct kv_dict *d) {
    d->tab[0] = d->tab[1] = NULL;
    d->bits[0] = d->bits[1] = 0;
    d->rehashidx = -1;
    d->count = 0;
    d->store_gen = 0;
    d->store_old = 0;
    d->vers = NULL;
    d->floor = (struct kv_version){0, 0};
}

size_t kv_dict_slots(const struct kv_dict *d) {
    size_t n = d->tab[0] ? (size_t)1 << d->bits[0] : 0;
    if (d->tab[1]) {
        n += (size_t)1 << d->bits[1];
    }
    return n;
}

/* Links e into the sorted chain at *link (of a table of 2^bits buckets), after any
 * entries with token <= its own. The walk goes by tags; an entry's token is
 * recomputed only when its tag equals e's. */
static inline void chain_insert(struct kv_entry **link, struct kv_entry *e, uint64_t token,
                                unsigned bits) {
    unsigned tag = token_tag(token, bits);
    struct kv_entry *l;
    while ((l = *link) != NULL) {
        unsigned lt = link_tag(l);
        if (lt > tag || (lt == tag && ks_entry_token(link_entry(l)) > token)) {
            break;
        }
        link = &link_entry(l)->next;
    }
    e->next = *link;
    *link = link_make(e, tag);
}

static void start_rehash(struct kv_dict *d, unsigned bits) {
    d->tab[1] = kv_calloc((size_t)1 << bits, sizeof(struct kv_entry *));
    d->bits[1] = (uint8_t)bits;
    d->rehashidx = 0;
}

static void finish_rehash(struct kv_dict *d) {
    kv_free(d->tab[0]);
    d->tab[0] = d->tab[1];
    d->bits[0] = d->bits[1];
    d->tab[1] = NULL;
    d->bits[1] = 0;
    d->rehashidx = -1;
}

int kv_dict_rehash(struct kv_dict *d, int n) {
    if (d->rehashidx == -1) {
        return 0;
    }
    size_t size0 = (size_t)1 << d->bits[0];
    int empty_visits = n * DICT_EMPTY_VISITS;
    struct kv_entry **tab0 = d->tab[0], **tab1 = d->tab[1];
    unsigned bits1 = d->bits[1];

    while (n-- > 0 && (size_t)d->rehashidx < size0) {
        while (tab0[d->rehashidx] == NULL) {
            d->rehashidx++;
            if ((size_t)d->rehashidx == size0) {
                goto done;
            }
            if (--empty_visits == 0) {
                return 1;
            }
        }
        /* Entries leave in token order: each starts its walk after the previous
         * one when both land in the same bucket. */
        struct kv_entry *e = link_entry(tab0[d->rehashidx]);
        struct kv_entry *prev = NULL;
        size_t prev_b = 0;
        while (e) {
            struct kv_entry *next = link_entry(e->next);
            uint64_t token = ks_entry_token(e);
            size_t b = bucket_of(token, bits1);
            struct kv_entry **link = (prev && prev_b == b) ? &prev->next : &tab1[b];
            chain_insert(link, e, token, bits1);
            prev = e;
            prev_b = b;
            e = next;
        }
        tab0[d->rehashidx] = NULL;
        d->rehashidx++;
    }
done:
    if ((size_t)d->rehashidx == size0) {
        finish_rehash(d);
        return 0;
    }
    return 1;
}

long kv_dict_rehash_ms(struct kv_dict *d, int ms) {
    long long start = kv_mstime();
    long moved = 0;
    while (kv_dict_rehash(d, 100)) {
        moved += 100;
        if (kv_mstime() - start > ms) {
            break;
        }
    }
    return moved;
}

static void expand_if_needed(struct kv_dict *d) {
    if (d->tab[0] == NULL) {
        d->tab[0] = kv_calloc((size_t)1 << DICT_MIN_BITS, sizeof(struct kv_entry *));
        d->bits[0] = DICT_MIN_BITS;
        return;
    }
    if (d->rehashidx == -1 && d->count >= ((size_t)1 << d->bits[0]) && d->bits[0] < 63) {
        start_rehash(d, d->bits[0] + 1u);
    }
}

void kv_dict_maybe_shrink(struct kv_dict *d) {
    if (d->rehashidx != -1 || d->tab[0] == NULL || d->bits[0] <= DICT_MIN_BITS) {
        return;
    }
    size_t size = (size_t)1 << d->bits[0];
    if (d->count * 8 >= size) {
        return;
    }
    unsigned bits = DICT_MIN_BITS;
    while (((size_t)1 << bits) < d->count) {
        bits++;
    }
    if (bits < d->bits[0]) {
        start_rehash(d, bits);
    }
}

/* The entry with this key in the chain starting at link l, whose tag in this table
 * is tag; only entries with that tag are looked at. */
static inline struct kv_entry *chain_find(struct kv_entry *l, const char *key, size_t len,
                                          unsigned tag) {
    for (; l != NULL; l = link_entry(l)->next) {
        unsigned lt = link_tag(l);
        if (lt == tag) {
            struct kv_entry *e = link_entry(l);
            if (ks_entry_key_eq(e, key, len)) {
                return e;
            }
        } else if (lt > tag) {
            break; /* sorted: it is not further on */
        }
    }
    return NULL;
}

struct kv_entry *kv_dict_find(struct kv_dict *d, const char *key, size_t len, uint64_t token) {
    if (d->count == 0) {
        return NULL;
    }
    if (d->rehashidx != -1) {
        kv_dict_rehash(d, 1);
    }
    size_t b = bucket_of(token, d->bits[0]);
    if (d->rehashidx == -1 || (int64_t)b >= d->rehashidx) {
        struct kv_entry *e = chain_find(d->tab[0][b], key, len, token_tag(token, d->bits[0]));
        if (e || d->rehashidx == -1) {
            return e;
        }
    }
    b = bucket_of(token, d->bits[1]);
    return chain_find(d->tab[1][b], key, len, token_tag(token, d->bits[1]));
}

void kv_dict_insert(struct kv_dict *d, struct kv_entry *e, uint64_t token) {
    if (d->rehashidx != -1) {
        kv_dict_rehash(d, 1);
    }
    if ((uintptr_t)e >> LINK_ADDR_BITS) {
        fprintf(stderr, "kvd: an entry at %p: above 48 bits, links cannot tag it\n", (void *)e);
        abort();
    }
    expand_if_needed(d);
    int t = d->rehashidx != -1;
    chain_insert(&d->tab[t][bucket_of(token, d->bits[t])], e, token, d->bits[t]);
    d->count++;
}

/* The link that points to the entry matching (key or ptr), in whichever table
 * holds it; NULL when absent. */
static struct kv_entry **find_link(struct kv_dict *d, const char *key, size_t len,
                                   const struct kv_entry *ptr, uint64_t token) {
    if (d->count == 0) {
        return NULL;
    }
    for (int t = 0; t < 2; t++) {
        if (d->tab[t] == NULL) {
            break;
        }
        size_t b = bucket_of(token, d->bits[t]);
        if (t == 0 && d->rehashidx != -1 && (int64_t)b < d->rehashidx) {
            continue;
        }
        unsigned tag = token_tag(token, d->bits[t]);
        for (struct kv_entry **link = &d->tab[t][b]; *link; link = &link_entry(*link)->next) {
            struct kv_entry *e = link_entry(*link);
            if (ptr ? e == ptr : (link_tag(*link) == tag && ks_entry_key_eq(e, key, len))) {
                return link;
            }
        }
    }
    return NULL;
}

struct kv_entry *kv_dict_unlink(struct kv_dict *d, const char *key, size_t len, uint64_t token) {
    if (d->rehashidx != -1) {
        kv_dict_rehash(d, 1);
    }
    struct kv_entry **link = find_link(d, key, len, NULL, token);
    if (link == NULL) {
        return NULL;
    }
    struct kv_entry *e = link_entry(*link);
    *link = e->next;
    e->next = NULL;
    d->count--;
    return e;
}

struct kv_entry *kv_dict_find_link(struct kv_dict *d, const char *key, size_t len,
                                   uint64_t token, struct kv_entry ***link) {
    if (d->rehashidx != -1) {
        kv_dict_rehash(d, 1);
    }
    *link = find_link(d, key, len, NULL, token);
    return *link ? link_entry(**link) : NULL;
}

struct kv_entry **kv_dict_link_of(struct kv_dict *d, const struct kv_entry *e, uint64_t token) {
    return find_link(d, NULL, 0, e, token);
}

/* A field version entry (kv_dict.vers) owns nothing else. */
static void vers_entry_free(struct kv_entry *e) {
    kv_free(e);
}

void kv_dict_clear(struct kv_dict *d, void (*free_entry)(struct kv_entry *e)) {
    if (d->vers) {
        kv_dict_clear(d->vers, vers_entry_free);
        kv_free(d->vers);
        d->vers = NULL;
    }
    for (int t = 0; t < 2; t++) {
        if (d->tab[t] == NULL) {
            continue;
        }
        size_t size = (size_t)1 << d->bits[t];
        if (free_entry) {
            for (size_t i = 0; i < size; i++) {
                struct kv_entry *e = link_entry(d->tab[t][i]);
                while (e) {
                    struct kv_entry *next = link_entry(e->next);
                    free_entry(e);
                    e = next;
                }
            }
        }
        kv_free(d->tab[t]);
    }
    kv_dict_init(d);
}

void kv_dict_foreach(struct kv_dict *d, void (*fn)(struct kv_entry *e, void *arg), void *arg) {
    for (int t = 0; t < 2; t++) {
        if (d->tab[t] == NULL) {
            continue;
        }
        size_t size = (size_t)1 << d->bits[t];
        size_t i = (t == 0 && d->rehashidx != -1) ? (size_t)d->rehashidx : 0;
        for (; i < size; i++) {
            for (struct kv_entry *e = link_entry(d->tab[t][i]); e; e = link_entry(e->next)) {
                fn(e, arg);
            }
        }
    }
}

/* xorshift64*: the keyspace's cheap PRNG (random keys, LFU, HRANDFIELD). */
static uint64_t rng_state;

uint64_t ks_rand64(void) {
    if (rng_state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        rng_state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ 0x9E3779B97F4A7C15ull;
    }
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

void ks_rand_seed(uint64_t seed) {
    rng_state = seed ? seed : 0x9E3779B97F4A7C15ull; /* 0 would mean "unseeded" */
}

struct kv_entry *kv_dict_random(struct kv_dict *d) {
    if (d->count == 0) {
        return NULL;
    }
    if (d->rehashidx != -1) {
        kv_dict_rehash(d, 1);
    }
    struct kv_entry *head;
    if (d->rehashidx != -1) {
        size_t s0 = (size_t)1 << d->bits[0], s1 = (size_t)1 << d->bits[1];
        size_t lo = (size_t)d->rehashidx;
        do {
            size_t r = lo + (size_t)(ks_rand64() % (s0 + s1 - lo));
            head = r < s0 ? d->tab[0][r] : d->tab[1][r - s0];
        } while (head == NULL);
    } else {
        size_t mask = ((size_t)1 << d->bits[0]) - 1;
        do {
            head = d->tab[0][ks_rand64() & mask];
        } while (head == NULL);
    }
    head = link_entry(head);
    size_t n = 0;
    for (struct kv_entry *e = head; e; e = link_entry(e->next)) {
        n++;
    }
    size_t k = (size_t)(ks_rand64() % n);
    while (k--) {
        head = link_entry(head->next);
    }
    return head;
}

/* A random bucket to start sampling from: its table *t and index; when rehashing,
 * only buckets that can hold entries (table 0 from rehashidx, all of table 1). */
static size_t sample_start(const struct kv_dict *d, int *t) {
    size_t s0 = (size_t)1 << d->bits[0];
    if (d->rehashidx == -1) {
        *t = 0;
        return (size_t)ks_rand64() & (s0 - 1);
    }
    size_t s1 = (size_t)1 << d->bits[1], lo = (size_t)d->rehashidx;
    size_t r = lo + (size_t)(ks_rand64() % (s0 + s1 - lo));
    *t = r >= s0;
    return r < s0 ? r : r - s0;
}

size_t kv_dict_sample(struct kv_dict *d, struct kv_entry **out, size_t count) {
    if (count > d->count) {
        count = d->count;
    }
    if (count == 0) {
        return 0;
    }
    if (d->rehashidx != -1) {
        kv_dict_rehash(d, (int)count);
    }
    int t;
    size_t i = sample_start(d, &t), stored = 0, empty_run = 0, steps = count * 10;
    while (stored < count && steps-- > 0) {
        struct kv_entry *e = link_entry(d->tab[t][i]);
        if (e == NULL) {
            /* a long empty stretch: jump elsewhere (as Redis's dictGetSomeKeys) */
            if (++empty_run >= 5 && empty_run > count) {
                i = sample_start(d, &t);
                empty_run = 0;
                continue;
            }
        } else {
            empty_run = 0;
            for (; e != NULL && stored < count; e = link_entry(e->next)) {
                out[stored++] = e;
            }
        }
        if (++i == (size_t)1 << d->bits[t]) {
            i = (t == 0 && d->rehashidx != -1) ? (size_t)d->rehashidx : 0;
        }
    }
    if (stored == 0) {
        out[stored++] = kv_dict_random(d); /* never report a non-empty table empty */
    }
    return stored;
}

/* ---- SCAN ---- */

struct scan_item {
    uint64_t token;
    struct kv_entry *e;
};

static struct scan_item *scan_buf; /* loop thread only */
static size_t scan_cap;

static int scan_item_cmp(const void *a, const void *b) {
    uint64_t x = ((const struct scan_item *)a)->token, y = ((const struct scan_item *)b)->token;
    return x < y ? -1 : x > y;
}

static void scan_push(size_t *n, uint64_t token, struct kv_entry *e) {
    if (*n == scan_cap) {
        scan_cap = scan_cap ? scan_cap * 2 : 64;
        scan_buf = kv_realloc(scan_buf, scan_cap * sizeof(*scan_buf));
    }
    scan_buf[*n].token = token;
    scan_buf[*n].e = e;
    (*n)++;
}

uint64_t kv_dict_scan(struct kv_dict *d, uint64_t cursor, long count,
                      void (*fn)(struct kv_entry *e, void *arg), void *arg) {
    if (d->count == 0) {
        return 0;
    }
    if (count < 1) {
        count = 1;
    }
    int rehashing = d->rehashidx != -1;
    unsigned sb = d->bits[0];
    if (rehashing && d->bits[1] < sb) {
        sb = d->bits[1];
    }
    uint64_t nb = (uint64_t)1 << sb;
    uint64_t b = cursor >> (64 - sb);
    long emitted = 0, visits = 0, max_visits = count * 10;

    while (b < nb) {
        size_t n = 0;
        for (int t = 0; t <= rehashing; t++) {
            unsigned shift = d->bits[t] - sb;
            uint64_t lo = b << shift, hi = (b + 1) << shift;
            for (uint64_t i = lo; i < hi; i++) {
                for (struct kv_entry *e = link_entry(d->tab[t][i]); e;
                     e = link_entry(e->next)) {
                    uint64_t token = ks_entry_token(e);
                    if (token >= cursor) {
                        scan_push(&n, token, e);
                    }
                }
            }
        }
        if (n > 1) {
            qsort(scan_buf, n, sizeof(*scan_buf), scan_item_cmp);
        }
        for (size_t k = 0; k < n; k++) {
            /* stop only between two blocks of 2^KS_SCAN_BLOCK_BITS tokens: the next
             * position is the start of the block after the last emitted one, above
             * everything emitted and at most scan_buf[k].token */
            if (emitted >= count && k > 0 &&
                ks_scan_block(scan_buf[k].token) != ks_scan_block(scan_buf[k - 1].token)) {
                return (ks_scan_block(scan_buf[k - 1].token) + 1) << KS_SCAN_BLOCK_BITS;
            }
            fn(scan_buf[k].e, arg);
            emitted++;
        }
        b++;
        visits++;
        if (emitted >= count || visits >= max_visits) {
            /* a bucket's first token: a block start, as buckets span >= 2^11 tokens
             * (a table has far fewer than 2^53 buckets) */
            return b < nb ? b << (64 - sb) : 0;
        }
    }
    return 0;
}
