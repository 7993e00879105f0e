/* server/store/hashobj.c: hash values. Two encodings, as Redis:
 *
 *   listpack   the fields and values packed in the entry's own value area:
 *                payload := count:u16  (field value)*
 *                item    := len:u8 bytes           when len < 255
 *                         | 255 len:u32 bytes      otherwise
 *              used while the hash has at most hash-max-listpack-entries (512)
 *              fields and every field and value is at most
 *              hash-max-listpack-value (64) bytes. Lookups are linear: at 128
 *              short fields a scan is as fast as hashing.
 *   hashtable  a struct kv_dict (ks_dict.c) of field entries: each a kv_entry whose
 *              key is the field and whose value is the string (embstr layout); the
 *              entry's value area holds the dict pointer. HSCAN cursors are field
 *              token blocks (token >> 11), with SCAN's guarantees.
 *
 * A listpack that passes a limit is converted once and never back (as Redis).
 */
#include "server/store/obj.h"

static size_t lp_item_size(size_t len) {
    return (len < 255 ? 1 : 5) + len;
}

static const unsigned char *lp_read(const unsigned char *p, const char **s, size_t *len) {
    if (p[0] != 255) {
        *len = p[0];
        *s = (const char *)p + 1;
        return p + 1 + *len;
    }
    uint32_t n;
    memcpy(&n, p + 1, 4);
    *len = n;
    *s = (const char *)p + 5;
    return p + 5 + n;
}

static unsigned char *lp_write(unsigned char *p, const char *s, size_t len) {
    if (len < 255) {
        *p++ = (unsigned char)len;
    } else {
        uint32_t n = (uint32_t)len;
        *p++ = 255;
        memcpy(p, &n, 4);
        p += 4;
    }
    memcpy(p, s, len);
    return p + len;
}

static unsigned lp_count(const unsigned char *blob) {
    uint16_t n;
    memcpy(&n, blob, 2);
    return n;
}

static void lp_set_count(unsigned char *blob, unsigned n) {
    uint16_t v = (uint16_t)n;
    memcpy(blob, &v, 2);
}

/* Finds field f in a listpack payload: the offset of its pair and of its value
 * item, or -1. */
static long lp_find(const unsigned char *blob, const char *f, size_t flen, size_t *voff) {
    unsigned n = lp_count(blob);
    const unsigned char *p = blob + 2;
    for (unsigned i = 0; i < n; i++) {
        const char *s, *v;
        size_t slen, vlen;
        const unsigned char *pv = lp_read(p, &s, &slen);
        const unsigned char *next = lp_read(pv, &v, &vlen);
        if (slen == flen && memcmp(s, f, flen) == 0) {
            *voff = (size_t)(pv - blob);
            return (long)(p - blob);
        }
        p = next;
    }
    return -1;
}

static struct kv_entry *field_new(const char *f, size_t flen, const char *v, size_t vlen) {
    struct kv_entry *nf = ks_field_new(KS_ENC_EMBSTR, f, flen, vlen);
    size_t n;
    memcpy(ks_val_bytes(nf, &n), v, vlen);
    return nf;
}

struct kv_entry *hash_new(const char *key, size_t klen, long long expire_at) {
    struct kv_entry *e = ks_entry_new(KS_TYPE_HASH, KS_ENC_LISTPACK, key, klen, 2, expire_at, 0);
    size_t n;
    lp_set_count(ks_val_bytes(e, &n), 0);
    return e;
}

struct kv_entry *hash_new_table(const char *key, size_t klen, long long expire_at) {
    struct kv_entry *e = ks_entry_new(KS_TYPE_HASH, KS_ENC_HASHTABLE, key, klen, 0, expire_at, 0);
    struct kv_dict *d = kv_malloc(sizeof(*d));
    kv_dict_init(d);
    memcpy(ks_val_area(e), &d, sizeof(d));
    return e;
}

size_t hash_len(const struct kv_entry *e) {
    if (e->enc == KS_ENC_HASHTABLE) {
        return ks_val_dict(e)->count;
    }
    size_t n;
    return lp_count(ks_val_bytes(e, &n));
}

int hash_get(const struct kv_entry *e, const char *f, size_t flen, const char **v,
             size_t *vlen) {
    if (e->enc == KS_ENC_HASHTABLE) {
        struct kv_entry *fe = kv_dict_find(ks_val_dict(e), f, flen, ks_token(f, flen));
        if (fe == NULL) {
            return 0;
        }
        *v = (const char *)ks_val_bytes(fe, vlen);
        return 1;
    }
    size_t n, voff;
    const unsigned char *blob = ks_val_bytes(e, &n);
    if (lp_find(blob, f, flen, &voff) < 0) {
        return 0;
    }
    lp_read(blob + voff, v, vlen);
    return 1;
}

/* Calls fn for each field and value of a listpack blob, in order. */
static void lp_foreach(const unsigned char *blob, hash_fn *fn, void *arg) {
    const unsigned char *p = blob + 2;
    unsigned count = lp_count(blob);
    for (unsigned i = 0; i < count; i++) {
        const char *f, *v;
        size_t flen, vlen;
        p = lp_read(p, &f, &flen);
        p = lp_read(p, &v, &vlen);
        fn(f, flen, v, vlen, arg);
    }
}

static void insert_field(const char *f, size_t flen, const char *v, size_t vlen, void *arg) {
    kv_dict_insert(arg, field_new(f, flen, v, vlen), ks_token(f, flen));
}

static void hash_convert(struct kv_db *db, struct kv_entry **ep) {
    struct kv_entry *e = *ep;
    struct kv_dict *d = kv_malloc(sizeof(*d));
    kv_dict_init(d);
    size_t n;
    lp_foreach(ks_val_bytes(e, &n), insert_field, d);
    e = ks_entry_reshape(db, e, KS_ENC_HASHTABLE, 0, 0);
    memcpy(ks_val_area(e), &d, sizeof(d));
    *ep = e;
}

/* Sets field f of a hashtable-encoded hash in one probe of its dict. A value of
 * the length the field holds is written over the old one in place (a counter, a
 * fixed-size record: no allocation, no relinking); another length gets a new field
 * entry in the old one's link. */
static int ht_set(struct kv_dict *d, const char *f, size_t flen, const char *v, size_t vlen) {
    uint64_t token = ks_token(f, flen);
    struct kv_entry **link;
    struct kv_entry *old = kv_dict_find_link(d, f, flen, token, &link);
    if (old == NULL) {
        kv_dict_insert(d, field_new(f, flen, v, vlen), token);
        return 1;
    }
    size_t olen;
    unsigned char *ov = ks_val_bytes(old, &olen);
    if (olen == vlen) {
        memcpy(ov, v, vlen);
        return 0;
    }
    struct kv_entry *nf = field_new(f, flen, v, vlen);
    nf->next = old->next;
    kv_dict_link_set(link, nf);
    kv_free(old);
    return 0;
}

int hash_set(struct kv_db *db, struct kv_entry **ep, const char *f, size_t flen,
             const char *v, size_t vlen) {
    struct kv_entry *e = *ep;
    if (e->enc == KS_ENC_HASHTABLE) {
        return ht_set(ks_val_dict(e), f, flen, v, vlen);
    }
    size_t blen, voff;
    unsigned char *blob = ks_val_bytes(e, &blen);
    long pos = lp_find(blob, f, flen, &voff);
    unsigned count = lp_count(blob);
    if (flen > ks_hash_max_listpack_value || vlen > ks_hash_max_listpack_value ||
        (pos < 0 && count + 1 > ks_hash_max_listpack_entries) || count >= 65535) {
        hash_convert(db, ep);
        return ht_set(ks_val_dict(*ep), f, flen, v, vlen);
    }
    if (pos < 0) {
        size_t add = lp_item_size(flen) + lp_item_size(vlen);
        e = ks_entry_reshape(db, e, KS_ENC_LISTPACK, blen + add, 0);
        blob = ks_val_bytes(e, &blen);
        unsigned char *p = blob + blen - add;
        p = lp_write(p, f, flen);
        lp_write(p, v, vlen);
        lp_set_count(blob, count + 1);
        *ep = e;
        return 1;
    }
    const char *ov;
    size_t ovlen;
    lp_read(blob + voff, &ov, &ovlen);
    size_t old_sz = lp_item_size(ovlen), new_sz = lp_item_size(vlen);
    size_t tail = blen - voff - old_sz;
    if (new_sz > old_sz) {
        e = ks_entry_reshape(db, e, KS_ENC_LISTPACK, blen + new_sz - old_sz, 0);
        blob = ks_val_bytes(e, &blen);
        memmove(blob + voff + new_sz, blob + voff + old_sz, tail);
        lp_write(blob + voff, v, vlen);
    } else {
        memmove(blob + voff + new_sz, blob + voff + old_sz, tail);
        lp_write(blob + voff, v, vlen);
        if (new_sz < old_sz) {
            e = ks_entry_reshape(db, e, KS_ENC_LISTPACK, blen - (old_sz - new_sz), 0);
        }
    }
    *ep = e;
    return 0;
}

int hash_del(struct kv_db *db, struct kv_entry **ep, const char *f, size_t flen) {
    struct kv_entry *e = *ep;
    if (e->enc == KS_ENC_HASHTABLE) {
        struct kv_dict *d = ks_val_dict(e);
        struct kv_entry *old = kv_dict_unlink(d, f, flen, ks_token(f, flen));
        if (old == NULL) {
            return 0;
        }
        kv_free(old);
        kv_dict_maybe_shrink(d);
        return 1;
    }
    size_t blen, voff;
    unsigned char *blob = ks_val_bytes(e, &blen);
    long pos = lp_find(blob, f, flen, &voff);
    if (pos < 0) {
        return 0;
    }
    const char *v;
    size_t vlen;
    const unsigned char *end = lp_read(blob + voff, &v, &vlen);
    size_t psz = (size_t)(end - (blob + pos));
    memmove(blob + pos, end, blen - (size_t)(end - blob));
    lp_set_count(blob, lp_count(blob) - 1);
    *ep = ks_entry_reshape(db, e, KS_ENC_LISTPACK, blen - psz, 0);
    return 1;
}

struct foreach_ctx {
    hash_fn *fn;
    void *arg;
};

static void foreach_field(struct kv_entry *fe, void *arg) {
    struct foreach_ctx *ctx = arg;
    size_t flen, vlen;
    const char *f = ks_entry_key(fe, &flen);
    const char *v = (const char *)ks_val_bytes(fe, &vlen);
    ctx->fn(f, flen, v, vlen, ctx->arg);
}

void hash_foreach(const struct kv_entry *e, hash_fn *fn, void *arg) {
    if (e->enc == KS_ENC_HASHTABLE) {
        struct foreach_ctx ctx = {fn, arg};
        kv_dict_foreach(ks_val_dict(e), foreach_field, &ctx);
        return;
    }
    size_t blen;
    lp_foreach(ks_val_bytes(e, &blen), fn, arg);
}

uint64_t hash_scan(const struct kv_entry *e, uint64_t cursor, long count, hash_fn *fn,
                   void *arg) {
    if (e->enc != KS_ENC_HASHTABLE) {
        hash_foreach(e, fn, arg);
        return 0;
    }
    struct foreach_ctx ctx = {fn, arg};
    return kv_dict_scan(ks_val_dict(e), cursor, count, foreach_field, &ctx);
}

void hash_random(const struct kv_entry *e, const char **f, size_t *flen, const char **v,
                 size_t *vlen) {
    if (e->enc == KS_ENC_HASHTABLE) {
        struct kv_entry *fe = kv_dict_random(ks_val_dict(e));
        *f = ks_entry_key(fe, flen);
        *v = (const char *)ks_val_bytes(fe, vlen);
        return;
    }
    size_t blen;
    const unsigned char *blob = ks_val_bytes(e, &blen), *p = blob + 2;
    unsigned k = (unsigned)(ks_rand64() % lp_count(blob));
    for (unsigned i = 0;; i++) {
        p = lp_read(p, f, flen);
        p = lp_read(p, v, vlen);
        if (i == k) {
            return;
        }
    }
}
