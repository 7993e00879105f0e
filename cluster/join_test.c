/* cluster/join_test.c: the plan of a join, a leave (cluster/join.c join_plan), a
 * removal or a replace (join_plan_remove):
 * which ranges a node streams and with whom. Checked against the rings
 * themselves, key by key: a joining node pulls every range it will replicate
 * from exactly that range's current replicas; a leaving node pushes every range
 * it replicates to exactly the replicas the range gains without it. */
#include "cluster/join.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cluster/ring_fixture.h"
#include "tests/test.h"

static int has(const uint32_t *v, size_t n, uint32_t x) {
    for (size_t i = 0; i < n; i++) {
        if (v[i] == x) {
            return 1;
        }
    }
    return 0;
}

static size_t tags(const struct ring *g, uint64_t tok, uint32_t *out) {
    uint32_t idx[RING_MAX_REPLICAS];
    size_t k = ring_replicas(g, tok, 3, idx);
    for (size_t i = 0; i < k; i++) {
        out[i] = g->members[idx[i]].tag;
    }
    return k;
}

/* the task holding token tok (ranges are [from, to), to 0 the end), or NULL */
static const struct join_task *task_of(const struct join_task *t, size_t n, uint64_t tok) {
    for (size_t i = 0; i < n; i++) {
        if (tok >= t[i].from && (t[i].to == 0 || tok < t[i].to)) {
            return &t[i];
        }
    }
    return NULL;
}

/* For 3000 token samples: the plan covers the token exactly when self has
 * something to move there, with exactly the expected peers. */
static void check_plan(const struct ring *cur, const struct ring *fut, uint32_t self,
                       int leaving) {
    struct join_task *t;
    size_t n = join_plan(cur, fut, self, 3, leaving, &t);
    CHECK(n > 0);
    size_t covered = 0;
    for (uint64_t s = 1; s <= 3000; s++) {
        uint64_t tok = s * 6148914691236517ull;
        uint32_t c[RING_MAX_REPLICAS], f[RING_MAX_REPLICAS], want[RING_MAX_REPLICAS];
        size_t nc = tags(cur, tok, c), nf = tags(fut, tok, f), nw = 0;
        if (!leaving && has(f, nf, self)) {
            for (size_t i = 0; i < nc; i++) {
                want[nw++] = c[i];
            }
        }
        if (leaving && has(c, nc, self)) {
            for (size_t i = 0; i < nf; i++) {
                if (!has(c, nc, f[i])) {
                    want[nw++] = f[i];
                }
            }
        }
        const struct join_task *k = task_of(t, n, tok);
        CHECK_EQ_INT(k ? k->npeers : 0, nw);
        for (size_t i = 0; k && i < nw; i++) {
            CHECK(has(k->peers, k->npeers, want[i]));
            CHECK(k->peers[i] != self);
        }
        covered += k != NULL;
    }
    printf("join plan (%s): %zu ranges, %zu of 3000 sampled tokens to move\n",
           leaving ? "leave" : "join", n, covered);
    free(t);
}

static void test_join_plan_pulls_what_the_joiner_will_replicate(void) {
    struct ring_member *ms = ring_fixture_members(4, 16, 4242, 31);
    struct ring cur, fut;
    CHECK_EQ_INT(ring_build(&cur, ms, 3, NULL, 0), RING_OK);
    CHECK_EQ_INT(ring_build(&fut, ms, 4, NULL, 0), RING_OK);
    check_plan(&cur, &fut, 4, 0);
    ring_destroy(&cur);
    ring_destroy(&fut);
    ring_fixture_free(ms, 4);
}

static void test_join_plan_pushes_to_the_leaver_new_replicas(void) {
    struct ring_member *ms = ring_fixture_members(5, 16, 4242, 31);
    struct ring cur, fut;
    CHECK_EQ_INT(ring_build(&cur, ms, 5, NULL, 0), RING_OK);
    CHECK_EQ_INT(ring_build(&fut, ms + 1, 4, NULL, 0), RING_OK); /* node 1 leaves */
    check_plan(&cur, &fut, 1, 1);
    ring_destroy(&cur);
    ring_destroy(&fut);
    ring_fixture_free(ms, 5);
}

/* The plan of a removal (join_plan_remove): self pulls exactly the ranges it
 * replicates once dead is gone and did not before, from the range's replicas
 * but dead. For every member of fut, over 3000 token samples. */
static void check_remove_plan(const struct ring *cur, const struct ring *fut, uint32_t self,
                              uint32_t dead, size_t *ranges) {
    struct join_task *t;
    size_t n = join_plan_remove(cur, fut, self, dead, 3, &t);
    for (uint64_t s = 1; s <= 3000; s++) {
        uint64_t tok = s * 6148914691236517ull;
        uint32_t c[RING_MAX_REPLICAS], f[RING_MAX_REPLICAS], want[RING_MAX_REPLICAS];
        size_t nc = tags(cur, tok, c), nf = tags(fut, tok, f), nw = 0;
        if (has(f, nf, self) && !has(c, nc, self)) {
            for (size_t i = 0; i < nc; i++) {
                if (c[i] != dead) {
                    want[nw++] = c[i];
                }
            }
        }
        const struct join_task *k = task_of(t, n, tok);
        CHECK_EQ_INT(k ? k->npeers : 0, nw);
        for (size_t i = 0; k && i < nw; i++) {
            CHECK(has(k->peers, k->npeers, want[i]));
        }
        CHECK(k == NULL || !has(k->peers, k->npeers, dead));
    }
    *ranges += n;
    free(t);
}

/* Every range dead replicated gains exactly one new replica, which pulls it from
 * the two survivors; the members that gain nothing have an empty plan. */
static void test_remove_plan_new_replicas_pull_from_the_survivors(void) {
    struct ring_member *ms = ring_fixture_members(5, 16, 4242, 31);
    struct ring cur, fut;
    CHECK_EQ_INT(ring_build(&cur, ms, 5, NULL, 0), RING_OK);
    CHECK_EQ_INT(ring_build(&fut, ms, 4, NULL, 0), RING_OK); /* node tag 5 removed */
    size_t ranges = 0;
    for (uint32_t self = 1; self <= 4; self++) {
        check_remove_plan(&cur, &fut, self, 5, &ranges);
    }
    CHECK(ranges > 0);
    /* each sampled token dead replicated is in exactly one gainer's plan, with 2 peers */
    for (uint64_t s = 1; s <= 300; s++) {
        uint64_t tok = s * 61489146912365171ull;
        uint32_t c[RING_MAX_REPLICAS];
        size_t nc = tags(&cur, tok, c), gainers = 0;
        for (uint32_t self = 1; self <= 4; self++) {
            struct join_task *t;
            size_t n = join_plan_remove(&cur, &fut, self, 5, 3, &t);
            const struct join_task *k = task_of(t, n, tok);
            if (k) {
                gainers++;
                CHECK_EQ_INT(k->npeers, 2);
            }
            free(t);
        }
        CHECK_EQ_INT(gainers, has(c, nc, 5) ? 1 : 0);
    }
    printf("remove plan: %zu ranges gained over 4 survivors\n", ranges);
    ring_destroy(&cur);
    ring_destroy(&fut);
    ring_fixture_free(ms, 5);
}

/* A replace: the new member (tag 9) at the dead one's tokens gains exactly the
 * dead member's ranges, pulled from their other replicas; nobody else gains a thing. */
static void test_remove_plan_of_a_replace_is_the_dead_member_ranges(void) {
    struct ring_member *ms = ring_fixture_members(4, 16, 4242, 31);
    struct ring_member *fm = calloc(4, sizeof *fm);
    memcpy(fm, ms, 4 * sizeof *fm);
    snprintf(fm[3].id, sizeof fm[3].id, "node-new");
    fm[3].tag = 9;
    struct ring cur, fut;
    CHECK_EQ_INT(ring_build(&cur, ms, 4, NULL, 0), RING_OK);
    CHECK_EQ_INT(ring_build(&fut, fm, 4, NULL, 0), RING_OK);
    for (uint32_t self = 1; self <= 3; self++) {
        struct join_task *t;
        CHECK_EQ_INT(join_plan_remove(&cur, &fut, self, 4, 3, &t), 0);
        free(t);
    }
    size_t ranges = 0;
    check_remove_plan(&cur, &fut, 9, 4, &ranges);
    CHECK(ranges > 0);
    for (uint64_t s = 1; s <= 3000; s++) {
        uint64_t tok = s * 6148914691236517ull;
        uint32_t c[RING_MAX_REPLICAS];
        size_t nc = tags(&cur, tok, c);
        struct join_task *t;
        size_t n = join_plan_remove(&cur, &fut, 9, 4, 3, &t);
        CHECK_EQ_INT(task_of(t, n, tok) != NULL, has(c, nc, 4));
        free(t);
    }
    ring_destroy(&cur);
    ring_destroy(&fut);
    free(fm);
    ring_fixture_free(ms, 4);
}

/* ---- the resume file (dir/node-join) ---- */

/* a file of 3 tokens and 4 tasks, 2 of them done */
static struct msg_buf resume_file(void) {
    static const uint64_t tokens[3] = {7, 1000, UINT64_MAX};
    struct join_task tasks[4] = {{.from = 7, .to = 1000},
                                 {.from = 1000, .to = 5},
                                 {.from = 40, .to = 0},
                                 {.from = UINT64_MAX, .to = 7}};
    static const unsigned char finished[4] = {1, 0, 1, 0};
    struct msg_buf b = {0};
    join_resume_encode("node-00", tokens, 3, tasks, finished, 4, &b);
    return b;
}

static void test_resume_file_round_trips(void) {
    struct msg_buf b = resume_file();
    struct join_resume r;
    char err[160];
    CHECK_EQ_INT(join_resume_parse(b.p, b.len, "node-00", &r, err, sizeof err), 0);
    CHECK_EQ_INT(r.ntokens, 3);
    CHECK(r.tokens[0] == 7 && r.tokens[1] == 1000 && r.tokens[2] == UINT64_MAX);
    CHECK_EQ_INT(r.ndone, 2);
    CHECK(r.done[0].from == 7 && r.done[0].to == 1000);
    CHECK(r.done[1].from == 40 && r.done[1].to == 0);
    join_resume_free(&r);
    /* no range done yet: the tokens alone */
    struct msg_buf e = {0};
    join_resume_encode("node-00", (const uint64_t[]){42}, 1, NULL, NULL, 0, &e);
    CHECK_EQ_INT(join_resume_parse(e.p, e.len, "node-00", &r, err, sizeof err), 0);
    CHECK(r.ntokens == 1 && r.tokens[0] == 42 && r.ndone == 0);
    join_resume_free(&r);
    msg_buf_free(&e);
    msg_buf_free(&b);
}

/* parses buf[0..len) expecting a refusal whose text holds want */
static void check_refused(const char *buf, size_t len, const char *id, const char *want) {
    struct join_resume r;
    char err[160] = "";
    CHECK_EQ_INT(join_resume_parse(buf, len, id, &r, err, sizeof err), -1);
    CHECK(r.tokens == NULL && r.done == NULL && r.ntokens == 0 && r.ndone == 0);
    if (strstr(err, want) == NULL) {
        TEST_FAIL_AT("error '%s' lacks '%s'", err, want);
    }
}

static void test_resume_file_truncated_at_every_byte_is_refused(void) {
    struct msg_buf b = resume_file();
    for (size_t n = 0; n < b.len; n++) {
        char *copy = malloc(n ? n : 1); /* exact size: ASan sees any overread */
        memcpy(copy, b.p, n);
        check_refused(copy, n, "node-00", "");
        free(copy);
    }
    msg_buf_free(&b);
}

static void test_resume_file_corrupt_is_refused(void) {
    struct msg_buf b = resume_file();
    /* every single flipped byte: a clear refusal, never a crash */
    for (size_t i = 0; i < b.len; i++) {
        char *copy = malloc(b.len);
        memcpy(copy, b.p, b.len);
        copy[i] ^= 0x01;
        check_refused(copy, b.len, "node-00", "");
        free(copy);
    }
    check_refused(b.p, b.len, "node-01", "another node's");
    /* trailing bytes after the checksum line */
    char *more = malloc(b.len + 1);
    memcpy(more, b.p, b.len);
    more[b.len] = '\n';
    check_refused(more, b.len + 1, "node-00", "truncated");
    free(more);
    msg_buf_free(&b);
}

/* a file whose checksum is right but whose counts are huge or wrong */
static void check_body_refused(const char *body, const char *want) {
    struct msg_buf b = {0};
    char sum[32];
    msg_buf_put(&b, body, strlen(body));
    snprintf(sum, sizeof sum, "sum %016llx\n", (unsigned long long)XXH3_64bits(body, strlen(body)));
    msg_buf_put(&b, sum, strlen(sum));
    check_refused(b.p, b.len, "n", want);
    msg_buf_free(&b);
}

static void test_resume_file_bad_counts_are_refused(void) {
    /* counts past the bytes left: refused before anything is allocated */
    check_body_refused("kvd-node-join 1\nid n\ntokens 4000\n1\n", "malformed tokens");
    check_body_refused("kvd-node-join 1\nid n\ntokens 18446744073709551615\n1\n",
                       "malformed tokens");
    check_body_refused("kvd-node-join 1\nid n\ntokens 1\n1\ndone 65000\n1 2\n",
                       "malformed done");
    check_body_refused("kvd-node-join 1\nid n\ntokens 0\ndone 0\n", "malformed tokens");
    /* tokens not ascending, signs, spaces */
    check_body_refused("kvd-node-join 1\nid n\ntokens 2\n5\n5\ndone 0\n", "malformed tokens");
    check_body_refused("kvd-node-join 1\nid n\ntokens 1\n-5\ndone 0\n", "malformed tokens");
    check_body_refused("kvd-node-join 1\nid n\ntokens 1\n5\ndone 1\n1  2\n", "malformed done");
    check_body_refused("kvd-node-join 2\nid n\ntokens 1\n5\ndone 0\n", "version");
    /* well-formed: the helper itself does not refuse everything */
    struct msg_buf b = {0};
    const char *ok = "kvd-node-join 1\nid n\ntokens 1\n5\ndone 1\n1 2\n";
    char sum[32], err[160];
    msg_buf_put(&b, ok, strlen(ok));
    snprintf(sum, sizeof sum, "sum %016llx\n", (unsigned long long)XXH3_64bits(ok, strlen(ok)));
    msg_buf_put(&b, sum, strlen(sum));
    struct join_resume r;
    CHECK_EQ_INT(join_resume_parse(b.p, b.len, "n", &r, err, sizeof err), 0);
    CHECK(r.ntokens == 1 && r.ndone == 1 && r.done[0].to == 2);
    join_resume_free(&r);
    msg_buf_free(&b);
}

int main(void) {
    TEST_RUN(test_resume_file_round_trips);
    TEST_RUN(test_resume_file_truncated_at_every_byte_is_refused);
    TEST_RUN(test_resume_file_corrupt_is_refused);
    TEST_RUN(test_resume_file_bad_counts_are_refused);
    TEST_RUN(test_join_plan_pulls_what_the_joiner_will_replicate);
    TEST_RUN(test_join_plan_pushes_to_the_leaver_new_replicas);
    TEST_RUN(test_remove_plan_new_replicas_pull_from_the_survivors);
    TEST_RUN(test_remove_plan_of_a_replace_is_the_dead_member_ranges);
    TEST_MAIN_END();
}
