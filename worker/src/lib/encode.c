/* encode.c: base64url, hex and SHA-256 helpers for tokens and keys. */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "lib/encode.h"


static const char omni_b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";


size_t omni_b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i, o = 0;
    unsigned acc = 0;
    int bits = 0;

    for (i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = omni_b64url_alphabet[(acc >> bits) & 0x3f];
        }
    }
    if (bits > 0) {
        out[o++] = omni_b64url_alphabet[(acc << (6 - bits)) & 0x3f];
    }
    out[o] = '\0';
    return o;
}


void omni_hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}


int omni_sha256_hex(const void *in, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    if (EVP_Digest(in, n, md, &mdlen, EVP_sha256(), NULL) != 1
        || mdlen != sizeof(md)) {
        return -1;
    }
    omni_hex_encode(md, sizeof(md), out);
    return 0;
}


int omni_random_token(
    const char *prefix, size_t bytes, char *out, size_t outlen)
{
    unsigned char raw[64];
    size_t plen = strlen(prefix);

    if (bytes > sizeof(raw) || plen + OMNI_B64URL_LEN(bytes) + 1 > outlen
        || RAND_bytes(raw, (int)bytes) != 1) {
        return -1;
    }
    memcpy(out, prefix, plen);
    omni_b64url_encode(raw, bytes, out + plen);
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}
