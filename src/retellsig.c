/*
 * retellsig.c: X-Retell-Signature as retell-sdk verifies it (TypeScript
 * lib/webhook_auth.ts):
 *
 *	header  = "v=" ms "," "d=" hex		/^v=(\d+),d=([0-9a-f]+)$/i
 *	digest  = HMAC-SHA256(api key, raw body + String(ms))
 *
 * The whole header must match; the digest is exactly 64 hex digits; the
 * timestamp is a safe integer (at most 2^53 - 1) within the tolerance of
 * now, either way, inclusive.  The signed message uses the timestamp as
 * JavaScript prints the number: without leading zeros.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "extern.h"

#define JS_MAX_SAFE	9007199254740991LL

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Parse header into its timestamp (ms) and digest (32 bytes).  -1 when
 * it is not exactly "v=<digits>,d=<64 hex>".
 */
int
retellsig_parse(const char *h, long long *ms, unsigned char *digest)
{
	const char	*p, *d;
	long long	 v = 0;
	size_t		 i;
	int		 hi, lo;

	if (h == NULL || (h[0] != 'v' && h[0] != 'V') || h[1] != '=')
		return -1;
	p = h + 2;
	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (JS_MAX_SAFE - (*p - '0')) / 10)
			return -1;	/* not a safe integer */
		v = v * 10 + (*p - '0');
	}
	if (p[0] != ',' || (p[1] != 'd' && p[1] != 'D') || p[2] != '=')
		return -1;
	d = p + 3;
	if (strlen(d) != 64)
		return -1;
	for (i = 0; i < 32; i++) {
		if ((hi = hexval((unsigned char)d[2 * i])) < 0 ||
		    (lo = hexval((unsigned char)d[2 * i + 1])) < 0)
			return -1;
		digest[i] = (unsigned char)(hi << 4 | lo);
	}
	*ms = v;
	return 0;
}

/* HMAC-SHA256(key, body + decimal ms) into out (32 bytes). */
void
retellsig_digest(const char *key, const char *body, size_t len,
    long long ms, unsigned char *out)
{
	struct buf	 msg;
	unsigned int	 n = 0;

	buf_init(&msg);
	msg.max = len + 32;	/* whatever max_body_bytes allowed */
	buf_add(&msg, body, len);
	buf_printf(&msg, "%lld", ms);
	if (msg.failed || HMAC(EVP_sha256(), key, (int)strlen(key),
	    (const unsigned char *)buf_cstr(&msg), msg.len, out, &n) == NULL ||
	    n != 32)
		memset(out, 0, 32);	/* matches nothing we would accept */
	buf_free(&msg);
}

/*
 * Verify header over body under key at now_ms, with tolerance_ms either
 * way.  RETELLSIG_OK, or why not.
 */
enum retellsig
retellsig_verify(const char *key, const char *body, size_t len,
    const char *header, long long now_ms, long long tolerance_ms)
{
	unsigned char	 want[32], got[32];
	long long	 ms, diff;

	if (retellsig_parse(header, &ms, got) == -1)
		return RETELLSIG_MALFORMED;
	diff = now_ms > ms ? now_ms - ms : ms - now_ms;
	if (tolerance_ms < 0 || diff > tolerance_ms)
		return RETELLSIG_EXPIRED;
	if (key == NULL || *key == '\0')
		return RETELLSIG_MISMATCH;
	retellsig_digest(key, body, len, ms, want);
	return crypto_ct_equal(want, got, 32) ? RETELLSIG_OK :
	    RETELLSIG_MISMATCH;
}
