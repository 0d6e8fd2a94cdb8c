/* routes.h: the worker's route table and its handlers' start-up. */
#ifndef OMNI_ROUTES_H
#define OMNI_ROUTES_H

#include "lib/router.h"

extern const omni_route_t omni_routes[];
extern const int omni_nroutes;

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
void omni_preferences_get(omni_req_t *r);
void omni_preferences_put(omni_req_t *r);
void omni_dashboard_stats(omni_req_t *r);
void omni_dashboard_chart(omni_req_t *r);
void omni_dashboard_activity(omni_req_t *r);
void omni_auth_register(omni_req_t *r);
void omni_auth_login(omni_req_t *r);
void omni_auth_refresh(omni_req_t *r);
void omni_auth_logout(omni_req_t *r);
void omni_auth_me(omni_req_t *r);
void omni_auth_jwks(omni_req_t *r);
void omni_apikeys_create(omni_req_t *r);
void omni_apikeys_list(omni_req_t *r);
void omni_apikeys_delete(omni_req_t *r);
void omni_users_list(omni_req_t *r);
void omni_users_update(omni_req_t *r);

int omni_health_init(void);
int omni_dashboard_init(void);
int omni_auth_init(void);
int omni_apikeys_init(void);
int omni_users_init(void);

/* Starts the periodic re-sync of the API-key mirror in Redis. */
struct event_base;
int omni_apikeys_start_sync(struct event_base *base);

#endif
