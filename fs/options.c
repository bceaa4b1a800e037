// SPDX-License-Identifier: MIT
/* Command line and environment parsing for the tidefs daemon. */
#include "fs/fs.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
	OPT_CACHE_DIR = 256,
	OPT_CACHE_SIZE,
	OPT_ENDPOINT,
	OPT_REGION,
	OPT_PROFILE,
	OPT_LOG_LEVEL,
	OPT_RETRY,
	OPT_SYNC,
	OPT_INSECURE,
	OPT_VHOST,
	OPT_CHUNK,
	OPT_FETCH,
	OPT_IMPORT,
	OPT_HIGH,
	OPT_LOW,
	OPT_CONFLICTS,
	OPT_API_LISTEN,
	OPT_API_CREDS,
	OPT_NO_PT,
};

static const struct option long_opts[] = {
	{"cache-dir", required_argument, NULL, OPT_CACHE_DIR},
	{"cache-size", required_argument, NULL, OPT_CACHE_SIZE},
	{"endpoint-url", required_argument, NULL, OPT_ENDPOINT},
	{"region", required_argument, NULL, OPT_REGION},
	{"profile", required_argument, NULL, OPT_PROFILE},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"retry-timeout", required_argument, NULL, OPT_RETRY},
	{"sync-interval", required_argument, NULL, OPT_SYNC},
	{"no-verify-ssl", no_argument, NULL, OPT_INSECURE},
	{"virtual-hosted", no_argument, NULL, OPT_VHOST},
	{"chunk-size", required_argument, NULL, OPT_CHUNK},
	{"fetch-threads", required_argument, NULL, OPT_FETCH},
	{"import-parallel", required_argument, NULL, OPT_IMPORT},
	{"high-watermark", required_argument, NULL, OPT_HIGH},
	{"low-watermark", required_argument, NULL, OPT_LOW},
	{"export-conflicts", required_argument, NULL, OPT_CONFLICTS},
	{"api-listen", required_argument, NULL, OPT_API_LISTEN},
	{"api-credentials", required_argument, NULL, OPT_API_CREDS},
	{"no-passthrough", no_argument, NULL, OPT_NO_PT},
	{"foreground", no_argument, NULL, 'f'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

void fs_usage(const char *prog)
{
	printf("usage: %s [OPTIONS] s3://BUCKET[/PREFIX] MOUNTPOINT\n"
	       "\n"
	       "Mount an S3 bucket (or a prefix of one) as a local file "
	       "system\n"
	       "with a local data cache.\n"
	       "\n"
	       "  --cache-dir DIR        cache directory (LMDB metadata and "
	       "data)"
	       " [TIDEFS_CACHE_DIR]\n"
	       "  --cache-size SIZE      cache capacity, e.g. 512M, 50G, 1T;\n"
	       "                         default 80%% of DIR's free space at "
	       "the"
	       " first mount,\n"
	       "                         remembered in the cache"
	       " [TIDEFS_CACHE_SIZE]\n"
	       "  --endpoint-url URL     S3 endpoint (default AWS for the"
	       " region) [TIDEFS_ENDPOINT_URL]\n"
	       "  --region R             region (default AWS_REGION,"
	       " AWS_DEFAULT_REGION, us-east-1)\n"
	       "  --profile NAME         profile in the AWS shared credentials"
	       " file\n"
	       "  --virtual-hosted       bucket.host addressing (default: path"
	       " style with\n"
	       "                         --endpoint-url, virtual-hosted on"
	       " AWS)\n"
	       "  --no-verify-ssl        do not verify TLS certificates\n"
	       "  --retry-timeout SECS   give up on a failing S3 request after"
	       " SECS (default 20)\n"
	       "  --sync-interval SECS   sync the metadata every SECS while it"
	       " changes\n"
	       "                         (default 5): what a power loss can"
	       " lose\n"
	       "  --chunk-size SIZE      cache granularity (default 1M; fixed "
	       "at"
	       " first mount)\n"
	       "  --fetch-threads N      parallel range GETs (default 16)\n"
	       "  --import-parallel N    parallel HeadObject at import (default"
	       " 32)\n"
	       "  --high-watermark PCT   evict above PCT%% of the cache size"
	       " (default 90)\n"
	       "  --low-watermark PCT    evict down to PCT%% (default 75)\n"
	       "  --export-conflicts fail|overwrite\n"
	       "                         an export over an object changed in S3"
	       " fails\n"
	       "                         (default) or overwrites it\n"
	       "  --api-listen ADDR      serve the FSx API on 127.0.0.1:PORT or"
	       " unix:/path\n"
	       "  --api-credentials FILE keys the FSx API accepts (AWS"
	       " credentials format)\n"
	       "  --no-passthrough       read cached data through tidefs even"
	       " where the\n"
	       "                         kernel could read it directly (Linux"
	       " 6.9+)\n"
	       "  -f, --foreground       stay in the foreground, log to "
	       "stderr\n"
	       "  -o OPT[,OPT...]        mount options: allow_other, ro, ...\n"
	       "  --log-level LEVEL      error, warn, info (default), debug\n"
	       "  -h, --help             this text\n"
	       "  -V, --version          print the version\n"
	       "\n"
	       "Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /"
	       " AWS_SESSION_TOKEN,\n"
	       "or the shared credentials file (~/.aws/credentials,"
	       " AWS_PROFILE).\n"
	       "Unmount with: fusermount3 -u MOUNTPOINT\n"
	       "\n"
	       "       %s check CACHE_DIR\n"
	       "       %s salvage CACHE_DIR DEST\n"
	       "Check the metadata of a cache dir that is not mounted; copy the"
	       " files\n"
	       "S3 does not have (new, changed) out of one whose metadata is"
	       " damaged\n"
	       "(README: Damaged metadata).\n",
	       prog, prog, prog);
}

int fs_parse_repository(const char *url, char **bucket, char **prefix)
{
	const char *b, *slash;
	size_t blen, plen;
	char *bk, *px;

	if (strncmp(url, "s3://", 5) != 0)
		return -EINVAL;
	b = url + 5;
	slash = strchr(b, '/');
	blen = slash ? (size_t)(slash - b) : strlen(b);
	if (blen < 3 || blen > 63)
		return -EINVAL;
	for (size_t i = 0; i < blen; i++) {
		char c = b[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_' ||
		      (c >= 'A' && c <= 'Z')))
			return -EINVAL;
	}
	px = slash ? (char *)slash + 1 : "";
	while (*px == '/')
		px++;
	plen = strlen(px);
	if (strstr(px, "//"))
		return -EINVAL;
	bk = strndup(b, blen);
	if (!bk)
		return -ENOMEM;
	/* Normalise: "" or "a/b/". */
	*prefix = malloc(plen + 2);
	if (!*prefix) {
		free(bk);
		return -ENOMEM;
	}
	memcpy(*prefix, px, plen);
	if (plen > 0 && px[plen - 1] != '/')
		(*prefix)[plen++] = '/';
	(*prefix)[plen] = '\0';
	*bucket = bk;
	return 0;
}

static int set_str(char **dst, const char *src)
{
	char *n = strdup(src);

	if (!n)
		return -ENOMEM;
	free(*dst);
	*dst = n;
	return 0;
}

static int add_fuse_opts(struct fs_options *o, const char *opts)
{
	size_t old = o->fuse_opts ? strlen(o->fuse_opts) : 0;
	char *n = realloc(o->fuse_opts, old + strlen(opts) + 2);

	if (!n)
		return -ENOMEM;
	if (old)
		n[old++] = ',';
	strcpy(n + old, opts);
	o->fuse_opts = n;
	/* Look for a whole "ro" option. */
	for (const char *p = opts; p && *p;) {
		const char *c = strchr(p, ',');
		size_t l = c ? (size_t)(c - p) : strlen(p);
		if (l == 2 && strncmp(p, "ro", 2) == 0)
			o->read_only = true;
		p = c ? c + 1 : NULL;
	}
	return 0;
}

static int abs_path(const char *p, char **out)
{
	char cwd[PATH_MAX];
	size_t l;

	if (p[0] == '/')
		return set_str(out, p);
	if (!getcwd(cwd, sizeof(cwd)))
		return -errno;
	l = strlen(cwd) + strlen(p) + 2;
	free(*out);
	*out = malloc(l);
	if (!*out)
		return -ENOMEM;
	snprintf(*out, l, "%s/%s", cwd, p);
	return 0;
}

static int parse_int_opt(const char *s, int lo, int hi, int *out)
{
	uint64_t v;

	if (parse_u64(s, &v) < 0 || v < (uint64_t)lo || v > (uint64_t)hi)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen,
						      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int apply_env(struct fs_options *o, char *err, size_t errlen)
{
	const char *v;

	if ((v = getenv("TIDEFS_CACHE_DIR")) && *v &&
	    abs_path(v, &o->cache_dir))
		return -ENOMEM;
	if ((v = getenv("TIDEFS_CACHE_SIZE")) && *v &&
	    parse_size(v, &o->cache_size) < 0)
		return fail(
			err, errlen,
			"bad TIDEFS_CACHE_SIZE '%s' (use e.g. 512M, 50G, 1T)",
			v);
	if (((v = getenv("TIDEFS_ENDPOINT_URL")) && *v) ||
	    ((v = getenv("AWS_ENDPOINT_URL_S3")) && *v) ||
	    ((v = getenv("AWS_ENDPOINT_URL")) && *v))
		if (set_str(&o->endpoint, v))
			return -ENOMEM;
	if ((v = getenv("TIDEFS_LOG_LEVEL")) && *v &&
	    log_parse_level(v, &o->log_level) < 0)
		return fail(err, errlen, "bad TIDEFS_LOG_LEVEL '%s'", v);
	if ((v = getenv("TIDEFS_RETRY_TIMEOUT")) && *v &&
	    parse_int_opt(v, 1, 3600, &o->retry_timeout_s) < 0)
		return fail(err, errlen, "bad TIDEFS_RETRY_TIMEOUT '%s'", v);
	if ((v = getenv("TIDEFS_OPTIONS")) && *v && add_fuse_opts(o, v) < 0)
		return -ENOMEM;
	if ((v = getenv("TIDEFS_PROFILE")) && *v && set_str(&o->profile, v))
		return -ENOMEM;
	if ((v = getenv("TIDEFS_API_LISTEN")) && *v &&
	    set_str(&o->api_listen, v))
		return -ENOMEM;
	if ((v = getenv("TIDEFS_API_CREDENTIALS")) && *v &&
	    abs_path(v, &o->api_credentials))
		return -ENOMEM;
	if (((v = getenv("TIDEFS_REGION")) && *v) ||
	    ((v = getenv("AWS_REGION")) && *v) ||
	    ((v = getenv("AWS_DEFAULT_REGION")) && *v))
		if (set_str(&o->region, v))
			return -ENOMEM;
	return 0;
}

static int parse_one(struct fs_options *o, int c, const char *arg, char *err,
		     size_t errlen)
{
	uint64_t v;

	switch (c) {
	case OPT_CACHE_DIR:
		return abs_path(arg, &o->cache_dir);
	case OPT_CACHE_SIZE:
		if (parse_size(arg, &v) < 0 || v < (64ull << 20))
			return fail(
				err, errlen,
				"bad --cache-size '%s' (use e.g. 512M, 50G, 1T;"
				" at least 64M)",
				arg);
		o->cache_size = v;
		return 0;
	case OPT_ENDPOINT:
		if (strncmp(arg, "http://", 7) && strncmp(arg, "https://", 8))
			return fail(err, errlen,
				    "bad --endpoint-url '%s' (want "
				    "http://HOST[:PORT]"
				    " or https://...)",
				    arg);
		return set_str(&o->endpoint, arg);
	case OPT_REGION:
		return set_str(&o->region, arg);
	case OPT_PROFILE:
		return set_str(&o->profile, arg);
	case OPT_LOG_LEVEL:
		if (log_parse_level(arg, &o->log_level) < 0)
			return fail(err, errlen,
				    "bad --log-level '%s' (error, warn, info, "
				    "debug)",
				    arg);
		return 0;
	case OPT_RETRY:
		if (parse_int_opt(arg, 1, 3600, &o->retry_timeout_s) < 0)
			return fail(
				err, errlen,
				"bad --retry-timeout '%s' (seconds, 1-3600)",
				arg);
		return 0;
	case OPT_SYNC:
		if (parse_int_opt(arg, 1, 3600, &o->sync_interval_s) < 0)
			return fail(
				err, errlen,
				"bad --sync-interval '%s' (seconds, 1-3600)",
				arg);
		return 0;
	case OPT_INSECURE:
		o->insecure_tls = true;
		return 0;
	case OPT_VHOST:
		o->virtual_hosted = true;
		return 0;
	case OPT_CHUNK:
		if (parse_size(arg, &v) < 0 || v < 65536 || v > (64u << 20) ||
		    (v & (v - 1)))
			return fail(err, errlen,
				    "bad --chunk-size '%s' (a power of two, "
				    "64K-64M)",
				    arg);
		o->chunk_size = (uint32_t)v;
		return 0;
	case OPT_FETCH:
		if (parse_int_opt(arg, 1, 256, &o->fetch_threads) < 0)
			return fail(err, errlen,
				    "bad --fetch-threads '%s' (1-256)", arg);
		return 0;
	case OPT_IMPORT:
		if (parse_int_opt(arg, 1, 256, &o->import_parallel) < 0)
			return fail(err, errlen,
				    "bad --import-parallel '%s' (1-256)", arg);
		return 0;
	case OPT_HIGH:
		if (parse_int_opt(arg, 2, 100, &o->high_pct) < 0)
			return fail(err, errlen,
				    "bad --high-watermark '%s' (2-100)", arg);
		return 0;
	case OPT_LOW:
		if (parse_int_opt(arg, 1, 99, &o->low_pct) < 0)
			return fail(err, errlen,
				    "bad --low-watermark '%s' (1-99)", arg);
		return 0;
	case OPT_CONFLICTS:
		if (strcmp(arg, "fail") && strcmp(arg, "overwrite"))
			return fail(err, errlen,
				    "bad --export-conflicts '%s' (fail or"
				    " overwrite)",
				    arg);
		o->export_overwrite = !strcmp(arg, "overwrite");
		return 0;
	case OPT_API_LISTEN:
		return set_str(&o->api_listen, arg);
	case OPT_API_CREDS:
		return abs_path(arg, &o->api_credentials);
	case OPT_NO_PT:
		o->no_passthrough = true;
		return 0;
	case 'f':
		o->foreground = true;
		return 0;
	case 'o':
		return add_fuse_opts(o, arg);
	case 'h':
		o->show_help = true;
		return 0;
	case 'V':
		o->show_version = true;
		return 0;
	default:
		return fail(err, errlen, "unknown option (see --help)");
	}
}

int fs_options_parse(int argc, char **argv, struct fs_options *o, char *err,
		     size_t errlen)
{
	int c, ret;

	memset(o, 0, sizeof(*o));
	o->log_level = LOG_LVL_INFO;
	o->retry_timeout_s = 20;
	o->sync_interval_s = 5;
	o->chunk_size = 1u << 20;
	o->fetch_threads = 16;
	o->import_parallel = 32;
	o->high_pct = 90;
	o->low_pct = 75;
	err[0] = '\0';
	ret = apply_env(o, err, errlen);
	if (ret < 0)
		return ret;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "fo:hV", long_opts, NULL)) != -1) {
		if (c == '?' || c == ':') {
			const char *bad = argv[optind - 1];
			if (optopt && optopt < 256)
				return fail(
					err, errlen,
					"option -%c needs a value or is unknown"
					" (see --help)",
					optopt);
			return fail(err, errlen,
				    "unknown option or missing value: %s (see "
				    "--help)",
				    bad);
		}
		ret = parse_one(o, c, optarg, err, errlen);
		if (ret < 0) {
			if (!err[0])
				snprintf(err, errlen, "%s", strerror(-ret));
			return ret;
		}
	}
	if (o->show_help || o->show_version)
		return 0;
	if (argc - optind != 2)
		return fail(err, errlen,
			    "expected s3://BUCKET[/PREFIX] and MOUNTPOINT (see "
			    "--help)");
	if (fs_parse_repository(argv[optind], &o->bucket, &o->prefix) < 0)
		return fail(err, errlen,
			    "bad repository '%s' (want s3://BUCKET[/PREFIX])",
			    argv[optind]);
	if (abs_path(argv[optind + 1], &o->mountpoint) < 0)
		return fail(err, errlen, "bad mount point '%s'",
			    argv[optind + 1]);
	if (!o->cache_dir)
		return fail(err, errlen, "--cache-dir DIR is required");
	if (!o->region && set_str(&o->region, "us-east-1"))
		return -ENOMEM;
	if (o->low_pct >= o->high_pct)
		return fail(err, errlen,
			    "--low-watermark must be below --high-watermark");
	if (o->api_listen && !o->api_credentials)
		return fail(err, errlen,
			    "--api-listen needs --api-credentials FILE (keys"
			    " are never taken on the command line)");
	return 0;
}

void fs_options_release(struct fs_options *o)
{
	free(o->bucket);
	free(o->prefix);
	free(o->mountpoint);
	free(o->cache_dir);
	free(o->endpoint);
	free(o->region);
	free(o->profile);
	free(o->fuse_opts);
	free(o->api_listen);
	free(o->api_credentials);
	memset(o, 0, sizeof(*o));
}
