/* engine/wal_fuzz.c: libFuzzer target for the WAL reader. The input becomes a
 * segment in a memory file: as is when its first byte is even, else after a valid
 * segment header (so the fuzzer reaches fragment parsing at once). Reading must end
 * in a record stream followed by LSM_NOTFOUND or an error: never a crash, leak or
 * hang. Built by tests/run-fuzz.sh; no main. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "engine/dbformat.h"
#include "engine/env.h"
#include "engine/wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    struct env_file *f;
    if (env_create_memory("fuzz.log", &f, NULL) != LSM_OK) {
        return 0;
    }
    if (data[0] & 1) {
        char hdr[WAL_HEADER_SIZE];
        enc_fixed32(hdr, 0x4C41574Bu);
        enc_fixed16(hdr + 4, 1);
        enc_fixed16(hdr + 6, 0);
        enc_fixed64(hdr + 8, 7);
        env_append(f, hdr, sizeof(hdr), NULL);
    }
    env_append(f, data + 1, size - 1, NULL);
    struct wal_reader *r;
    struct lsm_err err;
    if (wal_reader_open_file(f, &r, &err) != LSM_OK) {
        return 0; /* the reader took f and closed it */
    }
    const char *p;
    size_t len;
    uint64_t total = 0;
    int rc;
    while ((rc = wal_reader_next(r, &p, &len, &err)) == LSM_OK) {
        total += len;
        if (len > 0 && (p[0] == 0x7f || p[len - 1] == 0x7f)) { /* touch the bytes */
            total++;
        }
    }
    uint64_t end;
    bool torn;
    wal_reader_end(r, &end, &torn);
    if (rc == LSM_NOTFOUND && end > size + WAL_HEADER_SIZE) {
        __builtin_trap(); /* the valid end can never pass the file */
    }
    (void)total;
    wal_reader_close(&r);
    return 0;
}
