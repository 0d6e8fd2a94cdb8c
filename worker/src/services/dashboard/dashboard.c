/* dashboard.c: the dashboard service: its routes, start-up and shutdown.
 * Routes without OMNI_ROUTE_IDENTITY answer anyone who reaches the
 * worker. */
#include "io/clients.h"
#include "http/http.h"
#include "services/dashboard/dashboard.h"
#include "services/dashboard/rollup.h"


static const omni_route_t omni_dashboard_routes[] = {
    {"GET", "/api/v1/config", omni_settings_list, OMNI_ROUTE_IDENTITY},
    {"GET", "/api/v1/config/{key}", omni_settings_get, OMNI_ROUTE_IDENTITY},
    {"PUT", "/api/v1/config/{key}", omni_settings_put,
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
};


static int omni_dashboard_init(void)
{
    return omni_rollup_register() != 0 || omni_settings_init() != 0
                   || omni_dashboard_stats_init() != 0
                   || omni_activity_init() != 0
               ? -1
               : 0;
}


/* the rollups count every request of this process, whatever its service */
static int omni_dashboard_start(void)
{
    if (omni_http_observe(omni_rollup_request) != 0
        || omni_dashboard_cache_sweep_start() != 0) {
        return -1;
    }
    return omni_rollup_start(
        omni_clients.base, omni_clients.db, omni_clients.cfg->metrics_flush_ms);
}


static void omni_dashboard_stop(void (*done)(void *), void *arg)
{
    omni_dashboard_cache_sweep_stop();
    omni_rollup_final_flush(done, arg);
}


const omni_service_t omni_dashboard_service = {.name = "dashboard",
    OMNI_SERVICE_ROUTES(omni_dashboard_routes),
    .init = omni_dashboard_init,
    .start = omni_dashboard_start,
    .stop = omni_dashboard_stop};
