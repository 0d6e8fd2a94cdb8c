/*
 * omni_jwt_int.h: what the omni_jwt*.c files share and nothing else sees:
 * the algorithm table, what a key is, and the helpers of key loading and
 * strict JSON. Not an interface: omni_jwt.h is.
 */


#ifndef OMNI_JWT_INT_H_INCLUDED_
#define OMNI_JWT_INT_H_INCLUDED_


#include <stddef.h>

#include <openssl/evp.h>
#include <yajl/yajl_tree.h>

#include "omni_jwt.h"


#define OMNI_JWT_MAX_KID       127
#define OMNI_JWT_MAX_DEPTH     32     /* JSON nesting in a token or JWKS */


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


/* omni_jwt_keys.c: indexed by omni_jwt_alg_t */
extern const omni_jwt_alg_info_t  omni_jwt_algs[OMNI_JWT_NALGS];

/* A one-line reason into err (err may be NULL). */
void omni_jwt_err(char *err, size_t errlen, const char *fmt, ...);

/* Untrusted text for a message: at most 64 bytes, control characters and
 * quotes replaced with '?'. */
void omni_jwt_printable(char *dst, size_t size, const char *src,
    size_t len);

const EVP_MD *omni_jwt_md(omni_jwt_alg_t alg);
int omni_jwt_algs_parse(const char *algs, unsigned *bits,
    const char *where, char *err, size_t errlen);
omni_jwt_alg_t omni_jwt_default_alg(omni_jwt_kind_t kind);
omni_jwt_kind_t omni_jwt_pkey_kind(EVP_PKEY *pkey, char *desc,
    size_t size);

/* 0 when every algorithm in bits suits the key, else -1 and err. */
int omni_jwt_compat(unsigned bits, omni_jwt_kind_t kind,
    const char *holder, const char *desc, int rsa_bits, size_t secret_len,
    const char *where, char *err, size_t errlen);

/* A key or JWKS file, malloc'd; free it with omni_jwt_free_file(), which
 * wipes it (it may hold a secret). */
int omni_jwt_read_file(const char *path, unsigned char **data,
    size_t *len, char *err, size_t errlen);
void omni_jwt_free_file(unsigned char *data, size_t len);

/* Per bound algorithm, the context verification copies; cannot fail. */
void omni_jwt_key_prepare(omni_jwt_key_t *key);

/* omni_jwt_json.c */
yajl_val omni_jwt_member(yajl_val obj, const char *name, size_t len);
int omni_jwt_json_scan(const unsigned char *p, size_t n,
    const char **why);
int omni_jwt_json_dups(yajl_val v);

/* omni_jwt_nodes.c */
#define OMNI_JWT_JSON_OK    0
#define OMNI_JWT_JSON_BAD   1     /* not JSON */
#define OMNI_JWT_JSON_DUP   2     /* a member name twice in an object */
#define OMNI_JWT_JSON_FULL  3     /* beyond the token's nodes or text */

int omni_jwt_json_parse(omni_jwt_t *jwt, const unsigned char *p, size_t len,
    const omni_json_node_t **root);
const omni_json_node_t *omni_jwt_node_member(const omni_jwt_t *jwt,
    const omni_json_node_t *obj, const char *name, size_t len);


#endif /* OMNI_JWT_INT_H_INCLUDED_ */
