// SPDX-License-Identifier: MIT
/*
 * The pure part of tidectl: task type spellings, ClientRequestTokens, the
 * CreateDataRepositoryTask request JSON, lifecycles and the "safe to
 * unmount" verdict. No I/O except random bytes for a fresh token.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli/cli.h"
#include "common/common.h"

void cli_err_set(struct cli_err *e, const char *type, const char *fmt, ...)
{
	va_list ap;

	snprintf(e->type, sizeof(e->type), "%s", type ? type : "");
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

static const struct {
	const char *alias;
	const char *name;
} type_names[] = {
	{"export", "EXPORT_TO_REPOSITORY"},
	{"import", "IMPORT_METADATA_FROM_REPOSITORY"},
	{"release", "RELEASE_DATA_FROM_FILESYSTEM"},
	{"auto_release", "AUTO_RELEASE_DATA"},
};

const char *cli_parse_type(const char *s)
{
	char norm[64];
	size_t n = strlen(s);

	if (n == 0 || n >= sizeof(norm))
		return NULL;
	for (size_t i = 0; i <= n; i++)
		norm[i] = s[i] == '-' ? '_' : s[i];
	for (size_t i = 0; i < ARRAY_SIZE(type_names); i++)
		if (!strcasecmp(norm, type_names[i].alias) ||
		    !strcasecmp(norm, type_names[i].name))
			return type_names[i].name;
	return NULL;
}

bool cli_token_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 63 || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '_' && c != '.' && c != '-')
			return false;
	}
	return true;
}

int cli_make_token(char *buf, size_t len)
{
	unsigned char rnd[4];
	time_t now = time(NULL);
	struct tm tm;
	char stamp[32];
	int ret = random_bytes(rnd, sizeof(rnd));

	if (ret < 0)
		return ret;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if ((size_t)snprintf(buf, len, "tidectl-%s-%02x%02x%02x%02x", stamp,
			     rnd[0], rnd[1], rnd[2], rnd[3]) >= len)
		return -ENAMETOOLONG;
	return 0;
}

static int add_paths(json_t *req, const char **paths, size_t n)
{
	json_t *arr = json_array();

	if (!arr || json_object_set_new(req, "Paths", arr) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(arr, json_string(paths[i])) < 0)
			return -ENOMEM;
	return 0;
}

static int add_release_days(json_t *req, uint64_t days)
{
	json_t *cfg = json_pack("{s:{s:s,s:I}}", "DurationSinceLastAccess",
				"Unit", "DAYS", "Value", (json_int_t)days);

	if (!cfg || json_object_set_new(req, "ReleaseConfiguration", cfg) < 0)
		return -ENOMEM;
	return 0;
}

static int add_report(json_t *req, const char *path)
{
	json_t *rep = json_pack("{s:b,s:s,s:s,s:s}", "Enabled", 1, "Path", path,
				"Format", "REPORT_CSV_20191124", "Scope",
				"FAILED_FILES_ONLY");

	if (!rep || json_object_set_new(req, "Report", rep) < 0)
		return -ENOMEM;
	return 0;
}

json_t *cli_build_request(const struct cli_create *c)
{
	json_t *req = json_pack("{s:s}", "Type", c->type);
	int ret = req ? 0 : -ENOMEM;

	if (!ret && c->npaths)
		ret = add_paths(req, c->paths, c->npaths);
	if (!ret && c->have_capacity)
		ret = json_object_set_new(
			      req, "CapacityToRelease",
			      json_integer((json_int_t)c->capacity_gib))
			      ? -ENOMEM
			      : 0;
	if (!ret && c->have_days)
		ret = add_release_days(req, c->release_days);
	if (!ret && c->report_path)
		ret = add_report(req, c->report_path);
	if (ret) {
		json_decref(req);
		return NULL;
	}
	return req;
}

bool cli_lifecycle_final(const char *l)
{
	return !strcmp(l, "SUCCEEDED") || !strcmp(l, "FAILED") ||
	       !strcmp(l, "CANCELED");
}

int64_t cli_json_int(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	if (!v) {
		const json_t *st = json_object_get(obj, "Status");
		v = st ? json_object_get(st, key) : NULL;
	}
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	return 0;
}

const char *cli_json_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : "";
}

void cli_stats_add_safety(json_t *stats)
{
	json_t *states = json_object_get(stats, "states");
	int64_t files;

	if (json_object_get(stats, "unexported_files")) {
		files = cli_json_int(stats, "unexported_files");
	} else {
		files = cli_json_int(states, "new") +
			cli_json_int(states, "dirty");
		json_object_set_new(stats, "unexported_files",
				    json_integer((json_int_t)files));
	}
	json_object_set_new(stats, "safe_to_unmount", json_boolean(files == 0));
}
