/* wire.h: the LLM providers' wire formats, pure (no I/O): OpenAI Chat
 * Completions and Anthropic Messages responses, streamed (SSE) or whole,
 * their error bodies, and the request bodies a turn sends.
 *
 * A reply is read into one omni_wire_t: text, tool calls (assembled per
 * index from their deltas), usage, finish reason, provider request id, and
 * an error when the provider reported one. Both stream parsers are fed raw
 * body bytes cut anywhere. */
#ifndef OMNI_CHAT_WIRE_H
#define OMNI_CHAT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/sse.h"

struct evbuffer;

typedef enum {
    OMNI_WIRE_OPENAI = 0,
    OMNI_WIRE_ANTHROPIC
} omni_wire_kind_t;

#define OMNI_WIRE_MAX_TOOLS 16
#define OMNI_WIRE_MAX_TEXT (1024 * 1024)
#define OMNI_WIRE_MAX_ARGS (256 * 1024)

typedef struct {
    char *buf; /* malloc'd, NUL-terminated when len > 0 */
    size_t len, cap;
} omni_wire_buf_t;

typedef struct {
    int index; /* the provider's index of the call or content block */
    omni_wire_buf_t id, name, args; /* args: JSON text as streamed */
} omni_wire_tool_t;

/* What a reply said so far. */
typedef struct {
    omni_wire_kind_t kind;
    omni_sse_t sse;
    omni_wire_buf_t text;
    omni_wire_tool_t tools[OMNI_WIRE_MAX_TOOLS];
    int ntools;
    int64_t input_tokens; /* prompt tokens, cached ones included */
    int64_t output_tokens;
    int64_t cached_tokens; /* of input_tokens, read from a cache */
    int have_usage;
    char request_id[128];
    char finish[32];   /* "stop", "tool_calls", "end_turn", "length"... */
    int done;          /* [DONE] or message_stop seen */
    int events;        /* events that carried content or usage */
    char error[64];    /* the provider's error type, "" when none */
    char message[256]; /* its message */

    /* Called with each piece of text as it is parsed (may be NULL). A
     * non-zero return stops the feed, which returns it. */
    int (*on_text)(void *arg, const char *s, size_t n);
    void *arg;
} omni_wire_t;

#define OMNI_WIRE_BAD (-1) /* not the provider's wire format, or too big */

void omni_wire_init(omni_wire_t *w, omni_wire_kind_t kind);

/* Parses more of a streamed (text/event-stream) body. Returns 0; a
 * provider error event sets w->error and returns 0 (the stream is over);
 * OMNI_WIRE_BAD for bytes that are not the format (w->error "bad_response"
 * and w->message say what); or on_text's non-zero return. */
int omni_wire_feed(omni_wire_t *w, const char *buf, size_t len);

/* Parses a whole (non-streamed) 2xx body: 0, or OMNI_WIRE_BAD as above.
 * An error object in it sets w->error and returns 0. */
int omni_wire_body(omni_wire_t *w, const char *buf, size_t len);

/* Reads an error body (either provider's shape) into w->error and
 * w->message; when it is no such body, w->error is "http_<status>". */
void omni_wire_error_body(
    omni_wire_t *w, long status, const char *buf, size_t len);

/* Frees what w holds; w may be initialised again. */
void omni_wire_free(omni_wire_t *w);

/* A message of the conversation as a turn sends it: role "user",
 * "assistant" or "tool"; tool_calls (assistant) the JSON array
 * [{id, name, arguments}] as text or NULL; tool_call_id (tool); is_error
 * (tool). */
typedef struct {
    const char *role;
    const char *content;
    const char *tool_calls;
    const char *tool_call_id;
    int is_error;
} omni_wire_msg_t;

/* A tool offered to the model: name, description, JSON Schema text. */
typedef struct {
    const char *name;
    const char *description;
    const char *schema;
} omni_wire_tooldef_t;

/* Writes the request body for model: system prompt (may be NULL or ""),
 * the messages in order, tools, max_tokens, stream (OpenAI streams ask for
 * include_usage). Returns 0, or -1 when out of memory or a tool_calls
 * text is not a JSON array. */
int omni_wire_request(struct evbuffer *out, omni_wire_kind_t kind,
    const char *model, const char *system, const omni_wire_msg_t *msgs,
    int nmsgs, const omni_wire_tooldef_t *tools, int ntools, int max_tokens,
    int stream);

#endif
