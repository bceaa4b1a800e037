// SPDX-License-Identifier: MIT
/*
 * DESIGN
 *
 * The task engine: every data repository task of the mount, in creation
 * order, in memory and in the store's tasks table (TaskId -> the
 * DataRepositoryTask JSON). Two lanes, each a thread running one task at a
 * time, FIFO: lane 0 runs export and import, lane 1 the release types, so
 * freeing space never waits behind a long export.
 *
 * Files: this one holds the task list and its persistence, the run context
 * the types report through, the lanes and the eviction watch
 * (task_engine_make_space), and setup; engine_api.c answers the requests
 * (create, describe, cancel, describe file systems, the .tidefs by-name
 * lookups); engine_i.h has the state and the list helpers both share.
 *
 * Lock: e->lock protects the task list and every task's fields. It is never
 * held across network I/O; it is held across the short LMDB write that
 * persists a task, so persisted states are ordered. The type implementations
 * run without it and report through task_run_*.
 *
 * Restart: a task found EXECUTING in the store is queued again and runs from
 * the start (every type is idempotent: export only sends what is still
 * dirty, import only what changed, release only what is still cached); a
 * CANCELING one ends CANCELED.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "tasks/engine_i.h"

#define PERSIST_GAP_NS 1000000000ll
#define AUTO_RETRY_NS  10000000000ll /* after an eviction that freed 0 */

struct task_run {
	struct task_engine *e;
	struct slot *s;
	int64_t last_persist; /* protected by e->lock */
	char *report;	      /* failure rows; protected by e->lock */
	size_t rlen, rcap;
};

static int lane_of(enum task_type t)
{
	return t == TASK_RELEASE || t == TASK_AUTO_RELEASE;
}

/* ---- persistence (caller holds e->lock) ---- */

int task_slot_persist(struct task_engine *e, struct slot *s)
{
	struct meta_txn *txn;
	char *json;
	int ret;

	json = task_to_json(&s->t, e->region, e->account);
	if (!json)
		return -ENOMEM;
	ret = meta_txn_begin(e->cfg.db, true, &txn);
	if (ret == 0) {
		meta_task_put(txn, s->t.id, json);
		ret = meta_txn_commit(txn);
	}
	if (ret < 0)
		log_warn("tasks: persisting %s: %s", s->t.id, strerror(-ret));
	free(json);
	return ret;
}

static void slot_free(struct slot *s)
{
	if (!s)
		return;
	task_release(&s->t);
	free(s);
}

static int add_slot(struct task_engine *e, struct slot *s)
{
	if (e->nslots == e->cap) {
		struct slot **n = array_grow(e->slots, &e->cap, sizeof(*n), 64);
		if (!n)
			return -ENOMEM;
		e->slots = n;
	}
	e->slots[e->nslots++] = s;
	return 0;
}

/* Keep at most keep_finished finished tasks, dropping the oldest. */
static void trim_finished(struct task_engine *e)
{
	size_t finished = 0;
	struct meta_txn *txn = NULL;

	for (size_t i = 0; i < e->nslots; i++)
		finished += task_finished(e->slots[i]->t.life);
	if (finished <= e->cfg.keep_finished)
		return;
	if (meta_txn_begin(e->cfg.db, true, &txn) < 0)
		return;
	for (size_t i = 0; i < e->nslots && finished > e->cfg.keep_finished;) {
		struct slot *s = e->slots[i];
		if (!task_finished(s->t.life)) {
			i++;
			continue;
		}
		meta_task_del(txn, s->t.id);
		slot_free(s);
		memmove(&e->slots[i], &e->slots[i + 1],
			(e->nslots - i - 1) * sizeof(*e->slots));
		e->nslots--;
		finished--;
	}
	meta_txn_commit(txn);
}

static int cmp_creation(const void *a, const void *b)
{
	const struct slot *x = *(struct slot *const *)a;
	const struct slot *y = *(struct slot *const *)b;

	if (x->t.creation_ns != y->t.creation_ns)
		return x->t.creation_ns < y->t.creation_ns ? -1 : 1;
	return strcmp(x->t.id, y->t.id);
}

static int load_cb(void *arg, const char *id, const char *json)
{
	struct task_engine *e = arg;
	struct slot *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return -ENOMEM;
	ret = task_from_json(json, strlen(json), &s->t);
	if (ret < 0) {
		log_warn("tasks: ignoring unreadable task %s: %s", id,
			 strerror(-ret));
		free(s);
		return 0;
	}
	return add_slot(e, s) < 0 ? (slot_free(s), -ENOMEM) : 0;
}

static int load_tasks(struct task_engine *e)
{
	struct meta_txn *txn;
	int ret;

	ret = meta_txn_begin(e->cfg.db, false, &txn);
	if (ret < 0)
		return ret;
	ret = meta_task_foreach(txn, load_cb, e);
	meta_txn_abort(txn);
	if (ret < 0)
		return ret;
	if (e->nslots > 1)
		qsort(e->slots, e->nslots, sizeof(*e->slots), cmp_creation);
	for (size_t i = 0; i < e->nslots; i++) {
		struct slot *s = e->slots[i];
		if (s->t.life == TASK_EXECUTING) {
			log_info("tasks: %s was interrupted; running it again",
				 s->t.id);
			s->t.life = TASK_PENDING;
			task_slot_persist(e, s);
		} else if (s->t.life == TASK_CANCELING) {
			s->t.life = TASK_CANCELED;
			s->t.end_ns = time_now_ns();
			task_slot_persist(e, s);
		}
	}
	return 0;
}

/* ---- the task list (caller holds e->lock) ---- */

struct slot *task_slot_find(struct task_engine *e, const char *id)
{
	for (size_t i = 0; i < e->nslots; i++)
		if (!strcmp(e->slots[i]->t.id, id))
			return e->slots[i];
	return NULL;
}

/* Queue an already validated request (ownership of req moves in). */
int task_enqueue(struct task_engine *e, struct task_request *req,
		 bool automatic, struct slot **out)
{
	struct slot *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return -ENOMEM;
	ret = task_make_id(s->t.id);
	if (ret < 0) {
		free(s);
		return ret;
	}
	s->t.req = *req;
	memset(req, 0, sizeof(*req));
	s->t.life = TASK_PENDING;
	s->t.automatic = automatic;
	s->t.creation_ns = s->t.updated_ns = time_now_ns();
	ret = add_slot(e, s);
	if (ret < 0) {
		slot_free(s);
		return ret;
	}
	task_slot_persist(e, s);
	pthread_cond_broadcast(&e->cond);
	*out = s;
	return 0;
}

/* ---- the run context ---- */

const struct task_engine_config *task_run_config(const struct task_run *r)
{
	return &r->e->cfg;
}

const struct task_request *task_run_request(const struct task_run *r)
{
	return &r->s->t.req;
}

int64_t task_run_created_ns(const struct task_run *r)
{
	return r->s->t.creation_ns;
}

uint64_t task_run_target_bytes(const struct task_run *r)
{
	return r->s->target_bytes;
}

uint64_t task_run_done_count(const struct task_run *r)
{
	uint64_t n;

	pthread_mutex_lock(&r->e->lock);
	n = r->s->t.succeeded + r->s->t.failed;
	pthread_mutex_unlock(&r->e->lock);
	return n;
}

static void maybe_persist(struct task_run *r, bool force)
{
	int64_t now = time_mono_ns();

	if (force || now - r->last_persist >= PERSIST_GAP_NS) {
		r->last_persist = now;
		task_slot_persist(r->e, r->s);
	}
}

void task_run_set_total(struct task_run *r, uint64_t total)
{
	pthread_mutex_lock(&r->e->lock);
	r->s->t.total = total;
	r->s->t.updated_ns = time_now_ns();
	maybe_persist(r, true);
	pthread_mutex_unlock(&r->e->lock);
}

/* CSV field: quoted when it holds a comma, quote or line break. */
static int csv_append(struct task_run *r, const char *path, const char *code)
{
	size_t need = 2 * strlen(path) + strlen(code) + 32;
	char *p;

	if (r->rlen + need > r->rcap) {
		size_t ncap = (r->rlen + need) * 2;
		char *n = realloc(r->report, ncap);
		if (!n)
			return -ENOMEM;
		r->report = n;
		r->rcap = ncap;
	}
	p = r->report + r->rlen;
	if (strpbrk(path, ",\"\r\n")) {
		*p++ = '"';
		for (const char *c = path; *c; c++) {
			if (*c == '"')
				*p++ = '"';
			*p++ = *c;
		}
		*p++ = '"';
	} else {
		p = stpcpy(p, path);
	}
	p += sprintf(p, ",failed,%s\n", code);
	r->rlen = (size_t)(p - r->report);
	return 0;
}

void task_run_file_done(struct task_run *r, const char *path, int err,
			const char *error_code)
{
	pthread_mutex_lock(&r->e->lock);
	if (err == 0) {
		r->s->t.succeeded++;
	} else {
		r->s->t.failed++;
		csv_append(r, path, error_code ? error_code : "UNKNOWN");
		log_warn("tasks: %s: %s failed: %s", r->s->t.id, path,
			 error_code ? error_code : strerror(-err));
	}
	r->s->t.updated_ns = time_now_ns();
	maybe_persist(r, false);
	pthread_mutex_unlock(&r->e->lock);
}

void task_run_add_released(struct task_run *r, uint64_t bytes)
{
	pthread_mutex_lock(&r->e->lock);
	r->s->t.released_bytes += bytes;
	pthread_mutex_unlock(&r->e->lock);
}

bool task_run_canceled(const struct task_run *r)
{
	bool c;

	pthread_mutex_lock(&r->e->lock);
	c = r->s->cancel || r->e->stopping;
	pthread_mutex_unlock(&r->e->lock);
	return c;
}

void task_run_fail(struct task_run *r, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&r->e->lock);
	if (!r->s->failed_whole) {
		r->s->failed_whole = true;
		free(r->s->t.failure_msg);
		r->s->t.failure_msg = strdup(msg);
	}
	pthread_mutex_unlock(&r->e->lock);
}

/* ---- the lanes ---- */

static struct slot *next_pending(struct task_engine *e, int lane)
{
	for (size_t i = 0; i < e->nslots; i++) {
		struct slot *s = e->slots[i];
		if (s->t.life == TASK_PENDING && lane_of(s->t.req.type) == lane)
			return s;
	}
	return NULL;
}

static int run_type(struct task_run *r)
{
	switch (r->s->t.req.type) {
	case TASK_EXPORT:
		return task_exec_export(r);
	case TASK_IMPORT:
		return task_exec_import(r);
	case TASK_RELEASE:
		return task_exec_release(r);
	case TASK_AUTO_RELEASE:
		return task_exec_auto_release(r);
	}
	return -EINVAL;
}

/* Write {Report.Path}/task-<id>/failures.csv (report.csv for import). */
static int write_report(struct task_engine *e, struct task_run *r)
{
	const struct task_request *q = &r->s->t.req;
	const char *path = q->report_path, *key;
	char *full;
	size_t l;
	int ret;

	if (!q->report_enabled || !path)
		return 0;
	key = path + 5 + strlen(e->bucket); /* after "s3://bucket" */
	while (*key == '/')
		key++;
	l = strlen(key) + 64;
	full = malloc(l);
	if (!full)
		return -ENOMEM;
	snprintf(full, l, "%s%s%s/%s", key,
		 *key && key[strlen(key) - 1] != '/' ? "/" : "", r->s->t.id,
		 q->type == TASK_IMPORT ? "report.csv" : "failures.csv");
	ret = s3_put_object(e->cfg.s3, full, r->report ? r->report : "",
			    r->rlen, NULL, 0, NULL);
	if (ret < 0)
		log_warn("tasks: %s: writing the report to %s: %s", r->s->t.id,
			 full, strerror(-ret));
	free(full);
	return ret;
}

static void finish(struct task_engine *e, struct task_run *r, int ret)
{
	struct slot *s = r->s;
	char msg[128];

	if (ret < 0 && !s->failed_whole) {
		s->failed_whole = true;
		s->t.failure_msg = strdup(strerror(-ret));
	}
	if (s->cancel) {
		s->t.life = TASK_CANCELED;
	} else if (s->failed_whole) {
		s->t.life = TASK_FAILED;
	} else if (s->t.failed > 0) {
		s->t.life = TASK_FAILED;
		snprintf(msg, sizeof(msg),
			 "%" PRIu64 " of %" PRIu64 " files failed; see the"
			 " completion report",
			 s->t.failed, s->t.total);
		free(s->t.failure_msg);
		s->t.failure_msg = strdup(msg);
	} else {
		s->t.life = TASK_SUCCEEDED;
	}
	s->t.end_ns = s->t.updated_ns = time_now_ns();
	if (s->t.automatic && s->t.released_bytes == 0)
		e->auto_empty_ns = time_mono_ns();
	task_slot_persist(e, s);
	log_info("tasks: %s %s %s (%" PRIu64 " ok, %" PRIu64 " failed)",
		 s->t.id, task_type_name(s->t.req.type),
		 task_lifecycle_name(s->t.life), s->t.succeeded, s->t.failed);
	trim_finished(e);
	pthread_cond_broadcast(&e->done);
}

static struct slot *active_auto(struct task_engine *e)
{
	for (size_t i = 0; i < e->nslots; i++)
		if (e->slots[i]->t.automatic &&
		    !task_finished(e->slots[i]->t.life))
			return e->slots[i];
	return NULL;
}

/* Caller holds e->lock: queue an automatic AUTO_RELEASE_DATA of bytes. */
static struct slot *auto_release(struct task_engine *e, uint64_t bytes)
{
	struct task_request req = {0};
	struct slot *s = NULL;

	req.type = TASK_AUTO_RELEASE;
	req.capacity_gib = (bytes + (1ull << 30) - 1) >> 30;
	req.fsid = strdup(e->fsid);
	if (!req.fsid || task_enqueue(e, &req, true, &s) < 0) {
		task_request_release(&req);
		return NULL;
	}
	s->target_bytes = bytes;
	log_info("eviction: cache at %" PRIu64 " of %" PRIu64
		 " bytes; releasing %" PRIu64 " bytes (%s)",
		 hydrate_used(e->cfg.hy), e->cfg.capacity, bytes, s->t.id);
	return s;
}

/* Caller holds e->lock: above the high watermark, evict to the low one. */
static void watch_usage(struct task_engine *e)
{
	uint64_t cap = e->cfg.capacity, used = hydrate_used(e->cfg.hy);
	uint64_t low = cap / 100 * e->cfg.low_pct;

	if (!cap || used <= cap / 100 * e->cfg.high_pct || active_auto(e))
		return;
	/* Everything cached is dirty, pinned or open: look again later. */
	if (time_mono_ns() - e->auto_empty_ns < AUTO_RETRY_NS)
		return;
	auto_release(e, used - low);
}

int task_engine_make_space(void *engine, uint64_t bytes)
{
	struct task_engine *e = engine;
	uint64_t used, low, freed = 0;
	struct slot *s;
	char id[24];
	int64_t deadline = time_mono_ns() + 60ll * 1000000000ll;

	pthread_mutex_lock(&e->lock);
	s = active_auto(e);
	if (!s && time_mono_ns() - e->auto_empty_ns < AUTO_RETRY_NS / 10) {
		/* The last attempt just found nothing: do not spin. */
		pthread_mutex_unlock(&e->lock);
		return -ENOSPC;
	}
	if (!s) {
		used = hydrate_used(e->cfg.hy);
		low = e->cfg.capacity / 100 * e->cfg.low_pct;
		s = auto_release(e, MAX(bytes, used > low ? used - low : 0));
	}
	if (!s) {
		pthread_mutex_unlock(&e->lock);
		return -ENOSPC;
	}
	memcpy(id, s->t.id, sizeof(id));
	while (!e->stopping && time_mono_ns() < deadline) {
		struct timespec ts;

		s = task_slot_find(e, id);
		if (!s || task_finished(s->t.life))
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&e->done, &e->lock, &ts);
	}
	s = task_slot_find(e, id);
	if (s)
		freed = s->t.released_bytes;
	pthread_mutex_unlock(&e->lock);
	return freed > 0 ? 0 : -ENOSPC;
}

static void *lane_main(void *arg)
{
	struct task_engine *e = ((void **)arg)[0];
	int lane = (int)(intptr_t)((void **)arg)[1];

	free(arg);
	pthread_mutex_lock(&e->lock);
	while (!e->stopping) {
		struct task_run r = {.e = e};
		struct slot *s;
		int ret;

		if (lane == 1)
			watch_usage(e);
		s = next_pending(e, lane);
		if (!s) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&e->cond, &e->lock, &ts);
			continue;
		}
		r.s = s;
		s->t.life = TASK_EXECUTING;
		s->t.start_ns = s->t.updated_ns = time_now_ns();
		s->t.total = s->t.succeeded = s->t.failed = 0;
		s->t.released_bytes = 0;
		task_slot_persist(e, s);
		log_info("tasks: %s %s started", s->t.id,
			 task_type_name(s->t.req.type));
		pthread_mutex_unlock(&e->lock);

		/* Fetched chunks are recorded in batches: a task sees every
		 * read so far (a release needs the files read lately to be
		 * archived, in LRU order). */
		if (e->cfg.hy)
			hydrate_flush(e->cfg.hy);
		ret = run_type(&r);
		if (!e->stopping || s->cancel)
			write_report(e, &r);

		pthread_mutex_lock(&e->lock);
		if (e->stopping && !s->cancel) {
			/* Interrupted by unmount: resumed at the next mount. */
			task_slot_persist(e, s);
		} else {
			finish(e, &r, ret);
		}
		free(r.report);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

/* ---- setup ---- */

static int dupstr(char **dst, const char *src)
{
	*dst = strdup(src ? src : "");
	return *dst ? 0 : -ENOMEM;
}

int task_engine_new(const struct task_engine_config *cfg,
		    struct task_engine **out)
{
	struct task_engine *e = calloc(1, sizeof(*e));
	int ret;

	if (!e)
		return -ENOMEM;
	e->cfg = *cfg;
	if (!e->cfg.max_active)
		e->cfg.max_active = 100;
	if (!e->cfg.keep_finished)
		e->cfg.keep_finished = 1000;
	if (!e->cfg.high_pct)
		e->cfg.high_pct = 90;
	if (!e->cfg.low_pct || e->cfg.low_pct >= e->cfg.high_pct)
		e->cfg.low_pct = e->cfg.high_pct * 5 / 6;
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	pthread_cond_init(&e->done, NULL);
	ret = dupstr(&e->fsid, cfg->mount.fsid);
	if (ret == 0)
		ret = dupstr(&e->bucket, cfg->mount.bucket);
	if (ret == 0)
		ret = dupstr(&e->prefix, cfg->mount.prefix);
	if (ret == 0)
		ret = dupstr(&e->region,
			     cfg->region ? cfg->region : "us-east-1");
	if (ret == 0)
		ret = dupstr(&e->account,
			     cfg->account ? cfg->account : "000000000000");
	if (ret == 0) {
		e->cfg.mount.fsid = e->fsid;
		e->cfg.mount.bucket = e->bucket;
		e->cfg.mount.prefix = e->prefix;
		ret = load_tasks(e);
	}
	for (int i = 0; ret == 0 && i < NLANES; i++) {
		void **arg = malloc(2 * sizeof(void *));
		if (!arg) {
			ret = -ENOMEM;
			break;
		}
		arg[0] = e;
		arg[1] = (void *)(intptr_t)i;
		ret = -pthread_create(&e->lanes[i], NULL, lane_main, arg);
		if (ret < 0)
			free(arg);
		else
			e->nlanes++;
	}
	if (ret < 0) {
		task_engine_free(e);
		return ret;
	}
	*out = e;
	return 0;
}

void task_engine_free(struct task_engine *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	e->stopping = true;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
	for (int i = 0; i < e->nlanes; i++)
		pthread_join(e->lanes[i], NULL);
	for (size_t i = 0; i < e->nslots; i++)
		slot_free(e->slots[i]);
	free(e->slots);
	free(e->fsid);
	free(e->bucket);
	free(e->prefix);
	free(e->region);
	free(e->account);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->cond);
	pthread_cond_destroy(&e->done);
	free(e);
}
