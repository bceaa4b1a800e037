/* SPDX-License-Identifier: MIT */
/*
 * common — logging, clocks and the few helpers every module shares.
 * Keep it small: anything with a home in a module belongs there.
 */
#ifndef TIDEFS_COMMON_H
#define TIDEFS_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN = 1,
	LOG_LVL_INFO = 2,
	LOG_LVL_DEBUG = 3,
};

/* Messages go to stderr (and syslog once log_use_syslog() was called). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "error|warn|info|debug"; returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);
void log_use_syslog(bool on);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                         \
	do {                                                                   \
		if (log_get_level() >= LOG_LVL_DEBUG)                          \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                   \
	} while (0)

/* CLOCK_REALTIME in nanoseconds, shifted by TIDEFS_CLOCK_OFFSET (seconds,
 * read once; for tests of age-based policies). */
int64_t time_now_ns(void);
/* CLOCK_MONOTONIC in nanoseconds. */
int64_t time_mono_ns(void);
/* The clock's time ns (>= 0) from now, as a deadline for
 * pthread_cond_timedwait() or sem_timedwait(). */
struct timespec time_deadline(clockid_t clk, int64_t ns);

/*
 * Parse a size such as "512M", "50G", "1T", "4096", "1.5G" (binary units,
 * optional trailing "B"/"iB"). Returns 0 or -EINVAL / -ERANGE.
 */
int parse_size(const char *s, uint64_t *out);

/* Format bytes as "1.5 GiB" into buf; returns buf. */
char *format_size(uint64_t bytes, char *buf, size_t len);

/* Parse an unsigned decimal integer that must span the whole string. */
int parse_u64(const char *s, uint64_t *out);

/* Random bytes from getrandom(2); returns 0 or -errno. */
int random_bytes(void *buf, size_t len);

/* n bytes as 2n lowercase hex digits and a NUL into out[2n + 1]. */
void hex_encode(const void *data, size_t n, char *out);

/* 64-bit FNV-1a of n bytes (hash tables and indexes, not security). */
uint64_t fnv1a64(const void *data, size_t n);

/* Write all of buf at offset; returns 0 or -errno. */
int pwrite_all(int fd, const void *buf, size_t len, int64_t off);

/* qsort/bsearch comparator of uint64_t (or of structs that begin with
 * one, by it). */
int u64_cmp(const void *a, const void *b);

/* mkdir -p: path and its missing parents (0755; path itself mode).
 * 0 or -errno. */
int mkdir_p(const char *path, mode_t mode);
/* mkdir -p of the directory path is in (0755). 0 or -errno. */
int mkdir_p_parent(const char *path);

/* Grow a full array v of *cap elements of elem bytes: twice the room (first
 * elements when *cap is 0). Returns the moved array and sets *cap, or NULL
 * when out of memory or the size would overflow (v and *cap unchanged;
 * v is still the caller's to free). */
void *array_grow(void *v, size_t *cap, size_t elem, size_t first);
/* Append x to the growable array *v of *n numbers (room for *cap; starts
 * at 64, doubling). 0, or -ENOMEM with the array as it was. */
int u64_push(uint64_t **v, size_t *n, size_t *cap, uint64_t x);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)     ((a) < (b) ? (a) : (b))
#define MAX(a, b)     ((a) > (b) ? (a) : (b))

#endif
