/* registry_rules.c: the pure checks of an MCP server's registry fields
 * (registry.h). */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "services/mcp/registry.h"

#define OMNI_MCP_MAX_HEADERS 32
#define OMNI_MCP_MAX_HEADER_VALUE 8192
#define OMNI_MCP_MAX_URL 2048


static int omni_mcp_name_valid(const char *s, size_t n)
{
    size_t i;

    if (n < 1 || n > 32
        || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9'))) {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')
                || s[i] == '-')) {
            return 0;
        }
    }
    return 1;
}


static int omni_mcp_ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);

    return n > k && strncmp(s + n - k, suffix, k) == 0;
}


int omni_mcp_url_allowed(const char *url, const char **why)
{
    const char *host, *end, *p;
    size_t n;
    int https;

    *why = NULL;
    if (strlen(url) > OMNI_MCP_MAX_URL) {
        *why = "longer than 2048 bytes";
        return 0;
    }
    if (strncmp(url, "https://", 8) == 0) {
        https = 1;
        host = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        https = 0;
        host = url + 7;
    } else {
        *why = "expected an https:// (or http:// to loopback or a cluster "
               "name) URL";
        return 0;
    }
    for (p = url; *p; p++) {
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
            *why = "contains spaces or control characters";
            return 0;
        }
    }
    if (strchr(url, '#') != NULL) {
        *why = "must not have a fragment";
        return 0;
    }
    end = host + strcspn(host, "/?");
    if (memchr(host, '@', (size_t)(end - host)) != NULL) {
        *why = "must not carry credentials: put them in headers";
        return 0;
    }
    /* the host without the port: "[v6]" or name */
    if (*host == '[') {
        p = memchr(host, ']', (size_t)(end - host));
        if (p == NULL) {
            *why = "malformed IPv6 address";
            return 0;
        }
        p++;
    } else {
        p = memchr(host, ':', (size_t)(end - host));
        if (p == NULL) {
            p = end;
        }
    }
    n = (size_t)(p - host);
    if (n == 0) {
        *why = "has no host";
        return 0;
    }
    if (p < end && (*p != ':' || p + 1 == end)) {
        *why = "malformed port";
        return 0;
    }
    if (https) {
        return 1;
    }
    if ((n == 9 && strncmp(host, "localhost", 9) == 0)
        || (n == 5 && strncmp(host, "[::1]", 5) == 0)
        || strncmp(host, "127.", 4) == 0 || memchr(host, '.', n) == NULL
        || omni_mcp_ends_with(host, n, ".svc")
        || omni_mcp_ends_with(host, n, ".svc.cluster.local")) {
        return 1;
    }
    *why = "http:// is allowed only to loopback or an in-cluster name: use "
           "https://";
    return 0;
}


static int omni_mcp_role_known(const char *r)
{
    return strcmp(r, "admin") == 0 || strcmp(r, "developer") == 0
           || strcmp(r, "user") == 0 || strcmp(r, "viewer") == 0;
}


/* HTTP token characters (RFC 9110 tchar) */
static int omni_mcp_token(const char *s)
{
    if (*s == '\0') {
        return 0;
    }
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
                || (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s))) {
            return 0;
        }
    }
    return 1;
}


/* names the gateway sets itself */
static const char *const omni_mcp_reserved_headers[] = {"host",
    "content-length", "content-type", "transfer-encoding", "connection",
    "accept", "mcp-session-id", "mcp-protocol-version", "mcp-method",
    "mcp-name", "last-event-id", NULL};


static int omni_mcp_header_reserved(const char *name)
{
    int i;

    for (i = 0; omni_mcp_reserved_headers[i]; i++) {
        if (strcasecmp(name, omni_mcp_reserved_headers[i]) == 0) {
            return 1;
        }
    }
    return 0;
}


typedef struct {
    int *status;
    char *field, *msg;
    size_t fieldlen, msglen;
} omni_mcp_err_t;


static int omni_mcp_fail(omni_mcp_err_t *e, int status, const char *field,
    const char *fmt, const char *arg)
{
    *e->status = status;
    snprintf(e->field, e->fieldlen, "%s", field);
    snprintf(e->msg, e->msglen, fmt, field, arg ? arg : "");
    return -1;
}


/* a text[] literal of roles (known names only) from an array */
static int omni_mcp_roles(const omni_json_t *v, const char *field,
    omni_arena_t *arena, const char **out, omni_mcp_err_t *e)
{
    struct evbuffer *b;
    size_t i;
    const char *role;

    if (v->type != OMNI_JSON_ARRAY) {
        return omni_mcp_fail(
            e, 400, field, "%s: expected an array of roles%s", NULL);
    }
    if (v->u.arr.len > 4) {
        return omni_mcp_fail(e, 422, field, "%s: at most 4 roles%s", NULL);
    }
    for (i = 0; i < v->u.arr.len; i++) {
        role = omni_json_string(v->u.arr.items[i]);
        if (role == NULL) {
            return omni_mcp_fail(
                e, 400, field, "%s: expected an array of role names%s", NULL);
        }
        if (!omni_mcp_role_known(role)) {
            return omni_mcp_fail(e, 422, field,
                "%s: unknown role \"%.32s\" (admin, developer, user, viewer)",
                role);
        }
    }
    b = evbuffer_new();
    if (b == NULL) {
        return omni_mcp_fail(e, 503, field, "%s: out of memory%s", NULL);
    }
    evbuffer_add(b, "{", 1);
    for (i = 0; i < v->u.arr.len; i++) {
        evbuffer_add_printf(
            b, "%s%s", i ? "," : "", omni_json_string(v->u.arr.items[i]));
    }
    evbuffer_add(b, "}", 1);
    *out = omni_arena_strndup(
        arena, (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    evbuffer_free(b);
    return 0;
}


static const char *omni_mcp_json_text(omni_arena_t *arena, const omni_json_t *v)
{
    struct evbuffer *b = evbuffer_new();
    const char *s = NULL;

    if (b != NULL && omni_json_write(b, v) == 0) {
        s = omni_arena_strndup(arena, (const char *)evbuffer_pullup(b, -1),
            evbuffer_get_length(b));
    }
    if (b != NULL) {
        evbuffer_free(b);
    }
    return s;
}


int omni_mcp_secret_name_valid(const char *kind, const char *name)
{
    size_t i, n = strlen(name);

    if (strcmp(kind, "secret_env") == 0) {
        if (n <= 11 || n > 75 || strncmp(name, "MCP_SECRET_", 11) != 0) {
            return 0;
        }
        for (i = 11; i < n; i++) {
            if (!((name[i] >= 'A' && name[i] <= 'Z')
                    || (name[i] >= '0' && name[i] <= '9') || name[i] == '_')) {
                return 0;
            }
        }
        return 1;
    }
    if (strcmp(kind, "secret_file") != 0 || n < 1 || n > 128
        || name[0] == '.') {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!((name[i] >= 'a' && name[i] <= 'z')
                || (name[i] >= 'A' && name[i] <= 'Z')
                || (name[i] >= '0' && name[i] <= '9')
                || strchr("._-", name[i]))) {
            return 0;
        }
    }
    return 1;
}


/* {"secret_file": name} or {"secret_env": name}: the value is read when
 * the server is called, never stored */
static int omni_mcp_check_secret_ref(const char *header, const omni_json_t *v,
    omni_mcp_server_in_t *in, omni_mcp_err_t *e)
{
    const char *kind, *name;

    if (v->u.obj.len != 1) {
        return omni_mcp_fail(e, 400, "headers",
            "%s: the value of %.64s must be a string or one of "
            "{\"secret_file\": name}, {\"secret_env\": name}",
            header);
    }
    kind = v->u.obj.keys[0];
    name = omni_json_string(v->u.obj.values[0]);
    if ((strcmp(kind, "secret_file") != 0 && strcmp(kind, "secret_env") != 0)
        || name == NULL) {
        return omni_mcp_fail(e, 400, "headers",
            "%s: the value of %.64s must be a string or one of "
            "{\"secret_file\": name}, {\"secret_env\": name}",
            header);
    }
    if (!omni_mcp_secret_name_valid(kind, name)) {
        return omni_mcp_fail(e, 422, "headers",
            strcmp(kind, "secret_env") == 0
                ? "%s: the secret_env of %.64s must be MCP_SECRET_ followed "
                  "by 1-64 of A-Z, 0-9 and _"
                : "%s: the secret_file of %.64s must be a file name (1-128 "
                  "of A-Z, a-z, 0-9, ., _ and -, not starting with .)",
            header);
    }
    if (strcmp(kind, "secret_file") == 0) {
        in->secret_files = 1;
    }
    return 0;
}


static int omni_mcp_check_headers(const omni_json_t *v, omni_arena_t *arena,
    omni_mcp_server_in_t *in, omni_mcp_err_t *e)
{
    struct evbuffer *b;
    const char *val;
    size_t i;

    if (v->type != OMNI_JSON_OBJECT) {
        return omni_mcp_fail(e, 400, "headers",
            "%s: expected an object of header names and values%s", NULL);
    }
    if (v->u.obj.len > OMNI_MCP_MAX_HEADERS) {
        return omni_mcp_fail(
            e, 422, "headers", "%s: at most 32 headers%s", NULL);
    }
    for (i = 0; i < v->u.obj.len; i++) {
        if (!omni_mcp_token(v->u.obj.keys[i])) {
            return omni_mcp_fail(e, 422, "headers",
                "%s: \"%.64s\" is not a header name", v->u.obj.keys[i]);
        }
        if (omni_mcp_header_reserved(v->u.obj.keys[i])) {
            return omni_mcp_fail(e, 422, "headers",
                "%s: %.64s is set by the gateway", v->u.obj.keys[i]);
        }
        if (v->u.obj.values[i]->type == OMNI_JSON_OBJECT) {
            if (omni_mcp_check_secret_ref(
                    v->u.obj.keys[i], v->u.obj.values[i], in, e)
                != 0) {
                return -1;
            }
            continue;
        }
        val = omni_json_string(v->u.obj.values[i]);
        if (val == NULL) {
            return omni_mcp_fail(e, 400, "headers",
                "%s: the value of %.64s must be a string or a secret "
                "reference",
                v->u.obj.keys[i]);
        }
        if (v->u.obj.values[i]->u.str.len > OMNI_MCP_MAX_HEADER_VALUE
            || strpbrk(val, "\r\n") != NULL) {
            return omni_mcp_fail(e, 422, "headers",
                "%s: the value of %.64s has a line break or is over 8192 "
                "bytes",
                v->u.obj.keys[i]);
        }
    }
    b = evbuffer_new();
    if (b == NULL) {
        return omni_mcp_fail(e, 503, "headers", "%s: out of memory%s", NULL);
    }
    evbuffer_add(b, "{", 1);
    for (i = 0; i < v->u.obj.len; i++) {
        evbuffer_add_printf(b, "%s%s", i ? "," : "", v->u.obj.keys[i]);
    }
    evbuffer_add(b, "}", 1);
    in->header_names = omni_arena_strndup(
        arena, (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    evbuffer_free(b);
    in->headers = v->u.obj.len ? v : NULL;
    return 0;
}


static int omni_mcp_int_in(const omni_json_t *v, const char *field, int64_t lo,
    int64_t hi, omni_arena_t *arena, const char **out, omni_mcp_err_t *e)
{
    char buf[32], range[64];
    int64_t n;

    if (v->type != OMNI_JSON_NUMBER) {
        return omni_mcp_fail(e, 400, field, "%s: expected an integer%s", NULL);
    }
    if (!omni_json_int(v, &n) || n < lo || n > hi) {
        snprintf(
            range, sizeof(range), "%lld to %lld", (long long)lo, (long long)hi);
        return omni_mcp_fail(
            e, 422, field, "%s: expected an integer from %s", range);
    }
    snprintf(buf, sizeof(buf), "%lld", (long long)n);
    *out = omni_arena_strndup(arena, buf, strlen(buf));
    return 0;
}


static int omni_mcp_check_health(const omni_json_t *v, int partial,
    omni_arena_t *arena, const char **out, omni_mcp_err_t *e)
{
    static const struct {
        const char *name, *field;
        int64_t lo, hi, def;
    } members[] = {
        {"interval_ms", "health.interval_ms", 1000, 3600000, 10000},
        {"failure_threshold", "health.failure_threshold", 1, 100, 3},
        {"cooldown_ms", "health.cooldown_ms", 1000, 3600000, 30000},
    };
    const char *num[3];
    char buf[160];
    const omni_json_t *m;
    size_t i;
    int j, n = 0;

    if (v != NULL && v->type != OMNI_JSON_OBJECT) {
        return omni_mcp_fail(
            e, 400, "health", "%s: expected an object%s", NULL);
    }
    for (i = 0; v != NULL && i < v->u.obj.len; i++) {
        for (j = 0; j < 3; j++) {
            if (strcmp(v->u.obj.keys[i], members[j].name) == 0) {
                break;
            }
        }
        if (j == 3) {
            return omni_mcp_fail(e, 422, "health",
                "%s: unknown member \"%.32s\" (interval_ms, "
                "failure_threshold, cooldown_ms)",
                v->u.obj.keys[i]);
        }
    }
    for (j = 0; j < 3; j++) {
        m = omni_json_get(v, members[j].name);
        num[j] = NULL;
        if (m != NULL
            && omni_mcp_int_in(m, members[j].field, members[j].lo,
                   members[j].hi, arena, &num[j], e)
                   != 0) {
            return -1;
        }
    }
    buf[0] = '{';
    buf[1] = '\0';
    for (j = 0; j < 3; j++) {
        if (num[j] == NULL && partial) {
            continue;
        }
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s\"%s\":%s",
            n++ ? "," : "", members[j].name,
            num[j] ? num[j]
                   : (j == 0    ? "10000"
                       : j == 1 ? "3"
                                : "30000"));
    }
    strcat(buf, "}");
    *out = omni_arena_strndup(arena, buf, strlen(buf));
    return 0;
}


static int omni_mcp_check_tool_roles(const omni_json_t *v, omni_arena_t *arena,
    const char **out, omni_mcp_err_t *e)
{
    const char *ignored;
    size_t i;

    if (v->type != OMNI_JSON_OBJECT) {
        return omni_mcp_fail(e, 400, "tool_roles",
            "%s: expected an object of tool names and role arrays%s", NULL);
    }
    for (i = 0; i < v->u.obj.len; i++) {
        if (strlen(v->u.obj.keys[i]) == 0 || strlen(v->u.obj.keys[i]) > 128) {
            return omni_mcp_fail(e, 422, "tool_roles",
                "%s: tool names are 1 to 128 bytes%s", NULL);
        }
        if (omni_mcp_roles(v->u.obj.values[i], "tool_roles", arena, &ignored, e)
            != 0) {
            return -1;
        }
    }
    *out = omni_mcp_json_text(arena, v);
    return *out ? 0
                : omni_mcp_fail(
                    e, 503, "tool_roles", "%s: out of memory%s", NULL);
}


int omni_mcp_server_check(const omni_json_t *body, int partial,
    omni_arena_t *arena, omni_mcp_server_in_t *in, int *status, char *field,
    size_t fieldlen, char *msg, size_t msglen)
{
    static const char *const known[] = {"name", "url", "transport", "headers",
        "timeout_ms", "enabled", "roles", "tool_roles", "health", NULL};
    omni_mcp_err_t e = {status, field, msg, fieldlen, msglen};
    const omni_json_t *v;
    const char *why;
    struct evbuffer *fields;
    size_t i;
    int j, given = 0;

    memset(in, 0, sizeof(*in));
    for (i = 0; i < body->u.obj.len; i++) {
        for (j = 0; known[j]; j++) {
            if (strcmp(body->u.obj.keys[i], known[j]) == 0) {
                break;
            }
        }
        if (known[j] == NULL) {
            return omni_mcp_fail(
                &e, 422, body->u.obj.keys[i], "%s: unknown field%s", NULL);
        }
    }

    v = omni_json_get(body, "name");
    if (v == NULL && !partial) {
        return omni_mcp_fail(&e, 400, "name", "%s: required%s", NULL);
    }
    if (v != NULL) {
        if (v->type != OMNI_JSON_STRING) {
            return omni_mcp_fail(
                &e, 400, "name", "%s: expected a string%s", NULL);
        }
        if (!omni_mcp_name_valid(v->u.str.ptr, v->u.str.len)) {
            return omni_mcp_fail(&e, 422, "name",
                "%s: expected 1-32 characters of a-z, 0-9 and -, starting "
                "with a letter or digit%s",
                NULL);
        }
        if (strcmp(v->u.str.ptr, OMNI_MCP_BUILTIN) == 0) {
            /* /mcp's built-in server (omni__<tool>, /mcp/omni) */
            return omni_mcp_fail(&e, 422, "name",
                "%s: \"omni\" is reserved for the built-in server%s", NULL);
        }
        in->name = v->u.str.ptr;
    }

    v = omni_json_get(body, "url");
    if (v == NULL && !partial) {
        return omni_mcp_fail(&e, 400, "url", "%s: required%s", NULL);
    }
    if (v != NULL) {
        if (v->type != OMNI_JSON_STRING) {
            return omni_mcp_fail(
                &e, 400, "url", "%s: expected a string%s", NULL);
        }
        if (!omni_mcp_url_allowed(v->u.str.ptr, &why)) {
            return omni_mcp_fail(&e, 422, "url", "%s: %s", why);
        }
        in->url = v->u.str.ptr;
    }

    v = omni_json_get(body, "transport");
    if (v != NULL
        && (v->type != OMNI_JSON_STRING
            || strcmp(v->u.str.ptr, "streamable-http") != 0)) {
        return omni_mcp_fail(&e, 422, "transport",
            "%s: the only transport is \"streamable-http\"%s", NULL);
    }

    v = omni_json_get(body, "headers");
    if (v != NULL) {
        in->has_headers = 1;
        in->header_names = "{}";
        if (v->type != OMNI_JSON_NULL
            && omni_mcp_check_headers(v, arena, in, &e) != 0) {
            return -1;
        }
    }

    v = omni_json_get(body, "timeout_ms");
    if (v != NULL
        && omni_mcp_int_in(
               v, "timeout_ms", 100, 300000, arena, &in->timeout_ms, &e)
               != 0) {
        return -1;
    }

    v = omni_json_get(body, "enabled");
    if (v != NULL) {
        if (v->type != OMNI_JSON_BOOL) {
            return omni_mcp_fail(
                &e, 400, "enabled", "%s: expected a boolean%s", NULL);
        }
        in->enabled = v->u.boolean ? "true" : "false";
    }

    v = omni_json_get(body, "roles");
    if (v != NULL && omni_mcp_roles(v, "roles", arena, &in->roles, &e) != 0) {
        return -1;
    }

    v = omni_json_get(body, "tool_roles");
    if (v != NULL
        && omni_mcp_check_tool_roles(v, arena, &in->tool_roles, &e) != 0) {
        return -1;
    }

    v = omni_json_get(body, "health");
    if ((v != NULL || !partial)
        && omni_mcp_check_health(v, partial, arena, &in->health, &e) != 0) {
        return -1;
    }

    fields = evbuffer_new();
    if (fields == NULL) {
        return omni_mcp_fail(&e, 503, "body", "%s: out of memory%s", NULL);
    }
    evbuffer_add(fields, "{", 1);
    for (i = 0; i < body->u.obj.len; i++) {
        evbuffer_add_printf(
            fields, "%s%s", given++ ? "," : "", body->u.obj.keys[i]);
    }
    evbuffer_add(fields, "}", 1);
    in->fields = omni_arena_strndup(arena,
        (const char *)evbuffer_pullup(fields, -1), evbuffer_get_length(fields));
    evbuffer_free(fields);
    if (partial && given == 0) {
        return omni_mcp_fail(&e, 400, "body",
            "%s: nothing to change: give at least one field%s", NULL);
    }
    return 0;
}
