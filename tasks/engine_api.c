// SPDX-License-Identifier: MIT
/*
 * The task engine's requests: the FSx operations CreateDataRepositoryTask,
 * DescribeDataRepositoryTasks, CancelDataRepositoryTask and
 * DescribeFileSystems, answered with the FSx response JSON (or an FSx
 * error), and the by-name lookups of the .tidefs/tasks tree. Each holds
 * e->lock only while it reads or changes the task list; queued tasks are
 * run by the lanes in engine.c (see its DESIGN comment).
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "tasks/engine_i.h"

/* ---- the FSx operations ---- */

static int error_resp(int code, const char *msg, char **resp)
{
	*resp = task_error_json(code, msg);
	return *resp ? code : -ENOMEM;
}

static struct slot *find_name(struct task_engine *e, const char *name)
{
	for (size_t i = 0; i < e->nslots; i++)
		if (!strcmp(task_slot_name(e->slots[i]), name))
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
		ret = task_enqueue(e, &req, false, &s);
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
		if (!task_slot_find(e, q->task_ids[i])) {
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
	s = task_slot_find(e, id);
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
		task_slot_persist(e, s);
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
		v[i] = strdup(task_slot_name(e->slots[i]));
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
