/* migrate_plan.h: the pure half of `omni-worker migrate`: migration file
 * names, ordering, gaps, checksums and arguments, unit-tested without
 * Postgres. */
#ifndef OMNI_MIGRATE_PLAN_H
#define OMNI_MIGRATE_PLAN_H

#include <stddef.h>

#define OMNI_MIGRATE_FILE_MAX 256 /* longest file name accepted, with NUL */

/* One migration: an up file and (normally) its down file in sql_dir. */
typedef struct {
    int version;                      /* NNN, >= 1 */
    char name[OMNI_MIGRATE_FILE_MAX]; /* after "NNN_", before ".sql" */
    char up[OMNI_MIGRATE_FILE_MAX];   /* file name, "" when absent */
    char down[OMNI_MIGRATE_FILE_MAX]; /* file name, "" when absent */
} omni_migration_t;

typedef struct {
    omni_migration_t *items;
    size_t n;
    size_t cap;
} omni_migration_list_t;

/* Parses a directory entry name. Returns 1 for "NNN_name.sql" (is_down = 0)
 * or "NNN_name.down.sql" (is_down = 1), filling version and name; 0 for a
 * name that is not a .sql file or starts with '.' (ignored); -1 for a .sql
 * file whose name is malformed (NNN: 1-9 digits, value >= 1; name: one or
 * more of [A-Za-z0-9_-]; shorter than OMNI_MIGRATE_FILE_MAX). */
int omni_migrate_parse_filename(
    const char *file, int *version, char *name, size_t namelen, int *is_down);

/* Adds one directory entry to l (in any order: a down file may come before
 * its up file). Ignored names return 0. Returns -1 with err naming the files
 * on a malformed name, a duplicate NNN (two names, or "1_a" and "001_a"), or
 * a version that does not fit; -1 when malloc fails. */
int omni_migrate_list_add(
    omni_migration_list_t *l, const char *file, char *err, size_t errlen);

/* Sorts l by version and checks it: versions are exactly 1..n (a gap names
 * the missing number), every migration has an up file, and, when need_down,
 * a down file. Returns 0, or -1 with err naming the first problem. */
int omni_migrate_list_check(
    omni_migration_list_t *l, int need_down, char *err, size_t errlen);

/* The entry with this version, or NULL. l must be sorted (list_check). */
const omni_migration_t *omni_migrate_list_find(
    const omni_migration_list_t *l, int version);

/* Frees the items; l is empty and reusable afterwards. */
void omni_migrate_list_free(omni_migration_list_t *l);

/* Writes the lowercase hex SHA-256 of buf[0..len) and a NUL into out.
 * Returns 0, or -1 when OpenSSL fails (out is then ""). */
int omni_migrate_sha256_hex(const void *buf, size_t len, char out[65]);

/* Parses the N of `down N`: decimal digits only, 1..INT_MAX.
 * Returns 0, or -1 for anything else ("0", "-1", "2x", "", " 3"). */
int omni_migrate_parse_count(const char *s, int *n);

/* Copies msg into out (truncating, always NUL-terminated) with every
 * occurrence of secret replaced by "***"; secret NULL or "" copies as is.
 * libpq echoes a malformed URI, password included, in its error text. */
void omni_migrate_redact(
    char *out, size_t outlen, const char *msg, const char *secret);

#endif
