/* router.c: matches a request's method and path to a route. */
#include <string.h>

#include "lib/router.h"


static int omni_router_listed(
    const char *allow, const char *method, size_t len);
static int omni_router_match_path(const char *pattern, const char *path,
    size_t path_len, omni_route_match_t *m);


omni_route_result_t omni_router_match(const omni_route_t *routes, size_t n,
    const char *method, const char *path, size_t path_len,
    omni_route_match_t *m)
{
    size_t i, alen;
    int path_known = 0;

    m->allow[0] = '\0';
    alen = 0;

    for (i = 0; i < n; i++) {
        if (!omni_router_match_path(routes[i].pattern, path, path_len, m)) {
            continue;
        }

        if (strcmp(routes[i].method, method) == 0
            || (strcmp(method, "HEAD") == 0
                && strcmp(routes[i].method, "GET") == 0)) {
            m->index = (int)i;
            return OMNI_ROUTE_FOUND;
        }

        /* remember the methods this path accepts, for Allow on 405 */
        size_t mlen = strlen(routes[i].method);
        if (alen + mlen + 3 < sizeof(m->allow)
            && !omni_router_listed(m->allow, routes[i].method, mlen)) {
            if (alen) {
                memcpy(m->allow + alen, ", ", 2);
                alen += 2;
            }
            memcpy(m->allow + alen, routes[i].method, mlen);
            alen += mlen;
            m->allow[alen] = '\0';
        }
        path_known = 1;
    }

    m->nparams = 0;
    return path_known ? OMNI_ROUTE_BAD_METHOD : OMNI_ROUTE_NOT_FOUND;
}


/* whether method is already in the ", "-separated allow list */
static int omni_router_listed(const char *allow, const char *method, size_t len)
{
    const char *p = allow;

    while ((p = strstr(p, method)) != NULL) {
        if ((p == allow || p[-1] == ' ') && (p[len] == ',' || p[len] == '\0')) {
            return 1;
        }
        p += len;
    }
    return 0;
}


static int omni_router_match_path(const char *pattern, const char *path,
    size_t path_len, omni_route_match_t *m)
{
    const char *p = pattern, *s = path, *end = path + path_len;

    m->nparams = 0;

    while (*p && s < end) {
        if (*p == '{') {
            const char *name = p + 1, *close = strchr(p, '}');
            const char *seg = s;

            if (close == NULL || m->nparams == OMNI_ROUTE_MAX_PARAMS) {
                return 0;
            }
            while (s < end && *s != '/') {
                s++;
            }
            if (s == seg) {
                return 0;
            }
            m->params[m->nparams].name = name;
            m->params[m->nparams].name_len = (size_t)(close - name);
            m->params[m->nparams].value = seg;
            m->params[m->nparams].value_len = (size_t)(s - seg);
            m->nparams++;
            p = close + 1;
            continue;
        }

        if (*p != *s) {
            return 0;
        }
        p++;
        s++;
    }

    return *p == '\0' && s == end;
}


static int omni_hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}


int omni_url_decode(char *dst, const char *src, size_t len)
{
    size_t i;
    int n = 0, hi, lo;

    for (i = 0; i < len; i++) {
        if (src[i] != '%') {
            dst[n++] = src[i];
            continue;
        }
        if (i + 2 >= len) {
            return -1;
        }
        hi = omni_hex(src[i + 1]);
        lo = omni_hex(src[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0) || (hi == 2 && lo == 15)) {
            return -1;
        }
        dst[n++] = (char)(hi << 4 | lo);
        i += 2;
    }

    dst[n] = '\0';
    return n;
}


const char *omni_router_path_problem(const char *target)
{
    const char *p;
    int hi, lo;

    if (target == NULL || target[0] != '/') {
        return "the path must start with '/'";
    }
    for (p = target; *p != '\0' && *p != '?'; p++) {
        switch (*p) {

        case '/':
            if (p[1] == '/') {
                return "the path has an empty segment ('//')";
            }
            if (p[1] == '.') {
                size_t dots = p[2] == '.' ? 2 : 1;

                if (strchr("/?#", p[1 + dots]) != NULL) {
                    return "the path has a '.' or '..' segment";
                }
            }
            break;

        case '%':
            hi = omni_hex(p[1]);
            lo = hi < 0 ? -1 : omni_hex(p[2]);
            if ((hi == 2 && (lo == 0xe || lo == 0xf))
                || (hi == 5 && lo == 0xc)) {
                return "the path has a percent-encoded '/', '.' or '\\'";
            }
            break;

        case '\\':
            return "the path has a '\\'";

        default:
            break;
        }
    }
    return NULL;
}
