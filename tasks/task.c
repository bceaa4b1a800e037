/* SPDX-License-Identifier: MIT */
/*
 * The data repository task model: parsing and validating the FSx
 * CreateDataRepositoryTask, DescribeDataRepositoryTasks and
 * CancelDataRepositoryTask request bodies (docs/FSX-SEMANTICS.md), rendering
 * DataRepositoryTask objects (also the persisted form) and FSx error bodies.
 * Pure functions over JSON text (jansson); no I/O, no threads.
 *
 * Validation reports the first violation only, in the AWS wording ("1
 * validation error detected: Value 'x' at 'Field' failed to satisfy
 * constraint: …") with the field named as the request spells it, list
 * items 0-based as botocore does ("Tags[3].Key"). Lengths count code points
 * (Smithy's length trait). A JSON null member counts as absent.
 */
#include "tasks/task.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "tasks/task_ucd_i.h"

#define PAT_PATH    "^[^\\u0000\\u0085\\u2028\\u2029\\r\\n]{0,4096}$"
#define PAT_ARCHIVE "^[^\\u0000\\u0085\\u2028\\u2029\\r\\n]{3,4357}$"
#define PAT_FSID    "^(fs-[0-9a-f]{8,})$"
#define PAT_TOKEN   "^[A-Za-z0-9_.-]{0,63}$"
#define PAT_TAG	    "^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$"
#define PAT_TASKID  "^(task-[0-9a-f]{17,})$"
#define PAT_FILTER  "^[0-9a-zA-Z\\*\\.\\\\/\\?\\-\\_]*$"
#define PAT_BASE64                                                             \
	"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
#define INT32_MAXV   2147483647LL
#define GIB_SHIFT    30
#define DEFAULT_ACCT "000000000000"
#define DEFAULT_RGN  "us-east-1"

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

static const char *const life_names[] = {
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
	if ((unsigned)l >= ARRAY_SIZE(life_names))
		return NULL;
	return life_names[l];
}

int task_lifecycle_parse(const char *s, enum task_lifecycle *out)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(life_names); i++)
		if (!strcmp(s, life_names[i])) {
			*out = (enum task_lifecycle)i;
			return 0;
		}
	return -EINVAL;
}

/* ---- messages ---- */

struct verr {
	char *msg;
	size_t len;
};

static int vfail(struct verr *e, int code, const char *fmt, va_list ap)
{
	if (e && e->msg && e->len)
		vsnprintf(e->msg, e->len, fmt, ap);
	return code;
}

__attribute__((format(printf, 3, 4))) static int fail(struct verr *e, int code,
						      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(e, code, fmt, ap);
	va_end(ap);
	return code;
}

/* "'value'" for a message: at most ~100 bytes (cut on a character
 * boundary, then "..."), control characters as '?'. */
static const char *show(char *buf, size_t n, const char *s, size_t len)
{
	size_t i = 0, o = 0;

	if (!s)
		return "null";
	buf[o++] = '\'';
	while (i < len && o + 5 < n) {
		unsigned char c = (unsigned char)s[i];

		if (o > 100 && (c & 0xC0) != 0x80) {
			memcpy(buf + o, "...", 3);
			o += 3;
			i = len;
			break;
		}
		buf[o++] = c < 0x20 || c == 0x7F ? '?' : (char)c;
		i++;
	}
	buf[o++] = '\'';
	buf[o] = '\0';
	return buf;
}

/* "1 validation error detected: Value <shown> at '<field>' failed to
 * satisfy constraint: <rule>". */
__attribute__((format(printf, 4, 5))) static int violation(struct verr *e,
							   const char *field,
							   const char *shown,
							   const char *fmt, ...)
{
	char rule[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rule, sizeof(rule), fmt, ap);
	va_end(ap);
	return fail(e, TASK_ERR_BAD_REQUEST,
		    "1 validation error detected: Value %s at '%s' failed to "
		    "satisfy constraint: %s",
		    shown, field, rule);
}

static int missing(struct verr *e, const char *field)
{
	return violation(e, field, "null", "Member must not be null");
}

static int too_many(struct verr *e, const char *field, size_t n, size_t max)
{
	char shown[48];

	snprintf(shown, sizeof(shown), "with %zu items", n);
	return violation(e, field, shown,
			 "Member must have length less than or equal to %zu",
			 max);
}

/* ---- JSON access ---- */

static const char *jtype_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "number with a fraction or exponent";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_NULL:
		break;
	}
	return "null";
}

/* The member, or NULL when absent or null. */
static json_t *member(const json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);

	return json_is_null(v) ? NULL : v;
}

static int want(struct verr *e, const json_t *v, json_type type,
		const char *what, const char *field)
{
	bool ok = json_typeof(v) == type ||
		  (type == JSON_TRUE && json_is_boolean(v));

	if (ok)
		return 0;
	return fail(e, TASK_ERR_BAD_REQUEST,
		    "Invalid type for parameter %s: expected %s, got %s", field,
		    what, jtype_name(v));
}

static int check_members(struct verr *e, const json_t *obj,
			 const char *const *allowed, size_t n,
			 const char *where)
{
	const char *key;
	json_t *v;
	char shown[160];

	json_object_foreach((json_t *)obj, key, v)
	{
		size_t i;

		for (i = 0; i < n && strcmp(key, allowed[i]); i++)
			;
		if (i == n)
			return fail(
				e, TASK_ERR_BAD_REQUEST,
				"Unknown parameter %s in %s",
				show(shown, sizeof(shown), key, strlen(key)),
				where);
	}
	return 0;
}

static bool blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

/* Parse the body into an object; an empty body is {}. */
static int load_object(struct verr *e, const char *json, size_t len,
		       json_t **out)
{
	json_error_t jerr;
	json_t *root;

	*out = NULL;
	if (!json || blank(json, len)) {
		root = json_object();
		if (!root)
			return -ENOMEM;
		*out = root;
		return 0;
	}
	root = json_loadb(json, len,
			  JSON_DECODE_ANY | JSON_REJECT_DUPLICATES |
				  JSON_ALLOW_NUL,
			  &jerr);
	if (!root) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return -ENOMEM;
		return fail(e, TASK_ERR_BAD_REQUEST,
			    "Malformed request body: %s (line %d, column %d)",
			    jerr.text, jerr.line, jerr.column);
	}
	if (!json_is_object(root)) {
		fail(e, TASK_ERR_BAD_REQUEST,
		     "Malformed request body: expected a JSON object, got %s",
		     jtype_name(root));
		json_decref(root);
		return TASK_ERR_BAD_REQUEST;
	}
	*out = root;
	return 0;
}

/* ---- strings ---- */

/* Decode one code point of s[0..len); its length, 0 when invalid. */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c = s[0];
	size_t n, i;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF)
		n = 2, c &= 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3, c &= 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4, c &= 0x07;
	else
		return 0;
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && c < 0x800) ||
	    (n == 4 && (c < 0x10000 || c > 0x10FFFF)) ||
	    (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return n;
}

enum cls {
	CLS_PATH,   /* anything but NUL, CR, LF, U+0085, U+2028, U+2029 */
	CLS_TOKEN,  /* [A-Za-z0-9_.-] */
	CLS_TAG,    /* \p{L}\p{Z}\p{N} and _.:/=+-@ */
	CLS_FILTER, /* [0-9a-zA-Z*.\\/?_-] */
};

static bool is_alnum(uint32_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z');
}

static bool ucd_lnz(uint32_t c)
{
	size_t lo = 0, hi = ARRAY_SIZE(task_ucd_lnz);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c < task_ucd_lnz[mid].lo)
			hi = mid;
		else if (c > task_ucd_lnz[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

static bool cp_ok(enum cls cls, uint32_t c)
{
	switch (cls) {
	case CLS_PATH:
		return c != 0 && c != '\r' && c != '\n' && c != 0x85 &&
		       c != 0x2028 && c != 0x2029;
	case CLS_TOKEN:
		return is_alnum(c) || (c && strchr("_.-", (int)c));
	case CLS_TAG:
		if (c >= 0x80)
			return ucd_lnz(c);
		return is_alnum(c) || c == ' ' ||
		       (c && strchr("_.:/=+-@", (int)c));
	case CLS_FILTER:
		return is_alnum(c) || (c && strchr("*.\\/?-_", (int)c));
	}
	return false;
}

/* Count the code points of s; false when it is not UTF-8 or a character is
 * outside cls. */
static bool scan(const char *s, size_t len, enum cls cls, size_t *ncp)
{
	const unsigned char *p = (const unsigned char *)s;
	bool ok = true;
	size_t i = 0, n = 0;

	while (i < len) {
		uint32_t c;
		size_t k = utf8_next(p + i, len - i, &c);

		if (!k) {
			ok = false;
			k = 1;
		} else if (!cp_ok(cls, c)) {
			ok = false;
		}
		i += k;
		n++;
	}
	*ncp = n;
	return ok;
}

/* Length in code points within [min, max] and every character in cls. */
static int check_str(struct verr *e, const char *field, const char *s,
		     size_t len, size_t min, size_t max, enum cls cls,
		     const char *pattern)
{
	char shown[160];
	size_t n;
	bool ok = scan(s, len, cls, &n);

	show(shown, sizeof(shown), s, len);
	if (n < min)
		return violation(
			e, field, shown,
			"Member must have length greater than or equal to %zu",
			min);
	if (n > max)
		return violation(
			e, field, shown,
			"Member must have length less than or equal to %zu",
			max);
	if (!ok)
		return violation(e, field, shown,
				 "Member must satisfy regular expression "
				 "pattern: %s",
				 pattern);
	return 0;
}

/* prefix followed by at least min_hex lowercase hex digits, nothing else. */
static bool hex_id(const char *s, size_t len, const char *prefix,
		   size_t min_hex)
{
	size_t p = strlen(prefix);

	if (len < p + min_hex || memcmp(s, prefix, p))
		return false;
	for (size_t i = p; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static int check_id(struct verr *e, const char *field, const char *s,
		    size_t len, size_t min, size_t max, const char *prefix,
		    size_t min_hex, const char *pattern)
{
	char shown[160];

	show(shown, sizeof(shown), s, len);
	if (len < min)
		return violation(
			e, field, shown,
			"Member must have length greater than or equal to %zu",
			min);
	if (len > max)
		return violation(
			e, field, shown,
			"Member must have length less than or equal to %zu",
			max);
	if (!hex_id(s, len, prefix, min_hex))
		return violation(e, field, shown,
				 "Member must satisfy regular expression "
				 "pattern: %s",
				 pattern);
	return 0;
}

static int check_enum(struct verr *e, const char *field, const char *s,
		      size_t len, const char *const *names, size_t n,
		      size_t *idx)
{
	char shown[160], set[256] = "";
	size_t i, o = 0;

	for (i = 0; i < n; i++)
		if (strlen(names[i]) == len && !memcmp(s, names[i], len)) {
			if (idx)
				*idx = i;
			return 0;
		}
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(set + o,
				      o < sizeof(set) ? sizeof(set) - o : 0,
				      "%s%s", i ? ", " : "", names[i]);
	return violation(e, field, show(shown, sizeof(shown), s, len),
			 "Member must satisfy enum value set: [%s]", set);
}

/* The member as a string (JSON string or absent). */
static int get_str(struct verr *e, const json_t *obj, const char *name,
		   const char *field, const char **s, size_t *len)
{
	json_t *v = member(obj, name);

	*s = NULL;
	*len = 0;
	if (!v)
		return 0;
	if (want(e, v, JSON_STRING, "string", field))
		return TASK_ERR_BAD_REQUEST;
	*s = json_string_value(v);
	*len = json_string_length(v);
	return 0;
}

/* The member as an integer within [min, max]; *have false when absent. */
static int get_int(struct verr *e, const json_t *obj, const char *name,
		   const char *field, long long min, long long max,
		   long long *out, bool *have)
{
	json_t *v = member(obj, name);
	char shown[48];
	long long x;

	*have = false;
	if (!v)
		return 0;
	if (want(e, v, JSON_INTEGER, "integer", field))
		return TASK_ERR_BAD_REQUEST;
	x = json_integer_value(v);
	snprintf(shown, sizeof(shown), "'%lld'", x);
	if (x < min)
		return violation(
			e, field, shown,
			"Member must have value greater than or equal to %lld",
			min);
	if (x > max)
		return violation(
			e, field, shown,
			"Member must have value less than or equal to %lld",
			max);
	*out = x;
	*have = true;
	return 0;
}

static char *dupn(const char *s, size_t len)
{
	char *d = malloc(len + 1);

	if (d) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
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
	int ret = get_str(e, root, "Type", "Type", &s, &len);

	if (ret)
		return ret;
	if (!s)
		return missing(e, "Type");
	ret = check_enum(e, "Type", s, len, type_names, ARRAY_SIZE(type_names),
			 &idx);
	if (!ret)
		r->type = (enum task_type)idx;
	return ret;
}

static int parse_paths(struct verr *e, const json_t *root,
		       struct task_request *r)
{
	json_t *a = member(root, "Paths"), *v;
	char field[64];
	size_t i, n;

	if (!a)
		return 0;
	if (want(e, a, JSON_ARRAY, "list", "Paths"))
		return TASK_ERR_BAD_REQUEST;
	n = json_array_size(a);
	if (n > 100)
		return too_many(e, "Paths", n, 100);
	/* [] stays distinct from absent: one slot so it is never NULL. */
	r->paths = calloc(n ? n : 1, sizeof(*r->paths));
	if (!r->paths)
		return -ENOMEM;
	json_array_foreach(a, i, v)
	{
		int ret;

		snprintf(field, sizeof(field), "Paths[%zu]", i);
		if (want(e, v, JSON_STRING, "string", field))
			return TASK_ERR_BAD_REQUEST;
		ret = check_str(e, field, json_string_value(v),
				json_string_length(v), 0, 4096, CLS_PATH,
				PAT_PATH);
		if (ret)
			return ret;
		r->paths[i] = dupn(json_string_value(v), json_string_length(v));
		if (!r->paths[i])
			return -ENOMEM;
		r->npaths = i + 1;
	}
	return 0;
}

static int check_fsid(struct verr *e, const char *field, const char *s,
		      size_t len)
{
	return check_id(e, field, s, len, 11, 21, "fs-", 8, PAT_FSID);
}

static int parse_fsid(struct verr *e, const json_t *root, enum task_source src,
		      struct task_request *r)
{
	const char *s;
	size_t len;
	int ret = get_str(e, root, "FileSystemId", "FileSystemId", &s, &len);

	if (ret)
		return ret;
	if (!s)
		return src == TASK_SRC_API ? missing(e, "FileSystemId") : 0;
	ret = check_fsid(e, "FileSystemId", s, len);
	if (ret)
		return ret;
	r->fsid = dupn(s, len);
	return r->fsid ? 0 : -ENOMEM;
}

static int report_field(struct verr *e, const json_t *rep, const char *name,
			const char *field, const char *const *set, char **out)
{
	const char *s;
	size_t len;
	int ret = get_str(e, rep, name, field, &s, &len);

	if (ret || !s)
		return ret;
	if (set)
		ret = check_enum(e, field, s, len, set, 1, NULL);
	else
		ret = check_str(e, field, s, len, 3, 4357, CLS_PATH,
				PAT_ARCHIVE);
	if (ret)
		return ret;
	*out = dupn(s, len);
	return *out ? 0 : -ENOMEM;
}

static int parse_report(struct verr *e, const json_t *root,
			enum task_source src, struct task_request *r)
{
	json_t *rep = member(root, "Report"), *en;
	char *path = NULL, *fmt = NULL, *scope = NULL;
	int ret;

	if (!rep)
		return src == TASK_SRC_API ? missing(e, "Report") : 0;
	if (want(e, rep, JSON_OBJECT, "structure", "Report"))
		return TASK_ERR_BAD_REQUEST;
	ret = check_members(e, rep, report_members, ARRAY_SIZE(report_members),
			    "Report");
	if (ret)
		return ret;
	en = member(rep, "Enabled");
	if (!en)
		return missing(e, "Report.Enabled");
	if (want(e, en, JSON_TRUE, "boolean", "Report.Enabled"))
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
		ret = fail(e, TASK_ERR_BAD_REQUEST,
			   "Report.%s is required when Report.Enabled is true",
			   !path  ? "Path"
			   : !fmt ? "Format"
				  : "Scope");
		goto out;
	}
	if (strncmp(path, "s3://", 5)) {
		char shown[160];

		ret = fail(e, TASK_ERR_BAD_REQUEST,
			   "Report.Path %s must be an S3 URL "
			   "(s3://bucket/prefix) inside the linked data "
			   "repository",
			   show(shown, sizeof(shown), path, strlen(path)));
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
	return check_str(e, field, s, len, 1, 63, CLS_TOKEN, PAT_TOKEN);
}

static int parse_token(struct verr *e, const json_t *root, enum task_source src,
		       const char *ctl_token, struct task_request *r)
{
	const char *s;
	size_t len;
	int ret = get_str(e, root, "ClientRequestToken", "ClientRequestToken",
			  &s, &len);

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
			return fail(e, TASK_ERR_BAD_REQUEST,
				    "Control file name %s is not a valid "
				    "ClientRequestToken: 1 to 63 characters "
				    "matching %s",
				    show(shown, sizeof(shown), ctl_token,
					 strlen(ctl_token)),
				    PAT_TOKEN);
		if (s &&
		    (len != strlen(ctl_token) || memcmp(s, ctl_token, len)))
			return fail(e, TASK_ERR_BAD_REQUEST,
				    "ClientRequestToken %s differs from the "
				    "control file name, which is the token",
				    show(shown, sizeof(shown), s, len));
		s = ctl_token;
		len = strlen(ctl_token);
	}
	if (!s)
		return 0;
	r->token = dupn(s, len);
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
	if (want(e, t, JSON_OBJECT, "structure", where))
		return TASK_ERR_BAD_REQUEST;
	ret = check_members(e, t, tag_members, ARRAY_SIZE(tag_members), where);
	if (ret)
		return ret;
	snprintf(field, sizeof(field), "%s.Key", where);
	ret = get_str(e, t, "Key", field, &k, &klen);
	if (!ret && !k)
		ret = missing(e, field);
	if (!ret)
		ret = check_str(e, field, k, klen, 1, 128, CLS_TAG, PAT_TAG);
	if (ret)
		return ret;
	snprintf(field, sizeof(field), "%s.Value", where);
	ret = get_str(e, t, "Value", field, &v, &vlen);
	if (!ret && !v)
		ret = missing(e, field);
	if (!ret)
		ret = check_str(e, field, v, vlen, 0, 256, CLS_TAG, PAT_TAG);
	if (ret)
		return ret;
	out->key = dupn(k, klen);
	out->value = dupn(v, vlen);
	return out->key && out->value ? 0 : -ENOMEM;
}

static int parse_tags(struct verr *e, const json_t *root,
		      struct task_request *r)
{
	json_t *a = member(root, "Tags"), *t;
	size_t i, j, n;

	if (!a)
		return 0;
	if (want(e, a, JSON_ARRAY, "list", "Tags"))
		return TASK_ERR_BAD_REQUEST;
	n = json_array_size(a);
	if (n < 1)
		return violation(e, "Tags", "with 0 items",
				 "Member must have length greater than or "
				 "equal to 1");
	if (n > 50)
		return too_many(e, "Tags", n, 50);
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

				return fail(e, TASK_ERR_BAD_REQUEST,
					    "Tags[%zu].Key %s duplicates "
					    "Tags[%zu].Key: tag keys must be "
					    "unique",
					    i,
					    show(shown, sizeof(shown),
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
	json_t *rc = member(root, "ReleaseConfiguration"), *d;
	const char *s;
	long long x;
	size_t len;
	bool have;
	int ret;

	if (!rc)
		return 0;
	if (want(e, rc, JSON_OBJECT, "structure", "ReleaseConfiguration"))
		return TASK_ERR_BAD_REQUEST;
	ret = check_members(e, rc, relcfg_members, ARRAY_SIZE(relcfg_members),
			    "ReleaseConfiguration");
	if (ret)
		return ret;
	r->have_release_cfg = true;
	d = member(rc, "DurationSinceLastAccess");
	if (!d)
		return 0;
	if (want(e, d, JSON_OBJECT, "structure",
		 "ReleaseConfiguration.DurationSinceLastAccess"))
		return TASK_ERR_BAD_REQUEST;
	ret = check_members(e, d, dsla_members, ARRAY_SIZE(dsla_members),
			    "ReleaseConfiguration.DurationSinceLastAccess");
	if (ret)
		return ret;
	ret = get_str(e, d, "Unit",
		      "ReleaseConfiguration.DurationSinceLastAccess.Unit", &s,
		      &len);
	if (!ret && s)
		ret = check_enum(
			e, "ReleaseConfiguration.DurationSinceLastAccess.Unit",
			s, len, units, 1, NULL);
	if (ret)
		return ret;
	ret = get_int(e, d, "Value",
		      "ReleaseConfiguration.DurationSinceLastAccess.Value", 0,
		      LLONG_MAX, &x, &have);
	if (ret)
		return ret;
	r->release_days = have ? (uint64_t)x : 0;
	return 0;
}

static int check_combination(struct verr *e, const struct task_request *r)
{
	const char *t = task_type_name(r->type);

	if (r->type == TASK_AUTO_RELEASE && !r->capacity_gib)
		return fail(e, TASK_ERR_BAD_REQUEST,
			    "CapacityToRelease is required for "
			    "AUTO_RELEASE_DATA tasks");
	if (r->type != TASK_AUTO_RELEASE && r->capacity_gib)
		return fail(e, TASK_ERR_BAD_REQUEST,
			    "CapacityToRelease is only valid for "
			    "AUTO_RELEASE_DATA tasks, not %s",
			    t);
	if (r->type != TASK_RELEASE && r->have_release_cfg)
		return fail(e, TASK_ERR_BAD_REQUEST,
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
		return fail(e, TASK_ERR_FS_NOT_FOUND,
			    "File system '%s' does not exist.", r->fsid);
	if (r->report_enabled && mi->bucket &&
	    !in_repository(r->report_path, mi->bucket,
			   mi->prefix ? mi->prefix : ""))
		return fail(e, TASK_ERR_BAD_REQUEST,
			    "Report.Path %s must be inside the linked data "
			    "repository s3://%s/%s",
			    show(shown, sizeof(shown), r->report_path,
				 strlen(r->report_path)),
			    mi->bucket, mi->prefix ? mi->prefix : "");
	return 0;
}

static int parse_request_fields(struct verr *e, const json_t *root,
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
		ret = get_int(e, root, "CapacityToRelease", "CapacityToRelease",
			      1, INT32_MAXV, &cap, &have);
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
	ret = load_object(&e, json, len, &root);
	if (ret)
		return ret;
	ret = check_members(&e, root, create_members,
			    ARRAY_SIZE(create_members), "the request");
	if (!ret)
		ret = parse_request_fields(&e, root, src, ctl_token, out);
	if (!ret)
		ret = check_combination(&e, out);
	if (!ret)
		ret = check_mount(&e, mi, out);
	json_decref(root);
	if (ret == -ENOMEM)
		fail(&e, ret, "out of memory");
	if (ret)
		task_request_release(out);
	return ret;
}

void task_request_release(struct task_request *r)
{
	if (!r)
		return;
	for (size_t i = 0; r->paths && i < r->npaths; i++)
		free(r->paths[i]);
	free(r->paths);
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

/* ---- tasks ---- */

int task_make_id(char id[24])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[9];
	int ret = random_bytes(rnd, sizeof(rnd));

	if (ret)
		return ret;
	memcpy(id, "task-", 5);
	for (size_t i = 0; i < 17; i++)
		id[5 + i] = hex[(rnd[i / 2] >> (i % 2 ? 0 : 4)) & 0xF];
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
	c = dupn(s, len);
	if (!c)
		return NULL;
	while (i < len) {
		uint32_t cp;
		size_t k = utf8_next((unsigned char *)c + i, len - i, &cp);

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
	json_t *v = member(obj, name);

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
	json_t *st = member(o, "Status");
	uint64_t gib;

	if (!st)
		return 0;
	if (!json_is_object(st) || u64_from(st, "TotalCount", &t->total) ||
	    u64_from(st, "SucceededCount", &t->succeeded) ||
	    u64_from(st, "FailedCount", &t->failed) ||
	    u64_from(st, "ReleasedBytes", &t->released_bytes) ||
	    u64_from(st, "ReleasedCapacity", &gib) ||
	    time_from(member(st, "LastUpdatedTime"), &t->updated_ns))
		return -EINVAL;
	if (!member(st, "ReleasedBytes"))
		t->released_bytes = gib << GIB_SHIFT;
	return 0;
}

static int header_from(const json_t *o, struct task *t)
{
	const char *id = json_string_value(member(o, "TaskId"));
	const char *life = json_string_value(member(o, "Lifecycle"));
	json_t *fd = member(o, "FailureDetails"), *au = member(o, "Automatic");

	if (!id || strlen(id) >= sizeof(t->id) ||
	    !hex_id(id, strlen(id), "task-", 17) || !life ||
	    task_lifecycle_parse(life, &t->life))
		return -EINVAL;
	strcpy(t->id, id);
	if (time_from(member(o, "CreationTime"), &t->creation_ns) ||
	    time_from(member(o, "StartTime"), &t->start_ns) ||
	    time_from(member(o, "EndTime"), &t->end_ns) || status_from(o, t) ||
	    (au && !json_is_boolean(au)))
		return -EINVAL;
	t->automatic = json_is_true(au);
	if (fd) {
		const char *m = json_string_value(member(fd, "Message"));

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
		ret = parse_request_fields(NULL, o, TASK_SRC_CTL, NULL,
					   &out->req);
	json_decref(o);
	if (ret && ret != -ENOMEM)
		ret = -EINVAL;
	if (ret)
		task_release(out);
	return ret;
}

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

static int check_task_id(struct verr *e, const char *field, const char *s,
			 size_t len)
{
	return check_id(e, field, s, len, 12, 128, "task-", 17, PAT_TASKID);
}

static int parse_task_ids(struct verr *e, const json_t *root,
			  struct task_describe_request *r)
{
	json_t *a = member(root, "TaskIds"), *v;
	char field[64];
	size_t i, n;

	if (!a)
		return 0;
	if (want(e, a, JSON_ARRAY, "list", "TaskIds"))
		return TASK_ERR_BAD_REQUEST;
	n = json_array_size(a);
	if (n > 50)
		return too_many(e, "TaskIds", n, 50);
	r->task_ids = calloc(n ? n : 1, sizeof(*r->task_ids));
	if (!r->task_ids)
		return -ENOMEM;
	json_array_foreach(a, i, v)
	{
		snprintf(field, sizeof(field), "TaskIds[%zu]", i);
		if (want(e, v, JSON_STRING, "string", field) ||
		    check_task_id(e, field, json_string_value(v),
				  json_string_length(v)))
			return TASK_ERR_BAD_REQUEST;
		r->task_ids[i] = strdup(json_string_value(v));
		if (!r->task_ids[i])
			return -ENOMEM;
		r->ntask_ids = i + 1;
	}
	return 0;
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
		if (want(e, v, JSON_STRING, "string", field) ||
		    check_str(e, field, s, len, 1, 128, CLS_FILTER, PAT_FILTER))
			return TASK_ERR_BAD_REQUEST;
		if (which == 0) {
			r->fs_ids[i] = strdup(s);
			if (!r->fs_ids[i])
				return -ENOMEM;
			r->nfs_ids = i + 1;
		} else if (which == 1) {
			if (check_enum(e, field, s, len, life_names,
				       ARRAY_SIZE(life_names), NULL))
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
	if (want(e, f, JSON_OBJECT, "structure", where))
		return TASK_ERR_BAD_REQUEST;
	ret = check_members(e, f, filter_members, ARRAY_SIZE(filter_members),
			    where);
	if (ret)
		return ret;
	snprintf(field, sizeof(field), "%s.Name", where);
	ret = get_str(e, f, "Name", field, &name, &len);
	if (!ret && !name)
		ret = missing(e, field);
	if (!ret)
		ret = check_enum(e, field, name, len, filter_names,
				 ARRAY_SIZE(filter_names), &which);
	if (ret)
		return ret;
	if (*seen & (1u << which))
		return fail(e, TASK_ERR_BAD_REQUEST,
			    "%s: filter '%s' is given more than once; list "
			    "all its values in one filter",
			    where, name);
	*seen |= 1u << which;
	snprintf(field, sizeof(field), "%s.Values", where);
	vals = member(f, "Values");
	if (!vals)
		return missing(e, field);
	if (want(e, vals, JSON_ARRAY, "list", field))
		return TASK_ERR_BAD_REQUEST;
	if (json_array_size(vals) < 1)
		return violation(e, field, "with 0 items",
				 "Member must have length greater than or "
				 "equal to 1");
	if (json_array_size(vals) > 20)
		return too_many(e, field, json_array_size(vals), 20);
	if (which >= 2)
		r->other_filter = true;
	return parse_filter_values(e, vals, fi, which, r);
}

static int parse_filters(struct verr *e, const json_t *root,
			 struct task_describe_request *r)
{
	json_t *a = member(root, "Filters"), *f;
	unsigned seen = 0;
	size_t i;

	if (!a)
		return 0;
	if (want(e, a, JSON_ARRAY, "list", "Filters"))
		return TASK_ERR_BAD_REQUEST;
	if (json_array_size(a) > 3)
		return too_many(e, "Filters", json_array_size(a), 3);
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
	int ret = get_str(e, root, "NextToken", "NextToken", &s, &len);

	if (ret || !s)
		return ret;
	ret = check_str(e, "NextToken", s, len, 1, 255, CLS_PATH, PAT_BASE64);
	if (ret)
		return ret;
	if (len >= 1 && s[len - 1] == '=')
		pad = len >= 2 && s[len - 2] == '=' ? 2 : 1;
	for (i = 0; i < len - pad; i++)
		if (!is_alnum((unsigned char)s[i]) && s[i] != '+' &&
		    s[i] != '/')
			break;
	if (len % 4 || i < len - pad)
		return violation(e, "NextToken",
				 show(shown, sizeof(shown), s, len),
				 "Member must satisfy regular expression "
				 "pattern: %s",
				 PAT_BASE64);
	r->next_token = dupn(s, len);
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
	ret = load_object(&e, json, len, &root);
	if (ret)
		return ret;
	ret = check_members(&e, root, describe_members,
			    ARRAY_SIZE(describe_members), "the request");
	if (!ret)
		ret = parse_task_ids(&e, root, out);
	if (!ret)
		ret = parse_filters(&e, root, out);
	if (!ret)
		ret = get_int(&e, root, "MaxResults", "MaxResults", 1,
			      INT32_MAXV, &mr, &have);
	if (!ret && have)
		out->max_results = (uint32_t)mr;
	if (!ret)
		ret = parse_next_token(&e, root, out);
	json_decref(root);
	if (ret == -ENOMEM)
		fail(&e, ret, "out of memory");
	if (ret)
		task_describe_release(out);
	return ret;
}

void task_describe_release(struct task_describe_request *r)
{
	if (!r)
		return;
	for (size_t i = 0; r->task_ids && i < r->ntask_ids; i++)
		free(r->task_ids[i]);
	free(r->task_ids);
	for (size_t i = 0; r->fs_ids && i < r->nfs_ids; i++)
		free(r->fs_ids[i]);
	free(r->fs_ids);
	free(r->lifecycles);
	free(r->next_token);
	memset(r, 0, sizeof(*r));
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
	ret = load_object(&e, json, len, &root);
	if (ret)
		return ret;
	ret = check_members(&e, root, members, 1, "the request");
	if (!ret)
		ret = get_str(&e, root, "TaskId", "TaskId", &s, &n);
	if (!ret && !s)
		ret = missing(&e, "TaskId");
	if (!ret)
		ret = check_task_id(&e, "TaskId", s, n);
	/* Well-formed but longer than the ids we make: no such task here. */
	if (!ret && n >= 24)
		ret = fail(&e, TASK_ERR_NOT_FOUND,
			   "Data repository task %.128s does not exist.", s);
	if (!ret)
		memcpy(id, s, n + 1);
	json_decref(root);
	return ret;
}
