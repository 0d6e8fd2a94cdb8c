/* limits.c: an API key's tokens and requests per minute (limits.h).
 *
 * Each limit is a GCRA bucket in Redis holding its theoretical arrival
 * time (ms, Redis's clock): a cost c of a limit L per minute moves it by
 * c * 60000 / L, and a call is refused when that would put it more than a
 * minute ahead of now, so a full minute's worth may come at once and then
 * at the limit's pace. One script (billing.c's omni_llm_admit, with the
 * budgets and the plans' generation) checks both buckets and takes from
 * them only when all allow; the settlement moves the tokens' bucket by the
 * difference between the real usage and what was taken (back when less
 * was used, further when more). */
#include <stdio.h>
#include <string.h>

#include "io/clients.h"
#include "io/log.h"
#include "services/chat/limits.h"

static const char omni_limits_settle_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000\n"
    "local v = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if v < now then v = now end\n"
    "v = v + tonumber(ARGV[1]) * 60000 / tonumber(ARGV[2])\n"
    "if v > now then\n"
    "  redis.call('SET', KEYS[1], string.format('%.3f', v), 'PX',\n"
    "    math.ceil(v - now) + 1000)\n"
    "else\n"
    "  redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 0\n";


int omni_llm_limits_read(
    omni_llm_limits_t *l, const omni_json_t *j, const char *key)
{
    int64_t v;

    memset(l, 0, sizeof(*l));
    if (key == NULL || key[0] == '\0' || j == NULL
        || j->type != OMNI_JSON_OBJECT) {
        return 0;
    }
    l->key = key;
    if (omni_json_int(omni_json_get(j, "tokens_per_minute"), &v) && v > 0) {
        l->tpm = v;
    }
    if (omni_json_int(omni_json_get(j, "requests_per_minute"), &v) && v > 0) {
        l->rpm = v;
    }
    return l->tpm > 0 || l->rpm > 0;
}


void omni_llm_limits_keys(
    const omni_llm_limits_t *l, char *tk, char *rk, size_t size)
{
    const char *id = l->key != NULL ? l->key : "-";

    /* one hash slot for both under Redis Cluster */
    snprintf(tk, size, "omni:llm:{%s}:tpm", id);
    snprintf(rk, size, "omni:llm:{%s}:rpm", id);
}


static void omni_limits_ignore(redisAsyncContext *c, void *reply, void *arg)
{
}


void omni_llm_limits_settle(omni_llm_limits_t *l, int64_t used)
{
    char tk[96], rk[96], delta[24], tpm[24];
    const char *argv[6];

    if (!l->pending) {
        return;
    }
    l->pending = 0;
    if (l->tpm <= 0 || used == l->taken) {
        return;
    }
    omni_llm_limits_keys(l, tk, rk, sizeof(tk));
    snprintf(delta, sizeof(delta), "%lld", (long long)(used - l->taken));
    snprintf(tpm, sizeof(tpm), "%lld", (long long)l->tpm);
    argv[0] = "EVAL";
    argv[1] = omni_limits_settle_lua;
    argv[2] = "1";
    argv[3] = tk;
    argv[4] = delta;
    argv[5] = tpm;
    if (omni_redis_command_argv(
            omni_clients.redis, omni_limits_ignore, NULL, 6, argv, NULL)
        != 0) {
        omni_log(OMNI_LOG_WARN, "cannot settle an API key's token limit",
            "\"delta\":%lld", (long long)(used - l->taken));
    }
}
