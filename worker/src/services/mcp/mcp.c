/* mcp.c: the MCP gateway service: its routes, the sealing key, start-up
 * and shutdown. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/seal.h"
#include "io/clients.h"
#include "http/http.h"
#include "services/mcp/call.h"
#include "services/mcp/catalog.h"
#include "services/mcp/client.h"
#include "services/mcp/endpoint.h"
#include "services/mcp/health.h"
#include "services/mcp/mcp.h"
#include "services/mcp/mcp_int.h"
#include "services/mcp/registry.h"
#include "services/mcp/state.h"
#include "services/mcp/upstream.h"


static const omni_route_t omni_mcp_routes[] = {
    {"GET", "/api/v1/mcp/servers", omni_mcp_servers_list, OMNI_ROUTE_IDENTITY},
    {"POST", "/api/v1/mcp/servers", omni_mcp_server_create,
        OMNI_ROUTE_IDENTITY | OMNI_ROUTE_JSON_OBJECT},
    {"GET", "/api/v1/mcp/servers/{id}", omni_mcp_server_get,
        OMNI_ROUTE_IDENTITY},
    {"PATCH", "/api/v1/mcp/servers/{id}", omni_mcp_server_update,
        OMNI_ROUTE_IDENTITY | OMNI_ROUTE_JSON_OBJECT},
    {"DELETE", "/api/v1/mcp/servers/{id}", omni_mcp_server_delete,
        OMNI_ROUTE_IDENTITY},
    {"GET", "/api/v1/mcp/servers/{id}/tools", omni_mcp_server_tools,
        OMNI_ROUTE_IDENTITY},
    {"POST", "/api/v1/mcp/servers/{id}/health", omni_mcp_server_probe,
        OMNI_ROUTE_IDENTITY},
    {"POST", "/api/v1/mcp/servers/{id}/tools/{tool}/approve",
        omni_mcp_tool_approve, OMNI_ROUTE_IDENTITY},
    {"GET", "/api/v1/mcp/circuit-breakers", omni_mcp_breakers_list,
        OMNI_ROUTE_IDENTITY},
    {"POST", "/api/v1/mcp/tools/call", omni_mcp_tools_call,
        OMNI_ROUTE_IDENTITY | OMNI_ROUTE_JSON_OBJECT},
    {"POST", "/mcp", omni_mcp_endpoint_post, OMNI_ROUTE_IDENTITY},
    {"DELETE", "/mcp", omni_mcp_endpoint_delete, OMNI_ROUTE_IDENTITY},
    {"GET", "/mcp", omni_mcp_endpoint_get, OMNI_ROUTE_IDENTITY},
    {"POST", "/mcp/{server}", omni_mcp_endpoint_post, OMNI_ROUTE_IDENTITY},
    {"GET", "/mcp/{server}", omni_mcp_endpoint_get, OMNI_ROUTE_IDENTITY},
    {"DELETE", "/mcp/{server}", omni_mcp_endpoint_delete, OMNI_ROUTE_IDENTITY},
};

static unsigned char omni_mcp_key[OMNI_SEAL_KEY_LEN];


static int omni_mcp_init(void)
{
    return omni_mcp_registry_init() != 0 || omni_mcp_upstream_init() != 0
                   || omni_mcp_catalog_init() != 0
                   || omni_mcp_breakers_init() != 0 || omni_mcp_call_init() != 0
                   || omni_mcp_tool_init() != 0 || omni_mcp_state_init() != 0
                   || omni_mcp_health_init() != 0
                   || omni_mcp_endpoint_init() != 0
               ? -1
               : 0;
}


/* The key is read at start-up and on SIGHUP: a rotated file takes effect
 * on reload (headers sealed under the old key then no longer open). */
static int omni_mcp_configure(
    const omni_config_t *cfg, char *err, size_t errlen)
{
    unsigned char key[OMNI_SEAL_KEY_LEN];
    char text[256];
    size_t n;
    FILE *f;

    if (cfg->mcp_secret_key_file == NULL) {
        omni_mcp_secret_key = NULL;
        return omni_mcp_endpoint_configure(cfg);
    }
    f = fopen(cfg->mcp_secret_key_file, "r");
    if (f == NULL) {
        snprintf(err, errlen, "OMNI_MCP_SECRET_KEY_FILE=%s: cannot open: %s",
            cfg->mcp_secret_key_file, strerror(errno));
        return -1;
    }
    n = fread(text, 1, sizeof(text), f);
    fclose(f);
    if (n == sizeof(text) || omni_seal_key_parse(text, n, key) != 0) {
        snprintf(err, errlen,
            "OMNI_MCP_SECRET_KEY_FILE=%s: expected 64 hex digits or the "
            "base64 of 32 random bytes",
            cfg->mcp_secret_key_file);
        return -1;
    }
    memcpy(omni_mcp_key, key, sizeof(key));
    omni_mcp_secret_key = omni_mcp_key;
    return omni_mcp_endpoint_configure(cfg);
}


void omni_mcp_changed(const char *id)
{
    omni_mcp_client_forget(id);
    omni_mcp_state_bump();
    omni_mcp_health_soon(id);
}


static int omni_mcp_start(void)
{
    return omni_mcp_client_start(
               omni_clients.base, omni_clients.cfg->mcp_ca_file)
                       != 0
                   || omni_mcp_perf_start() != 0 || omni_mcp_state_start() != 0
                   || omni_mcp_health_start() != 0
                   || omni_mcp_endpoint_start() != 0
               ? -1
               : 0;
}


static void omni_mcp_stop(void (*done)(void *arg), void *arg)
{
    omni_mcp_perf_stop();
    omni_mcp_health_stop();
    omni_mcp_state_stop();
    omni_mcp_endpoint_stop();
    done(arg);
}


const omni_service_t omni_mcp_service = {.name = "mcp",
    OMNI_SERVICE_ROUTES(omni_mcp_routes),
    .init = omni_mcp_init,
    .configure = omni_mcp_configure,
    .start = omni_mcp_start,
    .stop = omni_mcp_stop};
