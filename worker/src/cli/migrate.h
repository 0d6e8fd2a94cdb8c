/* migrate.h: `omni-worker migrate [up|down N|status]` over sql/NNN_name.sql. */
#ifndef OMNI_MIGRATE_H
#define OMNI_MIGRATE_H

#include <stdint.h>

/* pg_advisory_lock() key serializing every migrate run on a database: the
 * first 8 bytes of sha256("omni.migrate") read big-endian as an int64.
 * In pg_locks it shows as classid 0x49cff28a, objid 0x16fc7015. */
#define OMNI_MIGRATE_LOCK_KEY INT64_C(0x49cff28a16fc7015)

/* The whole command. argv are the words after `omni-worker migrate`: none or
 * "up", "down N", "status". sql_dir NULL means "sql". Prints progress to
 * stdout and errors to stderr (naming the file and the Postgres error, never
 * the URL or password). Returns the exit code: 0 ok, 1 failure (including
 * `status` finding a changed or missing applied migration), 2 usage. */
int omni_migrate_main(
    const char *database_url, const char *sql_dir, int argc, char **argv);

#endif
