/* engine/block.c: block builder and in-place block iterator (see engine/block.h and
 * engine/FORMAT.md "Block").
 *
 * How seeking works: restart points store whole keys, so a binary search over the
 * restart array finds the last restart whose key is < target without decoding any
 * other entry; a linear scan of at most restart_interval entries then finds the
 * first key >= target. Example, interval 2, keys a ab b bc: restarts at "a" and "b";
 * seek("bb") searches to restart 1 ("b" < "bb"), scans "b", "bc" and stops at "bc".
 */
#include "engine/block.h"

#include <string.h>

void block_builder_init(struct block_builder *b, int restart_interval)
{
    memset(b, 0, sizeof(*b));
    b->restart_interval = restart_interval > 0 ? restart_interval : 1;
    block_builder_reset(b);
}

void block_builder_reset(struct block_builder *b)
{
    lsm_buf_clear(&b->buf);
    lsm_buf_clear(&b->restarts);
    lsm_buf_clear(&b->last_key);
    uint32_t zero = 0;
    lsm_buf_append(&b->restarts, &zero, 4);
    b->counter = 0;
    b->num_entries = 0;
}

void block_builder_free(struct block_builder *b)
{
    lsm_buf_free(&b->buf);
    lsm_buf_free(&b->restarts);
    lsm_buf_free(&b->last_key);
}

void block_builder_add(struct block_builder *b, const char *key, size_t klen,
                       const char *value, size_t vlen)
{
    size_t shared = 0;
    if (b->counter < b->restart_interval) {
        size_t n = klen < b->last_key.len ? klen : b->last_key.len;
        while (shared < n && key[shared] == b->last_key.p[shared]) {
            shared++;
        }
    } else {
        uint32_t off = (uint32_t)b->buf.len;
        lsm_buf_append(&b->restarts, &off, 4);
        b->counter = 0;
    }
    size_t unshared = klen - shared;
    lsm_buf_reserve(&b->buf, 3 * VARINT32_MAX_LEN + unshared + vlen);
    char *p = b->buf.p + b->buf.len;
    p = enc_varint32(p, (uint32_t)shared);
    p = enc_varint32(p, (uint32_t)unshared);
    p = enc_varint32(p, (uint32_t)vlen);
    b->buf.len = (size_t)(p - b->buf.p);
    lsm_buf_append(&b->buf, key + shared, unshared);
    lsm_buf_append(&b->buf, value, vlen);
    b->last_key.len = shared;
    lsm_buf_append(&b->last_key, key + shared, unshared);
    b->counter++;
    b->num_entries++;
}

size_t block_builder_estimate(const struct block_builder *b)
{
    return b->buf.len + b->restarts.len + 4;
}

const char *block_builder_finish(struct block_builder *b, size_t *len)
{
    size_t n = b->restarts.len / 4;
    for (size_t i = 0; i < n; i++) {
        uint32_t off;
        memcpy(&off, b->restarts.p + 4 * i, 4);
        lsm_buf_append_fixed32(&b->buf, off);
    }
    lsm_buf_append_fixed32(&b->buf, (uint32_t)n);
    *len = b->buf.len;
    return b->buf.p;
}

int block_parse(const char *data, size_t size, struct block *blk)
{
    if (size < 4 || size > UINT32_MAX) {
        return LSM_CORRUPT;
    }
    uint32_t n = dec_fixed32(data + size - 4);
    if (n == 0 || n > (size - 4) / 4) {
        return LSM_CORRUPT;
    }
    blk->data = data;
    blk->size = size;
    blk->num_restarts = n;
    blk->restarts_off = (uint32_t)(size - 4 - 4 * (size_t)n);
    return LSM_OK;
}

void block_iter_init(struct block_iter *it, const struct block *blk, block_cmp_fn cmp)
{
    it->blk = blk;
    it->cmp = cmp;
    it->cur = it->next = blk->restarts_off;
    it->restart_idx = 0;
    it->value = NULL;
    it->value_len = 0;
    it->key = it->key_inline;
    it->key_len = 0;
    it->key_cap = sizeof(it->key_inline);
    it->status = LSM_OK;
}

void block_iter_free(struct block_iter *it)
{
    if (it->key != it->key_inline) {
        lsm_free(it->key);
    }
    it->key = it->key_inline;
    it->key_cap = sizeof(it->key_inline);
}

static void mark_corrupt(struct block_iter *it)
{
    it->status = LSM_CORRUPT;
    it->cur = it->next = it->blk->restarts_off;
    it->key_len = 0;
}

/* Decodes the three varints of the entry at off; NULL when malformed. */
static inline const char *decode_header(const char *p, const char *limit,
                                        uint32_t *shared, uint32_t *unshared,
                                        uint32_t *vlen)
{
    if (limit - p >= 3 && ((p[0] | p[1] | p[2]) & 0x80) == 0) { /* one byte each */
        *shared = (unsigned char)p[0];
        *unshared = (unsigned char)p[1];
        *vlen = (unsigned char)p[2];
        p += 3;
    } else {
        if ((p = dec_varint32(p, limit, shared)) == NULL ||
            (p = dec_varint32(p, limit, unshared)) == NULL ||
            (p = dec_varint32(p, limit, vlen)) == NULL) {
            return NULL;
        }
    }
    if ((uint64_t)*unshared + *vlen > (uint64_t)(limit - p)) {
        return NULL;
    }
    return p;
}

/* Decodes the entry at it->next into key/value; false at end or on damage. */
static bool parse_next(struct block_iter *it)
{
    const struct block *blk = it->blk;
    it->cur = it->next;
    if (it->cur >= blk->restarts_off) {
        it->cur = it->next = blk->restarts_off;
        return false;
    }
    const char *limit = blk->data + blk->restarts_off;
    uint32_t shared, unshared, vlen;
    const char *p = decode_header(blk->data + it->cur, limit, &shared, &unshared, &vlen);
    if (p == NULL || shared > it->key_len) {
        mark_corrupt(it);
        return false;
    }
    size_t klen = (size_t)shared + unshared;
    if (klen > it->key_cap) {
        size_t cap = it->key_cap * 2 > klen ? it->key_cap * 2 : klen;
        if (it->key == it->key_inline) {
            char *k = lsm_malloc(cap);
            memcpy(k, it->key, it->key_len);
            it->key = k;
        } else {
            it->key = lsm_realloc(it->key, cap);
        }
        it->key_cap = cap;
    }
    memcpy(it->key + shared, p, unshared);
    it->key_len = klen;
    it->value = p + unshared;
    it->value_len = vlen;
    it->next = (uint32_t)(it->value + vlen - blk->data);
    return true;
}

static uint32_t restart_point(const struct block *blk, uint32_t i)
{
    return dec_fixed32(blk->data + blk->restarts_off + 4 * i);
}

/* Positions before the entry at restart i (the next parse_next decodes it). */
static bool seek_to_restart(struct block_iter *it, uint32_t i)
{
    uint32_t off = restart_point(it->blk, i);
    if (off >= it->blk->restarts_off) {
        mark_corrupt(it);
        return false;
    }
    it->key_len = 0;
    it->restart_idx = i;
    it->next = off;
    return true;
}

void block_iter_seek_to_first(struct block_iter *it)
{
    if (it->status != LSM_OK) {
        return;
    }
    if (it->blk->restarts_off == 0) { /* empty block */
        it->cur = it->next = 0;
        return;
    }
    if (seek_to_restart(it, 0)) {
        parse_next(it);
    }
}

void block_iter_seek_to_last(struct block_iter *it)
{
    if (it->status != LSM_OK || it->blk->restarts_off == 0) {
        return;
    }
    if (!seek_to_restart(it, it->blk->num_restarts - 1)) {
        return;
    }
    while (parse_next(it) && it->next < it->blk->restarts_off) {
    }
}

void block_iter_next(struct block_iter *it)
{
    if (block_iter_valid(it)) {
        parse_next(it);
    }
}

void block_iter_seek(struct block_iter *it, const char *target, size_t tlen)
{
    const struct block *blk = it->blk;
    if (it->status != LSM_OK) {
        return;
    }
    if (blk->restarts_off == 0) {
        it->cur = it->next = 0;
        return;
    }
    const char *limit = blk->data + blk->restarts_off;
    uint32_t left = 0, right = blk->num_restarts - 1;
    while (left < right) {
        uint32_t mid = left + (right - left + 1) / 2;
        uint32_t off = restart_point(blk, mid);
        uint32_t shared, unshared, vlen;
        const char *p = off < blk->restarts_off ? decode_header(blk->data + off, limit,
                                                                &shared, &unshared, &vlen)
                                                : NULL;
        if (p == NULL || shared != 0) {
            mark_corrupt(it);
            return;
        }
        if (it->cmp(p, unshared, target, tlen) < 0) {
            left = mid;
        } else {
            right = mid - 1;
        }
    }
    if (!seek_to_restart(it, left)) {
        return;
    }
    while (parse_next(it)) {
        if (it->cmp(it->key, it->key_len, target, tlen) >= 0) {
            return;
        }
    }
}
