/* embed.h: memories' embeddings: the OpenAI-compatible /v1/embeddings call
 * to the provider of OMNI_EMBEDDING_MODEL (omnichat's registry), and the
 * queue that embeds added memories off the request path. Internal to the
 * memory service. */
#ifndef OMNI_MEMORY_EMBED_H
#define OMNI_MEMORY_EMBED_H

#include <stddef.h>

/* Registers the statements (service init). 0 or -1. */
int omni_mem_embed_init(void);

/* Takes OMNI_EMBEDDING_MODEL (configure); NULL or "" is none. */
void omni_mem_embed_configure(const char *model);

/* The configured model's name, or NULL: text search only. */
const char *omni_mem_model(void);

/* This process's outbound client and queue timer (start); 0 or -1. */
int omni_mem_embed_start(void);
void omni_mem_embed_stop(void);

/* Something was added: the queue looks for work now, not at its next
 * tick. */
void omni_mem_embed_kick(void);

/* The end of omni_mem_embed(): status 0 with n unit vectors of dim floats
 * each (valid during the call), or the HTTP status to answer (502 provider
 * failure, 503 no provider for the model or overloaded, 504 timeout) with
 * msg saying why (never a key or URL). */
typedef void (*omni_mem_embed_pt)(
    void *arg, int status, const char *msg, float *const *vecs, int n, int dim);

/* Embeds texts[0..n) (copied; n <= 64) with the configured model. done runs
 * exactly once, from the loop. Returns 0, or -1 without a callback when no
 * model is configured or memory runs out. */
int omni_mem_embed(
    const char *const *texts, int n, omni_mem_embed_pt done, void *arg);

#endif
