/* chat.h: the chat service (projects, prompts, conversations, messages,
 * LLM providers and budgets): its table, for core/services.c. */
#ifndef OMNI_CHAT_H
#define OMNI_CHAT_H

#include "http/service.h"

extern const omni_service_t omni_chat_service;

#endif
