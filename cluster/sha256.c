/* cluster/sha256.c: SHA-256 and HMAC-SHA256 (see sha256.h). A plain, portable
 * implementation: one 64-round compression per block, big-endian message words; the
 * peer handshake hashes a few hundred bytes per connection, so speed is no concern.
 */
#include "cluster/sha256.h"

#include <string.h>

static const uint32_t k_round[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

static inline uint32_t ror32(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha256_compress(uint32_t h[8], const uint8_t *block)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
               (uint32_t)block[4 * i + 2] << 8 | (uint32_t)block[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    uint32_t e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t s1 = ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = hh + s1 + ch + k_round[i] + w[i];
        uint32_t s0 = ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = s0 + maj;
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

void sha256_init(struct sha256_ctx *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof(iv));
    c->total = 0;
    c->fill = 0;
}

void sha256_update(struct sha256_ctx *c, const void *p, size_t n)
{
    const uint8_t *in = p;
    c->total += n;
    if (c->fill > 0) {
        size_t take = SHA256_BLOCK_LEN - c->fill;
        if (take > n) {
            take = n;
        }
        memcpy(c->buf + c->fill, in, take);
        c->fill += take;
        in += take;
        n -= take;
        if (c->fill < SHA256_BLOCK_LEN) {
            return;
        }
        sha256_compress(c->h, c->buf);
        c->fill = 0;
    }
    while (n >= SHA256_BLOCK_LEN) {
        sha256_compress(c->h, in);
        in += SHA256_BLOCK_LEN;
        n -= SHA256_BLOCK_LEN;
    }
    if (n > 0) {
        memcpy(c->buf, in, n);
        c->fill = n;
    }
}

void sha256_final(struct sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN])
{
    uint64_t bits = c->total * 8;
    uint8_t pad[SHA256_BLOCK_LEN + 8];
    /* 0x80, zeros up to 56 mod 64, then the bit length big-endian */
    size_t padlen = (c->fill < 56) ? 56 - c->fill : 120 - c->fill;
    memset(pad, 0, sizeof(pad));
    pad[0] = 0x80;
    for (int i = 0; i < 8; i++) {
        pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
    }
    sha256_update(c, pad, padlen + 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
    /* volatile pointer so the wipe of a context that held key material stays */
    volatile uint8_t *v = (volatile uint8_t *)c;
    for (size_t i = 0; i < sizeof(*c); i++) {
        v[i] = 0;
    }
}

void sha256(const void *p, size_t n, uint8_t out[SHA256_DIGEST_LEN])
{
    struct sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, p, n);
    sha256_final(&c, out);
}

void hmac_sha256_init(struct hmac_sha256_ctx *c, const void *key, size_t keylen)
{
    uint8_t k[SHA256_BLOCK_LEN];
    uint8_t ikey[SHA256_BLOCK_LEN];
    memset(k, 0, sizeof(k));
    if (keylen > SHA256_BLOCK_LEN) {
        sha256(key, keylen, k);
    } else if (keylen > 0) {
        memcpy(k, key, keylen);
    }
    for (int i = 0; i < SHA256_BLOCK_LEN; i++) {
        ikey[i] = k[i] ^ 0x36;
        c->okey[i] = k[i] ^ 0x5c;
    }
    sha256_init(&c->inner);
    sha256_update(&c->inner, ikey, sizeof(ikey));
    volatile uint8_t *v1 = k, *v2 = ikey;
    for (int i = 0; i < SHA256_BLOCK_LEN; i++) {
        v1[i] = 0;
        v2[i] = 0;
    }
}

void hmac_sha256_update(struct hmac_sha256_ctx *c, const void *p, size_t n)
{
    sha256_update(&c->inner, p, n);
}

void hmac_sha256_final(struct hmac_sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN])
{
    uint8_t ih[SHA256_DIGEST_LEN];
    struct sha256_ctx outer;
    sha256_final(&c->inner, ih);
    sha256_init(&outer);
    sha256_update(&outer, c->okey, sizeof(c->okey));
    sha256_update(&outer, ih, sizeof(ih));
    sha256_final(&outer, out);
    volatile uint8_t *v = c->okey;
    for (int i = 0; i < SHA256_BLOCK_LEN; i++) {
        v[i] = 0;
    }
}

void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
                 uint8_t out[SHA256_DIGEST_LEN])
{
    struct hmac_sha256_ctx c;
    hmac_sha256_init(&c, key, keylen);
    hmac_sha256_update(&c, msg, n);
    hmac_sha256_final(&c, out);
}
