/* server/store.h: the store seen as records with versions, the entry points the
 * cluster's replicas will use (DESIGN.md "Values and versions"; PERSIST.md
 * "Versions and tombstones"). Command handlers do not use it: they go through the
 * coordinator (coord.h), which stamps versions on local writes.
 *
 * A record is what a replica stores for a key: its version (proto/version.h), a
 * tombstone flag, the expire-at, and the value as the persist envelope encodes it
 * (persist_encode: type, encoding, flags, payload; self-contained, a big hash with
 * every field). Every value in the store carries a version in both modes; tombstones
 * exist only in persistent mode (see TOMBSTONES below).
 *
 * LAST-WRITE-WINS: a record replaces what the store holds for its key only when it
 * is newer by kv_record_cmp: a larger version (hlc, then node), or the same version
 * as a tombstone over a value (an expiry tombstone carries the expired value's
 * version). An equal record (the same write arriving twice) is ignored.
 *
 * TOMBSTONES: persistent mode keeps them for gc-grace-seconds (deletes, expiries,
 * applied tombstone records) and a flush marker counts as a tombstone of every key
 * of its database, with version {marker, node 0}. Cache mode keeps none: a key
 * absent from memory holds nothing, so a tombstone only beats the values present
 * when it arrives, and an older value arriving after it is applied (a cache node
 * may lose data; it does not remember deletes). An expired key held in memory
 * counts as the tombstone it becomes in both modes.
 *
 * Writes made here count as writes (WATCH, server.dirty, DBSIZE, the expiry index)
 * and, in persistent mode, go into the pending batch written at the loop turn's end
 * (persist_before_sleep), as a coordinator write does; a caller that must answer
 * only once it is stored holds its reply as persist does for clients.
 *
 * Threading: loop thread only.
 */
#ifndef KVD_STORE_H
#define KVD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/version.h"

struct store_record {
    struct kv_version version;
    int deleted;           /* 1: a tombstone (value and vlen are ignored / 0) */
    long long expire_at;   /* Unix ms, 0 = none (a tombstone: the expiry's, or 0) */
    const char *value;     /* envelope bytes (persist_encode) */
    size_t vlen;
};

enum { STORE_ERROR = -1, STORE_IGNORED = 0, STORE_APPLIED = 1 };

/* Applies r to key in database db_id when r is newer than what the store holds
 * (memory, then in persistent mode the engine, tombstones and flush markers
 * included). A value whose expire-at is already past is stored as the tombstone
 * it becomes (persistent mode) or dropped (cache mode). The clock observes r's
 * version, so later local writes are newer. Returns STORE_APPLIED, STORE_IGNORED,
 * or STORE_ERROR (db_id out of range, a malformed or not self-contained envelope,
 * an engine read error) with nothing changed. */
int store_apply(int db_id, const char *key, size_t klen, const struct store_record *r);

/* What the store holds for key in db_id as a record, tombstones included: 1 found
 * (*out filled; value bytes valid until the next store_* call), 0 nothing held,
 * -1 error. Read-only for the data: no statistics, LRU or expiry deletion (an
 * expired value is reported as its tombstone); in persistent mode a key read from
 * the engine is cached as a coordinator lookup would. */
int store_get_record(int db_id, const char *key, size_t klen, struct store_record *out);

/* One record of a range (store_iter_next). */
struct store_item {
    int db;
    uint64_t token;        /* ks_token(key) */
    const char *key;       /* valid until the next store_iter_next / destroy */
    size_t klen;
    struct store_record rec;
};

struct store_iter;
/* Every record whose token lies in [start, end), all databases, ordered by
 * (token, db, key). end 0 means the end of the ring (2^64): [0, 0) is the whole
 * ring. start >= end (end != 0) is empty: a range that wraps around the ring is
 * the caller's to split into [start, 0) and [0, end).
 * Persistent mode: a snapshot of the engine as of the call (the pending batch is
 * written first), tombstones included, flushed entries skipped (the flush marker
 * stands for them: store_get_record reports it per key). Cache mode: the live
 * in-memory keys (no tombstones), read window by window: a write made between two
 * store_iter_next calls may or may not be seen. Never NULL. */
struct store_iter *store_iter_range(uint64_t start, uint64_t end);
/* 1 an item in *out, 0 the end, -1 an error (then the end). */
int store_iter_next(struct store_iter *it, struct store_item *out);
void store_iter_destroy(struct store_iter **it);

#endif
