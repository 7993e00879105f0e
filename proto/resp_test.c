/* proto/resp_test.c: unit tests for proto/ (parser, reply writer, number helpers).
 *
 * Parser cases go through feed(), which plays a server: it keeps the unconsumed
 * bytes in a heap buffer that is reallocated (so it moves) before every call, feeds
 * the input in the pieces it is told, and writes every parsed command into a
 * canonical text ("argc|len:bytes|...\n" per command) that the cases compare.
 * Most cases run every input whole, one byte at a time and split at every position.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "proto/resp.h"
#include "tests/test.h"

static const struct resp_limits default_limits = {
    .max_bulk_len = 512LL * 1024 * 1024,
    .max_multibulk_len = 1024 * 1024,
    .max_inline_len = 64 * 1024,
};

/* ---- parser harness ------------------------------------------------------- */

struct fed {
    int rc;            /* RESP_OK: all consumed; RESP_AGAIN: bytes left; or error */
    char out[16384];   /* canonical text of the commands parsed */
    size_t outlen;
    char err[128];
    int ncmd;
};

static void out_add(struct fed *f, const void *p, size_t n) {
    if (f->outlen + n < sizeof(f->out)) {
        memcpy(f->out + f->outlen, p, n);
        f->outlen += n;
    }
}

static void out_cmd(struct fed *f, const struct resp_parser *p) {
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%d|", p->argc);
    out_add(f, tmp, (size_t)n);
    for (int i = 0; i < p->argc; i++) {
        n = snprintf(tmp, sizeof(tmp), "%zu:", p->argv[i].len);
        out_add(f, tmp, (size_t)n);
        out_add(f, p->argv[i].p, p->argv[i].len);
        out_add(f, "|", 1);
    }
    out_add(f, "\n", 1);
    f->ncmd++;
}

/* Feeds in[0..len) in pieces: piece k ends at cuts[k] (cuts ascending; the last
 * piece ends at len). */
static void feed_lim(const struct resp_limits *lim, const char *in, size_t len,
                     const size_t *cuts, int ncuts, struct fed *f) {
    struct resp_parser p;
    resp_parser_init(&p, lim);
    memset(f, 0, sizeof(*f));
    char *q = NULL;
    size_t qlen = 0, at = 0;
    f->rc = RESP_OK;
    for (int k = 0; k <= ncuts && f->rc >= 0; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        if (end < at) {
            continue;
        }
        /* a new buffer every time: the parser must keep offsets, not pointers */
        char *nq = malloc(qlen + (end - at) + 1);
        if (qlen > 0) {
            memcpy(nq, q, qlen);
        }
        memcpy(nq + qlen, in + at, end - at);
        free(q);
        q = nq;
        qlen += end - at;
        at = end;
        for (;;) {
            size_t used = 0;
            int rc = resp_parse(&p, q, qlen, &used);
            if (rc == RESP_OK) {
                if (used == 0 || used > qlen) {
                    f->rc = -100; /* harness error: must consume something */
                    break;
                }
                out_cmd(f, &p);
                memmove(q, q + used, qlen - used);
                qlen -= used;
                continue;
            }
            if (rc == RESP_ERR_PROTO) {
                f->rc = rc;
                snprintf(f->err, sizeof(f->err), "%s", p.err);
            }
            break;
        }
    }
    if (f->rc == RESP_OK && qlen > 0) {
        f->rc = RESP_AGAIN;
    }
    free(q);
    resp_parser_deinit(&p);
}

static int same(const struct fed *a, const struct fed *b) {
    return a->rc == b->rc && a->outlen == b->outlen &&
           memcmp(a->out, b->out, a->outlen) == 0 && strcmp(a->err, b->err) == 0;
}

/* Parses in whole, then byte by byte, then split at every position, and checks
 * each gives `want_out` and ends with want_rc (and want_err for errors). Prints
 * what differed. Returns 1 when all agree. */
static int check_splits(const struct resp_limits *lim, const char *in, size_t len,
                        const char *want_out, size_t want_len, int want_rc,
                        const char *want_err) {
    static struct fed whole, piece;
    feed_lim(lim, in, len, NULL, 0, &whole);
    if (whole.rc != want_rc || whole.outlen != want_len ||
        memcmp(whole.out, want_out, whole.outlen) != 0 ||
        (want_err != NULL && strcmp(whole.err, want_err) != 0)) {
        fprintf(stderr, "    whole: rc %d out \"%.*s\" err \"%s\"\n", whole.rc,
                (int)whole.outlen, whole.out, whole.err);
        return 0;
    }
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    for (size_t i = 0; i < len; i++) {
        cuts[i] = i + 1;
    }
    feed_lim(lim, in, len, cuts, (int)len, &piece);
    if (!same(&whole, &piece)) {
        fprintf(stderr, "    byte by byte: rc %d out \"%.*s\" err \"%s\"\n", piece.rc,
                (int)piece.outlen, piece.out, piece.err);
        free(cuts);
        return 0;
    }
    for (size_t at = 0; at <= len; at++) {
        cuts[0] = at;
        feed_lim(lim, in, len, cuts, 1, &piece);
        if (!same(&whole, &piece)) {
            fprintf(stderr, "    split at %zu: rc %d out \"%.*s\" err \"%s\"\n", at,
                    piece.rc, (int)piece.outlen, piece.out, piece.err);
            free(cuts);
            return 0;
        }
    }
    free(cuts);
    return 1;
}

/* check_all_splits(in, len, want_out, rc, err) and check_all_splits_lim(lim, ...):
 * want_out must be a string literal (it may hold NUL bytes). Variadic so that
 * S("...") expands to its two arguments first. */
#define check_splits_lit(lim, in, len, want_out, rc, err) \
    check_splits((lim), (in), (len), (want_out), sizeof(want_out) - 1, (rc), (err))
#define check_all_splits_lim(...) check_splits_lit(__VA_ARGS__)
#define check_all_splits(...) check_splits_lit(&default_limits, __VA_ARGS__)

#define S(lit) (lit), (sizeof(lit) - 1)

/* ---- parser: well-formed input -------------------------------------------- */

static void test_parse_multibulk_command(void) {
    CHECK(check_all_splits(S("*3\r\n$3\r\nSET\r\n$3\r\nfoo\r\n$3\r\nbar\r\n"),
                           "3|3:SET|3:foo|3:bar|\n", RESP_OK, NULL));
}

static void test_parse_multibulk_binary_bulk_with_crlf_inside(void) {
    CHECK(check_all_splits(S("*2\r\n$3\r\nGET\r\n$6\r\na\r\n\0\r\n\r\n"),
                           "2|3:GET|6:a\r\n\0\r\n|\n", RESP_OK, NULL));
}

static void test_parse_multibulk_empty_bulk(void) {
    CHECK(check_all_splits(S("*2\r\n$0\r\n\r\n$0\r\n\r\n"), "2|0:|0:|\n", RESP_OK,
                           NULL));
}

static void test_parse_pipelined_commands_each_returned_in_order(void) {
    CHECK(check_all_splits(S("*1\r\n$4\r\nPING\r\n"
                             "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
                             "ECHO hi\r\n"
                             "*1\r\n$4\r\nQUIT\r\n"),
                           "1|4:PING|\n2|3:GET|1:k|\n2|4:ECHO|2:hi|\n1|4:QUIT|\n",
                           RESP_OK, NULL));
}

static void test_parse_consumed_is_exact_length_of_first_command(void) {
    struct resp_parser p;
    size_t used = 0;
    const char in[] = "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n";
    resp_parser_init(&p, &default_limits);
    CHECK_EQ_INT(resp_parse(&p, in, sizeof(in) - 1, &used), RESP_OK);
    CHECK_EQ_INT(used, 14);
    CHECK_EQ_INT(resp_parse(&p, in + used, sizeof(in) - 1 - used, &used), RESP_OK);
    CHECK_EQ_INT(used, 14);
    resp_parser_deinit(&p);
}

static void test_parse_empty_and_negative_multibulk_are_empty_commands(void) {
    CHECK(check_all_splits(S("*0\r\n"), "0|\n", RESP_OK, NULL));
    CHECK(check_all_splits(S("*-1\r\n"), "0|\n", RESP_OK, NULL));
    /* Redis skips any count <= 0 ("Negative multibulk length" in its tests) */
    CHECK(check_all_splits(S("*-10\r\n*1\r\n$4\r\nPING\r\n"), "0|\n1|4:PING|\n",
                           RESP_OK, NULL));
}

static void test_parse_incomplete_input_is_again(void) {
    CHECK(check_all_splits(S("*2\r\n$3\r\nGET\r\n$1\r\nk"), "", RESP_AGAIN, NULL));
    CHECK(check_all_splits(S("*2\r\n$3\r\nGET\r\n$1\r\nk\r"), "", RESP_AGAIN, NULL));
    CHECK(check_all_splits(S("*2\r"), "", RESP_AGAIN, NULL));
    CHECK(check_all_splits(S("GET k"), "", RESP_AGAIN, NULL));
}

static void test_parse_multibulk_args_point_into_buffer(void) {
    struct resp_parser p;
    size_t used = 0;
    const char in[] = "*2\r\n$3\r\nGET\r\n$2\r\nab\r\n";
    resp_parser_init(&p, &default_limits);
    CHECK_EQ_INT(resp_parse(&p, in, sizeof(in) - 1, &used), RESP_OK);
    CHECK_EQ_INT(p.argc, 2);
    CHECK(p.argv[0].p == in + 8);
    CHECK(p.argv[1].p == in + 17);
    CHECK_EQ_INT(p.argv[1].len, 2);
    resp_parser_deinit(&p);
}

static void test_parse_buffer_may_move_between_calls(void) {
    struct resp_parser p;
    size_t used = 0;
    const char in[] = "*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n";
    char a[64], b[64];
    resp_parser_init(&p, &default_limits);
    memcpy(a, in, 20);
    CHECK_EQ_INT(resp_parse(&p, a, 20, &used), RESP_AGAIN);
    memset(a, 'x', sizeof(a));
    memcpy(b, in, sizeof(in) - 1);
    CHECK_EQ_INT(resp_parse(&p, b, sizeof(in) - 1, &used), RESP_OK);
    CHECK_EQ_INT(used, sizeof(in) - 1);
    CHECK(p.argv[1].p == b + 17);
    CHECK_EQ_MEM(p.argv[1].p, p.argv[1].len, "hello", 5);
    resp_parser_deinit(&p);
}

static void test_parse_want_reports_missing_bulk_bytes(void) {
    struct resp_parser p;
    size_t used = 0;
    char in[200];
    memcpy(in, "*1\r\n$100\r\n", 10);
    memset(in + 10, 'v', 100);
    memcpy(in + 110, "\r\n", 2);
    resp_parser_init(&p, &default_limits);
    CHECK_EQ_INT(resp_parse(&p, in, 5, &used), RESP_AGAIN);
    CHECK_EQ_INT(resp_parser_want(&p), 0); /* header not complete: unknown */
    CHECK_EQ_INT(resp_parse(&p, in, 20, &used), RESP_AGAIN);
    CHECK_EQ_INT(resp_parser_want(&p), 92); /* 100 + CRLF - 10 arrived */
    CHECK_EQ_INT(resp_parse(&p, in, 111, &used), RESP_AGAIN);
    CHECK_EQ_INT(resp_parser_want(&p), 1);
    CHECK_EQ_INT(resp_parse(&p, in, 112, &used), RESP_OK);
    CHECK_EQ_INT(resp_parser_want(&p), 0);
    resp_parser_deinit(&p);
}

/* ---- parser: inline commands ---------------------------------------------- */

static void test_parse_inline_words_split_on_blanks(void) {
    CHECK(check_all_splits(S("PING\r\n"), "1|4:PING|\n", RESP_OK, NULL));
    CHECK(check_all_splits(S("set a b\n"), "3|3:set|1:a|1:b|\n", RESP_OK, NULL));
    CHECK(check_all_splits(S("  set \t a  b \r\n"), "3|3:set|1:a|1:b|\n", RESP_OK, NULL));
    /* \v and \f are skipped between words but are not word ends (sdssplitargs) */
    CHECK(check_all_splits(S("\va\vb c\r\n"), "2|3:a\vb|1:c|\n", RESP_OK, NULL));
    /* a lone \r inside the line separates words */
    CHECK(check_all_splits(S("a\rb\r\n"), "2|1:a|1:b|\n", RESP_OK, NULL));
}

static void test_parse_inline_empty_lines_are_empty_commands(void) {
    CHECK(check_all_splits(S("\r\n\n   \r\nPING\n"), "0|\n0|\n0|\n1|4:PING|\n", RESP_OK,
                           NULL));
}

static void test_parse_inline_plain_args_point_into_buffer(void) {
    struct resp_parser p;
    size_t used = 0;
    const char in[] = "GET key\r\n";
    resp_parser_init(&p, &default_limits);
    CHECK_EQ_INT(resp_parse(&p, in, sizeof(in) - 1, &used), RESP_OK);
    CHECK_EQ_INT(used, 9);
    CHECK_EQ_INT(p.argc, 2);
    CHECK(p.argv[1].p == in + 4);
    resp_parser_deinit(&p);
}

static void test_parse_inline_double_quotes_and_escapes(void) {
    CHECK(check_all_splits(S("set \"a b\" \"\\x41\\x4a\\n\\r\\t\\b\\a\\\"\\\\\\z\"\r\n"),
                           "3|3:set|3:a b|10:AJ\n\r\t\b\a\"\\z|\n", RESP_OK, NULL));
    /* \x without two hex digits is just an escaped 'x' */
    CHECK(check_all_splits(S("\"\\xZZ\" \"\\x4\"\n"), "2|3:xZZ|2:x4|\n", RESP_OK, NULL));
    CHECK(check_all_splits(S("\"\"\n"), "1|0:|\n", RESP_OK, NULL));
}

static void test_parse_inline_single_quotes(void) {
    CHECK(check_all_splits(S("set 'it\\'s' 'a\\nb \"q\"'\n"),
                           "3|3:set|4:it's|8:a\\nb \"q\"|\n", RESP_OK, NULL));
}

static void test_parse_inline_quote_may_open_inside_a_word(void) {
    CHECK(check_all_splits(S("a\"b c\" d'e'\n"), "2|4:ab c|2:de|\n", RESP_OK, NULL));
}

static void test_parse_inline_nul_byte_ends_the_line(void) {
    CHECK(check_all_splits(S("ab\0cd ef\nPING\n"), "1|2:ab|\n1|4:PING|\n", RESP_OK,
                           NULL));
}

static void test_parse_inline_then_multibulk_pipelined(void) {
    CHECK(check_all_splits(S("PING\r\n*1\r\n$4\r\nPING\r\n\"x y\"\n"),
                           "1|4:PING|\n1|4:PING|\n1|3:x y|\n", RESP_OK, NULL));
}

/* ---- parser: malformed frames --------------------------------------------- */

struct bad_frame {
    const char *in;
    size_t len;
    const char *err;
};

#define BAD(lit, err) {(lit), sizeof(lit) - 1, (err)}

static void test_parse_malformed_frames_give_redis_errors(void) {
    static const struct bad_frame frames[] = {
        BAD("*abc\r\n", "Protocol error: invalid multibulk length"),
        BAD("*\r\n", "Protocol error: invalid multibulk length"),
        BAD("*+1\r\n", "Protocol error: invalid multibulk length"),
        BAD("*01\r\n", "Protocol error: invalid multibulk length"),
        BAD("* 1\r\n", "Protocol error: invalid multibulk length"),
        BAD("*1 \r\n", "Protocol error: invalid multibulk length"),
        BAD("*-0\r\n", "Protocol error: invalid multibulk length"),
        BAD("*1048577\r\n", "Protocol error: invalid multibulk length"),
        BAD("*99999999999999999999\r\n", "Protocol error: invalid multibulk length"),
        BAD("*1\rX$4\r\nPING\r\n", "Protocol error: invalid multibulk length"),
        BAD("*1\n$4\r\nPING\r\n", "Protocol error: invalid multibulk length"),
        BAD("*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
        BAD("*3\r\n$3\r\nSET\r\n$-10\r\n", "Protocol error: invalid bulk length"),
        BAD("*1\r\n$abc\r\n", "Protocol error: invalid bulk length"),
        BAD("*1\r\n$\r\n", "Protocol error: invalid bulk length"),
        BAD("*1\r\n$01\r\nx\r\n", "Protocol error: invalid bulk length"),
        BAD("*1\r\n$2000000000\r\n", "Protocol error: invalid bulk length"),
        BAD("*1\r\n$3\nfoo\r\n", "Protocol error: invalid bulk length"),
        BAD("*1\r\n$3\rXfoo\r\n", "Protocol error: invalid bulk length"),
        BAD("*1\r\nfoo\r\n", "Protocol error: expected '$', got 'f'"),
        BAD("*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
            "Protocol error: expected '$', got 'f'"),
        BAD("*1\r\n:3\r\n", "Protocol error: expected '$', got ':'"),
        BAD("*1\r\n*1\r\n", "Protocol error: expected '$', got '*'"),
        BAD("*1\r\n\r\n", "Protocol error: expected '$', got '\r'"),
        BAD("*1\r\n$3\r\nfooXY", "Protocol error: expected CRLF after bulk"),
        BAD("*1\r\n$3\r\nfoo\n\r", "Protocol error: expected CRLF after bulk"),
        BAD("*1\r\n$3\r\nfoo\r*1\r\n", "Protocol error: expected CRLF after bulk"),
        BAD("*2\r\n$3\r\nfoo\r\n$0\r\nAB", "Protocol error: expected CRLF after bulk"),
        BAD("\"abc\n", "Protocol error: unbalanced quotes in request"),
        BAD("'abc\r\n", "Protocol error: unbalanced quotes in request"),
        BAD("set \"a\"b c\n", "Protocol error: unbalanced quotes in request"),
        BAD("set 'a'b c\n", "Protocol error: unbalanced quotes in request"),
        BAD("set \"\"\"test-key\"\"\" test-value\r\nping\r\n",
            "Protocol error: unbalanced quotes in request"),
        BAD("\"ab\\\"\n", "Protocol error: unbalanced quotes in request"),
        BAD("\"a\0\"\n", "Protocol error: unbalanced quotes in request"),
    };
    for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
        if (!check_all_splits(frames[i].in, frames[i].len, "", RESP_ERR_PROTO,
                              frames[i].err)) {
            TEST_FAIL_AT("frame %zu \"%s\": want \"%s\"", i, frames[i].in, frames[i].err);
            return;
        }
    }
}

static void test_parse_error_after_good_commands_keeps_them(void) {
    CHECK(check_all_splits(S("*1\r\n$4\r\nPING\r\nPING\r\n*1\r\n$x\r\n"),
                           "1|4:PING|\n1|4:PING|\n", RESP_ERR_PROTO,
                           "Protocol error: invalid bulk length"));
}

static void test_parse_error_is_sticky_until_reset(void) {
    struct resp_parser p;
    size_t used = 0;
    resp_parser_init(&p, &default_limits);
    CHECK_EQ_INT(resp_parse(&p, S("*x\r\n"), &used), RESP_ERR_PROTO);
    CHECK_EQ_INT(resp_parse(&p, S("*1\r\n$4\r\nPING\r\n"), &used), RESP_ERR_PROTO);
    resp_parser_reset(&p);
    CHECK_EQ_INT(resp_parse(&p, S("*1\r\n$4\r\nPING\r\n"), &used), RESP_OK);
    CHECK_EQ_INT(p.argc, 1);
    resp_parser_deinit(&p);
}

static void test_parse_reset_drops_command_in_progress(void) {
    struct resp_parser p;
    size_t used = 0;
    resp_parser_init(&p, &default_limits);
    CHECK_EQ_INT(resp_parse(&p, S("*2\r\n$3\r\nGET\r\n"), &used), RESP_AGAIN);
    resp_parser_reset(&p);
    CHECK_EQ_INT(resp_parse(&p, S("PING\n"), &used), RESP_OK);
    CHECK_EQ_INT(p.argc, 1);
    CHECK_EQ_INT(used, 5);
    resp_parser_deinit(&p);
}

/* ---- parser: limits --------------------------------------------------------- */

static char *repeat(char c, size_t n, const char *prefix, const char *suffix) {
    size_t pl = strlen(prefix), sl = strlen(suffix);
    char *s = malloc(pl + n + sl + 1);
    memcpy(s, prefix, pl);
    memset(s + pl, c, n);
    memcpy(s + pl + n, suffix, sl + 1);
    return s;
}

static void test_parse_header_without_crlf_over_64k_is_error(void) {
    struct resp_parser p;
    size_t used = 0;
    resp_parser_init(&p, &default_limits);
    char *s = repeat('1', 65535, "*", "");
    CHECK_EQ_INT(resp_parse(&p, s, 65536, &used), RESP_AGAIN);
    free(s);
    s = repeat('1', 65536, "*", "");
    CHECK_EQ_INT(resp_parse(&p, s, 65537, &used), RESP_ERR_PROTO);
    CHECK_EQ_STR(p.err, "Protocol error: too big mbulk count string");
    free(s);
    resp_parser_reset(&p);
    s = repeat('1', 65536, "*1\r\n$", "");
    CHECK_EQ_INT(resp_parse(&p, s, strlen(s), &used), RESP_ERR_PROTO);
    CHECK_EQ_STR(p.err, "Protocol error: too big bulk count string");
    free(s);
    /* the same verdict when the CRLF arrives in the same read */
    resp_parser_reset(&p);
    s = repeat('1', 65536, "*", "\r\n");
    CHECK_EQ_INT(resp_parse(&p, s, strlen(s), &used), RESP_ERR_PROTO);
    CHECK_EQ_STR(p.err, "Protocol error: too big mbulk count string");
    free(s);
    resp_parser_reset(&p);
    s = repeat('1', 65535, "*1\r\n$", "\r\n"); /* 65536 bytes before CR: ok */
    CHECK_EQ_INT(resp_parse(&p, s, strlen(s), &used), RESP_ERR_PROTO);
    CHECK_EQ_STR(p.err, "Protocol error: invalid bulk length");
    free(s);
    resp_parser_deinit(&p);
}

static void test_parse_inline_longer_than_limit_is_error(void) {
    struct resp_limits lim = default_limits;
    lim.max_inline_len = 100;
    struct resp_parser p;
    size_t used = 0;
    resp_parser_init(&p, &lim);
    char *s = repeat('a', 100, "", "");
    CHECK_EQ_INT(resp_parse(&p, s, 100, &used), RESP_AGAIN);
    free(s);
    s = repeat('a', 101, "", "");
    CHECK_EQ_INT(resp_parse(&p, s, 101, &used), RESP_ERR_PROTO);
    CHECK_EQ_STR(p.err, "Protocol error: too big inline request");
    free(s);
    /* Also when the newline arrived with it (Redis would accept that): the
     * verdict must not depend on how the bytes were split. */
    resp_parser_reset(&p);
    s = repeat('a', 101, "", "\n");
    CHECK_EQ_INT(resp_parse(&p, s, 102, &used), RESP_ERR_PROTO);
    CHECK_EQ_STR(p.err, "Protocol error: too big inline request");
    free(s);
    resp_parser_reset(&p);
    s = repeat('a', 99, "", "\r\n"); /* 100 bytes before the \n: the limit */
    CHECK_EQ_INT(resp_parse(&p, s, 101, &used), RESP_OK);
    CHECK_EQ_INT(p.argv[0].len, 99);
    free(s);
    resp_parser_deinit(&p);
}

static void test_parse_bulk_and_multibulk_limits_are_honoured(void) {
    struct resp_limits lim = default_limits;
    lim.max_bulk_len = 10;
    lim.max_multibulk_len = 3;
    CHECK(check_all_splits_lim(&lim, S("*3\r\n$10\r\n0123456789\r\n$0\r\n\r\n$1\r\nx\r\n"),
                               "3|10:0123456789|0:|1:x|\n", RESP_OK, NULL));
    CHECK(check_all_splits_lim(&lim, S("*1\r\n$11\r\n0123456789A\r\n"), "",
                               RESP_ERR_PROTO, "Protocol error: invalid bulk length"));
    CHECK(check_all_splits_lim(&lim, S("*4\r\n"), "", RESP_ERR_PROTO,
                               "Protocol error: invalid multibulk length"));
}

static void test_parse_huge_multibulk_header_allocates_little(void) {
    struct resp_parser p;
    size_t used = 0;
    resp_parser_init(&p, &default_limits);
    CHECK(p.argv_cap <= 8);
    CHECK_EQ_INT(resp_parse(&p, S("*1048576\r\n"), &used), RESP_AGAIN);
    CHECK(p.argv_cap <= 8);
    /* 100 arguments arrive: argv doubles as they do, never jumps to 1M */
    size_t n = 10 + 100 * 7;
    char *s = malloc(n);
    memcpy(s, "*1048576\r\n", 10);
    for (int i = 0; i < 100; i++) {
        memcpy(s + 10 + i * 7, "$1\r\nx\r\n", 7);
    }
    CHECK_EQ_INT(resp_parse(&p, s, n, &used), RESP_AGAIN);
    CHECK(p.argv_cap >= 100 && p.argv_cap <= 128);
    free(s);
    resp_parser_deinit(&p);
}

static void test_parse_argv_shrinks_after_a_big_command(void) {
    struct resp_parser p;
    size_t used = 0;
    int nargs = 5000;
    size_t n = 16 + (size_t)nargs * 7;
    char *s = malloc(n);
    size_t off = (size_t)sprintf(s, "*%d\r\n", nargs);
    for (int i = 0; i < nargs; i++, off += 7) {
        memcpy(s + off, "$1\r\nx\r\n", 7);
    }
    resp_parser_init(&p, &default_limits);
    CHECK_EQ_INT(resp_parse(&p, s, off, &used), RESP_OK);
    CHECK_EQ_INT(p.argc, nargs);
    CHECK_EQ_INT(used, off);
    CHECK(p.argv_cap >= nargs);
    free(s);
    CHECK_EQ_INT(resp_parse(&p, S("PING\n"), &used), RESP_OK);
    CHECK(p.argv_cap <= 8);
    resp_parser_deinit(&p);
}

/* ---- writer harness ---------------------------------------------------------- */

/* Drains o into dst through resp_out_iov/resp_out_consume, at most `chunk` bytes
 * per consume and `maxiov` iovecs per call; returns the bytes drained. */
static size_t drain(struct resp_out *o, char *dst, size_t cap, size_t chunk, int maxiov) {
    size_t total = 0;
    struct iovec iov[16];
    for (;;) {
        int n = resp_out_iov(o, iov, maxiov);
        if (n == 0) {
            break;
        }
        size_t budget = chunk, took = 0;
        for (int i = 0; i < n && budget > 0; i++) {
            size_t k = iov[i].iov_len < budget ? iov[i].iov_len : budget;
            if (total + k <= cap) {
                memcpy(dst + total, iov[i].iov_base, k);
            }
            total += k;
            took += k;
            budget -= k;
            if (k < iov[i].iov_len) {
                break;
            }
        }
        resp_out_consume(o, took);
    }
    return total;
}

/* Writes with fn in RESP2 or RESP3 and compares all of the output with want. */
#define CHECK_REPLY(proto, want, ...)                                         \
    do {                                                                      \
        struct resp_out *o_ = malloc(sizeof(*o_));                            \
        char got_[512];                                                       \
        resp_out_init(o_, (proto));                                           \
        { struct resp_out *o = o_; __VA_ARGS__; }                             \
        size_t n_ = resp_out_pending(o_);                                     \
        size_t d_ = drain(o_, got_, sizeof(got_), SIZE_MAX, 16);              \
        resp_out_deinit(o_);                                                  \
        free(o_);                                                             \
        CHECK_EQ_INT(d_, n_);                                                 \
        CHECK_EQ_MEM(got_, d_, (want), sizeof(want) - 1);                     \
    } while (0)

/* ---- writer: every type -------------------------------------------------------- */

static void test_write_simple_error_int_bulk_are_same_in_resp2_and_resp3(void) {
    for (int proto = 2; proto <= 3; proto++) {
        CHECK_REPLY(proto, "+OK\r\n", resp_write_simple(o, "OK", 2));
        CHECK_REPLY(proto, "-ERR bad\r\n", resp_write_error(o, "ERR bad", 7));
        CHECK_REPLY(proto, ":0\r\n", resp_write_int(o, 0));
        CHECK_REPLY(proto, ":-1\r\n", resp_write_int(o, -1));
        CHECK_REPLY(proto, ":1234567890\r\n", resp_write_int(o, 1234567890));
        CHECK_REPLY(proto, ":9223372036854775807\r\n", resp_write_int(o, LLONG_MAX));
        CHECK_REPLY(proto, ":-9223372036854775808\r\n", resp_write_int(o, LLONG_MIN));
        CHECK_REPLY(proto, "$3\r\nfoo\r\n", resp_write_bulk(o, "foo", 3));
        CHECK_REPLY(proto, "$0\r\n\r\n", resp_write_bulk(o, "", 0));
        CHECK_REPLY(proto, "$4\r\na\r\nb\r\n", resp_write_bulk(o, "a\r\nb", 4));
        CHECK_REPLY(proto, "*2\r\n", resp_write_array(o, 2));
        CHECK_REPLY(proto, "*0\r\n", resp_write_array(o, 0));
        CHECK_REPLY(proto, "raw", resp_write_raw(o, "raw", 3));
    }
}

static void test_write_error_replaces_cr_and_lf_with_spaces(void) {
    CHECK_REPLY(2, "-ERR a b  c \r\n", resp_write_error(o, "ERR a\rb\r\nc\n", 11));
}

static void test_write_null_types(void) {
    CHECK_REPLY(2, "$-1\r\n", resp_write_null(o));
    CHECK_REPLY(2, "*-1\r\n", resp_write_null_array(o));
    CHECK_REPLY(3, "_\r\n", resp_write_null(o));
    CHECK_REPLY(3, "_\r\n", resp_write_null_array(o));
}

static void test_write_aggregates_resp3_and_resp2_down_conversion(void) {
    CHECK_REPLY(3, "%2\r\n", resp_write_map(o, 2));
    CHECK_REPLY(2, "*4\r\n", resp_write_map(o, 2));
    CHECK_REPLY(3, "~3\r\n", resp_write_set(o, 3));
    CHECK_REPLY(2, "*3\r\n", resp_write_set(o, 3));
    CHECK_REPLY(3, ">2\r\n", resp_write_push(o, 2));
    CHECK_REPLY(2, "*2\r\n", resp_write_push(o, 2));
}

static void test_write_double_resp3_and_resp2(void) {
    CHECK_REPLY(3, ",1.5\r\n", resp_write_double(o, 1.5));
    CHECK_REPLY(2, "$3\r\n1.5\r\n", resp_write_double(o, 1.5));
    CHECK_REPLY(3, ",0.10000000000000001\r\n", resp_write_double(o, 0.1));
    CHECK_REPLY(3, ",3\r\n", resp_write_double(o, 3.0));
    CHECK_REPLY(3, ",-0\r\n", resp_write_double(o, -0.0));
    CHECK_REPLY(3, ",1.0000000000000001e+300\r\n", resp_write_double(o, 1e300));
    CHECK_REPLY(3, ",inf\r\n", resp_write_double(o, INFINITY));
    CHECK_REPLY(3, ",-inf\r\n", resp_write_double(o, -INFINITY));
    CHECK_REPLY(3, ",nan\r\n", resp_write_double(o, NAN));
    CHECK_REPLY(3, ",nan\r\n", resp_write_double(o, -NAN));
    CHECK_REPLY(2, "$3\r\ninf\r\n", resp_write_double(o, INFINITY));
    CHECK_REPLY(2, "$4\r\n-inf\r\n", resp_write_double(o, -INFINITY));
}

static void test_write_bool_verbatim_bignum(void) {
    CHECK_REPLY(3, "#t\r\n", resp_write_bool(o, 1));
    CHECK_REPLY(3, "#f\r\n", resp_write_bool(o, 0));
    CHECK_REPLY(2, ":1\r\n", resp_write_bool(o, 7));
    CHECK_REPLY(2, ":0\r\n", resp_write_bool(o, 0));
    CHECK_REPLY(3, "=9\r\ntxt:hello\r\n", resp_write_verbatim(o, "txt", "hello", 5));
    CHECK_REPLY(2, "$5\r\nhello\r\n", resp_write_verbatim(o, "txt", "hello", 5));
    CHECK_REPLY(3, "=4\r\nmkd:\r\n", resp_write_verbatim(o, "mkd", "", 0));
    CHECK_REPLY(3, "(12345678901234567890\r\n",
                resp_write_bignum(o, "12345678901234567890", 20));
    CHECK_REPLY(2, "$3\r\n-12\r\n", resp_write_bignum(o, "-12", 3));
}

static void test_write_sequence_of_replies(void) {
    CHECK_REPLY(3, "*3\r\n:1\r\n$1\r\nx\r\n%1\r\n+k\r\n_\r\n",
                resp_write_array(o, 3); resp_write_int(o, 1); resp_write_bulk(o, "x", 1);
                resp_write_map(o, 1); resp_write_simple(o, "k", 1); resp_write_null(o));
}

/* ---- writer: blocks, draining ------------------------------------------------ */

/* A reference copy of what was written, to compare with what is drained. */
struct expect {
    char *p;
    size_t len, cap;
};

static void expect_add(struct expect *e, const void *p, size_t n) {
    if (e->len + n > e->cap) {
        e->cap = (e->len + n) * 2;
        e->p = realloc(e->p, e->cap);
    }
    memcpy(e->p + e->len, p, n);
    e->len += n;
}

static void expect_bulk(struct resp_out *o, struct expect *e, const char *p, size_t n) {
    char hdr[32];
    int k = snprintf(hdr, sizeof(hdr), "$%zu\r\n", n);
    resp_write_bulk(o, p, n);
    expect_add(e, hdr, (size_t)k);
    expect_add(e, p, n);
    expect_add(e, "\r\n", 2);
}

static char *pattern(size_t n, unsigned seed) {
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        s[i] = (char)(seed >> 16);
    }
    return s;
}

static void test_write_big_bulk_spans_inline_buffer_and_a_block(void) {
    struct resp_out *o = malloc(sizeof(*o));
    struct expect e = {0};
    char *big = pattern(100000, 1);
    resp_out_init(o, 2);
    expect_bulk(o, &e, "small", 5);
    expect_bulk(o, &e, big, 100000);
    expect_bulk(o, &e, "after", 5);
    CHECK_EQ_INT(resp_out_pending(o), e.len);
    char *got = malloc(e.len);
    size_t n = drain(o, got, e.len, SIZE_MAX, 16);
    CHECK_EQ_MEM(got, n, e.p, e.len);
    CHECK_EQ_INT(resp_out_pending(o), 0);
    CHECK(o->head == NULL && o->len == 0);
    resp_out_deinit(o);
    free(o);
    free(got);
    free(big);
    free(e.p);
}

static void test_write_iov_and_partial_consume_across_many_blocks(void) {
    static const size_t chunks[] = {1, 7, 4096, 7777, 16384, 100000};
    static const int maxiovs[] = {1, 2, 16};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        for (size_t m = 0; m < sizeof(maxiovs) / sizeof(maxiovs[0]); m++) {
            struct resp_out *o = malloc(sizeof(*o));
            struct expect e = {0};
            char *val = pattern(3000, (unsigned)c);
            resp_out_init(o, 3);
            for (int i = 0; i < 60; i++) {
                expect_bulk(o, &e, val, (size_t)(i * 50));
                resp_write_int(o, i);
                expect_add(&e, ":", 1);
                char d[32];
                int k = snprintf(d, sizeof(d), "%d\r\n", i);
                expect_add(&e, d, (size_t)k);
            }
            CHECK(o->head != NULL && o->head != o->tail); /* several blocks */
            CHECK_EQ_INT(resp_out_pending(o), e.len);
            char *got = malloc(e.len);
            size_t n = drain(o, got, e.len, chunks[c], maxiovs[m]);
            CHECK_EQ_MEM(got, n, e.p, e.len);
            CHECK_EQ_INT(resp_out_pending(o), 0);
            CHECK(o->head == NULL);
            resp_out_deinit(o);
            free(o);
            free(got);
            free(val);
            free(e.p);
        }
    }
}

static void test_write_interleaved_with_draining_keeps_order(void) {
    struct resp_out *o = malloc(sizeof(*o));
    struct expect e = {0};
    char *val = pattern(5000, 9);
    char *got = malloc(1 << 20);
    size_t gotlen = 0;
    resp_out_init(o, 2);
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < round % 7 + 1; i++) {
            expect_bulk(o, &e, val, (size_t)((round * 977 + i * 131) % 5000));
        }
        /* drain only part of it, as a socket that accepts a few KB would */
        struct iovec iov[4];
        int n = resp_out_iov(o, iov, 4);
        size_t budget = 3001, took = 0;
        for (int i = 0; i < n && budget > 0; i++) {
            size_t k = iov[i].iov_len < budget ? iov[i].iov_len : budget;
            memcpy(got + gotlen + took, iov[i].iov_base, k);
            took += k;
            budget -= k;
        }
        resp_out_consume(o, took);
        gotlen += took;
    }
    gotlen += drain(o, got + gotlen, (1 << 20) - gotlen, 999, 3);
    CHECK_EQ_MEM(got, gotlen, e.p, e.len);
    resp_out_deinit(o);
    free(o);
    free(got);
    free(val);
    free(e.p);
}

static void test_write_drained_output_returns_to_inline_buffer(void) {
    struct resp_out *o = malloc(sizeof(*o));
    char *val = pattern(20000, 3);
    char got[64];
    resp_out_init(o, 2);
    resp_write_bulk(o, val, 20000);
    CHECK(o->head != NULL);
    struct iovec iov[8];
    int n = resp_out_iov(o, iov, 8);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        total += iov[i].iov_len;
    }
    resp_out_consume(o, total);
    CHECK(o->head == NULL && o->tail == NULL);
    CHECK_EQ_INT(o->len, 0);
    resp_write_int(o, 5);
    CHECK_EQ_INT(o->len, 4);
    size_t d = drain(o, got, sizeof(got), SIZE_MAX, 8);
    CHECK_EQ_MEM(got, d, ":5\r\n", 4);
    resp_out_deinit(o);
    free(o);
    free(val);
}

/* ---- writer: deferred lengths ------------------------------------------------ */

static void test_defer_array_length_set_after_elements(void) {
    CHECK_REPLY(2, "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
                resp_defer_t h = resp_defer(o); resp_write_bulk(o, "a", 1);
                resp_write_bulk(o, "b", 1); resp_defer_set(o, h, RESP_AGG_ARRAY, 2));
    CHECK_REPLY(3, "%1\r\n+k\r\n:1\r\n",
                resp_defer_t h = resp_defer(o); resp_write_simple(o, "k", 1);
                resp_write_int(o, 1); resp_defer_set(o, h, RESP_AGG_MAP, 1));
    CHECK_REPLY(2, "*2\r\n+k\r\n:1\r\n",
                resp_defer_t h = resp_defer(o); resp_write_simple(o, "k", 1);
                resp_write_int(o, 1); resp_defer_set(o, h, RESP_AGG_MAP, 1));
    CHECK_REPLY(3, "~0\r\n", resp_defer_t h = resp_defer(o);
                resp_defer_set(o, h, RESP_AGG_SET, 0));
    CHECK_REPLY(3, ">1\r\n:1\r\n", resp_defer_t h = resp_defer(o);
                resp_write_int(o, 1); resp_defer_set(o, h, RESP_AGG_PUSH, 1));
}

static void test_defer_small_reply_folds_back_into_inline_buffer(void) {
    struct resp_out *o = malloc(sizeof(*o));
    resp_out_init(o, 2);
    resp_write_int(o, 1);
    resp_defer_t h = resp_defer(o);
    resp_write_bulk(o, "x", 1);
    resp_defer_set(o, h, RESP_AGG_ARRAY, 1);
    CHECK(o->head == NULL);
    CHECK_EQ_MEM(o->buf, o->len, ":1\r\n*1\r\n$1\r\nx\r\n", 15);
    resp_out_deinit(o);
    free(o);
}

static void test_defer_iov_stops_at_unset_handle(void) {
    struct resp_out *o = malloc(sizeof(*o));
    char got[128];
    resp_out_init(o, 2);
    resp_write_simple(o, "OK", 2);
    resp_defer_t h = resp_defer(o);
    resp_write_bulk(o, "abc", 3);
    struct iovec iov[8];
    int n = resp_out_iov(o, iov, 8);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_MEM(iov[0].iov_base, iov[0].iov_len, "+OK\r\n", 5);
    resp_out_consume(o, 5);
    CHECK_EQ_INT(resp_out_iov(o, iov, 8), 0);
    resp_defer_set(o, h, RESP_AGG_ARRAY, 1);
    size_t d = drain(o, got, sizeof(got), SIZE_MAX, 8);
    CHECK_EQ_MEM(got, d, "*1\r\n$3\r\nabc\r\n", 13);
    resp_out_deinit(o);
    free(o);
}

static void test_defer_nested_and_adjacent_handles(void) {
    /* a map of two arrays, all lengths deferred; two handles back to back */
    CHECK_REPLY(3, "%2\r\n+a\r\n*2\r\n:1\r\n:2\r\n+b\r\n*0\r\n",
                resp_defer_t m = resp_defer(o);
                resp_write_simple(o, "a", 1);
                resp_defer_t a1 = resp_defer(o);
                resp_write_int(o, 1); resp_write_int(o, 2);
                resp_defer_set(o, a1, RESP_AGG_ARRAY, 2);
                resp_write_simple(o, "b", 1);
                resp_defer_t a2 = resp_defer(o);
                resp_defer_set(o, a2, RESP_AGG_ARRAY, 0);
                resp_defer_set(o, m, RESP_AGG_MAP, 2));
    CHECK_REPLY(2, "*1\r\n*1\r\n*1\r\n:7\r\n",
                resp_defer_t x = resp_defer(o); resp_defer_t y = resp_defer(o);
                resp_defer_t z = resp_defer(o); resp_write_int(o, 7);
                resp_defer_set(o, y, RESP_AGG_ARRAY, 1);
                resp_defer_set(o, z, RESP_AGG_ARRAY, 1);
                resp_defer_set(o, x, RESP_AGG_ARRAY, 1));
}

static void test_defer_in_the_middle_of_multi_block_output(void) {
    struct resp_out *o = malloc(sizeof(*o));
    struct expect e = {0};
    char *val = pattern(7000, 5);
    resp_out_init(o, 2);
    for (int i = 0; i < 5; i++) {
        expect_bulk(o, &e, val, 7000); /* 35 KB: the inline buffer and blocks */
    }
    CHECK(o->head != NULL);
    size_t before = e.len;
    resp_defer_t h = resp_defer(o);
    struct expect inner = {0};
    for (int i = 0; i < 6; i++) {
        expect_bulk(o, &inner, val, 6000); /* 36 KB after the handle */
    }
    /* nothing after the handle may be exposed yet */
    struct iovec iov[16];
    int n = resp_out_iov(o, iov, 16);
    size_t exposed = 0;
    for (int i = 0; i < n; i++) {
        exposed += iov[i].iov_len;
    }
    CHECK_EQ_INT(exposed, before);
    resp_defer_set(o, h, RESP_AGG_ARRAY, 6);
    expect_add(&e, "*6\r\n", 4);
    expect_add(&e, inner.p, inner.len);
    expect_bulk(o, &e, "tail", 4);
    CHECK_EQ_INT(resp_out_pending(o), e.len);
    char *got = malloc(e.len);
    size_t d = drain(o, got, e.len, 5000, 3);
    CHECK_EQ_MEM(got, d, e.p, e.len);
    resp_out_deinit(o);
    free(o);
    free(got);
    free(val);
    free(e.p);
    free(inner.p);
}

static void test_defer_after_partial_drain_and_with_full_inline_buffer(void) {
    struct resp_out *o = malloc(sizeof(*o));
    struct expect e = {0};
    char *val = pattern(RESP_OUT_INLINE, 6);
    resp_out_init(o, 2);
    /* fill the inline buffer to the last byte so the header cannot go there */
    resp_write_raw(o, val, RESP_OUT_INLINE);
    expect_add(&e, val, RESP_OUT_INLINE);
    CHECK(o->head == NULL);
    resp_defer_t h = resp_defer(o);
    expect_bulk(o, &e, "v", 1);
    resp_defer_set(o, h, RESP_AGG_ARRAY, 1);
    /* header went in front of the next block: e needs it before the bulk */
    struct expect want = {0};
    expect_add(&want, val, RESP_OUT_INLINE);
    expect_add(&want, "*1\r\n$1\r\nv\r\n", 11);
    char *got = malloc(want.len);
    size_t d = drain(o, got, want.len, 1000, 2);
    CHECK_EQ_MEM(got, d, want.p, want.len);
    /* again after a partial drain, with a big element after the handle */
    resp_write_bulk(o, "x", 1);
    struct iovec iov[2];
    CHECK_EQ_INT(resp_out_iov(o, iov, 2), 1);
    resp_out_consume(o, 2);
    h = resp_defer(o);
    resp_write_bulk(o, val, 10000);
    resp_defer_set(o, h, RESP_AGG_SET, 1);
    char *got2 = malloc(20000);
    d = drain(o, got2, 20000, SIZE_MAX, 16);
    CHECK_EQ_INT(d, 5 + 4 + 8 + 10000 + 2);
    CHECK_EQ_MEM(got2, 7, "\r\nx\r\n*1", 7);
    CHECK_EQ_MEM(got2 + 7, 8, "\r\n$10000", 8);
    resp_out_deinit(o);
    free(o);
    free(got);
    free(got2);
    free(val);
    free(e.p);
    free(want.p);
}

static void test_out_deinit_frees_unset_handles_and_blocks(void) {
    struct resp_out *o = malloc(sizeof(*o));
    char *val = pattern(50000, 7);
    resp_out_init(o, 3);
    resp_write_bulk(o, val, 50000);
    (void)resp_defer(o);
    resp_write_bulk(o, val, 50000);
    resp_out_deinit(o); /* ASan reports a leak if anything stays */
    CHECK(o->head == NULL && resp_out_pending(o) == 0);
    resp_out_init(o, 3);
    resp_write_int(o, 1);
    CHECK_EQ_INT(resp_out_pending(o), 4);
    resp_out_deinit(o);
    free(o);
    free(val);
}

/* ---- build then parse ------------------------------------------------------------ */

static void test_round_trip_commands_built_with_writer_then_parsed(void) {
    struct resp_out *o = malloc(sizeof(*o));
    resp_out_init(o, 2);
    static const size_t sizes[] = {0, 1, 2, 9, 10, 99, 100, 1023, 1024, 1025, 16380,
                                   16384, 70000, 3};
    int ncmd = 20;
    char *val = pattern(70010, 11);
    for (int c = 0; c < ncmd; c++) {
        int argc = c % 5 + 1;
        resp_write_array(o, argc);
        for (int a = 0; a < argc; a++) {
            size_t len = sizes[(size_t)(c * 3 + a) % (sizeof(sizes) / sizeof(sizes[0]))];
            resp_write_bulk(o, val + a, len);
        }
    }
    size_t total = resp_out_pending(o);
    char *wire = malloc(total);
    CHECK_EQ_INT(drain(o, wire, total, SIZE_MAX, 16), total);
    /* parse it in pieces of assorted sizes, as reads would deliver it */
    struct resp_parser p;
    resp_parser_init(&p, &default_limits);
    size_t start = 0, have = 0, step = 1;
    int seen = 0;
    while (start < total) {
        have = have + step > total ? total : have + step;
        step = step * 3 % 20011 + 1;
        for (;;) {
            size_t used = 0;
            int rc = resp_parse(&p, wire + start, have - start, &used);
            if (rc == RESP_AGAIN) {
                CHECK(have < total || start == total);
                break;
            }
            CHECK_EQ_INT(rc, RESP_OK);
            int c = seen++;
            CHECK_EQ_INT(p.argc, c % 5 + 1);
            for (int a = 0; a < p.argc; a++) {
                size_t len = sizes[(size_t)(c * 3 + a) % (sizeof(sizes) / sizeof(sizes[0]))];
                CHECK_EQ_MEM(p.argv[a].p, p.argv[a].len, val + a, len);
            }
            start += used;
        }
    }
    CHECK_EQ_INT(seen, ncmd);
    resp_parser_deinit(&p);
    resp_out_deinit(o);
    free(o);
    free(wire);
    free(val);
}

/* ---- number helpers ------------------------------------------------------------ */

static void test_ll2str_extremes(void) {
    char b[32];
    CHECK_EQ_INT(resp_ll2str(b, 0), 1);
    CHECK_EQ_STR(b, "0");
    CHECK_EQ_INT(resp_ll2str(b, -7), 2);
    CHECK_EQ_STR(b, "-7");
    CHECK_EQ_INT(resp_ll2str(b, 100), 3);
    CHECK_EQ_STR(b, "100");
    CHECK_EQ_INT(resp_ll2str(b, LLONG_MAX), 19);
    CHECK_EQ_STR(b, "9223372036854775807");
    CHECK_EQ_INT(resp_ll2str(b, LLONG_MIN), 20);
    CHECK_EQ_STR(b, "-9223372036854775808");
    for (long long v = -100000; v <= 100000; v += 7) {
        char want[32];
        snprintf(want, sizeof(want), "%lld", v);
        resp_ll2str(b, v);
        CHECK_EQ_STR(b, want);
    }
}

static void test_str2ll_follows_redis_string2ll(void) {
    static const struct {
        const char *s;
        int ok;
        long long v;
    } cases[] = {
        {"0", 1, 0}, {"1", 1, 1}, {"-1", 1, -1}, {"123456", 1, 123456},
        {"9223372036854775807", 1, LLONG_MAX}, {"-9223372036854775808", 1, LLONG_MIN},
        {"9223372036854775808", 0, 0}, {"-9223372036854775809", 0, 0},
        {"18446744073709551616", 0, 0}, {"99999999999999999999", 0, 0},
        {"", 0, 0}, {"-", 0, 0}, {"-0", 0, 0}, {"+1", 0, 0}, {" 1", 0, 0},
        {"1 ", 0, 0}, {"01", 0, 0}, {"00", 0, 0}, {"1a", 0, 0}, {"1.0", 0, 0},
        {"--1", 0, 0}, {"1e3", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long long v = 42;
        int rc = resp_str2ll(cases[i].s, strlen(cases[i].s), &v);
        if (rc != (cases[i].ok ? 0 : -1) || (cases[i].ok && v != cases[i].v)) {
            TEST_FAIL_AT("\"%s\": rc %d v %lld", cases[i].s, rc, v);
            return;
        }
    }
    long long v;
    CHECK_EQ_INT(resp_str2ll("12\0", 3, &v), -1); /* length is honoured */
    CHECK_EQ_INT(resp_str2ll("129", 2, &v), 0);
    CHECK_EQ_INT(v, 12);
}

static void test_str2d_and_str2ld_follow_redis(void) {
    static const struct {
        const char *s;
        int ok;
        double v;
    } cases[] = {
        {"1", 1, 1}, {"-1.5", 1, -1.5}, {"+1", 1, 1}, {"1e3", 1, 1000},
        {".5", 1, 0.5}, {"5.", 1, 5}, {"0x10", 1, 16}, {"-0", 1, 0},
        {"inf", 1, INFINITY}, {"-inf", 1, -INFINITY}, {"Infinity", 1, INFINITY},
        {"1e-310", 1, 1e-310}, /* denormal: kept, as Redis does */
        {"", 0, 0}, {" 1", 0, 0}, {"\t1", 0, 0}, {"1 ", 0, 0}, {"1x", 0, 0},
        {"nan", 0, 0}, {"-nan", 0, 0}, {"1e400", 0, 0}, {"-1e400", 0, 0},
        {"1e-400", 0, 0}, {"abc", 0, 0}, {"-", 0, 0}, {".", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double d = 42;
        int rc = resp_str2d(cases[i].s, strlen(cases[i].s), &d);
        if (rc != (cases[i].ok ? 0 : -1) || (cases[i].ok && d != cases[i].v)) {
            TEST_FAIL_AT("str2d \"%s\": rc %d v %g", cases[i].s, rc, d);
            return;
        }
    }
    static const struct {
        const char *s;
        int ok;
        long double v;
    } lcases[] = {
        {"1", 1, 1}, {"10.5", 1, 10.5L}, {"+2", 1, 2}, {"5.0e3", 1, 5000},
        {"inf", 1, INFINITY}, {"-inf", 1, -INFINITY},
        {"", 0, 0}, {" 1", 0, 0}, {"1 ", 0, 0}, {"nan", 0, 0}, {"1e5000", 0, 0},
        {"1e-5000", 0, 0}, {"1,5", 0, 0},
    };
    for (size_t i = 0; i < sizeof(lcases) / sizeof(lcases[0]); i++) {
        long double d = 42;
        int rc = resp_str2ld(lcases[i].s, strlen(lcases[i].s), &d);
        if (rc != (lcases[i].ok ? 0 : -1) || (lcases[i].ok && d != lcases[i].v)) {
            TEST_FAIL_AT("str2ld \"%s\": rc %d v %Lg", lcases[i].s, rc, d);
            return;
        }
    }
    double d;
    CHECK_EQ_INT(resp_str2d("1.5\0", 4, &d), -1); /* an embedded NUL is trailing junk */
    CHECK_EQ_INT(resp_str2d("1.25", 3, &d), 0);
    CHECK(d == 1.2);
    char *longs = repeat('1', RESP_LDSTR_MAX, "", "");
    CHECK_EQ_INT(resp_str2d(longs, RESP_LDSTR_MAX, &d), -1);
    free(longs);
}

static void test_d2str_formats_like_redis(void) {
    char b[128];
    CHECK_EQ_INT(resp_d2str(b, sizeof(b), 1.5), 3);
    CHECK_EQ_STR(b, "1.5");
    resp_d2str(b, sizeof(b), 0.1);
    CHECK_EQ_STR(b, "0.10000000000000001");
    resp_d2str(b, sizeof(b), 1e21);
    CHECK_EQ_STR(b, "1e+21");
    resp_d2str(b, sizeof(b), -DBL_MAX);
    CHECK_EQ_STR(b, "-1.7976931348623157e+308");
    resp_d2str(b, sizeof(b), INFINITY);
    CHECK_EQ_STR(b, "inf");
    resp_d2str(b, sizeof(b), -INFINITY);
    CHECK_EQ_STR(b, "-inf");
    resp_d2str(b, sizeof(b), NAN);
    CHECK_EQ_STR(b, "nan");
    CHECK_EQ_INT(resp_d2str(b, 3, 1.5), 0); /* no room */
}

static void test_ld2str_formats_like_incrbyfloat(void) {
    char b[RESP_LDSTR_MAX];
    resp_ld2str(b, sizeof(b), 3.0e3L);
    CHECK_EQ_STR(b, "3000");
    resp_ld2str(b, sizeof(b), 1.5L);
    CHECK_EQ_STR(b, "1.5");
    resp_ld2str(b, sizeof(b), 10.5L + 0.1L);
    CHECK_EQ_STR(b, "10.6");
    resp_ld2str(b, sizeof(b), 5.0e3L + 2.0e2L);
    CHECK_EQ_STR(b, "5200");
    resp_ld2str(b, sizeof(b), 0.0L);
    CHECK_EQ_STR(b, "0");
    resp_ld2str(b, sizeof(b), -0.0L);
    CHECK_EQ_STR(b, "0");
    resp_ld2str(b, sizeof(b), -1e-30L);
    CHECK_EQ_STR(b, "0"); /* rounds to -0.000...: "-0" becomes "0" */
    resp_ld2str(b, sizeof(b), -2.25L);
    CHECK_EQ_STR(b, "-2.25");
    resp_ld2str(b, sizeof(b), INFINITY);
    CHECK_EQ_STR(b, "inf");
    resp_ld2str(b, sizeof(b), -INFINITY);
    CHECK_EQ_STR(b, "-inf");
    int n = resp_ld2str(b, sizeof(b), 1e300L);
    CHECK_EQ_INT(n, 301);
    CHECK(b[0] == '1' && memchr(b, '.', (size_t)n) == NULL && b[301] == '\0');
    /* too long for a small buffer: exponent notation, which reads back the same */
    n = resp_ld2str(b, 128, 1e300L);
    CHECK_EQ_STR(b, "1e+300");
    CHECK_EQ_INT(n, 6);
    n = resp_ld2str(b, 128, -1.5e200L);
    CHECK_EQ_STR(b, "-1.5e+200");
    n = resp_ld2str(b, 128, 123456789012345.5L);
    CHECK_EQ_STR(b, "123456789012345.5");
    CHECK_EQ_INT(resp_ld2str(b, 3, 1.5L), 0);
    CHECK_EQ_STR(b, "");
}

/* resp_split_args: the one sdssplitargs splitter (inline commands, kv.conf). */
struct split_rec {
    size_t off[8], len[8];
    int n;
};
static void split_rec_emit(void *arg, size_t off, size_t len) {
    struct split_rec *r = arg;
    if (r->n < 8) {
        r->off[r->n] = off;
        r->len[r->n] = len;
    }
    r->n++;
}

static void test_split_args_unescapes_quotes_and_reports_errors(void) {
    const char *line = "set \"a b\\x41\\n\" 'it\\'s' x\"y z\"  ";
    char out[64];
    struct split_rec r = {0};
    CHECK_EQ_INT(resp_split_args(line, strlen(line), out, split_rec_emit, &r), 4);
    CHECK_EQ_INT(r.n, 4);
    CHECK_EQ_MEM(out + r.off[0], r.len[0], "set", 3);
    CHECK_EQ_MEM(out + r.off[1], r.len[1], "a bA\n", 5);
    CHECK_EQ_MEM(out + r.off[2], r.len[2], "it's", 4);
    CHECK_EQ_MEM(out + r.off[3], r.len[3], "xy z", 4);
    const char *bad[] = {"\"abc\"def", "'abc", "\"abc", "a 'b'c"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct split_rec e = {0};
        CHECK_EQ_INT(resp_split_args(bad[i], strlen(bad[i]), out, split_rec_emit, &e), -1);
    }
    struct split_rec z = {0};
    CHECK_EQ_INT(resp_split_args(" \t ", 3, out, split_rec_emit, &z), 0);
    CHECK_EQ_INT(z.n, 0);
}

int main(void) {
    TEST_RUN(test_parse_multibulk_command);
    TEST_RUN(test_parse_multibulk_binary_bulk_with_crlf_inside);
    TEST_RUN(test_parse_multibulk_empty_bulk);
    TEST_RUN(test_parse_pipelined_commands_each_returned_in_order);
    TEST_RUN(test_parse_consumed_is_exact_length_of_first_command);
    TEST_RUN(test_parse_empty_and_negative_multibulk_are_empty_commands);
    TEST_RUN(test_parse_incomplete_input_is_again);
    TEST_RUN(test_parse_multibulk_args_point_into_buffer);
    TEST_RUN(test_parse_buffer_may_move_between_calls);
    TEST_RUN(test_parse_want_reports_missing_bulk_bytes);
    TEST_RUN(test_parse_inline_words_split_on_blanks);
    TEST_RUN(test_parse_inline_empty_lines_are_empty_commands);
    TEST_RUN(test_parse_inline_plain_args_point_into_buffer);
    TEST_RUN(test_parse_inline_double_quotes_and_escapes);
    TEST_RUN(test_parse_inline_single_quotes);
    TEST_RUN(test_parse_inline_quote_may_open_inside_a_word);
    TEST_RUN(test_parse_inline_nul_byte_ends_the_line);
    TEST_RUN(test_parse_inline_then_multibulk_pipelined);
    TEST_RUN(test_parse_malformed_frames_give_redis_errors);
    TEST_RUN(test_parse_error_after_good_commands_keeps_them);
    TEST_RUN(test_parse_error_is_sticky_until_reset);
    TEST_RUN(test_parse_reset_drops_command_in_progress);
    TEST_RUN(test_parse_header_without_crlf_over_64k_is_error);
    TEST_RUN(test_parse_inline_longer_than_limit_is_error);
    TEST_RUN(test_parse_bulk_and_multibulk_limits_are_honoured);
    TEST_RUN(test_parse_huge_multibulk_header_allocates_little);
    TEST_RUN(test_parse_argv_shrinks_after_a_big_command);
    TEST_RUN(test_write_simple_error_int_bulk_are_same_in_resp2_and_resp3);
    TEST_RUN(test_write_error_replaces_cr_and_lf_with_spaces);
    TEST_RUN(test_write_null_types);
    TEST_RUN(test_write_aggregates_resp3_and_resp2_down_conversion);
    TEST_RUN(test_write_double_resp3_and_resp2);
    TEST_RUN(test_write_bool_verbatim_bignum);
    TEST_RUN(test_write_sequence_of_replies);
    TEST_RUN(test_write_big_bulk_spans_inline_buffer_and_a_block);
    TEST_RUN(test_write_iov_and_partial_consume_across_many_blocks);
    TEST_RUN(test_write_interleaved_with_draining_keeps_order);
    TEST_RUN(test_write_drained_output_returns_to_inline_buffer);
    TEST_RUN(test_defer_array_length_set_after_elements);
    TEST_RUN(test_defer_small_reply_folds_back_into_inline_buffer);
    TEST_RUN(test_defer_iov_stops_at_unset_handle);
    TEST_RUN(test_defer_nested_and_adjacent_handles);
    TEST_RUN(test_defer_in_the_middle_of_multi_block_output);
    TEST_RUN(test_defer_after_partial_drain_and_with_full_inline_buffer);
    TEST_RUN(test_out_deinit_frees_unset_handles_and_blocks);
    TEST_RUN(test_round_trip_commands_built_with_writer_then_parsed);
    TEST_RUN(test_ll2str_extremes);
    TEST_RUN(test_str2ll_follows_redis_string2ll);
    TEST_RUN(test_str2d_and_str2ld_follow_redis);
    TEST_RUN(test_d2str_formats_like_redis);
    TEST_RUN(test_ld2str_formats_like_incrbyfloat);
    TEST_RUN(test_split_args_unescapes_quotes_and_reports_errors);
    TEST_MAIN_END();
}
