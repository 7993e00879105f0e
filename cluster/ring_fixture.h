/*
 * ring_fixture.h - test members for the ring's unit tests (ring_test, join_test,
 * cleanup_test): "node-XX" at 127.0.0.(i+1):7000 with tag i + 1, weight 1, and
 * ntokens tokens each from the seed seed + i * stride. Tests only.
 */
#ifndef KVD_CLUSTER_RING_FIXTURE_H
#define KVD_CLUSTER_RING_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "cluster/ring.h"

static inline struct ring_member *ring_fixture_members(size_t n, size_t ntokens, uint64_t seed,
                                                       uint64_t stride) {
    struct ring_member *ms = calloc(n, sizeof *ms);
    for (size_t i = 0; ms && i < n; i++) {
        snprintf(ms[i].id, sizeof ms[i].id, "node-%02zu", i);
        snprintf(ms[i].addr, sizeof ms[i].addr, "127.0.0.%zu:7000", i + 1);
        ms[i].tag = (uint32_t)(i + 1);
        ms[i].weight = 1.0;
        ms[i].ntokens = ntokens;
        ms[i].tokens = malloc(ntokens * sizeof(uint64_t));
        ring_tokens_generate(seed + i * stride, ms[i].tokens, ntokens);
    }
    return ms;
}

static inline void ring_fixture_free(struct ring_member *ms, size_t n) {
    for (size_t i = 0; ms && i < n; i++) {
        free(ms[i].tokens);
    }
    free(ms);
}

#endif
