/* balance.h: spreads the connections nginx opens over the worker
 * processes that share the listening socket. */
#ifndef OMNI_CORE_BALANCE_H
#define OMNI_CORE_BALANCE_H

struct event_base;
struct evconnlistener;

/* The shared counters; the master calls it once, before any fork. -1
 * when mmap fails (fatal at start-up). */
int omni_balance_init(void);

/* This process takes slot `slot` and starts level with the processes
 * already accepting. */
void omni_balance_attach(int slot, struct event_base *base);

/* Called for every connection this process accepts on `lev`: may pause
 * lev for a moment when this process holds more than its share. */
void omni_balance_accepted(struct evconnlistener *lev);

/* This process accepts no more (draining): the others stop waiting for
 * it to catch up, and the pause is cancelled. */
void omni_balance_leave(void);

/* The master frees a dead process's slot. */
void omni_balance_release(int slot);

#endif
