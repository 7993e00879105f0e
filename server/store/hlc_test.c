/* server/store/hlc_test.c: the hybrid logical clock (server/store/hlc.c). */
#include "server/net/net.h"
#include "server/store/hlc.h"
#include "tests/test.h"

static void test_hlc_follows_the_wall_clock(void) {
    hlc_reset();
    uint64_t a = hlc_tick(1000);
    CHECK_EQ_INT(HLC_MS(a), 1000);
    CHECK_EQ_INT(HLC_LOGICAL(a), 0);
    uint64_t b = hlc_tick(1005);
    CHECK_EQ_INT(b, HLC_MAKE(1005, 0));
}

static void test_hlc_counts_logically_within_one_millisecond(void) {
    hlc_reset();
    uint64_t prev = hlc_tick(2000);
    for (int i = 1; i <= 100; i++) {
        uint64_t t = hlc_tick(2000);
        CHECK(t > prev);
        CHECK_EQ_INT(HLC_MS(t), 2000);
        CHECK_EQ_INT(HLC_LOGICAL(t), i);
        prev = t;
    }
}

static void test_hlc_is_monotonic_when_the_clock_goes_back(void) {
    hlc_reset();
    uint64_t prev = hlc_tick(5000);
    /* the clock steps back 3 s and then creeps forward again */
    for (uint64_t wall = 2000; wall < 6000; wall += 7) {
        uint64_t t = hlc_tick(wall);
        CHECK(t > prev);
        CHECK(HLC_MS(t) >= 5000);
        prev = t;
    }
    CHECK_EQ_INT(HLC_MS(prev), 5999 - (5999 - 2000) % 7);
}

static void test_hlc_logical_overflow_carries_into_ms(void) {
    hlc_reset();
    uint64_t prev = hlc_tick(7000);
    for (int i = 0; i < 70000; i++) {
        uint64_t t = hlc_tick(7000);
        CHECK(t > prev);
        prev = t;
    }
    CHECK_EQ_INT(HLC_MS(prev), 7001);
    /* the wall clock catching up continues from there, still increasing */
    uint64_t t = hlc_tick(7001);
    CHECK(t > prev);
}

static void test_hlc_observe_moves_the_clock_forward(void) {
    hlc_reset();
    hlc_tick(1000);
    hlc_observe(HLC_MAKE(9000, 5));
    uint64_t t = hlc_tick(1001);
    CHECK(t > HLC_MAKE(9000, 5));
    hlc_observe(HLC_MAKE(10, 0)); /* older: no effect */
    CHECK(hlc_tick(1002) > t);
    CHECK(hlc_now() > HLC_MAKE(1600000000000ull, 0));
}

static void test_hlc_now_reads_the_offset_clock_and_stays_monotonic_going_back(void) {
    hlc_reset();
    server.debug_clock_offset_ms = 0;
    long long real = kv_mstime();
    uint64_t before = hlc_now();
    CHECK(HLC_MS(before) >= (uint64_t)real);
    server.debug_clock_offset_ms = 3600000; /* an hour ahead */
    long long ahead = kv_mstime();
    CHECK(ahead >= real + 3600000 && ahead < real + 3600000 + 60000);
    uint64_t a = hlc_now();
    CHECK(HLC_MS(a) >= (uint64_t)real + 3600000);
    server.debug_clock_offset_ms = -3600000; /* two hours back at once */
    CHECK(kv_mstime() < real);
    uint64_t prev = a;
    for (int i = 0; i < 1000; i++) {
        uint64_t t = hlc_now();
        CHECK(t > prev);
        prev = t;
    }
    CHECK(HLC_MS(prev) == HLC_MS(a) || HLC_MS(prev) == HLC_MS(a) + 1);
    server.debug_clock_offset_ms = 0;
}

int main(void) {
    TEST_RUN(test_hlc_follows_the_wall_clock);
    TEST_RUN(test_hlc_counts_logically_within_one_millisecond);
    TEST_RUN(test_hlc_is_monotonic_when_the_clock_goes_back);
    TEST_RUN(test_hlc_logical_overflow_carries_into_ms);
    TEST_RUN(test_hlc_observe_moves_the_clock_forward);
    TEST_RUN(test_hlc_now_reads_the_offset_clock_and_stays_monotonic_going_back);
    TEST_MAIN_END();
}
