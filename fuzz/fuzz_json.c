/*
 * fuzz_json: JSON intake: a request body parsed as JSON (request.c),
 * its parameters as architecture.md §4 reads them, and the payload kept
 * with the event (request.c serialises it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct req	 r;
	const char	*err;
	char		*env[] = { "CONTENT_TYPE=application/json",
			    "REQUEST_URI=/webhooks/retell", NULL };
	char		*payload;

	req_init(&r, env);
	r.body = xmalloc(size + 1);
	memcpy(r.body, data, size);
	r.body[size] = '\0';
	r.bodylen = size;
	if (req_parse_uri(&r, &err) == 0 && req_parse_body(&r, &err) == 0) {
		(void)req_param(&r, "organization_id");
		(void)req_param(&r, "event");
		payload = req_payload_json(&r);
		cJSON_free(payload);
	}
	req_free(&r);
	return 0;
}
