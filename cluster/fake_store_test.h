/* cluster/fake_store_test.h: a small versioned store behind struct cluster_store
 * for the Merkle and repair tests (cluster/merkle_test.c, cluster/repair_test.c):
 * (db, key) -> record with its value, last-write-wins apply by kv_record_cmp (a
 * big hash's FIELDS records merged per field by fields_merge, with their content
 * digest in the range callback, as the server's), and
 * a range callback in token order (records of one token in insertion order, which
 * the tests vary). Header-only (static functions): include it once, in a test.
 */
#ifndef KVD_CLUSTER_FAKE_STORE_TEST_H
#define KVD_CLUSTER_FAKE_STORE_TEST_H

#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/mem.h"
#include "cluster/ring.h"

struct fs_rec {
    uint64_t token;
    unsigned db;
    char *key;
    size_t klen;
    struct msg_record rec; /* val owned */
};

struct fstore {
    struct fs_rec *r;
    size_t n, cap;
    int fail;        /* 1: every call fails */
    uint64_t applied;
};

static inline struct fs_rec *fs_find(struct fstore *s, unsigned db, const char *key, size_t klen) {
    for (size_t i = 0; i < s->n; i++) {
        if (s->r[i].db == db && s->r[i].klen == klen && memcmp(s->r[i].key, key, klen) == 0) {
            return &s->r[i];
        }
    }
    return NULL;
}

static inline int fs_read(void *ctx, unsigned db, const char *key, size_t klen, struct msg_record *out) {
    struct fstore *s = ctx;
    if (s->fail) {
        return -1;
    }
    struct fs_rec *e = fs_find(s, db, key, klen);
    if (e == NULL) {
        return 0;
    }
    *out = e->rec;
    return 1;
}

static inline int fs_apply(void *ctx, unsigned db, const char *key, size_t klen,
                    const struct msg_record *rec) {
    struct fstore *s = ctx;
    if (s->fail) {
        return -1;
    }
    struct fs_rec *e = fs_find(s, db, key, klen);
    struct msg_buf merged = {0};
    struct msg_record m;
    if (e && (rec->fields || e->rec.fields)) {
        /* a big hash's field records merge per field (fields.h), as the server's */
        if (fields_covers(&e->rec, rec)) {
            return 0;
        }
        fields_merge(&e->rec, rec, &merged, &m);
        rec = &m;
    } else if (e && kv_record_cmp(rec->v, rec->deleted, e->rec.v, e->rec.deleted) <= 0) {
        return 0;
    }
    if (e == NULL) {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 64;
            s->r = cl_realloc(s->r, s->cap * sizeof *s->r);
        }
        e = &s->r[s->n++];
        e->token = ring_key_token(key, klen);
        e->db = db;
        e->key = cl_memdup(key, klen);
        e->klen = klen;
        e->rec.val = NULL;
    }
    free((void *)e->rec.val);
    e->rec = *rec;
    e->rec.val = rec->vlen ? cl_memdup(rec->val, rec->vlen) : NULL;
    msg_buf_free(&merged);
    s->applied++;
    return 1;
}

/* a key's value "<key>@<hlc>" written at version (hlc, node) */
static inline void fs_put(struct fstore *s, unsigned db, const char *key, uint64_t hlc, uint32_t node,
                   int deleted) {
    char val[96];
    int n = deleted ? 0 : snprintf(val, sizeof val, "%s@%llu", key, (unsigned long long)hlc);
    struct msg_record r = {{hlc, node}, deleted, 0, deleted ? NULL : val, (size_t)n};
    fs_apply(s, db, key, strlen(key), &r);
}

static const struct fstore *fs_sorting; /* qsort has no context argument */

static inline int fs_idx_cmp(const void *pa, const void *pb) {
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    uint64_t x = fs_sorting->r[a].token, y = fs_sorting->r[b].token;
    return x < y ? -1 : x > y ? 1 : (a < b ? -1 : a > b);
}

static inline int fs_range(void *ctx, unsigned db, uint64_t from, uint64_t to, cluster_range_fn *fn,
                    void *arg) {
    struct fstore *s = ctx;
    if (s->fail) {
        return -1;
    }
    size_t *idx = cl_malloc((s->n + 1) * sizeof *idx), m = 0;
    for (size_t i = 0; i < s->n; i++) {
        const struct fs_rec *e = &s->r[i];
        if ((db == CLUSTER_DB_ALL || e->db == db) && e->token >= from &&
            (to == 0 || e->token < to)) {
            idx[m++] = i;
        }
    }
    fs_sorting = s; /* by (token, insertion order) */
    qsort(idx, m, sizeof *idx, fs_idx_cmp);
    for (size_t i = 0; i < m; i++) {
        const struct fs_rec *e = &s->r[idx[i]];
        struct cluster_key k = {e->token, e->key, e->klen, e->rec.v, e->rec.deleted,
                                e->rec.expire_at, 0, e->db, fields_digest(&e->rec)};
        if (fn(arg, &k)) {
            break;
        }
    }
    free(idx);
    return 0;
}

static inline void fs_free(struct fstore *s) {
    for (size_t i = 0; i < s->n; i++) {
        free(s->r[i].key);
        free((void *)s->r[i].rec.val);
    }
    free(s->r);
    memset(s, 0, sizeof *s);
}

static inline struct cluster_store fs_store(struct fstore *s) {
    struct cluster_store st = {0};
    st.ctx = s;
    st.read = fs_read;
    st.apply = fs_apply;
    st.range = fs_range;
    return st;
}

/* 1 when a and b hold the same records (versions, flags, values) */
static inline int fs_equal(struct fstore *a, struct fstore *b) {
    if (a->n != b->n) {
        return 0;
    }
    for (size_t i = 0; i < a->n; i++) {
        const struct fs_rec *x = &a->r[i];
        struct fs_rec *y = fs_find(b, x->db, x->key, x->klen);
        if (y == NULL || kv_record_cmp(x->rec.v, x->rec.deleted, y->rec.v, y->rec.deleted) != 0 ||
            x->rec.vlen != y->rec.vlen ||
            (x->rec.vlen && memcmp(x->rec.val, y->rec.val, x->rec.vlen) != 0)) {
            return 0;
        }
    }
    return 1;
}

#endif
