/* fuzz_jwt_json.c: libFuzzer target for the module's token JSON parse
 * (omni_jwt_json_parse() in ngx_omni_module/omni_jwt_nodes.c: written by
 * hand into flat nodes), differential against yajl: what the parse must
 * accept and read exactly as it (yajl_tree_parse() after the pre-scan, and
 * the duplicate-name walk).
 *
 * The input is one decoded segment (at most what a token can hold). The
 * parse runs first, as omni_jwt_parse() runs it, the scan only to name a
 * refusal. Checked on every input:
 * - the same verdict: refused by the pre-scan, not JSON, not an object,
 *   a duplicate member name, or accepted; and a parse that succeeds never
 *   on an input the scan refuses. One difference, by design: yajl lets an
 *   unterminated string follow the value; the parse refuses it as not
 *   JSON;
 * - when both parse: the same tree, value by value (types, member names
 *   and order, string bytes as yajl decodes them, numbers as written), and
 *   the same reading of numbers as NumericDates (strtod whole, no ERANGE,
 *   finite);
 * - the nodes never run out (OMNI_JWT_JSON_FULL) within a token's size,
 *   and never a crash, leak or sanitizer report. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "omni_jwt.h"
#include "omni_jwt_int.h"

enum {
    V_SCAN,
    V_BAD,
    V_NOTOBJ,
    V_DUP,
    V_OK
};

static omni_jwt_t jwt;
static int unique; /* no object holds a name twice */

/* The old path, as omni_jwt_parse.c had it. */
static int old_verdict(const uint8_t *data, size_t size, yajl_val *out)
{
    const char *why;
    char *s;
    yajl_val v;

    *out = NULL;
    if (omni_jwt_json_scan(data, size, &why) != 0)
        return V_SCAN;
    s = malloc(size + 1);
    if (s == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    v = yajl_tree_parse(s, NULL, 0);
    free(s);
    if (v == NULL)
        return V_BAD;
    *out = v;
    if (!YAJL_IS_OBJECT(v))
        return V_NOTOBJ;
    return omni_jwt_json_dups(v) != 0 ? V_DUP : V_OK;
}

/* 1 when the input ends inside a string. yajl lets one follow a complete
 * value (it lexes to the end of the input, which it takes for a value cut
 * short, and nothing is left to complete it): the parse refuses that
 * trailing text like any other. */
static int ends_in_string(const uint8_t *p, size_t n)
{
    size_t i;
    int in_str = 0;

    for (i = 0; i < n; i++) {
        if (in_str && p[i] == '\\')
            i++;
        else if (p[i] == '"')
            in_str = !in_str;
    }
    return in_str;
}

static int numeric_date(const char *r)
{
    char *end = NULL;
    double d;

    errno = 0;
    d = strtod(r, &end);
    return errno == 0 && end != NULL && *end == '\0' && isfinite(d);
}

/* the node after v and its descendants */
static const omni_json_node_t *same(yajl_val v, const omni_json_node_t *n)
{
    const char *t = jwt.text;
    const omni_json_node_t *c;
    size_t i, len;

    switch (v->type) {
    case yajl_t_string:
        len = strlen(v->u.string);
        if (n->type != OMNI_JSON_STRING || n->len != len
            || memcmp(t + n->str, v->u.string, len) != 0
            || t[n->str + len] != '\0')
            abort();
        break;
    case yajl_t_number:
        len = strlen(v->u.number.r);
        if (n->type != OMNI_JSON_NUMBER || n->len != len
            || strcmp(t + n->str, v->u.number.r) != 0)
            abort();
        if (numeric_date(t + n->str)
            != (YAJL_IS_DOUBLE(v) && isfinite(v->u.number.d)))
            abort();
        break;
    case yajl_t_true:
    case yajl_t_false:
    case yajl_t_null:
        if (n->type
            != (v->type == yajl_t_true    ? OMNI_JSON_TRUE
                : v->type == yajl_t_false ? OMNI_JSON_FALSE
                                          : OMNI_JSON_NULL))
            abort();
        break;
    case yajl_t_object:
        if (n->type != OMNI_JSON_OBJECT || n->count != v->u.object.len)
            abort();
        for (c = n + 1, i = 0; i < v->u.object.len; i++) {
            len = strlen(v->u.object.keys[i]);
            if (c->key_len != len
                || memcmp(t + c->key, v->u.object.keys[i], len) != 0)
                abort();
            /* a lookup by name finds this member (names are unique) */
            if (unique
                && omni_jwt_node_member(&jwt, n, v->u.object.keys[i], len) != c)
                abort();
            c = same(v->u.object.values[i], c);
        }
        if (c != &jwt.nodes[n->end])
            abort();
        return c;
    case yajl_t_array:
        if (n->type != OMNI_JSON_ARRAY || n->count != v->u.array.len)
            abort();
        for (c = n + 1, i = 0; i < v->u.array.len; i++)
            c = same(v->u.array.values[i], c);
        if (c != &jwt.nodes[n->end])
            abort();
        return c;
    default:
        abort();
    }
    if (n->end != (size_t)(n - jwt.nodes) + 1)
        abort();
    return n + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const omni_json_node_t *root;
    const char *why;
    yajl_val old;
    int want, got, rc;

    /* a token's header and payload together decode to at most 6141 */
    if (size > OMNI_JWT_MAX_TOKEN / 4 * 3)
        return 0;

    want = old_verdict(data, size, &old);
    if (want >= V_NOTOBJ && ends_in_string(data, size)) {
        want = V_BAD;
        yajl_tree_free(old);
        old = NULL;
    }

    omni_jwt_free(&jwt);
    rc = omni_jwt_json_parse(&jwt, data, size, &root);
    if (rc == OMNI_JWT_JSON_FULL)
        abort();
    if (rc == OMNI_JWT_JSON_BAD) {
        got = omni_jwt_json_scan(data, size, &why) != 0 ? V_SCAN : V_BAD;
    } else {
        if (omni_jwt_json_scan(data, size, &why) != 0 || old == NULL)
            abort();
        got = root->type != OMNI_JSON_OBJECT ? V_NOTOBJ
              : rc == OMNI_JWT_JSON_DUP      ? V_DUP
                                             : V_OK;
        unique = omni_jwt_json_dups(old) == 0;
        if (same(old, root) != &jwt.nodes[jwt.nnodes])
            abort();
    }

    if (want != got)
        abort();

    yajl_tree_free(old);
    return 0;
}
