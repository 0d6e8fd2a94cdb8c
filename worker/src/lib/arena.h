/* arena.h: per-request bump allocator; everything is freed at once. */
#ifndef OMNI_ARENA_H
#define OMNI_ARENA_H

#include <stddef.h>

typedef struct omni_arena_block omni_arena_block_t;

typedef struct {
    omni_arena_block_t *head; /* current block, newest first */
    size_t block_size;
} omni_arena_t;

/* Initialise an empty arena; blocks of block_size (0 = 4 KiB) are malloc'd
 * on demand. Never fails and allocates nothing. */
void omni_arena_init(omni_arena_t *a, size_t block_size);

/* Returns 16-byte-aligned memory valid until omni_arena_free(), or NULL when
 * malloc fails or n is absurd (would overflow size_t). n == 0 returns a
 * unique non-NULL pointer. A request over a quarter of block_size that does
 * not fit the current block gets a block of its own, so the current block
 * keeps filling. */
void *omni_arena_alloc(omni_arena_t *a, size_t n);

/* Copies n bytes and appends a NUL; NULL on allocation failure. */
char *omni_arena_strndup(omni_arena_t *a, const char *s, size_t n);

/* Frees every block but one of block_size, kept empty for the arena's
 * next use (what a loop that reuses one arena saves: a malloc and a free
 * each time). Memory from before is invalid. omni_arena_free() still
 * frees everything. */
void omni_arena_reset(omni_arena_t *a);

/* Frees every block. The arena is left empty and can be used again at once
 * (calling omni_arena_init() again is allowed, not required). */
void omni_arena_free(omni_arena_t *a);

#endif
