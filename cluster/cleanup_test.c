/* cluster/cleanup_test.c: the ranges a node keeps for KVD CLEANUP
 * (cluster/cleanup.c cleanup_kept_spans), checked against the rings themselves,
 * token by token: a token is kept exactly when the node is among its replicas in
 * the current or the future ring. */
#include "cluster/cleanup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/ring_fixture.h"
#include "tests/test.h"

static int in_spans(const struct cluster_span *v, size_t k, uint64_t t) {
    for (size_t i = 0; i < k; i++) {
        if (t >= v[i].from && (v[i].to == 0 || t < v[i].to)) {
            return 1;
        }
    }
    return 0;
}

/* tokens to probe: every vnode token, its neighbours, and random ones */
static size_t probes(const struct ring *g, uint64_t *out, size_t max) {
    size_t n = 0;
    for (size_t i = 0; i < g->nvnodes && n + 3 <= max; i++) {
        out[n++] = g->vnodes[i].token;
        out[n++] = g->vnodes[i].token + 1;
        out[n++] = g->vnodes[i].token - 1;
    }
    uint64_t x = 88172645463325252ull;
    while (n < max) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[n++] = x;
    }
    return n;
}

static int mismatches(const struct ring *cur, const struct ring *fut, uint32_t self,
                      size_t nrep) {
    struct cluster_span *v = NULL;
    size_t k = cleanup_kept_spans(cur, fut, self, nrep, &v);
    for (size_t i = 1; i < k; i++) {
        if (v[i - 1].to == 0 || v[i - 1].to >= v[i].from) {
            free(v);
            return -1; /* not sorted, or adjacent spans not merged */
        }
    }
    static uint64_t t[6000];
    size_t np = probes(fut ? fut : cur, t, sizeof t / sizeof t[0]);
    int bad = 0;
    for (size_t i = 0; i < np; i++) {
        int want = ring_replicates(cur, t[i], nrep, self) ||
                   (fut && ring_replicates(fut, t[i], nrep, self));
        bad += want != in_spans(v, k, t[i]);
    }
    free(v);
    return bad;
}

static void test_cleanup_keeps_what_the_node_replicates_after_a_join(void) {
    struct ring_member *ms = ring_fixture_members(4, 16, 777, 13);
    struct ring cur, fut;
    char err[128];
    CHECK_EQ_INT(ring_build(&cur, ms, 3, err, sizeof err), RING_OK);
    CHECK_EQ_INT(ring_build(&fut, ms, 4, err, sizeof err), RING_OK);
    for (uint32_t self = 1; self <= 3; self++) {
        CHECK_EQ_INT(mismatches(&fut, NULL, self, 2), 0); /* after the join */
        CHECK_EQ_INT(mismatches(&cur, &fut, self, 2), 0); /* while it joins */
        CHECK_EQ_INT(mismatches(&cur, NULL, self, 2), 0);
    }
    /* after the join each old member keeps less than it had */
    struct cluster_span *v = NULL;
    size_t k = cleanup_kept_spans(&fut, NULL, 1, 2, &v);
    CHECK(k > 0);
    free(v);
    ring_destroy(&cur);
    ring_destroy(&fut);
    ring_fixture_free(ms, 4);
}

static void test_cleanup_keeps_everything_when_every_node_replicates_all(void) {
    struct ring_member *ms = ring_fixture_members(3, 16, 777, 13);
    struct ring g;
    char err[128];
    CHECK_EQ_INT(ring_build(&g, ms, 3, err, sizeof err), RING_OK);
    struct cluster_span *v = NULL;
    size_t k = cleanup_kept_spans(&g, NULL, 2, 3, &v);
    CHECK_EQ_INT((int)k, 1);
    CHECK(k == 1 && v[0].from == 0 && v[0].to == 0);
    free(v);
    CHECK_EQ_INT((int)cleanup_kept_spans(&g, NULL, 99, 3, &v), 0); /* not a member */
    free(v);
    ring_destroy(&g);
    ring_fixture_free(ms, 3);
}

int main(void) {
    TEST_RUN(test_cleanup_keeps_what_the_node_replicates_after_a_join);
    TEST_RUN(test_cleanup_keeps_everything_when_every_node_replicates_all);
    TEST_MAIN_END();
}
