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
    int reply;        /* of the check: 0 ok, 1 tokens over, 2 requests
                         over, -1 Redis unavailable */
    int retry_after;  /* seconds, when over */
    int pending;      /* taken and not settled */
} omni_llm_limits_t;

/* Reads {tokens_per_minute, requests_per_minute} (or null) of key; 1 when
 * a limit applies, else 0. */
int omni_llm_limits_read(
    omni_llm_limits_t *l, const omni_json_t *j, const char *key);

/* Takes tokens (at most the whole minute's) and one request; r is resumed
 * with l->reply set. 0, or -1 when it could not be sent. */
int omni_llm_limits_take(omni_llm_limits_t *l, int64_t tokens, omni_req_t *r);

/* Puts used tokens in place of what was taken (never waits). */
void omni_llm_limits_settle(omni_llm_limits_t *l, int64_t used);

#endif
