// SPDX-License-Identifier: MIT
/*
 * tidectl --human: readable tables of tasks, stats and file states, and the
 * progress line --wait draws on a terminal. JSON stays the default output;
 * nothing here is meant to be parsed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/common.h"

char *cli_format_time(double epoch, char *buf, size_t len)
{
	time_t t = (time_t)epoch;
	struct tm tm;

	if (epoch <= 0 || !localtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "-");
	return buf;
}

static const char *short_type(const char *type)
{
	static const char *const names[][2] = {
		{"EXPORT_TO_REPOSITORY", "export"},
		{"IMPORT_METADATA_FROM_REPOSITORY", "import"},
		{"RELEASE_DATA_FROM_FILESYSTEM", "release"},
		{"AUTO_RELEASE_DATA", "auto-release"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strcmp(type, names[i][0]))
			return names[i][1];
	return type;
}

static double json_time(const json_t *t, const char *key)
{
	return json_number_value(json_object_get(t, key));
}

static int name_width(const json_t *tasks)
{
	size_t i, w = 4;
	json_t *t;

	json_array_foreach(tasks, i, t)
	{
		size_t l = strlen(cli_json_str(t, "Name"));
		w = MAX(w, l);
	}
	return (int)w;
}

void cli_human_tasks(FILE *f, const json_t *tasks)
{
	int w = name_width(tasks);
	size_t i;
	json_t *t;
	char created[32];

	fprintf(f, "%-*s  %-22s  %-12s  %-9s  %8s  %8s  %8s  %s\n", w, "NAME",
		"TASK ID", "TYPE", "LIFECYCLE", "TOTAL", "OK", "FAILED",
		"CREATED");
	json_array_foreach(tasks, i, t)
	{
		fprintf(f,
			"%-*s  %-22s  %-12s  %-9s  %8" PRId64 "  %8" PRId64
			"  %8" PRId64 "  %s%s\n",
			w, cli_json_str(t, "Name"), cli_json_str(t, "TaskId"),
			short_type(cli_json_str(t, "Type")),
			cli_json_str(t, "Lifecycle"),
			cli_json_int(t, "TotalCount"),
			cli_json_int(t, "SucceededCount"),
			cli_json_int(t, "FailedCount"),
			cli_format_time(json_time(t, "CreationTime"), created,
					sizeof(created)),
			json_is_true(json_object_get(t, "Automatic"))
				? "  (automatic)"
				: "");
	}
}

static void print_paths(FILE *f, const json_t *task)
{
	const json_t *paths = json_object_get(task, "Paths");
	size_t i;
	json_t *p;

	fprintf(f, "%-16s", "Paths");
	if (json_array_size(paths) == 0)
		fprintf(f, "(all)");
	json_array_foreach(paths, i, p)
	{
		fprintf(f, "%s%s", i ? ", " : "", json_string_value(p));
	}
	fputc('\n', f);
}

static void print_times(FILE *f, const json_t *task)
{
	static const char *const keys[] = {"CreationTime", "StartTime",
					   "EndTime"};
	static const char *const labels[] = {"Created", "Started", "Ended"};
	char buf[32];

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		fprintf(f, "%-16s%s\n", labels[i],
			cli_format_time(json_time(task, keys[i]), buf,
					sizeof(buf)));
}

void cli_human_task(FILE *f, const json_t *task)
{
	const json_t *fail = json_object_get(task, "FailureDetails");
	const json_t *rep = json_object_get(task, "Report");
	char sz[32];

	if (cli_json_str(task, "Name")[0])
		fprintf(f, "%-16s%s\n", "Name", cli_json_str(task, "Name"));
	fprintf(f, "%-16s%s\n", "Task ID", cli_json_str(task, "TaskId"));
	fprintf(f, "%-16s%s%s\n", "Type", cli_json_str(task, "Type"),
		json_is_true(json_object_get(task, "Automatic"))
			? " (automatic)"
			: "");
	fprintf(f, "%-16s%s\n", "Lifecycle", cli_json_str(task, "Lifecycle"));
	print_paths(f, task);
	print_times(f, task);
	fprintf(f,
		"%-16s%" PRId64 " total, %" PRId64 " succeeded, %" PRId64
		" failed\n",
		"Files", cli_json_int(task, "TotalCount"),
		cli_json_int(task, "SucceededCount"),
		cli_json_int(task, "FailedCount"));
	if (json_object_get(task, "CapacityToRelease") ||
	    cli_json_int(task, "ReleasedBytes"))
		fprintf(f, "%-16s%s\n", "Released",
			format_size(
				(uint64_t)cli_json_int(task, "ReleasedBytes"),
				sz, sizeof(sz)));
	if (json_is_true(json_object_get(rep, "Enabled")))
		fprintf(f, "%-16s%s/%s/failures.csv\n", "Report",
			cli_json_str(rep, "Path"),
			cli_json_str(task, "TaskId"));
	if (fail)
		fprintf(f, "%-16s%s\n", "Failure",
			cli_json_str(fail, "Message"));
}

static void print_safety(FILE *f, const json_t *stats)
{
	char sz[32];
	int64_t files = cli_json_int(stats, "unexported_files");

	if (json_is_true(json_object_get(stats, "safe_to_unmount"))) {
		fprintf(f, "%-18syes (everything is exported)\n",
			"Safe to unmount");
		return;
	}
	if (json_object_get(stats, "unexported_bytes"))
		fprintf(f, "%-18sno: %" PRId64 " files (%s) not exported\n",
			"Safe to unmount", files,
			format_size((uint64_t)cli_json_int(stats,
							   "unexported_bytes"),
				    sz, sizeof(sz)));
	else
		fprintf(f, "%-18sno: %" PRId64 " files not exported\n",
			"Safe to unmount", files);
}

void cli_human_stats(FILE *f, const json_t *stats)
{
	const json_t *st = json_object_get(stats, "states");
	uint64_t used = (uint64_t)cli_json_int(stats, "cached_bytes");
	uint64_t cap = (uint64_t)cli_json_int(stats, "cache_capacity_bytes");
	char a[32], b[32];

	fprintf(f, "%-18s%s\n", "File system",
		cli_json_str(stats, "file_system_id"));
	fprintf(f, "%-18s%s\n", "Repository",
		cli_json_str(stats, "repository"));
	fprintf(f, "%-18s%s of %s (%.1f%%)\n", "Cache used",
		format_size(used, a, sizeof(a)), format_size(cap, b, sizeof(b)),
		cap ? 100.0 * (double)used / (double)cap : 0.0);
	fprintf(f, "%-18s%" PRId64 " hits, %" PRId64 " misses\n", "Reads",
		cli_json_int(stats, "hits"), cli_json_int(stats, "misses"));
	fprintf(f, "%-18s%s\n", "Fetched from S3",
		format_size((uint64_t)cli_json_int(stats, "bytes_fetched"), a,
			    sizeof(a)));
	fprintf(f,
		"%-18s%" PRId64 " new, %" PRId64 " dirty, %" PRId64
		" archived, %" PRId64 " released, %" PRId64 " lost\n",
		"Files", cli_json_int(st, "new"), cli_json_int(st, "dirty"),
		cli_json_int(st, "archived"), cli_json_int(st, "released"),
		cli_json_int(st, "lost"));
	if (cli_json_int(stats, "metadata_pending") > 0)
		fprintf(f, "%-18s%" PRId64 " objects still to fetch from S3\n",
			"Metadata", cli_json_int(stats, "metadata_pending"));
	print_safety(f, stats);
}

void cli_human_states(FILE *f, const json_t *states)
{
	size_t i;
	json_t *s;

	fprintf(f, "%-9s  %-6s  %s\n", "STATE", "PINNED", "PATH");
	json_array_foreach(states, i, s)
	{
		if (json_object_get(s, "Error"))
			fprintf(f, "%-9s  %-6s  %s (%s)\n", "?", "?",
				cli_json_str(s, "Path"),
				cli_json_str(s, "Error"));
		else
			fprintf(f, "%-9s  %-6s  %s\n", cli_json_str(s, "State"),
				json_is_true(json_object_get(s, "Pinned"))
					? "yes"
					: "no",
				cli_json_str(s, "Path"));
	}
}

void cli_progress(FILE *f, const json_t *task)
{
	enum { WIDTH = 30 };
	int64_t total = cli_json_int(task, "TotalCount");
	int64_t ok = cli_json_int(task, "SucceededCount");
	int64_t failed = cli_json_int(task, "FailedCount");
	int64_t rel = cli_json_int(task, "ReleasedBytes");
	int64_t done = ok + failed;
	int fill = total > 0 ? (int)(WIDTH * MIN(done, total) / total) : 0;
	char bar[WIDTH + 1], sz[32];

	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(WIDTH - fill));
	bar[WIDTH] = '\0';
	fprintf(f, "\r%s [%s] %" PRId64 "/%" PRId64 " files",
		cli_json_str(task, "Lifecycle"), bar, done, total);
	if (failed)
		fprintf(f, ", %" PRId64 " failed", failed);
	if (rel)
		fprintf(f, ", %s released",
			format_size((uint64_t)rel, sz, sizeof(sz)));
	fputs("\033[K", f);
	fflush(f);
}
