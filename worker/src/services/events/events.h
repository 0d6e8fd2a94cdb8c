/* events.h: the events service: who may subscribe to which channel (the
 * gateway's nchan_authorize_request asks), the dashboard settings that
 * shape publishing, and the worker's side of io/publish.h. Other services
 * publish with omni_publish() (io/publish.h) directly. */
#ifndef OMNI_EVENTS_H
#define OMNI_EVENTS_H

#include "http/service.h"

extern const omni_service_t omni_events_service;

#endif
