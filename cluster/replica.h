/* cluster/replica.h: the replica side of the internal messages: one KVD.PEER
 * request handled against the node's store, reached only through a struct of
 * callbacks (cluster/ includes nothing of server/), the reply written as RESP2
 * bytes. The server supplies the callbacks (its versioned read and its
 * last-write-wins apply); the simulator supplies a fake store.
 *
 * Not here: authentication of the peer (cluster/auth.c: internal verbs are
 * refused before it), sockets (the server's connection code), range iteration
 * (part 2: streaming, Merkle trees).
 */
#ifndef KVD_CLUSTER_REPLICA_H
#define KVD_CLUSTER_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/msg.h"

/* The store as the replica side sees it. Called on the loop thread. */
struct replica_store {
    void *ctx;
    /* The record of (db, key), tombstones included: 1 found (*out filled, its value
     * borrowed until the next call on the store), 0 nothing held, -1 error. */
    int (*read)(void *ctx, unsigned db, const char *key, size_t klen, struct msg_record *out);
    /* Applies rec if it is newer than what is held (kv_record_cmp), the record's
     * own version stored (never a local timestamp): 1 applied, 0 held newer or
     * equal, -1 error. Must be durable before it returns when the node promises
     * that (appendfsync always). */
    int (*apply)(void *ctx, unsigned db, const char *key, size_t klen,
                 const struct msg_record *rec);
    /* Folds a peer's timestamp into the node's HLC; may be NULL. */
    void (*observe)(void *ctx, uint64_t hlc);
};

/* Handles argv[0..argc) (a KVD.PEER command) and appends exactly one reply to out:
 * READ -> array of nil-or-record, WRITE -> :1/:0, a malformed request or a store
 * error -> -ERR text. */
void replica_handle(const struct replica_store *st, const struct kv_slice *argv, size_t argc,
                    struct msg_buf *out);

#endif
