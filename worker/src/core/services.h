/* services.h: the services this worker runs, seen only through their
 * tables (http/service.h), in the order services.c lists them. */
#ifndef OMNI_SERVICES_H
#define OMNI_SERVICES_H

#include <stddef.h>

#include "lib/router.h"
#include "io/config.h"

/* Master, at start-up: builds the route table (every service's routes,
 * in order) and runs each service's init. 0, or -1 after logging what
 * failed. */
int omni_services_init(void);

/* The route table built by omni_services_init; *n gets its length. */
const omni_route_t *omni_services_routes(int *n);

/* Master, at start-up and on SIGHUP: configures each service in turn. 0,
 * or -1 with err naming the bad setting (services before the failing one
 * have taken cfg). */
int omni_services_configure(const omni_config_t *cfg, char *err, size_t errlen);

/* Worker process: starts each service. 0, or -1 after logging which
 * failed. */
int omni_services_start(void);

/* Worker process, drained: stops each service in turn, then calls
 * done(arg) once. */
void omni_services_stop(void (*done)(void *arg), void *arg);

#endif
