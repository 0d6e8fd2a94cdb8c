/* seal.h: secrets at rest: AES-256-GCM with a random nonce (OpenSSL). */
#ifndef OMNI_SEAL_H
#define OMNI_SEAL_H

#include <stddef.h>

#define OMNI_SEAL_KEY_LEN 32
/* version byte (1), 12-byte nonce, 16-byte tag */
#define OMNI_SEAL_OVERHEAD (1 + 12 + 16)

/* Reads a key from a key file's contents: 64 hex digits or the base64
 * (standard or url alphabet, padding optional) of 32 bytes, surrounding
 * whitespace ignored. 0, or -1 when it is neither. */
int omni_seal_key_parse(
    const char *text, size_t len, unsigned char key[OMNI_SEAL_KEY_LEN]);

/* Seals plain[0..len) bound to aad[0..aadlen) (the ciphertext opens only
 * with the same aad) into out, which holds len + OMNI_SEAL_OVERHEAD bytes.
 * 0, or -1 when OpenSSL fails (random generator, memory). */
int omni_seal(const unsigned char key[OMNI_SEAL_KEY_LEN], const void *aad,
    size_t aadlen, const void *plain, size_t len, unsigned char *out);

/* Opens what omni_seal wrote: in[0..inlen) into out (inlen -
 * OMNI_SEAL_OVERHEAD bytes), *outlen set. 0, or -1 when it is malformed,
 * was altered, or the key or aad differ. */
int omni_unseal(const unsigned char key[OMNI_SEAL_KEY_LEN], const void *aad,
    size_t aadlen, const unsigned char *in, size_t inlen, unsigned char *out,
    size_t *outlen);

#endif
