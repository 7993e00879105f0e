/* cluster/cluster.h: the one header of cluster/ that server/ includes (DESIGN.md
 * "Cluster"; ARCHITECTURE.md). It runs this node's part of a leaderless cluster on
 * the server's event loop: the ring and its members, authenticated links to the
 * peers (link.h), the coordinator's quorum reads and writes (op.h), hinted handoff
 * (hints.h), and the replica side of the peers' KVD.PEER commands (replica.h).
 *
 * What it leaves to server/: the client protocol, the command table, running
 * handlers on a scratch keyspace (server/coord), holding replies, config, the
 * node id and tokens on disk. The store is reached only through struct
 * cluster_store (callbacks), so cluster/ includes nothing of server/.
 *
 * CALLBACK RULE: a done-callback given to cluster_read / cluster_write never runs
 * inside that call, even for an immediate failure; it runs later from the loop,
 * exactly once, unless the request is cancelled first (cluster_cancel), after
 * which it never runs.
 *
 * Threading: loop thread only.
 */
#ifndef KVD_CLUSTER_CLUSTER_H
#define KVD_CLUSTER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/fields.h"
#include "cluster/msg.h"
#include "proto/resp.h"

struct event_base;
struct cluster;

/* One key of a range as a replica holds it (SCAN, keyless.c): its record without
 * the value, and the value's type code (the server's, opaque here; 0 for a
 * tombstone). */
struct cluster_key {
    uint64_t token;        /* ring_key_token(key) */
    const char *key;
    size_t klen;
    struct kv_version v;
    int deleted;           /* a tombstone */
    uint64_t expire_at;    /* Unix ms, 0 none */
    unsigned type;
    unsigned db;           /* its database (filled for every db; repair.h reads it
                              when it iterates CLUSTER_DB_ALL) */
    uint64_t digest;       /* 0, or the content digest of a record whose version
                              does not identify its content: a big hash's
                              fields_digest (fields.h), which Merkle repair
                              compares (merkle.h, repair.h) */
};

/* cluster_store.range's db that means every database (Merkle repair, repair.h). */
#define CLUSTER_DB_ALL 0xFFFFFFFFu

/* Called by cluster_store.range for each record; nonzero stops the iteration. */
typedef int cluster_range_fn(void *arg, const struct cluster_key *k);

/* The store as the cluster sees it (the server fills it; tests fake it). */
struct cluster_store {
    void *ctx;
    /* The record of (db, key), tombstones included: 1 found (*out filled, value
     * borrowed until the next call), 0 nothing held, -1 error. */
    int (*read)(void *ctx, unsigned db, const char *key, size_t klen, struct msg_record *out);
    /* Applies rec when newer (last-write-wins): 1 applied, 0 held newer or equal,
     * -1 error. */
    int (*apply)(void *ctx, unsigned db, const char *key, size_t klen,
                 const struct msg_record *rec);
    /* Folds a peer's timestamp into the node's HLC. */
    void (*observe)(void *ctx, uint64_t hlc);
    /* The node's one clock, Unix ms (debug-clock-offset-ms included). */
    uint64_t (*now_ms)(void *ctx);
    /* (Added by cscan; NULL: KVD.PEER SCAN / FLUSH answer an error.) Calls fn for
     * each record of db (tombstones included; CLUSTER_DB_ALL: of every db) whose
     * token lies in [from, to) (to 0: the ring's end), in token order, until fn
     * returns nonzero. 0, or -1 on an
     * error (nothing more is called). Each key's digest is filled when db is
     * CLUSTER_DB_ALL (Merkle repair's scans), and may be 0 otherwise. */
    int (*range)(void *ctx, unsigned db, uint64_t from, uint64_t to, cluster_range_fn *fn,
                 void *arg);
    /* Deletes the records of db (-1: every db) whose version's hlc is below hlc and
     * keeps hlc as the db's floor: a record below it arriving later is ignored by
     * apply (persistent mode: across a restart). 0, or -1. */
    int (*flush)(void *ctx, int db, uint64_t hlc);
    /* Optional (NULL: what apply returned is stored, as in cache mode). Calls
     * done(arg, ok) once every apply made so far is durable (persistent mode:
     * stored, and with appendfsync always synced): ok 1, or 0 when it failed. Never
     * inside the call. Returns a handle for durable_cancel, or 0 when all is
     * durable already (done never runs). This node's own replica acknowledges a
     * write only then, as a peer's KVD.PEER WRITE reply does. (Added by chints.) */
    uint64_t (*when_durable)(void *ctx, void (*done)(void *arg, int ok), void *arg);
    void (*durable_cancel)(void *ctx, uint64_t handle);
    /* Optional (NULL: 0): the bytes this node holds, gossiped as its load
     * (informational: KVD NODES, INFO). (Added by gossip.) */
    uint64_t (*load)(void *ctx);
};

struct cluster_config {
    const char *node_id;     /* this node's id (kept in dir) */
    uint32_t tag;            /* its 32-bit tag: the versions' node field */
    const uint64_t *tokens;  /* its tokens (kept in dir), sorted, distinct */
    size_t ntokens;
    double weight;           /* node-weight */
    const char *bind_ip;     /* outgoing links bind here (NULL or "": any) */
    const char *announce_ip; /* what peers dial */
    int announce_port;
    const char *seeds;       /* "host:port,host:port,..." (may name this node) */
    const char *secret;      /* cluster-secret, required */
    int replication_factor;  /* N */
    int write_quorum;        /* W, the default of connections */
    int read_quorum;         /* R */
    int request_timeout_ms;  /* cluster-request-timeout */
    uint64_t hint_window_ms; /* hinted-handoff-window */
    size_t hint_max_bytes;   /* hinted-handoff-max-bytes */
    /* Where the runtime's log lines go (members joining, links up and down, peers
     * refused); NULL: standard error. level is enum cluster_log_level. (Added by
     * cnode: a zero-initialised config keeps working.) */
    void (*log)(int level, const char *msg);
    /* Persistent mode: the directory of the hint log (cluster/hintlog.h; the server
     * passes "hints", inside dir): hints survive a restart. NULL or "": hints in
     * memory only (cache mode). (Added by chints: a zero-initialised config keeps
     * working.) */
    const char *hint_dir;
    /* Anti-entropy repair (repair_rt.c; added by merkle: zero keeps it off). A
     * background pass over this node's ranges starts every repair_interval_s
     * seconds (0: none; KVD REPAIR still works); all repair traffic is paced at
     * repair_bytes_per_sec (0: unlimited). */
    unsigned repair_interval_s;
    uint64_t repair_bytes_per_sec;
    /* (Added by gossip: zero keeps working.) This run's generation: above every
     * earlier run's of this node (the server keeps it in dir; 0: 1). */
    uint64_t generation;
    /* phi-convict-threshold: a member whose phi reaches it is down (0: 8). */
    double phi_convict_threshold;
    /* cluster-max-clock-offset-ms: beyond it from the peers' median this node
     * refuses to coordinate writes (0: 500). */
    int64_t max_clock_offset_ms;
    /* The node was down longer than gc-grace-seconds (the server knows from
     * dir/node-alive): its replicas may have dropped tombstones it never received,
     * so it repairs every range it replicates at once and is not ready (refuses to
     * coordinate, answers peers' READ and SCAN with an error, KVD NODES shows it
     * "repairing") until each had a complete repair. (Added by tombgc.) */
    int long_absence;
    /* (Added by join: zero keeps working.) 1: this node joins a running cluster
     * (cluster-join, first start): tokens is a placeholder; once the seeds answered
     * it takes balanced tokens (ring.h ring_tokens_balance), gossips status joining,
     * streams the ranges it will replicate from their current replicas (join.h),
     * then calls save_tokens and becomes normal. */
    int join;
    /* Keeps this node's tokens (dir/node-tokens): 0, or -1 (the join then retries
     * it every tick and does not become normal until it worked). */
    int (*save_tokens)(const uint64_t *tokens, size_t n);
    /* Called once this node streamed its ranges out (KVD LEAVE), before it
     * gossips left: the server marks dir so that a restart does not bring the
     * stale copy back as a member. NULL: nothing. */
    void (*on_left)(void);
    /* (Added by remove: zero keeps working.) cluster-replace: the id of a dead
     * member this node replaces at its tokens (join.h); NULL or "": none. At the
     * first start only, like join. */
    const char *replace;
    /* stream-throughput-mb-per-sec: the pace of a join's, leave's, removal's and
     * replace's streaming, in bytes per second (0: unlimited). */
    uint64_t stream_bytes_per_sec;
    /* (Added by resume: zero keeps working.) Persistent mode, join only: the
     * bytes of dir/node-join from the run before (join.h: the tokens this node
     * took and the ranges it streamed; NULL: none). The join resumes at those
     * tokens; a file that does not parse makes cluster_start fail with err. */
    const char *join_resume;
    size_t join_resume_len;
    /* Keeps the join file: text[0..len) written atomically, or (text NULL)
     * removed once the node is normal. 0, or -1 (logged by the server; the join
     * goes on). NULL: nothing kept (cache mode). */
    int (*save_join)(const char *text, size_t len);
};

enum cluster_log_level { CLUSTER_LOG_VERBOSE = 0, CLUSTER_LOG_NOTICE, CLUSTER_LOG_WARNING };

/* Starts the node's cluster runtime on base: dials the seeds, learns the members
 * and their tokens. NULL with err on a bad config. */
struct cluster *cluster_start(struct event_base *base, const struct cluster_config *cfg,
                              const struct cluster_store *store, char *err, size_t errlen);
/* Closes links and frees everything; pending callbacks never run. */
void cluster_stop(struct cluster *cl);

/* 1 when the ring is known and commands may run; 0 with *why ("waiting for the
 * seeds: 0 of 2 answered", "repairing after a long absence ...") otherwise. */
int cluster_ready(const struct cluster *cl, const char **why);

/* The replication factor in force (N): quorums are checked against it. */
int cluster_replicas(const struct cluster *cl);

/* 1 when this node may coordinate writes; 0 with *why while its clock is more
 * than cluster-max-clock-offset-ms off its peers' median ("this node's clock is
 * 2000 ms off its peers' ..."): cluster_write then fails with the same words.
 * Reads are not affected. (Added by gossip.) */
int cluster_writes_allowed(const struct cluster *cl, const char **why);

/* ---- coordinator ---- */

enum cluster_status { CLUSTER_OK = 0, CLUSTER_FAILED = -1 };

/* rec NULL: no replica holds anything for the key. err (status FAILED): the reason
 * in words, for the client ("got 1 of 2 read answers"). */
typedef void cluster_read_done(void *ctx, int status, const struct msg_record *rec,
                               const char *err);
typedef void cluster_write_done(void *ctx, int status, const char *err);

/* A quorum read of (db, key) at r answers (1..N), with blocking read repair.
 * Returns a request id for cluster_cancel. */
uint64_t cluster_read(struct cluster *cl, unsigned db, const char *key, size_t klen, int r,
                      cluster_read_done *cb, void *ctx);
/* Ships rec (stamped by the caller) to the key's N replicas; done at w acks
 * (1..N), or failed ("got 1 of 2 write acknowledgements"). Replicas that miss it
 * get a hint. */
uint64_t cluster_write(struct cluster *cl, unsigned db, const char *key, size_t klen,
                       const struct msg_record *rec, int w, cluster_write_done *cb,
                       void *ctx);
/* Sends the requests to peers queued in this loop turn, one message per replica
 * (and verb and db). The server calls it in its before-sleep step, after the
 * commands of the turn; a timer sends them otherwise (tests, other loops). */
void cluster_send_queued(struct cluster *cl);
/* The caller is gone (client freed): the callback of id will not run. The
 * operation itself goes on (a write may still land; hints are still kept). */
void cluster_cancel(struct cluster *cl, uint64_t id);

/* ---- keyless commands (keyless.c; added by cscan) ---- */

/* One SCAN step: the keys of db from token cursor to the end of the ring range
 * that holds it (scan.h, scan_range_end), at most about count records, asked of
 * the range's live replicas and merged from the first r that answer (newest
 * version per key; tombstones and expired keys are the caller's to drop). next is
 * where the next step starts (0: the end of the ring). keys are borrowed for the
 * call. err (status FAILED): "got 1 of 2 scan answers". Same CALLBACK RULE as
 * cluster_read; cluster_cancel(id) cancels it. */
typedef void cluster_scan_done(void *ctx, int status, uint64_t next,
                               const struct cluster_key *keys, size_t n, const char *err);
uint64_t cluster_scan(struct cluster *cl, unsigned db, uint64_t cursor, size_t count, int r,
                      cluster_scan_done *cb, void *ctx);
/* FLUSHDB (db) / FLUSHALL (db -1) at version hlc on every member, decided when
 * each member answered or timed out: OK when every ring range has w replicas (at
 * most N) that flushed; FAILED ("got 1 of 2 flush
 * acknowledgements") otherwise. A member that did not acknowledge is sent the
 * flush again (100 ms tick, kept in memory) until it does. */
typedef void cluster_flush_done(void *ctx, int status, const char *err);
uint64_t cluster_flush(struct cluster *cl, int db, uint64_t hlc, int w, cluster_flush_done *cb,
                       void *ctx);

/* ---- anti-entropy repair (repair.h, repair_rt.c; added by merkle) ---- */

/* KVD REPAIR [FULL]: queues a Merkle repair of every ring range this node
 * replicates, against the range's other replicas (full: also hands each range it
 * does not replicate to that range's first replica that is up). Returns how many
 * ranges were queued or handed over (0 when not ready). The work runs in the
 * background at the repair pace; INFO kvdcluster shows it (repair_*). */
size_t cluster_repair(struct cluster *cl, int full);

/* The tombstone GC horizon (Unix ms) the store's compaction must respect: a
 * tombstone dated below it has been carried to every replica of its range. It is
 * the start of the oldest "last complete repair" over the ranges this node
 * replicates (every replica answered), less cluster-request-timeout and a clock
 * margin of 500 ms; 0 while some range has had no complete repair since this
 * process started (what is known is not kept across a restart: the first full
 * pass after it sets the horizon again). The server hands it to the engine
 * (lsm_set_gc_horizon) about once a second. (Added by tombgc.) */
uint64_t cluster_gc_horizon(struct cluster *cl);
/* ---- joining and leaving (join.c; added by join) ---- */

/* KVD LEAVE: this node gossips status leaving, hands each range it replicates to
 * the members that replicate it once it is gone (repair sessions that push), then
 * gossips left and serves no more (cluster_ready 0: "this node left the
 * cluster"). 0, or -1 with *why (not ready, joining, already leaving or left, the
 * last member). */
int cluster_leave(struct cluster *cl, const char **why);

/* ---- KVD CLEANUP (cleanup.c; added by cleanup) ---- */

/* A token range [from, to); to 0: the ring's end. */
struct cluster_span {
    uint64_t from, to;
};

/* The token ranges this node must keep: those it replicates in the current ring
 * (and in the future one were a change pending), sorted, adjacent ones merged;
 * every other token's records may go. *out is a new array (free() it), *n its
 * length. 0, or -1 with *why when what to keep is not certain: the node is not
 * ready, or a member is joining, leaving or otherwise not normal (ranges are
 * moving). */
int cluster_kept_ranges(struct cluster *cl, struct cluster_span **out, size_t *n,
                        const char **why);
/* KVD JOIN host:port (len bytes): this node, started with cluster-enabled and no
 * seeds and still alone (it knows no other member), joins the cluster of that
 * node: the address becomes its seed, and the join goes as with cluster-join
 * (join.h: balanced tokens, status joining, streaming, normal; the server keeps
 * the tokens at the end). Returns at once. 0, or -1 with *why (not host:port,
 * this node's address, it has seeds or knows members, holds_keys: the server
 * found keys in its store, it joins or leaves already). */
int cluster_join(struct cluster *cl, const char *addr, size_t len, int holds_keys,
                 const char **why);
/* KVD REMOVENODE id (len bytes): removes member id, which must be down by phi,
 * normal, and not this node, with no other member joining or leaving: gossips it
 * removed, has each member that gains one of its ranges pull it from the
 * surviving replicas, then gossips it left (join.h). Returns at once (progress in
 * KVD NODES and INFO). Run again for a member already being removed (its
 * coordinator died), it takes over. 0, or -1 with *why. */
int cluster_remove_node(struct cluster *cl, const char *id, size_t len, const char **why);
/* stream-throughput-mb-per-sec changed: bytes per second, 0 unlimited. */
void cluster_set_stream_rate(struct cluster *cl, uint64_t bytes_per_sec);

/* ---- the peer side: a client connection that speaks KVD.PEER ---- */

struct cluster_peer;
struct cluster_peer *cluster_peer_new(struct cluster *cl);
void cluster_peer_free(struct cluster_peer *p);
/* Handles one KVD.PEER command (argv[0] is KVD.PEER) on connection p and appends
 * exactly one RESP2 reply to out. Until the connection has proved the secret
 * (HELLO, AUTH) every other verb is refused. Returns 1 when the connection must
 * be closed after the reply (a failed proof), else 0. */
int cluster_peer_command(struct cluster *cl, struct cluster_peer *p,
                         const struct kv_slice *argv, size_t argc, struct msg_buf *out);
/* 1 once p has proved the secret. */
int cluster_peer_authenticated(const struct cluster_peer *p);
/* 1 when ip (numeric, no port, no brackets) is the host of a peer address this
 * node knows (a seed or a member other than itself): the server keeps such a
 * connection over maxclients in case it is that peer (added by cnode). */
int cluster_is_peer_host(const struct cluster *cl, const char *ip);

/* ---- what operators see (KVD NODES, KVD RING, KVD KEYNODES, INFO) ---- */

/* KVD NODES: one line per member of the ring,
 * "<id> <ip:port> <state> <share>% phi=<phi> gen=<generation> status=<status>[ myself]
 * [ stream=<percent>%]\n", this node first; state one of up, suspect, down (link
 * down or phi at the threshold); share of the keys it replicates (a joining
 * member: once it is in); status joining, normal, leaving, or removing (another
 * node removes it: KVD REMOVENODE, cluster-replace; join.h), with " removing=<percent>%"
 * on the node that removes it; stream: this node's progress while it streams its
 * ranges in (joining, replacing, gaining a removed member's) or out (leaving). For
 * this node the state is "repairing" while it repairs after a long absence. */
void cluster_nodes_text(const struct cluster *cl, struct msg_buf *out);
/* KVD RING: one line per vnode, "<token> <id>\n", in token order. */
void cluster_ring_text(const struct cluster *cl, struct msg_buf *out);
/* KVD KEYNODES key: appends the key's replicas in ring order, one line
 * "<id> <ip:port>\n" each; returns how many (0 when not ready). */
size_t cluster_key_nodes(const struct cluster *cl, const char *key, size_t klen,
                         struct msg_buf *out);
/* INFO's kvd-cluster section body: "name:value\r\n" lines (members, states, hints
 * pending per peer, read repairs, writes that missed their quorum, peer round-trip
 * percentiles). */
void cluster_info(const struct cluster *cl, struct msg_buf *out);

#endif
