/* test_signer.c: signing-key loading, kid, JWKS and JWS signatures
 * (signer.c), each signature checked with OpenSSL's own verifier. Keys are
 * made here with OpenSSL and written to temporary PEM files. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lib/arena.h"
#include "lib/json.h"
#include "services/auth/signer.h"
#include "unit.h"

static char err[512];

/* How a key is written to its PEM file. */
typedef enum {
    PEM_PKCS8,       /* -----BEGIN PRIVATE KEY----- */
    PEM_TRADITIONAL, /* -----BEGIN RSA/EC PRIVATE KEY----- */
    PEM_PUBLIC,      /* -----BEGIN PUBLIC KEY----- */
    PEM_ENCRYPTED    /* -----BEGIN ENCRYPTED PRIVATE KEY----- */
} pem_form_t;

static EVP_PKEY *rsa_key(unsigned bits)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

static EVP_PKEY *ec_key(const char *curve)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

static EVP_PKEY *raw_key(const char *type)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, type);
}

/* A fresh temporary file name in path[64]; the file exists, empty. */
static int tmp_path(char *path)
{
    int fd;

    strcpy(path, "/tmp/omni_signer_test_XXXXXX");
    fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    int ok;

    if (f == NULL)
        return -1;
    ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int write_pem(const char *path, EVP_PKEY *k, pem_form_t form)
{
    BIO *bio = BIO_new_file(path, "w");
    int ok = 0;

    if (bio == NULL)
        return -1;
    switch (form) {
    case PEM_PKCS8:
        ok = PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL);
        break;
    case PEM_TRADITIONAL:
        ok = PEM_write_bio_PrivateKey_traditional(
            bio, k, NULL, NULL, 0, NULL, NULL);
        break;
    case PEM_PUBLIC:
        ok = PEM_write_bio_PUBKEY(bio, k);
        break;
    case PEM_ENCRYPTED:
        ok = PEM_write_bio_PrivateKey(bio, k, EVP_aes_256_cbc(),
            (unsigned char *)"correct horse", 13, NULL, NULL);
        break;
    }
    BIO_free(bio);
    return ok == 1 ? 0 : -1;
}

/* Loads k written as form; the file is removed again. */
static omni_signer_t *load_as(EVP_PKEY *k, pem_form_t form, const char *kid)
{
    char path[64];
    omni_signer_t *s;

    err[0] = '\0';
    if (k == NULL || tmp_path(path) != 0)
        return NULL;
    s = write_pem(path, k, form) == 0
            ? omni_signer_load(path, kid, err, sizeof(err))
            : NULL;
    unlink(path);
    return s;
}

static omni_signer_t *load(EVP_PKEY *k, const char *kid)
{
    return load_as(k, PEM_PKCS8, kid);
}

/* The public half of k, as a verifier would have it. */
static EVP_PKEY *public_of(EVP_PKEY *k)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    int len = i2d_PUBKEY(k, &der);
    EVP_PKEY *pub;

    if (len <= 0)
        return NULL;
    p = der;
    pub = d2i_PUBKEY(NULL, &p, len);
    OPENSSL_free(der);
    return pub;
}

/* --- base64url, done independently of encode.c ---------------------------- */

static void ref_b64url(const unsigned char *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n), i;

    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Strict unpadded base64url: s[0..n) into out (n * 3 / 4 bytes); returns
 * the length, or -1 on a foreign character, an impossible length or
 * non-zero spare bits (a non-canonical form). */
static long b64url_decode(const char *s, size_t n, unsigned char *out)
{
    unsigned acc = 0;
    int bits = 0, v;
    size_t i;
    long o = 0;

    if (n % 4 == 1)
        return -1;
    for (i = 0; i < n; i++) {
        v = b64url_value(s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return o;
}

/* base64url(SHA-256(json)), the RFC 7638 thumbprint of canonical JSON. */
static void thumbprint(const char *json, char out[44])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    EVP_Digest(json, strlen(json), md, &mdlen, EVP_sha256(), NULL);
    ref_b64url(md, 32, out);
}

/* The public JWK members of k, base64url, made straight from OpenSSL. */
typedef struct {
    const char *kty;
    char a[1400]; /* RSA n, EC/OKP x */
    char b[1400]; /* RSA e, EC y */
} pub_members_t;

static int pub_members(EVP_PKEY *k, pub_members_t *m)
{
    unsigned char buf[1024];
    BIGNUM *n = NULL, *e = NULL;
    size_t len = 0;
    int ok = 0;

    m->a[0] = m->b[0] = '\0';
    if (EVP_PKEY_is_a(k, "RSA")) {
        m->kty = "RSA";
        if (EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n) == 1
            && EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e) == 1) {
            ref_b64url(buf, (size_t)BN_bn2bin(n, buf), m->a);
            ref_b64url(buf, (size_t)BN_bn2bin(e, buf), m->b);
            ok = 1;
        }
        BN_free(n);
        BN_free(e);
    } else if (EVP_PKEY_is_a(k, "EC")) {
        /* the uncompressed point 04 || X || Y, 32 bytes each on P-256 */
        m->kty = "EC";
        if (EVP_PKEY_get_octet_string_param(
                k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf, sizeof(buf), &len)
                == 1
            && len == 65 && buf[0] == 4) {
            ref_b64url(buf + 1, 32, m->a);
            ref_b64url(buf + 33, 32, m->b);
            ok = 1;
        }
    } else {
        m->kty = "OKP";
        len = sizeof(buf);
        if (EVP_PKEY_get_raw_public_key(k, buf, &len) == 1 && len == 32) {
            ref_b64url(buf, 32, m->a);
            ok = 1;
        }
    }
    return ok ? 0 : -1;
}

/* --- reading a JWKS ------------------------------------------------------- */

static const char *member(const omni_json_t *obj, const char *key)
{
    return omni_json_string(omni_json_get(obj, key));
}

/* 1 when obj has the string member key equal to want */
static int member_is(const omni_json_t *obj, const char *key, const char *want)
{
    const char *v = member(obj, key);

    return v != NULL && strcmp(v, want) == 0;
}

/* The one key of a JWKS, or NULL when the set is not {"keys":[{...}]}. */
static const omni_json_t *jwks_key(omni_arena_t *a, const char *jwks)
{
    static char why[256];
    const omni_json_t *root, *keys;

    root = omni_json_parse(a, jwks, strlen(jwks), NULL, why, sizeof(why));
    if (root == NULL) {
        fprintf(stderr, "    JWKS does not parse: %s\n", why);
        return NULL;
    }
    keys = omni_json_get(root, "keys");
    if (root->type != OMNI_JSON_OBJECT || root->u.obj.len != 1 || keys == NULL
        || keys->type != OMNI_JSON_ARRAY || keys->u.arr.len != 1
        || keys->u.arr.items[0]->type != OMNI_JSON_OBJECT)
        return NULL;
    return keys->u.arr.items[0];
}

/* The RFC 7638 input made from a JWK's required members, in lexicographic
 * order; NULL when one is missing. */
static const char *canonical_jwk(const omni_json_t *jwk, char *out, size_t n)
{
    const char *kty = member(jwk, "kty"), *crv = member(jwk, "crv");
    const char *x = member(jwk, "x"), *y = member(jwk, "y");
    const char *rn = member(jwk, "n"), *re = member(jwk, "e");

    if (kty && strcmp(kty, "RSA") == 0 && rn && re)
        snprintf(out, n, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", re, rn);
    else if (kty && strcmp(kty, "EC") == 0 && crv && x && y)
        snprintf(out, n,
            "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", crv, x,
            y);
    else if (kty && strcmp(kty, "OKP") == 0 && crv && x)
        snprintf(
            out, n, "{\"crv\":\"%s\",\"kty\":\"OKP\",\"x\":\"%s\"}", crv, x);
    else
        return NULL;
    return out;
}

/* --- JWS verification ----------------------------------------------------- */

static int verify_sig(EVP_PKEY *pub, const char *alg, const char *input,
    size_t len, const unsigned char *sig, size_t siglen)
{
    unsigned char der[80], *p = der;
    const unsigned char *vsig = sig;
    size_t vlen = siglen;
    const EVP_MD *md = strcmp(alg, "EdDSA") == 0 ? NULL : EVP_sha256();
    EVP_MD_CTX *ctx;
    ECDSA_SIG *es;
    int ok = 0;

    if (strcmp(alg, "ES256") == 0) {
        /* JOSE r || s back to the DER that OpenSSL verifies */
        if (siglen != 64 || (es = ECDSA_SIG_new()) == NULL)
            return 0;
        if (ECDSA_SIG_set0(
                es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL))
            != 1) {
            ECDSA_SIG_free(es);
            return 0;
        }
        vlen = (size_t)i2d_ECDSA_SIG(es, &p);
        ECDSA_SIG_free(es);
        vsig = der;
    }
    ctx = EVP_MD_CTX_new();
    if (ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, md, NULL, pub) == 1)
        ok =
            EVP_DigestVerify(ctx, vsig, vlen, (const unsigned char *)input, len)
            == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* NULL when jws is a compact JWS of payload with the header
 * {"alg":alg,"typ":"JWT","kid":kid} and a signature pub verifies;
 * otherwise what is wrong. */
static const char *jws_problem(const char *jws, EVP_PKEY *pub, const char *alg,
    const char *kid, const char *payload)
{
    static char why[256];
    const char *dot1, *dot2;
    unsigned char *buf;
    const omni_json_t *h;
    omni_arena_t a;
    long n;
    size_t len;

    if (jws == NULL)
        return "no token";
    len = strlen(jws);
    dot1 = strchr(jws, '.');
    dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (dot2 == NULL || strchr(dot2 + 1, '.') != NULL)
        return "not three parts";
    buf = malloc(len);
    if (buf == NULL)
        return "out of memory";
    omni_arena_init(&a, 0);
    why[0] = '\0';

    n = b64url_decode(jws, (size_t)(dot1 - jws), buf);
    h = n < 0 ? NULL
              : omni_json_parse(
                  &a, (char *)buf, (size_t)n, NULL, why, sizeof(why));
    if (h == NULL || h->type != OMNI_JSON_OBJECT || h->u.obj.len != 3
        || strcmp(h->u.obj.keys[0], "alg") != 0
        || strcmp(h->u.obj.keys[1], "typ") != 0
        || strcmp(h->u.obj.keys[2], "kid") != 0 || !member_is(h, "alg", alg)
        || !member_is(h, "typ", "JWT") || !member_is(h, "kid", kid)) {
        snprintf(why, sizeof(why), "header %.*s is not as expected",
            (int)(dot1 - jws), jws);
        goto done;
    }
    n = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), buf);
    if (n < 0 || (size_t)n != strlen(payload)
        || memcmp(buf, payload, (size_t)n) != 0) {
        snprintf(why, sizeof(why), "payload does not decode to the claims");
        goto done;
    }
    n = b64url_decode(dot2 + 1, strlen(dot2 + 1), buf);
    if (n <= 0) {
        snprintf(why, sizeof(why), "signature is not canonical base64url");
        goto done;
    }
    if (!verify_sig(pub, alg, jws, (size_t)(dot2 - jws), buf, (size_t)n)) {
        snprintf(why, sizeof(why), "signature does not verify");
        goto done;
    }
    why[0] = '\0';

done:
    omni_arena_free(&a);
    free(buf);
    return why[0] ? why : NULL;
}

#define CHECK_JWS(jws, pub, alg, kid, payload)                                 \
    do {                                                                       \
        const char *why_ = jws_problem(jws, pub, alg, kid, payload);           \
        if (why_ != NULL)                                                      \
            fprintf(stderr, "    %s\n", why_);                                 \
        CHECK(why_ == NULL);                                                   \
    } while (0)

/* Signs claims with s and checks the token against k's public half. */
static const char *sign_problem(
    omni_signer_t *s, EVP_PKEY *k, const char *claims)
{
    static char why[256];
    EVP_PKEY *pub = public_of(k);
    char *jws = omni_signer_sign(s, claims, strlen(claims));
    const char *p = pub ? jws_problem(jws, pub, omni_signer_alg(s),
                        omni_signer_kid(s), claims)
                        : "no public key";

    snprintf(why, sizeof(why), "%s", p ? p : "");
    free(jws);
    EVP_PKEY_free(pub);
    return why[0] ? why : NULL;
}

#define CHECK_SIGNS(s, k, claims)                                              \
    do {                                                                       \
        const char *why_ = sign_problem(s, k, claims);                         \
        if (why_ != NULL)                                                      \
            fprintf(stderr, "    %s\n", why_);                                 \
        CHECK(why_ == NULL);                                                   \
    } while (0)

#define CLAIMS                                                                 \
    "{\"iss\":\"omni\",\"aud\":\"omni-api\",\"sub\":"                          \
    "\"0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9d\",\"role\":\"user\","              \
    "\"preferred_username\":\"\xc3\xa9lodie\",\"iat\":1764000000,"             \
    "\"exp\":1764000900}"

/* --- loading -------------------------------------------------------------- */

static void test_rsa_2048_key_signs_rs256(void)
{
    EVP_PKEY *k = rsa_key(2048);
    omni_signer_t *s = load(k, NULL);

    if (s == NULL)
        fprintf(stderr, "    %s\n", err);
    CHECK(s != NULL);
    CHECK_STR_EQ(omni_signer_alg(s), "RS256");
    CHECK_SIGNS(s, k, CLAIMS);
    omni_signer_free(s);
    EVP_PKEY_free(k);
}

static void test_rsa_3072_key_signs_rs256(void)
{
    EVP_PKEY *k = rsa_key(3072);
    omni_signer_t *s = load(k, NULL);

    CHECK(s != NULL);
    CHECK_STR_EQ(omni_signer_alg(s), "RS256");
    CHECK_SIGNS(s, k, CLAIMS);
    omni_signer_free(s);
    EVP_PKEY_free(k);
}

static void test_ec_p256_key_signs_es256(void)
{
    EVP_PKEY *k = ec_key("P-256");
    omni_signer_t *s = load(k, NULL);

    if (s == NULL)
        fprintf(stderr, "    %s\n", err);
    CHECK(s != NULL);
    CHECK_STR_EQ(omni_signer_alg(s), "ES256");
    CHECK_SIGNS(s, k, CLAIMS);
    omni_signer_free(s);
    EVP_PKEY_free(k);
}

static void test_ed25519_key_signs_eddsa(void)
{
    EVP_PKEY *k = raw_key("ED25519");
    omni_signer_t *s = load(k, NULL);

    if (s == NULL)
        fprintf(stderr, "    %s\n", err);
    CHECK(s != NULL);
    CHECK_STR_EQ(omni_signer_alg(s), "EdDSA");
    CHECK_SIGNS(s, k, CLAIMS);
    omni_signer_free(s);
    EVP_PKEY_free(k);
}

static void test_traditional_pem_forms_load(void)
{
    /* BEGIN RSA PRIVATE KEY (PKCS#1) and BEGIN EC PRIVATE KEY (SEC 1) */
    EVP_PKEY *r = rsa_key(2048), *e = ec_key("P-256");
    omni_signer_t *rs = load_as(r, PEM_TRADITIONAL, NULL);
    omni_signer_t *es = load_as(e, PEM_TRADITIONAL, NULL);

    CHECK(rs != NULL);
    CHECK(es != NULL);
    CHECK_STR_EQ(omni_signer_alg(rs), "RS256");
    CHECK_STR_EQ(omni_signer_alg(es), "ES256");
    CHECK_SIGNS(rs, r, CLAIMS);
    CHECK_SIGNS(es, e, CLAIMS);
    omni_signer_free(rs);
    omni_signer_free(es);
    EVP_PKEY_free(r);
    EVP_PKEY_free(e);
}

static void test_openssl_ecparam_genkey_output_loads(void)
{
    /* `openssl ecparam -name prime256v1 -genkey` puts the curve's
     * parameters before the key */
    static const char params[] = "-----BEGIN EC PARAMETERS-----\n"
                                 "BggqhkjOPQMBBw==\n"
                                 "-----END EC PARAMETERS-----\n";
    EVP_PKEY *k = ec_key("P-256");
    char path[64], *pem = NULL;
    BIO *bio = BIO_new(BIO_s_mem());
    long len;
    omni_signer_t *s = NULL;
    FILE *f;

    CHECK(k != NULL && bio != NULL);
    CHECK(
        PEM_write_bio_PrivateKey_traditional(bio, k, NULL, NULL, 0, NULL, NULL)
        == 1);
    len = BIO_get_mem_data(bio, &pem);
    CHECK(tmp_path(path) == 0);
    f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(params, f);
    fwrite(pem, 1, (size_t)len, f);
    fclose(f);
    s = omni_signer_load(path, NULL, err, sizeof(err));
    unlink(path);
    BIO_free(bio);
    if (s == NULL)
        fprintf(stderr, "    %s\n", err);
    CHECK(s != NULL);
    CHECK_STR_EQ(omni_signer_alg(s), "ES256");
    CHECK_SIGNS(s, k, CLAIMS);
    omni_signer_free(s);
    EVP_PKEY_free(k);
}

/* err names path, fits one line and says something about why. */
static int names_file(const char *path, const char *why)
{
    return strstr(err, path) != NULL && strchr(err, '\n') == NULL
           && (why == NULL || strstr(err, why) != NULL);
}

/* Loads k as form and expects a refusal naming the file. */
static int refused(EVP_PKEY *k, pem_form_t form, const char *why)
{
    char path[64];
    omni_signer_t *s;
    int ok;

    if (k == NULL || tmp_path(path) != 0 || write_pem(path, k, form) != 0)
        return 0;
    err[0] = '\0';
    s = omni_signer_load(path, NULL, err, sizeof(err));
    ok = s == NULL && names_file(path, why);
    if (!ok)
        fprintf(stderr, "    err = \"%s\"\n", err);
    omni_signer_free(s);
    unlink(path);
    return ok;
}

static void test_rsa_1024_key_is_refused(void)
{
    EVP_PKEY *k = rsa_key(1024);

    CHECK(refused(k, PEM_PKCS8, "2048"));
    CHECK(refused(k, PEM_TRADITIONAL, "2048"));
    EVP_PKEY_free(k);
}

static void test_ec_keys_off_p256_are_refused(void)
{
    const char *curves[] = {"P-384", "P-521", "secp256k1"};
    size_t i;
    int bad = 0;
    EVP_PKEY *k;

    for (i = 0; i < sizeof(curves) / sizeof(curves[0]); i++) {
        k = ec_key(curves[i]);
        if (!refused(k, PEM_PKCS8, "P-256")) {
            fprintf(stderr, "    curve %s\n", curves[i]);
            bad++;
        }
        EVP_PKEY_free(k);
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_other_key_types_are_refused(void)
{
    /* X25519 has a 32-byte public key like Ed25519 but cannot sign */
    const char *types[] = {"ED448", "X25519", "X448"};
    size_t i;
    int bad = 0;
    EVP_PKEY *k;

    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        k = raw_key(types[i]);
        if (!refused(k, PEM_PKCS8, NULL)) {
            fprintf(stderr, "    key type %s\n", types[i]);
            bad++;
        }
        EVP_PKEY_free(k);
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_public_keys_are_refused(void)
{
    EVP_PKEY *r = rsa_key(2048), *e = ec_key("P-256"), *d = raw_key("ED25519");

    CHECK(refused(r, PEM_PUBLIC, NULL));
    CHECK(refused(e, PEM_PUBLIC, NULL));
    CHECK(refused(d, PEM_PUBLIC, NULL));
    EVP_PKEY_free(r);
    EVP_PKEY_free(e);
    EVP_PKEY_free(d);
}

static void test_encrypted_keys_are_refused_without_a_prompt(void)
{
    EVP_PKEY *r = rsa_key(2048), *e = ec_key("P-256"), *d = raw_key("ED25519");

    CHECK(refused(r, PEM_ENCRYPTED, NULL));
    CHECK(refused(e, PEM_ENCRYPTED, NULL));
    CHECK(refused(d, PEM_ENCRYPTED, NULL));
    EVP_PKEY_free(r);
    EVP_PKEY_free(e);
    EVP_PKEY_free(d);
}

static int text_refused(const char *text)
{
    char path[64];
    omni_signer_t *s;
    int ok;

    if (tmp_path(path) != 0 || write_text(path, text) != 0)
        return 0;
    err[0] = '\0';
    s = omni_signer_load(path, NULL, err, sizeof(err));
    ok = s == NULL && names_file(path, NULL);
    if (!ok)
        fprintf(stderr, "    err = \"%s\"\n", err);
    omni_signer_free(s);
    unlink(path);
    return ok;
}

static void test_garbage_and_empty_files_are_refused(void)
{
    CHECK(text_refused(""));
    CHECK(text_refused("hello\n"));
    CHECK(text_refused("-----BEGIN PRIVATE KEY-----\nAAAA\n"
                       "-----END PRIVATE KEY-----\n"));
    CHECK(text_refused("-----BEGIN CERTIFICATE-----\nMIIB\n"
                       "-----END CERTIFICATE-----\n"));
}

static void test_truncated_pem_is_refused(void)
{
    EVP_PKEY *k = ec_key("P-256");
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL, *half;
    long len;

    CHECK(k != NULL && bio != NULL);
    CHECK(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) == 1);
    len = BIO_get_mem_data(bio, &pem);
    half = strndup(pem, (size_t)len / 2);
    CHECK(half != NULL);
    CHECK(text_refused(half));
    free(half);
    BIO_free(bio);
    EVP_PKEY_free(k);
}

static void test_missing_file_is_refused_naming_it(void)
{
    const char *path = "/nonexistent/omni/jwt-signing-key.pem";
    omni_signer_t *s;

    err[0] = '\0';
    s = omni_signer_load(path, NULL, err, sizeof(err));
    CHECK(s == NULL);
    if (!names_file(path, "No such file"))
        fprintf(stderr, "    err = \"%s\"\n", err);
    CHECK(names_file(path, "No such file"));
}

static void test_free_of_null_is_harmless(void)
{
    omni_signer_free(NULL);
}

/* --- kid ------------------------------------------------------------------ */

static void test_thumbprint_helper_matches_rfc7638_example(void)
{
    /* RFC 7638 section 3.1: the example RSA key's required members */
    static const char json[] =
        "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nnd"
        "rQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebW"
        "KRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ"
        "5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5ha"
        "jrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ"
        "-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw\"}";
    char tp[44];

    thumbprint(json, tp);
    CHECK_STR_EQ(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

/* The default kid is the RFC 7638 thumbprint of the JWKS's own members,
 * and those members are k's public key. */
static void check_default_kid(EVP_PKEY *k)
{
    omni_signer_t *s = load(k, NULL);
    omni_arena_t a;
    const omni_json_t *jwk;
    pub_members_t m;
    char canon[4096], tp[44];

    CHECK(s != NULL);
    omni_arena_init(&a, 0);
    jwk = jwks_key(&a, omni_signer_jwks(s));
    CHECK(jwk != NULL);
    CHECK(canonical_jwk(jwk, canon, sizeof(canon)) != NULL);
    thumbprint(canon, tp);
    CHECK_STR_EQ(omni_signer_kid(s), tp);

    CHECK(pub_members(k, &m) == 0);
    CHECK_STR_EQ(member(jwk, "kty"), m.kty);
    if (strcmp(m.kty, "RSA") == 0) {
        CHECK_STR_EQ(member(jwk, "n"), m.a);
        CHECK_STR_EQ(member(jwk, "e"), m.b);
        CHECK_STR_EQ(member(jwk, "e"), "AQAB");
    } else if (strcmp(m.kty, "EC") == 0) {
        CHECK_STR_EQ(member(jwk, "crv"), "P-256");
        CHECK_STR_EQ(member(jwk, "x"), m.a);
        CHECK_STR_EQ(member(jwk, "y"), m.b);
    } else {
        CHECK_STR_EQ(member(jwk, "crv"), "Ed25519");
        CHECK_STR_EQ(member(jwk, "x"), m.a);
    }
    omni_arena_free(&a);
    omni_signer_free(s);
}

static void test_default_kid_is_the_rfc7638_thumbprint_rsa(void)
{
    EVP_PKEY *k = rsa_key(2048);

    check_default_kid(k);
    EVP_PKEY_free(k);
}

static void test_default_kid_is_the_rfc7638_thumbprint_ec(void)
{
    EVP_PKEY *k = ec_key("P-256");

    check_default_kid(k);
    EVP_PKEY_free(k);
}

static void test_default_kid_is_the_rfc7638_thumbprint_ed25519(void)
{
    EVP_PKEY *k = raw_key("ED25519");

    check_default_kid(k);
    EVP_PKEY_free(k);
}

/* RFC 7518 6.2.1.2: x and y are the full 32 bytes even when the
 * coordinate is small. About one key in 256 has a leading zero byte in
 * the coordinate at offset (1 for x, 33 for y) of the encoded point. */
static void check_leading_zero_coordinate(size_t offset, const char *name)
{
    unsigned char pt[65], c[48];
    size_t len = 0;
    EVP_PKEY *k = NULL;
    omni_signer_t *s;
    omni_arena_t a;
    const omni_json_t *jwk;
    int i;

    for (i = 0; i < 10000; i++) {
        EVP_PKEY_free(k);
        k = ec_key("P-256");
        CHECK(k != NULL);
        CHECK(EVP_PKEY_get_octet_string_param(
                  k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt), &len)
              == 1);
        if (pt[offset] == 0)
            break;
    }
    CHECK(i < 10000);
    s = load(k, NULL);
    CHECK(s != NULL);
    omni_arena_init(&a, 0);
    jwk = jwks_key(&a, omni_signer_jwks(s));
    CHECK(jwk != NULL);
    CHECK(member(jwk, name) != NULL);
    CHECK_EQ_INT(strlen(member(jwk, name)), 43);
    CHECK_EQ_INT(b64url_decode(member(jwk, name), 43, c), 32);
    CHECK(memcmp(c, pt + offset, 32) == 0);
    omni_arena_free(&a);
    omni_signer_free(s);
    EVP_PKEY_free(k);
}

static void test_ec_x_keeps_leading_zero_bytes(void)
{
    check_leading_zero_coordinate(1, "x");
}

static void test_ec_y_keeps_leading_zero_bytes(void)
{
    check_leading_zero_coordinate(33, "y");
}

static void test_default_kid_is_stable_and_differs_between_keys(void)
{
    EVP_PKEY *k1 = ec_key("P-256"), *k2 = ec_key("P-256");
    omni_signer_t *a = load(k1, NULL), *b = load_as(k1, PEM_TRADITIONAL, ""),
                  *c = load(k2, NULL);

    CHECK(a != NULL && b != NULL && c != NULL);
    CHECK_EQ_INT(strlen(omni_signer_kid(a)), 43);
    CHECK_STR_EQ(omni_signer_kid(a), omni_signer_kid(b));
    CHECK(strcmp(omni_signer_kid(a), omni_signer_kid(c)) != 0);
    omni_signer_free(a);
    omni_signer_free(b);
    omni_signer_free(c);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
}

static void test_explicit_kid_is_used_everywhere(void)
{
    EVP_PKEY *k = raw_key("ED25519");
    omni_signer_t *s = load(k, "2026-11/key_1.a~b:c");
    omni_arena_t a;
    const omni_json_t *jwk;

    CHECK(s != NULL);
    CHECK_STR_EQ(omni_signer_kid(s), "2026-11/key_1.a~b:c");
    omni_arena_init(&a, 0);
    jwk = jwks_key(&a, omni_signer_jwks(s));
    CHECK(jwk != NULL);
    CHECK_STR_EQ(member(jwk, "kid"), "2026-11/key_1.a~b:c");
    omni_arena_free(&a);
    CHECK_SIGNS(s, k, CLAIMS);
    omni_signer_free(s);
    EVP_PKEY_free(k);
}

static void test_kid_of_128_characters_is_accepted(void)
{
    EVP_PKEY *k = ec_key("P-256");
    char kid[129];
    omni_signer_t *s;

    memset(kid, 'k', 128);
    kid[128] = '\0';
    s = load(k, kid);
    CHECK(s != NULL);
    CHECK_STR_EQ(omni_signer_kid(s), kid);
    CHECK_SIGNS(s, k, CLAIMS);
    omni_signer_free(s);
    EVP_PKEY_free(k);
}

static void test_invalid_kids_are_refused(void)
{
    static const char *bad[] = {"a\"b", "a b", "a\\b", "a\tb", "k\xc3\xa9y",
        "a\x7f", " lead", "trail\n",
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"};
    EVP_PKEY *k = ec_key("P-256");
    omni_signer_t *s;
    size_t i;
    int accepted = 0;

    CHECK_EQ_INT(strlen(bad[8]), 129);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = load(k, bad[i]);
        if (s != NULL || strstr(err, "OMNI_JWT_KID") == NULL) {
            fprintf(stderr, "    kid \"%s\": err = \"%s\"\n", bad[i], err);
            accepted++;
        }
        omni_signer_free(s);
    }
    EVP_PKEY_free(k);
    CHECK_EQ_INT(accepted, 0);
}

/* --- JWKS ----------------------------------------------------------------- */

static void check_jwks_members(EVP_PKEY *k, const char *kty, size_t count)
{
    omni_signer_t *s = load(k, NULL);
    omni_arena_t a;
    const omni_json_t *jwk;
    size_t i;

    CHECK(s != NULL);
    omni_arena_init(&a, 0);
    jwk = jwks_key(&a, omni_signer_jwks(s));
    CHECK(jwk != NULL);
    CHECK_STR_EQ(member(jwk, "kty"), kty);
    CHECK_STR_EQ(member(jwk, "use"), "sig");
    CHECK_STR_EQ(member(jwk, "alg"), omni_signer_alg(s));
    CHECK_STR_EQ(member(jwk, "kid"), omni_signer_kid(s));
    /* every member a string, and nothing private ("d", "p", ...) */
    CHECK_EQ_INT(jwk->u.obj.len, count);
    for (i = 0; i < jwk->u.obj.len; i++)
        CHECK(jwk->u.obj.values[i]->type == OMNI_JSON_STRING);
    CHECK(omni_json_get(jwk, "d") == NULL);
    omni_arena_free(&a);
    omni_signer_free(s);
}

static void test_jwks_of_rsa_key(void)
{
    EVP_PKEY *k = rsa_key(2048);

    /* kty n e use alg kid */
    check_jwks_members(k, "RSA", 6);
    EVP_PKEY_free(k);
}

static void test_jwks_of_ec_key(void)
{
    EVP_PKEY *k = ec_key("P-256");

    /* kty crv x y use alg kid */
    check_jwks_members(k, "EC", 7);
    EVP_PKEY_free(k);
}

static void test_jwks_of_ed25519_key(void)
{
    EVP_PKEY *k = raw_key("ED25519");

    /* kty crv x use alg kid */
    check_jwks_members(k, "OKP", 6);
    EVP_PKEY_free(k);
}

static void test_jwks_with_previous_lists_current_then_previous(void)
{
    EVP_PKEY *k1 = ec_key("P-256"), *k2 = raw_key("ED25519");
    omni_signer_t *cur = load(k1, NULL), *prev = load(k2, NULL);
    omni_arena_t a;
    const omni_json_t *root, *keys;
    char why[256], *both, *one;

    CHECK(cur != NULL && prev != NULL);
    both = omni_signer_jwks_with(cur, prev);
    one = omni_signer_jwks_with(cur, NULL);
    CHECK(both != NULL && one != NULL);
    /* without a previous key: the signer's own set */
    CHECK_STR_EQ(one, omni_signer_jwks(cur));

    omni_arena_init(&a, 0);
    root = omni_json_parse(&a, both, strlen(both), NULL, why, sizeof(why));
    CHECK(root != NULL);
    keys = omni_json_get(root, "keys");
    CHECK(keys != NULL && keys->type == OMNI_JSON_ARRAY);
    CHECK_EQ_INT(keys->u.arr.len, 2);
    CHECK_STR_EQ(member(keys->u.arr.items[0], "kid"), omni_signer_kid(cur));
    CHECK_STR_EQ(member(keys->u.arr.items[0], "alg"), "ES256");
    CHECK_STR_EQ(member(keys->u.arr.items[1], "kid"), omni_signer_kid(prev));
    CHECK_STR_EQ(member(keys->u.arr.items[1], "alg"), "EdDSA");
    CHECK(omni_json_get(keys->u.arr.items[1], "d") == NULL);
    omni_arena_free(&a);

    free(both);
    free(one);
    omni_signer_free(cur);
    omni_signer_free(prev);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
}

/* --- signatures ----------------------------------------------------------- */

static void test_tampered_token_does_not_verify(void)
{
    /* the checks above can say no: a changed header or another key */
    EVP_PKEY *k = ec_key("P-256"), *other = ec_key("P-256");
    EVP_PKEY *pub = public_of(k), *other_pub = public_of(other);
    omni_signer_t *s = load(k, NULL);
    char *jws = omni_signer_sign(s, CLAIMS, strlen(CLAIMS));
    unsigned char sig[64];
    const char *dot;

    CHECK(jws != NULL && pub != NULL && other_pub != NULL);
    CHECK_JWS(jws, pub, "ES256", omni_signer_kid(s), CLAIMS);
    CHECK(jws_problem(jws, other_pub, "ES256", omni_signer_kid(s), CLAIMS)
          != NULL);
    dot = strrchr(jws, '.');
    CHECK_EQ_INT(b64url_decode(dot + 1, strlen(dot + 1), sig), 64);
    CHECK(verify_sig(pub, "ES256", jws, (size_t)(dot - jws), sig, 64));
    jws[3] = jws[3] == 'A' ? 'B' : 'A';
    CHECK(!verify_sig(pub, "ES256", jws, (size_t)(dot - jws), sig, 64));
    free(jws);
    omni_signer_free(s);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(other_pub);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

static void test_rs256_signature_is_the_modulus_size(void)
{
    EVP_PKEY *k = rsa_key(2048);
    omni_signer_t *s = load(k, NULL);
    char *jws = omni_signer_sign(s, CLAIMS, strlen(CLAIMS));

    CHECK(jws != NULL);
    /* 256 bytes: 342 base64url characters */
    CHECK_EQ_INT(strlen(strrchr(jws, '.') + 1), 342);
    free(jws);
    omni_signer_free(s);
    EVP_PKEY_free(k);
}

static void test_es256_signatures_pad_r_and_s_to_32_bytes(void)
{
    /* r or s below 2^248 (one signature in 256 each) is still 32 bytes */
    EVP_PKEY *k = ec_key("P-256"), *pub = public_of(k);
    omni_signer_t *s = load(k, NULL);
    unsigned char sig[64];
    char claims[64], *jws;
    int i, short_r = 0, short_s = 0;

    CHECK(s != NULL && pub != NULL);
    for (i = 0; i < 20000 && !(short_r && short_s); i++) {
        snprintf(claims, sizeof(claims), "{\"jti\":\"%d\"}", i);
        jws = omni_signer_sign(s, claims, strlen(claims));
        CHECK(jws != NULL);
        CHECK_EQ_INT(strlen(strrchr(jws, '.') + 1), 86);
        CHECK_EQ_INT(b64url_decode(strrchr(jws, '.') + 1, 86, sig), 64);
        short_r |= sig[0] == 0;
        short_s |= sig[32] == 0;
        CHECK_JWS(jws, pub, "ES256", omni_signer_kid(s), claims);
        free(jws);
    }
    CHECK(short_r && short_s);
    omni_signer_free(s);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(k);
}

static void test_eddsa_signature_is_64_bytes(void)
{
    EVP_PKEY *k = raw_key("ED25519");
    omni_signer_t *s = load(k, NULL);
    char *jws = omni_signer_sign(s, CLAIMS, strlen(CLAIMS));

    CHECK(jws != NULL);
    CHECK_EQ_INT(strlen(strrchr(jws, '.') + 1), 86);
    free(jws);
    omni_signer_free(s);
    EVP_PKEY_free(k);
}

static void test_large_and_binary_payloads_sign(void)
{
    EVP_PKEY *k = rsa_key(2048);
    omni_signer_t *s = load(k, NULL);
    size_t n = 64 * 1024, i;
    char *big = malloc(n + 1);

    CHECK(s != NULL && big != NULL);
    for (i = 0; i < n; i++)
        big[i] = (char)(1 + i % 255);
    big[n] = '\0';
    CHECK_SIGNS(s, k, big);
    CHECK_SIGNS(s, k, "\xfb\xff\xbf");
    CHECK_SIGNS(s, k, "{}");
    free(big);
    omni_signer_free(s);
    EVP_PKEY_free(k);
}

/* --- threads -------------------------------------------------------------- */

#define SIGN_THREADS 4
#define SIGNS_PER_THREAD 25

typedef struct {
    const omni_signer_t *s;
    int id;
    char claims[SIGNS_PER_THREAD][48];
    char *jws[SIGNS_PER_THREAD];
} signing_t;

static void *sign_many(void *arg)
{
    signing_t *t = arg;
    int i;

    for (i = 0; i < SIGNS_PER_THREAD; i++) {
        snprintf(t->claims[i], sizeof(t->claims[i]),
            "{\"jti\":\"thread-%d-token-%d\"}", t->id, i);
        t->jws[i] = omni_signer_sign(t->s, t->claims[i], strlen(t->claims[i]));
    }
    return NULL;
}

static void check_concurrent_signing(EVP_PKEY *k)
{
    static signing_t t[SIGN_THREADS];
    pthread_t tid[SIGN_THREADS];
    omni_signer_t *s = load(k, NULL);
    EVP_PKEY *pub = public_of(k);
    int i, j, bad = 0;

    CHECK(s != NULL && pub != NULL);
    memset(t, 0, sizeof(t));
    for (i = 0; i < SIGN_THREADS; i++) {
        t[i].s = s;
        t[i].id = i;
        CHECK(pthread_create(&tid[i], NULL, sign_many, &t[i]) == 0);
    }
    for (i = 0; i < SIGN_THREADS; i++)
        pthread_join(tid[i], NULL);
    for (i = 0; i < SIGN_THREADS; i++) {
        for (j = 0; j < SIGNS_PER_THREAD; j++) {
            const char *why = jws_problem(t[i].jws[j], pub, omni_signer_alg(s),
                omni_signer_kid(s), t[i].claims[j]);

            if (why != NULL) {
                fprintf(stderr, "    thread %d token %d: %s\n", i, j, why);
                bad++;
            }
            free(t[i].jws[j]);
        }
    }
    omni_signer_free(s);
    EVP_PKEY_free(pub);
    CHECK_EQ_INT(bad, 0);
}

static void test_rs256_signing_from_4_threads(void)
{
    EVP_PKEY *k = rsa_key(2048);

    check_concurrent_signing(k);
    EVP_PKEY_free(k);
}

static void test_es256_signing_from_4_threads(void)
{
    EVP_PKEY *k = ec_key("P-256");

    check_concurrent_signing(k);
    EVP_PKEY_free(k);
}

static void test_eddsa_signing_from_4_threads(void)
{
    EVP_PKEY *k = raw_key("ED25519");

    check_concurrent_signing(k);
    EVP_PKEY_free(k);
}

UNIT_MAIN(UNIT_TEST(test_rsa_2048_key_signs_rs256),
    UNIT_TEST(test_rsa_3072_key_signs_rs256),
    UNIT_TEST(test_ec_p256_key_signs_es256),
    UNIT_TEST(test_ed25519_key_signs_eddsa),
    UNIT_TEST(test_traditional_pem_forms_load),
    UNIT_TEST(test_openssl_ecparam_genkey_output_loads),
    UNIT_TEST(test_rsa_1024_key_is_refused),
    UNIT_TEST(test_ec_keys_off_p256_are_refused),
    UNIT_TEST(test_other_key_types_are_refused),
    UNIT_TEST(test_public_keys_are_refused),
    UNIT_TEST(test_encrypted_keys_are_refused_without_a_prompt),
    UNIT_TEST(test_garbage_and_empty_files_are_refused),
    UNIT_TEST(test_truncated_pem_is_refused),
    UNIT_TEST(test_missing_file_is_refused_naming_it),
    UNIT_TEST(test_free_of_null_is_harmless),
    UNIT_TEST(test_thumbprint_helper_matches_rfc7638_example),
    UNIT_TEST(test_default_kid_is_the_rfc7638_thumbprint_rsa),
    UNIT_TEST(test_default_kid_is_the_rfc7638_thumbprint_ec),
    UNIT_TEST(test_default_kid_is_the_rfc7638_thumbprint_ed25519),
    UNIT_TEST(test_ec_x_keeps_leading_zero_bytes),
    UNIT_TEST(test_ec_y_keeps_leading_zero_bytes),
    UNIT_TEST(test_default_kid_is_stable_and_differs_between_keys),
    UNIT_TEST(test_explicit_kid_is_used_everywhere),
    UNIT_TEST(test_kid_of_128_characters_is_accepted),
    UNIT_TEST(test_invalid_kids_are_refused), UNIT_TEST(test_jwks_of_rsa_key),
    UNIT_TEST(test_jwks_of_ec_key), UNIT_TEST(test_jwks_of_ed25519_key),
    UNIT_TEST(test_jwks_with_previous_lists_current_then_previous),
    UNIT_TEST(test_tampered_token_does_not_verify),
    UNIT_TEST(test_rs256_signature_is_the_modulus_size),
    UNIT_TEST(test_es256_signatures_pad_r_and_s_to_32_bytes),
    UNIT_TEST(test_eddsa_signature_is_64_bytes),
    UNIT_TEST(test_large_and_binary_payloads_sign),
    UNIT_TEST(test_rs256_signing_from_4_threads),
    UNIT_TEST(test_es256_signing_from_4_threads),
    UNIT_TEST(test_eddsa_signing_from_4_threads))
