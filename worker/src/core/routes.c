/* routes.c: every endpoint the worker serves, in match order. Routes without
 * OMNI_ROUTE_IDENTITY answer anyone who reaches the worker. */
#include "core/routes.h"
#include "services/dashboard/rollup.h"


const omni_route_t omni_routes[] = {
    {"GET", "/health", omni_health, 0},
    {"GET", "/health/live", omni_health_live, 0},
    {"GET", "/metrics", omni_metrics_endpoint, 0},
    {"GET", "/api/v1/config", omni_config_list, OMNI_ROUTE_IDENTITY},
    {"GET", "/api/v1/config/{key}", omni_config_get, OMNI_ROUTE_IDENTITY},
    {"PUT", "/api/v1/config/{key}", omni_config_put,
        OMNI_ROUTE_IDENTITY | OMNI_ROUTE_JSON_BODY},
    {"GET", "/api/v1/preferences", omni_preferences_get, OMNI_ROUTE_IDENTITY},
    {"PUT", "/api/v1/preferences", omni_preferences_put,
        OMNI_ROUTE_IDENTITY | OMNI_ROUTE_JSON_BODY},
    {"GET", "/api/v1/dashboard/stats", omni_dashboard_stats,
        OMNI_ROUTE_IDENTITY},
    {"GET", "/api/v1/dashboard/charts/{metric}", omni_dashboard_chart,
        OMNI_ROUTE_IDENTITY},
    {"GET", "/api/v1/dashboard/activity", omni_dashboard_activity,
        OMNI_ROUTE_IDENTITY},
    {"POST", "/auth/register", omni_auth_register, OMNI_ROUTE_JSON_OBJECT},
    {"POST", "/auth/login", omni_auth_login, OMNI_ROUTE_JSON_OBJECT},
    {"POST", "/auth/refresh", omni_auth_refresh, OMNI_ROUTE_JSON_OBJECT},
    {"POST", "/auth/logout", omni_auth_logout, OMNI_ROUTE_IDENTITY},
    {"GET", "/auth/me", omni_auth_me, OMNI_ROUTE_IDENTITY},
    {"GET", "/.well-known/jwks.json", omni_auth_jwks, 0},
    {"POST", "/api/v1/api-keys", omni_apikeys_create,
        OMNI_ROUTE_IDENTITY | OMNI_ROUTE_JSON_OBJECT},
    {"GET", "/api/v1/api-keys", omni_apikeys_list, OMNI_ROUTE_IDENTITY},
    {"DELETE", "/api/v1/api-keys/{id}", omni_apikeys_delete,
        OMNI_ROUTE_IDENTITY},
    {"GET", "/api/v1/users", omni_users_list, OMNI_ROUTE_IDENTITY},
    {"PATCH", "/api/v1/users/{id}", omni_users_update,
        OMNI_ROUTE_IDENTITY | OMNI_ROUTE_JSON_OBJECT},
};

const int omni_nroutes = sizeof(omni_routes) / sizeof(omni_routes[0]);


int omni_routes_init(void)
{
    if (omni_rollup_register() != 0 || omni_health_init() != 0
        || omni_dashboard_init() != 0 || omni_auth_init() != 0
        || omni_apikeys_init() != 0 || omni_users_init() != 0) {
        return -1;
    }
    return 0;
}
