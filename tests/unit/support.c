// SPDX-License-Identifier: MIT
/*
 * Support shared by the unit tests: python3 and the source tree for helper
 * scripts, and moto_server start-up (see support.h). Plain libc and cmocka
 * only, so that any unit test can link it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

const char *support_python(void)
{
	const char *p = getenv("PYTHON3");

	return p && *p ? p : "python3";
}

char *support_unit_path(char *buf, size_t size, const char *name)
{
	const char *src = getenv("TIDEFS_SRC"), *slash;

	if (src && *src) {
		snprintf(buf, size, "%s/tests/unit/%s", src, name);
		return buf;
	}
	/* CMake compiles with absolute paths: __FILE__ is
	 * SRC/tests/unit/support.c. */
	slash = strrchr(__FILE__, '/');
	snprintf(buf, size, "%.*s%s", slash ? (int)(slash + 1 - __FILE__) : 0,
		 __FILE__, name);
	return buf;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd, port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Wait up to ms for fd to become ready for events. */
static bool wait_fd(int fd, short events, int ms)
{
	struct pollfd p = {.fd = fd, .events = events};

	return poll(&p, 1, ms) == 1 && (p.revents & events);
}

/* Does an HTTP server answer "GET /" on 127.0.0.1:port within ~2 s? */
static bool http_answers(int port)
{
	static const char req[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
	struct sockaddr_in a = {.sin_family = AF_INET};
	char buf[16] = "";
	bool ok = false;
	int fd;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    errno != EINPROGRESS)
		goto out_close;
	if (!wait_fd(fd, POLLOUT, 2000))
		goto out_close;
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(req) - 1)
		goto out_close;
	if (!wait_fd(fd, POLLIN, 2000))
		goto out_close;
	ok = recv(fd, buf, sizeof(buf) - 1, 0) >= 5 &&
	     !strncmp(buf, "HTTP/", 5);
out_close:
	close(fd);
	return ok;
}

static void exec_moto(const char *log, const char *port)
{
	int fd = open(log, O_WRONLY | O_APPEND);
	int null = open("/dev/null", O_RDONLY);

	/* Never outlive the test, even when it is killed (ctest timeout). */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	setsid();
	if (null >= 0)
		dup2(null, 0);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	setenv("AWS_ACCESS_KEY_ID", "testing", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "testing", 1);
	execlp("moto_server", "moto_server", "-H", "127.0.0.1", "-p", port,
	       (char *)NULL);
	execlp(support_python(), support_python(), "-m", "moto.server", "-H",
	       "127.0.0.1", "-p", port, (char *)NULL);
	fprintf(stderr, "cannot run moto_server or %s -m moto.server: %s\n",
		support_python(), strerror(errno));
	_exit(127);
}

void moto_print_log_tail(const struct moto *m)
{
	char cmd[PATH_MAX + 32];

	if (!m->log[0])
		return;
	fprintf(stderr, "--- last lines of %s\n", m->log);
	snprintf(cmd, sizeof(cmd), "tail -n 25 '%s' >&2", m->log);
	if (system(cmd) != 0)
		fprintf(stderr, "(cannot read it)\n");
}

int moto_start(struct moto *m)
{
	char port_s[16];
	double deadline;
	int port = free_port(), fd, st;

	memset(m, 0, sizeof(*m));
	snprintf(m->log, sizeof(m->log), "/tmp/tidefs-moto-XXXXXX.log");
	fd = mkstemps(m->log, 4);
	if (fd < 0 || port < 0) {
		fprintf(stderr, "moto_start: no log file or port: %s\n",
			strerror(errno));
		m->log[0] = '\0';
		return -1;
	}
	close(fd);
	snprintf(port_s, sizeof(port_s), "%d", port);
	snprintf(m->endpoint, sizeof(m->endpoint), "http://127.0.0.1:%d", port);
	m->pid = fork();
	if (m->pid == 0)
		exec_moto(m->log, port_s);
	if (m->pid < 0) {
		fprintf(stderr, "moto_start: fork: %s\n", strerror(errno));
		m->pid = 0;
		return -1;
	}
	deadline = now_s() + MOTO_START_TIMEOUT_S;
	while (!http_answers(port)) {
		if (waitpid(m->pid, &st, WNOHANG) == m->pid) {
			m->pid = 0;
			fprintf(stderr,
				"moto_server exited (status %d) before "
				"answering on %s; it is a required test "
				"dependency (scripts/install-deps.sh)\n",
				WIFEXITED(st) ? WEXITSTATUS(st) : -1,
				m->endpoint);
			goto out_fail;
		}
		if (now_s() > deadline) {
			fprintf(stderr,
				"moto_server (pid %d) did not answer on %s "
				"within %d s\n",
				(int)m->pid, m->endpoint, MOTO_START_TIMEOUT_S);
			goto out_fail;
		}
		usleep(100 * 1000);
	}
	return 0;

out_fail:
	moto_print_log_tail(m);
	moto_stop(m);
	return -1;
}

void moto_stop(struct moto *m)
{
	if (m->pid > 0) {
		/* Its own session: the group is moto and its children. */
		if (kill(-m->pid, SIGTERM))
			kill(m->pid, SIGTERM);
		waitpid(m->pid, NULL, 0);
		m->pid = 0;
	}
	if (m->log[0]) {
		unlink(m->log);
		m->log[0] = '\0';
	}
}

void moto_make_bucket(const struct moto *m, const char *bucket)
{
	char cmd[1024];
	int ret;

	snprintf(
		cmd, sizeof(cmd),
		"'%s' -c \"import boto3; boto3.client('s3', endpoint_url="
		"'%s', region_name='us-east-1', aws_access_key_id='testing', "
		"aws_secret_access_key='testing').create_bucket(Bucket='%s')\"",
		support_python(), m->endpoint, bucket);
	ret = system(cmd);
	if (ret != 0)
		fail_msg("cannot create bucket %s on moto_server at %s "
			 "(system: %d)",
			 bucket, m->endpoint, ret);
}

static int rm_fn(const char *path, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void support_rm_tree(const char *dir)
{
	nftw(dir, rm_fn, 16, FTW_DEPTH | FTW_PHYS);
}

unsigned char *support_read_file(const char *path, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char *buf;
	ssize_t n;

	assert_true(fd >= 0);
	buf = malloc(max);
	assert_non_null(buf);
	n = pread(fd, buf, max, 0);
	assert_true(n >= 0);
	close(fd);
	*len = (size_t)n;
	return buf;
}
