/* SPDX-License-Identifier: MIT */
/*
 * Private to the task engine (engine.c, engine_api.c): the engine's state
 * and the task list helpers both sides use. Everything here that touches
 * the task list or a slot wants e->lock held by the caller.
 */
#ifndef TIDEFS_TASKS_ENGINE_I_H
#define TIDEFS_TASKS_ENGINE_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "tasks/tasks_i.h"

#define NLANES 2

/* One task of the list; every field protected by the engine's lock. */
struct slot {
	struct task t;
	bool cancel;	       /* asked to stop */
	bool failed_whole;     /* task_run_fail() was called */
	uint64_t target_bytes; /* automatic release: exact target */
};

struct task_engine {
	struct task_engine_config cfg; /* strings below are owned copies */
	char *fsid, *bucket, *prefix, *region, *account;

	pthread_mutex_t lock;
	pthread_cond_t cond;	/* a task became PENDING, or stopping */
	pthread_cond_t done;	/* a task finished */
	unsigned space_waiters; /* protected by lock: writers needing room */
	int64_t auto_empty_ns;	/* protected by lock: when an automatic release
				 * last found nothing to free */
	struct slot **slots;	/* protected by lock, creation order */
	size_t nslots, cap;	/* protected by lock */
	bool stopping;		/* protected by lock */
	pthread_t lanes[NLANES];
	int nlanes;
};

/* The name a task has under .tidefs/tasks: its token, else its id. */
static inline const char *task_slot_name(const struct slot *s)
{
	return s->t.req.token ? s->t.req.token : s->t.id;
}

/* Write the task to the store's tasks table. 0 or -errno (logged). */
int task_slot_persist(struct task_engine *e, struct slot *s);
/* The task with this TaskId, or NULL. */
struct slot *task_slot_find(struct task_engine *e, const char *id);
/* Queue an already validated request (ownership of req moves in, req is
 * left zeroed): a new PENDING task, persisted, its lane woken; *out points
 * at it. 0, -ENOMEM, or -errno of task_make_id(). */
int task_enqueue(struct task_engine *e, struct task_request *req,
		 bool automatic, struct slot **out);

#endif
