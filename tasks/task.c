/* SPDX-License-Identifier: MIT */
/*
 * The data repository task model: FSx error bodies and enum names, and
 * parsing and validating the FSx CreateDataRepositoryTask and
 * CancelDataRepositoryTask request bodies (docs/FSX-SEMANTICS.md). Pure
 * functions over JSON text (jansson); no I/O, no threads. The rest of
 * tasks/task.h is in task_json.c (DataRepositoryTask objects, also the
 * persisted form) and task_describe.c (DescribeDataRepositoryTasks); the
 * validation helpers all three share are in task_check.c (task_check_i.h).
 *
 * Validation reports the first violation only, in the AWS wording ("1
 * validation error detected: Value 'x' at 'Field' failed to satisfy
 * constraint: …") with the field named as the request spells it, list
 * items 0-based as botocore does ("Tags[3].Key"). Lengths count code points
 * (Smithy's length trait). A JSON null member counts as absent.
 */
#include "tasks/task.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "tasks/task_check_i.h"

#define PAT_PATH    "^[^\\u0000\\u0085\\u2028\\u2029\\r\\n]{0,4096}$"
#define PAT_ARCHIVE "^[^\\u0000\\u0085\\u2028\\u2029\\r\\n]{3,4357}$"
#define PAT_FSID    "^(fs-[0-9a-f]{8,})$"
#define PAT_TOKEN   "^[A-Za-z0-9_.-]{0,63}$"
#define PAT_TAG	    "^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$"

/* ---- error names ---- */

static const char *const err_names[] = {
	"BadRequest",
	"IncompatibleParameterError",
	"FileSystemNotFound",
	"ServiceLimitExceeded",
	"UnsupportedOperation",
	"DataRepositoryTaskExecuting",
	"InternalServerError",
	"DataRepositoryTaskNotFound",
	"DataRepositoryTaskEnded",
	"InvalidAction",
};

const char *task_strerror(int code)
{
	if (code > TASK_ERR_BAD_REQUEST || code < TASK_ERR_INVALID_ACTION)
		return NULL;
	return err_names[TASK_ERR_BAD_REQUEST - code];
}

int task_err_http_status(int code)
{
	/* Anything that is not an FSx client error is our fault. */
	if (!task_strerror(code) || code == TASK_ERR_INTERNAL)
		return 500;
	return 400;
}

char *task_error_json(int code, const char *msg)
{
	const char *name = task_strerror(code);
	json_t *o;
	char *s = NULL;

	if (!name)
		name = "InternalServerError";
	o = json_object();
	if (!o)
		return NULL;
	if (json_object_set_new(o, "__type", json_string(name)) ||
	    json_object_set_new(o, "Message", json_string(msg ? msg : "")))
		goto out;
	/* Limit is a required member of ServiceLimitExceeded, an enum of
	 * account limits none of which is a task queue; the closest is the
	 * one that counts operations in progress. */
	if (code == TASK_ERR_SERVICE_LIMIT &&
	    json_object_set_new(o, "Limit",
				json_string("TOTAL_IN_PROGRESS_COPY_BACKUPS")))
		goto out;
	s = json_dumps(o, JSON_COMPACT);
out:
	json_decref(o);
	return s;
}

/* ---- enums ---- */

static const char *const type_names[] = {
	"EXPORT_TO_REPOSITORY",
	"IMPORT_METADATA_FROM_REPOSITORY",
	"RELEASE_DATA_FROM_FILESYSTEM",
	"AUTO_RELEASE_DATA",
};

const char *const task_lifecycle_names[] = {
	"PENDING", "EXECUTING", "FAILED", "SUCCEEDED", "CANCELED", "CANCELING",
};

const char *task_type_name(enum task_type t)
{
	if ((unsigned)t >= ARRAY_SIZE(type_names))
		return NULL;
	return type_names[t];
}

const char *task_lifecycle_name(enum task_lifecycle l)
{
	if ((unsigned)l >= ARRAY_SIZE(task_lifecycle_names))
		return NULL;
	return task_lifecycle_names[l];
}

int task_lifecycle_parse(const char *s, enum task_lifecycle *out)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(task_lifecycle_names); i++)
		if (!strcmp(s, task_lifecycle_names[i])) {
			*out = (enum task_lifecycle)i;
			return 0;
		}
	return -EINVAL;
}

/* ---- CreateDataRepositoryTask ---- */

static const char *const create_members[] = {
	"Type",
	"Paths",
	"FileSystemId",
	"Report",
	"ClientRequestToken",
	"Tags",
	"CapacityToRelease",
	"ReleaseConfiguration",
};
static const char *const report_members[] = {"Enabled", "Path", "Format",
					     "Scope"};
static const char *const tag_members[] = {"Key", "Value"};
static const char *const relcfg_members[] = {"DurationSinceLastAccess"};
static const char *const dsla_members[] = {"Unit", "Value"};
static const char *const formats[] = {"REPORT_CSV_20191124"};
static const char *const scopes[] = {"FAILED_FILES_ONLY"};
static const char *const units[] = {"DAYS"};

static int parse_type(struct verr *e, const json_t *root,
		      struct task_request *r)
{
	const char *s;
	size_t len, idx;
	int ret = task_get_str(e, root, "Type", "Type", &s, &len);

	if (ret)
		return ret;
	if (!s)
		return task_missing(e, "Type");
	ret = task_check_enum(e, "Type", s, len, type_names,
			      ARRAY_SIZE(type_names), &idx);
	if (!ret)
		r->type = (enum task_type)idx;
	return ret;
}

static int check_path(struct verr *e, const char *field, const char *s,
		      size_t len)
{
	return task_check_str(e, field, s, len, 0, 4096, CLS_PATH, PAT_PATH);
}

static int parse_paths(struct verr *e, const json_t *root,
		       struct task_request *r)
{
	return task_get_str_list(e, root, "Paths", 100, check_path, &r->paths,
				 &r->npaths);
}

static int check_fsid(struct verr *e, const char *field, const char *s,
		      size_t len)
{
	return task_check_id(e, field, s, len, 11, 21, "fs-", 8, PAT_FSID);
}

static int parse_fsid(struct verr *e, const json_t *root, enum task_source src,
		      struct task_request *r)
{
	const char *s;
	size_t len;
	int ret =
		task_get_str(e, root, "FileSystemId", "FileSystemId", &s, &len);

	if (ret)
		return ret;
	if (!s)
		return src == TASK_SRC_API ? task_missing(e, "FileSystemId")
					   : 0;
	ret = check_fsid(e, "FileSystemId", s, len);
	if (ret)
		return ret;
	r->fsid = task_dupn(s, len);
	return r->fsid ? 0 : -ENOMEM;
}

static int report_field(struct verr *e, const json_t *rep, const char *name,
			const char *field, const char *const *set, char **out)
{
	const char *s;
	size_t len;
	int ret = task_get_str(e, rep, name, field, &s, &len);

	if (ret || !s)
		return ret;
	if (set)
		ret = task_check_enum(e, field, s, len, set, 1, NULL);
	else
		ret = task_check_str(e, field, s, len, 3, 4357, CLS_PATH,
				     PAT_ARCHIVE);
	if (ret)
		return ret;
	*out = task_dupn(s, len);
	return *out ? 0 : -ENOMEM;
}

static int parse_report(struct verr *e, const json_t *root,
			enum task_source src, struct task_request *r)
{
	json_t *rep = task_member(root, "Report"), *en;
	char *path = NULL, *fmt = NULL, *scope = NULL;
	int ret;

	if (!rep)
		return src == TASK_SRC_API ? task_missing(e, "Report") : 0;
	if (task_want(e, rep, JSON_OBJECT, "structure", "Report"))
		return TASK_ERR_BAD_REQUEST;
	ret = task_check_members(e, rep, report_members,
				 ARRAY_SIZE(report_members), "Report");
	if (ret)
		return ret;
	en = task_member(rep, "Enabled");
	if (!en)
		return task_missing(e, "Report.Enabled");
	if (task_want(e, en, JSON_TRUE, "boolean", "Report.Enabled"))
		return TASK_ERR_BAD_REQUEST;
	ret = report_field(e, rep, "Path", "Report.Path", NULL, &path);
	if (!ret)
		ret = report_field(e, rep, "Format", "Report.Format", formats,
				   &fmt);
	if (!ret)
		ret = report_field(e, rep, "Scope", "Report.Scope", scopes,
				   &scope);
	if (ret || !json_is_true(en))
		goto out; /* a disabled report keeps nothing but Enabled */
	if (!path || !fmt || !scope) {
		ret = task_fail(
			e, TASK_ERR_BAD_REQUEST,
			"Report.%s is required when Report.Enabled is true",
			!path  ? "Path"
			: !fmt ? "Format"
			       : "Scope");
		goto out;
	}
	if (strncmp(path, "s3://", 5)) {
		char shown[160];

		ret = task_fail(
			e, TASK_ERR_BAD_REQUEST,
			"Report.Path %s must be an S3 URL "
			"(s3://bucket/prefix) inside the linked data "
			"repository",
			task_show(shown, sizeof(shown), path, strlen(path)));
		goto out;
	}
	r->report_enabled = true;
	r->report_path = path;
	r->report_format = fmt;
	r->report_scope = scope;
	return 0;
out:
	free(path);
	free(fmt);
	free(scope);
	return ret;
}

static int check_token(struct verr *e, const char *field, const char *s,
		       size_t len)
{
	return task_check_str(e, field, s, len, 1, 63, CLS_TOKEN, PAT_TOKEN);
}

static int parse_token(struct verr *e, const json_t *root, enum task_source src,
		       const char *ctl_token, struct task_request *r)
{
	const char *s;
	size_t len;
	int ret = task_get_str(e, root, "ClientRequestToken",
			       "ClientRequestToken", &s, &len);

	if (ret)
		return ret;
	if (s) {
		ret = check_token(e, "ClientRequestToken", s, len);
		if (ret)
			return ret;
	}
	if (src == TASK_SRC_CTL && ctl_token) {
		char shown[160];

		if (check_token(NULL, "", ctl_token, strlen(ctl_token)))
			return task_fail(
				e, TASK_ERR_BAD_REQUEST,
				"Control file name %s is not a valid "
				"ClientRequestToken: 1 to 63 characters "
				"matching %s",
				task_show(shown, sizeof(shown), ctl_token,
					  strlen(ctl_token)),
				PAT_TOKEN);
		if (s &&
		    (len != strlen(ctl_token) || memcmp(s, ctl_token, len)))
			return task_fail(
				e, TASK_ERR_BAD_REQUEST,
				"ClientRequestToken %s differs from the "
				"control file name, which is the token",
				task_show(shown, sizeof(shown), s, len));
		s = ctl_token;
		len = strlen(ctl_token);
	}
	if (!s)
		return 0;
	r->token = task_dupn(s, len);
	return r->token ? 0 : -ENOMEM;
}

static int parse_tag(struct verr *e, const json_t *t, size_t i,
		     struct task_tag *out)
{
	char field[64], where[32];
	const char *k, *v;
	size_t klen, vlen;
	int ret;

	snprintf(where, sizeof(where), "Tags[%zu]", i);
	if (task_want(e, t, JSON_OBJECT, "structure", where))
		return TASK_ERR_BAD_REQUEST;
	ret = task_check_members(e, t, tag_members, ARRAY_SIZE(tag_members),
				 where);
	if (ret)
		return ret;
	snprintf(field, sizeof(field), "%s.Key", where);
	ret = task_get_str(e, t, "Key", field, &k, &klen);
	if (!ret && !k)
		ret = task_missing(e, field);
	if (!ret)
		ret = task_check_str(e, field, k, klen, 1, 128, CLS_TAG,
				     PAT_TAG);
	if (ret)
		return ret;
	snprintf(field, sizeof(field), "%s.Value", where);
	ret = task_get_str(e, t, "Value", field, &v, &vlen);
	if (!ret && !v)
		ret = task_missing(e, field);
	if (!ret)
		ret = task_check_str(e, field, v, vlen, 0, 256, CLS_TAG,
				     PAT_TAG);
	if (ret)
		return ret;
	out->key = task_dupn(k, klen);
	out->value = task_dupn(v, vlen);
	return out->key && out->value ? 0 : -ENOMEM;
}

static int parse_tags(struct verr *e, const json_t *root,
		      struct task_request *r)
{
	json_t *a = task_member(root, "Tags"), *t;
	size_t i, j, n;

	if (!a)
		return 0;
	if (task_want(e, a, JSON_ARRAY, "list", "Tags"))
		return TASK_ERR_BAD_REQUEST;
	n = json_array_size(a);
	if (n < 1)
		return task_violation(e, "Tags", "with 0 items",
				      "Member must have length greater than or "
				      "equal to 1");
	if (n > 50)
		return task_too_many(e, "Tags", n, 50);
	r->tags = calloc(n, sizeof(*r->tags));
	if (!r->tags)
		return -ENOMEM;
	json_array_foreach(a, i, t)
	{
		int ret;

		r->ntags = i + 1;
		ret = parse_tag(e, t, i, &r->tags[i]);
		if (ret)
			return ret;
		for (j = 0; j < i; j++)
			if (!strcmp(r->tags[j].key, r->tags[i].key)) {
				char shown[160];

				return task_fail(
					e, TASK_ERR_BAD_REQUEST,
					"Tags[%zu].Key %s duplicates "
					"Tags[%zu].Key: tag keys must be "
					"unique",
					i,
					task_show(shown, sizeof(shown),
						  r->tags[i].key,
						  strlen(r->tags[i].key)),
					j);
			}
	}
	return 0;
}

static int parse_release(struct verr *e, const json_t *root,
			 struct task_request *r)
{
	json_t *rc = task_member(root, "ReleaseConfiguration"), *d;
	const char *s;
	long long x;
	size_t len;
	bool have;
	int ret;

	if (!rc)
		return 0;
	if (task_want(e, rc, JSON_OBJECT, "structure", "ReleaseConfiguration"))
		return TASK_ERR_BAD_REQUEST;
	ret = task_check_members(e, rc, relcfg_members,
				 ARRAY_SIZE(relcfg_members),
				 "ReleaseConfiguration");
	if (ret)
		return ret;
	r->have_release_cfg = true;
	d = task_member(rc, "DurationSinceLastAccess");
	if (!d)
		return 0;
	if (task_want(e, d, JSON_OBJECT, "structure",
		      "ReleaseConfiguration.DurationSinceLastAccess"))
		return TASK_ERR_BAD_REQUEST;
	ret = task_check_members(
		e, d, dsla_members, ARRAY_SIZE(dsla_members),
		"ReleaseConfiguration.DurationSinceLastAccess");
	if (ret)
		return ret;
	ret = task_get_str(e, d, "Unit",
			   "ReleaseConfiguration.DurationSinceLastAccess.Unit",
			   &s, &len);
	if (!ret && s)
		ret = task_check_enum(
			e, "ReleaseConfiguration.DurationSinceLastAccess.Unit",
			s, len, units, 1, NULL);
	if (ret)
		return ret;
	ret = task_get_int(e, d, "Value",
			   "ReleaseConfiguration.DurationSinceLastAccess.Value",
			   0, LLONG_MAX, &x, &have);
	if (ret)
		return ret;
	r->release_days = have ? (uint64_t)x : 0;
	return 0;
}

static int check_combination(struct verr *e, const struct task_request *r)
{
	const char *t = task_type_name(r->type);

	if (r->type == TASK_AUTO_RELEASE && !r->capacity_gib)
		return task_fail(e, TASK_ERR_BAD_REQUEST,
				 "CapacityToRelease is required for "
				 "AUTO_RELEASE_DATA tasks");
	if (r->type != TASK_AUTO_RELEASE && r->capacity_gib)
		return task_fail(e, TASK_ERR_BAD_REQUEST,
				 "CapacityToRelease is only valid for "
				 "AUTO_RELEASE_DATA tasks, not %s",
				 t);
	if (r->type != TASK_RELEASE && r->have_release_cfg)
		return task_fail(e, TASK_ERR_BAD_REQUEST,
				 "ReleaseConfiguration is only valid for "
				 "RELEASE_DATA_FROM_FILESYSTEM tasks, not %s",
				 t);
	return 0;
}

/* Is path ("s3://…") at or below s3://bucket/prefix? */
static bool in_repository(const char *path, const char *bucket,
			  const char *prefix)
{
	size_t b = strlen(bucket), p = strlen(prefix);
	const char *rest;

	if (strncmp(path, "s3://", 5) || strncmp(path + 5, bucket, b))
		return false;
	rest = path + 5 + b;
	if (!*rest)
		return p == 0;
	if (*rest++ != '/')
		return false;
	if (!strncmp(rest, prefix, p))
		return true;
	/* The prefix without its trailing '/' names the repository too. */
	return p && prefix[p - 1] == '/' && strlen(rest) == p - 1 &&
	       !strncmp(rest, prefix, p - 1);
}

static int check_mount(struct verr *e, const struct task_mount_info *mi,
		       struct task_request *r)
{
	char shown[160];

	if (!mi)
		return 0;
	if (!r->fsid && mi->fsid) {
		r->fsid = strdup(mi->fsid);
		if (!r->fsid)
			return -ENOMEM;
	}
	if (r->fsid && mi->fsid && strcmp(r->fsid, mi->fsid))
		return task_fail(e, TASK_ERR_FS_NOT_FOUND,
				 "File system '%s' does not exist.", r->fsid);
	if (r->report_enabled && mi->bucket &&
	    !in_repository(r->report_path, mi->bucket,
			   mi->prefix ? mi->prefix : ""))
		return task_fail(
			e, TASK_ERR_BAD_REQUEST,
			"Report.Path %s must be inside the linked data "
			"repository s3://%s/%s",
			task_show(shown, sizeof(shown), r->report_path,
				  strlen(r->report_path)),
			mi->bucket, mi->prefix ? mi->prefix : "");
	return 0;
}

int task_parse_request_fields(struct verr *e, const json_t *root,
			      enum task_source src, const char *ctl_token,
			      struct task_request *r)
{
	long long cap;
	bool have;
	int ret;

	ret = parse_type(e, root, r);
	if (!ret)
		ret = parse_paths(e, root, r);
	if (!ret)
		ret = parse_fsid(e, root, src, r);
	if (!ret)
		ret = parse_report(e, root, src, r);
	if (!ret)
		ret = parse_token(e, root, src, ctl_token, r);
	if (!ret)
		ret = parse_tags(e, root, r);
	if (!ret)
		ret = task_get_int(e, root, "CapacityToRelease",
				   "CapacityToRelease", 1, INT32_MAXV, &cap,
				   &have);
	if (!ret && have)
		r->capacity_gib = (uint64_t)cap;
	if (!ret)
		ret = parse_release(e, root, r);
	return ret;
}

int task_request_parse(const char *json, size_t len, enum task_source src,
		       const char *ctl_token, const struct task_mount_info *mi,
		       struct task_request *out, char *msg, size_t msglen)
{
	struct verr e = {msg, msglen};
	json_t *root;
	int ret;

	memset(out, 0, sizeof(*out));
	if (msg && msglen)
		msg[0] = '\0';
	ret = task_load_object(&e, json, len, &root);
	if (ret)
		return ret;
	ret = task_check_members(&e, root, create_members,
				 ARRAY_SIZE(create_members), "the request");
	if (!ret)
		ret = task_parse_request_fields(&e, root, src, ctl_token, out);
	if (!ret)
		ret = check_combination(&e, out);
	if (!ret)
		ret = check_mount(&e, mi, out);
	json_decref(root);
	if (ret == -ENOMEM)
		task_fail(&e, ret, "out of memory");
	if (ret)
		task_request_release(out);
	return ret;
}

void task_request_release(struct task_request *r)
{
	if (!r)
		return;
	task_free_str_list(r->paths, r->npaths);
	free(r->fsid);
	free(r->report_path);
	free(r->report_format);
	free(r->report_scope);
	free(r->token);
	for (size_t i = 0; r->tags && i < r->ntags; i++) {
		free(r->tags[i].key);
		free(r->tags[i].value);
	}
	free(r->tags);
	memset(r, 0, sizeof(*r));
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static const char *tag_value(const struct task_request *r, const char *key)
{
	for (size_t i = 0; i < r->ntags; i++)
		if (!strcmp(r->tags[i].key, key))
			return r->tags[i].value;
	return NULL;
}

bool task_request_equal(const struct task_request *a,
			const struct task_request *b)
{
	if (a->type != b->type || !a->paths != !b->paths ||
	    a->npaths != b->npaths || !str_eq(a->fsid, b->fsid) ||
	    a->report_enabled != b->report_enabled ||
	    !str_eq(a->report_path, b->report_path) ||
	    !str_eq(a->report_format, b->report_format) ||
	    !str_eq(a->report_scope, b->report_scope) ||
	    !str_eq(a->token, b->token) || a->ntags != b->ntags ||
	    a->capacity_gib != b->capacity_gib ||
	    a->have_release_cfg != b->have_release_cfg ||
	    a->release_days != b->release_days)
		return false;
	for (size_t i = 0; i < a->npaths; i++)
		if (strcmp(a->paths[i], b->paths[i]))
			return false;
	/* Keys are unique, so equal sizes and a ⊆ b mean equal sets. */
	for (size_t i = 0; i < a->ntags; i++)
		if (!str_eq(a->tags[i].value, tag_value(b, a->tags[i].key)))
			return false;
	return true;
}

/* ---- CancelDataRepositoryTask ---- */

int task_cancel_parse(const char *json, size_t len, char id[24], char *msg,
		      size_t msglen)
{
	static const char *const members[] = {"TaskId"};
	struct verr e = {msg, msglen};
	const char *s = NULL;
	json_t *root;
	size_t n = 0;
	int ret;

	id[0] = '\0';
	if (msg && msglen)
		msg[0] = '\0';
	ret = task_load_object(&e, json, len, &root);
	if (ret)
		return ret;
	ret = task_check_members(&e, root, members, 1, "the request");
	if (!ret)
		ret = task_get_str(&e, root, "TaskId", "TaskId", &s, &n);
	if (!ret && !s)
		ret = task_missing(&e, "TaskId");
	if (!ret)
		ret = task_check_task_id(&e, "TaskId", s, n);
	/* Well-formed but longer than the ids we make: no such task here. */
	if (!ret && n >= 24)
		ret = task_fail(&e, TASK_ERR_NOT_FOUND,
				"Data repository task %.128s does not exist.",
				s);
	if (!ret)
		memcpy(id, s, n + 1);
	json_decref(root);
	return ret;
}
