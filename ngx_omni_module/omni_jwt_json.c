/*
 * omni_jwt_json.c: what yajl does not refuse on its own: NUL bytes, \u0000,
 * comments, deep nesting and duplicate member names, in tokens and JWKS;
 * and a token's JSON parsed into its flat nodes: yajl's event parser (the
 * same lexer and rules as yajl_tree_parse()) with its memory in the token.
 */


#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "omni_jwt.h"
#include "omni_jwt_int.h"


#define OMNI_JWT_MAX_DEPTH     32             /* JSON nesting in a token */


typedef struct {
    omni_jwt_t  *jwt;
    size_t       used;                        /* of jwt->arena */
    size_t       last;                        /* the last block's offset */
    size_t       depth;
    uint16_t     open[OMNI_JWT_MAX_DEPTH + 1];
    int          has_key;
    uint16_t     key, key_len;
    int          full;
} omni_jwt_builder_t;


static int omni_jwt_key_cmp(const void *a, const void *b);
static void *omni_jwt_arena_malloc(void *ctx, size_t size);
static void *omni_jwt_arena_realloc(void *ctx, void *ptr, size_t size);
static void omni_jwt_arena_free(void *ctx, void *ptr);
static int omni_jwt_text(omni_jwt_builder_t *b, const unsigned char *s,
    size_t len, uint16_t *off);
static omni_json_node_t *omni_jwt_node(omni_jwt_builder_t *b,
    omni_json_type_t type);
static int omni_jwt_on_null(void *ctx);
static int omni_jwt_on_boolean(void *ctx, int value);
static int omni_jwt_on_number(void *ctx, const char *s, size_t len);
static int omni_jwt_on_string(void *ctx, const unsigned char *s,
    size_t len);
static int omni_jwt_on_start(omni_jwt_builder_t *b, omni_json_type_t type);
static int omni_jwt_on_start_map(void *ctx);
static int omni_jwt_on_start_array(void *ctx);
static int omni_jwt_on_key(void *ctx, const unsigned char *s, size_t len);
static int omni_jwt_on_end(void *ctx);
static int omni_jwt_object_dups(omni_jwt_t *jwt,
    const omni_json_node_t *obj);


static const yajl_callbacks  omni_jwt_callbacks = {
    omni_jwt_on_null,
    omni_jwt_on_boolean,
    NULL,
    NULL,
    omni_jwt_on_number,
    omni_jwt_on_string,
    omni_jwt_on_start_map,
    omni_jwt_on_key,
    omni_jwt_on_end,
    omni_jwt_on_start_array,
    omni_jwt_on_end
};


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


/*
 * yajl's memory (its handle, lexer, decode buffer and state stack: about
 * 3 KB for a token, at most ~15 KB) from the token's arena, each block
 * after its size; beyond the arena, malloc() (never reached by a token
 * under OMNI_JWT_MAX_TOKEN, but never a failure either).
 */

#define OMNI_JWT_ALIGN  16

static void *
omni_jwt_arena_malloc(void *ctx, size_t size)
{
    size_t               at, need;
    unsigned char       *p;
    omni_jwt_builder_t  *b = ctx;

    need = OMNI_JWT_ALIGN + ((size + OMNI_JWT_ALIGN - 1)
                             & ~(size_t) (OMNI_JWT_ALIGN - 1));
    at = b->used;

    if (size > sizeof(b->jwt->arena)
        || need > sizeof(b->jwt->arena) - at)
    {
        return malloc(size);
    }

    p = b->jwt->arena + at;
    memcpy(p, &size, sizeof(size_t));
    b->last = at;
    b->used = at + need;

    return p + OMNI_JWT_ALIGN;
}


static void *
omni_jwt_arena_realloc(void *ctx, void *ptr, size_t size)
{
    size_t               old, at, need;
    unsigned char       *p, *n;
    omni_jwt_builder_t  *b = ctx;

    if (ptr == NULL) {
        return omni_jwt_arena_malloc(ctx, size);
    }

    p = ptr;

    if (p < b->jwt->arena || p >= b->jwt->arena + sizeof(b->jwt->arena)) {
        return realloc(ptr, size);
    }

    at = (size_t) (p - OMNI_JWT_ALIGN - b->jwt->arena);
    memcpy(&old, p - OMNI_JWT_ALIGN, sizeof(size_t));

    /* the last block grows in place */

    need = OMNI_JWT_ALIGN + ((size + OMNI_JWT_ALIGN - 1)
                             & ~(size_t) (OMNI_JWT_ALIGN - 1));

    if (at == b->last && size <= sizeof(b->jwt->arena)
        && need <= sizeof(b->jwt->arena) - at)
    {
        memcpy(p - OMNI_JWT_ALIGN, &size, sizeof(size_t));
        b->used = at + need;
        return p;
    }

    n = omni_jwt_arena_malloc(ctx, size);
    if (n != NULL) {
        memcpy(n, p, old < size ? old : size);
    }

    return n;
}


static void
omni_jwt_arena_free(void *ctx, void *ptr)
{
    unsigned char       *p;
    omni_jwt_builder_t  *b = ctx;

    p = ptr;

    if (p != NULL
        && (p < b->jwt->arena || p >= b->jwt->arena + sizeof(b->jwt->arena)))
    {
        free(ptr);
    }
}


/* len bytes and a NUL into the token's text; 0, or -1 when full */

static int
omni_jwt_text(omni_jwt_builder_t *b, const unsigned char *s, size_t len,
    uint16_t *off)
{
    omni_jwt_t  *jwt = b->jwt;

    if (len >= sizeof(jwt->text) - jwt->ntext || len > 0xffff) {
        b->full = 1;
        return -1;
    }

    *off = (uint16_t) jwt->ntext;
    memcpy(jwt->text + jwt->ntext, s, len);
    jwt->text[jwt->ntext + len] = '\0';
    jwt->ntext += len + 1;

    return 0;
}


/* A new value, the member named by the pending key in an object. */

static omni_json_node_t *
omni_jwt_node(omni_jwt_builder_t *b, omni_json_type_t type)
{
    size_t             i;
    omni_jwt_t        *jwt = b->jwt;
    omni_json_node_t  *n;

    if (jwt->nnodes == OMNI_JWT_MAX_NODES) {
        b->full = 1;
        return NULL;
    }

    i = jwt->nnodes++;
    n = &jwt->nodes[i];
    n->type = (uint8_t) type;
    n->key = b->key;
    n->key_len = b->has_key ? b->key_len : 0;
    n->str = 0;
    n->len = 0;
    n->count = 0;
    n->end = (uint16_t) (i + 1);
    b->has_key = 0;

    if (b->depth > 0) {
        jwt->nodes[b->open[b->depth - 1]].count++;
    }

    return n;
}


static int
omni_jwt_on_null(void *ctx)
{
    return omni_jwt_node(ctx, OMNI_JSON_NULL) != NULL;
}


static int
omni_jwt_on_boolean(void *ctx, int value)
{
    return omni_jwt_node(ctx, value ? OMNI_JSON_TRUE : OMNI_JSON_FALSE)
           != NULL;
}


static int
omni_jwt_on_number(void *ctx, const char *s, size_t len)
{
    omni_json_node_t  *n;

    n = omni_jwt_node(ctx, OMNI_JSON_NUMBER);

    if (n == NULL
        || omni_jwt_text(ctx, (const unsigned char *) s, len, &n->str) != 0)
    {
        return 0;
    }

    n->len = (uint16_t) len;

    return 1;
}


static int
omni_jwt_on_string(void *ctx, const unsigned char *s, size_t len)
{
    omni_json_node_t  *n;

    n = omni_jwt_node(ctx, OMNI_JSON_STRING);

    if (n == NULL || omni_jwt_text(ctx, s, len, &n->str) != 0) {
        return 0;
    }

    n->len = (uint16_t) len;

    return 1;
}


static int
omni_jwt_on_start(omni_jwt_builder_t *b, omni_json_type_t type)
{
    if (b->depth > OMNI_JWT_MAX_DEPTH
        || omni_jwt_node(b, type) == NULL)
    {
        b->full = 1;
        return 0;
    }

    b->open[b->depth++] = (uint16_t) (b->jwt->nnodes - 1);

    return 1;
}


static int
omni_jwt_on_start_map(void *ctx)
{
    return omni_jwt_on_start(ctx, OMNI_JSON_OBJECT);
}


static int
omni_jwt_on_start_array(void *ctx)
{
    return omni_jwt_on_start(ctx, OMNI_JSON_ARRAY);
}


static int
omni_jwt_on_key(void *ctx, const unsigned char *s, size_t len)
{
    omni_jwt_builder_t  *b = ctx;

    if (omni_jwt_text(b, s, len, &b->key) != 0) {
        return 0;
    }

    b->key_len = (uint16_t) len;
    b->has_key = 1;

    return 1;
}


static int
omni_jwt_on_end(void *ctx)
{
    omni_jwt_builder_t  *b = ctx;

    b->depth--;
    b->jwt->nodes[b->open[b->depth]].end = (uint16_t) b->jwt->nnodes;

    return 1;
}


/*
 * len bytes of JSON (checked by omni_jwt_json_scan() first) into the
 * token's nodes, *root its value. OMNI_JWT_JSON_BAD when yajl_tree_parse()
 * would have failed; OMNI_JWT_JSON_DUP when an object anywhere holds a
 * member name twice; OMNI_JWT_JSON_FULL never for a token's segment.
 */

int
omni_jwt_json_parse(omni_jwt_t *jwt, const unsigned char *p, size_t len,
    const omni_json_node_t **root)
{
    size_t               first, i;
    yajl_handle          h;
    yajl_status          st;
    yajl_alloc_funcs     af;
    omni_jwt_builder_t   b;

    *root = NULL;

    b.jwt = jwt;
    b.used = 0;
    b.last = (size_t) -1;
    b.depth = 0;
    b.has_key = 0;
    b.key = 0;
    b.key_len = 0;
    b.full = 0;

    af.malloc = omni_jwt_arena_malloc;
    af.realloc = omni_jwt_arena_realloc;
    af.free = omni_jwt_arena_free;
    af.ctx = &b;

    first = jwt->nnodes;

    h = yajl_alloc(&omni_jwt_callbacks, &af, &b);
    if (h == NULL) {
        return OMNI_JWT_JSON_FULL;
    }

    /* as yajl_tree_parse(): the comments it allows never get here */
    yajl_config(h, yajl_allow_comments, 1);

    st = yajl_parse(h, p, len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (b.full) {
        return OMNI_JWT_JSON_FULL;
    }

    if (st != yajl_status_ok || jwt->nnodes == first) {
        return OMNI_JWT_JSON_BAD;
    }

    *root = &jwt->nodes[first];

    for (i = first; i < jwt->nnodes; i++) {
        if (jwt->nodes[i].type == OMNI_JSON_OBJECT
            && jwt->nodes[i].count > 1
            && omni_jwt_object_dups(jwt, &jwt->nodes[i]))
        {
            return OMNI_JWT_JSON_DUP;
        }
    }

    return OMNI_JWT_JSON_OK;
}


static uint32_t
omni_jwt_hash(const char *s, size_t len)
{
    size_t    i;
    uint32_t  h;

    h = 2166136261u;

    for (i = 0; i < len; i++) {
        h = (h ^ (unsigned char) s[i]) * 16777619u;
    }

    return h;
}


/* 1 when two members of obj share a name (RFC 7515 4: reject): pairwise
 * for the few members of most objects, else through a hash table in the
 * arena (yajl is done with it), so a large object costs linear time. */

static int
omni_jwt_object_dups(omni_jwt_t *jwt, const omni_json_node_t *obj)
{
    size_t                   i, j, n, size, slot;
    uint16_t                *table;
    const char              *t;
    const omni_json_node_t  *a, *c;

    n = obj->count;
    t = jwt->text;

    if (n <= 8) {
        for (a = obj + 1, i = 0; i < n; a = &jwt->nodes[a->end], i++) {
            for (c = &jwt->nodes[a->end], j = i + 1; j < n;
                 c = &jwt->nodes[c->end], j++)
            {
                if (a->key_len == c->key_len
                    && memcmp(t + a->key, t + c->key, a->key_len) == 0)
                {
                    return 1;
                }
            }
        }

        return 0;
    }

    for (size = 16; size < 2 * n; size <<= 1) { /* void */ }

    /* 2 * OMNI_JWT_MAX_NODES slots rounded up: 8192 uint16_t */
    table = (uint16_t *) jwt->arena;
    memset(table, 0xff, size * sizeof(uint16_t));

    for (a = obj + 1, i = 0; i < n; a = &jwt->nodes[a->end], i++) {
        slot = omni_jwt_hash(t + a->key, a->key_len) & (size - 1);

        while (table[slot] != 0xffff) {
            c = &jwt->nodes[table[slot]];

            if (a->key_len == c->key_len
                && memcmp(t + a->key, t + c->key, a->key_len) == 0)
            {
                return 1;
            }

            slot = (slot + 1) & (size - 1);
        }

        table[slot] = (uint16_t) (a - jwt->nodes);
    }

    return 0;
}


/* An object's member by name (len bytes), or NULL. */

const omni_json_node_t *
omni_jwt_node_member(const omni_jwt_t *jwt, const omni_json_node_t *obj,
    const char *name, size_t len)
{
    size_t                   i;
    const omni_json_node_t  *m;

    if (obj == NULL || obj->type != OMNI_JSON_OBJECT) {
        return NULL;
    }

    for (m = obj + 1, i = 0; i < obj->count; m = &jwt->nodes[m->end], i++) {
        if (m->key_len == len && memcmp(jwt->text + m->key, name, len) == 0)
        {
            return m;
        }
    }

    return NULL;
}


const omni_json_node_t *
omni_jwt_get(const omni_jwt_t *jwt, const char *const *parts)
{
    const omni_json_node_t  *n;

    if (parts == NULL) {
        return NULL;
    }

    n = jwt->payload;

    while (n != NULL && *parts != NULL) {
        n = omni_jwt_node_member(jwt, n, *parts, strlen(*parts));
        parts++;
    }

    return n;
}
