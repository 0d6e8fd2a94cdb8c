/*
 * omni_jwt_keys.c: verification keys from files (a PEM public key or an
 * HMAC secret), bound to their algorithms and prepared once, and the
 * checks that an algorithm suits a key, shared with the JWKS loader.
 */


#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "omni_jwt.h"
#include "omni_jwt_int.h"


#define OMNI_JWT_MAX_FILE      (1024 * 1024)  /* key and JWKS files */
#define OMNI_JWT_MIN_RSA_BITS  2048


const omni_jwt_alg_info_t  omni_jwt_algs[OMNI_JWT_NALGS] = {
    { "HS256", OMNI_JWT_HMAC, 32, 0, OMNI_JWT_KIND_SECRET,
      "an HMAC secret" },
    { "HS384", OMNI_JWT_HMAC, 48, 0, OMNI_JWT_KIND_SECRET,
      "an HMAC secret" },
    { "HS512", OMNI_JWT_HMAC, 64, 0, OMNI_JWT_KIND_SECRET,
      "an HMAC secret" },
    { "RS256", OMNI_JWT_PKCS1, 32, 0, OMNI_JWT_KIND_RSA, "an RSA key" },
    { "RS384", OMNI_JWT_PKCS1, 48, 0, OMNI_JWT_KIND_RSA, "an RSA key" },
    { "RS512", OMNI_JWT_PKCS1, 64, 0, OMNI_JWT_KIND_RSA, "an RSA key" },
    { "PS256", OMNI_JWT_PSS, 32, 0, OMNI_JWT_KIND_RSA, "an RSA key" },
    { "PS384", OMNI_JWT_PSS, 48, 0, OMNI_JWT_KIND_RSA, "an RSA key" },
    { "PS512", OMNI_JWT_PSS, 64, 0, OMNI_JWT_KIND_RSA, "an RSA key" },
    { "ES256", OMNI_JWT_ECDSA, 32, 32, OMNI_JWT_KIND_P256,
      "an EC P-256 key" },
    { "ES384", OMNI_JWT_ECDSA, 48, 48, OMNI_JWT_KIND_P384,
      "an EC P-384 key" },
    { "ES512", OMNI_JWT_ECDSA, 64, 66, OMNI_JWT_KIND_P521,
      "an EC P-521 key" },
    { "EdDSA", OMNI_JWT_ED25519, 0, 0, OMNI_JWT_KIND_ED25519,
      "an Ed25519 key" }
};



static const unsigned char *omni_jwt_find(const unsigned char *hay,
    size_t len, const char *needle);
static int omni_jwt_no_pass(char *buf, int size, int rwflag, void *u);
static int omni_jwt_ossl_no_pass(char *pass, size_t size, size_t *len,
    const OSSL_PARAM params[], void *arg);
static EVP_PKEY *omni_jwt_pem_pkey(const unsigned char *data, size_t len,
    const char *path, char *err, size_t errlen);
static const char *omni_jwt_not_secret(const unsigned char *data,
    size_t len);
static int omni_jwt_pkey_fits(EVP_PKEY *pkey, int alg);
static void omni_jwt_key_prepare_pkey(omni_jwt_key_t *key, int alg,
    const EVP_MD *md);


int
omni_jwt_alg_parse(const char *name, size_t len)
{
    int  i;

    if (name == NULL) {
        return -1;
    }

    for (i = 0; i < OMNI_JWT_NALGS; i++) {
        if (strlen(omni_jwt_algs[i].name) == len
            && memcmp(omni_jwt_algs[i].name, name, len) == 0)
        {
            return i;
        }
    }

    return -1;
}


const char *
omni_jwt_alg_name(omni_jwt_alg_t alg)
{
    if ((unsigned) alg >= OMNI_JWT_NALGS) {
        return "unknown";
    }

    return omni_jwt_algs[alg].name;
}


void
omni_jwt_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  args;

    if (err == NULL || errlen == 0) {
        return;
    }

    va_start(args, fmt);
    vsnprintf(err, errlen, fmt, args);
    va_end(args);
}


/* Copies untrusted text for a one-line message: at most 64 bytes,
 * control characters and quotes replaced with '?'. */

void
omni_jwt_printable(char *dst, size_t size, const char *src, size_t len)
{
    size_t         i, n;
    unsigned char  c;

    n = 0;

    for (i = 0; i < len && n + 4 < size; i++) {
        if (i == 64) {
            memcpy(dst + n, "...", 3);
            n += 3;
            break;
        }

        c = (unsigned char) src[i];
        dst[n++] = (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
                   ? '?' : (char) c;
    }

    dst[n] = '\0';
}


static const unsigned char *
omni_jwt_find(const unsigned char *hay, size_t len, const char *needle)
{
    size_t  i, n;

    n = strlen(needle);

    for (i = 0; n <= len && i <= len - n; i++) {
        if (hay[i] == (unsigned char) needle[0]
            && memcmp(hay + i, needle, n) == 0)
        {
            return hay + i;
        }
    }

    return NULL;
}


const EVP_MD *
omni_jwt_md(omni_jwt_alg_t alg)
{
    switch (omni_jwt_algs[alg].hash_len) {
    case 32:
        return EVP_sha256();
    case 48:
        return EVP_sha384();
    case 64:
        return EVP_sha512();
    default:
        return NULL;
    }
}


/* "RS256,PS256" (spaces around names ignored) to a set of ALG_BITs. */

int
omni_jwt_algs_parse(const char *algs, unsigned *bits, const char *where,
    char *err, size_t errlen)
{
    const char  *p, *end;
    char         name[80];
    int          alg;

    *bits = 0;
    p = algs;

    for ( ;; ) {
        while (*p == ' ') {
            p++;
        }

        end = p;
        while (*end != '\0' && *end != ',' && *end != ' ') {
            end++;
        }

        alg = omni_jwt_alg_parse(p, (size_t) (end - p));
        if (alg < 0) {
            omni_jwt_printable(name, sizeof(name), p, (size_t) (end - p));
            omni_jwt_err(err, errlen, "%s: unknown algorithm \"%s\"",
                         where, name);
            return -1;
        }

        *bits |= OMNI_JWT_ALG_BIT(alg);

        while (*end == ' ') {
            end++;
        }

        if (*end == '\0') {
            return 0;
        }

        if (*end != ',') {
            omni_jwt_err(err, errlen, "%s: bad algorithm list \"%s\"",
                         where, algs);
            return -1;
        }

        p = end + 1;
    }
}


omni_jwt_alg_t
omni_jwt_default_alg(omni_jwt_kind_t kind)
{
    switch (kind) {
    case OMNI_JWT_KIND_SECRET:
        return OMNI_JWT_HS256;
    case OMNI_JWT_KIND_RSA:
        return OMNI_JWT_RS256;
    case OMNI_JWT_KIND_RSA_PSS:
        return OMNI_JWT_PS256;
    case OMNI_JWT_KIND_P256:
        return OMNI_JWT_ES256;
    case OMNI_JWT_KIND_P384:
        return OMNI_JWT_ES384;
    case OMNI_JWT_KIND_P521:
        return OMNI_JWT_ES512;
    case OMNI_JWT_KIND_ED25519:
        return OMNI_JWT_EDDSA;
    default:
        return OMNI_JWT_NALGS;
    }
}


omni_jwt_kind_t
omni_jwt_pkey_kind(EVP_PKEY *pkey, char *desc, size_t size)
{
    char         group[80];
    size_t       len;
    const char  *type;

    if (EVP_PKEY_is_a(pkey, "RSA")) {
        snprintf(desc, size, "an RSA key");
        return OMNI_JWT_KIND_RSA;
    }

    if (EVP_PKEY_is_a(pkey, "RSA-PSS")) {
        snprintf(desc, size, "an RSA-PSS key");
        return OMNI_JWT_KIND_RSA_PSS;
    }

    if (EVP_PKEY_is_a(pkey, "EC")) {
        if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &len) != 1) {
            ERR_clear_error();
            snprintf(desc, size, "an EC key with explicit curve parameters");
            return OMNI_JWT_KIND_OTHER;
        }

        if (strcmp(group, "prime256v1") == 0) {
            snprintf(desc, size, "an EC P-256 key");
            return OMNI_JWT_KIND_P256;
        }

        if (strcmp(group, "secp384r1") == 0) {
            snprintf(desc, size, "an EC P-384 key");
            return OMNI_JWT_KIND_P384;
        }

        if (strcmp(group, "secp521r1") == 0) {
            snprintf(desc, size, "an EC P-521 key");
            return OMNI_JWT_KIND_P521;
        }

        snprintf(desc, size, "an EC %s key", group);
        return OMNI_JWT_KIND_OTHER;
    }

    if (EVP_PKEY_is_a(pkey, "ED25519")) {
        snprintf(desc, size, "an Ed25519 key");
        return OMNI_JWT_KIND_ED25519;
    }

    if (EVP_PKEY_is_a(pkey, "ED448")) {
        snprintf(desc, size, "an Ed448 key");
        return OMNI_JWT_KIND_OTHER;
    }

    type = EVP_PKEY_get0_type_name(pkey);
    snprintf(desc, size, "a %s key", type ? type : "unknown");

    return OMNI_JWT_KIND_OTHER;
}


/* Every algorithm in bits must suit the key: "holder" ("the file") holds
 * desc ("an RSA key"). */

int
omni_jwt_compat(unsigned bits, omni_jwt_kind_t kind, const char *holder,
    const char *desc, int rsa_bits, size_t secret_len, const char *where,
    char *err, size_t errlen)
{
    int                         i, ok;
    const omni_jwt_alg_info_t  *a;

    for (i = 0; i < OMNI_JWT_NALGS; i++) {
        if (!(bits & OMNI_JWT_ALG_BIT(i))) {
            continue;
        }

        a = &omni_jwt_algs[i];

        if (a->family == OMNI_JWT_PSS) {
            ok = (kind == OMNI_JWT_KIND_RSA || kind == OMNI_JWT_KIND_RSA_PSS);

        } else {
            ok = (kind == a->kind);
        }

        if (!ok) {
            omni_jwt_err(err, errlen, "%s: key/algorithm mismatch: %s needs "
                         "%s, %s holds %s", where, a->name, a->needs,
                         holder, desc);
            return -1;
        }

        if (a->family == OMNI_JWT_HMAC && secret_len < a->hash_len) {
            omni_jwt_err(err, errlen, "%s: %s needs a secret of at least %zu "
                         "bytes, %s holds %zu", where, a->name, a->hash_len,
                         holder, secret_len);
            return -1;
        }

        if ((a->family == OMNI_JWT_PKCS1 || a->family == OMNI_JWT_PSS)
            && rsa_bits < OMNI_JWT_MIN_RSA_BITS)
        {
            omni_jwt_err(err, errlen, "%s: %s needs an RSA key of at least "
                         "%d bits, %s holds a %d-bit key", where, a->name,
                         OMNI_JWT_MIN_RSA_BITS, holder, rsa_bits);
            return -1;
        }
    }

    return 0;
}


int
omni_jwt_read_file(const char *path, unsigned char **data, size_t *len,
    char *err, size_t errlen)
{
    FILE           *f;
    size_t          n, size;
    unsigned char  *buf, *nbuf;

    *data = NULL;
    *len = 0;

    f = fopen(path, "rb");
    if (f == NULL) {
        omni_jwt_err(err, errlen, "%s: cannot open: %s", path,
                     strerror(errno));
        return -1;
    }

    size = 4096;
    n = 0;
    buf = malloc(size);
    if (buf == NULL) {
        goto nomem;
    }

    for ( ;; ) {
        n += fread(buf + n, 1, size - n - 1, f);

        if (ferror(f)) {
            omni_jwt_err(err, errlen, "%s: cannot read: %s", path,
                         strerror(errno));
            goto failed;
        }

        if (feof(f)) {
            if (n > OMNI_JWT_MAX_FILE) {
                omni_jwt_err(err, errlen, "%s: file is larger than %d bytes",
                             path, OMNI_JWT_MAX_FILE);
                goto failed;
            }

            break;
        }

        if (size > OMNI_JWT_MAX_FILE) {
            omni_jwt_err(err, errlen, "%s: file is larger than %d bytes",
                         path, OMNI_JWT_MAX_FILE);
            goto failed;
        }

        nbuf = realloc(buf, size * 2);
        if (nbuf == NULL) {
            goto nomem;
        }

        buf = nbuf;
        size *= 2;
    }

    fclose(f);

    if (n == 0) {
        free(buf);
        omni_jwt_err(err, errlen, "%s: file is empty", path);
        return -1;
    }

    buf[n] = '\0';
    *data = buf;
    *len = n;

    return 0;

nomem:

    omni_jwt_err(err, errlen, "%s: out of memory", path);

failed:

    omni_jwt_free_file(buf, n);
    fclose(f);

    return -1;
}


/* Key files may hold secrets: wipe them. */

void
omni_jwt_free_file(unsigned char *data, size_t len)
{
    if (data != NULL) {
        OPENSSL_cleanse(data, len);
        free(data);
    }
}


static int
omni_jwt_no_pass(char *buf, int size, int rwflag, void *u)
{
    return -1;
}


static int
omni_jwt_ossl_no_pass(char *pass, size_t size, size_t *len,
    const OSSL_PARAM params[], void *arg)
{
    return 0;
}


static EVP_PKEY *
omni_jwt_pem_pkey(const unsigned char *data, size_t len, const char *path,
    char *err, size_t errlen)
{
    BIO                 *bio;
    X509                *x509;
    EVP_PKEY            *pkey;
    OSSL_DECODER_CTX    *dctx;
    const unsigned char *p;
    unsigned long        e;
    int                  blocks;

    if (len > INT_MAX) {
        omni_jwt_err(err, errlen, "%s: file too large", path);
        return NULL;
    }

    bio = BIO_new_mem_buf(data, (int) len);
    if (bio == NULL) {
        omni_jwt_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }

    pkey = NULL;

    if (omni_jwt_find(data, len, "-----BEGIN CERTIFICATE-----") != NULL) {
        /* the first certificate's key; the certificate is not validated */
        x509 = PEM_read_bio_X509(bio, NULL, omni_jwt_no_pass, NULL);
        if (x509 != NULL) {
            pkey = X509_get_pubkey(x509);
            X509_free(x509);
        }

    } else {
        blocks = 0;
        for (p = data; (p = omni_jwt_find(p, len - (size_t) (p - data),
                                          "-----BEGIN ")) != NULL;
             p++)
        {
            blocks++;
        }

        if (blocks > 1) {
            omni_jwt_err(err, errlen, "%s: holds %d PEM blocks, expected one "
                         "public key", path, blocks);
            BIO_free(bio);
            return NULL;
        }

        dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL,
                                             EVP_PKEY_PUBLIC_KEY, NULL, NULL);
        if (dctx != NULL) {
            OSSL_DECODER_CTX_set_passphrase_cb(dctx, omni_jwt_ossl_no_pass,
                                               NULL);
            if (OSSL_DECODER_from_bio(dctx, bio) != 1) {
                EVP_PKEY_free(pkey);
                pkey = NULL;
            }
            OSSL_DECODER_CTX_free(dctx);
        }
    }

    BIO_free(bio);

    if (pkey == NULL) {
        e = ERR_peek_last_error();
        omni_jwt_err(err, errlen, "%s: not a PEM public key or certificate "
                     "that OpenSSL can read (%s)", path,
                     e ? ERR_reason_error_string(e) : "no key found");
        ERR_clear_error();
        return NULL;
    }

    ERR_clear_error();

    return pkey;
}


/* Public key material that must never become an HMAC secret: with it
 * anyone could sign. NULL when data looks like a plain secret. */

static const char *
omni_jwt_not_secret(const unsigned char *data, size_t len)
{
    EVP_PKEY             *pkey;
    X509                 *x509;
    OSSL_DECODER_CTX     *dctx;
    const unsigned char  *p;
    const char           *what;

    if ((len > 4 && memcmp(data, "ssh-", 4) == 0)
        || (len > 11 && memcmp(data, "ecdsa-sha2-", 11) == 0))
    {
        return "an OpenSSH public key (convert it to PEM with ssh-keygen -e "
               "-m PKCS8)";
    }

    if (omni_jwt_find(data, len, "\"kty\"") != NULL) {
        return "a JWK (use omni_jwt_jwks for JWKS files)";
    }

    if (len > LONG_MAX) {
        return NULL;
    }

    what = NULL;

    p = data;
    x509 = d2i_X509(NULL, &p, (long) len);
    if (x509 != NULL) {
        X509_free(x509);
        what = "a DER certificate (convert it to PEM)";
    }

    pkey = NULL;
    dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "DER", NULL, NULL, 0, NULL,
                                         NULL);
    if (what == NULL && dctx != NULL) {
        OSSL_DECODER_CTX_set_passphrase_cb(dctx, omni_jwt_ossl_no_pass, NULL);
        p = data;
        if (OSSL_DECODER_from_data(dctx, &p, &len) == 1 && pkey != NULL) {
            what = "a DER key (convert a public key to PEM)";
        }
    }

    OSSL_DECODER_CTX_free(dctx);
    EVP_PKEY_free(pkey);
    ERR_clear_error();

    return what;
}


int
omni_jwt_key_load(omni_jwt_key_t *key, const char *path, const char *algs,
    const char *kid, char *err, size_t errlen)
{
    int              i, rsa_bits;
    size_t           len;
    unsigned         bits;
    EVP_PKEY        *pkey;
    const char      *what;
    unsigned char   *data;
    omni_jwt_kind_t  kind;
    char             desc[96];

    memset(key, 0, sizeof(*key));

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }

    if (path == NULL || path[0] == '\0') {
        omni_jwt_err(err, errlen, "no key file given");
        return -1;
    }

    if (kid != NULL) {
        if (strlen(kid) > OMNI_JWT_MAX_KID) {
            omni_jwt_err(err, errlen, "%s: kid is longer than %d bytes",
                         path, OMNI_JWT_MAX_KID);
            return -1;
        }

        strcpy(key->kid, kid);
    }

    bits = 0;

    if (algs != NULL
        && omni_jwt_algs_parse(algs, &bits, path, err, errlen) != 0)
    {
        return -1;
    }

    if (omni_jwt_read_file(path, &data, &len, err, errlen) != 0) {
        return -1;
    }

    pkey = NULL;

    if (omni_jwt_find(data, len, "PRIVATE KEY-----") != NULL) {
        omni_jwt_err(err, errlen, "%s: holds a private key; give the public "
                     "key (openssl pkey -pubout)", path);
        goto failed;
    }

    if (omni_jwt_find(data, len, "-----BEGIN ") != NULL) {

        for (i = OMNI_JWT_HS256; i <= OMNI_JWT_HS512; i++) {
            if (bits & OMNI_JWT_ALG_BIT(i)) {
                omni_jwt_err(err, errlen, "%s: key/algorithm mismatch: %s "
                             "needs an HMAC secret, the file holds PEM (a "
                             "public key is never an HMAC secret)", path,
                             omni_jwt_algs[i].name);
                goto failed;
            }
        }

        pkey = omni_jwt_pem_pkey(data, len, path, err, errlen);
        if (pkey == NULL) {
            goto failed;
        }

        kind = omni_jwt_pkey_kind(pkey, desc, sizeof(desc));

        if (bits == 0) {
            if (omni_jwt_default_alg(kind) == OMNI_JWT_NALGS) {
                omni_jwt_err(err, errlen, "%s: unsupported key: the file "
                             "holds %s", path, desc);
                goto failed;
            }

            bits = OMNI_JWT_ALG_BIT(omni_jwt_default_alg(kind));
        }

        rsa_bits = EVP_PKEY_get_bits(pkey);

        if (omni_jwt_compat(bits, kind, "the file", desc, rsa_bits, 0, path,
                            err, errlen)
            != 0)
        {
            goto failed;
        }

        key->pkey = pkey;
        pkey = NULL;

    } else {
        what = omni_jwt_not_secret(data, len);
        if (what != NULL) {
            omni_jwt_err(err, errlen, "%s: holds %s, not an HMAC secret",
                         path, what);
            goto failed;
        }

        /* one trailing newline ("\n" or "\r\n") is not part of it */

        if (data[len - 1] == '\n') {
            len--;
            if (len > 0 && data[len - 1] == '\r') {
                len--;
            }
        }

        if (len == 0) {
            omni_jwt_err(err, errlen, "%s: HMAC secret is empty", path);
            goto failed;
        }

        if (bits == 0) {
            bits = OMNI_JWT_ALG_BIT(OMNI_JWT_HS256);
        }

        if (omni_jwt_compat(bits, OMNI_JWT_KIND_SECRET, "the file",
                            "an HMAC secret (not PEM)", 0, len, path, err,
                            errlen)
            != 0)
        {
            goto failed;
        }

        key->secret = malloc(len);
        if (key->secret == NULL) {
            omni_jwt_err(err, errlen, "%s: out of memory", path);
            goto failed;
        }

        memcpy(key->secret, data, len);
        key->secret_len = len;
    }

    key->algs = bits;
    omni_jwt_free_file(data, len);
    omni_jwt_key_prepare(key);

    return 0;

failed:

    EVP_PKEY_free(pkey);
    omni_jwt_free_file(data, len);
    memset(key, 0, sizeof(*key));

    return -1;
}


/* 1 when a public key's type is the one alg's family needs (for ECDSA,
 * on the curve of the hash's size). */

static int
omni_jwt_pkey_fits(EVP_PKEY *pkey, int alg)
{
    const omni_jwt_alg_info_t  *a;

    a = &omni_jwt_algs[alg];

    switch (a->family) {
    case OMNI_JWT_PKCS1:
        return EVP_PKEY_is_a(pkey, "RSA");
    case OMNI_JWT_PSS:
        return EVP_PKEY_is_a(pkey, "RSA") || EVP_PKEY_is_a(pkey, "RSA-PSS");
    case OMNI_JWT_ECDSA:
        return EVP_PKEY_is_a(pkey, "EC")
               && EVP_PKEY_get_bits(pkey) == (int) (a->hash_len == 64
                                                    ? 521
                                                    : a->hash_len * 8);
    case OMNI_JWT_ED25519:
        return EVP_PKEY_is_a(pkey, "ED25519");
    default:
        return 0;
    }
}


/*
 * Sets up, for every algorithm the key is bound to, the context a
 * verification starts from: digest fetched, key attached, padding chosen.
 * A context that cannot be made is left NULL and verification builds one
 * as before, so this only ever saves work.
 */

void
omni_jwt_key_prepare(omni_jwt_key_t *key)
{
    int                         alg;
    EVP_MAC                    *hmac;
    EVP_PKEY_CTX               *pctx;
    EVP_MD_CTX                 *mctx;
    OSSL_PARAM                  params[2];
    const EVP_MD               *md;
    const omni_jwt_alg_info_t  *a;

    for (alg = 0; alg < OMNI_JWT_NALGS; alg++) {

        if (!(key->algs & OMNI_JWT_ALG_BIT(alg))) {
            continue;
        }

        a = &omni_jwt_algs[alg];
        md = omni_jwt_md(alg);

        if (a->family == OMNI_JWT_HMAC) {
            if (key->secret == NULL) {
                continue;
            }

            hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
            if (hmac == NULL) {
                continue;
            }

            key->mac[alg] = EVP_MAC_CTX_new(hmac);
            EVP_MAC_free(hmac);

            params[0] = OSSL_PARAM_construct_utf8_string("digest",
                            (char *) EVP_MD_get0_name(md), 0);
            params[1] = OSSL_PARAM_construct_end();

            if (key->mac[alg] != NULL
                && EVP_MAC_init(key->mac[alg], key->secret, key->secret_len,
                                params)
                   != 1)
            {
                EVP_MAC_CTX_free(key->mac[alg]);
                key->mac[alg] = NULL;
            }

            continue;
        }

        if (key->pkey == NULL || !omni_jwt_pkey_fits(key->pkey, alg)) {
            continue;
        }

        key->typed |= OMNI_JWT_ALG_BIT(alg);

        mctx = EVP_MD_CTX_new();
        pctx = NULL;

        if (mctx == NULL
            || EVP_DigestVerifyInit(mctx, &pctx, md, NULL, key->pkey) != 1
            || (a->family == OMNI_JWT_PKCS1
                && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING)
                   <= 0)
            || (a->family == OMNI_JWT_PSS
                && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING)
                    <= 0
                    || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
                                                        RSA_PSS_SALTLEN_DIGEST)
                       <= 0
                    || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) <= 0)))
        {
            EVP_MD_CTX_free(mctx);
            continue;
        }

        key->verify[alg] = mctx;

        if (a->family != OMNI_JWT_ED25519) {
            omni_jwt_key_prepare_pkey(key, alg, md);
        }
    }

    ERR_clear_error();
}


/* The reusable contexts of an RSA or ECDSA algorithm: the digest of the
 * signing input, then EVP_PKEY_verify() of it, as EVP_DigestVerify()
 * does in one call from a copy of the context above. */

static void
omni_jwt_key_prepare_pkey(omni_jwt_key_t *key, int alg, const EVP_MD *md)
{
    EVP_MD_CTX                 *dctx;
    EVP_PKEY_CTX               *pctx;
    const omni_jwt_alg_info_t  *a;

    a = &omni_jwt_algs[alg];

    dctx = EVP_MD_CTX_new();
    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);

    if (dctx == NULL || pctx == NULL
        || EVP_DigestInit_ex2(dctx, md, NULL) != 1
        || EVP_PKEY_verify_init(pctx) != 1
        || (a->family == OMNI_JWT_PKCS1
            && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)
        || (a->family == OMNI_JWT_PSS
            && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING)
               <= 0)
        || EVP_PKEY_CTX_set_signature_md(pctx, md) <= 0
        || (a->family == OMNI_JWT_PSS
            && (EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST)
                <= 0
                || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) <= 0)))
    {
        EVP_MD_CTX_free(dctx);
        EVP_PKEY_CTX_free(pctx);
        return;
    }

    key->digest[alg] = dctx;
    key->pverify[alg] = pctx;
}


void
omni_jwt_key_free(omni_jwt_key_t *key)
{
    int  i;

    if (key == NULL) {
        return;
    }

    for (i = 0; i < OMNI_JWT_NALGS; i++) {
        EVP_MD_CTX_free(key->verify[i]);
        EVP_MAC_CTX_free(key->mac[i]);
        EVP_MD_CTX_free(key->digest[i]);
        EVP_PKEY_CTX_free(key->pverify[i]);
    }

    EVP_PKEY_free(key->pkey);

    if (key->secret != NULL) {
        OPENSSL_cleanse(key->secret, key->secret_len);
        free(key->secret);
    }

    memset(key, 0, sizeof(*key));
}
