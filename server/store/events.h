/* server/store/events.h: the store's change events. Every change to a key, whoever makes
 * it (a command through the coordinator and the store, the keyspace's expiry and
 * eviction, a replica's store_apply), is announced here once; WATCH (multi.c),
 * statistics (server.c) and, in persistent mode, the write-through to the engine
 * (persist.c) subscribe at start-up. The keyspace and the store call none of them by
 * name. Keyspace notifications will subscribe to the same events.
 *
 * WHEN EACH EVENT FIRES (what a subscriber may rely on)
 *   STORE_EV_WRITTEN      after a key got a new value, or its value or TTL changed
 *                         in place: e is the stored entry (linked, version stamped);
 *                         existed/old_expire say what was there before; fields/
 *                         nfields/stride name the fields a hash write changed
 *                         (NULL: the whole value).
 *   STORE_EV_REPLACING    before entry e is replaced by another under the same key
 *                         (e still linked; the WRITTEN of the new one follows).
 *   STORE_EV_DELETED      before a command's delete (DEL, RENAME's source, an
 *                         expire-at in the past) or a replica's tombstone unlinks
 *                         the key: e is the entry, NULL when nothing is in memory
 *                         (a tombstone applied over an absent key); version is the
 *                         delete's; old_expire the entry's. applied: store_apply's
 *                         tombstone (expire_at is the record's).
 *   STORE_EV_EXPIRED      before an expired key is unlinked (lazy or active expiry):
 *                         e is the entry, or NULL when persistent mode expires a key
 *                         that is only on disk; version and old_expire are the
 *                         value's.
 *   STORE_EV_EVICTED      before maxmemory evicts a key (cache mode; persistent mode
 *                         only drops clean cached copies, which is no change).
 *   STORE_EV_FLUSH_BEFORE db (-1: all) is about to be emptied; its keys are still
 *                         there (WATCH's "before" semantics: Redis 7.0 touches only
 *                         watched keys that exist).
 *   STORE_EV_FLUSHED      db (-1: all) was emptied; count = the keys it held.
 *   c is the client that made the change, NULL for the server's own (expiry,
 *   eviction, a replica's apply).
 *
 * ORDER AND COST: subscribers of rank STORE_SUB_OBSERVER run before those of rank
 * STORE_SUB_BACKEND (persistence: WATCH must see the flushed keys before the engine
 * forgets them), each rank in registration order. Dispatch walks, per event type,
 * a fixed array of the subscribers that want it (rebuilt on (un)subscribe): no
 * allocation, no lookup, no call to a subscriber that does not want the event. An
 * emitter tests store_wanted(type) (one bit of the union of the masks) before it
 * builds the event, so an event no function wants costs one branch; a subscriber
 * that is idle (WATCH with no watched key) sets its mask to 0 by subscribing again.
 * A subscriber that only counts (the statistics: server.dirty, expired_keys,
 * evicted_keys) subscribes a counter (store_subscribe_count): counters are
 * incremented for every event of their types, built or not, before any call, and
 * need no event built. A subscriber must not make changes to keys (no event is
 * emitted while another is being dispatched).
 *
 * Threading: loop thread only.
 */
#ifndef KVD_EVENTS_H
#define KVD_EVENTS_H

#include <stddef.h>

#include "proto/version.h"

struct kv_entry;
struct kv_slice;
struct client;

enum store_event {
    STORE_EV_WRITTEN,
    STORE_EV_REPLACING,
    STORE_EV_DELETED,
    STORE_EV_EXPIRED,
    STORE_EV_EVICTED,
    STORE_EV_FLUSH_BEFORE,
    STORE_EV_FLUSHED,
    STORE_EV_COUNT
};

#define STORE_EV_BIT(t) (1u << (t))
#define STORE_EV_ALL ((1u << STORE_EV_COUNT) - 1)

struct store_ev {
    enum store_event type;
    int db;                    /* -1 for a flush of every database */
    const char *key;           /* NULL for flushes */
    size_t klen;
    struct kv_entry *e;
    struct client *c;
    struct kv_version version;
    long long old_expire;
    long long expire_at;       /* DELETED with applied: the tombstone's */
    int existed;
    int applied;               /* DELETED: a replica's tombstone (store_apply) */
    const struct kv_slice *fields;
    size_t nfields, stride;
    size_t count;              /* FLUSHED */
};

/* Every field of ev set: type and db as given, the rest empty. Emitters on the
 * write path start from this rather than from an initializer, which compilers
 * turn into a block clear (rep stos) before the fields are set again. */
static inline void store_ev_init(struct store_ev *ev, enum store_event type, int db) {
    ev->type = type;
    ev->db = db;
    ev->key = NULL;
    ev->klen = 0;
    ev->e = NULL;
    ev->c = NULL;
    ev->version.hlc = 0;
    ev->version.node = 0;
    ev->old_expire = 0;
    ev->expire_at = 0;
    ev->existed = 0;
    ev->applied = 0;
    ev->fields = NULL;
    ev->nfields = 0;
    ev->stride = 0;
    ev->count = 0;
}

typedef void (*store_sub_fn)(const struct store_ev *ev, void *arg);

enum store_sub_rank { STORE_SUB_OBSERVER = 0, STORE_SUB_BACKEND = 1 };

#define STORE_MAX_SUBS 8

struct store_sub {
    store_sub_fn fn;
    void *arg;
    unsigned mask;             /* STORE_EV_BIT()s wanted */
    int rank;
};

/* Adds fn for the events in mask (STORE_EV_BIT()s). Registering the same fn and arg
 * again only updates its mask. 0, or -1 when STORE_MAX_SUBS are taken. */
int store_subscribe(int rank, unsigned mask, store_sub_fn fn, void *arg);
/* Removes fn/arg (no-op when absent). */
void store_unsubscribe(store_sub_fn fn, void *arg);

extern struct store_sub store_subs[STORE_MAX_SUBS];
extern int store_nsubs;

/* Until store_subs_restore, only fn hears events, those in mask, and no counter
 * counts: the coordinator's scratch run (server/coord/scratch.c) records what a
 * handler changed without WATCH, statistics or persistence hearing of it.
 * Subscriptions made meanwhile change the set that store_subs_restore brings
 * back. Not nestable. */
void store_subs_isolate(unsigned mask, store_sub_fn fn, void *arg);
void store_subs_restore(void);

/* Adds a counter incremented by one for every event of the types in mask, with no
 * call. Subscribing the same counter again only updates its mask; mask 0 removes
 * it. 0, or -1 when STORE_MAX_SUBS counters are taken. */
int store_subscribe_count(unsigned mask, long long *counter);

/* Derived from store_subs by store_subscribe/store_unsubscribe: the union of the
 * function subscribers' masks, and per event type the subscribers that want it, in
 * dispatch order; per event type the counters (store_subscribe_count). */
struct store_sub_call {
    store_sub_fn fn;
    void *arg;
};
extern unsigned store_ev_mask;
/* each list ends with a NULL fn / NULL counter */
extern struct store_sub_call store_by_type[STORE_EV_COUNT][STORE_MAX_SUBS + 1];
extern long long *store_count_by_type[STORE_EV_COUNT][STORE_MAX_SUBS + 1];

/* Does any function subscriber want events of type t? (Test it before building an
 * event; when it says no, store_count(t) is all the event owes.) */
static inline int store_wanted(enum store_event t) {
    return (store_ev_mask & STORE_EV_BIT(t)) != 0;
}

/* Counts an event of type t on its counters (store_emit does it too). */
static inline void store_count(enum store_event t) {
    for (long long *const *p = store_count_by_type[t]; *p; p++) {
        (**p)++;
    }
}

/* Counts ev on the counters of its type, then calls every subscriber of it,
 * observers first. */
static inline void store_emit(const struct store_ev *ev) {
    store_count(ev->type);
    for (const struct store_sub_call *s = store_by_type[ev->type]; s->fn; s++) {
        s->fn(ev, s->arg);
    }
}

#endif
