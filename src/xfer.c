/*
 * xfer.c: one signed delivery attempt as a curl transfer (architecture.md
 * §14), for the sender's queue (deliver.c) and its batches (batch.c):
 * the Standard Webhooks headers, the opened secrets, the connection
 * guard (egress.c), the retry schedule and why an attempt failed.  Below
 * both, so neither calls back into the other for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>

#include "extern.h"
#include "ctl.h"
#include "deliver.h"

static long long	 xfer_sched[DELIVERY_MAX_ATTEMPTS];
int			 xfer_nsched;

/* The retry schedule of [delivery] retry_schedule; -1 if it is bad. */
int
xfer_schedule(const char *spec)
{
	int	 n;

	if ((n = util_schedule(spec, xfer_sched, DELIVERY_MAX_ATTEMPTS)) == -1)
		return -1;
	xfer_nsched = n;
	return 0;
}

/* The receiver's answer body is not kept (a few KB read, then cut). */
static size_t
xfer_sink(char *b, size_t size, size_t n, void *arg)
{
	(void)b;
	(void)arg;
	return size * n;
}

/*
 * Opened secrets, by their sealed text: opening one per attempt would
 * cost more than the signature.  A rotated or removed endpoint's entry
 * is simply not asked for again; the cache is small and zeroed at exit.
 */
#define XFER_SECRETS	64
static struct {
	char	*sealed;
	char	*secret;
} xfer_secrets[XFER_SECRETS];
static int	xfer_nsecrets, xfer_next;

static const char *
xfer_secret(const char *sealed)
{
	char	*secret;
	int	 i;

	for (i = 0; i < xfer_nsecrets; i++)
		if (strcmp(xfer_secrets[i].sealed, sealed) == 0)
			return xfer_secrets[i].secret;
	if ((secret = crypto_open(crypto_key, sealed)) == NULL)
		return NULL;
	if (xfer_nsecrets < XFER_SECRETS)
		i = xfer_nsecrets++;
	else {
		i = xfer_next++ % XFER_SECRETS;
		free(xfer_secrets[i].sealed);
		sodium_memzero(xfer_secrets[i].secret,
		    strlen(xfer_secrets[i].secret));
		free(xfer_secrets[i].secret);
	}
	xfer_secrets[i].sealed = xstrdup(sealed);
	xfer_secrets[i].secret = secret;
	return secret;
}

/* The opened secrets, zeroed: at the sender's end. */
void
xfer_secrets_free(void)
{
	int	 i;

	for (i = 0; i < xfer_nsecrets; i++) {
		free(xfer_secrets[i].sealed);
		sodium_memzero(xfer_secrets[i].secret,
		    strlen(xfer_secrets[i].secret));
		free(xfer_secrets[i].secret);
	}
	xfer_nsecrets = xfer_next = 0;
}

/*
 * The webhook-signature header for body: the current secret's, and
 * during a rotation the previous one's too, space-separated.
 */
static int
xfer_sign(const char *sealed, const char *previous, const char *id,
    long long ts, const char *body, char *out, size_t outsz)
{
	const char	*secret, *s[2] = { sealed, previous };
	char		 sig[2][WHSIG_SIG_MAX];
	int		 i, n = 0;

	for (i = 0; i < 2; i++) {
		if (s[i] == NULL)
			continue;
		if ((secret = xfer_secret(s[i])) == NULL)
			return -1;
		if (whsig_sign(secret, id, ts, body, strlen(body), sig[n],
		    sizeof(sig[n])) == 0)
			n++;
	}
	if (n == 0)
		return -1;
	snprintf(out, outsz, "webhook-signature: %s%s%s", sig[0],
	    n > 1 ? " " : "", n > 1 ? sig[1] : "");
	return 0;
}

/* A transfer of s added to m; NULL (why) when it cannot be signed. */
struct xfer *
xfer_start(CURLM *m, const struct dsend *s, char *why, size_t whysz)
{
	struct xfer	*x;
	char		 h[256];
	long long	 ts = (long long)time(NULL);

	x = xcalloc(1, sizeof(*x));
	snprintf(x->id, sizeof(x->id), "%s", s->id != NULL ? s->id : "");
	snprintf(x->endpoint, sizeof(x->endpoint), "%s", s->endpoint);
	x->attempts = s->attempts;
	x->body = xstrdup(s->body);
	if (!crypto_have_key || xfer_sign(s->secret, s->previous,
	    s->msgid, ts, x->body, h, sizeof(h)) == -1) {
		snprintf(why, whysz, "the endpoint's secret does not open "
		    "with secret_key_file");
		free(x->body);
		free(x);
		return NULL;
	}
	x->hl = curl_slist_append(x->hl, h);
	snprintf(h, sizeof(h), "webhook-id: %s", s->msgid);
	x->hl = curl_slist_append(x->hl, h);
	snprintf(h, sizeof(h), "webhook-timestamp: %lld", ts);
	x->hl = curl_slist_append(x->hl, h);
	x->hl = curl_slist_append(x->hl, "Content-Type: application/json");
	x->hl = curl_slist_append(x->hl, "Expect:");
	x->curl = curl_easy_init();
	(void)curl_easy_setopt(x->curl, CURLOPT_URL, s->url);
	(void)curl_easy_setopt(x->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	(void)curl_easy_setopt(x->curl, CURLOPT_FOLLOWLOCATION, 0L);
	(void)curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, x->hl);
	(void)curl_easy_setopt(x->curl, CURLOPT_POSTFIELDS, x->body);
	(void)curl_easy_setopt(x->curl, CURLOPT_POSTFIELDSIZE,
	    (long)strlen(x->body));
	(void)curl_easy_setopt(x->curl, CURLOPT_USERAGENT,
	    "telehook/" PACKAGE_VERSION);
	(void)curl_easy_setopt(x->curl, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(x->curl, CURLOPT_CONNECTTIMEOUT,
	    (long)(conf.delivery.timeout_s < 5 ? conf.delivery.timeout_s : 5));
	(void)curl_easy_setopt(x->curl, CURLOPT_TIMEOUT,
	    (long)conf.delivery.timeout_s);
	x->eg.allow_private = conf.delivery.allow_private;
	egress_curl(x->curl, &x->eg);
	(void)curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, xfer_sink);
	(void)curl_easy_setopt(x->curl, CURLOPT_ERRORBUFFER, x->err);
	(void)curl_easy_setopt(x->curl, CURLOPT_PRIVATE, x);
	x->start_us = util_now_us();
	curl_multi_add_handle(m, x->curl);
	return x;
}

void
xfer_free(CURLM *m, struct xfer *x)
{
	curl_multi_remove_handle(m, x->curl);
	curl_easy_cleanup(x->curl);
	curl_slist_free_all(x->hl);
	free(x->body);
	free(x);
}

/* Seconds until attempt n+1 (n attempts made): the schedule, jittered. */
double
xfer_delay(int n)
{
	double	d;

	if (n < 1 || n > xfer_nsched)
		return 0;
	d = (double)xfer_sched[n - 1];
	return d * (0.8 + 0.4 * (double)randombytes_uniform(1001) / 1000.0);
}

/* Why an attempt failed, in a line. */
void
xfer_why(struct xfer *x, CURLcode cc, long status, char *why,
    size_t whysz)
{
	if (x->eg.refused > 0)	/* the same words whatever the port */
		snprintf(why, whysz, "refused: not a public address "
		    "(allow_private is off)");
	else if (cc != CURLE_OK)
		snprintf(why, whysz, "%s%s%s", curl_easy_strerror(cc),
		    *x->err != '\0' ? ": " : "", x->err);
	else
		snprintf(why, whysz, "answered %ld", status);
}
