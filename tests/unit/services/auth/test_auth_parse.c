/* test_auth_parse.c: the auth service's input checks: UUID text
 * (lib/uuid.h), role ranks (http/identity.h) and the pure parsers of
 * auth_input.h. */
#include <stdint.h>
#include <string.h>

#include "lib/uuid.h"
#include "http/identity.h"
#include "services/auth/auth_input.h"
#include "unit.h"

#define B64URL                                                                 \
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

static void test_canonical_uuids_are_accepted(void)
{
    CHECK_EQ_INT(omni_uuid_valid("0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9d"), 1);
    CHECK_EQ_INT(omni_uuid_valid("00000000-0000-0000-0000-000000000000"), 1);
    CHECK_EQ_INT(omni_uuid_valid("ffffffff-ffff-ffff-ffff-ffffffffffff"), 1);
}

static void test_uuids_in_any_hex_case_are_accepted(void)
{
    CHECK_EQ_INT(omni_uuid_valid("0B7E7A43-2F5C-4B8E-9D2A-6F1C3E5A7B9D"), 1);
    CHECK_EQ_INT(omni_uuid_valid("0b7E7a43-2F5c-4B8e-9D2a-6f1C3e5A7b9D"), 1);
}

static void test_uuids_of_the_wrong_length_are_refused(void)
{
    CHECK_EQ_INT(omni_uuid_valid(""), 0);
    CHECK_EQ_INT(omni_uuid_valid("0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9"), 0);
    CHECK_EQ_INT(omni_uuid_valid("0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9d0"), 0);
    CHECK_EQ_INT(omni_uuid_valid(" 0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9d"), 0);
    CHECK_EQ_INT(omni_uuid_valid("0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9d\n"), 0);
    CHECK_EQ_INT(omni_uuid_valid("{0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9d}"), 0);
    CHECK_EQ_INT(omni_uuid_valid("0b7e7a432f5c4b8e9d2a6f1c3e5a7b9d"), 0);
}

static void test_uuids_with_misplaced_hyphens_are_refused(void)
{
    CHECK_EQ_INT(omni_uuid_valid("0b7e7a4-32f5c-4b8e-9d2a-6f1c3e5a7b9d"), 0);
    CHECK_EQ_INT(omni_uuid_valid("0b7e7a43-2f5c4-b8e-9d2a-6f1c3e5a7b9d"), 0);
    CHECK_EQ_INT(omni_uuid_valid("0b7e7a43-2f5c-4b8e9-d2a-6f1c3e5a7b9d"), 0);
    CHECK_EQ_INT(omni_uuid_valid("0b7e7a43-2f5c-4b8e-9d2a6-f1c3e5a7b9d"), 0);
    CHECK_EQ_INT(omni_uuid_valid("0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b-d"), 0);
    CHECK_EQ_INT(omni_uuid_valid("------------------------------------"), 0);
}

static void test_uuids_with_non_hex_digits_are_refused(void)
{
    char s[] = "0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9d";
    const char *bad = "gG:/@`\x80 \t";
    size_t pos, i;

    /* each foreign character at each digit position */
    for (pos = 0; pos < 36; pos++) {
        if (pos == 8 || pos == 13 || pos == 18 || pos == 23)
            continue;
        for (i = 0; bad[i]; i++) {
            char keep = s[pos];

            s[pos] = bad[i];
            if (omni_uuid_valid(s) != 0)
                fprintf(stderr, "    accepted \"%s\"\n", s);
            CHECK_EQ_INT(omni_uuid_valid(s), 0);
            s[pos] = keep;
        }
    }
    CHECK_EQ_INT(omni_uuid_valid(s), 1);
}

static void test_null_is_not_a_uuid(void)
{
    CHECK_EQ_INT(omni_uuid_valid(NULL), 0);
}

static void test_roles_rank_viewer_user_developer_admin(void)
{
    CHECK_EQ_INT(omni_role_rank("viewer"), 1);
    CHECK_EQ_INT(omni_role_rank("user"), 2);
    CHECK_EQ_INT(omni_role_rank("developer"), 3);
    CHECK_EQ_INT(omni_role_rank("admin"), 4);
}

static void test_unknown_roles_rank_zero(void)
{
    CHECK_EQ_INT(omni_role_rank(NULL), 0);
    CHECK_EQ_INT(omni_role_rank(""), 0);
    CHECK_EQ_INT(omni_role_rank("root"), 0);
    CHECK_EQ_INT(omni_role_rank("superuser"), 0);
    CHECK_EQ_INT(omni_role_rank("admins"), 0);
    CHECK_EQ_INT(omni_role_rank("admi"), 0);
    CHECK_EQ_INT(omni_role_rank(" admin"), 0);
    CHECK_EQ_INT(omni_role_rank("admin "), 0);
}

static void test_role_names_are_case_sensitive(void)
{
    /* the API and the database use the lowercase names only */
    CHECK_EQ_INT(omni_role_rank("Admin"), 0);
    CHECK_EQ_INT(omni_role_rank("ADMIN"), 0);
    CHECK_EQ_INT(omni_role_rank("Viewer"), 0);
}

/* "lll...l@ddd...d.co": total bytes, the local part local bytes long */
static const char *make_email(char *buf, size_t local, size_t total)
{
    size_t i;

    for (i = 0; i < total; i++)
        buf[i] = i < local ? 'l' : 'd';
    buf[local] = '@';
    memcpy(buf + total - 3, ".co", 3);
    buf[total] = '\0';
    return buf;
}

static void test_plain_emails_are_accepted(void)
{
    CHECK(omni_auth_email_problem("a@b.co") == NULL);
    CHECK(omni_auth_email_problem("first.last+tag@mail.example.com") == NULL);
    CHECK(omni_auth_email_problem("x_y-z@sub.example.org") == NULL);
}

static void test_email_of_254_bytes_is_accepted_and_255_refused(void)
{
    char buf[300];
    const char *why;

    CHECK(omni_auth_email_problem(make_email(buf, 64, 254)) == NULL);
    CHECK(omni_auth_email_problem(make_email(buf, 10, 254)) == NULL);
    why = omni_auth_email_problem(make_email(buf, 10, 255));
    CHECK(why != NULL && strstr(why, "254") != NULL);
    why = omni_auth_email_problem(make_email(buf, 64, 255));
    CHECK(why != NULL && strstr(why, "254") != NULL);
}

static void test_email_local_part_of_64_bytes_is_accepted_and_65_refused(void)
{
    char buf[300];
    const char *why;

    CHECK(omni_auth_email_problem(make_email(buf, 64, 80)) == NULL);
    CHECK(omni_auth_email_problem(make_email(buf, 1, 80)) == NULL);
    why = omni_auth_email_problem(make_email(buf, 65, 80));
    CHECK(why != NULL && strstr(why, "local part") != NULL);
    CHECK(omni_auth_email_problem(make_email(buf, 65, 254)) != NULL);
}

static void test_email_needs_exactly_one_at_after_a_local_part(void)
{
    CHECK(omni_auth_email_problem("") != NULL);
    CHECK(omni_auth_email_problem("ab.co") != NULL);
    CHECK(omni_auth_email_problem("@b.co") != NULL);
    CHECK(omni_auth_email_problem("a@b@c.co") != NULL);
    CHECK(omni_auth_email_problem("a@@b.co") != NULL);
    CHECK(omni_auth_email_problem("a@b.co@") != NULL);
}

static void test_email_with_spaces_or_control_bytes_is_refused(void)
{
    char local[] = "a?b@c.co", domain[] = "ab@c?d.co";
    int c;

    for (c = 1; c <= 0x7f; c++) {
        if (c > ' ' && c < 0x7f)
            continue;
        local[1] = (char)c;
        domain[4] = (char)c;
        if (omni_auth_email_problem(local) == NULL
            || omni_auth_email_problem(domain) == NULL)
            fprintf(stderr, "    byte 0x%02x accepted\n", c);
        CHECK(omni_auth_email_problem(local) != NULL);
        CHECK(omni_auth_email_problem(domain) != NULL);
    }
    CHECK(omni_auth_email_problem(" a@b.co") != NULL);
    CHECK(omni_auth_email_problem("a@b.co\n") != NULL);
}

static void test_email_domain_needs_a_dot_inside_it(void)
{
    CHECK(omni_auth_email_problem("a@") != NULL);
    CHECK(omni_auth_email_problem("a@b") != NULL);
    CHECK(omni_auth_email_problem("a@localhost") != NULL);
    CHECK(omni_auth_email_problem("a@.") != NULL);
    CHECK(omni_auth_email_problem("a@.co") != NULL);
    CHECK(omni_auth_email_problem("a@b.co.") != NULL);
    CHECK(omni_auth_email_problem("a@b.") != NULL);
    CHECK(omni_auth_email_problem("a@b..co") != NULL);
    CHECK(omni_auth_email_problem("a@b.c..co") != NULL);
}

static void test_email_bytes_above_ascii_are_not_refused(void)
{
    /* only bytes <= 0x20 and 0x7f are refused: UTF-8 addresses pass */
    CHECK(omni_auth_email_problem("j\xc3\xb6rg@ex\xc3\xa4mple.de") == NULL);
}

static void test_usernames_of_3_and_64_characters_are_accepted(void)
{
    char buf[80];

    memset(buf, 'u', sizeof(buf));
    buf[3] = '\0';
    CHECK(omni_auth_username_problem(buf) == NULL);
    buf[3] = 'u';
    buf[64] = '\0';
    CHECK(omni_auth_username_problem(buf) == NULL);
}

static void test_usernames_of_2_or_65_characters_are_refused(void)
{
    char buf[80];

    memset(buf, 'u', sizeof(buf));
    buf[65] = '\0';
    CHECK(omni_auth_username_problem(buf) != NULL);
    buf[2] = '\0';
    CHECK(omni_auth_username_problem(buf) != NULL);
    CHECK(omni_auth_username_problem("u") != NULL);
    CHECK(omni_auth_username_problem("") != NULL);
}

static void test_usernames_may_use_letters_digits_and_underscore_dot_hyphen(
    void)
{
    CHECK(omni_auth_username_problem("ABCDEFGHIJKLMNOPQRSTUVWXYZ") == NULL);
    CHECK(omni_auth_username_problem("abcdefghijklmnopqrstuvwxyz") == NULL);
    CHECK(omni_auth_username_problem("0123456789_.-") == NULL);
    CHECK(omni_auth_username_problem("..-") == NULL);
}

static void test_usernames_with_other_bytes_are_refused(void)
{
    char u[] = "ab?cd";
    int c;

    for (c = 1; c <= 0xff; c++) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')
            continue;
        u[2] = (char)c;
        if (omni_auth_username_problem(u) == NULL)
            fprintf(stderr, "    byte 0x%02x accepted\n", c);
        CHECK(omni_auth_username_problem(u) != NULL);
    }
    CHECK(omni_auth_username_problem("j\xc3\xb6rg") != NULL);
    CHECK(omni_auth_username_problem("a b") != NULL);
}

/* "omr_" then 43 characters of the base64url alphabet from offset at */
static const char *make_token(char *buf, size_t at, size_t len)
{
    memcpy(buf, "omr_", 4);
    memcpy(buf + 4, B64URL + at, len);
    buf[4 + len] = '\0';
    return buf;
}

static void test_refresh_tokens_of_prefix_and_43_base64url_are_accepted(void)
{
    char buf[64];

    /* the two windows cover the whole alphabet */
    CHECK_EQ_INT(omni_auth_token_format(make_token(buf, 0, 43), "omr_"), 1);
    CHECK_EQ_INT(omni_auth_token_format(make_token(buf, 21, 43), "omr_"), 1);
    CHECK_EQ_INT(omni_auth_token_format(buf + 4, ""), 1);
}

static void test_refresh_tokens_of_the_wrong_length_are_refused(void)
{
    char buf[64];

    CHECK_EQ_INT(omni_auth_token_format(make_token(buf, 0, 42), "omr_"), 0);
    CHECK_EQ_INT(omni_auth_token_format(make_token(buf, 0, 44), "omr_"), 0);
    CHECK_EQ_INT(omni_auth_token_format("omr_", "omr_"), 0);
    CHECK_EQ_INT(omni_auth_token_format("", "omr_"), 0);
    CHECK_EQ_INT(omni_auth_token_format("", ""), 0);
}

static void test_refresh_tokens_with_padding_or_standard_base64_are_refused(
    void)
{
    const char *bad = "=+/ .\x80";
    char buf[64];
    size_t i;

    for (i = 0; bad[i]; i++) {
        make_token(buf, 0, 43);
        buf[46] = bad[i];
        CHECK_EQ_INT(omni_auth_token_format(buf, "omr_"), 0);
        make_token(buf, 0, 43);
        buf[4] = bad[i];
        CHECK_EQ_INT(omni_auth_token_format(buf, "omr_"), 0);
    }
}

static void test_refresh_tokens_with_another_prefix_are_refused(void)
{
    char buf[64];

    make_token(buf, 0, 43);
    memcpy(buf, "omk_", 4);
    CHECK_EQ_INT(omni_auth_token_format(buf, "omr_"), 0);
    memcpy(buf, "OMR_", 4);
    CHECK_EQ_INT(omni_auth_token_format(buf, "omr_"), 0);
    /* 47 base64url characters: the length fits, the prefix does not */
    memcpy(buf, "omrx", 4);
    CHECK_EQ_INT(omni_auth_token_format(buf, "omr_"), 0);
}

static void test_chars_of_ascii_is_its_length(void)
{
    CHECK_EQ_INT(omni_auth_chars(""), 0);
    CHECK_EQ_INT(omni_auth_chars("a"), 1);
    CHECK_EQ_INT(omni_auth_chars("hello, world"), 12);
}

static void test_chars_counts_multibyte_code_points_once(void)
{
    char buf[400];
    size_t i;

    CHECK_EQ_INT(omni_auth_chars("\xc3\xa9"), 1); /* U+00E9 */
    CHECK_EQ_INT(omni_auth_chars("\xe6\x97\xa5\xe6\x9c\xac"), 2);
    CHECK_EQ_INT(omni_auth_chars("\xf0\x9f\x98\x80"), 1); /* U+1F600 */
    CHECK_EQ_INT(omni_auth_chars("a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80"), 4);
    /* the API key name limit: 100 characters of 2 and 3 bytes */
    for (i = 0; i < 100; i++)
        memcpy(buf + 2 * i, "\xc3\xa9", 2);
    buf[200] = '\0';
    CHECK_EQ_INT(omni_auth_chars(buf), 100);
    for (i = 0; i < 101; i++)
        memcpy(buf + 3 * i, "\xe6\x97\xa5", 3);
    buf[303] = '\0';
    CHECK_EQ_INT(omni_auth_chars(buf), 101);
}

/* s parses to want unix seconds (expectations from GNU date -u -d s +%s) */
static void expect_time(const char *s, int64_t want)
{
    int64_t t = INT64_MIN;

    if (omni_auth_rfc3339(s, &t) != 0 || t != want)
        fprintf(stderr, "    \"%s\"\n", s);
    CHECK_EQ_INT(omni_auth_rfc3339(s, &t), 0);
    CHECK_EQ_INT(t, want);
}

static void expect_refused(const char *s)
{
    int64_t t;

    if (omni_auth_rfc3339(s, &t) != -1)
        fprintf(stderr, "    accepted \"%s\"\n", s);
    CHECK_EQ_INT(omni_auth_rfc3339(s, &t), -1);
}

static void test_rfc3339_utc_date_times_give_unix_seconds(void)
{
    expect_time("2026-01-02T03:04:05Z", 1767323045);
    expect_time("1970-01-01T00:00:00Z", 0);
    expect_time("2026-12-31T23:59:59Z", 1798761599);
    expect_time("2026-03-01T00:00:00Z", 1772323200);
    expect_time("2026-04-30T00:00:00Z", 1777507200);
    expect_time("9999-12-31T23:59:59Z", 253402300799LL);
}

static void test_rfc3339_lowercase_t_and_z_are_accepted(void)
{
    expect_time("2026-01-02t03:04:05Z", 1767323045);
    expect_time("2026-01-02T03:04:05z", 1767323045);
    expect_time("2026-01-02t03:04:05z", 1767323045);
}

static void test_rfc3339_fractions_are_accepted_and_cut_to_the_second(void)
{
    expect_time("2026-01-02T03:04:05.0Z", 1767323045);
    expect_time("2026-01-02T03:04:05.5Z", 1767323045);
    expect_time("2026-01-02T03:04:05.123456z", 1767323045);
    expect_time("2026-01-02T03:04:05.999999999Z", 1767323045);
    /* RFC 3339's time-secfrac is "." 1*DIGIT: no upper bound */
    expect_time("2026-01-02T03:04:05.12345678901234567890Z", 1767323045);
    expect_time("1969-12-31T23:59:59.5Z", -1);
}

static void test_rfc3339_offsets_are_local_time_ahead_of_utc(void)
{
    expect_time("2026-01-02T03:04:05+05:30", 1767303245);
    expect_time("2026-01-02T03:04:05-08:00", 1767351845);
    expect_time("2026-01-02T03:04:05.5+01:00", 1767319445);
    expect_time("2026-01-02T03:04:05+00:00", 1767323045);
    expect_time("2026-01-02T03:04:05-00:00", 1767323045);
    expect_time("2026-01-02T03:04:05+23:59", 1767236705);
    expect_time("2026-01-02T03:04:05-23:59", 1767409385);
    /* across a year boundary, both ways */
    expect_time("2026-12-31T23:59:59-05:00", 1798779599);
    expect_time("2026-01-01T00:01:00+01:00", 1767222060);
}

static void test_rfc3339_dates_before_1970_are_negative(void)
{
    expect_time("1969-12-31T23:59:59Z", -1);
    expect_time("1970-01-01T00:00:00+00:01", -60);
    expect_time("1900-01-01T00:00:00Z", -2208988800LL);
    expect_time("0000-01-01T00:00:00Z", -62167219200LL);
}

static void test_rfc3339_february_29_exists_in_leap_years_only(void)
{
    expect_time("2024-02-29T12:00:00Z", 1709208000);
    expect_time("2000-02-29T00:00:00Z", 951782400);
    expect_time("1600-02-29T00:00:00Z", -11670998400LL);
    expect_time("2026-02-28T23:59:59Z", 1772323199);
    expect_time("2100-02-28T00:00:00Z", 4107456000LL);
    expect_refused("2026-02-29T00:00:00Z");
    expect_refused("2100-02-29T00:00:00Z");
    expect_refused("1900-02-29T00:00:00Z");
    expect_refused("2024-02-30T00:00:00Z");
}

static void test_rfc3339_days_past_the_end_of_the_month_are_refused(void)
{
    static const int last[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    char s[32];
    int m;
    int64_t t;

    for (m = 1; m <= 12; m++) {
        snprintf(s, sizeof(s), "2026-%02d-%02dT00:00:00Z", m, last[m - 1]);
        if (omni_auth_rfc3339(s, &t) != 0)
            fprintf(stderr, "    refused \"%s\"\n", s);
        CHECK_EQ_INT(omni_auth_rfc3339(s, &t), 0);
        snprintf(s, sizeof(s), "2026-%02d-%02dT00:00:00Z", m, last[m - 1] + 1);
        expect_refused(s);
    }
    expect_refused("2026-02-30T00:00:00Z");
    expect_refused("2026-02-31T00:00:00Z");
    expect_refused("2026-04-31T00:00:00Z");
    expect_refused("2026-01-00T00:00:00Z");
    expect_refused("2026-01-99T00:00:00Z");
}

static void test_rfc3339_fields_out_of_range_are_refused(void)
{
    expect_refused("2026-00-10T00:00:00Z");
    expect_refused("2026-13-10T00:00:00Z");
    expect_refused("2026-01-02T24:00:00Z");
    expect_refused("2026-01-02T23:60:00Z");
    expect_refused("2026-01-02T23:59:60Z");
    /* a real leap second is refused too */
    expect_refused("2016-12-31T23:59:60Z");
}

static void test_rfc3339_signs_and_spaces_inside_fields_are_refused(void)
{
    char s[] = "2026-01-02T03:04:05Z";
    const char *bad = " +-a/:.\x80";
    size_t pos, i;

    expect_refused("2026-+1-02T03:04:05Z");
    expect_refused("2026-01-02T 3:04:05Z");
    expect_refused("+026-01-02T03:04:05Z");
    expect_refused("2026-01--2T03:04:05Z");
    expect_refused("2026-01-02T03:+4:05Z");
    expect_refused("2026-01-02T03:04: 5Z");
    /* each foreign character at each digit position */
    for (pos = 0; pos < 19; pos++) {
        if (pos == 4 || pos == 7 || pos == 10 || pos == 13 || pos == 16)
            continue;
        for (i = 0; bad[i]; i++) {
            char keep = s[pos];

            s[pos] = bad[i];
            expect_refused(s);
            s[pos] = keep;
        }
    }
    expect_time(s, 1767323045);
}

static void test_rfc3339_malformed_offsets_are_refused(void)
{
    expect_refused("2026-01-02T03:04:05+-1:00");
    expect_refused("2026-01-02T03:04:05+05:-1");
    expect_refused("2026-01-02T03:04:05+ 5:00");
    expect_refused("2026-01-02T03:04:05+05: 0");
    expect_refused("2026-01-02T03:04:05+24:00");
    expect_refused("2026-01-02T03:04:05-24:00");
    expect_refused("2026-01-02T03:04:05+05:60");
    expect_refused("2026-01-02T03:04:05+5:00");
    expect_refused("2026-01-02T03:04:05+0500");
    expect_refused("2026-01-02T03:04:05+05:0");
    expect_refused("2026-01-02T03:04:05+05:000");
    expect_refused("2026-01-02T03:04:05+05");
    expect_refused("2026-01-02T03:04:05+");
    expect_refused("2026-01-02T03:04:05 05:00");
    expect_refused("2026-01-02T03:04:05*05:00");
}

static void test_rfc3339_missing_parts_are_refused(void)
{
    expect_refused("");
    expect_refused("2026-01-02");
    expect_refused("2026-01-02T03:04Z");
    expect_refused("2026-01-02T03:04+01:00");
    expect_refused("2026-01-02T03:04:05");
    expect_refused("2026-01-02T03:04:05.123");
    expect_refused("2026-01-02T03:04:05.Z");
    expect_refused("2026-01-02T03:04:05.+01:00");
    expect_refused("2026-01-02 03:04:05Z");
    expect_refused("2026-01-0203:04:05Z");
    expect_refused("26-01-02T03:04:05Z");
    expect_refused("20260102T030405Z");
}

static void test_rfc3339_trailing_characters_are_refused(void)
{
    expect_refused("2026-01-02T03:04:05Z ");
    expect_refused("2026-01-02T03:04:05Z\n");
    expect_refused("2026-01-02T03:04:05ZZ");
    expect_refused("2026-01-02T03:04:05Zjunk");
    expect_refused("2026-01-02T03:04:05+01:00 ");
    expect_refused("2026-01-02T03:04:05+01:00Z");
    expect_refused("2026-01-02T03:04:05.5.5Z");
    expect_refused("2026-01-02T03:04:05,5Z");
    expect_refused("12026-01-02T03:04:05Z");
}

static void test_array_next_walks_every_element(void)
{
    const char *p = "{a,b,c}";
    char out[16];

    CHECK((p = omni_auth_array_next(p, out, sizeof(out))) != NULL);
    CHECK_STR_EQ(out, "a");
    CHECK((p = omni_auth_array_next(p, out, sizeof(out))) != NULL);
    CHECK_STR_EQ(out, "b");
    CHECK((p = omni_auth_array_next(p, out, sizeof(out))) != NULL);
    CHECK_STR_EQ(out, "c");
    CHECK(omni_auth_array_next(p, out, sizeof(out)) == NULL);
}

static void test_array_next_of_an_empty_array_ends_at_once(void)
{
    char out[16];

    CHECK(omni_auth_array_next("{}", out, sizeof(out)) == NULL);
    CHECK(omni_auth_array_next("", out, sizeof(out)) == NULL);
}

static void test_array_next_truncates_long_elements_and_skips_the_rest(void)
{
    const char *p = "{abcdef,gh,ijkl}";
    char out[4];

    CHECK((p = omni_auth_array_next(p, out, sizeof(out))) != NULL);
    CHECK_STR_EQ(out, "abc");
    CHECK((p = omni_auth_array_next(p, out, sizeof(out))) != NULL);
    CHECK_STR_EQ(out, "gh");
    CHECK((p = omni_auth_array_next(p, out, sizeof(out))) != NULL);
    CHECK_STR_EQ(out, "ijk");
    CHECK(omni_auth_array_next(p, out, sizeof(out)) == NULL);
}

static void test_array_next_stops_at_an_sql_null(void)
{
    const char *p = "{a,NULL,b}";
    char out[16];

    CHECK((p = omni_auth_array_next(p, out, sizeof(out))) != NULL);
    CHECK_STR_EQ(out, "a");
    CHECK(omni_auth_array_next(p, out, sizeof(out)) == NULL);
    CHECK(omni_auth_array_next("{NULL,a}", out, sizeof(out)) == NULL);
    /* only the whole element NULL is an SQL null */
    CHECK(omni_auth_array_next("{NULLS}", out, sizeof(out)) != NULL);
    CHECK_STR_EQ(out, "NULLS");
}

static void test_array_next_stops_at_an_empty_element(void)
{
    const char *p = "{a,,b}";
    char out[16];

    CHECK((p = omni_auth_array_next(p, out, sizeof(out))) != NULL);
    CHECK_STR_EQ(out, "a");
    CHECK(omni_auth_array_next(p, out, sizeof(out)) == NULL);
}

static void test_array_next_reads_jtis_and_expiries_in_step(void)
{
    /* what revoke_arrays walks: uuid[] and bigint[] from Postgres */
    const char *jtis = "{0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9d,"
                       "00000000-0000-0000-0000-000000000001}";
    const char *exps = "{1767323045,1798761599}";
    char jti[160], exp[32];

    CHECK((jtis = omni_auth_array_next(jtis, jti, sizeof(jti))) != NULL);
    CHECK((exps = omni_auth_array_next(exps, exp, sizeof(exp))) != NULL);
    CHECK_STR_EQ(jti, "0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9d");
    CHECK_STR_EQ(exp, "1767323045");
    CHECK((jtis = omni_auth_array_next(jtis, jti, sizeof(jti))) != NULL);
    CHECK((exps = omni_auth_array_next(exps, exp, sizeof(exp))) != NULL);
    CHECK_STR_EQ(jti, "00000000-0000-0000-0000-000000000001");
    CHECK_STR_EQ(exp, "1798761599");
    CHECK(omni_auth_array_next(jtis, jti, sizeof(jti)) == NULL);
    CHECK(omni_auth_array_next(exps, exp, sizeof(exp)) == NULL);
}

/* exp as logout gets it from the gateway: the claim as written */
static void test_numeric_date_takes_plain_integers(void)
{
    int64_t t = -1;

    CHECK_EQ_INT(omni_auth_numeric_date("1900000000", &t), 0);
    CHECK_EQ_INT(t, 1900000000);
    CHECK_EQ_INT(omni_auth_numeric_date("0", &t), 0);
    CHECK_EQ_INT(t, 0);
    CHECK_EQ_INT(omni_auth_numeric_date("999999999999999999", &t), 0);
    CHECK_EQ_INT(t, 999999999999999999LL);
}

static void test_numeric_date_refuses_anything_else(void)
{
    static const char *bad[] = {"1.9e9", "1900000000.5", "1e3", "-1", "+5",
        " 5", "5 ", "", "0x10", "1000000000000000000", "12a"};
    int64_t t = 7;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ_INT(omni_auth_numeric_date(bad[i], &t), -1);
        CHECK_EQ_INT(t, 7);
    }
}

UNIT_MAIN(UNIT_TEST(test_canonical_uuids_are_accepted),
    UNIT_TEST(test_uuids_in_any_hex_case_are_accepted),
    UNIT_TEST(test_uuids_of_the_wrong_length_are_refused),
    UNIT_TEST(test_uuids_with_misplaced_hyphens_are_refused),
    UNIT_TEST(test_uuids_with_non_hex_digits_are_refused),
    UNIT_TEST(test_null_is_not_a_uuid),
    UNIT_TEST(test_roles_rank_viewer_user_developer_admin),
    UNIT_TEST(test_unknown_roles_rank_zero),
    UNIT_TEST(test_role_names_are_case_sensitive),
    UNIT_TEST(test_plain_emails_are_accepted),
    UNIT_TEST(test_email_of_254_bytes_is_accepted_and_255_refused),
    UNIT_TEST(test_email_local_part_of_64_bytes_is_accepted_and_65_refused),
    UNIT_TEST(test_email_needs_exactly_one_at_after_a_local_part),
    UNIT_TEST(test_email_with_spaces_or_control_bytes_is_refused),
    UNIT_TEST(test_email_domain_needs_a_dot_inside_it),
    UNIT_TEST(test_email_bytes_above_ascii_are_not_refused),
    UNIT_TEST(test_usernames_of_3_and_64_characters_are_accepted),
    UNIT_TEST(test_usernames_of_2_or_65_characters_are_refused),
    UNIT_TEST(test_usernames_may_use_letters_digits_and_underscore_dot_hyphen),
    UNIT_TEST(test_usernames_with_other_bytes_are_refused),
    UNIT_TEST(test_refresh_tokens_of_prefix_and_43_base64url_are_accepted),
    UNIT_TEST(test_refresh_tokens_of_the_wrong_length_are_refused),
    UNIT_TEST(test_refresh_tokens_with_padding_or_standard_base64_are_refused),
    UNIT_TEST(test_refresh_tokens_with_another_prefix_are_refused),
    UNIT_TEST(test_chars_of_ascii_is_its_length),
    UNIT_TEST(test_chars_counts_multibyte_code_points_once),
    UNIT_TEST(test_rfc3339_utc_date_times_give_unix_seconds),
    UNIT_TEST(test_rfc3339_lowercase_t_and_z_are_accepted),
    UNIT_TEST(test_rfc3339_fractions_are_accepted_and_cut_to_the_second),
    UNIT_TEST(test_rfc3339_offsets_are_local_time_ahead_of_utc),
    UNIT_TEST(test_rfc3339_dates_before_1970_are_negative),
    UNIT_TEST(test_rfc3339_february_29_exists_in_leap_years_only),
    UNIT_TEST(test_rfc3339_days_past_the_end_of_the_month_are_refused),
    UNIT_TEST(test_rfc3339_fields_out_of_range_are_refused),
    UNIT_TEST(test_rfc3339_signs_and_spaces_inside_fields_are_refused),
    UNIT_TEST(test_rfc3339_malformed_offsets_are_refused),
    UNIT_TEST(test_rfc3339_missing_parts_are_refused),
    UNIT_TEST(test_rfc3339_trailing_characters_are_refused),
    UNIT_TEST(test_array_next_walks_every_element),
    UNIT_TEST(test_array_next_of_an_empty_array_ends_at_once),
    UNIT_TEST(test_array_next_truncates_long_elements_and_skips_the_rest),
    UNIT_TEST(test_array_next_stops_at_an_sql_null),
    UNIT_TEST(test_array_next_stops_at_an_empty_element),
    UNIT_TEST(test_array_next_reads_jtis_and_expiries_in_step),
    UNIT_TEST(test_numeric_date_takes_plain_integers),
    UNIT_TEST(test_numeric_date_refuses_anything_else))
