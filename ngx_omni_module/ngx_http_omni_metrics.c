
/*
 * Omni gateway module: decision and cache counters in shared memory, shared
 * by all nginx workers, and the "omni_metrics" Prometheus handler.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"


/* Redis round-trip latency buckets, milliseconds (+Inf last) */
static ngx_msec_t  ngx_http_omni_latency_le[] = { 1, 2, 5, 10, 25, 50, 100,
                                                  250, 1000 };

#define NGX_HTTP_OMNI_LATENCY_BUCKETS                                         \
    (sizeof(ngx_http_omni_latency_le) / sizeof(ngx_msec_t) + 1)


typedef struct {
    ngx_atomic_t                decisions[NGX_HTTP_OMNI_NDECISIONS];
    ngx_atomic_t                cache_hits;
    ngx_atomic_t                cache_misses;
    ngx_atomic_t                redis_failures[4];  /* NGX_HTTP_OMNI_REDIS_* */
    ngx_atomic_t                fail_mode[3];       /* NGX_HTTP_OMNI_FAIL_* */
    ngx_atomic_t                latency[NGX_HTTP_OMNI_LATENCY_BUCKETS];
    ngx_atomic_t                latency_sum_ms;
    ngx_atomic_t                jwks_reads[2];      /* changed, refused */
    ngx_atomic_t                jwks_fetches[2];    /* stored, failed */
} ngx_http_omni_counters_t;


static ngx_int_t ngx_http_omni_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_omni_metrics_handler(ngx_http_request_t *r);


/* outcome_reason, as $omni_decision and in the metrics' labels */
ngx_str_t  ngx_http_omni_decision_names[] = {
    ngx_string("allow_verified"),
    ngx_string("allow_anonymous"),
    ngx_string("deny_missing"),
    ngx_string("deny_malformed"),
    ngx_string("deny_bad_signature"),
    ngx_string("deny_expired"),
    ngx_string("deny_not_yet_valid"),
    ngx_string("deny_wrong_issuer"),
    ngx_string("deny_wrong_audience"),
    ngx_string("deny_insufficient_role"),
    ngx_string("deny_revoked"),
    ngx_string("deny_bad_apikey"),
    ngx_string("deny_rate_limited"),
    ngx_string("deny_limiter_unavailable")
};


static ngx_http_omni_counters_t  *ngx_http_omni_counters;

static ngx_str_t  ngx_http_omni_prometheus_type =
    ngx_string("text/plain; version=0.0.4; charset=utf-8");


ngx_int_t
ngx_http_omni_metrics_init_conf(ngx_conf_t *cf)
{
    ngx_str_t                   name = ngx_string("omni_metrics");
    ngx_shm_zone_t             *zone;
    ngx_http_omni_main_conf_t  *omcf;

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_omni_module);

    zone = ngx_shared_memory_add(cf, &name, 8 * ngx_pagesize,
                                 &ngx_http_omni_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_omni_metrics_init_zone;
    zone->data = omcf;
    omcf->metrics_zone = zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_omni_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    /* counters survive a reload: the zone is reused as it is */
    if (shpool->data == NULL) {
        shpool->data = ngx_slab_calloc(shpool,
                                       sizeof(ngx_http_omni_counters_t));
        if (shpool->data == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_http_omni_counters = shpool->data;

    return NGX_OK;
}


void
ngx_http_omni_metrics_decision(ngx_uint_t decision)
{
    (void) ngx_atomic_fetch_add(&ngx_http_omni_counters->decisions[decision],
                                1);
}


void
ngx_http_omni_metrics_jwks(ngx_uint_t failed)
{
    (void) ngx_atomic_fetch_add(&ngx_http_omni_counters->jwks_reads[failed],
                                1);
}


void
ngx_http_omni_metrics_jwks_fetch(ngx_uint_t failed)
{
    ngx_atomic_t  *n;

    n = &ngx_http_omni_counters->jwks_fetches[failed];

    (void) ngx_atomic_fetch_add(n, 1);
}


void
ngx_http_omni_metrics_cache(ngx_uint_t hit)
{
    (void) ngx_atomic_fetch_add(hit ? &ngx_http_omni_counters->cache_hits
                                    : &ngx_http_omni_counters->cache_misses,
                                1);
}


void
ngx_http_omni_metrics_redis(ngx_uint_t failure)
{
    (void) ngx_atomic_fetch_add(
        &ngx_http_omni_counters->redis_failures[failure & 3], 1);
}


void
ngx_http_omni_metrics_fail(ngx_uint_t mode)
{
    (void) ngx_atomic_fetch_add(&ngx_http_omni_counters->fail_mode[mode % 3],
                                1);
}


void
ngx_http_omni_metrics_redis_latency(ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_OMNI_LATENCY_BUCKETS - 1; i++) {
        if (ms <= ngx_http_omni_latency_le[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&ngx_http_omni_counters->latency[i], 1);
    (void) ngx_atomic_fetch_add(&ngx_http_omni_counters->latency_sum_ms, ms);
}


void
ngx_http_omni_metrics_snapshot(ngx_atomic_uint_t *decisions,
    ngx_atomic_uint_t *hits, ngx_atomic_uint_t *misses)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_OMNI_NDECISIONS; i++) {
        decisions[i] = ngx_http_omni_counters->decisions[i];
    }

    *hits = ngx_http_omni_counters->cache_hits;
    *misses = ngx_http_omni_counters->cache_misses;
}


char *
ngx_http_omni_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (olcf->metrics != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    olcf->metrics = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_omni_metrics_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_omni_metrics_handler(ngx_http_request_t *r)
{
    u_char                     *p, *dash;
    size_t                      len;
    ngx_int_t                   rc;
    ngx_str_t                   body, *name;
    ngx_uint_t                  i;
    ngx_atomic_uint_t           decisions[NGX_HTTP_OMNI_NDECISIONS];
    ngx_atomic_uint_t           hits, misses, cum;
    ngx_http_omni_counters_t   *c;
    ngx_http_omni_main_conf_t  *omcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    ngx_http_omni_metrics_snapshot(decisions, &hits, &misses);

    len = 4608 + NGX_HTTP_OMNI_NDECISIONS * (96 + NGX_ATOMIC_T_LEN);

    body.data = ngx_pnalloc(r->pool, len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body.data,
            "# HELP omni_gateway_decisions_total Authentication and "
            "authorization decisions by outcome and reason.\n"
            "# TYPE omni_gateway_decisions_total counter\n");

    name = ngx_http_omni_decision_names;

    for (i = 0; i < NGX_HTTP_OMNI_NDECISIONS; i++) {
        dash = ngx_strlchr(name[i].data, name[i].data + name[i].len, '_');

        p = ngx_sprintf(p, "omni_gateway_decisions_total{outcome=\"%*s\","
                        "reason=\"%*s\"} %uA\n",
                        (size_t) (dash - name[i].data), name[i].data,
                        (size_t) (name[i].data + name[i].len - dash - 1),
                        dash + 1, decisions[i]);
    }

    p = ngx_sprintf(p,
            "# HELP omni_gateway_jwt_cache_total Verified-token cache "
            "lookups.\n"
            "# TYPE omni_gateway_jwt_cache_total counter\n"
            "omni_gateway_jwt_cache_total{result=\"hit\"} %uA\n"
            "omni_gateway_jwt_cache_total{result=\"miss\"} %uA\n"
            "# HELP omni_gateway_keys_loaded Verification keys in the "
            "configuration.\n"
            "# TYPE omni_gateway_keys_loaded gauge\n"
            "omni_gateway_keys_loaded %ui\n"
            "# HELP omni_gateway_key_parses_total Key files parsed at "
            "configuration loads, never per request.\n"
            "# TYPE omni_gateway_key_parses_total counter\n"
            "omni_gateway_key_parses_total %ui\n",
            hits, misses, omcf->keys_loaded, omcf->key_parses);

    c = ngx_http_omni_counters;

    p = ngx_sprintf(p,
            "# HELP omni_gateway_redis_failures_total Requests Redis did not "
            "answer: down, timeout, error.\n"
            "# TYPE omni_gateway_redis_failures_total counter\n"
            "omni_gateway_redis_failures_total{reason=\"down\"} %uA\n"
            "omni_gateway_redis_failures_total{reason=\"timeout\"} %uA\n"
            "omni_gateway_redis_failures_total{reason=\"error\"} %uA\n"
            "# HELP omni_gateway_fail_mode_total Decisions taken by "
            "omni_redis_fail.\n"
            "# TYPE omni_gateway_fail_mode_total counter\n"
            "omni_gateway_fail_mode_total{mode=\"open\"} %uA\n"
            "omni_gateway_fail_mode_total{mode=\"closed\"} %uA\n"
            "omni_gateway_fail_mode_total{mode=\"local\"} %uA\n"
            "# HELP omni_gateway_redis_seconds Redis round-trip latency.\n"
            "# TYPE omni_gateway_redis_seconds histogram\n",
            c->redis_failures[NGX_HTTP_OMNI_REDIS_DOWN],
            c->redis_failures[NGX_HTTP_OMNI_REDIS_TIMEOUT],
            c->redis_failures[NGX_HTTP_OMNI_REDIS_ERROR],
            c->fail_mode[NGX_HTTP_OMNI_FAIL_OPEN],
            c->fail_mode[NGX_HTTP_OMNI_FAIL_CLOSED],
            c->fail_mode[NGX_HTTP_OMNI_FAIL_LOCAL]);

    cum = 0;

    for (i = 0; i < NGX_HTTP_OMNI_LATENCY_BUCKETS; i++) {
        cum += c->latency[i];

        if (i < NGX_HTTP_OMNI_LATENCY_BUCKETS - 1) {
            p = ngx_sprintf(p, "omni_gateway_redis_seconds_bucket{le=\"%.3f\"}"
                            " %uA\n",
                            (double) ngx_http_omni_latency_le[i] / 1000, cum);
        } else {
            p = ngx_sprintf(p, "omni_gateway_redis_seconds_bucket{le=\"+Inf\"}"
                            " %uA\n", cum);
        }
    }

    p = ngx_sprintf(p, "omni_gateway_redis_seconds_sum %.3f\n"
                    "omni_gateway_redis_seconds_count %uA\n",
                    (double) c->latency_sum_ms / 1000, cum);

    p = ngx_sprintf(p,
            "# HELP omni_gateway_jwks_reloads_total JWKS files read again "
            "after a change, by result; a refused file keeps the keys "
            "read before.\n"
            "# TYPE omni_gateway_jwks_reloads_total counter\n"
            "omni_gateway_jwks_reloads_total{result=\"ok\"} %uA\n"
            "omni_gateway_jwks_reloads_total{result=\"failed\"} %uA\n",
            c->jwks_reads[0], c->jwks_reads[1]);

    p = ngx_sprintf(p,
            "# HELP omni_gateway_jwks_fetches_total JWKS URL fetches, by "
            "result; a failed one keeps the last good key set.\n"
            "# TYPE omni_gateway_jwks_fetches_total counter\n"
            "omni_gateway_jwks_fetches_total{result=\"ok\"} %uA\n"
            "omni_gateway_jwks_fetches_total{result=\"failed\"} %uA\n",
            c->jwks_fetches[0], c->jwks_fetches[1]);

    body.len = p - body.data;

    return ngx_http_omni_send(r, NGX_HTTP_OK, &ngx_http_omni_prometheus_type,
                              &body);
}
