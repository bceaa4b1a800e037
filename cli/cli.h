/* SPDX-License-Identifier: MIT */
/*
 * cli — tidectl, the command-line client of a tidefs mount. A thin client
 * over the mount's control files (MOUNT/.tidefs/tasks/NAME, .tidefs/cancel,
 * .tidefs/stats) and the user.tidefs.* xattrs; it never links the daemon's
 * modules. Three parts:
 *
 *   request.c  pure: task type names, tokens, request JSON, lifecycles
 *   ctlfile.c  I/O on the control files and xattrs
 *   human.c    the --human tables and the --wait progress line
 *
 * tidectl.c holds main() and one function per command.
 */
#ifndef TIDEFS_CLI_H
#define TIDEFS_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes of tidectl. */
enum cli_exit {
	CLI_OK = 0,
	CLI_FAILED = 1, /* the operation failed (or the awaited task did) */
	CLI_USAGE = 2,	/* bad command line */
};

/* An error to report: an FSx error name ("BadRequest", …, or "" when the
 * failure is local, e.g. an errno) and a one-line message. */
struct cli_err {
	char type[64];
	char msg[512];
};

void cli_err_set(struct cli_err *e, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------ request.c ---- */

/*
 * The FSx task type for a user's spelling: the FSx name in any case, with
 * '-' for '_', or a short alias (export, import, release, auto-release).
 * Returns the static FSx name, or NULL when unknown.
 */
const char *cli_parse_type(const char *s);

/* Is s a ClientRequestToken that can also be a file name: 1–63 characters
 * of [A-Za-z0-9_.-], not "." or ".."? */
bool cli_token_valid(const char *s);

/* A fresh token "tidectl-YYYYMMDDTHHMMSSZ-XXXXXXXX" (8 random hex digits).
 * buf must hold at least CLI_TOKEN_MAX bytes. Returns 0 or -errno. */
#define CLI_TOKEN_MAX 64
int cli_make_token(char *buf, size_t len);

struct cli_create {
	const char *type; /* FSx name */
	const char **paths;
	size_t npaths;
	bool have_capacity;
	uint64_t capacity_gib;
	bool have_days;
	uint64_t release_days;
	const char *report_path; /* NULL: no report */
};

/* The CreateDataRepositoryTask request JSON for c (new reference), or NULL
 * on ENOMEM. FileSystemId and ClientRequestToken are left out: the control
 * file supplies both. */
json_t *cli_build_request(const struct cli_create *c);

/* Is this Lifecycle value final (SUCCEEDED, FAILED, CANCELED)? */
bool cli_lifecycle_final(const char *lifecycle);

/* Integer member of an object (also inside "Status"); 0 when absent. */
int64_t cli_json_int(const json_t *obj, const char *key);
/* String member; "" when absent. */
const char *cli_json_str(const json_t *obj, const char *key);

/*
 * Add "safe_to_unmount" (bool) to a .tidefs/stats object: true when no file
 * waits for export. Uses unexported_files when the daemon reports it, else
 * states.new + states.dirty (and adds unexported_files from them).
 */
void cli_stats_add_safety(json_t *stats);

/* ------------------------------------------------------ ctlfile.c ---- */

/*
 * Check that mount is the root of a live tidefs mount (MOUNT/.tidefs/stats
 * exists). Returns 0 or -errno with e set to a message.
 */
int cli_check_mount(const char *mount, struct cli_err *e);

/* Read a whole file (control files report size 0, so read to EOF).
 * *out is malloc'ed and NUL-terminated. Returns 0 or -errno. */
int cli_read_file(const char *path, char **out, size_t *len);

/* Read and parse a JSON control file. Returns 0 or -errno (-EBADMSG for
 * text that is not a JSON object), with e set. */
int cli_read_json(const char *path, json_t **out, struct cli_err *e);

/*
 * Create a task: write request to MOUNT/.tidefs/tasks/TOKEN and read the
 * task back into *task. On a rejected request returns -EINVAL with e set
 * from the FSx error JSON the file then holds; other failures -errno.
 */
int cli_create_task(const char *mount, const char *token, const char *request,
		    json_t **task, struct cli_err *e);

/* Read the task file MOUNT/.tidefs/tasks/NAME. */
int cli_task_by_name(const char *mount, const char *name, json_t **task,
		     struct cli_err *e);

/*
 * Every task of the mount as a JSON array (new reference) of
 * DataRepositoryTask objects, each with an extra "Name" member (its control
 * file's name), sorted by CreationTime. Returns 0 or -errno.
 */
int cli_list_tasks(const char *mount, json_t **tasks, struct cli_err *e);

/* Find a task by TaskId or by name (token). Returns 0, -ENOENT (e set to
 * DataRepositoryTaskNotFound) or another -errno. */
int cli_find_task(const char *mount, const char *id, json_t **task,
		  struct cli_err *e);

/* Write id to MOUNT/.tidefs/cancel. Returns 0 or -errno with e set
 * (DataRepositoryTaskNotFound for ENOENT, DataRepositoryTaskEnded or the
 * daemon's error JSON for EINVAL). */
int cli_cancel(const char *mount, const char *id, struct cli_err *e);

/* {"Path", "State", "Pinned"} of a file from its xattrs. */
int cli_file_state(const char *path, json_t **out, struct cli_err *e);
/* Set or clear the norelease flag. */
int cli_set_pin(const char *path, bool pin, struct cli_err *e);

/* ------------------------------------------------------- human.c ---- */

/* "2024-05-01 12:00:00" (local time) for epoch seconds; "-" for 0. */
char *cli_format_time(double epoch, char *buf, size_t len);
void cli_human_tasks(FILE *f, const json_t *tasks);
void cli_human_task(FILE *f, const json_t *task);
void cli_human_stats(FILE *f, const json_t *stats);
void cli_human_states(FILE *f, const json_t *states);
/* One progress line ("\r[#####     ] 12/40 files …") for a running task. */
void cli_progress(FILE *f, const json_t *task);

#endif
