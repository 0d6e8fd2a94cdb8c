/* upstream.c: loading a registered server for a call or a probe, and
 * keeping its circuit breaker (lib/breaker.c) in Postgres. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "lib/seal.h"
#include "io/clients.h"
#include "io/log.h"
#include "io/publish.h"
#include "http/metrics.h"
#include "services/dashboard/dashboard.h"
#include "services/mcp/registry.h"
#include "services/mcp/state.h"
#include "services/mcp/upstream.h"

#define OMNI_MCP_SECRET_MAX 8192

static int omni_mcp_breaker_stmt;


int omni_mcp_upstream_init(void)
{
    /* The transition is made by the statement on the row as it is now
     * (locked), not as this process loaded it: concurrent outcomes from
     * many processes each count, and exactly one of them sees (and
     * announces) the state change. Same rules as lib/breaker.c. */
    omni_mcp_breaker_stmt = omni_db_statement("mcp_breaker_outcome",
        "UPDATE omni2.circuit_breakers AS b SET"
        " state = CASE WHEN $2::boolean THEN 'closed'"
        "  WHEN o.trips THEN 'open' ELSE o.state END,"
        " failures = CASE WHEN $2::boolean THEN 0 ELSE o.failures + 1 END,"
        " opened_at = CASE WHEN o.trips THEN now() ELSE o.opened_at END,"
        " next_probe_at = CASE WHEN $2::boolean THEN NULL"
        "  WHEN o.trips THEN now() + $4::bigint * interval '1 millisecond'"
        "  ELSE o.next_probe_at END,"
        " updated_at = now()"
        " FROM (SELECT x.server_id, x.state, x.failures, x.opened_at,"
        "  x.next_probe_at, NOT $2::boolean AND (x.state = 'half_open'"
        "   OR x.state = 'open' AND x.next_probe_at <= now()"
        "   OR x.state = 'closed' AND x.failures + 1 >= $3::int) AS trips"
        "  FROM omni2.circuit_breakers AS x WHERE x.server_id = $1::uuid"
        "  FOR UPDATE) AS o"
        " WHERE b.server_id = o.server_id"
        " RETURNING o.state, b.state, b.failures,"
        " coalesce((extract(epoch FROM b.opened_at) * 1000)::bigint, 0),"
        " coalesce((extract(epoch FROM b.next_probe_at) * 1000)::bigint, 0),"
        " o.trips, o.failures");
    return omni_mcp_breaker_stmt < 0 ? -1 : 0;
}


int64_t omni_mcp_now_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}


static int omni_mcp_unhex(const char *s, size_t n, unsigned char *out)
{
    size_t i;
    unsigned v;

    for (i = 0; i < n / 2; i++) {
        if (sscanf(s + 2 * i, "%2x", &v) != 1) {
            return -1;
        }
        out[i] = (unsigned char)v;
    }
    return 0;
}


/* A header value given by reference ({"secret_file": name} or
 * {"secret_env": name}), read at each use so a rotated secret (a mounted
 * Secret's file, updated in place) takes effect without a reload: 0 with
 * *out in the arena, or -1 (logged without the value). */
static int omni_mcp_secret_value(omni_arena_t *arena, const char *id,
    const char *header, const omni_json_t *ref, const char **out)
{
    const char *kind = ref->u.obj.keys[0];
    const char *name = omni_json_string(ref->u.obj.values[0]);
    const char *dir = omni_clients.cfg->mcp_secrets_dir, *why = NULL;
    char path[4096], *buf = NULL;
    struct stat st;
    ssize_t got = 0;
    size_t len;
    int fd = -1;

    if (name == NULL || !omni_mcp_secret_name_valid(kind, name)) {
        why = "not a valid reference";
        kind = "reference";
        name = NULL;
    } else if (strcmp(kind, "secret_env") == 0) {
        if (getenv(name) == NULL) {
            why = "the variable is not set";
        } else {
            buf = omni_arena_strndup(arena, getenv(name), strlen(getenv(name)));
        }
    } else if (dir == NULL) {
        why = "OMNI_MCP_SECRETS_DIR is not set";
    } else if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name)
                   >= sizeof(path)
               || (fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0
               || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        why = "the file cannot be opened";
    } else if (st.st_size > OMNI_MCP_SECRET_MAX
               || (buf = omni_arena_alloc(arena, OMNI_MCP_SECRET_MAX + 2))
                      == NULL
               || (got = read(fd, buf, OMNI_MCP_SECRET_MAX + 1)) < 0
               || got > OMNI_MCP_SECRET_MAX) {
        why = "the file cannot be read or is over 8192 bytes";
        buf = NULL;
    } else {
        buf[got] = '\0';
    }
    if (buf != NULL) {
        len = strlen(buf);
        if (fd >= 0 && len != (size_t)got) {
            len = 0; /* a NUL byte inside */
        }
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
            buf[--len] = '\0';
        }
        if (len == 0 || len > OMNI_MCP_SECRET_MAX
            || strpbrk(buf, "\r\n") != NULL) {
            why = "the value is empty, has a line break or a NUL byte";
            buf = NULL;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    if (buf == NULL) {
        omni_log(OMNI_LOG_WARN, "cannot read an MCP server's header secret",
            "\"server\":\"%s\",\"header\":\"%.64s\",\"%s\":\"%.128s\","
            "\"reason\":\"%s\"",
            id, header, kind, name ? name : "", why);
        return -1;
    }
    *out = buf;
    return 0;
}


/* The sealed headers as "Name: value" lines, or NULL when none. */
static int omni_mcp_open_headers(omni_arena_t *arena, const char *id,
    const char *hex, size_t hexlen, const char *const **out)
{
    unsigned char *sealed, *plain;
    const omni_json_t *obj;
    const char **lines, *value;
    char err[64];
    size_t n = hexlen / 2, plen, i, len;

    *out = NULL;
    if (hexlen == 0) {
        return 0;
    }
    sealed = omni_arena_alloc(arena, n);
    plain = omni_arena_alloc(arena, n + 1);
    if (sealed == NULL || plain == NULL || omni_mcp_secret_key == NULL
        || omni_mcp_unhex(hex, hexlen, sealed) != 0
        || omni_unseal(
               omni_mcp_secret_key, id, strlen(id), sealed, n, plain, &plen)
               != 0) {
        return -1;
    }
    obj = omni_json_parse(
        arena, (const char *)plain, plen, NULL, err, sizeof(err));
    if (obj == NULL || obj->type != OMNI_JSON_OBJECT) {
        return -1;
    }
    lines = omni_arena_alloc(arena, (obj->u.obj.len + 1) * sizeof(char *));
    if (lines == NULL) {
        return -1;
    }
    for (i = 0; i < obj->u.obj.len; i++) {
        value = omni_json_string(obj->u.obj.values[i]);
        if (obj->u.obj.values[i]->type == OMNI_JSON_OBJECT
            && (obj->u.obj.values[i]->u.obj.len != 1
                || omni_mcp_secret_value(arena, id, obj->u.obj.keys[i],
                       obj->u.obj.values[i], &value)
                       != 0)) {
            return -2;
        }
        if (value == NULL) {
            return -1;
        }
        len = strlen(obj->u.obj.keys[i]) + strlen(value) + 3;
        lines[i] = omni_arena_alloc(arena, len);
        if (lines[i] == NULL) {
            return -1;
        }
        snprintf((char *)lines[i], len, "%s: %s", obj->u.obj.keys[i], value);
    }
    lines[i] = NULL;
    *out = lines;
    return 0;
}


int omni_mcp_upstream_parse(
    omni_arena_t *arena, PGresult *res, int row, omni_mcp_upstream_t *u)
{
    int rc;

    memset(u, 0, sizeof(*u));
    snprintf(u->id, sizeof(u->id), "%s", PQgetvalue(res, row, 0));
    u->name = omni_arena_strndup(
        arena, PQgetvalue(res, row, 1), (size_t)PQgetlength(res, row, 1));
    u->target.id = u->id;
    u->target.url = omni_arena_strndup(
        arena, PQgetvalue(res, row, 2), (size_t)PQgetlength(res, row, 2));
    u->target.timeout_ms = atol(PQgetvalue(res, row, 4));
    u->enabled = PQgetvalue(res, row, 5)[0] == 't';
    u->conf.failure_threshold = atoi(PQgetvalue(res, row, 6));
    u->conf.cooldown_ms = atol(PQgetvalue(res, row, 7));
    u->conf.jitter_pct = 10;
    omni_breaker_init(&u->breaker);
    omni_breaker_state_parse(PQgetvalue(res, row, 8), &u->breaker.state);
    u->breaker.failures = atoi(PQgetvalue(res, row, 9));
    u->breaker.opened_at_ms = atoll(PQgetvalue(res, row, 10));
    u->breaker.next_probe_ms = atoll(PQgetvalue(res, row, 11));
    u->before = u->breaker;
    if (u->name == NULL || u->target.url == NULL) {
        return -1;
    }
    rc = omni_mcp_open_headers(arena, u->id, PQgetvalue(res, row, 3),
        (size_t)PQgetlength(res, row, 3), &u->target.headers);
    if (rc == -1) {
        omni_log(OMNI_LOG_ERROR, "cannot open an MCP server's headers",
            "\"server\":\"%s\"", u->id);
    }
    return rc;
}


int omni_mcp_upstream_read(
    omni_req_t *r, PGresult *res, int row, omni_mcp_upstream_t *u)
{
    switch (omni_mcp_upstream_parse(&r->arena, res, row, u)) {
    case 0:
        return 0;
    case -2:
        omni_respond_error(r, 502, "upstream_error",
            "MCP server %s: a header's secret cannot be read (the worker's "
            "log says which and why)",
            u->name);
        return -1;
    default:
        omni_respond_error(r, 500, "internal_error",
            "the server's stored headers cannot be opened with the "
            "configured OMNI_MCP_SECRET_KEY_FILE");
        return -1;
    }
}


int omni_mcp_breaker_outcome(omni_mcp_upstream_t *u, int ok)
{
    uint32_t rnd = 0;

    if (ok) {
        omni_breaker_success(&u->breaker);
    } else {
        RAND_bytes((unsigned char *)&rnd, sizeof(rnd));
        omni_breaker_failure(&u->breaker, &u->conf, omni_mcp_now_ms(), rnd);
    }
    return u->breaker.state != u->before.state
           || u->breaker.failures != u->before.failures;
}


typedef struct {
    omni_mcp_upstream_t *u; /* NULL when nobody waits */
    char id[37], name[64];
    void (*done)(void *arg);
    void *arg;
} omni_mcp_saving_t;


/* Every opening is counted, a failed half-open trial's too (the row then
 * reads open -> open: trips says it opened again); only up and down are
 * announced, a failed trial leaves the server down as it was. */
static void omni_mcp_breaker_announce(const char *id, const char *name,
    omni_breaker_state_t before, omni_breaker_state_t after, int trips)
{
    char detail[200], summary[128];
    int down;

    if (trips) {
        omni_metrics_mcp_breaker(1);
    } else if (before != OMNI_BREAKER_CLOSED && after == OMNI_BREAKER_CLOSED) {
        omni_metrics_mcp_breaker(0);
    }
    if (before == after || after == OMNI_BREAKER_HALF_OPEN
        || (before == OMNI_BREAKER_HALF_OPEN && after == OMNI_BREAKER_OPEN)) {
        return;
    }
    down = after == OMNI_BREAKER_OPEN;
    snprintf(detail, sizeof(detail),
        "{\"server_id\":\"%s\",\"server\":\"%s\",\"state\":\"%s\"}", id, name,
        omni_breaker_state_name(after));
    omni_publish("mcp", down ? "mcp.server.down" : "mcp.server.up", detail);
    snprintf(summary, sizeof(summary), "MCP server %s is %s", name,
        down ? "down" : "up");
    omni_activity_record(down ? "mcp.server.down" : "mcp.server.up", NULL,
        summary, detail, NULL, NULL);
}


static void omni_mcp_breaker_done(void *arg)
{
    omni_mcp_saving_t *s = arg;

    if (s->done != NULL) {
        s->done(s->arg);
    }
    free(s);
}


static void omni_mcp_breaker_saved(
    void *arg, omni_db_status_t st, PGresult *res)
{
    omni_mcp_saving_t *s = arg;
    omni_breaker_state_t before, after;
    int bump = 0;

    if (st != OMNI_DB_OK) {
        omni_log(OMNI_LOG_WARN, "cannot store an MCP circuit breaker", NULL);
    } else if (PQntuples(res) == 1
               && omni_breaker_state_parse(PQgetvalue(res, 0, 0), &before) == 0
               && omni_breaker_state_parse(PQgetvalue(res, 0, 1), &after)
                      == 0) {
        /* kept call rows (call.c) hold the breaker: its state changing,
         * or failures starting or ending, must reach every process */
        bump = before != after
               || (atoi(PQgetvalue(res, 0, 6)) == 0)
                      != (atoi(PQgetvalue(res, 0, 2)) == 0);
        omni_mcp_breaker_announce(
            s->id, s->name, before, after, PQgetvalue(res, 0, 5)[0] == 't');
        if (s->u != NULL) {
            s->u->breaker.state = after;
            s->u->breaker.failures = atoi(PQgetvalue(res, 0, 2));
            s->u->breaker.opened_at_ms = atoll(PQgetvalue(res, 0, 3));
            s->u->breaker.next_probe_ms = atoll(PQgetvalue(res, 0, 4));
        }
    }
    if (bump) {
        /* whoever waits (a probe's answer) goes on once every process can
         * see the change: its next call finds the breaker as it is now */
        if (omni_mcp_state_bump_then(omni_mcp_breaker_done, s) == 0) {
            return;
        }
    }
    omni_mcp_breaker_done(s);
}


int omni_mcp_breaker_save(
    omni_mcp_upstream_t *u, int ok, void (*done)(void *arg), void *arg)
{
    omni_mcp_saving_t *s;
    const char *values[4];
    char threshold[16], cooldown[24];
    uint32_t rnd = 0;
    int64_t jitter;

    s = malloc(sizeof(*s));
    if (s == NULL) {
        return -1;
    }
    s->u = done != NULL ? u : NULL;
    snprintf(s->id, sizeof(s->id), "%s", u->id);
    snprintf(s->name, sizeof(s->name), "%s", u->name);
    s->done = done;
    s->arg = arg;
    RAND_bytes((unsigned char *)&rnd, sizeof(rnd));
    jitter = u->conf.cooldown_ms * u->conf.jitter_pct / 100;
    snprintf(threshold, sizeof(threshold), "%d", u->conf.failure_threshold);
    snprintf(cooldown, sizeof(cooldown), "%lld",
        (long long)(u->conf.cooldown_ms
                    + (int64_t)(rnd % (uint64_t)(1 + jitter))));
    values[0] = u->id;
    values[1] = ok ? "true" : "false";
    values[2] = threshold;
    values[3] = cooldown;
    if (omni_db_query(omni_clients.db, omni_mcp_breaker_stmt, 4, values,
            omni_mcp_breaker_saved, s)
        != OMNI_DB_OK) {
        free(s);
        return -1;
    }
    return 0;
}
