/*
 * omni_jwt_verify.c: signatures: the keys that may verify a token, HMAC
 * compared in constant time, RSA PKCS#1 and PSS, ECDSA (JOSE r||s to DER)
 * and Ed25519.
 */


#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "omni_jwt.h"
#include "omni_jwt_int.h"


static int omni_jwt_hmac(const omni_jwt_key_t *key, const omni_jwt_t *jwt,
    unsigned char *mac, unsigned int *mac_len);
static int omni_jwt_verify_one(const omni_jwt_t *jwt,
    const omni_jwt_key_t *key);
static size_t omni_jwt_der_int(unsigned char *out, const unsigned char *p,
    size_t n);
static int omni_jwt_verify_pkey(const omni_jwt_t *jwt,
    const omni_jwt_key_t *key,
    const unsigned char *sig, size_t sig_len);


omni_jwt_status_t
omni_jwt_verify(const omni_jwt_t *jwt, const omni_jwt_key_t *keys,
    size_t nkeys, const char **why)
{
    size_t       i;
    int          kid_known, allowed;
    const char  *w;

    if ((unsigned) jwt->alg >= OMNI_JWT_NALGS || jwt->signing_input == NULL
        || jwt->sig == NULL)
    {
        if (why != NULL) {
            *why = "token not parsed";
        }
        return OMNI_JWT_MALFORMED;
    }

    kid_known = 0;
    allowed = 0;

    for (i = 0; i < nkeys; i++) {

        /* a key configured without a kid answers for any kid (IdPs name
         * one in every token); the signature still decides */

        if (jwt->kid != NULL && keys[i].kid[0] != '\0'
            && strcmp(keys[i].kid, jwt->kid) != 0)
        {
            continue;
        }

        kid_known = 1;

        if (!(keys[i].algs & OMNI_JWT_ALG_BIT(jwt->alg))) {
            continue;
        }

        allowed = 1;

        if (omni_jwt_verify_one(jwt, &keys[i])) {
            if (why != NULL) {
                *why = NULL;
            }
            return OMNI_JWT_OK;
        }
    }

    if (!kid_known) {
        w = (jwt->kid != NULL) ? "unknown kid" : "no verification key";

    } else if (!allowed) {
        w = "algorithm not allowed for this key";

    } else {
        w = "signature does not verify";
    }

    if (why != NULL) {
        *why = w;
    }

    return OMNI_JWT_BAD_SIGNATURE;
}


/* HMAC of the signing input, with the key's prepared context when it has
 * one: initialised again in place (a NULL key keeps the secret set at
 * load), so a token costs no context copy; a copy only if that fails. 1
 * on success. */

static int
omni_jwt_hmac(const omni_jwt_key_t *key, const omni_jwt_t *jwt,
    unsigned char *mac, unsigned int *mac_len)
{
    int           ok;
    size_t        len;
    EVP_MAC_CTX  *ctx, *copy;

    ctx = key->mac[jwt->alg];

    if (ctx == NULL) {
        return HMAC(omni_jwt_md(jwt->alg), key->secret,
                    (int) key->secret_len, jwt->signing_input,
                    jwt->signing_input_len, mac, mac_len)
               != NULL;
    }

    copy = NULL;
    len = 0;

    if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1) {
        copy = EVP_MAC_CTX_dup(ctx);
        if (copy == NULL) {
            return 0;
        }

        ctx = copy;
    }

    ok = EVP_MAC_update(ctx, jwt->signing_input, jwt->signing_input_len) == 1
         && EVP_MAC_final(ctx, mac, &len, EVP_MAX_MD_SIZE) == 1;

    EVP_MAC_CTX_free(copy);
    *mac_len = (unsigned int) len;

    return ok;
}


/* 1 when key verifies jwt. The algorithm's family decides which half of
 * the key is used, and the key's type is checked again (at load, for each
 * bound algorithm: key->typed): an HS token never reaches a public key's
 * bytes. */

static int
omni_jwt_verify_one(const omni_jwt_t *jwt, const omni_jwt_key_t *key)
{
    int                         ok;
    unsigned int                mac_len;
    const omni_jwt_alg_info_t  *a;
    unsigned char               mac[EVP_MAX_MD_SIZE];

    a = &omni_jwt_algs[jwt->alg];

    if (a->family == OMNI_JWT_HMAC) {
        if (key->secret == NULL || key->pkey != NULL
            || key->secret_len > INT_MAX)
        {
            return 0;
        }

        if (omni_jwt_hmac(key, jwt, mac, &mac_len) != 1) {
            ERR_clear_error();
            return 0;
        }

        ok = (jwt->sig_len == mac_len
              && CRYPTO_memcmp(jwt->sig, mac, mac_len) == 0);

        OPENSSL_cleanse(mac, sizeof(mac));

        return ok;
    }

    if (key->pkey == NULL || key->secret != NULL
        || !(key->typed & OMNI_JWT_ALG_BIT(jwt->alg)))
    {
        return 0;
    }

    ok = omni_jwt_verify_pkey(jwt, key, jwt->sig, jwt->sig_len);
    ERR_clear_error();

    return ok;
}


/* One unsigned big-endian integer as a DER INTEGER (no leading zero
 * bytes but one when the high bit is set); its length. n is at most 66. */

static size_t
omni_jwt_der_int(unsigned char *out, const unsigned char *p, size_t n)
{
    size_t  pad;

    while (n > 1 && *p == 0) {
        p++;
        n--;
    }

    pad = (*p & 0x80) ? 1 : 0;

    out[0] = 0x02;
    out[1] = (unsigned char) (n + pad);
    out[2] = 0;
    memcpy(out + 2 + pad, p, n);

    return 2 + pad + n;
}


static int
omni_jwt_verify_pkey(const omni_jwt_t *jwt, const omni_jwt_key_t *key,
    const unsigned char *sig, size_t sig_len)
{
    EVP_PKEY                   *pkey = key->pkey;
    int                         ok;
    size_t                      n, h;
    EVP_MD_CTX                 *mctx;
    EVP_PKEY_CTX               *pctx;
    const EVP_MD               *md;
    unsigned int                dlen;
    const omni_jwt_alg_info_t  *a;
    unsigned char               dgst[EVP_MAX_MD_SIZE];
    unsigned char               ints[2 * 69], der[2 * 69 + 3];

    a = &omni_jwt_algs[jwt->alg];
    md = omni_jwt_md(jwt->alg);
    mctx = NULL;
    ok = 0;

    switch (a->family) {

    case OMNI_JWT_PKCS1:
    case OMNI_JWT_PSS:
        if (sig_len != (size_t) EVP_PKEY_get_size(pkey)) {
            return 0;
        }
        break;

    case OMNI_JWT_ECDSA:
        /* JWS carries r || s; OpenSSL wants DER */

        if (sig_len != 2 * a->coord) {
            return 0;
        }

        /* SEQUENCE { INTEGER r, INTEGER s }, on the stack: no
         * BIGNUM or ECDSA_SIG a token */

        n = omni_jwt_der_int(ints, sig, a->coord);
        n += omni_jwt_der_int(ints + n, sig + a->coord, a->coord);

        der[0] = 0x30;

        if (n < 0x80) {
            der[1] = (unsigned char) n;
            h = 2;

        } else {
            der[1] = 0x81;
            der[2] = (unsigned char) n;
            h = 3;
        }

        memcpy(der + h, ints, n);

        sig = der;
        sig_len = h + n;
        break;

    default:
        if (sig_len != 64) {
            return 0;
        }
        break;
    }

    if (key->pverify[jwt->alg] != NULL) {
        mctx = key->digest[jwt->alg];

        ok = EVP_DigestInit_ex2(mctx, NULL, NULL) == 1
             && EVP_DigestUpdate(mctx, jwt->signing_input,
                                 jwt->signing_input_len) == 1
             && EVP_DigestFinal_ex(mctx, dgst, &dlen) == 1
             && EVP_PKEY_verify(key->pverify[jwt->alg], sig, sig_len, dgst,
                                dlen) == 1;

        /* the contexts are the key's, kept for the next token */
        mctx = NULL;
        goto done;
    }

    mctx = EVP_MD_CTX_new();
    if (mctx == NULL) {
        goto done;
    }

    if (key->verify[jwt->alg] != NULL
        && EVP_MD_CTX_copy_ex(mctx, key->verify[jwt->alg]) == 1)
    {
        goto verify;
    }

    pctx = NULL;

    if (EVP_DigestVerifyInit(mctx, &pctx, md, NULL, pkey) != 1) {
        goto done;
    }

    if (a->family == OMNI_JWT_PKCS1
        && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)
    {
        goto done;
    }

    if (a->family == OMNI_JWT_PSS
        && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0
            || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST)
               <= 0
            || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) <= 0))
    {
        goto done;
    }

verify:

    ok = (EVP_DigestVerify(mctx, sig, sig_len, jwt->signing_input,
                           jwt->signing_input_len)
          == 1);

done:

    EVP_MD_CTX_free(mctx);

    return ok;
}
