/*
 * omni_jwt.h: JWT (RFC 7519/7515) parsing and verification with keys parsed
 * once. Plain C over OpenSSL 3 and yajl, no nginx types, so unit tests and
 * fuzz targets reach it directly; the module wraps it. One file a step:
 * omni_b64url.c, omni_jwt_keys.c (key files), omni_jwks.c, omni_jwt_json.c
 * (strict JSON), omni_jwt_nodes.c (a token's JSON), omni_jwt_parse.c,
 * omni_jwt_verify.c, omni_jwt_claims.c.
 */


#ifndef OMNI_JWT_H_INCLUDED_
#define OMNI_JWT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>


#define OMNI_JWT_MAX_TOKEN  8192      /* longer tokens are malformed */

/* header and payload decoded hold at most 6141 bytes, so at most ~3072
 * JSON values (an array "[0,0,...]" takes 2 bytes a value) */
#define OMNI_JWT_MAX_NODES  3200
#define OMNI_JWT_MAX_JSON   (OMNI_JWT_MAX_TOKEN / 4 * 3 + 3)


typedef enum {
    OMNI_JWT_HS256 = 0,
    OMNI_JWT_HS384,
    OMNI_JWT_HS512,
    OMNI_JWT_RS256,
    OMNI_JWT_RS384,
    OMNI_JWT_RS512,
    OMNI_JWT_PS256,
    OMNI_JWT_PS384,
    OMNI_JWT_PS512,
    OMNI_JWT_ES256,
    OMNI_JWT_ES384,
    OMNI_JWT_ES512,
    OMNI_JWT_EDDSA,
    OMNI_JWT_NALGS
} omni_jwt_alg_t;

#define OMNI_JWT_ALG_BIT(a)  (1u << (a))


/* Outcome of each step; the module maps them to responses and metrics. */
typedef enum {
    OMNI_JWT_OK = 0,
    OMNI_JWT_MALFORMED,       /* not a well-formed JWS compact token */
    OMNI_JWT_BAD_SIGNATURE,   /* no usable key, or the signature is wrong */
    OMNI_JWT_EXPIRED,
    OMNI_JWT_NOT_YET_VALID,   /* nbf (or iat) in the future */
    OMNI_JWT_WRONG_ISSUER,
    OMNI_JWT_WRONG_AUDIENCE
} omni_jwt_status_t;


/* A verification key, bound to the algorithms it may verify. */
typedef struct {
    char            kid[128];     /* NUL-terminated; "" = no kid */
    unsigned        algs;         /* OMNI_JWT_ALG_BIT() set */
    EVP_PKEY       *pkey;         /* RSA, EC or Ed25519 public key */
    unsigned        typed;        /* of algs, those pkey's type suits, as
                                   * checked once more at load */
    unsigned char  *secret;       /* HMAC secret (malloc'd), or NULL */
    size_t          secret_len;

    /* per bound algorithm, set up once at load: verifying copies one
     * instead of fetching the digest and building a context each time */
    EVP_MD_CTX     *verify[OMNI_JWT_NALGS];
    EVP_MAC_CTX    *mac[OMNI_JWT_NALGS];

    /* RSA and ECDSA: a digest and a verification context, reused as they
     * are by every verification (a process verifies one token at a time):
     * no allocation per token */
    EVP_MD_CTX     *digest[OMNI_JWT_NALGS];
    EVP_PKEY_CTX   *pverify[OMNI_JWT_NALGS];
} omni_jwt_key_t;


typedef enum {
    OMNI_JSON_NULL = 0,
    OMNI_JSON_FALSE,
    OMNI_JSON_TRUE,
    OMNI_JSON_NUMBER,
    OMNI_JSON_STRING,
    OMNI_JSON_OBJECT,
    OMNI_JSON_ARRAY
} omni_json_type_t;


/*
 * One JSON value of a parsed token. The values sit in one array in
 * document order: a container's first member or element is the node after
 * it, each next one at the previous one's end.
 */
typedef struct {
    uint8_t   type;       /* omni_json_type_t */
    uint16_t  key;        /* an object member's name: offset in text */
    uint16_t  key_len;
    uint16_t  str;        /* a string's bytes, a number as written */
    uint16_t  len;
    uint16_t  count;      /* members or elements */
    uint16_t  end;        /* index of the node after this value's last */
} omni_json_node_t;


/*
 * A parsed token. Pointers into the token stay valid while it does; the
 * rest lives in the structure itself (no allocation per token, and only
 * the few fields above the buffers are ever cleared), so it is large: a
 * process keeps one, or one on a stack.
 */
typedef struct {
    omni_jwt_alg_t           alg;
    const char              *kid;            /* NUL-terminated, or NULL */
    const unsigned char     *signing_input;  /* "header.payload", in token */
    size_t                   signing_input_len;
    unsigned char           *sig;            /* decoded signature, or NULL */
    size_t                   sig_len;
    const omni_json_node_t  *header;         /* JSON objects, or NULL */
    const omni_json_node_t  *payload;
    int                      has_exp, has_nbf, has_iat;
    double                   exp, nbf, iat;  /* NumericDate, seconds */

    size_t                   nnodes;
    size_t                   ntext;
    omni_json_node_t         nodes[OMNI_JWT_MAX_NODES];
    /* strings and numbers, each NUL-terminated (JSON text never grows
     * when unescaped; numbers and "" gain their NUL) */
    char                     text[2 * OMNI_JWT_MAX_JSON];
    unsigned char            sigbuf[OMNI_JWT_MAX_JSON];
    unsigned char            json[OMNI_JWT_MAX_JSON];  /* a segment decoded */
    /* the duplicate check's hash table for a large object: 2 slots a
     * member, a power of two */
    uint16_t                 dups[8192];
} omni_jwt_t;


/* Algorithm by its JOSE name ("RS256", "EdDSA"); -1 when unknown (including
 * "none"). omni_jwt_alg_name() returns "unknown" for an out-of-range alg. */
int omni_jwt_alg_parse(const char *name, size_t len);
const char *omni_jwt_alg_name(omni_jwt_alg_t alg);

/*
 * Strict unpadded base64url (RFC 4648 section 5): only A-Z a-z 0-9 - _, no
 * '=', a length of 1 mod 4 and non-zero unused trailing bits are refused,
 * so each byte string has exactly one accepted encoding. out needs room for
 * len / 4 * 3 + 2 bytes. Returns 0 and *outlen, or -1.
 */
int omni_jwt_base64url_decode(unsigned char *out, size_t *outlen,
    const char *in, size_t len);


/*
 * Loads one key from a file: a PEM public key (SubjectPublicKeyInfo) for
 * RS/PS/ES/EdDSA, or for HS* the file's bytes as the secret (one trailing
 * newline ignored). algs is a comma-separated list ("RS256,PS256") or NULL
 * to take the key type's default (RSA: RS256; EC P-256/384/521:
 * ES256/384/512; Ed25519: EdDSA; anything not PEM: HS256). kid may be NULL.
 * Refuses with a one-line reason in err, naming the file: unreadable or
 * empty file, unknown algorithm, an algorithm the key cannot do (an RSA key
 * for ES256, an EC P-256 key for ES384, a PEM file for HS*, a secret for
 * RS*), an RSA key under 2048 bits, an HS secret shorter than its hash
 * (HS256: 32 bytes, HS384: 48, HS512: 64; RFC 7518 3.2), a private key, a
 * PEM that does not parse or holds more than one key, and, for HS*, files
 * that are public keys in another form (DER, OpenSSH, JWK), which would
 * make a public HMAC secret. A PEM certificate gives its public key (the
 * certificate itself is not validated). An RSA-PSS (id-RSASSA-PSS) key
 * defaults to PS256 and serves PS* only. kid longer than 127 bytes is
 * refused. Returns 0 or -1; key is zeroed first and needs
 * omni_jwt_key_free() after success (nothing to free after a failure).
 */
int omni_jwt_key_load(omni_jwt_key_t *key, const char *path,
    const char *algs, const char *kid, char *err, size_t errlen);

/*
 * Loads every signing key of a JWKS file (RFC 7517): kty RSA (n, e), EC
 * (crv P-256/P-384/P-521, x, y), OKP (crv Ed25519, x) and oct (k). A key's
 * "alg" binds it (when absent: the kty/crv default as above, oct: HS256);
 * encryption keys are skipped: "use": "enc", a JWE "alg" (RSA-OAEP, ...),
 * "key_ops" without "verify", OKP X25519/X448. Refuses a duplicate kid
 * (keys without a kid may repeat), an unknown alg, an alg the key cannot do
 * (same rules as omni_jwt_key_load()), private members (d, p, q, ...),
 * malformed members, an unknown kty or curve, and a set with no signing
 * key. On success *keys is a malloc'd array of *nkeys keys (free each, then
 * the array); on failure nothing is left to free.
 */
int omni_jwt_jwks_load(omni_jwt_key_t **keys, size_t *nkeys,
    const char *path, char *err, size_t errlen);

/*
 * The same from memory: text holds len bytes and a NUL after them; name
 * stands for the source in messages (a URL).
 */
int omni_jwt_jwks_parse(omni_jwt_key_t **keys, size_t *nkeys,
    const char *text, size_t len, const char *name, char *err,
    size_t errlen);

void omni_jwt_key_free(omni_jwt_key_t *key);


/*
 * Splits and decodes a compact JWS: at most OMNI_JWT_MAX_TOKEN bytes,
 * exactly three base64url segments (unpadded, strict alphabet; signature
 * not empty), header and payload JSON objects (no duplicate member names,
 * no comments, no \u0000, nesting at most 32 deep), a known "alg" (never
 * "none"), no "crit", "kid" a string of at most 127 bytes, "typ" absent or
 * JWT / at+jwt (optionally "application/", any case), exp/nbf/iat finite
 * numbers when present. Header fields such as jku, x5u, jwk and x5c are
 * ignored: keys come from configuration only. *why (why may be NULL) is a
 * static human-readable reason on failure, NULL on success. Call
 * omni_jwt_free() afterwards whatever the result; after a failure verify
 * refuses the token.
 */
omni_jwt_status_t omni_jwt_parse(omni_jwt_t *jwt, const char *token,
    size_t len, const char **why);

/*
 * Verifies the signature with the key(s) that may: those whose kid equals
 * the token's, plus the keys that have no kid (all keys when the token has
 * no kid), and that are bound to the token's alg. The token's alg never
 * decides how a key is used: an HS token cannot be verified with an RSA
 * key's bytes. BAD_SIGNATURE with why "unknown kid" (no key with that kid
 * and none without a kid), "no verification key" (no kid in the token, no
 * keys), "algorithm not allowed for this key" or "signature does not
 * verify"; MALFORMED "token not parsed" for a token whose parse failed.
 */
omni_jwt_status_t omni_jwt_verify(const omni_jwt_t *jwt,
    const omni_jwt_key_t *keys, size_t nkeys, const char **why);

/*
 * Checks, in this order, exp, nbf, iat (not in the future) against now
 * with leeway seconds, iss against issuers (any; none configured = not
 * checked), aud (string or array) against audiences (any match; none
 * configured = not checked), and that sub is a non-empty string (MALFORMED
 * "sub claim missing" otherwise). Boundaries (RFC 7519): EXPIRED when
 * now >= exp + leeway (a token is valid only before exp); NOT_YET_VALID
 * when now + leeway < nbf, or < iat. A token without exp does not expire
 * here. Missing iss: WRONG_ISSUER; missing aud: WRONG_AUDIENCE.
 */
omni_jwt_status_t omni_jwt_check_claims(const omni_jwt_t *jwt, time_t now,
    time_t leeway, const char *const *issuers, size_t nissuers,
    const char *const *audiences, size_t naudiences, const char **why);

/*
 * A claim by dotted path ("sub", "realm_access.roles") as text: strings as
 * they are, numbers as written, true/false, arrays of scalars joined with
 * "," (an empty array gives ""). At each level a member named by the whole
 * rest of the path wins, so namespaced claims ("https://x.example/roles")
 * are reachable. Returns the length written to buf (NUL-terminated), or -1
 * (buf = "") when the claim is absent, null, an object, an array holding
 * null/arrays/objects, holds a control character (CR, LF, ...: the text
 * goes into upstream headers), or does not fit.
 */
int omni_jwt_claim(const omni_jwt_t *jwt, const char *path, char *buf,
    size_t buflen);

/*
 * The payload's value at parts (a NULL-terminated list of member names,
 * one a level), as yajl_tree_get() finds it; NULL when absent. A value's
 * text is jwt->text + node->str; an array's elements start at node + 1,
 * each next one at jwt->nodes + element->end.
 */
const omni_json_node_t *omni_jwt_get(const omni_jwt_t *jwt,
    const char *const *parts);

void omni_jwt_free(omni_jwt_t *jwt);


#endif /* OMNI_JWT_H_INCLUDED_ */
