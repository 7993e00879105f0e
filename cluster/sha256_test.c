/* cluster/sha256_test.c: SHA-256 against the FIPS 180-2 vectors, HMAC-SHA256 against
 * RFC 4231 test cases 1-7, and incremental hashing split at every offset against the
 * one-shot form. */
#include "cluster/sha256.h"

#include "tests/test.h"

static void to_hex(const uint8_t *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static void test_sha256_fips_180_2_vectors(void)
{
    uint8_t md[32];
    char hex[65];
    sha256("abc", 3, md);
    to_hex(md, 32, hex);
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256(two, strlen(two), md);
    to_hex(md, 32, hex);
    CHECK_EQ_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    sha256("", 0, md);
    to_hex(md, 32, hex);
    CHECK_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_sha256_million_a_in_odd_chunks(void)
{
    char chunk[997];
    memset(chunk, 'a', sizeof(chunk));
    struct sha256_ctx c;
    sha256_init(&c);
    size_t left = 1000000;
    while (left > 0) {
        size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
        sha256_update(&c, chunk, n);
        left -= n;
    }
    uint8_t md[32];
    char hex[65];
    sha256_final(&c, md);
    to_hex(md, 32, hex);
    CHECK_EQ_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Every message length around the padding boundaries (55, 56, 63, 64, 119, 120),
 * hashed whole and split at every offset, gives the same digest. */
static void test_sha256_split_at_every_offset_matches_one_shot(void)
{
    uint8_t msg[200];
    for (size_t i = 0; i < sizeof(msg); i++) {
        msg[i] = (uint8_t)(i * 7 + 3);
    }
    for (size_t n = 0; n <= sizeof(msg); n++) {
        uint8_t whole[32];
        sha256(msg, n, whole);
        for (size_t cut = 0; cut <= n; cut += (n > 130 ? 13 : 1)) {
            struct sha256_ctx c;
            uint8_t md[32];
            sha256_init(&c);
            sha256_update(&c, msg, cut);
            sha256_update(&c, msg + cut, n - cut);
            sha256_final(&c, md);
            CHECK_EQ_MEM(md, 32, whole, 32);
        }
    }
}

struct hmac_case {
    uint8_t key[131];
    size_t keylen;
    const char *data;
    size_t datalen;
    const char *mac_hex; /* may be a truncated prefix (case 5) */
};

static void test_hmac_sha256_rfc4231_cases(void)
{
    static struct hmac_case cases[7];
    uint8_t dd[50], cd[50];
    memset(dd, 0xdd, sizeof(dd));
    memset(cd, 0xcd, sizeof(cd));
    memset(cases, 0, sizeof(cases));
    memset(cases[0].key, 0x0b, 20);
    cases[0].keylen = 20;
    cases[0].data = "Hi There";
    cases[0].mac_hex = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";
    memcpy(cases[1].key, "Jefe", 4);
    cases[1].keylen = 4;
    cases[1].data = "what do ya want for nothing?";
    cases[1].mac_hex = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    memset(cases[2].key, 0xaa, 20);
    cases[2].keylen = 20;
    cases[2].data = (const char *)dd;
    cases[2].datalen = 50;
    cases[2].mac_hex = "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe";
    for (int i = 0; i < 25; i++) {
        cases[3].key[i] = (uint8_t)(i + 1);
    }
    cases[3].keylen = 25;
    cases[3].data = (const char *)cd;
    cases[3].datalen = 50;
    cases[3].mac_hex = "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b";
    memset(cases[4].key, 0x0c, 20);
    cases[4].keylen = 20;
    cases[4].data = "Test With Truncation";
    cases[4].mac_hex = "a3b6167473100ee06e0c796c2955552b";
    memset(cases[5].key, 0xaa, 131);
    cases[5].keylen = 131;
    cases[5].data = "Test Using Larger Than Block-Size Key - Hash Key First";
    cases[5].mac_hex = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";
    memset(cases[6].key, 0xaa, 131);
    cases[6].keylen = 131;
    cases[6].data = "This is a test using a larger than block-size key and a larger than "
                    "block-size data. The key needs to be hashed before being used by "
                    "the HMAC algorithm.";
    cases[6].mac_hex = "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2";
    for (int i = 0; i < 7; i++) {
        struct hmac_case *t = &cases[i];
        size_t dlen = t->datalen ? t->datalen : strlen(t->data);
        uint8_t mac[32];
        char hex[65];
        hmac_sha256(t->key, t->keylen, t->data, dlen, mac);
        to_hex(mac, 32, hex);
        hex[strlen(t->mac_hex)] = '\0';
        if (strcmp(hex, t->mac_hex) != 0) {
            fprintf(stderr, "  rfc4231 case %d\n", i + 1);
        }
        CHECK_EQ_STR(hex, t->mac_hex);
        /* the stepwise form, fed one byte at a time, agrees */
        struct hmac_sha256_ctx c;
        uint8_t mac2[32];
        hmac_sha256_init(&c, t->key, t->keylen);
        for (size_t j = 0; j < dlen; j++) {
            hmac_sha256_update(&c, t->data + j, 1);
        }
        hmac_sha256_final(&c, mac2);
        CHECK_EQ_MEM(mac2, 32, mac, 32);
    }
}

static void test_hmac_sha256_key_changes_mac(void)
{
    uint8_t a[32], b[32];
    hmac_sha256("secret", 6, "msg", 3, a);
    hmac_sha256("secreT", 6, "msg", 3, b);
    CHECK(memcmp(a, b, 32) != 0);
    hmac_sha256("", 0, "msg", 3, b);
    CHECK(memcmp(a, b, 32) != 0);
}

int main(void)
{
    TEST_RUN(test_sha256_fips_180_2_vectors);
    TEST_RUN(test_sha256_million_a_in_odd_chunks);
    TEST_RUN(test_sha256_split_at_every_offset_matches_one_shot);
    TEST_RUN(test_hmac_sha256_rfc4231_cases);
    TEST_RUN(test_hmac_sha256_key_changes_mac);
    TEST_MAIN_END();
}
