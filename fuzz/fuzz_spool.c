/*
 * fuzz_spool: the spool file reader (spool.c).  Every input either
 * parses into a request whose parts fit in the file, or is refused.
 *
 * Random bytes would almost never carry a valid checksum, so inputs
 * that end in a checksum line get the right one first: the fuzzer then
 * reaches the header parser behind it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spooled	 s;
	const char	*err;
	char		*copy, hex[65];

	static int	 ready;

	if (!ready && crypto_init() == 0)
		ready = 1;
	copy = xmalloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	if (size >= 73 && memcmp(copy + size - 73, "sha256: ", 8) == 0) {
		crypto_sha256_hex(copy, size - 73, hex);
		memcpy(copy + size - 65, hex, 64);
	}
	if (spool_parse(copy, size, &s, &err) == 0) {
		if (s.bodylen > size || strlen(s.answer) > size ||
		    s.envp[s.nenv] != NULL)
			abort();
		spooled_free(&s);
	}
	free(copy);
	return 0;
}
