/* builtin.h: the built-in MCP server's tools (contexts and memories,
 * services/memory) as a chat turn offers them to the model. */
#ifndef OMNI_CHAT_BUILTIN_H
#define OMNI_CHAT_BUILTIN_H

#include "services/chat/wire.h"

/* Sets *defs to the tools under their /mcp names (omni__<tool>) and
 * returns how many there are; parsed once per process, kept for its life.
 * 0 (and *defs NULL) when they cannot be read. */
int omni_chat_builtin_tools(const omni_wire_tooldef_t **defs);

#endif
