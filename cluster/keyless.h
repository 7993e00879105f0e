/* cluster/keyless.h: private to cluster/: the runtime of the keyless operations
 * (cluster_scan, cluster_flush: keyless.c) and the few calls of cluster.c it uses.
 * server/ includes cluster.h only.
 *
 * Threading: loop thread only.
 */
#ifndef KVD_CLUSTER_KEYLESS_H
#define KVD_CLUSTER_KEYLESS_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "cluster/link.h"
#include "cluster/ring.h"

struct keyless;

/* ---- cluster.c, for keyless.c ---- */
struct event_base *cluster_base_of(struct cluster *cl);
const struct cluster_store *cluster_store_of(const struct cluster *cl);
const struct ring *cluster_ring_of(const struct cluster *cl);
uint32_t cluster_self_tag(const struct cluster *cl);
int cluster_tag_up(struct cluster *cl, uint32_t tag);
int cluster_stopping(const struct cluster *cl);
int cluster_timeout_ms(const struct cluster *cl);
/* cluster-max-clock-offset-ms: the clock guard refuses writes coordinated by a
 * node further than this from its peers' median. */
int64_t cluster_max_clock_offset_ms(const struct cluster *cl);
/* Sends argv on the link of member tag: LINK_OK (done will run once, later) or a
 * refusal (LINK_DOWN: no link). */
int cluster_send_tag(struct cluster *cl, uint32_t tag, int argc, const char *const *argv,
                     const size_t *argvlen, link_done_fn done, void *ctx);
/* A fresh request id (shared with cluster_read / cluster_write). */
uint64_t cluster_next_id(struct cluster *cl);
struct keyless *cluster_keyless_of(struct cluster *cl);

/* ---- keyless.c, for cluster.c ---- */
struct keyless *keyless_new(struct cluster *cl);
/* After the links are destroyed (their callbacks ran): frees every op. */
void keyless_free(struct keyless *k);
/* The 100 ms tick: resends flushes not yet acknowledged. */
void keyless_tick(struct keyless *k);
/* 1 when id was a keyless op (now cancelled: its callback never runs). */
int keyless_cancel(struct keyless *k, uint64_t id);
/* Flushes waiting for a member (INFO). */
size_t keyless_pending_flushes(const struct keyless *k);

#endif
