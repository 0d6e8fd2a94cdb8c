/* breaker.c: the circuit breaker's transitions (breaker.h). */
#include <string.h>

#include "lib/breaker.h"


void omni_breaker_init(omni_breaker_t *b)
{
    memset(b, 0, sizeof(*b));
    b->state = OMNI_BREAKER_CLOSED;
}


int omni_breaker_allow(omni_breaker_t *b, int64_t now_ms, int *changed)
{
    if (changed != NULL) {
        *changed = 0;
    }
    switch (b->state) {

    case OMNI_BREAKER_OPEN:
        if (now_ms < b->next_probe_ms) {
            return 0;
        }
        b->state = OMNI_BREAKER_HALF_OPEN;
        b->next_probe_ms = 0;
        if (changed != NULL) {
            *changed = 1;
        }
        return 1;

    default:
        return 1;
    }
}


int omni_breaker_success(omni_breaker_t *b)
{
    int changed = b->state != OMNI_BREAKER_CLOSED;

    b->state = OMNI_BREAKER_CLOSED;
    b->failures = 0;
    b->next_probe_ms = 0;
    return changed;
}


static void omni_breaker_open(omni_breaker_t *b,
    const omni_breaker_conf_t *conf, int64_t now_ms, uint32_t rnd)
{
    int64_t cooldown = conf->cooldown_ms > 0 ? conf->cooldown_ms : 0;
    int pct = conf->jitter_pct;
    int64_t span;

    pct = pct < 0 ? 0 : pct > 100 ? 100 : pct;
    span = cooldown * pct / 100 + 1;
    b->state = OMNI_BREAKER_OPEN;
    b->opened_at_ms = now_ms;
    b->next_probe_ms = now_ms + cooldown + (int64_t)(rnd % (uint64_t)span);
}


int omni_breaker_failure(omni_breaker_t *b, const omni_breaker_conf_t *conf,
    int64_t now_ms, uint32_t rnd)
{
    int threshold = conf->failure_threshold > 0 ? conf->failure_threshold : 1;

    if (b->failures < 1000000) {
        b->failures++;
    }
    switch (b->state) {

    case OMNI_BREAKER_CLOSED:
        if (b->failures < threshold) {
            return 0;
        }
        omni_breaker_open(b, conf, now_ms, rnd);
        return 1;

    case OMNI_BREAKER_HALF_OPEN:
        omni_breaker_open(b, conf, now_ms, rnd);
        return 1;

    default:
        return 0;
    }
}


static const char *const omni_breaker_names[] = {"closed", "open", "half_open"};


const char *omni_breaker_state_name(omni_breaker_state_t s)
{
    return (unsigned)s < 3 ? omni_breaker_names[s] : "closed";
}


int omni_breaker_state_parse(const char *name, omni_breaker_state_t *out)
{
    int i;

    for (i = 0; i < 3; i++) {
        if (name != NULL && strcmp(name, omni_breaker_names[i]) == 0) {
            *out = (omni_breaker_state_t)i;
            return 0;
        }
    }
    return -1;
}
