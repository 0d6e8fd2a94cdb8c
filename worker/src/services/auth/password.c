/* password.c: passlib-compatible PBKDF2-HMAC-SHA256 hashes and checks. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "services/auth/password.h"

#define PASSWORD_PREFIX "$pbkdf2-sha256$"
#define PASSWORD_SALT_BYTES 16       /* what we write; passlib's default too */
#define PASSWORD_MAX_SALT_BYTES 1024 /* passlib's max_salt_size */
#define PASSWORD_CHECKSUM_BYTES 32
#define PASSWORD_CHECKSUM_CHARS 43 /* ab64 of 32 bytes */
#define PASSWORD_MIN_CHARS 8
#define PASSWORD_MAX_ROUND_DIGITS 9 /* "100000000" */

static const char ab64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789./";

/* Written only at start-up (password.h), so threads read it unlocked. */
static unsigned password_iterations = OMNI_PASSWORD_MIN_ITERATIONS;

/* Stands in for an account that does not exist: a stored hash like the
 * ones omni_password_hash() writes at the configured rounds (a 16-byte
 * salt, "omni-dummy-salt!"), checked by the very code that checks a real
 * one. The checksum (zeros) matches no password we care about and the
 * result is thrown away anyway. Rewritten with password_iterations. */
#define DUMMY_SALT_AB64 "b21uaS1kdW1teS1zYWx0IQ"
#define DUMMY_CHECKSUM_AB64 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
static char dummy_hash[OMNI_PASSWORD_HASH_MAX] =
    PASSWORD_PREFIX "29000$" DUMMY_SALT_AB64 "$" DUMMY_CHECKSUM_AB64;


/* Writes the ab64 form of in[0..n) and a NUL; out holds 4 * n / 3 + 2. */
static size_t ab64_encode(const unsigned char *in, size_t n, char *out)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = ab64_alphabet[(acc >> bits) & 0x3f];
        }
    }
    if (bits > 0)
        out[o++] = ab64_alphabet[(acc << (6 - bits)) & 0x3f];
    out[o] = '\0';
    return o;
}

static int ab64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '.')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes s[0..n) into out (at most max bytes). Strict, so that a hash has
 * exactly one spelling: only passlib's alphabet (no '+', no padding, no
 * whitespace), no length that leaves a lone 6-bit digit, and the unused
 * low bits of the last digit must be zero. Returns the byte count or -1. */
static long ab64_decode(const char *s, size_t n, unsigned char *out, size_t max)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t i, o = 0;
    int v;

    if (n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > max)
        return -1;
    for (i = 0; i < n; i++) {
        v = ab64_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
        acc &= (1u << bits) - 1;
    }
    if (acc != 0)
        return -1;
    return (long)o;
}

static int pbkdf2(const char *password, size_t len, const unsigned char *salt,
    size_t saltlen, unsigned rounds, unsigned char *out)
{
    /* OpenSSL takes int lengths; passing NULL for an empty password is
     * not documented as allowed */
    if (len > INT_MAX || saltlen > INT_MAX || rounds > INT_MAX)
        return -1;
    if (PKCS5_PBKDF2_HMAC(len ? password : "", (int)len, salt, (int)saltlen,
            (int)rounds, EVP_sha256(), PASSWORD_CHECKSUM_BYTES, out)
        != 1)
        return -1;
    return 0;
}

/* 1 match, 0 mismatch, -1 OpenSSL failure. */
static int password_check(const char *password, size_t len,
    const unsigned char *salt, size_t saltlen, unsigned rounds,
    const unsigned char *checksum)
{
    unsigned char dk[PASSWORD_CHECKSUM_BYTES];
    int rc;

    if (len > INT_MAX)
        return 0;
    if (pbkdf2(password, len, salt, saltlen, rounds, dk) != 0)
        return -1;
    rc = CRYPTO_memcmp(dk, checksum, sizeof(dk)) == 0;
    OPENSSL_cleanse(dk, sizeof(dk));
    return rc;
}

/* Splits "$pbkdf2-sha256$<rounds>$<salt>$<checksum>"; salt holds
 * PASSWORD_MAX_SALT_BYTES. Returns 0 or -1 when malformed. */
static int password_parse(const char *stored, unsigned *rounds,
    unsigned char *salt, size_t *saltlen, unsigned char *checksum)
{
    const char *p, *end;
    unsigned long r = 0;
    size_t digits;
    long n;

    if (strncmp(stored, PASSWORD_PREFIX, sizeof(PASSWORD_PREFIX) - 1) != 0)
        return -1;
    p = stored + sizeof(PASSWORD_PREFIX) - 1;

    /* passlib refuses zero-padded rounds; "0" is out of range anyway */
    if (*p == '0')
        return -1;
    for (digits = 0; p[digits] >= '0' && p[digits] <= '9'; digits++) {
        if (digits == PASSWORD_MAX_ROUND_DIGITS)
            return -1;
        r = r * 10 + (unsigned long)(p[digits] - '0');
    }
    if (digits == 0 || r > OMNI_PASSWORD_MAX_ITERATIONS || p[digits] != '$')
        return -1;
    p += digits + 1;

    end = strchr(p, '$');
    if (end == NULL)
        return -1;
    n = ab64_decode(p, (size_t)(end - p), salt, PASSWORD_MAX_SALT_BYTES);
    if (n < 0)
        return -1;
    p = end + 1;

    if (strnlen(p, PASSWORD_CHECKSUM_CHARS + 1) != PASSWORD_CHECKSUM_CHARS
        || ab64_decode(
               p, PASSWORD_CHECKSUM_CHARS, checksum, PASSWORD_CHECKSUM_BYTES)
               != PASSWORD_CHECKSUM_BYTES)
        return -1;

    *rounds = (unsigned)r;
    *saltlen = (size_t)n;
    return 0;
}

int omni_password_set_iterations(unsigned iterations)
{
    if (iterations < OMNI_PASSWORD_MIN_ITERATIONS
        || iterations > OMNI_PASSWORD_MAX_ITERATIONS)
        return -1;
    password_iterations = iterations;
    snprintf(dummy_hash, sizeof(dummy_hash),
        PASSWORD_PREFIX "%u$" DUMMY_SALT_AB64 "$" DUMMY_CHECKSUM_AB64,
        iterations);
    return 0;
}

int omni_password_hash(const char *password, size_t len, unsigned iterations,
    char *out, size_t outlen)
{
    unsigned char salt[PASSWORD_SALT_BYTES];
    unsigned char dk[PASSWORD_CHECKSUM_BYTES];
    char buf[OMNI_PASSWORD_HASH_MAX];
    size_t n;
    int rc = -1;

    if (iterations < OMNI_PASSWORD_MIN_ITERATIONS
        || iterations > OMNI_PASSWORD_MAX_ITERATIONS)
        return -1;
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return -1;
    if (pbkdf2(password, len, salt, sizeof(salt), iterations, dk) != 0)
        goto failed;

    /* 15 + 9 + 1 + 22 + 1 + 43 + NUL = 92: always fits buf */
    n = (size_t)snprintf(buf, sizeof(buf), PASSWORD_PREFIX "%u$", iterations);
    n += ab64_encode(salt, sizeof(salt), buf + n);
    buf[n++] = '$';
    n += ab64_encode(dk, sizeof(dk), buf + n);
    if (n >= outlen)
        goto failed;
    memcpy(out, buf, n + 1);
    rc = 0;

failed:
    OPENSSL_cleanse(dk, sizeof(dk));
    return rc;
}

int omni_password_verify(const char *password, size_t len, const char *stored)
{
    unsigned char salt[PASSWORD_MAX_SALT_BYTES];
    unsigned char checksum[PASSWORD_CHECKSUM_BYTES];
    size_t saltlen;
    unsigned rounds;

    if (password_parse(stored, &rounds, salt, &saltlen, checksum) != 0)
        return -1;
    return password_check(password, len, salt, saltlen, rounds, checksum);
}

int omni_password_dummy_verify(const char *password, size_t len)
{
    (void)omni_password_verify(password, len, dummy_hash);
    return 0;
}

const char *omni_password_dummy_hash(void)
{
    return dummy_hash;
}

/* Length of the UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0 when it is not one. */
static size_t utf8_sequence(const unsigned char *s, size_t avail)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n, i;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        if (s[0] == 0xe0)
            lo = 0xa0;
        else if (s[0] == 0xed)
            hi = 0x9f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        if (s[0] == 0xf0)
            lo = 0x90;
        else if (s[0] == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    }
    return n;
}

int omni_password_strength(const char *password, size_t len, const char **why)
{
    const unsigned char *s = (const unsigned char *)password;
    const char *reason;
    size_t i = 0, chars = 0, n;

    if (len > OMNI_PASSWORD_MAX_BYTES) {
        reason = "password is longer than 1024 bytes";
        goto failed;
    }
    while (i < len) {
        if (s[i] == '\0') {
            reason = "password contains a NUL character";
            goto failed;
        }
        n = utf8_sequence(s + i, len - i);
        if (n == 0) {
            reason = "password is not valid UTF-8";
            goto failed;
        }
        i += n;
        chars++;
    }
    if (chars < PASSWORD_MIN_CHARS) {
        reason = "password is shorter than 8 characters";
        goto failed;
    }
    return 0;

failed:
    if (why != NULL)
        *why = reason;
    return -1;
}
