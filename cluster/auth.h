/* cluster/auth.h: the peer handshake that proves the cluster secret without sending
 * it, as pure functions and two small state machines (no I/O, no allocation, no
 * clock, no randomness of their own: the caller passes random bytes in). The dialer
 * side is driven by cluster/link.c; the listener side is what server/ calls for the
 * `KVD.PEER HELLO|AUTH` verbs on its client port. cluster/LINKS.md shows the
 * exchange on the wire.
 *
 * The exchange (D dials L; nD, nL are 32-byte nonces, sent as 64 hex digits):
 *   D -> L  KVD.PEER HELLO <idD> <hex nD>
 *   L -> D  *2 <idL> <hex nL>                     (L proves nothing yet)
 *   D -> L  KVD.PEER AUTH <hex proofD>            proofD = mac("dialer")
 *   L -> D  <hex proofL>                          proofL = mac("listener"),
 *                                                 only after proofD checked out
 *   mac(role) = HMAC-SHA256(secret, len(label) label || nD || nL ||
 *                                   len(idD) idD || len(idL) idL)
 * with label "kvd-peer-v1 dialer" or "kvd-peer-v1 listener". Both nonces enter both
 * proofs, so a proof recorded on one connection is worthless on another (each side
 * picks a fresh nonce); the role label stops a proof being reflected back; the
 * listener answers with its proof only to a dialer that proved first, so a party
 * without the secret obtains no MAC output from either side. This authenticates the
 * peer at connection start only: it does not encrypt or protect the bytes that
 * follow (someone able to rewrite traffic between nodes can hijack a connection);
 * nodes belong on a private network, as with Redis's own replication.
 *
 * Secrets and ids are borrowed byte strings: the caller keeps them alive and
 * unchanged for the lifetime of a state machine that uses them.
 */
#ifndef KVD_CLUSTER_AUTH_H
#define KVD_CLUSTER_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "proto/resp.h"

#define AUTH_NONCE_LEN 32         /* bytes of a nonce */
#define AUTH_NONCE_HEX 64         /* its wire form: lowercase hex digits */
#define AUTH_PROOF_LEN 32         /* bytes of a proof (a full HMAC-SHA256) */
#define AUTH_PROOF_HEX 64
#define AUTH_ID_MAX 64            /* longest node id accepted on the wire */
#define AUTH_SECRET_MAX 4096      /* longest cluster secret accepted */
#define AUTH_RANDOM_MIN 16        /* fewest random bytes auth_nonce_make accepts */
#define AUTH_FINGERPRINT_LEN 8    /* bytes of a secret's fingerprint */
#define AUTH_FINGERPRINT_HEX 16

enum auth_status {
    AUTH_OK = 0,
    AUTH_ERR_INPUT = -1,  /* malformed: wrong length, not hex, empty or long id */
    AUTH_ERR_PROOF = -2,  /* well formed but wrong: the peer lacks the secret */
    AUTH_ERR_STATE = -3,  /* a step out of order (e.g. AUTH before HELLO, twice) */
};

enum auth_role {
    AUTH_ROLE_DIALER = 0,   /* the side that connected */
    AUTH_ROLE_LISTENER = 1, /* the side that accepted */
};

/* ------------------------------------------------------------------------------
 * Building blocks
 * ------------------------------------------------------------------------------ */

/* Makes a nonce from n >= AUTH_RANDOM_MIN caller-supplied random bytes and a counter
 * the caller never repeats for one process (so a weak or repeated random source still
 * yields distinct nonces): SHA-256("kvd-nonce" || random || counter). Returns AUTH_OK,
 * or AUTH_ERR_INPUT when n is too small. */
int auth_nonce_make(const uint8_t *random, size_t n, uint64_t counter,
                    uint8_t out[AUTH_NONCE_LEN]);

/* Computes the proof `role` sends (see the header comment). Returns AUTH_OK, or
 * AUTH_ERR_INPUT when the secret is empty or longer than AUTH_SECRET_MAX or an id is
 * empty or longer than AUTH_ID_MAX. */
int auth_proof(const void *secret, size_t secret_len, enum auth_role role,
               const uint8_t nonce_d[AUTH_NONCE_LEN], const uint8_t nonce_l[AUTH_NONCE_LEN],
               const void *id_d, size_t id_d_len, const void *id_l, size_t id_l_len,
               uint8_t out[AUTH_PROOF_LEN]);

/* Checks a proof received in wire form (proof_hex[0..len), AUTH_PROOF_HEX hex digits)
 * against the one `role` should have sent, in time independent of where they differ.
 * Returns AUTH_OK, AUTH_ERR_INPUT (wrong length or not hex) or AUTH_ERR_PROOF. */
int auth_verify_hex(const void *secret, size_t secret_len, enum auth_role role,
                    const uint8_t nonce_d[AUTH_NONCE_LEN],
                    const uint8_t nonce_l[AUTH_NONCE_LEN], const void *id_d,
                    size_t id_d_len, const void *id_l, size_t id_l_len,
                    const char *proof_hex, size_t len);

/* 1 when a[0..n) == b[0..n), 0 otherwise; the time taken depends on n only. */
int auth_equal_ct(const void *a, const void *b, size_t n);

/* The secret's fingerprint, for gossip to tell clusters apart without revealing the
 * secret: the first AUTH_FINGERPRINT_LEN bytes of HMAC-SHA256(secret, "fp"), as
 * AUTH_FINGERPRINT_HEX lowercase hex digits and a NUL in out. */
void auth_fingerprint(const void *secret, size_t secret_len,
                      char out[AUTH_FINGERPRINT_HEX + 1]);

/* Lowercase hex of p[0..n) into out (2n digits and a NUL). */
void auth_hex_encode(const uint8_t *p, size_t n, char *out);

/* Decodes exactly 2n hex digits (either case) from hex[0..hexlen) into out[0..n).
 * Returns AUTH_OK, or AUTH_ERR_INPUT when hexlen != 2n or a byte is not a digit. */
int auth_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t n);

/* ------------------------------------------------------------------------------
 * One message: an argv of byte strings ready for redisAsyncCommandArgv (dialer) or
 * a reply for the listener to write. Points into its own buf.
 * ------------------------------------------------------------------------------ */

struct auth_msg {
    int argc;                      /* words in argv */
    const char *argv[4];           /* each points into buf or a borrowed id */
    size_t argvlen[4];
    char buf[2 * AUTH_PROOF_HEX + 4]; /* hex words live here */
};

/* ------------------------------------------------------------------------------
 * Dialer: start -> (HELLO reply) -> (AUTH reply) -> authenticated
 * ------------------------------------------------------------------------------ */

enum auth_dialer_state {
    AUTH_DIALER_NEW = 0,        /* before auth_dialer_start */
    AUTH_DIALER_HELLO_SENT,     /* waiting for the listener's id and nonce */
    AUTH_DIALER_PROOF_SENT,     /* waiting for the listener's proof */
    AUTH_DIALER_DONE,           /* both sides proved the secret */
    AUTH_DIALER_FAILED,         /* sticky; why says what went wrong */
};

struct auth_dialer {
    enum auth_dialer_state state;
    const uint8_t *secret;          /* borrowed */
    size_t secret_len;
    const char *my_id;              /* borrowed */
    size_t my_id_len;
    char peer_id[AUTH_ID_MAX];      /* the listener's id, from its HELLO reply */
    size_t peer_id_len;
    uint8_t nonce_d[AUTH_NONCE_LEN]; /* ours */
    uint8_t nonce_l[AUTH_NONCE_LEN]; /* the listener's */
    char why[96];                   /* after a failure: a short reason for logs */
};

/* Begins a handshake with a fresh nonce; fills *hello with
 * {"KVD.PEER", "HELLO", my_id, hex nonce}. Returns AUTH_OK or AUTH_ERR_INPUT (bad
 * secret or id; the dialer is then FAILED). */
int auth_dialer_start(struct auth_dialer *d, const void *secret, size_t secret_len,
                      const char *my_id, size_t my_id_len,
                      const uint8_t nonce[AUTH_NONCE_LEN], struct auth_msg *hello);

/* Feeds the listener's HELLO reply (its id and hex nonce); fills *auth with
 * {"KVD.PEER", "AUTH", hex proof}. Returns AUTH_OK, AUTH_ERR_INPUT or
 * AUTH_ERR_STATE; any error leaves the dialer FAILED. */
int auth_dialer_on_hello(struct auth_dialer *d, const char *peer_id, size_t peer_id_len,
                         const char *nonce_hex, size_t nonce_hex_len, struct auth_msg *auth);

/* Feeds the listener's AUTH reply (its hex proof). Returns AUTH_OK (state DONE),
 * AUTH_ERR_PROOF (the listener lacks the secret), AUTH_ERR_INPUT or AUTH_ERR_STATE;
 * any error leaves the dialer FAILED. */
int auth_dialer_on_proof(struct auth_dialer *d, const char *proof_hex, size_t len);

/* Marks the dialer FAILED with a reason (e.g. the listener answered with an error). */
void auth_dialer_fail(struct auth_dialer *d, const char *why);

/* ------------------------------------------------------------------------------
 * Listener: one per accepted connection. NEW -> (HELLO) NONCE_ISSUED -> (AUTH)
 * AUTHENTICATED; any mistake -> FAILED (sticky: reply with the error, then close).
 *
 * Wiring in server/ (sketch):
 *   on "KVD.PEER" from a connection c:
 *       uint8_t rnd[32]; getrandom(rnd, 32, 0); auth_nonce_make(rnd, 32, ++ctr, n);
 *       struct auth_reply r;
 *       auth_listener_step_argv(&c->peer_auth, c->argc - 1, c->argv + 1, n, &r);
 *       write r (array of two bulks / bulk / error), close after it if r.close;
 *   any internal verb: refuse unless auth_listener_authenticated(&c->peer_auth).
 * ------------------------------------------------------------------------------ */

enum auth_listener_state {
    AUTH_LISTENER_NEW = 0,
    AUTH_LISTENER_NONCE_ISSUED,
    AUTH_LISTENER_AUTHENTICATED,
    AUTH_LISTENER_FAILED,
};

enum auth_reply_kind {
    AUTH_REPLY_PAIR = 1,  /* an array of two bulk strings: a, b */
    AUTH_REPLY_BULK,      /* one bulk string: a */
    AUTH_REPLY_ERROR,     /* an error line: a (starts with "ERR ", no CRLF) */
};

struct auth_reply {
    enum auth_reply_kind kind;
    const char *a;        /* points into buf or the listener's borrowed id */
    size_t alen;
    const char *b;
    size_t blen;
    int close;            /* 1: close the connection after writing this reply */
    char buf[AUTH_PROOF_HEX + 64];
};

struct auth_listener {
    enum auth_listener_state state;
    const uint8_t *secret;          /* borrowed */
    size_t secret_len;
    const char *my_id;              /* borrowed */
    size_t my_id_len;
    char peer_id[AUTH_ID_MAX];      /* the dialer's id, from its HELLO */
    size_t peer_id_len;
    uint8_t nonce_d[AUTH_NONCE_LEN];
    uint8_t nonce_l[AUTH_NONCE_LEN];
    char why[96];                   /* after a failure: a short reason for logs */
};

/* Prepares a listener for one accepted connection (state NEW). */
void auth_listener_init(struct auth_listener *l, const void *secret, size_t secret_len,
                        const char *my_id, size_t my_id_len);

/* Feeds one KVD.PEER command, argv[0] being the verb ("HELLO" or "AUTH", any case),
 * with a fresh nonce the listener uses if the verb is HELLO. Fills *out with the
 * reply to send. Returns AUTH_OK, or the error the reply carries (the listener is
 * then FAILED and out->close is 1). Errors never say more than "peer authentication
 * failed" or "bad KVD.PEER" to the peer; l->why says more for the log. */
int auth_listener_step(struct auth_listener *l, int argc, const char *const *argv,
                       const size_t *argvlen, const uint8_t nonce[AUTH_NONCE_LEN],
                       struct auth_reply *out);

/* The same with the server's argument form: argv[0..argc) are the words after
 * "KVD.PEER" (argv[0] the verb), as struct kv_slice. */
int auth_listener_step_argv(struct auth_listener *l, int argc, const struct kv_slice *argv,
                            const uint8_t nonce[AUTH_NONCE_LEN], struct auth_reply *out);

/* 1 once the dialer proved the secret on this connection. */
static inline int auth_listener_authenticated(const struct auth_listener *l)
{
    return l->state == AUTH_LISTENER_AUTHENTICATED;
}

#endif
