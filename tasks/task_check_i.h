/* SPDX-License-Identifier: MIT */
/*
 * Private to tasks/ (not installed; tasks/tasks.h stays the module's one
 * public header): the validation helpers shared by the FSx request parsers
 * (task.c: CreateDataRepositoryTask and CancelDataRepositoryTask;
 * task_describe.c: DescribeDataRepositoryTasks) and the task JSON reader
 * (task_json.c). They live in task_check.c.
 *
 * Every check returns 0, or TASK_ERR_BAD_REQUEST (or the code it was given)
 * with the AWS-worded message written into the struct verr, which may be
 * NULL (then nothing is written). Lengths count code points.
 */
#ifndef TIDEFS_TASK_CHECK_I_H
#define TIDEFS_TASK_CHECK_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "tasks/task.h"

/* The largest Integer of the FSx API. */
#define INT32_MAXV 2147483647LL

/* Where a validation message goes: msg[len], or nowhere. */
struct verr {
	char *msg;
	size_t len;
};

/* The names of enum task_lifecycle, indexed by it (task.c). */
extern const char *const task_lifecycle_names[TASK_CANCELING + 1];

/* Parse a CreateDataRepositoryTask body's members into r (task.c), without
 * the cross-field and mount rules; also rebuilds a stored task's request. */
int task_parse_request_fields(struct verr *e, const json_t *root,
			      enum task_source src, const char *ctl_token,
			      struct task_request *r);

/* ---- messages ---- */

/* Write the message, return code. */
__attribute__((format(printf, 3, 4))) int task_fail(struct verr *e, int code,
						    const char *fmt, ...);
/* "'value'" for a message in buf[n] (n ≥ ~110): at most ~100 bytes, control
 * characters as '?'; "null" for NULL. Returns buf or a literal. */
const char *task_show(char *buf, size_t n, const char *s, size_t len);
/* "1 validation error detected: Value <shown> at '<field>' failed to
 * satisfy constraint: <rule>"; TASK_ERR_BAD_REQUEST. */
__attribute__((format(printf, 4, 5))) int task_violation(struct verr *e,
							 const char *field,
							 const char *shown,
							 const char *fmt, ...);
/* "Member must not be null". */
int task_missing(struct verr *e, const char *field);
/* "Member must have length less than or equal to max" for a list of n. */
int task_too_many(struct verr *e, const char *field, size_t n, size_t max);

/* ---- JSON access ---- */

/* The member, or NULL when absent or null (borrowed). */
json_t *task_member(const json_t *obj, const char *name);
/* v has the JSON type (JSON_TRUE: any boolean); what names it for the
 * message ("string", "list", "structure", …). */
int task_want(struct verr *e, const json_t *v, json_type type, const char *what,
	      const char *field);
/* Every member of obj is one of allowed[n]; where names obj. */
int task_check_members(struct verr *e, const json_t *obj,
		       const char *const *allowed, size_t n, const char *where);
/* Parse a request body into a new object (*out, caller decrefs); an empty
 * body is {}. -ENOMEM, or TASK_ERR_BAD_REQUEST for bad JSON or a
 * non-object. */
int task_load_object(struct verr *e, const char *json, size_t len,
		     json_t **out);

/* ---- strings ---- */

/* Character classes of the request patterns. */
enum cls {
	CLS_PATH,   /* anything but NUL, CR, LF, U+0085, U+2028, U+2029 */
	CLS_TOKEN,  /* [A-Za-z0-9_.-] */
	CLS_TAG,    /* \p{L}\p{Z}\p{N} and _.:/=+-@ */
	CLS_FILTER, /* [0-9a-zA-Z*.\\/?_-] */
};

/* Decode one code point of s[0..len); its length, 0 when invalid. */
size_t task_utf8_next(const unsigned char *s, size_t len, uint32_t *cp);
/* [0-9A-Za-z] */
bool task_is_alnum(uint32_t c);
/* Length in code points within [min, max] and every character in cls;
 * pattern is what the message quotes. */
int task_check_str(struct verr *e, const char *field, const char *s, size_t len,
		   size_t min, size_t max, enum cls cls, const char *pattern);
/* prefix followed by at least min_hex lowercase hex digits, nothing else. */
bool task_hex_id(const char *s, size_t len, const char *prefix, size_t min_hex);
/* Length in bytes within [min, max], then task_hex_id(). */
int task_check_id(struct verr *e, const char *field, const char *s, size_t len,
		  size_t min, size_t max, const char *prefix, size_t min_hex,
		  const char *pattern);
/* A TaskId: "task-" and 17 or more hex digits, 12 to 128 bytes. */
int task_check_task_id(struct verr *e, const char *field, const char *s,
		       size_t len);
/* s is one of names[n]; its index in *idx (idx may be NULL). */
int task_check_enum(struct verr *e, const char *field, const char *s,
		    size_t len, const char *const *names, size_t n,
		    size_t *idx);
/* The member as a string (borrowed; *s NULL when absent). */
int task_get_str(struct verr *e, const json_t *obj, const char *name,
		 const char *field, const char **s, size_t *len);
/* The member as an integer within [min, max]; *have false when absent. */
int task_get_int(struct verr *e, const json_t *obj, const char *name,
		 const char *field, long long min, long long max,
		 long long *out, bool *have);
/* s[0..len) as a malloc'ed string; NULL on ENOMEM. */
char *task_dupn(const char *s, size_t len);
/* Checks one string of a list (field names it: "Paths[3]"). */
typedef int (*task_str_check_fn)(struct verr *e, const char *field,
				 const char *s, size_t len);
/* The member as a list of at most max strings, each passing check, copied
 * into *out (malloc'ed array of malloc'ed strings, *n of them). Absent
 * leaves *out NULL; [] gives a non-NULL empty array. On an error what was
 * copied so far stays in *out and *n, for the caller's usual cleanup. */
int task_get_str_list(struct verr *e, const json_t *obj, const char *name,
		      size_t max, task_str_check_fn check, char ***out,
		      size_t *n);
/* Free what task_get_str_list() made (v may be NULL). */
void task_free_str_list(char **v, size_t n);

#endif
