/* client.c: one JSON-RPC exchange with an MCP upstream (client.h).
 *
 * The generation is learned per server and kept in this process:
 *
 *            known modern                            known legacy, ready
 *   START ─────────────────────────────┐  ┌──────────────────────────┐
 *     │ unknown                        v  │                          v
 *     └──> DISCOVER ──result──> (modern) CALL ──response/failure──> DONE
 *              │                          ^  │
 *              └──other──> INIT ──> INITIALIZED
 *                           ^                │ the session is gone
 *                           └────────────────┘ (404, or 400 naming it), once
 *
 * DISCOVER sends a stateless server/discover; anything but a result means
 * a legacy server: initialize (the session id comes back in
 * Mcp-Session-Id), notifications/initialized, then the call with
 * MCP-Protocol-Version and the session on every request. One exchange per
 * server and process opens a session (the opener); the others that need
 * one meanwhile wait for it (WAIT, on their own deadline) and go on with
 * its session, or, when it fails or goes away, the first of them opens
 * one instead: a cold start or an upstream's restart costs the upstream
 * one session per process, not one per concurrent call. A modern call
 * carries _meta and the Mcp-Method/Mcp-Name headers. Each step's answer
 * is JSON or an SSE stream whose events are JSON-RPC messages:
 * notifications are relayed, the response with our id ends the step. */
#define _GNU_SOURCE /* strcasestr */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "lib/jsonrpc.h"
#include "lib/sse.h"
#include "io/log.h"
#include "services/mcp/client.h"

#define OMNI_MCP_MAX_BODY (4 * 1024 * 1024)
#define OMNI_MCP_BUCKETS 256
#define OMNI_MCP_TIMED_OUT                                                     \
    "the upstream did not answer within the server's timeout"

/* what Omni relays from upstreams to its own clients (endpoint.c): each
 * request is relayed only to a client that declared the capability */
#define OMNI_MCP_CLIENT_CAPS                                                   \
    "{\"sampling\":{},\"elicitation\":{\"form\":{},\"url\":{}},"               \
    "\"roots\":{}}"

#define OMNI_MCP_META_CAPS(caps)                                               \
    "\"io.modelcontextprotocol/protocolVersion\":\"" OMNI_MCP_MODERN "\","     \
    "\"io.modelcontextprotocol/clientCapabilities\":" caps ","                 \
    "\"io.modelcontextprotocol/clientInfo\":{\"name\":\"omni\","               \
    "\"version\":\"1\"}"
#define OMNI_MCP_META OMNI_MCP_META_CAPS("{}")

typedef enum {
    OMNI_MCP_START,
    OMNI_MCP_DISCOVER,
    OMNI_MCP_INIT,
    OMNI_MCP_INITIALIZED,
    OMNI_MCP_WAIT,
    OMNI_MCP_CALL
} omni_mcp_state_t;

/* what this process knows of a server, in a chain of its hash bucket:
 * kept until the server changes (omni_mcp_client_forget), never evicted
 * by another server, as each new entry would cost that server a new
 * discovery and a new upstream session */
typedef struct omni_mcp_known_s omni_mcp_known_t;
struct omni_mcp_known_s {
    omni_mcp_known_t *next;
    char id[37];
    int generation; /* 0 unknown, 1 legacy, 2 modern */
    int ready;      /* legacy: initialized */
    char protocol[16];
    char session[256];
};

struct omni_mcp_rpc_s {
    omni_mcp_state_t state;
    omni_mcp_target_t t;
    const char *method, *name, *params;
    int idempotent, reinitialized, sent;
    omni_arena_t *arena;
    omni_mcp_note_pt note;
    omni_mcp_reply_pt done;
    void *arg;
    omni_out_req_t *q;
    int64_t rpc_id;
    long status;
    int sse;
    omni_sse_t parser;
    struct evbuffer *body;
    omni_rpc_msg_t msg;
    int have_msg;
    char problem[192];
    char session[256]; /* legacy: the session this exchange speaks on */
    omni_mcp_reply_t rep;
    uint64_t start_ns;
    /* legacy: in the list of exchanges opening a session (opening) or
     * waiting for one (state WAIT, until timer) */
    int opening;
    struct event *timer;
    omni_mcp_rpc_t *prev, *next;
};

/* an upstream's request to the client, answered on its session */
struct omni_mcp_ask_s {
    omni_mcp_target_t t;
    char *id; /* the request's id, JSON text */
    char protocol[16];
    char session[256];
};

static omni_outbound_t *omni_mcp_out;
static struct event_base *omni_mcp_base;
static omni_mcp_rpc_t *omni_mcp_sessions_pending;
static omni_mcp_rpc_t *omni_mcp_asking;
static const omni_json_t *omni_mcp_asking_id;
static int omni_mcp_asked;
static omni_mcp_known_t *omni_mcp_known[OMNI_MCP_BUCKETS];
static int64_t omni_mcp_next_id = 1;

static int omni_mcp_send(omni_mcp_rpc_t *c);
static void omni_mcp_finish(omni_mcp_rpc_t *c);
static void omni_mcp_fail(omni_mcp_rpc_t *c, const char *why);


/* Why omni_mcp_send() sent nothing. */
static const char *omni_mcp_unsent(const omni_mcp_rpc_t *c)
{
    return c->rep.timeout ? OMNI_MCP_TIMED_OUT : "cannot send to the upstream";
}


static uint64_t omni_mcp_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}


int omni_mcp_client_start(struct event_base *base, const char *ca_file)
{
    omni_outbound_config_t cfg = {0};

    cfg.ca_file = ca_file;
    cfg.max_bytes = OMNI_MCP_MAX_BODY;
    omni_mcp_base = base;
    omni_mcp_out = omni_outbound_create(base, &cfg);
    return omni_mcp_out ? 0 : -1;
}


void omni_mcp_client_stop(void)
{
    omni_mcp_known_t *k;
    size_t i;

    omni_outbound_destroy(omni_mcp_out);
    omni_mcp_out = NULL;
    for (i = 0; i < OMNI_MCP_BUCKETS; i++) {
        while ((k = omni_mcp_known[i]) != NULL) {
            omni_mcp_known[i] = k->next;
            free(k);
        }
    }
}


/* The bucket of server id's entry. */
static omni_mcp_known_t **omni_mcp_bucket(const char *id)
{
    unsigned h = 5381;
    const char *p;

    for (p = id; *p; p++) {
        h = h * 33 + (unsigned char)*p;
    }
    return &omni_mcp_known[h % OMNI_MCP_BUCKETS];
}


/* The entry of server id; created when create (NULL: no memory). */
static omni_mcp_known_t *omni_mcp_lookup(const char *id, int create)
{
    omni_mcp_known_t **b = omni_mcp_bucket(id), *k;

    for (k = *b; k != NULL; k = k->next) {
        if (strcmp(k->id, id) == 0) {
            return k;
        }
    }
    if (!create || (k = calloc(1, sizeof(*k))) == NULL) {
        return NULL;
    }
    snprintf(k->id, sizeof(k->id), "%s", id);
    k->next = *b;
    *b = k;
    return k;
}


void omni_mcp_client_forget(const char *id)
{
    omni_mcp_known_t **p, *k;

    for (p = omni_mcp_bucket(id); (k = *p) != NULL; p = &k->next) {
        if (strcmp(k->id, id) == 0) {
            *p = k->next;
            free(k);
            return;
        }
    }
}


int omni_mcp_client_session(
    const char *id, char *session, size_t n, char *protocol, size_t pn)
{
    omni_mcp_known_t *k = omni_mcp_lookup(id, 0);

    if (k == NULL || k->generation != 1 || !k->ready || k->session[0] == '\0') {
        return -1;
    }
    snprintf(session, n, "%s", k->session);
    snprintf(protocol, pn, "%s", k->protocol);
    return 0;
}


const char *omni_mcp_client_generation(const char *id)
{
    omni_mcp_known_t *k = omni_mcp_lookup(id, 0);

    if (k == NULL || k->generation == 0) {
        return NULL;
    }
    return k->generation == 2 ? "modern" : "legacy";
}


static void omni_mcp_reset_step(omni_mcp_rpc_t *c)
{
    c->q = NULL;
    c->status = 0;
    if (c->sse) {
        omni_sse_free(&c->parser);
        c->sse = 0;
    }
    evbuffer_drain(c->body, evbuffer_get_length(c->body));
    c->have_msg = 0;
    c->problem[0] = '\0';
}


/* The first exchange for server id in the pending list that opens a
 * session (opening) or waits for one (!opening), or NULL. */
static omni_mcp_rpc_t *omni_mcp_pending(const char *id, int opening)
{
    omni_mcp_rpc_t *c;

    for (c = omni_mcp_sessions_pending; c != NULL; c = c->next) {
        if (c->opening == opening && strcmp(c->t.id, id) == 0) {
            return c;
        }
    }
    return NULL;
}


/* Appends c to the pending list: waiters are served in arrival order. */
static void omni_mcp_pend(omni_mcp_rpc_t *c)
{
    omni_mcp_rpc_t **p = &omni_mcp_sessions_pending;

    c->prev = NULL;
    while (*p != NULL) {
        c->prev = *p;
        p = &(*p)->next;
    }
    c->next = NULL;
    *p = c;
}


/* Takes c off the pending list (if it is on it), and its wait timer. */
static void omni_mcp_unpend(omni_mcp_rpc_t *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else if (omni_mcp_sessions_pending == c) {
        omni_mcp_sessions_pending = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
    c->opening = 0;
    if (c->timer != NULL) {
        event_free(c->timer);
        c->timer = NULL;
    }
}


static void omni_mcp_wait_over(evutil_socket_t fd, short what, void *arg)
{
    omni_mcp_rpc_t *c = arg;

    omni_mcp_unpend(c);
    c->rep.timeout = 1;
    omni_mcp_fail(c, OMNI_MCP_TIMED_OUT);
}


/* c waits, at most left_ms, for the session another exchange is opening.
 * Nothing of it reached the upstream (or the upstream refused it). */
static int omni_mcp_wait(omni_mcp_rpc_t *c, long left_ms)
{
    struct timeval tv;

    c->timer = evtimer_new(omni_mcp_base, omni_mcp_wait_over, c);
    tv.tv_sec = left_ms / 1000;
    tv.tv_usec = (left_ms % 1000) * 1000;
    if (c->timer == NULL || evtimer_add(c->timer, &tv) != 0) {
        if (c->timer != NULL) {
            event_free(c->timer);
            c->timer = NULL;
        }
        return -1;
    }
    c->state = OMNI_MCP_WAIT;
    c->sent = 0;
    omni_mcp_pend(c);
    return 0;
}


/* The opener of server id's session published it: every waiter goes on
 * with it. The list is searched again after each, as a waiter that
 * fails calls its owner, who may cancel others. */
static void omni_mcp_wake(const char *server, const char *opened)
{
    omni_mcp_rpc_t *w;
    char id[64], session[256];

    snprintf(id, sizeof(id), "%s", server);
    snprintf(session, sizeof(session), "%s", opened);
    while ((w = omni_mcp_pending(id, 0)) != NULL) {
        omni_mcp_unpend(w);
        snprintf(w->session, sizeof(w->session), "%s", session);
        w->state = OMNI_MCP_CALL;
        if (omni_mcp_send(w) != 0) {
            omni_mcp_fail(w, omni_mcp_unsent(w));
        }
    }
}


/* The opener of server id's session failed or went away: the first
 * waiter opens one instead (one whose deadline passed fails, and the
 * next tries). */
static void omni_mcp_hand_over(const char *id)
{
    omni_mcp_rpc_t *w;

    while ((w = omni_mcp_pending(id, 0)) != NULL) {
        omni_mcp_unpend(w);
        w->state = OMNI_MCP_INIT;
        if (omni_mcp_send(w) == 0) {
            return;
        }
        omni_mcp_unpend(w);
        omni_mcp_fail(w, omni_mcp_unsent(w));
    }
}


static void omni_mcp_ignore(void *arg, const omni_out_result_t *res)
{
}


omni_mcp_ask_t *omni_mcp_ask_take(void)
{
    omni_mcp_rpc_t *c = omni_mcp_asking;
    omni_mcp_known_t *k;
    omni_mcp_ask_t *a;
    struct evbuffer *b;

    if (c == NULL || omni_mcp_asked) {
        return NULL;
    }
    k = omni_mcp_lookup(c->t.id, 0);
    a = omni_arena_alloc(c->arena, sizeof(*a));
    b = evbuffer_new();
    if (k == NULL || a == NULL || b == NULL) {
        if (b != NULL) {
            evbuffer_free(b);
        }
        return NULL;
    }
    omni_json_write(b, omni_mcp_asking_id);
    a->id = omni_arena_strndup(
        c->arena, (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    evbuffer_free(b);
    if (a->id == NULL) {
        return NULL;
    }
    a->t = c->t;
    snprintf(a->protocol, sizeof(a->protocol), "%s", k->protocol);
    snprintf(a->session, sizeof(a->session), "%s", c->session);
    omni_mcp_asked = 1;
    return a;
}


int omni_mcp_ask_answer(
    const omni_mcp_ask_t *a, const char *result, const char *error)
{
    omni_out_spec_t spec;
    const char *hdr[48];
    struct evbuffer *b = evbuffer_new();
    char sid[300], ver[48];
    int n = 0, i, rc;

    if (b == NULL) {
        return -1;
    }
    evbuffer_add_printf(b, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"%s\":%s}", a->id,
        result != NULL ? "result" : "error", result != NULL ? result : error);
    snprintf(sid, sizeof(sid), "Mcp-Session-Id: %s", a->session);
    snprintf(ver, sizeof(ver), "MCP-Protocol-Version: %s", a->protocol);
    hdr[n++] = "Content-Type: application/json";
    hdr[n++] = "Accept: application/json, text/event-stream";
    hdr[n++] = ver;
    if (a->session[0]) {
        hdr[n++] = sid;
    }
    for (i = 0; a->t.headers && a->t.headers[i] && n < 46; i++) {
        hdr[n++] = a->t.headers[i];
    }
    hdr[n] = NULL;
    memset(&spec, 0, sizeof(spec));
    spec.url = a->t.url;
    spec.headers = hdr;
    spec.body = (const char *)evbuffer_pullup(b, -1);
    spec.body_len = evbuffer_get_length(b);
    spec.timeout_ms = 5000;
    spec.idempotent = 1;
    spec.on_done = omni_mcp_ignore;
    rc = omni_out_request(omni_mcp_out, &spec, NULL) != NULL ? 0 : -1;
    evbuffer_free(b);
    return rc;
}


/* The upstream asks the client something: note may take it; otherwise
 * the upstream hears at once that this client offers no such method
 * (rather than waiting out its timeout). */
static void omni_mcp_request(omni_mcp_rpc_t *c, const omni_rpc_msg_t *m)
{
    omni_mcp_ask_t *a;

    if (c->state != OMNI_MCP_CALL || m->id == NULL) {
        return;
    }
    omni_mcp_asking = c;
    omni_mcp_asking_id = m->id;
    omni_mcp_asked = 0;
    if (c->note != NULL) {
        c->note(c->arg, m->root);
    }
    if (!omni_mcp_asked) {
        a = omni_mcp_ask_take();
        if (a != NULL) {
            omni_mcp_ask_answer(a, NULL,
                "{\"code\":-32601,\"message\":\"Method not found: the "
                "client does not offer it\"}");
        }
    }
    omni_mcp_asking = NULL;
    omni_mcp_asking_id = NULL;
}


/* A message of the current step's answer. */
static void omni_mcp_message(omni_mcp_rpc_t *c, const char *text, size_t len)
{
    omni_rpc_msg_t m;
    char err[120];

    if (omni_rpc_parse(
            c->arena, text, len, OMNI_MCP_MAX_BODY, &m, err, sizeof(err))
        != 0) {
        snprintf(c->problem, sizeof(c->problem),
            "malformed JSON-RPC from the upstream: %s", err);
        return;
    }
    switch (m.kind) {

    case OMNI_RPC_NOTIFICATION:
        if (c->state == OMNI_MCP_CALL && c->note != NULL) {
            c->note(c->arg, m.root);
        }
        return;

    case OMNI_RPC_REQUEST:
        omni_mcp_request(c, &m);
        return;

    default:
        if (omni_rpc_id_is(&m, c->rpc_id)
            || (m.id == NULL && m.kind == OMNI_RPC_ERROR)) {
            c->msg = m;
            c->have_msg = 1;
        }
        return;
    }
}


static int omni_mcp_sse_event(void *arg, const omni_sse_event_t *ev)
{
    omni_mcp_rpc_t *c = arg;

    if (ev->type_len == 7 && memcmp(ev->type, "message", 7) == 0
        && ev->data_len > 0) {
        omni_mcp_message(c, ev->data, ev->data_len);
    }
    return c->have_msg ? 1 : 0;
}


static void omni_mcp_on_headers(void *arg, omni_out_req_t *q, long status)
{
    omni_mcp_rpc_t *c = arg;
    const char *ct = omni_out_header(q, "Content-Type");
    const char *sid = omni_out_header(q, "Mcp-Session-Id");

    c->status = status;
    c->sent = 1;
    if (ct != NULL && strncasecmp(ct, "text/event-stream", 17) == 0) {
        omni_sse_init(&c->parser, OMNI_MCP_MAX_BODY, omni_mcp_sse_event, c);
        c->sse = 1;
    }
    if (c->state == OMNI_MCP_INIT && sid != NULL) {
        snprintf(c->session, sizeof(c->session), "%s", sid);
    }
}


static int omni_mcp_on_data(
    void *arg, omni_out_req_t *q, const char *buf, size_t len)
{
    omni_mcp_rpc_t *c = arg;
    int rc;

    c->rep.bytes_in += len;
    if (!c->sse) {
        evbuffer_add(c->body, buf, len);
        return 0;
    }
    rc = omni_sse_feed(&c->parser, buf, len);
    if (rc == OMNI_SSE_TOO_LARGE) {
        snprintf(c->problem, sizeof(c->problem),
            "the upstream's event stream holds an event over 4 MiB");
    }
    if (rc != 0) {
        /* our response is in: the server ends the stream right after
         * it, and reading that end keeps the connection for the next
         * call (a cancel would close it, a new connection per call). A
         * useless stream is closed. */
        if (c->have_msg && c->problem[0] == '\0') {
            omni_out_release(q);
        } else {
            omni_out_cancel(q);
        }
        c->q = NULL;
        omni_mcp_finish(c);
    }
    return 0;
}


static void omni_mcp_fail(omni_mcp_rpc_t *c, const char *why)
{
    omni_mcp_reply_pt done = c->done;
    int opening = c->opening;
    char id[64];

    snprintf(id, sizeof(id), "%s", c->t.id);
    omni_mcp_unpend(c);
    c->rep.result = NULL;
    c->rep.error = NULL;
    c->rep.failure = omni_arena_strndup(c->arena, why, strlen(why));
    c->rep.unsent = !c->sent;
    c->rep.latency_us = (omni_mcp_now_ns() - c->start_ns) / 1000;
    if (c->sse) {
        omni_sse_free(&c->parser);
    }
    evbuffer_free(c->body);
    done(c->arg, &c->rep);
    free(c);
    if (opening) {
        omni_mcp_hand_over(id);
    }
}


/* The upstream no longer knows the legacy session the request carried, so
 * it ran nothing: 404 is the spec's answer; servers built on the SDK's
 * examples (server-everything among them) answer 400 with an error about
 * the session instead, as they do after every restart. The request goes
 * once more, on a new session. */
static int omni_mcp_session_gone(
    const omni_mcp_rpc_t *c, const omni_mcp_known_t *k)
{
    if (k->generation != 1 || c->reinitialized) {
        return 0;
    }
    return c->status == 404
           || (c->status == 400 && c->have_msg && c->msg.kind == OMNI_RPC_ERROR
               && strcasestr(c->msg.message, "session") != NULL);
}


/* The step's answer is complete (or the exchange failed: c->problem). */
static void omni_mcp_finish(omni_mcp_rpc_t *c)
{
    omni_mcp_known_t *k = omni_mcp_lookup(c->t.id, 1);
    omni_mcp_reply_pt done;
    const char *v;
    char why[256];
    size_t len;

    if (!c->sse && evbuffer_get_length(c->body) > 0 && c->problem[0] == '\0') {
        len = evbuffer_get_length(c->body);
        omni_mcp_message(c, (const char *)evbuffer_pullup(c->body, -1), len);
    }
    if (k == NULL) {
        omni_mcp_fail(c, "out of memory");
        return;
    }

    switch (c->state) {

    case OMNI_MCP_DISCOVER:
        if (c->have_msg && c->msg.kind == OMNI_RPC_RESULT
            && c->status / 100 == 2) {
            k->generation = 2;
            snprintf(k->protocol, sizeof(k->protocol), OMNI_MCP_MODERN);
            c->state = OMNI_MCP_CALL;
        } else {
            c->state = OMNI_MCP_INIT;
        }
        break;

    case OMNI_MCP_INIT:
        if (!c->have_msg && c->status / 100 != 2) {
            snprintf(why, sizeof(why),
                "initialize failed: the upstream answered HTTP %ld", c->status);
            omni_mcp_fail(c, why);
            return;
        }
        if (!c->have_msg || c->msg.kind != OMNI_RPC_RESULT) {
            snprintf(why, sizeof(why), "initialize failed: %s",
                c->have_msg     ? c->msg.message
                : c->problem[0] ? c->problem
                                : "no JSON-RPC answer");
            omni_mcp_fail(c, why);
            return;
        }
        v = omni_json_string(omni_json_get(c->msg.result, "protocolVersion"));
        k->generation = 1;
        snprintf(k->protocol, sizeof(k->protocol), "%s",
            v && strlen(v) < 16 ? v : OMNI_MCP_LEGACY);
        c->state = OMNI_MCP_INITIALIZED;
        break;

    case OMNI_MCP_INITIALIZED:
        if (c->status / 100 != 2) {
            snprintf(why, sizeof(why),
                "notifications/initialized answered HTTP %ld", c->status);
            omni_mcp_fail(c, why);
            return;
        }
        /* the session the next exchanges use */
        snprintf(k->session, sizeof(k->session), "%s", c->session);
        k->ready = 1;
        c->state = OMNI_MCP_CALL;
        omni_mcp_unpend(c);
        omni_mcp_wake(c->t.id, c->session);
        break;

    default:
        if (omni_mcp_session_gone(c, k)) {
            /* the session expired upstream: once, the one another
             * exchange has opened since, else a new one */
            c->reinitialized = 1;
            if (k->ready && strcmp(k->session, c->session) != 0) {
                snprintf(c->session, sizeof(c->session), "%s", k->session);
                break;
            }
            k->ready = 0;
            k->session[0] = '\0';
            c->session[0] = '\0';
            c->state = OMNI_MCP_INIT;
            break;
        }
        if (!c->have_msg) {
            if (c->status != 0 && c->status / 100 != 2) {
                snprintf(why, sizeof(why), "the upstream answered HTTP %ld",
                    c->status);
            } else {
                snprintf(why, sizeof(why), "%s",
                    c->problem[0] ? c->problem
                                  : "the upstream sent no JSON-RPC response");
            }
            omni_mcp_fail(c, why);
            return;
        }
        c->rep.result = c->msg.kind == OMNI_RPC_RESULT ? c->msg.result : NULL;
        c->rep.error = c->msg.kind == OMNI_RPC_ERROR ? c->msg.error : NULL;
        c->rep.protocol =
            omni_arena_strndup(c->arena, k->protocol, strlen(k->protocol));
        c->rep.latency_us = (omni_mcp_now_ns() - c->start_ns) / 1000;
        if (c->sse) {
            omni_sse_free(&c->parser);
        }
        evbuffer_free(c->body);
        done = c->done;
        done(c->arg, &c->rep);
        free(c);
        return;
    }
    omni_mcp_reset_step(c);
    if (omni_mcp_send(c) != 0) {
        omni_mcp_fail(c, omni_mcp_unsent(c));
    }
}


static void omni_mcp_on_done(void *arg, const omni_out_result_t *res)
{
    omni_mcp_rpc_t *c = arg;
    char why[192];

    c->q = NULL;
    if (res->error != OMNI_OUT_OK) {
        if (res->error == OMNI_OUT_CONNECT
            || res->error == OMNI_OUT_OVERLOADED) {
            c->sent = 0;
        }
        c->rep.timeout = res->error == OMNI_OUT_TIMEOUT;
        if (res->error == OMNI_OUT_TOO_LARGE) {
            snprintf(
                why, sizeof(why), "the upstream's answer is larger than 4 MiB");
        } else if (c->rep.timeout) {
            snprintf(why, sizeof(why), "%s", OMNI_MCP_TIMED_OUT);
        } else {
            snprintf(why, sizeof(why), "the upstream is unreachable (%s%s%s)",
                omni_out_error_name(res->error),
                res->detail != NULL && res->detail[0] ? ": " : "",
                res->detail != NULL ? res->detail : "");
        }
        if (c->state != OMNI_MCP_CALL) {
            c->sent = 0;
        }
        omni_mcp_fail(c, why);
        return;
    }
    omni_mcp_finish(c);
}


/* Sends the current state's request. 0, or -1 (nothing pending). */
static int omni_mcp_send(omni_mcp_rpc_t *c)
{
    omni_mcp_known_t *k = omni_mcp_lookup(c->t.id, 1);
    const char *hdr[48];
    struct evbuffer *b;
    omni_out_spec_t spec;
    uint64_t elapsed_ms;
    int n = 0, i, modern, rc = -1;

    if (k == NULL) {
        return -1;
    }
    if (c->state == OMNI_MCP_START) {
        c->state = k->generation == 2               ? OMNI_MCP_CALL
                   : k->generation == 1 && k->ready ? OMNI_MCP_CALL
                   : k->generation == 1             ? OMNI_MCP_INIT
                                                    : OMNI_MCP_DISCOVER;
        if (c->state == OMNI_MCP_CALL && k->generation == 1) {
            snprintf(c->session, sizeof(c->session), "%s", k->session);
        }
    }
    modern = c->state == OMNI_MCP_DISCOVER
             || (c->state == OMNI_MCP_CALL && k->generation == 2);
    elapsed_ms = (omni_mcp_now_ns() - c->start_ns) / 1000000;
    if ((long)elapsed_ms >= c->t.timeout_ms) {
        c->rep.timeout = 1;
        return -1;
    }
    if (c->state == OMNI_MCP_INIT && !c->opening) {
        if (omni_mcp_pending(c->t.id, 1) != NULL) {
            return omni_mcp_wait(c, c->t.timeout_ms - (long)elapsed_ms);
        }
        c->opening = 1;
        omni_mcp_pend(c);
    }
    c->rpc_id = omni_mcp_next_id++;

    b = evbuffer_new();
    if (b == NULL) {
        return -1;
    }
    hdr[n++] = "Content-Type: application/json";
    hdr[n++] = "Accept: application/json, text/event-stream";
    switch (c->state) {

    case OMNI_MCP_DISCOVER:
        hdr[n++] = "MCP-Protocol-Version: " OMNI_MCP_MODERN;
        hdr[n++] = "Mcp-Method: server/discover";
        evbuffer_add_printf(b,
            "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"server/discover\","
            "\"params\":{\"_meta\":{" OMNI_MCP_META "}}}",
            (long long)c->rpc_id);
        break;

    case OMNI_MCP_INIT:
        evbuffer_add_printf(b,
            "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"initialize\","
            "\"params\":{\"protocolVersion\":\"" OMNI_MCP_LEGACY "\","
            "\"capabilities\":" OMNI_MCP_CLIENT_CAPS ","
            "\"clientInfo\":{\"name\":\"omni\","
            "\"version\":\"1\"}}}",
            (long long)c->rpc_id);
        break;

    case OMNI_MCP_INITIALIZED:
        evbuffer_add_printf(b, "{\"jsonrpc\":\"2.0\","
                               "\"method\":\"notifications/initialized\"}");
        break;

    default:
        evbuffer_add_printf(b,
            "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"%s\","
            "\"params\":{\"_meta\":{",
            (long long)c->rpc_id, c->method);
        if (modern) {
            evbuffer_add_printf(b, OMNI_MCP_META_CAPS("%s") "%s",
                c->t.caps != NULL ? c->t.caps : "{}", c->note ? "," : "");
        }
        if (c->note) {
            evbuffer_add_printf(
                b, "\"progressToken\":%lld", (long long)c->rpc_id);
        }
        evbuffer_add(b, "}", 1);
        if (c->params != NULL && strlen(c->params) > 2) {
            evbuffer_add_printf(b, ",%s", c->params + 1);
        } else {
            evbuffer_add(b, "}", 1);
        }
        evbuffer_add(b, "}", 1);
        break;
    }
    if (modern && c->state == OMNI_MCP_CALL) {
        hdr[n++] = "MCP-Protocol-Version: " OMNI_MCP_MODERN;
        hdr[n] = omni_arena_alloc(c->arena, strlen(c->method) + 16);
        sprintf((char *)hdr[n++], "Mcp-Method: %s", c->method);
        if (c->name != NULL) {
            hdr[n] = omni_arena_alloc(c->arena, strlen(c->name) + 16);
            sprintf((char *)hdr[n++], "Mcp-Name: %s", c->name);
        }
    } else if (!modern && c->state != OMNI_MCP_INIT) {
        hdr[n] = omni_arena_alloc(c->arena, 48);
        sprintf((char *)hdr[n++], "MCP-Protocol-Version: %s", k->protocol);
    }
    if (!modern && c->state != OMNI_MCP_INIT && c->session[0] != '\0') {
        hdr[n] = omni_arena_alloc(c->arena, sizeof(c->session) + 20);
        sprintf((char *)hdr[n++], "Mcp-Session-Id: %s", c->session);
    }
    for (i = 0; c->t.headers != NULL && c->t.headers[i] != NULL && n < 46;
         i++) {
        hdr[n++] = c->t.headers[i];
    }
    hdr[n] = NULL;

    memset(&spec, 0, sizeof(spec));
    spec.method = "POST";
    spec.url = c->t.url;
    spec.headers = hdr;
    spec.body = (const char *)evbuffer_pullup(b, -1);
    spec.body_len = evbuffer_get_length(b);
    spec.timeout_ms = c->t.timeout_ms - (long)elapsed_ms;
    spec.connect_timeout_ms = spec.timeout_ms < 5000 ? spec.timeout_ms : 5000;
    spec.idempotent = c->state != OMNI_MCP_CALL || c->idempotent;
    spec.on_headers = omni_mcp_on_headers;
    spec.on_data = omni_mcp_on_data;
    spec.on_done = omni_mcp_on_done;
    c->rep.bytes_out += spec.body_len;
    c->sent = 0;
    c->q = omni_out_request(omni_mcp_out, &spec, c);
    if (c->q != NULL) {
        rc = 0;
    }
    evbuffer_free(b);
    return rc;
}


omni_mcp_rpc_t *omni_mcp_rpc(const omni_mcp_target_t *t, const char *method,
    const char *name, const char *params, int idempotent, omni_arena_t *arena,
    omni_mcp_note_pt note, omni_mcp_reply_pt done, void *arg)
{
    omni_mcp_rpc_t *c;

    if (omni_mcp_out == NULL) {
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->body = evbuffer_new();
    if (c->body == NULL) {
        free(c);
        return NULL;
    }
    c->t = *t;
    c->method = method;
    c->name = name;
    c->params = params;
    c->idempotent = idempotent;
    c->arena = arena;
    c->note = note;
    c->done = done;
    c->arg = arg;
    c->start_ns = omni_mcp_now_ns();
    c->state = OMNI_MCP_START;
    if (omni_mcp_send(c) != 0) {
        /* no other exchange waits on it: it opened nothing */
        omni_mcp_unpend(c);
        evbuffer_free(c->body);
        free(c);
        return NULL;
    }
    return c;
}


void omni_mcp_rpc_cancel(omni_mcp_rpc_t *c)
{
    omni_mcp_known_t *k = omni_mcp_lookup(c->t.id, 0);
    omni_out_spec_t spec;
    const char *hdr[48];
    char body[160], sid[300], ver[48], id[64];
    int n = 0, i, opening = c->opening;

    snprintf(id, sizeof(id), "%s", c->t.id);
    omni_mcp_unpend(c);

    if (c->q != NULL) {
        omni_out_cancel(c->q);
        if (c->state == OMNI_MCP_CALL && k != NULL && k->generation == 1) {
            /* a legacy server hears of it; a modern one sees the stream
             * closed */
            snprintf(body, sizeof(body),
                "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
                "\"params\":{\"requestId\":%lld,\"reason\":\"client "
                "went away\"}}",
                (long long)c->rpc_id);
            snprintf(sid, sizeof(sid), "Mcp-Session-Id: %s", c->session);
            snprintf(ver, sizeof(ver), "MCP-Protocol-Version: %s", k->protocol);
            hdr[n++] = "Content-Type: application/json";
            hdr[n++] = "Accept: application/json, text/event-stream";
            hdr[n++] = ver;
            if (c->session[0]) {
                hdr[n++] = sid;
            }
            for (i = 0; c->t.headers && c->t.headers[i] && n < 46; i++) {
                hdr[n++] = c->t.headers[i];
            }
            hdr[n] = NULL;
            memset(&spec, 0, sizeof(spec));
            spec.url = c->t.url;
            spec.headers = hdr;
            spec.body = body;
            spec.body_len = strlen(body);
            spec.timeout_ms = 5000;
            spec.idempotent = 1;
            spec.on_done = omni_mcp_ignore;
            omni_out_request(omni_mcp_out, &spec, NULL);
        }
    }
    if (c->sse) {
        omni_sse_free(&c->parser);
    }
    evbuffer_free(c->body);
    free(c);
    if (opening) {
        omni_mcp_hand_over(id);
    }
}
