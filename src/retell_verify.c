/*
 * retell_verify.c: who may send Retell events (architecture.md §4-5): the
 * address allowlist, the shared secret, X-Retell-Signature under the
 * deployment's keys (checked over the raw body before it is parsed) or
 * under the key of the organization the event belongs to, which then
 * scopes the request to that organization.  Fails closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extern.h"
#include "retell.h"

/*
 * Verification (architecture.md §5): the address allowlist if set, the
 * shared secret, else X-Retell-Signature under api_key, api_key_previous
 * or the key stored for the organization the event belongs to (a key
 * only vouches for its own organization's events).  Fails closed.
 */
static const struct db_stmt st_keys = { "retell_keys",
	"SELECT secret_sealed FROM provider_accounts WHERE provider = "
	"'retell' AND organization_id = $1", 1 };

static enum retellsig
rt_check(const char *key, const struct req *r, const char *sig,
    long long now_ms, int *nkeys)
{
	(*nkeys)++;
	return retellsig_verify(key, r->body, r->bodylen, sig, now_ms,
	    conf.retell.signature_tolerance_s * 1000);
}

static enum retellsig
rt_check_sealed(const char *sealed, const struct req *r, const char *sig,
    long long now_ms, int *nkeys)
{
	char		*key;
	enum retellsig	 v;

	if ((key = crypto_open(crypto_key, sealed)) == NULL) {
		log_warnx("retell: a stored key does not open with "
		    "secret_key_file");
		return RETELLSIG_MISMATCH;
	}
	v = rt_check(key, r, sig, now_ms, nkeys);
	explicit_bzero(key, strlen(key));
	free(key);
	return v;
}

/*
 * What the precheck and the check share: the address, the shared
 * secret, and a signature header to check.  VERIFY_OK for the secret;
 * VERIFY_PARSE with *sig set to go on, or with *sig NULL when
 * insecure_allow_unsigned lets an unsigned request through; else the
 * refusal.
 */
static enum verdict
rt_front(struct req *r, const char **why, const char **sig)
{
	const char	*secret, *auth;

	*why = NULL;
	*sig = NULL;
	if (conf.retell.allowed.n > 0 &&
	    !cidrlist_match(&conf.retell.allowed, r->client_addr)) {
		*why = "address not allowed";
		return VERIFY_FORBID;
	}
	secret = req_header(r, "X-Retell-Secret");
	auth = req_header(r, "Authorization");
	if (secret == NULL && auth != NULL && strncmp(auth, "Bearer ", 7) == 0)
		secret = auth + 7;
	if (secret != NULL && conf.retell.webhook_secret != NULL &&
	    crypto_streq(secret, conf.retell.webhook_secret))
		return VERIFY_OK;
	if (conf.retell.insecure_allow_unsigned)
		return VERIFY_PARSE;
	if ((*sig = req_header(r, "X-Retell-Signature")) == NULL) {
		*why = secret != NULL ? "bad webhook secret" :
		    "missing X-Retell-Signature";
		return VERIFY_DENY;
	}
	return VERIFY_PARSE;
}

/*
 * Before the body is parsed: the address, the shared secret, a missing,
 * malformed or expired signature, and the deployment-wide keys, whose
 * HMAC is over the raw bytes.  Only an organization's own key needs the
 * parsed body (it is chosen by the event's routing), and only when some
 * organization has one.
 */
static const struct db_stmt st_any_key = { "retell_any_key",
	"SELECT 1 FROM provider_accounts WHERE provider = 'retell' LIMIT 1",
	0 };

enum verdict
retell_precheck(struct req *r, const char **why)
{
	const char	*sig;
	enum verdict	 v0;
	struct db_res	 res;
	struct timespec	 ts;
	long long	 now_ms, t;
	unsigned char	 d[32];
	enum retellsig	 v;
	int		 i, any = 0, nkeys = 0;

	if ((v0 = rt_front(r, why, &sig)) != VERIFY_PARSE || sig == NULL)
		return v0;
	if (retellsig_parse(sig, &t, d) == -1) {
		*why = "malformed X-Retell-Signature";
		return VERIFY_DENY;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	v = RETELLSIG_MISMATCH;
	if (conf.retell.api_key != NULL)
		v = rt_check(conf.retell.api_key, r, sig, now_ms, &nkeys);
	if (v == RETELLSIG_MISMATCH && conf.retell.api_key_previous != NULL)
		v = rt_check(conf.retell.api_key_previous, r, sig, now_ms,
		    &nkeys);
	if (v == RETELLSIG_OK)
		return VERIFY_OK;
	if (v == RETELLSIG_EXPIRED || (nkeys == 0 &&
	    retellsig_verify(NULL, r->body, r->bodylen, sig, now_ms,
	    conf.retell.signature_tolerance_s * 1000) == RETELLSIG_EXPIRED)) {
		*why = "X-Retell-Signature timestamp outside "
		    "signature_tolerance_s";
		return VERIFY_EXPIRED;
	}
	/* is there any organization's own key to try? */
	if (crypto_have_key) {
		if (db_exec(&st_any_key, NULL, &res) == DB_OK) {
			any = res.nrows > 0;
			db_res_free(&res);
		} else
			for (i = 0; i < cache_secret_count() && !any; i++)
				any = strcmp(cache_secret_provider(i),
				    "retell") == 0;
	}
	if (any)
		return VERIFY_PARSE;
	*why = nkeys == 0 ? "no Retell verification configured" :
	    "bad X-Retell-Signature";
	return VERIFY_DENY;
}

enum verdict
retell_verify(struct req *r, const char **why)
{
	const char	*sig, *params[1];
	enum verdict	 v0;
	struct db_res	 res;
	struct timespec	 ts;
	struct org	 o;
	char		*org = NULL;
	long long	 now_ms;
	enum retellsig	 v = RETELLSIG_MISMATCH;
	int		 i, c, nkeys;

	if ((v0 = rt_front(r, why, &sig)) != VERIFY_PARSE)
		return v0;
	if (sig == NULL)
		return VERIFY_OK;	/* insecure_allow_unsigned */
	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	/*
	 * retell_precheck() has passed: the signature parses, is within
	 * the tolerance and matches neither deployment-wide key (it
	 * checked them over the raw body).  Counted, not computed again.
	 */
	nkeys = (conf.retell.api_key != NULL) +
	    (conf.retell.api_key_previous != NULL);
	/* the organization's own key, from the database or the cache */
	if (crypto_have_key && r->json != NULL) {
		if (rt_route(r, rt_call_of(r->json), rt_obj(r->json,
		    "call_inbound") ? rt_str(rt_obj(r->json, "call_inbound"),
		    "to_number") : NULL, &org) == DB_OK) {
			params[0] = org;
			if (org != NULL && db_exec(&st_keys, params, &res) ==
			    DB_OK) {
				c = db_col(&res, "secret_sealed");
				for (i = 0; i < res.nrows && v != RETELLSIG_OK;
				    i++)
					v = rt_check_sealed(db_get(&res, i, c),
					    r, sig, now_ms, &nkeys);
				db_res_free(&res);
			}
			/* a key of the organization's own: its scope */
			if (v == RETELLSIG_OK) {
				r->scope_org = org;
				org = NULL;
			}
		} else if (cache_org(rt_explicit(r, rt_call_of(r->json)),
		    rt_owner_number(r->json), &o) == 0) {
			for (i = 0; i < cache_secret_count() &&
			    v != RETELLSIG_OK; i++)
				if (cache_secret_org(i, "retell", o.id) != NULL)
					v = rt_check_sealed(cache_secret_org(i,
					    "retell", o.id), r, sig, now_ms,
					    &nkeys);
			if (v == RETELLSIG_OK)
				r->scope_org = xstrdup(o.id);
			store_org_free(&o);
		}
		free(org);
	}
	if (v == RETELLSIG_OK)
		return VERIFY_OK;
	if (nkeys == 0) {
		*why = "no Retell verification configured";
		return VERIFY_DENY;
	}
	if (v == RETELLSIG_MALFORMED)
		*why = "malformed X-Retell-Signature";
	else if (v == RETELLSIG_EXPIRED) {
		*why = "X-Retell-Signature timestamp outside "
		    "signature_tolerance_s";
		return VERIFY_EXPIRED;
	} else
		*why = "bad X-Retell-Signature";
	return VERIFY_DENY;
}
