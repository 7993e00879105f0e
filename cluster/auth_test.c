/* cluster/auth_test.c: the peer handshake as pure state machines: a dialer and a
 * listener with the same secret both end authenticated; another secret fails on
 * either side without the listener ever proving itself; proofs from one connection
 * do not work on another; malformed, truncated, oversized and out-of-order input is
 * refused with a closing error. */
#include "cluster/auth.h"

#include "cluster/sha256.h"
#include "tests/test.h"

static const char secret_a[] = "correct horse battery staple";
static const char secret_b[] = "correct horse battery stapLe";

static void nonce_for(uint64_t n, uint8_t out[AUTH_NONCE_LEN])
{
    uint8_t rnd[AUTH_RANDOM_MIN];
    memset(rnd, 0x42, sizeof(rnd));
    auth_nonce_make(rnd, sizeof(rnd), n, out);
}

/* Runs dialer and listener against each other: returns 0 when both ended
 * authenticated, else a code saying which step refused (1 HELLO, 2 AUTH on the
 * listener, 3 proof on the dialer). The listener's reply to AUTH is copied to
 * *last for inspection. */
static int handshake(const char *ds, const char *ls, struct auth_dialer *d,
                     struct auth_listener *l, struct auth_reply *last)
{
    uint8_t nd[AUTH_NONCE_LEN], nl[AUTH_NONCE_LEN];
    struct auth_msg m;
    nonce_for(1, nd);
    nonce_for(2, nl);
    if (auth_dialer_start(d, ds, strlen(ds), "node-d", 6, nd, &m) != AUTH_OK) {
        return 9;
    }
    auth_listener_init(l, ls, strlen(ls), "node-l", 6);
    struct auth_reply r;
    if (auth_listener_step(l, m.argc - 1, m.argv + 1, m.argvlen + 1, nl, &r) != AUTH_OK) {
        return 1;
    }
    if (r.kind != AUTH_REPLY_PAIR ||
        auth_dialer_on_hello(d, r.a, r.alen, r.b, r.blen, &m) != AUTH_OK) {
        return 1;
    }
    int rc = auth_listener_step(l, m.argc - 1, m.argv + 1, m.argvlen + 1, nl, last);
    if (rc != AUTH_OK) {
        return 2;
    }
    if (auth_dialer_on_proof(d, last->a, last->alen) != AUTH_OK) {
        return 3;
    }
    return 0;
}

static void test_auth_same_secret_authenticates_both_ways(void)
{
    struct auth_dialer d;
    struct auth_listener l;
    struct auth_reply r;
    CHECK_EQ_INT(handshake(secret_a, secret_a, &d, &l, &r), 0);
    CHECK_EQ_INT(d.state, AUTH_DIALER_DONE);
    CHECK(auth_listener_authenticated(&l));
    CHECK_EQ_MEM(d.peer_id, d.peer_id_len, "node-l", 6);
    CHECK_EQ_MEM(l.peer_id, l.peer_id_len, "node-d", 6);
    CHECK_EQ_INT(r.kind, AUTH_REPLY_BULK);
    CHECK_EQ_INT(r.alen, AUTH_PROOF_HEX);
}

/* A dialer with another secret is refused at AUTH, and the listener's reply is an
 * error, never its proof: the dialer learns nothing it could replay or brute-force. */
static void test_auth_wrong_secret_dialer_refused_listener_reveals_nothing(void)
{
    struct auth_dialer d;
    struct auth_listener l;
    struct auth_reply r;
    CHECK_EQ_INT(handshake(secret_b, secret_a, &d, &l, &r), 2);
    CHECK_EQ_INT(l.state, AUTH_LISTENER_FAILED);
    CHECK_EQ_INT(r.kind, AUTH_REPLY_ERROR);
    CHECK(r.close);
    CHECK_EQ_MEM(r.a, r.alen, "ERR peer authentication failed", 30);
    CHECK(strstr(l.why, "wrong") != NULL);
    /* the listener stays failed: a retry on the same connection is refused too */
    struct auth_reply r2;
    const char *argv[] = {"HELLO", "x", "00"};
    size_t lens[] = {5, 1, 2};
    uint8_t n[AUTH_NONCE_LEN];
    nonce_for(7, n);
    CHECK(auth_listener_step(&l, 3, argv, lens, n, &r2) != AUTH_OK);
    CHECK(r2.close);
}

/* A listener with another secret (an impostor answering on a seed address) is
 * found out by the dialer when its proof does not check. */
static void test_auth_wrong_secret_listener_detected_by_dialer(void)
{
    uint8_t nd[AUTH_NONCE_LEN], nl[AUTH_NONCE_LEN];
    struct auth_dialer d;
    struct auth_msg m;
    nonce_for(1, nd);
    nonce_for(2, nl);
    CHECK_EQ_INT(auth_dialer_start(&d, secret_a, strlen(secret_a), "node-d", 6, nd, &m),
                 AUTH_OK);
    char hex[AUTH_NONCE_HEX + 1];
    auth_hex_encode(nl, AUTH_NONCE_LEN, hex);
    CHECK_EQ_INT(auth_dialer_on_hello(&d, "node-l", 6, hex, AUTH_NONCE_HEX, &m), AUTH_OK);
    /* the impostor computes a listener proof with its own secret */
    uint8_t p[AUTH_PROOF_LEN];
    char phex[AUTH_PROOF_HEX + 1];
    CHECK_EQ_INT(auth_proof(secret_b, strlen(secret_b), AUTH_ROLE_LISTENER, nd, nl,
                            "node-d", 6, "node-l", 6, p),
                 AUTH_OK);
    auth_hex_encode(p, AUTH_PROOF_LEN, phex);
    CHECK_EQ_INT(auth_dialer_on_proof(&d, phex, AUTH_PROOF_HEX), AUTH_ERR_PROOF);
    CHECK_EQ_INT(d.state, AUTH_DIALER_FAILED);
    /* reflecting the dialer's own proof back does not work either (role label) */
    struct auth_dialer d2;
    CHECK_EQ_INT(auth_dialer_start(&d2, secret_a, strlen(secret_a), "node-d", 6, nd, &m),
                 AUTH_OK);
    CHECK_EQ_INT(auth_dialer_on_hello(&d2, "node-l", 6, hex, AUTH_NONCE_HEX, &m), AUTH_OK);
    CHECK_EQ_INT(auth_dialer_on_proof(&d2, m.argv[2], m.argvlen[2]), AUTH_ERR_PROOF);
}

/* A proof recorded on one connection, replayed on another where the listener chose
 * another nonce, is refused. */
static void test_auth_replayed_proof_with_other_nonce_refused(void)
{
    struct auth_dialer d;
    struct auth_listener l;
    struct auth_reply r;
    CHECK_EQ_INT(handshake(secret_a, secret_a, &d, &l, &r), 0);
    /* the recorded AUTH argument of that session */
    uint8_t p[AUTH_PROOF_LEN];
    char recorded[AUTH_PROOF_HEX + 1];
    auth_proof(secret_a, strlen(secret_a), AUTH_ROLE_DIALER, d.nonce_d, d.nonce_l,
               "node-d", 6, "node-l", 6, p);
    auth_hex_encode(p, AUTH_PROOF_LEN, recorded);
    /* an eavesdropper opens a new connection with the same HELLO */
    struct auth_listener l2;
    struct auth_reply r2;
    uint8_t fresh[AUTH_NONCE_LEN];
    nonce_for(99, fresh);
    char ndhex[AUTH_NONCE_HEX + 1];
    auth_hex_encode(d.nonce_d, AUTH_NONCE_LEN, ndhex);
    auth_listener_init(&l2, secret_a, strlen(secret_a), "node-l", 6);
    const char *hello[] = {"HELLO", "node-d", ndhex};
    size_t hello_len[] = {5, 6, AUTH_NONCE_HEX};
    CHECK_EQ_INT(auth_listener_step(&l2, 3, hello, hello_len, fresh, &r2), AUTH_OK);
    const char *authv[] = {"AUTH", recorded};
    size_t auth_len[] = {4, AUTH_PROOF_HEX};
    CHECK_EQ_INT(auth_listener_step(&l2, 2, authv, auth_len, fresh, &r2), AUTH_ERR_PROOF);
    CHECK(!auth_listener_authenticated(&l2));
    CHECK(r2.close);
    /* and the same recorded proof under another claimed id fails too */
    struct auth_listener l3;
    auth_listener_init(&l3, secret_a, strlen(secret_a), "node-l", 6);
    const char *hello3[] = {"hello", "node-x", ndhex};
    CHECK_EQ_INT(auth_listener_step(&l3, 3, hello3, hello_len, d.nonce_l, &r2), AUTH_OK);
    CHECK_EQ_INT(auth_listener_step(&l3, 2, authv, auth_len, d.nonce_l, &r2),
                 AUTH_ERR_PROOF);
}

/* Proofs of wrong length, non-hex digits, truncated or oversized, are input errors;
 * a flipped digit is a proof error. */
static void test_auth_truncated_oversized_and_garbled_proofs_refused(void)
{
    uint8_t nd[AUTH_NONCE_LEN], nl[AUTH_NONCE_LEN], p[AUTH_PROOF_LEN];
    char hex[AUTH_PROOF_HEX + 8];
    nonce_for(1, nd);
    nonce_for(2, nl);
    auth_proof(secret_a, strlen(secret_a), AUTH_ROLE_DIALER, nd, nl, "a", 1, "b", 1, p);
    auth_hex_encode(p, AUTH_PROOF_LEN, hex);
    const size_t L = AUTH_PROOF_HEX;
#define VERIFY(h, n)                                                                  \
    auth_verify_hex(secret_a, strlen(secret_a), AUTH_ROLE_DIALER, nd, nl, "a", 1, "b", \
                    1, (h), (n))
    CHECK_EQ_INT(VERIFY(hex, L), AUTH_OK);
    CHECK_EQ_INT(VERIFY(hex, L - 1), AUTH_ERR_INPUT);
    CHECK_EQ_INT(VERIFY(hex, L - 2), AUTH_ERR_INPUT);
    CHECK_EQ_INT(VERIFY(hex, 0), AUTH_ERR_INPUT);
    memcpy(hex + L, "00", 3);
    CHECK_EQ_INT(VERIFY(hex, L + 2), AUTH_ERR_INPUT);
    hex[L] = '\0';
    char upper[AUTH_PROOF_HEX + 1];
    for (size_t i = 0; i <= L; i++) {
        upper[i] = (hex[i] >= 'a' && hex[i] <= 'f') ? (char)(hex[i] - 32) : hex[i];
    }
    CHECK_EQ_INT(VERIFY(upper, L), AUTH_OK);
    char bad = hex[10];
    hex[10] = 'g';
    CHECK_EQ_INT(VERIFY(hex, L), AUTH_ERR_INPUT);
    hex[10] = bad == '0' ? '1' : '0';
    CHECK_EQ_INT(VERIFY(hex, L), AUTH_ERR_PROOF);
    CHECK_EQ_INT(VERIFY(NULL, L), AUTH_ERR_INPUT);
#undef VERIFY
    /* ids: empty or over AUTH_ID_MAX refused */
    char longid[AUTH_ID_MAX + 1];
    memset(longid, 'i', sizeof(longid));
    CHECK_EQ_INT(auth_proof(secret_a, strlen(secret_a), AUTH_ROLE_DIALER, nd, nl, longid,
                            AUTH_ID_MAX + 1, "b", 1, p),
                 AUTH_ERR_INPUT);
    CHECK_EQ_INT(auth_proof(secret_a, strlen(secret_a), AUTH_ROLE_DIALER, nd, nl, longid,
                            AUTH_ID_MAX, "b", 1, p),
                 AUTH_OK);
    CHECK_EQ_INT(auth_proof(secret_a, strlen(secret_a), AUTH_ROLE_DIALER, nd, nl, "", 0,
                            "b", 1, p),
                 AUTH_ERR_INPUT);
    CHECK_EQ_INT(auth_proof("", 0, AUTH_ROLE_DIALER, nd, nl, "a", 1, "b", 1, p),
                 AUTH_ERR_INPUT);
}

/* The listener refuses out-of-order verbs, unknown verbs, malformed HELLOs
 * (wrong arity, truncated or oversized nonce, long id), always closing. */
static void test_auth_listener_refuses_malformed_and_out_of_order(void)
{
    uint8_t nl[AUTH_NONCE_LEN];
    char ndhex[AUTH_NONCE_HEX + 3];
    nonce_for(5, nl);
    memset(ndhex, 'a', sizeof(ndhex));
    struct auth_listener l;
    struct auth_reply r;
    const char *auth_first[] = {"AUTH", ndhex};
    size_t auth_first_len[] = {4, AUTH_PROOF_HEX};
    auth_listener_init(&l, secret_a, strlen(secret_a), "me", 2);
    CHECK_EQ_INT(auth_listener_step(&l, 2, auth_first, auth_first_len, nl, &r),
                 AUTH_ERR_STATE);
    CHECK(r.close && r.kind == AUTH_REPLY_ERROR);

    struct {
        int argc;
        const char *argv[4];
        size_t len[4];
    } bad[] = {
        {1, {"HELLO"}, {5}},
        {2, {"HELLO", "id"}, {5, 2}},
        {4, {"HELLO", "id", ndhex, "x"}, {5, 2, AUTH_NONCE_HEX, 1}},
        {3, {"HELLO", "id", ndhex}, {5, 2, AUTH_NONCE_HEX - 1}},
        {3, {"HELLO", "id", ndhex}, {5, 2, AUTH_NONCE_HEX + 2}},
        {3, {"HELLO", "id", "zz"}, {5, 2, 2}},
        {3, {"HELLO", "", ndhex}, {5, 0, AUTH_NONCE_HEX}},
        {3, {"HELLO", ndhex, ndhex}, {5, AUTH_ID_MAX + 1, AUTH_NONCE_HEX}},
        {2, {"PING", "x"}, {4, 1}},
        {0, {NULL}, {0}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        auth_listener_init(&l, secret_a, strlen(secret_a), "me", 2);
        int rc = auth_listener_step(&l, bad[i].argc, bad[i].argv, bad[i].len, nl, &r);
        if (rc == AUTH_OK) {
            fprintf(stderr, "  case %zu accepted\n", i);
        }
        CHECK(rc != AUTH_OK);
        CHECK(r.close);
        CHECK_EQ_INT(l.state, AUTH_LISTENER_FAILED);
    }
    /* a well-formed HELLO passes, then a second HELLO is refused */
    auth_listener_init(&l, secret_a, strlen(secret_a), "me", 2);
    const char *hello[] = {"HELLO", "id", ndhex};
    size_t hello_len[] = {5, 2, AUTH_NONCE_HEX};
    CHECK_EQ_INT(auth_listener_step(&l, 3, hello, hello_len, nl, &r), AUTH_OK);
    CHECK_EQ_INT(r.kind, AUTH_REPLY_PAIR);
    CHECK_EQ_MEM(r.a, r.alen, "me", 2);
    CHECK_EQ_INT(r.blen, AUTH_NONCE_HEX);
    CHECK_EQ_INT(auth_listener_step(&l, 3, hello, hello_len, nl, &r), AUTH_ERR_STATE);
    CHECK(r.close);
    /* a listener whose nonce equals the dialer's (an echo) refuses */
    auth_listener_init(&l, secret_a, strlen(secret_a), "me", 2);
    uint8_t same[AUTH_NONCE_LEN];
    memset(same, 0xaa, sizeof(same));
    CHECK_EQ_INT(auth_listener_step(&l, 3, hello, hello_len, same, &r), AUTH_ERR_INPUT);
}

/* The dialer refuses a HELLO reply with a bad nonce or id, and replies out of
 * order. */
static void test_auth_dialer_refuses_malformed_replies(void)
{
    uint8_t nd[AUTH_NONCE_LEN];
    struct auth_dialer d;
    struct auth_msg m;
    char hex[AUTH_NONCE_HEX + 1];
    nonce_for(1, nd);
    CHECK_EQ_INT(auth_dialer_start(&d, secret_a, strlen(secret_a), "me", 2, nd, &m),
                 AUTH_OK);
    CHECK_EQ_INT(m.argc, 4);
    CHECK_EQ_MEM(m.argv[1], m.argvlen[1], "HELLO", 5);
    CHECK_EQ_INT(auth_dialer_on_proof(&d, "00", 2), AUTH_ERR_STATE);
    CHECK_EQ_INT(auth_dialer_start(&d, secret_a, strlen(secret_a), "me", 2, nd, &m),
                 AUTH_OK);
    CHECK_EQ_INT(auth_dialer_on_hello(&d, "peer", 4, "abc", 3, &m), AUTH_ERR_INPUT);
    CHECK_EQ_INT(d.state, AUTH_DIALER_FAILED);
    CHECK_EQ_INT(auth_dialer_start(&d, secret_a, strlen(secret_a), "me", 2, nd, &m),
                 AUTH_OK);
    auth_hex_encode(nd, AUTH_NONCE_LEN, hex);
    CHECK_EQ_INT(auth_dialer_on_hello(&d, "peer", 4, hex, AUTH_NONCE_HEX, &m),
                 AUTH_ERR_INPUT); /* our own nonce echoed */
    CHECK_EQ_INT(auth_dialer_start(&d, secret_a, strlen(secret_a), "me", 2, nd, &m),
                 AUTH_OK);
    CHECK_EQ_INT(auth_dialer_on_hello(&d, "", 0, hex, AUTH_NONCE_HEX, &m), AUTH_ERR_INPUT);
    CHECK_EQ_INT(auth_dialer_start(&d, "", 0, "me", 2, nd, &m), AUTH_ERR_INPUT);
    CHECK_EQ_INT(auth_dialer_start(&d, secret_a, strlen(secret_a), "", 0, nd, &m),
                 AUTH_ERR_INPUT);
}

/* The server's argv form (struct kv_slice) runs the same machine: a full exchange
 * authenticates; extra words are refused without being read. */
static void test_auth_listener_step_argv_matches_arrays(void)
{
    uint8_t nd[AUTH_NONCE_LEN], nl[AUTH_NONCE_LEN];
    struct auth_dialer d;
    struct auth_msg m;
    struct auth_listener l;
    struct auth_reply r;
    nonce_for(11, nd);
    nonce_for(12, nl);
    CHECK_EQ_INT(auth_dialer_start(&d, secret_a, strlen(secret_a), "dd", 2, nd, &m), AUTH_OK);
    auth_listener_init(&l, secret_a, strlen(secret_a), "ll", 2);
    struct kv_slice hello[3];
    for (int i = 0; i < 3; i++) {
        hello[i].p = m.argv[i + 1];
        hello[i].len = m.argvlen[i + 1];
    }
    CHECK_EQ_INT(auth_listener_step_argv(&l, 3, hello, nl, &r), AUTH_OK);
    CHECK_EQ_INT(auth_dialer_on_hello(&d, r.a, r.alen, r.b, r.blen, &m), AUTH_OK);
    struct kv_slice authv[2] = {{m.argv[1], m.argvlen[1]}, {m.argv[2], m.argvlen[2]}};
    CHECK_EQ_INT(auth_listener_step_argv(&l, 2, authv, nl, &r), AUTH_OK);
    CHECK(auth_listener_authenticated(&l));
    CHECK_EQ_INT(auth_dialer_on_proof(&d, r.a, r.alen), AUTH_OK);
    /* a HELLO with 6 words: refused by arity */
    struct kv_slice six[6];
    for (int i = 0; i < 6; i++) {
        six[i] = hello[i < 3 ? i : 2];
    }
    auth_listener_init(&l, secret_a, strlen(secret_a), "ll", 2);
    CHECK_EQ_INT(auth_listener_step_argv(&l, 6, six, nl, &r), AUTH_ERR_INPUT);
    CHECK(r.close);
    auth_listener_init(&l, secret_a, strlen(secret_a), "ll", 2);
    CHECK(auth_listener_step_argv(&l, 0, NULL, nl, &r) != AUTH_OK);
    CHECK(r.close);
}

static void test_auth_nonces_differ_by_counter_and_need_enough_random(void)
{
    uint8_t rnd[32], a[AUTH_NONCE_LEN], b[AUTH_NONCE_LEN];
    memset(rnd, 0, sizeof(rnd));
    CHECK_EQ_INT(auth_nonce_make(rnd, sizeof(rnd), 1, a), AUTH_OK);
    CHECK_EQ_INT(auth_nonce_make(rnd, sizeof(rnd), 2, b), AUTH_OK);
    CHECK(memcmp(a, b, AUTH_NONCE_LEN) != 0);
    CHECK_EQ_INT(auth_nonce_make(rnd, AUTH_RANDOM_MIN - 1, 3, a), AUTH_ERR_INPUT);
    CHECK_EQ_INT(auth_nonce_make(NULL, 32, 3, a), AUTH_ERR_INPUT);
}

static void test_auth_fingerprint_is_truncated_hmac_of_fp(void)
{
    char fa[AUTH_FINGERPRINT_HEX + 1], fb[AUTH_FINGERPRINT_HEX + 1];
    auth_fingerprint(secret_a, strlen(secret_a), fa);
    auth_fingerprint(secret_b, strlen(secret_b), fb);
    CHECK_EQ_INT(strlen(fa), AUTH_FINGERPRINT_HEX);
    CHECK(strcmp(fa, fb) != 0);
    uint8_t mac[32];
    char want[65];
    hmac_sha256(secret_a, strlen(secret_a), "fp", 2, mac);
    auth_hex_encode(mac, AUTH_FINGERPRINT_LEN, want);
    CHECK_EQ_STR(fa, want);
    /* the fingerprint is not a prefix of anything sent in a handshake proof */
    CHECK(strstr(fa, secret_a) == NULL);
}

static void test_auth_equal_ct_compares_every_byte(void)
{
    uint8_t a[32], b[32];
    memset(a, 7, sizeof(a));
    memcpy(b, a, sizeof(b));
    CHECK(auth_equal_ct(a, b, 32));
    for (int i = 0; i < 32; i++) {
        b[i] ^= 0x80;
        CHECK(!auth_equal_ct(a, b, 32));
        b[i] ^= 0x80;
    }
    CHECK(auth_equal_ct(a, b, 0));
}

int main(void)
{
    TEST_RUN(test_auth_same_secret_authenticates_both_ways);
    TEST_RUN(test_auth_wrong_secret_dialer_refused_listener_reveals_nothing);
    TEST_RUN(test_auth_wrong_secret_listener_detected_by_dialer);
    TEST_RUN(test_auth_replayed_proof_with_other_nonce_refused);
    TEST_RUN(test_auth_truncated_oversized_and_garbled_proofs_refused);
    TEST_RUN(test_auth_listener_refuses_malformed_and_out_of_order);
    TEST_RUN(test_auth_dialer_refuses_malformed_replies);
    TEST_RUN(test_auth_listener_step_argv_matches_arrays);
    TEST_RUN(test_auth_nonces_differ_by_counter_and_need_enough_random);
    TEST_RUN(test_auth_fingerprint_is_truncated_hmac_of_fp);
    TEST_RUN(test_auth_equal_ct_compares_every_byte);
    TEST_MAIN_END();
}
