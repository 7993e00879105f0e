/* engine/crc32c.h: CRC-32C (Castagnoli), the checksum of every record and block the
 * engine writes. Uses the SSE4.2 crc32 instruction when the CPU has it (checked once
 * at run time), a slicing-by-8 table otherwise; both give identical results.
 *
 * Stored checksums are masked (crc32c_mask) as LevelDB does, because a CRC computed
 * over bytes that themselves contain CRCs is weak. Thread-safe, no state.
 */
#ifndef KVD_ENGINE_CRC32C_H
#define KVD_ENGINE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (the CRC of some earlier bytes; 0 for none) with n bytes at p. */
uint32_t crc32c_extend(uint32_t crc, const void *p, size_t n);

/* CRC-32C of n bytes at p. crc32c_value("123456789", 9) == 0xe3069283. */
static inline uint32_t crc32c_value(const void *p, size_t n)
{
    return crc32c_extend(0, p, n);
}

#define CRC32C_MASK_DELTA 0xa282ead8u

/* The form in which a CRC is stored on disk: rotated right by 15 bits plus a
 * constant. On disk: never change. */
static inline uint32_t crc32c_mask(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + CRC32C_MASK_DELTA;
}
static inline uint32_t crc32c_unmask(uint32_t masked)
{
    uint32_t rot = masked - CRC32C_MASK_DELTA;
    return (rot >> 17) | (rot << 15);
}

/* True when the hardware path is in use (for tests and benchmarks). */
int crc32c_is_hardware(void);

/* The portable table-driven implementation, exposed so tests can compare. */
uint32_t crc32c_extend_sw(uint32_t crc, const void *p, size_t n);

#endif
