/* health.h: the health service: liveness, readiness and /metrics. */
#ifndef OMNI_HEALTH_H
#define OMNI_HEALTH_H

#include "http/service.h"

extern const omni_service_t omni_health_service;

#endif
