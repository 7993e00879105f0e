/* engine/db_test_util.h: the scratch-directory and small-options harness that the
 * engine's DB-level tests share (db_test.c, versions_test.c). Test code only:
 * static functions, included by one test binary each. fake_now is the engine's
 * clock in these tests (lsm_options.clock_ms); background threads read it, so it
 * is atomic. */
#ifndef KVD_DB_TEST_UTIL_H
#define KVD_DB_TEST_UTIL_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/engine.h"

static char tmpl_dir[256];

/* A new empty directory under /tmp named for the test (valid until the next call). */
static const char *fresh_dir_named(const char *tag)
{
    snprintf(tmpl_dir, sizeof(tmpl_dir), "/tmp/kvd-%s-test-XXXXXX", tag);
    if (mkdtemp(tmpl_dir) == NULL) {
        abort();
    }
    return tmpl_dir;
}

static void remove_dir(const char *dir)
{
    lsm_destroy(dir);
    rmdir(dir);
}

static _Atomic uint64_t fake_now = 1700000000000ull; /* read by background threads */
static uint64_t fake_clock(void)
{
    return fake_now;
}

/* Options small enough that a few hundred entries flush, compact and span levels. */
static void small_options(struct lsm_options *o)
{
    lsm_options_init(o);
    o->memtable_size = 16 * 1024;
    o->l1_target_bytes = 64 * 1024;
    o->target_file_size = 32 * 1024;
    o->block_size = 1024;
    o->block_cache_size = 256 * 1024;
    o->clock_ms = fake_clock;
}

#endif
