/* cluster/auth.c: the peer handshake's proofs and its two state machines (see
 * auth.h). Pure: every input arrives as arguments, every output leaves in a caller's
 * struct; the link (cluster/link.c) and server/ do the I/O.
 */
#include "cluster/auth.h"

#include <string.h>
#include <strings.h>

#include "cluster/sha256.h"
#include "proto/resp.h"

static const char label_dialer[] = "kvd-peer-v1 dialer";
static const char label_listener[] = "kvd-peer-v1 listener";

int auth_nonce_make(const uint8_t *random, size_t n, uint64_t counter,
                    uint8_t out[AUTH_NONCE_LEN])
{
    if (random == NULL || n < AUTH_RANDOM_MIN) {
        return AUTH_ERR_INPUT;
    }
    uint8_t ctr[8];
    for (int i = 0; i < 8; i++) {
        ctr[i] = (uint8_t)(counter >> (56 - 8 * i));
    }
    struct sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, "kvd-nonce", 9);
    sha256_update(&c, random, n);
    sha256_update(&c, ctr, sizeof(ctr));
    sha256_final(&c, out);
    return AUTH_OK;
}

static int id_ok(const void *id, size_t len)
{
    return id != NULL && len > 0 && len <= AUTH_ID_MAX;
}

static int secret_ok(const void *secret, size_t len)
{
    return secret != NULL && len > 0 && len <= AUTH_SECRET_MAX;
}

int auth_proof(const void *secret, size_t secret_len, enum auth_role role,
               const uint8_t nonce_d[AUTH_NONCE_LEN], const uint8_t nonce_l[AUTH_NONCE_LEN],
               const void *id_d, size_t id_d_len, const void *id_l, size_t id_l_len,
               uint8_t out[AUTH_PROOF_LEN])
{
    if (!secret_ok(secret, secret_len) || !id_ok(id_d, id_d_len) ||
        !id_ok(id_l, id_l_len)) {
        return AUTH_ERR_INPUT;
    }
    const char *label = role == AUTH_ROLE_DIALER ? label_dialer : label_listener;
    uint8_t len8;
    struct hmac_sha256_ctx c;
    hmac_sha256_init(&c, secret, secret_len);
    len8 = (uint8_t)strlen(label);
    hmac_sha256_update(&c, &len8, 1);
    hmac_sha256_update(&c, label, len8);
    hmac_sha256_update(&c, nonce_d, AUTH_NONCE_LEN);
    hmac_sha256_update(&c, nonce_l, AUTH_NONCE_LEN);
    len8 = (uint8_t)id_d_len;
    hmac_sha256_update(&c, &len8, 1);
    hmac_sha256_update(&c, id_d, id_d_len);
    len8 = (uint8_t)id_l_len;
    hmac_sha256_update(&c, &len8, 1);
    hmac_sha256_update(&c, id_l, id_l_len);
    hmac_sha256_final(&c, out);
    return AUTH_OK;
}

int auth_equal_ct(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t diff = 0;
    for (size_t i = 0; i < n; i++) {
        diff |= (uint8_t)(x[i] ^ y[i]);
    }
    return diff == 0;
}

int auth_verify_hex(const void *secret, size_t secret_len, enum auth_role role,
                    const uint8_t nonce_d[AUTH_NONCE_LEN],
                    const uint8_t nonce_l[AUTH_NONCE_LEN], const void *id_d,
                    size_t id_d_len, const void *id_l, size_t id_l_len,
                    const char *proof_hex, size_t len)
{
    uint8_t got[AUTH_PROOF_LEN], want[AUTH_PROOF_LEN];
    if (proof_hex == NULL || auth_hex_decode(proof_hex, len, got, sizeof(got)) != AUTH_OK) {
        return AUTH_ERR_INPUT;
    }
    int rc = auth_proof(secret, secret_len, role, nonce_d, nonce_l, id_d, id_d_len, id_l,
                        id_l_len, want);
    if (rc != AUTH_OK) {
        return rc;
    }
    return auth_equal_ct(got, want, sizeof(got)) ? AUTH_OK : AUTH_ERR_PROOF;
}

void auth_fingerprint(const void *secret, size_t secret_len,
                      char out[AUTH_FINGERPRINT_HEX + 1])
{
    uint8_t mac[SHA256_DIGEST_LEN];
    hmac_sha256(secret, secret_len, "fp", 2, mac);
    auth_hex_encode(mac, AUTH_FINGERPRINT_LEN, out);
}

void auth_hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int auth_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t n)
{
    if (hex == NULL || hexlen != 2 * n) {
        return AUTH_ERR_INPUT;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = resp_hex_digit(hex[2 * i]), lo = resp_hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return AUTH_ERR_INPUT;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return AUTH_OK;
}

/* ------------------------------------------------------------------------------
 * Dialer
 * ------------------------------------------------------------------------------ */

static int dialer_failed(struct auth_dialer *d, int rc, const char *why)
{
    d->state = AUTH_DIALER_FAILED;
    strncpy(d->why, why, sizeof(d->why) - 1);
    d->why[sizeof(d->why) - 1] = '\0';
    return rc;
}

void auth_dialer_fail(struct auth_dialer *d, const char *why)
{
    dialer_failed(d, AUTH_ERR_PROOF, why);
}

int auth_dialer_start(struct auth_dialer *d, const void *secret, size_t secret_len,
                      const char *my_id, size_t my_id_len,
                      const uint8_t nonce[AUTH_NONCE_LEN], struct auth_msg *hello)
{
    memset(d, 0, sizeof(*d));
    d->secret = secret;
    d->secret_len = secret_len;
    d->my_id = my_id;
    d->my_id_len = my_id_len;
    if (!secret_ok(secret, secret_len)) {
        return dialer_failed(d, AUTH_ERR_INPUT, "cluster secret empty or too long");
    }
    if (!id_ok(my_id, my_id_len)) {
        return dialer_failed(d, AUTH_ERR_INPUT, "own node id empty or too long");
    }
    memcpy(d->nonce_d, nonce, AUTH_NONCE_LEN);
    hello->argc = 4;
    hello->argv[0] = "KVD.PEER";
    hello->argvlen[0] = 8;
    hello->argv[1] = "HELLO";
    hello->argvlen[1] = 5;
    hello->argv[2] = my_id;
    hello->argvlen[2] = my_id_len;
    auth_hex_encode(nonce, AUTH_NONCE_LEN, hello->buf);
    hello->argv[3] = hello->buf;
    hello->argvlen[3] = AUTH_NONCE_HEX;
    d->state = AUTH_DIALER_HELLO_SENT;
    return AUTH_OK;
}

int auth_dialer_on_hello(struct auth_dialer *d, const char *peer_id, size_t peer_id_len,
                         const char *nonce_hex, size_t nonce_hex_len, struct auth_msg *auth)
{
    if (d->state != AUTH_DIALER_HELLO_SENT) {
        return dialer_failed(d, AUTH_ERR_STATE, "HELLO reply out of order");
    }
    if (!id_ok(peer_id, peer_id_len)) {
        return dialer_failed(d, AUTH_ERR_INPUT, "peer id empty or too long");
    }
    if (auth_hex_decode(nonce_hex, nonce_hex_len, d->nonce_l, AUTH_NONCE_LEN) != AUTH_OK) {
        return dialer_failed(d, AUTH_ERR_INPUT, "peer nonce malformed");
    }
    if (auth_equal_ct(d->nonce_l, d->nonce_d, AUTH_NONCE_LEN)) {
        return dialer_failed(d, AUTH_ERR_INPUT, "peer echoed our nonce");
    }
    memcpy(d->peer_id, peer_id, peer_id_len);
    d->peer_id_len = peer_id_len;
    uint8_t proof[AUTH_PROOF_LEN];
    auth_proof(d->secret, d->secret_len, AUTH_ROLE_DIALER, d->nonce_d, d->nonce_l,
               d->my_id, d->my_id_len, d->peer_id, d->peer_id_len, proof);
    auth->argc = 3;
    auth->argv[0] = "KVD.PEER";
    auth->argvlen[0] = 8;
    auth->argv[1] = "AUTH";
    auth->argvlen[1] = 4;
    auth_hex_encode(proof, AUTH_PROOF_LEN, auth->buf);
    auth->argv[2] = auth->buf;
    auth->argvlen[2] = AUTH_PROOF_HEX;
    d->state = AUTH_DIALER_PROOF_SENT;
    return AUTH_OK;
}

int auth_dialer_on_proof(struct auth_dialer *d, const char *proof_hex, size_t len)
{
    if (d->state != AUTH_DIALER_PROOF_SENT) {
        return dialer_failed(d, AUTH_ERR_STATE, "AUTH reply out of order");
    }
    int rc = auth_verify_hex(d->secret, d->secret_len, AUTH_ROLE_LISTENER, d->nonce_d,
                             d->nonce_l, d->my_id, d->my_id_len, d->peer_id,
                             d->peer_id_len, proof_hex, len);
    if (rc == AUTH_ERR_INPUT) {
        return dialer_failed(d, rc, "peer proof malformed");
    }
    if (rc != AUTH_OK) {
        return dialer_failed(d, rc, "peer proof wrong: the peer has another secret");
    }
    d->state = AUTH_DIALER_DONE;
    return AUTH_OK;
}

/* ------------------------------------------------------------------------------
 * Listener
 * ------------------------------------------------------------------------------ */

void auth_listener_init(struct auth_listener *l, const void *secret, size_t secret_len,
                        const char *my_id, size_t my_id_len)
{
    memset(l, 0, sizeof(*l));
    l->secret = secret;
    l->secret_len = secret_len;
    l->my_id = my_id;
    l->my_id_len = my_id_len;
    l->state = AUTH_LISTENER_NEW;
}

static int listener_refuse(struct auth_listener *l, struct auth_reply *out, int rc,
                           const char *to_peer, const char *why)
{
    l->state = AUTH_LISTENER_FAILED;
    if (why != l->why) {
        strncpy(l->why, why, sizeof(l->why) - 1);
        l->why[sizeof(l->why) - 1] = '\0';
    }
    out->kind = AUTH_REPLY_ERROR;
    out->a = to_peer;
    out->alen = strlen(to_peer);
    out->b = NULL;
    out->blen = 0;
    out->close = 1;
    return rc;
}

static int listener_hello(struct auth_listener *l, int argc, const char *const *argv,
                          const size_t *argvlen, const uint8_t nonce[AUTH_NONCE_LEN],
                          struct auth_reply *out)
{
    static const char failed[] = "ERR peer authentication failed";
    if (l->state != AUTH_LISTENER_NEW) {
        return listener_refuse(l, out, AUTH_ERR_STATE, failed, "HELLO out of order");
    }
    if (argc != 3 || !id_ok(argv[1], argvlen[1])) {
        return listener_refuse(l, out, AUTH_ERR_INPUT, failed, "HELLO malformed");
    }
    if (!secret_ok(l->secret, l->secret_len) || !id_ok(l->my_id, l->my_id_len)) {
        return listener_refuse(l, out, AUTH_ERR_INPUT, failed,
                               "own secret or node id unusable");
    }
    if (auth_hex_decode(argv[2], argvlen[2], l->nonce_d, AUTH_NONCE_LEN) != AUTH_OK) {
        return listener_refuse(l, out, AUTH_ERR_INPUT, failed, "HELLO nonce malformed");
    }
    if (auth_equal_ct(nonce, l->nonce_d, AUTH_NONCE_LEN)) {
        return listener_refuse(l, out, AUTH_ERR_INPUT, failed, "HELLO echoed our nonce");
    }
    memcpy(l->peer_id, argv[1], argvlen[1]);
    l->peer_id_len = argvlen[1];
    memcpy(l->nonce_l, nonce, AUTH_NONCE_LEN);
    auth_hex_encode(nonce, AUTH_NONCE_LEN, out->buf);
    out->kind = AUTH_REPLY_PAIR;
    out->a = l->my_id;
    out->alen = l->my_id_len;
    out->b = out->buf;
    out->blen = AUTH_NONCE_HEX;
    out->close = 0;
    l->state = AUTH_LISTENER_NONCE_ISSUED;
    return AUTH_OK;
}

static int listener_auth(struct auth_listener *l, int argc, const char *const *argv,
                         const size_t *argvlen, struct auth_reply *out)
{
    static const char failed[] = "ERR peer authentication failed";
    if (l->state != AUTH_LISTENER_NONCE_ISSUED) {
        return listener_refuse(l, out, AUTH_ERR_STATE, failed, "AUTH before HELLO");
    }
    if (argc != 2) {
        return listener_refuse(l, out, AUTH_ERR_INPUT, failed, "AUTH malformed");
    }
    int rc = auth_verify_hex(l->secret, l->secret_len, AUTH_ROLE_DIALER, l->nonce_d,
                             l->nonce_l, l->peer_id, l->peer_id_len, l->my_id,
                             l->my_id_len, argv[1], argvlen[1]);
    if (rc != AUTH_OK) {
        return listener_refuse(l, out, rc, failed,
                               rc == AUTH_ERR_INPUT ? "AUTH proof malformed"
                                                    : "AUTH proof wrong: another secret");
    }
    uint8_t proof[AUTH_PROOF_LEN];
    auth_proof(l->secret, l->secret_len, AUTH_ROLE_LISTENER, l->nonce_d, l->nonce_l,
               l->peer_id, l->peer_id_len, l->my_id, l->my_id_len, proof);
    auth_hex_encode(proof, AUTH_PROOF_LEN, out->buf);
    out->kind = AUTH_REPLY_BULK;
    out->a = out->buf;
    out->alen = AUTH_PROOF_HEX;
    out->b = NULL;
    out->blen = 0;
    out->close = 0;
    l->state = AUTH_LISTENER_AUTHENTICATED;
    return AUTH_OK;
}

int auth_listener_step(struct auth_listener *l, int argc, const char *const *argv,
                       const size_t *argvlen, const uint8_t nonce[AUTH_NONCE_LEN],
                       struct auth_reply *out)
{
    if (l->state == AUTH_LISTENER_FAILED) {
        return listener_refuse(l, out, AUTH_ERR_STATE, "ERR peer authentication failed",
                               l->why);
    }
    if (argc < 1 || argv == NULL || argvlen == NULL) {
        return listener_refuse(l, out, AUTH_ERR_INPUT, "ERR bad KVD.PEER", "no verb");
    }
    if (argvlen[0] == 5 && strncasecmp(argv[0], "HELLO", 5) == 0) {
        return listener_hello(l, argc, argv, argvlen, nonce, out);
    }
    if (argvlen[0] == 4 && strncasecmp(argv[0], "AUTH", 4) == 0) {
        return listener_auth(l, argc, argv, argvlen, out);
    }
    return listener_refuse(l, out, AUTH_ERR_INPUT, "ERR bad KVD.PEER", "unknown verb");
}

int auth_listener_step_argv(struct auth_listener *l, int argc, const struct kv_slice *argv,
                            const uint8_t nonce[AUTH_NONCE_LEN], struct auth_reply *out)
{
    /* every valid form has at most 3 words; more is refused by arity, never read */
    const char *words[4];
    size_t lens[4];
    int n = argc < 4 ? argc : 4;
    for (int i = 0; i < n; i++) {
        words[i] = argv[i].p;
        lens[i] = argv[i].len;
    }
    if (argc < 1 || argv == NULL) {
        return auth_listener_step(l, 0, NULL, NULL, nonce, out);
    }
    return auth_listener_step(l, argc, words, lens, nonce, out);
}
