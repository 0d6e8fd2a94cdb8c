/* json.h: bounded JSON parsing (yajl) into an arena tree, and JSON output. */
#ifndef OMNI_JSON_H
#define OMNI_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "lib/arena.h"

typedef enum {
    OMNI_JSON_NULL,
    OMNI_JSON_BOOL,
    OMNI_JSON_NUMBER, /* integer or real; text kept verbatim in num.text */
    OMNI_JSON_STRING,
    OMNI_JSON_ARRAY,
    OMNI_JSON_OBJECT
} omni_json_type_t;

typedef struct omni_json omni_json_t;

struct omni_json {
    omni_json_type_t type;
    union {
        int boolean;
        struct {
            const char *text; /* as written, NUL-terminated */
            int is_int;       /* fits int64 and has no fraction/exponent */
            int64_t i;        /* meaningful only when is_int */
            double d;         /* always set; +-HUGE_VAL beyond double range */
        } num;
        struct {
            const char *ptr; /* NUL-terminated, valid UTF-8, no NUL inside */
            size_t len;
        } str;
        struct {
            omni_json_t **items;
            size_t len;
        } arr;
        struct {
            const char **keys; /* NUL-terminated, unique, in input order */
            omni_json_t **values;
            size_t len;
        } obj;
    } u;
};

typedef struct {
    size_t max_bytes; /* 0 = no limit */
    int max_depth;    /* nesting of arrays/objects; 0 = 64 */
} omni_json_limits_t;

/* Parses text[0..len) into a tree allocated from arena; limits may be NULL
 * (no size limit, depth 64). Exactly one JSON value, optionally surrounded
 * by whitespace, is accepted. Strings must be valid UTF-8 (no overlongs or
 * surrogates, \u escapes correctly paired) and may not contain U+0000,
 * which C callers could not see past (PostgreSQL rejects it as well).
 * Objects with a repeated key are rejected: the meaning is ambiguous.
 * Returns the root, or NULL with a short reason fit for an API error message
 * in err (always NUL-terminated when errlen > 0):
 *   "empty body", "JSON body larger than N bytes",
 *   "JSON nesting deeper than N levels", "duplicate key \"k\"",
 *   "malformed JSON at byte N: <what>", "invalid UTF-8 in string at byte N",
 *   "invalid \u escape at byte N: unpaired surrogate",
 *   "\u0000 in string at byte N is not supported", "out of memory".
 * Nothing to free beyond the arena (which may hold partial work on error). */
omni_json_t *omni_json_parse(omni_arena_t *arena, const char *text, size_t len,
    const omni_json_limits_t *limits, char *err, size_t errlen);

/* Object member by key, or NULL when absent or obj is not an object (or is
 * NULL). Linear in the number of members. */
const omni_json_t *omni_json_get(const omni_json_t *obj, const char *key);

/* Typed accessors: return NULL / 0 when the value has another type (or v is
 * NULL). */
const char *omni_json_string(const omni_json_t *v);

/* Return 1 and store the value when v has the type, 0 otherwise (out is left
 * alone). omni_json_int accepts only integers that fit int64 ("1.0", "1e2"
 * and 2^63 are not); omni_json_double accepts any number. */
int omni_json_int(const omni_json_t *v, int64_t *out);
int omni_json_double(const omni_json_t *v, double *out);
int omni_json_bool(const omni_json_t *v, int *out);

/* Appends text to a growing output buffer (libevent evbuffer).
 * The writer produces compact JSON; strings are escaped per RFC 8259
 * (\" \\ \b \f \n \r \t, other control characters as \u00XX); invalid UTF-8
 * is replaced by U+FFFD so the output is always valid JSON.
 * Return 0, or -1 when the buffer cannot grow (output may then be partial). */
struct evbuffer;
int omni_json_put_string(struct evbuffer *out, const char *s, size_t len);

/* Serializes a tree back to compact JSON; a NULL v is written as null.
 * Numbers are written as num.text (or from i / d when text is NULL). */
int omni_json_write(struct evbuffer *out, const omni_json_t *v);

/* Length (1-4) of the well-formed UTF-8 sequence at s[0..len), or, negated,
 * the length of the ill-formed prefix to replace with one U+FFFD (Unicode's
 * "maximal subpart" practice). len must be > 0. Never fails. */
int omni_utf8_seq(const char *s, size_t len);

#endif
