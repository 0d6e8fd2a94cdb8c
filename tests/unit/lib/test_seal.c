/* test_seal.c: AES-256-GCM sealing of stored secrets, and key files. */
#define _GNU_SOURCE
#include <string.h>

#include "lib/seal.h"
#include "unit.h"

static const char hexkey[] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static void key(unsigned char k[OMNI_SEAL_KEY_LEN])
{
    int i;

    for (i = 0; i < OMNI_SEAL_KEY_LEN; i++) {
        k[i] = (unsigned char)i;
    }
}

static void test_key_file_forms_parse_to_the_same_key(void)
{
    unsigned char k[32], want[32];

    key(want);
    CHECK_EQ_INT(omni_seal_key_parse(hexkey, strlen(hexkey), k), 0);
    CHECK(memcmp(k, want, 32) == 0);
    CHECK_EQ_INT(omni_seal_key_parse(
                     "  AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", 47, k),
        0);
    CHECK(memcmp(k, want, 32) == 0);
    CHECK_EQ_INT(omni_seal_key_parse(
                     "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", 43, k),
        0);
    CHECK(memcmp(k, want, 32) == 0);
}

static void test_bad_key_files_are_refused(void)
{
    unsigned char k[32];

    CHECK_EQ_INT(omni_seal_key_parse("", 0, k), -1);
    CHECK_EQ_INT(omni_seal_key_parse("short", 5, k), -1);
    /* 63 hex digits, a non-hex digit, 24 bytes of base64 */
    CHECK_EQ_INT(omni_seal_key_parse(hexkey, 63, k), -1);
    CHECK_EQ_INT(omni_seal_key_parse("zz0102030405060708090a0b0c0d0e0f10111213"
                                     "1415161718191a1b1c1d1e1f",
                     64, k),
        -1);
    CHECK_EQ_INT(
        omni_seal_key_parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX", 32, k), -1);
    /* non-zero leftover bits: not a canonical encoding */
    CHECK_EQ_INT(omni_seal_key_parse(
                     "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9", 43, k),
        -1);
}

static void test_sealed_text_opens_only_with_key_and_aad(void)
{
    unsigned char k[32], k2[32], sealed[64 + OMNI_SEAL_OVERHEAD], plain[64];
    const char msg[] = "{\"Authorization\":\"Bearer s3cret\"}";
    size_t n = strlen(msg), out;

    key(k);
    key(k2);
    k2[31] ^= 1;
    CHECK_EQ_INT(omni_seal(k, "id-1", 4, msg, n, sealed), 0);
    CHECK(memmem(sealed, n + OMNI_SEAL_OVERHEAD, "s3cret", 6) == NULL);
    CHECK_EQ_INT(
        omni_unseal(k, "id-1", 4, sealed, n + OMNI_SEAL_OVERHEAD, plain, &out),
        0);
    CHECK_EQ_INT(out, n);
    CHECK(memcmp(plain, msg, n) == 0);
    CHECK_EQ_INT(
        omni_unseal(k2, "id-1", 4, sealed, n + OMNI_SEAL_OVERHEAD, plain, &out),
        -1);
    CHECK_EQ_INT(
        omni_unseal(k, "id-2", 4, sealed, n + OMNI_SEAL_OVERHEAD, plain, &out),
        -1);
    sealed[20] ^= 0x40;
    CHECK_EQ_INT(
        omni_unseal(k, "id-1", 4, sealed, n + OMNI_SEAL_OVERHEAD, plain, &out),
        -1);
    CHECK_EQ_INT(omni_unseal(k, "id-1", 4, sealed, 10, plain, &out), -1);
}

static void test_two_seals_of_one_text_differ(void)
{
    unsigned char k[32], a[8 + OMNI_SEAL_OVERHEAD], b[8 + OMNI_SEAL_OVERHEAD];

    key(k);
    CHECK_EQ_INT(omni_seal(k, NULL, 0, "same-txt", 8, a), 0);
    CHECK_EQ_INT(omni_seal(k, NULL, 0, "same-txt", 8, b), 0);
    CHECK(memcmp(a, b, sizeof(a)) != 0);
}

UNIT_MAIN(UNIT_TEST(test_key_file_forms_parse_to_the_same_key),
    UNIT_TEST(test_bad_key_files_are_refused),
    UNIT_TEST(test_sealed_text_opens_only_with_key_and_aad),
    UNIT_TEST(test_two_seals_of_one_text_differ))
