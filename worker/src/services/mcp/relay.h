/* relay.h: the notification streams this process keeps open to upstreams
 * (a legacy session's GET), for the resources its clients subscribed to. */
#ifndef OMNI_MCP_RELAY_H
#define OMNI_MCP_RELAY_H

#include <event2/event.h>

#include "services/mcp/client.h"

/* An upstream said a resource changed: scope is the server's name. */
typedef void (*omni_mcp_updated_pt)(const char *scope, const char *uri);

int omni_mcp_relay_start(
    struct event_base *base, const char *ca_file, omni_mcp_updated_pt updated);
void omni_mcp_relay_stop(void);

/* Keeps a GET stream open to the server named scope (target t, copied) on
 * this process's session with it: opened now unless open on that session,
 * reopened when it ends. At most 32 servers per process; -1 past that. */
int omni_mcp_relay_watch(const char *scope, const omni_mcp_target_t *t);

#endif
