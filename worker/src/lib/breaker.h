/* breaker.h: a circuit breaker as a pure state machine: the caller gives
 * the time and the random numbers, so every transition is testable. */
#ifndef OMNI_BREAKER_H
#define OMNI_BREAKER_H

#include <stdint.h>

typedef enum {
    OMNI_BREAKER_CLOSED = 0,
    OMNI_BREAKER_OPEN,
    OMNI_BREAKER_HALF_OPEN
} omni_breaker_state_t;

typedef struct {
    int failure_threshold; /* consecutive failures that open it, >= 1 */
    int64_t cooldown_ms;   /* open this long before a trial, >= 0 */
    int jitter_pct;        /* cool-down stretched by up to this %, 0..100 */
} omni_breaker_conf_t;

typedef struct {
    omni_breaker_state_t state;
    int failures;          /* consecutive, since the last success */
    int64_t opened_at_ms;  /* when it last opened; 0 when never */
    int64_t next_probe_ms; /* open: when a trial may pass; else 0 */
} omni_breaker_t;

/* Closed, no failures. */
void omni_breaker_init(omni_breaker_t *b);

/* Whether a call (or probe) may go upstream at now_ms. Closed and
 * half-open: yes. Open: no until next_probe_ms, then it turns half-open
 * and says yes. Returns 1 or 0; *changed (may be NULL) is set to 1 when
 * the state changed. */
int omni_breaker_allow(omni_breaker_t *b, int64_t now_ms, int *changed);

/* A success: closes it and clears the failures. Returns 1 when the state
 * changed. */
int omni_breaker_success(omni_breaker_t *b);

/* A failure at now_ms. Closed: counts it, opening at the threshold;
 * half-open: opens again at once; open: the cool-down is not extended.
 * When it opens, next_probe_ms = now_ms + cooldown_ms + (rnd mod (1 +
 * cooldown_ms * jitter_pct / 100)), so processes and servers that fail
 * together do not probe together. Returns 1 when the state changed. */
int omni_breaker_failure(omni_breaker_t *b, const omni_breaker_conf_t *conf,
    int64_t now_ms, uint32_t rnd);

/* "closed", "open", "half_open"; and back: 0 with *out set, or -1. */
const char *omni_breaker_state_name(omni_breaker_state_t s);
int omni_breaker_state_parse(const char *name, omni_breaker_state_t *out);

#endif
