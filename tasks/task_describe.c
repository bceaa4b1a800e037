/* SPDX-License-Identifier: MIT */
/*
 * Parsing and validating the FSx DescribeDataRepositoryTasks request body
 * (tasks/task.h: task_describe_parse): TaskIds, Filters, MaxResults,
 * NextToken, with the messages and rules of task.c (docs/FSX-SEMANTICS.md).
 * Pure functions over JSON text (jansson); no I/O, no threads.
 */
#include "tasks/task.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "tasks/task_check_i.h"

#define PAT_FILTER "^[0-9a-zA-Z\\*\\.\\\\/\\?\\-\\_]*$"
#define PAT_BASE64                                                             \
	"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"

/* ---- DescribeDataRepositoryTasks ---- */

static const char *const describe_members[] = {"TaskIds", "Filters",
					       "MaxResults", "NextToken"};
static const char *const filter_members[] = {"Name", "Values"};
static const char *const filter_names[] = {
	"file-system-id",
	"task-lifecycle",
	"data-repository-association-id",
	"file-cache-id",
};

static int parse_task_ids(struct verr *e, const json_t *root,
			  struct task_describe_request *r)
{
	return task_get_str_list(e, root, "TaskIds", 50, task_check_task_id,
				 &r->task_ids, &r->ntask_ids);
}

/* One filter's values: into fs_ids / lifecycles, or only checked. */
static int parse_filter_values(struct verr *e, const json_t *vals, size_t fi,
			       size_t which, struct task_describe_request *r)
{
	char field[64];
	json_t *v;
	size_t i, n = json_array_size(vals);

	if (which == 0) {
		r->fs_ids = calloc(n, sizeof(*r->fs_ids));
		if (!r->fs_ids)
			return -ENOMEM;
	} else if (which == 1) {
		r->lifecycles = calloc(n, sizeof(*r->lifecycles));
		if (!r->lifecycles)
			return -ENOMEM;
	}
	json_array_foreach(vals, i, v)
	{
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);

		snprintf(field, sizeof(field), "Filters[%zu].Values[%zu]", fi,
			 i);
		if (task_want(e, v, JSON_STRING, "string", field) ||
		    task_check_str(e, field, s, len, 1, 128, CLS_FILTER,
				   PAT_FILTER))
			return TASK_ERR_BAD_REQUEST;
		if (which == 0) {
			r->fs_ids[i] = strdup(s);
			if (!r->fs_ids[i])
				return -ENOMEM;
			r->nfs_ids = i + 1;
		} else if (which == 1) {
			if (task_check_enum(
				    e, field, s, len, task_lifecycle_names,
				    ARRAY_SIZE(task_lifecycle_names), NULL))
				return TASK_ERR_BAD_REQUEST;
			task_lifecycle_parse(s, &r->lifecycles[i]);
			r->nlifecycles = i + 1;
		}
	}
	return 0;
}

static int parse_filter(struct verr *e, const json_t *f, size_t fi,
			unsigned *seen, struct task_describe_request *r)
{
	char where[32], field[64];
	const char *name;
	size_t len, which;
	json_t *vals;
	int ret;

	snprintf(where, sizeof(where), "Filters[%zu]", fi);
	if (task_want(e, f, JSON_OBJECT, "structure", where))
		return TASK_ERR_BAD_REQUEST;
	ret = task_check_members(e, f, filter_members,
				 ARRAY_SIZE(filter_members), where);
	if (ret)
		return ret;
	snprintf(field, sizeof(field), "%s.Name", where);
	ret = task_get_str(e, f, "Name", field, &name, &len);
	if (!ret && !name)
		ret = task_missing(e, field);
	if (!ret)
		ret = task_check_enum(e, field, name, len, filter_names,
				      ARRAY_SIZE(filter_names), &which);
	if (ret)
		return ret;
	if (*seen & (1u << which))
		return task_fail(
			e, TASK_ERR_BAD_REQUEST,
			"%s: filter '%s' is given more than once; list "
			"all its values in one filter",
			where, name);
	*seen |= 1u << which;
	snprintf(field, sizeof(field), "%s.Values", where);
	vals = task_member(f, "Values");
	if (!vals)
		return task_missing(e, field);
	if (task_want(e, vals, JSON_ARRAY, "list", field))
		return TASK_ERR_BAD_REQUEST;
	if (json_array_size(vals) < 1)
		return task_violation(e, field, "with 0 items",
				      "Member must have length greater than or "
				      "equal to 1");
	if (json_array_size(vals) > 20)
		return task_too_many(e, field, json_array_size(vals), 20);
	if (which >= 2)
		r->other_filter = true;
	return parse_filter_values(e, vals, fi, which, r);
}

static int parse_filters(struct verr *e, const json_t *root,
			 struct task_describe_request *r)
{
	json_t *a = task_member(root, "Filters"), *f;
	unsigned seen = 0;
	size_t i;

	if (!a)
		return 0;
	if (task_want(e, a, JSON_ARRAY, "list", "Filters"))
		return TASK_ERR_BAD_REQUEST;
	if (json_array_size(a) > 3)
		return task_too_many(e, "Filters", json_array_size(a), 3);
	json_array_foreach(a, i, f)
	{
		int ret = parse_filter(e, f, i, &seen, r);

		if (ret)
			return ret;
	}
	return 0;
}

static int parse_next_token(struct verr *e, const json_t *root,
			    struct task_describe_request *r)
{
	const char *s;
	char shown[160];
	size_t len, i, pad = 0;
	int ret = task_get_str(e, root, "NextToken", "NextToken", &s, &len);

	if (ret || !s)
		return ret;
	ret = task_check_str(e, "NextToken", s, len, 1, 255, CLS_PATH,
			     PAT_BASE64);
	if (ret)
		return ret;
	if (len >= 1 && s[len - 1] == '=')
		pad = len >= 2 && s[len - 2] == '=' ? 2 : 1;
	for (i = 0; i < len - pad; i++)
		if (!task_is_alnum((unsigned char)s[i]) && s[i] != '+' &&
		    s[i] != '/')
			break;
	if (len % 4 || i < len - pad)
		return task_violation(e, "NextToken",
				      task_show(shown, sizeof(shown), s, len),
				      "Member must satisfy regular expression "
				      "pattern: %s",
				      PAT_BASE64);
	r->next_token = task_dupn(s, len);
	return r->next_token ? 0 : -ENOMEM;
}

int task_describe_parse(const char *json, size_t len,
			struct task_describe_request *out, char *msg,
			size_t msglen)
{
	struct verr e = {msg, msglen};
	json_t *root;
	long long mr;
	bool have;
	int ret;

	memset(out, 0, sizeof(*out));
	if (msg && msglen)
		msg[0] = '\0';
	ret = task_load_object(&e, json, len, &root);
	if (ret)
		return ret;
	ret = task_check_members(&e, root, describe_members,
				 ARRAY_SIZE(describe_members), "the request");
	if (!ret)
		ret = parse_task_ids(&e, root, out);
	if (!ret)
		ret = parse_filters(&e, root, out);
	if (!ret)
		ret = task_get_int(&e, root, "MaxResults", "MaxResults", 1,
				   INT32_MAXV, &mr, &have);
	if (!ret && have)
		out->max_results = (uint32_t)mr;
	if (!ret)
		ret = parse_next_token(&e, root, out);
	json_decref(root);
	if (ret == -ENOMEM)
		task_fail(&e, ret, "out of memory");
	if (ret)
		task_describe_release(out);
	return ret;
}

void task_describe_release(struct task_describe_request *r)
{
	if (!r)
		return;
	task_free_str_list(r->task_ids, r->ntask_ids);
	task_free_str_list(r->fs_ids, r->nfs_ids);
	free(r->lifecycles);
	free(r->next_token);
	memset(r, 0, sizeof(*r));
}
