/* outbound_relay.c: the benchmark's stand-in for a worker route that calls
 * an upstream (an MCP tool call, an LLM completion): one libevent loop with
 * evhttp, as in omni-worker, answering each request by fetching the
 * upstream URL through io/outbound.c and relaying status and body.
 * tests/bench/outbound.py compares it with nginx `proxy_pass` to the same
 * upstream.
 *
 *   outbound-relay PORT UPSTREAM_URL
 *
 * Listens on 127.0.0.1:PORT until SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "io/outbound.h"

typedef struct {
    struct evhttp_request *ev;
    struct evbuffer *body;
    long status;
} relay_req_t;

static omni_outbound_t *client;
static const char *upstream;

static int relay_data(void *arg, omni_out_req_t *q, const char *buf, size_t len)
{
    relay_req_t *r = arg;

    evbuffer_add(r->body, buf, len);
    return 0;
}

static void relay_done(void *arg, const omni_out_result_t *res)
{
    relay_req_t *r = arg;

    if (res->error == OMNI_OUT_OK) {
        evhttp_send_reply(r->ev, (int)res->status, "OK", r->body);
    } else {
        evbuffer_drain(r->body, evbuffer_get_length(r->body));
        evbuffer_add_printf(
            r->body, "{\"error\":\"%s\"}\n", omni_out_error_name(res->error));
        evhttp_send_reply(r->ev, 502, "Bad Gateway", r->body);
    }
    evbuffer_free(r->body);
    free(r);
}

static void relay_handle(struct evhttp_request *ev, void *arg)
{
    relay_req_t *r = calloc(1, sizeof(*r));
    omni_out_spec_t spec = {0};

    if (r == NULL || (r->body = evbuffer_new()) == NULL) {
        free(r);
        evhttp_send_error(ev, 503, NULL);
        return;
    }
    r->ev = ev;
    spec.url = upstream;
    spec.idempotent = 1;
    spec.on_data = relay_data;
    spec.on_done = relay_done;
    if (omni_out_request(client, &spec, r) == NULL) {
        evbuffer_free(r->body);
        free(r);
        evhttp_send_error(ev, 500, NULL);
    }
}

static void relay_stop(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    struct event_base *base;
    struct evhttp *http;
    struct event *term;
    omni_outbound_config_t cfg = {0};

    if (argc != 3) {
        fprintf(stderr, "usage: outbound-relay PORT UPSTREAM_URL\n");
        return 2;
    }
    upstream = argv[2];
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    http = base ? evhttp_new(base) : NULL;
    /* the benchmark's connections, all to one host */
    cfg.max_inflight = 1024;
    cfg.max_per_host = 1024;
    cfg.max_idle = 1024;
    client = base ? omni_outbound_create(base, &cfg) : NULL;
    if (http == NULL || client == NULL
        || evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)atoi(argv[1]))
               != 0) {
        fprintf(stderr, "outbound-relay: cannot start on port %s\n", argv[1]);
        return 1;
    }
    evhttp_set_gencb(http, relay_handle, NULL);
    term = evsignal_new(base, SIGTERM, relay_stop, base);
    event_add(term, NULL);
    event_base_dispatch(base);
    event_free(term);
    omni_outbound_destroy(client);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
