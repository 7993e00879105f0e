/* engine/crc32c_test.c: CRC-32C against published vectors (RFC 3720 B.4), the
 * hardware and software paths against each other, and masking. */
#include "engine/crc32c.h"

#include "tests/test.h"

static void test_crc32c_known_vectors(void)
{
    char buf[32];
    CHECK_EQ_INT(crc32c_value("123456789", 9), 0xe3069283u);
    memset(buf, 0, sizeof(buf));
    CHECK_EQ_INT(crc32c_value(buf, 32), 0x8a9136aau);
    memset(buf, 0xff, sizeof(buf));
    CHECK_EQ_INT(crc32c_value(buf, 32), 0x62a8ab43u);
    for (int i = 0; i < 32; i++) {
        buf[i] = (char)i;
    }
    CHECK_EQ_INT(crc32c_value(buf, 32), 0x46dd794eu);
    for (int i = 0; i < 32; i++) {
        buf[i] = (char)(31 - i);
    }
    CHECK_EQ_INT(crc32c_value(buf, 32), 0x113fdb5cu);
    CHECK_EQ_INT(crc32c_value("", 0), 0);
}

static void test_crc32c_extend_equals_whole(void)
{
    const char *s = "hello crc32c world, spanning several words of input";
    size_t n = strlen(s);
    uint32_t whole = crc32c_value(s, n);
    for (size_t cut = 0; cut <= n; cut++) {
        CHECK_EQ_INT(crc32c_extend(crc32c_value(s, cut), s + cut, n - cut), whole);
    }
}

static void test_crc32c_hw_matches_sw(void)
{
    unsigned char buf[4099];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    for (size_t off = 0; off < 9; off++) {
        for (size_t n = 0; n + off <= sizeof(buf); n += 37) {
            CHECK_EQ_INT(crc32c_value(buf + off, n), crc32c_extend_sw(0, buf + off, n));
        }
    }
    fprintf(stderr, "crc32c: %s path\n", crc32c_is_hardware() ? "sse4.2" : "table");
}

/* The three-way hardware path (stripes of 256 and 8192 bytes) against the bytewise
 * table path: random lengths up to 64 KiB, random start alignments, random seeds,
 * and every length around the stripe-chunk boundaries. */
static void test_crc32c_striped_matches_table(void)
{
    size_t cap = 65536 + 16;
    unsigned char *buf = malloc(cap);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < cap; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (unsigned char)x;
    }
    for (int round = 0; round < 2000; round++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t off = x % 16, n = (x >> 8) % 65537;
        uint32_t seed = round % 3 == 0 ? 0 : (uint32_t)(x >> 32);
        CHECK_EQ_INT(crc32c_extend(seed, buf + off, n),
                     crc32c_extend_sw(seed, buf + off, n));
    }
    size_t edges[] = {768, 3 * 8192};
    for (size_t e = 0; e < 2; e++) {
        for (size_t n = edges[e] - 24; n <= edges[e] + 24; n++) {
            for (size_t off = 0; off < 8; off++) {
                CHECK_EQ_INT(crc32c_value(buf + off, n),
                             crc32c_extend_sw(0, buf + off, n));
            }
        }
    }
    memset(buf, 0, cap);
    CHECK_EQ_INT(crc32c_value(buf, 65536), crc32c_extend_sw(0, buf, 65536));
    free(buf);
}

static void test_crc32c_mask_roundtrip(void)
{
    uint32_t c = crc32c_value("foo", 3);
    CHECK(crc32c_mask(c) != c);
    CHECK(crc32c_mask(crc32c_mask(c)) != c);
    CHECK_EQ_INT(crc32c_unmask(crc32c_mask(c)), c);
    CHECK_EQ_INT(crc32c_unmask(crc32c_unmask(crc32c_mask(crc32c_mask(c)))), c);
}

int main(void)
{
    TEST_RUN(test_crc32c_known_vectors);
    TEST_RUN(test_crc32c_extend_equals_whole);
    TEST_RUN(test_crc32c_hw_matches_sw);
    TEST_RUN(test_crc32c_striped_matches_table);
    TEST_RUN(test_crc32c_mask_roundtrip);
    TEST_MAIN_END();
}
