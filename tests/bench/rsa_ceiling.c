/*
 * rsa_ceiling.c: the RS256 ceiling, measured. A bench-only nginx module
 * that does the one piece of work an uncached RS256 token cannot avoid and
 * nothing else: split the bearer token at its last dot, base64url-decode
 * the signature, SHA-256 the signing input and verify one RSA-2048
 * PKCS#1 v1.5 signature with a context prepared at start-up.
 *
 *     location /rsa {
 *         bench_rsa_verify /path/to/public.pem;   # 401 unless it verifies
 *         proxy_pass http://trivial;
 *     }
 *
 * SPEC 9 defines the ceiling as the baseline's own cost per request plus
 * the unavoidable work. `openssl speed` gives the work's cost in a tight
 * loop; this module measures what that work costs inside nginx on the
 * shared core, with what it does to the scheduling of the processes
 * beside it (gateway.py's "measured ceiling" rows). No claims, no JSON,
 * no headers: it is not a JWT verifier and never runs in the product.
 *
 * Built by `make build/ngx_http_bench_rsa_module.so` against the nginx
 * sources ngx_omni_module/build.sh configured; it carries its own module
 * list, as nginx's configure would generate for a dynamic module.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>


typedef struct {
    EVP_PKEY_CTX  *verify;      /* RSA, PKCS#1 v1.5, SHA-256: prepared */
} ngx_http_bench_rsa_loc_conf_t;


static ngx_int_t ngx_http_bench_rsa_handler(ngx_http_request_t *r);
static void *ngx_http_bench_rsa_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_bench_rsa_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_bench_rsa_verify(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void ngx_http_bench_rsa_cleanup(void *data);
static ngx_int_t ngx_http_bench_rsa_init(ngx_conf_t *cf);


static ngx_command_t  ngx_http_bench_rsa_commands[] = {

    { ngx_string("bench_rsa_verify"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_bench_rsa_verify,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_bench_rsa_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_bench_rsa_init,               /* postconfiguration */
    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */
    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */
    ngx_http_bench_rsa_create_loc_conf,    /* create location configuration */
    ngx_http_bench_rsa_merge_loc_conf      /* merge location configuration */
};


ngx_module_t  ngx_http_bench_rsa_module = {
    NGX_MODULE_V1,
    &ngx_http_bench_rsa_module_ctx,        /* module context */
    ngx_http_bench_rsa_commands,           /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* what configure writes to objs/<module>_modules.c for a dynamic module */

ngx_module_t *ngx_modules[] = {
    &ngx_http_bench_rsa_module,
    NULL
};

char *ngx_module_names[] = {
    "ngx_http_bench_rsa_module",
    NULL
};

char *ngx_module_order[] = {
    NULL
};


static ngx_int_t
ngx_http_bench_rsa_handler(ngx_http_request_t *r)
{
    u_char                         *tok, *dot, *p;
    size_t                          len;
    ngx_str_t                       sig64, sig;
    ngx_table_elt_t                *h;
    ngx_http_bench_rsa_loc_conf_t  *lcf;
    u_char                          dgst[SHA256_DIGEST_LENGTH];
    u_char                          raw[512];

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_bench_rsa_module);

    if (lcf->verify == NULL) {
        return NGX_DECLINED;
    }

    h = r->headers_in.authorization;

    if (h == NULL || h->value.len <= 7
        || ngx_strncasecmp(h->value.data, (u_char *) "Bearer ", 7) != 0)
    {
        return NGX_HTTP_UNAUTHORIZED;
    }

    tok = h->value.data + 7;
    len = h->value.len - 7;

    dot = NULL;
    for (p = tok + len; p > tok; p--) {
        if (p[-1] == '.') {
            dot = p - 1;
            break;
        }
    }

    if (dot == NULL) {
        return NGX_HTTP_UNAUTHORIZED;
    }

    sig64.data = dot + 1;
    sig64.len = tok + len - sig64.data;

    if (ngx_base64_decoded_length(sig64.len) > sizeof(raw)) {
        return NGX_HTTP_UNAUTHORIZED;
    }

    sig.data = raw;

    if (ngx_decode_base64url(&sig, &sig64) != NGX_OK) {
        return NGX_HTTP_UNAUTHORIZED;
    }

    SHA256(tok, dot - tok, dgst);

    if (EVP_PKEY_verify(lcf->verify, sig.data, sig.len, dgst, sizeof(dgst))
        != 1)
    {
        return NGX_HTTP_UNAUTHORIZED;
    }

    return NGX_DECLINED;
}


static void *
ngx_http_bench_rsa_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_bench_rsa_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_bench_rsa_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    lcf->verify = NGX_CONF_UNSET_PTR;

    return lcf;
}


static char *
ngx_http_bench_rsa_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_bench_rsa_loc_conf_t  *prev = parent;
    ngx_http_bench_rsa_loc_conf_t  *conf = child;

    ngx_conf_merge_ptr_value(conf->verify, prev->verify, NULL);

    return NGX_CONF_OK;
}


static char *
ngx_http_bench_rsa_verify(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_bench_rsa_loc_conf_t  *lcf = conf;

    FILE                *f;
    EVP_PKEY            *pkey;
    EVP_PKEY_CTX        *ctx;
    ngx_str_t           *value;
    ngx_pool_cleanup_t  *cln;

    if (lcf->verify != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    f = fopen((char *) value[1].data, "r");
    if (f == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot open \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);

    if (pkey == NULL || !EVP_PKEY_is_a(pkey, "RSA")) {
        EVP_PKEY_free(pkey);
        return "needs an RSA public key in PEM";
    }

    ctx = EVP_PKEY_CTX_new(pkey, NULL);
    EVP_PKEY_free(pkey);

    if (ctx == NULL
        || EVP_PKEY_verify_init(ctx) != 1
        || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1
        || EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1)
    {
        EVP_PKEY_CTX_free(ctx);
        return "could not prepare the verification";
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        EVP_PKEY_CTX_free(ctx);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_bench_rsa_cleanup;
    cln->data = ctx;
    lcf->verify = ctx;

    return NGX_CONF_OK;
}


static void
ngx_http_bench_rsa_cleanup(void *data)
{
    EVP_PKEY_CTX_free(data);
}


static ngx_int_t
ngx_http_bench_rsa_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_bench_rsa_handler;

    return NGX_OK;
}
