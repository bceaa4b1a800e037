// SPDX-License-Identifier: MIT
/*
 * The system side of tidefs-volume: the mount table, directories, the
 * cache dir's lock, and running a command with a deadline and its output in
 * a log file.
 */
#include "api/volume_i.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Undo the octal escapes of /proc/self/mountinfo in place. */
static void unescape_mountinfo(char *s)
{
	char *w = s;

	for (char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
		    r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 +
				      (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

bool volume_is_mounted(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *save, *tok;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return false;
	while (!found && getline(&line, &cap, f) > 0) {
		tok = strtok_r(line, " ", &save);
		for (int i = 0; tok && i < 4; i++)
			tok = strtok_r(NULL, " ", &save);
		if (!tok)
			continue;
		unescape_mountinfo(tok);
		found = strcmp(tok, path) == 0;
	}
	free(line);
	fclose(f);
	return found;
}

/* Wait until no tidefs holds CACHE/lock; 0 or -EBUSY after timeout_s. */
int volume_wait_unlocked(const char *cache, int timeout_s)
{
	char path[PATH_MAX];
	int64_t deadline = time_mono_ns() + (int64_t)timeout_s * 1000000000;
	int fd;

	snprintf(path, sizeof(path), "%s/lock", cache);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			close(fd); /* drops the lock */
			return 0;
		}
		if (time_mono_ns() > deadline) {
			close(fd);
			return -EBUSY;
		}
		usleep(50 * 1000);
	}
}

/* The last "tidefs: ..." line of a start log, else its last line. */
void volume_last_error_line(const char *log, char *out, size_t len)
{
	FILE *f = fopen(log, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	snprintf(out, len, "tidefs failed (see %s)", log);
	if (!f)
		return;
	while ((n = getline(&line, &cap, f)) > 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (!strncmp(line, "tidefs: ", 8))
			snprintf(out, len, "%s", line);
	}
	free(line);
	fclose(f);
}

static void child_exec(char **argv, const char *log)
{
	sigset_t none;
	int fd;

	/* The plugin blocks SIGTERM/SIGINT for sigwait(); tidefs must not
	 * inherit that mask, nor an ignored SIGPIPE. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && fd != STDIN_FILENO) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	execvp(argv[0], argv);
	dprintf(STDERR_FILENO, "tidefs: cannot run %s: %s\n", argv[0],
		strerror(errno));
	_exit(127);
}

/* Run argv; 0 when it exits 0 within timeout_s, else -1 (killed on
 * timeout, *timed_out set). */
int volume_run(char **argv, const char *log, int timeout_s, bool *timed_out)
{
	int64_t deadline = time_mono_ns() + (int64_t)timeout_s * 1000000000;
	int status;
	pid_t pid, r;

	*timed_out = false;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0)
		child_exec(argv, log);
	while ((r = waitpid(pid, &status, WNOHANG)) == 0) {
		if (time_mono_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			*timed_out = true;
			return -1;
		}
		usleep(20 * 1000);
	}
	if (r < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}
