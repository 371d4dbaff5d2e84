/*
 * fuzz_kv: the urlencoded form and query parser (kv.c), with and
 * without ';' as a separator, and the URI splitter of request.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kvlist	 l;
	struct req	 r;
	const char	*err;
	char		*uri, *env[3];
	size_t		 i;

	memset(&l, 0, sizeof(l));
	if (kv_parse(&l, (const char *)data, size, 0, &err) == 0)
		for (i = 0; i < l.n; i++)
			(void)kv_get(&l, l.v[i].key);
	kv_free(&l);
	(void)kv_parse(&l, (const char *)data, size, KV_SEMICOLON, &err);
	kv_free(&l);

	if (util_has_nul(data, size))
		return 0;
	uri = xmalloc(size + 14);
	memcpy(uri, "REQUEST_URI=/", 13);
	memcpy(uri + 13, data, size);
	uri[size + 13] = '\0';
	env[0] = uri;
	env[1] = "REQUEST_METHOD=POST";
	env[2] = NULL;
	req_init(&r, env);
	(void)req_parse_uri(&r, &err);
	req_free(&r);
	free(uri);
	return 0;
}
