/* encode.h: base64url, hex and SHA-256 helpers for tokens and keys. */
#ifndef OMNI_ENCODE_H
#define OMNI_ENCODE_H

#include <stddef.h>

/* Length of the unpadded base64url form of n bytes. */
#define OMNI_B64URL_LEN(n) (((n)*4 + 2) / 3)

/* Writes the unpadded base64url (RFC 4648 section 5) form of in[0..n) and
 * a NUL to out, which holds OMNI_B64URL_LEN(n) + 1 bytes. Returns the
 * length written (without the NUL). Never fails. */
size_t omni_b64url_encode(const unsigned char *in, size_t n, char *out);

/* Writes the lowercase hex form of in[0..n) and a NUL to out (2n + 1
 * bytes). Never fails. */
void omni_hex_encode(const unsigned char *in, size_t n, char *out);

/* SHA-256 of in[0..n) as 64 lowercase hex digits and a NUL in out[65].
 * Returns 0, or -1 when OpenSSL fails (out of memory). */
int omni_sha256_hex(const void *in, size_t n, char out[65]);

/* A random opaque token: prefix followed by the base64url form of `bytes`
 * random bytes from RAND_bytes, NUL-terminated, in out[outlen]. Returns 0,
 * or -1 when out is too small or the random generator fails. */
int omni_random_token(
    const char *prefix, size_t bytes, char *out, size_t outlen);

#endif
