/* gateway.h: the LLM gateway's routes (POST /v1/chat/completions, POST
 * /v1/messages, GET /v1/models), in the chat service's table. */
#ifndef OMNI_CHAT_GATEWAY_H
#define OMNI_CHAT_GATEWAY_H

#include "http/http.h"

/* Master: registers the statements. 0 or -1. */
int omni_gateway_init(void);

void omni_gateway_openai(omni_req_t *r);
void omni_gateway_anthropic(omni_req_t *r);
void omni_gateway_models(omni_req_t *r);

#endif
