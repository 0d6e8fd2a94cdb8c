/* vectors.c: an embeddings answer read into unit vectors. The length is
 * computed in double over values scaled by the largest magnitude, so no
 * number JSON can hold overflows it, and each float is made from a value
 * already in [-1, 1]. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lib/json.h"
#include "services/memory/vectors.h"


/* One embedding array into out[0..len) as unit-length floats; -1 when an
 * element is not a finite number. */
static int omni_vectors_unit(const omni_json_t *emb, float *out)
{
    double d, m = 0, sum = 0;
    size_t j, len = emb->u.arr.len;

    for (j = 0; j < len; j++) {
        if (!omni_json_double(emb->u.arr.items[j], &d) || !isfinite(d)) {
            return -1;
        }
        if (fabs(d) > m) {
            m = fabs(d);
        }
    }
    if (m == 0) {
        memset(out, 0, sizeof(float) * len);
        return 0;
    }
    for (j = 0; j < len; j++) {
        omni_json_double(emb->u.arr.items[j], &d);
        sum += (d / m) * (d / m);
    }
    sum = sqrt(sum); /* in [1, sqrt(len)] */
    for (j = 0; j < len; j++) {
        omni_json_double(emb->u.arr.items[j], &d);
        out[j] = (float)(d / m / sum);
    }
    return 0;
}


float **omni_vectors_parse(omni_arena_t *arena, const char *text, size_t len,
    int n, int *dim, const char **why)
{
    const omni_json_t *root, *data, *item, *emb, *idx;
    omni_json_limits_t lim = {0, 8};
    char err[128];
    float **vecs;
    int64_t at;
    size_t i;

    *why = "the provider's answer is not an embeddings list";
    *dim = 0;
    if (n < 1) {
        return NULL;
    }
    root = omni_json_parse(arena, text, len, &lim, err, sizeof(err));
    data = omni_json_get(root, "data");
    if (data == NULL || data->type != OMNI_JSON_ARRAY
        || data->u.arr.len != (size_t)n) {
        return NULL;
    }
    vecs = omni_arena_alloc(arena, sizeof(float *) * (size_t)n);
    if (vecs == NULL) {
        return NULL;
    }
    memset(vecs, 0, sizeof(float *) * (size_t)n);
    for (i = 0; i < data->u.arr.len; i++) {
        item = data->u.arr.items[i];
        emb = omni_json_get(item, "embedding");
        idx = omni_json_get(item, "index");
        at = (int64_t)i;
        if ((idx != NULL && !omni_json_int(idx, &at)) || at < 0 || at >= n
            || vecs[at] != NULL || emb == NULL || emb->type != OMNI_JSON_ARRAY
            || emb->u.arr.len == 0 || emb->u.arr.len > OMNI_VECTORS_MAX_DIM
            || (*dim != 0 && emb->u.arr.len != (size_t)*dim)) {
            return NULL;
        }
        *dim = (int)emb->u.arr.len;
        vecs[at] = omni_arena_alloc(arena, sizeof(float) * (size_t)*dim);
        if (vecs[at] == NULL || omni_vectors_unit(emb, vecs[at]) != 0) {
            return NULL;
        }
    }
    return vecs;
}
