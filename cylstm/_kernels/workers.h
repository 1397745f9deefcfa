/* Persistent worker threads for splitting one LSTM step's columns.
 *
 * Why: a step with one or two batch rows cannot be split by rows, and a
 * hand-off to Python's thread pool costs about 20 us, more than the whole
 * step at 256 units. These threads live across steps and calls, spin a
 * little while waiting for the next job (a streaming caller comes back
 * within microseconds) and then sleep on a condition variable.
 *
 * A job is `steps` x `parts` chunks, fn(arg, step, part, parts); the calling
 * thread and the workers claim chunks in order from one counter, and a chunk
 * of step t starts once every chunk of step t - 1 is done (the barrier per
 * step). Nobody waits for a thread that has not claimed anything: on a busy
 * machine, where a worker may not get a core for milliseconds, the caller
 * claims the chunks itself and the job takes one thread's time, not a
 * scheduler's time slice (measured: a fixed split waited 0.1-1.5 ms a step).
 *
 * Portable: pthreads on POSIX (glibc, musl, macOS), Windows threads under
 * _WIN32. One pool per process: the header's statics make one per extension
 * module, so lstm_step owns the pool and hands its functions to the other
 * modules (cyl_pool_api in a capsule, installed with cyl_pool_use); two
 * pools would spin against each other on a small machine. A caller
 * that finds the pool busy (another Python thread's job) or unavailable runs
 * its job inline, so concurrent calls never wait on each other here.
 * After fork() the child abandons the parent's pool (its threads do not
 * exist there) and makes a new one when it needs it; cyl_pool_shutdown
 * (registered with Python's atexit) stops and joins the threads.
 */
#ifndef CYLSTM_WORKERS_H
#define CYLSTM_WORKERS_H

#include <stdint.h>
#include <stdlib.h>

#if defined(_WIN32)
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <process.h>
#include <intrin.h>
typedef CRITICAL_SECTION cyl_mutex_t;
typedef CONDITION_VARIABLE cyl_cond_t;
typedef HANDLE cyl_thread_t;
#define cyl_mutex_init(m) InitializeCriticalSection(m)
#define cyl_mutex_destroy(m) DeleteCriticalSection(m)
#define cyl_mutex_lock(m) EnterCriticalSection(m)
#define cyl_mutex_unlock(m) LeaveCriticalSection(m)
#define cyl_cond_init(c) InitializeConditionVariable(c)
#define cyl_cond_destroy(c) ((void)0)
#define cyl_cond_wait(c, m) SleepConditionVariableCS(c, m, INFINITE)
#define cyl_cond_broadcast(c) WakeAllConditionVariable(c)
#define cyl_yield() SwitchToThread()
static long cyl_atomic_load(volatile long *p) { return InterlockedCompareExchange(p, 0, 0); }
static void cyl_atomic_store(volatile long *p, long v) { InterlockedExchange(p, v); }
static long cyl_atomic_add(volatile long *p, long v) { return InterlockedExchangeAdd(p, v) + v; }
static int cyl_atomic_cas(volatile long *p, long expect, long v) {
    return InterlockedCompareExchange(p, v, expect) == expect;
}
#else
#include <pthread.h>
#include <sched.h>
typedef pthread_mutex_t cyl_mutex_t;
typedef pthread_cond_t cyl_cond_t;
typedef pthread_t cyl_thread_t;
#define cyl_mutex_init(m) pthread_mutex_init(m, NULL)
#define cyl_mutex_destroy(m) pthread_mutex_destroy(m)
#define cyl_mutex_lock(m) pthread_mutex_lock(m)
#define cyl_mutex_unlock(m) pthread_mutex_unlock(m)
#define cyl_cond_init(c) pthread_cond_init(c, NULL)
#define cyl_cond_destroy(c) pthread_cond_destroy(c)
#define cyl_cond_wait(c, m) pthread_cond_wait(c, m)
#define cyl_cond_broadcast(c) pthread_cond_broadcast(c)
#define cyl_yield() sched_yield()
static long cyl_atomic_load(volatile long *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static void cyl_atomic_store(volatile long *p, long v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static long cyl_atomic_add(volatile long *p, long v) {
    return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST);
}
static int cyl_atomic_cas(volatile long *p, long expect, long v) {
    return __atomic_compare_exchange_n(p, &expect, v, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
#endif

/* A hint to the core that this thread is spinning. */
static inline void cyl_cpu_relax(void) {
#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
    _mm_pause();
#elif defined(_MSC_VER) && defined(_M_ARM64)
    __yield();
#elif (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* How long an idle worker spins before it sleeps, and how long a waiter
 * spins before it yields its core (both in cyl_cpu_relax calls; a few tens
 * of microseconds on current x86 cores). */
#ifndef CYL_POOL_SPIN
#define CYL_POOL_SPIN 20000
#endif
#ifndef CYL_WAIT_SPIN
#define CYL_WAIT_SPIN 2000
#endif
#define CYL_POOL_MAX 64

typedef void (*cyl_task_fn)(void *arg, int step, int part, int parts);

typedef struct {
    cyl_mutex_t lock;
    cyl_cond_t wake;
    volatile long generation;   /* bumped once per job */
    volatile long next;         /* the next chunk to claim */
    volatile long done;         /* chunks finished */
    volatile long closed;       /* 1 between jobs: workers stay out */
    volatile long active;       /* workers inside the job */
    volatile long stop;
    cyl_task_fn fn;
    void *arg;
    int parts;
    long total;                 /* steps x parts */
    int nworkers;
    cyl_thread_t threads[CYL_POOL_MAX];
    struct cyl_worker_slot { void *pool; int index; long start; } slots[CYL_POOL_MAX];
} cyl_pool;

static cyl_pool *cyl_the_pool = NULL;
static volatile long cyl_pool_guard = 0;  /* a caller creating or using the pool */

/* Wait until *p reaches `target`: spin, then yield the core between checks
 * (on a busy machine the thread we wait for may need this core). */
static void cyl_wait_for(volatile long *p, long target) {
    int s = 0;
    while (cyl_atomic_load(p) < target) {
        if (++s < CYL_WAIT_SPIN)
            cyl_cpu_relax();
        else
            cyl_yield();
    }
}

/* Claim and run chunks of the open job until none is left. */
static void cyl_pool_take_chunks(cyl_pool *pool) {
    int parts = pool->parts;
    for (;;) {
        long c = cyl_atomic_add(&pool->next, 1) - 1;
        if (c >= pool->total)
            return;
        long step = c / parts;
        cyl_wait_for(&pool->done, step * parts);   /* step - 1 is complete */
        pool->fn(pool->arg, (int)step, (int)(c % parts), parts);
        cyl_atomic_add(&pool->done, 1);
    }
}

static void cyl_worker_body(cyl_pool *pool, int index, long seen) {
    (void)index;
    for (;;) {
        long gen = cyl_atomic_load(&pool->generation);
        for (int s = 0; gen == seen && s < CYL_POOL_SPIN && !cyl_atomic_load(&pool->stop); s++) {
            cyl_cpu_relax();
            gen = cyl_atomic_load(&pool->generation);
        }
        if (gen == seen) {
            cyl_mutex_lock(&pool->lock);
            while ((gen = cyl_atomic_load(&pool->generation)) == seen
                   && !cyl_atomic_load(&pool->stop))
                cyl_cond_wait(&pool->wake, &pool->lock);
            cyl_mutex_unlock(&pool->lock);
        }
        if (cyl_atomic_load(&pool->stop))
            return;
        seen = gen;
        cyl_atomic_add(&pool->active, 1);
        if (!cyl_atomic_load(&pool->closed))
            cyl_pool_take_chunks(pool);
        cyl_atomic_add(&pool->active, -1);
    }
}

#if defined(_WIN32)
static unsigned __stdcall cyl_worker_main(void *p) {
    struct cyl_worker_slot *slot = (struct cyl_worker_slot *)p;
    cyl_worker_body((cyl_pool *)slot->pool, slot->index, slot->start);
    return 0;
}
static int cyl_thread_start(cyl_thread_t *t, struct cyl_worker_slot *slot) {
    uintptr_t h = _beginthreadex(NULL, 0, cyl_worker_main, slot, 0, NULL);
    if (h == 0)
        return -1;
    *t = (HANDLE)h;
    return 0;
}
static void cyl_thread_join(cyl_thread_t t) {
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
}
#else
static void *cyl_worker_main(void *p) {
    struct cyl_worker_slot *slot = (struct cyl_worker_slot *)p;
    cyl_worker_body((cyl_pool *)slot->pool, slot->index, slot->start);
    return NULL;
}
static int cyl_thread_start(cyl_thread_t *t, struct cyl_worker_slot *slot) {
    return pthread_create(t, NULL, cyl_worker_main, slot) == 0 ? 0 : -1;
}
static void cyl_thread_join(cyl_thread_t t) { pthread_join(t, NULL); }

/* In a forked child the workers are gone and the pool's locks may be held by
 * threads that no longer exist: forget the pool (its memory is the parent's
 * copy; freeing it could touch those locks) and start afresh on first use. */
static void cyl_pool_after_fork(void) {
    cyl_the_pool = NULL;
    cyl_pool_guard = 0;
}
#endif

/* The pool with at least `workers` threads, made or grown on demand; NULL if
 * a thread cannot be started (the caller then runs inline). The caller holds
 * cyl_pool_guard. */
static cyl_pool *cyl_pool_get(int workers) {
    cyl_pool *pool = cyl_the_pool;
    if (pool == NULL) {
        pool = (cyl_pool *)calloc(1, sizeof(cyl_pool));
        if (pool == NULL)
            return NULL;
        cyl_mutex_init(&pool->lock);
        cyl_cond_init(&pool->wake);
        pool->closed = 1;
#if !defined(_WIN32)
        static int registered = 0;
        if (!registered) {
            if (pthread_atfork(NULL, NULL, cyl_pool_after_fork) != 0) {
                cyl_cond_destroy(&pool->wake);
                cyl_mutex_destroy(&pool->lock);
                free(pool);
                return NULL;
            }
            registered = 1;
        }
#endif
        cyl_the_pool = pool;
    }
    while (pool->nworkers < workers && pool->nworkers < CYL_POOL_MAX) {
        int i = pool->nworkers;
        pool->slots[i].pool = pool;
        pool->slots[i].index = i;
        /* a new worker starts having seen the current generation */
        pool->slots[i].start = cyl_atomic_load(&pool->generation);
        if (cyl_thread_start(&pool->threads[i], &pool->slots[i]) != 0)
            break;
        pool->nworkers++;
    }
    return pool->nworkers >= workers ? pool : NULL;
}

/* Run fn(arg, step, part, parts) for every step in 0 .. steps-1 (in order)
 * and part in 0 .. parts-1, on this thread and (at least) `workers` workers.
 * Returns 0 when it ran on the pool, -1 when the pool was busy (another
 * caller's job) or could not be had: then nothing ran, and the caller runs
 * the job its own way. */
static int cyl_pool_run(cyl_task_fn fn, void *arg, int steps, int parts, int workers) {
    if (workers < 1 || workers > CYL_POOL_MAX || parts < 2)
        return -1;
    if (!cyl_atomic_cas(&cyl_pool_guard, 0, 1))
        return -1;
    cyl_pool *pool = cyl_pool_get(workers);
    if (pool == NULL) {
        cyl_atomic_store(&cyl_pool_guard, 0);
        return -1;
    }
    pool->fn = fn;
    pool->arg = arg;
    pool->parts = parts;
    pool->total = (long)steps * parts;
    cyl_atomic_store(&pool->next, 0);
    cyl_atomic_store(&pool->done, 0);
    cyl_atomic_store(&pool->closed, 0);
    cyl_mutex_lock(&pool->lock);
    cyl_atomic_add(&pool->generation, 1);
    cyl_cond_broadcast(&pool->wake);
    cyl_mutex_unlock(&pool->lock);
    cyl_pool_take_chunks(pool);
    cyl_wait_for(&pool->done, pool->total);
    /* A worker that enters from now on finds the job closed; wait for those
     * inside to leave (they have nothing left to claim) before the job's
     * memory goes away. */
    cyl_atomic_store(&pool->closed, 1);
    int s = 0;
    while (cyl_atomic_load(&pool->active) > 0) {
        if (++s < CYL_WAIT_SPIN)
            cyl_cpu_relax();
        else
            cyl_yield();
    }
    cyl_atomic_store(&cyl_pool_guard, 0);
    return 0;
}

/* Stop and join the workers (at interpreter exit). Skipped while a job runs:
 * the process is ending, and its threads end with it. */
static void cyl_pool_shutdown(void) {
    if (!cyl_atomic_cas(&cyl_pool_guard, 0, 1))
        return;
    cyl_pool *pool = cyl_the_pool;
    if (pool != NULL) {
        cyl_mutex_lock(&pool->lock);
        cyl_atomic_store(&pool->stop, 1);
        cyl_cond_broadcast(&pool->wake);
        cyl_mutex_unlock(&pool->lock);
        for (int i = 0; i < pool->nworkers; i++)
            cyl_thread_join(pool->threads[i]);
        cyl_cond_destroy(&pool->wake);
        cyl_mutex_destroy(&pool->lock);
        cyl_the_pool = NULL;
        free(pool);
    }
    cyl_atomic_store(&cyl_pool_guard, 0);
}

static int cyl_pool_size(void) {
    cyl_pool *pool = cyl_the_pool;
    return pool == NULL ? 0 : pool->nworkers;
}

/* The pool of another module: its owner's functions. */
typedef struct {
    int (*run)(cyl_task_fn fn, void *arg, int steps, int parts, int workers);
    int (*size)(void);
} cyl_pool_api;

static const cyl_pool_api cyl_pool_own_api = {cyl_pool_run, cyl_pool_size};
static const cyl_pool_api *cyl_pool_used = &cyl_pool_own_api;

/* This module's jobs go to `api`'s pool (NULL: its own). */
static void cyl_pool_use(const cyl_pool_api *api) {
    cyl_pool_used = api != NULL ? api : &cyl_pool_own_api;
}

/* cyl_pool_run / cyl_pool_size on the pool this module uses. */
static int cyl_pool_dispatch(cyl_task_fn fn, void *arg, int steps, int parts, int workers) {
    return cyl_pool_used->run(fn, arg, steps, parts, workers);
}

static int cyl_pool_used_size(void) {
    return cyl_pool_used->size();
}

#endif
