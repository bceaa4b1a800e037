// SPDX-License-Identifier: MIT
/* tidefs: mount an S3 bucket as a local file system with a data cache. */
#include <stdio.h>
#include <string.h>

#include "fs/fs.h"

int main(int argc, char **argv)
{
	struct fs_options o;
	char err[512];
	int ret;

	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return fs_check(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "salvage") == 0)
		return fs_salvage(argc - 1, argv + 1);
	if (fs_options_parse(argc, argv, &o, err, sizeof(err)) < 0) {
		fprintf(stderr, "tidefs: %s\n", err);
		fs_options_release(&o);
		return 2;
	}
	if (o.show_help) {
		fs_usage(argv[0]);
		fs_options_release(&o);
		return 0;
	}
	if (o.show_version) {
		printf("tidefs %s\n", TIDEFS_VERSION);
		fs_options_release(&o);
		return 0;
	}
	ret = fs_run(&o);
	fs_options_release(&o);
	return ret;
}
