/* seal.c: AES-256-GCM sealing of secrets stored in Postgres (seal.h). */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "lib/seal.h"

#define OMNI_SEAL_VERSION 1
#define OMNI_SEAL_NONCE 12
#define OMNI_SEAL_TAG 16


static int omni_seal_hex(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}


static int omni_seal_b64(int c)
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
    if (c == '+' || c == '-') {
        return 62;
    }
    if (c == '/' || c == '_') {
        return 63;
    }
    return -1;
}


int omni_seal_key_parse(
    const char *text, size_t len, unsigned char key[OMNI_SEAL_KEY_LEN])
{
    const char *s = text, *e = text + len;
    unsigned acc = 0;
    size_t i, n = 0;
    int bits = 0, v, hi, lo;

    while (s < e && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
        s++;
    }
    while (
        e > s
        && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n')) {
        e--;
    }
    if (e - s == 2 * OMNI_SEAL_KEY_LEN) {
        for (i = 0; i < OMNI_SEAL_KEY_LEN; i++) {
            hi = omni_seal_hex((unsigned char)s[2 * i]);
            lo = omni_seal_hex((unsigned char)s[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                break;
            }
            key[i] = (unsigned char)(hi << 4 | lo);
        }
        if (i == OMNI_SEAL_KEY_LEN) {
            return 0;
        }
    }
    while (e > s && e[-1] == '=') {
        e--;
    }
    if (e - s != 43) {
        return -1;
    }
    for (; s < e; s++) {
        v = omni_seal_b64((unsigned char)*s);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == OMNI_SEAL_KEY_LEN) {
                return -1;
            }
            key[n++] = (unsigned char)(acc >> bits);
        }
    }
    /* the 2 bits left over must be zero in a canonical encoding */
    return n == OMNI_SEAL_KEY_LEN && (acc & ((1u << bits) - 1)) == 0 ? 0 : -1;
}


int omni_seal(const unsigned char key[OMNI_SEAL_KEY_LEN], const void *aad,
    size_t aadlen, const void *plain, size_t len, unsigned char *out)
{
    EVP_CIPHER_CTX *c;
    unsigned char *nonce = out + 1, *ct = out + 1 + OMNI_SEAL_NONCE;
    int n, rc = -1;

    if (len > (size_t)1 << 30 || aadlen > (size_t)1 << 30) {
        return -1;
    }
    out[0] = OMNI_SEAL_VERSION;
    if (RAND_bytes(nonce, OMNI_SEAL_NONCE) != 1) {
        return -1;
    }
    c = EVP_CIPHER_CTX_new();
    if (c == NULL) {
        return -1;
    }
    if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) != 1
        || (aadlen > 0 && EVP_EncryptUpdate(c, NULL, &n, aad, (int)aadlen) != 1)
        || EVP_EncryptUpdate(c, ct, &n, plain, (int)len) != 1
        || EVP_EncryptFinal_ex(c, ct + n, &n) != 1
        || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, OMNI_SEAL_TAG, ct + len)
               != 1) {
        goto failed;
    }
    rc = 0;

failed:
    EVP_CIPHER_CTX_free(c);
    return rc;
}


int omni_unseal(const unsigned char key[OMNI_SEAL_KEY_LEN], const void *aad,
    size_t aadlen, const unsigned char *in, size_t inlen, unsigned char *out,
    size_t *outlen)
{
    EVP_CIPHER_CTX *c;
    const unsigned char *nonce = in + 1, *ct = in + 1 + OMNI_SEAL_NONCE;
    size_t len;
    int n, rc = -1;

    if (inlen < OMNI_SEAL_OVERHEAD || in[0] != OMNI_SEAL_VERSION
        || inlen > ((size_t)1 << 30) || aadlen > ((size_t)1 << 30)) {
        return -1;
    }
    len = inlen - OMNI_SEAL_OVERHEAD;
    c = EVP_CIPHER_CTX_new();
    if (c == NULL) {
        return -1;
    }
    if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) != 1
        || (aadlen > 0 && EVP_DecryptUpdate(c, NULL, &n, aad, (int)aadlen) != 1)
        || EVP_DecryptUpdate(c, out, &n, ct, (int)len) != 1
        || EVP_CIPHER_CTX_ctrl(
               c, EVP_CTRL_GCM_SET_TAG, OMNI_SEAL_TAG, (void *)(ct + len))
               != 1
        || EVP_DecryptFinal_ex(c, out + n, &n) != 1) {
        goto failed;
    }
    *outlen = len;
    rc = 0;

failed:
    EVP_CIPHER_CTX_free(c);
    return rc;
}
