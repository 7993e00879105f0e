/* engine/dbformat_test.c: varints, internal key order, lookup keys, entry values. */
#include "engine/dbformat.h"

#include "tests/test.h"

static void test_varint_roundtrip_and_bounds(void)
{
    uint64_t vals[] = {0,
                       1,
                       127,
                       128,
                       300,
                       16383,
                       16384,
                       UINT32_MAX,
                       (uint64_t)UINT32_MAX + 1,
                       UINT64_MAX >> 1,
                       UINT64_MAX};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        char buf[VARINT64_MAX_LEN];
        char *end = enc_varint64(buf, vals[i]);
        CHECK_EQ_INT(end - buf, varint_length(vals[i]));
        uint64_t v;
        CHECK(dec_varint64(buf, end, &v) == end);
        CHECK(v == vals[i]);
        CHECK(dec_varint64(buf, end - 1, &v) == NULL); /* cut short */
        uint32_t v32;
        const char *p32 = dec_varint32(buf, end, &v32);
        if (vals[i] <= UINT32_MAX) {
            CHECK(p32 == end);
            CHECK_EQ_INT(v32, vals[i]);
        } else {
            CHECK(p32 == NULL);
        }
    }
    char over[11];
    memset(over, 0xff, sizeof(over));
    uint64_t v;
    CHECK(dec_varint64(over, over + sizeof(over), &v) == NULL);
}

static void test_ikey_order_newest_first(void)
{
    struct lsm_buf a = {0}, b = {0}, c = {0}, d = {0};
    ikey_append(&a, "k", 1, 5, LSM_KIND_VALUE);
    ikey_append(&b, "k", 1, 3, LSM_KIND_VALUE);
    ikey_append(&c, "k", 1, 3, LSM_KIND_DELETE);
    ikey_append(&d, "k\0", 2, 9, LSM_KIND_VALUE);
    CHECK(ikey_compare(a.p, a.len, b.p, b.len) < 0); /* seqno 5 before 3 */
    CHECK(ikey_compare(b.p, b.len, c.p, c.len) <
          0); /* value before delete at one seqno */
    CHECK(ikey_compare(c.p, c.len, d.p, d.len) < 0); /* user key decides first */
    CHECK(ikey_compare(d.p, d.len, d.p, d.len) == 0);
    struct ikey ik;
    CHECK(ikey_decode(c.p, c.len, &ik));
    CHECK_EQ_INT(ik.seqno, 3);
    CHECK_EQ_INT(ik.kind, LSM_KIND_DELETE);
    CHECK_EQ_MEM(ik.user_key, ik.user_key_len, "k", 1);
    CHECK(!ikey_decode("short", 5, &ik));
    lsm_buf_free(&a);
    lsm_buf_free(&b);
    lsm_buf_free(&c);
    lsm_buf_free(&d);
}

static void test_lookup_key_sorts_at_snapshot(void)
{
    struct lookup_key lk;
    lookup_key_init(&lk, "k", 1, 4);
    char e5[9], e4[9], e3[9];
    ikey_encode(e5, "k", 1, 5, LSM_KIND_VALUE);
    ikey_encode(e4, "k", 1, 4, LSM_KIND_VALUE);
    ikey_encode(e3, "k", 1, 3, LSM_KIND_DELETE);
    CHECK(ikey_compare(e5, 9, lk.p, lk.len) < 0); /* invisible: newer than snapshot */
    CHECK(ikey_compare(lk.p, lk.len, e4, 9) <
          0); /* the snapshot's own seqno is visible */
    CHECK(ikey_compare(lk.p, lk.len, e3, 9) < 0);
    CHECK_EQ_MEM(lookup_key_user(&lk), lookup_key_user_len(&lk), "k", 1);
    lookup_key_free(&lk);

    char big[1000];
    memset(big, 'x', sizeof(big));
    lookup_key_init(&lk, big, sizeof(big), LSM_MAX_SEQNO);
    CHECK_EQ_INT(lk.len, 1008);
    CHECK(lk.p != lk.inline_buf);
    lookup_key_free(&lk);
}

static void test_entry_value_roundtrip(void)
{
    struct lsm_buf b = {0};
    struct entry_value ev;
    entry_append(&b, 0, 0, 0, "v", 1);
    CHECK_EQ_INT(b.len, 2);
    CHECK_EQ_INT(entry_decode(b.p, b.len, &ev), LSM_OK);
    CHECK_EQ_INT(ev.expire_at, 0);
    CHECK_EQ_INT(ev.write_ts, 0);
    CHECK_EQ_MEM(ev.value, ev.value_len, "v", 1);

    lsm_buf_clear(&b);
    entry_append(&b, 1700000000000ull, 42, 0, "", 0);
    CHECK_EQ_INT(b.len, entry_encoded_len(1700000000000ull, 42, 0, 0));
    CHECK_EQ_INT(entry_decode(b.p, b.len, &ev), LSM_OK);
    CHECK(ev.expire_at == 1700000000000ull);
    CHECK_EQ_INT(ev.write_ts, 42);
    CHECK_EQ_INT(ev.value_len, 0);
    CHECK_EQ_INT(entry_decode(b.p, b.len - 1, &ev), LSM_CORRUPT);

    lsm_buf_clear(&b);
    entry_append(&b, 0, 7, 0, "abc", 3);
    CHECK_EQ_INT(entry_decode(b.p, b.len, &ev), LSM_OK);
    CHECK_EQ_INT(ev.expire_at, 0);
    CHECK_EQ_INT(ev.write_ts, 7);
    CHECK_EQ_MEM(ev.value, ev.value_len, "abc", 3);
    CHECK_EQ_INT(entry_decode("", 0, &ev), LSM_CORRUPT);
    CHECK_EQ_INT(entry_decode("\x08", 1, &ev), LSM_CORRUPT); /* unknown flag */
    lsm_buf_free(&b);
}

/* bit 2: node:u32le after write_ts, written only when non-zero */
static void test_entry_value_node_roundtrip(void)
{
    struct lsm_buf b = {0};
    struct entry_value ev;
    entry_append(&b, 1700000000000ull, 42, 0xA1B2C3D4u, "xy", 2);
    CHECK_EQ_INT(b.len, 1 + 8 + 8 + 4 + 2);
    CHECK_EQ_INT(b.len, entry_encoded_len(1700000000000ull, 42, 0xA1B2C3D4u, 2));
    CHECK_EQ_INT((unsigned char)b.p[0], 0x07);
    CHECK_EQ_MEM(b.p + 17, 4, "\xD4\xC3\xB2\xA1", 4); /* little-endian, after write_ts */
    CHECK_EQ_INT(entry_decode(b.p, b.len, &ev), LSM_OK);
    CHECK(ev.expire_at == 1700000000000ull);
    CHECK_EQ_INT(ev.write_ts, 42);
    CHECK(ev.node == 0xA1B2C3D4u);
    CHECK_EQ_MEM(ev.value, ev.value_len, "xy", 2);

    /* node alone; a value cut inside the node field is corrupt */
    lsm_buf_clear(&b);
    entry_append(&b, 0, 0, 9, "", 0);
    CHECK_EQ_INT(b.len, 5);
    CHECK_EQ_INT((unsigned char)b.p[0], 0x04);
    CHECK_EQ_INT(entry_decode(b.p, b.len, &ev), LSM_OK);
    CHECK_EQ_INT(ev.node, 9);
    CHECK_EQ_INT(ev.write_ts, 0);
    CHECK_EQ_INT(entry_decode(b.p, 4, &ev), LSM_CORRUPT);
    lsm_buf_free(&b);
}

/* bytes as written before bit 2 existed read back with node 0, and node 0 writes them
 * byte for byte as before */
static void test_entry_value_old_format_reads_node_zero(void)
{
    static const char old[] = "\x03"
                              "\x00\x10\x00\x00\x00\x00\x00\x00" /* expire_at 4096 */
                              "\x2A\x00\x00\x00\x00\x00\x00\x00" /* write_ts 42 */
                              "val";
    struct entry_value ev;
    ev.node = 77;
    CHECK_EQ_INT(entry_decode(old, sizeof(old) - 1, &ev), LSM_OK);
    CHECK_EQ_INT(ev.expire_at, 4096);
    CHECK_EQ_INT(ev.write_ts, 42);
    CHECK_EQ_INT(ev.node, 0);
    CHECK_EQ_MEM(ev.value, ev.value_len, "val", 3);
    struct lsm_buf b = {0};
    entry_append(&b, 4096, 42, 0, "val", 3);
    CHECK_EQ_MEM(b.p, b.len, old, sizeof(old) - 1);
    lsm_buf_free(&b);
}

static void test_status_messages(void)
{
    struct lsm_err err;
    CHECK_EQ_INT(lsm_err_set(&err, LSM_CORRUPT, "sst %06d.sst: bad", 12), LSM_CORRUPT);
    CHECK_EQ_STR(err.msg, "sst 000012.sst: bad");
    CHECK_EQ_INT(lsm_err_set(NULL, LSM_IOERR, "x"), LSM_IOERR);
    lsm_err_clear(&err);
    CHECK_EQ_STR(err.msg, "");
    CHECK_EQ_STR(lsm_status_name(LSM_NOSPACE), "NOSPACE");
}

int main(void)
{
    TEST_RUN(test_varint_roundtrip_and_bounds);
    TEST_RUN(test_ikey_order_newest_first);
    TEST_RUN(test_lookup_key_sorts_at_snapshot);
    TEST_RUN(test_entry_value_roundtrip);
    TEST_RUN(test_entry_value_node_roundtrip);
    TEST_RUN(test_entry_value_old_format_reads_node_zero);
    TEST_RUN(test_status_messages);
    TEST_MAIN_END();
}
