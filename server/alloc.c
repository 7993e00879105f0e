/* server/alloc.c: the one allocation wrapper (kv_malloc & co.) and the used-memory
 * figure INFO and eviction read.
 *
 * The normal build links jemalloc, which replaces malloc unprefixed (Debian), so
 * kv_malloc is plain malloc plus an abort on NULL. The sanitizer build defines
 * KVD_NO_JEMALLOC: there a byte counter over kv_* allocations stands in for
 * jemalloc's statistics.
 *
 * HOW kv_used_memory() STAYS CHEAP (jemalloc build)
 *   jemalloc's exact figure, "stats.allocated", needs an "epoch" refresh that
 *   merges every arena's counters: microseconds, too slow to ask before each write
 *   when maxmemory is set. jemalloc also keeps, per thread, monotonic counters of
 *   bytes allocated and deallocated ("thread.allocatedp"/"thread.deallocatedp",
 *   pointers we read for free). The loop thread does nearly all allocation, so
 *     used = base + (loop_alloc - loop_dealloc)
 *   where base is re-anchored by kv_used_memory_refresh() (called from the cron):
 *   base = stats.allocated - (loop_alloc - loop_dealloc) at the same instant.
 *   Between refreshes, only other threads' allocations are missed. Example: at a
 *   refresh stats.allocated = 10 MB and the loop thread's net is 8 MB: base = 2 MB;
 *   the loop thread then allocates 1 MB: used = 2 + 9 = 11 MB, no mallctl call.
 */
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/server.h"
#include "server/server_int.h"

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

size_t kv_allocator_resident(void) {
    return 0;
}

const char *kv_allocator_name(void) {
    return "libc";
}

#else

static uint64_t *loop_allocp, *loop_deallocp; /* the loop thread's counters */
static long long used_base;                   /* see "HOW" above */

static size_t exact_allocated(void) {
    uint64_t epoch = 1;
    size_t sz = sizeof(epoch);
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    size_t allocated = 0;
    sz = sizeof(allocated);
    if (mallctl("stats.allocated", &allocated, &sz, NULL, 0) != 0) {
        return 0;
    }
    return allocated;
}

void kv_used_memory_refresh(void) {
    if (loop_allocp == NULL) {
        size_t sz = sizeof(loop_allocp);
        if (mallctl("thread.allocatedp", &loop_allocp, &sz, NULL, 0) != 0 ||
            mallctl("thread.deallocatedp", &loop_deallocp, &sz, NULL, 0) != 0) {
            loop_allocp = loop_deallocp = NULL;
            return;
        }
    }
    size_t exact = exact_allocated();
    used_base = (long long)exact - (long long)(*loop_allocp - *loop_deallocp);
}

size_t kv_used_memory(void) {
    if (loop_allocp == NULL) {
        return exact_allocated();
    }
    long long used = used_base + (long long)(*loop_allocp - *loop_deallocp);
    return used > 0 ? (size_t)used : 0;
}

size_t kv_allocator_resident(void) {
    uint64_t epoch = 1;
    size_t sz = sizeof(epoch);
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    size_t resident = 0;
    sz = sizeof(resident);
    if (mallctl("stats.resident", &resident, &sz, NULL, 0) != 0) {
        return 0;
    }
    return resident;
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
