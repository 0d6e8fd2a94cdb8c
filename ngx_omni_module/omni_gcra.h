/*
 * omni_gcra.h: GCRA rate-limit arithmetic (nginx "limit_req ... nodelay"
 * semantics) in plain C, no nginx types. The module's "omni_redis_fail
 * local" mode runs it over per-node shared-memory state; omni_limit.lua
 * is its twin in Redis and must agree with it decision for decision.
 *
 * A limit is an emission interval T (microseconds per request, 1/rate)
 * and a burst B. Its capacity is (B + 1) * T: a key may send B + 1
 * requests at once, then one per T. The state of a key is one number, its
 * TAT (theoretical arrival time, microseconds; 0 = no state). A request of
 * cost c at time now computes tat' = max(tat, now) + c * T and is allowed
 * iff tat' - now <= (B + 1) * T; on allow the state becomes tat', on deny
 * it stays as it was (one exception below).
 *
 * Times are microseconds on one clock shared by every caller (the Redis
 * script uses unix time from Redis TIME). A stored tat further ahead than
 * now + capacity can only come from a clock stepped back or a limit
 * tightened since it was written. It counts as now + capacity (a full
 * debt), and a denial lowers the state to that, so the key is locked out
 * for at most c * T rather than until the clock catches up. The caller's
 * rule is the same in every case: store tat for ttl_us when ttl_us > 0.
 */


#ifndef OMNI_GCRA_H_INCLUDED_
#define OMNI_GCRA_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/*
 * Bounds. With them every sum stays far inside int64_t, and every value
 * the Redis script handles stays below 2^53, where Lua's doubles are
 * exact integers (the script bounds now to 2^52 rather than 2^62).
 */
#define OMNI_GCRA_MAX_SPAN   (INT64_C(1) << 50)  /* (B + 1) * T: 35 years */
#define OMNI_GCRA_MAX_COST   1000000
#define OMNI_GCRA_MAX_TIME   (INT64_C(1) << 62)  /* now: inclusive */

#define OMNI_GCRA_NEVER      (-1)   /* retry_after_us: cost above capacity */
#define OMNI_GCRA_INVALID    (-1)   /* return value: arguments out of range */


typedef struct {
    int64_t  interval;      /* T, microseconds, >= 1 */
    int64_t  burst;         /* B, >= 0; (B + 1) * T <= OMNI_GCRA_MAX_SPAN */
} omni_gcra_limit_t;


/* One limit of a request, for omni_gcra_check_all(). */
typedef struct {
    omni_gcra_limit_t  limit;
    int64_t            cost;    /* 1 .. OMNI_GCRA_MAX_COST */
    int64_t            tat;     /* in: state (0 = none); out: new state */
    int64_t            ttl_us;  /* out: store tat this long; 0: unchanged */
} omni_gcra_item_t;


/* A decision. Durations are microseconds from now, never negative except
 * retry_after_us = OMNI_GCRA_NEVER. */
typedef struct {
    int      allowed;           /* 1 or 0 */
    int      index;             /* check_all: the tightest item, -1: none */
    int64_t  remaining;         /* allow: requests of cost 1 still free
                                   after this one; deny: 0 */
    int64_t  retry_after_us;    /* deny: wait this long and the same request
                                   is allowed (NEVER: it never is); allow: 0 */
    int64_t  reset_us;          /* until the key is back to full capacity */
    int64_t  ttl_us;            /* > 0: store tat this long (= reset_us);
                                   0: nothing to store, tat unchanged */
    int64_t  tat;               /* the state after this request */
} omni_gcra_result_t;


/*
 * Emission interval of a rate of requests per period_us ("10r/m": 10,
 * 60000000), rounded to the nearest microsecond. Returns -1 when requests
 * or period_us is below 1, the rate is above one request per microsecond
 * (1e6 r/s), or the interval would exceed OMNI_GCRA_MAX_SPAN.
 */
int64_t omni_gcra_interval(int64_t requests, int64_t period_us);

/* 1 when T and B are in range (see omni_gcra_limit_t), else 0. */
int omni_gcra_limit_valid(const omni_gcra_limit_t *limit);

/*
 * The share of one of nodes gateways enforcing a limit on their own: 1/N
 * of its rate and of its burst (T * N, B / N rounded down). Returns 0, or
 * OMNI_GCRA_INVALID (out untouched) when limit is invalid, nodes < 1 or
 * the share's capacity would exceed OMNI_GCRA_MAX_SPAN.
 */
int omni_gcra_limit_per_node(const omni_gcra_limit_t *limit, int64_t nodes,
    omni_gcra_limit_t *out);

/*
 * Decides one request of cost against one key's state tat at time now.
 * Cannot fail on valid input: returns 0 with *res filled, or
 * OMNI_GCRA_INVALID (*res untouched) when the limit is invalid, cost is
 * outside 1 .. OMNI_GCRA_MAX_COST, tat is negative or now is outside
 * 0 .. OMNI_GCRA_MAX_TIME. A cost above B + 1 is denied with
 * retry_after_us = OMNI_GCRA_NEVER. res->index is 0. The caller stores
 * res->tat for res->ttl_us when res->ttl_us > 0: always on allow, and on
 * a deny that lowered a state found ahead of capacity.
 */
int omni_gcra_check(const omni_gcra_limit_t *limit, int64_t cost,
    int64_t tat, int64_t now, omni_gcra_result_t *res);

/*
 * Decides one request that is subject to n limits, all or nothing: it is
 * allowed only when every limit allows it, and then each items[i].tat
 * becomes the new state to store for items[i].ttl_us; otherwise nothing
 * is consumed: ttl_us is 0 and tat unchanged, except for states ahead of
 * capacity, lowered as omni_gcra_check() does (store those whose ttl_us
 * > 0). Each item is checked against its own state, so the caller passes
 * each key once. *res reports the tightest
 * limit, res->index: on allow the lowest remaining, on deny the longest
 * retry_after_us (NEVER is longest); ties go to the longer reset_us, then
 * to the lower index. res->tat and res->ttl_us are the tightest item's.
 * n = 0 allows with index -1 and zeros. Returns 0, or OMNI_GCRA_INVALID
 * (nothing changed) when any item is invalid as for omni_gcra_check().
 */
int omni_gcra_check_all(omni_gcra_item_t *items, size_t n, int64_t now,
    omni_gcra_result_t *res);

/* A non-negative duration in whole milliseconds, rounded up (a client
 * that waits retry_after_ms is then allowed); negative values as they are
 * (OMNI_GCRA_NEVER stays -1). This is what the Redis script replies. */
int64_t omni_gcra_ms(int64_t us);


#endif /* OMNI_GCRA_H_INCLUDED_ */
