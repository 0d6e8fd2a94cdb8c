/* test_migrate.c: migration file names, ordering, checksums and arguments. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli/migrate.h"
#include "cli/migrate_plan.h"
#include "unit.h"

static int add_all(omni_migration_list_t *l, const char **files, size_t n,
    char *err, size_t errlen)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (omni_migrate_list_add(l, files[i], err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

static void test_up_and_down_file_names_parse(void)
{
    char name[64];
    int version = 0, is_down = -1;

    CHECK_EQ_INT(omni_migrate_parse_filename(
                     "001_schemas.sql", &version, name, sizeof(name), &is_down),
        1);
    CHECK_EQ_INT(version, 1);
    CHECK_STR_EQ(name, "schemas");
    CHECK_EQ_INT(is_down, 0);

    CHECK_EQ_INT(omni_migrate_parse_filename("042_request-rollups_v2.down.sql",
                     &version, name, sizeof(name), &is_down),
        1);
    CHECK_EQ_INT(version, 42);
    CHECK_STR_EQ(name, "request-rollups_v2");
    CHECK_EQ_INT(is_down, 1);

    CHECK_EQ_INT(omni_migrate_parse_filename("123456789_big.sql", &version,
                     name, sizeof(name), &is_down),
        1);
    CHECK_EQ_INT(version, 123456789);
}

static void test_non_sql_and_hidden_files_are_ignored(void)
{
    static const char *ignored[] = {
        ".",
        "..",
        "README.md",
        "001_schemas.sql~",
        "001_schemas.sql.orig",
        ".001_schemas.sql.swp",
        ".#001_schemas.sql",
        ".down.sql",
        "sql",
        "",
    };
    char name[64];
    int version, is_down;
    size_t i;

    for (i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
        if (omni_migrate_parse_filename(
                ignored[i], &version, name, sizeof(name), &is_down)
            != 0) {
            fprintf(stderr, "    not ignored: \"%s\"\n", ignored[i]);
            CHECK(0);
        }
    }
}

static void test_malformed_sql_names_are_rejected(void)
{
    static const char *bad[] = {
        "schemas.sql",
        "001.sql",
        "001_.sql",
        "001_.down.sql",
        "000_zero.sql",
        "001-schemas.sql",
        "001_schemas.up.sql",
        "001_a b.sql",
        "001_caf\xc3\xa9.sql",
        "1234567890_too_many_digits.sql",
        "_x.sql",
        "001_schemas.DOWN.sql",
        "x001_schemas.sql",
    };
    char name[64];
    int version, is_down;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (omni_migrate_parse_filename(
                bad[i], &version, name, sizeof(name), &is_down)
            != -1) {
            fprintf(stderr, "    accepted: \"%s\"\n", bad[i]);
            CHECK(0);
        }
    }
}

static void test_name_longer_than_the_buffer_is_rejected(void)
{
    char name[8];
    int version, is_down;

    CHECK_EQ_INT(omni_migrate_parse_filename(
                     "001_1234567.sql", &version, name, sizeof(name), &is_down),
        1);
    CHECK_EQ_INT(omni_migrate_parse_filename("001_12345678.sql", &version, name,
                     sizeof(name), &is_down),
        -1);
}

static void test_list_add_names_a_malformed_file(void)
{
    omni_migration_list_t l = {0};
    char err[512];

    CHECK_EQ_INT(omni_migrate_list_add(&l, "notes.sql", err, sizeof(err)), -1);
    CHECK(strstr(err, "notes.sql") != NULL);
    CHECK_EQ_INT(omni_migrate_list_add(&l, "notes.txt", err, sizeof(err)), 0);
    CHECK_EQ_INT(l.n, 0);
    omni_migrate_list_free(&l);
}

static void test_down_file_before_its_up_file_pairs_with_it(void)
{
    static const char *files[] = {
        "002_b.down.sql",
        "001_a.sql",
        "002_b.sql",
        "001_a.down.sql",
    };
    omni_migration_list_t l = {0};
    const omni_migration_t *m;
    char err[512] = "";

    CHECK_EQ_INT(add_all(&l, files, 4, err, sizeof(err)), 0);
    CHECK_EQ_INT(l.n, 2);
    CHECK_EQ_INT(omni_migrate_list_check(&l, 1, err, sizeof(err)), 0);
    m = omni_migrate_list_find(&l, 2);
    CHECK(m != NULL);
    CHECK_STR_EQ(m->name, "b");
    CHECK_STR_EQ(m->up, "002_b.sql");
    CHECK_STR_EQ(m->down, "002_b.down.sql");
    CHECK(omni_migrate_list_find(&l, 3) == NULL);
    CHECK(omni_migrate_list_find(&l, 0) == NULL);
    omni_migrate_list_free(&l);
}

static void test_list_is_ordered_numerically_not_by_name(void)
{
    static const char *files[] = {
        "10_j.sql",
        "9_i.sql",
        "1_a.sql",
        "2_b.sql",
        "3_c.sql",
        "4_d.sql",
        "5_e.sql",
        "6_f.sql",
        "7_g.sql",
        "8_h.sql",
        "11_k.sql",
    };
    omni_migration_list_t l = {0};
    char err[512] = "";
    size_t i;

    CHECK_EQ_INT(add_all(&l, files, 11, err, sizeof(err)), 0);
    CHECK_EQ_INT(omni_migrate_list_check(&l, 0, err, sizeof(err)), 0);
    for (i = 0; i < l.n; i++) {
        CHECK_EQ_INT(l.items[i].version, i + 1);
    }
    CHECK_STR_EQ(l.items[9].up, "10_j.sql");
    omni_migrate_list_free(&l);
}

static void test_duplicate_number_is_an_error_naming_both_files(void)
{
    static const char *two_names[] = {"002_a.sql", "002_b.sql"};
    static const char *two_spellings[] = {"1_a.sql", "001_a.sql"};
    static const char *mismatched_pair[] = {"1_a.sql", "001_a.down.sql"};
    omni_migration_list_t l = {0};
    char err[512] = "";

    CHECK_EQ_INT(add_all(&l, two_names, 2, err, sizeof(err)), -1);
    CHECK(strstr(err, "duplicate") != NULL);
    CHECK(strstr(err, "002_a.sql") != NULL);
    CHECK(strstr(err, "002_b.sql") != NULL);
    omni_migrate_list_free(&l);

    CHECK_EQ_INT(add_all(&l, two_spellings, 2, err, sizeof(err)), -1);
    CHECK(strstr(err, "1_a.sql") != NULL);
    CHECK(strstr(err, "001_a.sql") != NULL);
    omni_migrate_list_free(&l);

    CHECK_EQ_INT(add_all(&l, mismatched_pair, 2, err, sizeof(err)), -1);
    CHECK(strstr(err, "001_a.down.sql") != NULL);
    omni_migrate_list_free(&l);
}

static void test_gap_is_an_error_naming_its_neighbours(void)
{
    static const char *files[] = {
        "001_a.sql",
        "001_a.down.sql",
        "003_c.sql",
        "003_c.down.sql",
    };
    omni_migration_list_t l = {0};
    char err[512] = "";

    CHECK_EQ_INT(add_all(&l, files, 4, err, sizeof(err)), 0);
    CHECK_EQ_INT(omni_migrate_list_check(&l, 1, err, sizeof(err)), -1);
    CHECK(strstr(err, "no 002") != NULL);
    CHECK(strstr(err, "001_a.sql") != NULL);
    CHECK(strstr(err, "003_c.sql") != NULL);
    omni_migrate_list_free(&l);
}

static void test_numbering_must_start_at_001(void)
{
    static const char *files[] = {"002_b.sql", "002_b.down.sql"};
    omni_migration_list_t l = {0};
    char err[512] = "";

    CHECK_EQ_INT(add_all(&l, files, 2, err, sizeof(err)), 0);
    CHECK_EQ_INT(omni_migrate_list_check(&l, 1, err, sizeof(err)), -1);
    CHECK(strstr(err, "no migration 001") != NULL);
    omni_migrate_list_free(&l);
}

static void test_missing_down_file_is_an_error_only_when_needed(void)
{
    static const char *files[] = {
        "001_a.sql",
        "001_a.down.sql",
        "002_b.sql",
    };
    omni_migration_list_t l = {0};
    char err[512] = "";

    CHECK_EQ_INT(add_all(&l, files, 3, err, sizeof(err)), 0);
    CHECK_EQ_INT(omni_migrate_list_check(&l, 0, err, sizeof(err)), 0);
    CHECK_EQ_INT(omni_migrate_list_check(&l, 1, err, sizeof(err)), -1);
    CHECK(strstr(err, "002_b.down.sql") != NULL);
    omni_migrate_list_free(&l);
}

static void test_down_file_without_up_file_is_an_error(void)
{
    static const char *files[] = {"001_a.down.sql"};
    omni_migration_list_t l = {0};
    char err[512] = "";

    CHECK_EQ_INT(add_all(&l, files, 1, err, sizeof(err)), 0);
    CHECK_EQ_INT(omni_migrate_list_check(&l, 0, err, sizeof(err)), -1);
    CHECK(strstr(err, "001_a.sql") != NULL);
    omni_migrate_list_free(&l);
}

static void test_empty_directory_is_a_valid_list(void)
{
    omni_migration_list_t l = {0};
    char err[64];

    CHECK_EQ_INT(omni_migrate_list_check(&l, 1, err, sizeof(err)), 0);
    CHECK(omni_migrate_list_find(&l, 1) == NULL);
    omni_migrate_list_free(&l);
}

static void test_sha256_hex_matches_known_vectors(void)
{
    char hex[65];

    CHECK_EQ_INT(omni_migrate_sha256_hex("", 0, hex), 0);
    CHECK_STR_EQ(hex, "e3b0c44298fc1c149afbf4c8996fb924"
                      "27ae41e4649b934ca495991b7852b855");
    CHECK_EQ_INT(omni_migrate_sha256_hex("abc", 3, hex), 0);
    CHECK_STR_EQ(hex, "ba7816bf8f01cfea414140de5dae2223"
                      "b00361a396177a9cb410ff61f20015ad");
}

static void test_lock_key_is_the_sha256_prefix_of_omni_migrate(void)
{
    char hex[65], key[17];

    CHECK_EQ_INT(omni_migrate_sha256_hex("omni.migrate", 12, hex), 0);
    snprintf(
        key, sizeof(key), "%016llx", (unsigned long long)OMNI_MIGRATE_LOCK_KEY);
    CHECK(strncmp(hex, key, 16) == 0);
    CHECK(OMNI_MIGRATE_LOCK_KEY == INT64_C(5318736359852896277));
}

static void test_down_count_accepts_only_positive_integers(void)
{
    static const char *bad[] = {
        "",
        "0",
        "-1",
        "+1",
        " 3",
        "3 ",
        "2x",
        "0x10",
        "1.0",
        "2147483648",
        "99999999999999999999",
    };
    size_t i;
    int n = 0;

    CHECK_EQ_INT(omni_migrate_parse_count("1", &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(omni_migrate_parse_count("007", &n), 0);
    CHECK_EQ_INT(n, 7);
    CHECK_EQ_INT(omni_migrate_parse_count("2147483647", &n), 0);
    CHECK_EQ_INT(n, 2147483647);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (omni_migrate_parse_count(bad[i], &n) != -1) {
            fprintf(stderr, "    accepted: \"%s\"\n", bad[i]);
            CHECK(0);
        }
    }
}

static void test_redact_hides_every_occurrence_of_the_secret(void)
{
    char out[128];

    omni_migrate_redact(out, sizeof(out),
        "bad URI \"postgres://u:pw@h/db\" near \"postgres://u:pw@h/db\"",
        "postgres://u:pw@h/db");
    CHECK_STR_EQ(out, "bad URI \"***\" near \"***\"");

    omni_migrate_redact(out, sizeof(out), "no secret here", "pw");
    CHECK_STR_EQ(out, "no secret here");
    omni_migrate_redact(out, sizeof(out), "kept as is", NULL);
    CHECK_STR_EQ(out, "kept as is");
    omni_migrate_redact(out, sizeof(out), "kept as is", "");
    CHECK_STR_EQ(out, "kept as is");

    omni_migrate_redact(out, 6, "abcdefgh", "zz");
    CHECK_STR_EQ(out, "abcde");
    omni_migrate_redact(out, 3, "pw", "pw");
    CHECK_STR_EQ(out, "**");
}

static void test_bad_arguments_exit_2_before_connecting(void)
{
    char *down_zero[] = {"down", "0"};
    char *down_bare[] = {"down"};
    char *up_extra[] = {"up", "1"};
    char *unknown[] = {"sideways"};

    /* an unroutable URL: reaching the network would hang or fail with 1 */
    CHECK_EQ_INT(
        omni_migrate_main("postgres://u:pw@192.0.2.1/db", "sql", 2, down_zero),
        2);
    CHECK_EQ_INT(
        omni_migrate_main("postgres://u:pw@192.0.2.1/db", "sql", 1, down_bare),
        2);
    CHECK_EQ_INT(
        omni_migrate_main("postgres://u:pw@192.0.2.1/db", "sql", 2, up_extra),
        2);
    CHECK_EQ_INT(
        omni_migrate_main("postgres://u:pw@192.0.2.1/db", "sql", 1, unknown),
        2);
}

static void test_missing_database_url_exits_1(void)
{
    CHECK_EQ_INT(omni_migrate_main(NULL, "sql", 0, NULL), 1);
    CHECK_EQ_INT(omni_migrate_main("", "sql", 0, NULL), 1);
}

UNIT_MAIN(UNIT_TEST(test_up_and_down_file_names_parse),
    UNIT_TEST(test_non_sql_and_hidden_files_are_ignored),
    UNIT_TEST(test_malformed_sql_names_are_rejected),
    UNIT_TEST(test_name_longer_than_the_buffer_is_rejected),
    UNIT_TEST(test_list_add_names_a_malformed_file),
    UNIT_TEST(test_down_file_before_its_up_file_pairs_with_it),
    UNIT_TEST(test_list_is_ordered_numerically_not_by_name),
    UNIT_TEST(test_duplicate_number_is_an_error_naming_both_files),
    UNIT_TEST(test_gap_is_an_error_naming_its_neighbours),
    UNIT_TEST(test_numbering_must_start_at_001),
    UNIT_TEST(test_missing_down_file_is_an_error_only_when_needed),
    UNIT_TEST(test_down_file_without_up_file_is_an_error),
    UNIT_TEST(test_empty_directory_is_a_valid_list),
    UNIT_TEST(test_sha256_hex_matches_known_vectors),
    UNIT_TEST(test_lock_key_is_the_sha256_prefix_of_omni_migrate),
    UNIT_TEST(test_down_count_accepts_only_positive_integers),
    UNIT_TEST(test_redact_hides_every_occurrence_of_the_secret),
    UNIT_TEST(test_bad_arguments_exit_2_before_connecting),
    UNIT_TEST(test_missing_database_url_exits_1))
