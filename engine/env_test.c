/* engine/env_test.c: the file layer and its fault injection. */
#include "engine/env.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "tests/test.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/kvd-env-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
}

static void remove_dir(void)
{
    char **names;
    size_t n;
    if (env_list_dir(dir, &names, &n, NULL) == LSM_OK) {
        for (size_t i = 0; i < n; i++) {
            char p[256];
            snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
            unlink(p);
        }
        env_free_names(names, n);
    }
    rmdir(dir);
}

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static uint64_t size_of(const char *path)
{
    struct env_file *f;
    uint64_t size = UINT64_MAX;
    if (env_open_read(path, &f, NULL) == LSM_OK) {
        size = f->size;
        env_close(&f);
    }
    return size;
}

static void test_env_write_read_roundtrip(void)
{
    char p[256];
    path_of(p, sizeof(p), "a");
    struct env_file *f;
    struct lsm_err err;
    CHECK_EQ_INT(env_create(p, &f, &err), LSM_OK);
    CHECK_EQ_INT(env_append(f, "hello ", 6, &err), LSM_OK);
    CHECK_EQ_INT(env_append(f, "world", 5, &err), LSM_OK);
    CHECK_EQ_INT(f->size, 11);
    CHECK_EQ_INT(env_pwrite(f, "W", 1, 6, &err), LSM_OK);
    CHECK_EQ_INT(env_datasync(f, &err), LSM_OK);
    char buf[32];
    size_t got;
    CHECK_EQ_INT(env_pread(f, buf, sizeof(buf), 0, &got, &err), LSM_OK);
    CHECK_EQ_MEM(buf, got, "hello World", 11);
    CHECK_EQ_INT(env_pread(f, buf, 4, 9, &got, &err), LSM_OK);
    CHECK_EQ_MEM(buf, got, "ld", 2);
    env_close(&f);
    CHECK(f == NULL);

    char *all;
    size_t len;
    CHECK_EQ_INT(env_read_file(p, &all, &len, &err), LSM_OK);
    CHECK_EQ_MEM(all, len, "hello World", 11);
    lsm_free(all);

    char q[256];
    path_of(q, sizeof(q), "b");
    CHECK_EQ_INT(env_rename(p, q, &err), LSM_OK);
    CHECK(!env_exists(p));
    CHECK(env_exists(q));
    CHECK_EQ_INT(env_open_read(p, &f, &err), LSM_NOTFOUND);
    CHECK(strstr(err.msg, "kvd-env-") != NULL);
    CHECK_EQ_INT(env_unlink(q, &err), LSM_OK);
    CHECK_EQ_INT(env_unlink(q, &err), LSM_NOTFOUND);
}

static void test_env_preallocate_keeps_append_offset(void)
{
    char p[256];
    path_of(p, sizeof(p), "pre");
    struct env_file *f;
    CHECK_EQ_INT(env_create(p, &f, NULL), LSM_OK);
    CHECK_EQ_INT(env_preallocate(f, 0, 1 << 20, NULL), LSM_OK);
    CHECK_EQ_INT(f->size, 0);
    CHECK_EQ_INT(env_append(f, "abc", 3, NULL), LSM_OK);
    uint64_t sz;
    CHECK_EQ_INT(env_file_size(f, &sz, NULL), LSM_OK);
    CHECK_EQ_INT(sz, 1 << 20);
    char buf[4];
    size_t got;
    CHECK_EQ_INT(env_pread(f, buf, 4, 0, &got, NULL), LSM_OK);
    CHECK_EQ_MEM(buf, got, "abc\0", 4);
    CHECK_EQ_INT(env_truncate(f, 3, NULL), LSM_OK);
    CHECK_EQ_INT(env_file_size(f, &sz, NULL), LSM_OK);
    CHECK_EQ_INT(sz, 3);
    env_close(&f);
    env_unlink(p, NULL);
}

static void test_env_list_dir_and_lock(void)
{
    char p[256], lockp[256];
    path_of(p, sizeof(p), "x1");
    path_of(lockp, sizeof(lockp), "LOCK");
    struct env_file *f;
    CHECK_EQ_INT(env_create(p, &f, NULL), LSM_OK);
    env_close(&f);
    struct env_lock *l1 = NULL, *l2 = NULL;
    struct lsm_err err;
    CHECK_EQ_INT(env_lock_file(lockp, &l1, &err), LSM_OK);
    CHECK_EQ_INT(env_lock_file(lockp, &l2, &err), LSM_BUSY);
    CHECK(l2 == NULL);
    env_unlock(&l1);
    CHECK(l1 == NULL);
    CHECK_EQ_INT(env_lock_file(lockp, &l2, &err), LSM_OK);
    env_unlock(&l2);

    char **names;
    size_t n;
    CHECK_EQ_INT(env_list_dir(dir, &names, &n, &err), LSM_OK);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        seen += strcmp(names[i], "x1") == 0 || strcmp(names[i], "LOCK") == 0;
    }
    env_free_names(names, n);
    CHECK_EQ_INT(seen, 2);
    env_unlink(p, NULL);
    env_unlink(lockp, NULL);
    CHECK_EQ_INT(env_mkdir(dir, &err), LSM_OK); /* exists: fine */
}

static void test_env_memory_file(void)
{
    struct env_file *f;
    CHECK_EQ_INT(env_create_memory("mem", &f, NULL), LSM_OK);
    CHECK(f->memory);
    CHECK_EQ_INT(env_append(f, "xyz", 3, NULL), LSM_OK);
    char buf[8];
    size_t got;
    CHECK_EQ_INT(env_pread(f, buf, 8, 0, &got, NULL), LSM_OK);
    CHECK_EQ_MEM(buf, got, "xyz", 3);
    env_close(&f);
}

static void test_env_fault_drop_unsynced_truncates(void)
{
    char p[256];
    path_of(p, sizeof(p), "wal");
    struct env_file *f;
    /* the file exists and its directory is synced before fault mode starts */
    CHECK_EQ_INT(env_create(p, &f, NULL), LSM_OK);
    CHECK_EQ_INT(env_sync_dir(dir, NULL), LSM_OK);
    env_fault_enable(true);
    CHECK_EQ_INT(env_append(f, "0123456789", 10, NULL), LSM_OK);
    CHECK_EQ_INT(env_datasync(f, NULL), LSM_OK);
    CHECK_EQ_INT(env_append(f, "abcdef", 6, NULL), LSM_OK);
    CHECK_EQ_INT(env_pwrite(f, "XY", 2, 3, NULL), LSM_OK); /* overwrite synced bytes */
    env_close(&f);
    CHECK_EQ_INT(size_of(p), 16);
    CHECK_EQ_INT(env_fault_drop_unsynced(), 1);
    char *all;
    size_t len;
    CHECK_EQ_INT(env_read_file(p, &all, &len, NULL), LSM_OK);
    CHECK_EQ_MEM(all, len,
                 "012\0\0"
                 "56789",
                 10);
    lsm_free(all);
    struct env_fault_stats st;
    env_fault_stats(&st);
    CHECK_EQ_INT(st.writes, 3);
    CHECK_EQ_INT(st.syncs, 1);
    CHECK_EQ_INT(st.bytes_written, 18);
    env_fault_enable(false);
    env_unlink(p, NULL);
}

static void test_env_fault_unsynced_new_file_vanishes(void)
{
    char p[256], q[256], r[256];
    path_of(p, sizeof(p), "new1");
    path_of(q, sizeof(q), "new2");
    path_of(r, sizeof(r), "new3");
    env_fault_enable(true);
    struct env_file *f;
    CHECK_EQ_INT(env_create(p, &f, NULL), LSM_OK);
    CHECK_EQ_INT(env_append(f, "data", 4, NULL), LSM_OK);
    CHECK_EQ_INT(env_sync(f, NULL), LSM_OK);
    env_close(&f); /* synced, but its directory entry is not */
    CHECK_EQ_INT(env_create(q, &f, NULL), LSM_OK);
    CHECK_EQ_INT(env_append(f, "data", 4, NULL), LSM_OK);
    CHECK_EQ_INT(env_sync(f, NULL), LSM_OK);
    env_close(&f);
    CHECK_EQ_INT(env_sync_dir(dir, NULL), LSM_OK); /* both durable now */
    CHECK_EQ_INT(env_create(r, &f, NULL), LSM_OK);
    CHECK_EQ_INT(env_append(f, "data", 4, NULL), LSM_OK);
    env_close(&f);
    CHECK_EQ_INT(env_rename(q, p, NULL), LSM_OK); /* rename: durable at once */
    CHECK_EQ_INT(env_fault_drop_unsynced(), 1);
    CHECK(env_exists(p));
    CHECK(!env_exists(q));
    CHECK(!env_exists(r));
    CHECK_EQ_INT(size_of(p), 4);
    env_fault_enable(false);
    env_unlink(p, NULL);
}

static void test_env_fault_fail_nth_write_tears(void)
{
    char p[256];
    path_of(p, sizeof(p), "torn");
    env_fault_enable(true);
    struct env_file *f;
    struct lsm_err err;
    CHECK_EQ_INT(env_create(p, &f, NULL), LSM_OK);
    env_fault_fail_write(2, 3);
    CHECK_EQ_INT(env_append(f, "aaaa", 4, &err), LSM_OK);
    CHECK_EQ_INT(env_append(f, "bbbb", 4, &err), LSM_IOERR);
    CHECK(strstr(err.msg, "injected") != NULL);
    CHECK_EQ_INT(f->size, 4); /* the torn prefix does not count as appended */
    CHECK_EQ_INT(env_append(f, "cccc", 4, &err), LSM_OK);
    char buf[16];
    size_t got;
    CHECK_EQ_INT(env_pread(f, buf, sizeof(buf), 0, &got, NULL), LSM_OK);
    CHECK_EQ_MEM(buf, got, "aaaacccc", 8);

    env_fault_fail_sync(1);
    CHECK_EQ_INT(env_datasync(f, &err), LSM_IOERR);
    CHECK_EQ_INT(env_datasync(f, &err), LSM_OK);

    env_fault_space_limit(5);
    CHECK_EQ_INT(env_append(f, "dddd", 4, &err), LSM_OK);
    CHECK_EQ_INT(env_append(f, "eeee", 4, &err), LSM_NOSPACE);
    CHECK(strstr(err.msg, strerror(ENOSPC)) != NULL);
    env_fault_space_limit(UINT64_MAX);
    CHECK_EQ_INT(env_append(f, "eeee", 4, &err), LSM_OK);
    struct env_fault_stats st;
    env_fault_stats(&st);
    CHECK_EQ_INT(st.injected, 3);
    env_close(&f);
    env_fault_enable(false);
    env_unlink(p, NULL);
}

/* Starting writeback is a hint, not a durability point: the bytes read back, and
 * a power cut (fault mode) still drops them as unsynced. */
static void test_env_start_writeback_is_not_a_sync(void)
{
    char p[256];
    path_of(p, sizeof(p), "sst");
    struct env_file *f;
    CHECK_EQ_INT(env_create(p, &f, NULL), LSM_OK);
    CHECK_EQ_INT(env_sync_dir(dir, NULL), LSM_OK);
    env_fault_enable(true);
    static char block[64 * 1024];
    memset(block, 'b', sizeof(block));
    CHECK_EQ_INT(env_append(f, block, sizeof(block), NULL), LSM_OK);
    env_start_writeback(f, 0, sizeof(block));
    env_start_writeback(f, 0, 0);
    char buf[16];
    size_t got;
    CHECK_EQ_INT(env_pread(f, buf, sizeof(buf), sizeof(block) - 16, &got, NULL), LSM_OK);
    CHECK_EQ_MEM(buf, got, block, 16);
    env_close(&f);
    struct env_fault_stats st;
    env_fault_stats(&st);
    CHECK_EQ_INT(st.syncs, 0);
    CHECK_EQ_INT(env_fault_drop_unsynced(), 1);
    CHECK_EQ_INT(size_of(p), 0);
    env_fault_enable(false);
    env_unlink(p, NULL);
}

int main(void)
{
    make_dir();
    TEST_RUN(test_env_write_read_roundtrip);
    TEST_RUN(test_env_preallocate_keeps_append_offset);
    TEST_RUN(test_env_list_dir_and_lock);
    TEST_RUN(test_env_memory_file);
    TEST_RUN(test_env_fault_drop_unsynced_truncates);
    TEST_RUN(test_env_fault_unsynced_new_file_vanishes);
    TEST_RUN(test_env_fault_fail_nth_write_tears);
    TEST_RUN(test_env_start_writeback_is_not_a_sync);
    remove_dir();
    TEST_MAIN_END();
}
