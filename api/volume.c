// SPDX-License-Identifier: MIT
/*
 * The Docker volume plugin protocol for tidefs: volumes, their options, the
 * mount counts by Docker's mount ID, the state file, and starting and
 * stopping one tidefs daemon per mounted volume.
 *
 * DESIGN
 * - One mutex serialises every request. Mount waits for tidefs to start (up
 *   to the mount timeout) while holding it: Docker's calls for one host are
 *   few, and a Mount racing an Unmount or Remove of the same volume must not
 *   interleave. The lock is never held by anything but a request.
 * - The in-memory model is the state file's JSON: vp->vols maps a volume
 *   name to {"Opts": {...}, "CreatedAt": "...", "Mounts": ["ID", ...]}.
 *   Every change is written to ROOT/state.json.tmp, fsynced and renamed over
 *   ROOT/state.json before the request is answered.
 * - tidefs runs without -f: it returns 0 once the mount is live, or exits
 *   non-zero with one "tidefs: ..." line, which becomes the Err. Its start-up
 *   output goes to ROOT/volumes/NAME/start.log, the daemon's log to
 *   ROOT/volumes/NAME/cache/tidefs.log. The daemon is not our child after
 *   it forks, so "mounted" is read from /proc/self/mountinfo and "stopped"
 *   from the cache dir's lock (tidefs holds a flock on CACHE/lock until it
 *   has closed its metadata).
 * - A mount point that is mounted but not in the state (a crash between the
 *   mount and the state write, or a failed unmount) is adopted by the next
 *   Mount; one whose daemon died (ENOTCONN) is detached and mounted afresh.
 */
#include "api/volume.h"
#include "api/volume_i.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#define NAME_MAX_LEN	 128
#define STATE_VERSION	 1
#define UNLOCK_TIMEOUT_S 30
#define MAX_ROOT_LEN	 (PATH_MAX - NAME_MAX_LEN - 64)
#define MAX_OPTION_LEN	 1024

struct volume_plugin {
	pthread_mutex_t lock;
	char *root;	     /* canonical, no trailing slash */
	char *tidefs;	     /* daemon binary */
	int mount_timeout_s; /* per tidefs start */
	int lockfd;	     /* flock on ROOT/lock */
	json_t *vols;	     /* protected by lock; see DESIGN */
};

/* ------------------------------------------------------------ replies -- */

__attribute__((format(printf, 1, 2))) static json_t *err_reply(const char *fmt,
							       ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("volume: %s", msg);
	return json_pack("{s:s}", "Err", msg);
}

static json_t *ok_reply(void)
{
	return json_pack("{s:s}", "Err", "");
}

/* snprintf for error messages, where truncation is fine. */
__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t len,
							  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------- checks -- */

static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return false;
	}
	return true;
}

static bool all_chars(const char *s, const char *extra)
{
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr(extra, c)))
			return false;
	}
	return true;
}

static bool valid_bucket(const char *s)
{
	size_t n = strlen(s);

	return n >= 3 && n <= 63 && all_chars(s, ".-_");
}

static bool valid_prefix(const char *s)
{
	if (strlen(s) > MAX_OPTION_LEN || strstr(s, "//"))
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

static bool valid_cache_size(const char *s)
{
	uint64_t v;

	return parse_size(s, &v) == 0 && v >= (64ull << 20);
}

static bool valid_size(const char *s)
{
	uint64_t v;

	return parse_size(s, &v) == 0;
}

static bool valid_uint(const char *s)
{
	uint64_t v;

	return parse_u64(s, &v) == 0 && v > 0 && v <= 3600;
}

static bool valid_url(const char *s)
{
	if (strncmp(s, "http://", 7) && strncmp(s, "https://", 8))
		return false;
	return strlen(s) < MAX_OPTION_LEN &&
	       all_chars(s, ":/.-_[]%~@!$&'()*+;=?#");
}

static bool valid_word(const char *s)
{
	return *s && strlen(s) <= 128 && all_chars(s, "-_.@+/");
}

static bool valid_log_level(const char *s)
{
	enum log_level l;

	return log_parse_level(s, &l) == 0;
}

static int parse_bool(const char *s)
{
	if (!strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes") ||
	    !strcmp(s, "on") || !*s)
		return 1;
	if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no") ||
	    !strcmp(s, "off"))
		return 0;
	return -1;
}

static bool valid_bool(const char *s)
{
	return parse_bool(s) >= 0;
}

/* FUSE options: plain option words, nothing that looks like a flag. */
static bool valid_fuse_opts(const char *s)
{
	return *s && *s != '-' && strlen(s) < MAX_OPTION_LEN &&
	       all_chars(s, "_=,.:/-");
}

struct opt_def {
	const char *name;
	const char *flag; /* tidefs flag, or NULL when handled apart */
	bool (*valid)(const char *);
	const char *hint;
};

static const struct opt_def opt_defs[] = {
	{"bucket", NULL, valid_bucket, "3-63 letters, digits, '.', '-' or '_'"},
	{"prefix", NULL, valid_prefix, "a key prefix without '//'"},
	{"cache_size", "--cache-size", valid_cache_size,
	 "at least 64M, e.g. 512M, 50G, 1T"},
	{"endpoint_url", "--endpoint-url", valid_url,
	 "http://HOST[:PORT] or https://..."},
	{"region", "--region", valid_word, "e.g. eu-west-1"},
	{"profile", "--profile", valid_word, "a credentials profile name"},
	{"retry_timeout", "--retry-timeout", valid_uint, "seconds, 1-3600"},
	{"sync_interval", "--sync-interval", valid_uint, "seconds, 1-3600"},
	{"chunk_size", "--chunk-size", valid_size, "a power of two, 64K-64M"},
	{"fetch_threads", "--fetch-threads", valid_uint, "a count"},
	{"import_parallel", "--import-parallel", valid_uint, "a count"},
	{"log_level", "--log-level", valid_log_level,
	 "error, warn, info or debug"},
	{"no_verify_ssl", "--no-verify-ssl", valid_bool, "true or false"},
	{"virtual_hosted", "--virtual-hosted", valid_bool, "true or false"},
	{"no_passthrough", "--no-passthrough", valid_bool, "true or false"},
	{"allow_other", NULL, valid_bool, "true (default) or false"},
	{"o", NULL, valid_fuse_opts, "FUSE options, e.g. ro"},
};

static const struct opt_def *find_opt(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(opt_defs); i++)
		if (!strcmp(opt_defs[i].name, name))
			return &opt_defs[i];
	return NULL;
}

static const char *opt_get(json_t *vol, const char *key)
{
	return json_string_value(
		json_object_get(json_object_get(vol, "Opts"), key));
}

/* -------------------------------------------------------------- paths -- */

static void vol_path(const struct volume_plugin *vp, const char *name,
		     const char *leaf, char *out, size_t len)
{
	snprintf(out, len, "%s/volumes/%s%s%s", vp->root, name, leaf ? "/" : "",
		 leaf ? leaf : "");
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

/* ------------------------------------------------------------ state -- */

static int save_state(struct volume_plugin *vp)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	json_t *st;
	int fd, dfd, ret = 0;

	snprintf(path, sizeof(path), "%s/state.json", vp->root);
	snprintf(tmp, sizeof(tmp), "%s/state.json.tmp", vp->root);
	st = json_pack("{s:i, s:O}", "version", STATE_VERSION, "volumes",
		       vp->vols);
	if (!st)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		goto out_free;
	}
	if (json_dumpfd(st, fd, JSON_INDENT(2) | JSON_SORT_KEYS) < 0 ||
	    write(fd, "\n", 1) != 1)
		ret = errno ? -errno : -EIO;
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	close(fd);
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret) {
		unlink(tmp);
		goto out_free;
	}
	dfd = open(vp->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
out_free:
	json_decref(st);
	if (ret)
		log_error("volume: cannot write %s: %s", path, strerror(-ret));
	return ret;
}

static bool valid_volume_record(const char *name, json_t *v)
{
	json_t *opts = json_object_get(v, "Opts");
	json_t *mounts = json_object_get(v, "Mounts");
	const char *key;
	json_t *val;
	size_t i;

	if (!valid_name(name) || !json_is_object(opts) ||
	    !json_is_array(mounts) ||
	    !json_is_string(json_object_get(v, "CreatedAt")) ||
	    !json_is_string(json_object_get(opts, "bucket")))
		return false;
	json_object_foreach(opts, key, val)
	{
		const struct opt_def *d = find_opt(key);
		if (!d || !json_is_string(val) ||
		    !d->valid(json_string_value(val)))
			return false;
	}
	json_array_foreach(mounts, i, val)
	{
		if (!json_is_string(val))
			return false;
	}
	return true;
}

static int load_state(struct volume_plugin *vp, char *err, size_t errlen)
{
	char path[PATH_MAX], mnt[PATH_MAX];
	json_error_t jerr;
	json_t *st, *vols, *v;
	const char *name;
	bool changed = false;

	snprintf(path, sizeof(path), "%s/state.json", vp->root);
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		vp->vols = json_object();
		return vp->vols ? 0 : -ENOMEM;
	}
	st = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!st) {
		set_err(err, errlen, "%s: %s (line %d)", path, jerr.text,
			jerr.line);
		return -EINVAL;
	}
	vols = json_object_get(st, "volumes");
	if (!json_is_object(vols) || json_integer_value(json_object_get(
					     st, "version")) != STATE_VERSION) {
		set_err(err, errlen, "%s: not a tidefs-volume state file",
			path);
		json_decref(st);
		return -EINVAL;
	}
	json_object_foreach(vols, name, v)
	{
		if (!valid_volume_record(name, v)) {
			set_err(err, errlen, "%s: bad record for volume '%s'",
				path, name);
			json_decref(st);
			return -EINVAL;
		}
		vol_path(vp, name, "mnt", mnt, sizeof(mnt));
		if (json_array_size(json_object_get(v, "Mounts")) > 0 &&
		    !volume_is_mounted(mnt)) {
			log_warn("volume: %s is no longer mounted; forgetting "
				 "its %zu mount(s)",
				 name,
				 json_array_size(json_object_get(v, "Mounts")));
			json_array_clear(json_object_get(v, "Mounts"));
			changed = true;
		}
	}
	vp->vols = json_incref(vols);
	json_decref(st);
	return changed ? save_state(vp) : 0;
}

/* ------------------------------------------------------ tidefs child -- */

struct argv_buf {
	char *v[48];
	int n;
};

static void arg_add(struct argv_buf *a, const char *s)
{
	if (a->n < (int)ARRAY_SIZE(a->v) - 1)
		a->v[a->n++] = (char *)s;
	a->v[a->n] = NULL;
}

/* Append the tidefs flags a volume's options ask for. */
static void add_opt_flags(struct argv_buf *a, json_t *opts)
{
	for (size_t i = 0; i < ARRAY_SIZE(opt_defs); i++) {
		const struct opt_def *d = &opt_defs[i];
		const char *v =
			json_string_value(json_object_get(opts, d->name));
		if (!v || !d->flag)
			continue;
		if (d->valid == valid_bool) {
			if (parse_bool(v) == 1)
				arg_add(a, d->flag);
		} else {
			arg_add(a, d->flag);
			arg_add(a, v);
		}
	}
}

/* FUSE splits -o at commas; a backslash escapes one (and itself). */
static void escape_commas(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; *in && o + 3 < len; in++) {
		if (*in == ',' || *in == '\\')
			out[o++] = '\\';
		out[o++] = *in;
	}
	out[o] = '\0';
}

static int start_tidefs(struct volume_plugin *vp, const char *name, json_t *vol,
			char *err, size_t errlen)
{
	json_t *opts = json_object_get(vol, "Opts");
	const char *prefix = opt_get(vol, "prefix");
	const char *allow = opt_get(vol, "allow_other");
	const char *extra = opt_get(vol, "o");
	char cache[PATH_MAX], mnt[PATH_MAX], log[PATH_MAX], url[1200],
		esc[2400], fuse[2600];
	struct argv_buf a = {.n = 0};
	bool timed_out;

	vol_path(vp, name, "cache", cache, sizeof(cache));
	vol_path(vp, name, "mnt", mnt, sizeof(mnt));
	vol_path(vp, name, "start.log", log, sizeof(log));
	if (mkdir_p(cache, 0700) < 0 || mkdir_p(mnt, 0755) < 0) {
		set_err(err, errlen, "cannot create %s: %s", mnt,
			strerror(errno));
		return -1;
	}
	if (volume_wait_unlocked(cache, UNLOCK_TIMEOUT_S) < 0) {
		set_err(err, errlen,
			"the previous tidefs of volume '%s' has not exited",
			name);
		return -1;
	}
	while (prefix && *prefix == '/')
		prefix++;
	snprintf(url, sizeof(url), "s3://%s%s%s", opt_get(vol, "bucket"),
		 prefix && *prefix ? "/" : "", prefix ? prefix : "");
	escape_commas(url, esc, sizeof(esc));
	snprintf(fuse, sizeof(fuse), "fsname=%s%s%s%s", esc,
		 !allow || parse_bool(allow) == 1 ? ",allow_other" : "",
		 extra ? "," : "", extra ? extra : "");
	arg_add(&a, vp->tidefs);
	arg_add(&a, "--cache-dir");
	arg_add(&a, cache);
	add_opt_flags(&a, opts);
	arg_add(&a, "-o");
	arg_add(&a, fuse);
	arg_add(&a, url);
	arg_add(&a, mnt);
	log_info("volume: mounting %s: %s on %s", name, url, mnt);
	if (volume_run(a.v, log, vp->mount_timeout_s, &timed_out) < 0 ||
	    !volume_is_mounted(mnt)) {
		if (timed_out)
			set_err(err, errlen, "tidefs did not mount %s in %d s",
				url, vp->mount_timeout_s);
		else
			volume_last_error_line(log, err, errlen);
		return -1;
	}
	return 0;
}

/* Mounted and answering, else (re)mount. */
static int ensure_mounted(struct volume_plugin *vp, const char *name,
			  json_t *vol, char *err, size_t errlen)
{
	char mnt[PATH_MAX];
	struct statfs st;

	vol_path(vp, name, "mnt", mnt, sizeof(mnt));
	if (volume_is_mounted(mnt)) {
		/* statfs always reaches the daemon (stat may be answered from
		 * the kernel's attribute cache): ENOTCONN means it died. */
		if (statfs(mnt, &st) == 0)
			return 0;
		log_warn("volume: %s: stale mount (%s); detaching", name,
			 strerror(errno));
		umount2(mnt, MNT_DETACH);
	}
	return start_tidefs(vp, name, vol, err, errlen);
}

static int unmount_volume(struct volume_plugin *vp, const char *name, char *err,
			  size_t errlen)
{
	char mnt[PATH_MAX], cache[PATH_MAX], log[PATH_MAX];
	char *argv[] = {"fusermount3", "-u", mnt, NULL};
	bool timed_out;

	vol_path(vp, name, "mnt", mnt, sizeof(mnt));
	vol_path(vp, name, "cache", cache, sizeof(cache));
	vol_path(vp, name, "umount.log", log, sizeof(log));
	log_info("volume: unmounting %s from %s", name, mnt);
	if (umount2(mnt, UMOUNT_NOFOLLOW) < 0) {
		int e = errno;
		if (!volume_is_mounted(mnt)) {
			/* gone meanwhile */
		} else if (e != EPERM) {
			set_err(err, errlen, "cannot unmount %s: %s", mnt,
				strerror(e));
			return -1;
		} else if (volume_run(argv, log, 30, &timed_out) < 0) {
			volume_last_error_line(log, err, errlen);
			return -1;
		}
	}
	if (volume_wait_unlocked(cache, UNLOCK_TIMEOUT_S) < 0)
		log_warn("volume: tidefs of %s still running %d s after the "
			 "unmount",
			 name, UNLOCK_TIMEOUT_S);
	return 0;
}

/* ---------------------------------------------------------- requests -- */

static const char *req_str(json_t *req, const char *key)
{
	return json_string_value(json_object_get(req, key));
}

/* The volume a request names, or NULL with *reply set to the Err. */
static json_t *req_volume(struct volume_plugin *vp, json_t *req,
			  const char **name, json_t **reply)
{
	json_t *vol;

	*name = req_str(req, "Name");
	if (!*name || !**name) {
		*reply = err_reply("missing volume Name");
		return NULL;
	}
	vol = json_object_get(vp->vols, *name);
	if (!vol)
		*reply = err_reply("no such volume: %s", *name);
	return vol;
}

static json_t *h_activate(struct volume_plugin *vp, json_t *req)
{
	(void)vp;
	(void)req;
	return json_pack("{s:[s]}", "Implements", "VolumeDriver");
}

static json_t *h_capabilities(struct volume_plugin *vp, json_t *req)
{
	(void)vp;
	(void)req;
	return json_pack("{s:{s:s}}", "Capabilities", "Scope", "local");
}

/* Validated copy of a Create request's Opts, or NULL with *reply set. */
static json_t *check_opts(json_t *in, json_t **reply)
{
	json_t *opts = json_object(), *val;
	const char *key;
	char norm[64];

	if (in && !json_is_null(in) && !json_is_object(in)) {
		*reply = err_reply("Opts must be an object");
		goto out_fail;
	}
	json_object_foreach(in, key, val)
	{
		const struct opt_def *d;
		const char *s = json_string_value(val);
		size_t i;

		for (i = 0; key[i] && i < sizeof(norm) - 1; i++)
			norm[i] = key[i] == '-' ? '_' : key[i];
		norm[i] = '\0';
		d = find_opt(norm);
		if (!d) {
			*reply = err_reply(
				"unknown option '%.64s' (known: bucket, prefix,"
				" cache_size, endpoint_url, region, profile,"
				" retry_timeout, sync_interval, chunk_size,"
				" fetch_threads,"
				" import_parallel, log_level, no_verify_ssl,"
				" virtual_hosted, no_passthrough, allow_other,"
				" o)",
				key);
			goto out_fail;
		}
		if (!s || !d->valid(s)) {
			*reply = err_reply("bad value '%.200s' for option '%s' "
					   "(%s)",
					   s ? s : "(not a string)", d->name,
					   d->hint);
			goto out_fail;
		}
		json_object_set_new(opts, d->name, json_string(s));
	}
	return opts;
out_fail:
	json_decref(opts);
	return NULL;
}

static json_t *h_create(struct volume_plugin *vp, json_t *req)
{
	const char *name = req_str(req, "Name");
	char dir[PATH_MAX], now[32];
	json_t *opts, *old, *reply = NULL, *vol;
	time_t t = time(NULL);
	struct tm tm;

	if (!name || !valid_name(name))
		return err_reply("bad volume name '%.140s' (1-%d letters, "
				 "digits, '_', '.', '-'; a letter or digit "
				 "first)",
				 name ? name : "", NAME_MAX_LEN);
	opts = check_opts(json_object_get(req, "Opts"), &reply);
	if (!opts)
		return reply;
	old = json_object_get(vp->vols, name);
	if (old) {
		bool same = json_object_size(opts) == 0 ||
			    json_equal(opts, json_object_get(old, "Opts"));
		json_decref(opts);
		if (same)
			return ok_reply();
		return err_reply("volume %s already exists with other options",
				 name);
	}
	if (!json_object_get(opts, "bucket")) {
		json_decref(opts);
		return err_reply(
			"missing option 'bucket' (docker volume create "
			"-d tidefs -o bucket=BUCKET [-o prefix=...])");
	}
	gmtime_r(&t, &tm);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
	vol = json_pack("{s:o, s:s, s:[]}", "Opts", opts, "CreatedAt", now,
			"Mounts");
	vol_path(vp, name, NULL, dir, sizeof(dir));
	if (!vol || mkdir_p(dir, 0700) < 0) {
		json_decref(vol);
		return err_reply("cannot create %s: %s", dir, strerror(errno));
	}
	json_object_set_new(vp->vols, name, vol);
	if (save_state(vp) < 0) {
		json_object_del(vp->vols, name);
		return err_reply("cannot save the plugin state");
	}
	log_info("volume: created %s", name);
	return ok_reply();
}

static json_t *h_remove(struct volume_plugin *vp, json_t *req)
{
	char dir[PATH_MAX], mnt[PATH_MAX];
	json_t *reply = NULL, *vol;
	const char *name;
	size_t n;

	vol = req_volume(vp, req, &name, &reply);
	if (!vol)
		return reply;
	n = json_array_size(json_object_get(vol, "Mounts"));
	vol_path(vp, name, NULL, dir, sizeof(dir));
	vol_path(vp, name, "mnt", mnt, sizeof(mnt));
	if (n > 0)
		return err_reply("volume %s is in use by %zu mount(s)", name,
				 n);
	if (volume_is_mounted(mnt))
		return err_reply("volume %s is still mounted on %s", name, mnt);
	/* FTW_MOUNT: never descend into anything mounted under the dir. */
	if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 &&
	    errno != ENOENT)
		return err_reply("cannot remove %s: %s", dir, strerror(errno));
	json_incref(vol);
	json_object_del(vp->vols, name);
	if (save_state(vp) < 0) {
		json_object_set_new(vp->vols, name, vol);
		return err_reply("cannot save the plugin state");
	}
	json_decref(vol);
	log_info("volume: removed %s", name);
	return ok_reply();
}

static size_t find_id(json_t *mounts, const char *id)
{
	json_t *v;
	size_t i;

	json_array_foreach(mounts, i, v)
	{
		if (!strcmp(json_string_value(v), id))
			return i;
	}
	return (size_t)-1;
}

static json_t *h_mount(struct volume_plugin *vp, json_t *req)
{
	const char *name, *id = req_str(req, "ID");
	char mnt[PATH_MAX], err[1024];
	json_t *reply = NULL, *vol, *mounts;

	vol = req_volume(vp, req, &name, &reply);
	if (!vol)
		return reply;
	if (!id || !*id)
		return err_reply("missing mount ID");
	mounts = json_object_get(vol, "Mounts");
	if (ensure_mounted(vp, name, vol, err, sizeof(err)) < 0)
		return err_reply("cannot mount volume %s: %s", name, err);
	if (find_id(mounts, id) == (size_t)-1) {
		json_array_append_new(mounts, json_string(id));
		if (save_state(vp) < 0) {
			json_array_remove(mounts, json_array_size(mounts) - 1);
			return err_reply("cannot save the plugin state");
		}
	}
	vol_path(vp, name, "mnt", mnt, sizeof(mnt));
	log_info("volume: %s mounted for %s (%zu mount(s))", name, id,
		 json_array_size(mounts));
	return json_pack("{s:s, s:s}", "Mountpoint", mnt, "Err", "");
}

static json_t *h_unmount(struct volume_plugin *vp, json_t *req)
{
	const char *name, *id = req_str(req, "ID");
	char mnt[PATH_MAX], err[1024];
	json_t *reply = NULL, *vol, *mounts;
	size_t i;

	vol = req_volume(vp, req, &name, &reply);
	if (!vol)
		return reply;
	if (!id || !*id)
		return err_reply("missing mount ID");
	mounts = json_object_get(vol, "Mounts");
	i = find_id(mounts, id);
	if (i != (size_t)-1) {
		json_array_remove(mounts, i);
		if (save_state(vp) < 0)
			return err_reply("cannot save the plugin state");
	} else {
		log_warn("volume: %s: unmount for unknown ID %s", name, id);
	}
	vol_path(vp, name, "mnt", mnt, sizeof(mnt));
	if (json_array_size(mounts) == 0 && volume_is_mounted(mnt) &&
	    unmount_volume(vp, name, err, sizeof(err)) < 0)
		return err_reply("cannot unmount volume %s: %s", name, err);
	log_info("volume: %s unmounted for %s (%zu mount(s) left)", name, id,
		 json_array_size(mounts));
	return ok_reply();
}

/* The mount point while mounted, else "". */
static const char *live_mountpoint(struct volume_plugin *vp, const char *name,
				   char *buf, size_t len)
{
	vol_path(vp, name, "mnt", buf, len);
	return volume_is_mounted(buf) ? buf : "";
}

static json_t *h_path(struct volume_plugin *vp, json_t *req)
{
	char mnt[PATH_MAX];
	json_t *reply = NULL;
	const char *name;

	if (!req_volume(vp, req, &name, &reply))
		return reply;
	return json_pack("{s:s, s:s}", "Mountpoint",
			 live_mountpoint(vp, name, mnt, sizeof(mnt)), "Err",
			 "");
}

static json_t *h_get(struct volume_plugin *vp, json_t *req)
{
	char mnt[PATH_MAX], cache[PATH_MAX];
	json_t *reply = NULL, *vol;
	const char *name, *mp;

	vol = req_volume(vp, req, &name, &reply);
	if (!vol)
		return reply;
	mp = live_mountpoint(vp, name, mnt, sizeof(mnt));
	vol_path(vp, name, "cache", cache, sizeof(cache));
	return json_pack(
		"{s:{s:s, s:s, s:O, s:{s:O, s:i, s:b, s:s}}, s:s}", "Volume",
		"Name", name, "Mountpoint", mp, "CreatedAt",
		json_object_get(vol, "CreatedAt"), "Status", "Options",
		json_object_get(vol, "Opts"), "Mounts",
		(json_int_t)json_array_size(json_object_get(vol, "Mounts")),
		"Mounted", *mp != '\0', "CacheDir", cache, "Err", "");
}

static json_t *h_list(struct volume_plugin *vp, json_t *req)
{
	json_t *list = json_array(), *vol;
	char mnt[PATH_MAX];
	const char *name;

	(void)req;
	json_object_foreach(vp->vols, name, vol)
	{
		json_array_append_new(
			list,
			json_pack("{s:s, s:s, s:O}", "Name", name, "Mountpoint",
				  live_mountpoint(vp, name, mnt, sizeof(mnt)),
				  "CreatedAt",
				  json_object_get(vol, "CreatedAt")));
	}
	return json_pack("{s:o, s:s}", "Volumes", list, "Err", "");
}

static const struct {
	const char *path;
	json_t *(*fn)(struct volume_plugin *, json_t *);
} routes[] = {
	{"/Plugin.Activate", h_activate},
	{"/VolumeDriver.Create", h_create},
	{"/VolumeDriver.Remove", h_remove},
	{"/VolumeDriver.Mount", h_mount},
	{"/VolumeDriver.Unmount", h_unmount},
	{"/VolumeDriver.Path", h_path},
	{"/VolumeDriver.Get", h_get},
	{"/VolumeDriver.List", h_list},
	{"/VolumeDriver.Capabilities", h_capabilities},
};

static int reply_with(json_t *reply, int status, char **resp)
{
	*resp = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	json_decref(reply);
	return *resp ? status : 500;
}

int volume_plugin_call(struct volume_plugin *vp, const char *path,
		       const char *body, size_t len, char **resp)
{
	json_error_t jerr;
	json_t *req, *reply = NULL;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(routes); i++)
		if (!strcmp(routes[i].path, path))
			break;
	if (i == ARRAY_SIZE(routes))
		return reply_with(err_reply("unknown endpoint %.100s", path),
				  404, resp);
	req = len ? json_loadb(body, len, JSON_DECODE_ANY, &jerr)
		  : json_object();
	if (req && json_is_null(req)) {
		json_decref(req);
		req = json_object();
	}
	if (!req || !json_is_object(req)) {
		json_decref(req);
		return reply_with(
			err_reply("request body is not a JSON object"), 400,
			resp);
	}
	pthread_mutex_lock(&vp->lock);
	reply = routes[i].fn(vp, req);
	pthread_mutex_unlock(&vp->lock);
	json_decref(req);
	return reply_with(reply, 200, resp);
}

/* ------------------------------------------------------------- setup -- */

int volume_plugin_open(const struct volume_config *cfg,
		       struct volume_plugin **out, char *err, size_t errlen)
{
	struct volume_plugin *vp;
	char path[PATH_MAX];
	int ret;

	err[0] = '\0';
	ret = mkdir_p(cfg->root, 0700);
	if (ret < 0) {
		set_err(err, errlen, "%s: %s", cfg->root, strerror(-ret));
		return ret;
	}
	vp = calloc(1, sizeof(*vp));
	if (!vp)
		return -ENOMEM;
	vp->lockfd = -1;
	pthread_mutex_init(&vp->lock, NULL);
	vp->mount_timeout_s = cfg->mount_timeout_s;
	vp->root = realpath(cfg->root, NULL);
	vp->tidefs = strdup(cfg->tidefs);
	if (!vp->root || !vp->tidefs) {
		ret = -errno;
		set_err(err, errlen, "%s: %s", cfg->root, strerror(errno));
		goto out_free;
	}
	if (strlen(vp->root) > MAX_ROOT_LEN) {
		ret = -ENAMETOOLONG;
		set_err(err, errlen, "%s: path too long", vp->root);
		goto out_free;
	}
	snprintf(path, sizeof(path), "%s/lock", vp->root);
	vp->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (vp->lockfd < 0 || flock(vp->lockfd, LOCK_EX | LOCK_NB) < 0) {
		ret = -errno;
		set_err(err, errlen, "%s: %s", path,
			errno == EWOULDBLOCK ? "in use by another tidefs-volume"
					     : strerror(errno));
		goto out_free;
	}
	snprintf(path, sizeof(path), "%s/volumes", vp->root);
	ret = mkdir_p(path, 0700);
	if (ret < 0) {
		set_err(err, errlen, "%s: %s", path, strerror(-ret));
		goto out_free;
	}
	ret = load_state(vp, err, errlen);
	if (ret < 0) {
		if (!err[0])
			set_err(err, errlen, "state: %s", strerror(-ret));
		goto out_free;
	}
	*out = vp;
	return 0;
out_free:
	volume_plugin_close(vp);
	return ret < 0 ? ret : -EINVAL;
}

void volume_plugin_close(struct volume_plugin *vp)
{
	if (!vp)
		return;
	json_decref(vp->vols);
	if (vp->lockfd >= 0)
		close(vp->lockfd);
	pthread_mutex_destroy(&vp->lock);
	free(vp->root);
	free(vp->tidefs);
	free(vp);
}
