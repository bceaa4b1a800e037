/* SPDX-License-Identifier: MIT */
/*
 * The validation helpers of the FSx request parsers (task.c,
 * task_describe.c) and the task JSON reader (task_json.c): AWS-worded
 * messages, typed access to jansson members, and strings checked by length
 * in code points and by character class (the Smithy patterns of the FSx
 * model, including the Unicode classes of the tag pattern). Declared in
 * task_check_i.h, private to tasks/. Pure functions; no I/O, no threads.
 */
#include "tasks/task_check_i.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "tasks/task_ucd_i.h"

#define PAT_TASKID "^(task-[0-9a-f]{17,})$"

/* ---- messages ---- */

static int vfail(struct verr *e, int code, const char *fmt, va_list ap)
{
	if (e && e->msg && e->len)
		vsnprintf(e->msg, e->len, fmt, ap);
	return code;
}

int task_fail(struct verr *e, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(e, code, fmt, ap);
	va_end(ap);
	return code;
}

/* "'value'" for a message: at most ~100 bytes (cut on a character
 * boundary, then "..."), control characters as '?'. */
const char *task_show(char *buf, size_t n, const char *s, size_t len)
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
int task_violation(struct verr *e, const char *field, const char *shown,
		   const char *fmt, ...)
{
	char rule[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rule, sizeof(rule), fmt, ap);
	va_end(ap);
	return task_fail(
		e, TASK_ERR_BAD_REQUEST,
		"1 validation error detected: Value %s at '%s' failed to "
		"satisfy constraint: %s",
		shown, field, rule);
}

int task_missing(struct verr *e, const char *field)
{
	return task_violation(e, field, "null", "Member must not be null");
}

int task_too_many(struct verr *e, const char *field, size_t n, size_t max)
{
	char shown[48];

	snprintf(shown, sizeof(shown), "with %zu items", n);
	return task_violation(
		e, field, shown,
		"Member must have length less than or equal to %zu", max);
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
json_t *task_member(const json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);

	return json_is_null(v) ? NULL : v;
}

int task_want(struct verr *e, const json_t *v, json_type type, const char *what,
	      const char *field)
{
	bool ok = json_typeof(v) == type ||
		  (type == JSON_TRUE && json_is_boolean(v));

	if (ok)
		return 0;
	return task_fail(e, TASK_ERR_BAD_REQUEST,
			 "Invalid type for parameter %s: expected %s, got %s",
			 field, what, jtype_name(v));
}

int task_check_members(struct verr *e, const json_t *obj,
		       const char *const *allowed, size_t n, const char *where)
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
			return task_fail(e, TASK_ERR_BAD_REQUEST,
					 "Unknown parameter %s in %s",
					 task_show(shown, sizeof(shown), key,
						   strlen(key)),
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
int task_load_object(struct verr *e, const char *json, size_t len, json_t **out)
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
		return task_fail(
			e, TASK_ERR_BAD_REQUEST,
			"Malformed request body: %s (line %d, column %d)",
			jerr.text, jerr.line, jerr.column);
	}
	if (!json_is_object(root)) {
		task_fail(e, TASK_ERR_BAD_REQUEST,
			  "Malformed request body: expected a JSON object, "
			  "got %s",
			  jtype_name(root));
		json_decref(root);
		return TASK_ERR_BAD_REQUEST;
	}
	*out = root;
	return 0;
}

/* ---- strings ---- */

/* Decode one code point of s[0..len); its length, 0 when invalid. */
size_t task_utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
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

bool task_is_alnum(uint32_t c)
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
		return task_is_alnum(c) || (c && strchr("_.-", (int)c));
	case CLS_TAG:
		if (c >= 0x80)
			return ucd_lnz(c);
		return task_is_alnum(c) || c == ' ' ||
		       (c && strchr("_.:/=+-@", (int)c));
	case CLS_FILTER:
		return task_is_alnum(c) || (c && strchr("*.\\/?-_", (int)c));
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
		size_t k = task_utf8_next(p + i, len - i, &c);

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
int task_check_str(struct verr *e, const char *field, const char *s, size_t len,
		   size_t min, size_t max, enum cls cls, const char *pattern)
{
	char shown[160];
	size_t n;
	bool ok = scan(s, len, cls, &n);

	task_show(shown, sizeof(shown), s, len);
	if (n < min)
		return task_violation(
			e, field, shown,
			"Member must have length greater than or equal to %zu",
			min);
	if (n > max)
		return task_violation(
			e, field, shown,
			"Member must have length less than or equal to %zu",
			max);
	if (!ok)
		return task_violation(e, field, shown,
				      "Member must satisfy regular expression "
				      "pattern: %s",
				      pattern);
	return 0;
}

/* prefix followed by at least min_hex lowercase hex digits, nothing else. */
bool task_hex_id(const char *s, size_t len, const char *prefix, size_t min_hex)
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

int task_check_id(struct verr *e, const char *field, const char *s, size_t len,
		  size_t min, size_t max, const char *prefix, size_t min_hex,
		  const char *pattern)
{
	char shown[160];

	task_show(shown, sizeof(shown), s, len);
	if (len < min)
		return task_violation(
			e, field, shown,
			"Member must have length greater than or equal to %zu",
			min);
	if (len > max)
		return task_violation(
			e, field, shown,
			"Member must have length less than or equal to %zu",
			max);
	if (!task_hex_id(s, len, prefix, min_hex))
		return task_violation(e, field, shown,
				      "Member must satisfy regular expression "
				      "pattern: %s",
				      pattern);
	return 0;
}

int task_check_enum(struct verr *e, const char *field, const char *s,
		    size_t len, const char *const *names, size_t n, size_t *idx)
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
	return task_violation(e, field, task_show(shown, sizeof(shown), s, len),
			      "Member must satisfy enum value set: [%s]", set);
}

/* The member as a string (JSON string or absent). */
int task_get_str(struct verr *e, const json_t *obj, const char *name,
		 const char *field, const char **s, size_t *len)
{
	json_t *v = task_member(obj, name);

	*s = NULL;
	*len = 0;
	if (!v)
		return 0;
	if (task_want(e, v, JSON_STRING, "string", field))
		return TASK_ERR_BAD_REQUEST;
	*s = json_string_value(v);
	*len = json_string_length(v);
	return 0;
}

int task_get_str_list(struct verr *e, const json_t *obj, const char *name,
		      size_t max, task_str_check_fn check, char ***out,
		      size_t *n)
{
	json_t *a = task_member(obj, name), *v;
	char field[64];
	size_t i, count;

	if (!a)
		return 0;
	if (task_want(e, a, JSON_ARRAY, "list", name))
		return TASK_ERR_BAD_REQUEST;
	count = json_array_size(a);
	if (count > max)
		return task_too_many(e, name, count, max);
	/* [] stays distinct from absent: one slot so it is never NULL. */
	*out = calloc(count ? count : 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	json_array_foreach(a, i, v)
	{
		int ret;

		snprintf(field, sizeof(field), "%s[%zu]", name, i);
		if (task_want(e, v, JSON_STRING, "string", field))
			return TASK_ERR_BAD_REQUEST;
		ret = check(e, field, json_string_value(v),
			    json_string_length(v));
		if (ret)
			return ret;
		(*out)[i] =
			task_dupn(json_string_value(v), json_string_length(v));
		if (!(*out)[i])
			return -ENOMEM;
		*n = i + 1;
	}
	return 0;
}

void task_free_str_list(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* The member as an integer within [min, max]; *have false when absent. */
int task_get_int(struct verr *e, const json_t *obj, const char *name,
		 const char *field, long long min, long long max,
		 long long *out, bool *have)
{
	json_t *v = task_member(obj, name);
	char shown[48];
	long long x;

	*have = false;
	if (!v)
		return 0;
	if (task_want(e, v, JSON_INTEGER, "integer", field))
		return TASK_ERR_BAD_REQUEST;
	x = json_integer_value(v);
	snprintf(shown, sizeof(shown), "'%lld'", x);
	if (x < min)
		return task_violation(
			e, field, shown,
			"Member must have value greater than or equal to %lld",
			min);
	if (x > max)
		return task_violation(
			e, field, shown,
			"Member must have value less than or equal to %lld",
			max);
	*out = x;
	*have = true;
	return 0;
}

char *task_dupn(const char *s, size_t len)
{
	char *d = malloc(len + 1);

	if (d) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

int task_check_task_id(struct verr *e, const char *field, const char *s,
		       size_t len)
{
	return task_check_id(e, field, s, len, 12, 128, "task-", 17,
			     PAT_TASKID);
}
