
/*
 * Omni gateway module: what its files share.
 */


#ifndef _NGX_HTTP_OMNI_MODULE_H_INCLUDED_
#define _NGX_HTTP_OMNI_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "omni_gcra.h"
#include "omni_jwt.h"


struct redisAsyncContext;


#define NGX_HTTP_OMNI_VERSION  "0.2.0"


/* omni_auth: what authenticates a location; 0 is unset, as in a bitmask */
#define NGX_HTTP_OMNI_AUTH_OFF       NGX_CONF_BITMASK_SET
#define NGX_HTTP_OMNI_AUTH_JWT       0x02
#define NGX_HTTP_OMNI_AUTH_APIKEY    0x04
#define NGX_HTTP_OMNI_AUTH_OPTIONAL  0x08


/* decisions, counted in shared memory by outcome and reason */
typedef enum {
    NGX_HTTP_OMNI_ALLOW = 0,
    NGX_HTTP_OMNI_ALLOW_ANONYMOUS,
    NGX_HTTP_OMNI_DENY_MISSING,
    NGX_HTTP_OMNI_DENY_MALFORMED,
    NGX_HTTP_OMNI_DENY_BAD_SIGNATURE,
    NGX_HTTP_OMNI_DENY_EXPIRED,
    NGX_HTTP_OMNI_DENY_NOT_YET_VALID,
    NGX_HTTP_OMNI_DENY_WRONG_ISSUER,
    NGX_HTTP_OMNI_DENY_WRONG_AUDIENCE,
    NGX_HTTP_OMNI_DENY_INSUFFICIENT_ROLE,
    NGX_HTTP_OMNI_DENY_REVOKED,
    NGX_HTTP_OMNI_DENY_BAD_APIKEY,
    NGX_HTTP_OMNI_DENY_RATE_LIMITED,
    NGX_HTTP_OMNI_DENY_UNAVAILABLE,
    NGX_HTTP_OMNI_NDECISIONS
} ngx_http_omni_decision_e;


#define NGX_HTTP_OMNI_MAX_LIMITS    8


/* omni_redis_fail */
#define NGX_HTTP_OMNI_FAIL_OPEN     0
#define NGX_HTTP_OMNI_FAIL_CLOSED   1
#define NGX_HTTP_OMNI_FAIL_LOCAL    2

/* why a request got no answer from Redis */
#define NGX_HTTP_OMNI_REDIS_DOWN     1
#define NGX_HTTP_OMNI_REDIS_TIMEOUT  2
#define NGX_HTTP_OMNI_REDIS_ERROR    3


/* omni_limit_zone: a GCRA limit, its state in Redis per key */
typedef struct {
    ngx_str_t                   name;
    omni_gcra_limit_t           limit;
    ngx_http_complex_value_t   *key;        /* NULL: user, else client */
} ngx_http_omni_zone_t;


/* omni_limit: a zone applied here */
typedef struct {
    ngx_str_t                   zone_name;
    ngx_http_omni_zone_t       *zone;
    ngx_uint_t                  cost;

    /* made once when merged: the script's T, B and cost, and the
     * header values that do not change per request */
    ngx_str_t                   args[3];
    ngx_str_t                   capacity;       /* X-RateLimit-Limit */
    ngx_str_t                   policy;         /* RateLimit-Policy */
} ngx_http_omni_limit_t;


/* a Sentinel of "omni_redis sentinel://...": numeric, resolved when read */
typedef struct {
    ngx_str_t                   host;           /* NUL-terminated */
    in_port_t                   port;
} ngx_http_omni_addr_t;


/* ngx_http_omni_shm.c: a shared-memory map, bytes to bytes, LRU */
typedef struct {
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 queue;          /* most recent first */
} ngx_http_omni_shm_sh_t;


typedef struct {
    ngx_http_omni_shm_sh_t     *sh;
    ngx_slab_pool_t            *shpool;
} ngx_http_omni_shm_t;


typedef struct {
    u_char                      color;
    u_char                      pad;
    u_short                     key_len;
    uint32_t                    value_len;
    ngx_queue_t                 queue;
    int64_t                     expires;        /* ms since the epoch */
    u_char                      data[1];        /* key, then value */
} ngx_http_omni_shm_entry_t;

#define ngx_http_omni_shm_value(e)  ((e)->data + (e)->key_len)


/* the largest JWKS a URL may serve */
#define NGX_HTTP_OMNI_JWKS_MAX  65536


/*
 * A URL's JWKS in shared memory: the last good body the fetching worker
 * stored, and the lease that makes one worker fetch at a time. Times are
 * milliseconds since the epoch; all but version change under the mutex.
 */
typedef struct {
    ngx_atomic_t                version;        /* of body; 0: none yet */
    ngx_atomic_t                next;           /* the next fetch is due */
    ngx_atomic_t                lease;          /* a fetch runs until */
    ngx_atomic_t                started;        /* the last fetch began */
    size_t                      len;
    u_char                      body[NGX_HTTP_OMNI_JWKS_MAX + 1];
} ngx_http_omni_jwks_sh_t;


/*
 * omni_jwt_jwks: a key set each worker re-reads when its file changes, or
 * when another worker fetched its URL again. The set is swapped between
 * requests (a worker verifies without yielding), so the old keys are
 * freed at once.
 */
typedef struct {
    ngx_str_t                   path;           /* or URL; NUL-terminated */
    ngx_msec_t                  refresh;
    ngx_msec_t                  min_refresh;
    omni_jwt_key_t             *keys;           /* malloc'd */
    size_t                      nkeys;
    uint64_t                    version;        /* of the file or body */
    uint64_t                    failed;         /* version refused, or 0 */
    ngx_msec_t                  checked;
    ngx_event_t                 timer;
    void                       *omcf;

    /* a URL source */
    ngx_uint_t                  url;
    ngx_msec_t                  timeout;
    ngx_str_t                   ca;             /* as configured */
    ngx_addr_t                 *addrs;
    ngx_uint_t                  naddrs;
    ngx_str_t                   host;           /* for SNI and the check */
    in_port_t                   port;
    ngx_uint_t                  resolve;        /* a name, over https */
    ngx_http_core_loc_conf_t   *clcf;           /* its "resolver" */
    ngx_resolver_ctx_t         *resolving;
    ngx_str_t                   request;
    ngx_ssl_t                  *ssl;            /* NULL for http:// */
    ngx_shm_zone_t             *zone;
    ngx_http_omni_jwks_sh_t    *sh;
    ngx_slab_pool_t            *shpool;
    ngx_uint_t                  addr;           /* the one being tried */
    ngx_uint_t                  resolved;       /* by the resolver */
    ngx_peer_connection_t       peer;           /* a fetch under way */
    ngx_pool_t                 *pool;
    ngx_buf_t                  *buf;
    size_t                      sent;
    u_char                     *body;           /* NULL: in the header */
    off_t                       length;         /* -1: up to the close */
    ngx_uint_t                  state;
    ngx_event_t                 deadline;
} ngx_http_omni_jwks_t;


/* what an identity field is made of */
typedef enum {
    NGX_HTTP_OMNI_CLAIM_PATH = 0,      /* a claim by dotted path */
    NGX_HTTP_OMNI_CLAIM_USERNAME,      /* preferred_username, else username */
    NGX_HTTP_OMNI_CLAIM_ROLE,          /* the first of the roles */
    NGX_HTTP_OMNI_CLAIM_ROLES          /* every role, comma-joined */
} ngx_http_omni_claim_kind_e;


typedef struct {
    ngx_http_omni_claim_kind_e  kind;
    ngx_str_t                   path;       /* NUL-terminated */
    ngx_str_t                   header;     /* "" for variables only */
    ngx_str_t                   lowcase;    /* header, lower case */
    ngx_uint_t                  hash;       /* of lowcase */
} ngx_http_omni_claim_t;


/* identity fields every verified request has, in ctx->values order */
#define NGX_HTTP_OMNI_F_USER_ID   0
#define NGX_HTTP_OMNI_F_USERNAME  1
#define NGX_HTTP_OMNI_F_ROLE      2
#define NGX_HTTP_OMNI_F_ROLES     3
#define NGX_HTTP_OMNI_F_JTI       4
#define NGX_HTTP_OMNI_NFIELDS     5


typedef struct {
    ngx_uint_t                  status_locations;
    ngx_uint_t                  jwt_locations;
    ngx_uint_t                  keys_loaded;
    ngx_uint_t                  key_parses;     /* at configuration time */
    ngx_array_t                 jwks;           /* ngx_http_omni_jwks_t * */

    ngx_shm_zone_t             *cache_zone;
    time_t                      cache_ttl;
    ngx_shm_zone_t             *metrics_zone;

    ngx_array_t                 claim_vars;     /* $omni_jwt_claim_X: "X" */
    ngx_array_t                 claim_headers;  /* every omni_claim's */

    ngx_uint_t                  redis_configured;
    ngx_str_t                   redis_addr;     /* as configured */
    ngx_str_t                   redis_host;     /* numeric, NUL-terminated */
    in_port_t                   redis_port;
    ngx_str_t                   redis_path;     /* unix socket */
    ngx_str_t                   redis_password;
    ngx_array_t                *redis_sentinels; /* ngx_http_omni_addr_t */
    ngx_str_t                   redis_master;   /* NUL-terminated */
    ngx_uint_t                  redis_db;
    ngx_msec_t                  redis_timeout;
    ngx_array_t                 zones;          /* ngx_http_omni_zone_t */
    ngx_shm_zone_t             *local_zone;     /* omni_redis_fail local */

    /* new for every configuration load: a location's configuration may
     * be at the same address as one of the last, and the cache must not
     * match entries that one wrote */
    u_char                      cache_salt[16];
} ngx_http_omni_main_conf_t;


typedef struct {
    ngx_flag_t                  status;
    ngx_flag_t                  metrics;
    ngx_uint_t                  auth;           /* NGX_HTTP_OMNI_AUTH_* */
    ngx_uint_t                  headers;
    ngx_uint_t                  remove_authorization;
    time_t                      leeway;

    ngx_array_t                *keys;           /* omni_jwt_key_t */
    ngx_http_omni_jwks_t       *jwks;
    ngx_array_t                *issuers;        /* char * */
    ngx_array_t                *audiences;      /* char * */
    ngx_array_t                *token_sources;  /* complex values */
    ngx_array_t                *claims;         /* ngx_http_omni_claim_t */
    ngx_str_t                   roles_claim;    /* "" = "role", then "roles" */
    ngx_array_t                *require_roles;  /* ngx_str_t; NULL: off */
    ngx_array_t                *limits;         /* ngx_http_omni_limit_t */
    ngx_uint_t                  redis_fail;
    ngx_uint_t                  redis_nodes;
    ngx_str_t                   apikey_header;

    /* merged: every field a verified request carries, built-ins first */
    ngx_array_t                *fields;         /* ngx_http_omni_claim_t */
} ngx_http_omni_loc_conf_t;


/*
 * Where a main request is, in the preaccess phase and after it:
 *
 *   START --local decision--> DONE
 *   START --round trip--> REDIS --reply, failure or timer--> REPLIED --> DONE
 *
 * An internal redirect runs the phase again in DONE.
 */
typedef enum {
    NGX_HTTP_OMNI_STATE_START = 0,
    NGX_HTTP_OMNI_STATE_REDIS,
    NGX_HTTP_OMNI_STATE_REPLIED,
    NGX_HTTP_OMNI_STATE_DONE
} ngx_http_omni_state_e;


typedef struct {
    ngx_http_omni_state_e       state;
    ngx_uint_t                  decision;       /* ngx_http_omni_decision_e */
    ngx_uint_t                  authenticated;
    ngx_str_t                  *values;         /* per lcf->fields */
    ngx_uint_t                  nvalues;
    ngx_array_t                *fields;         /* lcf->fields at decision */

    /* the Redis round trip */
    ngx_str_t                   apikey;         /* SHA-256 of the key */
    ngx_str_t                   key_fields[4];  /* key_id user username role */
    char                      **argv;
    size_t                     *argvlen;
    ngx_uint_t                  argc;
    ngx_uint_t                  nlimits;
    void                       *pending;
    ngx_event_t                 timer;
    unsigned                    via_apikey:1;
    unsigned                    jti_unknown:1;  /* Redis erred on its check */
    ngx_uint_t                  failed;         /* NGX_HTTP_OMNI_REDIS_* */
    int64_t                     verdict;
    int64_t                     remaining;
    int64_t                     retry_after;    /* ms */
    int64_t                     reset;          /* ms */
    int64_t                     tightest;       /* 1-based limit, 0: none */
} ngx_http_omni_ctx_t;


/* ngx_http_omni_module.c */
extern ngx_module_t  ngx_http_omni_module;

/* ngx_http_omni_status.c */
char *ngx_http_omni_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_omni_status_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_omni_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *body);
ngx_int_t ngx_http_omni_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body);

/* ngx_http_omni_keys.c */
char *ngx_http_omni_jwt_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_omni_jwt_jwks(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_omni_keys_init_process(ngx_cycle_t *cycle);
void ngx_http_omni_jwks_swap(ngx_http_omni_jwks_t *jwks,
    omni_jwt_key_t *keys, size_t nkeys, uint64_t version);

/* ngx_http_omni_jwks_fetch.c: a URL source */
char *ngx_http_omni_jwks_url(ngx_conf_t *cf, ngx_http_omni_jwks_t *jwks,
    ngx_str_t *ca);
void ngx_http_omni_jwks_fetch_tick(ngx_http_omni_jwks_t *jwks,
    ngx_log_t *log);
void ngx_http_omni_jwks_fetch_soon(ngx_http_omni_jwks_t *jwks);
omni_jwt_status_t ngx_http_omni_keys_verify(ngx_http_omni_loc_conf_t *olcf,
    omni_jwt_t *jwt, const char **why);
uint64_t ngx_http_omni_keys_version(ngx_http_omni_loc_conf_t *olcf);

/* ngx_http_omni_access.c */
ngx_int_t ngx_http_omni_access_handler(ngx_http_request_t *r);
ngx_http_omni_ctx_t *ngx_http_omni_get_ctx(ngx_http_request_t *r);

/* ngx_http_omni_jwt.c */
ngx_int_t ngx_http_omni_jwt_find_token(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_str_t *token);
ngx_int_t ngx_http_omni_jwt_verify(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx,
    ngx_str_t *token, const char **why);

/* ngx_http_omni_rbac.c */
char *ngx_http_omni_require_role(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_uint_t ngx_http_omni_rbac_allows(ngx_http_omni_loc_conf_t *olcf,
    ngx_str_t *roles);

/* ngx_http_omni_reject.c */
ngx_int_t ngx_http_omni_reject(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_uint_t decision, const char *why);

/* ngx_http_omni_limit_conf.c */
char *ngx_http_omni_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_omni_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_omni_limit_merge(ngx_conf_t *cf,
    ngx_http_omni_loc_conf_t *conf);

/* ngx_http_omni_limit.c */
void ngx_http_omni_limit_init_script(void);
const char *ngx_http_omni_limit_script(size_t *len);
const char *ngx_http_omni_limit_library(size_t *len);
void ngx_http_omni_limit_use_function(ngx_uint_t on);
ngx_uint_t ngx_http_omni_limit_needed(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx);
ngx_int_t ngx_http_omni_limit_start(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx);
void ngx_http_omni_limit_abandon(ngx_http_omni_ctx_t *ctx);

/* ngx_http_omni_limit_verdict.c */
ngx_int_t ngx_http_omni_limit_finish(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx);

/* ngx_http_omni_headers.c */
ngx_int_t ngx_http_omni_headers_strip(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf);
ngx_int_t ngx_http_omni_headers_inject(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx);
ngx_int_t ngx_http_omni_headers_remove_authorization(ngx_http_request_t *r);

/* ngx_http_omni_shm.c */
int64_t ngx_http_omni_shm_now(void);
ngx_int_t ngx_http_omni_shm_init_zone(ngx_shm_zone_t *shm_zone, void *data);
ngx_http_omni_shm_entry_t *ngx_http_omni_shm_get(ngx_http_omni_shm_t *shm,
    u_char *key, size_t len, int64_t now);
ngx_http_omni_shm_entry_t *ngx_http_omni_shm_add(ngx_http_omni_shm_t *shm,
    u_char *key, size_t len, size_t value_len, int64_t expires, int64_t now);

/* ngx_http_omni_cache.c */
char *ngx_http_omni_jwt_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_omni_cache_get(ngx_http_request_t *r, void *olcf,
    ngx_str_t *token, ngx_http_omni_ctx_t *ctx, u_char *key);
void ngx_http_omni_cache_put(ngx_http_request_t *r, void *olcf,
    ngx_str_t *token, u_char *key, time_t expires, ngx_http_omni_ctx_t *ctx);

/* ngx_http_omni_metrics.c */
ngx_int_t ngx_http_omni_metrics_init_conf(ngx_conf_t *cf);
char *ngx_http_omni_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_omni_metrics_decision(ngx_uint_t decision);
void ngx_http_omni_metrics_cache(ngx_uint_t hit);
void ngx_http_omni_metrics_snapshot(ngx_atomic_uint_t *decisions,
    ngx_atomic_uint_t *hits, ngx_atomic_uint_t *misses);
void ngx_http_omni_metrics_redis(ngx_uint_t failure);
void ngx_http_omni_metrics_redis_latency(ngx_msec_t ms);
void ngx_http_omni_metrics_fail(ngx_uint_t mode);
void ngx_http_omni_metrics_jwks(ngx_uint_t failed);
void ngx_http_omni_metrics_jwks_fetch(ngx_uint_t failed);
extern ngx_str_t  ngx_http_omni_decision_names[];

/* ngx_http_omni_local.c */
ngx_int_t ngx_http_omni_local_init_conf(ngx_conf_t *cf);
ngx_int_t ngx_http_omni_local_check(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx);

/* ngx_http_omni_redis.c */
char *ngx_http_omni_redis_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_omni_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_omni_redis_exit_process(ngx_cycle_t *cycle);
ngx_uint_t ngx_http_omni_redis_connected(void);
ngx_int_t ngx_http_omni_redis_command(void (*cb)(struct redisAsyncContext *,
    void *, void *), void *privdata, ngx_uint_t argc, char **argv,
    size_t *argvlen);
ngx_int_t ngx_http_omni_redis_formatted(void (*cb)(struct redisAsyncContext *,
    void *, void *), void *privdata, u_char *cmd, size_t len);
void ngx_http_omni_redis_teardown(void);
void ngx_http_omni_redis_load_library(void);
void ngx_http_omni_redis_error(u_char *text, size_t len);

/* ngx_http_omni_variables.c */
ngx_int_t ngx_http_omni_add_variables(ngx_conf_t *cf);


#endif /* _NGX_HTTP_OMNI_MODULE_H_INCLUDED_ */
