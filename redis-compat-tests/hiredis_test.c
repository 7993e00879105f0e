/* redis-compat-tests/hiredis_test.c: the server driven by hiredis's synchronous API
 * (RESP2): commands of every family, binary-safe %b arguments, a 1 MB value,
 * pipelining with redisAppendCommand/redisGetReply, MULTI/EXEC, and error replies.
 *
 * Usage: hiredis_test PORT. The server is at COMPAT_HOST (default 127.0.0.1); with
 * COMPAT_POOL="host:port,..." there is one context per member and each group of
 * tests runs on the next one in turn (the nodes of a cluster). COMPAT_REFUSED lists
 * commands the server refuses (a multi-node kvd cluster: FLUSHALL, DBSIZE, KEYS,
 * SCAN, WATCH, ...): the checks that need them are skipped with a SKIP line, and a
 * fresh key space is a database of its own from COMPAT_DB_BASE instead of FLUSHALL
 * (redis-compat-tests/respclient.py says the same for the Python suites).
 * Ends with "N passed, M failed". Leaves starting the server to run.sh.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int passed, failed;

#define CHECK(what, cond)                                                            \
    do {                                                                             \
        if (cond) {                                                                  \
            passed++;                                                                \
        } else {                                                                     \
            failed++;                                                                \
            printf("FAIL hiredis: %s (line %d)\n", (what), __LINE__);                 \
        }                                                                            \
    } while (0)

static redisContext *ctx;             /* the context the current group uses */
static redisContext *ctxs[8];         /* one per server (COMPAT_POOL), or one */
static int nctx, next_ctx;
static int db_next;                   /* fresh_keyspace's last database */

#define SKIP_WHY "a multi-node kvd cluster refuses it until keyless commands run on every " \
                 "node (SCAN/KEYS/DBSIZE/FLUSH fan-out) and WATCH across nodes: README"

/* 1 when COMPAT_REFUSED names the command (the server refuses it). */
static int refused(const char *name)
{
    const char *l = getenv("COMPAT_REFUSED");
    size_t n = strlen(name);
    while (l && *l) {
        while (*l == ' ') {
            l++;
        }
        size_t w = strcspn(l, " ");
        if (w == n && strncasecmp(l, name, n) == 0) {
            return 1;
        }
        l += w;
    }
    return 0;
}

static void skip(const char *what)
{
    printf("SKIP hiredis: %s (%s)\n", what, SKIP_WHY);
}

/* The next group's context: the pool's next member in turn. */
static void next_context(void)
{
    ctx = ctxs[next_ctx++ % nctx];
}

/* Runs a command; the reply is the caller's to free with freeReplyObject. */
static redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(ctx, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        printf("FAIL hiredis: connection error: %s\n", ctx->errstr);
        exit(1);
    }
    return r;
}

static int is_status(const redisReply *r, const char *s)
{
    return r->type == REDIS_REPLY_STATUS && strcmp(r->str, s) == 0;
}

static int is_str(const redisReply *r, const char *s)
{
    return r->type == REDIS_REPLY_STRING && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

static int is_int(const redisReply *r, long long v)
{
    return r->type == REDIS_REPLY_INTEGER && r->integer == v;
}

static int is_err(const redisReply *r, const char *s)
{
    return r->type == REDIS_REPLY_ERROR && strcmp(r->str, s) == 0;
}

/* Checks one command's reply against a predicate and frees it. */
#define EXPECT(pred, arg, ...)                                                        \
    do {                                                                              \
        redisReply *r_ = cmd(__VA_ARGS__);                                            \
        int ok_ = pred(r_, arg);                                                      \
        if (!ok_) {                                                                   \
            printf("  got type %d str %.*s int %lld\n", r_->type,                     \
                   r_->str ? (int)(r_->len > 200 ? 200 : r_->len) : 0,                \
                   r_->str ? r_->str : "", r_->integer);                              \
        }                                                                             \
        CHECK(#__VA_ARGS__, ok_);                                                     \
        freeReplyObject(r_);                                                          \
    } while (0)

/* An empty key space for the next checks on every context: FLUSHALL, or where the
 * server refuses it a database no group used yet (COMPAT_DB_BASE + 1, + 2, ...),
 * SELECTed on every context. */
static void fresh_keyspace(void)
{
    redisContext *keep = ctx;
    if (!refused("FLUSHALL")) {
        EXPECT(is_status, "OK", "FLUSHALL");
        return;
    }
    db_next++;
    for (int i = 0; i < nctx; i++) {
        ctx = ctxs[i];
        EXPECT(is_status, "OK", "SELECT %d", db_next);
    }
    ctx = keep;
}

static void test_strings(void)
{
    fresh_keyspace();
    EXPECT(is_status, "OK", "SET %s %s", "k1", "v1");
    EXPECT(is_str, "v1", "GET k1");
    redisReply *r = cmd("GET nosuch");
    CHECK("GET missing is nil", r->type == REDIS_REPLY_NIL);
    freeReplyObject(r);
    EXPECT(is_status, "OK", "SET k2 v2 EX 100 NX");
    r = cmd("TTL k2");
    CHECK("TTL after SET EX", r->type == REDIS_REPLY_INTEGER && r->integer >= 98 && r->integer <= 100);
    freeReplyObject(r);
    r = cmd("SET k2 v3 NX");
    CHECK("SET NX on existing is nil", r->type == REDIS_REPLY_NIL);
    freeReplyObject(r);
    EXPECT(is_str, "v2", "SET k2 v4 GET");
    EXPECT(is_int, 1, "INCR n");
    EXPECT(is_int, 11, "INCRBY n 10");
    EXPECT(is_int, 6, "DECRBY n 5");
    EXPECT(is_str, "7.5", "INCRBYFLOAT n 1.5");
    EXPECT(is_int, 5, "APPEND ap hello");
    EXPECT(is_str, "ell", "GETRANGE ap 1 3");
    EXPECT(is_int, 5, "STRLEN ap");
    EXPECT(is_status, "OK", "MSET a 1 b 2");
    r = cmd("MGET a nosuch b");
    CHECK("MGET", r->type == REDIS_REPLY_ARRAY && r->elements == 3 && is_str(r->element[0], "1") &&
                      r->element[1]->type == REDIS_REPLY_NIL && is_str(r->element[2], "2"));
    freeReplyObject(r);
    EXPECT(is_str, "1", "GETDEL a");
    EXPECT(is_int, 0, "EXISTS a");
    EXPECT(is_err, "ERR value is not an integer or out of range", "INCR ap");
    EXPECT(is_err, "ERR syntax error", "SET k v NX XX");
    EXPECT(is_err, "ERR wrong number of arguments for 'get' command", "GET");
    EXPECT(is_err, "ERR unknown command 'NOPE', with args beginning with: ", "NOPE");
}

static void test_binary(void)
{
    const char key[] = "bin\0key\r\n";
    const char val[] = "\0\r\n\0value\r\n\xff";
    size_t klen = sizeof(key) - 1, vlen = sizeof(val) - 1;
    EXPECT(is_status, "OK", "SET %b %b", key, klen, val, vlen);
    redisReply *r = cmd("GET %b", key, klen);
    CHECK("binary GET", r->type == REDIS_REPLY_STRING && r->len == vlen && memcmp(r->str, val, vlen) == 0);
    freeReplyObject(r);
    EXPECT(is_int, (long long)vlen, "STRLEN %b", key, klen);
    EXPECT(is_int, 1, "HSET hb %b %b", key, klen, val, vlen);
    r = cmd("HGET hb %b", key, klen);
    CHECK("binary HGET", r->type == REDIS_REPLY_STRING && r->len == vlen && memcmp(r->str, val, vlen) == 0);
    freeReplyObject(r);

    size_t big = 1024 * 1024;
    char *p = malloc(big);
    for (size_t i = 0; i < big; i++) {
        p[i] = (char)((i * 7919) % 251);
    }
    EXPECT(is_status, "OK", "SET big %b", p, big);
    r = cmd("GET big");
    CHECK("1 MB GET", r->type == REDIS_REPLY_STRING && r->len == big && memcmp(r->str, p, big) == 0);
    freeReplyObject(r);
    EXPECT(is_int, (long long)big, "STRLEN big");
    free(p);
}

static void test_pipeline(void)
{
    const int n = 5000;
    fresh_keyspace();
    for (int i = 0; i < n; i++) {
        redisAppendCommand(ctx, "SET pk:%d %d", i, i);
        redisAppendCommand(ctx, "INCR pk:%d", i);
    }
    redisAppendCommand(ctx, "GET pk:%d", n - 1);
    int ok = 1;
    for (int i = 0; i < n; i++) {
        redisReply *r;
        if (redisGetReply(ctx, (void **)&r) != REDIS_OK) {
            printf("FAIL hiredis: pipeline read: %s\n", ctx->errstr);
            exit(1);
        }
        ok &= is_status(r, "OK");
        freeReplyObject(r);
        redisGetReply(ctx, (void **)&r);
        ok &= is_int(r, i + 1);
        freeReplyObject(r);
    }
    CHECK("pipeline of 10000 in order", ok);
    redisReply *r;
    redisGetReply(ctx, (void **)&r);
    char want[32];
    snprintf(want, sizeof want, "%d", n);
    CHECK("pipeline last GET", is_str(r, want));
    freeReplyObject(r);
    if (refused("DBSIZE")) {
        skip("DBSIZE after the pipeline");
    } else {
        EXPECT(is_int, n, "DBSIZE");
    }
}

static void test_keys_hash_expire(void)
{
    fresh_keyspace();
    EXPECT(is_int, 3, "HSET h a 1 b 2 c 3");
    EXPECT(is_str, "2", "HGET h b");
    redisReply *r = cmd("HGETALL h");
    CHECK("HGETALL is 6 elements", r->type == REDIS_REPLY_ARRAY && r->elements == 6);
    freeReplyObject(r);
    EXPECT(is_int, 12, "HINCRBY h a 11");
    EXPECT(is_str, "2.5", "HINCRBYFLOAT h b 0.5");
    EXPECT(is_int, 1, "HDEL h c");
    EXPECT(is_int, 2, "HLEN h");
    EXPECT(is_status, "hash", "TYPE h");
    EXPECT(is_err, "WRONGTYPE Operation against a key holding the wrong kind of value", "GET h");
    EXPECT(is_status, "OK", "RENAME h h2");
    EXPECT(is_int, 1, "COPY h2 h3");
    EXPECT(is_int, 1, "EXPIRE h3 100 NX");
    EXPECT(is_int, 0, "EXPIRE h3 50 GT");
    EXPECT(is_int, 1, "EXPIRE h3 50 LT");
    r = cmd("TTL h3");
    CHECK("TTL", r->type == REDIS_REPLY_INTEGER && r->integer >= 48 && r->integer <= 50);
    freeReplyObject(r);
    EXPECT(is_int, 1, "PERSIST h3");
    EXPECT(is_int, -1, "TTL h3");
    if (refused("KEYS") || refused("SCAN") || refused("DBSIZE")) {
        skip("KEYS, SCAN, DBSIZE");
        return;
    }
    r = cmd("KEYS h*");
    CHECK("KEYS", r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    freeReplyObject(r);
    r = cmd("SCAN 0 COUNT 100");
    CHECK("SCAN", r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                      r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_ARRAY &&
                      r->element[1]->elements == 2);
    freeReplyObject(r);
    EXPECT(is_status, "OK", "SELECT 2");
    EXPECT(is_int, 0, "DBSIZE");
    EXPECT(is_status, "OK", "SELECT 0");
    EXPECT(is_int, 2, "DBSIZE");
}

static void test_multi(void)
{
    EXPECT(is_status, "OK", "MULTI");
    EXPECT(is_status, "QUEUED", "SET m 1");
    EXPECT(is_status, "QUEUED", "INCR m");
    EXPECT(is_status, "QUEUED", "HSET m f v");
    redisReply *r = cmd("EXEC");
    CHECK("EXEC", r->type == REDIS_REPLY_ARRAY && r->elements == 3 && is_status(r->element[0], "OK") &&
                      is_int(r->element[1], 2) &&
                      is_err(r->element[2], "WRONGTYPE Operation against a key holding the wrong kind of value"));
    freeReplyObject(r);
    EXPECT(is_status, "OK", "MULTI");
    EXPECT(is_err, "ERR wrong number of arguments for 'set' command", "SET x");
    EXPECT(is_err, "EXECABORT Transaction discarded because of previous errors.", "EXEC");

    const char *cl = getenv("COMPAT_CLUSTER");
    if ((cl && strcmp(cl, "1") == 0) || refused("WATCH")) {
        printf("SKIP hiredis: WATCH conflict (cluster mode refuses WATCH until EXEC can learn "
               "of writes made through other nodes)\n");
        return;
    }
    redisContext *other = redisConnect(ctx->tcp.host, ctx->tcp.port);
    CHECK("second connection", other && !other->err);
    EXPECT(is_status, "OK", "WATCH m");
    freeReplyObject(redisCommand(other, "SET m 10"));
    EXPECT(is_status, "OK", "MULTI");
    EXPECT(is_status, "QUEUED", "INCR m");
    r = cmd("EXEC");
    CHECK("EXEC after WATCH conflict is nil", r->type == REDIS_REPLY_NIL);
    freeReplyObject(r);
    redisFree(other);
}

static void test_server(void)
{
    redisReply *r = cmd("INFO server");
    CHECK("INFO", r->type == REDIS_REPLY_STRING && strstr(r->str, "redis_version:") != NULL);
    freeReplyObject(r);
    r = cmd("CONFIG GET maxmemory");
    CHECK("CONFIG GET", r->type == REDIS_REPLY_ARRAY && r->elements == 2 && is_str(r->element[0], "maxmemory"));
    freeReplyObject(r);
    r = cmd("TIME");
    CHECK("TIME", r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    freeReplyObject(r);
    r = cmd("COMMAND COUNT");
    CHECK("COMMAND COUNT", r->type == REDIS_REPLY_INTEGER && r->integer > 50);
    freeReplyObject(r);
    EXPECT(is_status, "OK", "CLIENT SETNAME hiredis-test");
    EXPECT(is_str, "hiredis-test", "CLIENT GETNAME");
    EXPECT(is_str, "hi", "ECHO hi");
    EXPECT(is_status, "PONG", "PING");
    r = cmd("HELLO 2");
    CHECK("HELLO 2 is a 14-element array", r->type == REDIS_REPLY_ARRAY && r->elements == 14 &&
                                                is_str(r->element[0], "server"));
    freeReplyObject(r);
}

/* One context per COMPAT_POOL member ("host:port,..."; at most 8), or one to
 * COMPAT_HOST (default 127.0.0.1) and port. 0, or -1 after printing a FAIL. */
static int open_contexts(int port)
{
    struct timeval tv = {10, 0};
    const char *pool = getenv("COMPAT_POOL");
    const char *host = getenv("COMPAT_HOST");
    char addr[128];
    const char *p = pool && *pool ? pool : NULL;
    do {
        char h[128];
        int hp = port;
        snprintf(h, sizeof h, "%s", host && *host ? host : "127.0.0.1");
        if (p) {
            size_t w = strcspn(p, ",");
            snprintf(addr, sizeof addr, "%.*s", (int)(w < sizeof addr ? w : sizeof addr - 1), p);
            p = p[w] ? p + w + 1 : NULL;
            char *colon = strrchr(addr, ':');
            if (colon == NULL) {
                printf("FAIL hiredis: COMPAT_POOL member without a port: %s\n", addr);
                return -1;
            }
            *colon = '\0';
            snprintf(h, sizeof h, "%s", addr);
            hp = atoi(colon + 1);
        }
        redisContext *c = redisConnectWithTimeout(h, hp, tv);
        if (c == NULL || c->err) {
            printf("FAIL hiredis: connect to %s:%d: %s\n", h, hp, c ? c->errstr : "no memory");
            return -1;
        }
        redisSetTimeout(c, tv);
        ctxs[nctx++] = c;
    } while (p && nctx < (int)(sizeof ctxs / sizeof ctxs[0]));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: hiredis_test PORT\n");
        return 2;
    }
    if (open_contexts(atoi(argv[1])) != 0) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    const char *base = getenv("COMPAT_DB_BASE");
    db_next = base ? atoi(base) : 0;
    next_context();
    test_strings();
    next_context();
    test_binary();
    next_context();
    test_pipeline();
    next_context();
    test_keys_hash_expire();
    next_context();
    test_multi();
    next_context();
    fresh_keyspace();
    test_server();
    for (int i = 0; i < nctx; i++) {
        redisFree(ctxs[i]);
    }
    printf("hiredis: %d passed, %d failed\n", passed, failed);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
