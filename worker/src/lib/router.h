/* router.h: method + path pattern routing with {param} segments. */
#ifndef OMNI_ROUTER_H
#define OMNI_ROUTER_H

#include <stddef.h>

typedef struct omni_req omni_req_t;
typedef void (*omni_handler_pt)(omni_req_t *r);

#define OMNI_ROUTE_JSON_BODY 0x1 /* parse the body as JSON first */
#define OMNI_ROUTE_JSON_OBJECT                                                 \
    0x3 /* ... and it must be an object (else                                  \
           400 invalid_json) */
#define OMNI_ROUTE_IDENTITY                                                    \
    0x4 /* acts for the caller the gateway                                     \
           identified: a request not from the                                  \
           gateway gets 401 missing_credentials */

typedef struct {
    const char *method;  /* "GET", "PUT", ...; GET also serves HEAD */
    const char *pattern; /* "/api/v1/config/{key}" */
    omni_handler_pt handler;
    unsigned flags;
} omni_route_t;

#define OMNI_ROUTE_MAX_PARAMS 4

typedef struct {
    const char *name; /* points into the pattern, not terminated */
    size_t name_len;
    const char *value; /* points into the path, still %-encoded */
    size_t value_len;
} omni_route_param_t;

typedef enum {
    OMNI_ROUTE_FOUND,
    OMNI_ROUTE_NOT_FOUND,
    OMNI_ROUTE_BAD_METHOD /* path known; `allow` lists its methods */
} omni_route_result_t;

typedef struct {
    int index; /* into the route table when FOUND */
    int nparams;
    omni_route_param_t params[OMNI_ROUTE_MAX_PARAMS];
    char allow[64];
} omni_route_match_t;

/* Matches method and path (no query string) against routes[0..n). Patterns
 * match whole segments; "{x}" matches one non-empty segment. The first route
 * whose pattern and method match wins. Pure; never fails. */
omni_route_result_t omni_router_match(const omni_route_t *routes, size_t n,
    const char *method, const char *path, size_t path_len,
    omni_route_match_t *m);

/* Percent-decodes src[0..len) into dst (at least len + 1 bytes).
 * Returns the decoded length, or -1 on a bad escape or an encoded NUL or
 * slash (never a valid path parameter). */
int omni_url_decode(char *dst, const char *src, size_t len);

/* NULL when a request target is a plain absolute path, else what is wrong
 * with it (for a 400): a '.' or '..' segment, '//', a percent-encoded '/',
 * '.' or '\', or a '\'. The query string is not looked at. Pure. */
const char *omni_router_path_problem(const char *target);

#endif
