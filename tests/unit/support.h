// SPDX-License-Identifier: MIT
/*
 * Support shared by the cmocka unit tests (tests/unit/support.c, linked into
 * every unit test): the python3 and source tree the helper scripts come
 * from, and a moto_server on a free loopback port for the tests that talk to
 * a real S3 implementation.
 *
 * moto_server, python3, boto3 and botocore are required test dependencies
 * (scripts/install-deps.sh): a test that cannot start or reach them fails
 * with a message saying why, it never skips.
 */
#ifndef TIDEFS_TESTS_UNIT_SUPPORT_H
#define TIDEFS_TESTS_UNIT_SUPPORT_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

/* $PYTHON3 (set by CTest), else "python3" from PATH. Never NULL. */
const char *support_python(void);

/*
 * buf = the path of NAME in tests/unit of the source tree: under $TIDEFS_SRC
 * (set by CTest), else next to support.c. Returns buf.
 */
char *support_unit_path(char *buf, size_t size, const char *name);

/* Remove dir and everything below it (a test's scratch directory). */
void support_rm_tree(const char *dir);

/* The first max bytes of path (malloc'ed, *len how many); fails the test
 * when it cannot be read. */
unsigned char *support_read_file(const char *path, size_t max, size_t *len);

/* How long moto_start() waits for moto_server to answer HTTP. */
#define MOTO_START_TIMEOUT_S 60

struct moto {
	pid_t pid;	    /* 0 when not running */
	char endpoint[64];  /* "http://127.0.0.1:PORT" */
	char log[PATH_MAX]; /* moto's stdout and stderr (a temp file) */
};

/*
 * Start moto_server (the moto_server command, else PYTHON3 -m moto.server)
 * on a free 127.0.0.1 port, in its own session, with AWS_* test credentials,
 * and wait until it answers an HTTP request (at most MOTO_START_TIMEOUT_S).
 * Returns 0, or -1 after printing to stderr why it did not start and the tail
 * of its log; *m is then stopped. Usable from cmocka group setups (return
 * its result) and from tests (assert it is 0).
 */
int moto_start(struct moto *m);

/* SIGTERM moto's process group, reap it, remove its log. Idempotent. */
void moto_stop(struct moto *m);

/* Print the last lines of moto's log to stderr (when a test failed). */
void moto_print_log_tail(const struct moto *m);

/* Create BUCKET with boto3; fails the current test when that fails. */
void moto_make_bucket(const struct moto *m, const char *bucket);

#endif
