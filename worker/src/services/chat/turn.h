/* turn.h: POST /api/v1/conversations/{id}/messages, the chat turn, and the
 * per-process batch of usage ledger rows it appends. */
#ifndef OMNI_CHAT_TURN_H
#define OMNI_CHAT_TURN_H

#include "http/http.h"

/* Master: registers the statements. 0 or -1. */
int omni_turn_init(void);

/* Each worker process: the provider client and the ledger's flush timer.
 * 0 or -1. */
int omni_turn_start(void);

/* Flushes the ledger rows held and frees the client. */
void omni_turn_stop(void);

void omni_turn_post(omni_req_t *r);

#endif
