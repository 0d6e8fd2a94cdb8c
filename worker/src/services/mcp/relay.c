/* relay.c: GET streams to upstreams (relay.h).
 *
 *   watch ──> OPEN (GET, this process's session) ──200, SSE──> events:
 *               ^        notifications/resources/updated ──> updated()
 *               │ retry timer (1 s after a stream ends, 30 s after a
 *               └ refusal: 4xx/5xx, no session yet)
 *
 * An upstream sends resources/updated on the session that subscribed,
 * and only on its GET stream; the session is client.c's, one per process
 * and server, so each process watches the servers it forwarded a
 * subscription to. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/arena.h"
#include "lib/jsonrpc.h"
#include "lib/sse.h"
#include "io/log.h"
#include "services/mcp/relay.h"

#define OMNI_RELAY_MAX 32
#define OMNI_RELAY_MAX_EVENT (1024 * 1024)
#define OMNI_RELAY_STREAM_MS (3600L * 1000)

typedef struct {
    int used;
    char scope[33];
    char id[37];
    char *url;
    char **headers;
    char session[256], protocol[16];
    omni_out_req_t *q;
    long status;
    int sse;
    omni_sse_t parser;
    struct event *retry;
} omni_relay_t;

static omni_outbound_t *omni_relay_out;
static struct event_base *omni_relay_base;
static omni_mcp_updated_pt omni_relay_updated;
static omni_relay_t omni_relay[OMNI_RELAY_MAX];

static void omni_relay_open(omni_relay_t *w);


int omni_mcp_relay_start(
    struct event_base *base, const char *ca_file, omni_mcp_updated_pt updated)
{
    omni_outbound_config_t cfg = {0};

    cfg.ca_file = ca_file;
    cfg.max_bytes = OMNI_RELAY_MAX_EVENT;
    omni_relay_base = base;
    omni_relay_updated = updated;
    omni_relay_out = omni_outbound_create(base, &cfg);
    return omni_relay_out != NULL ? 0 : -1;
}


static void omni_relay_clear(omni_relay_t *w)
{
    int i;

    if (w->q != NULL) {
        omni_out_cancel(w->q);
        w->q = NULL;
    }
    if (w->sse) {
        omni_sse_free(&w->parser);
        w->sse = 0;
    }
    if (w->retry != NULL) {
        event_free(w->retry);
    }
    for (i = 0; w->headers != NULL && w->headers[i] != NULL; i++) {
        free(w->headers[i]);
    }
    free(w->headers);
    free(w->url);
    memset(w, 0, sizeof(*w));
}


void omni_mcp_relay_stop(void)
{
    int i;

    for (i = 0; i < OMNI_RELAY_MAX; i++) {
        if (omni_relay[i].used) {
            omni_relay_clear(&omni_relay[i]);
        }
    }
    if (omni_relay_out != NULL) {
        omni_outbound_destroy(omni_relay_out);
        omni_relay_out = NULL;
    }
}


static void omni_relay_retry_fired(evutil_socket_t fd, short what, void *arg)
{
    omni_relay_open(arg);
}


static void omni_relay_later(omni_relay_t *w, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_add(w->retry, &tv);
}


static void omni_relay_message(omni_relay_t *w, const char *text, size_t len)
{
    omni_arena_t arena;
    omni_rpc_msg_t m;
    const char *uri;
    char err[64];

    omni_arena_init(&arena, 4096);
    if (omni_rpc_parse(
            &arena, text, len, OMNI_RELAY_MAX_EVENT, &m, err, sizeof(err))
            == 0
        && m.kind == OMNI_RPC_NOTIFICATION
        && strcmp(m.method, "notifications/resources/updated") == 0) {
        uri = omni_json_string(omni_json_get(m.params, "uri"));
        if (uri != NULL && strlen(uri) <= 1024) {
            omni_relay_updated(w->scope, uri);
        }
    }
    omni_arena_free(&arena);
}


static int omni_relay_event(void *arg, const omni_sse_event_t *ev)
{
    omni_relay_t *w = arg;

    if (ev->type_len == 7 && memcmp(ev->type, "message", 7) == 0
        && ev->data_len > 0) {
        omni_relay_message(w, ev->data, ev->data_len);
    }
    return 0;
}


static void omni_relay_headers(void *arg, omni_out_req_t *q, long status)
{
    omni_relay_t *w = arg;
    const char *ct = omni_out_header(q, "Content-Type");

    w->status = status;
    if (status == 200 && ct != NULL
        && strncasecmp(ct, "text/event-stream", 17) == 0) {
        omni_sse_init(&w->parser, OMNI_RELAY_MAX_EVENT, omni_relay_event, w);
        w->sse = 1;
    }
}


static int omni_relay_data(
    void *arg, omni_out_req_t *q, const char *buf, size_t len)
{
    omni_relay_t *w = arg;

    if (w->sse) {
        omni_sse_feed(&w->parser, buf, len);
    }
    return 0;
}


static void omni_relay_done(void *arg, const omni_out_result_t *res)
{
    omni_relay_t *w = arg;
    int streamed = w->sse;

    w->q = NULL;
    if (w->sse) {
        omni_sse_free(&w->parser);
        w->sse = 0;
    }
    /* a stream that ran is reopened at once (its session may be new); a
     * refusal (no GET offered, session gone) is not hammered */
    omni_relay_later(w, streamed ? 1000 : 30000);
}


static void omni_relay_open(omni_relay_t *w)
{
    omni_out_spec_t spec;
    const char *hdr[48];
    char sid[300], ver[48];
    int n = 0, i;

    if (omni_mcp_client_session(w->id, w->session, sizeof(w->session),
            w->protocol, sizeof(w->protocol))
        != 0) {
        /* no legacy session in this process (any more) */
        omni_relay_later(w, 30000);
        return;
    }
    snprintf(sid, sizeof(sid), "Mcp-Session-Id: %s", w->session);
    snprintf(ver, sizeof(ver), "MCP-Protocol-Version: %s", w->protocol);
    hdr[n++] = "Accept: text/event-stream";
    hdr[n++] = ver;
    hdr[n++] = sid;
    for (i = 0; w->headers != NULL && w->headers[i] != NULL && n < 46; i++) {
        hdr[n++] = w->headers[i];
    }
    hdr[n] = NULL;
    memset(&spec, 0, sizeof(spec));
    spec.method = "GET";
    spec.url = w->url;
    spec.headers = hdr;
    spec.timeout_ms = OMNI_RELAY_STREAM_MS;
    spec.connect_timeout_ms = 5000;
    spec.idempotent = 1;
    spec.on_headers = omni_relay_headers;
    spec.on_data = omni_relay_data;
    spec.on_done = omni_relay_done;
    w->status = 0;
    w->q = omni_out_request(omni_relay_out, &spec, w);
    if (w->q == NULL) {
        omni_relay_later(w, 30000);
    }
}


int omni_mcp_relay_watch(const char *scope, const omni_mcp_target_t *t)
{
    omni_relay_t *w = NULL;
    char session[256], protocol[16];
    int i, n;

    if (omni_relay_out == NULL) {
        return -1;
    }
    for (i = 0; i < OMNI_RELAY_MAX; i++) {
        if (omni_relay[i].used && strcmp(omni_relay[i].scope, scope) == 0) {
            w = &omni_relay[i];
            break;
        }
        if (!omni_relay[i].used && w == NULL) {
            w = &omni_relay[i];
        }
    }
    if (w == NULL) {
        return -1;
    }
    if (w->used) {
        if (omni_mcp_client_session(
                w->id, session, sizeof(session), protocol, sizeof(protocol))
                == 0
            && strcmp(session, w->session) == 0
            && (w->q != NULL || evtimer_pending(w->retry, NULL))) {
            return 0;
        }
        /* a new session upstream: the old stream hears nothing more */
        if (w->q != NULL) {
            omni_out_cancel(w->q);
            w->q = NULL;
        }
        if (w->sse) {
            omni_sse_free(&w->parser);
            w->sse = 0;
        }
        evtimer_del(w->retry);
        omni_relay_open(w);
        return 0;
    }
    w->used = 1;
    snprintf(w->scope, sizeof(w->scope), "%s", scope);
    snprintf(w->id, sizeof(w->id), "%s", t->id);
    w->url = strdup(t->url);
    for (n = 0; t->headers != NULL && t->headers[n] != NULL; n++) {
    }
    w->headers = calloc(n + 1, sizeof(char *));
    w->retry = evtimer_new(omni_relay_base, omni_relay_retry_fired, w);
    if (w->url == NULL || w->headers == NULL || w->retry == NULL) {
        goto failed;
    }
    for (i = 0; i < n; i++) {
        w->headers[i] = strdup(t->headers[i]);
        if (w->headers[i] == NULL) {
            goto failed;
        }
    }
    omni_relay_open(w);
    return 0;

failed:
    omni_relay_clear(w);
    return -1;
}
