// SPDX-License-Identifier: MIT
/* Logging to stderr or syslog with a runtime level. */
#include "common/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>

static enum log_level cur_level = LOG_LVL_INFO;
static bool to_syslog;

void log_set_level(enum log_level level)
{
	cur_level = level;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

void log_use_syslog(bool on)
{
	if (on && !to_syslog)
		openlog("tidefs", LOG_PID, LOG_DAEMON);
	to_syslog = on;
}

int log_parse_level(const char *s, enum log_level *out)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (strcasecmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_LVL_WARN;
		return 0;
	}
	return -EINVAL;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const tags[] = {"error", "warn", "info", "debug"};
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char line[2048];
	va_list ap;

	if (level > cur_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (to_syslog) {
		syslog(prio[level], "%s", line);
		return;
	}
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	/* One fprintf per line keeps lines whole across threads. */
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ tidefs %s: %s\n",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, tags[level], line);
}
