// SPDX-License-Identifier: MIT
/*
 * Unit tests of tasks/import: task_key_split (table-driven) and live imports
 * against a moto_server this test starts on a free loopback port (filled by
 * import_fixture.py with boto3). TIDEFS_IMPORT_OBJECTS=N raises the number of
 * extra objects (default 300; moto takes ~10 ms per PUT) and
 * TIDEFS_IMPORT_PARALLEL the HeadObject requests in flight (default 16).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/common.h"
#include "tasks/tasks.h"
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- task_key_split ---- */

static void test_key_split_table(void **state)
{
	static const struct {
		const char *key;
		int ret;
		int is_dir;
		const char *comps; /* joined with '|' */
	} cases[] = {
		{"a", 0, 0, "a"},
		{"a/b/c.txt", 0, 0, "a|b|c.txt"},
		{"dir/", 0, 1, "dir"},
		{"a/b/", 0, 1, "a|b"},
		{"h\xc3\xa9llo w\xc3\xb6rld", 0, 0,
		 "h\xc3\xa9llo w\xc3\xb6rld"},
		{"...", 0, 0, "..."},
		{".hidden/..x", 0, 0, ".hidden|..x"},
		{"a b/ c ", 0, 0, "a b| c "},
		{"", -EINVAL, 0, NULL},
		{"/", -EINVAL, 0, NULL},
		{"//", -EINVAL, 0, NULL},
		{"a//b", -EINVAL, 0, NULL},
		{"a//", -EINVAL, 0, NULL},
		{"/lead", -EINVAL, 0, NULL},
		{".", -EINVAL, 0, NULL},
		{"..", -EINVAL, 0, NULL},
		{"./x", -EINVAL, 0, NULL},
		{"../x", -EINVAL, 0, NULL},
		{"dir/./y", -EINVAL, 0, NULL},
		{"dir/../z", -EINVAL, 0, NULL},
		{"e/..", -EINVAL, 0, NULL},
		{"dir/.", -EINVAL, 0, NULL},
		{"dir/./", -EINVAL, 0, NULL},
		{"../", -EINVAL, 0, NULL},
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char key[64], joined[128] = "";
		char *comps[8];
		size_t n = 99;
		int is_dir = -1, ret;

		snprintf(key, sizeof(key), "%s", cases[i].key);
		ret = task_key_split(key, comps, ARRAY_SIZE(comps), &n,
				     &is_dir);
		if (ret != cases[i].ret)
			fail_msg("key '%s': %d, want %d", cases[i].key, ret,
				 cases[i].ret);
		if (ret) {
			assert_int_equal(n, 0);
			continue;
		}
		if (is_dir != cases[i].is_dir)
			fail_msg("key '%s': is_dir %d", cases[i].key, is_dir);
		for (size_t c = 0; c < n; c++) {
			if (c)
				strcat(joined, "|");
			strcat(joined, comps[c]);
		}
		if (strcmp(joined, cases[i].comps) != 0)
			fail_msg("key '%s': '%s', want '%s'", cases[i].key,
				 joined, cases[i].comps);
	}
}

static void test_key_split_lengths(void **state)
{
	char key[600], *comps[4];
	size_t n;
	int is_dir;

	(void)state;
	/* 255 bytes is fine, 256 is not, in any position. */
	memset(key, 'n', 255);
	strcpy(key + 255, "/f");
	assert_int_equal(task_key_split(key, comps, 4, &n, &is_dir), 0);
	assert_int_equal(n, 2);
	assert_int_equal(strlen(comps[0]), 255);
	memset(key, 'n', 256);
	key[256] = '\0';
	assert_int_equal(task_key_split(key, comps, 4, &n, &is_dir), -EINVAL);
	strcpy(key, "long/");
	memset(key + 5, 'y', 256);
	strcpy(key + 5 + 256, "/f");
	assert_int_equal(task_key_split(key, comps, 4, &n, &is_dir), -EINVAL);
	memset(key, 'n', 256);
	strcpy(key + 256, "/");
	assert_int_equal(task_key_split(key, comps, 4, &n, &is_dir), -EINVAL);
	/* More components than room. */
	strcpy(key, "a/b/c/d/e");
	assert_int_equal(task_key_split(key, comps, 4, &n, &is_dir), -E2BIG);
	strcpy(key, "a/b/c/d/");
	assert_int_equal(task_key_split(key, comps, 4, &n, &is_dir), 0);
	assert_int_equal(n, 4);
	assert_int_equal(is_dir, 1);
}

/* ---- live imports against moto_server ---- */

struct live {
	char dir[64];
	struct moto moto;
	int nobjects;
	int parallel;
};

static struct live L;

/* Run import_fixture.py (it waits for the endpoint to answer). */
static int fill(const char *scenario, const char *bucket, int n)
{
	char script[PATH_MAX], cmd[PATH_MAX + 256];

	support_unit_path(script, sizeof(script), "import_fixture.py");
	snprintf(cmd, sizeof(cmd), "'%s' '%s' '%s' %s %s %d >/dev/null",
		 support_python(), script, L.moto.endpoint, scenario, bucket,
		 n);
	return system(cmd) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	moto_stop(&L.moto);
	support_rm_tree(L.dir);
	return 0;
}

static int group_setup(void **state)
{
	const char *n = getenv("TIDEFS_IMPORT_OBJECTS");

	(void)state;
	L.nobjects = n && *n ? atoi(n) : 300;
	n = getenv("TIDEFS_IMPORT_PARALLEL");
	L.parallel = n && *n ? atoi(n) : 16;
	snprintf(L.dir, sizeof(L.dir), "/tmp/tidefs-import-XXXXXX");
	if (!mkdtemp(L.dir)) {
		fprintf(stderr, "mkdtemp %s: %s\n", L.dir, strerror(errno));
		return -1;
	}
	if (moto_start(&L.moto) < 0)
		goto out_fail;
	if (fill("tree", "bkt-tree", L.nobjects) < 0 ||
	    fill("pfx", "bkt-pfx", 0) < 0) {
		fprintf(stderr, "cannot fill moto_server at %s\n",
			L.moto.endpoint);
		moto_print_log_tail(&L.moto);
		goto out_fail;
	}
	return 0;

out_fail:
	/* cmocka skips the group teardown when the setup fails. */
	group_teardown(state);
	return -1;
}

struct store {
	char dir[PATH_MAX];
	struct meta_db *db;
	struct chunk_store *cs;
	struct s3_client *s3;
};

static void store_open(struct store *s, const char *name, const char *bucket)
{
	struct s3_config cfg = {
		.endpoint = L.moto.endpoint,
		.region = "us-east-1",
		.bucket = bucket,
		.creds = {.access_key = "test", .secret_key = "test"},
		.path_style = true,
		.retry_total_ms = 5000,
		.max_handles = 40,
	};
	struct meta_inode root = {0};
	struct meta_txn *t;

	snprintf(s->dir, sizeof(s->dir), "%s/%s", L.dir, name);
	assert_int_equal(mkdir(s->dir, 0700), 0);
	assert_int_equal(meta_open(s->dir, 0, true, &s->db), 0);
	assert_int_equal(chunk_store_open(s->dir, CHUNK_SIZE_DEFAULT, &s->cs),
			 0);
	assert_int_equal(s3_client_new(&cfg, &s->s3), 0);
	/* The root, as the first mount makes it. */
	root.ino = META_ROOT_INO;
	root.mode = S_IFDIR | 0755;
	root.uid = 500;
	root.gid = 600;
	root.nlink = 2;
	root.atime_ns = root.mtime_ns = root.ctime_ns = 1;
	assert_int_equal(meta_txn_begin(s->db, true, &t), 0);
	meta_inode_put(t, &root);
	assert_int_equal(meta_txn_commit(t), 0);
}

static void store_close(struct store *s)
{
	s3_client_free(s->s3);
	chunk_store_close(s->cs);
	meta_close(s->db);
}

static uint64_t lookup(struct meta_txn *t, const char *path)
{
	char buf[PATH_MAX], *save = NULL, *c;
	uint64_t ino = META_ROOT_INO;

	snprintf(buf, sizeof(buf), "%s", path);
	for (c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save))
		if (meta_dentry_get(t, ino, c, &ino) != 0)
			fail_msg("no %s (at %s)", path, c);
	return ino;
}

static void get(struct meta_txn *t, const char *path, struct meta_inode *in)
{
	assert_int_equal(meta_inode_get(t, lookup(t, path), in), 0);
}

struct listing {
	int n;
	char names[16][64];
};

static int list_cb(void *arg, const char *name, uint64_t ino)
{
	struct listing *l = arg;

	(void)ino;
	if (l->n < 16)
		snprintf(l->names[l->n], sizeof(l->names[0]), "%.63s", name);
	l->n++;
	return 0;
}

static void assert_listing(struct meta_txn *t, uint64_t dir, const char *want)
{
	struct listing l = {0};
	char got[1024] = "";

	assert_int_equal(meta_dentry_foreach(t, dir, NULL, list_cb, &l), 0);
	for (int i = 0; i < l.n && i < 16; i++) {
		if (i)
			strcat(got, " ");
		strcat(got, l.names[i]);
	}
	if (strcmp(got, want) != 0)
		fail_msg("listing of %llu: '%s', want '%s'",
			 (unsigned long long)dir, got, want);
}

#define NS	 1000000000LL
#define AT	 (1600000000 * NS + 123456789)
#define MT	 (1500000000 * NS + 987654321)
#define T_MARKER (1650000000 * NS + 5)

static void check_tree(struct store *s, const struct task_import_stats *st)
{
	struct meta_inode in = {0}, a = {0}, b = {0};
	struct meta_txn *t;
	char link[32];
	uint8_t bm[1] = {0};
	uint64_t v;
	ssize_t n;
	int fd;

	assert_int_equal(st->objects, 12 + (uint64_t)L.nobjects);
	assert_int_equal(st->files, 4 + (uint64_t)L.nobjects);
	assert_int_equal(st->symlinks, 1);
	assert_int_equal(st->dirs, 7); /* a a/b a/b/c empty d odd many */
	assert_int_equal(st->skipped, 5);

	assert_int_equal(meta_txn_begin(s->db, false, &t), 0);
	assert_int_equal(meta_super_get_u64(t, "imported", &v), 0);
	assert_int_equal(v, 1);
	assert_listing(t, META_ROOT_INO, "a d empty link many odd zero");
	assert_listing(t, lookup(t, "a"), "b top.txt");
	assert_listing(t, lookup(t, "a/b/c"), "deep.txt");
	assert_listing(t, lookup(t, "d"), "f");
	assert_listing(t, lookup(t, "empty"), "");

	/* The root: kept, with its link count. */
	assert_int_equal(meta_inode_get(t, META_ROOT_INO, &in), 0);
	assert_int_equal(in.mode, S_IFDIR | 0755);
	assert_int_equal(in.uid, 500);
	assert_int_equal(in.nlink, 2 + 5);
	meta_inode_release(&in);

	/* A file with every header. */
	get(t, "a/top.txt", &in);
	assert_int_equal(in.mode, S_IFREG | 0640);
	assert_int_equal(in.uid, 1234);
	assert_int_equal(in.gid, 5678);
	assert_int_equal(in.atime_ns, AT);
	assert_int_equal(in.mtime_ns, MT);
	assert_int_equal(in.ctime_ns, in.s3_mtime_ns);
	assert_int_equal(in.nlink, 1);
	assert_int_equal(in.size, 3);
	assert_int_equal(in.s3_size, 3);
	assert_int_equal(in.state, META_RELEASED);
	assert_int_equal(in.cached_bytes, 0);
	assert_string_equal(in.s3_key, "a/top.txt");
	assert_true(in.etag[0] == '"' && strlen(in.etag) > 2);
	meta_inode_release(&in);

	/* Defaults. */
	get(t, "a/b/c/deep.txt", &in);
	assert_int_equal(in.mode, S_IFREG | 0755);
	assert_int_equal(in.uid, 0);
	assert_int_equal(in.gid, 0);
	assert_true(in.s3_mtime_ns > 1600000000 * NS);
	assert_int_equal(in.mtime_ns, in.s3_mtime_ns);
	assert_int_equal(in.atime_ns, in.s3_mtime_ns);
	assert_int_equal(in.ctime_ns, in.s3_mtime_ns);
	assert_int_equal(in.state, META_RELEASED);
	meta_inode_release(&in);

	get(t, "zero", &in);
	assert_int_equal(in.size, 0);
	assert_int_equal(in.state, META_ARCHIVED);
	meta_inode_release(&in);

	/* The symlink: target in the data file and in the size. */
	get(t, "link", &in);
	assert_int_equal(in.mode, S_IFLNK | 0777);
	assert_int_equal(in.uid, 10);
	assert_int_equal(in.gid, 20);
	assert_int_equal(in.mtime_ns, 1400000000000000001LL);
	assert_int_equal(in.size, strlen("a/top.txt"));
	assert_int_equal(in.cached_bytes, in.size);
	assert_int_equal(in.state, META_ARCHIVED);
	fd = chunk_open(s->cs, in.ino, false);
	assert_true(fd >= 0);
	n = pread(fd, link, sizeof(link), 0);
	close(fd);
	assert_int_equal(n, in.size);
	assert_memory_equal(link, "a/top.txt", (size_t)n);
	assert_int_equal(meta_chunk_load(t, in.ino, bm, 1), 0);
	assert_int_equal(bm[0], 1);
	meta_inode_release(&in);

	/* A marker with headers; a marker with a file mode is a directory. */
	get(t, "empty", &in);
	assert_int_equal(in.mode, S_IFDIR | 0750);
	assert_int_equal(in.uid, 1001);
	assert_int_equal(in.gid, 1002);
	assert_int_equal(in.mtime_ns, T_MARKER);
	assert_int_equal(in.nlink, 2);
	assert_string_equal(in.s3_key, "empty/");
	meta_inode_release(&in);
	get(t, "odd", &in);
	assert_int_equal(in.mode, S_IFDIR | 0644);
	meta_inode_release(&in);

	/* Implicit directories: 040755, root-owned, newest time beneath. */
	get(t, "a", &in);
	get(t, "a/top.txt", &a);
	get(t, "a/b/c/deep.txt", &b);
	assert_int_equal(in.mode, S_IFDIR | 0755);
	assert_int_equal(in.uid, 0);
	assert_int_equal(in.nlink, 3);
	assert_null(in.s3_key);
	assert_int_equal(in.mtime_ns, MAX(a.s3_mtime_ns, b.s3_mtime_ns));
	assert_int_equal(in.atime_ns, in.mtime_ns);
	assert_int_equal(in.ctime_ns, in.mtime_ns);
	meta_inode_release(&in);
	meta_inode_release(&a);
	meta_inode_release(&b);
	get(t, "a/b/c", &in);
	assert_int_equal(in.nlink, 2);
	meta_inode_release(&in);

	/* The file/directory conflict: the directory wins. */
	get(t, "d", &in);
	assert_true(S_ISDIR(in.mode));
	meta_inode_release(&in);

	/* The many files. */
	{
		struct listing l = {0};

		assert_int_equal(meta_dentry_foreach(t, lookup(t, "many"), NULL,
						     list_cb, &l),
				 0);
		assert_int_equal(l.n, L.nobjects);
		if (L.nobjects > 0)
			assert_string_equal(l.names[0], "f00000");
	}
	meta_txn_abort(t);
}

static void test_live_import_tree(void **state)
{
	struct task_import_stats st;
	struct store s = {0};
	int64_t t0;

	(void)state;
	store_open(&s, "tree", "bkt-tree");
	t0 = time_mono_ns();
	assert_int_equal(task_import_prefix(s.db, s.cs, s.s3, "", L.parallel,
					    false, &st),
			 0);
	fprintf(stderr, "import of %d objects: %.2f s\n", 12 + L.nobjects,
		(double)(time_mono_ns() - t0) / 1e9);
	check_tree(&s, &st);

	/* A second import into the now non-empty store changes nothing. */
	assert_int_equal(
		task_import_prefix(s.db, s.cs, s.s3, "", 4, false, &st),
		-ENOTEMPTY);
	store_close(&s);

	/* Persisted: reopen and check again. */
	memset(&s, 0, sizeof(s));
	snprintf(s.dir, sizeof(s.dir), "%s/tree", L.dir);
	assert_int_equal(meta_open(s.dir, 0, true, &s.db), 0);
	assert_int_equal(chunk_store_open(s.dir, CHUNK_SIZE_DEFAULT, &s.cs), 0);
	st = (struct task_import_stats){
		.objects = 12 + (uint64_t)L.nobjects,
		.files = 4 + (uint64_t)L.nobjects,
		.symlinks = 1,
		.dirs = 7,
		.skipped = 5,
	};
	check_tree(&s, &st);
	chunk_store_close(s.cs);
	meta_close(s.db);
}

static uint64_t pending_flag(struct store *s, const char *path)
{
	struct meta_inode in = {0};
	struct meta_txn *t;
	uint64_t ino;
	uint32_t flags;

	assert_int_equal(meta_txn_begin(s->db, false, &t), 0);
	ino = lookup(t, path);
	assert_int_equal(meta_inode_get(t, ino, &in), 0);
	flags = in.flags;
	meta_inode_release(&in);
	meta_txn_abort(t);
	return (flags & META_F_HEAD_PENDING) ? ino : 0;
}

/* The filler's callback: every inode goes from pending to complete. */
static void on_fill(void *arg, const struct meta_inode *before,
		    const struct meta_inode *after)
{
	int *n = arg;

	assert_true(before->flags & META_F_HEAD_PENDING);
	assert_true(!after || !(after->flags & META_F_HEAD_PENDING));
	__atomic_add_fetch(n, 1, __ATOMIC_RELAXED);
}

/*
 * The lazy import writes the tree from the listing alone; the filler then
 * makes exactly the tree the eager import makes (check_tree).
 */
static void test_live_import_lazy(void **state)
{
	struct task_import_stats st;
	struct task_filler_config fc = {0};
	struct task_filler *f = NULL;
	struct meta_inode in = {0};
	struct store s = {0};
	struct meta_txn *t;
	uint64_t ino, link;
	int64_t t0;
	int nfilled = 0, errs[2];

	(void)state;
	store_open(&s, "lazy", "bkt-tree");
	assert_int_equal(
		task_import_prefix(s.db, s.cs, s.s3, "", L.parallel, true, &st),
		0);
	assert_int_equal(st.objects, 12 + (uint64_t)L.nobjects);
	/* Files and the symlink (not known as one yet), two markers. */
	assert_int_equal(st.files, 5 + (uint64_t)L.nobjects);
	assert_int_equal(st.symlinks, 0);
	assert_int_equal(st.pending, 7 + (uint64_t)L.nobjects);

	/* From the listing: defaults, the listed size and ETag, pending. */
	assert_int_equal(meta_txn_begin(s.db, false, &t), 0);
	get(t, "a/top.txt", &in);
	assert_true(in.flags & META_F_HEAD_PENDING);
	assert_int_equal(in.mode, S_IFREG | 0755);
	assert_int_equal(in.uid, 0);
	assert_int_equal(in.size, 3);
	assert_int_equal(in.state, META_RELEASED);
	assert_true(in.etag[0] == '"');
	meta_inode_release(&in);
	get(t, "link", &in);
	assert_true(in.flags & META_F_HEAD_PENDING);
	assert_true(S_ISREG(in.mode));
	meta_inode_release(&in);
	get(t, "a", &in); /* implicit: nothing to HEAD */
	assert_false(in.flags & META_F_HEAD_PENDING);
	meta_inode_release(&in);
	meta_txn_abort(t);
	assert_true(pending_flag(&s, "empty") != 0);

	fc.db = s.db;
	fc.cs = s.cs;
	fc.s3 = s.s3;
	fc.prefix = "";
	fc.parallel = L.parallel;
	fc.on_fill = on_fill;
	fc.cb_arg = &nfilled;
	assert_int_equal(task_filler_new(&fc, &f), 0);
	assert_int_equal(task_filler_pending(f) <= st.pending, 1);

	/* Asked for: done at once, whatever the background order. */
	link = pending_flag(&s, "link");
	ino = pending_flag(&s, "a/top.txt");
	if (link && ino) {
		uint64_t two[2] = {link, ino};

		assert_int_equal(task_filler_complete(f, two, 2, errs), 0);
		assert_int_equal(errs[0], 0);
		assert_int_equal(errs[1], 0);
	}
	assert_int_equal(pending_flag(&s, "link"), 0);
	assert_int_equal(pending_flag(&s, "a/top.txt"), 0);
	/* Not pending (any more): nothing to do. */
	assert_int_equal(
		task_filler_complete(f, &(uint64_t){META_ROOT_INO}, 1, NULL),
		0);

	t0 = time_mono_ns();
	while (task_filler_pending(f) > 0 && time_mono_ns() - t0 < 120 * NS) {
		struct timespec ts = {0, 20000000};

		nanosleep(&ts, NULL);
	}
	assert_int_equal(task_filler_pending(f), 0);
	task_filler_free(f);
	assert_int_equal(__atomic_load_n(&nfilled, __ATOMIC_RELAXED),
			 (int)st.pending);
	st = (struct task_import_stats){
		.objects = 12 + (uint64_t)L.nobjects,
		.files = 4 + (uint64_t)L.nobjects,
		.symlinks = 1,
		.dirs = 7,
		.skipped = 5,
	};
	check_tree(&s, &st);

	/* Nothing pending left: a new filler has no work. */
	assert_int_equal(task_filler_new(&fc, &f), 0);
	assert_int_equal(task_filler_pending(f), 0);
	task_filler_free(f);
	store_close(&s);
}

static void test_live_import_prefix(void **state)
{
	struct task_import_stats st;
	struct meta_inode in = {0};
	struct store s = {0};
	struct meta_txn *t;

	(void)state;
	store_open(&s, "pfx", "bkt-pfx");
	/* "sub" without the slash means "sub/". */
	assert_int_equal(
		task_import_prefix(s.db, s.cs, s.s3, "sub", 2, false, &st), 0);
	assert_int_equal(st.objects, 3);
	assert_int_equal(st.files, 2);
	assert_int_equal(st.dirs, 1);
	assert_int_equal(st.skipped, 0);
	assert_int_equal(meta_txn_begin(s.db, false, &t), 0);
	assert_listing(t, META_ROOT_INO, "d x");
	assert_listing(t, lookup(t, "d"), "y");
	/* The "sub/" marker's metadata went to the root. */
	assert_int_equal(meta_inode_get(t, META_ROOT_INO, &in), 0);
	assert_int_equal(in.mode, S_IFDIR | 0700);
	assert_int_equal(in.uid, 7);
	assert_int_equal(in.gid, 8);
	assert_int_equal(in.mtime_ns, T_MARKER);
	assert_int_equal(in.nlink, 3);
	meta_inode_release(&in);
	get(t, "d/y", &in);
	assert_string_equal(in.s3_key, "sub/d/y");
	assert_int_equal(in.size, 2);
	meta_inode_release(&in);
	meta_txn_abort(t);
	store_close(&s);
}

static void test_live_import_empty_prefix(void **state)
{
	struct task_import_stats st;
	struct store s = {0};
	struct meta_txn *t;
	uint64_t v;

	(void)state;
	store_open(&s, "none", "bkt-pfx");
	assert_int_equal(
		task_import_prefix(s.db, s.cs, s.s3, "nothing/", 0, false, &st),
		0);
	assert_int_equal(st.objects, 0);
	assert_int_equal(meta_txn_begin(s.db, false, &t), 0);
	assert_int_equal(meta_dir_is_empty(t, META_ROOT_INO), 1);
	assert_int_equal(meta_super_get_u64(t, "imported", &v), 0);
	meta_txn_abort(t);
	store_close(&s);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_key_split_table),
		cmocka_unit_test(test_key_split_lengths),
	};
	const struct CMUnitTest live[] = {
		cmocka_unit_test(test_live_import_tree),
		cmocka_unit_test(test_live_import_lazy),
		cmocka_unit_test(test_live_import_prefix),
		cmocka_unit_test(test_live_import_empty_prefix),
	};
	int fails;

	fails = cmocka_run_group_tests_name("key_split", pure, NULL, NULL);
	fails += cmocka_run_group_tests_name("live", live, group_setup,
					     group_teardown);
	return fails;
}
