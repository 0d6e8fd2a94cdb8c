/* migrate.c: applies, reverts and reports sql/ migrations under a lock. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <sys/stat.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "cli/migrate.h"
#include "cli/migrate_plan.h"


#define MIGRATE_ERR_MAX (2 * OMNI_MIGRATE_FILE_MAX + 128)

/* Migration files are SQL source kept in git; anything bigger is a mistake
 * (a dump committed by accident), not a migration. */
#define MIGRATE_FILE_SIZE_MAX (16 * 1024 * 1024)

typedef enum {
    MIGRATE_UP,
    MIGRATE_DOWN,
    MIGRATE_STATUS
} migrate_cmd_t;

typedef struct {
    PGconn *conn;
    const char *dir;
    omni_migration_list_t files;
    PGresult *applied; /* version, name, checksum, applied_at */
} migrate_ctx_t;


static const char migrate_create_table[] =
    "CREATE TABLE IF NOT EXISTS public.omni_schema_migrations ("
    " version int PRIMARY KEY,"
    " name text NOT NULL,"
    " checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

static const char migrate_select_applied[] =
    "SELECT version, name, checksum,"
    " to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    " FROM public.omni_schema_migrations ORDER BY version";


static long migrate_ms_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000
           + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}


/* Prints "migrate: <what>: <Postgres error>" to stderr; libpq's message
 * already carries the LINE/caret excerpt of the file and any DETAIL/HINT. */
static void migrate_pg_error(
    migrate_ctx_t *ctx, const char *what, const PGresult *res)
{
    const char *msg;
    size_t len;

    msg = res ? PQresultErrorMessage(res) : "";
    if (msg[0] == '\0') {
        msg = PQerrorMessage(ctx->conn);
    }
    len = strlen(msg);
    while (len > 0 && msg[len - 1] == '\n') {
        len--;
    }
    fprintf(stderr, "migrate: %s: %.*s\n", what, (int)len, msg);
}


/* Runs a statement that returns no rows; 0 ok, -1 after printing. */
static int migrate_exec(migrate_ctx_t *ctx, const char *what, const char *sql)
{
    PGresult *res;
    int rc = 0;

    res = PQexec(ctx->conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        migrate_pg_error(ctx, what, res);
        rc = -1;
    }
    PQclear(res);
    return rc;
}


/* Reads dir/file whole and NUL-terminates it. A NUL inside would silently
 * cut the SQL that PQexec sends, so it is refused. Prints its own error. */
static int migrate_read_file(
    const char *dir, const char *file, char **out, size_t *outlen)
{
    char path[PATH_MAX];
    char *buf = NULL;
    FILE *f = NULL;
    struct stat st;
    size_t got;

    if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path)) {
        fprintf(stderr, "migrate: %s/%s: path too long\n", dir, file);
        goto failed;
    }

    f = fopen(path, "rb");
    if (f == NULL || fstat(fileno(f), &st) != 0) {
        fprintf(stderr, "migrate: %s: %s\n", path, strerror(errno));
        goto failed;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > MIGRATE_FILE_SIZE_MAX) {
        fprintf(stderr,
            "migrate: %s: not a regular file of at most %d "
            "bytes\n",
            path, MIGRATE_FILE_SIZE_MAX);
        goto failed;
    }

    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        fprintf(stderr, "migrate: %s: out of memory\n", path);
        goto failed;
    }
    got = fread(buf, 1, (size_t)st.st_size, f);
    if (ferror(f) || got != (size_t)st.st_size) {
        fprintf(stderr,
            "migrate: %s: read failed (changed while "
            "reading?)\n",
            path);
        goto failed;
    }
    if (memchr(buf, '\0', got) != NULL) {
        fprintf(stderr, "migrate: %s: contains a NUL byte\n", path);
        goto failed;
    }
    buf[got] = '\0';

    fclose(f);
    *out = buf;
    *outlen = got;
    return 0;

failed:

    if (f) {
        fclose(f);
    }
    free(buf);
    return -1;
}


static int migrate_file_checksum(
    const char *dir, const char *file, char out[65])
{
    char *body;
    size_t len;
    int rc;

    if (migrate_read_file(dir, file, &body, &len) != 0) {
        return -1;
    }
    rc = omni_migrate_sha256_hex(body, len, out);
    if (rc != 0) {
        fprintf(stderr, "migrate: %s/%s: sha256 failed\n", dir, file);
    }
    free(body);
    return rc;
}


static int migrate_scan(migrate_ctx_t *ctx, int need_down)
{
    char err[MIGRATE_ERR_MAX];
    DIR *d;
    struct dirent *de;

    d = opendir(ctx->dir);
    if (d == NULL) {
        fprintf(stderr, "migrate: %s: %s\n", ctx->dir, strerror(errno));
        return -1;
    }

    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (omni_migrate_list_add(&ctx->files, de->d_name, err, sizeof(err))
            != 0) {
            fprintf(stderr, "migrate: %s: %s\n", ctx->dir, err);
            goto failed;
        }
        errno = 0;
    }
    if (errno != 0) {
        fprintf(stderr, "migrate: %s: %s\n", ctx->dir, strerror(errno));
        goto failed;
    }
    closedir(d);

    if (omni_migrate_list_check(&ctx->files, need_down, err, sizeof(err))
        != 0) {
        fprintf(stderr, "migrate: %s: %s\n", ctx->dir, err);
        return -1;
    }
    return 0;

failed:

    closedir(d);
    return -1;
}


/* Keywords before "dbname" are defaults that the expanded URL overrides; the
 * one after it wins, since migration files are UTF-8 whatever the URL says.
 * The error text is redacted because libpq quotes a malformed URI whole. */
static int migrate_connect(migrate_ctx_t *ctx, const char *url)
{
    static const char *keys[] = {"connect_timeout", "fallback_application_name",
        "dbname", "client_encoding", NULL};
    const char *vals[] = {"10", "omni-migrate", url, "UTF8", NULL};
    char a[1024], b[1024];
    char *password = NULL;
    PQconninfoOption *opts, *o;

    ctx->conn = PQconnectdbParams(keys, vals, 1);
    if (ctx->conn != NULL && PQstatus(ctx->conn) == CONNECTION_OK) {
        return 0;
    }

    opts = PQconninfoParse(url, NULL);
    for (o = opts; o && o->keyword; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0]) {
            password = o->val;
        }
    }
    omni_migrate_redact(a, sizeof(a),
        ctx->conn ? PQerrorMessage(ctx->conn) : "out of memory", url);
    omni_migrate_redact(b, sizeof(b), a, password);
    b[strcspn(b, "\n")] = '\0';
    fprintf(stderr, "migrate: cannot connect to the database: %s\n", b);

    PQconninfoFree(opts);
    return -1;
}


/* Session-level lock: it survives the per-migration transactions and is
 * released by pg_advisory_unlock() or, on any failure, by the disconnect. */
static int migrate_lock(migrate_ctx_t *ctx, int lock)
{
    char key[24];
    const char *params[1] = {key};
    PGresult *res;
    int got;

    snprintf(key, sizeof(key), "%lld", (long long)OMNI_MIGRATE_LOCK_KEY);

    if (!lock) {
        res = PQexecParams(ctx->conn, "SELECT pg_advisory_unlock($1::bigint)",
            1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            migrate_pg_error(ctx, "releasing the migration lock", res);
            PQclear(res);
            return -1;
        }
        PQclear(res);
        return 0;
    }

    res = PQexecParams(ctx->conn, "SELECT pg_try_advisory_lock($1::bigint)", 1,
        NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        migrate_pg_error(ctx, "taking the migration lock", res);
        PQclear(res);
        return -1;
    }
    got = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (got) {
        return 0;
    }

    printf("migrate: another migrate holds the lock; waiting for it\n");
    fflush(stdout);

    res = PQexecParams(ctx->conn, "SELECT pg_advisory_lock($1::bigint)", 1,
        NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        migrate_pg_error(ctx, "taking the migration lock", res);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}


/* Reads the applied migrations into ctx->applied. `status` only reads, so it
 * does not create the table: a database never migrated has nothing applied. */
static int migrate_load_applied(migrate_ctx_t *ctx, int create)
{
    PGresult *res;
    int exists;

    if (create) {
        if (migrate_exec(ctx, "creating public.omni_schema_migrations",
                migrate_create_table)
            != 0) {
            return -1;
        }
    } else {
        res = PQexec(ctx->conn, "SELECT to_regclass("
                                "'public.omni_schema_migrations') IS NOT NULL");
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            migrate_pg_error(ctx, "reading public.omni_schema_migrations", res);
            PQclear(res);
            return -1;
        }
        exists = PQgetvalue(res, 0, 0)[0] == 't';
        PQclear(res);
        if (!exists) {
            return 0;
        }
    }

    res = PQexec(ctx->conn, migrate_select_applied);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        migrate_pg_error(ctx, "reading public.omni_schema_migrations", res);
        PQclear(res);
        return -1;
    }
    ctx->applied = res;
    return 0;
}


static int migrate_applied_count(migrate_ctx_t *ctx)
{
    return ctx->applied ? PQntuples(ctx->applied) : 0;
}


static int migrate_applied_version(migrate_ctx_t *ctx, int row)
{
    return atoi(PQgetvalue(ctx->applied, row, 0));
}


/* Runs one file's body and its bookkeeping statement in one transaction:
 * both happen or neither does. record_sql takes $1 version [$2 name,
 * $3 checksum]. Prints its own errors. */
static int migrate_run_file(migrate_ctx_t *ctx, const omni_migration_t *m,
    const char *file, const char *record_sql, int nparams)
{
    char what[PATH_MAX + 16], version[16], sum[65];
    const char *params[3] = {version, m->name, sum};
    char *body = NULL;
    size_t len;
    PGresult *res = NULL;
    ExecStatusType st;
    struct timespec t0;

    snprintf(what, sizeof(what), "%s/%s", ctx->dir, file);
    snprintf(version, sizeof(version), "%d", m->version);

    if (migrate_read_file(ctx->dir, file, &body, &len) != 0) {
        return -1;
    }
    /* the checksum is of exactly the text executed */
    if (omni_migrate_sha256_hex(body, len, sum) != 0) {
        fprintf(stderr, "migrate: %s: sha256 failed\n", what);
        goto failed;
    }

    clock_gettime(CLOCK_MONOTONIC, &t0);

    if (migrate_exec(ctx, what, "BEGIN") != 0) {
        goto failed;
    }

    res = PQexec(ctx->conn, body);
    st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK
        && st != PGRES_EMPTY_QUERY) {
        migrate_pg_error(ctx, what, res);
        goto rollback;
    }
    PQclear(res);
    res = NULL;

    /* a COMMIT inside the file would make its first half permanent without
     * a record; migrations must leave transaction control to us */
    if (PQtransactionStatus(ctx->conn) != PQTRANS_INTRANS) {
        fprintf(stderr,
            "migrate: %s: the file ends the transaction itself "
            "(BEGIN/COMMIT/ROLLBACK belong to migrate, not to migration "
            "files); what it committed stays, unrecorded\n",
            what);
        goto rollback;
    }

    res = PQexecParams(
        ctx->conn, record_sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        migrate_pg_error(ctx, what, res);
        goto rollback;
    }
    if (strcmp(PQcmdTuples(res), "1") != 0) {
        fprintf(stderr,
            "migrate: %s: %s rows of public.omni_schema_migrations"
            " changed, not 1\n",
            what, PQcmdTuples(res));
        goto rollback;
    }
    PQclear(res);
    res = NULL;

    if (migrate_exec(ctx, what, "COMMIT") != 0) {
        goto failed;
    }

    printf("migrate: %s %s (%ld ms)\n", nparams == 3 ? "applied" : "reverted",
        file, migrate_ms_since(&t0));
    fflush(stdout);
    free(body);
    return 0;

rollback:

    PQclear(res);
    res = NULL;
    if (PQtransactionStatus(ctx->conn) != PQTRANS_IDLE
        && migrate_exec(ctx, what, "ROLLBACK") == 0) {
        fprintf(stderr, "migrate: %s: rolled back\n", what);
    }

failed:

    PQclear(res);
    free(body);
    return -1;
}


static int migrate_up(migrate_ctx_t *ctx)
{
    const omni_migration_t *m;
    const char *name, *sum;
    char file_sum[65];
    size_t i;
    int row, napplied, version, bad = 0, done = 0;

    napplied = migrate_applied_count(ctx);

    /* every applied migration must still be the file that was applied */
    for (row = 0; row < napplied; row++) {
        version = migrate_applied_version(ctx, row);
        name = PQgetvalue(ctx->applied, row, 1);
        sum = PQgetvalue(ctx->applied, row, 2);

        m = omni_migrate_list_find(&ctx->files, version);
        if (m == NULL) {
            fprintf(stderr,
                "migrate: %03d_%s is applied but has no file in "
                "%s/\n",
                version, name, ctx->dir);
            bad = 1;
            continue;
        }
        if (strcmp(m->name, name) != 0) {
            fprintf(stderr,
                "migrate: %s/%s: version %03d was applied as "
                "\"%s\"\n",
                ctx->dir, m->up, version, name);
            bad = 1;
            continue;
        }
        if (migrate_file_checksum(ctx->dir, m->up, file_sum) != 0) {
            return 1;
        }
        if (strcmp(file_sum, sum) != 0) {
            fprintf(stderr,
                "migrate: %s/%s changed after it was applied "
                "(sha256 %.12s..., applied %.12s...): restore it and add "
                "a new migration, or `down` it first\n",
                ctx->dir, m->up, file_sum, sum);
            bad = 1;
        }
    }
    if (bad) {
        fprintf(stderr, "migrate: nothing applied\n");
        return 1;
    }

    /* the applied versions all have files, so they are a subset of 1..n;
     * a hole below the newest means someone applied out of order by hand */
    if (napplied > 0
        && migrate_applied_version(ctx, napplied - 1) != napplied) {
        for (row = 0; migrate_applied_version(ctx, row) == row + 1; row++) {
            /* find the first hole */
        }
        fprintf(stderr,
            "migrate: %s/%s is pending but later migration %03d "
            "is applied; nothing applied\n",
            ctx->dir, ctx->files.items[row].up,
            migrate_applied_version(ctx, napplied - 1));
        return 1;
    }

    for (i = (size_t)napplied; i < ctx->files.n; i++) {
        m = &ctx->files.items[i];
        if (migrate_run_file(ctx, m, m->up,
                "INSERT INTO public.omni_schema_migrations"
                " (version, name, checksum)"
                " VALUES ($1::int, $2, $3)",
                3)
            != 0) {
            fprintf(stderr,
                "migrate: stopped at %s; %d applied before it "
                "in this run\n",
                m->up, done);
            return 1;
        }
        done++;
    }

    if (done == 0) {
        printf("migrate: up to date at %03d\n",
            ctx->files.n ? ctx->files.items[ctx->files.n - 1].version : 0);
    } else {
        printf("migrate: %d applied, now at %03d\n", done,
            ctx->files.items[ctx->files.n - 1].version);
    }
    return 0;
}


static int migrate_down(migrate_ctx_t *ctx, int count)
{
    const omni_migration_t *m;
    const char *name;
    int row, napplied, version;

    napplied = migrate_applied_count(ctx);
    if (napplied == 0) {
        fprintf(stderr, "migrate: down %d: no migration is applied\n", count);
        return 1;
    }
    if (count > napplied) {
        fprintf(stderr,
            "migrate: down %d: only %d migration%s applied; "
            "nothing reverted\n",
            count, napplied, napplied == 1 ? " is" : "s are");
        return 1;
    }

    /* Find every down file before running any. Checksums are not checked:
     * reverting an edited migration is how one redoes it during development. */
    for (row = napplied - 1; row >= napplied - count; row--) {
        version = migrate_applied_version(ctx, row);
        name = PQgetvalue(ctx->applied, row, 1);
        m = omni_migrate_list_find(&ctx->files, version);
        if (m == NULL || strcmp(m->name, name) != 0 || m->down[0] == '\0') {
            fprintf(stderr,
                "migrate: applied %03d_%s has no down file "
                "%s/%03d_%s.down.sql; nothing reverted\n",
                version, name, ctx->dir, version, name);
            return 1;
        }
    }

    for (row = napplied - 1; row >= napplied - count; row--) {
        m = omni_migrate_list_find(
            &ctx->files, migrate_applied_version(ctx, row));
        if (migrate_run_file(ctx, m, m->down,
                "DELETE FROM public.omni_schema_migrations"
                " WHERE version = $1::int",
                1)
            != 0) {
            fprintf(stderr,
                "migrate: stopped at %s; %d reverted before it "
                "in this run\n",
                m->down, napplied - 1 - row);
            return 1;
        }
    }

    printf("migrate: %d reverted, now at %03d\n", count,
        napplied > count ? migrate_applied_version(ctx, napplied - count - 1)
                         : 0);
    return 0;
}


/* One `status` row; notes is "" or what is wrong with this migration. */
static void migrate_status_line(int version, int width, const char *name,
    const char *state, const char *applied_at, const char *notes)
{
    if (notes[0] == '\0') {
        printf("%03d      %-*s  %-7s  %s\n", version, width, name, state,
            applied_at);
        return;
    }
    printf("%03d      %-*s  %-7s  %-20s  %s\n", version, width, name, state,
        applied_at, notes);
}


static int migrate_status(migrate_ctx_t *ctx)
{
    const omni_migration_t *m;
    const char *name, *at, *state;
    char file_sum[65], notes[OMNI_MIGRATE_FILE_MAX + 128];
    size_t i, off;
    int row, napplied, width, len, bad = 0, pending = 0;

    napplied = migrate_applied_count(ctx);

    width = 4;
    for (i = 0; i < ctx->files.n; i++) {
        len = (int)strlen(ctx->files.items[i].name);
        width = len > width ? len : width;
    }
    for (row = 0; row < napplied; row++) {
        len = (int)strlen(PQgetvalue(ctx->applied, row, 1));
        width = len > width ? len : width;
    }

    printf("version  %-*s  %-7s  %-20s  notes\n", width, "name", "state",
        "applied_at");

    /* files and records are both sorted by version: merge them */
    i = 0;
    row = 0;
    while (i < ctx->files.n || row < napplied) {
        m = i < ctx->files.n ? &ctx->files.items[i] : NULL;

        if (row < napplied
            && (m == NULL || migrate_applied_version(ctx, row) < m->version)) {
            snprintf(notes, sizeof(notes), "FILE MISSING from %s/", ctx->dir);
            migrate_status_line(migrate_applied_version(ctx, row), width,
                PQgetvalue(ctx->applied, row, 1), "applied",
                PQgetvalue(ctx->applied, row, 3), notes);
            bad = 1;
            row++;
            continue;
        }

        notes[0] = '\0';
        off = 0;

        if (row < napplied && migrate_applied_version(ctx, row) == m->version) {
            name = PQgetvalue(ctx->applied, row, 1);
            state = "applied";
            at = PQgetvalue(ctx->applied, row, 3);
            if (migrate_file_checksum(ctx->dir, m->up, file_sum) != 0) {
                return 1;
            }
            if (strcmp(name, m->name) != 0) {
                off += snprintf(notes + off, sizeof(notes) - off,
                    "NAME MISMATCH: file is %s; ", m->up);
                bad = 1;
            } else if (strcmp(file_sum, PQgetvalue(ctx->applied, row, 2))
                       != 0) {
                off += snprintf(notes + off, sizeof(notes) - off,
                    "CHECKSUM MISMATCH: %s changed after it was "
                    "applied; ",
                    m->up);
                bad = 1;
            }
            row++;
        } else {
            name = m->name;
            state = "pending";
            at = "-";
            pending++;
        }

        if (m->down[0] == '\0' && off < sizeof(notes)) {
            off += snprintf(notes + off, sizeof(notes) - off, "no down file; ");
        }
        if (off >= 2 && off < sizeof(notes)) {
            notes[off - 2] = '\0';
        }

        migrate_status_line(m->version, width, name, state, at, notes);
        i++;
    }

    printf("migrate: %d applied, %d pending%s\n", napplied, pending,
        bad ? "; applied migrations differ from the files (see notes)" : "");
    return bad ? 1 : 0;
}


int omni_migrate_main(
    const char *database_url, const char *sql_dir, int argc, char **argv)
{
    migrate_ctx_t ctx;
    migrate_cmd_t cmd;
    int count = 0, rc = 1;

    if (argc == 0 || (argc == 1 && strcmp(argv[0], "up") == 0)) {
        cmd = MIGRATE_UP;
    } else if (argc == 1 && strcmp(argv[0], "status") == 0) {
        cmd = MIGRATE_STATUS;
    } else if (argc == 2 && strcmp(argv[0], "down") == 0
               && omni_migrate_parse_count(argv[1], &count) == 0) {
        cmd = MIGRATE_DOWN;
    } else {
        fprintf(stderr,
            "usage: omni-worker migrate [up | down N | status]\n"
            "  up      apply every pending migration (the default)\n"
            "  down N  revert the N newest applied migrations (N >= 1)\n"
            "  status  list migrations, applied or pending\n");
        return 2;
    }

    if (database_url == NULL || database_url[0] == '\0') {
        fprintf(stderr, "migrate: no database URL (set OMNI_DATABASE_URL)\n");
        return 1;
    }

    memset(&ctx, 0, sizeof(ctx));
    ctx.dir = sql_dir ? sql_dir : "sql";

    if (migrate_scan(&ctx, cmd == MIGRATE_UP) != 0
        || migrate_connect(&ctx, database_url) != 0) {
        goto failed;
    }

    /* NOTICEs like "relation already exists, skipping" are noise here;
     * warnings and errors still come through */
    if (migrate_exec(&ctx, "configuring the session",
            "SET client_min_messages = warning")
            != 0
        || migrate_lock(&ctx, 1) != 0
        || migrate_load_applied(&ctx, cmd != MIGRATE_STATUS) != 0) {
        goto failed;
    }

    switch (cmd) {
    case MIGRATE_UP:
        rc = migrate_up(&ctx);
        break;
    case MIGRATE_DOWN:
        rc = migrate_down(&ctx, count);
        break;
    case MIGRATE_STATUS:
        rc = migrate_status(&ctx);
        break;
    }

    if (migrate_lock(&ctx, 0) != 0) {
        rc = 1;
    }

failed:

    PQclear(ctx.applied);
    if (ctx.conn) {
        PQfinish(ctx.conn);
    }
    omni_migrate_list_free(&ctx.files);
    return rc;
}
