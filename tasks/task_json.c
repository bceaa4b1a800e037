/* SPDX-License-Identifier: MIT */
/*
 * The DataRepositoryTask JSON object of a task (tasks/task.h: task_to_json,
 * the FSx shape, which is also the persisted form) and the way back
 * (task_from_json, for the tasks table), plus task ids. A stored request is
 * read back through the CreateDataRepositoryTask member parsers of task.c.
 * Pure functions (jansson); no I/O, no threads.
 */
#include "tasks/task.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "tasks/task_check_i.h"

#define GIB_SHIFT    30
#define DEFAULT_ACCT "000000000000"
#define DEFAULT_RGN  "us-east-1"

/* ---- tasks ---- */

int task_make_id(char id[24])
{
	unsigned char rnd[9];
	char hex[2 * sizeof(rnd) + 1];
	int ret = random_bytes(rnd, sizeof(rnd));

	if (ret)
		return ret;
	hex_encode(rnd, sizeof(rnd), hex);
	memcpy(id, "task-", 5);
	memcpy(id + 5, hex, 17);
	id[22] = '\0';
	return 0;
}

void task_release(struct task *t)
{
	if (!t)
		return;
	task_request_release(&t->req);
	free(t->failure_msg);
	memset(t, 0, sizeof(*t));
}

/* Epoch seconds with microseconds (a double holds them exactly until
 * 2255); whole seconds print as an integer. */
static json_t *json_time(int64_t ns)
{
	if (ns % 1000000000 == 0)
		return json_integer(ns / 1000000000);
	return json_real((double)(ns / 1000) / 1e6);
}

static int time_from(const json_t *v, int64_t *ns)
{
	double d;

	if (!v) {
		*ns = 0;
		return 0;
	}
	if (json_is_integer(v)) {
		json_int_t s = json_integer_value(v);

		if (s > INT64_MAX / 1000000000 || s < INT64_MIN / 1000000000)
			return -EINVAL;
		*ns = (int64_t)s * 1000000000;
		return 0;
	}
	if (!json_is_real(v))
		return -EINVAL;
	d = json_real_value(v) * 1e6;
	if (!(d > -9.2e18 / 1000 && d < 9.2e18 / 1000))
		return -EINVAL;
	*ns = (int64_t)llround(d) * 1000;
	return 0;
}

static json_t *json_u64(uint64_t x)
{
	return json_integer(x > (uint64_t)LLONG_MAX ? LLONG_MAX
						    : (json_int_t)x);
}

/* A JSON string of s with bytes that are not UTF-8 replaced by '?'. */
static json_t *json_string_lossy(const char *s)
{
	size_t len = strlen(s), i = 0;
	json_t *v = json_stringn(s, len);
	char *c;

	if (v)
		return v;
	c = task_dupn(s, len);
	if (!c)
		return NULL;
	while (i < len) {
		uint32_t cp;
		size_t k = task_utf8_next((unsigned char *)c + i, len - i, &cp);

		if (!k || !cp)
			c[i] = '?', k = 1;
		i += k;
	}
	v = json_stringn(c, len);
	free(c);
	return v;
}

static void put(json_t *o, const char *key, json_t *v, bool *bad)
{
	if (json_object_set_new(o, key, v))
		*bad = true;
}

static json_t *report_json(const struct task_request *r)
{
	json_t *o = json_object();
	bool bad = !o;

	if (bad)
		return NULL;
	put(o, "Enabled", json_boolean(r->report_enabled), &bad);
	if (r->report_path)
		put(o, "Path", json_string(r->report_path), &bad);
	if (r->report_format)
		put(o, "Format", json_string(r->report_format), &bad);
	if (r->report_scope)
		put(o, "Scope", json_string(r->report_scope), &bad);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *status_json(const struct task *t)
{
	json_t *o = json_object();
	bool bad = !o;

	if (bad)
		return NULL;
	put(o, "TotalCount", json_u64(t->total), &bad);
	put(o, "SucceededCount", json_u64(t->succeeded), &bad);
	put(o, "FailedCount", json_u64(t->failed), &bad);
	if (t->updated_ns)
		put(o, "LastUpdatedTime", json_time(t->updated_ns), &bad);
	put(o, "ReleasedCapacity", json_u64(t->released_bytes >> GIB_SHIFT),
	    &bad);
	put(o, "ReleasedBytes", json_u64(t->released_bytes), &bad);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *tags_json(const struct task_request *r)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < r->ntags; i++) {
		json_t *o = json_pack("{s:s, s:s}", "Key", r->tags[i].key,
				      "Value", r->tags[i].value);

		if (json_array_append_new(a, o)) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *paths_json(const struct task_request *r)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < r->npaths; i++)
		if (json_array_append_new(a, json_string(r->paths[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static void put_request(json_t *o, const struct task_request *r, bool *bad)
{
	if (r->ntags)
		put(o, "Tags", tags_json(r), bad);
	if (r->fsid)
		put(o, "FileSystemId", json_string(r->fsid), bad);
	if (r->paths)
		put(o, "Paths", paths_json(r), bad);
}

char *task_to_json(const struct task *t, const char *region,
		   const char *account)
{
	const struct task_request *r = &t->req;
	json_t *o = json_object();
	char *arn = NULL, *s = NULL;
	bool bad = !o;

	if (bad)
		return NULL;
	if (asprintf(&arn, "arn:aws:fsx:%s:%s:task/%s",
		     region ? region : DEFAULT_RGN,
		     account ? account : DEFAULT_ACCT, t->id) < 0) {
		arn = NULL;
		bad = true;
	}
	put(o, "TaskId", json_string(t->id), &bad);
	put(o, "Lifecycle", json_string(task_lifecycle_name(t->life)), &bad);
	put(o, "Type", json_string(task_type_name(r->type)), &bad);
	put(o, "CreationTime", json_time(t->creation_ns), &bad);
	if (t->start_ns)
		put(o, "StartTime", json_time(t->start_ns), &bad);
	if (t->end_ns)
		put(o, "EndTime", json_time(t->end_ns), &bad);
	put(o, "ResourceARN", arn ? json_string(arn) : NULL, &bad);
	put_request(o, r, &bad);
	if (t->life == TASK_FAILED)
		put(o, "FailureDetails",
		    json_pack("{s:o}", "Message",
			      json_string_lossy(t->failure_msg ? t->failure_msg
							       : "")),
		    &bad);
	put(o, "Status", status_json(t), &bad);
	put(o, "Report", report_json(r), &bad);
	if (r->capacity_gib)
		put(o, "CapacityToRelease", json_u64(r->capacity_gib), &bad);
	if (r->have_release_cfg)
		put(o, "ReleaseConfiguration",
		    json_pack("{s:{s:s, s:I}}", "DurationSinceLastAccess",
			      "Unit", "DAYS", "Value",
			      (json_int_t)MIN(r->release_days,
					      (uint64_t)LLONG_MAX)),
		    &bad);
	/* Not FSx members (botocore ignores them): the token, persisted for
	 * idempotency across mounts, and eviction-thread tasks. */
	if (r->token)
		put(o, "ClientRequestToken", json_string(r->token), &bad);
	if (t->automatic)
		put(o, "Automatic", json_true(), &bad);
	if (!bad)
		s = json_dumps(o, JSON_COMPACT);
	free(arn);
	json_decref(o);
	return s;
}

static int u64_from(const json_t *obj, const char *name, uint64_t *out)
{
	json_t *v = task_member(obj, name);

	*out = 0;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -EINVAL;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int status_from(const json_t *o, struct task *t)
{
	json_t *st = task_member(o, "Status");
	uint64_t gib;

	if (!st)
		return 0;
	if (!json_is_object(st) || u64_from(st, "TotalCount", &t->total) ||
	    u64_from(st, "SucceededCount", &t->succeeded) ||
	    u64_from(st, "FailedCount", &t->failed) ||
	    u64_from(st, "ReleasedBytes", &t->released_bytes) ||
	    u64_from(st, "ReleasedCapacity", &gib) ||
	    time_from(task_member(st, "LastUpdatedTime"), &t->updated_ns))
		return -EINVAL;
	if (!task_member(st, "ReleasedBytes"))
		t->released_bytes = gib << GIB_SHIFT;
	return 0;
}

static int header_from(const json_t *o, struct task *t)
{
	const char *id = json_string_value(task_member(o, "TaskId"));
	const char *life = json_string_value(task_member(o, "Lifecycle"));
	json_t *fd = task_member(o, "FailureDetails"),
	       *au = task_member(o, "Automatic");

	if (!id || strlen(id) >= sizeof(t->id) ||
	    !task_hex_id(id, strlen(id), "task-", 17) || !life ||
	    task_lifecycle_parse(life, &t->life))
		return -EINVAL;
	strcpy(t->id, id);
	if (time_from(task_member(o, "CreationTime"), &t->creation_ns) ||
	    time_from(task_member(o, "StartTime"), &t->start_ns) ||
	    time_from(task_member(o, "EndTime"), &t->end_ns) ||
	    status_from(o, t) || (au && !json_is_boolean(au)))
		return -EINVAL;
	t->automatic = json_is_true(au);
	if (fd) {
		const char *m = json_string_value(task_member(fd, "Message"));

		if (!m)
			return -EINVAL;
		t->failure_msg = strdup(m);
		if (!t->failure_msg)
			return -ENOMEM;
	}
	return 0;
}

int task_from_json(const char *json, size_t len, struct task *out)
{
	json_t *o;
	int ret;

	memset(out, 0, sizeof(*out));
	o = json ? json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
	if (!json_is_object(o)) {
		json_decref(o);
		return -EPROTO;
	}
	ret = header_from(o, out);
	/* Each request member passes the rules it passed when the task was
	 * created (Report optional, as for control files). The cross-field
	 * rules are not applied again: tasks the engine makes itself need
	 * not follow them, and a stored task must load. */
	if (!ret)
		ret = task_parse_request_fields(NULL, o, TASK_SRC_CTL, NULL,
						&out->req);
	json_decref(o);
	if (ret && ret != -ENOMEM)
		ret = -EINVAL;
	if (ret)
		task_release(out);
	return ret;
}
