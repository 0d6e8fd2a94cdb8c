/* health.h: the periodic probe of every enabled server, one prober per
 * server across every process and replica (a lease row). */
#ifndef OMNI_MCP_HEALTH_H
#define OMNI_MCP_HEALTH_H

int omni_mcp_health_init(void);
int omni_mcp_health_start(void);
void omni_mcp_health_stop(void);

/* Drops the server's lease: some process probes it (and reads its
 * catalog) within a second. */
void omni_mcp_health_soon(const char *id);

#endif
