/* test_encode.c: base64url, hex, SHA-256 and random tokens (encode.c). */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "lib/encode.h"
#include "unit.h"

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* omni_b64url_encode into a heap buffer of exactly the documented size, so
 * ASan sees any write past it. Caller frees. */
static char *b64url(const void *in, size_t n, size_t *len)
{
    char *out = malloc(OMNI_B64URL_LEN(n) + 1);

    if (out != NULL)
        *len = omni_b64url_encode(in, n, out);
    return out;
}

/* The same encoding made by OpenSSL's base64, the alphabet swapped and the
 * padding dropped: an independent reference. out holds 4 * (n + 2) / 3 + 1
 * bytes. */
static void reference_b64url(const unsigned char *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n), i;

    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
}

static int all_in_alphabet(const char *s)
{
    return strspn(s, b64url_alphabet) == strlen(s);
}

static void test_b64url_matches_rfc4648_vectors_without_padding(void)
{
    /* RFC 4648 section 10, with the trailing '=' removed (section 3.2) */
    static const struct {
        const char *in, *out;
    } v[] = {
        {"", ""},
        {"f", "Zg"},
        {"fo", "Zm8"},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg"},
        {"fooba", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy"},
    };
    size_t i, len = 0;
    char *out;

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        out = b64url(v[i].in, strlen(v[i].in), &len);
        CHECK(out != NULL);
        CHECK_STR_EQ(out, v[i].out);
        CHECK_EQ_INT(len, strlen(v[i].out));
        free(out);
    }
}

static void test_b64url_uses_the_url_safe_alphabet(void)
{
    /* 111110 111111 111110 111111: '+' and '/' in standard base64 */
    static const unsigned char in[] = {0xfb, 0xff, 0xbf};
    size_t len = 0;
    char *out = b64url(in, sizeof(in), &len);

    CHECK(out != NULL);
    CHECK_STR_EQ(out, "-_-_");
    free(out);
}

static void test_b64url_length_macro_matches_the_output(void)
{
    unsigned char in[200];
    size_t n, len = 0;
    char *out;

    for (n = 0; n < sizeof(in); n++)
        in[n] = (unsigned char)(n * 37 + 11);
    for (n = 0; n <= sizeof(in); n++) {
        out = b64url(in, n, &len);
        CHECK(out != NULL);
        CHECK_EQ_INT(len, OMNI_B64URL_LEN(n));
        CHECK_EQ_INT(strlen(out), len);
        free(out);
    }
    CHECK_EQ_INT(OMNI_B64URL_LEN(32), 43);
}

static void test_b64url_agrees_with_openssl_on_every_byte_value(void)
{
    unsigned char in[256];
    char want[4 * 258 / 3 + 1], got[OMNI_B64URL_LEN(256) + 1];
    size_t n, i;

    for (i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(255 - i);
    /* every length, so each byte value lands at each position mod 3 */
    for (n = 0; n <= sizeof(in); n++) {
        reference_b64url(in, n, want);
        omni_b64url_encode(in, n, got);
        CHECK_STR_EQ(got, want);
    }
}

static void test_b64url_agrees_with_openssl_on_random_input(void)
{
    unsigned char in[97];
    char want[4 * 99 / 3 + 1], got[OMNI_B64URL_LEN(97) + 1];
    int round;

    for (round = 0; round < 500; round++) {
        size_t n = (size_t)round % sizeof(in);

        CHECK(RAND_bytes(in, sizeof(in)) == 1);
        reference_b64url(in, n, want);
        omni_b64url_encode(in, n, got);
        CHECK_STR_EQ(got, want);
        CHECK(all_in_alphabet(got));
    }
}

static void test_hex_is_lowercase_two_digits_per_byte(void)
{
    static const unsigned char in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[2 * sizeof(in) + 1], empty[1] = {'x'};

    omni_hex_encode(in, sizeof(in), out);
    CHECK_STR_EQ(out, "00017f80abff");
    omni_hex_encode(in, 0, empty);
    CHECK_STR_EQ(empty, "");
}

static void test_sha256_hex_of_known_strings(void)
{
    /* FIPS 180-2 appendix B and a string with a NUL inside */
    static const struct {
        const char *in;
        size_t len;
        const char *hex;
    } v[] = {
        {"", 0,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", 3,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"a\0b", 3,
            "59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138"},
    };
    char out[65];
    size_t i;

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        memset(out, 'x', sizeof(out));
        CHECK_EQ_INT(omni_sha256_hex(v[i].in, v[i].len, out), 0);
        CHECK_STR_EQ(out, v[i].hex);
    }
}

static void test_sha256_hex_of_a_million_a(void)
{
    size_t n = 1000000;
    char *in = malloc(n), out[65];

    CHECK(in != NULL);
    memset(in, 'a', n);
    CHECK_EQ_INT(omni_sha256_hex(in, n, out), 0);
    free(in);
    CHECK_STR_EQ(out,
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_random_token_is_prefix_and_43_base64url_chars(void)
{
    char out[4 + 43 + 1];

    CHECK_EQ_INT(omni_random_token("omr_", 32, out, sizeof(out)), 0);
    CHECK_EQ_INT(strlen(out), 47);
    CHECK(strncmp(out, "omr_", 4) == 0);
    CHECK(all_in_alphabet(out + 4));
    /* 256 bits end in a character carrying 4 bits and two zero bits */
    CHECK(strchr("AEIMQUYcgkosw048", out[46]) != NULL);
}

static void test_random_token_without_prefix(void)
{
    char out[OMNI_B64URL_LEN(16) + 1];

    CHECK_EQ_INT(omni_random_token("", 16, out, sizeof(out)), 0);
    CHECK_EQ_INT(strlen(out), 22);
    CHECK(all_in_alphabet(out));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

#define NTOKENS 2000

static void test_random_tokens_are_unique_and_use_the_whole_alphabet(void)
{
    static char tokens[NTOKENS][48];
    static char *sorted[NTOKENS];
    int seen[256] = {0};
    size_t i, j;

    for (i = 0; i < NTOKENS; i++) {
        CHECK_EQ_INT(omni_random_token("omk_", 32, tokens[i], 48), 0);
        sorted[i] = tokens[i];
        for (j = 4; j < 46; j++)
            seen[(unsigned char)tokens[i][j]] = 1;
    }
    qsort(sorted, NTOKENS, sizeof(sorted[0]), cmp_str);
    for (i = 1; i < NTOKENS; i++)
        CHECK(strcmp(sorted[i - 1], sorted[i]) != 0);
    /* 84000 random characters miss one of 64 with odds below 1e-500 */
    for (i = 0; i < 64; i++)
        CHECK(seen[(unsigned char)b64url_alphabet[i]]);
}

static void test_random_token_refuses_a_buffer_one_byte_short(void)
{
    char *out = malloc(47);

    CHECK(out != NULL);
    CHECK_EQ_INT(omni_random_token("omr_", 32, out, 47), -1);
    CHECK_EQ_INT(omni_random_token("omr_", 32, out, 0), -1);
    CHECK_EQ_INT(omni_random_token("omr_long_prefix", 1, out, 16), -1);
    free(out);
}

static void test_random_token_of_64_bytes(void)
{
    char out[OMNI_B64URL_LEN(64) + 1];

    CHECK_EQ_INT(omni_random_token("", 64, out, sizeof(out)), 0);
    CHECK_EQ_INT(strlen(out), 86);
    CHECK(all_in_alphabet(out));
}

UNIT_MAIN(UNIT_TEST(test_b64url_matches_rfc4648_vectors_without_padding),
    UNIT_TEST(test_b64url_uses_the_url_safe_alphabet),
    UNIT_TEST(test_b64url_length_macro_matches_the_output),
    UNIT_TEST(test_b64url_agrees_with_openssl_on_every_byte_value),
    UNIT_TEST(test_b64url_agrees_with_openssl_on_random_input),
    UNIT_TEST(test_hex_is_lowercase_two_digits_per_byte),
    UNIT_TEST(test_sha256_hex_of_known_strings),
    UNIT_TEST(test_sha256_hex_of_a_million_a),
    UNIT_TEST(test_random_token_is_prefix_and_43_base64url_chars),
    UNIT_TEST(test_random_token_without_prefix),
    UNIT_TEST(test_random_tokens_are_unique_and_use_the_whole_alphabet),
    UNIT_TEST(test_random_token_refuses_a_buffer_one_byte_short),
    UNIT_TEST(test_random_token_of_64_bytes))
