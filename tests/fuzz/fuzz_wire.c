/* fuzz_wire.c: libFuzzer target for the providers' stream and body
 * parsers (services/chat/wire.h).
 *
 * The first byte picks OpenAI or Anthropic; the rest is fed whole, byte by
 * byte and cut at a position taken from the input: the three must agree on
 * the outcome, text, tool calls and usage. The same bytes also go through
 * the whole-body and error-body readers, which must not fail otherwise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "services/chat/wire.h"

static int feed(omni_wire_t *w, omni_wire_kind_t kind, const uint8_t *d,
    size_t n, size_t step, size_t cut)
{
    size_t from = 0, len;
    int rc = 0;

    omni_wire_init(w, kind);
    if (cut > 0 && cut < n) {
        rc = omni_wire_feed(w, (const char *)d, cut);
        return rc != 0 ? rc : omni_wire_feed(w, (const char *)d + cut, n - cut);
    }
    while (from < n && rc == 0) {
        len = step == 0 || n - from < step ? n - from : step;
        rc = omni_wire_feed(w, (const char *)d + from, len);
        from += len;
    }
    return rc;
}

static void same(const omni_wire_t *a, int ra, const omni_wire_t *b, int rb)
{
    int i;

    if (ra != rb || a->text.len != b->text.len
        || (a->text.len && memcmp(a->text.buf, b->text.buf, a->text.len))
        || a->ntools != b->ntools || a->input_tokens != b->input_tokens
        || a->output_tokens != b->output_tokens
        || a->cached_tokens != b->cached_tokens || a->done != b->done
        || strcmp(a->error, b->error) != 0 || strcmp(a->finish, b->finish))
        abort();
    for (i = 0; i < a->ntools; i++) {
        if (a->tools[i].args.len != b->tools[i].args.len
            || a->tools[i].index != b->tools[i].index)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    omni_wire_t whole, bytes, cut;
    omni_wire_kind_t kind;
    int r1, r2, r3;

    if (n < 2)
        return 0;
    kind = d[0] & 1 ? OMNI_WIRE_ANTHROPIC : OMNI_WIRE_OPENAI;
    r1 = feed(&whole, kind, d + 2, n - 2, 0, 0);
    r2 = feed(&bytes, kind, d + 2, n - 2, 1, 0);
    r3 = feed(&cut, kind, d + 2, n - 2, 0, d[1] % (n - 1));
    if (r1 != 0 && r1 != OMNI_WIRE_BAD)
        abort();
    same(&whole, r1, &bytes, r2);
    same(&whole, r1, &cut, r3);
    omni_wire_free(&whole);
    omni_wire_free(&bytes);
    omni_wire_free(&cut);

    omni_wire_init(&whole, kind);
    r1 = omni_wire_body(&whole, (const char *)d + 2, n - 2);
    if (r1 != 0 && r1 != OMNI_WIRE_BAD)
        abort();
    omni_wire_error_body(&whole, 500, (const char *)d + 2, n - 2);
    omni_wire_free(&whole);
    return 0;
}
