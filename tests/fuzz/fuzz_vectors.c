/* fuzz_vectors.c: libFuzzer target for the embeddings answer reader
 * (services/memory/vectors.h), which reads what a provider sends.
 *
 * The first byte picks how many vectors are expected (1 to 4), the rest is
 * the answer. Whatever it is, the reader must not fail a sanitizer, and an
 * accepted answer must hold that many vectors of one dimension within the
 * bound, every float finite and each of length 1 (or all zero). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "services/memory/vectors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    omni_arena_t arena;
    const char *why;
    float **vecs;
    double norm;
    int n, dim, i, j;

    if (size < 1) {
        return 0;
    }
    n = 1 + data[0] % 4;
    omni_arena_init(&arena, 0);
    vecs = omni_vectors_parse(
        &arena, (const char *)data + 1, size - 1, n, &dim, &why);
    if (vecs == NULL) {
        if (why == NULL || why[0] == '\0') {
            abort();
        }
        omni_arena_free(&arena);
        return 0;
    }
    if (dim < 1 || dim > OMNI_VECTORS_MAX_DIM) {
        abort();
    }
    for (i = 0; i < n; i++) {
        if (vecs[i] == NULL) {
            abort();
        }
        norm = 0;
        for (j = 0; j < dim; j++) {
            if (!isfinite(vecs[i][j])) {
                abort();
            }
            norm += (double)vecs[i][j] * vecs[i][j];
        }
        if (norm != 0 && fabs(sqrt(norm) - 1) > 1e-4) {
            abort();
        }
    }
    omni_arena_free(&arena);
    return 0;
}
