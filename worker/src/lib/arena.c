/* arena.c: per-request bump allocator over a list of malloc'd blocks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/arena.h"

#define ARENA_ALIGN 16
#define ARENA_DEFAULT_BLOCK 4096

struct omni_arena_block {
    omni_arena_block_t *next;
    char *pos; /* next free byte, not yet aligned */
    char *end;
};

static char *arena_align(char *p)
{
    uintptr_t u = (uintptr_t)p;

    return p + ((ARENA_ALIGN - (u & (ARENA_ALIGN - 1))) & (ARENA_ALIGN - 1));
}

/* A block holds its header, up to ARENA_ALIGN - 1 bytes of padding (malloc
 * only promises alignof(max_align_t)), then room for `room` bytes. */
static omni_arena_block_t *arena_block_new(size_t room)
{
    omni_arena_block_t *b;
    size_t total;

    if (room > SIZE_MAX - sizeof(*b) - ARENA_ALIGN)
        return NULL;
    total = sizeof(*b) + ARENA_ALIGN + room;
    b = malloc(total);
    if (b == NULL)
        return NULL;
    b->next = NULL;
    b->pos = (char *)(b + 1);
    b->end = (char *)b + total;
    return b;
}

void omni_arena_init(omni_arena_t *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size ? block_size : ARENA_DEFAULT_BLOCK;
}

void *omni_arena_alloc(omni_arena_t *a, size_t n)
{
    omni_arena_block_t *b = a->head;
    char *p;

    /* n == 0 still gets a distinct pointer, like malloc(1) */
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX / 2)
        return NULL;

    if (b != NULL) {
        p = arena_align(b->pos);
        if (p < b->end && (size_t)(b->end - p) >= n) {
            b->pos = p + n;
            return p;
        }
    }

    if (n > a->block_size / 4) {
        /* a dedicated block goes behind the head: the head may still have
         * plenty of room for the small allocations that follow */
        b = arena_block_new(n);
        if (b == NULL)
            return NULL;
        if (a->head != NULL) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            a->head = b;
        }
        p = arena_align(b->pos);
        b->pos = p + n;
        return p;
    }

    b = arena_block_new(a->block_size);
    if (b == NULL)
        return NULL;
    b->next = a->head;
    a->head = b;
    p = arena_align(b->pos);
    b->pos = p + n;
    return p;
}

char *omni_arena_strndup(omni_arena_t *a, const char *s, size_t n)
{
    char *p;

    if (n == SIZE_MAX)
        return NULL;
    p = omni_arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    if (n > 0)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void omni_arena_reset(omni_arena_t *a)
{
    size_t standard = sizeof(omni_arena_block_t) + ARENA_ALIGN + a->block_size;
    omni_arena_block_t *b = a->head;
    omni_arena_block_t *keep = NULL;
    omni_arena_block_t *next;

    while (b != NULL) {
        next = b->next;
        if (keep == NULL && (size_t)(b->end - (char *)b) == standard) {
            keep = b;
        } else {
            free(b);
        }
        b = next;
    }
    if (keep != NULL) {
        keep->next = NULL;
        keep->pos = (char *)(keep + 1);
    }
    a->head = keep;
}

void omni_arena_free(omni_arena_t *a)
{
    omni_arena_block_t *b = a->head;
    omni_arena_block_t *next;

    while (b != NULL) {
        next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}
