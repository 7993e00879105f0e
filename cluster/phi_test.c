/* cluster/phi_test.c: the phi accrual failure detector (cluster/phi.c): values for
 * regular and late heartbeats, adaptation to jitter, the bounded window, the
 * initial estimate, long gaps not learned as normal. */
#include "cluster/phi.h"

#include <math.h>
#include <stdio.h>

#include "tests/test.h"

static void cfg(struct phi_config *c, size_t window, double min_std) {
    phi_config_default(c);
    c->window = window;
    c->min_std_ms = min_std;
}

/* heartbeats every `every` ms from t = 1000, n of them; returns the last time */
static uint64_t regular(struct phi *p, uint64_t every, int n) {
    uint64_t t = 1000;
    for (int i = 0; i < n; i++) {
        phi_heartbeat(p, t);
        if (i + 1 < n) {
            t += every;
        }
    }
    return t;
}

static void test_phi_is_zero_before_any_heartbeat_and_at_the_heartbeat(void) {
    struct phi_config c;
    struct phi p;
    cfg(&c, 100, 100);
    phi_init(&p, &c);
    CHECK(phi_value(&p, 5000) == 0);
    phi_heartbeat(&p, 5000);
    CHECK(phi_value(&p, 5000) == 0);
}

static void test_phi_regular_heartbeats_stay_low_and_late_ones_climb(void) {
    struct phi_config c;
    struct phi p;
    cfg(&c, 100, 100); /* intervals exactly 1000: the std is the floor, 100 */
    phi_init(&p, &c);
    uint64_t last = regular(&p, 1000, 50);
    double mean, std;
    phi_stats(&p, &mean, &std);
    CHECK(fabs(mean - 1000) < 1e-9);
    CHECK(fabs(std - 100) < 1e-9);
    /* the worked example of phi.h: y = 2 -> 1.64, y = 6 -> 9.0 */
    double at_on_time = phi_value(&p, last + 1000);
    double at_1200 = phi_value(&p, last + 1200);
    double at_1600 = phi_value(&p, last + 1600);
    printf("phi: regular 1000 ms, std 100: on time %.3f, 1200 ms %.3f, 1600 ms %.3f\n",
           at_on_time, at_1200, at_1600);
    CHECK(fabs(at_on_time - 0.30103) < 1e-3); /* P = 0.5 */
    CHECK(fabs(at_1200 - 1.6430) < 1e-3);
    CHECK(fabs(at_1600 - 9.0049) < 1e-2);
    CHECK(phi_value(&p, last + 500) < 0.01);
    /* it only grows with silence, and is capped */
    double prev = 0;
    for (uint64_t dt = 0; dt < 100000; dt += 50) {
        double v = phi_value(&p, last + dt);
        CHECK(v >= prev);
        CHECK(v <= PHI_MAX);
        prev = v;
    }
    CHECK(prev == PHI_MAX);
}

static void test_phi_jitter_makes_the_detector_patient(void) {
    struct phi_config c;
    struct phi steady, jittery;
    cfg(&c, 100, 10);
    phi_init(&steady, &c);
    phi_init(&jittery, &c);
    uint64_t t1 = regular(&steady, 1000, 60);
    uint64_t t2 = 1000;
    for (int i = 0; i < 60; i++) { /* 500, 1500, 500, 1500, ...: mean 1000, std 500 */
        phi_heartbeat(&jittery, t2);
        if (i + 1 < 60) {
            t2 += (i % 2) ? 1500 : 500;
        }
    }
    double s = phi_value(&steady, t1 + 2000), j = phi_value(&jittery, t2 + 2000);
    printf("phi: 2000 ms silence: steady %.2f, jittery %.2f\n", s, j);
    CHECK(s >= 8);        /* convicted */
    CHECK(j < 3);         /* a 2 s gap is ordinary for this member */
}

static void test_phi_window_is_bounded_and_forgets_old_intervals(void) {
    struct phi_config c;
    struct phi p;
    cfg(&c, 10, 1);
    phi_init(&p, &c);
    uint64_t t = regular(&p, 5000, 20); /* 19 intervals of 5000, only 10 kept */
    CHECK_EQ_INT(p.n, 10);
    for (int i = 0; i < 10; i++) { /* 10 intervals of 100 push every 5000 out */
        t += 100;
        phi_heartbeat(&p, t);
    }
    CHECK_EQ_INT(p.n, 10);
    double mean, std;
    phi_stats(&p, &mean, &std);
    CHECK(fabs(mean - 100) < 1e-9);
    CHECK(phi_value(&p, t + 1000) >= 8); /* 1 s is now very late */
    /* the default window is the bound of the struct */
    struct phi_config d;
    phi_config_default(&d);
    CHECK_EQ_INT(d.window, PHI_WINDOW_MAX);
    phi_init(&p, &d);
    t = regular(&p, 1000, PHI_WINDOW_MAX + 500);
    CHECK_EQ_INT(p.n, PHI_WINDOW_MAX);
}

static void test_phi_initial_estimate_judges_a_member_heard_once(void) {
    struct phi_config c;
    struct phi p;
    cfg(&c, 100, 1);
    c.initial_ms = 1000; /* std 250 */
    phi_init(&p, &c);
    phi_heartbeat(&p, 10000);
    CHECK(phi_value(&p, 11000) < 0.5);
    CHECK(phi_value(&p, 13000) >= 8); /* 8 std late */
}

static void test_phi_long_gap_is_not_learned_as_normal(void) {
    struct phi_config c;
    struct phi p;
    cfg(&c, 100, 100);
    c.max_interval_ms = 5000;
    phi_init(&p, &c);
    uint64_t t = regular(&p, 1000, 30);
    t += 60000; /* down for a minute, then back */
    phi_heartbeat(&p, t);
    double mean, std;
    phi_stats(&p, &mean, &std);
    CHECK(fabs(mean - 1000) < 1e-9);
    CHECK(phi_value(&p, t + 500) < 0.01); /* the arrival reset the clock */
    CHECK(phi_value(&p, t + 3000) >= 8);  /* and a later silence is judged as before */
}

static void test_phi_bad_config_falls_back_to_defaults(void) {
    struct phi_config c = {0, -1, 0, 0};
    struct phi p;
    phi_init(&p, &c);
    CHECK_EQ_INT(p.c.window, PHI_WINDOW_MAX);
    CHECK(p.c.initial_ms > 0 && p.c.min_std_ms > 0 && p.c.max_interval_ms > 0);
    phi_heartbeat(&p, 100);
    phi_heartbeat(&p, 50); /* time going back counts as now: no sample, no crash */
    CHECK_EQ_INT(p.n, 0);
}

int main(void) {
    TEST_RUN(test_phi_is_zero_before_any_heartbeat_and_at_the_heartbeat);
    TEST_RUN(test_phi_regular_heartbeats_stay_low_and_late_ones_climb);
    TEST_RUN(test_phi_jitter_makes_the_detector_patient);
    TEST_RUN(test_phi_window_is_bounded_and_forgets_old_intervals);
    TEST_RUN(test_phi_initial_estimate_judges_a_member_heard_once);
    TEST_RUN(test_phi_long_gap_is_not_learned_as_normal);
    TEST_RUN(test_phi_bad_config_falls_back_to_defaults);
    TEST_MAIN_END();
}
