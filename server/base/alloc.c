/* server/base/alloc.c: the one allocation wrapper (kv_malloc & co.) and the used-memory
 * figure INFO and eviction read.
 *
 * The normal build links jemalloc, which replaces malloc unprefixed (Debian), so
 * kv_malloc is plain malloc plus an abort on NULL. The sanitizer build defines
 * KVD_NO_JEMALLOC: there a byte counter over kv_* allocations stands in for
 * jemalloc's statistics.
 *
 * HOW kv_used_memory() STAYS CHEAP AND EXACT (jemalloc build)
 *   jemalloc's merged figure, "stats.allocated", needs an "epoch" refresh that
 *   merges every arena's counters: microseconds, too slow to ask before each write
 *   when maxmemory is set (and it counts objects parked in thread caches as in
 *   use). jemalloc also keeps, per thread, monotonic counters of bytes allocated and
 *   deallocated ("thread.allocatedp"/"thread.deallocatedp": pointers to them, read
 *   for free). Every thread that allocates registers its pair once
 *   (kv_alloc_thread_register: the loop thread at start, the lazy-free thread, any
 *   later worker), and
 *     used = retired + sum over registered threads of (allocated - deallocated)
 *   A block allocated on one thread and freed on another is +n on the first, -n on
 *   the second: the sum is exact, and costs a few loads per registered thread.
 *   A thread that exits first folds its net into `retired`
 *   (kv_alloc_thread_unregister). Example: the loop thread allocated 12 MB and
 *   freed 3 MB; the lazy-free thread freed 1 MB of it: used = 9 - 1 = 8 MB.
 *   Before any thread registered, stats.allocated (with an epoch) stands in.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/base/base.h"

#ifndef KVD_NO_JEMALLOC
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
#endif

static void oom_abort(size_t n) {
    /* No allocation here: the heap is the thing that failed. */
    char msg[96];
    int len = snprintf(msg, sizeof(msg), "kvd: out of memory allocating %zu bytes\n", n);
    if (len > 0) {
        ssize_t w = write(STDERR_FILENO, msg, (size_t)len);
        (void)w;
    }
    abort();
}

#ifdef KVD_NO_JEMALLOC
static _Atomic size_t used_counter;
#define COUNT_ADD(p) atomic_fetch_add_explicit(&used_counter, malloc_usable_size(p), memory_order_relaxed)
#define COUNT_SUB(p) atomic_fetch_sub_explicit(&used_counter, malloc_usable_size(p), memory_order_relaxed)
#else
#define COUNT_ADD(p) ((void)0)
#define COUNT_SUB(p) ((void)0)
#endif

void *kv_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        oom_abort(n);
    }
    COUNT_ADD(p);
    return p;
}

void *kv_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        oom_abort(n * size);
    }
    COUNT_ADD(p);
    return p;
}

void *kv_realloc(void *p, size_t n) {
    if (p != NULL) {
        COUNT_SUB(p);
    }
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        oom_abort(n);
    }
    COUNT_ADD(q);
    return q;
}

char *kv_strndup(const char *s, size_t n) {
    char *d = kv_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void kv_free(void *p) {
    if (p == NULL) {
        return;
    }
    COUNT_SUB(p);
    free(p);
}

size_t kv_malloc_size(const void *p) {
    return p ? malloc_usable_size((void *)p) : 0;
}

#ifdef KVD_NO_JEMALLOC

size_t kv_used_memory(void) {
    return atomic_load_explicit(&used_counter, memory_order_relaxed);
}

void kv_used_memory_refresh(void) {
}

void kv_alloc_thread_register(void) {
}

void kv_alloc_thread_unregister(void) {
}

size_t kv_allocator_resident(void) {
    return 0;
}

const char *kv_allocator_name(void) {
    return "libc";
}

#else

#define ALLOC_MAX_THREADS 64

struct thread_counters {
    const uint64_t *allocp, *deallocp; /* jemalloc's per-thread cumulative bytes */
};
static struct thread_counters threads[ALLOC_MAX_THREADS];
static _Atomic int nthreads;              /* slots published in threads[] */
static _Atomic int64_t retired;           /* net bytes of threads that left */
static pthread_mutex_t reg_mutex = PTHREAD_MUTEX_INITIALIZER;
static __thread int my_slot = -1;         /* this thread's slot, -1 when none */

/* A jemalloc statistic (stats.allocated, stats.resident...) as of now; 0 when
 * unavailable. */
static size_t jemalloc_stat(const char *name) {
    uint64_t epoch = 1;
    size_t sz = sizeof(epoch);
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    size_t v = 0;
    sz = sizeof(v);
    if (mallctl(name, &v, &sz, NULL, 0) != 0) {
        return 0;
    }
    return v;
}

static size_t exact_allocated(void) {
    return jemalloc_stat("stats.allocated");
}

void kv_alloc_thread_register(void) {
    if (my_slot >= 0) {
        return;
    }
    uint64_t *a = NULL, *d = NULL;
    size_t sz = sizeof(a);
    if (mallctl("thread.allocatedp", &a, &sz, NULL, 0) != 0 ||
        mallctl("thread.deallocatedp", &d, &sz, NULL, 0) != 0) {
        return;
    }
    pthread_mutex_lock(&reg_mutex);
    int n = atomic_load(&nthreads);
    for (int i = 0; i < n; i++) {
        if (threads[i].allocp == NULL) { /* a slot left by an exited thread */
            n = i;
            break;
        }
    }
    if (n < ALLOC_MAX_THREADS) {
        threads[n].allocp = a;
        threads[n].deallocp = d;
        my_slot = n;
        if (n == atomic_load(&nthreads)) {
            atomic_store_explicit(&nthreads, n + 1, memory_order_release);
        }
    }
    pthread_mutex_unlock(&reg_mutex);
}

void kv_alloc_thread_unregister(void) {
    if (my_slot < 0) {
        return;
    }
    pthread_mutex_lock(&reg_mutex);
    struct thread_counters *t = &threads[my_slot];
    atomic_fetch_add(&retired, (int64_t)(*t->allocp - *t->deallocp));
    t->allocp = t->deallocp = NULL;
    my_slot = -1;
    pthread_mutex_unlock(&reg_mutex);
}

/* Mode persistent: the engine's threads allocate and free too (a memtable is
 * filled on the loop thread and freed by the flush thread) and are not registered,
 * so the per-thread sum drifts. There the cron anchors on jemalloc's merged
 * figure and between two crons only the registered threads' change is added:
 *     used = allocated at the last refresh + (registered net now - at refresh) */
static int anchor_mode;
static size_t anchor_allocated;
static int64_t anchor_net;

static int64_t registered_net(void) {
    int n = atomic_load_explicit(&nthreads, memory_order_acquire);
    uint64_t a = 0, d = 0;
    for (int i = 0; i < n; i++) {
        const uint64_t *ap = threads[i].allocp, *dp = threads[i].deallocp;
        if (ap != NULL) {
            a += __atomic_load_n(ap, __ATOMIC_RELAXED);
            d += __atomic_load_n(dp, __ATOMIC_RELAXED);
        }
    }
    return (int64_t)(a - d) + atomic_load_explicit(&retired, memory_order_relaxed);
}

void kv_used_memory_refresh(void) {
    kv_alloc_thread_register(); /* the loop thread, on the first call */
    if (server.mode == MODE_PERSISTENT) {
        anchor_net = registered_net();
        anchor_allocated = exact_allocated();
        anchor_mode = 1;
    }
}

size_t kv_used_memory(void) {
    int n = atomic_load_explicit(&nthreads, memory_order_acquire);
    if (n == 0) {
        return exact_allocated();
    }
    if (anchor_mode) {
        int64_t u = (int64_t)anchor_allocated + (registered_net() - anchor_net);
        return u > 0 ? (size_t)u : 0;
    }
    uint64_t a = 0, d = 0;
    for (int i = 0; i < n; i++) {
        const uint64_t *ap = threads[i].allocp, *dp = threads[i].deallocp;
        if (ap != NULL) {
            a += __atomic_load_n(ap, __ATOMIC_RELAXED);
            d += __atomic_load_n(dp, __ATOMIC_RELAXED);
        }
    }
    int64_t used = (int64_t)(a - d) + atomic_load_explicit(&retired, memory_order_relaxed);
    return used > 0 ? (size_t)used : 0;
}

size_t kv_allocator_resident(void) {
    return jemalloc_stat("stats.resident");
}

const char *kv_allocator_name(void) {
    static char name[64];
    if (name[0] == '\0') {
        const char *ver = NULL;
        size_t sz = sizeof(ver);
        if (mallctl("version", &ver, &sz, NULL, 0) == 0 && ver != NULL) {
            /* "5.3.0-0-g54eaed1d8b56..." -> "jemalloc-5.3.0" */
            size_t n = strcspn(ver, "-");
            snprintf(name, sizeof(name), "jemalloc-%.*s", (int)n, ver);
        } else {
            snprintf(name, sizeof(name), "jemalloc");
        }
    }
    return name;
}

#endif
