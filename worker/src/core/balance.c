/* balance.c: every worker process accepts on the one listening socket,
 * and libevent's listener accepts until the backlog is empty. When nginx
 * opens its keepalive connections in a burst, the process that wakes
 * first takes them all (on a shared core the others do not even run
 * before it is done), the connections stay for thousands of requests,
 * and one process queues while the others idle. nginx balances its own
 * workers with accept_mutex or EPOLLEXCLUSIVE; a unix socket has no
 * SO_REUSEPORT, and libevent exposes neither, so the processes keep a
 * count of what each accepted in shared memory, and one that is more
 * than one connection ahead of the least pauses its listener for
 * OMNI_BALANCE_PAUSE_MS. The least never pauses, so someone always
 * accepts; and a pause always ends, so a stuck process cannot hold the
 * others back for long.
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>

#include "http/metrics.h"
#include "core/balance.h"


#define OMNI_BALANCE_PAUSE_MS 5

typedef struct {
    int32_t live;      /* accepting */
    uint64_t accepted; /* connections, since the process started */
} omni_balance_slot_t;

static omni_balance_slot_t *omni_balance_slots;

static struct {
    int slot;
    struct event resume;
    struct evconnlistener *paused;
} omni_balance = {.slot = -1};


int omni_balance_init(void)
{
    void *p = mmap(NULL, sizeof(omni_balance_slot_t) * OMNI_METRICS_MAX_PROCS,
        PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        return -1;
    }
    omni_balance_slots = p;
    return 0;
}


/* The fewest connections any other accepting process has taken; this
 * process's own count when it is alone. */
static uint64_t omni_balance_least(uint64_t own)
{
    uint64_t least = own, n;
    int i;

    for (i = 0; i < OMNI_METRICS_MAX_PROCS; i++) {
        if (i == omni_balance.slot
            || !__atomic_load_n(
                &omni_balance_slots[i].live, __ATOMIC_ACQUIRE)) {
            continue;
        }
        n = __atomic_load_n(&omni_balance_slots[i].accepted, __ATOMIC_RELAXED);
        if (n < least) {
            least = n;
        }
    }
    return least;
}


static void omni_balance_resume(evutil_socket_t fd, short what, void *arg)
{
    if (omni_balance.paused != NULL) {
        evconnlistener_enable(omni_balance.paused);
        omni_balance.paused = NULL;
    }
}


void omni_balance_attach(int slot, struct event_base *base)
{
    uint64_t start;

    if (omni_balance_slots == NULL) {
        return;
    }
    omni_balance.slot = slot;
    evtimer_assign(&omni_balance.resume, base, omni_balance_resume, NULL);
    /* a new process (a restart, a reload) starts level with the least
     * loaded one, instead of taking every new connection until it has
     * caught up with processes that have run for hours */
    start = omni_balance_least(UINT64_MAX);
    __atomic_store_n(&omni_balance_slots[slot].accepted,
        start == UINT64_MAX ? 0 : start, __ATOMIC_RELAXED);
    __atomic_store_n(&omni_balance_slots[slot].live, 1, __ATOMIC_RELEASE);
}


void omni_balance_accepted(struct evconnlistener *lev)
{
    struct timeval tv = {0, OMNI_BALANCE_PAUSE_MS * 1000};
    uint64_t own;

    if (omni_balance.slot < 0) {
        return;
    }
    own = __atomic_add_fetch(
        &omni_balance_slots[omni_balance.slot].accepted, 1, __ATOMIC_RELAXED);
    if (lev == NULL || omni_balance.paused != NULL
        || own <= omni_balance_least(own) + 1) {
        return;
    }
    /* libevent's accept loop stops when its listener is disabled */
    evconnlistener_disable(lev);
    omni_balance.paused = lev;
    evtimer_add(&omni_balance.resume, &tv);
}


void omni_balance_leave(void)
{
    if (omni_balance.slot < 0) {
        return;
    }
    __atomic_store_n(
        &omni_balance_slots[omni_balance.slot].live, 0, __ATOMIC_RELEASE);
    evtimer_del(&omni_balance.resume);
    omni_balance.paused = NULL;
}


void omni_balance_release(int slot)
{
    if (omni_balance_slots != NULL) {
        memset(&omni_balance_slots[slot], 0, sizeof(omni_balance_slot_t));
    }
}
