/* engine/db_crash_test.c: crashes, I/O faults and corruption.
 *
 *   - a child process writes with sync on and reports every acknowledged write
 *     through a pipe; the parent SIGKILLs it at a random moment, reopens, and checks
 *     that every acknowledged write is there (several rounds);
 *   - in process, with the fault-injecting env (engine/env.h): power cuts that drop
 *     unsynced bytes, a failed write, a failed fsync, a full disk: the error is
 *     sticky and nothing acknowledged is lost;
 *   - flipped bytes in a table, the WAL and the MANIFEST are reported as corruption,
 *     never a crash or a wrong value.
 */
#include "engine/engine.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/env.h"
#include "tests/test.h"

static char dir_buf[256];

static const char *fresh_dir(void)
{
    snprintf(dir_buf, sizeof(dir_buf), "/tmp/kvd-crash-test-XXXXXX");
    if (mkdtemp(dir_buf) == NULL) {
        abort();
    }
    return dir_buf;
}

static void remove_dir(const char *dir)
{
    lsm_destroy(dir);
    rmdir(dir);
}

static void small_options(struct lsm_options *o)
{
    lsm_options_init(o);
    o->memtable_size = 32 * 1024;
    o->l1_target_bytes = 128 * 1024;
    o->target_file_size = 64 * 1024;
    o->block_size = 1024;
}

static int make_kv(uint32_t i, char *k, char *v)
{
    snprintf(k, 32, "key-%08u", i);
    return snprintf(v, 64, "value-%08u-%08u", i, i * 2654435761u);
}

/* ---- SIGKILL crash test ------------------------------------------------------------------- */

static void child_writer(const char *dir, int fd, uint32_t first)
{
    struct lsm_options o;
    small_options(&o);
    o.sync_mode = LSM_SYNC_ALWAYS;
    struct lsm_db *db;
    if (lsm_open(dir, &o, &db, NULL) != LSM_OK) {
        _exit(3);
    }
    struct lsm_batch *b = lsm_batch_create();
    for (uint32_t i = first;; i++) {
        char k[32], v[64];
        int vl = make_kv(i, k, v);
        int rc;
        if (i % 7 == 0) { /* sometimes a batch of two: both or neither */
            lsm_batch_clear(b);
            lsm_batch_put(b, k, strlen(k), v, (size_t)vl, NULL);
            lsm_batch_put(b, "last-batch", 10, k, strlen(k), NULL);
            rc = lsm_write(db, b, 0, NULL);
        } else {
            rc = lsm_put(db, k, strlen(k), v, (size_t)vl, NULL, 0, NULL);
        }
        if (rc != LSM_OK) {
            _exit(4);
        }
        if (write(fd, &i, sizeof(i)) != sizeof(i)) {
            _exit(5);
        }
    }
}

static void test_crash_sigkill_keeps_acknowledged_writes(void)
{
    const char *dir = fresh_dir();
    uint32_t next = 0;
    uint32_t acked_total = 0;
    srand((unsigned)time(NULL));
    static uint32_t acked[1 << 20];
    int rounds = getenv("CRASH_ROUNDS") ? atoi(getenv("CRASH_ROUNDS")) : 6;
    for (int round = 0; round < rounds; round++) {
        int p[2];
        CHECK(pipe(p) == 0);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child_writer(dir, p[1], next);
        }
        close(p[1]);
        struct timespec ts = {0, (50 + rand() % 250) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status)); /* it did not fail by itself */
        uint32_t i;
        while (read(p[0], &i, sizeof(i)) == sizeof(i)) {
            if (acked_total < (1u << 20)) {
                acked[acked_total++] = i;
            }
            next = i + 1;
        }
        close(p[0]);
        struct lsm_options o;
        small_options(&o);
        struct lsm_db *db;
        struct lsm_err err;
        int rc = lsm_open(dir, &o, &db, &err);
        if (rc != LSM_OK) {
            fprintf(stderr, "  reopen after kill: %s\n", err.msg);
        }
        CHECK_EQ_INT(rc, LSM_OK);
        struct lsm_value v = LSM_VALUE_INIT;
        int missing = 0;
        for (uint32_t j = 0; j < acked_total; j++) {
            char k[32], e[64];
            int el = make_kv(acked[j], k, e);
            if (lsm_get(db, NULL, k, strlen(k), &v) != LSM_OK || v.len != (size_t)el ||
                memcmp(v.data, e, v.len) != 0) {
                missing++;
            }
        }
        /* the batch's second half is there exactly when its first half is */
        if (lsm_get(db, NULL, "last-batch", 10, &v) == LSM_OK) {
            char k[32];
            memcpy(k, v.data, v.len);
            k[v.len] = '\0';
            struct lsm_value w = LSM_VALUE_INIT;
            missing += lsm_get(db, NULL, k, strlen(k), &w) != LSM_OK;
            lsm_value_free(&w);
        }
        lsm_value_free(&v);
        lsm_close(&db);
        CHECK_EQ_INT(missing, 0);
        next += 1000; /* the next child starts on fresh keys */
    }
    CHECK(acked_total > 0);
    remove_dir(dir);
}

/* ---- fault injection ---------------------------------------------------------------------------- */

static void test_crash_power_cut_drops_only_unsynced_writes(void)
{
    const char *dir = fresh_dir();
    env_fault_enable(true);
    struct lsm_options o;
    small_options(&o);
    int bad = 0;
    uint32_t synced_upto = 0;
    for (int round = 0; round < 8; round++) {
        struct lsm_db *db;
        struct lsm_err err;
        if (lsm_open(dir, &o, &db, &err) != LSM_OK) {
            fprintf(stderr, "  open after power cut: %s\n", err.msg);
            bad++;
            break;
        }
        struct lsm_value v = LSM_VALUE_INIT;
        for (uint32_t j = 0; j < synced_upto; j++) {
            char k[32], e[64];
            int el = make_kv(j, k, e);
            if (lsm_get(db, NULL, k, strlen(k), &v) != LSM_OK || v.len != (size_t)el ||
                memcmp(v.data, e, v.len) != 0) {
                bad++;
            }
        }
        lsm_value_free(&v);
        /* synced writes (with flushes among them), then unsynced ones */
        uint32_t i = synced_upto;
        for (int n = 0; n < 300; n++, i++) {
            char k[32], val[64];
            int vl = make_kv(i, k, val);
            if (lsm_put(db, k, strlen(k), val, (size_t)vl, NULL, LSM_WRITE_SYNC, NULL) !=
                LSM_OK) {
                bad++;
            }
        }
        synced_upto = i;
        for (int n = 0; n < 200; n++) {
            char k[32], val[64];
            int vl = make_kv(i + 100000 + (uint32_t)n, k, val);
            lsm_put(db, k, strlen(k), val, (size_t)vl, NULL, LSM_WRITE_NOSYNC, NULL);
        }
        /* crash: close without making anything more durable */
        env_fault_fail_sync(1);
        lsm_close(&db);
        env_fault_fail_sync(0);
        env_fault_drop_unsynced();
    }
    env_fault_enable(false);
    CHECK_EQ_INT(bad, 0);
    remove_dir(dir);
}

/* A crash at the nth write or fsync from open on: the I/O fails (a torn write
 * keeps a prefix), the engine stops, unsynced bytes are dropped, and every write
 * acknowledged before must be there after reopening. */
static void test_crash_at_each_io_point_loses_nothing_acknowledged(void)
{
    struct lsm_options o;
    small_options(&o);
    o.memtable_size = 4096; /* flushes and compactions among the first I/Os */
    o.l1_target_bytes = 16 * 1024;
    int bad = 0, cut_short = 0;
    for (int point = 1; point <= 60 && bad == 0; point++) {
        const char *dir = fresh_dir();
        env_fault_enable(true);
        if (point % 2) {
            env_fault_fail_sync((uint64_t)(point + 1) / 2 * 3);
        } else {
            env_fault_fail_write((uint64_t)point * 2, (size_t)point % 7 * 5);
        }
        struct lsm_db *db;
        uint32_t acked = 0;
        if (lsm_open(dir, &o, &db, NULL) == LSM_OK) {
            for (uint32_t i = 0; i < 400; i++) {
                char k[32], v[64];
                int vl = make_kv(i, k, v);
                if (lsm_put(db, k, strlen(k), v, (size_t)vl, NULL, LSM_WRITE_SYNC,
                            NULL) != LSM_OK) {
                    break;
                }
                acked = i + 1;
            }
            cut_short += acked > 0 && acked < 400;
            env_fault_fail_sync(0);
            env_fault_fail_write(0, 0);
            env_fault_fail_sync(1); /* close makes nothing more durable */
            lsm_close(&db);
        }
        env_fault_fail_sync(0);
        env_fault_drop_unsynced();
        env_fault_enable(false);
        struct lsm_err err;
        if (lsm_open(dir, &o, &db, &err) != LSM_OK) {
            fprintf(stderr, "  point %d: reopen: %s\n", point, err.msg);
            bad++;
        } else {
            struct lsm_value v = LSM_VALUE_INIT;
            for (uint32_t j = 0; j < acked; j++) {
                char k[32], e[64];
                int el = make_kv(j, k, e);
                if (lsm_get(db, NULL, k, strlen(k), &v) != LSM_OK ||
                    v.len != (size_t)el || memcmp(v.data, e, v.len) != 0) {
                    if (bad++ == 0) {
                        fprintf(stderr, "  point %d: acknowledged %s lost\n", point, k);
                    }
                }
            }
            lsm_value_free(&v);
            lsm_close(&db);
        }
        remove_dir(dir);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(cut_short > 30); /* the faults did land in the middle of the workload */
}

static void test_crash_failed_wal_write_is_sticky(void)
{
    const char *dir = fresh_dir();
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, NULL), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "before", 6, "v", 1, NULL, LSM_WRITE_SYNC, NULL), LSM_OK);
    env_fault_enable(true);
    env_fault_fail_write(1, 3);
    CHECK_EQ_INT(lsm_put(db, "k", 1, "v", 1, NULL, 0, NULL), LSM_IOERR);
    CHECK(strlen(lsm_errmsg(db)) > 0);
    /* later writes are refused, even though the disk works again */
    CHECK_EQ_INT(lsm_put(db, "k2", 2, "v", 1, NULL, 0, NULL), LSM_IOERR);
    CHECK_EQ_INT(lsm_flush(db), LSM_IOERR);
    struct lsm_value v = LSM_VALUE_INIT;
    CHECK_EQ_INT(lsm_get(db, NULL, "before", 6, &v), LSM_OK); /* reads still work */
    lsm_close(&db);
    env_fault_enable(false);
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, NULL), LSM_OK); /* reopening clears it */
    CHECK_EQ_INT(lsm_get(db, NULL, "before", 6, &v), LSM_OK);
    CHECK_EQ_INT(lsm_put(db, "k3", 2, "v", 1, NULL, 0, NULL), LSM_OK);
    lsm_value_free(&v);
    lsm_close(&db);
    remove_dir(dir);
}

static void test_crash_failed_fsync_is_sticky(void)
{
    const char *dir = fresh_dir();
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, NULL), LSM_OK);
    env_fault_enable(true);
    env_fault_fail_sync(1);
    CHECK_EQ_INT(lsm_put(db, "k", 1, "v", 1, NULL, LSM_WRITE_SYNC, NULL), LSM_IOERR);
    CHECK_EQ_INT(lsm_put(db, "k2", 2, "v", 1, NULL, LSM_WRITE_NOSYNC, NULL), LSM_IOERR);
    CHECK(strlen(lsm_errmsg(db)) > 0);
    lsm_close(&db);
    env_fault_enable(false);
    remove_dir(dir);
}

static void test_crash_failed_async_sync_wakes_the_loop(void)
{
    const char *dir = fresh_dir();
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, NULL), LSM_OK);
    uint64_t seq;
    CHECK_EQ_INT(lsm_put(db, "k", 1, "v", 1, NULL, LSM_WRITE_NOSYNC, &seq), LSM_OK);
    env_fault_enable(true);
    env_fault_fail_sync(1);
    lsm_sync_wal_async(db, seq);
    struct pollfd pfd = {lsm_sync_fd(db), POLLIN, 0};
    CHECK_EQ_INT(poll(&pfd, 1, 5000), 1); /* woken although nothing became durable */
    CHECK(lsm_durable_seq(db) < seq);
    CHECK_EQ_INT(lsm_sync_wal(db, seq), LSM_IOERR);
    CHECK(strlen(lsm_errmsg(db)) > 0);
    lsm_close(&db);
    env_fault_enable(false);
    remove_dir(dir);
}

/* A WAL roll (the memtable is full) does no fsync on the writer: the sync thread
 * created the new segment ahead and syncs and closes the old one. The write that
 * rolls returns at once even when one of those fsyncs (or the flush's) fails;
 * the failure then surfaces off the writer and is sticky. */
static void test_crash_wal_roll_syncs_the_old_segment_off_the_writer(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    uint64_t durable0 = lsm_durable_seq(db);
    /* the sync thread creates the next segment ahead: wait for it (two .log files) */
    int logs = 0;
    for (int t = 0; t < 500 && logs < 2; t++) {
        logs = 0;
        DIR *d = opendir(dir);
        for (struct dirent *de; d && (de = readdir(d)) != NULL;) {
            size_t l = strlen(de->d_name);
            logs += l > 4 && strcmp(de->d_name + l - 4, ".log") == 0;
        }
        if (d) {
            closedir(d);
        }
        if (logs < 2) {
            usleep(10000);
        }
    }
    CHECK_EQ_INT(logs, 2);
    /* and for its fsyncs to be done: no new sync call for 50 ms */
    env_fault_enable(true);
    struct env_fault_stats fs0, fs1;
    env_fault_stats(&fs0);
    for (int t = 0; t < 100; t++) {
        usleep(50000);
        env_fault_stats(&fs1);
        if (fs1.syncs == fs0.syncs) {
            break;
        }
        fs0 = fs1;
    }
    env_fault_fail_sync(1); /* the first fsync from now: all of them are off the writer
                             * (the old segment's, the flush's, the next segment's) */
    int bad = 0, rolled = 0;
    uint64_t seq = 0;
    for (uint32_t i = 0; i < 5000 && !rolled; i++) {
        char k[32], v[64];
        int vl = make_kv(i, k, v);
        if (lsm_put(db, k, strlen(k), v, (size_t)vl, NULL, LSM_WRITE_NOSYNC, &seq) !=
            LSM_OK) {
            bad++;
            break;
        }
        struct lsm_stats st;
        lsm_stats(db, &st);
        rolled = st.immutable_memtables > 0 || st.flushes > 0;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(rolled);
    /* the failure happens off the writer, soon; then it is sticky */
    for (int t = 0; t < 500 && lsm_bg_error(db) == LSM_OK; t++) {
        usleep(10000);
    }
    CHECK(lsm_bg_error(db) != LSM_OK);
    CHECK(lsm_put(db, "after", 5, "v", 1, NULL, LSM_WRITE_NOSYNC, NULL) != LSM_OK);
    CHECK(lsm_durable_seq(db) >= durable0);
    CHECK(strlen(lsm_errmsg(db)) > 0);
    lsm_close(&db);
    env_fault_enable(false);
    remove_dir(dir);
}

static void test_crash_failed_flush_and_full_disk_are_sticky(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    small_options(&o);
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    for (uint32_t i = 0; i < 100; i++) {
        char k[32], v[64];
        int vl = make_kv(i, k, v);
        CHECK_EQ_INT(lsm_put(db, k, strlen(k), v, (size_t)vl, NULL, 0, NULL), LSM_OK);
    }
    env_fault_enable(true);
    env_fault_space_limit(100); /* the flush's table does not fit */
    int rc = lsm_flush(db);
    CHECK(rc == LSM_NOSPACE || rc == LSM_IOERR);
    CHECK(lsm_put(db, "x", 1, "v", 1, NULL, 0, NULL) != LSM_OK);
    env_fault_space_limit(UINT64_MAX);
    CHECK(lsm_put(db, "x", 1, "v", 1, NULL, 0, NULL) != LSM_OK);
    lsm_close(&db);
    env_fault_enable(false);
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    struct lsm_value v = LSM_VALUE_INIT;
    int missing = 0;
    for (uint32_t i = 0; i < 100; i++) {
        char k[32], e[64];
        make_kv(i, k, e);
        missing += lsm_get(db, NULL, k, strlen(k), &v) != LSM_OK;
    }
    lsm_value_free(&v);
    CHECK_EQ_INT(missing, 0);
    lsm_close(&db);
    remove_dir(dir);
}

/* ---- corruption ------------------------------------------------------------------------------------ */

static int find_file(const char *dir, const char *suffix, const char *prefix, char *path,
                     size_t n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        if (l >= sl && strcmp(e->d_name + l - sl, suffix) == 0 &&
            strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            snprintf(path, n, "%s/%s", dir, e->d_name);
            found = 1;
            break;
        }
    }
    closedir(d);
    return found;
}

static void flip_byte(const char *path, long off)
{
    int fd = open(path, O_RDWR);
    unsigned char c;
    if (pread(fd, &c, 1, off) == 1) {
        c ^= 0x5a;
        if (pwrite(fd, &c, 1, off) != 1) {
            abort();
        }
    }
    close(fd);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

static void write_many(const char *dir, bool flush)
{
    struct lsm_options o;
    lsm_options_init(&o);
    o.block_cache_size = 0;
    struct lsm_db *db;
    if (lsm_open(dir, &o, &db, NULL) != LSM_OK) {
        abort();
    }
    for (uint32_t i = 0; i < 2000; i++) {
        char k[32], v[64];
        int vl = make_kv(i, k, v);
        lsm_put(db, k, strlen(k), v, (size_t)vl, NULL, 0, NULL);
    }
    if (flush) {
        lsm_flush(db);
    }
    lsm_close(&db);
}

static void test_corruption_in_table_is_reported_never_wrong(void)
{
    const char *dir = fresh_dir();
    write_many(dir, true);
    char path[512];
    CHECK(find_file(dir, ".sst", "", path, sizeof(path)));
    flip_byte(path, file_size(path) / 3); /* inside the data blocks */
    struct lsm_options o;
    lsm_options_init(&o);
    o.block_cache_size = 0;
    struct lsm_db *db;
    struct lsm_err err;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, &err), LSM_OK);
    struct lsm_value v = LSM_VALUE_INIT;
    int corrupt = 0, wrong = 0;
    for (uint32_t i = 0; i < 2000; i++) {
        char k[32], e[64];
        int el = make_kv(i, k, e);
        int rc = lsm_get(db, NULL, k, strlen(k), &v);
        if (rc == LSM_CORRUPT) {
            corrupt++;
        } else if (rc != LSM_OK || v.len != (size_t)el || memcmp(v.data, e, v.len) != 0) {
            wrong++;
        }
    }
    lsm_value_free(&v);
    CHECK_EQ_INT(wrong, 0);
    CHECK(corrupt > 0);
    struct lsm_iter *it = lsm_iter_create(db, NULL);
    for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
    }
    CHECK_EQ_INT(lsm_iter_status(it), LSM_CORRUPT);
    lsm_iter_destroy(&it);
    CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_CORRUPT);
    CHECK(strstr(lsm_errmsg(db), ".sst") != NULL);
    lsm_close(&db);
    remove_dir(dir);
}

/* A damaged newer table must not let an iterator fall back to older versions. */
static void test_corruption_never_surfaces_an_older_version(void)
{
    const char *dir = fresh_dir();
    struct lsm_options o;
    lsm_options_init(&o);
    o.block_cache_size = 0;
    o.l0_compaction_trigger = 100; /* keep the newer table in L0 */
    struct lsm_db *db;
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    for (int round = 0; round < 2; round++) {
        for (uint32_t i = 0; i < 3000; i++) {
            char k[32], v[64];
            make_kv(i, k, v);
            int vl = snprintf(v, sizeof(v), "round%d-%08u", round, i);
            CHECK_EQ_INT(lsm_put(db, k, strlen(k), v, (size_t)vl, NULL, 0, NULL), LSM_OK);
        }
        if (round == 0) {
            CHECK_EQ_INT(lsm_compact_range(db, NULL, 0, NULL, 0), LSM_OK); /* to L1 */
        } else {
            CHECK_EQ_INT(lsm_flush(db), LSM_OK); /* to L0 */
        }
    }
    struct lsm_stats st;
    lsm_stats(db, &st);
    CHECK_EQ_INT(st.files_per_level[0], 1);
    lsm_close(&db);
    /* damage the L0 table: the newest .sst */
    DIR *d = opendir(dir);
    struct dirent *e;
    char newest[512] = "";
    unsigned long best = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".sst") == 0 &&
            strtoul(e->d_name, NULL, 10) >= best) {
            best = strtoul(e->d_name, NULL, 10);
            snprintf(newest, sizeof(newest), "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    flip_byte(newest, file_size(newest) / 3);
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    struct lsm_iter *it = lsm_iter_create(db, NULL);
    int old = 0, n = 0;
    for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
        size_t vl;
        const char *v = lsm_iter_value(it, &vl);
        old += vl >= 6 && memcmp(v, "round0", 6) == 0;
        n++;
    }
    CHECK_EQ_INT(lsm_iter_status(it), LSM_CORRUPT);
    CHECK_EQ_INT(old, 0);
    CHECK(n < 3000);
    lsm_iter_destroy(&it);
    struct lsm_value v = LSM_VALUE_INIT;
    for (uint32_t i = 0; i < 3000; i++) {
        char k[32], val[64];
        make_kv(i, k, val);
        int rc = lsm_get(db, NULL, k, strlen(k), &v);
        old += rc == LSM_OK && memcmp(v.data, "round0", 6) == 0;
        CHECK(rc == LSM_OK || rc == LSM_CORRUPT);
    }
    lsm_value_free(&v);
    CHECK_EQ_INT(old, 0);
    lsm_close(&db);
    remove_dir(dir);
}

static void test_corruption_in_wal_fails_open_with_message(void)
{
    const char *dir = fresh_dir();
    write_many(dir, false);
    char path[512];
    CHECK(find_file(dir, ".log", "", path, sizeof(path)));
    flip_byte(path, 100); /* the first record; valid ones follow */
    struct lsm_db *db;
    struct lsm_err err;
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, &err), LSM_CORRUPT);
    CHECK(strstr(err.msg, ".log") != NULL);
    /* a torn tail is not corruption: cut the log in the middle of its last record */
    remove_dir(dir);
    dir = fresh_dir();
    write_many(dir, false);
    CHECK(find_file(dir, ".log", "", path, sizeof(path)));
    CHECK(truncate(path, file_size(path) - 5) == 0);
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, &err), LSM_OK);
    struct lsm_value v = LSM_VALUE_INIT;
    CHECK_EQ_INT(lsm_get(db, NULL, "key-00000000", 12, &v), LSM_OK);
    CHECK_EQ_INT(lsm_get(db, NULL, "key-00001999", 12, &v), LSM_NOTFOUND);
    lsm_value_free(&v);
    lsm_close(&db);
    remove_dir(dir);
}

static void test_corruption_in_manifest_fails_open(void)
{
    const char *dir = fresh_dir();
    write_many(dir, true); /* MANIFEST: snapshot record, then the flush's edit */
    char path[512];
    CHECK(find_file(dir, "", "MANIFEST-", path, sizeof(path)));
    flip_byte(path, 30);
    struct lsm_db *db;
    struct lsm_err err;
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, &err), LSM_CORRUPT);
    CHECK(strstr(err.msg, "MANIFEST") != NULL);
    remove_dir(dir);
    /* CURRENT naming a missing MANIFEST */
    dir = fresh_dir();
    write_many(dir, true);
    CHECK(find_file(dir, "", "MANIFEST-", path, sizeof(path)));
    unlink(path);
    CHECK_EQ_INT(lsm_open(dir, NULL, &db, &err), LSM_CORRUPT);
    remove_dir(dir);
}

int main(void)
{
    TEST_RUN(test_crash_sigkill_keeps_acknowledged_writes);
    TEST_RUN(test_crash_power_cut_drops_only_unsynced_writes);
    TEST_RUN(test_crash_at_each_io_point_loses_nothing_acknowledged);
    TEST_RUN(test_crash_failed_wal_write_is_sticky);
    TEST_RUN(test_crash_failed_fsync_is_sticky);
    TEST_RUN(test_crash_failed_async_sync_wakes_the_loop);
    TEST_RUN(test_crash_wal_roll_syncs_the_old_segment_off_the_writer);
    TEST_RUN(test_crash_failed_flush_and_full_disk_are_sticky);
    TEST_RUN(test_corruption_in_table_is_reported_never_wrong);
    TEST_RUN(test_corruption_never_surfaces_an_older_version);
    TEST_RUN(test_corruption_in_wal_fails_open_with_message);
    TEST_RUN(test_corruption_in_manifest_fails_open);
    TEST_MAIN_END();
}
