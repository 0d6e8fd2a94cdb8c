/* signer.h: the worker's access-token signing key (JWS compact, SPEC 6). */
#ifndef OMNI_SIGNER_H
#define OMNI_SIGNER_H

#include <stddef.h>

typedef struct omni_signer omni_signer_t;

/* Loads a PEM private key once, at start-up. The algorithm follows the key:
 * RSA (at least 2048 bits) signs RS256, EC P-256 ES256, Ed25519 EdDSA. kid
 * NULL or "" means the RFC 7638 JWK thumbprint of the public key. Returns
 * NULL with a one-line reason naming the file in err on an unreadable file,
 * a public or encrypted key, another key type or a short RSA key. */
omni_signer_t *omni_signer_load(
    const char *path, const char *kid, char *err, size_t errlen);

const char *omni_signer_alg(const omni_signer_t *s);
const char *omni_signer_kid(const omni_signer_t *s);

/* The public key as a JWK Set: {"keys":[{...}]}, NUL-terminated, owned by
 * the signer. */
const char *omni_signer_jwks(const omni_signer_t *s);

/* The JWK Set of s and, when previous is not NULL, previous after it (a
 * key retired by a rotation, whose tokens are still valid): malloc'd,
 * NUL-terminated, the caller frees; NULL when out of memory. */
char *omni_signer_jwks_with(
    const omni_signer_t *s, const omni_signer_t *previous);

/* Signs payload[0..len) (the claims as JSON) into a compact JWS
 * "header.payload.signature" with header {"alg","typ":"JWT","kid"}.
 * Returns a malloc'd NUL-terminated string the caller frees, or NULL when
 * OpenSSL fails (out of memory). Thread-safe: the key is only read. */
char *omni_signer_sign(const omni_signer_t *s, const char *payload, size_t len);

void omni_signer_free(omni_signer_t *s);

#endif
