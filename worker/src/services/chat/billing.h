/* billing.h: what the chat turn and the LLM gateway share about calling
 * a provider and paying for it: the planned targets (the key only by
 * reference), the daily budgets reserved in Redis before a call and settled
 * after, and the usage ledger, one row per attempt appended in batches. */
#ifndef OMNI_CHAT_BILLING_H
#define OMNI_CHAT_BILLING_H

#include <stdint.h>

#include "lib/arena.h"
#include "lib/json.h"
#include "io/outbound.h"
#include "http/http.h"
#include "services/chat/limits.h"
#include "services/chat/wire.h"

/* The generation of the LLM gateway's admin state (providers, models,
 * prices, aliases, budgets, key limits): bumped after every change, so a
 * plan cached under an older one is planned again. */
#define OMNI_LLM_GEN_KEY "omni:llm:gen"

/* One provider target of a model, in fallback order. */
typedef struct {
    const char *provider, *type, *base_url, *key_env, *key_file, *model,
        *model_id;
    int max_output_tokens, price_version;
    double in, out, cached; /* per million tokens */
} omni_llm_target_t;

/* The daily budgets that apply to a call and what it reserved of them. */
typedef struct {
    const char *keys[4];
    int64_t tokens[4], cost[4]; /* -1: unlimited */
    int n;
    int reply;    /* of the last reservation: 0 ok, i > 0 keys[i-1] over,
                     -1 Redis unavailable */
    int reserved; /* reservations made */
    int64_t reserve_tokens, reserve_cost; /* cost in 1e-9 units */
    int64_t billed_tokens, billed_cost;   /* of the ledger rows so far */
} omni_budgets_t;

/* A ledger row's tags; the counts come from the attempt's wire. */
typedef struct {
    uint64_t at_us, latency_ms;
    const char *user, *api_key, *project, *conv, *message, *status;
} omni_ledger_row_t;

/* Master: registers the ledger's statement. 0 or -1. */
int omni_billing_init(void);

/* Each worker process: the provider client and the ledger's flush timer. */
int omni_billing_start(void);

/* Flushes the ledger rows held and frees the client. */
void omni_billing_stop(void);

/* The providers' HTTP client of this process. */
omni_outbound_t *omni_billing_outbound(void);

uint64_t omni_billing_now_ms(void);

uint64_t omni_billing_wall_us(void);

/* Reads the JSON array of targets (omnichat.turn_targets()'s shape) into
 * the arena: their number, or -1 when out of memory. */
int omni_billing_targets(
    omni_arena_t *a, const omni_json_t *arr, omni_llm_target_t **out);

/* Reads the JSON array of budgets [{key, tokens_per_day, cost_per_day}]
 * and sizes the reservation: input_estimate + max_tokens (the target's own
 * when max_tokens <= 0 or above it) at the dearest target's list price. */
void omni_billing_budgets(omni_budgets_t *b, const omni_json_t *arr,
    const omni_llm_target_t *g, int ng, int64_t input_estimate,
    int64_t max_tokens);

/* The cost of counts at g's prices, in 1e-9 currency units. */
int64_t omni_billing_cost(
    const omni_llm_target_t *g, int64_t in, int64_t out, int64_t cached);

/* The provider's key from the environment or a secret file (copied into
 * the arena), or NULL. */
const char *omni_billing_key(omni_arena_t *a, const omni_llm_target_t *g);

/* Sends body to g (its key from the environment or its file, the URL and
 * headers of its format kind; version: anthropic-version, NULL for
 * 2023-06-01) with spec's callbacks and arg; the provider's transfer, or
 * NULL when it could not start. */
omni_out_req_t *omni_provider_call(omni_req_t *r, const omni_llm_target_t *g,
    omni_wire_kind_t kind, const char *version, struct evbuffer *body,
    int stream, omni_out_spec_t *spec, void *arg);

/* Sends the reservation of b; r is resumed with b->reply set. 0, or -1
 * when it could not be sent. */
int omni_budgets_reserve(omni_budgets_t *b, omni_req_t *r);

/* The admission of a call in one Redis script: the generation, the key's
 * limits l (tokens taken: tokens) and the budgets b, taken only when all
 * allow and gen is the current generation (gen < 0: not checked). r is
 * resumed with *reply: 0 taken (l->pending, b->reserved set), 1 or 2 the
 * key's tokens or requests over (l->retry_after), 3 b->keys[b->reply - 1]
 * over, 4 stale (nothing taken; *cur the current generation), -1 Redis
 * unavailable. 0, or -1 when it could not be sent. */
int omni_llm_admit(omni_budgets_t *b, omni_llm_limits_t *l, int64_t tokens,
    int64_t gen, int64_t *cur, int *reply, omni_req_t *r);

/* INCRs the generation (after an admin change in Postgres); r is resumed
 * when Redis has it. 0, or -1 when it could not be sent. */
int omni_llm_gen_bump(omni_req_t *r);

/* Gives back what was reserved and not billed (never waits). */
void omni_budgets_settle(omni_budgets_t *b);

/* Counts the attempt w read (a reply that did not finish: output at least
 * what arrived, input the estimate when none came; w's counts are set to
 * what is billed), queues its ledger row, adds it to b (may be NULL) and
 * returns its cost. */
int64_t omni_ledger_append(const omni_ledger_row_t *row,
    const omni_llm_target_t *g, omni_wire_t *w, int64_t input_estimate,
    omni_budgets_t *b);

/* Appends ,"k":"v" (or null for NULL or "") to a JSON object. */
void omni_billing_json_str(struct evbuffer *b, const char *k, const char *v);

#endif
