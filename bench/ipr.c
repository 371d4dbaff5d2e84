/*
 * ipr.c: the work of one signed Twilio SMS without the database, for
 * callgrind: parse the form, verify X-Twilio-Signature, build and render
 * the TwiML answer.  "ipr N" does it N times; bench/run divides the
 * difference of two runs' instruction counts by N.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

#define TOKEN	"bench-auth-token-0123456789abcdef"
#define BASE	"https://hooks.example.com"
#define URI	"/webhooks/twilio/sms/incoming"
#define BODY	"MessageSid=SM0123456789abcdef0123456789abcdef&" \
		"SmsSid=SM0123456789abcdef0123456789abcdef&" \
		"AccountSid=AC0123456789abcdef0123456789abcdef&" \
		"From=%2B15551230000&To=%2B15550001000&Body=Thanks%21&" \
		"NumMedia=0&SmsStatus=received&ApiVersion=2010-04-01"

int
main(int argc, char *argv[])
{
	struct kvlist	 form;
	struct resp	 p;
	struct buf	 out;
	const char	*err;
	char		 sig[TWILIO_SIGLEN + 1], *url;
	long		 i, n = argc > 1 ? atol(argv[1]) : 1;
	int		 ok = 0;

	if (crypto_init() == -1)
		return 1;
	memset(&form, 0, sizeof(form));
	if (kv_parse(&form, BODY, strlen(BODY), 0, &err) == -1)
		return 1;
	xasprintf(&url, "%s%s", BASE, URI);
	twiliosig_compute(TOKEN, url, &form, sig);
	kv_free(&form);
	free(url);
	buf_init(&out);
	for (i = 0; i < n; i++) {
		memset(&form, 0, sizeof(form));
		if (kv_parse(&form, BODY, strlen(BODY), 0, &err) == -1)
			return 1;
		ok += twiliosig_check(TOKEN, BASE, URI, &form, sig);
		resp_init(&p, RESP_TWIML);
		(void)resp_render(&p, 0, &out);
		resp_free(&p);
		kv_free(&form);
	}
	buf_free(&out);
	printf("%d of %ld verified\n", ok, n);
	return ok == n ? 0 : 1;
}
