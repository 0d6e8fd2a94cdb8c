/* test_auth_parse.c: the auth service's input checks that auth.h exports
 * (auth.c): UUID text and role ranks. */
#include <string.h>

#include "auth.h"
#include "unit.h"

static void test_canonical_uuids_are_accepted(void)
{
    CHECK_EQ_INT(omni_auth_uuid("0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9d"), 1);
    CHECK_EQ_INT(omni_auth_uuid("00000000-0000-0000-0000-000000000000"), 1);
    CHECK_EQ_INT(omni_auth_uuid("ffffffff-ffff-ffff-ffff-ffffffffffff"), 1);
}

static void test_uuids_in_any_hex_case_are_accepted(void)
{
    CHECK_EQ_INT(omni_auth_uuid("0B7E7A43-2F5C-4B8E-9D2A-6F1C3E5A7B9D"), 1);
    CHECK_EQ_INT(omni_auth_uuid("0b7E7a43-2F5c-4B8e-9D2a-6f1C3e5A7b9D"), 1);
}

static void test_uuids_of_the_wrong_length_are_refused(void)
{
    CHECK_EQ_INT(omni_auth_uuid(""), 0);
    CHECK_EQ_INT(omni_auth_uuid("0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9"), 0);
    CHECK_EQ_INT(omni_auth_uuid("0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9d0"), 0);
    CHECK_EQ_INT(omni_auth_uuid(" 0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9d"), 0);
    CHECK_EQ_INT(omni_auth_uuid("0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9d\n"), 0);
    CHECK_EQ_INT(omni_auth_uuid("{0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b9d}"), 0);
    CHECK_EQ_INT(omni_auth_uuid("0b7e7a432f5c4b8e9d2a6f1c3e5a7b9d"), 0);
}

static void test_uuids_with_misplaced_hyphens_are_refused(void)
{
    CHECK_EQ_INT(omni_auth_uuid("0b7e7a4-32f5c-4b8e-9d2a-6f1c3e5a7b9d"), 0);
    CHECK_EQ_INT(omni_auth_uuid("0b7e7a43-2f5c4-b8e-9d2a-6f1c3e5a7b9d"), 0);
    CHECK_EQ_INT(omni_auth_uuid("0b7e7a43-2f5c-4b8e9-d2a-6f1c3e5a7b9d"), 0);
    CHECK_EQ_INT(omni_auth_uuid("0b7e7a43-2f5c-4b8e-9d2a6-f1c3e5a7b9d"), 0);
    CHECK_EQ_INT(omni_auth_uuid("0b7e7a43-2f5c-4b8e-9d2a-6f1c3e5a7b-d"), 0);
    CHECK_EQ_INT(omni_auth_uuid("------------------------------------"), 0);
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
            if (omni_auth_uuid(s) != 0)
                fprintf(stderr, "    accepted \"%s\"\n", s);
            CHECK_EQ_INT(omni_auth_uuid(s), 0);
            s[pos] = keep;
        }
    }
    CHECK_EQ_INT(omni_auth_uuid(s), 1);
}

static void test_null_is_not_a_uuid(void)
{
    CHECK_EQ_INT(omni_auth_uuid(NULL), 0);
}

static void test_roles_rank_viewer_user_developer_admin(void)
{
    CHECK_EQ_INT(omni_auth_role_rank("viewer"), 1);
    CHECK_EQ_INT(omni_auth_role_rank("user"), 2);
    CHECK_EQ_INT(omni_auth_role_rank("developer"), 3);
    CHECK_EQ_INT(omni_auth_role_rank("admin"), 4);
}

static void test_unknown_roles_rank_zero(void)
{
    CHECK_EQ_INT(omni_auth_role_rank(NULL), 0);
    CHECK_EQ_INT(omni_auth_role_rank(""), 0);
    CHECK_EQ_INT(omni_auth_role_rank("root"), 0);
    CHECK_EQ_INT(omni_auth_role_rank("superuser"), 0);
    CHECK_EQ_INT(omni_auth_role_rank("admins"), 0);
    CHECK_EQ_INT(omni_auth_role_rank("admi"), 0);
    CHECK_EQ_INT(omni_auth_role_rank(" admin"), 0);
    CHECK_EQ_INT(omni_auth_role_rank("admin "), 0);
}

static void test_role_names_are_case_sensitive(void)
{
    /* the API and the database use the lowercase names only */
    CHECK_EQ_INT(omni_auth_role_rank("Admin"), 0);
    CHECK_EQ_INT(omni_auth_role_rank("ADMIN"), 0);
    CHECK_EQ_INT(omni_auth_role_rank("Viewer"), 0);
}

UNIT_MAIN(UNIT_TEST(test_canonical_uuids_are_accepted),
    UNIT_TEST(test_uuids_in_any_hex_case_are_accepted),
    UNIT_TEST(test_uuids_of_the_wrong_length_are_refused),
    UNIT_TEST(test_uuids_with_misplaced_hyphens_are_refused),
    UNIT_TEST(test_uuids_with_non_hex_digits_are_refused),
    UNIT_TEST(test_null_is_not_a_uuid),
    UNIT_TEST(test_roles_rank_viewer_user_developer_admin),
    UNIT_TEST(test_unknown_roles_rank_zero),
    UNIT_TEST(test_role_names_are_case_sensitive))
