/*
 * omni_gcra.c: GCRA decisions over int64 microseconds, for one limit and
 * for several limits all or nothing (omni_limit.lua does the same in Redis).
 */


#include <limits.h>
#include <string.h>

#include "omni_gcra.h"


static int omni_gcra_item_valid(const omni_gcra_limit_t *limit,
    int64_t cost, int64_t tat);
static void omni_gcra_decide(const omni_gcra_limit_t *limit, int64_t cost,
    int64_t tat, int64_t now, omni_gcra_result_t *res);
static int omni_gcra_tighter(const omni_gcra_result_t *a,
    const omni_gcra_result_t *b);


int64_t
omni_gcra_interval(int64_t requests, int64_t period_us)
{
    int64_t  t;

    if (requests < 1 || period_us < 1 || requests > period_us) {
        return -1;
    }

    /* round to nearest without overflowing period_us + requests / 2 */
    t = period_us / requests;

    if (period_us % requests >= requests - requests / 2) {
        t++;
    }

    if (t > OMNI_GCRA_MAX_SPAN) {
        return -1;
    }

    return t;
}


int
omni_gcra_limit_valid(const omni_gcra_limit_t *limit)
{
    if (limit->interval < 1 || limit->interval > OMNI_GCRA_MAX_SPAN
        || limit->burst < 0 || limit->burst > OMNI_GCRA_MAX_SPAN)
    {
        return 0;
    }

    /* (B + 1) * T <= MAX_SPAN, without the product */
    return limit->burst + 1 <= OMNI_GCRA_MAX_SPAN / limit->interval;
}


int
omni_gcra_limit_per_node(const omni_gcra_limit_t *limit, int64_t nodes,
    omni_gcra_limit_t *out)
{
    omni_gcra_limit_t  share;

    if (!omni_gcra_limit_valid(limit) || nodes < 1
        || limit->interval > OMNI_GCRA_MAX_SPAN / nodes)
    {
        return OMNI_GCRA_INVALID;
    }

    share.interval = limit->interval * nodes;
    share.burst = limit->burst / nodes;

    if (!omni_gcra_limit_valid(&share)) {
        return OMNI_GCRA_INVALID;
    }

    *out = share;

    return 0;
}


int
omni_gcra_check(const omni_gcra_limit_t *limit, int64_t cost, int64_t tat,
    int64_t now, omni_gcra_result_t *res)
{
    if (!omni_gcra_item_valid(limit, cost, tat)
        || now < 0 || now > OMNI_GCRA_MAX_TIME)
    {
        return OMNI_GCRA_INVALID;
    }

    omni_gcra_decide(limit, cost, tat, now, res);

    return 0;
}


int
omni_gcra_check_all(omni_gcra_item_t *items, size_t n, int64_t now,
    omni_gcra_result_t *res)
{
    size_t              i;
    omni_gcra_result_t  one, best;

    if (n > INT_MAX || now < 0 || now > OMNI_GCRA_MAX_TIME) {
        return OMNI_GCRA_INVALID;
    }

    for (i = 0; i < n; i++) {
        if (!omni_gcra_item_valid(&items[i].limit, items[i].cost,
                                  items[i].tat))
        {
            return OMNI_GCRA_INVALID;
        }
    }

    memset(&best, 0, sizeof(omni_gcra_result_t));
    best.allowed = 1;
    best.index = -1;

    /*
     * First pass: decide each limit and find the tightest, tracking denials
     * apart (one denial outranks every allow). Deciding is cheap and pure,
     * so the second pass decides again rather than keeping n results.
     */

    for (i = 0; i < n; i++) {
        omni_gcra_decide(&items[i].limit, items[i].cost, items[i].tat, now,
                         &one);
        one.index = (int) i;

        if (best.index == -1
            || (one.allowed == best.allowed && omni_gcra_tighter(&one, &best))
            || (!one.allowed && best.allowed))
        {
            best = one;
        }
    }

    for (i = 0; i < n; i++) {
        omni_gcra_decide(&items[i].limit, items[i].cost, items[i].tat, now,
                         &one);

        if (best.allowed || !one.allowed) {
            items[i].tat = one.tat;
            items[i].ttl_us = one.ttl_us;

        } else {
            items[i].ttl_us = 0;
        }
    }

    *res = best;

    return 0;
}


int64_t
omni_gcra_ms(int64_t us)
{
    if (us <= 0) {
        return us;
    }

    return us / 1000 + (us % 1000 != 0);
}


static int
omni_gcra_item_valid(const omni_gcra_limit_t *limit, int64_t cost,
    int64_t tat)
{
    return omni_gcra_limit_valid(limit)
           && cost >= 1 && cost <= OMNI_GCRA_MAX_COST
           && tat >= 0;
}


/*
 * The decision itself, on valid input. Bounds: 0 <= now <= 2^62 and
 * tat >= 0, so tat - now cannot overflow; base is then at most now +
 * capacity, and capacity, cost * T <= 2^50: no sum exceeds 2^62 + 2^51.
 */

static void
omni_gcra_decide(const omni_gcra_limit_t *limit, int64_t cost, int64_t tat,
    int64_t now, omni_gcra_result_t *res)
{
    int64_t  cap, base, next, ahead;

    memset(res, 0, sizeof(omni_gcra_result_t));

    cap = (limit->burst + 1) * limit->interval;

    base = tat < now ? now : tat;
    res->tat = tat;

    if (base - now > cap) {
        /* a clock stepped back or a tightened limit: lower it, even on
         * deny, or the key stays locked until the clock catches up */
        base = now + cap;
        res->tat = base;
        res->ttl_us = cap;
    }

    res->reset_us = base - now;

    if (cost > limit->burst + 1) {
        res->retry_after_us = OMNI_GCRA_NEVER;
        return;
    }

    next = base + cost * limit->interval;
    ahead = next - now;

    if (ahead > cap) {
        res->retry_after_us = ahead - cap;
        return;
    }

    res->allowed = 1;
    res->remaining = (cap - ahead) / limit->interval;
    res->reset_us = ahead;
    res->ttl_us = ahead;
    res->tat = next;
}


/* Whether a is tighter than b, both allowed or both denied. */

static int
omni_gcra_tighter(const omni_gcra_result_t *a, const omni_gcra_result_t *b)
{
    if (a->allowed) {
        if (a->remaining != b->remaining) {
            return a->remaining < b->remaining;
        }

    } else if (a->retry_after_us != b->retry_after_us) {
        if (a->retry_after_us == OMNI_GCRA_NEVER) {
            return 1;
        }

        if (b->retry_after_us == OMNI_GCRA_NEVER) {
            return 0;
        }

        return a->retry_after_us > b->retry_after_us;
    }

    /* equal: the later index only wins with a strictly longer reset */
    return a->reset_us > b->reset_us;
}
