// SPDX-License-Identifier: MIT
/*
 * loop — the FUSE session loop: worker threads that read requests from
 * /dev/fuse and handle them.
 *
 * libfuse's multi-threaded loop keeps every idle worker blocked in read()
 * on the device, and the kernel hands each request to the reader that has
 * waited longest: requests rotate through all idle workers (16 here), so
 * every worker's receive buffer (1 MiB + 4 KiB, the largest WRITE) ends up
 * touched and resident after a stream of large writes, ~16 MiB for what
 * a few workers can do.
 *
 * Here at most LOOP_READERS workers wait in read() at a time; the others
 * are parked on a stack and the most recently parked one (its buffer and
 * stack still warm) is woken first. A worker that takes a request wakes a
 * parked one only if that leaves nobody reading (or starts a new worker,
 * up to max_workers), so a request that blocks (a fetch from S3, a lock)
 * never keeps the next one waiting; a worker done with its request reads
 * again if fewer than LOOP_READERS do, else parks. Sequential work thus
 * cycles through four buffers, and a burst of concurrent requests grows
 * the pool as libfuse's does. Four, not fewer: small-file creates (the
 * kernel sends CREATE, WRITE, an asynchronous RELEASE... back to back)
 * ran at ~55% of libfuse's loop with one reader (a wake-up per request),
 * ~85% with two, and as fast with four. Workers are not ended when idle
 * (creating one costs more than a parked one does). FORGETs, which never
 * block, do not wake anyone (as in libfuse, so a burst of them does not
 * start threads).
 *
 * Shutdown as in libfuse: the session ends when a read returns 0 (the file
 * system was unmounted) or an error, or when fuse_session_exit() is called
 * (the signal handler; the thread in fs_loop_run() looks every 100 ms, as
 * the workers block signals and the handler may run on any other thread);
 * that thread then wakes the parked workers, cancels the ones blocked in
 * read() (cancellation is enabled only there) and joins them all.
 */
#include "fs/fs_i.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"

#define LOOP_READERS 4
/* From the kernel's include/uapi/linux/fuse.h: the opcode is the second
 * u32 of a request's header. */
#define K_FUSE_FORGET	    2
#define K_FUSE_BATCH_FORGET 42

struct loop;

struct worker {
	struct loop *l;
	pthread_t thread;
	pthread_cond_t cond;
	bool woken;
	struct worker *below; /* next on the parked stack */
	struct fuse_buf buf;
};

struct loop {
	struct fuse_session *se;
	pthread_mutex_t lock;
	sem_t finish; /* posted by a worker that ends the session */
	struct worker **all;
	int nall, max;
	struct worker *parked; /* top of the stack: most recently parked */
	int readers;	       /* workers in (or about to enter) read() */
	bool exit;
	int error;
};

static void *worker_main(void *arg);

/* Under l->lock: start one more worker. 0 or -errno. */
static int start_worker(struct loop *l)
{
	sigset_t all, old;
	struct worker *w;
	int rc;

	if (l->nall >= l->max)
		return -EAGAIN;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->l = l;
	pthread_cond_init(&w->cond, NULL);
	/* Signals go to the thread in fs_loop_run(), not to the workers. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pthread_cond_destroy(&w->cond);
		free(w);
		return -rc;
	}
	l->all[l->nall++] = w;
	l->readers++; /* it starts by reading */
	return 0;
}

/* Under l->lock: get another worker reading: the top parked one, else a new
 * one. Without either (max_workers busy) the next request waits for one of
 * them, as in libfuse. */
static void wake_reader(struct loop *l)
{
	struct worker *w = l->parked;

	if (w) {
		l->parked = w->below;
		l->readers++; /* counted now: it reads as soon as it runs */
		w->woken = true;
		pthread_cond_signal(&w->cond);
	} else {
		start_worker(l);
	}
}

static bool is_forget(const struct fuse_buf *buf, int len)
{
	uint32_t op;

	if (len < 8)
		return false;
	memcpy(&op, (const char *)buf->mem + 4, sizeof(op));
	return op == K_FUSE_FORGET || op == K_FUSE_BATCH_FORGET;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct loop *l = w->l;
	bool counted = true; /* start_worker() counted it as a reader */
	int res;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	pthread_mutex_lock(&l->lock);
	while (!l->exit) {
		if (!counted && l->readers >= LOOP_READERS) {
			w->below = l->parked;
			l->parked = w;
			w->woken = false;
			while (!w->woken && !l->exit)
				pthread_cond_wait(&w->cond, &l->lock);
			if (l->exit)
				break;
			/* wake_reader() counted it */
		} else if (!counted) {
			l->readers++;
		}
		counted = false;
		pthread_mutex_unlock(&l->lock);
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		res = fuse_session_receive_buf(l->se, &w->buf);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		pthread_mutex_lock(&l->lock);
		l->readers--;
		if (res == -EINTR || res == -EAGAIN)
			continue;
		if (res <= 0 || l->exit || fuse_session_exited(l->se)) {
			if (res < 0 && !l->exit)
				l->error = res;
			if (!l->exit) {
				l->exit = true;
				fuse_session_exit(l->se);
				sem_post(&l->finish);
			}
			break;
		}
		if (l->readers == 0 && !is_forget(&w->buf, res))
			wake_reader(l);
		pthread_mutex_unlock(&l->lock);
		fuse_session_process_buf(l->se, &w->buf);
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

int fs_loop_run(struct fuse_session *se, int max_workers)
{
	struct loop l = {.se = se, .max = MAX(max_workers, 1)};
	int ret;

	l.all = calloc((size_t)l.max, sizeof(*l.all));
	if (!l.all)
		return -ENOMEM;
	pthread_mutex_init(&l.lock, NULL);
	sem_init(&l.finish, 0, 0);
	pthread_mutex_lock(&l.lock);
	ret = 0;
	for (int i = 0; i < LOOP_READERS && ret == 0; i++)
		ret = start_worker(&l);
	pthread_mutex_unlock(&l.lock);
	/* A worker posts finish when the session ends; the signal handler
	 * only calls fuse_session_exit(), on whichever thread it runs: look
	 * every 100 ms. */
	for (;;) {
		struct timespec ts;
		bool done;

		pthread_mutex_lock(&l.lock);
		done = l.exit || l.nall == 0;
		pthread_mutex_unlock(&l.lock);
		if (done || fuse_session_exited(se))
			break;
		ts = time_deadline(CLOCK_REALTIME, 100000000LL);
		sem_timedwait(&l.finish, &ts);
	}
	pthread_mutex_lock(&l.lock);
	l.exit = true;
	for (int i = 0; i < l.nall; i++)
		pthread_cond_signal(&l.all[i]->cond);
	pthread_mutex_unlock(&l.lock);
	/* Only workers blocked in read() are cancellable; a worker handling a
	 * request finishes it (its next read() is then cancelled). */
	for (int i = 0; i < l.nall; i++)
		pthread_cancel(l.all[i]->thread);
	for (int i = 0; i < l.nall; i++) {
		pthread_join(l.all[i]->thread, NULL);
		pthread_cond_destroy(&l.all[i]->cond);
		free(l.all[i]->buf.mem);
		free(l.all[i]);
	}
	if (l.nall == 0 && ret == 0)
		ret = -EAGAIN;
	if (ret == 0)
		ret = l.error;
	free(l.all);
	sem_destroy(&l.finish);
	pthread_mutex_destroy(&l.lock);
	fuse_session_reset(se);
	return ret;
}
