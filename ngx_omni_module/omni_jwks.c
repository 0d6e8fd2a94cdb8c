/*
 * omni_jwks.c: the signing keys of a JWKS file (RFC 7517): every member
 * checked, encryption keys skipped, each key bound and prepared as a key
 * file's would be.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "omni_jwt.h"
#include "omni_jwt_int.h"


/* JWE key-management algorithms: a JWK bound to one is an encryption key. */
static const char  *omni_jwt_enc_algs[] = {
    "RSA1_5", "RSA-OAEP", "RSA-OAEP-256", "RSA-OAEP-384", "RSA-OAEP-512",
    "A128KW", "A192KW", "A256KW", "dir", "ECDH-ES", "ECDH-ES+A128KW",
    "ECDH-ES+A192KW", "ECDH-ES+A256KW", "A128GCMKW", "A192GCMKW",
    "A256GCMKW", "PBES2-HS256+A128KW", "PBES2-HS384+A192KW",
    "PBES2-HS512+A256KW", NULL
};


/* JWK members of private keys (RSA, EC, OKP) */
static const char  *omni_jwt_private[] = {
    "d", "p", "q", "dp", "dq", "qi", "oth", NULL
};


static int omni_jwt_jwk_load(omni_jwt_key_t *key, yajl_val jwk,
    const char *path, size_t index, char *err, size_t errlen);
static int omni_jwt_jwk_bytes(yajl_val jwk, const char *name,
    unsigned char **out, size_t *outlen, const char *where, char *err,
    size_t errlen);
static EVP_PKEY *omni_jwt_fromdata(const char *type, OSSL_PARAM_BLD *bld);
static EVP_PKEY *omni_jwt_jwk_rsa(yajl_val jwk, const char *where,
    char *err, size_t errlen);
static EVP_PKEY *omni_jwt_jwk_ec(yajl_val jwk, omni_jwt_kind_t kind,
    size_t coord, const char *where, char *err, size_t errlen);


int
omni_jwt_jwks_load(omni_jwt_key_t **keys, size_t *nkeys, const char *path,
    char *err, size_t errlen)
{
    int             rc;
    size_t          len;
    unsigned char  *data;

    *keys = NULL;
    *nkeys = 0;

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }

    if (path == NULL || path[0] == '\0') {
        omni_jwt_err(err, errlen, "no JWKS file given");
        return -1;
    }

    if (omni_jwt_read_file(path, &data, &len, err, errlen) != 0) {
        return -1;
    }

    rc = omni_jwt_jwks_parse(keys, nkeys, (const char *) data, len, path,
                             err, errlen);
    omni_jwt_free_file(data, len);

    return rc;
}


int
omni_jwt_jwks_parse(omni_jwt_key_t **keys, size_t *nkeys, const char *text,
    size_t len, const char *path, char *err, size_t errlen)
{
    int              rc;
    char            *nl, kid[80];
    size_t           i, j, n;
    yajl_val         root, list;
    const char      *why;
    omni_jwt_key_t  *arr;
    char             ebuf[256];

    *keys = NULL;
    *nkeys = 0;

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }

    if (len == 0) {
        omni_jwt_err(err, errlen, "%s: empty", path);
        return -1;
    }

    /* the same strictness as tokens: a JWKS may come from the network */

    if (omni_jwt_json_scan((const unsigned char *) text, len, &why) != 0) {
        omni_jwt_err(err, errlen, "%s: not valid JSON: %s", path, why);
        return -1;
    }

    /* yajl reads up to the NUL: a NUL inside is not JSON */
    if (strlen(text) != len) {
        omni_jwt_err(err, errlen, "%s: not valid JSON: a NUL byte", path);
        return -1;
    }

    ebuf[0] = '\0';
    root = yajl_tree_parse(text, ebuf, sizeof(ebuf));

    if (root == NULL) {
        /* yajl's message spans lines: keep the first */
        nl = strchr(ebuf, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }

        omni_jwt_err(err, errlen, "%s: not valid JSON: %s", path, ebuf);
        return -1;
    }

    rc = omni_jwt_json_dups(root);

    if (rc != 0) {
        omni_jwt_err(err, errlen, "%s: %s", path, rc < 0 ? "out of memory"
                     : "duplicate member name in JSON");
        yajl_tree_free(root);
        return -1;
    }

    list = omni_jwt_member(root, "keys", 4);

    if (!YAJL_IS_ARRAY(list)) {
        omni_jwt_err(err, errlen, "%s: not a JWKS (no \"keys\" array)", path);
        yajl_tree_free(root);
        return -1;
    }

    arr = calloc(list->u.array.len ? list->u.array.len : 1, sizeof(*arr));
    if (arr == NULL) {
        omni_jwt_err(err, errlen, "%s: out of memory", path);
        yajl_tree_free(root);
        return -1;
    }

    n = 0;

    for (i = 0; i < list->u.array.len; i++) {
        rc = omni_jwt_jwk_load(&arr[n], list->u.array.values[i], path, i,
                               err, errlen);
        if (rc < 0) {
            goto failed;
        }

        if (rc == 0) {
            continue;
        }

        for (j = 0; arr[n].kid[0] != '\0' && j < n; j++) {
            if (strcmp(arr[j].kid, arr[n].kid) == 0) {
                omni_jwt_printable(kid, sizeof(kid), arr[n].kid,
                                   strlen(arr[n].kid));
                omni_jwt_err(err, errlen, "%s: duplicate kid \"%s\"", path,
                             kid);
                n++;
                goto failed;
            }
        }

        n++;
    }

    if (n == 0) {
        omni_jwt_err(err, errlen, "%s: no signing keys in the JWKS", path);
        goto failed;
    }

    yajl_tree_free(root);

    for (i = 0; i < n; i++) {
        omni_jwt_key_prepare(&arr[i]);
    }

    *keys = arr;
    *nkeys = n;

    return 0;

failed:

    for (j = 0; j < n; j++) {
        omni_jwt_key_free(&arr[j]);
    }

    free(arr);
    yajl_tree_free(root);

    return -1;
}


/* One JWK: 1 loaded, 0 skipped (an encryption key), -1 refused. */

static int
omni_jwt_jwk_load(omni_jwt_key_t *key, yajl_val jwk, const char *path,
    size_t index, char *err, size_t errlen)
{
    int               rsa_bits;
    size_t            i, len, coord;
    unsigned          bits;
    yajl_val          v, kty, crv, use, ops, alg;
    EVP_PKEY         *pkey;
    const char       *kind_desc;
    unsigned char    *raw;
    omni_jwt_kind_t   kind;
    char              where[1200], name[80], desc[96];

    memset(key, 0, sizeof(*key));
    snprintf(where, sizeof(where), "%s: key %zu", path, index);

    if (!YAJL_IS_OBJECT(jwk)) {
        omni_jwt_err(err, errlen, "%s: not a JSON object", where);
        return -1;
    }

    v = omni_jwt_member(jwk, "kid", 3);

    if (v != NULL) {
        if (!YAJL_IS_STRING(v) || strlen(v->u.string) > OMNI_JWT_MAX_KID) {
            omni_jwt_err(err, errlen, "%s: kid is not a string of at most %d "
                         "bytes", where, OMNI_JWT_MAX_KID);
            return -1;
        }

        strcpy(key->kid, v->u.string);
        omni_jwt_printable(name, sizeof(name), key->kid, strlen(key->kid));
        snprintf(where, sizeof(where), "%s: key %zu (kid \"%s\")", path,
                 index, name);
    }

    use = omni_jwt_member(jwk, "use", 3);

    if (use != NULL) {
        if (YAJL_IS_STRING(use) && strcmp(use->u.string, "enc") == 0) {
            return 0;
        }

        if (!YAJL_IS_STRING(use) || strcmp(use->u.string, "sig") != 0) {
            omni_jwt_err(err, errlen, "%s: \"use\" is neither \"sig\" nor "
                         "\"enc\"", where);
            return -1;
        }
    }

    ops = omni_jwt_member(jwk, "key_ops", 7);

    if (ops != NULL) {
        if (!YAJL_IS_ARRAY(ops)) {
            omni_jwt_err(err, errlen, "%s: \"key_ops\" is not an array",
                         where);
            return -1;
        }

        for (i = 0; i < ops->u.array.len; i++) {
            v = ops->u.array.values[i];
            if (YAJL_IS_STRING(v) && strcmp(v->u.string, "verify") == 0) {
                break;
            }
        }

        if (i == ops->u.array.len) {
            return 0;
        }
    }

    bits = 0;
    alg = omni_jwt_member(jwk, "alg", 3);

    if (alg != NULL) {
        if (!YAJL_IS_STRING(alg)) {
            omni_jwt_err(err, errlen, "%s: \"alg\" is not a string", where);
            return -1;
        }

        for (i = 0; omni_jwt_enc_algs[i] != NULL; i++) {
            if (strcmp(alg->u.string, omni_jwt_enc_algs[i]) == 0) {
                return 0;
            }
        }

        if (omni_jwt_algs_parse(alg->u.string, &bits, where, err, errlen)
            != 0)
        {
            return -1;
        }
    }

    kty = omni_jwt_member(jwk, "kty", 3);

    if (!YAJL_IS_STRING(kty)) {
        omni_jwt_err(err, errlen, "%s: \"kty\" missing", where);
        return -1;
    }

    for (i = 0; omni_jwt_private[i] != NULL; i++) {
        if (strcmp(kty->u.string, "oct") != 0
            && omni_jwt_member(jwk, omni_jwt_private[i],
                               strlen(omni_jwt_private[i]))
               != NULL)
        {
            omni_jwt_err(err, errlen, "%s: holds a private key (\"%s\"); "
                         "publish public keys only", where,
                         omni_jwt_private[i]);
            return -1;
        }
    }

    pkey = NULL;
    crv = omni_jwt_member(jwk, "crv", 3);

    if (strcmp(kty->u.string, "RSA") == 0) {
        pkey = omni_jwt_jwk_rsa(jwk, where, err, errlen);

    } else if (strcmp(kty->u.string, "EC") == 0) {
        if (!YAJL_IS_STRING(crv)) {
            omni_jwt_err(err, errlen, "%s: \"crv\" missing", where);
            return -1;
        }

        if (strcmp(crv->u.string, "P-256") == 0) {
            kind = OMNI_JWT_KIND_P256;
            coord = 32;

        } else if (strcmp(crv->u.string, "P-384") == 0) {
            kind = OMNI_JWT_KIND_P384;
            coord = 48;

        } else if (strcmp(crv->u.string, "P-521") == 0) {
            kind = OMNI_JWT_KIND_P521;
            coord = 66;

        } else {
            omni_jwt_printable(name, sizeof(name), crv->u.string,
                               strlen(crv->u.string));
            omni_jwt_err(err, errlen, "%s: unsupported EC curve \"%s\"",
                         where, name);
            return -1;
        }

        pkey = omni_jwt_jwk_ec(jwk, kind, coord, where, err, errlen);

    } else if (strcmp(kty->u.string, "OKP") == 0) {
        if (YAJL_IS_STRING(crv)
            && (strcmp(crv->u.string, "X25519") == 0
                || strcmp(crv->u.string, "X448") == 0))
        {
            return 0;
        }

        if (!YAJL_IS_STRING(crv) || strcmp(crv->u.string, "Ed25519") != 0) {
            omni_jwt_err(err, errlen, "%s: unsupported OKP curve (only "
                         "Ed25519)", where);
            return -1;
        }

        if (omni_jwt_jwk_bytes(jwk, "x", &raw, &len, where, err, errlen)
            != 0)
        {
            return -1;
        }

        if (len == 32) {
            pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw,
                                               len);
        }

        free(raw);

        if (pkey == NULL) {
            ERR_clear_error();
            omni_jwt_err(err, errlen, "%s: \"x\" is not an Ed25519 public "
                         "key", where);
            return -1;
        }

    } else if (strcmp(kty->u.string, "oct") == 0) {
        if (omni_jwt_jwk_bytes(jwk, "k", &key->secret, &key->secret_len,
                               where, err, errlen)
            != 0)
        {
            return -1;
        }

    } else {
        omni_jwt_printable(name, sizeof(name), kty->u.string,
                           strlen(kty->u.string));
        omni_jwt_err(err, errlen, "%s: unsupported kty \"%s\"", where, name);
        return -1;
    }

    if (key->secret != NULL) {
        kind = OMNI_JWT_KIND_SECRET;
        kind_desc = "an oct (HMAC) key";
        rsa_bits = 0;

    } else if (pkey != NULL) {
        kind = omni_jwt_pkey_kind(pkey, desc, sizeof(desc));
        kind_desc = desc;
        rsa_bits = EVP_PKEY_get_bits(pkey);

    } else {
        return -1;
    }

    if (bits == 0) {
        bits = OMNI_JWT_ALG_BIT(omni_jwt_default_alg(kind));
    }

    if (omni_jwt_compat(bits, kind, "the JWK", kind_desc, rsa_bits,
                        key->secret_len, where, err, errlen)
        != 0)
    {
        EVP_PKEY_free(pkey);
        omni_jwt_key_free(key);
        return -1;
    }

    key->pkey = pkey;
    key->algs = bits;

    return 1;
}


/* A base64url member, decoded into malloc'd bytes (at least one). */

static int
omni_jwt_jwk_bytes(yajl_val jwk, const char *name, unsigned char **out,
    size_t *outlen, const char *where, char *err, size_t errlen)
{
    size_t          len;
    yajl_val        v;
    unsigned char  *buf;

    *out = NULL;
    *outlen = 0;

    v = omni_jwt_member(jwk, name, strlen(name));

    if (!YAJL_IS_STRING(v) || v->u.string[0] == '\0') {
        omni_jwt_err(err, errlen, "%s: \"%s\" missing or empty", where,
                     name);
        return -1;
    }

    len = strlen(v->u.string);
    buf = malloc(len / 4 * 3 + 3);
    if (buf == NULL) {
        omni_jwt_err(err, errlen, "%s: out of memory", where);
        return -1;
    }

    if (omni_jwt_base64url_decode(buf, outlen, v->u.string, len) != 0) {
        free(buf);
        omni_jwt_err(err, errlen, "%s: \"%s\" is not base64url", where,
                     name);
        return -1;
    }

    *out = buf;

    return 0;
}


static EVP_PKEY *
omni_jwt_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY      *pkey;
    OSSL_PARAM    *params;
    EVP_PKEY_CTX  *ctx;

    pkey = NULL;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);

    if (params == NULL || ctx == NULL
        || EVP_PKEY_fromdata_init(ctx) <= 0
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
    {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }

    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);

    return pkey;
}


static EVP_PKEY *
omni_jwt_jwk_rsa(yajl_val jwk, const char *where, char *err, size_t errlen)
{
    size_t           nlen, elen;
    BIGNUM          *n, *e;
    EVP_PKEY        *pkey;
    unsigned char   *nb, *eb;
    OSSL_PARAM_BLD  *bld;

    if (omni_jwt_jwk_bytes(jwk, "n", &nb, &nlen, where, err, errlen) != 0) {
        return NULL;
    }

    if (omni_jwt_jwk_bytes(jwk, "e", &eb, &elen, where, err, errlen) != 0) {
        free(nb);
        return NULL;
    }

    pkey = NULL;
    n = BN_bin2bn(nb, (int) nlen, NULL);
    e = BN_bin2bn(eb, (int) elen, NULL);
    bld = OSSL_PARAM_BLD_new();

    if (n != NULL && e != NULL && bld != NULL
        && !BN_is_zero(n) && !BN_is_zero(e)
        && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n)
        && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
    {
        pkey = omni_jwt_fromdata("RSA", bld);
    }

    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    free(nb);
    free(eb);

    if (pkey == NULL) {
        ERR_clear_error();
        omni_jwt_err(err, errlen, "%s: \"n\"/\"e\" are not an RSA public "
                     "key", where);
    }

    return pkey;
}


static EVP_PKEY *
omni_jwt_jwk_ec(yajl_val jwk, omni_jwt_kind_t kind, size_t coord,
    const char *where, char *err, size_t errlen)
{
    int              ok;
    size_t           xlen, ylen;
    EVP_PKEY        *pkey;
    const char      *group;
    EVP_PKEY_CTX    *ctx;
    unsigned char   *x, *y, pub[1 + 2 * 66];
    OSSL_PARAM_BLD  *bld;

    if (omni_jwt_jwk_bytes(jwk, "x", &x, &xlen, where, err, errlen) != 0) {
        return NULL;
    }

    if (omni_jwt_jwk_bytes(jwk, "y", &y, &ylen, where, err, errlen) != 0) {
        free(x);
        return NULL;
    }

    pkey = NULL;

    /* RFC 7518 6.2.1.2: each coordinate is exactly the field size */

    if (xlen == coord && ylen == coord) {
        pub[0] = 0x04;
        memcpy(pub + 1, x, coord);
        memcpy(pub + 1 + coord, y, coord);

        group = (kind == OMNI_JWT_KIND_P256) ? "P-256"
                : (kind == OMNI_JWT_KIND_P384) ? "P-384" : "P-521";

        bld = OSSL_PARAM_BLD_new();

        if (bld != NULL
            && OSSL_PARAM_BLD_push_utf8_string(bld,
                                               OSSL_PKEY_PARAM_GROUP_NAME,
                                               group, 0)
            && OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                                pub, 1 + 2 * coord))
        {
            pkey = omni_jwt_fromdata("EC", bld);
        }

        OSSL_PARAM_BLD_free(bld);

        if (pkey != NULL) {
            ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
            ok = (ctx != NULL && EVP_PKEY_public_check(ctx) == 1);
            EVP_PKEY_CTX_free(ctx);

            if (!ok) {
                EVP_PKEY_free(pkey);
                pkey = NULL;
            }
        }
    }

    free(x);
    free(y);

    if (pkey == NULL) {
        ERR_clear_error();
        omni_jwt_err(err, errlen, "%s: \"x\"/\"y\" are not a point on the "
                     "curve", where);
    }

    return pkey;
}
