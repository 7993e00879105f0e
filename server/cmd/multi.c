/* server/cmd/multi.c: MULTI/EXEC/DISCARD and optimistic locking with WATCH, Redis
 * semantics on one node. Commands after MULTI are checked (unknown, arity, auth,
 * OOM: process_command) and queued as copies; EXEC runs them back to back through
 * call(), so nothing else runs in between. A write to a WATCHed key (announced
 * by the store's events, events.h, to which multi_subscribe subscribes at start-up)
 * makes EXEC fail with a null array.
 *
 * HOW WATCH STAYS CHEAP
 *   Watched keys live in one hash table of (db, key) -> watchers; each client
 *   keeps its own list of what it watches. WATCH subscribes to the store's events
 *   with an empty mask while nobody watches (nwatched == 0), so a write then costs
 *   it nothing (not even a call); the first watched key sets the mask, the last
 *   one unwatched clears it (watch_events_follow).
 *
 * EXPIRY, as Redis 7.0
 *   A key that is already logically expired when WATCHed ("stale") is absent for
 *   the client: its deletion by expiry or by a flush is no change and does not
 *   fail EXEC; a write that makes it exist again does. A key that was live at
 *   WATCH time and has expired by EXEC fails EXEC even if nothing touched it.
 */
#include <string.h>
#include <xxhash.h>

#include "server/cmd/cmd.h"
#include "server/store/store.h"

struct multi_cmd {
    const struct kv_command *cmd;
    int argc;
    struct kv_slice *argv;  /* argv and the bytes, one allocation */
    size_t mem;
};

struct wkey {
    struct wkey *next;        /* bucket chain */
    int db;
    size_t len;
    struct watched_key **watchers;
    int nwatchers, cap;
    char key[];
};

struct watched_key {
    struct watched_key *next; /* the client's list */
    struct wkey *wk;
    struct client *c;
    int stale;                /* logically expired when WATCHed */
    /* cluster mode: the record WATCH read at R (multi_watch_note) */
    int noted, found, deleted;
    struct kv_version v;
};

enum { KEY_ABSENT, KEY_LIVE, KEY_EXPIRED };

/* What the keyspace holds for a key right now (no lazy expiry, no stats). */
static int key_state(int db_id, const char *key, size_t len) {
    if (server.db == NULL || db_id < 0 || db_id >= server.databases) {
        return KEY_ABSENT;
    }
    struct kv_entry *e = store_peek(server.db[db_id], key, len, ks_token(key, len));
    if (e == NULL) {
        return KEY_ABSENT;
    }
    return ks_entry_expired(e) ? KEY_EXPIRED : KEY_LIVE;
}

static struct wkey **wtab;
static size_t wtab_size;     /* buckets, a power of two */
static size_t nwatched;      /* entries in wtab */

/* ------------------------------------------------------------------------------
 * Queueing
 * ------------------------------------------------------------------------------ */
void multi_queue(struct client *c) {
    if (c->mcount == c->mcap) {
        c->mcap = c->mcap ? c->mcap * 2 : 8;
        c->mstate = kv_realloc(c->mstate, sizeof(*c->mstate) * (size_t)c->mcap);
    }
    size_t bytes = 0;
    for (int i = 0; i < c->argc; i++) {
        bytes += c->argv[i].len + 1;
    }
    size_t mem = sizeof(struct kv_slice) * (size_t)c->argc + bytes;
    struct kv_slice *argv = kv_malloc(mem);
    char *p = (char *)(argv + c->argc);
    for (int i = 0; i < c->argc; i++) {
        memcpy(p, c->argv[i].p, c->argv[i].len);
        p[c->argv[i].len] = '\0';
        argv[i].p = p;
        argv[i].len = c->argv[i].len;
        p += c->argv[i].len + 1;
    }
    struct multi_cmd *mc = &c->mstate[c->mcount++];
    mc->cmd = c->cmd;
    mc->argc = c->argc;
    mc->argv = argv;
    mc->mem = mem;
    c->multi_flags |= c->cmd->flags;
    c->multi_mem += (long long)mem;
    reply_simple(c, "QUEUED");
}

void multi_discard_state(struct client *c) {
    for (int i = 0; i < c->mcount; i++) {
        kv_free(c->mstate[i].argv);
    }
    kv_free(c->mstate);
    c->mstate = NULL;
    c->mcount = c->mcap = 0;
    c->multi_flags = 0;
    c->multi_mem = 0;
    c->flags &= ~(CLIENT_MULTI | CLIENT_DIRTY_CAS | CLIENT_DIRTY_EXEC);
}

static void discard_transaction(struct client *c) {
    multi_discard_state(c);
    unwatch_all(c);
}

void cmd_multi(struct client *c) {
    if (c->flags & CLIENT_MULTI) {
        reply_error(c, "ERR MULTI calls can not be nested");
        return;
    }
    c->flags |= CLIENT_MULTI;
    reply_ok(c);
}

void cmd_discard(struct client *c) {
    if (!(c->flags & CLIENT_MULTI)) {
        reply_error(c, "ERR DISCARD without MULTI");
        return;
    }
    discard_transaction(c);
    reply_ok(c);
}

void cmd_exec(struct client *c) {
    if (!(c->flags & CLIENT_MULTI)) {
        reply_error(c, "ERR EXEC without MULTI");
        return;
    }
    if (c->flags & CLIENT_DIRTY_EXEC) {
        reply_error(c, "EXECABORT Transaction discarded because of previous errors.");
        discard_transaction(c);
        return;
    }
    if (!(c->flags & CLIENT_DIRTY_CAS)) {
        for (struct watched_key *k = c->watched; k; k = k->next) {
            if (!k->stale && key_state(k->wk->db, k->wk->key, k->wk->len) == KEY_EXPIRED) {
                c->flags |= CLIENT_DIRTY_CAS; /* expired since WATCH */
                break;
            }
        }
    }
    if (c->flags & CLIENT_DIRTY_CAS) {
        reply_null_array(c);
        discard_transaction(c);
        return;
    }
    /* our own writes must not abort us: stop watching before running */
    unwatch_all(c);
    int orig_argc = c->argc;
    struct kv_slice *orig_argv = c->argv;
    const struct kv_command *orig_cmd = c->cmd;
    struct multi_cmd *queued = c->mstate;
    int n = c->mcount;
    c->mstate = NULL;
    c->mcount = c->mcap = 0;
    c->flags &= ~CLIENT_MULTI;  /* queued commands run, not queue again */
    reply_array(c, n);
    for (int i = 0; i < n; i++) {
        c->argc = queued[i].argc;
        c->argv = queued[i].argv;
        call(c, queued[i].cmd);
    }
    c->argc = orig_argc;
    c->argv = orig_argv;
    c->cmd = orig_cmd;
    for (int i = 0; i < n; i++) {
        kv_free(queued[i].argv);
    }
    kv_free(queued);
    multi_discard_state(c);
}

/* ------------------------------------------------------------------------------
 * WATCH
 * ------------------------------------------------------------------------------ */
static uint64_t wkey_hash(int db, const char *key, size_t len) {
    return XXH3_64bits_withSeed(key, len, (uint64_t)db);
}

static struct wkey *wkey_find(int db, const char *key, size_t len, size_t *bucket) {
    if (wtab_size == 0) {
        return NULL;
    }
    size_t b = wkey_hash(db, key, len) & (wtab_size - 1);
    if (bucket) {
        *bucket = b;
    }
    for (struct wkey *w = wtab[b]; w; w = w->next) {
        if (w->db == db && w->len == len && memcmp(w->key, key, len) == 0) {
            return w;
        }
    }
    return NULL;
}

static void wtab_grow(void) {
    size_t nsize = wtab_size ? wtab_size * 2 : 16;
    struct wkey **ntab = kv_calloc(nsize, sizeof(*ntab));
    for (size_t i = 0; i < wtab_size; i++) {
        struct wkey *w = wtab[i];
        while (w) {
            struct wkey *next = w->next;
            size_t b = wkey_hash(w->db, w->key, w->len) & (nsize - 1);
            w->next = ntab[b];
            ntab[b] = w;
            w = next;
        }
    }
    kv_free(wtab);
    wtab = ntab;
    wtab_size = nsize;
}

#define WATCH_EVENTS                                                                  \
    (STORE_EV_BIT(STORE_EV_WRITTEN) | STORE_EV_BIT(STORE_EV_DELETED) |                \
     STORE_EV_BIT(STORE_EV_EXPIRED) | STORE_EV_BIT(STORE_EV_EVICTED) |                \
     STORE_EV_BIT(STORE_EV_FLUSH_BEFORE))
static int watch_subscribed; /* multi_subscribe ran */
static void watch_on_event(const struct store_ev *ev, void *arg);

/* Wants the store's events exactly while some key is watched (nwatched changed
 * between 0 and 1). Subscribing again only updates the mask: the order of the
 * subscribers stays. */
static void watch_events_follow(void) {
    if (watch_subscribed) {
        store_subscribe(STORE_SUB_OBSERVER, nwatched ? WATCH_EVENTS : 0u, watch_on_event,
                        NULL);
    }
}

static void watch_key(struct client *c, const struct kv_slice *key) {
    for (struct watched_key *k = c->watched; k; k = k->next) {
        if (k->wk->db == c->db_id && k->wk->len == key->len &&
            memcmp(k->wk->key, key->p, key->len) == 0) {
            return;
        }
    }
    struct wkey *w = wkey_find(c->db_id, key->p, key->len, NULL);
    if (w == NULL) {
        if (nwatched >= wtab_size) {
            wtab_grow();
        }
        w = kv_calloc(1, sizeof(*w) + key->len);
        w->db = c->db_id;
        w->len = key->len;
        memcpy(w->key, key->p, key->len);
        size_t b = wkey_hash(w->db, w->key, w->len) & (wtab_size - 1);
        w->next = wtab[b];
        wtab[b] = w;
        nwatched++;
        if (nwatched == 1) {
            watch_events_follow();
        }
    }
    struct watched_key *k = kv_calloc(1, sizeof(*k));
    k->wk = w;
    k->c = c;
    k->stale = key_state(c->db_id, key->p, key->len) == KEY_EXPIRED;
    k->next = c->watched;
    c->watched = k;
    if (w->nwatchers == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 2;
        w->watchers = kv_realloc(w->watchers, sizeof(*w->watchers) * (size_t)w->cap);
    }
    w->watchers[w->nwatchers++] = k;
}

static void wkey_remove(struct wkey *w) {
    size_t b = wkey_hash(w->db, w->key, w->len) & (wtab_size - 1);
    struct wkey **link = &wtab[b];
    while (*link != w) {
        link = &(*link)->next;
    }
    *link = w->next;
    kv_free(w->watchers);
    kv_free(w);
    nwatched--;
    if (nwatched == 0) {
        kv_free(wtab);
        wtab = NULL;
        wtab_size = 0;
        watch_events_follow();
    }
}

void unwatch_all(struct client *c) {
    struct watched_key *k = c->watched;
    while (k) {
        struct watched_key *next = k->next;
        struct wkey *w = k->wk;
        for (int i = 0; i < w->nwatchers; i++) {
            if (w->watchers[i] == k) {
                w->watchers[i] = w->watchers[--w->nwatchers];
                break;
            }
        }
        if (w->nwatchers == 0) {
            wkey_remove(w);
        }
        kv_free(k);
        k = next;
    }
    c->watched = NULL;
}

int watch_any(void) {
    return nwatched != 0;
}

static void watch_touch_key(int db_id, const struct kv_slice *key) {
    if (nwatched == 0) {
        return;
    }
    struct wkey *w = wkey_find(db_id, key->p, key->len, NULL);
    if (w == NULL) {
        return;
    }
    int state = -1;
    for (int i = 0; i < w->nwatchers; i++) {
        struct watched_key *k = w->watchers[i];
        if (k->stale) {
            /* absent for this client: its expiry deletion (the keyspace tells us
             * just before unlinking) or a touch after it is no change */
            if (state < 0) {
                state = key_state(db_id, key->p, key->len);
            }
            if (state != KEY_LIVE) {
                k->stale = 0;
                continue;
            }
        }
        k->c->flags |= CLIENT_DIRTY_CAS;
    }
}

/* As Redis's touchAllWatchedKeysInDb: called BEFORE emptying database db_id (-1:
 * all); only watchers of keys that exist there are marked, so FLUSHALL leaves a
 * WATCH on an absent key intact. */
static void watch_before_flush(int db_id) {
    if (nwatched == 0) {
        return;
    }
    for (size_t b = 0; b < wtab_size; b++) {
        for (struct wkey *w = wtab[b]; w; w = w->next) {
            if (db_id != -1 && w->db != db_id) {
                continue;
            }
            int state = key_state(w->db, w->key, w->len);
            for (int i = 0; i < w->nwatchers; i++) {
                struct watched_key *k = w->watchers[i];
                if (state == KEY_ABSENT) {
                    continue;
                }
                if (k->stale) {
                    k->stale = 0;  /* a stale key flushed away: no change */
                    continue;
                }
                k->c->flags |= CLIENT_DIRTY_CAS;
            }
        }
    }
}

/* The store's events as WATCH sees them: a key written, deleted, expired or
 * evicted is touched; a flush marks the watched keys that exist before it. */
static void watch_on_event(const struct store_ev *ev, void *arg) {
    (void)arg;
    if (nwatched == 0) {
        return;
    }
    if (ev->type == STORE_EV_FLUSH_BEFORE) {
        watch_before_flush(ev->db);
        return;
    }
    struct kv_slice key = {ev->key, ev->klen};
    watch_touch_key(ev->db, &key);
}

void multi_subscribe(void) {
    watch_subscribed = 1;
    store_subscribe(STORE_SUB_OBSERVER, nwatched ? WATCH_EVENTS : 0u, watch_on_event, NULL);
}

void cmd_watch(struct client *c) {
    if (c->flags & CLIENT_MULTI) {
        reply_error(c, "ERR WATCH inside MULTI is not allowed");
        return;
    }
    for (int i = 1; i < c->argc; i++) {
        watch_key(c, &c->argv[i]);
    }
    reply_ok(c);
}

void cmd_unwatch(struct client *c) {
    unwatch_all(c);
    c->flags &= ~CLIENT_DIRTY_CAS;
    reply_ok(c);
}

/* ---- cluster mode: WATCH by versions (coordinate.c) ---- */

static struct watched_key *watched_of(struct client *c, int db, const char *key, size_t klen) {
    for (struct watched_key *k = c->watched; k; k = k->next) {
        if (k->wk->db == db && k->wk->len == klen && memcmp(k->wk->key, key, klen) == 0) {
            return k;
        }
    }
    return NULL;
}

void multi_watch_note(struct client *c, int db, const char *key, size_t klen, int found,
                      struct kv_version v, int deleted) {
    struct watched_key *k = watched_of(c, db, key, klen);
    if (k && !k->noted) { /* the first WATCH of a key stands, as in Redis */
        k->noted = 1;
        k->found = found;
        k->deleted = found && deleted;
        k->v = found ? v : (struct kv_version){0, 0};
    }
}

void multi_watched_foreach(struct client *c,
                           void (*fn)(void *arg, int db, const char *key, size_t klen),
                           void *arg) {
    for (struct watched_key *k = c->watched; k; k = k->next) {
        if (k->noted) {
            fn(arg, k->wk->db, k->wk->key, k->wk->len);
        }
    }
}

int multi_watch_differs(struct client *c, multi_watch_get_fn *get, void *arg) {
    for (struct watched_key *k = c->watched; k; k = k->next) {
        if (!k->noted) {
            continue;
        }
        int found = 0, deleted = 0;
        struct kv_version v = {0, 0};
        if (get(arg, k->wk->db, k->wk->key, k->wk->len, &found, &v, &deleted) != 0) {
            return 1; /* not read again: cannot tell, abort as a change */
        }
        deleted = found && deleted;
        if (found != k->found || deleted != k->deleted ||
            (found && kv_version_cmp(v, k->v) != 0)) {
            return 1;
        }
    }
    return 0;
}

const struct kv_command *multi_queued(const struct client *c, int i, int *argc,
                                      const struct kv_slice **argv) {
    if (i < 0 || i >= c->mcount) {
        return NULL;
    }
    *argc = c->mstate[i].argc;
    *argv = c->mstate[i].argv;
    return c->mstate[i].cmd;
}
