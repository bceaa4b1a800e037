/* SPDX-License-Identifier: MIT */
/* Private to api/volume*.c: system helpers of the volume plugin. */
#ifndef TIDEFS_API_VOLUME_I_H
#define TIDEFS_API_VOLUME_I_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Whether path (canonical) is a mount point in /proc/self/mountinfo. */
bool volume_is_mounted(const char *path);

/* Wait until no process holds a flock on CACHE/lock (tidefs holds it until
 * its metadata is closed). Returns 0, or -EBUSY after timeout_s. */
int volume_wait_unlocked(const char *cache, int timeout_s);

/*
 * Run argv (argv[0] looked up on PATH) with stdout and stderr in log
 * (truncated), stdin /dev/null, every signal unblocked and at its default.
 * Returns 0 when it exits 0 within timeout_s; else -1, with *timed_out set
 * when it was killed at the deadline.
 */
int volume_run(char **argv, const char *log, int timeout_s, bool *timed_out);

/* Into out: the last "tidefs: ..." line of log, else a pointer to log. */
void volume_last_error_line(const char *log, char *out, size_t len);

#endif
