/*
 * omni_jwt.c: JWS compact tokens: a strict parser, keys parsed once, and
 * signature and claim checks over OpenSSL 3 and yajl (never libjwt).
 */


#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "omni_jwt.h"


#define OMNI_JWT_MAX_DEPTH     32             /* JSON nesting in a token */
#define OMNI_JWT_MAX_FILE      (1024 * 1024)  /* key and JWKS files */
#define OMNI_JWT_MIN_RSA_BITS  2048
#define OMNI_JWT_MAX_KID       127


typedef enum {
    OMNI_JWT_HMAC = 0,
    OMNI_JWT_PKCS1,
    OMNI_JWT_PSS,
    OMNI_JWT_ECDSA,
    OMNI_JWT_ED25519
} omni_jwt_family_t;


/* What a key is, as far as algorithm binding cares. */
typedef enum {
    OMNI_JWT_KIND_SECRET = 0,
    OMNI_JWT_KIND_RSA,
    OMNI_JWT_KIND_RSA_PSS,
    OMNI_JWT_KIND_P256,
    OMNI_JWT_KIND_P384,
    OMNI_JWT_KIND_P521,
    OMNI_JWT_KIND_ED25519,
    OMNI_JWT_KIND_OTHER
} omni_jwt_kind_t;


typedef struct {
    const char         *name;
    omni_jwt_family_t   family;
    size_t              hash_len;  /* digest bytes; HS: minimum secret */
    size_t              coord;     /* ES: bytes of r and of s */
    omni_jwt_kind_t     kind;      /* the key kind it needs (RS/PS: RSA) */
    const char         *needs;
} omni_jwt_alg_info_t;


static const omni_jwt_alg_info_t  omni_jwt_algs[OMNI_JWT_NALGS] = {
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


static void omni_jwt_err(char *err, size_t errlen, const char *fmt, ...);
static void omni_jwt_printable(char *dst, size_t size, const char *src,
    size_t len);
static const unsigned char *omni_jwt_find(const unsigned char *hay,
    size_t len, const char *needle);
static int omni_jwt_b64_value(unsigned char c);
static const EVP_MD *omni_jwt_md(omni_jwt_alg_t alg);
static int omni_jwt_algs_parse(const char *algs, unsigned *bits,
    const char *where, char *err, size_t errlen);
static omni_jwt_alg_t omni_jwt_default_alg(omni_jwt_kind_t kind);
static omni_jwt_kind_t omni_jwt_pkey_kind(EVP_PKEY *pkey, char *desc,
    size_t size);
static int omni_jwt_compat(unsigned bits, omni_jwt_kind_t kind,
    const char *holder, const char *desc, int rsa_bits, size_t secret_len,
    const char *where, char *err, size_t errlen);
static int omni_jwt_read_file(const char *path, unsigned char **data,
    size_t *len, char *err, size_t errlen);
static void omni_jwt_free_file(unsigned char *data, size_t len);
static int omni_jwt_no_pass(char *buf, int size, int rwflag, void *u);
static int omni_jwt_ossl_no_pass(char *pass, size_t size, size_t *len,
    const OSSL_PARAM params[], void *arg);
static EVP_PKEY *omni_jwt_pem_pkey(const unsigned char *data, size_t len,
    const char *path, char *err, size_t errlen);
static const char *omni_jwt_not_secret(const unsigned char *data,
    size_t len);
static yajl_val omni_jwt_member(yajl_val obj, const char *name, size_t len);
static int omni_jwt_jwk_load(omni_jwt_key_t *key, yajl_val jwk,
    const char *path, size_t index, char *err, size_t errlen);
static int omni_jwt_jwk_bytes(yajl_val jwk, const char *name,
    unsigned char **out, size_t *outlen, const char *where, char *err,
    size_t errlen);
static EVP_PKEY *omni_jwt_jwk_rsa(yajl_val jwk, const char *where,
    char *err, size_t errlen);
static EVP_PKEY *omni_jwt_jwk_ec(yajl_val jwk, omni_jwt_kind_t kind,
    size_t coord, const char *where, char *err, size_t errlen);
static EVP_PKEY *omni_jwt_fromdata(const char *type, OSSL_PARAM_BLD *bld);
static int omni_jwt_json_scan(const unsigned char *p, size_t n,
    const char **why);
static int omni_jwt_key_cmp(const void *a, const void *b);
static int omni_jwt_json_dups(yajl_val v);
static omni_jwt_status_t omni_jwt_decode_json(const char *seg, size_t len,
    yajl_val *out, const char *what, const char **why);
static omni_jwt_status_t omni_jwt_parse_header(omni_jwt_t *jwt,
    const char **why);
static omni_jwt_status_t omni_jwt_numeric(yajl_val payload,
    const char *name, int *has, double *value, const char **why);
static int omni_jwt_strcaseeq(const char *a, const char *b);
static void omni_jwt_key_prepare(omni_jwt_key_t *key);
static int omni_jwt_hmac(const omni_jwt_key_t *key, const omni_jwt_t *jwt,
    unsigned char *mac, unsigned int *mac_len);
static int omni_jwt_verify_one(const omni_jwt_t *jwt,
    const omni_jwt_key_t *key);
static int omni_jwt_verify_pkey(const omni_jwt_t *jwt,
    const omni_jwt_key_t *key,
    const unsigned char *sig, size_t sig_len);
static int omni_jwt_append(char *buf, size_t size, size_t *pos,
    const char *s);
static int omni_jwt_append_scalar(char *buf, size_t size, size_t *pos,
    yajl_val v);


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


int
omni_jwt_base64url_decode(unsigned char *out, size_t *outlen, const char *in,
    size_t len)
{
    size_t          i, n, rem;
    unsigned long   acc;
    int             j, v;
    const unsigned char  *p;

    p = (const unsigned char *) in;
    rem = len % 4;

    if (rem == 1) {
        return -1;
    }

    n = 0;

    for (i = 0; i + 4 <= len; i += 4) {
        acc = 0;

        for (j = 0; j < 4; j++) {
            v = omni_jwt_b64_value(p[i + j]);
            if (v < 0) {
                return -1;
            }
            acc = (acc << 6) | (unsigned long) v;
        }

        out[n++] = (unsigned char) (acc >> 16);
        out[n++] = (unsigned char) (acc >> 8);
        out[n++] = (unsigned char) acc;
    }

    if (rem != 0) {
        acc = 0;

        for (j = 0; j < (int) rem; j++) {
            v = omni_jwt_b64_value(p[i + j]);
            if (v < 0) {
                return -1;
            }
            acc = (acc << 6) | (unsigned long) v;
        }

        /* the unused low bits of the last character must be zero */

        if (rem == 2) {
            if (acc & 0x0f) {
                return -1;
            }
            out[n++] = (unsigned char) (acc >> 4);

        } else {
            if (acc & 0x03) {
                return -1;
            }
            out[n++] = (unsigned char) (acc >> 10);
            out[n++] = (unsigned char) (acc >> 2);
        }
    }

    *outlen = n;

    return 0;
}


static int
omni_jwt_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '-') {
        return 62;
    }

    if (c == '_') {
        return 63;
    }

    return -1;
}


static void
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

static void
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


static const EVP_MD *
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

static int
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


static omni_jwt_alg_t
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


static omni_jwt_kind_t
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

static int
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


static int
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

static void
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
    }

    EVP_PKEY_free(key->pkey);

    if (key->secret != NULL) {
        OPENSSL_cleanse(key->secret, key->secret_len);
        free(key->secret);
    }

    memset(key, 0, sizeof(*key));
}


static yajl_val
omni_jwt_member(yajl_val obj, const char *name, size_t len)
{
    size_t  i;

    if (!YAJL_IS_OBJECT(obj)) {
        return NULL;
    }

    for (i = 0; i < obj->u.object.len; i++) {
        if (strncmp(obj->u.object.keys[i], name, len) == 0
            && obj->u.object.keys[i][len] == '\0')
        {
            return obj->u.object.values[i];
        }
    }

    return NULL;
}


int
omni_jwt_jwks_load(omni_jwt_key_t **keys, size_t *nkeys, const char *path,
    char *err, size_t errlen)
{
    int              rc;
    char            *nl, kid[80];
    size_t           len, i, j, n;
    yajl_val         root, list;
    const char      *why;
    unsigned char   *data;
    omni_jwt_key_t  *arr;
    char             ebuf[256];

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

    /* the same strictness as tokens: a JWKS may come from the network */

    if (omni_jwt_json_scan(data, len, &why) != 0) {
        omni_jwt_free_file(data, len);
        omni_jwt_err(err, errlen, "%s: not valid JSON: %s", path, why);
        return -1;
    }

    ebuf[0] = '\0';
    root = yajl_tree_parse((const char *) data, ebuf, sizeof(ebuf));
    omni_jwt_free_file(data, len);

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


/*
 * Checks what yajl_tree_parse() would let through: NUL bytes (yajl reads a
 * C string), \u0000 in strings (it would cut them short), comments (yajl
 * tree allows them) and nesting deeper than OMNI_JWT_MAX_DEPTH (bounds the
 * recursion of yajl_tree_free() and of our walks).
 */

static int
omni_jwt_json_scan(const unsigned char *p, size_t n, const char **why)
{
    int     depth, in_str;
    size_t  i;

    depth = 0;
    in_str = 0;

    for (i = 0; i < n; i++) {

        if (p[i] == '\0') {
            *why = "NUL byte in JSON";
            return -1;
        }

        if (in_str) {
            if (p[i] == '"') {
                in_str = 0;

            } else if (p[i] == '\\' && i + 1 < n) {
                if (n - i >= 6 && memcmp(p + i + 1, "u0000", 5) == 0) {
                    *why = "\\u0000 in a JSON string";
                    return -1;
                }

                i++;
            }

            continue;
        }

        switch (p[i]) {
        case '"':
            in_str = 1;
            break;

        case '{':
        case '[':
            if (++depth > OMNI_JWT_MAX_DEPTH) {
                *why = "JSON nested too deeply";
                return -1;
            }
            break;

        case '}':
        case ']':
            depth--;
            break;

        case '/':
            *why = "comment in JSON";
            return -1;
        }
    }

    return 0;
}


static int
omni_jwt_key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}


/* 1 when an object anywhere holds a member name twice (RFC 7515 4: reject,
 * since yajl keeps both and lookups would see the first), -1 no memory. */

static int
omni_jwt_json_dups(yajl_val v)
{
    int           rc;
    size_t        i, n;
    const char  **keys;

    if (YAJL_IS_ARRAY(v)) {
        for (i = 0; i < v->u.array.len; i++) {
            rc = omni_jwt_json_dups(v->u.array.values[i]);
            if (rc != 0) {
                return rc;
            }
        }

        return 0;
    }

    if (!YAJL_IS_OBJECT(v)) {
        return 0;
    }

    n = v->u.object.len;

    if (n > 1) {
        keys = malloc(n * sizeof(*keys));
        if (keys == NULL) {
            return -1;
        }

        memcpy(keys, v->u.object.keys, n * sizeof(*keys));
        qsort(keys, n, sizeof(*keys), omni_jwt_key_cmp);

        for (i = 1; i < n; i++) {
            if (strcmp(keys[i - 1], keys[i]) == 0) {
                free(keys);
                return 1;
            }
        }

        free(keys);
    }

    for (i = 0; i < n; i++) {
        rc = omni_jwt_json_dups(v->u.object.values[i]);
        if (rc != 0) {
            return rc;
        }
    }

    return 0;
}


/* A base64url segment holding a JSON object; what is "header"/"payload",
 * and the static reasons below name it. */

static omni_jwt_status_t
omni_jwt_decode_json(const char *seg, size_t len, yajl_val *out,
    const char *what, const char **why)
{
    int             hdr, rc;
    size_t          n;
    yajl_val        v;
    unsigned char  *buf;

    hdr = (what[0] == 'h');
    *out = NULL;

    if (len == 0) {
        *why = hdr ? "empty header" : "empty payload";
        return OMNI_JWT_MALFORMED;
    }

    buf = malloc(len / 4 * 3 + 3);
    if (buf == NULL) {
        *why = "out of memory";
        return OMNI_JWT_MALFORMED;
    }

    if (omni_jwt_base64url_decode(buf, &n, seg, len) != 0) {
        free(buf);
        *why = hdr ? "header is not base64url" : "payload is not base64url";
        return OMNI_JWT_MALFORMED;
    }

    if (omni_jwt_json_scan(buf, n, why) != 0) {
        free(buf);
        return OMNI_JWT_MALFORMED;
    }

    buf[n] = '\0';
    v = yajl_tree_parse((const char *) buf, NULL, 0);
    free(buf);

    if (v == NULL) {
        *why = hdr ? "header is not JSON" : "payload is not JSON";
        return OMNI_JWT_MALFORMED;
    }

    *out = v;

    if (!YAJL_IS_OBJECT(v)) {
        *why = hdr ? "header is not a JSON object"
                   : "payload is not a JSON object";
        return OMNI_JWT_MALFORMED;
    }

    rc = omni_jwt_json_dups(v);

    if (rc != 0) {
        *why = (rc < 0) ? "out of memory"
               : hdr ? "duplicate member in header"
                     : "duplicate member in payload";
        return OMNI_JWT_MALFORMED;
    }

    return OMNI_JWT_OK;
}


static int
omni_jwt_strcaseeq(const char *a, const char *b)
{
    unsigned char  ca, cb;

    do {
        ca = (unsigned char) *a++;
        cb = (unsigned char) *b++;

        if (ca >= 'A' && ca <= 'Z') {
            ca = (unsigned char) (ca + 32);
        }

        if (cb >= 'A' && cb <= 'Z') {
            cb = (unsigned char) (cb + 32);
        }

        if (ca != cb) {
            return 0;
        }

    } while (ca != '\0');

    return 1;
}


static omni_jwt_status_t
omni_jwt_parse_header(omni_jwt_t *jwt, const char **why)
{
    int       alg;
    yajl_val  v;

    v = omni_jwt_member(jwt->header, "alg", 3);

    if (v == NULL) {
        *why = "alg missing";
        return OMNI_JWT_MALFORMED;
    }

    if (!YAJL_IS_STRING(v)) {
        *why = "unsupported alg";
        return OMNI_JWT_MALFORMED;
    }

    alg = omni_jwt_alg_parse(v->u.string, strlen(v->u.string));

    if (alg < 0) {
        *why = "unsupported alg";
        return OMNI_JWT_MALFORMED;
    }

    jwt->alg = (omni_jwt_alg_t) alg;

    if (omni_jwt_member(jwt->header, "crit", 4) != NULL) {
        *why = "crit header not supported";
        return OMNI_JWT_MALFORMED;
    }

    v = omni_jwt_member(jwt->header, "kid", 3);

    if (v != NULL) {
        if (!YAJL_IS_STRING(v)) {
            *why = "kid is not a string";
            return OMNI_JWT_MALFORMED;
        }

        if (strlen(v->u.string) > OMNI_JWT_MAX_KID) {
            *why = "kid too long";
            return OMNI_JWT_MALFORMED;
        }

        jwt->kid = v->u.string;
    }

    v = omni_jwt_member(jwt->header, "typ", 3);

    if (v != NULL) {
        if (!YAJL_IS_STRING(v)
            || !(omni_jwt_strcaseeq(v->u.string, "JWT")
                 || omni_jwt_strcaseeq(v->u.string, "application/jwt")
                 || omni_jwt_strcaseeq(v->u.string, "at+jwt")
                 || omni_jwt_strcaseeq(v->u.string, "application/at+jwt")))
        {
            *why = "unsupported typ";
            return OMNI_JWT_MALFORMED;
        }
    }

    return OMNI_JWT_OK;
}


static omni_jwt_status_t
omni_jwt_numeric(yajl_val payload, const char *name, int *has,
    double *value, const char **why)
{
    yajl_val  v;

    v = omni_jwt_member(payload, name, strlen(name));

    if (v == NULL) {
        return OMNI_JWT_OK;
    }

    /* yajl leaves DOUBLE_VALID unset on overflow and underflow (1e999) */

    if (!YAJL_IS_DOUBLE(v) || !isfinite(v->u.number.d)) {
        *why = (name[0] == 'e') ? "exp is not a number"
               : (name[0] == 'n') ? "nbf is not a number"
                                  : "iat is not a number";
        return OMNI_JWT_MALFORMED;
    }

    *has = 1;
    *value = v->u.number.d;

    return OMNI_JWT_OK;
}


omni_jwt_status_t
omni_jwt_parse(omni_jwt_t *jwt, const char *token, size_t len,
    const char **why)
{
    size_t              i, dots[2], ndots, slen;
    const char         *w;
    omni_jwt_status_t   rc;

    memset(jwt, 0, sizeof(*jwt));
    dots[0] = 0;
    dots[1] = 0;
    jwt->alg = OMNI_JWT_NALGS;
    w = NULL;

    if (token == NULL || len == 0) {
        w = "empty token";
        rc = OMNI_JWT_MALFORMED;
        goto done;
    }

    if (len > OMNI_JWT_MAX_TOKEN) {
        w = "token too long";
        rc = OMNI_JWT_MALFORMED;
        goto done;
    }

    ndots = 0;

    for (i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (ndots == 2) {
                ndots++;
                break;
            }
            dots[ndots++] = i;
        }
    }

    if (ndots != 2) {
        w = "token is not three dot-separated segments";
        rc = OMNI_JWT_MALFORMED;
        goto done;
    }

    slen = len - dots[1] - 1;

    if (slen == 0) {
        w = "empty signature";
        rc = OMNI_JWT_MALFORMED;
        goto done;
    }

    rc = omni_jwt_decode_json(token, dots[0], &jwt->header, "header", &w);
    if (rc != OMNI_JWT_OK) {
        goto done;
    }

    rc = omni_jwt_parse_header(jwt, &w);
    if (rc != OMNI_JWT_OK) {
        goto done;
    }

    rc = omni_jwt_decode_json(token + dots[0] + 1, dots[1] - dots[0] - 1,
                              &jwt->payload, "payload", &w);
    if (rc != OMNI_JWT_OK) {
        goto done;
    }

    rc = omni_jwt_numeric(jwt->payload, "exp", &jwt->has_exp, &jwt->exp, &w);
    if (rc == OMNI_JWT_OK) {
        rc = omni_jwt_numeric(jwt->payload, "nbf", &jwt->has_nbf, &jwt->nbf,
                              &w);
    }
    if (rc == OMNI_JWT_OK) {
        rc = omni_jwt_numeric(jwt->payload, "iat", &jwt->has_iat, &jwt->iat,
                              &w);
    }
    if (rc != OMNI_JWT_OK) {
        goto done;
    }

    jwt->sig = malloc(slen / 4 * 3 + 3);
    if (jwt->sig == NULL) {
        w = "out of memory";
        rc = OMNI_JWT_MALFORMED;
        goto done;
    }

    if (omni_jwt_base64url_decode(jwt->sig, &jwt->sig_len,
                                  token + dots[1] + 1, slen)
        != 0)
    {
        w = "signature is not base64url";
        rc = OMNI_JWT_MALFORMED;
        goto done;
    }

    jwt->signing_input = (const unsigned char *) token;
    jwt->signing_input_len = dots[1];

done:

    if (rc != OMNI_JWT_OK) {
        /* never a half-parsed token: verify refuses one without an alg */
        jwt->alg = OMNI_JWT_NALGS;
        jwt->kid = NULL;
        jwt->signing_input = NULL;
        jwt->signing_input_len = 0;
    }

    if (why != NULL) {
        *why = w;
    }

    return rc;
}


void
omni_jwt_free(omni_jwt_t *jwt)
{
    if (jwt == NULL) {
        return;
    }

    yajl_tree_free(jwt->header);
    yajl_tree_free(jwt->payload);
    free(jwt->sig);

    memset(jwt, 0, sizeof(*jwt));
    jwt->alg = OMNI_JWT_NALGS;
}


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


/*
 * Sets up, for every algorithm the key is bound to, the context a
 * verification starts from: digest fetched, key attached, padding chosen.
 * A context that cannot be made is left NULL and verification builds one
 * as before, so this only ever saves work.
 */

static void
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

        if (key->pkey == NULL) {
            continue;
        }

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
    }

    ERR_clear_error();
}


/* HMAC of the signing input, from the key's prepared context if it has
 * one. 1 on success. */

static int
omni_jwt_hmac(const omni_jwt_key_t *key, const omni_jwt_t *jwt,
    unsigned char *mac, unsigned int *mac_len)
{
    int           ok;
    size_t        len;
    EVP_MAC_CTX  *ctx;

    if (key->mac[jwt->alg] == NULL) {
        return HMAC(omni_jwt_md(jwt->alg), key->secret,
                    (int) key->secret_len, jwt->signing_input,
                    jwt->signing_input_len, mac, mac_len)
               != NULL;
    }

    ctx = EVP_MAC_CTX_dup(key->mac[jwt->alg]);
    if (ctx == NULL) {
        return 0;
    }

    ok = EVP_MAC_update(ctx, jwt->signing_input, jwt->signing_input_len) == 1
         && EVP_MAC_final(ctx, mac, &len, EVP_MAX_MD_SIZE) == 1;

    EVP_MAC_CTX_free(ctx);
    *mac_len = (unsigned int) len;

    return ok;
}


/* 1 when key verifies jwt. The algorithm's family decides which half of
 * the key is used, and the key's type is checked again: an HS token never
 * reaches a public key's bytes. */

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

    if (key->pkey == NULL || key->secret != NULL) {
        return 0;
    }

    switch (a->family) {
    case OMNI_JWT_PKCS1:
        ok = EVP_PKEY_is_a(key->pkey, "RSA");
        break;
    case OMNI_JWT_PSS:
        ok = EVP_PKEY_is_a(key->pkey, "RSA")
             || EVP_PKEY_is_a(key->pkey, "RSA-PSS");
        break;
    case OMNI_JWT_ECDSA:
        ok = EVP_PKEY_is_a(key->pkey, "EC")
             && EVP_PKEY_get_bits(key->pkey) == (int) (a->hash_len == 64
                                                       ? 521
                                                       : a->hash_len * 8);
        break;
    default:
        ok = EVP_PKEY_is_a(key->pkey, "ED25519");
        break;
    }

    if (!ok) {
        return 0;
    }

    ok = omni_jwt_verify_pkey(jwt, key, jwt->sig, jwt->sig_len);
    ERR_clear_error();

    return ok;
}


static int
omni_jwt_verify_pkey(const omni_jwt_t *jwt, const omni_jwt_key_t *key,
    const unsigned char *sig, size_t sig_len)
{
    EVP_PKEY                   *pkey = key->pkey;
    int                         ok, der_len;
    BIGNUM                     *r, *s;
    ECDSA_SIG                  *esig;
    EVP_MD_CTX                 *mctx;
    EVP_PKEY_CTX               *pctx;
    const EVP_MD               *md;
    unsigned char              *der;
    const omni_jwt_alg_info_t  *a;

    a = &omni_jwt_algs[jwt->alg];
    md = omni_jwt_md(jwt->alg);
    der = NULL;
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

        esig = ECDSA_SIG_new();
        r = BN_bin2bn(sig, (int) a->coord, NULL);
        s = BN_bin2bn(sig + a->coord, (int) a->coord, NULL);

        if (esig == NULL || r == NULL || s == NULL
            || ECDSA_SIG_set0(esig, r, s) != 1)
        {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(esig);
            return 0;
        }

        der_len = i2d_ECDSA_SIG(esig, &der);
        ECDSA_SIG_free(esig);

        if (der_len <= 0) {
            return 0;
        }

        sig = der;
        sig_len = (size_t) der_len;
        break;

    default:
        if (sig_len != 64) {
            return 0;
        }
        break;
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
    OPENSSL_free(der);

    return ok;
}


omni_jwt_status_t
omni_jwt_check_claims(const omni_jwt_t *jwt, time_t now, time_t leeway,
    const char *const *issuers, size_t nissuers,
    const char *const *audiences, size_t naudiences, const char **why)
{
    int                 found;
    size_t              i, j;
    double              t, lw;
    yajl_val            v, e;
    const char         *w;
    omni_jwt_status_t   rc;

    if (jwt->payload == NULL) {
        rc = OMNI_JWT_MALFORMED;
        w = "token not parsed";
        goto done;
    }

    t = (double) now;
    lw = (leeway > 0) ? (double) leeway : 0.0;

    /* RFC 7519 4.1.4: valid only before exp, so expired at exp itself */

    if (jwt->has_exp && t >= jwt->exp + lw) {
        rc = OMNI_JWT_EXPIRED;
        w = "token expired";
        goto done;
    }

    if (jwt->has_nbf && t + lw < jwt->nbf) {
        rc = OMNI_JWT_NOT_YET_VALID;
        w = "token not yet valid (nbf)";
        goto done;
    }

    if (jwt->has_iat && t + lw < jwt->iat) {
        rc = OMNI_JWT_NOT_YET_VALID;
        w = "token issued in the future (iat)";
        goto done;
    }

    if (nissuers > 0) {
        v = omni_jwt_member(jwt->payload, "iss", 3);

        if (!YAJL_IS_STRING(v)) {
            rc = OMNI_JWT_WRONG_ISSUER;
            w = "iss claim missing";
            goto done;
        }

        for (i = 0; i < nissuers; i++) {
            if (issuers[i] != NULL && strcmp(issuers[i], v->u.string) == 0) {
                break;
            }
        }

        if (i == nissuers) {
            rc = OMNI_JWT_WRONG_ISSUER;
            w = "issuer not accepted";
            goto done;
        }
    }

    if (naudiences > 0) {
        v = omni_jwt_member(jwt->payload, "aud", 3);
        found = 0;

        if (YAJL_IS_STRING(v)) {
            for (i = 0; i < naudiences && !found; i++) {
                found = (audiences[i] != NULL
                         && strcmp(audiences[i], v->u.string) == 0);
            }

        } else if (YAJL_IS_ARRAY(v)) {
            for (j = 0; j < v->u.array.len && !found; j++) {
                e = v->u.array.values[j];
                if (!YAJL_IS_STRING(e)) {
                    continue;
                }

                for (i = 0; i < naudiences && !found; i++) {
                    found = (audiences[i] != NULL
                             && strcmp(audiences[i], e->u.string) == 0);
                }
            }

        } else {
            rc = OMNI_JWT_WRONG_AUDIENCE;
            w = "aud claim missing";
            goto done;
        }

        if (!found) {
            rc = OMNI_JWT_WRONG_AUDIENCE;
            w = "audience not accepted";
            goto done;
        }
    }

    v = omni_jwt_member(jwt->payload, "sub", 3);

    if (!YAJL_IS_STRING(v) || v->u.string[0] == '\0') {
        rc = OMNI_JWT_MALFORMED;
        w = "sub claim missing";
        goto done;
    }

    rc = OMNI_JWT_OK;
    w = NULL;

done:

    if (why != NULL) {
        *why = w;
    }

    return rc;
}


/* Appends s unless it would not fit or holds a control character (the text
 * goes into upstream request headers). */

static int
omni_jwt_append(char *buf, size_t size, size_t *pos, const char *s)
{
    size_t  i, n;

    n = strlen(s);

    for (i = 0; i < n; i++) {
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
            return -1;
        }
    }

    if (n >= size - *pos) {
        return -1;
    }

    memcpy(buf + *pos, s, n + 1);
    *pos += n;

    return 0;
}


static int
omni_jwt_append_scalar(char *buf, size_t size, size_t *pos, yajl_val v)
{
    switch (v->type) {
    case yajl_t_string:
        return omni_jwt_append(buf, size, pos, v->u.string);
    case yajl_t_number:
        return omni_jwt_append(buf, size, pos, v->u.number.r);
    case yajl_t_true:
        return omni_jwt_append(buf, size, pos, "true");
    case yajl_t_false:
        return omni_jwt_append(buf, size, pos, "false");
    default:
        return -1;
    }
}


int
omni_jwt_claim(const omni_jwt_t *jwt, const char *path, char *buf,
    size_t buflen)
{
    size_t       i, pos, seg;
    yajl_val     v, w;
    const char  *p, *dot;

    if (buflen == 0 || buf == NULL) {
        return -1;
    }

    buf[0] = '\0';

    if (jwt->payload == NULL || path == NULL || path[0] == '\0') {
        return -1;
    }

    if (buflen > INT_MAX) {
        buflen = INT_MAX;
    }

    v = jwt->payload;
    p = path;

    for ( ;; ) {
        if (*p == '\0') {
            return -1;
        }

        /* a member named by the whole rest ("https://x.example/roles")
         * wins over descending at its first dot */

        w = omni_jwt_member(v, p, strlen(p));
        if (w != NULL) {
            v = w;
            break;
        }

        dot = strchr(p, '.');
        if (dot == NULL) {
            return -1;
        }

        seg = (size_t) (dot - p);
        if (seg == 0) {
            return -1;
        }

        v = omni_jwt_member(v, p, seg);
        if (!YAJL_IS_OBJECT(v)) {
            return -1;
        }

        p = dot + 1;
    }

    pos = 0;

    if (YAJL_IS_ARRAY(v)) {
        for (i = 0; i < v->u.array.len; i++) {
            if ((i > 0 && omni_jwt_append(buf, buflen, &pos, ",") != 0)
                || omni_jwt_append_scalar(buf, buflen, &pos,
                                          v->u.array.values[i])
                   != 0)
            {
                buf[0] = '\0';
                return -1;
            }
        }

    } else if (omni_jwt_append_scalar(buf, buflen, &pos, v) != 0) {
        buf[0] = '\0';
        return -1;
    }

    return (int) pos;
}
