// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the S3 XML parsers (ListObjectsV2 pages and <Error>
 * bodies): untrusted input from the network. Build with -DTIDEFS_FUZZ=ON
 * and clang; run: ./fuzz_s3_xml -max_len=65536 corpus/
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "s3/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s3_list_page p;
	char code[64], msg[128];
	size_t i;

	if (!s3_parse_list((const char *)data, size, &p)) {
		for (i = 0; i < p.nobjects; i++)
			if (!p.objects[i].key ||
			    strlen(p.objects[i].etag) >=
				    sizeof(p.objects[i].etag))
				__builtin_trap();
		s3_list_page_release(&p);
	}
	if (!s3_parse_error((const char *)data, size, code, sizeof(code), msg,
			    sizeof(msg)) &&
	    (strlen(code) >= sizeof(code) || strlen(msg) >= sizeof(msg)))
		__builtin_trap();
	return 0;
}
