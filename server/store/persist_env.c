/* server/store/persist_env.c: persistent mode, the value envelope: encoding an entry
 * (persist_encode) and decoding one (persist_decode). Shared state and helpers:
 * persist_int.h; the design: PERSIST.md.
 */
#include "server/store/persist_int.h"

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

void encode_into(const struct kv_entry *e, struct pbuf *b) {
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
