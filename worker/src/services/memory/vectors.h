/* vectors.h: an OpenAI-compatible /v1/embeddings answer read into unit
 * vectors. Pure (lib/ only): the fuzz target's subject. */
#ifndef OMNI_MEMORY_VECTORS_H
#define OMNI_MEMORY_VECTORS_H

#include <stddef.h>

#include "lib/arena.h"

#define OMNI_VECTORS_MAX_DIM 65536

/* Reads {"data":[{"index"?, "embedding":[numbers]}, ...]} (text[0..len),
 * not NUL-terminated) holding exactly n vectors of one dimension (1 to
 * OMNI_VECTORS_MAX_DIM), each index (or its position) used once. Returns
 * the n vectors by index, scaled to unit length (an all-zero one stays
 * zero), every float finite; *dim is their dimension. NULL when the answer
 * is not that (or memory runs out), with *why for the client. Everything
 * is allocated from arena. */
float **omni_vectors_parse(omni_arena_t *arena, const char *text, size_t len,
    int n, int *dim, const char **why);

#endif
