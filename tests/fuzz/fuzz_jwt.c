/* fuzz_jwt.c: libFuzzer target for the JWT code (ngx_omni_module/omni_jwt.c).
 *
 * An input is either a raw compact token or, when it starts with '{' or '[',
 * "<header JSON>\n<payload JSON>", which the target encodes and signs with
 * HS256 under the fixture secret, so that mutations reach the JSON and claim
 * logic behind base64url and the signature.
 *
 * Properties checked on every input:
 * - parse, verify, check_claims and claim never crash or leak; a failure
 *   always gives a one-line reason;
 * - a parsed token's signing input is the input up to its second dot, its
 *   alg is known, its kid at most 127 bytes;
 * - JSON mode: verify succeeds exactly when the header says HS256 and names
 *   no kid or "hs" (no other algorithm may accept an HMAC);
 * - claim() output is NUL-terminated, as long as it says, and free of
 *   control characters;
 * - base64url: whatever the decoder accepts is the canonical encoding of
 *   what it decoded (re-encoding gives the input back). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/hmac.h>

#include "omni_jwt.h"

#define FIXTURES "tests/unit/fixtures/jwt/"

static omni_jwt_key_t keys[16];
static size_t nkeys;
static const omni_jwt_key_t *hs_key;

static void load_key(const char *file, const char *algs, const char *kid)
{
    char err[512];

    if (omni_jwt_key_load(&keys[nkeys], file, algs, kid, err, sizeof(err))
        != 0) {
        fprintf(stderr, "fuzz_jwt: %s\n", err);
        abort();
    }
    nkeys++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    omni_jwt_key_t *set;
    char err[512];
    size_t n, i;

    load_key(FIXTURES "rsa.pem", "RS256,RS384,RS512,PS256,PS384,PS512", "rsa1");
    load_key(FIXTURES "ec256.pem", NULL, "ec256");
    load_key(FIXTURES "ec521.pem", NULL, "ec521");
    load_key(FIXTURES "ed25519.pem", NULL, "ed");
    hs_key = &keys[nkeys];
    load_key(FIXTURES "hs.key", "HS256", "hs");
    if (omni_jwt_jwks_load(&set, &n, FIXTURES "jwks.json", err, sizeof(err))
        != 0) {
        fprintf(stderr, "fuzz_jwt: %s\n", err);
        abort();
    }
    for (i = 0; i < n && nkeys < sizeof(keys) / sizeof(keys[0]); i++)
        keys[nkeys++] = set[i];
    while (i < n)
        omni_jwt_key_free(&set[i++]);
    free(set);
    return 0;
}

static void b64url(char *out, const unsigned char *p, size_t len)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
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

static void check_base64url(const uint8_t *data, size_t size)
{
    unsigned char *out = malloc(size / 4 * 3 + 3);
    char *again;
    size_t n;

    if (out == NULL)
        abort();
    if (omni_jwt_base64url_decode(out, &n, (const char *)data, size) == 0) {
        again = malloc(size + 4);
        if (again == NULL)
            abort();
        b64url(again, out, n);
        if (strlen(again) != size || memcmp(again, data, size) != 0)
            abort();
        free(again);
    }
    free(out);
}

static void check_why(const char *why)
{
    if (why == NULL || why[0] == '\0' || strchr(why, '\n') != NULL)
        abort();
}

static void check_claim(const omni_jwt_t *jwt, const char *path)
{
    char buf[48];
    size_t i;
    int n;

    memset(buf, 'x', sizeof(buf));
    n = omni_jwt_claim(jwt, path, buf, sizeof(buf));
    if (n < 0) {
        if (buf[0] != '\0')
            abort();
        return;
    }
    if ((size_t)n >= sizeof(buf) || strlen(buf) != (size_t)n)
        abort();
    for (i = 0; i < (size_t)n; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
            abort();
}

/* "header\npayload" to a token signed with HS256 under hs.key; NULL when
 * the input is not of that form. */
static char *json_mode_token(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t hlen, plen, n;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    const omni_jwt_key_t *hs = hs_key;
    char *tok;

    if (nl == NULL)
        return NULL;
    hlen = (size_t)(nl - data);
    plen = size - hlen - 1;
    tok = malloc((hlen + plen) / 3 * 4 + 128);
    if (tok == NULL)
        abort();
    b64url(tok, data, hlen);
    n = strlen(tok);
    tok[n++] = '.';
    b64url(tok + n, nl + 1, plen);
    n = strlen(tok);
    if (HMAC(EVP_sha256(), hs->secret, (int)hs->secret_len,
            (unsigned char *)tok, n, mac, &maclen)
        == NULL)
        abort();
    tok[n++] = '.';
    b64url(tok + n, mac, maclen);
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *iss[] = {"https://issuer.example"};
    static const char *aud[] = {"omni", "omni-admin"};
    static const char *paths[] = {"sub", "role", "realm_access.roles", "aud",
        "a.b.c", "https://omni.example/roles"};
    const char *token = (const char *)data, *why, *dot;
    char *signed_tok = NULL;
    omni_jwt_status_t rc, vrc;
    size_t len = size, i;
    int hs_ok;
    omni_jwt_t jwt;

    check_base64url(data, size);

    if (size > 0 && (data[0] == '{' || data[0] == '[')) {
        signed_tok = json_mode_token(data, size);
        if (signed_tok != NULL) {
            token = signed_tok;
            len = strlen(signed_tok);
        }
    }

    why = NULL;
    rc = omni_jwt_parse(&jwt, token, len, &why);
    if (rc != OMNI_JWT_OK) {
        if (rc != OMNI_JWT_MALFORMED)
            abort();
        check_why(why);
        if (omni_jwt_verify(&jwt, keys, nkeys, &why) != OMNI_JWT_MALFORMED)
            abort();
        omni_jwt_free(&jwt);
        free(signed_tok);
        return 0;
    }

    if (why != NULL || (unsigned)jwt.alg >= OMNI_JWT_NALGS || len == 0)
        abort();
    if (jwt.kid != NULL && strlen(jwt.kid) > 127)
        abort();
    dot = memchr(token, '.', len);
    dot = memchr(dot + 1, '.', len - (size_t)(dot + 1 - token));
    if (jwt.signing_input != (const unsigned char *)token
        || jwt.signing_input_len != (size_t)(dot - token))
        abort();

    vrc = omni_jwt_verify(&jwt, keys, nkeys, &why);
    if (vrc != OMNI_JWT_OK)
        check_why(why);
    if (signed_tok != NULL) {
        hs_ok = jwt.alg == OMNI_JWT_HS256
                && (jwt.kid == NULL || strcmp(jwt.kid, "hs") == 0);
        if ((vrc == OMNI_JWT_OK) != hs_ok)
            abort();
    }

    rc = omni_jwt_check_claims(&jwt, 1750000000, 60, iss, 1, aud, 2, &why);
    if (rc != OMNI_JWT_OK)
        check_why(why);
    rc = omni_jwt_check_claims(&jwt, 0, 0, NULL, 0, NULL, 0, &why);
    if (rc != OMNI_JWT_OK)
        check_why(why);

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        check_claim(&jwt, paths[i]);

    omni_jwt_free(&jwt);
    free(signed_tok);
    return 0;
}
