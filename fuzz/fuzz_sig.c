/*
 * fuzz_sig: the signature and header parsers: X-Twilio-Signature over a
 * request URI and form body (twiliosig.c), the candidate URLs,
 * X-Retell-Signature (retellsig.c), and the X-Forwarded-For walk and
 * address lists (request.c, cidr.c).
 *
 * Input: token '\n' header '\n' uri '\n' form body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char *
take(const char **p, const char *end)
{
	const char	*nl = memchr(*p, '\n', (size_t)(end - *p));
	char		*s;

	if (nl == NULL)
		nl = end;
	s = xstrndup(*p, (size_t)(nl - *p));
	*p = nl < end ? nl + 1 : end;
	return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*p = (const char *)data, *end = p + size, *err;
	char		*token, *header, *uri, *urls[2], *addr;
	struct kvlist	 form;
	struct cidrlist	 proxies;
	int		 i, n;

	if (util_has_nul(data, size))
		return 0;
	token = take(&p, end);
	header = take(&p, end);
	uri = take(&p, end);
	memset(&form, 0, sizeof(form));
	if (kv_parse(&form, p, (size_t)(end - p), 0, &err) == 0) {
		(void)twiliosig_check(token, "https://hooks.example", uri,
		    &form, header);
		(void)twiliosig_check(token, "http://[2001:db8::1]:8080", uri,
		    NULL, header);
	}
	kv_free(&form);
	(void)retellsig_verify(token, p, (size_t)(end - p), header,
	    1700000000000LL, 300000);
	n = twiliosig_urls(token, uri, urls);
	for (i = 0; i < n; i++)
		free(urls[i]);
	if (cidrlist_parse(token, &proxies, &err) == 0) {
		addr = req_client_addr(uri, header, &proxies);
		free(addr);
		(void)cidrlist_match(&proxies, header);
		cidrlist_free(&proxies);
	}
	free(token);
	free(header);
	free(uri);
	return 0;
}
