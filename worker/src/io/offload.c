/* offload.c: a small per-process thread pool for CPU-heavy work; results
 * come back to the event loop through an eventfd. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/event.h>

#include "io/offload.h"


#define OMNI_OFFLOAD_MAX_THREADS 64
/* nice value of the pool threads: the loop thread wins the CPU whenever it
 * has a request to serve, so hashing bursts do not add queueing latency */
#define OMNI_OFFLOAD_NICE 10

typedef struct omni_job omni_job_t;

struct omni_job {
    omni_offload_fn work;
    omni_offload_fn done;
    void *arg;
    omni_job_t *next;
};

typedef struct {
    omni_job_t *head;
    omni_job_t *tail;
} omni_job_list_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    omni_job_list_t waiting;
    omni_job_list_t finished;
    int queued;
    int queue_max;
    int stopping;
    int nthreads;
    pthread_t threads[OMNI_OFFLOAD_MAX_THREADS];
    int efd;
    struct event *ev;
} omni_offload = {.lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .efd = -1};


static void omni_job_push(omni_job_list_t *l, omni_job_t *j)
{
    j->next = NULL;
    if (l->tail) {
        l->tail->next = j;
    } else {
        l->head = j;
    }
    l->tail = j;
}


static omni_job_t *omni_job_pop(omni_job_list_t *l)
{
    omni_job_t *j = l->head;

    if (j) {
        l->head = j->next;
        if (l->head == NULL) {
            l->tail = NULL;
        }
    }
    return j;
}


static void *omni_offload_thread(void *unused)
{
    omni_job_t *j;
    uint64_t one = 1;
    ssize_t n;

    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), OMNI_OFFLOAD_NICE);

    pthread_mutex_lock(&omni_offload.lock);
    for (;;) {
        while (omni_offload.waiting.head == NULL && !omni_offload.stopping) {
            pthread_cond_wait(&omni_offload.wake, &omni_offload.lock);
        }
        if (omni_offload.stopping) {
            break;
        }
        j = omni_job_pop(&omni_offload.waiting);
        omni_offload.queued--;
        pthread_mutex_unlock(&omni_offload.lock);

        j->work(j->arg);

        pthread_mutex_lock(&omni_offload.lock);
        omni_job_push(&omni_offload.finished, j);
        do {
            n = write(omni_offload.efd, &one, sizeof(one));
        } while (n < 0 && errno == EINTR);
    }
    pthread_mutex_unlock(&omni_offload.lock);
    return NULL;
}


static void omni_offload_collect(evutil_socket_t fd, short what, void *unused)
{
    omni_job_t *j;
    uint64_t count;
    ssize_t n;

    do {
        n = read(fd, &count, sizeof(count));
    } while (n < 0 && errno == EINTR);

    for (;;) {
        pthread_mutex_lock(&omni_offload.lock);
        j = omni_job_pop(&omni_offload.finished);
        pthread_mutex_unlock(&omni_offload.lock);
        if (j == NULL) {
            return;
        }
        j->done(j->arg);
        free(j);
    }
}


int omni_offload_start(struct event_base *base, int threads, int queue_max)
{
    int i;

    if (threads < 1 || threads > OMNI_OFFLOAD_MAX_THREADS) {
        return -1;
    }
    omni_offload.queue_max = queue_max;
    omni_offload.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (omni_offload.efd < 0) {
        return -1;
    }
    omni_offload.ev = event_new(base, omni_offload.efd, EV_READ | EV_PERSIST,
        omni_offload_collect, NULL);
    if (omni_offload.ev == NULL || event_add(omni_offload.ev, NULL) != 0) {
        return -1;
    }
    for (i = 0; i < threads; i++) {
        if (pthread_create(
                &omni_offload.threads[i], NULL, omni_offload_thread, NULL)
            != 0) {
            return -1;
        }
        omni_offload.nthreads++;
    }
    return 0;
}


int omni_offload_submit(omni_offload_fn work, omni_offload_fn done, void *arg)
{
    omni_job_t *j;

    pthread_mutex_lock(&omni_offload.lock);
    if (omni_offload.nthreads == 0 || omni_offload.stopping
        || omni_offload.queued >= omni_offload.queue_max) {
        pthread_mutex_unlock(&omni_offload.lock);
        return -1;
    }
    j = malloc(sizeof(*j));
    if (j == NULL) {
        pthread_mutex_unlock(&omni_offload.lock);
        return -1;
    }
    j->work = work;
    j->done = done;
    j->arg = arg;
    omni_job_push(&omni_offload.waiting, j);
    omni_offload.queued++;
    pthread_cond_signal(&omni_offload.wake);
    pthread_mutex_unlock(&omni_offload.lock);
    return 0;
}


int omni_offload_queued(void)
{
    int n;

    pthread_mutex_lock(&omni_offload.lock);
    n = omni_offload.queued;
    pthread_mutex_unlock(&omni_offload.lock);
    return n;
}


void omni_offload_stop(void)
{
    omni_job_t *j;
    int i;

    pthread_mutex_lock(&omni_offload.lock);
    omni_offload.stopping = 1;
    pthread_cond_broadcast(&omni_offload.wake);
    pthread_mutex_unlock(&omni_offload.lock);

    for (i = 0; i < omni_offload.nthreads; i++) {
        pthread_join(omni_offload.threads[i], NULL);
    }
    omni_offload.nthreads = 0;

    while ((j = omni_job_pop(&omni_offload.waiting)) != NULL) {
        free(j);
    }
    while ((j = omni_job_pop(&omni_offload.finished)) != NULL) {
        free(j);
    }
    omni_offload.queued = 0;
    if (omni_offload.ev) {
        event_free(omni_offload.ev);
        omni_offload.ev = NULL;
    }
    if (omni_offload.efd >= 0) {
        close(omni_offload.efd);
        omni_offload.efd = -1;
    }
}
