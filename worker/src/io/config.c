/* config.c: reads the worker's settings from an env file and the environment.
 */
#include <ctype.h>
#include <errno.h>
#include <arpa/inet.h>
#include <limits.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/config.h"
#include "io/log.h"


typedef struct {
    char *key;
    char *value;
} omni_config_var_t;

/* variables read from the OMNI_CONFIG file; the environment wins */
static omni_config_var_t *omni_config_file_vars;
static size_t omni_config_file_nvars;


static int omni_config_read_file(const char *path, char *err, size_t errlen)
{
    FILE *f;
    char line[4096];
    int lineno = 0;

    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "OMNI_CONFIG: cannot open %s: %s", path,
            strerror(errno));
        return -1;
    }

    while (fgets(line, sizeof(line), f)) {
        char *p = line, *eq, *end;

        lineno++;
        while (isspace((unsigned char)*p)) {
            p++;
        }
        if (*p == '\0' || *p == '#') {
            continue;
        }
        end = p + strlen(p);
        while (end > p && isspace((unsigned char)end[-1])) {
            *--end = '\0';
        }
        if (strncmp(p, "export ", 7) == 0) {
            p += 7;
        }
        eq = strchr(p, '=');
        if (eq == NULL || eq == p) {
            snprintf(err, errlen, "OMNI_CONFIG: %s:%d: expected KEY=VALUE",
                path, lineno);
            fclose(f);
            return -1;
        }
        *eq = '\0';

        /* strip one pair of matching quotes, as a shell would */
        char *val = eq + 1;
        size_t vlen = strlen(val);
        if (vlen >= 2 && (val[0] == '"' || val[0] == '\'')
            && val[vlen - 1] == val[0]) {
            val[vlen - 1] = '\0';
            val++;
        }

        omni_config_var_t *vars = realloc(omni_config_file_vars,
            (omni_config_file_nvars + 1) * sizeof(omni_config_var_t));
        if (vars == NULL) {
            fclose(f);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        omni_config_file_vars = vars;
        vars[omni_config_file_nvars].key = strdup(p);
        vars[omni_config_file_nvars].value = strdup(val);
        omni_config_file_nvars++;
    }

    fclose(f);
    return 0;
}


static const char *omni_config_get(const char *key)
{
    const char *v = getenv(key);
    size_t i;

    if (v != NULL && *v != '\0') {
        return v;
    }
    for (i = omni_config_file_nvars; i > 0; i--) {
        if (strcmp(omni_config_file_vars[i - 1].key, key) == 0) {
            v = omni_config_file_vars[i - 1].value;
            return *v ? v : NULL;
        }
    }
    return NULL;
}


static int omni_config_str(char **out, const char *key, const char *def,
    int required, char *err, size_t errlen)
{
    const char *v = omni_config_get(key);

    if (v == NULL) {
        if (required) {
            snprintf(err, errlen, "%s is required but not set", key);
            return -1;
        }
        v = def;
    }
    *out = v ? strdup(v) : NULL;
    return 0;
}


static int omni_config_int(int *out, const char *key, int def, int min, int max,
    int base, char *err, size_t errlen)
{
    const char *v = omni_config_get(key);
    char *end;
    long n;

    if (v == NULL) {
        *out = def;
        return 0;
    }

    errno = 0;
    n = strtol(v, &end, base);
    if (errno || *end != '\0' || n < min || n > max) {
        snprintf(err, errlen, "%s=%s: expected an integer from %d to %d", key,
            v, min, max);
        return -1;
    }
    *out = (int)n;
    return 0;
}


/* ":port" with a port from 1 to 65535 */
static int omni_config_port_valid(const char *colon)
{
    char *end;
    long port;

    if (colon == NULL || colon[1] < '0' || colon[1] > '9') {
        return 0;
    }
    port = strtol(colon + 1, &end, 10);
    return *end == '\0' && port >= 1 && port <= 65535;
}


#define OMNI_GATEWAY_SECRET_MIN 16
#define OMNI_GATEWAY_SECRET_MAX 1024


int omni_config_listen_unix(const char *listen)
{
    return strncmp(listen, "unix:", 5) == 0;
}


int omni_config_listen_loopback(const char *listen)
{
    const char *colon = strrchr(listen, ':');
    char host[256];
    size_t n;
    struct in_addr a4;
    struct in6_addr a6;

    if (omni_config_listen_unix(listen) || colon == NULL
        || (size_t)(colon - listen) >= sizeof(host)) {
        return 0;
    }
    n = (size_t)(colon - listen);
    memcpy(host, listen, n);
    host[n] = '\0';
    if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
        memmove(host, host + 1, n - 2);
        host[n - 2] = '\0';
    }
    if (strcmp(host, "localhost") == 0) {
        return 1;
    }
    if (inet_pton(AF_INET, host, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    return inet_pton(AF_INET6, host, &a6) == 1
           && memcmp(&a6, &in6addr_loopback, sizeof(a6)) == 0;
}


/* The secret goes into an nginx string and an HTTP header: base64 or hex
 * characters only, so neither needs escaping. */
static int omni_config_secret_valid(
    const char *key, const char *s, char *err, size_t errlen)
{
    size_t n = strlen(s), i;

    if (n < OMNI_GATEWAY_SECRET_MIN || n > OMNI_GATEWAY_SECRET_MAX) {
        snprintf(err, errlen,
            "%s: expected %d to %d characters (e.g. "
            "`openssl rand -hex 32`), got %zu",
            key, OMNI_GATEWAY_SECRET_MIN, OMNI_GATEWAY_SECRET_MAX, n);
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && strchr("-._~+/=", s[i]) == NULL) {
            snprintf(err, errlen,
                "%s: only letters, digits and -._~+/= "
                "may be used (e.g. `openssl rand -hex 32`)",
                key);
            return -1;
        }
    }
    return 0;
}


/* Checks each secret of list (separated by any of seps) and stores them
 * in cfg->gateway_secret one per line. Two may be given so that a rotation
 * has no window: the worker accepts both while the gateway moves to the
 * new one. */
static int omni_config_secret_list(omni_config_t *cfg, const char *key,
    char *list, const char *seps, char *err, size_t errlen)
{
    char *one, *save = NULL, out[2 * (OMNI_GATEWAY_SECRET_MAX + 1)];
    size_t used = 0, n;
    int count = 0;

    for (one = strtok_r(list, seps, &save); one != NULL;
         one = strtok_r(NULL, seps, &save)) {
        if (++count > OMNI_GATEWAY_SECRETS_MAX) {
            snprintf(err, errlen,
                "%s: at most %d secrets (the current one and the next or "
                "previous, during a rotation)",
                key, OMNI_GATEWAY_SECRETS_MAX);
            return -1;
        }
        if (omni_config_secret_valid(key, one, err, errlen) != 0) {
            return -1;
        }
        n = strlen(one);
        memcpy(out + used, one, n);
        used += n;
        out[used++] = '\n';
    }
    if (count == 0) {
        snprintf(err, errlen, "%s: empty", key);
        return -1;
    }
    out[used - 1] = '\0';
    cfg->gateway_secret = strdup(out);
    explicit_bzero(out, sizeof(out));
    return cfg->gateway_secret ? 0 : -1;
}


/* OMNI_GATEWAY_SECRET (one secret, or two separated by a comma), or
 * OMNI_GATEWAY_SECRET_FILE's contents (a mounted Kubernetes Secret: one
 * secret per line), read afresh on every load so SIGHUP picks up a
 * rotated file. */
static int omni_config_gateway_secret(
    omni_config_t *cfg, char *err, size_t errlen)
{
    const char *v = omni_config_get("OMNI_GATEWAY_SECRET");
    const char *file = omni_config_get("OMNI_GATEWAY_SECRET_FILE");
    char buf[OMNI_GATEWAY_SECRETS_MAX * (OMNI_GATEWAY_SECRET_MAX + 2) + 1];
    size_t n;
    FILE *f;
    int rc;

    if (v != NULL && file != NULL) {
        snprintf(err, errlen,
            "OMNI_GATEWAY_SECRET and "
            "OMNI_GATEWAY_SECRET_FILE are both set: set one");
        return -1;
    }
    if (file != NULL) {
        f = fopen(file, "r");
        if (f == NULL) {
            snprintf(err, errlen,
                "OMNI_GATEWAY_SECRET_FILE: cannot open "
                "%s: %s",
                file, strerror(errno));
            return -1;
        }
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        if (strlen(buf) != n) {
            snprintf(err, errlen,
                "OMNI_GATEWAY_SECRET_FILE: %s holds a NUL "
                "byte",
                file);
            return -1;
        }
        rc = omni_config_secret_list(
            cfg, "OMNI_GATEWAY_SECRET_FILE", buf, " \t\r\n", err, errlen);
    } else if (v != NULL) {
        snprintf(buf, sizeof(buf), "%s", v);
        rc = omni_config_secret_list(
            cfg, "OMNI_GATEWAY_SECRET", buf, ",", err, errlen);
    } else {
        return 0;
    }
    explicit_bzero(buf, sizeof(buf));
    return rc;
}


/* The nginx workers' user: a name or a uid; www-data when unset and such a
 * user exists. */
static int omni_config_gateway_user(
    omni_config_t *cfg, char *err, size_t errlen)
{
    const char *v = omni_config_get("OMNI_GATEWAY_USER");
    struct passwd *pw;
    char *end;
    long uid;

    cfg->gateway_uid = -1;
    if (v == NULL) {
        pw = getpwnam("www-data");
        if (pw != NULL) {
            cfg->gateway_uid = (long)pw->pw_uid;
        }
        return 0;
    }
    errno = 0;
    uid = strtol(v, &end, 10);
    if (*end == '\0' && errno == 0 && uid >= 0 && uid < (long)UINT32_MAX) {
        cfg->gateway_uid = uid;
        return 0;
    }
    pw = getpwnam(v);
    if (pw == NULL) {
        snprintf(err, errlen, "OMNI_GATEWAY_USER=%s: no such user", v);
        return -1;
    }
    cfg->gateway_uid = (long)pw->pw_uid;
    return 0;
}


int omni_config_load(
    omni_config_t *cfg, int need_server, char *err, size_t errlen)
{
    const char *file = getenv("OMNI_CONFIG");
    const char *lvl;
    omni_log_level_t level;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    memset(cfg, 0, sizeof(*cfg));

    /* a reload (SIGHUP) reads the file afresh */
    while (omni_config_file_nvars > 0) {
        omni_config_file_nvars--;
        free(omni_config_file_vars[omni_config_file_nvars].key);
        free(omni_config_file_vars[omni_config_file_nvars].value);
    }

    if (file != NULL && *file != '\0'
        && omni_config_read_file(file, err, errlen) != 0) {
        return -1;
    }

    if (omni_config_str(
            &cfg->listen, "OMNI_LISTEN", "127.0.0.1:9000", 0, err, errlen)
        || omni_config_str(
            &cfg->listen_group, "OMNI_LISTEN_GROUP", NULL, 0, err, errlen)
        || omni_config_int(&cfg->listen_mode, "OMNI_LISTEN_MODE", 0660, 0, 0777,
            8, err, errlen)
        || omni_config_str(&cfg->database_url, "OMNI_DATABASE_URL", NULL,
            need_server, err, errlen)
        || omni_config_str(
            &cfg->redis_addr, "OMNI_REDIS_ADDR", NULL, need_server, err, errlen)
        || omni_config_str(
            &cfg->redis_password, "OMNI_REDIS_PASSWORD", NULL, 0, err, errlen)
        || omni_config_int(&cfg->redis_timeout_ms, "OMNI_REDIS_TIMEOUT_MS",
            1000, 10, 60000, 10, err, errlen)
        || omni_config_int(&cfg->redis_pending_max, "OMNI_REDIS_PENDING_MAX",
            1024, 1, 1000000, 10, err, errlen)
        || omni_config_gateway_secret(cfg, err, errlen)
        || omni_config_gateway_user(cfg, err, errlen)
        || omni_config_str(&cfg->sql_dir, "OMNI_SQL_DIR", "sql", 0, err, errlen)
        || omni_config_int(&cfg->workers, "OMNI_WORKERS",
            cores > 0 ? (int)cores : 1, 1, 256, 10, err, errlen)
        || omni_config_int(
            &cfg->pg_pool_size, "OMNI_PG_POOL_SIZE", 4, 1, 256, 10, err, errlen)
        || omni_config_int(&cfg->pg_queue_max, "OMNI_PG_QUEUE_MAX", 1024, 1,
            1000000, 10, err, errlen)
        || omni_config_int(&cfg->pg_query_timeout_ms,
            "OMNI_PG_QUERY_TIMEOUT_MS", 5000, 10, 3600000, 10, err, errlen)
        || omni_config_int(&cfg->max_body_bytes, "OMNI_MAX_BODY_BYTES", 1048576,
            1024, 1 << 30, 10, err, errlen)
        || omni_config_int(&cfg->json_max_depth, "OMNI_JSON_MAX_DEPTH", 32, 1,
            1024, 10, err, errlen)
        || omni_config_int(&cfg->http_timeout_ms, "OMNI_HTTP_TIMEOUT_MS", 30000,
            100, 3600000, 10, err, errlen)
        || omni_config_int(&cfg->drain_timeout_ms, "OMNI_DRAIN_TIMEOUT_MS",
            10000, 0, 3600000, 10, err, errlen)
        || omni_config_int(&cfg->metrics_flush_ms, "OMNI_METRICS_FLUSH_MS",
            5000, 50, 3600000, 10, err, errlen)
        || omni_config_str(&cfg->jwt_private_key, "OMNI_JWT_PRIVATE_KEY", NULL,
            need_server, err, errlen)
        || omni_config_str(&cfg->jwt_kid, "OMNI_JWT_KID", NULL, 0, err, errlen)
        || omni_config_str(
            &cfg->jwt_issuer, "OMNI_JWT_ISSUER", "omni", 0, err, errlen)
        || omni_config_str(
            &cfg->jwt_audience, "OMNI_JWT_AUDIENCE", "omni-api", 0, err, errlen)
        || omni_config_str(
            &cfg->jwks_file, "OMNI_JWKS_FILE", NULL, 0, err, errlen)
        || omni_config_int(&cfg->access_token_ttl, "OMNI_ACCESS_TOKEN_TTL", 900,
            10, 86400, 10, err, errlen)
        || omni_config_int(&cfg->refresh_token_ttl, "OMNI_REFRESH_TOKEN_TTL",
            1209600, 60, 31536000, 10, err, errlen)
        || omni_config_int(&cfg->password_iterations,
            "OMNI_PASSWORD_ITERATIONS", 29000, 29000, 10000000, 10, err, errlen)
        || omni_config_int(
            &cfg->auth_threads, "OMNI_AUTH_THREADS", 1, 1, 64, 10, err, errlen)
        || omni_config_int(&cfg->auth_queue_max, "OMNI_AUTH_QUEUE_MAX", 64, 1,
            100000, 10, err, errlen)
        || omni_config_str(
            &cfg->events_publish, "OMNI_EVENTS_PUBLISH", NULL, 0, err, errlen)
        || omni_config_int(&cfg->events_queue_max, "OMNI_EVENTS_QUEUE_MAX",
            4096, 1, 1000000, 10, err, errlen)
        || omni_config_str(&cfg->mcp_secret_key_file,
            "OMNI_MCP_SECRET_KEY_FILE", NULL, 0, err, errlen)
        || omni_config_str(
            &cfg->mcp_ca_file, "OMNI_MCP_CA_FILE", NULL, 0, err, errlen)
        || omni_config_str(
            &cfg->mcp_secrets_dir, "OMNI_MCP_SECRETS_DIR", NULL, 0, err, errlen)
        || omni_config_str(
            &cfg->embedding_model, "OMNI_EMBEDDING_MODEL", NULL, 0, err, errlen)
        || omni_config_str(&cfg->mcp_origins, "OMNI_MCP_ALLOWED_ORIGINS", NULL,
            0, err, errlen)) {
        return -1;
    }

    lvl = omni_config_get("OMNI_LOG_LEVEL");
    if (lvl == NULL) {
        level = OMNI_LOG_INFO;
    } else if (omni_log_parse_level(lvl, &level) != 0) {
        snprintf(err, errlen,
            "OMNI_LOG_LEVEL=%s: expected debug, info, warn or error", lvl);
        return -1;
    }
    cfg->log_level = (int)level;

    if (strncmp(cfg->listen, "unix:", 5) == 0
            ? cfg->listen[5] == '\0'
            : !omni_config_port_valid(strrchr(cfg->listen, ':'))) {
        snprintf(err, errlen,
            "OMNI_LISTEN=%s: expected unix:/path or host:port", cfg->listen);
        return -1;
    }

    /* whoever reaches a TCP port could claim any identity: beyond loopback
     * only requests carrying the gateway's secret are believed */
    if (need_server && cfg->gateway_secret == NULL
        && !omni_config_listen_unix(cfg->listen)
        && !omni_config_listen_loopback(cfg->listen)) {
        snprintf(err, errlen,
            "OMNI_LISTEN=%s is reachable beyond loopback: set "
            "OMNI_GATEWAY_SECRET (or OMNI_GATEWAY_SECRET_FILE) to the "
            "secret the gateway sends, or listen on a unix socket",
            cfg->listen);
        return -1;
    }

    return 0;
}
