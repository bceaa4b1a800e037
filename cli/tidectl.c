// SPDX-License-Identifier: MIT
/*
 * tidectl: the command-line client of a tidefs mount. One function per
 * command over the control files (cli/ctlfile.c). Output is JSON on stdout
 * (the FSx shapes where FSx has one), or tables with --human; errors are
 * one line on stderr starting "tidectl: " and, in JSON mode, the FSx error
 * object on stdout when the daemon named one. Exit codes: 0 ok, 1 the
 * operation (or the awaited task) failed, 2 bad command line.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/common.h"

#define MAX_PATHS 100

struct cli {
	bool human;
	const char *cmd; /* for messages */
};

/* -------------------------------------------------------- usage ---- */

static const char usage_text[] =
	"usage: tidectl [--human] COMMAND ARGS...\n"
	"\n"
	"Commands (MOUNT is the root directory of a tidefs mount, not a path\n"
	"inside it):\n"
	"  create-task MOUNT --type TYPE [--paths P...] [--capacity-to-release "
	"GIB]\n"
	"              [--release-days N] [--report-path s3://...] [--token T] "
	"[--wait]\n"
	"      create a data repository task; TYPE is export, import, "
	"release,\n"
	"      auto-release or the FSx name (EXPORT_TO_REPOSITORY,\n"
	"      IMPORT_METADATA_FROM_REPOSITORY, RELEASE_DATA_FROM_FILESYSTEM,\n"
	"      AUTO_RELEASE_DATA), in any case. --paths takes every following\n"
	"      word up to the next option (put MOUNT first). --token is the\n"
	"      ClientRequestToken (default: a fresh tidectl-... name); --wait\n"
	"      waits for the end and exits 1 unless the task SUCCEEDED\n"
	"  describe MOUNT [TASK...]   tasks by TaskId or name (default: all)\n"
	"  cancel MOUNT TASK          cancel a task (TaskId or name)\n"
	"  stats MOUNT                cache statistics, and whether it is safe "
	"to\n"
	"                             unmount (nothing left to export)\n"
	"  state FILE...              file state (new, dirty, archived, "
	"released,\n"
	"                             lost) and the pinned flag\n"
	"  pin PATH...                never release these files (norelease)\n"
	"  unpin PATH...              allow releasing them again\n"
	"\n"
	"Options:\n"
	"  --human     readable tables instead of JSON\n"
	"  --help      this help (tidectl COMMAND --help works too)\n"
	"  --version   print the version\n"
	"\n"
	"Exit status: 0 success, 1 the operation failed (or the awaited task\n"
	"did not succeed), 2 usage error. Errors are one line on stderr.\n";

static int usage_error(const struct cli *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int usage_error(const struct cli *c, const char *fmt, ...)
{
	va_list ap;

	fputs("tidectl: ", stderr);
	if (c->cmd)
		fprintf(stderr, "%s: ", c->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see tidectl --help)\n", stderr);
	return CLI_USAGE;
}

/* ----------------------------------------------------- arguments ---- */

enum opt_id {
	OPT_END = -1,
	OPT_POS = 0,
	OPT_HUMAN = 1,
	OPT_HELP,
	OPT_TYPE,
	OPT_PATHS,
	OPT_CAPACITY,
	OPT_DAYS,
	OPT_REPORT,
	OPT_TOKEN,
	OPT_WAIT,
};

struct opt_def {
	const char *name;
	enum opt_id id;
	bool has_arg;
};

static const struct opt_def common_opts[] = {
	{"human", OPT_HUMAN, false},
	{"help", OPT_HELP, false},
};

static const struct opt_def create_opts[] = {
	{"type", OPT_TYPE, true},
	{"paths", OPT_PATHS, true},
	{"capacity-to-release", OPT_CAPACITY, true},
	{"release-days", OPT_DAYS, true},
	{"report-path", OPT_REPORT, true},
	{"token", OPT_TOKEN, true},
	{"wait", OPT_WAIT, false},
};

struct args {
	int argc;
	char **argv;
	int i;
	bool no_more_opts; /* after "--" */
	const struct opt_def *defs;
	size_t ndefs;
};

static const struct opt_def *find_opt(const struct args *a, const char *name,
				      size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(common_opts); i++)
		if (strlen(common_opts[i].name) == len &&
		    !strncmp(common_opts[i].name, name, len))
			return &common_opts[i];
	for (size_t i = 0; i < a->ndefs; i++)
		if (strlen(a->defs[i].name) == len &&
		    !strncmp(a->defs[i].name, name, len))
			return &a->defs[i];
	return NULL;
}

/* The next option (its id, *val its argument) or positional (OPT_POS, *val
 * the word); OPT_END at the end; -2 after printing a usage error. */
static int next_arg(struct cli *c, struct args *a, const char **val)
{
	const char *s, *eq;
	const struct opt_def *d;

	if (a->i >= a->argc)
		return OPT_END;
	s = a->argv[a->i++];
	if (a->no_more_opts || s[0] != '-' || !strcmp(s, "-")) {
		*val = s;
		return OPT_POS;
	}
	if (!strcmp(s, "--")) {
		a->no_more_opts = true;
		return next_arg(c, a, val);
	}
	if (!strcmp(s, "-h"))
		return OPT_HELP;
	if (s[1] != '-') {
		usage_error(c, "unknown option %s", s);
		return -2;
	}
	eq = strchr(s + 2, '=');
	d = find_opt(a, s + 2, eq ? (size_t)(eq - s - 2) : strlen(s + 2));
	if (!d) {
		usage_error(c, "unknown option %s", s);
		return -2;
	}
	if ((!d->has_arg && eq) || (d->has_arg && !eq && a->i >= a->argc)) {
		usage_error(c, "option --%s %s", d->name,
			    d->has_arg ? "needs a value" : "takes no value");
		return -2;
	}
	if (d->has_arg)
		*val = eq ? eq + 1 : a->argv[a->i++];
	return (int)d->id;
}

/* Options every command shares; returns 1 when handled, or an exit code
 * (via *rc) for --help. */
static bool common_opt(struct cli *c, int id, int *rc)
{
	if (id == OPT_HUMAN) {
		c->human = true;
		return true;
	}
	if (id == OPT_HELP) {
		fputs(usage_text, stdout);
		*rc = CLI_OK;
		return true;
	}
	return false;
}

/* Collect the positionals of a command without options of its own. */
static int simple_args(struct cli *c, int argc, char **argv, const char **pos,
		       int maxpos, int *npos)
{
	struct args a = {argc, argv, 0, false, NULL, 0};
	const char *val = NULL;
	int id, rc = -1;

	*npos = 0;
	while ((id = next_arg(c, &a, &val)) != OPT_END) {
		if (id == -2)
			return CLI_USAGE;
		if (id == OPT_POS) {
			if (*npos >= maxpos)
				return usage_error(c, "too many arguments");
			pos[(*npos)++] = val;
		} else if (common_opt(c, id, &rc) && rc >= 0) {
			return rc;
		}
	}
	return -1;
}

/* ------------------------------------------------------- output ---- */

static void print_json(const json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
}

/* Report e: one line on stderr, and in JSON mode the FSx error object on
 * stdout when it has a name. Returns CLI_FAILED. */
static int fail(const struct cli *c, const struct cli_err *e)
{
	if (e->type[0]) {
		fprintf(stderr, "tidectl: %s: %s\n", e->type, e->msg);
		if (!c->human) {
			json_t *j = json_pack("{s:s,s:s}", "__type", e->type,
					      "Message", e->msg);
			if (j)
				print_json(j);
			json_decref(j);
		}
	} else {
		fprintf(stderr, "tidectl: %s\n", e->msg);
	}
	return CLI_FAILED;
}

/* -------------------------------------------------- create-task ---- */

struct create_opts {
	struct cli_create req;
	const char *paths[MAX_PATHS];
	const char *mount;
	const char *token;
	bool wait;
};

static int parse_number(struct cli *c, const char *opt, const char *s,
			uint64_t *out)
{
	if (parse_u64(s, out) < 0)
		return usage_error(c, "%s wants a whole number, not '%s'", opt,
				   s);
	return 0;
}

/* --paths P [P...]: this word and every following one up to an option. */
static int take_paths(struct cli *c, struct args *a, const char *first,
		      struct create_opts *o)
{
	const char *p = first;

	for (;;) {
		if (o->req.npaths >= MAX_PATHS)
			return usage_error(c, "at most %d paths", MAX_PATHS);
		o->paths[o->req.npaths++] = p;
		if (a->i >= a->argc || a->argv[a->i][0] == '-')
			return 0;
		p = a->argv[a->i++];
	}
}

static int create_opt(struct cli *c, struct args *a, int id, const char *val,
		      struct create_opts *o)
{
	switch (id) {
	case OPT_TYPE:
		o->req.type = cli_parse_type(val);
		if (!o->req.type)
			return usage_error(
				c,
				"unknown task type '%s' (export, import, "
				"release, auto-release or the FSx names)",
				val);
		return 0;
	case OPT_PATHS:
		return take_paths(c, a, val, o);
	case OPT_CAPACITY:
		o->req.have_capacity = true;
		return parse_number(c, "--capacity-to-release", val,
				    &o->req.capacity_gib);
	case OPT_DAYS:
		o->req.have_days = true;
		return parse_number(c, "--release-days", val,
				    &o->req.release_days);
	case OPT_REPORT:
		o->req.report_path = val;
		return 0;
	case OPT_TOKEN:
		if (!cli_token_valid(val))
			return usage_error(c,
					   "bad --token '%s': 1-63 characters "
					   "of A-Z a-z 0-9 _ . -",
					   val);
		o->token = val;
		return 0;
	case OPT_WAIT:
		o->wait = true;
		return 0;
	}
	return 0;
}

static int parse_create(struct cli *c, int argc, char **argv,
			struct create_opts *o)
{
	struct args a = {argc,	argv,	     0,
			 false, create_opts, ARRAY_SIZE(create_opts)};
	const char *val = NULL;
	int id, rc = -1;

	o->req.paths = o->paths;
	while ((id = next_arg(c, &a, &val)) != OPT_END) {
		if (id == -2)
			return CLI_USAGE;
		if (id == OPT_POS) {
			if (o->mount)
				return usage_error(
					c, "unexpected argument '%s'", val);
			o->mount = val;
		} else if (common_opt(c, id, &rc)) {
			if (rc >= 0)
				return rc;
		} else if (create_opt(c, &a, id, val, o) != 0) {
			return CLI_USAGE;
		}
	}
	if (!o->mount)
		return usage_error(c, "missing MOUNT (put it before --paths)");
	if (!o->req.type)
		return usage_error(c, "missing --type");
	return -1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Poll the task until its Lifecycle is final; *task is replaced. */
static int wait_task(const char *mount, const char *name, json_t **task,
		     struct cli_err *e)
{
	bool tty = isatty(STDERR_FILENO);
	long delay = 100;
	int ret = 0;

	while (!cli_lifecycle_final(cli_json_str(*task, "Lifecycle"))) {
		json_t *t;
		if (tty)
			cli_progress(stderr, *task);
		sleep_ms(delay);
		delay = MIN(delay * 2, 1000);
		ret = cli_task_by_name(mount, name, &t, e);
		if (ret < 0)
			break;
		json_decref(*task);
		*task = t;
	}
	if (tty) {
		cli_progress(stderr, *task);
		fputc('\n', stderr);
	}
	return ret;
}

static int show_task_result(const struct cli *c, json_t *task, bool waited)
{
	const char *life = cli_json_str(task, "Lifecycle");

	if (c->human) {
		cli_human_task(stdout, task);
	} else {
		json_t *resp = json_pack("{s:O}", "DataRepositoryTask", task);
		if (resp)
			print_json(resp);
		json_decref(resp);
	}
	if (!waited || !strcmp(life, "SUCCEEDED"))
		return CLI_OK;
	fprintf(stderr, "tidectl: task %s ended %s%s%s\n",
		cli_json_str(task, "TaskId"), life,
		json_object_get(task, "FailureDetails") ? ": " : "",
		cli_json_str(json_object_get(task, "FailureDetails"),
			     "Message"));
	return CLI_FAILED;
}

static int cmd_create(struct cli *c, int argc, char **argv)
{
	struct create_opts o = {0};
	char token[CLI_TOKEN_MAX], *text;
	struct cli_err e = {0};
	json_t *req, *task = NULL;
	int rc = parse_create(c, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (cli_check_mount(o.mount, &e) < 0)
		return fail(c, &e);
	if (!o.token && cli_make_token(token, sizeof(token)) < 0) {
		cli_err_set(&e, "", "cannot make a token: %s", strerror(errno));
		return fail(c, &e);
	}
	req = cli_build_request(&o.req);
	text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text) {
		cli_err_set(&e, "", "out of memory");
		return fail(c, &e);
	}
	if (!o.token)
		o.token = token;
	rc = cli_create_task(o.mount, o.token, text, &task, &e);
	free(text);
	if (rc == 0 && o.wait)
		rc = wait_task(o.mount, o.token, &task, &e);
	if (rc < 0) {
		json_decref(task);
		return fail(c, &e);
	}
	json_object_set_new(task, "Name", json_string(o.token));
	rc = show_task_result(c, task, o.wait);
	json_decref(task);
	return rc;
}

/* ----------------------------------------------------- describe ---- */

static int describe_ids(struct cli *c, const char *mount, const char **ids,
			int n, json_t *out)
{
	struct cli_err e = {0};

	for (int i = 0; i < n; i++) {
		json_t *t;
		if (cli_find_task(mount, ids[i], &t, &e) < 0)
			return fail(c, &e);
		json_array_append_new(out, t);
	}
	return CLI_OK;
}

static int cmd_describe(struct cli *c, int argc, char **argv)
{
	const char *pos[1 + 50];
	struct cli_err e = {0};
	json_t *tasks = NULL;
	int n, rc = simple_args(c, argc, argv, pos, (int)ARRAY_SIZE(pos), &n);

	if (rc >= 0)
		return rc;
	if (n < 1)
		return usage_error(c, "missing MOUNT");
	if (cli_check_mount(pos[0], &e) < 0)
		return fail(c, &e);
	if (n == 1) {
		if (cli_list_tasks(pos[0], &tasks, &e) < 0)
			return fail(c, &e);
	} else {
		tasks = json_array();
		rc = describe_ids(c, pos[0], pos + 1, n - 1, tasks);
		if (rc != CLI_OK) {
			json_decref(tasks);
			return rc;
		}
	}
	if (c->human) {
		cli_human_tasks(stdout, tasks);
	} else {
		json_t *resp = json_pack("{s:O}", "DataRepositoryTasks", tasks);
		print_json(resp);
		json_decref(resp);
	}
	json_decref(tasks);
	return CLI_OK;
}

/* ------------------------------------------------------- cancel ---- */

static int cmd_cancel(struct cli *c, int argc, char **argv)
{
	const char *pos[2], *id;
	struct cli_err e = {0};
	json_t *task = NULL, *resp;
	int n, rc = simple_args(c, argc, argv, pos, 2, &n);

	if (rc >= 0)
		return rc;
	if (n < 2)
		return usage_error(c, "want MOUNT TASK");
	if (cli_check_mount(pos[0], &e) < 0)
		return fail(c, &e);
	if (cli_find_task(pos[0], pos[1], &task, &e) < 0)
		return fail(c, &e);
	id = cli_json_str(task, "TaskId");
	rc = cli_cancel(pos[0], id, &e);
	if (rc == -EINVAL &&
	    !cli_lifecycle_final(cli_json_str(task, "Lifecycle")))
		cli_err_set(&e, "", "%s: the daemon refused to cancel it (%s)",
			    id, strerror(EINVAL));
	if (rc < 0) {
		json_decref(task);
		return fail(c, &e);
	}
	if (cli_find_task(pos[0], id, &resp, &e) == 0) {
		json_decref(task);
		task = resp;
	}
	resp = json_pack("{s:s,s:s}", "Lifecycle",
			 cli_json_str(task, "Lifecycle"), "TaskId",
			 cli_json_str(task, "TaskId"));
	if (c->human)
		cli_human_task(stdout, task);
	else if (resp)
		print_json(resp);
	json_decref(resp);
	json_decref(task);
	return CLI_OK;
}

/* -------------------------------------------------------- stats ---- */

static int cmd_stats(struct cli *c, int argc, char **argv)
{
	const char *pos[1];
	char path[4096];
	struct cli_err e = {0};
	json_t *stats;
	int n, rc = simple_args(c, argc, argv, pos, 1, &n);

	if (rc >= 0)
		return rc;
	if (n < 1)
		return usage_error(c, "missing MOUNT");
	if (cli_check_mount(pos[0], &e) < 0)
		return fail(c, &e);
	snprintf(path, sizeof(path), "%s/.tidefs/stats", pos[0]);
	if (cli_read_json(path, &stats, &e) < 0)
		return fail(c, &e);
	cli_stats_add_safety(stats);
	if (c->human)
		cli_human_stats(stdout, stats);
	else
		print_json(stats);
	json_decref(stats);
	return CLI_OK;
}

/* ---------------------------------------------- state, pin, unpin ---- */

/* Handle one path: state (pin < 0), pin (1) or unpin (0); append its state
 * or its error to out. Returns false on failure. */
static bool one_file(const char *path, int pin, json_t *out)
{
	struct cli_err e = {0};
	json_t *st = NULL;

	if ((pin < 0 || cli_set_pin(path, pin, &e) == 0) &&
	    cli_file_state(path, &st, &e) == 0) {
		json_array_append_new(out, st);
		return true;
	}
	fprintf(stderr, "tidectl: %s\n", e.msg);
	json_array_append_new(
		out, json_pack("{s:s,s:s}", "Path", path, "Error", e.msg));
	return false;
}

static int files_cmd(struct cli *c, int argc, char **argv, int pin)
{
	const char **pos = calloc((size_t)argc + 1, sizeof(*pos));
	json_t *out = json_array();
	bool ok = true;
	int n = 0, rc = pos && out ? simple_args(c, argc, argv, pos, argc, &n)
				   : CLI_FAILED;

	if (rc < 0 && n < 1)
		rc = usage_error(c, "missing FILE");
	if (rc < 0) {
		for (int i = 0; i < n; i++)
			ok = one_file(pos[i], pin, out) && ok;
		if (c->human)
			cli_human_states(stdout, out);
		else
			print_json(out);
		rc = ok ? CLI_OK : CLI_FAILED;
	}
	json_decref(out);
	free(pos);
	return rc;
}

static int cmd_state(struct cli *c, int argc, char **argv)
{
	return files_cmd(c, argc, argv, -1);
}

static int cmd_pin(struct cli *c, int argc, char **argv)
{
	return files_cmd(c, argc, argv, 1);
}

static int cmd_unpin(struct cli *c, int argc, char **argv)
{
	return files_cmd(c, argc, argv, 0);
}

/* --------------------------------------------------------- main ---- */

static const struct {
	const char *name;
	int (*fn)(struct cli *c, int argc, char **argv);
} commands[] = {
	{"create-task", cmd_create}, {"describe", cmd_describe},
	{"cancel", cmd_cancel},	     {"stats", cmd_stats},
	{"state", cmd_state},	     {"pin", cmd_pin},
	{"unpin", cmd_unpin},
};

int main(int argc, char **argv)
{
	struct cli c = {false, NULL};
	int i;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage_text, stdout);
			return CLI_OK;
		} else if (!strcmp(argv[i], "--version") ||
			   !strcmp(argv[i], "-V")) {
			printf("tidectl %s\n", TIDEFS_VERSION);
			return CLI_OK;
		} else if (!strcmp(argv[i], "--human")) {
			c.human = true;
		} else {
			return usage_error(&c, "unknown option %s", argv[i]);
		}
	}
	if (i >= argc)
		return usage_error(&c, "missing COMMAND");
	for (size_t k = 0; k < ARRAY_SIZE(commands); k++)
		if (!strcmp(argv[i], commands[k].name)) {
			c.cmd = commands[k].name;
			return commands[k].fn(&c, argc - i - 1, argv + i + 1);
		}
	return usage_error(&c, "unknown command '%s'", argv[i]);
}
