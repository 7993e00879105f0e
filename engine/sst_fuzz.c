/* engine/sst_fuzz.c: libFuzzer target for the table reader. First byte even: the
 * input is the whole file. Odd: a valid 300-entry table (built once) damaged by the
 * input, read as (position:u16le, xor:u8) triples, so the fuzzer reaches block and
 * index parsing past the checksums it could not forge. The table is then opened,
 * point-read and scanned with and without a cache: never a crash, leak or hang.
 * Built by tests/run-fuzz.sh; no main. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/bloom.h"
#include "engine/cache.h"
#include "engine/dbformat.h"
#include "engine/env.h"
#include "engine/sst.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *table;
static size_t table_len;

static void build_table(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/kvd-sst-fuzz-%d.sst", (int)getpid());
    struct sst_options opt;
    sst_options_default(&opt);
    opt.block_size = 256;
    struct sst_builder *b;
    if (sst_builder_create(path, &opt, &b, NULL) != LSM_OK) {
        abort();
    }
    struct lsm_buf v = {0};
    for (int i = 0; i < 300; i++) {
        char uk[16], k[32];
        int n = snprintf(uk, sizeof(uk), "k%05d", i);
        size_t kl = ikey_encode(k, uk, (size_t)n, 100 + (uint64_t)i,
                                i % 10 == 3 ? LSM_KIND_DELETE : LSM_KIND_VALUE);
        lsm_buf_clear(&v);
        entry_append(&v, i % 4 == 0 ? 1000 + (uint64_t)i : 0, (uint64_t)i,
                     (uint32_t)i % 3, uk, (size_t)n);
        sst_builder_add(b, k, kl, v.p, v.len);
    }
    lsm_buf_free(&v);
    if (sst_builder_finish(&b, false, NULL, NULL) != LSM_OK ||
        env_read_file(path, &table, &table_len, NULL) != LSM_OK) {
        abort();
    }
    unlink(path);
}

static void exercise(struct sst_reader *r)
{
    for (int i = 0; i < 310; i += 7) {
        char uk[16];
        int n = snprintf(uk, sizeof(uk), "k%05d", i);
        struct lookup_key lk;
        lookup_key_init(&lk, uk, (size_t)n, LSM_MAX_SEQNO);
        struct sst_found f;
        if (sst_reader_get(r, lk.p, lk.len, bloom_hash(uk, (size_t)n), &f, NULL) ==
            LSM_OK) {
            struct entry_value ev;
            entry_decode(f.value, f.value_len, &ev);
            sst_found_release(&f);
        }
        lookup_key_free(&lk);
    }
    for (int fill = 0; fill < 2; fill++) {
        struct sst_iter_options io = {.fill_cache = fill == 1, .readahead = 1024};
        struct sst_iter *it = sst_iter_create(r, &io);
        int steps = 0;
        for (sst_iter_seek_to_first(it); sst_iter_valid(it) && steps < 100000;
             sst_iter_next(it)) {
            size_t kl, vl;
            sst_iter_key(it, &kl);
            sst_iter_value(it, &vl);
            steps++;
        }
        sst_iter_seek(it, "k00150\xff\xff\xff\xff\xff\xff\xff\xff", 14);
        sst_iter_status(it, NULL);
        sst_iter_destroy(&it);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    if (table == NULL) {
        build_table();
    }
    struct env_file *f;
    if (env_create_memory("000042.sst", &f, NULL) != LSM_OK) {
        return 0;
    }
    if (data[0] & 1) {
        char *t = malloc(table_len);
        memcpy(t, table, table_len);
        for (size_t i = 1; i + 3 <= size; i += 3) {
            size_t pos = (size_t)(data[i] | data[i + 1] << 8) % table_len;
            t[pos] ^= (char)data[i + 2];
        }
        env_append(f, t, table_len, NULL);
        free(t);
    } else {
        env_append(f, data + 1, size - 1, NULL);
    }
    struct block_cache *cache = block_cache_create(16 << 10);
    struct sst_reader *r;
    if (sst_reader_open_file(f, 42, cache, &r, NULL) == LSM_OK) {
        exercise(r);
        sst_reader_close(&r);
    }
    block_cache_destroy(&cache);
    return 0;
}
