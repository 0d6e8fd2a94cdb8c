/* test_arena.c: the per-request bump allocator. */
#include <stdint.h>
#include <string.h>

#include "lib/arena.h"
#include "unit.h"

static void test_allocations_are_16_byte_aligned(void)
{
    omni_arena_t a;
    size_t n;
    char *p;

    omni_arena_init(&a, 0);
    for (n = 1; n < 200; n += 7) {
        p = omni_arena_alloc(&a, n);
        CHECK(p != NULL);
        CHECK_EQ_INT((uintptr_t)p % 16, 0);
        memset(p, 0xAB, n);
    }
    omni_arena_free(&a);
}

static void test_allocations_do_not_overlap(void)
{
    omni_arena_t a;
    unsigned char *p[100];
    size_t i, j;

    omni_arena_init(&a, 256);
    for (i = 0; i < 100; i++) {
        p[i] = omni_arena_alloc(&a, 40);
        CHECK(p[i] != NULL);
        memset(p[i], (int)i, 40);
    }
    for (i = 0; i < 100; i++)
        for (j = 0; j < 40; j++)
            CHECK_EQ_INT(p[i][j], i);
    omni_arena_free(&a);
}

static void test_zero_size_gets_distinct_pointers(void)
{
    omni_arena_t a;
    void *x, *y;

    omni_arena_init(&a, 0);
    x = omni_arena_alloc(&a, 0);
    y = omni_arena_alloc(&a, 0);
    CHECK(x != NULL);
    CHECK(y != NULL);
    CHECK(x != y);
    omni_arena_free(&a);
}

static void test_large_request_gets_own_block_and_head_keeps_filling(void)
{
    omni_arena_t a;
    char *small1, *big, *small2;

    omni_arena_init(&a, 1024);
    small1 = omni_arena_alloc(&a, 16);
    big = omni_arena_alloc(&a, 100000);
    small2 = omni_arena_alloc(&a, 16);
    CHECK(small1 != NULL && big != NULL && small2 != NULL);
    memset(big, 1, 100000);
    /* the small allocations share the first block */
    CHECK(small2 == small1 + 16);
    omni_arena_free(&a);
}

static void test_huge_request_fails_cleanly(void)
{
    omni_arena_t a;

    omni_arena_init(&a, 0);
    CHECK(omni_arena_alloc(&a, SIZE_MAX) == NULL);
    CHECK(omni_arena_alloc(&a, SIZE_MAX - 8) == NULL);
    CHECK(omni_arena_strndup(&a, "x", SIZE_MAX) == NULL);
    omni_arena_free(&a);
}

static void test_strndup_copies_and_terminates(void)
{
    omni_arena_t a;
    char *s;

    omni_arena_init(&a, 0);
    s = omni_arena_strndup(&a, "hello world", 5);
    CHECK_STR_EQ(s, "hello");
    s = omni_arena_strndup(&a, NULL, 0);
    CHECK_STR_EQ(s, "");
    omni_arena_free(&a);
}

static void test_free_leaves_arena_reusable(void)
{
    omni_arena_t a;
    int round;

    omni_arena_init(&a, 64);
    for (round = 0; round < 3; round++) {
        CHECK(omni_arena_alloc(&a, 10) != NULL);
        CHECK(omni_arena_alloc(&a, 1000) != NULL);
        omni_arena_free(&a);
        CHECK(a.head == NULL);
    }
    omni_arena_free(&a);
}

static void test_many_blocks_are_all_freed(void)
{
    omni_arena_t a;
    int i;

    /* LeakSanitizer fails the binary if any block survives */
    omni_arena_init(&a, 128);
    for (i = 0; i < 10000; i++)
        CHECK(omni_arena_alloc(&a, (size_t)(i % 97) + 1) != NULL);
    omni_arena_free(&a);
}

static void test_reset_keeps_one_standard_block_for_reuse(void)
{
    omni_arena_t a;
    char *small[12], *big, *p;
    int i, kept = 0;

    omni_arena_init(&a, 256);
    small[0] = omni_arena_alloc(&a, 60);
    big = omni_arena_alloc(&a, 4000); /* a block of its own */
    CHECK(small[0] != NULL && big != NULL);
    memset(big, 1, 4000);
    for (i = 1; i < 12; i++) {
        small[i] = omni_arena_alloc(&a, 60); /* four a block: 3 blocks */
        CHECK(small[i] != NULL);
    }

    omni_arena_reset(&a);
    /* served from a block kept from before, empty again: at its start */
    p = omni_arena_alloc(&a, 60);
    for (i = 0; i < 12; i++) {
        kept += p == small[i];
    }
    CHECK_EQ_INT(kept, 1);
    memset(p, 2, 60);
    omni_arena_free(&a);
}

static void test_reset_of_only_large_blocks_leaves_an_empty_arena(void)
{
    omni_arena_t a;
    char *p;

    omni_arena_init(&a, 256);
    CHECK(omni_arena_alloc(&a, 1000) != NULL);
    omni_arena_reset(&a);
    p = omni_arena_alloc(&a, 10);
    CHECK(p != NULL);
    memset(p, 3, 10);
    omni_arena_reset(&a);
    omni_arena_reset(&a);
    omni_arena_free(&a);
}

UNIT_MAIN(UNIT_TEST(test_allocations_are_16_byte_aligned),
    UNIT_TEST(test_allocations_do_not_overlap),
    UNIT_TEST(test_zero_size_gets_distinct_pointers),
    UNIT_TEST(test_large_request_gets_own_block_and_head_keeps_filling),
    UNIT_TEST(test_huge_request_fails_cleanly),
    UNIT_TEST(test_strndup_copies_and_terminates),
    UNIT_TEST(test_free_leaves_arena_reusable),
    UNIT_TEST(test_many_blocks_are_all_freed),
    UNIT_TEST(test_reset_keeps_one_standard_block_for_reuse),
    UNIT_TEST(test_reset_of_only_large_blocks_leaves_an_empty_arena))
