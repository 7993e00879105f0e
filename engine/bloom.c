/* engine/bloom.c: the cache-line blocked bloom filter (see engine/bloom.h and
 * engine/FORMAT.md "Filter block").
 *
 * How it works: h = XXH3_64bits(key). The low 32 bits pick one of num_lines 64-byte
 * lines (multiply-shift, no division); the high 32 bits a and a rotated, odd b give
 * probe i = (a + i*b) >> 23, a bit number in 0..511 within that line. A query thus
 * touches one cache line. Example: 1000 keys at 10 bits/key -> 20 lines, 6 probes.
 */
#include "engine/bloom.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define BLOOM_KIND_BLOCKED_XXH3 1 /* on disk: never renumber */
#define BLOOM_LINE_BYTES 64
#define BLOOM_TRAILER 6 /* num_probes:u8 kind:u8 num_lines:u32le */

uint64_t bloom_hash(const char *user_key, size_t len)
{
    return XXH3_64bits(user_key, len);
}

void bloom_builder_init(struct bloom_builder *b, int bits_per_key)
{
    b->bits_per_key = bits_per_key > 0 ? bits_per_key : 1;
    b->hashes = NULL;
    b->count = 0;
    b->cap = 0;
}

void bloom_builder_add_hash(struct bloom_builder *b, uint64_t h)
{
    if (b->count == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 1024;
        b->hashes = lsm_realloc(b->hashes, b->cap * sizeof(*b->hashes));
    }
    b->hashes[b->count++] = h;
}

static inline uint32_t line_of(uint64_t h, uint32_t num_lines)
{
    return (uint32_t)(((h & 0xffffffffu) * (uint64_t)num_lines) >> 32);
}

static inline uint32_t rotr32(uint32_t x, int r)
{
    return (x >> r) | (x << (32 - r));
}

void bloom_builder_finish(struct bloom_builder *b, struct lsm_buf *out)
{
    uint64_t bits = (uint64_t)b->count * (uint64_t)b->bits_per_key;
    uint64_t lines64 = (bits + 511) / 512;
    uint32_t num_lines = lines64 == 0                ? 1
                         : lines64 > UINT32_MAX / 64 ? UINT32_MAX / 64
                                                     : (uint32_t)lines64;
    int probes = (int)(b->bits_per_key * 0.6 + 0.5);
    probes = probes < 1 ? 1 : probes > 30 ? 30 : probes;

    size_t nbytes = (size_t)num_lines * BLOOM_LINE_BYTES;
    lsm_buf_reserve(out, nbytes + BLOOM_TRAILER);
    uint8_t *bitmap = (uint8_t *)out->p + out->len;
    memset(bitmap, 0, nbytes);
    for (size_t k = 0; k < b->count; k++) {
        uint64_t h = b->hashes[k];
        uint8_t *line = bitmap + (size_t)line_of(h, num_lines) * BLOOM_LINE_BYTES;
        uint32_t a = (uint32_t)(h >> 32), d = rotr32(a, 17) | 1;
        for (int i = 0; i < probes; i++) {
            uint32_t bit = a >> 23;
            line[bit >> 3] |= (uint8_t)(1u << (bit & 7));
            a += d;
        }
    }
    out->len += nbytes;
    char trailer[BLOOM_TRAILER];
    trailer[0] = (char)probes;
    trailer[1] = BLOOM_KIND_BLOCKED_XXH3;
    enc_fixed32(trailer + 2, num_lines);
    lsm_buf_append(out, trailer, sizeof(trailer));
    b->count = 0;
}

void bloom_builder_free(struct bloom_builder *b)
{
    lsm_free(b->hashes);
    b->hashes = NULL;
    b->count = b->cap = 0;
}

bool bloom_filter_parse(const char *data, size_t len, struct bloom_filter *f)
{
    f->bits = NULL;
    f->num_lines = 0;
    f->num_probes = 0;
    if (len < BLOOM_TRAILER) {
        return false;
    }
    const char *t = data + len - BLOOM_TRAILER;
    uint32_t probes = (unsigned char)t[0];
    uint32_t lines = dec_fixed32(t + 2);
    if (t[1] != BLOOM_KIND_BLOCKED_XXH3 || probes < 1 || probes > 30 || lines == 0 ||
        (uint64_t)lines * BLOOM_LINE_BYTES != len - BLOOM_TRAILER) {
        return false;
    }
    f->bits = (const uint8_t *)data;
    f->num_lines = lines;
    f->num_probes = probes;
    return true;
}

bool bloom_may_contain(const struct bloom_filter *f, uint64_t h)
{
    if (f->num_lines == 0) {
        return true;
    }
    const uint8_t *line = f->bits + (size_t)line_of(h, f->num_lines) * BLOOM_LINE_BYTES;
    uint32_t a = (uint32_t)(h >> 32), d = rotr32(a, 17) | 1;
    for (uint32_t i = 0; i < f->num_probes; i++) {
        uint32_t bit = a >> 23;
        if ((line[bit >> 3] & (1u << (bit & 7))) == 0) {
            return false;
        }
        a += d;
    }
    return true;
}
