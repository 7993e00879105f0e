/* tests/bench/zipf_load.c: a cache-aside load on a Redis-protocol server, with keys
 * drawn from a Zipf distribution, for tests/bench/cache.sh.
 *
 * Mode "zipf" (default): each of C processes opens one connection and, P requests at
 * a time (pipelined), sends GET for keys drawn by rank from Zipf(s) over N keys, then
 * SET (value of D bytes) for every key that missed, as an application in front of a
 * database would. Counts hits and misses, over all requests and over the requests
 * after the first W (the steady state once the cache has filled), and prints one
 * line of name=value pairs:
 *   requests=.. hits=.. misses=.. sets=.. errors=.. seconds=.. ops_per_sec=..
 *   hit_rate=.. steady_hit_rate=..
 * ops counts GETs and SETs. The same seed gives the same key sequence on any server.
 *
 * Mode "fill": one connection writes keys "exp:<i>" for i in [0, N) with a value of
 * D bytes and PX T (T = 0: no TTL), pipelined 1000 at a time; prints requests= and
 * seconds=.
 *
 * HOW THE ZIPF DRAW WORKS: cdf[i] = (sum over k = 1..i+1 of 1/k^s) / (that sum over
 * all N), computed once; a uniform u in [0, 1) picks the first rank whose cdf >= u by
 * binary search. With N = 4 and s = 1, cdf = {0.48, 0.72, 0.88, 1.0}: u = 0.5 is rank
 * 1 (the second most popular key). Rank r is key "key:<r>".
 *
 * It leaves starting and stopping servers, and comparing them, to cache.sh.
 * Build: gcc -O2 -o zipf_load zipf_load.c -lhiredis -lm
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct opts {
    const char *host;    /* server address */
    int port;            /* server port */
    const char *mode;    /* "zipf" or "fill" */
    long keys;           /* N: key space */
    long requests;       /* GETs in all (zipf), over all processes */
    long warmup;         /* GETs per process not counted in steady_hit_rate */
    double s;            /* Zipf exponent */
    int vsize;           /* value bytes */
    int pipeline;        /* requests in flight per connection */
    int conns;           /* processes, one connection each */
    long ttl_ms;         /* fill: PX, 0 = none */
    uint64_t seed;       /* PRNG seed; process i uses seed + i */
};

struct counts {
    long requests, hits, misses, sets, errors, steady_hits, steady_misses;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* xorshift64*: uniform in [0, 1). */
static double rand01(uint64_t *st) {
    uint64_t x = *st;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *st = x;
    return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* The Zipf table (see HOW THE ZIPF DRAW WORKS). Returned memory: free(). */
static double *zipf_cdf(long n, double s) {
    double *cdf = malloc(sizeof(double) * (size_t)n);
    if (cdf == NULL) {
        return NULL;
    }
    double sum = 0;
    for (long i = 0; i < n; i++) {
        sum += 1.0 / pow((double)(i + 1), s);
        cdf[i] = sum;
    }
    for (long i = 0; i < n; i++) {
        cdf[i] /= sum;
    }
    return cdf;
}

static long zipf_draw(const double *cdf, long n, uint64_t *st) {
    double u = rand01(st);
    long lo = 0, hi = n - 1;
    while (lo < hi) {
        long mid = lo + (hi - lo) / 2;
        if (cdf[mid] >= u) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

static redisContext *connect_or_die(const struct opts *o) {
    struct timeval tv = {30, 0};
    redisContext *c = redisConnectWithTimeout(o->host, o->port, tv);
    if (c == NULL || c->err) {
        fprintf(stderr, "zipf_load: connect %s:%d: %s\n", o->host, o->port,
                c ? c->errstr : "out of memory");
        exit(2);
    }
    redisSetTimeout(c, tv);
    return c;
}

static redisReply *reply_or_die(redisContext *c) {
    void *r = NULL;
    if (redisGetReply(c, &r) != REDIS_OK || r == NULL) {
        fprintf(stderr, "zipf_load: %s\n", c->errstr);
        exit(2);
    }
    return r;
}

/* One process of the zipf mode: `requests` GETs, SET on each miss. */
static void run_zipf(const struct opts *o, const double *cdf, long requests, uint64_t seed,
                     struct counts *k) {
    redisContext *c = connect_or_die(o);
    char *val = malloc((size_t)o->vsize + 1);
    long *batch = malloc(sizeof(long) * (size_t)o->pipeline);
    int *missed = malloc(sizeof(int) * (size_t)o->pipeline);
    if (val == NULL || batch == NULL || missed == NULL) {
        exit(2);
    }
    memset(val, 'x', (size_t)o->vsize);
    uint64_t st = seed * 0x9E3779B97F4A7C15ULL + 1;
    char key[32];
    long done = 0;
    while (done < requests) {
        int n = (int)(requests - done < o->pipeline ? requests - done : o->pipeline);
        for (int i = 0; i < n; i++) {
            batch[i] = zipf_draw(cdf, o->keys, &st);
            snprintf(key, sizeof(key), "key:%ld", batch[i]);
            redisAppendCommand(c, "GET %s", key);
        }
        int nmiss = 0;
        for (int i = 0; i < n; i++) {
            redisReply *r = reply_or_die(c);
            int steady = done + i >= o->warmup;
            missed[i] = 0;
            if (r->type == REDIS_REPLY_STRING) {
                k->hits++;
                k->steady_hits += steady;
            } else if (r->type == REDIS_REPLY_NIL) {
                k->misses++;
                k->steady_misses += steady;
                missed[i] = 1;
                nmiss++;
            } else {
                k->errors++;
            }
            freeReplyObject(r);
        }
        for (int i = 0; i < n; i++) {
            if (missed[i]) {
                snprintf(key, sizeof(key), "key:%ld", batch[i]);
                redisAppendCommand(c, "SET %s %b", key, val, (size_t)o->vsize);
            }
        }
        for (int i = 0; i < nmiss; i++) {
            redisReply *r = reply_or_die(c);
            if (r->type == REDIS_REPLY_ERROR) {
                k->errors++;
            }
            k->sets++;
            freeReplyObject(r);
        }
        done += n;
        k->requests += n;
    }
    free(missed);
    free(batch);
    free(val);
    redisFree(c);
}

static int mode_zipf(const struct opts *o) {
    double *cdf = zipf_cdf(o->keys, o->s);
    if (cdf == NULL) {
        fprintf(stderr, "zipf_load: out of memory for %ld keys\n", o->keys);
        return 2;
    }
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return 2;
    }
    double t0 = now_s();
    for (int p = 0; p < o->conns; p++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            struct counts k = {0};
            long share = o->requests / o->conns + (p < o->requests % o->conns);
            run_zipf(o, cdf, share, o->seed + (uint64_t)p, &k);
            if (write(fds[1], &k, sizeof(k)) != (ssize_t)sizeof(k)) {
                _exit(2);
            }
            _exit(0);
        }
    }
    close(fds[1]);
    struct counts sum = {0}, k;
    int got = 0;
    while (read(fds[0], &k, sizeof(k)) == (ssize_t)sizeof(k)) {
        sum.requests += k.requests;
        sum.hits += k.hits;
        sum.misses += k.misses;
        sum.sets += k.sets;
        sum.errors += k.errors;
        sum.steady_hits += k.steady_hits;
        sum.steady_misses += k.steady_misses;
        got++;
    }
    int status, bad = 0;
    while (wait(&status) > 0) {
        bad |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    double secs = now_s() - t0;
    free(cdf);
    if (bad || got != o->conns) {
        fprintf(stderr, "zipf_load: a worker failed\n");
        return 2;
    }
    long steady = sum.steady_hits + sum.steady_misses;
    printf("requests=%ld hits=%ld misses=%ld sets=%ld errors=%ld seconds=%.2f "
           "ops_per_sec=%.0f hit_rate=%.4f steady_hit_rate=%.4f\n",
           sum.requests, sum.hits, sum.misses, sum.sets, sum.errors, secs,
           (sum.requests + sum.sets) / secs, (double)sum.hits / (double)sum.requests,
           steady ? (double)sum.steady_hits / (double)steady : 0.0);
    return 0;
}

static int mode_fill(const struct opts *o) {
    redisContext *c = connect_or_die(o);
    char *val = malloc((size_t)o->vsize + 1);
    if (val == NULL) {
        return 2;
    }
    memset(val, 'v', (size_t)o->vsize);
    char key[32];
    double t0 = now_s();
    long errors = 0;
    for (long i = 0; i < o->keys; i += 1000) {
        long n = o->keys - i < 1000 ? o->keys - i : 1000;
        for (long j = 0; j < n; j++) {
            snprintf(key, sizeof(key), "exp:%ld", i + j);
            if (o->ttl_ms > 0) {
                redisAppendCommand(c, "SET %s %b PX %ld", key, val, (size_t)o->vsize, o->ttl_ms);
            } else {
                redisAppendCommand(c, "SET %s %b", key, val, (size_t)o->vsize);
            }
        }
        for (long j = 0; j < n; j++) {
            redisReply *r = reply_or_die(c);
            errors += r->type == REDIS_REPLY_ERROR;
            freeReplyObject(r);
        }
    }
    printf("requests=%ld errors=%ld seconds=%.2f\n", o->keys, errors, now_s() - t0);
    free(val);
    redisFree(c);
    return errors ? 1 : 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: zipf_load [-h host] [-p port] [-m zipf|fill] [-n keys] [-r requests]\n"
            "                 [-w warmup-per-conn] [-s exponent] [-d value-bytes]\n"
            "                 [-P pipeline] [-c conns] [-t ttl-ms] [-S seed]\n");
    exit(2);
}

int main(int argc, char **argv) {
    struct opts o = {"127.0.0.1", 6379, "zipf", 1000000, 1000000, -1, 0.99, 100, 16, 4, 0, 1};
    int ch;
    while ((ch = getopt(argc, argv, "h:p:m:n:r:w:s:d:P:c:t:S:")) != -1) {
        switch (ch) {
        case 'h': o.host = optarg; break;
        case 'p': o.port = atoi(optarg); break;
        case 'm': o.mode = optarg; break;
        case 'n': o.keys = atol(optarg); break;
        case 'r': o.requests = atol(optarg); break;
        case 'w': o.warmup = atol(optarg); break;
        case 's': o.s = atof(optarg); break;
        case 'd': o.vsize = atoi(optarg); break;
        case 'P': o.pipeline = atoi(optarg); break;
        case 'c': o.conns = atoi(optarg); break;
        case 't': o.ttl_ms = atol(optarg); break;
        case 'S': o.seed = strtoull(optarg, NULL, 10); break;
        default: usage();
        }
    }
    if (o.keys <= 0 || o.requests <= 0 || o.pipeline <= 0 || o.conns <= 0 || o.vsize < 0) {
        usage();
    }
    if (o.warmup < 0) {
        o.warmup = o.requests / o.conns / 2; /* default: the first half of each */
    }
    if (strcmp(o.mode, "fill") == 0) {
        return mode_fill(&o);
    }
    if (strcmp(o.mode, "zipf") == 0) {
        return mode_zipf(&o);
    }
    usage();
    return 2;
}
