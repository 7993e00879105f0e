/* engine/engine_bench.c: kvd-engine-bench, db_bench's workloads and output lines
 * over kvd's engine, so that tests/bench/engine.sh can run both tools with the
 * same flags and compare them line by line.
 *
 * Keys are made as db_bench makes them: a number drawn uniformly from [0, num)
 * (in order for fillseq/readseq), written as 8 big-endian bytes and padded with
 * '0' to key_size. readmissing reads keys one byte longer (a '0' more), which are
 * never present, as db_bench does. Values come from a 1 MiB buffer of random
 * bytes, a window per write. Each benchmark prints
 *   name         :    X micros/op Y ops/sec Z seconds N operations;  M MB/s
 * Extra benchmarks: "compact" (full compaction) and "stats" (engine counters).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"

struct flags {
    char benchmarks[1024];
    int64_t num;
    int64_t reads;
    int key_size;
    int value_size;
    char db[512];
    int sync;
    int use_existing_db;
    uint64_t seed;
    int threads;
    int bloom_bits;
    int64_t write_buffer_size;
    int64_t cache_size;
    int histogram;
    int compaction_style;
};

static struct flags F = {
    .benchmarks = "fillseq,fillrandom,overwrite,readrandom,readmissing,readseq",
    .num = 1000000,
    .reads = -1,
    .key_size = 16,
    .value_size = 100,
    .db = "/tmp/kvd-engine-bench",
    .sync = 0,
    .use_existing_db = 0,
    .seed = 1,
    .threads = 1,
    .bloom_bits = 10,
    .write_buffer_size = 64 << 20,
    .cache_size = 8 << 20,
    .histogram = 0,
    .compaction_style = 0,
};

static struct lsm_db *db;
static char *value_data; /* 1 MiB of random bytes */
#define VALUE_DATA_SIZE (1 << 20)

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void make_key(char *buf, uint64_t v, int key_size)
{
    int n = key_size < 8 ? key_size : 8;
    for (int i = 0; i < n; i++) {
        buf[i] = (char)(v >> ((n - 1 - i) * 8));
    }
    if (key_size > 8) {
        memset(buf + 8, '0', (size_t)(key_size - 8));
    }
}

/* ---- latency histogram (log-spaced buckets) ------------------------------------------------ */

#define HBUCKETS 200
struct hist {
    uint64_t b[HBUCKETS];
    uint64_t n;
    double sum;
};

static int hist_bucket(double us)
{
    int i = us <= 0.1 ? 0 : (int)(20.0 * __builtin_log10(us / 0.1));
    return i < 0 ? 0 : i >= HBUCKETS ? HBUCKETS - 1 : i;
}

static double hist_upper(int i)
{
    return 0.1 * __builtin_pow(10.0, (i + 1) / 20.0);
}

static double hist_pct(const struct hist *h, double p)
{
    uint64_t want = (uint64_t)(p / 100.0 * (double)h->n), acc = 0;
    for (int i = 0; i < HBUCKETS; i++) {
        acc += h->b[i];
        if (acc > want) {
            return hist_upper(i);
        }
    }
    return hist_upper(HBUCKETS - 1);
}

/* ---- one thread's work ----------------------------------------------------------------------- */

enum op {
    OP_FILLSEQ,
    OP_FILLRANDOM,
    OP_OVERWRITE,
    OP_READRANDOM,
    OP_READMISSING,
    OP_READSEQ,
    OP_SEEKRANDOM,
    OP_DELETERANDOM
};

struct thread_state {
    int id;
    enum op op;
    int64_t done;
    int64_t found;
    int64_t bytes;
    int errors;
    struct hist h;
    pthread_t th;
};

static void *run_thread(void *arg)
{
    struct thread_state *t = arg;
    uint64_t rs = F.seed * 1000003ull + (uint64_t)t->id * 7919ull + (uint64_t)t->op;
    char key[64];
    struct lsm_value v = LSM_VALUE_INIT;
    size_t voff = 0;
    int flags = F.sync ? LSM_WRITE_SYNC : LSM_WRITE_NOSYNC;
    int64_t n = (t->op >= OP_READRANDOM && t->op <= OP_SEEKRANDOM && F.reads >= 0)
                    ? F.reads
                    : F.num;
    struct lsm_iter *it = NULL;
    if (t->op == OP_READSEQ) {
        it = lsm_iter_create(db, NULL);
        lsm_iter_seek_first(it);
    } else if (t->op == OP_SEEKRANDOM) {
        it = lsm_iter_create(db, NULL);
    }
    double last = F.histogram ? now_sec() : 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t k = t->op == OP_FILLSEQ ? (uint64_t)i : splitmix(&rs) % (uint64_t)F.num;
        int rc = LSM_OK;
        switch (t->op) {
        case OP_FILLSEQ:
        case OP_FILLRANDOM:
        case OP_OVERWRITE:
            make_key(key, k, F.key_size);
            if (voff + (size_t)F.value_size > VALUE_DATA_SIZE) {
                voff = 0;
            }
            rc = lsm_put(db, key, (size_t)F.key_size, value_data + voff,
                         (size_t)F.value_size, NULL, flags, NULL);
            voff += (size_t)F.value_size;
            t->bytes += F.key_size + F.value_size;
            break;
        case OP_DELETERANDOM:
            make_key(key, k, F.key_size);
            rc = lsm_delete(db, key, (size_t)F.key_size, NULL, flags, NULL);
            t->bytes += F.key_size;
            break;
        case OP_READRANDOM:
        case OP_READMISSING: {
            int ks = F.key_size + (t->op == OP_READMISSING);
            make_key(key, k, ks);
            rc = lsm_get(db, NULL, key, (size_t)ks, &v);
            if (rc == LSM_OK) {
                t->found++;
                t->bytes += ks + (int64_t)v.len;
            }
            if (rc == LSM_NOTFOUND) {
                rc = LSM_OK;
            }
            break;
        }
        case OP_READSEQ:
            if (!lsm_iter_valid(it)) {
                n = i; /* end of data */
                continue;
            }
            {
                size_t kl, vl;
                lsm_iter_key(it, &kl);
                lsm_iter_value(it, &vl);
                t->bytes += (int64_t)(kl + vl);
            }
            lsm_iter_next(it);
            break;
        case OP_SEEKRANDOM: {
            make_key(key, k, F.key_size);
            lsm_iter_seek(it, key, (size_t)F.key_size);
            size_t kl;
            if (lsm_iter_valid(it)) {
                const char *got = lsm_iter_key(it, &kl);
                if (kl == (size_t)F.key_size && memcmp(got, key, kl) == 0) {
                    t->found++;
                }
            }
            break;
        }
        }
        if (rc != LSM_OK) {
            if (t->errors++ == 0) {
                fprintf(stderr, "error: %s: %s\n", lsm_status_name(rc), lsm_errmsg(db));
            }
            break;
        }
        t->done++;
        if (F.histogram) {
            double now = now_sec();
            double us = (now - last) * 1e6;
            t->h.b[hist_bucket(us)]++;
            t->h.n++;
            t->h.sum += us;
            last = now;
        }
    }
    lsm_iter_destroy(&it);
    lsm_value_free(&v);
    return NULL;
}

/* ---- setup ------------------------------------------------------------------------------------ */

static int open_db(bool fresh)
{
    if (fresh) {
        lsm_destroy(F.db);
    }
    struct lsm_options o;
    lsm_options_init(&o);
    o.memtable_size = (size_t)F.write_buffer_size;
    o.block_cache_size = (size_t)F.cache_size;
    o.bloom_bits_per_key = F.bloom_bits;
    o.compaction_style =
        F.compaction_style ? LSM_COMPACTION_SIZE_TIERED : LSM_COMPACTION_LEVELED;
    struct lsm_err err;
    int rc = lsm_open(F.db, &o, &db, &err);
    if (rc != LSM_OK) {
        fprintf(stderr, "open %s: %s\n", F.db, err.msg);
    }
    return rc;
}

static void print_stats(void)
{
    struct lsm_stats st;
    lsm_stats(db, &st);
    printf("stats        : levels");
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        printf(" L%d=%d/%.1fMB", l, st.files_per_level[l],
               st.bytes_per_level[l] / 1048576.0);
    }
    printf("\n");
    printf("stats        : live_sst_bytes=%" PRIu64 " user_bytes=%" PRIu64
           " wal_bytes=%" PRIu64 " flush_bytes=%" PRIu64 " compaction_written=%" PRIu64
           "\n",
           st.live_sst_bytes, st.user_bytes_written, st.wal_bytes, st.flush_bytes,
           st.compaction_bytes_written);
    printf("stats        : write_amplification=%.2f space_amplification=%.3f"
           " pending_compaction_bytes=%" PRIu64 " memtable_bytes=%" PRIu64 "\n",
           st.write_amplification, st.space_amplification, st.pending_compaction_bytes,
           st.memtable_bytes);
    printf("stats        : block_cache_hit_rate=%.3f bloom_useful=%" PRIu64
           " write_stalls=%" PRIu64 " stall_micros=%" PRIu64 " slowdowns=%" PRIu64
           " wal_syncs=%" PRIu64 " flushes=%" PRIu64 " compactions=%" PRIu64 "\n",
           st.block_cache_hit_rate, st.bloom_useful, st.write_stalls,
           st.write_stall_micros, st.write_slowdowns, st.wal_syncs, st.flushes,
           st.compactions);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("stats        : peak_rss_kb=%ld\n", ru.ru_maxrss);
}

static int run_benchmark(const char *name)
{
    static const struct {
        const char *name;
        enum op op;
        bool fresh;
    } table[] = {
        {"fillseq", OP_FILLSEQ, true},          {"fillrandom", OP_FILLRANDOM, true},
        {"overwrite", OP_OVERWRITE, false},     {"readrandom", OP_READRANDOM, false},
        {"readmissing", OP_READMISSING, false}, {"readseq", OP_READSEQ, false},
        {"seekrandom", OP_SEEKRANDOM, false},   {"deleterandom", OP_DELETERANDOM, false},
    };
    if (strcmp(name, "compact") == 0 || strcmp(name, "stats") == 0) {
        if (db == NULL && open_db(false) != LSM_OK) {
            return 1;
        }
        if (name[0] == 's') {
            print_stats();
            return 0;
        }
        double t0 = now_sec();
        int rc = lsm_compact_range(db, NULL, 0, NULL, 0);
        double el = now_sec() - t0;
        printf("%-12s : %11.3f micros/op %ld ops/sec %.3f seconds %d operations;\n", name,
               el * 1e6, (long)(1.0 / el), el, 1);
        return rc != LSM_OK;
    }
    size_t i;
    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(table[i].name, name) == 0) {
            break;
        }
    }
    if (i == sizeof(table) / sizeof(table[0])) {
        fprintf(stderr, "unknown benchmark '%s'\n", name);
        return 1;
    }
    bool fresh = table[i].fresh && !F.use_existing_db;
    if (fresh && db != NULL) {
        lsm_close(&db);
    }
    if (db == NULL && open_db(fresh) != LSM_OK) {
        return 1;
    }
    struct thread_state *ts = calloc((size_t)F.threads, sizeof(*ts));
    double t0 = now_sec();
    for (int t = 0; t < F.threads; t++) {
        ts[t].id = t;
        ts[t].op = table[i].op;
        pthread_create(&ts[t].th, NULL, run_thread, &ts[t]);
    }
    int64_t done = 0, found = 0, bytes = 0;
    int errors = 0;
    struct hist h = {0};
    for (int t = 0; t < F.threads; t++) {
        pthread_join(ts[t].th, NULL);
        done += ts[t].done;
        found += ts[t].found;
        bytes += ts[t].bytes;
        errors += ts[t].errors;
        for (int b = 0; b < HBUCKETS; b++) {
            h.b[b] += ts[t].h.b[b];
        }
        h.n += ts[t].h.n;
        h.sum += ts[t].h.sum;
    }
    double el = now_sec() - t0;
    if (done == 0) {
        done = 1;
    }
    char rate[64] = "";
    if (bytes > 0) {
        snprintf(rate, sizeof(rate), " %6.1f MB/s", (double)bytes / 1048576.0 / el);
    }
    char extra[64] = "";
    if (table[i].op >= OP_READRANDOM && table[i].op != OP_READSEQ &&
        table[i].op != OP_DELETERANDOM) {
        snprintf(extra, sizeof(extra), " (%" PRId64 " of %" PRId64 " found)", found,
                 done);
    }
    printf("%-12s : %11.3f micros/op %ld ops/sec %.3f seconds %" PRId64
           " operations;%s%s\n",
           name, el * 1e6 * F.threads / (double)done, (long)((double)done / el), el, done,
           rate, extra);
    if (F.histogram && h.n > 0) {
        printf("Microseconds per %s: Average %.4f P50 %.2f P99 %.2f P99.9 %.2f\n", name,
               h.sum / (double)h.n, hist_pct(&h, 50), hist_pct(&h, 99),
               hist_pct(&h, 99.9));
    }
    fflush(stdout);
    free(ts);
    return errors != 0;
}

/* ---- flags ------------------------------------------------------------------------------------- */

static int parse_flags(int argc, char **argv)
{
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        while (*a == '-') {
            a++;
        }
        const char *eq = strchr(a, '=');
        char name[64];
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (nl >= sizeof(name)) {
            nl = sizeof(name) - 1;
        }
        memcpy(name, a, nl);
        name[nl] = '\0';
        const char *val = eq ? eq + 1 : "1";
        if (strcmp(name, "benchmarks") == 0) {
            snprintf(F.benchmarks, sizeof(F.benchmarks), "%s", val);
        } else if (strcmp(name, "num") == 0) {
            F.num = atoll(val);
        } else if (strcmp(name, "reads") == 0) {
            F.reads = atoll(val);
        } else if (strcmp(name, "key_size") == 0) {
            F.key_size = atoi(val);
        } else if (strcmp(name, "value_size") == 0) {
            F.value_size = atoi(val);
        } else if (strcmp(name, "db") == 0) {
            snprintf(F.db, sizeof(F.db), "%s", val);
        } else if (strcmp(name, "sync") == 0) {
            F.sync = atoi(val) || strcmp(val, "true") == 0;
        } else if (strcmp(name, "use_existing_db") == 0) {
            F.use_existing_db = atoi(val) || strcmp(val, "true") == 0;
        } else if (strcmp(name, "seed") == 0) {
            F.seed = strtoull(val, NULL, 10);
        } else if (strcmp(name, "threads") == 0) {
            F.threads = atoi(val) > 0 ? atoi(val) : 1;
        } else if (strcmp(name, "bloom_bits") == 0) {
            F.bloom_bits = atoi(val) < 0 ? 10 : atoi(val);
        } else if (strcmp(name, "write_buffer_size") == 0) {
            F.write_buffer_size = atoll(val);
        } else if (strcmp(name, "cache_size") == 0) {
            F.cache_size = atoll(val);
        } else if (strcmp(name, "histogram") == 0) {
            F.histogram = atoi(val) || strcmp(val, "true") == 0;
        } else if (strcmp(name, "compaction_style") == 0) {
            F.compaction_style = atoi(val);
        } else if (strcmp(name, "compression_type") == 0) {
            if (strcmp(val, "none") != 0) {
                fprintf(stderr, "--compression_type=%s: only none is supported\n", val);
                bad++;
            }
        } else {
            fprintf(stderr, "unknown flag: %s\n", argv[i]);
            bad++;
        }
    }
    if (F.key_size < 8 || F.key_size > 60 || F.value_size < 0 || F.num <= 0) {
        fprintf(stderr, "bad --key_size (8..60), --value_size or --num\n");
        bad++;
    }
    return bad;
}

int main(int argc, char **argv)
{
    if (parse_flags(argc, argv) != 0) {
        fprintf(stderr,
                "usage: %s --benchmarks=fillseq,fillrandom,overwrite,readrandom,"
                "readmissing,readseq,seekrandom,deleterandom,compact,stats --num=N "
                "--reads=N --key_size=16 --value_size=100 --db=DIR --sync=0|1 "
                "--use_existing_db=0|1 --seed=1 --threads=1 --bloom_bits=10 "
                "--compression_type=none --write_buffer_size=B --cache_size=B "
                "--histogram=0|1 --compaction_style=0|1\n",
                argv[0]);
        return 2;
    }
    value_data = malloc(VALUE_DATA_SIZE);
    uint64_t s = 301;
    for (size_t i = 0; i < VALUE_DATA_SIZE; i++) {
        value_data[i] = (char)(' ' + splitmix(&s) % 95);
    }
    printf("Keys:       %d bytes each\nValues:     %d bytes each\nEntries:    %" PRId64
           "\nDB path: [%s]\n",
           F.key_size, F.value_size, F.num, F.db);
    int failed = 0;
    char *list = strdup(F.benchmarks);
    for (char *save, *b = strtok_r(list, ",", &save); b != NULL;
         b = strtok_r(NULL, ",", &save)) {
        failed |= run_benchmark(b);
        if (failed) {
            break;
        }
    }
    free(list);
    if (db != NULL) {
        lsm_close(&db);
    }
    free(value_data);
    return failed;
}
