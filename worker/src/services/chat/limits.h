/* limits.h: an API key's rate limits on the LLM gateway, in tokens and
 * requests per minute (omnichat.key_limits), kept in Redis as GCRA buckets
 * shared by every worker: a call takes its estimated tokens (input + its
 * max_tokens) and one request before the provider is called, and the
 * settlement after it puts the real usage in place of the estimate. */
#ifndef OMNI_CHAT_LIMITS_H
#define OMNI_CHAT_LIMITS_H

#include <stdint.h>

#include "lib/json.h"
#include "http/http.h"

typedef struct {
    const char *key;  /* the API key's id */
    int64_t tpm, rpm; /* per minute; 0: no limit */
    int64_t taken;    /* tokens taken by the check, until settled */
    int retry_after;  /* seconds, when over */
    int pending;      /* taken and not settled */
} omni_llm_limits_t;

/* Reads {tokens_per_minute, requests_per_minute} (or null) of key; 1 when
 * a limit applies, else 0. */
int omni_llm_limits_read(
    omni_llm_limits_t *l, const omni_json_t *j, const char *key);

/* The Redis keys of l's tokens and requests buckets (taken by billing.c's
 * omni_llm_admit, with the budgets). */
void omni_llm_limits_keys(
    const omni_llm_limits_t *l, char *tk, char *rk, size_t size);

/* Puts used tokens in place of what was taken (never waits). */
void omni_llm_limits_settle(omni_llm_limits_t *l, int64_t used);

#endif
