/* tests/cluster/hiredis_cluster.c: hiredis (synchronous API, RESP2) against every
 * node of a running kvd cluster: SET/GET/INCR/DEL/HSET through each node, each
 * result read back through the next node, then a pipeline whose replies come back
 * in order. Compiled and run by clients_test.py; leaves the cluster to it.
 *
 * Usage: hiredis_cluster PREFIX HOST:PORT... Ends with "N passed, M failed".
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODES 16

static int passed, failed;

static void check(const char *what, int cond, const redisReply *r)
{
    if (cond) {
        passed++;
        return;
    }
    failed++;
    printf("FAIL cluster-hiredis: %s", what);
    if (r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_ERROR ||
                      r->type == REDIS_REPLY_STATUS)) {
        printf(": reply %.*s", (int)r->len, r->str);
    } else if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
        printf(": reply %lld", r->integer);
    }
    printf("\n");
}

static int is_str(const redisReply *r, const char *s)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

static int is_int(const redisReply *r, long long v)
{
    return r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == v;
}

/* Runs one command on c, checks it with pred/want, frees the reply. */
static void expect_str(redisContext *c, const char *what, const char *want, const char *fmt,
                       const char *a, const char *b)
{
    redisReply *r = redisCommand(c, fmt, a, b);
    check(what, is_str(r, want), r);
    if (r != NULL) {
        freeReplyObject(r);
    }
}

static void expect_int(redisContext *c, const char *what, long long want, const char *fmt,
                       const char *a, const char *b)
{
    redisReply *r = redisCommand(c, fmt, a, b);
    check(what, is_int(r, want), r);
    if (r != NULL) {
        freeReplyObject(r);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc - 2 > MAX_NODES) {
        fprintf(stderr, "usage: hiredis_cluster PREFIX HOST:PORT...\n");
        return 2;
    }
    const char *prefix = argv[1];
    int n = argc - 2;
    redisContext *ctx[MAX_NODES];
    struct timeval tv = {10, 0};
    for (int i = 0; i < n; i++) {
        char host[64];
        const char *colon = strrchr(argv[i + 2], ':');
        size_t hl = colon ? (size_t)(colon - argv[i + 2]) : 0;
        if (colon == NULL || hl == 0 || hl >= sizeof host) {
            fprintf(stderr, "bad address %s\n", argv[i + 2]);
            return 2;
        }
        memcpy(host, argv[i + 2], hl);
        host[hl] = '\0';
        ctx[i] = redisConnectWithTimeout(host, atoi(colon + 1), tv);
        if (ctx[i] == NULL || ctx[i]->err) {
            printf("FAIL cluster-hiredis: connect %s: %s\n", argv[i + 2],
                   ctx[i] ? ctx[i]->errstr : "no memory");
            printf("0 passed, 1 failed\n");
            return 1;
        }
        redisSetTimeout(ctx[i], tv);
    }
    for (int i = 0; i < n; i++) {
        redisContext *c = ctx[i], *next = ctx[(i + 1) % n];
        char k[256], v[64];
        snprintf(k, sizeof k, "%s:%d", prefix, i);
        snprintf(v, sizeof v, "value-%d", i);
        char ks[300], kn[300], kh[300];
        snprintf(ks, sizeof ks, "%s:s", k);
        snprintf(kn, sizeof kn, "%s:n", k);
        snprintf(kh, sizeof kh, "%s:h", k);
        expect_str(c, "SET", "OK", "SET %s %s", ks, v);
        expect_str(c, "GET", v, "GET %s", ks, NULL);
        expect_str(next, "GET via the next node", v, "GET %s", ks, NULL);
        expect_int(c, "INCR", 1, "INCR %s", kn, NULL);
        expect_int(next, "INCR via the next node", 2, "INCR %s", kn, NULL);
        expect_int(c, "HSET", 1, "HSET %s f %s", kh, v);
        expect_str(next, "HGET via the next node", v, "HGET %s f", kh, NULL);
        redisReply *r = redisCommand(c, "DEL %s %s %s", ks, kn, kh);
        check("DEL of three keys", is_int(r, 3), r);
        if (r != NULL) {
            freeReplyObject(r);
        }
        r = redisCommand(next, "EXISTS %s %s %s", ks, kn, kh);
        check("EXISTS via the next node after DEL", is_int(r, 0), r);
        if (r != NULL) {
            freeReplyObject(r);
        }
        /* a pipeline of 50 INCRs, replies in order */
        char kp[300];
        snprintf(kp, sizeof kp, "%s:pipe", k);
        for (int j = 0; j < 50; j++) {
            redisAppendCommand(c, "INCR %s", kp);
        }
        int inorder = 1;
        for (int j = 0; j < 50; j++) {
            void *rv = NULL;
            if (redisGetReply(c, &rv) != REDIS_OK || rv == NULL) {
                inorder = 0;
                break;
            }
            if (!is_int(rv, j + 1)) {
                inorder = 0;
            }
            freeReplyObject(rv);
        }
        check("pipelined INCR replies 1..50 in order", inorder, NULL);
        expect_str(next, "pipelined counter via the next node", "50", "GET %s", kp, NULL);
    }
    for (int i = 0; i < n; i++) {
        redisFree(ctx[i]);
    }
    printf("cluster-hiredis: %d passed, %d failed\n", passed, failed);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
