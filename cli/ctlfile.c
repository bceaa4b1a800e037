// SPDX-License-Identifier: MIT
/*
 * tidectl's I/O: the mount's control files and the user.tidefs.* xattrs.
 *
 *   MOUNT/.tidefs/stats        JSON snapshot of the cache
 *   MOUNT/.tidefs/tasks/NAME   write a request to create task NAME (its
 *                              ClientRequestToken); read: the live
 *                              DataRepositoryTask JSON, or after a rejected
 *                              request the FSx error JSON
 *   MOUNT/.tidefs/cancel       write a TaskId to cancel it
 *
 * Control files report size 0, so every read goes to EOF. Each failure is
 * turned into a one-line message here, with the FSx error name when there is
 * one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli/cli.h"

#define STATE_XATTR "user.tidefs.state"
#define PIN_XATTR   "user.tidefs.norelease"

static int ctl_path(char *buf, size_t len, const char *mount, const char *rel,
		    const char *name)
{
	int n = snprintf(buf, len, "%s/.tidefs/%s%s%s", mount, rel,
			 name ? "/" : "", name ? name : "");

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void errno_msg(struct cli_err *e, const char *what, int err)
{
	if (err == ENOTCONN)
		cli_err_set(e, "",
			    "%s: the tidefs daemon is gone (%s); unmount with "
			    "fusermount3 -u",
			    what, strerror(err));
	else
		cli_err_set(e, "", "%s: %s", what, strerror(err));
}

int cli_check_mount(const char *mount, struct cli_err *e)
{
	char path[PATH_MAX];
	struct stat st;
	int ret = ctl_path(path, sizeof(path), mount, "stats", NULL);

	if (ret < 0) {
		errno_msg(e, mount, -ret);
		return ret;
	}
	if (stat(mount, &st) < 0) {
		ret = -errno;
		errno_msg(e, mount, errno);
		return ret;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_err_set(e, "", "%s: not a directory (give the mount root)",
			    mount);
		return -ENOTDIR;
	}
	if (stat(path, &st) == 0)
		return 0;
	ret = -errno;
	if (errno == ENOTCONN || errno == EACCES) {
		errno_msg(e, mount, errno);
	} else if (getxattr(mount, STATE_XATTR, NULL, 0) >= 0) {
		cli_err_set(e, "",
			    "%s: inside a tidefs mount but not its root; give "
			    "the mount root",
			    mount);
	} else {
		cli_err_set(e, "", "%s: not a tidefs mount (no .tidefs/stats)",
			    mount);
	}
	return ret;
}

int cli_read_file(const char *path, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap), *nb;
	int fd, ret = 0;

	if (!buf)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out_free;
	}
	for (;;) {
		ssize_t r;
		if (cap - n < 2) {
			nb = realloc(buf, cap * 2);
			if (!nb) {
				ret = -ENOMEM;
				goto out_close;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			goto out_close;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	close(fd);
	return 0;

out_close:
	close(fd);
out_free:
	free(buf);
	return ret;
}

static json_t *parse_object(const char *text, size_t len)
{
	json_t *j = json_loadb(text, len, 0, NULL);

	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

int cli_read_json(const char *path, json_t **out, struct cli_err *e)
{
	char *text;
	size_t len;
	int ret = cli_read_file(path, &text, &len);

	if (ret < 0) {
		errno_msg(e, path, -ret);
		return ret;
	}
	*out = parse_object(text, len);
	free(text);
	if (!*out) {
		cli_err_set(e, "", "%s: not a JSON object", path);
		return -EBADMSG;
	}
	return 0;
}

/* Fill e from an FSx error body in text; false when it is not one. */
static bool error_from_json(const char *text, size_t len, struct cli_err *e)
{
	json_t *j = parse_object(text, len);
	const char *type =
		j ? json_string_value(json_object_get(j, "__type")) : NULL;

	if (type)
		cli_err_set(e, type, "%s",
			    cli_json_str(j, "Message")[0]
				    ? cli_json_str(j, "Message")
				    : "(no message)");
	json_decref(j);
	return type != NULL;
}

/* After a rejected request: the file holds the FSx error JSON, or, when
 * the name already belonged to a task, that task (FSx answers a token
 * reused for a different request with IncompatibleParameterError). */
static void error_from_file(const char *path, const char *token,
			    struct cli_err *e)
{
	char *text;
	size_t len;
	json_t *task;

	if (cli_read_file(path, &text, &len) < 0) {
		cli_err_set(e, "", "%s: %s", path, strerror(EINVAL));
		return;
	}
	if (!error_from_json(text, len, e)) {
		task = parse_object(text, len);
		if (json_object_get(task, "TaskId"))
			cli_err_set(e, "IncompatibleParameterError",
				    "ClientRequestToken %s already names %s, "
				    "created with a different request",
				    token, cli_json_str(task, "TaskId"));
		else
			cli_err_set(e, "", "%s: %s", path, strerror(EINVAL));
		json_decref(task);
	}
	free(text);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* ENOENT because the daemon has no .tidefs/tasks at all? */
static bool no_tasks_dir(const char *mount, int err, struct cli_err *e)
{
	char path[PATH_MAX];
	struct stat st;

	if (err != ENOENT ||
	    ctl_path(path, sizeof(path), mount, "tasks", NULL) < 0 ||
	    stat(path, &st) == 0)
		return false;
	cli_err_set(e, "", "%s: no .tidefs/tasks (a tidefs without tasks?)",
		    mount);
	return true;
}

static void create_errno(struct cli_err *e, const char *path, int err)
{
	if (err == EACCES || err == EPERM)
		cli_err_set(
			e, "",
			"%s: %s (only root and the mount's owner may create "
			"tasks)",
			path, strerror(err));
	else
		errno_msg(e, path, err);
}

int cli_create_task(const char *mount, const char *token, const char *request,
		    json_t **task, struct cli_err *e)
{
	char path[PATH_MAX];
	int fd, ret = ctl_path(path, sizeof(path), mount, "tasks", token);

	if (ret < 0) {
		errno_msg(e, token, -ret);
		return ret;
	}
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		if (!no_tasks_dir(mount, errno, e))
			create_errno(e, path, -ret);
		return ret;
	}
	ret = write_all(fd, request, strlen(request));
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == -EINVAL) {
		error_from_file(path, token, e);
		return ret;
	}
	if (ret < 0) {
		create_errno(e, path, -ret);
		return ret;
	}
	return cli_task_by_name(mount, token, task, e);
}

int cli_task_by_name(const char *mount, const char *name, json_t **task,
		     struct cli_err *e)
{
	char path[PATH_MAX];
	int ret = ctl_path(path, sizeof(path), mount, "tasks", name);

	if (ret < 0) {
		errno_msg(e, name, -ret);
		return ret;
	}
	ret = cli_read_json(path, task, e);
	if (ret == -ENOENT)
		cli_err_set(e, "DataRepositoryTaskNotFound", "no task named %s",
			    name);
	return ret;
}

static int cmp_tasks(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	double tx = json_number_value(json_object_get(x, "CreationTime"));
	double ty = json_number_value(json_object_get(y, "CreationTime"));

	if (tx != ty)
		return tx < ty ? -1 : 1;
	return strcmp(cli_json_str(x, "Name"), cli_json_str(y, "Name"));
}

/* Read tasks/NAME into arr; a task gone since readdir is skipped. */
static int add_task(const char *mount, const char *name, json_t *arr,
		    struct cli_err *e)
{
	json_t *t;
	int ret = cli_task_by_name(mount, name, &t, e);

	if (ret == -ENOENT)
		return 0;
	if (ret < 0)
		return ret;
	json_object_set_new(t, "Name", json_string(name));
	return json_array_append_new(arr, t) ? -ENOMEM : 0;
}

static int sort_array(json_t *arr)
{
	size_t n = json_array_size(arr);
	json_t **v = calloc(n ? n : 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(arr, i));
	qsort(v, n, sizeof(*v), cmp_tasks);
	json_array_clear(arr);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, v[i]);
	free(v);
	return 0;
}

int cli_list_tasks(const char *mount, json_t **tasks, struct cli_err *e)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	json_t *arr;
	int ret = ctl_path(path, sizeof(path), mount, "tasks", NULL);

	if (ret < 0) {
		errno_msg(e, mount, -ret);
		return ret;
	}
	d = opendir(path);
	if (!d) {
		ret = -errno;
		if (!no_tasks_dir(mount, errno, e))
			errno_msg(e, path, -ret);
		return ret;
	}
	arr = json_array();
	ret = arr ? 0 : -ENOMEM;
	while (ret == 0 && (errno = 0, de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			ret = add_task(mount, de->d_name, arr, e);
	if (ret == 0 && errno != 0) {
		ret = -errno;
		errno_msg(e, path, errno);
	}
	closedir(d);
	if (ret == 0)
		ret = sort_array(arr);
	if (ret < 0) {
		json_decref(arr);
		return ret;
	}
	*tasks = arr;
	return 0;
}

int cli_find_task(const char *mount, const char *id, json_t **task,
		  struct cli_err *e)
{
	json_t *all, *t;
	size_t i;
	int ret;

	if (cli_token_valid(id)) {
		ret = cli_task_by_name(mount, id, task, e);
		if (ret == 0) {
			json_object_set_new(*task, "Name", json_string(id));
			return 0;
		}
		if (ret != -ENOENT)
			return ret;
	}
	ret = cli_list_tasks(mount, &all, e);
	if (ret < 0)
		return ret;
	json_array_foreach(all, i, t)
	{
		if (!strcmp(cli_json_str(t, "TaskId"), id)) {
			*task = json_incref(t);
			json_decref(all);
			return 0;
		}
	}
	json_decref(all);
	cli_err_set(e, "DataRepositoryTaskNotFound", "no task %s on %s", id,
		    mount);
	return -ENOENT;
}

int cli_cancel(const char *mount, const char *id, struct cli_err *e)
{
	char path[PATH_MAX];
	int fd, ret = ctl_path(path, sizeof(path), mount, "cancel", NULL);

	if (ret < 0) {
		errno_msg(e, mount, -ret);
		return ret;
	}
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		errno_msg(e, path, errno);
		return ret;
	}
	ret = write_all(fd, id, strlen(id));
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == -ENOENT)
		cli_err_set(e, "DataRepositoryTaskNotFound", "no task %s on %s",
			    id, mount);
	else if (ret == -EINVAL)
		cli_err_set(e, "DataRepositoryTaskEnded",
			    "task %s has already ended", id);
	else if (ret == -EACCES || ret == -EPERM)
		cli_err_set(
			e, "",
			"%s: %s (only root and the mount's owner may cancel "
			"tasks)",
			path, strerror(-ret));
	else if (ret < 0)
		errno_msg(e, path, -ret);
	return ret;
}

static void xattr_errno(struct cli_err *e, const char *path, int err)
{
	if (err == ENODATA || err == ENOTSUP)
		cli_err_set(e, "", "%s: not in a tidefs mount", path);
	else
		errno_msg(e, path, err);
}

int cli_file_state(const char *path, json_t **out, struct cli_err *e)
{
	char state[32], pin[8];
	ssize_t n = getxattr(path, STATE_XATTR, state, sizeof(state) - 1);
	bool pinned;

	if (n < 0) {
		int err = errno;
		xattr_errno(e, path, err);
		return -err;
	}
	state[n] = '\0';
	n = getxattr(path, PIN_XATTR, pin, sizeof(pin) - 1);
	if (n >= 0)
		pin[n] = '\0';
	pinned = n > 0 && strcmp(pin, "0") != 0;
	*out = json_pack("{s:s,s:s,s:b}", "Path", path, "State", state,
			 "Pinned", pinned);
	return *out ? 0 : -ENOMEM;
}

int cli_set_pin(const char *path, bool pin, struct cli_err *e)
{
	char state[32];
	int ret;

	/* Refuse files outside tidefs before touching their xattrs. */
	if (getxattr(path, STATE_XATTR, state, sizeof(state)) < 0) {
		ret = -errno;
		xattr_errno(e, path, errno);
		return ret;
	}
	ret = pin ? setxattr(path, PIN_XATTR, "1", 1, 0)
		  : removexattr(path, PIN_XATTR);
	if (ret == 0 || (!pin && errno == ENODATA))
		return 0;
	ret = -errno;
	if ((errno == EPERM || errno == EACCES) && geteuid() == 0)
		cli_err_set(e, "",
			    "%s: %s (this tidefs does not support pinning)",
			    path, strerror(errno));
	else if (errno == EPERM || errno == EACCES)
		cli_err_set(e, "",
			    "%s: %s (only root and the file's owner may %s it)",
			    path, strerror(errno), pin ? "pin" : "unpin");
	else
		errno_msg(e, path, errno);
	return ret;
}
