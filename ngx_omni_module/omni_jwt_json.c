/*
 * omni_jwt_json.c: what yajl does not refuse on its own: NUL bytes, \u0000,
 * comments, deep nesting and duplicate member names, in tokens and JWKS
 * (the scan also names what a token's own parser, omni_jwt_nodes.c,
 * refused); and a member of a JWKS's yajl tree by name.
 */


#include <stdlib.h>
#include <string.h>

#include "omni_jwt.h"
#include "omni_jwt_int.h"


static int omni_jwt_key_cmp(const void *a, const void *b);


yajl_val
omni_jwt_member(yajl_val obj, const char *name, size_t len)
{
    size_t  i;

    if (!YAJL_IS_OBJECT(obj)) {
        return NULL;
    }

    for (i = 0; i < obj->u.object.len; i++) {
        if (strncmp(obj->u.object.keys[i], name, len) == 0
            && obj->u.object.keys[i][len] == '\0')
        {
            return obj->u.object.values[i];
        }
    }

    return NULL;
}


/*
 * Checks what yajl_tree_parse() would let through: NUL bytes (yajl reads a
 * C string), \u0000 in strings (it would cut them short), comments (yajl
 * tree allows them) and nesting deeper than OMNI_JWT_MAX_DEPTH (bounds the
 * recursion of yajl_tree_free() and of our walks).
 */

int
omni_jwt_json_scan(const unsigned char *p, size_t n, const char **why)
{
    int     depth, in_str;
    size_t  i;

    depth = 0;
    in_str = 0;

    for (i = 0; i < n; i++) {

        if (p[i] == '\0') {
            *why = "NUL byte in JSON";
            return -1;
        }

        if (in_str) {
            if (p[i] == '"') {
                in_str = 0;

            } else if (p[i] == '\\' && i + 1 < n) {
                if (n - i >= 6 && memcmp(p + i + 1, "u0000", 5) == 0) {
                    *why = "\\u0000 in a JSON string";
                    return -1;
                }

                i++;
            }

            continue;
        }

        switch (p[i]) {
        case '"':
            in_str = 1;
            break;

        case '{':
        case '[':
            if (++depth > OMNI_JWT_MAX_DEPTH) {
                *why = "JSON nested too deeply";
                return -1;
            }
            break;

        case '}':
        case ']':
            depth--;
            break;

        case '/':
            *why = "comment in JSON";
            return -1;
        }
    }

    return 0;
}


static int
omni_jwt_key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}


/* 1 when an object anywhere holds a member name twice (RFC 7515 4: reject,
 * since yajl keeps both and lookups would see the first), -1 no memory. */

int
omni_jwt_json_dups(yajl_val v)
{
    int           rc;
    size_t        i, n;
    const char  **keys;

    if (YAJL_IS_ARRAY(v)) {
        for (i = 0; i < v->u.array.len; i++) {
            rc = omni_jwt_json_dups(v->u.array.values[i]);
            if (rc != 0) {
                return rc;
            }
        }

        return 0;
    }

    if (!YAJL_IS_OBJECT(v)) {
        return 0;
    }

    n = v->u.object.len;

    if (n > 1) {
        keys = malloc(n * sizeof(*keys));
        if (keys == NULL) {
            return -1;
        }

        memcpy(keys, v->u.object.keys, n * sizeof(*keys));
        qsort(keys, n, sizeof(*keys), omni_jwt_key_cmp);

        for (i = 1; i < n; i++) {
            if (strcmp(keys[i - 1], keys[i]) == 0) {
                free(keys);
                return 1;
            }
        }

        free(keys);
    }

    for (i = 0; i < n; i++) {
        rc = omni_jwt_json_dups(v->u.object.values[i]);
        if (rc != 0) {
            return rc;
        }
    }

    return 0;
}
