/* server/store/obj.c: string values (int, embstr, raw encodings) and what every type
 * shares (names, memory usage). Hashes are in hashobj.c. Entries hold values
 * inline (server/store/ks.h), so a change that grows a value may move its entry.
 */
#include "server/store/obj.h"

const char *obj_type_name(const struct kv_entry *e) {
    switch (e->type) {
    case KS_TYPE_STRING: return "string";
    case KS_TYPE_LIST: return "list";
    case KS_TYPE_SET: return "set";
    case KS_TYPE_ZSET: return "zset";
    case KS_TYPE_HASH: return "hash";
    default: return "unknown";
    }
}

const char *obj_encoding_name(const struct kv_entry *e) {
    switch (e->enc) {
    case KS_ENC_INT: return "int";
    case KS_ENC_EMBSTR: return "embstr";
    case KS_ENC_RAW: return "raw";
    case KS_ENC_LISTPACK: return "listpack";
    case KS_ENC_HASHTABLE: return "hashtable";
    default: return "unknown";
    }
}

const char *obj_str(const struct kv_entry *e, char *buf, size_t *len) {
    if (e->enc == KS_ENC_INT) {
        *len = (size_t)resp_ll2str(buf, ks_val_int(e));
        return buf;
    }
    return (const char *)ks_val_bytes(e, len);
}

size_t obj_str_len(const struct kv_entry *e) {
    char buf[OBJ_LL_BUF];
    size_t len;
    obj_str(e, buf, &len);
    return len;
}

int obj_str_ll(const struct kv_entry *e, long long *v) {
    if (e->enc == KS_ENC_INT) {
        *v = ks_val_int(e);
        return 0;
    }
    size_t len;
    const char *p = (const char *)ks_val_bytes(e, &len);
    return resp_str2ll(p, len, v);
}

int obj_str_pick_enc(const char *p, size_t len, long long *iv) {
    if (len <= 20 && len > 0 && resp_str2ll(p, len, iv) == 0) {
        return KS_ENC_INT;
    }
    return len <= KS_EMBSTR_MAX ? KS_ENC_EMBSTR : KS_ENC_RAW;
}

/* Stores the value picked by obj_str_pick_enc (iv, or p[0..len)) in e. */
static void str_fill(struct kv_entry *e, long long iv, const char *p, size_t len) {
    if (e->enc == KS_ENC_INT) {
        ks_val_set_int(e, iv);
    } else {
        size_t n;
        memcpy(ks_val_bytes(e, &n), p, len);
    }
}

struct kv_entry *obj_str_new(const char *key, size_t klen, const char *p, size_t len,
                             long long expire_at) {
    long long iv = 0;
    int enc = obj_str_pick_enc(p, len, &iv);
    struct kv_entry *e = ks_entry_new(KS_TYPE_STRING, enc, key, klen, len, expire_at, 0);
    str_fill(e, iv, p, len);
    return e;
}

/* Makes e a raw string of newlen bytes whose first bytes are the current value,
 * leaving slack for further growth. Returns the payload through *out. */
static struct kv_entry *str_grow(struct kv_db *db, struct kv_entry *e, size_t newlen,
                                 unsigned char **out) {
    char buf[OBJ_LL_BUF];
    size_t oldlen;
    const char *old = obj_str(e, buf, &oldlen);
    size_t extra = newlen > oldlen ? newlen : 0; /* doubling, as sds */
    if (extra > 1024 * 1024) {
        extra = 1024 * 1024;
    }
    if (e->enc == KS_ENC_INT) {
        char tmp[OBJ_LL_BUF];
        memcpy(tmp, old, oldlen);
        e = ks_entry_reshape(db, e, KS_ENC_RAW, newlen, extra);
        size_t n;
        memcpy(ks_val_bytes(e, &n), tmp, oldlen);
    } else {
        e = ks_entry_reshape(db, e, KS_ENC_RAW, newlen, extra); /* keeps the bytes */
    }
    e->flags |= KE_RAW;
    size_t n;
    *out = ks_val_bytes(e, &n);
    return e;
}

struct kv_entry *obj_str_append(struct kv_db *db, struct kv_entry *e, const char *p,
                                size_t len) {
    size_t oldlen = obj_str_len(e);
    unsigned char *v;
    e = str_grow(db, e, oldlen + len, &v);
    memcpy(v + oldlen, p, len);
    return e;
}

struct kv_entry *obj_str_setrange(struct kv_db *db, struct kv_entry *e, size_t off,
                                  const char *p, size_t len) {
    size_t oldlen = obj_str_len(e);
    size_t newlen = off + len > oldlen ? off + len : oldlen;
    unsigned char *v;
    e = str_grow(db, e, newlen, &v);
    if (off > oldlen) {
        memset(v + oldlen, 0, off - oldlen);
    }
    memcpy(v + off, p, len);
    return e;
}

struct kv_entry *obj_dup(const struct kv_entry *e, const char *key, size_t klen) {
    return ks_entry_dup(e, key, klen, ks_entry_expire(e));
}

struct usage_ctx {
    size_t bytes;
    long seen, limit;
};

static void usage_field(struct kv_entry *f, void *arg) {
    struct usage_ctx *u = arg;
    if (u->limit && u->seen >= u->limit) {
        return;
    }
    u->bytes += kv_malloc_size(f);
    u->seen++;
}

size_t obj_memory_usage(const struct kv_entry *e, long samples) {
    size_t bytes = kv_malloc_size(e) + sizeof(struct kv_entry *); /* + its table slot */
    if (e->enc == KS_ENC_HASHTABLE) {
        struct kv_dict *d = ks_val_dict(e);
        struct usage_ctx u = {0, 0, samples};
        bytes += kv_malloc_size(d) + kv_dict_slots(d) * sizeof(struct kv_entry *);
        kv_dict_foreach(d, usage_field, &u);
        if (u.seen && (size_t)u.seen < d->count) {
            u.bytes = u.bytes / (size_t)u.seen * d->count;
        }
        bytes += u.bytes;
    }
    return bytes;
}
