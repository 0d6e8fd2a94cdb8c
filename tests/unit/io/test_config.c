/* test_config.c: settings from the environment and the OMNI_CONFIG file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/config.h"
#include "io/log.h"
#include "unit.h"

extern char **environ;

/* The strings of the last load live here until the next one frees them, as
 * they would for the process; the last ones stay reachable at exit. */
static omni_config_t cfg;
static char err[512];
static char path[64];

static void free_cfg(void)
{
    free(cfg.listen);
    free(cfg.listen_group);
    free(cfg.database_url);
    free(cfg.redis_addr);
    free(cfg.redis_password);
    free(cfg.sql_dir);
    free(cfg.jwt_private_key);
    free(cfg.jwt_kid);
    free(cfg.jwt_issuer);
    free(cfg.jwt_audience);
    free(cfg.jwks_file);
    free(cfg.gateway_secret);
    memset(&cfg, 0, sizeof(cfg));
}

static int load(int need_server)
{
    free_cfg();
    err[0] = '\0';
    return omni_config_load(&cfg, need_server, err, sizeof(err));
}

/* Starts each test from an environment with no OMNI_* variable. */
static void clear_env(void)
{
    char name[256];
    char **e;
    int again = 1;

    while (again) {
        again = 0;
        for (e = environ; *e; e++) {
            const char *eq = strchr(*e, '=');
            size_t n = eq ? (size_t)(eq - *e) : strlen(*e);

            if (strncmp(*e, "OMNI_", 5) == 0 && n < sizeof(name)) {
                memcpy(name, *e, n);
                name[n] = '\0';
                unsetenv(name);
                again = 1;
                break;
            }
        }
    }
}

static void set_server_env(void)
{
    clear_env();
    setenv("OMNI_DATABASE_URL", "postgres://omni@localhost/omni", 1);
    setenv("OMNI_REDIS_ADDR", "127.0.0.1:6379", 1);
    setenv("OMNI_JWT_PRIVATE_KEY", "/etc/omni/jwt.pem", 1);
}

static void remove_config(void)
{
    if (path[0]) {
        unlink(path);
        path[0] = '\0';
    }
    unsetenv("OMNI_CONFIG");
}

/* Writes text to the test's config file (made on first use) and points
 * OMNI_CONFIG at it. Returns 0, or -1. */
static int write_config(const char *text)
{
    static int cleanup_registered;
    FILE *f;

    if (!cleanup_registered) {
        atexit(remove_config); /* a failed CHECK may leave the file */
        cleanup_registered = 1;
    }
    if (path[0] == '\0') {
        int fd;

        strcpy(path, "/tmp/omni-test-config-XXXXXX");
        fd = mkstemp(path);
        if (fd < 0)
            return -1;
        close(fd);
    }
    f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(text, f);
    if (fclose(f) != 0)
        return -1;
    setenv("OMNI_CONFIG", path, 1);
    return 0;
}

static int err_has(const char *s)
{
    return strstr(err, s) != NULL;
}

static void test_missing_database_url_is_named(void)
{
    clear_env();
    setenv("OMNI_REDIS_ADDR", "127.0.0.1:6379", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_DATABASE_URL"));
    CHECK(!err_has("OMNI_REDIS_ADDR"));
}

static void test_nothing_set_names_the_database_first(void)
{
    clear_env();
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_DATABASE_URL"));
}

static void test_missing_redis_addr_is_named(void)
{
    clear_env();
    setenv("OMNI_DATABASE_URL", "postgres://omni@localhost/omni", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_REDIS_ADDR"));
    CHECK(!err_has("OMNI_DATABASE_URL"));
}

static void test_empty_required_setting_counts_as_missing(void)
{
    set_server_env();
    setenv("OMNI_DATABASE_URL", "", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_DATABASE_URL"));
}

static void test_without_server_database_and_redis_are_optional(void)
{
    clear_env();
    CHECK_EQ_INT(load(0), 0);
    CHECK(cfg.database_url == NULL);
    CHECK(cfg.redis_addr == NULL);
    CHECK_STR_EQ(cfg.sql_dir, "sql");
    /* and are still read when present */
    setenv("OMNI_DATABASE_URL", "postgres:///x", 1);
    CHECK_EQ_INT(load(0), 0);
    CHECK_STR_EQ(cfg.database_url, "postgres:///x");
}

static void test_defaults_are_applied(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    set_server_env();
    CHECK_EQ_INT(load(1), 0);
    CHECK_STR_EQ(cfg.listen, "127.0.0.1:9000");
    CHECK(cfg.listen_group == NULL);
    CHECK_EQ_INT(cfg.listen_mode, 0660);
    CHECK_STR_EQ(cfg.database_url, "postgres://omni@localhost/omni");
    CHECK_STR_EQ(cfg.redis_addr, "127.0.0.1:6379");
    CHECK(cfg.redis_password == NULL);
    CHECK_STR_EQ(cfg.sql_dir, "sql");
    CHECK_EQ_INT(cfg.workers, cores > 0 ? cores : 1);
    CHECK_EQ_INT(cfg.pg_pool_size, 4);
    CHECK_EQ_INT(cfg.pg_queue_max, 1024);
    CHECK_EQ_INT(cfg.pg_query_timeout_ms, 5000);
    CHECK_EQ_INT(cfg.max_body_bytes, 1048576);
    CHECK_EQ_INT(cfg.json_max_depth, 32);
    CHECK_EQ_INT(cfg.http_timeout_ms, 30000);
    CHECK_EQ_INT(cfg.drain_timeout_ms, 10000);
    CHECK_EQ_INT(cfg.metrics_flush_ms, 5000);
    CHECK_EQ_INT(cfg.log_level, OMNI_LOG_INFO);
}

static void test_settings_are_read_from_the_environment(void)
{
    set_server_env();
    setenv("OMNI_LISTEN", "unix:/run/omni/worker.sock", 1);
    setenv("OMNI_LISTEN_GROUP", "www-data", 1);
    setenv("OMNI_LISTEN_MODE", "0600", 1);
    setenv("OMNI_REDIS_PASSWORD", "s3cret", 1);
    setenv("OMNI_SQL_DIR", "/usr/share/omni/sql", 1);
    setenv("OMNI_WORKERS", "3", 1);
    setenv("OMNI_PG_POOL_SIZE", "16", 1);
    setenv("OMNI_PG_QUEUE_MAX", "1000000", 1);
    setenv("OMNI_PG_QUERY_TIMEOUT_MS", "10", 1);
    setenv("OMNI_MAX_BODY_BYTES", "1024", 1);
    setenv("OMNI_JSON_MAX_DEPTH", "1024", 1);
    setenv("OMNI_HTTP_TIMEOUT_MS", "100", 1);
    setenv("OMNI_DRAIN_TIMEOUT_MS", "0", 1);
    setenv("OMNI_METRICS_FLUSH_MS", "50", 1);
    setenv("OMNI_LOG_LEVEL", "debug", 1);
    CHECK_EQ_INT(load(1), 0);
    CHECK_STR_EQ(cfg.listen, "unix:/run/omni/worker.sock");
    CHECK_STR_EQ(cfg.listen_group, "www-data");
    CHECK_EQ_INT(cfg.listen_mode, 0600);
    CHECK_STR_EQ(cfg.redis_password, "s3cret");
    CHECK_STR_EQ(cfg.sql_dir, "/usr/share/omni/sql");
    CHECK_EQ_INT(cfg.workers, 3);
    CHECK_EQ_INT(cfg.pg_pool_size, 16);
    CHECK_EQ_INT(cfg.pg_queue_max, 1000000);
    CHECK_EQ_INT(cfg.pg_query_timeout_ms, 10);
    CHECK_EQ_INT(cfg.max_body_bytes, 1024);
    CHECK_EQ_INT(cfg.json_max_depth, 1024);
    CHECK_EQ_INT(cfg.http_timeout_ms, 100);
    CHECK_EQ_INT(cfg.drain_timeout_ms, 0);
    CHECK_EQ_INT(cfg.metrics_flush_ms, 50);
    CHECK_EQ_INT(cfg.log_level, OMNI_LOG_DEBUG);
}

static void test_out_of_range_integer_names_variable_and_range(void)
{
    set_server_env();
    setenv("OMNI_PG_POOL_SIZE", "0", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK_STR_EQ(err, "OMNI_PG_POOL_SIZE=0: expected an integer from 1 to 256");
    setenv("OMNI_PG_POOL_SIZE", "257", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK_STR_EQ(
        err, "OMNI_PG_POOL_SIZE=257: expected an integer from 1 to 256");
    setenv("OMNI_PG_POOL_SIZE", "256", 1);
    CHECK_EQ_INT(load(1), 0);
    CHECK_EQ_INT(cfg.pg_pool_size, 256);

    setenv("OMNI_HTTP_TIMEOUT_MS", "99", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_HTTP_TIMEOUT_MS=99"));
    CHECK(err_has("from 100 to 3600000"));
}

static void test_non_numeric_integer_is_rejected(void)
{
    static const char *bad[] = {"abc", "4x", "", "-", "0x10", "4.0", "1e3",
        "99999999999999999999", "-99999999999999999999"};
    size_t i;

    set_server_env();
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bad[i][0] == '\0')
            continue; /* empty means unset: the default */
        setenv("OMNI_WORKERS", bad[i], 1);
        CHECK_EQ_INT(load(1), -1);
        CHECK(err_has("OMNI_WORKERS="));
        CHECK(err_has(bad[i]));
        CHECK(err_has("expected an integer from 1 to 256"));
    }
    setenv("OMNI_WORKERS", "", 1);
    CHECK_EQ_INT(load(1), 0);
}

static void test_negative_integer_is_rejected(void)
{
    set_server_env();
    setenv("OMNI_DRAIN_TIMEOUT_MS", "-1", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK_STR_EQ(
        err, "OMNI_DRAIN_TIMEOUT_MS=-1: expected an integer from 0 to 3600000");
}

static void test_listen_mode_is_octal(void)
{
    set_server_env();
    setenv("OMNI_LISTEN_MODE", "660", 1);
    CHECK_EQ_INT(load(1), 0);
    CHECK_EQ_INT(cfg.listen_mode, 0660);
    setenv("OMNI_LISTEN_MODE", "0777", 1);
    CHECK_EQ_INT(load(1), 0);
    CHECK_EQ_INT(cfg.listen_mode, 0777);
    setenv("OMNI_LISTEN_MODE", "0680", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_LISTEN_MODE=0680"));
    setenv("OMNI_LISTEN_MODE", "1777", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_LISTEN_MODE=1777"));
}

static void test_listen_without_port_is_rejected(void)
{
    set_server_env();
    setenv("OMNI_LISTEN", "localhost", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_LISTEN=localhost"));
}

static void test_listen_with_empty_port_is_rejected(void)
{
    set_server_env();
    /* getaddrinfo takes "" as port 0: the worker would bind a random port */
    setenv("OMNI_LISTEN", "127.0.0.1:", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_LISTEN=127.0.0.1:"));
}

static void test_listen_accepts_host_port_and_unix(void)
{
    set_server_env();
    setenv("OMNI_GATEWAY_SECRET", "0123456789abcdef0123", 1);
    setenv("OMNI_LISTEN", "0.0.0.0:8080", 1);
    CHECK_EQ_INT(load(1), 0);
    CHECK_STR_EQ(cfg.listen, "0.0.0.0:8080");
    setenv("OMNI_LISTEN", "[::1]:9000", 1);
    CHECK_EQ_INT(load(1), 0);
    setenv("OMNI_LISTEN", ":9000", 1);
    CHECK_EQ_INT(load(1), 0);
    setenv("OMNI_LISTEN", "unix:/tmp/omni.sock", 1);
    CHECK_EQ_INT(load(1), 0);
    CHECK_STR_EQ(cfg.listen, "unix:/tmp/omni.sock");
}

static void test_log_level_is_validated(void)
{
    set_server_env();
    setenv("OMNI_LOG_LEVEL", "verbose", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK_STR_EQ(
        err, "OMNI_LOG_LEVEL=verbose: expected debug, info, warn or error");
    setenv("OMNI_LOG_LEVEL", "WARN", 1);
    CHECK_EQ_INT(load(1), 0);
    CHECK_EQ_INT(cfg.log_level, OMNI_LOG_WARN);
    setenv("OMNI_LOG_LEVEL", "error", 1);
    CHECK_EQ_INT(load(1), 0);
    CHECK_EQ_INT(cfg.log_level, OMNI_LOG_ERROR);
}

static void test_config_file_supplies_values(void)
{
    clear_env();
    CHECK_EQ_INT(write_config("# Omni settings\n"
                              "\n"
                              "OMNI_DATABASE_URL=postgres:///fromfile\n"
                              "   # an indented comment\n"
                              "OMNI_REDIS_ADDR=unix:/run/redis.sock\n"
                              "OMNI_JWT_PRIVATE_KEY=/etc/omni/jwt.pem\n"
                              "export OMNI_PG_POOL_SIZE=8\n"
                              "  OMNI_LOG_LEVEL=warn  \n"
                              "\t\n"
                              "OMNI_LISTEN_MODE=0640"),
        0);
    CHECK_EQ_INT(load(1), 0);
    remove_config();
    CHECK_STR_EQ(cfg.database_url, "postgres:///fromfile");
    CHECK_STR_EQ(cfg.redis_addr, "unix:/run/redis.sock");
    CHECK_EQ_INT(cfg.pg_pool_size, 8);
    CHECK_EQ_INT(cfg.log_level, OMNI_LOG_WARN);
    CHECK_EQ_INT(cfg.listen_mode, 0640);
    CHECK_EQ_INT(cfg.pg_queue_max, 1024);
}

static void test_config_file_quotes_are_stripped(void)
{
    set_server_env();
    CHECK_EQ_INT(write_config("OMNI_REDIS_PASSWORD=\"pa ss=word\"\n"
                              "OMNI_LISTEN_GROUP='www data'\n"
                              "OMNI_SQL_DIR=\"unbalanced'\n"
                              "OMNI_LISTEN=\"127.0.0.1:9100\"\n"),
        0);
    CHECK_EQ_INT(load(1), 0);
    remove_config();
    CHECK_STR_EQ(cfg.redis_password, "pa ss=word");
    CHECK_STR_EQ(cfg.listen_group, "www data");
    CHECK_STR_EQ(cfg.sql_dir, "\"unbalanced'");
    CHECK_STR_EQ(cfg.listen, "127.0.0.1:9100");
}

static void test_config_file_later_line_wins(void)
{
    set_server_env();
    CHECK_EQ_INT(write_config("OMNI_PG_POOL_SIZE=8\n"
                              "OMNI_PG_POOL_SIZE=9\n"),
        0);
    CHECK_EQ_INT(load(1), 0);
    remove_config();
    CHECK_EQ_INT(cfg.pg_pool_size, 9);
}

static void test_environment_overrides_the_file(void)
{
    clear_env();
    CHECK_EQ_INT(write_config("OMNI_DATABASE_URL=postgres:///fromfile\n"
                              "OMNI_REDIS_ADDR=127.0.0.1:1\n"
                              "OMNI_JWT_PRIVATE_KEY=/etc/omni/jwt.pem\n"
                              "OMNI_PG_POOL_SIZE=8\n"),
        0);
    setenv("OMNI_PG_POOL_SIZE", "12", 1);
    setenv("OMNI_DATABASE_URL", "postgres:///fromenv", 1);
    CHECK_EQ_INT(load(1), 0);
    remove_config();
    CHECK_EQ_INT(cfg.pg_pool_size, 12);
    CHECK_STR_EQ(cfg.database_url, "postgres:///fromenv");
    CHECK_STR_EQ(cfg.redis_addr, "127.0.0.1:1");
}

static void test_bad_value_in_file_names_the_variable(void)
{
    set_server_env();
    CHECK_EQ_INT(write_config("OMNI_JSON_MAX_DEPTH=deep\n"), 0);
    CHECK_EQ_INT(load(1), -1);
    remove_config();
    CHECK_STR_EQ(
        err, "OMNI_JSON_MAX_DEPTH=deep: expected an integer from 1 to 1024");
}

static void test_malformed_line_names_file_and_line(void)
{
    char want[128];

    set_server_env();
    CHECK_EQ_INT(write_config("# header\n"
                              "OMNI_PG_POOL_SIZE=8\n"
                              "this is not a setting\n"
                              "OMNI_PG_QUEUE_MAX=10\n"),
        0);
    snprintf(want, sizeof(want), "%s:3", path);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has(want));
    CHECK(err_has("OMNI_CONFIG"));

    CHECK_EQ_INT(write_config("=value\n"), 0);
    snprintf(want, sizeof(want), "%s:1", path);
    CHECK_EQ_INT(load(1), -1);
    remove_config();
    CHECK(err_has(want));
}

static void test_missing_config_file_is_reported(void)
{
    set_server_env();
    setenv("OMNI_CONFIG", "/nonexistent/omni.env", 1);
    CHECK_EQ_INT(load(1), -1);
    unsetenv("OMNI_CONFIG");
    CHECK(err_has("OMNI_CONFIG"));
    CHECK(err_has("/nonexistent/omni.env"));
}

static void test_reload_reads_the_file_afresh(void)
{
    clear_env();
    CHECK_EQ_INT(write_config("OMNI_DATABASE_URL=postgres:///one\n"
                              "OMNI_REDIS_ADDR=127.0.0.1:6379\n"
                              "OMNI_JWT_PRIVATE_KEY=/etc/omni/jwt.pem\n"
                              "OMNI_PG_POOL_SIZE=8\n"
                              "OMNI_LOG_LEVEL=debug\n"),
        0);
    CHECK_EQ_INT(load(1), 0);
    CHECK_STR_EQ(cfg.database_url, "postgres:///one");
    CHECK_EQ_INT(cfg.pg_pool_size, 8);
    CHECK_EQ_INT(cfg.log_level, OMNI_LOG_DEBUG);

    /* the second file drops two settings and changes one */
    CHECK_EQ_INT(write_config("OMNI_DATABASE_URL=postgres:///two\n"
                              "OMNI_REDIS_ADDR=127.0.0.1:6379\n"
                              "OMNI_JWT_PRIVATE_KEY=/etc/omni/jwt.pem\n"
                              "OMNI_PG_QUEUE_MAX=64\n"),
        0);
    CHECK_EQ_INT(load(1), 0);
    CHECK_STR_EQ(cfg.database_url, "postgres:///two");
    CHECK_EQ_INT(cfg.pg_pool_size, 4);
    CHECK_EQ_INT(cfg.pg_queue_max, 64);
    CHECK_EQ_INT(cfg.log_level, OMNI_LOG_INFO);

    /* and without a file, nothing of it is left */
    remove_config();
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_DATABASE_URL"));
}

static void test_reload_after_a_bad_file_forgets_it(void)
{
    clear_env();
    CHECK_EQ_INT(write_config("OMNI_DATABASE_URL=postgres:///bad\n"
                              "oops\n"),
        0);
    CHECK_EQ_INT(load(0), -1);
    remove_config();
    CHECK_EQ_INT(load(0), 0);
    CHECK(cfg.database_url == NULL);
}

static void test_listen_beyond_loopback_needs_the_gateway_secret(void)
{
    static const char *exposed[] = {"0.0.0.0:9000", ":9000", "[::]:9000",
        "10.1.2.3:9000", "omni-worker:9000", "128.0.0.1:9000"};
    size_t i;

    for (i = 0; i < sizeof(exposed) / sizeof(exposed[0]); i++) {
        set_server_env();
        setenv("OMNI_LISTEN", exposed[i], 1);
        CHECK_EQ_INT(load(1), -1);
        CHECK(err_has("OMNI_GATEWAY_SECRET"));
        CHECK(err_has(exposed[i]));
    }
    /* the migrate and user commands do not listen */
    CHECK_EQ_INT(load(0), 0);
}

static void test_loopback_and_unix_need_no_secret(void)
{
    static const char *local[] = {"127.0.0.1:9000", "127.9.9.9:9000",
        "localhost:9000", "[::1]:9000", "unix:/tmp/omni.sock"};
    size_t i;

    for (i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
        set_server_env();
        setenv("OMNI_LISTEN", local[i], 1);
        CHECK_EQ_INT(load(1), 0);
        CHECK(cfg.gateway_secret == NULL);
    }
}

static void test_gateway_secret_is_validated(void)
{
    set_server_env();
    setenv("OMNI_GATEWAY_SECRET", "short", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_GATEWAY_SECRET"));
    CHECK(err_has("16"));
    setenv("OMNI_GATEWAY_SECRET", "0123456789abcdef\"; evil", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_GATEWAY_SECRET"));
    /* the secret itself is never echoed */
    CHECK(!err_has("evil"));
    setenv("OMNI_GATEWAY_SECRET", "Zm9vYmFyYmF6cXV4Cg==-._~+/", 1);
    CHECK_EQ_INT(load(1), 0);
    CHECK_STR_EQ(cfg.gateway_secret, "Zm9vYmFyYmF6cXV4Cg==-._~+/");
}

static void test_gateway_secret_file_is_read_afresh(void)
{
    char file[] = "/tmp/omni-test-secret-XXXXXX";
    int fd = mkstemp(file);
    FILE *f;

    CHECK(fd >= 0);
    close(fd);
    set_server_env();
    setenv("OMNI_GATEWAY_SECRET_FILE", file, 1);
    setenv("OMNI_LISTEN", "0.0.0.0:9000", 1);

    f = fopen(file, "w");
    fputs("first-secret-0123456789\n", f);
    fclose(f);
    CHECK_EQ_INT(load(1), 0);
    CHECK_STR_EQ(cfg.gateway_secret, "first-secret-0123456789");

    f = fopen(file, "w");
    fputs("second-secret-0123456789", f);
    fclose(f);
    CHECK_EQ_INT(load(1), 0);
    CHECK_STR_EQ(cfg.gateway_secret, "second-secret-0123456789");

    /* an empty file is no secret: refused beyond loopback */
    f = fopen(file, "w");
    fclose(f);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_GATEWAY_SECRET_FILE"));

    unlink(file);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_GATEWAY_SECRET_FILE"));
    CHECK(err_has(file));

    setenv("OMNI_GATEWAY_SECRET", "0123456789abcdef0123", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("both"));
}

static void test_two_gateway_secrets_are_accepted_during_a_rotation(void)
{
    char file[] = "/tmp/omni-test-secret-XXXXXX";
    int fd = mkstemp(file);
    FILE *f;

    CHECK(fd >= 0);
    close(fd);
    set_server_env();
    setenv("OMNI_GATEWAY_SECRET", "old-secret-0123456789,new-secret-0123456789",
        1);
    CHECK_EQ_INT(load(1), 0);
    CHECK_STR_EQ(
        cfg.gateway_secret, "old-secret-0123456789\nnew-secret-0123456789");
    /* each one is checked on its own */
    setenv("OMNI_GATEWAY_SECRET", "old-secret-0123456789,short", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("16"));
    setenv("OMNI_GATEWAY_SECRET",
        "a-secret-0123456789,b-secret-0123456789,c-secret-0123456789", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("at most 2"));
    unsetenv("OMNI_GATEWAY_SECRET");

    /* a mounted file: one per line */
    setenv("OMNI_GATEWAY_SECRET_FILE", file, 1);
    f = fopen(file, "w");
    fputs("new-secret-0123456789\nold-secret-0123456789\n", f);
    fclose(f);
    CHECK_EQ_INT(load(1), 0);
    CHECK_STR_EQ(
        cfg.gateway_secret, "new-secret-0123456789\nold-secret-0123456789");
    unlink(file);
    unsetenv("OMNI_GATEWAY_SECRET_FILE");
}

static void test_gateway_user_is_a_name_or_a_uid(void)
{
    set_server_env();
    setenv("OMNI_GATEWAY_USER", "root", 1);
    CHECK_EQ_INT(load(1), 0);
    CHECK_EQ_INT(cfg.gateway_uid, 0);
    setenv("OMNI_GATEWAY_USER", "4242", 1);
    CHECK_EQ_INT(load(1), 0);
    CHECK_EQ_INT(cfg.gateway_uid, 4242);
    setenv("OMNI_GATEWAY_USER", "no-such-user-omni", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_GATEWAY_USER=no-such-user-omni"));
}

static void test_redis_deadline_and_bound_have_defaults(void)
{
    set_server_env();
    CHECK_EQ_INT(load(1), 0);
    CHECK_EQ_INT(cfg.redis_timeout_ms, 1000);
    CHECK_EQ_INT(cfg.redis_pending_max, 1024);
    setenv("OMNI_REDIS_PENDING_MAX", "0", 1);
    CHECK_EQ_INT(load(1), -1);
    CHECK(err_has("OMNI_REDIS_PENDING_MAX"));
}

UNIT_MAIN(UNIT_TEST(test_missing_database_url_is_named),
    UNIT_TEST(test_nothing_set_names_the_database_first),
    UNIT_TEST(test_missing_redis_addr_is_named),
    UNIT_TEST(test_empty_required_setting_counts_as_missing),
    UNIT_TEST(test_without_server_database_and_redis_are_optional),
    UNIT_TEST(test_defaults_are_applied),
    UNIT_TEST(test_settings_are_read_from_the_environment),
    UNIT_TEST(test_out_of_range_integer_names_variable_and_range),
    UNIT_TEST(test_non_numeric_integer_is_rejected),
    UNIT_TEST(test_negative_integer_is_rejected),
    UNIT_TEST(test_listen_mode_is_octal),
    UNIT_TEST(test_listen_without_port_is_rejected),
    UNIT_TEST(test_listen_with_empty_port_is_rejected),
    UNIT_TEST(test_listen_accepts_host_port_and_unix),
    UNIT_TEST(test_log_level_is_validated),
    UNIT_TEST(test_config_file_supplies_values),
    UNIT_TEST(test_config_file_quotes_are_stripped),
    UNIT_TEST(test_config_file_later_line_wins),
    UNIT_TEST(test_environment_overrides_the_file),
    UNIT_TEST(test_bad_value_in_file_names_the_variable),
    UNIT_TEST(test_malformed_line_names_file_and_line),
    UNIT_TEST(test_missing_config_file_is_reported),
    UNIT_TEST(test_reload_reads_the_file_afresh),
    UNIT_TEST(test_reload_after_a_bad_file_forgets_it),
    UNIT_TEST(test_listen_beyond_loopback_needs_the_gateway_secret),
    UNIT_TEST(test_loopback_and_unix_need_no_secret),
    UNIT_TEST(test_gateway_secret_is_validated),
    UNIT_TEST(test_gateway_secret_file_is_read_afresh),
    UNIT_TEST(test_two_gateway_secrets_are_accepted_during_a_rotation),
    UNIT_TEST(test_gateway_user_is_a_name_or_a_uid),
    UNIT_TEST(test_redis_deadline_and_bound_have_defaults))
