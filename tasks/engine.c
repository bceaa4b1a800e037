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
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "tasks/tasks_i.h"

#define NLANES	       2
#define PERSIST_GAP_NS 1000000000ll
#define AUTO_RETRY_NS  10000000000ll /* after an eviction that freed 0 */

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

static const char *slot_name(const struct slot *s)
{
	return s->t.req.token ? s->t.req.token : s->t.id;
}

/* ---- persistence (caller holds e->lock) ---- */

static int persist(struct task_engine *e, struct slot *s)
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
		size_t ncap = e->cap ? e->cap * 2 : 64;
		struct slot **n = realloc(e->slots, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		e->slots = n;
		e->cap = ncap;
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
			persist(e, s);
		} else if (s->t.life == TASK_CANCELING) {
			s->t.life = TASK_CANCELED;
			s->t.end_ns = time_now_ns();
			persist(e, s);
		}
	}
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
		persist(r->e, r->s);
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
	persist(e, s);
	log_info("tasks: %s %s %s (%" PRIu64 " ok, %" PRIu64 " failed)",
		 s->t.id, task_type_name(s->t.req.type),
		 task_lifecycle_name(s->t.life), s->t.succeeded, s->t.failed);
	trim_finished(e);
	pthread_cond_broadcast(&e->done);
}

static int enqueue(struct task_engine *e, struct task_request *req,
		   bool automatic, struct slot **out);
static struct slot *find_id(struct task_engine *e, const char *id);

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
	if (!req.fsid || enqueue(e, &req, true, &s) < 0) {
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

		s = find_id(e, id);
		if (!s || task_finished(s->t.life))
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&e->done, &e->lock, &ts);
	}
	s = find_id(e, id);
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
		persist(e, s);
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
			persist(e, s);
		} else {
			finish(e, &r, ret);
		}
		free(r.report);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

/* ---- the FSx operations ---- */

static int error_resp(int code, const char *msg, char **resp)
{
	*resp = task_error_json(code, msg);
	return *resp ? code : -ENOMEM;
}

static struct slot *find_id(struct task_engine *e, const char *id)
{
	for (size_t i = 0; i < e->nslots; i++)
		if (!strcmp(e->slots[i]->t.id, id))
			return e->slots[i];
	return NULL;
}

static struct slot *find_name(struct task_engine *e, const char *name)
{
	for (size_t i = 0; i < e->nslots; i++)
		if (!strcmp(slot_name(e->slots[i]), name))
			return e->slots[i];
	return NULL;
}

static struct slot *find_token(struct task_engine *e, const char *token)
{
	for (size_t i = 0; i < e->nslots; i++) {
		const char *t = e->slots[i]->t.req.token;
		if (t && !strcmp(t, token))
			return e->slots[i];
	}
	return NULL;
}

static char *wrap_task(struct task_engine *e, const struct slot *s)
{
	char *obj = task_to_json(&s->t, e->region, e->account), *out;
	size_t l;

	if (!obj)
		return NULL;
	l = strlen(obj) + 32;
	out = malloc(l);
	if (out)
		snprintf(out, l, "{\"DataRepositoryTask\": %s}", obj);
	free(obj);
	return out;
}

static unsigned count_active(struct task_engine *e)
{
	unsigned n = 0;

	for (size_t i = 0; i < e->nslots; i++)
		n += !task_finished(e->slots[i]->t.life);
	return n;
}

/* Queue an already validated request (ownership of req moves in). */
static int enqueue(struct task_engine *e, struct task_request *req,
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
	persist(e, s);
	pthread_cond_broadcast(&e->cond);
	*out = s;
	return 0;
}

int task_engine_create(struct task_engine *e, const char *json, size_t len,
		       enum task_source src, const char *ctl_token, char **resp)
{
	struct task_mount_info mi = {e->fsid, e->bucket, e->prefix};
	struct task_request req = {0};
	struct slot *s;
	char msg[512];
	int ret;

	*resp = NULL;
	ret = task_request_parse(json, len, src, ctl_token, &mi, &req, msg,
				 sizeof(msg));
	if (ret < 0) {
		task_request_release(&req);
		return ret == -ENOMEM ? ret : error_resp(ret, msg, resp);
	}
	pthread_mutex_lock(&e->lock);
	s = req.token ? find_token(e, req.token) : NULL;
	if (s) {
		if (task_request_equal(&s->t.req, &req)) {
			*resp = wrap_task(e, s);
			ret = *resp ? 0 : -ENOMEM;
		} else {
			snprintf(msg, sizeof(msg),
				 "ClientRequestToken %s was already used for"
				 " a different request (task %s)",
				 req.token, s->t.id);
			ret = error_resp(TASK_ERR_INCOMPATIBLE_PARAMETER, msg,
					 resp);
		}
	} else if (count_active(e) >= e->cfg.max_active) {
		snprintf(msg, sizeof(msg),
			 "The task queue is full: at most %u data repository"
			 " tasks may be pending or executing",
			 e->cfg.max_active);
		ret = error_resp(TASK_ERR_SERVICE_LIMIT, msg, resp);
	} else {
		ret = enqueue(e, &req, false, &s);
		if (ret == 0) {
			*resp = wrap_task(e, s);
			ret = *resp ? 0 : -ENOMEM;
		}
	}
	pthread_mutex_unlock(&e->lock);
	task_request_release(&req);
	return ret;
}

static bool matches(const struct task_engine *e, const struct slot *s,
		    const struct task_describe_request *q)
{
	bool ok;

	if (q->other_filter)
		return false;
	if (q->nfs_ids) {
		ok = false;
		for (size_t i = 0; i < q->nfs_ids && !ok; i++)
			ok = !strcmp(q->fs_ids[i], e->fsid);
		if (!ok)
			return false;
	}
	if (q->nlifecycles) {
		ok = false;
		for (size_t i = 0; i < q->nlifecycles && !ok; i++)
			ok = q->lifecycles[i] == s->t.life;
		if (!ok)
			return false;
	}
	if (q->ntask_ids) {
		ok = false;
		for (size_t i = 0; i < q->ntask_ids && !ok; i++)
			ok = !strcmp(q->task_ids[i], s->t.id);
		if (!ok)
			return false;
	}
	return true;
}

/* NextToken: base64 of "o:<offset>" (opaque to clients). */
static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void token_encode(size_t off, char out[64])
{
	char raw[32];
	size_t n = (size_t)snprintf(raw, sizeof(raw), "o:%zu", off), o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(uint8_t)raw[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)(uint8_t)raw[i + 1] << 8;
		if (i + 2 < n)
			v |= (uint8_t)raw[i + 2];
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	out[o] = '\0';
}

static int token_decode(const char *tok, size_t *off)
{
	/* Parse the base64; re-encoding must give the token back, so only
	 * tokens we handed out are accepted. */
	char want[64], raw[48];
	size_t n = 0, len = strlen(tok);
	uint64_t v;

	if (len % 4 || len > 60)
		return -EINVAL;
	for (size_t i = 0; i < len; i += 4) {
		uint32_t acc = 0;
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			const char *p = tok[i + k] == '='
						? NULL
						: strchr(b64, tok[i + k]);
			if (!p && tok[i + k] != '=')
				return -EINVAL;
			pad += !p;
			acc = acc << 6 | (p ? (uint32_t)(p - b64) : 0);
		}
		raw[n++] = (char)(acc >> 16);
		if (pad < 2)
			raw[n++] = (char)(acc >> 8);
		if (pad < 1)
			raw[n++] = (char)acc;
	}
	raw[n] = '\0';
	if (strncmp(raw, "o:", 2) || parse_u64(raw + 2, &v) < 0)
		return -EINVAL;
	token_encode((size_t)v, want);
	if (strcmp(want, tok))
		return -EINVAL;
	*off = (size_t)v;
	return 0;
}

static int append(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t l = strlen(s);

	if (*len + l + 1 > *cap) {
		size_t ncap = (*len + l + 1) * 2;
		char *n = realloc(*buf, ncap);
		if (!n)
			return -ENOMEM;
		*buf = n;
		*cap = ncap;
	}
	memcpy(*buf + *len, s, l + 1);
	*len += l;
	return 0;
}

static int describe_locked(struct task_engine *e,
			   const struct task_describe_request *q, char **resp)
{
	size_t start = 0, limit = q->max_results ? q->max_results : 100;
	size_t seen = 0, emitted = 0, len = 0, cap = 0;
	char *out = NULL, tok[64], msg[160];
	int ret = 0;

	if (q->next_token && token_decode(q->next_token, &start) < 0)
		return error_resp(TASK_ERR_BAD_REQUEST,
				  "The NextToken value is not valid", resp);
	for (size_t i = 0; i < q->ntask_ids; i++) {
		if (!find_id(e, q->task_ids[i])) {
			snprintf(msg, sizeof(msg),
				 "Data repository task %s was not found",
				 q->task_ids[i]);
			return error_resp(TASK_ERR_NOT_FOUND, msg, resp);
		}
	}
	ret = append(&out, &len, &cap, "{\"DataRepositoryTasks\": [");
	for (size_t i = 0; ret == 0 && i < e->nslots; i++) {
		struct slot *s = e->slots[i];
		char *obj;

		if (!matches(e, s, q) || seen++ < start)
			continue;
		if (emitted == limit) {
			token_encode(start + emitted, tok);
			ret = append(&out, &len, &cap, "], \"NextToken\": \"");
			if (ret == 0)
				ret = append(&out, &len, &cap, tok);
			if (ret == 0)
				ret = append(&out, &len, &cap, "\"}");
			goto done;
		}
		obj = task_to_json(&s->t, e->region, e->account);
		if (!obj)
			ret = -ENOMEM;
		if (ret == 0 && emitted)
			ret = append(&out, &len, &cap, ", ");
		if (ret == 0)
			ret = append(&out, &len, &cap, obj);
		free(obj);
		emitted++;
	}
	if (ret == 0)
		ret = append(&out, &len, &cap, "]}");
done:
	if (ret < 0) {
		free(out);
		return ret;
	}
	*resp = out;
	return 0;
}

int task_engine_describe(struct task_engine *e, const char *json, size_t len,
			 char **resp)
{
	struct task_describe_request q = {0};
	char msg[512];
	int ret;

	*resp = NULL;
	ret = task_describe_parse(json, len, &q, msg, sizeof(msg));
	if (ret < 0) {
		task_describe_release(&q);
		return ret == -ENOMEM ? ret : error_resp(ret, msg, resp);
	}
	pthread_mutex_lock(&e->lock);
	ret = describe_locked(e, &q, resp);
	pthread_mutex_unlock(&e->lock);
	task_describe_release(&q);
	return ret;
}

int task_engine_cancel(struct task_engine *e, const char *json, size_t len,
		       char **resp)
{
	char id[24], msg[512];
	struct slot *s;
	int ret;

	*resp = NULL;
	ret = task_cancel_parse(json, len, id, msg, sizeof(msg));
	if (ret < 0)
		return ret == -ENOMEM ? ret : error_resp(ret, msg, resp);
	pthread_mutex_lock(&e->lock);
	s = find_id(e, id);
	if (!s) {
		snprintf(msg, sizeof(msg),
			 "Data repository task %s was not found", id);
		ret = error_resp(TASK_ERR_NOT_FOUND, msg, resp);
	} else if (task_finished(s->t.life)) {
		snprintf(msg, sizeof(msg),
			 "Data repository task %s has already ended (%s)", id,
			 task_lifecycle_name(s->t.life));
		ret = error_resp(TASK_ERR_ENDED, msg, resp);
	} else {
		s->cancel = true;
		if (s->t.life == TASK_PENDING) {
			s->t.life = TASK_CANCELED;
			s->t.end_ns = s->t.updated_ns = time_now_ns();
		} else {
			s->t.life = TASK_CANCELING;
		}
		persist(e, s);
		snprintf(msg, sizeof(msg),
			 "{\"Lifecycle\": \"%s\", \"TaskId\": \"%s\"}",
			 task_lifecycle_name(s->t.life), id);
		*resp = strdup(msg);
		ret = *resp ? 0 : -ENOMEM;
	}
	pthread_mutex_unlock(&e->lock);
	return ret;
}

int task_engine_describe_fs(struct task_engine *e, const char *json, size_t len,
			    char **resp)
{
	json_t *req, *ids, *fs, *lustre, *drc, *out;
	json_error_t err;
	char repo[1100], arn[256], msg[300];
	bool found;
	size_t i;

	*resp = NULL;
	req = len ? json_loadb(json, len, 0, &err) : json_object();
	if (!req || !json_is_object(req)) {
		json_decref(req);
		return error_resp(TASK_ERR_BAD_REQUEST,
				  "The request body is not a JSON object",
				  resp);
	}
	ids = json_object_get(req, "FileSystemIds");
	if (ids && !json_is_array(ids)) {
		json_decref(req);
		return error_resp(TASK_ERR_BAD_REQUEST,
				  "FileSystemIds must be a list of strings",
				  resp);
	}
	found = !ids || json_array_size(ids) == 0;
	for (i = 0; ids && i < json_array_size(ids); i++) {
		json_t *v = json_array_get(ids, i);
		if (!json_is_string(v)) {
			json_decref(req);
			return error_resp(TASK_ERR_BAD_REQUEST,
					  "FileSystemIds must be a list of"
					  " strings",
					  resp);
		}
		found |= !strcmp(json_string_value(v), e->fsid);
	}
	json_decref(req);
	if (!found) {
		snprintf(msg, sizeof(msg),
			 "File system(s) not found: this endpoint serves %s",
			 e->fsid);
		return error_resp(TASK_ERR_FS_NOT_FOUND, msg, resp);
	}
	snprintf(repo, sizeof(repo), "s3://%s/%s", e->bucket, e->prefix);
	snprintf(arn, sizeof(arn), "arn:aws:fsx:%s:%s:file-system/%s",
		 e->region, e->account, e->fsid);
	drc = json_pack("{s:s, s:s, s:s}", "Lifecycle", "AVAILABLE",
			"ImportPath", repo, "ExportPath", repo);
	lustre = json_pack("{s:s, s:o}", "DeploymentType", "SCRATCH_2",
			   "DataRepositoryConfiguration", drc);
	fs = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:o}",
		       "FileSystemId", e->fsid, "FileSystemType", "LUSTRE",
		       "Lifecycle", "AVAILABLE", "StorageCapacity",
		       (json_int_t)(e->cfg.capacity >> 30), "StorageType",
		       "SSD", "ResourceARN", arn, "DNSName", "localhost",
		       "LustreConfiguration", lustre);
	out = fs ? json_pack("{s:[o]}", "FileSystems", fs) : NULL;
	*resp = out ? json_dumps(out, JSON_COMPACT) : NULL;
	json_decref(out);
	return *resp ? 0 : -ENOMEM;
}

int task_engine_get_by_name(struct task_engine *e, const char *name,
			    char **json)
{
	struct slot *s;
	int ret = -ENOENT;

	pthread_mutex_lock(&e->lock);
	s = find_name(e, name);
	if (s) {
		*json = task_to_json(&s->t, e->region, e->account);
		ret = *json ? 0 : -ENOMEM;
	}
	pthread_mutex_unlock(&e->lock);
	return ret;
}

int task_engine_list_names(struct task_engine *e, char ***names, size_t *n)
{
	char **v;
	int ret = 0;

	pthread_mutex_lock(&e->lock);
	v = calloc(e->nslots + 1, sizeof(*v));
	if (!v)
		ret = -ENOMEM;
	for (size_t i = 0; ret == 0 && i < e->nslots; i++) {
		v[i] = strdup(slot_name(e->slots[i]));
		if (!v[i])
			ret = -ENOMEM;
	}
	*n = e->nslots;
	pthread_mutex_unlock(&e->lock);
	if (ret < 0) {
		for (size_t i = 0; v && i < *n; i++)
			free(v[i]);
		free(v);
		return ret;
	}
	*names = v;
	return 0;
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
