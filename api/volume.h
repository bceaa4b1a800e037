/* SPDX-License-Identifier: MIT */
/*
 * volume — the Docker volume plugin protocol for tidefs (tidefs-volume).
 *
 * Docker POSTs JSON to /Plugin.Activate and /VolumeDriver.{Create, Remove,
 * Mount, Unmount, Path, Get, List, Capabilities}; volume_plugin_call()
 * answers one such request. The HTTP transport (a unix socket under
 * /run/docker/plugins) lives in volume_main.c.
 *
 * Each volume is one tidefs mount of s3://bucket[/prefix] with its own cache
 * dir (ROOT/volumes/NAME/cache) and mount point (ROOT/volumes/NAME/mnt).
 * Mounts are counted by the ID Docker passes to Mount/Unmount: the first
 * Mount starts tidefs (in the background), the last Unmount unmounts it.
 * Volumes, their options and their mount IDs persist in ROOT/state.json
 * (written to a temporary file and renamed), so a plugin restart keeps the
 * volumes and, for volumes still mounted, their mount counts. Stopping the
 * plugin never unmounts anything: containers keep their data.
 */
#ifndef TIDEFS_API_VOLUME_H
#define TIDEFS_API_VOLUME_H

#include <stddef.h>

struct volume_config {
	const char *root;    /* state dir; created if missing */
	const char *tidefs;  /* daemon binary: a path, or a name on PATH */
	int mount_timeout_s; /* how long one tidefs start may take */
};

/* Opaque; one per plugin process. Calls are serialised internally. */
struct volume_plugin;

/*
 * Open (or create) the state under cfg->root and take its lock. Volumes
 * recorded as mounted whose mount point is no longer mounted lose their
 * mount IDs. Returns 0 or -errno with a message in err.
 */
int volume_plugin_open(const struct volume_config *cfg,
		       struct volume_plugin **out, char *err, size_t errlen);

/* Releases memory and the lock; leaves every mount as it is. */
void volume_plugin_close(struct volume_plugin *vp);

/*
 * Answer one request: path is the URL path (e.g. "/VolumeDriver.Mount"),
 * body the request JSON (len 0 means no body). Sets *resp to the response
 * JSON (malloc'd, the caller frees) and returns the HTTP status: 200 for
 * every protocol answer, including {"Err": "..."} errors; 400 for a body
 * that is not a JSON object; 404 for an unknown path; 500 when out of
 * memory (then *resp may be NULL).
 */
int volume_plugin_call(struct volume_plugin *vp, const char *path,
		       const char *body, size_t len, char **resp);

#endif
