/*
 * twiliosig.c: X-Twilio-Signature exactly as the official SDKs compute it
 * (twilio-node webhooks.ts, twilio-python request_validator.py):
 *
 *	data = URL
 *	for name in sorted(unique(names)):		bytewise
 *		for value in sorted(unique(values of name)):
 *			data += name + value
 *	signature = base64(HMAC-SHA1(auth token, data))
 *
 * over the decoded form parameters.  A JSON body is not a parameter list:
 * the URL carries bodySHA256, the hex SHA-256 of the raw body, and the
 * signature covers the URL alone.  Both SDKs accept the URL with and
 * without the scheme's default port, so we do too.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "extern.h"

/*
 * HMAC-SHA1 (RFC 2104) over a SHA-1 fetched once.  OpenSSL 3's HMAC()
 * fetches its MAC and digest again at every call, which cost more than
 * the hashing itself: two thirds of the instructions of a request.
 */
static int
twiliosig_hmac(const char *key, const char *data, size_t len,
    unsigned char *mac, unsigned int *maclen)
{
	static EVP_MD		*sha1;
	static EVP_MD_CTX	*ctx;
	unsigned char		 k[64], pad[64], inner[EVP_MAX_MD_SIZE];
	unsigned int		 klen = 0, ilen = 0;
	size_t			 keylen = strlen(key), i;
	int			 rc = -1;

	if (sha1 == NULL && (sha1 = EVP_MD_fetch(NULL, "SHA1", NULL)) == NULL)
		return -1;
	if (ctx == NULL && (ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	memset(k, 0, sizeof(k));
	if (keylen > sizeof(k)) {
		if (!EVP_DigestInit_ex2(ctx, sha1, NULL) ||
		    !EVP_DigestUpdate(ctx, key, keylen) ||
		    !EVP_DigestFinal_ex(ctx, k, &klen))
			goto fail;
	} else
		memcpy(k, key, keylen);
	for (i = 0; i < sizeof(pad); i++)
		pad[i] = k[i] ^ 0x36;
	if (!EVP_DigestInit_ex2(ctx, sha1, NULL) ||
	    !EVP_DigestUpdate(ctx, pad, sizeof(pad)) ||
	    !EVP_DigestUpdate(ctx, data, len) ||
	    !EVP_DigestFinal_ex(ctx, inner, &ilen))
		goto fail;
	for (i = 0; i < sizeof(pad); i++)
		pad[i] = k[i] ^ 0x5c;
	if (!EVP_DigestInit_ex2(ctx, sha1, NULL) ||
	    !EVP_DigestUpdate(ctx, pad, sizeof(pad)) ||
	    !EVP_DigestUpdate(ctx, inner, ilen) ||
	    !EVP_DigestFinal_ex(ctx, mac, maclen))
		goto fail;
	rc = 0;
fail:
	explicit_bzero(k, sizeof(k));
	explicit_bzero(pad, sizeof(pad));
	return rc;
}

static int
twiliosig_cmp_kv(const void *a, const void *b)
{
	const struct kv	*x = a, *y = b;
	int		 c;

	if ((c = strcmp(x->key, y->key)) != 0)
		return c;
	return strcmp(x->val, y->val);
}

/*
 * The signature of url and params (NULL: none) under token, as base64
 * into out (TWILIO_SIGLEN + 1 bytes).
 */
void
twiliosig_compute(const char *token, const char *url,
    const struct kvlist *params, char *out)
{
	struct kv	*v = NULL;
	struct buf	 data;
	unsigned char	 mac[EVP_MAX_MD_SIZE];
	unsigned int	 maclen = 0;
	size_t		 i, n = params != NULL ? params->n : 0;

	buf_init(&data);
	buf_puts(&data, url);
	if (n > 0) {
		v = xreallocarray(NULL, n, sizeof(*v));
		memcpy(v, params->v, n * sizeof(*v));
		qsort(v, n, sizeof(*v), twiliosig_cmp_kv);
		for (i = 0; i < n; i++) {
			/* identical name and value pairs count once */
			if (i > 0 && twiliosig_cmp_kv(&v[i - 1], &v[i]) == 0)
				continue;
			buf_puts(&data, v[i].key);
			buf_puts(&data, v[i].val);
		}
		free(v);
	}
	if (data.failed || twiliosig_hmac(token, buf_cstr(&data), data.len,
	    mac, &maclen) == -1 || maclen != 20)
		out[0] = '\0';	/* matches no header */
	else
		EVP_EncodeBlock((unsigned char *)out, mac, (int)maclen);
	buf_free(&data);
}

/*
 * The URLs Twilio may have signed for base (scheme://host[:port]) and
 * uri (the raw request path and query): as configured, and with the
 * scheme's default port added, or a port removed.  Returns how many (1
 * or 2) were written to out[0..1], which the caller frees.
 */
int
twiliosig_urls(const char *base, const char *uri, char *out[2])
{
	const char	*host, *colon, *defport;
	size_t		 schemelen;

	xasprintf(&out[0], "%s%s", base, uri);
	out[1] = NULL;
	if (strncmp(base, "https://", 8) == 0) {
		schemelen = 8;
		defport = "443";
	} else if (strncmp(base, "http://", 7) == 0) {
		schemelen = 7;
		defport = "80";
	} else
		return 1;
	host = base + schemelen;
	/* a port follows the last ':' unless it closes an IPv6 literal */
	colon = strrchr(host, ':');
	if (colon != NULL && strchr(colon, ']') == NULL)
		xasprintf(&out[1], "%.*s%s", (int)(colon - base), base, uri);
	else
		xasprintf(&out[1], "%s:%s%s", base, defport, uri);
	return 2;
}

/*
 * Does header match the signature of any candidate URL under token?
 * form is the body's parameters, or NULL for a JSON body or GET.
 */
int
twiliosig_check(const char *token, const char *base, const char *uri,
    const struct kvlist *form, const char *header)
{
	char	*urls[2], sig[TWILIO_SIGLEN + 1];
	int	 n, i, ok = 0;

	if (token == NULL || *token == '\0' || header == NULL)
		return 0;
	/* the URL as configured first; which one matched is no secret */
	n = twiliosig_urls(base, uri, urls);
	for (i = 0; i < n; i++) {
		if (!ok) {
			twiliosig_compute(token, urls[i], form, sig);
			ok = crypto_streq(sig, header);
		}
		free(urls[i]);
	}
	return ok;
}
