/* proto/hlc_pure_test.c: the instance-based HLC arithmetic (proto/hlc.h). The name
 * differs from server/hlc_test.c: test binaries are named by file. */
#include "proto/hlc.h"
#include "tests/test.h"

static void test_hlc_tick_follows_the_wall_clock(void) {
    uint64_t last = 0;
    CHECK_EQ_INT(kv_hlc_tick(&last, 1000), KV_HLC_MAKE(1000, 0));
    CHECK_EQ_INT(kv_hlc_tick(&last, 1005), KV_HLC_MAKE(1005, 0));
    CHECK_EQ_INT(last, KV_HLC_MAKE(1005, 0));
}

static void test_hlc_tick_counts_logically_when_the_clock_stands_or_goes_back(void) {
    uint64_t last = 0;
    uint64_t prev = kv_hlc_tick(&last, 5000);
    for (int i = 1; i <= 50; i++) {
        uint64_t t = kv_hlc_tick(&last, (uint64_t)(5000 - i * 10));
        CHECK(t > prev);
        CHECK_EQ_INT(KV_HLC_MS(t), 5000);
        CHECK_EQ_INT(KV_HLC_LOGICAL(t), i);
        prev = t;
    }
}

static void test_hlc_logical_overflow_carries_into_ms(void) {
    uint64_t last = 0;
    uint64_t prev = kv_hlc_tick(&last, 7000);
    for (int i = 0; i < 70000; i++) {
        uint64_t t = kv_hlc_tick(&last, 7000);
        CHECK(t > prev);
        prev = t;
    }
    CHECK_EQ_INT(KV_HLC_MS(prev), 7001);
}

static void test_hlc_two_clocks_are_independent(void) {
    uint64_t a = 0, b = 0;
    kv_hlc_tick(&a, 100);
    kv_hlc_tick(&a, 100);
    CHECK_EQ_INT(kv_hlc_tick(&b, 100), KV_HLC_MAKE(100, 0));
    CHECK_EQ_INT(a, KV_HLC_MAKE(100, 1));
}

static void test_hlc_observe_makes_later_ticks_newer(void) {
    uint64_t last = 0;
    kv_hlc_tick(&last, 1000);
    uint64_t peer = KV_HLC_MAKE(3000, 7);
    kv_hlc_observe(&last, peer);
    uint64_t t = kv_hlc_tick(&last, 1001); /* our wall clock is behind the peer's */
    CHECK(t > peer);
    CHECK_EQ_INT(t, KV_HLC_MAKE(3000, 8));
    kv_hlc_observe(&last, KV_HLC_MAKE(10, 0)); /* an older one changes nothing */
    CHECK_EQ_INT(last, t);
}

static void test_hlc_observe_bounded_refuses_a_clock_far_ahead(void) {
    uint64_t last = KV_HLC_MAKE(1000, 0);
    CHECK_EQ_INT(kv_hlc_observe_bounded(&last, KV_HLC_MAKE(1500, 0), 1000, 500), 0);
    CHECK_EQ_INT(last, KV_HLC_MAKE(1500, 0));
    CHECK_EQ_INT(kv_hlc_observe_bounded(&last, KV_HLC_MAKE(1501, 0), 1000, 500), -1);
    CHECK_EQ_INT(last, KV_HLC_MAKE(1500, 0));
    /* a timestamp behind the wall clock is always fine */
    CHECK_EQ_INT(kv_hlc_observe_bounded(&last, KV_HLC_MAKE(10, 0), 1000, 0), 0);
    CHECK_EQ_INT(last, KV_HLC_MAKE(1500, 0));
}

int main(void) {
    TEST_RUN(test_hlc_tick_follows_the_wall_clock);
    TEST_RUN(test_hlc_tick_counts_logically_when_the_clock_stands_or_goes_back);
    TEST_RUN(test_hlc_logical_overflow_carries_into_ms);
    TEST_RUN(test_hlc_two_clocks_are_independent);
    TEST_RUN(test_hlc_observe_makes_later_ticks_newer);
    TEST_RUN(test_hlc_observe_bounded_refuses_a_clock_far_ahead);
    TEST_MAIN_END();
}
