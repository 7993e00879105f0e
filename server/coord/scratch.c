/* server/coord/scratch.c: the cluster coordinator's per-command SCRATCH keyspace
 * (DESIGN.md "Cluster", steps 1-3). A command that runs through the cluster sees
 * the records its keys' replicas answered, loaded into a set of databases of its
 * own, never into the node's store; its unchanged handler runs there; what it
 * changed is read back as records to ship. The steps themselves (reads, writes,
 * holding the reply) are server/cmd/coordinate.c's; cluster/ does the network.
 *
 * HOW IT WORKS
 *   coord_scratch_enter swaps, for the duration of one call():
 *     - server.db (the array every coord_* call and SELECT resolve a database
 *       through) for an array of scratch databases, and c->db with it;
 *     - store_be (the persistent backend) for none, so a miss in the scratch
 *       keyspace never reads the node's engine;
 *     - the store's event subscribers (WATCH, dirty counters, persistence) for
 *       one recorder, which notes every key written or deleted and holds the
 *       running client's reply (CLIENT_HOLD_CLUSTER) at the first change, so
 *       call() records that reply as depending on the writes (client.c).
 *   coord_scratch_leave turns each noted key (sorted, once each) into a change:
 *   the value's envelope (persist_encode) with its expire-at, or a tombstone when
 *   the key is absent; empties the scratch databases and restores everything.
 *   Nothing of the node's own keyspace, engine, WATCH state or counters is
 *   touched while a scratch run is in force.
 *
 * Threading: loop thread only; one scratch run at a time (not re-entrant).
 */
#include <stdlib.h>
#include <string.h>

#include "server/coord/coord.h"
#include "server/store/store.h"

struct dirty {
    int db;
    char *key;
    size_t klen;
};

static struct kv_db **scratch;             /* server.databases of them, kept */
static int nscratch;
static struct kv_db **saved_db;            /* the node's, while a run is in force */
static struct store_backend saved_be;
static struct client *scratch_client;
static struct dirty *dirty;
static size_t ndirty, capdirty;

int coord_scratch_active(void) {
    return saved_db != NULL;
}

static void record(const struct store_ev *ev, void *arg) {
    (void)arg;
    if (ev->key == NULL || ev->db < 0) {
        return;
    }
    if (ndirty == capdirty) {
        capdirty = capdirty ? capdirty * 2 : 8;
        dirty = kv_realloc(dirty, capdirty * sizeof(*dirty));
    }
    char *k = kv_malloc(ev->klen + 1);
    if (ev->klen) {
        memcpy(k, ev->key, ev->klen);
    }
    k[ev->klen] = '\0';
    dirty[ndirty++] = (struct dirty){ev->db, k, ev->klen};
    struct client *c = ev->c ? ev->c : scratch_client;
    if (c && !(c->hold_now & CLIENT_HOLD_CLUSTER)) {
        /* every command that changes a key: its reply is a span of its own even
         * when an earlier command of the pipeline batch holds c already */
        client_hold(c, CLIENT_HOLD_CLUSTER);
    }
}

void coord_scratch_enter(struct client *c) {
    int n = server.databases > 0 ? server.databases : 16;
    if (scratch == NULL || nscratch != n) {
        /* created once (databases is fixed at start-up) and kept, empty */
        scratch = kv_calloc((size_t)n, sizeof(*scratch));
        for (int i = 0; i < n; i++) {
            scratch[i] = kv_calloc(1, sizeof(**scratch));
            scratch[i]->id = i;
            kv_dict_init(&scratch[i]->keys);
        }
        nscratch = n;
    }
    saved_db = server.db;
    server.db = scratch;
    c->db = scratch[c->db_id];
    saved_be = store_be;
    memset(&store_be, 0, sizeof(store_be));
    store_subs_isolate(STORE_EV_BIT(STORE_EV_WRITTEN) | STORE_EV_BIT(STORE_EV_DELETED), record,
                       NULL);
    scratch_client = c;
    ndirty = 0;
}

int coord_scratch_load(int db_id, const char *key, size_t klen, struct kv_version v,
                       long long expire_at, const char *val, size_t vlen) {
    if (!coord_scratch_active() || db_id < 0 || db_id >= nscratch) {
        return -1;
    }
    if (expire_at > 0 && expire_at <= server.mstime) {
        return 0; /* expired: absent, as the node's own lookup would say */
    }
    struct kv_entry *e = persist_decode(key, klen, val, vlen, expire_at);
    if (e == NULL) {
        return -1;
    }
    ks_entry_set_version(e, v);
    uint64_t token = ks_token(key, klen);
    struct kv_db *db = scratch[db_id];
    struct kv_entry *old = ks_find(db, key, klen, token);
    if (old) {
        ks_replace(db, old, e, token); /* the same key named twice: the last one */
    } else {
        ks_insert(db, e, token);
    }
    return 1;
}

static int dirty_cmp(const void *a, const void *b) {
    const struct dirty *x = a, *y = b;
    if (x->db != y->db) {
        return x->db < y->db ? -1 : 1;
    }
    size_t m = x->klen < y->klen ? x->klen : y->klen;
    int r = m ? memcmp(x->key, y->key, m) : 0;
    if (r != 0) {
        return r;
    }
    return x->klen < y->klen ? -1 : x->klen > y->klen;
}

size_t coord_scratch_leave(struct client *c, struct coord_change **out) {
    *out = NULL;
    size_t n = 0;
    if (!coord_scratch_active()) {
        return 0;
    }
    if (ndirty > 0) {
        qsort(dirty, ndirty, sizeof(*dirty), dirty_cmp);
        struct coord_change *ch = kv_calloc(ndirty, sizeof(*ch));
        for (size_t i = 0; i < ndirty; i++) {
            /* compared with the last one kept: the duplicates before it are freed */
            struct dirty kept = n ? (struct dirty){ch[n - 1].db, ch[n - 1].key, ch[n - 1].klen}
                                  : (struct dirty){0, NULL, 0};
            if (n > 0 && dirty_cmp(&kept, &dirty[i]) == 0) {
                kv_free(dirty[i].key);
                continue;
            }
            struct coord_change *x = &ch[n++];
            x->db = dirty[i].db;
            x->key = dirty[i].key;
            x->klen = dirty[i].klen;
            struct kv_entry *e = NULL;
            if (x->db >= 0 && x->db < nscratch) {
                e = ks_find(scratch[x->db], x->key, x->klen, ks_token(x->key, x->klen));
            }
            if (e && !ks_entry_expired(e)) {
                persist_encode(e, &x->val, &x->vlen);
                x->expire_at = ks_entry_expire(e);
            } else {
                x->deleted = 1;
            }
        }
        *out = ch;
    }
    ndirty = 0;
    for (int i = 0; i < nscratch; i++) {
        if (ks_db_size(scratch[i]) > 0 || scratch[i]->vol_len > 0) {
            ks_flush_db(scratch[i], 0);
        }
    }
    server.db = saved_db;
    saved_db = NULL;
    c->db = server.db[c->db_id];
    store_be = saved_be;
    store_subs_restore();
    scratch_client = NULL;
    return n;
}

void coord_changes_free(struct coord_change *ch, size_t n) {
    for (size_t i = 0; i < n; i++) {
        kv_free(ch[i].key);
        kv_free(ch[i].val);
    }
    kv_free(ch);
}
