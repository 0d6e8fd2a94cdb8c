/* services.c: the list of services, the only place that names them. Their
 * order is the order routes are matched in. */
#include "io/log.h"
#include "http/metrics.h"
#include "services/auth/auth.h"
#include "services/chat/chat.h"
#include "services/dashboard/dashboard.h"
#include "services/events/events.h"
#include "services/health/health.h"
#include "services/mcp/mcp.h"
#include "services/memory/memory.h"
#include "core/services.h"


static const omni_service_t *const omni_services[] = {
    &omni_health_service,
    &omni_dashboard_service,
    &omni_auth_service,
    &omni_events_service,
    &omni_mcp_service,
    &omni_chat_service,
    &omni_memory_service,
};

#define OMNI_NSERVICES (int)(sizeof(omni_services) / sizeof(omni_services[0]))

static struct {
    omni_route_t routes[OMNI_METRICS_MAX_ROUTES];
    int nroutes;
    int stopping; /* index of the service being stopped */
    void (*done)(void *arg);
    void *done_arg;
} omni_svc;


int omni_services_init(void)
{
    const omni_service_t *s;
    int i, j;

    omni_svc.nroutes = 0;
    for (i = 0; i < OMNI_NSERVICES; i++) {
        s = omni_services[i];
        for (j = 0; j < s->nroutes; j++) {
            if (omni_svc.nroutes == OMNI_METRICS_MAX_ROUTES) {
                omni_log(OMNI_LOG_ERROR, "too many routes",
                    "\"service\":\"%s\",\"max\":%d", s->name,
                    OMNI_METRICS_MAX_ROUTES);
                return -1;
            }
            omni_svc.routes[omni_svc.nroutes++] = s->routes[j];
        }
    }
    for (i = 0; i < OMNI_NSERVICES; i++) {
        s = omni_services[i];
        if (s->init && s->init() != 0) {
            omni_log(OMNI_LOG_ERROR, "cannot register a service's statements",
                "\"service\":\"%s\"", s->name);
            return -1;
        }
    }
    return 0;
}


const omni_route_t *omni_services_routes(int *n)
{
    *n = omni_svc.nroutes;
    return omni_svc.routes;
}


int omni_services_configure(const omni_config_t *cfg, char *err, size_t errlen)
{
    int i;

    for (i = 0; i < OMNI_NSERVICES; i++) {
        if (omni_services[i]->configure
            && omni_services[i]->configure(cfg, err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}


int omni_services_start(void)
{
    int i;

    for (i = 0; i < OMNI_NSERVICES; i++) {
        if (omni_services[i]->start && omni_services[i]->start() != 0) {
            omni_log(OMNI_LOG_ERROR, "cannot start a service",
                "\"service\":\"%s\"", omni_services[i]->name);
            return -1;
        }
    }
    return 0;
}


/* Stops the next service that has something to stop; each one's done
 * comes back here. */
static void omni_services_stopped(void *arg)
{
    const omni_service_t *s;
    void (*done)(void *arg);

    while (omni_svc.stopping < OMNI_NSERVICES) {
        s = omni_services[omni_svc.stopping++];
        if (s->stop) {
            s->stop(omni_services_stopped, NULL);
            return;
        }
    }
    done = omni_svc.done;
    omni_svc.done = NULL;
    if (done) {
        done(omni_svc.done_arg);
    }
}


void omni_services_stop(void (*done)(void *arg), void *arg)
{
    omni_svc.stopping = 0;
    omni_svc.done = done;
    omni_svc.done_arg = arg;
    omni_services_stopped(NULL);
}
