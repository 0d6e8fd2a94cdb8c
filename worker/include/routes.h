/* routes.h: the worker's route table and its handlers' start-up. */
#ifndef OMNI_ROUTES_H
#define OMNI_ROUTES_H

#include "router.h"

extern const omni_route_t  omni_routes[];
extern const int           omni_nroutes;

/* Registers every handler's prepared statements (before the pools are
 * created). Returns 0, or -1 when the statement table is full. */
int omni_routes_init(void);

/* handlers */
void omni_health(omni_req_t *r);
void omni_health_live(omni_req_t *r);
void omni_metrics_endpoint(omni_req_t *r);
void omni_config_list(omni_req_t *r);
void omni_config_get(omni_req_t *r);
void omni_config_put(omni_req_t *r);

int omni_health_init(void);
int omni_dashboard_init(void);

#endif
