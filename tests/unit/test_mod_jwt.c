/* test_mod_jwt.c: JWT parsing, key loading, signatures and claims
 * (ngx_omni_module/omni_jwt_*.c, omni_jwks.c, omni_b64url.c) against tokens
 * made by PyJWT. Fixtures come from tests/unit/fixtures/jwt/make.py. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>

#include "omni_jwt.h"
#include "unit.h"

#include "fixtures/jwt/tokens.h"

#define ALL_RSA "RS256,RS384,RS512,PS256,PS384,PS512"
#define ALL_HS "HS256,HS384,HS512"

static char err[1024];

/* A fixture's path, from this file's own (the tests run from the repo). */
static const char *fx(const char *name)
{
    static char path[4][512];
    static int next;
    const char *slash = strrchr(__FILE__, '/');
    int dir = slash ? (int)(slash - __FILE__) : 0;
    char *p = path[next++ % 4];

    snprintf(
        p, 512, "%.*s%sfixtures/jwt/%s", dir, __FILE__, slash ? "/" : "", name);
    return p;
}

/* Writes data to a fresh temporary file; its name goes to path[64]. */
static int tmp_file(char *path, const void *data, size_t len)
{
    int fd;

    strcpy(path, "/tmp/omni_jwt_test_XXXXXX");
    fd = mkstemp(path);
    if (fd < 0)
        return -1;
    if (write(fd, data, len) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static int tmp_str(char *path, const char *s)
{
    return tmp_file(path, s, strlen(s));
}

static void b64url(char *out, const void *data, size_t len)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = data;
    size_t i;
    unsigned v;

    for (i = 0; i + 3 <= len; i += 3) {
        v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *out++ = abc[v >> 18];
        *out++ = abc[(v >> 12) & 63];
        *out++ = abc[(v >> 6) & 63];
        *out++ = abc[v & 63];
    }
    if (len - i == 1) {
        v = (unsigned)p[i] << 16;
        *out++ = abc[v >> 18];
        *out++ = abc[(v >> 12) & 63];
    } else if (len - i == 2) {
        v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        *out++ = abc[v >> 18];
        *out++ = abc[(v >> 12) & 63];
        *out++ = abc[(v >> 6) & 63];
    }
    *out = '\0';
}

/* "b64(header).b64(payload).sig" into a static buffer. */
static const char *token3(
    const char *header, const char *payload, const char *sig)
{
    static char tok[20000];
    size_t n;

    b64url(tok, header, strlen(header));
    n = strlen(tok);
    tok[n++] = '.';
    b64url(tok + n, payload, strlen(payload));
    n = strlen(tok);
    snprintf(tok + n, sizeof(tok) - n, ".%s", sig);
    return tok;
}

/* An unsigned-looking token: enough for parse, claims and claim(). */
static const char *unsigned_token(const char *payload)
{
    return token3("{\"alg\":\"HS256\"}", payload, "c2ln");
}

static size_t hs_secret(unsigned char *secret)
{
    FILE *f = fopen(fx("hs.key"), "rb");
    size_t n;

    if (f == NULL)
        return 0;
    n = fread(secret, 1, 64, f);
    fclose(f);
    return n;
}

/* An HS256 token signed with secret. */
static const char *hs256_token_with(const unsigned char *secret, size_t sl,
    const char *header, const char *payload)
{
    static char tok[20000];
    unsigned char mac[32];
    unsigned maclen = 0;
    size_t n;

    snprintf(tok, sizeof(tok), "%s", token3(header, payload, ""));
    n = strlen(tok) - 1;
    tok[n] = '\0';
    HMAC(EVP_sha256(), secret, (int)sl, (unsigned char *)tok, n, mac, &maclen);
    tok[n] = '.';
    b64url(tok + n + 1, mac, maclen);
    return tok;
}

/* An HS256 token signed with hs.key. */
static const char *hs256_token(const char *header, const char *payload)
{
    unsigned char secret[64];
    size_t sl = hs_secret(secret);

    return hs256_token_with(secret, sl, header, payload);
}

static omni_jwt_status_t parse(
    omni_jwt_t *jwt, const char *token, const char **why)
{
    return omni_jwt_parse(jwt, token, strlen(token), why);
}

/* Parses token (which must parse) and verifies it with keys. */
static omni_jwt_status_t verify_with(
    const char *token, const omni_jwt_key_t *keys, size_t n, const char **why)
{
    omni_jwt_t jwt;
    omni_jwt_status_t rc;

    rc = parse(&jwt, token, why);
    if (rc == OMNI_JWT_OK)
        rc = omni_jwt_verify(&jwt, keys, n, why);
    omni_jwt_free(&jwt);
    return rc;
}

static int load(
    omni_jwt_key_t *key, const char *file, const char *algs, const char *kid)
{
    return omni_jwt_key_load(key, fx(file), algs, kid, err, sizeof(err));
}

/* key_load must refuse path with a one-line message naming the file and
 * holding want. */
static int refuses(
    const char *path, const char *algs, const char *kid, const char *want)
{
    omni_jwt_key_t key;

    memset(err, 0, sizeof(err));
    if (omni_jwt_key_load(&key, path, algs, kid, err, sizeof(err)) == 0) {
        fprintf(stderr, "    %s loaded\n", path);
        omni_jwt_key_free(&key);
        return 0;
    }
    if (strstr(err, want) == NULL || strstr(err, path) == NULL
        || strchr(err, '\n') != NULL) {
        fprintf(stderr, "    err = \"%s\"\n    want \"%s\"\n", err, want);
        return 0;
    }
    return key.pkey == NULL && key.secret == NULL;
}

static int jwks_refuses(const char *json, const char *want)
{
    omni_jwt_key_t *keys = NULL;
    size_t n = 99;
    char path[64];
    int rc;

    if (tmp_str(path, json) != 0)
        return 0;
    memset(err, 0, sizeof(err));
    rc = omni_jwt_jwks_load(&keys, &n, path, err, sizeof(err));
    unlink(path);
    if (rc == 0) {
        fprintf(stderr, "    JWKS loaded: %s\n", json);
        while (n > 0)
            omni_jwt_key_free(&keys[--n]);
        free(keys);
        return 0;
    }
    if (strstr(err, want) == NULL || strstr(err, path) == NULL
        || strchr(err, '\n') != NULL) {
        fprintf(stderr, "    err = \"%s\"\n    want \"%s\"\n", err, want);
        return 0;
    }
    return keys == NULL && n == 0;
}

/* ---- base64url ---------------------------------------------------------- */

static int b64_is(const char *in, const char *want)
{
    unsigned char out[64];
    size_t n = 999;

    if (omni_jwt_base64url_decode(out, &n, in, strlen(in)) != 0)
        return 0;
    return n == strlen(want) && memcmp(out, want, n) == 0;
}

static int b64_refused(const char *in)
{
    unsigned char out[64];
    size_t n;

    return omni_jwt_base64url_decode(out, &n, in, strlen(in)) == -1;
}

static void test_base64url_decodes_rfc4648_vectors_unpadded(void)
{
    CHECK(b64_is("", ""));
    CHECK(b64_is("Zg", "f"));
    CHECK(b64_is("Zm8", "fo"));
    CHECK(b64_is("Zm9v", "foo"));
    CHECK(b64_is("Zm9vYg", "foob"));
    CHECK(b64_is("Zm9vYmE", "fooba"));
    CHECK(b64_is("Zm9vYmFy", "foobar"));
    CHECK(b64_is("-_-_", "\xfb\xff\xbf"));
}

static void test_base64url_refuses_padding_bad_chars_and_lengths(void)
{
    CHECK(b64_refused("Zg=="));
    CHECK(b64_refused("Zm8="));
    CHECK(b64_refused("Zm9v="));
    CHECK(b64_refused("+/+/"));
    CHECK(b64_refused("Zm9 v"));
    CHECK(b64_refused("Zm9\nv"));
    CHECK(b64_refused("Z"));
    CHECK(b64_refused("Zm9vY"));
}

static void test_base64url_refuses_nonzero_trailing_bits(void)
{
    CHECK(b64_refused("Zh"));
    CHECK(b64_refused("Zm9"));
    CHECK(b64_is("Zm8", "fo"));
}

/* ---- parsing ------------------------------------------------------------ */

static void test_parse_reads_alg_kid_times_and_signing_input(void)
{
    omni_jwt_t jwt;
    const char *why = "x";
    const char *dot;

    CHECK_EQ_INT(parse(&jwt, fx_rs256, &why), OMNI_JWT_OK);
    CHECK(why == NULL);
    CHECK_EQ_INT(jwt.alg, OMNI_JWT_RS256);
    CHECK_STR_EQ(jwt.kid, "rsa1");
    CHECK(jwt.has_exp && jwt.exp == 4102444800.0);
    CHECK(jwt.has_iat && jwt.iat == 1700000000.0);
    CHECK(!jwt.has_nbf);
    CHECK(jwt.sig_len == 256);
    dot = strrchr(fx_rs256, '.');
    CHECK(jwt.signing_input == (const unsigned char *)fx_rs256);
    CHECK(jwt.signing_input_len == (size_t)(dot - fx_rs256));
    omni_jwt_free(&jwt);
}

static void test_alg_names_round_trip_and_none_is_unknown(void)
{
    int i;

    for (i = 0; i < OMNI_JWT_NALGS; i++) {
        const char *name = omni_jwt_alg_name((omni_jwt_alg_t)i);
        CHECK_EQ_INT(omni_jwt_alg_parse(name, strlen(name)), i);
    }
    CHECK_EQ_INT(omni_jwt_alg_parse("none", 4), -1);
    CHECK_EQ_INT(omni_jwt_alg_parse("rs256", 5), -1);
    CHECK_EQ_INT(omni_jwt_alg_parse("RS2560", 6), -1);
    CHECK_EQ_INT(omni_jwt_alg_parse("RS25", 4), -1);
    CHECK_STR_EQ(omni_jwt_alg_name(OMNI_JWT_NALGS), "unknown");
}

static int malformed(const char *token, const char *want_why)
{
    omni_jwt_t jwt;
    const char *why = NULL;
    omni_jwt_status_t rc = parse(&jwt, token, &why);

    omni_jwt_free(&jwt);
    if (rc != OMNI_JWT_MALFORMED || why == NULL
        || (want_why != NULL && strcmp(why, want_why) != 0)) {
        fprintf(
            stderr, "    rc = %d, why = \"%s\"\n", rc, why ? why : "(null)");
        return 0;
    }
    return 1;
}

static void test_wrong_segment_counts_are_malformed(void)
{
    const char *bad = "token is not three dot-separated segments";
    char four[4096];

    CHECK(malformed("", "empty token"));
    CHECK(malformed("abc", bad));
    CHECK(malformed("eyJhbGciOiJIUzI1NiJ9.e30", bad));
    CHECK(malformed("..", NULL));
    CHECK(malformed("...", bad));
    snprintf(four, sizeof(four), "%s.c2ln", fx_hs256);
    CHECK(malformed(four, bad));
    snprintf(four, sizeof(four), "%s.", fx_hs256);
    CHECK(malformed(four, bad));
}

static void test_empty_signature_is_malformed(void)
{
    CHECK(malformed(token3("{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", ""),
        "empty signature"));
}

static void test_alg_none_is_rejected_with_or_without_signature(void)
{
    const char *sub = "{\"sub\":\"admin\"}";

    CHECK(malformed(token3("{\"alg\":\"none\"}", sub, ""), NULL));
    CHECK(malformed(
        token3("{\"alg\":\"none\"}", sub, "c2ln"), "unsupported alg"));
    CHECK(malformed(
        token3("{\"alg\":\"None\"}", sub, "c2ln"), "unsupported alg"));
    CHECK(malformed(
        token3("{\"alg\":\"NONE\"}", sub, "c2ln"), "unsupported alg"));
    CHECK(malformed(
        token3("{\"alg\":\"RS257\"}", sub, "c2ln"), "unsupported alg"));
    CHECK(malformed(token3("{\"alg\":256}", sub, "c2ln"), "unsupported alg"));
    CHECK(malformed(token3("{\"typ\":\"JWT\"}", sub, "c2ln"), "alg missing"));
}

static void test_bad_base64url_in_any_segment_is_malformed(void)
{
    char tok[4096];
    const char *p1 = strchr(fx_hs256, '.');
    const char *p2 = strrchr(fx_hs256, '.');
    int h = (int)(p1 - fx_hs256);

    /* padding on the header */
    snprintf(tok, sizeof(tok), "%.*s=%s", h, fx_hs256, p1);
    CHECK(malformed(tok, "header is not base64url"));
    /* padding on the signature */
    snprintf(tok, sizeof(tok), "%s=", fx_hs256);
    CHECK(malformed(tok, "signature is not base64url"));
    /* a standard-alphabet character in the payload */
    snprintf(tok, sizeof(tok), "%.*s+%s", (int)(p2 - fx_hs256), fx_hs256, p2);
    CHECK(malformed(tok, NULL));
    /* one character too many: 1 mod 4 */
    snprintf(tok, sizeof(tok), "%.*sA%s", h, fx_hs256, p1);
    CHECK(malformed(tok, NULL));
    /* non-zero trailing bits: "e30" is "{}", "e31" is not canonical */
    CHECK(
        malformed("eyJhbGciOiJIUzI1NiJ9.e31.c2ln", "payload is not base64url"));
    CHECK(malformed(
        "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbh", "signature is not base64url"));
    /* whitespace */
    snprintf(tok, sizeof(tok), " %s", fx_hs256);
    CHECK(malformed(tok, "header is not base64url"));
}

static void test_header_and_payload_must_be_json_objects(void)
{
    CHECK(malformed(
        token3("[\"HS256\"]", "{}", "c2ln"), "header is not a JSON object"));
    CHECK(malformed(token3("{\"alg\":\"HS256\"}", "[1,2]", "c2ln"),
        "payload is not a JSON object"));
    CHECK(malformed(token3("{\"alg\":\"HS256\"}", "\"sub\"", "c2ln"),
        "payload is not a JSON object"));
    CHECK(malformed(token3("{\"alg\":\"HS256\"}", "42", "c2ln"),
        "payload is not a JSON object"));
    CHECK(malformed(token3("{\"alg\":\"HS256\"}", "{\"sub\":", "c2ln"),
        "payload is not JSON"));
    CHECK(
        malformed(token3("{\"alg\":\"HS256\"}", "", "c2ln"), "empty payload"));
    CHECK(malformed(
        token3("{\"alg\":\"HS256\"}", "{} {}", "c2ln"), "payload is not JSON"));
}

/* An object holding arrays nested to depth levels in all: {"a":[[...]]}. */
static const char *nest(char *out, int depth)
{
    int i, n = 0;

    n += sprintf(out, "{\"a\":");
    for (i = 1; i < depth; i++)
        out[n++] = '[';
    out[n++] = '1';
    for (i = 1; i < depth; i++)
        out[n++] = ']';
    strcpy(out + n, "}");
    return out;
}

static void test_json_ambiguities_are_malformed(void)
{
    const char *h = "{\"alg\":\"HS256\"}";
    char deep[200];
    omni_jwt_t jwt;

    CHECK(
        malformed(token3("{\"alg\":\"HS256\",\"alg\":\"none\"}", "{}", "c2ln"),
            "duplicate member in header"));
    CHECK(malformed(token3(h, "{\"sub\":\"a\",\"sub\":\"b\"}", "c2ln"),
        "duplicate member in payload"));
    CHECK(malformed(token3(h, "{\"a\":{\"r\":1,\"r\":2}}", "c2ln"),
        "duplicate member in payload"));
    CHECK(malformed(
        token3(h, "{\"sub\":\"a\"/*x*/}", "c2ln"), "comment in JSON"));
    CHECK(malformed(token3(h, "{\"sub\":\"a\\u0000b\"}", "c2ln"),
        "\\u0000 in a JSON string"));
    CHECK(malformed(
        token3(h, "{\"sub\":\"\xff\"}", "c2ln"), "payload is not JSON"));

    /* 32 levels of nesting parse, 33 do not */
    CHECK(
        malformed(token3(h, nest(deep, 33), "c2ln"), "JSON nested too deeply"));
    CHECK_EQ_INT(
        parse(&jwt, token3(h, nest(deep, 32), "c2ln"), NULL), OMNI_JWT_OK);
    omni_jwt_free(&jwt);
}

static const char *header_with_kid(size_t len)
{
    static char h[300];

    snprintf(h, sizeof(h), "{\"alg\":\"HS256\",\"kid\":\"%0*d\"}", (int)len, 0);
    return h;
}

static void test_header_crit_typ_and_kid_rules(void)
{
    const char *p = "{\"sub\":\"a\"}";
    const char *ok[] = {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS256\",\"typ\":\"jwt\"}",
        "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}",
        "{\"alg\":\"HS256\",\"typ\":\"application/at+JWT\"}",
        "{\"alg\":\"HS256\",\"jku\":\"https://evil.example/jwks\"}"};
    size_t i;
    omni_jwt_t jwt;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        CHECK_EQ_INT(parse(&jwt, token3(ok[i], p, "c2ln"), NULL), OMNI_JWT_OK);
        omni_jwt_free(&jwt);
    }
    CHECK_EQ_INT(parse(&jwt, token3(header_with_kid(127), p, "c2ln"), NULL),
        OMNI_JWT_OK);
    CHECK(jwt.kid != NULL && strlen(jwt.kid) == 127);
    omni_jwt_free(&jwt);
    CHECK(malformed(token3(header_with_kid(128), p, "c2ln"), "kid too long"));
    CHECK(malformed(token3("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", p, "c2ln"),
        "crit header not supported"));
    CHECK(malformed(token3("{\"alg\":\"HS256\",\"typ\":\"JOSE\"}", p, "c2ln"),
        "unsupported typ"));
    CHECK(malformed(
        token3("{\"alg\":\"HS256\",\"typ\":1}", p, "c2ln"), "unsupported typ"));
    CHECK(malformed(token3("{\"alg\":\"HS256\",\"kid\":7}", p, "c2ln"),
        "kid is not a string"));
}

static void test_time_claims_must_be_finite_numbers(void)
{
    const char *h = "{\"alg\":\"HS256\"}";
    omni_jwt_t jwt;

    CHECK(malformed(token3(h, "{\"sub\":\"a\",\"exp\":\"4102444800\"}", "c2ln"),
        "exp is not a number"));
    CHECK(malformed(token3(h, "{\"sub\":\"a\",\"exp\":null}", "c2ln"),
        "exp is not a number"));
    CHECK(malformed(token3(h, "{\"sub\":\"a\",\"nbf\":true}", "c2ln"),
        "nbf is not a number"));
    CHECK(malformed(token3(h, "{\"sub\":\"a\",\"iat\":[1]}", "c2ln"),
        "iat is not a number"));
    CHECK(malformed(token3(h, "{\"sub\":\"a\",\"exp\":1e999}", "c2ln"),
        "exp is not a number"));
    CHECK(malformed(token3(h, "{\"sub\":\"a\",\"nbf\":-1e999}", "c2ln"),
        "nbf is not a number"));
    CHECK_EQ_INT(
        parse(&jwt, token3(h, "{\"exp\":1.5e300,\"nbf\":-9e18}", "c2ln"), NULL),
        OMNI_JWT_OK);
    CHECK(jwt.has_exp && jwt.exp == 1.5e300);
    CHECK(jwt.has_nbf && jwt.nbf == -9e18);
    CHECK_EQ_INT(omni_jwt_check_claims(
                     &jwt, 0x7fffffff, 0x7fffffff, NULL, 0, NULL, 0, NULL),
        OMNI_JWT_MALFORMED);
    omni_jwt_free(&jwt);
}

static void test_token_over_8k_is_malformed_and_8k_parses(void)
{
    static char payload[9000], tok[9100];
    const char *h = "{\"alg\":\"HS256\"}";
    omni_jwt_t jwt;
    const char *why = NULL;
    size_t n, len = 0;

    /* grow a claim until the token is exactly OMNI_JWT_MAX_TOKEN bytes
     * (each step adds 0 or 2 characters; the signature takes up 1 or 2) */
    for (n = 6000; n < 6200; n++) {
        snprintf(payload, sizeof(payload), "{\"sub\":\"a\",\"pad\":\"%0*d\"}",
            (int)n, 0);
        snprintf(tok, sizeof(tok), "%s", token3(h, payload, "c2ln"));
        len = strlen(tok);
        if (len >= OMNI_JWT_MAX_TOKEN - 2)
            break;
    }
    if (len == OMNI_JWT_MAX_TOKEN - 2)
        strcat(tok, "bg");
    else if (len == OMNI_JWT_MAX_TOKEN - 1)
        strcpy(tok + len - 4, "c2lnbg");
    CHECK_EQ_INT(strlen(tok), OMNI_JWT_MAX_TOKEN);
    CHECK_EQ_INT(omni_jwt_parse(&jwt, tok, strlen(tok), &why), OMNI_JWT_OK);
    omni_jwt_free(&jwt);

    /* one byte more is refused before anything is decoded */
    strcat(tok, "A");
    CHECK_EQ_INT(
        omni_jwt_parse(&jwt, tok, strlen(tok), &why), OMNI_JWT_MALFORMED);
    CHECK_STR_EQ(why, "token too long");
    omni_jwt_free(&jwt);
}


static void test_failed_parse_cannot_be_verified(void)
{
    omni_jwt_key_t key;
    omni_jwt_t jwt;
    const char *why;

    CHECK(load(&key, "hs.key", ALL_HS, "hs") == 0);
    /* header fine, payload bad: verify must not run on the leftovers */
    CHECK_EQ_INT(
        parse(&jwt, token3("{\"alg\":\"HS256\",\"kid\":\"hs\"}", "[]", "c2ln"),
            NULL),
        OMNI_JWT_MALFORMED);
    CHECK_EQ_INT(omni_jwt_verify(&jwt, &key, 1, &why), OMNI_JWT_MALFORMED);
    CHECK_STR_EQ(why, "token not parsed");
    omni_jwt_free(&jwt);
    omni_jwt_free(&jwt);
    omni_jwt_key_free(&key);
}

/* ---- signatures --------------------------------------------------------- */

static void test_every_algorithm_verifies_with_its_pem_key(void)
{
    static const struct {
        const char *token, *file, *algs, *kid;
    } t[] = {
        {fx_hs256, "hs.key", ALL_HS, "hs"},
        {fx_hs384, "hs.key", ALL_HS, "hs"},
        {fx_hs512, "hs.key", ALL_HS, "hs"},
        {fx_rs256, "rsa.pem", ALL_RSA, "rsa1"},
        {fx_rs384, "rsa.pem", ALL_RSA, "rsa1"},
        {fx_rs512, "rsa.pem", ALL_RSA, "rsa1"},
        {fx_ps256, "rsa.pem", ALL_RSA, "rsa1"},
        {fx_ps384, "rsa.pem", ALL_RSA, "rsa1"},
        {fx_ps512, "rsa.pem", ALL_RSA, "rsa1"},
        {fx_rs256, "rsa_cert.pem", NULL, "rsa1"},
        {fx_es256, "ec256.pem", NULL, "ec256"},
        {fx_es384, "ec384.pem", NULL, "ec384"},
        {fx_es512, "ec521.pem", NULL, "ec521"},
        {fx_eddsa, "ed25519.pem", NULL, "ed"},
    };
    omni_jwt_key_t key;
    const char *why;
    size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (load(&key, t[i].file, t[i].algs, t[i].kid) != 0) {
            fprintf(stderr, "    %s\n", err);
            CHECK(0);
        }
        why = "x";
        if (verify_with(t[i].token, &key, 1, &why) != OMNI_JWT_OK) {
            fprintf(stderr, "    %s with %s: %s\n", t[i].file,
                t[i].algs ? t[i].algs : "default", why);
            omni_jwt_key_free(&key);
            CHECK(0);
        }
        CHECK(why == NULL);
        omni_jwt_key_free(&key);
    }
}

static void test_every_algorithm_verifies_with_the_jwks(void)
{
    const char *ok[] = {fx_hs256, fx_rs256, fx_ps256_jwks, fx_es256, fx_es384,
        fx_es512, fx_eddsa};
    omni_jwt_key_t *keys;
    const char *why;
    size_t n, i;

    CHECK(
        omni_jwt_jwks_load(&keys, &n, fx("jwks.json"), err, sizeof(err)) == 0);
    CHECK_EQ_INT(n, 7); /* "enc1" is an encryption key */
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        CHECK_EQ_INT(verify_with(ok[i], keys, n, &why), OMNI_JWT_OK);
    /* the JWK "rsa1" is bound to RS256 by its "alg" */
    CHECK_EQ_INT(verify_with(fx_rs384, keys, n, &why), OMNI_JWT_BAD_SIGNATURE);
    CHECK_STR_EQ(why, "algorithm not allowed for this key");
    /* a JWK without "alg" gets its curve's default: ES384 only */
    for (i = 0; i < n; i++) {
        if (strcmp(keys[i].kid, "ec384") == 0)
            CHECK_EQ_INT(keys[i].algs, OMNI_JWT_ALG_BIT(OMNI_JWT_ES384));
        if (strcmp(keys[i].kid, "ed") == 0)
            CHECK_EQ_INT(keys[i].algs, OMNI_JWT_ALG_BIT(OMNI_JWT_EDDSA));
        CHECK(strcmp(keys[i].kid, "enc1") != 0);
        omni_jwt_key_free(&keys[i]);
    }
    free(keys);
}

/* A fetched JWKS is parsed from memory; errors name the source given. */
static void test_jwks_parses_from_memory(void)
{
    static char text[16384];
    const char *name = "https://idp.test/jwks.json";
    omni_jwt_key_t *keys;
    size_t n, len;
    FILE *f;

    f = fopen(fx("jwks.json"), "rb");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    CHECK(len > 0 && len < sizeof(text) - 1);
    text[len] = '\0';

    CHECK(
        omni_jwt_jwks_parse(&keys, &n, text, len, name, err, sizeof(err)) == 0);
    CHECK_EQ_INT(n, 7);
    while (n > 0)
        omni_jwt_key_free(&keys[--n]);
    free(keys);

    /* cut short, an empty body, a NUL inside: refused, nothing to free */
    CHECK(omni_jwt_jwks_parse(&keys, &n, text, len / 2, name, err, sizeof(err))
          == -1);
    CHECK(strstr(err, name) != NULL && strstr(err, "not valid JSON"));
    CHECK(keys == NULL && n == 0);
    CHECK(omni_jwt_jwks_parse(&keys, &n, "", 0, name, err, sizeof(err)) == -1);
    CHECK(strstr(err, "empty") != NULL);
    CHECK(omni_jwt_jwks_parse(
              &keys, &n, "{\"keys\":[]}\0 ", 14, name, err, sizeof(err))
          == -1);
    CHECK(strstr(err, name) != NULL);
}

/* token with its segment'th segment decoded, edited and encoded again:
 * a bit flipped in the signature, a member added to header or payload. */
static const char *tamper(const char *token, int segment)
{
    static char out[8192];
    unsigned char raw[4096], edited[4200];
    const char *start = token, *end;
    size_t n, pre;
    int i;

    for (i = 0; i < segment; i++)
        start = strchr(start, '.') + 1;
    end = strchr(start, '.');
    if (end == NULL)
        end = start + strlen(start);
    if (omni_jwt_base64url_decode(raw, &n, start, (size_t)(end - start)) != 0
        || n == 0)
        return NULL;
    if (segment == 2) {
        raw[n / 2] ^= 0x01;
        memcpy(edited, raw, n);
    } else {
        memcpy(edited, "{\"x\":1,", 7);
        memcpy(edited + 7, raw + 1, n - 1);
        n += 6;
    }
    pre = (size_t)(start - token);
    memcpy(out, token, pre);
    b64url(out + pre, edited, n);
    strcat(out, end);
    return out;
}

/* token with the signature segment replaced by the encoding of sig. */
static const char *with_sig(const char *token, const void *sig, size_t len)
{
    static char out[8192];
    size_t pre = (size_t)(strrchr(token, '.') + 1 - token);

    memcpy(out, token, pre);
    b64url(out + pre, sig, len);
    return out;
}

static size_t sig_of(const char *token, unsigned char *sig)
{
    const char *s = strrchr(token, '.') + 1;
    size_t n = 0;

    if (omni_jwt_base64url_decode(sig, &n, s, strlen(s)) != 0)
        return 0;
    return n;
}

static void test_tampered_header_payload_or_signature_fails(void)
{
    static const struct {
        const char *token, *file, *algs, *kid;
    } t[] = {
        {fx_hs256, "hs.key", NULL, "hs"},
        {fx_rs256, "rsa.pem", NULL, "rsa1"},
        {fx_ps256, "rsa.pem", "PS256", "rsa1"},
        {fx_es256, "ec256.pem", NULL, "ec256"},
        {fx_es512, "ec521.pem", NULL, "ec521"},
        {fx_eddsa, "ed25519.pem", NULL, "ed"},
    };
    omni_jwt_key_t key;
    const char *why, *bad;
    size_t i;
    int seg;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        CHECK(load(&key, t[i].file, t[i].algs, t[i].kid) == 0);
        CHECK_EQ_INT(verify_with(t[i].token, &key, 1, &why), OMNI_JWT_OK);
        for (seg = 0; seg < 3; seg++) {
            bad = tamper(t[i].token, seg);
            CHECK(bad != NULL && strcmp(bad, t[i].token) != 0);
            why = NULL;
            if (verify_with(bad, &key, 1, &why) != OMNI_JWT_BAD_SIGNATURE) {
                fprintf(stderr, "    %s segment %d: %s\n", t[i].file, seg,
                    why ? why : "accepted");
                omni_jwt_key_free(&key);
                CHECK(0);
            }
            CHECK_STR_EQ(why, "signature does not verify");
        }
        omni_jwt_key_free(&key);
    }
}

/* RSA and ECDSA verify through contexts the key keeps and reuses: a
 * failed verification must leave nothing behind for the next token, and
 * each alternation must answer as a fresh context would. */
static void test_reused_verification_contexts_stay_exact(void)
{
    static const struct {
        const char *token, *file, *algs, *kid;
        omni_jwt_alg_t alg;
    } t[] = {
        {fx_rs256, "rsa.pem", NULL, "rsa1", OMNI_JWT_RS256},
        {fx_rs512, "rsa.pem", ALL_RSA, "rsa1", OMNI_JWT_RS512},
        {fx_ps256, "rsa.pem", "PS256", "rsa1", OMNI_JWT_PS256},
        {fx_es256, "ec256.pem", NULL, "ec256", OMNI_JWT_ES256},
        {fx_es512, "ec521.pem", NULL, "ec521", OMNI_JWT_ES512},
    };
    omni_jwt_key_t key;
    const char *why, *bad;
    size_t i;
    int round, seg;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        CHECK(load(&key, t[i].file, t[i].algs, t[i].kid) == 0);
        CHECK(key.pverify[t[i].alg] != NULL && key.digest[t[i].alg] != NULL);
        for (round = 0; round < 20; round++) {
            seg = round % 3;
            bad = tamper(t[i].token, seg);
            CHECK(bad != NULL);
            CHECK_EQ_INT(
                verify_with(bad, &key, 1, &why), OMNI_JWT_BAD_SIGNATURE);
            CHECK_EQ_INT(verify_with(t[i].token, &key, 1, &why), OMNI_JWT_OK);
        }
        omni_jwt_key_free(&key);
    }
}

static void test_signature_of_the_wrong_length_fails(void)
{
    omni_jwt_key_t key;
    unsigned char sig[600], *der = NULL;
    ECDSA_SIG *esig = ECDSA_SIG_new();
    const char *why;
    size_t n;
    int dlen;

    CHECK(load(&key, "ec256.pem", NULL, "ec256") == 0);
    n = sig_of(fx_es256, sig);
    CHECK(n == 64);
    /* the same r and s, DER-encoded: JWS wants exactly r || s */
    CHECK(esig != NULL);
    ECDSA_SIG_set0(
        esig, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    dlen = i2d_ECDSA_SIG(esig, &der);
    ECDSA_SIG_free(esig);
    CHECK(dlen > 64);
    CHECK_EQ_INT(
        verify_with(with_sig(fx_es256, der, (size_t)dlen), &key, 1, &why),
        OMNI_JWT_BAD_SIGNATURE);
    OPENSSL_free(der);
    sig[64] = 0;
    CHECK_EQ_INT(verify_with(with_sig(fx_es256, sig, 65), &key, 1, &why),
        OMNI_JWT_BAD_SIGNATURE);
    CHECK_EQ_INT(
        verify_with(with_sig(fx_es256, sig, 64), &key, 1, &why), OMNI_JWT_OK);
    omni_jwt_key_free(&key);

    CHECK(load(&key, "hs.key", NULL, "hs") == 0);
    n = sig_of(fx_hs256, sig);
    CHECK_EQ_INT(verify_with(with_sig(fx_hs256, sig, n - 1), &key, 1, &why),
        OMNI_JWT_BAD_SIGNATURE);
    CHECK_STR_EQ(why, "signature does not verify");
    /* the right MAC with a byte more is not the right MAC */
    sig[n] = 0;
    CHECK_EQ_INT(verify_with(with_sig(fx_hs256, sig, n + 1), &key, 1, &why),
        OMNI_JWT_BAD_SIGNATURE);
    CHECK_EQ_INT(
        verify_with(with_sig(fx_hs256, sig, n), &key, 1, &why), OMNI_JWT_OK);
    omni_jwt_key_free(&key);

    CHECK(load(&key, "rsa.pem", NULL, "rsa1") == 0);
    n = sig_of(fx_rs256, sig);
    sig[n] = 0;
    CHECK_EQ_INT(verify_with(with_sig(fx_rs256, sig, n + 1), &key, 1, &why),
        OMNI_JWT_BAD_SIGNATURE);
    omni_jwt_key_free(&key);
}

static void test_token_signed_by_another_key_fails(void)
{
    omni_jwt_key_t key;
    const char *why;

    CHECK(load(&key, "rsa.pem", NULL, "rsa1") == 0);
    CHECK_EQ_INT(
        verify_with(fx_rs256_other, &key, 1, &why), OMNI_JWT_BAD_SIGNATURE);
    CHECK_STR_EQ(why, "signature does not verify");
    omni_jwt_key_free(&key);

    CHECK(load(&key, "rsa_other.pem", NULL, "rsa1") == 0);
    CHECK_EQ_INT(verify_with(fx_rs256_other, &key, 1, &why), OMNI_JWT_OK);
    CHECK_EQ_INT(verify_with(fx_rs256, &key, 1, &why), OMNI_JWT_BAD_SIGNATURE);
    omni_jwt_key_free(&key);
}

static void test_kid_selects_keys(void)
{
    omni_jwt_key_t keys[2];
    const char *why;

    CHECK(load(&keys[0], "rsa_other.pem", NULL, "old") == 0);
    CHECK(load(&keys[1], "rsa.pem", NULL, "rsa1") == 0);
    CHECK_EQ_INT(verify_with(fx_rs256, keys, 2, &why), OMNI_JWT_OK);
    /* no kid in the token: every key is tried */
    CHECK_EQ_INT(verify_with(fx_rs256_nokid, keys, 2, &why), OMNI_JWT_OK);
    /* a kid nobody has */
    CHECK_EQ_INT(verify_with(fx_rs256, keys, 1, &why), OMNI_JWT_BAD_SIGNATURE);
    CHECK_STR_EQ(why, "unknown kid");
    omni_jwt_key_free(&keys[0]);
    omni_jwt_key_free(&keys[1]);

    /* a key without a kid answers for any kid: IdPs name one in every
     * token, and the signature still decides */
    CHECK(load(&keys[0], "rsa.pem", NULL, NULL) == 0);
    CHECK_STR_EQ(keys[0].kid, "");
    CHECK_EQ_INT(verify_with(fx_rs256, keys, 1, &why), OMNI_JWT_OK);
    CHECK_EQ_INT(verify_with(fx_rs256_nokid, keys, 1, &why), OMNI_JWT_OK);
    CHECK_EQ_INT(
        verify_with(fx_rs256_other, keys, 1, &why), OMNI_JWT_BAD_SIGNATURE);
    CHECK_STR_EQ(why, "signature does not verify");
    omni_jwt_key_free(&keys[0]);

    CHECK_EQ_INT(
        verify_with(fx_rs256_nokid, keys, 0, &why), OMNI_JWT_BAD_SIGNATURE);
    CHECK_STR_EQ(why, "no verification key");
}

static void test_algorithm_not_bound_to_the_key_fails(void)
{
    omni_jwt_key_t key;
    const char *why;

    CHECK(load(&key, "rsa.pem", "RS256", "rsa1") == 0);
    CHECK_EQ_INT(key.algs, OMNI_JWT_ALG_BIT(OMNI_JWT_RS256));
    CHECK_EQ_INT(verify_with(fx_rs384, &key, 1, &why), OMNI_JWT_BAD_SIGNATURE);
    CHECK_STR_EQ(why, "algorithm not allowed for this key");
    CHECK_EQ_INT(verify_with(fx_ps256, &key, 1, &why), OMNI_JWT_BAD_SIGNATURE);
    CHECK_STR_EQ(why, "algorithm not allowed for this key");
    omni_jwt_key_free(&key);

    /* the default for an RSA key is RS256 alone */
    CHECK(load(&key, "rsa.pem", NULL, "rsa1") == 0);
    CHECK_EQ_INT(key.algs, OMNI_JWT_ALG_BIT(OMNI_JWT_RS256));
    CHECK_EQ_INT(verify_with(fx_rs512, &key, 1, &why), OMNI_JWT_BAD_SIGNATURE);
    CHECK_STR_EQ(why, "algorithm not allowed for this key");
    omni_jwt_key_free(&key);
}

static void test_hs256_signed_with_rsa_public_key_text_fails(void)
{
    omni_jwt_key_t key;
    const char *why;

    /* the classic confusion: HMAC keyed with the PEM text of the key */
    CHECK(load(&key, "rsa.pem", ALL_RSA, "rsa1") == 0);
    CHECK_EQ_INT(
        verify_with(fx_confusion, &key, 1, &why), OMNI_JWT_BAD_SIGNATURE);
    CHECK_STR_EQ(why, "algorithm not allowed for this key");

    /* even a key wrongly bound to HS256 (by a caller filling the struct)
     * is no HMAC key: neither its PEM text nor an empty secret */
    key.algs |= OMNI_JWT_ALG_BIT(OMNI_JWT_HS256);
    CHECK_EQ_INT(
        verify_with(fx_confusion, &key, 1, &why), OMNI_JWT_BAD_SIGNATURE);
    CHECK_STR_EQ(why, "signature does not verify");
    CHECK_EQ_INT(verify_with(hs256_token_with((const unsigned char *)"", 0,
                                 "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}",
                                 "{\"sub\":\"admin\"}"),
                     &key, 1, &why),
        OMNI_JWT_BAD_SIGNATURE);
    omni_jwt_key_free(&key);

    /* and the PEM cannot be loaded as an HMAC secret */
    CHECK(refuses(fx("rsa.pem"), "HS256", NULL,
        "key/algorithm mismatch: HS256 needs an HMAC secret"));
}

/* A key a caller binds by hand to an algorithm of another type (or curve)
 * is never used for it: the type was checked at load for the algorithms
 * bound then, and verification asks that record. */
static void test_a_key_bound_by_hand_to_another_type_is_not_used(void)
{
    static const struct {
        const char *file, *kid;
    } t[] = {
        {"rsa.pem", "ec256"},
        {"ec384.pem", "ec256"},
        {"ed25519.pem", "ec256"},
    };
    omni_jwt_key_t key;
    const char *why;
    size_t i;

    CHECK(load(&key, "ec256.pem", NULL, "ec256") == 0);
    CHECK_EQ_INT(verify_with(fx_es256, &key, 1, &why), OMNI_JWT_OK);
    omni_jwt_key_free(&key);

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        CHECK(load(&key, t[i].file, NULL, t[i].kid) == 0);
        key.algs |= OMNI_JWT_ALG_BIT(OMNI_JWT_ES256);
        CHECK_EQ_INT(
            verify_with(fx_es256, &key, 1, &why), OMNI_JWT_BAD_SIGNATURE);
        CHECK_STR_EQ(why, "signature does not verify");
        omni_jwt_key_free(&key);
    }
}

static void test_secret_is_file_bytes_without_one_trailing_newline(void)
{
    omni_jwt_key_t key;
    unsigned char secret[64];
    char path[64];
    const char *why;
    size_t n = hs_secret(secret);
    char buf[80];

    CHECK(n == 64);
    CHECK(load(&key, "hs.key", NULL, NULL) == 0);
    CHECK(key.secret_len == 64 && memcmp(key.secret, secret, 64) == 0);
    CHECK_EQ_INT(key.algs, OMNI_JWT_ALG_BIT(OMNI_JWT_HS256));
    omni_jwt_key_free(&key);

    /* CRLF counts as the one newline; a second one is part of the secret */
    memcpy(buf, secret, 64);
    memcpy(buf + 64, "\r\n", 2);
    CHECK(tmp_file(path, buf, 66) == 0);
    CHECK(omni_jwt_key_load(&key, path, "HS256", "hs", err, sizeof(err)) == 0);
    CHECK(verify_with(fx_hs256, &key, 1, &why) == OMNI_JWT_OK);
    omni_jwt_key_free(&key);
    unlink(path);
    memcpy(buf + 64, "\n\n", 2);
    CHECK(tmp_file(path, buf, 66) == 0);
    CHECK(omni_jwt_key_load(&key, path, "HS256", "hs", err, sizeof(err)) == 0);
    CHECK(key.secret_len == 65);
    CHECK(verify_with(fx_hs256, &key, 1, &why) == OMNI_JWT_BAD_SIGNATURE);
    omni_jwt_key_free(&key);
    unlink(path);
}

/* ---- key loading refusals ----------------------------------------------- */

static void test_key_load_refuses_unreadable_and_empty_files(void)
{
    char path[64];

    CHECK(refuses("/nonexistent/omni/key.pem", NULL, NULL, "cannot open"));
    CHECK(refuses("/tmp", NULL, NULL, "cannot read"));
    CHECK(tmp_str(path, "") == 0);
    CHECK(refuses(path, NULL, NULL, "file is empty"));
    unlink(path);
    CHECK(tmp_str(path, "\n") == 0);
    CHECK(refuses(path, NULL, NULL, "HMAC secret is empty"));
    unlink(path);
}

static void test_key_load_refuses_unknown_algorithms(void)
{
    CHECK(refuses(fx("rsa.pem"), "RS257", NULL, "unknown algorithm \"RS257\""));
    CHECK(refuses(fx("rsa.pem"), "none", NULL, "unknown algorithm \"none\""));
    CHECK(refuses(fx("rsa.pem"), "RS256,", NULL, "unknown algorithm \"\""));
    CHECK(refuses(fx("rsa.pem"), "", NULL, "unknown algorithm \"\""));
    CHECK(refuses(fx("rsa.pem"), "rs256", NULL, "unknown algorithm \"rs256\""));
}

static void test_key_load_refuses_algorithms_the_key_cannot_do(void)
{
    CHECK(refuses(fx("rsa.pem"), "ES256", NULL,
        "key/algorithm mismatch: ES256 needs an EC P-256 key, the file "
        "holds an RSA key"));
    CHECK(refuses(fx("ec256.pem"), "ES384", NULL,
        "key/algorithm mismatch: ES384 needs an EC P-384 key, the file "
        "holds an EC P-256 key"));
    CHECK(refuses(fx("ec521.pem"), "ES256,ES512", NULL,
        "ES256 needs an EC P-256 key, the file holds an EC P-521 key"));
    CHECK(refuses(fx("ec256.pem"), "RS256", NULL,
        "RS256 needs an RSA key, the file holds an EC P-256 key"));
    CHECK(refuses(fx("ed25519.pem"), "ES256", NULL,
        "ES256 needs an EC P-256 key, the file holds an Ed25519 key"));
    CHECK(refuses(fx("rsa.pem"), "EdDSA", NULL,
        "EdDSA needs an Ed25519 key, the file holds an RSA key"));
    CHECK(
        refuses(fx("ec256.pem"), "HS256", NULL, "HS256 needs an HMAC secret"));
    CHECK(refuses(fx("hs.key"), "RS256", NULL,
        "key/algorithm mismatch: RS256 needs an RSA key, the file holds an "
        "HMAC secret"));
    CHECK(refuses(
        fx("hs.key"), "HS256,EdDSA", NULL, "EdDSA needs an Ed25519 key"));
}

static void test_key_load_refuses_weak_and_unsupported_keys(void)
{
    char path[64];
    char secret[49];

    CHECK(refuses(fx("short.key"), NULL, NULL,
        "HS256 needs a secret of at least 32 bytes"));
    memset(secret, 'k', 40);
    CHECK(tmp_file(path, secret, 40) == 0);
    CHECK(refuses(
        path, "HS384", NULL, "HS384 needs a secret of at least 48 bytes"));
    unlink(path);
    memset(secret, 'k', 48);
    CHECK(tmp_file(path, secret, 48) == 0);
    CHECK(refuses(path, "HS384,HS512", NULL,
        "HS512 needs a secret of at least 64 bytes"));
    unlink(path);
    CHECK(refuses(fx("rsa1024.pem"), NULL, NULL,
        "RS256 needs an RSA key of at least 2048 bits, the file holds a "
        "1024-bit key"));
    CHECK(refuses(fx("rsa1024.pem"), "PS256", NULL, "at least 2048 bits"));
    CHECK(refuses(fx("ed448.pem"), NULL, NULL,
        "unsupported key: the file holds an Ed448 key"));
    CHECK(refuses(fx("secp256k1.pem"), NULL, NULL,
        "unsupported key: the file holds an EC secp256k1 key"));
    CHECK(refuses(fx("secp256k1.pem"), "ES256", NULL,
        "ES256 needs an EC P-256 key, the file holds an EC secp256k1 key"));
}

static void test_key_load_refuses_private_keys(void)
{
    static const char *markers[] = {"-----BEGIN PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN EC PRIVATE KEY-----",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----"};
    char path[64], text[256];
    size_t i;

    CHECK(refuses(fx("private_ec.pem"), NULL, NULL, "holds a private key"));
    CHECK(refuses(fx("private_ec.pem"), "HS256", NULL, "holds a private key"));
    for (i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
        snprintf(text, sizeof(text),
            "%s\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\n"
            "-----END-----\n",
            markers[i]);
        CHECK(tmp_str(path, text) == 0);
        CHECK(refuses(path, NULL, NULL, "holds a private key"));
        CHECK(refuses(path, "HS256", NULL, "holds a private key"));
        unlink(path);
    }
}

static void test_key_load_refuses_bad_pem(void)
{
    char path[64], two[2048];
    FILE *f;
    size_t n;

    CHECK(tmp_str(path, "-----BEGIN PUBLIC KEY-----\nAAAA\n"
                        "-----END PUBLIC KEY-----\n")
          == 0);
    CHECK(refuses(path, NULL, NULL, "not a PEM public key"));
    unlink(path);

    /* two keys in one file: which one was meant? */
    f = fopen(fx("rsa.pem"), "r");
    CHECK(f != NULL);
    n = fread(two, 1, sizeof(two) / 2, f);
    fclose(f);
    f = fopen(fx("ec256.pem"), "r");
    CHECK(f != NULL);
    n += fread(two + n, 1, sizeof(two) / 2, f);
    fclose(f);
    CHECK(tmp_file(path, two, n) == 0);
    CHECK(refuses(path, NULL, NULL, "holds 2 PEM blocks"));
    unlink(path);
}

static void test_key_load_refuses_public_keys_as_hmac_secrets(void)
{
    omni_jwt_key_t key;
    unsigned char *der = NULL;
    char path[64];
    int len;

    /* a DER public key given without alg= would otherwise become HS256 */
    CHECK(load(&key, "rsa.pem", NULL, NULL) == 0);
    len = i2d_PUBKEY(key.pkey, &der);
    omni_jwt_key_free(&key);
    CHECK(len > 0);
    CHECK(tmp_file(path, der, (size_t)len) == 0);
    OPENSSL_free(der);
    CHECK(refuses(path, NULL, NULL, "DER key"));
    unlink(path);

    CHECK(tmp_str(path, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBpM user@host\n")
          == 0);
    CHECK(refuses(path, NULL, NULL, "OpenSSH public key"));
    unlink(path);
    CHECK(refuses(fx("jwks.json"), NULL, NULL, "holds a JWK"));
}

static void test_key_load_refuses_long_kid_and_takes_kid(void)
{
    omni_jwt_key_t key;
    char kid[130];

    memset(kid, 'k', 128);
    kid[128] = '\0';
    CHECK(refuses(fx("rsa.pem"), NULL, kid, "kid is longer than 127"));
    kid[127] = '\0';
    CHECK(load(&key, "rsa.pem", " RS256 , PS256 ", kid) == 0);
    CHECK_STR_EQ(key.kid, kid);
    CHECK_EQ_INT(key.algs,
        OMNI_JWT_ALG_BIT(OMNI_JWT_RS256) | OMNI_JWT_ALG_BIT(OMNI_JWT_PS256));
    omni_jwt_key_free(&key);
    omni_jwt_key_free(&key);
}

/* ---- JWKS --------------------------------------------------------------- */

/* "n":"...","e":"..." of rsa.pem, for JWKS made up in tests. */
static char jwk_n[1024];

static int make_jwk_n(void)
{
    omni_jwt_key_t key;
    BIGNUM *n = NULL, *e = NULL;
    unsigned char bin[512];
    char nb[700], eb[16];
    int len, ok = 0;

    if (load(&key, "rsa.pem", NULL, NULL) != 0)
        return 0;
    if (EVP_PKEY_get_bn_param(key.pkey, "n", &n) == 1
        && EVP_PKEY_get_bn_param(key.pkey, "e", &e) == 1) {
        len = BN_bn2bin(n, bin);
        b64url(nb, bin, (size_t)len);
        len = BN_bn2bin(e, bin);
        b64url(eb, bin, (size_t)len);
        snprintf(jwk_n, sizeof(jwk_n), "\"n\":\"%s\",\"e\":\"%s\"", nb, eb);
        ok = 1;
    }
    BN_free(n);
    BN_free(e);
    omni_jwt_key_free(&key);
    return ok;
}

static void test_jwks_refuses_bad_sets(void)
{
    char json[4096];

    CHECK(make_jwk_n());
    CHECK(jwks_refuses("[", "not valid JSON"));
    CHECK(jwks_refuses("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\\u0000b\"}]}",
        "not valid JSON: \\u0000 in a JSON string"));
    CHECK(jwks_refuses("{\"keys\":[{\"kty\":\"oct\",\"kty\":\"RSA\"}]}",
        "duplicate member name in JSON"));
    CHECK(jwks_refuses("{\"keys\":{}}", "not a JWKS"));
    CHECK(jwks_refuses("[]", "not a JWKS"));
    CHECK(jwks_refuses("{\"keys\":[]}", "no signing keys"));
    CHECK(jwks_refuses("{\"keys\":[{\"kty\":\"oct\",\"use\":\"enc\","
                       "\"k\":\"AAAA\"}]}",
        "no signing keys"));
    CHECK(jwks_refuses("{\"keys\":[7]}", "key 0: not a JSON object"));
    CHECK(jwks_refuses("{\"keys\":[{\"kid\":\"a\"}]}", "\"kty\" missing"));
    CHECK(jwks_refuses("{\"keys\":[{\"kty\":\"DSA\",\"kid\":\"a\"}]}",
        "key 0 (kid \"a\"): unsupported kty \"DSA\""));

    snprintf(json, sizeof(json),
        "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\",%s},"
        "{\"kty\":\"RSA\",\"kid\":\"a\",%s}]}",
        jwk_n, jwk_n);
    CHECK(jwks_refuses(json, "duplicate kid \"a\""));
    snprintf(json, sizeof(json),
        "{\"keys\":[{\"kty\":\"RSA\",\"alg\":\"RS257\",%s}]}", jwk_n);
    CHECK(jwks_refuses(json, "unknown algorithm \"RS257\""));
    snprintf(json, sizeof(json),
        "{\"keys\":[{\"kty\":\"RSA\",\"alg\":\"ES256\",%s}]}", jwk_n);
    CHECK(jwks_refuses(json, "key/algorithm mismatch: ES256 needs an EC "
                             "P-256 key, the JWK holds an RSA key"));
    snprintf(json, sizeof(json),
        "{\"keys\":[{\"kty\":\"RSA\",\"alg\":\"HS256\",%s}]}", jwk_n);
    CHECK(jwks_refuses(json, "HS256 needs an HMAC secret"));
    snprintf(json, sizeof(json),
        "{\"keys\":[{\"kty\":\"RSA\",\"d\":\"AQAB\",%s}]}", jwk_n);
    CHECK(jwks_refuses(json, "holds a private key"));
    CHECK(jwks_refuses(
        "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\"}]}", "\"e\" missing"));
    CHECK(jwks_refuses("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQA=\","
                       "\"e\":\"AQAB\"}]}",
        "\"n\" is not base64url"));
    CHECK(jwks_refuses("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"wQ\","
                       "\"e\":\"AQAB\"}]}",
        "needs an RSA key of at least 2048 bits"));
    CHECK(jwks_refuses("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"secp256k1\","
                       "\"x\":\"AA\",\"y\":\"AA\"}]}",
        "unsupported EC curve \"secp256k1\""));
    /* a coordinate one byte short, and a point off the curve */
    CHECK(
        jwks_refuses("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
                     "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                     "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}",
            "not a point on the curve"));
    CHECK(
        jwks_refuses("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
                     "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\","
                     "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}",
            "not a point on the curve"));
    CHECK(jwks_refuses("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed448\","
                       "\"x\":\"AAAA\"}]}",
        "unsupported OKP curve"));
    CHECK(jwks_refuses("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
                       "\"x\":\"AAAA\"}]}",
        "not an Ed25519 public key"));
    CHECK(jwks_refuses("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}",
        "HS256 needs a secret of at least 32 bytes"));
    CHECK(jwks_refuses(
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"\"}]}", "\"k\" missing or empty"));
    CHECK(jwks_refuses("{\"keys\":[{\"kty\":\"oct\",\"use\":\"sign\","
                       "\"k\":\"c2VjcmV0\"}]}",
        "\"use\" is neither"));
}

static void test_jwks_skips_encryption_keys(void)
{
    omni_jwt_key_t *keys;
    char json[8192], path[64];
    size_t n;

    CHECK(make_jwk_n());
    snprintf(json, sizeof(json),
        "{\"keys\":["
        "{\"kty\":\"RSA\",\"kid\":\"e1\",\"use\":\"enc\",%s},"
        "{\"kty\":\"RSA\",\"kid\":\"e2\",\"alg\":\"RSA-OAEP-256\",%s},"
        "{\"kty\":\"RSA\",\"kid\":\"e3\",\"key_ops\":[\"wrapKey\"],%s},"
        "{\"kty\":\"OKP\",\"kid\":\"e4\",\"crv\":\"X25519\",\"x\":\"AA\"},"
        "{\"kty\":\"RSA\",\"kid\":\"s1\",\"key_ops\":[\"verify\"],%s},"
        "{\"kty\":\"RSA\",\"kid\":\"s2\",\"alg\":\"PS512\",%s}]}",
        jwk_n, jwk_n, jwk_n, jwk_n, jwk_n);
    CHECK(tmp_str(path, json) == 0);
    CHECK(omni_jwt_jwks_load(&keys, &n, path, err, sizeof(err)) == 0);
    unlink(path);
    CHECK_EQ_INT(n, 2);
    CHECK_STR_EQ(keys[0].kid, "s1");
    CHECK_EQ_INT(keys[0].algs, OMNI_JWT_ALG_BIT(OMNI_JWT_RS256));
    CHECK_STR_EQ(keys[1].kid, "s2");
    CHECK_EQ_INT(keys[1].algs, OMNI_JWT_ALG_BIT(OMNI_JWT_PS512));
    CHECK(keys[0].pkey != NULL && EVP_PKEY_get_bits(keys[0].pkey) == 2048);
    omni_jwt_key_free(&keys[0]);
    omni_jwt_key_free(&keys[1]);
    free(keys);
}

/* ---- claims ------------------------------------------------------------- */

static omni_jwt_status_t claims(
    const char *payload, time_t now, time_t leeway, const char **why)
{
    omni_jwt_t jwt;
    omni_jwt_status_t rc;

    rc = parse(&jwt, unsigned_token(payload), why);
    if (rc == OMNI_JWT_OK)
        rc = omni_jwt_check_claims(&jwt, now, leeway, NULL, 0, NULL, 0, why);
    omni_jwt_free(&jwt);
    return rc;
}

static void test_exp_boundary_with_and_without_leeway(void)
{
    const char *p = "{\"sub\":\"a\",\"exp\":1000}";
    const char *why;

    CHECK_EQ_INT(claims(p, 999, 0, &why), OMNI_JWT_OK);
    CHECK(why == NULL);
    CHECK_EQ_INT(claims(p, 1000, 0, &why), OMNI_JWT_EXPIRED);
    CHECK_STR_EQ(why, "token expired");
    CHECK_EQ_INT(claims(p, 1009, 10, &why), OMNI_JWT_OK);
    CHECK_EQ_INT(claims(p, 1010, 10, &why), OMNI_JWT_EXPIRED);
    /* a negative leeway is no leeway */
    CHECK_EQ_INT(claims(p, 999, -5, &why), OMNI_JWT_OK);
    CHECK_EQ_INT(
        claims("{\"sub\":\"a\",\"exp\":999.5}", 999, 0, &why), OMNI_JWT_OK);
    CHECK_EQ_INT(
        claims("{\"sub\":\"a\",\"exp\":-1}", 0, 0, &why), OMNI_JWT_EXPIRED);
    CHECK_EQ_INT(claims("{\"sub\":\"a\"}", 4102444800, 0, &why), OMNI_JWT_OK);
}

static void test_nbf_and_iat_boundaries_with_and_without_leeway(void)
{
    const char *nbf = "{\"sub\":\"a\",\"nbf\":1000}";
    const char *iat = "{\"sub\":\"a\",\"iat\":1000}";
    const char *why;

    CHECK_EQ_INT(claims(nbf, 1000, 0, &why), OMNI_JWT_OK);
    CHECK_EQ_INT(claims(nbf, 999, 0, &why), OMNI_JWT_NOT_YET_VALID);
    CHECK_STR_EQ(why, "token not yet valid (nbf)");
    CHECK_EQ_INT(claims(nbf, 995, 5, &why), OMNI_JWT_OK);
    CHECK_EQ_INT(claims(nbf, 994, 5, &why), OMNI_JWT_NOT_YET_VALID);

    CHECK_EQ_INT(claims(iat, 1000, 0, &why), OMNI_JWT_OK);
    CHECK_EQ_INT(claims(iat, 999, 0, &why), OMNI_JWT_NOT_YET_VALID);
    CHECK_STR_EQ(why, "token issued in the future (iat)");
    CHECK_EQ_INT(claims(iat, 999, 1, &why), OMNI_JWT_OK);
    CHECK_EQ_INT(claims(iat, 998, 1, &why), OMNI_JWT_NOT_YET_VALID);
}

static omni_jwt_status_t iss_aud(const char *payload, const char **iss,
    size_t niss, const char **aud, size_t naud, const char **why)
{
    omni_jwt_t jwt;
    omni_jwt_status_t rc;

    rc = parse(&jwt, unsigned_token(payload), why);
    if (rc == OMNI_JWT_OK)
        rc = omni_jwt_check_claims(&jwt, 0, 0, iss, niss, aud, naud, why);
    omni_jwt_free(&jwt);
    return rc;
}

static void test_issuer_must_be_one_of_the_configured(void)
{
    const char *iss[] = {"https://a.example", "https://b.example"};
    const char *why;

    CHECK_EQ_INT(iss_aud("{\"sub\":\"u\",\"iss\":\"https://b.example\"}", iss,
                     2, NULL, 0, &why),
        OMNI_JWT_OK);
    CHECK_EQ_INT(iss_aud("{\"sub\":\"u\",\"iss\":\"https://c.example\"}", iss,
                     2, NULL, 0, &why),
        OMNI_JWT_WRONG_ISSUER);
    CHECK_STR_EQ(why, "issuer not accepted");
    CHECK_EQ_INT(iss_aud("{\"sub\":\"u\",\"iss\":\"https://a.example/\"}", iss,
                     2, NULL, 0, &why),
        OMNI_JWT_WRONG_ISSUER);
    CHECK_EQ_INT(iss_aud("{\"sub\":\"u\"}", iss, 2, NULL, 0, &why),
        OMNI_JWT_WRONG_ISSUER);
    CHECK_STR_EQ(why, "iss claim missing");
    CHECK_EQ_INT(iss_aud("{\"sub\":\"u\",\"iss\":[\"https://a.example\"]}", iss,
                     2, NULL, 0, &why),
        OMNI_JWT_WRONG_ISSUER);
    /* not configured: not checked */
    CHECK_EQ_INT(iss_aud("{\"sub\":\"u\",\"iss\":7}", NULL, 0, NULL, 0, &why),
        OMNI_JWT_OK);
}

static void test_audience_string_or_array_must_match_one(void)
{
    const char *aud[] = {"omni", "omni-admin"};
    const char *why;

    CHECK_EQ_INT(
        iss_aud("{\"sub\":\"u\",\"aud\":\"omni\"}", NULL, 0, aud, 2, &why),
        OMNI_JWT_OK);
    CHECK_EQ_INT(iss_aud("{\"sub\":\"u\",\"aud\":[\"x\",7,\"omni-admin\"]}",
                     NULL, 0, aud, 2, &why),
        OMNI_JWT_OK);
    CHECK_EQ_INT(
        iss_aud("{\"sub\":\"u\",\"aud\":\"other\"}", NULL, 0, aud, 2, &why),
        OMNI_JWT_WRONG_AUDIENCE);
    CHECK_STR_EQ(why, "audience not accepted");
    CHECK_EQ_INT(
        iss_aud("{\"sub\":\"u\",\"aud\":[\"x\",\"y\"]}", NULL, 0, aud, 2, &why),
        OMNI_JWT_WRONG_AUDIENCE);
    CHECK_EQ_INT(iss_aud("{\"sub\":\"u\",\"aud\":[]}", NULL, 0, aud, 2, &why),
        OMNI_JWT_WRONG_AUDIENCE);
    CHECK_EQ_INT(iss_aud("{\"sub\":\"u\"}", NULL, 0, aud, 2, &why),
        OMNI_JWT_WRONG_AUDIENCE);
    CHECK_STR_EQ(why, "aud claim missing");
    CHECK_EQ_INT(
        iss_aud("{\"sub\":\"u\",\"aud\":{\"omni\":1}}", NULL, 0, aud, 2, &why),
        OMNI_JWT_WRONG_AUDIENCE);
    CHECK_EQ_INT(
        iss_aud("{\"sub\":\"u\",\"aud\":\"x\"}", NULL, 0, NULL, 0, &why),
        OMNI_JWT_OK);
}

static void test_sub_must_be_a_non_empty_string(void)
{
    const char *why;

    CHECK_EQ_INT(
        claims("{\"exp\":4102444800}", 0, 0, &why), OMNI_JWT_MALFORMED);
    CHECK_STR_EQ(why, "sub claim missing");
    CHECK_EQ_INT(claims("{\"sub\":\"\"}", 0, 0, &why), OMNI_JWT_MALFORMED);
    CHECK_STR_EQ(why, "sub claim missing");
    CHECK_EQ_INT(claims("{\"sub\":42}", 0, 0, &why), OMNI_JWT_MALFORMED);
    CHECK_STR_EQ(why, "sub claim missing");
    CHECK_EQ_INT(claims("{\"sub\":null}", 0, 0, &why), OMNI_JWT_MALFORMED);
    CHECK_EQ_INT(claims("{\"sub\":\"a\"}", 0, 0, &why), OMNI_JWT_OK);
}

static void test_pyjwt_token_passes_every_check(void)
{
    const char *iss[] = {"https://issuer.example"};
    const char *aud[] = {"omni"};
    omni_jwt_key_t key;
    omni_jwt_t jwt;
    const char *why;

    CHECK(load(&key, "ed25519.pem", NULL, "ed") == 0);
    CHECK_EQ_INT(parse(&jwt, fx_eddsa, &why), OMNI_JWT_OK);
    CHECK_EQ_INT(omni_jwt_verify(&jwt, &key, 1, &why), OMNI_JWT_OK);
    CHECK_EQ_INT(
        omni_jwt_check_claims(&jwt, 1750000000, 60, iss, 1, aud, 1, &why),
        OMNI_JWT_OK);
    CHECK_EQ_INT(
        omni_jwt_check_claims(&jwt, 4102444800, 0, iss, 1, aud, 1, &why),
        OMNI_JWT_EXPIRED);
    CHECK_EQ_INT(
        omni_jwt_check_claims(&jwt, 1699999999, 0, iss, 1, aud, 1, &why),
        OMNI_JWT_NOT_YET_VALID);
    omni_jwt_free(&jwt);
    omni_jwt_key_free(&key);
}

/* ---- claim() ------------------------------------------------------------ */

static const char *claim_payload =
    "{\"sub\":\"alice\",\"n\":1.50e3,\"i\":-7,\"t\":true,\"f\":false,"
    "\"z\":null,\"o\":{\"k\":\"v\"},\"roles\":[\"admin\",\"user\"],"
    "\"mixed\":[\"a\",2,true],\"empty\":[],\"nested\":[[\"a\"]],"
    "\"objs\":[{\"a\":1}],\"nulls\":[null],"
    "\"realm_access\":{\"roles\":[\"r1\",\"r2\"],\"deep\":{\"x\":\"y\"}},"
    "\"https://omni.example/role\":\"ns\",\"crlf\":\"a\\r\\nX-Evil: 1\","
    "\"u\":\"\\u00e9\"}";

static int claim_is(const char *path, const char *want)
{
    omni_jwt_t jwt;
    char buf[256];
    int n;

    if (parse(&jwt, unsigned_token(claim_payload), NULL) != OMNI_JWT_OK)
        return 0;
    memset(buf, 'x', sizeof(buf));
    n = omni_jwt_claim(&jwt, path, buf, sizeof(buf));
    omni_jwt_free(&jwt);
    if (want == NULL)
        return n == -1 && buf[0] == '\0';
    if (n != (int)strlen(want) || strcmp(buf, want) != 0) {
        fprintf(stderr, "    %s -> %d \"%s\"\n", path, n, n >= 0 ? buf : "");
        return 0;
    }
    return 1;
}

static void test_claim_renders_scalars_as_text(void)
{
    CHECK(claim_is("sub", "alice"));
    CHECK(claim_is("n", "1.50e3"));
    CHECK(claim_is("i", "-7"));
    CHECK(claim_is("t", "true"));
    CHECK(claim_is("f", "false"));
    CHECK(claim_is("u", "\xc3\xa9"));
}

static void test_claim_joins_arrays_of_scalars(void)
{
    CHECK(claim_is("roles", "admin,user"));
    CHECK(claim_is("mixed", "a,2,true"));
    CHECK(claim_is("empty", ""));
    CHECK(claim_is("nested", NULL));
    CHECK(claim_is("objs", NULL));
    CHECK(claim_is("nulls", NULL));
}

static void test_claim_walks_dotted_paths(void)
{
    CHECK(claim_is("realm_access.roles", "r1,r2"));
    CHECK(claim_is("realm_access.deep.x", "y"));
    CHECK(claim_is("o.k", "v"));
    CHECK(claim_is("https://omni.example/role", "ns"));
    CHECK(claim_is("realm_access.missing", NULL));
    CHECK(claim_is("sub.x", NULL));
    CHECK(claim_is("roles.0", NULL));
    CHECK(claim_is("realm_access.", NULL));
    CHECK(claim_is(".sub", NULL));
    CHECK(claim_is("realm_access..roles", NULL));
    CHECK(claim_is("", NULL));
}

static void test_claim_is_absent_for_null_object_missing_and_unsafe(void)
{
    CHECK(claim_is("missing", NULL));
    CHECK(claim_is("z", NULL));
    CHECK(claim_is("o", NULL));
    CHECK(claim_is("realm_access", NULL));
    CHECK(claim_is("crlf", NULL));
}

static void test_claim_that_does_not_fit_is_absent(void)
{
    omni_jwt_t jwt;
    char buf[16];

    CHECK_EQ_INT(parse(&jwt, unsigned_token(claim_payload), NULL), OMNI_JWT_OK);
    CHECK_EQ_INT(omni_jwt_claim(&jwt, "sub", buf, 6), 5);
    CHECK_STR_EQ(buf, "alice");
    CHECK_EQ_INT(omni_jwt_claim(&jwt, "sub", buf, 5), -1);
    CHECK_STR_EQ(buf, "");
    CHECK_EQ_INT(omni_jwt_claim(&jwt, "roles", buf, 11), 10);
    CHECK_EQ_INT(omni_jwt_claim(&jwt, "roles", buf, 10), -1);
    CHECK_EQ_INT(omni_jwt_claim(&jwt, "sub", buf, 0), -1);
    CHECK_EQ_INT(omni_jwt_claim(&jwt, "empty", buf, 1), 0);
    omni_jwt_free(&jwt);
}

static void test_hs256_token_made_here_verifies(void)
{
    omni_jwt_key_t key;
    const char *why;

    /* the helper the other tests trust for crafted signed tokens */
    CHECK(load(&key, "hs.key", NULL, "hs") == 0);
    CHECK_EQ_INT(verify_with(hs256_token("{\"alg\":\"HS256\",\"kid\":\"hs\"}",
                                 "{\"sub\":\"a\"}"),
                     &key, 1, &why),
        OMNI_JWT_OK);
    omni_jwt_key_free(&key);
}

UNIT_MAIN(UNIT_TEST(test_base64url_decodes_rfc4648_vectors_unpadded),
    UNIT_TEST(test_base64url_refuses_padding_bad_chars_and_lengths),
    UNIT_TEST(test_base64url_refuses_nonzero_trailing_bits),
    UNIT_TEST(test_parse_reads_alg_kid_times_and_signing_input),
    UNIT_TEST(test_alg_names_round_trip_and_none_is_unknown),
    UNIT_TEST(test_wrong_segment_counts_are_malformed),
    UNIT_TEST(test_empty_signature_is_malformed),
    UNIT_TEST(test_alg_none_is_rejected_with_or_without_signature),
    UNIT_TEST(test_bad_base64url_in_any_segment_is_malformed),
    UNIT_TEST(test_header_and_payload_must_be_json_objects),
    UNIT_TEST(test_json_ambiguities_are_malformed),
    UNIT_TEST(test_header_crit_typ_and_kid_rules),
    UNIT_TEST(test_time_claims_must_be_finite_numbers),
    UNIT_TEST(test_token_over_8k_is_malformed_and_8k_parses),
    UNIT_TEST(test_failed_parse_cannot_be_verified),
    UNIT_TEST(test_every_algorithm_verifies_with_its_pem_key),
    UNIT_TEST(test_every_algorithm_verifies_with_the_jwks),
    UNIT_TEST(test_jwks_parses_from_memory),
    UNIT_TEST(test_tampered_header_payload_or_signature_fails),
    UNIT_TEST(test_reused_verification_contexts_stay_exact),
    UNIT_TEST(test_signature_of_the_wrong_length_fails),
    UNIT_TEST(test_token_signed_by_another_key_fails),
    UNIT_TEST(test_kid_selects_keys),
    UNIT_TEST(test_algorithm_not_bound_to_the_key_fails),
    UNIT_TEST(test_hs256_signed_with_rsa_public_key_text_fails),
    UNIT_TEST(test_a_key_bound_by_hand_to_another_type_is_not_used),
    UNIT_TEST(test_secret_is_file_bytes_without_one_trailing_newline),
    UNIT_TEST(test_key_load_refuses_unreadable_and_empty_files),
    UNIT_TEST(test_key_load_refuses_unknown_algorithms),
    UNIT_TEST(test_key_load_refuses_algorithms_the_key_cannot_do),
    UNIT_TEST(test_key_load_refuses_weak_and_unsupported_keys),
    UNIT_TEST(test_key_load_refuses_private_keys),
    UNIT_TEST(test_key_load_refuses_bad_pem),
    UNIT_TEST(test_key_load_refuses_public_keys_as_hmac_secrets),
    UNIT_TEST(test_key_load_refuses_long_kid_and_takes_kid),
    UNIT_TEST(test_jwks_refuses_bad_sets),
    UNIT_TEST(test_jwks_skips_encryption_keys),
    UNIT_TEST(test_exp_boundary_with_and_without_leeway),
    UNIT_TEST(test_nbf_and_iat_boundaries_with_and_without_leeway),
    UNIT_TEST(test_issuer_must_be_one_of_the_configured),
    UNIT_TEST(test_audience_string_or_array_must_match_one),
    UNIT_TEST(test_sub_must_be_a_non_empty_string),
    UNIT_TEST(test_pyjwt_token_passes_every_check),
    UNIT_TEST(test_claim_renders_scalars_as_text),
    UNIT_TEST(test_claim_joins_arrays_of_scalars),
    UNIT_TEST(test_claim_walks_dotted_paths),
    UNIT_TEST(test_claim_is_absent_for_null_object_missing_and_unsafe),
    UNIT_TEST(test_claim_that_does_not_fit_is_absent),
    UNIT_TEST(test_hs256_token_made_here_verifies))
