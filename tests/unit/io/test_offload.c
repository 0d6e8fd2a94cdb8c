/* test_offload.c: the worker's thread pool (offload.c) with a real libevent
 * loop: where jobs and their completions run, the queue bound, stop, and
 * that the loop keeps serving while a job burns CPU.
 *
 * The pool is started once per process (after fork, in the worker), so
 * each test runs in a child process of its own. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "io/offload.h"
#include "unit.h"

/* Runs body in a fresh child process; its CHECK failures, sanitizer
 * reports, crash or hang (30 s) fail the test. */
static void in_child(void (*body)(void))
{
    pid_t pid;
    int status = 0;

    fflush(NULL);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(30);
        unit_failed_now = 0;
        body();
        exit(unit_failed_now ? 1 : 0);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status))
        fprintf(stderr, "    child killed by signal %d\n", WTERMSIG(status));
    else if (WEXITSTATUS(status) != 0)
        fprintf(stderr, "    child exited %d\n", WEXITSTATUS(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

#define CHILD_TEST(name)                                                       \
    static void test_##name(void)                                              \
    {                                                                          \
        in_child(name);                                                        \
    }

static long long now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* --- jobs that record where and when they ran ----------------------------- */

typedef struct {
    int id;
    int work_calls;
    int done_calls;
    int work_before_done; /* work had finished when done ran */
    int done_in_loop;     /* done ran inside event_base_dispatch */
    pthread_t work_thread;
    pthread_t done_thread;
} job_t;

#define MAX_JOBS 600

static job_t jobs[MAX_JOBS];
static pthread_t loop_thread;
static struct event_base *base;
static int in_dispatch;
static int works_finished; /* atomic */
static int dones;          /* loop thread only */
static int dones_wanted;

/* gate: gated jobs wait until it opens */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open;
static int gated_started;

static void setup(void)
{
    int i;

    memset(jobs, 0, sizeof(jobs));
    for (i = 0; i < MAX_JOBS; i++)
        jobs[i].id = i;
    loop_thread = pthread_self();
    base = event_base_new();
    works_finished = dones = dones_wanted = in_dispatch = 0;
    gate_open = gated_started = 0;
}

static void record_work(void *arg)
{
    job_t *j = arg;

    j->work_thread = pthread_self();
    j->work_calls++;
    __atomic_add_fetch(&works_finished, 1, __ATOMIC_SEQ_CST);
}

static void record_done(void *arg)
{
    job_t *j = arg;

    j->done_thread = pthread_self();
    j->done_calls++;
    j->work_before_done = j->work_calls == 1;
    j->done_in_loop = in_dispatch;
    if (++dones == dones_wanted)
        event_base_loopbreak(base);
}

static void gated_work(void *arg)
{
    pthread_mutex_lock(&gate_lock);
    gated_started++;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    record_work(arg);
}

static void open_gate(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

static void wait_gated_started(int n)
{
    pthread_mutex_lock(&gate_lock);
    while (gated_started < n)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
}

static void give_up(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(base);
}

/* Runs the loop until `total` done callbacks have run in all, or 10 s. */
static int run_until_done(int total)
{
    struct timeval tv = {10, 0};
    struct event *limit = evtimer_new(base, give_up, NULL);

    dones_wanted = total;
    if (dones < total) {
        evtimer_add(limit, &tv);
        in_dispatch = 1;
        event_base_dispatch(base);
        in_dispatch = 0;
    }
    event_free(limit);
    return dones == total;
}

/* Waits, off the loop, until n works have finished, or 10 s. */
static int wait_works_finished(int n)
{
    long long end = now_us() + 10000000;

    while (__atomic_load_n(&works_finished, __ATOMIC_SEQ_CST) < n) {
        if (now_us() > end)
            return 0;
        usleep(1000);
    }
    return 1;
}

static void never_called(void *arg)
{
    __atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
}

/* --- tests ---------------------------------------------------------------- */

static void jobs_run_off_the_loop_and_complete_on_it(void)
{
    int i;

    setup();
    CHECK(omni_offload_start(base, 2, 16) == 0);
    for (i = 0; i < 8; i++)
        CHECK_EQ_INT(
            omni_offload_submit(record_work, record_done, &jobs[i]), 0);
    CHECK(wait_works_finished(8));
    /* completions wait for the loop: none ran in submit or on a thread */
    CHECK_EQ_INT(dones, 0);
    CHECK(run_until_done(8));
    for (i = 0; i < 8; i++) {
        CHECK_EQ_INT(jobs[i].work_calls, 1);
        CHECK_EQ_INT(jobs[i].done_calls, 1);
        CHECK(jobs[i].work_before_done);
        CHECK(!pthread_equal(jobs[i].work_thread, loop_thread));
        CHECK(pthread_equal(jobs[i].done_thread, loop_thread));
        CHECK(jobs[i].done_in_loop);
    }
    CHECK_EQ_INT(omni_offload_queued(), 0);
    omni_offload_stop();
    event_base_free(base);
}
CHILD_TEST(jobs_run_off_the_loop_and_complete_on_it)

static void every_job_runs_once_under_load(void)
{
    int i, bad = 0;

    setup();
    CHECK(omni_offload_start(base, 4, MAX_JOBS) == 0);
    for (i = 0; i < MAX_JOBS; i++)
        CHECK_EQ_INT(
            omni_offload_submit(record_work, record_done, &jobs[i]), 0);
    CHECK(run_until_done(MAX_JOBS));
    for (i = 0; i < MAX_JOBS; i++)
        bad += jobs[i].work_calls != 1 || jobs[i].done_calls != 1
               || !jobs[i].work_before_done;
    CHECK_EQ_INT(bad, 0);
    omni_offload_stop();
    event_base_free(base);
}
CHILD_TEST(every_job_runs_once_under_load)

static void chain_done(void *arg)
{
    job_t *j = arg;

    record_done(arg);
    /* a completion may start the next step (verify, then sign) */
    if (j->id < 4)
        CHECK_EQ_INT(
            omni_offload_submit(record_work, chain_done, &jobs[j->id + 1]), 0);
}

static void completion_can_submit_the_next_job(void)
{
    int i;

    setup();
    CHECK(omni_offload_start(base, 1, 1) == 0);
    CHECK_EQ_INT(omni_offload_submit(record_work, chain_done, &jobs[0]), 0);
    CHECK(run_until_done(5));
    for (i = 0; i < 5; i++) {
        CHECK_EQ_INT(jobs[i].work_calls, 1);
        CHECK_EQ_INT(jobs[i].done_calls, 1);
    }
    omni_offload_stop();
    event_base_free(base);
}
CHILD_TEST(completion_can_submit_the_next_job)

static void queue_max_jobs_wait_and_the_next_is_refused(void)
{
    int refused_calls = 0;

    setup();
    CHECK(omni_offload_start(base, 1, 2) == 0);
    /* the only thread is busy with job 0 until the gate opens */
    CHECK_EQ_INT(omni_offload_submit(gated_work, record_done, &jobs[0]), 0);
    wait_gated_started(1);
    CHECK_EQ_INT(omni_offload_queued(), 0);
    CHECK_EQ_INT(omni_offload_submit(gated_work, record_done, &jobs[1]), 0);
    CHECK_EQ_INT(omni_offload_submit(gated_work, record_done, &jobs[2]), 0);
    CHECK_EQ_INT(omni_offload_queued(), 2);
    CHECK_EQ_INT(
        omni_offload_submit(never_called, never_called, &refused_calls), -1);
    CHECK_EQ_INT(
        omni_offload_submit(never_called, never_called, &refused_calls), -1);
    CHECK_EQ_INT(omni_offload_queued(), 2);

    open_gate();
    CHECK(run_until_done(3));
    CHECK_EQ_INT(refused_calls, 0);
    CHECK_EQ_INT(omni_offload_queued(), 0);

    /* the queue has room again */
    CHECK_EQ_INT(omni_offload_submit(record_work, record_done, &jobs[3]), 0);
    CHECK(run_until_done(4));
    CHECK_EQ_INT(jobs[3].done_calls, 1);
    omni_offload_stop();
    event_base_free(base);
}
CHILD_TEST(queue_max_jobs_wait_and_the_next_is_refused)

static int dropped_calls, running_started, running_finished;

/* Keeps its thread busy until stop begins: submit refuses with room in
 * the queue only once the pool is stopping. Every probe it queues must
 * be dropped by stop, never run. */
static void busy_until_stopping(void *arg)
{
    long long end = now_us() + 20000000;

    __atomic_store_n(&running_started, 1, __ATOMIC_SEQ_CST);
    while (now_us() < end
           && omni_offload_submit(never_called, never_called, &dropped_calls)
                  == 0) {
        usleep(1000);
    }
    usleep(50000);
    __atomic_store_n(&running_finished, 1, __ATOMIC_SEQ_CST);
}

static void stop_waits_for_running_jobs_and_drops_waiting_ones(void)
{
    setup();
    CHECK(omni_offload_start(base, 1, 100000) == 0);
    CHECK_EQ_INT(
        omni_offload_submit(busy_until_stopping, never_called, &dropped_calls),
        0);
    while (!__atomic_load_n(&running_started, __ATOMIC_SEQ_CST))
        usleep(1000);
    CHECK_EQ_INT(
        omni_offload_submit(never_called, never_called, &dropped_calls), 0);
    CHECK_EQ_INT(
        omni_offload_submit(never_called, never_called, &dropped_calls), 0);

    omni_offload_stop();
    CHECK_EQ_INT(__atomic_load_n(&running_finished, __ATOMIC_SEQ_CST), 1);
    /* nothing waiting ran, no completion ran (the loop never did) */
    CHECK_EQ_INT(dropped_calls, 0);
    CHECK_EQ_INT(omni_offload_queued(), 0);
    /* a stopped pool refuses work */
    CHECK_EQ_INT(
        omni_offload_submit(never_called, never_called, &dropped_calls), -1);
    event_base_free(base);
}
CHILD_TEST(stop_waits_for_running_jobs_and_drops_waiting_ones)

static void stop_with_idle_threads_returns(void)
{
    setup();
    CHECK(omni_offload_start(base, 8, 4) == 0);
    omni_offload_stop();
    event_base_free(base);
}
CHILD_TEST(stop_with_idle_threads_returns)

static void submit_before_start_is_refused(void)
{
    int calls = 0;

    setup();
    CHECK_EQ_INT(omni_offload_submit(never_called, never_called, &calls), -1);
    CHECK_EQ_INT(omni_offload_queued(), 0);
    CHECK_EQ_INT(calls, 0);
    event_base_free(base);
}
CHILD_TEST(submit_before_start_is_refused)

static void thread_counts_out_of_range_are_refused(void)
{
    int calls = 0;

    setup();
    CHECK_EQ_INT(omni_offload_start(base, 0, 4), -1);
    CHECK_EQ_INT(omni_offload_start(base, -1, 4), -1);
    CHECK_EQ_INT(omni_offload_start(base, 65, 4), -1);
    CHECK_EQ_INT(omni_offload_submit(never_called, never_called, &calls), -1);
    CHECK_EQ_INT(calls, 0);
    event_base_free(base);
}
CHILD_TEST(thread_counts_out_of_range_are_refused)

/* --- the loop keeps serving while a job burns CPU ------------------------- */

#define TICK_MS 10
#define JOB_MS 200
#define MAX_TICKS 1000

static long long ticks[MAX_TICKS];
static int nticks;
static long long job_start, job_end; /* atomic */

static void tick(evutil_socket_t fd, short what, void *arg)
{
    if (nticks < MAX_TICKS)
        ticks[nticks++] = now_us();
}

static void spin_200ms(void *arg)
{
    long long start = now_us();
    volatile unsigned long x = 0;

    __atomic_store_n(&job_start, start, __ATOMIC_SEQ_CST);
    while (now_us() - start < JOB_MS * 1000)
        x += x * 31 + 7;
    __atomic_store_n(&job_end, now_us(), __ATOMIC_SEQ_CST);
}

static void loop_serves_a_timer_while_a_200ms_job_runs(void)
{
    struct timeval tv = {0, TICK_MS * 1000};
    struct event *timer;
    long long start, end, last, gap, max_gap = 0;
    int i, during = 0;

    setup();
    nticks = 0;
    timer = event_new(base, -1, EV_PERSIST, tick, NULL);
    CHECK(timer != NULL && evtimer_add(timer, &tv) == 0);
    CHECK(omni_offload_start(base, 1, 4) == 0);
    CHECK_EQ_INT(omni_offload_submit(spin_200ms, record_done, &jobs[0]), 0);
    CHECK(run_until_done(1));
    start = __atomic_load_n(&job_start, __ATOMIC_SEQ_CST);
    end = __atomic_load_n(&job_end, __ATOMIC_SEQ_CST);
    CHECK(end - start >= JOB_MS * 1000);

    /* the gaps between ticks while the job ran, counting its edges */
    last = start;
    for (i = 0; i < nticks; i++) {
        if (ticks[i] < start || ticks[i] > end)
            continue;
        during++;
        gap = ticks[i] - last;
        max_gap = gap > max_gap ? gap : max_gap;
        last = ticks[i];
    }
    gap = end - last;
    max_gap = gap > max_gap ? gap : max_gap;
    /* about 20 expected; a blocked loop would show 0 and a 200 ms gap */
    if (during < 10 || max_gap >= 100 * 1000)
        fprintf(stderr,
            "    %d ticks of %d ms during a %lld ms job, "
            "longest gap %lld ms\n",
            during, TICK_MS, (end - start) / 1000, max_gap / 1000);
    CHECK(during >= 10);
    CHECK(max_gap < 100 * 1000);

    event_free(timer);
    omni_offload_stop();
    event_base_free(base);
}
CHILD_TEST(loop_serves_a_timer_while_a_200ms_job_runs)

UNIT_MAIN(UNIT_TEST(test_jobs_run_off_the_loop_and_complete_on_it),
    UNIT_TEST(test_every_job_runs_once_under_load),
    UNIT_TEST(test_completion_can_submit_the_next_job),
    UNIT_TEST(test_queue_max_jobs_wait_and_the_next_is_refused),
    UNIT_TEST(test_stop_waits_for_running_jobs_and_drops_waiting_ones),
    UNIT_TEST(test_stop_with_idle_threads_returns),
    UNIT_TEST(test_submit_before_start_is_refused),
    UNIT_TEST(test_thread_counts_out_of_range_are_refused),
    UNIT_TEST(test_loop_serves_a_timer_while_a_200ms_job_runs))
