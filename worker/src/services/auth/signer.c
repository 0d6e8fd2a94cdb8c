/* signer.c: signs access tokens with a private key parsed once at start-up.
 *
 * Written over OpenSSL's EVP API rather than libjwt: libjwt 1.10 re-parses
 * the PEM key on every signature and has no EdDSA, and a JWS is three
 * base64url strings joined by dots. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "lib/encode.h"
#include "services/auth/signer.h"


#define OMNI_SIGNER_MAX_KID 128

struct omni_signer {
    EVP_PKEY *key;
    const EVP_MD *md; /* NULL for EdDSA (no prehash) */
    const char *alg;
    int es256; /* DER signature to JOSE r || s */
    char kid[OMNI_SIGNER_MAX_KID + 1];
    char *header; /* base64url of the JOSE header */
    size_t header_len;
    char *jwk;  /* the public key as one JWK object */
    char *jwks; /* {"keys":[jwk]} */
};


/* base64url of a BIGNUM, big-endian, padded to pad bytes (0: minimal) */
static char *omni_signer_bn64(const BIGNUM *bn, int pad)
{
    unsigned char buf[1024];
    int n = pad ? pad : BN_num_bytes(bn);
    char *out;

    if (n <= 0 || n > (int)sizeof(buf) || BN_bn2binpad(bn, buf, n) != n) {
        return NULL;
    }
    out = malloc(OMNI_B64URL_LEN((size_t)n) + 1);
    if (out) {
        omni_b64url_encode(buf, (size_t)n, out);
    }
    return out;
}


static char *omni_signer_bn_param(EVP_PKEY *key, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    char *out;

    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) {
        return NULL;
    }
    out = omni_signer_bn64(bn, pad);
    BN_free(bn);
    return out;
}


/* The public JWK members in RFC 7638's lexicographic order, which is also
 * the thumbprint's input: {"e":..,"kty":"RSA","n":..} and so on. */
static char *omni_signer_jwk_members(omni_signer_t *s)
{
    char *a = NULL, *b = NULL, *out = NULL;
    unsigned char raw[32];
    size_t rawlen = sizeof(raw), n;
    char x[OMNI_B64URL_LEN(32) + 1];

    if (EVP_PKEY_is_a(s->key, "RSA")) {
        a = omni_signer_bn_param(s->key, OSSL_PKEY_PARAM_RSA_E, 0);
        b = omni_signer_bn_param(s->key, OSSL_PKEY_PARAM_RSA_N, 0);
        if (a && b) {
            n = strlen(a) + strlen(b) + 64;
            out = malloc(n);
            if (out) {
                snprintf(
                    out, n, "\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"", a, b);
            }
        }

    } else if (EVP_PKEY_is_a(s->key, "EC")) {
        a = omni_signer_bn_param(s->key, OSSL_PKEY_PARAM_EC_PUB_X, 32);
        b = omni_signer_bn_param(s->key, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
        if (a && b) {
            n = strlen(a) + strlen(b) + 64;
            out = malloc(n);
            if (out) {
                snprintf(out, n,
                    "\"crv\":\"P-256\",\"kty\":\"EC\","
                    "\"x\":\"%s\",\"y\":\"%s\"",
                    a, b);
            }
        }

    } else if (EVP_PKEY_get_raw_public_key(s->key, raw, &rawlen) == 1
               && rawlen == 32) {
        omni_b64url_encode(raw, rawlen, x);
        n = strlen(x) + 64;
        out = malloc(n);
        if (out) {
            snprintf(
                out, n, "\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"", x);
        }
    }

    free(a);
    free(b);
    return out;
}


static int omni_signer_kind(
    omni_signer_t *s, char *err, size_t errlen, const char *path)
{
    char group[64];
    size_t glen = 0;

    if (EVP_PKEY_is_a(s->key, "RSA")) {
        if (EVP_PKEY_get_bits(s->key) < 2048) {
            snprintf(err, errlen,
                "%s: RSA key of %d bits; at least 2048 "
                "are required",
                path, EVP_PKEY_get_bits(s->key));
            return -1;
        }
        s->alg = "RS256";
        s->md = EVP_sha256();
        return 0;
    }
    if (EVP_PKEY_is_a(s->key, "EC")) {
        if (EVP_PKEY_get_utf8_string_param(
                s->key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &glen)
                != 1
            || (strcmp(group, "prime256v1") != 0
                && strcmp(group, "P-256") != 0)) {
            snprintf(err, errlen,
                "%s: EC key on curve %s; only P-256 "
                "(ES256) is supported",
                path, glen ? group : "?");
            return -1;
        }
        s->alg = "ES256";
        s->md = EVP_sha256();
        s->es256 = 1;
        return 0;
    }
    if (EVP_PKEY_is_a(s->key, "ED25519")) {
        s->alg = "EdDSA";
        return 0;
    }
    snprintf(err, errlen,
        "%s: %s keys cannot sign tokens; use RSA "
        "(RS256), EC P-256 (ES256) or Ed25519 (EdDSA)",
        path, EVP_PKEY_get0_type_name(s->key));
    return -1;
}


static int omni_signer_kid_valid(const char *kid)
{
    size_t i, n = strlen(kid);

    if (n == 0 || n > OMNI_SIGNER_MAX_KID) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (kid[i] <= ' ' || kid[i] > '~' || kid[i] == '"' || kid[i] == '\\') {
            return 0;
        }
    }
    return 1;
}


omni_signer_t *omni_signer_load(
    const char *path, const char *kid, char *err, size_t errlen)
{
    omni_signer_t *s;
    FILE *f;
    char *members = NULL, *tp = NULL, hdr[512];
    unsigned char md[32];
    unsigned int mdlen = 0;
    int n;

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %m", path);
        goto failed;
    }
    /* an empty passphrase callback: an encrypted key fails, never prompts */
    s->key = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
    fclose(f);
    if (s->key == NULL) {
        snprintf(err, errlen, "%s: not an unencrypted PEM private key", path);
        goto failed;
    }
    if (omni_signer_kind(s, err, errlen, path) != 0) {
        goto failed;
    }

    members = omni_signer_jwk_members(s);
    if (members == NULL) {
        snprintf(err, errlen, "%s: cannot read the public key", path);
        goto failed;
    }

    if (kid && *kid) {
        if (!omni_signer_kid_valid(kid)) {
            snprintf(err, errlen,
                "OMNI_JWT_KID: expected 1-%d printable "
                "characters without spaces, quotes or backslashes",
                OMNI_SIGNER_MAX_KID);
            goto failed;
        }
        snprintf(s->kid, sizeof(s->kid), "%s", kid);
    } else {
        n = (int)strlen(members) + 3;
        tp = malloc((size_t)n);
        if (tp == NULL) {
            snprintf(err, errlen, "out of memory");
            goto failed;
        }
        snprintf(tp, (size_t)n, "{%s}", members);
        if (EVP_Digest(tp, strlen(tp), md, &mdlen, EVP_sha256(), NULL) != 1) {
            snprintf(err, errlen, "cannot compute the key thumbprint");
            goto failed;
        }
        omni_b64url_encode(md, mdlen, s->kid);
    }

    n = snprintf(hdr, sizeof(hdr),
        "{\"alg\":\"%s\",\"typ\":\"JWT\","
        "\"kid\":\"%s\"}",
        s->alg, s->kid);
    s->header = malloc(OMNI_B64URL_LEN((size_t)n) + 1);
    n = (int)strlen(members) + (int)strlen(s->kid) + 96;
    s->jwk = malloc((size_t)n);
    if (s->header == NULL || s->jwk == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }
    s->header_len =
        omni_b64url_encode((unsigned char *)hdr, strlen(hdr), s->header);
    snprintf(s->jwk, (size_t)n,
        "{%s,\"use\":\"sig\",\"alg\":\"%s\",\"kid\":\"%s\"}", members, s->alg,
        s->kid);
    s->jwks = omni_signer_jwks_with(s, NULL);
    if (s->jwks == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    free(members);
    free(tp);
    return s;

failed:

    free(members);
    free(tp);
    omni_signer_free(s);
    return NULL;
}


const char *omni_signer_alg(const omni_signer_t *s)
{
    return s->alg;
}


const char *omni_signer_kid(const omni_signer_t *s)
{
    return s->kid;
}


const char *omni_signer_jwks(const omni_signer_t *s)
{
    return s->jwks;
}


char *omni_signer_jwks_with(
    const omni_signer_t *s, const omni_signer_t *previous)
{
    size_t n;
    char *out;

    n = strlen(s->jwk) + (previous ? strlen(previous->jwk) + 1 : 0) + 16;
    out = malloc(n);
    if (out == NULL) {
        return NULL;
    }
    if (previous) {
        snprintf(out, n, "{\"keys\":[%s,%s]}", s->jwk, previous->jwk);
    } else {
        snprintf(out, n, "{\"keys\":[%s]}", s->jwk);
    }
    return out;
}


/* ECDSA signatures come DER-encoded; JWS wants r || s, 32 bytes each */
static int omni_signer_jose_ecdsa(unsigned char *sig, size_t *len)
{
    const unsigned char *p = sig;
    ECDSA_SIG *es;
    const BIGNUM *r, *s;
    int ok;

    es = d2i_ECDSA_SIG(NULL, &p, (long)*len);
    if (es == NULL) {
        return -1;
    }
    ECDSA_SIG_get0(es, &r, &s);
    ok = BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32;
    ECDSA_SIG_free(es);
    *len = 64;
    return ok ? 0 : -1;
}


char *omni_signer_sign(const omni_signer_t *s, const char *payload, size_t len)
{
    EVP_MD_CTX *ctx;
    unsigned char sig[1024];
    size_t siglen = sizeof(sig), plen, total;
    char *out = NULL;

    plen = OMNI_B64URL_LEN(len);
    total = s->header_len + 1 + plen + 1 + OMNI_B64URL_LEN(sizeof(sig)) + 1;
    out = malloc(total);
    ctx = EVP_MD_CTX_new();
    if (out == NULL || ctx == NULL) {
        goto failed;
    }

    memcpy(out, s->header, s->header_len);
    out[s->header_len] = '.';
    omni_b64url_encode(
        (const unsigned char *)payload, len, out + s->header_len + 1);

    /* the signing input is "header.payload" */
    if (EVP_DigestSignInit(ctx, NULL, s->md, NULL, s->key) != 1
        || EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)out,
               s->header_len + 1 + plen)
               != 1
        || (s->es256 && omni_signer_jose_ecdsa(sig, &siglen) != 0)) {
        goto failed;
    }

    out[s->header_len + 1 + plen] = '.';
    omni_b64url_encode(sig, siglen, out + s->header_len + 1 + plen + 1);
    EVP_MD_CTX_free(ctx);
    return out;

failed:

    EVP_MD_CTX_free(ctx);
    free(out);
    return NULL;
}


void omni_signer_free(omni_signer_t *s)
{
    if (s == NULL) {
        return;
    }
    EVP_PKEY_free(s->key);
    free(s->header);
    free(s->jwk);
    free(s->jwks);
    free(s);
}
