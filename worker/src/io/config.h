/* config.h: worker configuration from the environment (and an env file). */
#ifndef OMNI_CONFIG_H
#define OMNI_CONFIG_H

#include <stddef.h>

/* secrets the worker accepts at once: the current and, during a
 * rotation, the next or the previous one */
#define OMNI_GATEWAY_SECRETS_MAX 2

typedef struct {
    char *listen;       /* OMNI_LISTEN: unix:/path | host:port */
    char *listen_group; /* OMNI_LISTEN_GROUP: unix socket's group */
    int listen_mode;    /* OMNI_LISTEN_MODE: unix socket mode, 0660 */
    char *database_url; /* OMNI_DATABASE_URL (required) */
    char *redis_addr;   /* OMNI_REDIS_ADDR: host:port | unix:/path (required) */
    char *redis_password;    /* OMNI_REDIS_PASSWORD (optional) */
    int redis_timeout_ms;    /* OMNI_REDIS_TIMEOUT_MS per command, 1000 */
    int redis_pending_max;   /* OMNI_REDIS_PENDING_MAX per process, 1024 */
    char *gateway_secret;    /* OMNI_GATEWAY_SECRET, or the contents of
                                OMNI_GATEWAY_SECRET_FILE: one secret per
                                line (at most OMNI_GATEWAY_SECRETS_MAX);
                                NULL: none */
    long gateway_uid;        /* OMNI_GATEWAY_USER's uid (default www-data's
                                if it exists), or -1 */
    char *sql_dir;           /* OMNI_SQL_DIR: migrations (migrate only) */
    int workers;             /* OMNI_WORKERS, default = online cores */
    int pg_pool_size;        /* OMNI_PG_POOL_SIZE per process, default 4 */
    int pg_queue_max;        /* OMNI_PG_QUEUE_MAX per process, default 1024 */
    int pg_query_timeout_ms; /* OMNI_PG_QUERY_TIMEOUT_MS, default 5000 */
    int max_body_bytes;      /* OMNI_MAX_BODY_BYTES, default 1 MiB */
    int json_max_depth;      /* OMNI_JSON_MAX_DEPTH, default 32 */
    int http_timeout_ms;   /* OMNI_HTTP_TIMEOUT_MS (header/body/idle), 30000 */
    int drain_timeout_ms;  /* OMNI_DRAIN_TIMEOUT_MS, default 10000 */
    int metrics_flush_ms;  /* OMNI_METRICS_FLUSH_MS, default 5000 */
    int log_level;         /* OMNI_LOG_LEVEL: debug|info|warn|error */
    char *jwt_private_key; /* OMNI_JWT_PRIVATE_KEY: PEM path (required) */
    char *jwt_kid;         /* OMNI_JWT_KID, default the key's thumbprint */
    char *jwt_issuer;      /* OMNI_JWT_ISSUER, default "omni" */
    char *jwt_audience;    /* OMNI_JWT_AUDIENCE, default "omni-api" */
    char *jwks_file;       /* OMNI_JWKS_FILE: written for the gateway */
    int access_token_ttl;  /* OMNI_ACCESS_TOKEN_TTL seconds, 900 */
    int refresh_token_ttl; /* OMNI_REFRESH_TOKEN_TTL seconds, 14 days */
    int password_iterations; /* OMNI_PASSWORD_ITERATIONS, 29000 */
    int auth_threads;        /* OMNI_AUTH_THREADS per process, default 1 */
    int auth_queue_max;      /* OMNI_AUTH_QUEUE_MAX per process, 64 */
    char *events_publish;    /* OMNI_EVENTS_PUBLISH: the gateway's nchan
                                publisher, unix:/path | host:port; NULL:
                                no events */
    int events_queue_max;    /* OMNI_EVENTS_QUEUE_MAX per process, 4096 */

    char *mcp_secret_key_file; /* OMNI_MCP_SECRET_KEY_FILE: the key that
                                  seals MCP servers' headers; NULL: none */
    char *mcp_ca_file;         /* OMNI_MCP_CA_FILE: CAs for upstreams; NULL:
                                  the system's */
    char *mcp_secrets_dir;     /* OMNI_MCP_SECRETS_DIR: files MCP header
                                  values may name ({"secret_file": name}),
                                  read at each call; NULL: none */
    char *embedding_model;     /* OMNI_EMBEDDING_MODEL: a configured
                                  provider's model for memories' embeddings;
                                  NULL: text search only */
    char *mcp_origins;         /* OMNI_MCP_ALLOWED_ORIGINS: origins /mcp accepts
                                  besides the gateway's own, comma-separated */
} omni_config_t;

/* Loads the configuration: variables from the file named by OMNI_CONFIG
 * (KEY=VALUE lines, '#' comments) first, the environment overriding them.
 * `need_server` requires the settings the server needs (database, Redis,
 * and a gateway secret when OMNI_LISTEN is a TCP address beyond loopback).
 * Returns 0, or -1 after writing one line naming the missing or bad setting
 * to err. Strings are malloc'd and live for the process. */
int omni_config_load(
    omni_config_t *cfg, int need_server, char *err, size_t errlen);

/* Whether OMNI_LISTEN is a unix socket, or a TCP address on loopback
 * (127.0.0.0/8, ::1, localhost). */
int omni_config_listen_unix(const char *listen);
int omni_config_listen_loopback(const char *listen);

#endif
