/* dashboard_rules.c: what configuration values may hold, and which of them
 * are secrets hidden from readers who are not admins. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "services/dashboard/dashboard.h"


typedef enum {
    OMNI_CF_NUMBER,
    OMNI_CF_INT,
    OMNI_CF_BOOL,
    OMNI_CF_STRING, /* at most max bytes */
    OMNI_CF_BUCKET, /* "5m" or "1h" */
    OMNI_CF_PERIOD, /* "today", "24h" or "7d" */
    OMNI_CF_FLAG,   /* the JSON string "true" or "false" */
    OMNI_CF_NAMES,  /* array of distinct strings, 1-64 bytes */
    OMNI_CF_RENAMED /* a name the contract replaced: refused */
} omni_settings_kind_t;

typedef struct {
    const char *name;
    omni_settings_kind_t kind;
    int optional;
    double min, max;
    const char *hint; /* OMNI_CF_RENAMED: what to use */
} omni_settings_field_t;

typedef struct {
    char *field;
    size_t fieldlen;
    char *msg;
    size_t msglen;
} omni_settings_err_t;

/* A check across fields, after each has passed its own. */
typedef int (*omni_settings_rule_pt)(
    const char *key, const omni_json_t *v, omni_settings_err_t *e);

/* A seeded key: either an object (fields; members they do not name are
 * kept as they are, the UI may store more than the server reads) or one
 * value of its own (value). */
typedef struct {
    const char *key;
    const omni_settings_field_t *fields;
    const omni_settings_field_t *value;
    omni_settings_rule_pt rule;
} omni_settings_schema_t;


static int omni_settings_alert_rule(
    const char *key, const omni_json_t *v, omni_settings_err_t *e);
static int omni_settings_chart_rule(
    const char *key, const omni_json_t *v, omni_settings_err_t *e);
static int omni_settings_dev_rule(
    const char *key, const omni_json_t *v, omni_settings_err_t *e);


/* The platform's members (SPEC section 6) are required; Omni's additions
 * are optional; the names Omni used before 007 are refused rather than
 * kept as extras nothing reads. Renamed ones come first: a value of the
 * old shape is told what replaced them. */
static const omni_settings_field_t omni_settings_alert_fields[] = {
    {"error_rate_percent", OMNI_CF_RENAMED, 0, 0, 0,
        "use error_rate, a fraction from 0 to 1"},
    {"p95_ms", OMNI_CF_RENAMED, 0, 0, 0, "use response_time_p95"},
    {"p99_ms", OMNI_CF_RENAMED, 0, 0, 0, "use response_time_p99"},
    {"cost_daily", OMNI_CF_NUMBER, 0, 0, 1e9, NULL},
    {"error_rate", OMNI_CF_NUMBER, 0, 0, 1, NULL},
    {"response_time_p99", OMNI_CF_NUMBER, 0, 0, 3600000, NULL},
    {"response_time_p95", OMNI_CF_NUMBER, 1, 0, 3600000, NULL},
    {"mcp_failure_count", OMNI_CF_INT, 1, 1, 1000, NULL},
    {NULL, 0, 0, 0, 0, NULL}};

static const omni_settings_field_t omni_settings_chart_fields[] = {
    {"default_hours", OMNI_CF_RENAMED, 0, 0, 0,
        "use queries_hours and response_time_hours"},
    {"cost_period", OMNI_CF_PERIOD, 0, 0, 0, NULL},
    {"queries_hours", OMNI_CF_INT, 0, 1, OMNI_CHART_MAX_HOURS, NULL},
    {"response_time_hours", OMNI_CF_INT, 0, 1, OMNI_CHART_MAX_HOURS, NULL},
    {"bucket", OMNI_CF_BUCKET, 1, 0, 0, NULL},
    {"max_points", OMNI_CF_INT, 1, 1, OMNI_CHART_MAX_HOURS * 12, NULL},
    {NULL, 0, 0, 0, 0, NULL}};

static const omni_settings_field_t omni_settings_dev_fields[] = {
    {"websocket_debug", OMNI_CF_BOOL, 0, 0, 0, NULL},
    {"quick_login", OMNI_CF_BOOL, 0, 0, 0, NULL},
    {"quick_login_email", OMNI_CF_STRING, 1, 0, 254, NULL},
    {"quick_login_password", OMNI_CF_STRING, 1, 0, 1024, NULL},
    {NULL, 0, 0, 0, 0, NULL}};

static const omni_settings_field_t omni_settings_dev_mode = {
    NULL, OMNI_CF_FLAG, 0, 0, 0, NULL};

static const omni_settings_field_t omni_settings_live_fields[] = {
    {"max_stored_events", OMNI_CF_INT, 0, 1, 100000, NULL},
    {"enabled", OMNI_CF_BOOL, 1, 0, 0, NULL},
    {"channels", OMNI_CF_NAMES, 1, 0, 0, NULL}, {NULL, 0, 0, 0, 0, NULL}};

static const omni_settings_field_t omni_settings_refresh_fields[] = {
    {"seconds", OMNI_CF_RENAMED, 0, 0, 0, "use stats, charts and activity"},
    {"stats", OMNI_CF_INT, 0, 1, 3600, NULL},
    {"charts", OMNI_CF_INT, 0, 1, 3600, NULL},
    {"activity", OMNI_CF_INT, 0, 1, 3600, NULL}, {NULL, 0, 0, 0, 0, NULL}};

static const omni_settings_schema_t omni_settings_schemas[] = {
    {"alert_thresholds", omni_settings_alert_fields, NULL,
        omni_settings_alert_rule},
    {"chart_settings", omni_settings_chart_fields, NULL,
        omni_settings_chart_rule},
    {"dev_features", omni_settings_dev_fields, NULL, omni_settings_dev_rule},
    {"dev_mode", NULL, &omni_settings_dev_mode, NULL},
    {"live_updates", omni_settings_live_fields, NULL, NULL},
    {"refresh_interval", omni_settings_refresh_fields, NULL, NULL},
    {NULL, NULL, NULL, NULL}};


static int omni_settings_fail(omni_settings_err_t *e, const char *key,
    const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int omni_settings_fail(omni_settings_err_t *e, const char *key,
    const char *name, const char *fmt, ...)
{
    char what[256];
    va_list ap;

    if (name) {
        snprintf(e->field, e->fieldlen, "%s.%.64s", key, name);
    } else {
        snprintf(e->field, e->fieldlen, "%s", key);
    }
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(e->msg, e->msglen, "%s: %s", e->field, what);
    return -1;
}


static int omni_settings_string_is(
    const omni_json_t *v, const char *const *allowed)
{
    const char *s = omni_json_string(v);

    for (/* void */; s && *allowed; allowed++) {
        if (strcmp(s, *allowed) == 0) {
            return 1;
        }
    }
    return 0;
}


static int omni_settings_field(const char *key, const omni_settings_field_t *f,
    const omni_json_t *v, omni_settings_err_t *e)
{
    static const char *const periods[] = {"today", "24h", "7d", NULL};
    static const char *const flags[] = {"true", "false", NULL};
    double d;
    int64_t i;
    int b;
    size_t k, j;

    switch (f->kind) {

    case OMNI_CF_NUMBER:
        if (!omni_json_double(v, &d) || d < f->min || d > f->max) {
            return omni_settings_fail(e, key, f->name,
                "expected a number from %g to %g", f->min, f->max);
        }
        return 0;

    case OMNI_CF_INT:
        if (!omni_json_int(v, &i) || i < f->min || i > f->max) {
            return omni_settings_fail(e, key, f->name,
                "expected an integer from %g to %g", f->min, f->max);
        }
        return 0;

    case OMNI_CF_BOOL:
        if (!omni_json_bool(v, &b)) {
            return omni_settings_fail(
                e, key, f->name, "expected true or false");
        }
        return 0;

    case OMNI_CF_STRING:
        if (v->type != OMNI_JSON_STRING || v->u.str.len > f->max) {
            return omni_settings_fail(e, key, f->name,
                "expected a string of at most %g bytes", f->max);
        }
        return 0;

    case OMNI_CF_BUCKET:
        if (omni_json_string(v) == NULL
            || omni_chart_bucket(omni_json_string(v)) < 0) {
            return omni_settings_fail(
                e, key, f->name, "expected \"5m\" or \"1h\"");
        }
        return 0;

    case OMNI_CF_PERIOD:
        if (!omni_settings_string_is(v, periods)) {
            return omni_settings_fail(
                e, key, f->name, "expected \"today\", \"24h\" or \"7d\"");
        }
        return 0;

    case OMNI_CF_FLAG:
        if (!omni_settings_string_is(v, flags)) {
            return omni_settings_fail(e, key, f->name,
                "expected the string \"true\" or "
                "\"false\"");
        }
        return 0;

    case OMNI_CF_RENAMED:
        return omni_settings_fail(
            e, key, f->name, "no longer read: %s", f->hint);

    case OMNI_CF_NAMES:
        if (v->type != OMNI_JSON_ARRAY) {
            break;
        }
        for (k = 0; k < v->u.arr.len; k++) {
            const omni_json_t *s = v->u.arr.items[k];

            if (s->type != OMNI_JSON_STRING || s->u.str.len == 0
                || s->u.str.len > 64) {
                break;
            }
            for (j = 0; j < k; j++) {
                if (strcmp(v->u.arr.items[j]->u.str.ptr, s->u.str.ptr) == 0) {
                    break;
                }
            }
            if (j < k) {
                break;
            }
        }
        if (k == v->u.arr.len) {
            return 0;
        }
        break;
    }

    return omni_settings_fail(e, key, f->name,
        "expected an array of distinct strings of 1 to "
        "64 characters");
}


static int omni_settings_alert_rule(
    const char *key, const omni_json_t *v, omni_settings_err_t *e)
{
    double p95, p99;

    if (!omni_json_double(omni_json_get(v, "response_time_p95"), &p95)) {
        return 0;
    }
    omni_json_double(omni_json_get(v, "response_time_p99"), &p99);
    if (p95 > p99) {
        return omni_settings_fail(e, key, "response_time_p95",
            "must be at most response_time_p99 (%g)", p99);
    }
    return 0;
}


/* The platform writes {"websocket_debug", "quick_login"} alone to turn the
 * dev features off: the credentials are needed only with quick_login on. */
static int omni_settings_dev_rule(
    const char *key, const omni_json_t *v, omni_settings_err_t *e)
{
    static const char *needed[] = {"quick_login_email", "quick_login_password"};
    int on, i;

    if (!omni_json_bool(omni_json_get(v, "quick_login"), &on) || !on) {
        return 0;
    }
    for (i = 0; i < 2; i++) {
        if (omni_json_get(v, needed[i]) == NULL) {
            return omni_settings_fail(
                e, key, needed[i], "required when quick_login is true");
        }
    }
    return 0;
}


/* A chart of `hours` with chart_settings' bucket (or, without one, 5m
 * buckets when they fit max_points and 1h ones otherwise, as the chart
 * handler picks) must fit max_points. */
static int omni_settings_chart_fits(const char *key, const char *name,
    int64_t hours, int width, int64_t max_points, omni_settings_err_t *e)
{
    int64_t points;

    if (width < 0) {
        width = hours * 12 <= max_points ? 300 : 3600;
    }
    points = hours * 3600 / width;
    if (points > max_points) {
        return omni_settings_fail(e, key, name,
            "%lld hours of %s buckets make %lld points, "
            "more than max_points (%lld)",
            (long long)hours, omni_chart_bucket_name(width), (long long)points,
            (long long)max_points);
    }
    return 0;
}


static int omni_settings_chart_rule(
    const char *key, const omni_json_t *v, omni_settings_err_t *e)
{
    const char *period;
    int64_t queries, response, max_points = 288;
    int width = -1;

    omni_json_int(omni_json_get(v, "queries_hours"), &queries);
    omni_json_int(omni_json_get(v, "response_time_hours"), &response);
    omni_json_int(omni_json_get(v, "max_points"), &max_points);
    if (omni_json_get(v, "bucket") != NULL) {
        width = omni_chart_bucket(omni_json_string(omni_json_get(v, "bucket")));
    }
    period = omni_json_string(omni_json_get(v, "cost_period"));

    if (omni_settings_chart_fits(
            key, "queries_hours", queries, width, max_points, e)
            != 0
        || omni_settings_chart_fits(
               key, "response_time_hours", response, width, max_points, e)
               != 0
        || omni_settings_chart_fits(key, "cost_period",
               strcmp(period, "7d") == 0 ? 168 : 24, width, max_points, e)
               != 0) {
        return -1;
    }
    return 0;
}


/* Every number anywhere in v must fit a double: Postgres would refuse
 * bigger ones (numeric overflow) with an internal error. */
static int omni_settings_numbers(const char *key, const omni_json_t *v,
    char *path, size_t len, size_t cap, omni_settings_err_t *e)
{
    size_t i;
    int n;

    switch (v->type) {

    case OMNI_JSON_NUMBER:
        if (!isfinite(v->u.num.d)) {
            return omni_settings_fail(
                e, key, len ? path + 1 : NULL, "number out of range");
        }
        return 0;

    case OMNI_JSON_ARRAY:
        for (i = 0; i < v->u.arr.len; i++) {
            n = snprintf(path + len, cap - len, "[%zu]", i);
            if (omni_settings_numbers(key, v->u.arr.items[i], path,
                    len + (size_t)n < cap ? len + (size_t)n : cap - 1, cap, e)
                != 0) {
                return -1;
            }
        }
        path[len] = '\0';
        return 0;

    case OMNI_JSON_OBJECT:
        for (i = 0; i < v->u.obj.len; i++) {
            n = snprintf(path + len, cap - len, ".%s", v->u.obj.keys[i]);
            if (omni_settings_numbers(key, v->u.obj.values[i], path,
                    len + (size_t)n < cap ? len + (size_t)n : cap - 1, cap, e)
                != 0) {
                return -1;
            }
        }
        path[len] = '\0';
        return 0;

    default:
        return 0;
    }
}


int omni_settings_check(const char *key, const omni_json_t *value, char *field,
    size_t fieldlen, char *msg, size_t msglen)
{
    omni_settings_err_t e = {field, fieldlen, msg, msglen};
    const omni_settings_schema_t *s;
    const omni_settings_field_t *f;
    const omni_json_t *v;
    char path[128] = "";

    for (s = omni_settings_schemas; s->key; s++) {
        if (strcmp(s->key, key) == 0) {
            break;
        }
    }
    if (value == NULL) {
        return omni_settings_fail(&e, key, NULL, "expected a JSON value");
    }
    if (s->value != NULL) {
        return omni_settings_field(key, s->value, value, &e);
    }
    if (value->type != OMNI_JSON_OBJECT) {
        return omni_settings_fail(&e, key, NULL, "expected a JSON object");
    }
    if (omni_settings_numbers(key, value, path, 0, sizeof(path), &e) != 0) {
        return -1;
    }
    if (s->key == NULL) {
        return 0;
    }

    for (f = s->fields; f->name; f++) {
        v = omni_json_get(value, f->name);
        if (v == NULL) {
            if (!f->optional && f->kind != OMNI_CF_RENAMED) {
                return omni_settings_fail(&e, key, f->name, "required");
            }
            continue;
        }
        if (omni_settings_field(key, f, v, &e) != 0) {
            return -1;
        }
    }
    return s->rule ? s->rule(key, value, &e) : 0;
}


/* --- secrets ------------------------------------------------------------- */

static const char *const omni_secret_words[] = {"password", "passwd",
    "passphrase", "pwd", "secret", "token", "apikey", "privatekey",
    "credential", "credentials", NULL};


static int omni_word_is(const char *w, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(w, word, n) == 0;
}


int omni_secret_name(const char *name, size_t len)
{
    const char *prev = NULL, *w;
    size_t i, n, prev_n = 0;
    const char *const *s;

    for (i = 0; i < len;) {
        /* skip separators: anything but letters and digits */
        while (i < len
               && !((name[i] >= 'a' && name[i] <= 'z')
                    || (name[i] >= 'A' && name[i] <= 'Z')
                    || (name[i] >= '0' && name[i] <= '9'))) {
            i++;
        }
        if (i == len) {
            break;
        }
        w = name + i;
        for (n = 1; i + n < len; n++) {
            char c = name[i + n], p = name[i + n - 1];

            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                    || (c >= '0' && c <= '9'))
                || ((p >= 'a' && p <= 'z') && (c >= 'A' && c <= 'Z'))) {
                break;
            }
        }
        for (s = omni_secret_words; *s; s++) {
            if (omni_word_is(w, n, *s)) {
                return 1;
            }
        }
        if (prev && omni_word_is(w, n, "key")
            && (omni_word_is(prev, prev_n, "api")
                || omni_word_is(prev, prev_n, "private"))) {
            return 1;
        }
        prev = w;
        prev_n = n;
        i += n;
    }
    return 0;
}


static omni_json_t omni_redacted_node = {.type = OMNI_JSON_STRING,
    .u.str = {OMNI_REDACTED, sizeof(OMNI_REDACTED) - 1}};


int omni_redact(omni_json_t *v)
{
    size_t i;
    int n = 0;

    if (v == NULL) {
        return 0;
    }
    switch (v->type) {

    case OMNI_JSON_OBJECT:
        for (i = 0; i < v->u.obj.len; i++) {
            const char *k = v->u.obj.keys[i];

            if (omni_secret_name(k, strlen(k))) {
                v->u.obj.values[i] = &omni_redacted_node;
                n++;
            } else {
                n += omni_redact(v->u.obj.values[i]);
            }
        }
        return n;

    case OMNI_JSON_ARRAY:
        for (i = 0; i < v->u.arr.len; i++) {
            n += omni_redact(v->u.arr.items[i]);
        }
        return n;

    default:
        return 0;
    }
}


int omni_redact_write(struct evbuffer *out, const char *key, const char *text,
    size_t len, omni_arena_t *arena)
{
    omni_json_t *v;
    char err[128];

    if (key && omni_secret_name(key, strlen(key))) {
        v = NULL;
    } else {
        v = omni_json_parse(arena, text, len, NULL, err, sizeof(err));
    }
    if (v == NULL) {
        return omni_json_put_string(
            out, OMNI_REDACTED, sizeof(OMNI_REDACTED) - 1);
    }
    omni_redact(v);
    return omni_json_write(out, v);
}
