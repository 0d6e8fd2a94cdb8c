/* test_password.c: passlib-format PBKDF2 hashes, checks and strength. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "services/auth/password.h"
#include "unit.h"

/* Made by Debian's python3-passlib 1.7.4:
 *     pbkdf2_sha256.using(rounds=R, salt=S).hash(P) */
static const struct {
    const char *password;
    size_t len;
    const char *hash;
} passlib_vectors[] = {
    /* R=29000, S=b'0123456789abcdef', P='correct horse' */
    {"correct horse", 13,
        "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY"},
    /* R=100000, S=b'\xff' * 16, P='p\u00e4ssw\u00f6rd' (hashed as UTF-8) */
    {"p\xc3\xa4ssw\xc3\xb6rd", 10,
        "$pbkdf2-sha256$100000$/////////////////////w$"
        "6GwzCR5b5kEXgAGZU3Or3XM/P7Jnfgm3FVun4IEpkcg"},
    /* R=29000, S=b'\xfb\xff' * 10, P='a' * 100 */
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        100,
        "$pbkdf2-sha256$29000$.//7//v/.//7//v/.//7//v/./8$"
        "cA92OnCagCz8jAV1/BkY64Qqr8qXCbQFpoO3EwL/J60"},
    /* R=29000, random salt, P='' */
    {"", 0,
        "$pbkdf2-sha256$29000$YozRundOiXGOsbbWes8ZIw$"
        "5NRiS6IRiPGdCbLf3OPmlrVeebyya6cIH8HGyx3b0fQ"},
    /* R=29000, S=b'0123456789abcdef', P='a\x00b' */
    {"a\0b", 3,
        "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg$"
        "mHGIPRPI0qM4bmKLgbk1t87SNXGeFLgDrm4.pg4VIvU"},
    /* R=1, S=b'', P='x': passlib's smallest salt and rounds */
    {"x", 1, "$pbkdf2-sha256$1$$2qJXLD6i.hGqErzkNuBeAbHaygkv5YpLBJM.8WDX22Q"},
};

#define VECTOR                                                                 \
    "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg$"                             \
    "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY"
#define VECTOR_PASSWORD "correct horse"

/* The checksum passlib gives 'long salt' with rounds=1, salt=b'x' * 1024. */
#define LONG_SALT_CHECKSUM "I4v1pHn0iWS1/JbaoXt6Jc9/FpCtIJFRkoS/OT5lxTE"

static int verify_str(const char *password, const char *stored)
{
    return omni_password_verify(password, strlen(password), stored);
}

/* "$pbkdf2-sha256$1$" + ab64(b'x' * salt_bytes) + "$" + LONG_SALT_CHECKSUM;
 * salt_bytes % 3 is 1 or 2. Caller frees. */
static char *long_salt_hash(size_t salt_bytes)
{
    size_t triples = salt_bytes / 3, i;
    char *s = malloc(64 + triples * 4 + 4);
    char *p = s;

    if (s == NULL)
        return NULL;
    p += sprintf(p, "$pbkdf2-sha256$1$");
    for (i = 0; i < triples; i++)
        p += sprintf(p, "eHh4");
    p += sprintf(
        p, "%s$%s", salt_bytes % 3 == 1 ? "eA" : "eHg", LONG_SALT_CHECKSUM);
    return s;
}

static void test_hash_then_verify_round_trips(void)
{
    char h[OMNI_PASSWORD_HASH_MAX];

    CHECK_EQ_INT(
        omni_password_hash("hunter2hunter2", 14, 29000, h, sizeof(h)), 0);
    CHECK_EQ_INT(verify_str("hunter2hunter2", h), 1);
}

static void test_hash_has_passlib_layout(void)
{
    char h[OMNI_PASSWORD_HASH_MAX];
    const char *salt, *checksum;

    CHECK_EQ_INT(omni_password_hash("pw", 2, 31337, h, sizeof(h)), 0);
    CHECK(strncmp(h, "$pbkdf2-sha256$31337$", 21) == 0);
    salt = h + 21;
    checksum = strchr(salt, '$');
    CHECK(checksum != NULL);
    CHECK_EQ_INT(checksum - salt, 22);
    CHECK_EQ_INT(strlen(checksum + 1), 43);
    CHECK(
        strspn(salt,
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789./$")
        == strlen(salt));
}

static void test_hashes_of_one_password_get_different_salts(void)
{
    char a[OMNI_PASSWORD_HASH_MAX], b[OMNI_PASSWORD_HASH_MAX];

    CHECK_EQ_INT(omni_password_hash("same", 4, 29000, a, sizeof(a)), 0);
    CHECK_EQ_INT(omni_password_hash("same", 4, 29000, b, sizeof(b)), 0);
    CHECK(strcmp(a, b) != 0);
}

static void test_hash_of_password_with_nul_byte_covers_every_byte(void)
{
    char h[OMNI_PASSWORD_HASH_MAX];

    CHECK_EQ_INT(omni_password_hash("a\0b", 3, 29000, h, sizeof(h)), 0);
    CHECK_EQ_INT(omni_password_verify("a\0b", 3, h), 1);
    CHECK_EQ_INT(omni_password_verify("a\0c", 3, h), 0);
    CHECK_EQ_INT(omni_password_verify("a", 1, h), 0);
}

static void test_wrong_password_does_not_verify(void)
{
    char h[OMNI_PASSWORD_HASH_MAX];

    CHECK_EQ_INT(
        omni_password_hash("right password", 14, 29000, h, sizeof(h)), 0);
    CHECK_EQ_INT(verify_str("wrong password", h), 0);
    CHECK_EQ_INT(verify_str("right passwor", h), 0);
    CHECK_EQ_INT(verify_str("", h), 0);
    CHECK_EQ_INT(verify_str("wrong", VECTOR), 0);
}

static void test_iterations_outside_the_range_are_refused(void)
{
    char h[OMNI_PASSWORD_HASH_MAX] = "untouched";

    CHECK_EQ_INT(omni_password_hash("pw", 2, 28999, h, sizeof(h)), -1);
    CHECK_EQ_INT(omni_password_hash("pw", 2, 0, h, sizeof(h)), -1);
    CHECK_EQ_INT(omni_password_hash("pw", 2, 100000001, h, sizeof(h)), -1);
    CHECK_STR_EQ(h, "untouched");
    CHECK_EQ_INT(omni_password_hash("pw", 2, 29000, h, sizeof(h)), 0);
}

static void test_output_buffer_too_small_is_refused(void)
{
    char h[OMNI_PASSWORD_HASH_MAX] = "untouched";

    /* 15 + 5 + 1 + 22 + 1 + 43 = 87 characters and a NUL */
    CHECK_EQ_INT(omni_password_hash("pw", 2, 29000, h, 87), -1);
    CHECK_STR_EQ(h, "untouched");
    CHECK_EQ_INT(omni_password_hash("pw", 2, 29000, h, 88), 0);
    CHECK_EQ_INT(strlen(h), 87);
}

static void test_passlib_hashes_verify(void)
{
    size_t i;

    for (i = 0; i < sizeof(passlib_vectors) / sizeof(passlib_vectors[0]); i++) {
        CHECK_EQ_INT(omni_password_verify(passlib_vectors[i].password,
                         passlib_vectors[i].len, passlib_vectors[i].hash),
            1);
        CHECK_EQ_INT(
            omni_password_verify("not it", 6, passlib_vectors[i].hash), 0);
    }
}

static void test_salt_of_1024_bytes_verifies_and_1025_is_malformed(void)
{
    char *ok = long_salt_hash(1024), *over = long_salt_hash(1025);

    CHECK(ok != NULL && over != NULL);
    CHECK_EQ_INT(verify_str("long salt", ok), 1);
    CHECK_EQ_INT(verify_str("long salt", over), -1);
    free(ok);
    free(over);
}

static void test_tampered_salt_does_not_verify(void)
{
    CHECK_EQ_INT(verify_str(VECTOR_PASSWORD,
                     "$pbkdf2-sha256$29000$NDEyMzQ1Njc4OWFiY2RlZg$"
                     "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY"),
        0);
    /* one byte shorter */
    CHECK_EQ_INT(verify_str(VECTOR_PASSWORD,
                     "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2Rl$"
                     "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY"),
        0);
}

static void test_tampered_checksum_does_not_verify(void)
{
    CHECK_EQ_INT(verify_str(VECTOR_PASSWORD,
                     "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg$"
                     "vHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY"),
        0);
    CHECK_EQ_INT(verify_str(VECTOR_PASSWORD,
                     "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg$"
                     "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NA"),
        0);
}

static void test_tampered_rounds_do_not_verify(void)
{
    CHECK_EQ_INT(verify_str(VECTOR_PASSWORD,
                     "$pbkdf2-sha256$29001$MDEyMzQ1Njc4OWFiY2RlZg$"
                     "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY"),
        0);
    CHECK_EQ_INT(verify_str(VECTOR_PASSWORD,
                     "$pbkdf2-sha256$2900$MDEyMzQ1Njc4OWFiY2RlZg$"
                     "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY"),
        0);
}

static void test_malformed_hashes_are_rejected(void)
{
    static const char *const bad[] = {
        "",
        "$pbkdf2-sha256$",
        "$pbkdf2-sha256$29000",
        "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg",
        "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg$",
        "$pbkdf2-sha256$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY",
        /* wrong scheme */
        "$pbkdf2-sha512$29000$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY",
        "pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY",
        /* rounds: empty, zero, zero-padded, signed, too big, not digits */
        "$pbkdf2-sha256$$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY",
        "$pbkdf2-sha256$0$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY",
        "$pbkdf2-sha256$029000$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY",
        "$pbkdf2-sha256$+29000$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY",
        "$pbkdf2-sha256$-1$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY",
        "$pbkdf2-sha256$100000001$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY",
        "$pbkdf2-sha256$4294967297$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY",
        "$pbkdf2-sha256$29k$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY",
        /* salt: padding, '+', a lone 6-bit digit, non-zero unused bits */
        "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg==$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY",
        "$pbkdf2-sha256$29000$+//7//v/.//7//v/.//7//v/./8$"
        "cA92OnCagCz8jAV1/BkY64Qqr8qXCbQFpoO3EwL/J60",
        "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZ$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY",
        "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZh$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY",
        "$pbkdf2-sha256$29000$MDEy MzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY",
        /* checksum: 31 and 33 bytes, bad digit, unused bits, extra text */
        "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033",
        "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NYAA",
        "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033N*",
        "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NZ",
        "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY$",
        "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY\n",
        "$pbkdf2-sha256$29000$MDEyMzQ1Njc4OWFiY2RlZg$"
        "uHVoxjLD1v3uqpdY8ehNPGUYMiKj8ROQSRwMSE033NY=",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (verify_str(VECTOR_PASSWORD, bad[i]) != -1)
            fprintf(stderr, "    accepted: \"%s\"\n", bad[i]);
        CHECK_EQ_INT(verify_str(VECTOR_PASSWORD, bad[i]), -1);
    }
}

static void test_set_iterations_refuses_out_of_range(void)
{
    CHECK_EQ_INT(omni_password_set_iterations(28999), -1);
    CHECK_EQ_INT(omni_password_set_iterations(100000001), -1);
    CHECK_EQ_INT(omni_password_set_iterations(100000000), 0);
    CHECK_EQ_INT(omni_password_set_iterations(29000), 0);
}

/* The same work as a real check (timing is the benchmark's business, not
 * a unit test's): it answers 0 whatever the password. */
static void test_dummy_verify_never_matches(void)
{
    CHECK_EQ_INT(omni_password_set_iterations(29000), 0);
    CHECK_EQ_INT(omni_password_dummy_verify("wrong password", 14), 0);
    CHECK_EQ_INT(omni_password_dummy_verify("", 0), 0);
}

/* "$pbkdf2-sha256$<rounds>$<salt>$..." -> rounds, and the salt's length
 * in ab64 characters in *salt_chars. */
static unsigned long rounds_of(const char *hash, size_t *salt_chars)
{
    const char *p = hash + strlen("$pbkdf2-sha256$");
    char *end;
    unsigned long rounds = strtoul(p, &end, 10);

    *salt_chars = strcspn(end + 1, "$");
    return rounds;
}

/* An unknown account must cost what a known one costs: the dummy is
 * checked through omni_password_verify() against a hash with the rounds
 * and salt length omni_password_hash() writes at the configured count,
 * whatever that count is. */
static void test_dummy_uses_the_configured_rounds_and_salt_length(void)
{
    static const unsigned counts[] = {29000, 31337, 100000, 600000, 10000000};
    char real[OMNI_PASSWORD_HASH_MAX];
    size_t real_salt, dummy_salt;
    size_t i;

    CHECK_EQ_INT(omni_password_hash("pw", 2, 29000, real, sizeof(real)), 0);
    (void)rounds_of(real, &real_salt);
    for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        CHECK_EQ_INT(omni_password_set_iterations(counts[i]), 0);
        CHECK_EQ_INT(
            rounds_of(omni_password_dummy_hash(), &dummy_salt), counts[i]);
        CHECK_EQ_INT(dummy_salt, real_salt);
    }
    /* well formed, so verify does the whole PBKDF2 and says no */
    CHECK_EQ_INT(omni_password_set_iterations(29000), 0);
    CHECK_EQ_INT(omni_password_verify("pw", 2, omni_password_dummy_hash()), 0);
    CHECK_EQ_INT(omni_password_verify("", 0, omni_password_dummy_hash()), 0);
}

/* The rounds the dummy spends, measured: 4x the rounds take well over
 * twice the time (a dummy stuck at a fixed count would not). */
static double seconds_of_dummy(void)
{
    struct timespec a, b;

    clock_gettime(CLOCK_MONOTONIC, &a);
    omni_password_dummy_verify("wrong password", 14);
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
}

/* fastest of three, against a loaded machine */
static double seconds_of_dummy_at(unsigned rounds)
{
    double best = 1e9, t;
    int i;

    omni_password_set_iterations(rounds);
    for (i = 0; i < 3; i++) {
        t = seconds_of_dummy();
        best = t < best ? t : best;
    }
    return best;
}

static void test_dummy_work_follows_the_configured_rounds(void)
{
    double low = seconds_of_dummy_at(29000);
    double high = seconds_of_dummy_at(116000);

    CHECK_EQ_INT(omni_password_set_iterations(29000), 0);
    CHECK(high > 2.0 * low);
}

static void test_strength_accepts_eight_characters(void)
{
    const char *why = NULL;

    CHECK_EQ_INT(omni_password_strength("12345678", 8, &why), 0);
    CHECK(why == NULL);
}

static void test_strength_counts_code_points_not_bytes(void)
{
    const char *why = NULL;
    /* seven two-byte characters: 14 bytes, still too short */
    const char *seven = "\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4"
                        "\xc3\xa4";
    /* eight characters of 1, 2, 3 and 4 bytes */
    const char *eight = "a\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80"
                        "bcde";

    CHECK_EQ_INT(omni_password_strength(seven, strlen(seven), &why), -1);
    CHECK_STR_EQ(why, "password is shorter than 8 characters");
    CHECK_EQ_INT(omni_password_strength(eight, strlen(eight), NULL), 0);
}

static void test_strength_refuses_seven_characters(void)
{
    const char *why = NULL;

    CHECK_EQ_INT(omni_password_strength("1234567", 7, &why), -1);
    CHECK_STR_EQ(why, "password is shorter than 8 characters");
    CHECK_EQ_INT(omni_password_strength("", 0, &why), -1);
}

static void test_strength_refuses_more_than_1024_bytes(void)
{
    char buf[1025];
    const char *why = NULL;

    memset(buf, 'a', sizeof(buf));
    CHECK_EQ_INT(omni_password_strength(buf, 1024, &why), 0);
    CHECK_EQ_INT(omni_password_strength(buf, 1025, &why), -1);
    CHECK_STR_EQ(why, "password is longer than 1024 bytes");
}

static void test_strength_refuses_nul(void)
{
    const char *why = NULL;

    CHECK_EQ_INT(omni_password_strength("abcd\0efgh", 9, &why), -1);
    CHECK_STR_EQ(why, "password contains a NUL character");
}

static void test_strength_refuses_invalid_utf8(void)
{
    static const char *const bad[] = {
        "abcdefgh\x80",                     /* lone continuation byte */
        "abcdefgh\xc0\xaf",                 /* overlong '/' */
        "abcdefgh\xe0\x80\xaf",             /* overlong, three bytes */
        "abcdefgh\xed\xa0\x80",             /* UTF-16 surrogate */
        "abcdefgh\xf4\x90\x80\x80",         /* past U+10FFFF */
        "abcdefgh\xf5\x80\x80\x80",         /* never a lead byte */
        "abcdefgh\xff", "abcdefgh\xe2\x82", /* truncated at the end */
        "abcdefgh\xe2\x82x",                /* truncated in the middle */
    };
    const char *why;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        CHECK_EQ_INT(omni_password_strength(bad[i], strlen(bad[i]), &why), -1);
        CHECK_STR_EQ(why, "password is not valid UTF-8");
    }
}

UNIT_MAIN(UNIT_TEST(test_hash_then_verify_round_trips),
    UNIT_TEST(test_hash_has_passlib_layout),
    UNIT_TEST(test_hashes_of_one_password_get_different_salts),
    UNIT_TEST(test_hash_of_password_with_nul_byte_covers_every_byte),
    UNIT_TEST(test_wrong_password_does_not_verify),
    UNIT_TEST(test_iterations_outside_the_range_are_refused),
    UNIT_TEST(test_output_buffer_too_small_is_refused),
    UNIT_TEST(test_passlib_hashes_verify),
    UNIT_TEST(test_salt_of_1024_bytes_verifies_and_1025_is_malformed),
    UNIT_TEST(test_tampered_salt_does_not_verify),
    UNIT_TEST(test_tampered_checksum_does_not_verify),
    UNIT_TEST(test_tampered_rounds_do_not_verify),
    UNIT_TEST(test_malformed_hashes_are_rejected),
    UNIT_TEST(test_set_iterations_refuses_out_of_range),
    UNIT_TEST(test_dummy_verify_never_matches),
    UNIT_TEST(test_dummy_uses_the_configured_rounds_and_salt_length),
    UNIT_TEST(test_dummy_work_follows_the_configured_rounds),
    UNIT_TEST(test_strength_accepts_eight_characters),
    UNIT_TEST(test_strength_counts_code_points_not_bytes),
    UNIT_TEST(test_strength_refuses_seven_characters),
    UNIT_TEST(test_strength_refuses_more_than_1024_bytes),
    UNIT_TEST(test_strength_refuses_nul),
    UNIT_TEST(test_strength_refuses_invalid_utf8))
