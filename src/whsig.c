/*
 * whsig.c: signatures of the Standard Webhooks specification, for the
 * events telehook delivers to its clients' own systems
 * (architecture.md §14):
 *
 *	webhook-signature: v1,<base64(HMAC-SHA256(key, id "." ts "." body))>
 *
 * where key is the base64 after "whsec_" in the endpoint's secret.  A
 * header may carry several signatures separated by spaces: during a
 * secret's rotation both the new and the old one sign.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>

#include "extern.h"

#define WHSIG_PREFIX	"whsec_"

/* A new secret: "whsec_" and the base64 of 24 random bytes. */
void
whsig_secret_new(char *out, size_t outsz)
{
	unsigned char	 raw[WHSIG_SECRET_BYTES];
	char		 b64[64];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw),
	    sodium_base64_VARIANT_ORIGINAL);
	snprintf(out, outsz, "%s%s", WHSIG_PREFIX, b64);
	sodium_memzero(raw, sizeof(raw));
}

/*
 * The signature of body under secret as "v1,<base64>" in out; -1 when
 * the secret is not whsec_ and base64 of at least 24 bytes.
 */
int
whsig_sign(const char *secret, const char *id, long long ts,
    const void *body, size_t len, char *out, size_t outsz)
{
	unsigned char	 key[64], mac[EVP_MAX_MD_SIZE];
	unsigned int	 maclen = 0;
	size_t		 keylen;
	char		 head[160], b64[sodium_base64_ENCODED_LEN(32,
			    sodium_base64_VARIANT_ORIGINAL)];
	int		 n, rc = -1;

	if (strncmp(secret, WHSIG_PREFIX, strlen(WHSIG_PREFIX)) != 0 ||
	    sodium_base642bin(key, sizeof(key), secret + strlen(WHSIG_PREFIX),
	    strlen(secret + strlen(WHSIG_PREFIX)), NULL, &keylen, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    keylen < WHSIG_SECRET_BYTES)
		goto done;
	n = snprintf(head, sizeof(head), "%s.%lld.", id, ts);
	if (n < 0 || (size_t)n >= sizeof(head))
		goto done;
	if (whsig_hmac(key, keylen, head, (size_t)n, body, len, mac,
	    &maclen) == -1 || maclen != 32)
		goto done;
	sodium_bin2base64(b64, sizeof(b64), mac, 32,
	    sodium_base64_VARIANT_ORIGINAL);
	if ((size_t)snprintf(out, outsz, "v1,%s", b64) >= outsz)
		goto done;
	rc = 0;
done:
	sodium_memzero(key, sizeof(key));
	return rc;
}

/* HMAC-SHA256 of a then b under key. */
int
whsig_hmac(const unsigned char *key, size_t keylen, const void *a,
    size_t alen, const void *b, size_t blen, unsigned char *mac,
    unsigned int *maclen)
{
	static EVP_MAC	*m;		/* fetched once: a fetch is costly */
	EVP_MAC_CTX	*x = NULL;
	OSSL_PARAM	 params[2];
	size_t		 outl = 0;
	int		 rc = -1;

	if (m == NULL && (m = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
		return -1;
	params[0] = OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if ((x = EVP_MAC_CTX_new(m)) != NULL &&
	    EVP_MAC_init(x, key, keylen, params) == 1 &&
	    EVP_MAC_update(x, a, alen) == 1 &&
	    EVP_MAC_update(x, b, blen) == 1 &&
	    EVP_MAC_final(x, mac, &outl, EVP_MAX_MD_SIZE) == 1) {
		*maclen = (unsigned int)outl;
		rc = 0;
	}
	EVP_MAC_CTX_free(x);
	return rc;
}
