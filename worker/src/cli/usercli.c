/* usercli.c: `omni-worker user create`: an operator creates an account
 * (the first admin, typically) without going through the API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "services/auth/password.h"
#include "cli/usercli.h"


static int omni_usercli_usage(void)
{
    fprintf(stderr, "usage: omni-worker user create --email E "
                    "--password-file F --role admin|developer|user|viewer "
                    "[--username U]\n");
    return 2;
}


/* The password is the file's first line, without its line ending. */
static int omni_usercli_read_password(
    const char *path, char *buf, size_t size, size_t *len)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "omni-worker: --password-file %s: %m\n", path);
        return -1;
    }
    n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    n = strcspn(buf, "\r\n");
    buf[n] = '\0';
    *len = n;
    return 0;
}


int omni_usercli_main(const omni_config_t *cfg, int argc, char **argv)
{
    const char *email = NULL, *file = NULL, *role = NULL, *username = NULL;
    const char *why, *values[4];
    char password[OMNI_PASSWORD_MAX_BYTES + 2];
    char hash[OMNI_PASSWORD_HASH_MAX];
    size_t plen = 0;
    int i, rc = 1;
    PGconn *conn = NULL;
    PGresult *res = NULL;

    if (argc < 1 || strcmp(argv[0], "create") != 0) {
        return omni_usercli_usage();
    }
    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--email") == 0) {
            email = argv[i + 1];
        } else if (strcmp(argv[i], "--password-file") == 0) {
            file = argv[i + 1];
        } else if (strcmp(argv[i], "--role") == 0) {
            role = argv[i + 1];
        } else if (strcmp(argv[i], "--username") == 0) {
            username = argv[i + 1];
        } else {
            return omni_usercli_usage();
        }
    }
    if (i != argc || email == NULL || file == NULL || role == NULL) {
        return omni_usercli_usage();
    }
    if (strcmp(role, "admin") != 0 && strcmp(role, "developer") != 0
        && strcmp(role, "user") != 0 && strcmp(role, "viewer") != 0) {
        fprintf(stderr,
            "omni-worker: --role %s: expected admin, developer, "
            "user or viewer\n",
            role);
        return 1;
    }
    if (cfg->database_url == NULL) {
        fprintf(stderr, "omni-worker: OMNI_DATABASE_URL is required but not "
                        "set\n");
        return 1;
    }
    if (omni_usercli_read_password(file, password, sizeof(password), &plen)
        != 0) {
        return 1;
    }
    if (omni_password_strength(password, plen, &why) != 0) {
        fprintf(stderr, "omni-worker: password: %s\n", why);
        goto done;
    }
    if (omni_password_hash(password, plen, (unsigned)cfg->password_iterations,
            hash, sizeof(hash))
        != 0) {
        fprintf(stderr, "omni-worker: cannot hash the password\n");
        goto done;
    }

    conn = PQconnectdb(cfg->database_url);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "omni-worker: cannot connect to Postgres: %s",
            PQerrorMessage(conn));
        goto done;
    }
    values[0] = email;
    values[1] = username;
    values[2] = hash;
    values[3] = role;
    res = PQexecParams(conn,
        "INSERT INTO auth_service.users (email, username, password_hash, role)"
        " VALUES ($1, $2, $3, $4) RETURNING id",
        4, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "omni-worker: cannot create %s: %s", email,
            PQresultErrorMessage(res));
        goto done;
    }
    printf("%s\n", PQgetvalue(res, 0, 0));
    rc = 0;

done:

    OPENSSL_cleanse(password, sizeof(password));
    PQclear(res);
    PQfinish(conn);
    return rc;
}
