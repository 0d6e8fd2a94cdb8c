/* routes.c: every endpoint the worker serves, in match order. */
#include "routes.h"
#include "rollup.h"


const omni_route_t omni_routes[] = {
    { "GET", "/health",              omni_health,           0 },
    { "GET", "/health/live",         omni_health_live,      0 },
    { "GET", "/metrics",             omni_metrics_endpoint, 0 },
    { "GET", "/api/v1/config",       omni_config_list,      0 },
    { "GET", "/api/v1/config/{key}", omni_config_get,       0 },
    { "PUT", "/api/v1/config/{key}", omni_config_put,
      OMNI_ROUTE_JSON_BODY },
};

const int omni_nroutes = sizeof(omni_routes) / sizeof(omni_routes[0]);


int
omni_routes_init(void)
{
    if (omni_rollup_register() != 0
        || omni_health_init() != 0
        || omni_dashboard_init() != 0)
    {
        return -1;
    }
    return 0;
}
