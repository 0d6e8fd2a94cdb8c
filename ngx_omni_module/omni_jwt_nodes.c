/*
 * omni_jwt_nodes.c: a token's JSON (its decoded header or payload) parsed
 * into the flat nodes kept in omni_jwt_t, in one pass over the text.
 *
 * Written here rather than taken from yajl because it runs on every token
 * the cache has not seen, where yajl's handle, lexer buffer and callbacks
 * cost more than the parse itself (18.4k instructions a token went to
 * 8.9k with this file and the base64url tables). It accepts exactly what
 * yajl_tree_parse() accepts once omni_jwt_json_scan() has passed, but for
 * an unterminated string after the value, which yajl lets through; and it
 * gives the same values (yajl's string decoding, lone surrogate escapes
 * and all): fuzz_jwt_json.c holds it to that, input by input.
 */


#include <string.h>

#include "omni_jwt.h"
#include "omni_jwt_int.h"


typedef struct {
    omni_jwt_t           *jwt;
    const unsigned char  *end;                /* of the text */
    size_t                depth;
    uint16_t              open[OMNI_JWT_MAX_DEPTH];
    int                   has_key;
    uint16_t              key, key_len;
    int                   full;
} omni_jwt_parser_t;


static int omni_jwt_hex(unsigned char c);
static const unsigned char *omni_jwt_ws(const unsigned char *p,
    const unsigned char *e);
static omni_json_node_t *omni_jwt_node(omni_jwt_parser_t *ps,
    omni_json_type_t type);
static int omni_jwt_copy(omni_jwt_parser_t *ps, const unsigned char *s,
    size_t len, int escaped, uint16_t *off, uint16_t *out_len);
static size_t omni_jwt_unescape(unsigned char *out, const unsigned char *s,
    size_t len);
static const unsigned char *omni_jwt_string(omni_jwt_parser_t *ps,
    const unsigned char *p, uint16_t *off, uint16_t *len);
static const unsigned char *omni_jwt_number(const unsigned char *p,
    const unsigned char *e);
static const unsigned char *omni_jwt_scalar(omni_jwt_parser_t *ps,
    const unsigned char *p);
static uint32_t omni_jwt_hash(const char *s, size_t len);
static int omni_jwt_object_dups(omni_jwt_t *jwt,
    const omni_json_node_t *obj);


_Static_assert(sizeof(((omni_jwt_t *) 0)->dups) / sizeof(uint16_t)
               >= 2 * OMNI_JWT_MAX_NODES,
               "the duplicate check's table holds 2 slots a member");


/* bytes a string holds as they are: 0x20-0x7f but '"' and '\\' (below
 * 0x20 is refused, 0x80 and above is checked as UTF-8 the way yajl does) */
static const unsigned char  omni_jwt_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
    /* 0x80-0xff: 0 */
};


static int
omni_jwt_hex(unsigned char c)
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


/* yajl's whitespace: space and \t \n \v \f \r */

static const unsigned char *
omni_jwt_ws(const unsigned char *p, const unsigned char *e)
{
    while (p < e && (*p == ' ' || (*p >= '\t' && *p <= '\r'))) {
        p++;
    }

    return p;
}


/* A new value, the member named by the pending key in an object. */

static omni_json_node_t *
omni_jwt_node(omni_jwt_parser_t *ps, omni_json_type_t type)
{
    size_t             i;
    omni_jwt_t        *jwt = ps->jwt;
    omni_json_node_t  *n;

    if (jwt->nnodes == OMNI_JWT_MAX_NODES) {
        ps->full = 1;
        return NULL;
    }

    i = jwt->nnodes++;
    n = &jwt->nodes[i];
    n->type = (uint8_t) type;
    n->key = ps->key;
    n->key_len = ps->has_key ? ps->key_len : 0;
    n->str = 0;
    n->len = 0;
    n->count = 0;
    n->end = (uint16_t) (i + 1);
    ps->has_key = 0;

    if (ps->depth > 0) {
        jwt->nodes[ps->open[ps->depth - 1]].count++;
    }

    return n;
}


/* len bytes of a string (unescaped when escaped) or a number, and a NUL,
 * into the token's text; 0, or -1 when full */

static int
omni_jwt_copy(omni_jwt_parser_t *ps, const unsigned char *s, size_t len,
    int escaped, uint16_t *off, uint16_t *out_len)
{
    omni_jwt_t  *jwt = ps->jwt;

    /* unescaping never lengthens a string */
    if (len >= sizeof(jwt->text) - jwt->ntext || len > 0xffff) {
        ps->full = 1;
        return -1;
    }

    *off = (uint16_t) jwt->ntext;

    if (escaped) {
        len = omni_jwt_unescape((unsigned char *) jwt->text + jwt->ntext, s,
                                len);
    } else {
        memcpy(jwt->text + jwt->ntext, s, len);
    }

    jwt->text[jwt->ntext + len] = '\0';
    jwt->ntext += len + 1;
    *out_len = (uint16_t) len;

    return 0;
}


/*
 * A lexed string's len bytes (between its quotes) unescaped into out, as
 * Debian's yajl_string_decode() does it (2.1.0 with the CVE-2017-16516
 * fix), which is what a claim has always read: a high surrogate escape
 * joined with the \u escape after it, whatever that is, or else "?"; a lone
 * low surrogate encoded as it is. (\u0000 never gets here.)
 */

static size_t
omni_jwt_unescape(unsigned char *out, const unsigned char *s, size_t len)
{
    size_t    beg, end, n, k;
    uint32_t  cp, lo;

    beg = 0;
    end = 0;
    n = 0;

    while (end < len) {

        if (s[end] != '\\') {
            end++;
            continue;
        }

        memcpy(out + n, s + beg, end - beg);
        n += end - beg;

        switch (s[++end]) {
        case 'r': out[n++] = '\r'; break;
        case 'n': out[n++] = '\n'; break;
        case 'f': out[n++] = '\f'; break;
        case 'b': out[n++] = '\b'; break;
        case 't': out[n++] = '\t'; break;

        case 'u':
            cp = 0;
            for (k = 1; k <= 4; k++) {
                cp = (cp << 4) | (uint32_t) omni_jwt_hex(s[end + k]);
            }
            end += 4;

            if ((cp & 0xfc00) == 0xd800) {

                if (end + 2 >= len || s[end + 1] != '\\'
                    || s[end + 2] != 'u')
                {
                    out[n++] = '?';
                    break;
                }

                lo = 0;
                for (k = 3; k <= 6; k++) {
                    lo = (lo << 4) | (uint32_t) omni_jwt_hex(s[end + k]);
                }
                end += 6;

                cp = ((cp & 0x3f) << 10) | ((((cp >> 6) & 0xf) + 1) << 16)
                     | (lo & 0x3ff);
            }

            if (cp < 0x80) {
                out[n++] = (unsigned char) cp;

            } else if (cp < 0x800) {
                out[n++] = (unsigned char) ((cp >> 6) | 0xc0);
                out[n++] = (unsigned char) ((cp & 0x3f) | 0x80);

            } else if (cp < 0x10000) {
                out[n++] = (unsigned char) ((cp >> 12) | 0xe0);
                out[n++] = (unsigned char) (((cp >> 6) & 0x3f) | 0x80);
                out[n++] = (unsigned char) ((cp & 0x3f) | 0x80);

            } else {
                out[n++] = (unsigned char) ((cp >> 18) | 0xf0);
                out[n++] = (unsigned char) (((cp >> 12) & 0x3f) | 0x80);
                out[n++] = (unsigned char) (((cp >> 6) & 0x3f) | 0x80);
                out[n++] = (unsigned char) ((cp & 0x3f) | 0x80);
            }

            break;

        default:                              /* '"', '\\', '/' */
            out[n++] = s[end];
        }

        beg = ++end;
    }

    if (beg < len) {
        memcpy(out + n, s + beg, len - beg);
        n += len - beg;
    }

    return n;
}


/*
 * The string whose opening quote is at p: lexed as yajl lexes it (no byte
 * below 0x20, the eight escapes and \u with four hex digits, UTF-8 lead
 * and continuation bytes), then copied into the text. The position after
 * its closing quote, or NULL.
 */

static const unsigned char *
omni_jwt_string(omni_jwt_parser_t *ps, const unsigned char *p,
    uint16_t *off, uint16_t *len)
{
    int                   escaped;
    size_t                more, k;
    unsigned char         c;
    const unsigned char  *s, *e;

    e = ps->end;
    s = ++p;
    escaped = 0;

    for ( ;; ) {
        while (p < e && omni_jwt_plain[*p]) {
            p++;
        }

        if (p == e) {
            return NULL;
        }

        c = *p;

        if (c == '"') {
            break;
        }

        if (c == '\\') {
            escaped = 1;

            if (e - p < 2) {
                return NULL;
            }

            switch (p[1]) {
            case '"': case '\\': case '/': case 'b':
            case 'f': case 'n': case 'r': case 't':
                p += 2;
                continue;

            case 'u':
                if (e - p < 6
                    || omni_jwt_hex(p[2]) < 0 || omni_jwt_hex(p[3]) < 0
                    || omni_jwt_hex(p[4]) < 0 || omni_jwt_hex(p[5]) < 0
                    || memcmp(p + 2, "0000", 4) == 0)
                {
                    return NULL;
                }

                p += 6;
                continue;

            default:
                return NULL;
            }
        }

        if (c < 0x20) {
            return NULL;
        }

        /* c >= 0x80: a lead byte and its continuation bytes */

        if ((c >> 5) == 0x6) {
            more = 1;

        } else if ((c >> 4) == 0xe) {
            more = 2;

        } else if ((c >> 3) == 0x1e) {
            more = 3;

        } else {
            return NULL;
        }

        if ((size_t) (e - p) <= more) {
            return NULL;
        }

        for (k = 1; k <= more; k++) {
            if ((p[k] >> 6) != 0x2) {
                return NULL;
            }
        }

        p += more + 1;
    }

    if (omni_jwt_copy(ps, s, (size_t) (p - s), escaped, off, len) != 0) {
        return NULL;
    }

    return p + 1;
}


/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at p: its end, or NULL */

static const unsigned char *
omni_jwt_number(const unsigned char *p, const unsigned char *e)
{
    const unsigned char  *d;

    if (*p == '-') {
        p++;
    }

    if (p == e) {
        return NULL;
    }

    if (*p == '0') {
        p++;

    } else if (*p >= '1' && *p <= '9') {
        while (p < e && *p >= '0' && *p <= '9') {
            p++;
        }

    } else {
        return NULL;
    }

    if (p < e && *p == '.') {
        d = ++p;

        while (p < e && *p >= '0' && *p <= '9') {
            p++;
        }

        if (p == d) {
            return NULL;
        }
    }

    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < e && (*p == '+' || *p == '-')) {
            p++;
        }

        d = p;

        while (p < e && *p >= '0' && *p <= '9') {
            p++;
        }

        if (p == d) {
            return NULL;
        }
    }

    return p;
}


/* A string, number, true, false or null at p: its node, and the position
 * after it, or NULL. */

static const unsigned char *
omni_jwt_scalar(omni_jwt_parser_t *ps, const unsigned char *p)
{
    size_t                 n;
    const char            *word;
    omni_json_type_t       type;
    omni_json_node_t      *node;
    const unsigned char   *e, *q;

    e = ps->end;

    if (p == e) {
        return NULL;
    }

    switch (*p) {

    case '"':
        node = omni_jwt_node(ps, OMNI_JSON_STRING);
        if (node == NULL) {
            return NULL;
        }

        return omni_jwt_string(ps, p, &node->str, &node->len);

    case 't':
        word = "true";
        n = 4;
        type = OMNI_JSON_TRUE;
        break;

    case 'f':
        word = "false";
        n = 5;
        type = OMNI_JSON_FALSE;
        break;

    case 'n':
        word = "null";
        n = 4;
        type = OMNI_JSON_NULL;
        break;

    default:
        if (*p != '-' && (*p < '0' || *p > '9')) {
            return NULL;
        }

        q = omni_jwt_number(p, e);
        if (q == NULL) {
            return NULL;
        }

        node = omni_jwt_node(ps, OMNI_JSON_NUMBER);

        if (node == NULL
            || omni_jwt_copy(ps, p, (size_t) (q - p), 0, &node->str,
                             &node->len)
               != 0)
        {
            return NULL;
        }

        return q;
    }

    if ((size_t) (e - p) < n || memcmp(p, word, n) != 0
        || omni_jwt_node(ps, type) == NULL)
    {
        return NULL;
    }

    return p + n;
}


/*
 * len bytes of JSON into the token's nodes, *root its value.
 * OMNI_JWT_JSON_BAD when omni_jwt_json_scan() or yajl_tree_parse() would
 * refuse it (the caller asks the scan for its reason); OMNI_JWT_JSON_DUP
 * when an object anywhere holds a member name twice; OMNI_JWT_JSON_FULL
 * never for a token's segment.
 */

int
omni_jwt_json_parse(omni_jwt_t *jwt, const unsigned char *p, size_t len,
    const omni_json_node_t **root)
{
    size_t              first, i;
    omni_json_node_t   *top;
    omni_jwt_parser_t   ps;

    *root = NULL;

    ps.jwt = jwt;
    ps.end = p + len;
    ps.depth = 0;
    ps.has_key = 0;
    ps.key = 0;
    ps.key_len = 0;
    ps.full = 0;

    first = jwt->nnodes;

value:

    p = omni_jwt_ws(p, ps.end);

    if (p < ps.end && (*p == '{' || *p == '[')) {

        if (ps.depth == OMNI_JWT_MAX_DEPTH) {
            goto failed;                      /* the scan says why */
        }

        top = omni_jwt_node(&ps, *p == '{' ? OMNI_JSON_OBJECT
                                           : OMNI_JSON_ARRAY);
        if (top == NULL) {
            goto failed;
        }

        ps.open[ps.depth++] = (uint16_t) (top - jwt->nodes);
        p = omni_jwt_ws(p + 1, ps.end);

        if (p < ps.end && *p == (top->type == OMNI_JSON_OBJECT ? '}' : ']'))
        {
            ps.depth--;
            p++;
            goto after;
        }

        if (top->type == OMNI_JSON_OBJECT) {
            goto key;
        }

        goto value;
    }

    p = omni_jwt_scalar(&ps, p);
    if (p == NULL) {
        goto failed;
    }

after:

    p = omni_jwt_ws(p, ps.end);

    if (ps.depth == 0) {
        if (p != ps.end) {
            goto failed;
        }

        goto done;
    }

    if (p == ps.end) {
        goto failed;
    }

    top = &jwt->nodes[ps.open[ps.depth - 1]];

    if (*p == ',') {
        p++;

        if (top->type == OMNI_JSON_ARRAY) {
            goto value;
        }

        p = omni_jwt_ws(p, ps.end);
        goto key;
    }

    if (*p != (top->type == OMNI_JSON_OBJECT ? '}' : ']')) {
        goto failed;
    }

    /* closed: the value after it is the next node */
    top->end = (uint16_t) jwt->nnodes;
    ps.depth--;
    p++;

    goto after;

key:

    if (p == ps.end || *p != '"') {
        goto failed;
    }

    p = omni_jwt_string(&ps, p, &ps.key, &ps.key_len);
    if (p == NULL) {
        goto failed;
    }

    ps.has_key = 1;
    p = omni_jwt_ws(p, ps.end);

    if (p == ps.end || *p != ':') {
        goto failed;
    }

    p++;

    goto value;

failed:

    return ps.full ? OMNI_JWT_JSON_FULL : OMNI_JWT_JSON_BAD;

done:

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
                /* the first bytes first: most names differ there */
                if (a->key_len == c->key_len
                    && t[a->key] == t[c->key]
                    && memcmp(t + a->key, t + c->key, a->key_len) == 0)
                {
                    return 1;
                }
            }
        }

        return 0;
    }

    for (size = 16; size < 2 * n; size <<= 1) { /* void */ }

    table = jwt->dups;
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
        if (m->key_len == len
            && (len == 0
                || (jwt->text[m->key] == name[0]
                    && memcmp(jwt->text + m->key + 1, name + 1, len - 1)
                       == 0)))
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
