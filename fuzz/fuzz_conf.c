/*
 * fuzz_conf: the configuration parser (conf.c) and the business hours
 * it validates (hours.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
ignore(const char *file, int line, const char *msg)
{
	(void)file;
	(void)line;
	(void)msg;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf	 c;
	struct hours	 h;
	struct buf	 b;
	const char	*err;
	char		*s;

	log_init("fuzz_conf", 1, LOG_LEVEL_ERR);
	conf_defaults(&c);
	(void)conf_parse("fuzz.conf", (const char *)data, size, &c, ignore);
	conf_free(&c);
	if (util_has_nul(data, size) || size > 4096)
		return 0;
	s = xstrndup((const char *)data, size);
	if (hours_parse(s, &h, &err) == 0) {
		buf_init(&b);
		hours_format(&h, &b);
		/* the canonical form parses back to the same week */
		if (hours_parse(buf_cstr(&b), &h, &err) != 0)
			abort();
		buf_free(&b);
	}
	free(s);
	return 0;
}
