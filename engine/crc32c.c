/* engine/crc32c.c: CRC-32C with the SSE4.2 crc32 instruction when the CPU has it
 * (three interleaved chains on long buffers, see "HOW THE THREE-WAY HARDWARE PATH
 * WORKS") and a slicing-by-8 table otherwise (see engine/crc32c.h). The choice is
 * made once, at load time, by a constructor that also builds the tables. */
#include "engine/crc32c.h"

#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82f63b78u /* 0x1EDC6F41 reflected */

static uint32_t table[8][256];
static int use_hw;

#if defined(__x86_64__)
static uint32_t shift_long[4][256];  /* zeros_8192 (STRIPE_LONG), byte by byte */
static uint32_t shift_short[4][256]; /* zeros_256 (STRIPE_SHORT), byte by byte */
static void shift_init(uint32_t t[4][256], int log2n);
#endif

__attribute__((constructor)) static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        }
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++) {
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
        }
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    use_hw = __builtin_cpu_supports("sse4.2");
    if (use_hw) {
        shift_init(shift_long, 13);
        shift_init(shift_short, 8);
    }
#endif
}

uint32_t crc32c_extend_sw(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint32_t l = crc ^ 0xffffffffu;
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        l = table[0][(l ^ *p++) & 0xff] ^ (l >> 8);
        n--;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= l;
        l = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
            table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^
            table[2][(w >> 40) & 0xff] ^ table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        l = table[0][(l ^ *p++) & 0xff] ^ (l >> 8);
        n--;
    }
    return l ^ 0xffffffffu;
}

#if defined(__x86_64__)
/* HOW THE THREE-WAY HARDWARE PATH WORKS
 *
 * crc32q has a latency of 3 cycles but a throughput of one per cycle, so a single
 * dependent chain uses a third of the unit. A long buffer is therefore cut into
 * chunks of three equal stripes A, B, C of n bytes; three independent chains run
 * over them interleaved (A starting from the running crc, B and C from 0), and the
 * results are joined with the linearity of a CRC without its pre/post inversion:
 *
 *     crc(s, A || B) = zeros_n(crc(s, A)) ^ crc(0, B)
 *
 * where zeros_n(x) is the register after feeding x n zero bytes: multiplication by
 * x^(8n) mod P, a linear map of 32 bits. It is applied with four 256-entry tables
 * (one per byte of x), built once from its 32x32 GF(2) matrix (see shift_init).
 * Example: 768 bytes run as three chains of 32 crc32q each, then two shifts of 256
 * bytes join them: ~32 instead of ~96 dependent steps, plus 8 table lookups.
 *
 * Two stripe sizes: 8 KiB per stripe while at least 24 KiB remain, then 256 bytes
 * while at least 768 remain, then the one-chain loop for the rest. */
#define STRIPE_LONG 8192
#define STRIPE_SHORT 256

static uint32_t shift_apply(const uint32_t t[4][256], uint32_t x)
{
    return t[0][x & 0xff] ^ t[1][(x >> 8) & 0xff] ^ t[2][(x >> 16) & 0xff] ^
           t[3][x >> 24];
}

/* A 32x32 GF(2) matrix as 32 columns: m[i] is the image of bit i. */
static uint32_t gf2_times(const uint32_t m[32], uint32_t v)
{
    uint32_t r = 0;
    for (int i = 0; v != 0; i++, v >>= 1) {
        if (v & 1) {
            r ^= m[i];
        }
    }
    return r;
}

/* Fills t with zeros_n for n = 2^log2n bytes. */
static void shift_init(uint32_t t[4][256], int log2n)
{
    uint32_t m[32], sq[32];
    for (int i = 0; i < 32; i++) { /* one zero byte */
        uint32_t c = 1u << i;
        m[i] = table[0][c & 0xff] ^ (c >> 8);
    }
    for (int k = 0; k < log2n; k++) { /* square: 2^k bytes -> 2^(k+1) bytes */
        for (int i = 0; i < 32; i++) {
            sq[i] = gf2_times(m, m[i]);
        }
        memcpy(m, sq, sizeof(m));
    }
    for (int b = 0; b < 4; b++) {
        for (uint32_t v = 0; v < 256; v++) {
            t[b][v] = gf2_times(m, v << (8 * b));
        }
    }
}

/* Runs three chains over the stripes of chunks of 3 * stripe bytes while whole
 * chunks remain; returns the register and advances *pp and *np. */
__attribute__((target("sse4.2"))) static inline uint64_t
crc32c_stripes(uint64_t l, const unsigned char **pp, size_t *np, size_t stripe,
               const uint32_t t[4][256])
{
    const unsigned char *p = *pp;
    size_t n = *np;
    while (n >= 3 * stripe) {
        uint64_t l1 = 0, l2 = 0;
        const unsigned char *end = p + stripe;
        do {
            uint64_t a, b, c;
            memcpy(&a, p, 8);
            memcpy(&b, p + stripe, 8);
            memcpy(&c, p + 2 * stripe, 8);
            l = _mm_crc32_u64(l, a);
            l1 = _mm_crc32_u64(l1, b);
            l2 = _mm_crc32_u64(l2, c);
            p += 8;
        } while (p < end);
        l = shift_apply(t, (uint32_t)l) ^ (uint32_t)l1;
        l = shift_apply(t, (uint32_t)l) ^ (uint32_t)l2;
        p += 2 * stripe;
        n -= 3 * stripe;
    }
    *pp = p;
    *np = n;
    return l;
}

__attribute__((target("sse4.2"))) static uint32_t
crc32c_extend_hw(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t l = crc ^ 0xffffffffu;
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        l = _mm_crc32_u8((uint32_t)l, *p++);
        n--;
    }
    l = crc32c_stripes(l, &p, &n, STRIPE_LONG, shift_long);
    l = crc32c_stripes(l, &p, &n, STRIPE_SHORT, shift_short);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        l = _mm_crc32_u64(l, w);
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        l = _mm_crc32_u8((uint32_t)l, *p++);
        n--;
    }
    return (uint32_t)l ^ 0xffffffffu;
}
#endif

uint32_t crc32c_extend(uint32_t crc, const void *p, size_t n)
{
#if defined(__x86_64__)
    if (use_hw) {
        return crc32c_extend_hw(crc, p, n);
    }
#endif
    return crc32c_extend_sw(crc, p, n);
}

int crc32c_is_hardware(void)
{
    return use_hw;
}
