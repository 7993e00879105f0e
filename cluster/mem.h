/* cluster/mem.h: allocation that aborts on out-of-memory, for the pure protocol
 * code of cluster/ (ring, messages, operations, hints, simulator). Header only.
 * Every size is checked by the caller before it allocates; these never return NULL.
 */
#ifndef KVD_CLUSTER_MEM_H
#define KVD_CLUSTER_MEM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void *cl_oom(size_t n) {
    fprintf(stderr, "cluster: out of memory allocating %zu bytes\n", n);
    abort();
}

static inline void *cl_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    return p ? p : cl_oom(n);
}

static inline void *cl_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    return p ? p : cl_oom(n * size);
}

static inline void *cl_realloc(void *old, size_t n) {
    void *p = realloc(old, n ? n : 1);
    return p ? p : cl_oom(n);
}

static inline void *cl_memdup(const void *src, size_t n) {
    void *p = cl_malloc(n);
    if (n) {
        memcpy(p, src, n);
    }
    return p;
}

#endif
