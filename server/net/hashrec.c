/* server/net/hashrec.c: big hashes between the store and the cluster's
 * field records (cluster/fields.h): the replica side of struct cluster_store reads
 * a big hash as one FIELDS record and applies FIELDS records field by field
 * (server/store/hashver.c). server.c's callbacks call these first.
 *
 * Threading: loop thread only.
 */
#include <stdlib.h>

#include "cluster/cluster.h"
#include "server/net/net.h"
#include "server/store/store.h"

static struct msg_buf rd;           /* the last record read: valid until the next */

struct collect {
    struct fields_entry *v;
    size_t n, cap;
};

static void collect(void *arg, const struct store_field *f) {
    struct collect *c = arg;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->v = kv_realloc(c->v, c->cap * sizeof(*c->v));
    }
    c->v[c->n++] = (struct fields_entry){f->v, f->deleted, f->f, f->flen, f->val, f->vlen};
}

static int entry_cmp(const void *a, const void *b) {
    return fields_entry_cmp(a, b);
}

int hashrec_read(unsigned db, const char *key, size_t klen, struct msg_record *out) {
    struct store_fields head;
    struct collect c = {NULL, 0, 0};
    int rc = store_read_fields((int)db, key, klen, &head, collect, &c);
    if (rc != 1) {
        kv_free(c.v);
        return rc;
    }
    qsort(c.v, c.n, sizeof(*c.v), entry_cmp);
    rd.len = 0;
    fields_put_head(&rd, head.floor, (uint32_t)c.n);
    for (size_t i = 0; i < c.n; i++) {
        fields_put(&rd, &c.v[i]);
    }
    kv_free(c.v);
    *out = (struct msg_record){.v = head.version, .deleted = 0,
                               .expire_at = head.expire_at > 0 ? (uint64_t)head.expire_at : 0,
                               .val = rd.p, .vlen = rd.len, .fields = 1};
    return 1;
}

static void digest_one(void *arg, const struct store_field *f) {
    *(uint64_t *)arg += fields_digest_entry(f->f, f->flen, f->v, f->deleted);
}

int hashrec_digest(unsigned db, const char *key, size_t klen, uint64_t *out) {
    struct store_fields head;
    uint64_t sum = 0;
    int rc = store_read_fields((int)db, key, klen, &head, digest_one, &sum);
    if (rc == 1) {
        /* the terms of exactly what hashrec_read sends: fields_digest of that
         * record is this */
        *out = fields_digest_final(sum + fields_digest_floor(head.floor));
    }
    return rc;
}

int hashrec_apply(unsigned db, const char *key, size_t klen,
                         const struct msg_record *rec) {
    struct kv_version floor;
    uint32_t n;
    if (fields_check(rec->val, rec->vlen, rec->v, &floor, &n, NULL, 0) != MSG_OK) {
        return STORE_ERROR;
    }
    /* n is bounded by the record's bytes (each entry takes FIELDS_ENTRY_MIN) */
    struct store_field *f = kv_malloc((n ? n : 1) * sizeof(*f));
    struct fields_iter it;
    fields_iter_init(&it, rec->val, rec->vlen);
    struct fields_entry e;
    size_t i = 0;
    while (i < n && fields_next(&it, &e)) {
        f[i++] = (struct store_field){e.v, e.deleted, e.f, e.flen, e.val, e.vlen};
    }
    struct store_fields r = {rec->v, (long long)rec->expire_at, floor, f, i};
    int rc = store_apply_fields((int)db, key, klen, &r);
    kv_free(f);
    return rc;
}
