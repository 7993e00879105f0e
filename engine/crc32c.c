/* engine/crc32c.c: CRC-32C with the SSE4.2 crc32 instruction when the CPU has it and
 * a slicing-by-8 table otherwise (see engine/crc32c.h). The choice is made once, at
 * load time, by a constructor that also builds the tables. */
#include "engine/crc32c.h"

#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82f63b78u /* 0x1EDC6F41 reflected */

static uint32_t table[8][256];
static int use_hw;

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
        l = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^
            table[5][(w >> 16) & 0xff] ^ table[4][(w >> 24) & 0xff] ^
            table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
            table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
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
__attribute__((target("sse4.2"))) static uint32_t crc32c_extend_hw(uint32_t crc,
                                                                   const void *data,
                                                                   size_t n)
{
    const unsigned char *p = data;
    uint64_t l = crc ^ 0xffffffffu;
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        l = _mm_crc32_u8((uint32_t)l, *p++);
        n--;
    }
    while (n >= 32) {
        uint64_t w[4];
        memcpy(w, p, 32);
        l = _mm_crc32_u64(l, w[0]);
        l = _mm_crc32_u64(l, w[1]);
        l = _mm_crc32_u64(l, w[2]);
        l = _mm_crc32_u64(l, w[3]);
        p += 32;
        n -= 32;
    }
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
