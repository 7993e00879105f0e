/* engine/dbformat.c: varint coding, the byte buffer, internal keys, lookup keys and
 * entry values (engine/FORMAT.md "Internal key", "Entry value"). */
#include "engine/dbformat.h"

char *enc_varint32(char *p, uint32_t v)
{
    return enc_varint64(p, v);
}

char *enc_varint64(char *p, uint64_t v)
{
    unsigned char *u = (unsigned char *)p;
    while (v >= 0x80) {
        *u++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *u++ = (unsigned char)v;
    return (char *)u;
}

int varint_length(uint64_t v)
{
    int n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

const char *dec_varint64(const char *p, const char *limit, uint64_t *v)
{
    uint64_t result = 0;
    for (unsigned shift = 0; shift <= 63 && p < limit; shift += 7) {
        uint64_t byte = *(const unsigned char *)p++;
        if (shift == 63 && byte > 1) {
            return NULL; /* more than 64 bits */
        }
        result |= (byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) {
            *v = result;
            return p;
        }
    }
    return NULL;
}

const char *dec_varint32(const char *p, const char *limit, uint32_t *v)
{
    if (p < limit && (*(const unsigned char *)p & 0x80) == 0) { /* fast path */
        *v = *(const unsigned char *)p;
        return p + 1;
    }
    uint32_t result = 0;
    for (unsigned shift = 0; shift <= 28 && p < limit; shift += 7) {
        uint32_t byte = *(const unsigned char *)p++;
        if (shift == 28 && byte > 0x0f) {
            return NULL; /* more than 32 bits */
        }
        result |= (byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) {
            *v = result;
            return p;
        }
    }
    return NULL;
}

void lsm_buf_reserve(struct lsm_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) {
        return;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < extra) {
        cap *= 2;
    }
    b->p = lsm_realloc(b->p, cap);
    b->cap = cap;
}

void lsm_buf_append(struct lsm_buf *b, const void *p, size_t n)
{
    lsm_buf_reserve(b, n);
    if (n) {
        memcpy(b->p + b->len, p, n);
    }
    b->len += n;
}

void lsm_buf_append_fixed32(struct lsm_buf *b, uint32_t v)
{
    lsm_buf_reserve(b, 4);
    enc_fixed32(b->p + b->len, v);
    b->len += 4;
}

void lsm_buf_append_varint32(struct lsm_buf *b, uint32_t v)
{
    lsm_buf_reserve(b, VARINT32_MAX_LEN);
    b->len = (size_t)(enc_varint32(b->p + b->len, v) - b->p);
}

void lsm_buf_append_varint64(struct lsm_buf *b, uint64_t v)
{
    lsm_buf_reserve(b, VARINT64_MAX_LEN);
    b->len = (size_t)(enc_varint64(b->p + b->len, v) - b->p);
}

void lsm_buf_free(struct lsm_buf *b)
{
    lsm_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void ikey_append(struct lsm_buf *b, const char *user_key, size_t user_key_len,
                 uint64_t seqno, unsigned kind)
{
    lsm_buf_reserve(b, user_key_len + IKEY_TRAILER_LEN);
    b->len += ikey_encode(b->p + b->len, user_key, user_key_len, seqno, kind);
}

size_t ikey_encode(char *dst, const char *user_key, size_t user_key_len, uint64_t seqno,
                   unsigned kind)
{
    if (user_key_len) {
        memcpy(dst, user_key, user_key_len);
    }
    enc_fixed64(dst + user_key_len, ikey_trailer(seqno, kind));
    return user_key_len + IKEY_TRAILER_LEN;
}

bool ikey_decode(const char *ikey, size_t len, struct ikey *out)
{
    if (len < IKEY_TRAILER_LEN) {
        return false;
    }
    uint64_t t = ikey_trailer_of(ikey, len);
    unsigned kind = (unsigned)(t & 0xff);
    if (kind != LSM_KIND_DELETE && kind != LSM_KIND_VALUE) {
        return false;
    }
    out->user_key = ikey;
    out->user_key_len = len - IKEY_TRAILER_LEN;
    out->seqno = t >> 8;
    out->kind = kind;
    return true;
}

void lookup_key_init(struct lookup_key *lk, const char *user_key, size_t user_key_len,
                     uint64_t snapshot)
{
    size_t need = user_key_len + IKEY_TRAILER_LEN;
    lk->p = need <= sizeof(lk->inline_buf) ? lk->inline_buf : lsm_malloc(need);
    lk->len = ikey_encode(lk->p, user_key, user_key_len, snapshot, LSM_KIND_SEEK);
}

void lookup_key_free(struct lookup_key *lk)
{
    if (lk->p != lk->inline_buf) {
        lsm_free(lk->p);
    }
    lk->p = lk->inline_buf;
    lk->len = 0;
}

size_t entry_encode_header(char *dst, uint64_t expire_at, uint64_t write_ts,
                           uint32_t node)
{
    size_t n = 1;
    dst[0] = (char)((expire_at ? ENTRY_F_EXPIRE : 0) | (write_ts ? ENTRY_F_WRITE_TS : 0) |
                    (node ? ENTRY_F_NODE : 0));
    if (expire_at) {
        enc_fixed64(dst + n, expire_at);
        n += 8;
    }
    if (write_ts) {
        enc_fixed64(dst + n, write_ts);
        n += 8;
    }
    if (node) {
        enc_fixed32(dst + n, node);
        n += 4;
    }
    return n;
}

void entry_append(struct lsm_buf *b, uint64_t expire_at, uint64_t write_ts, uint32_t node,
                  const char *value, size_t value_len)
{
    lsm_buf_reserve(b, ENTRY_HEADER_MAX + value_len);
    b->len += entry_encode_header(b->p + b->len, expire_at, write_ts, node);
    lsm_buf_append(b, value, value_len);
}

int entry_decode(const char *p, size_t len, struct entry_value *out)
{
    if (len < 1) {
        return LSM_CORRUPT;
    }
    unsigned flags = (unsigned char)p[0];
    if (flags & ~(unsigned)ENTRY_F_KNOWN) {
        return LSM_CORRUPT;
    }
    size_t n = 1;
    out->expire_at = 0;
    out->write_ts = 0;
    out->node = 0;
    if (flags & ENTRY_F_EXPIRE) {
        if (len < n + 8) {
            return LSM_CORRUPT;
        }
        out->expire_at = dec_fixed64(p + n);
        n += 8;
    }
    if (flags & ENTRY_F_WRITE_TS) {
        if (len < n + 8) {
            return LSM_CORRUPT;
        }
        out->write_ts = dec_fixed64(p + n);
        n += 8;
    }
    if (flags & ENTRY_F_NODE) {
        if (len < n + 4) {
            return LSM_CORRUPT;
        }
        out->node = dec_fixed32(p + n);
        n += 4;
    }
    out->value = p + n;
    out->value_len = len - n;
    return LSM_OK;
}
