/*
 * voipms.c: the VoIP.ms provider (architecture.md §3-8): the SMS URL
 * callback, call records and recordings.
 *
 * VoIP.ms signs nothing: a request is trusted by the token in its URL
 * and/or its source address.  Its legacy callback is a GET whose values
 * may be separated by ';' as well as '&', with fields that may be
 * missing; it resends every 30 minutes until the answer is exactly
 * "ok", so "ok" is answered once the message is stored, or spooled.
 *
 * Auto-replies cannot go back in the answer: they are queued in the
 * outbox, in the same transaction, for "telehookctl outbox send".
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extern.h"

struct vm {
	struct hook	 h;		/* the request, its key, event, owner */
	struct kvlist	 q;		/* the query, ';' separating too */
};

/*
 * A parameter: form field, JSON member (a string, or a number as its
 * decimal), or query parameter.  Borrowed, or from buf.
 */
static const char *
vm_get(const struct vm *t, const char *name, char *buf, size_t len)
{
	const char	*v;
	const cJSON	*j;

	if ((v = kv_get(&t->h.r->form, name)) != NULL)
		return *v ? v : NULL;
	if (t->h.r->json != NULL &&
	    (j = cJSON_GetObjectItemCaseSensitive(t->h.r->json, name)) != NULL) {
		if (cJSON_IsString(j))
			return *j->valuestring ? j->valuestring : NULL;
		if (cJSON_IsNumber(j) && buf != NULL) {
			snprintf(buf, len, "%.15g", j->valuedouble);
			return buf;
		}
		return NULL;
	}
	if ((v = kv_get(&t->q, name)) != NULL)
		return *v ? v : NULL;
	return NULL;
}

/* The first of several names that is present. */
static const char *
vm_any(const struct vm *t, const char *const *names, char *buf, size_t len)
{
	const char	*v;
	int		 i;

	for (i = 0; names[i] != NULL; i++)
		if ((v = vm_get(t, names[i], buf, len)) != NULL)
			return v;
	return NULL;
}

/*
 * A number as VoIP.ms writes one ("5145551234", "15145551234", or a
 * caller id '"Name" <5145551234>') in E.164, else as sent.  Caller frees.
 */
static char *
vm_number(const char *v)
{
	const char	*lt, *gt;
	char		 e[32], *inner;

	if (v == NULL)
		return NULL;
	if ((lt = strchr(v, '<')) != NULL && (gt = strchr(lt, '>')) != NULL) {
		inner = xstrndup(lt + 1, (size_t)(gt - lt - 1));
		if (phone_e164(inner, e, sizeof(e)) == 0) {
			free(inner);
			return xstrdup(e);
		}
		free(inner);
	}
	return xstrdup(phone_e164(v, e, sizeof(e)) == 0 ? e : v);
}

/*
 * The organization whose own URL token this is ("telehookctl secret set
 * ORG voipms"), found by the token's SHA-256; from the cache while the
 * database is away.  Caller frees; NULL if none.
 */
static const struct db_stmt st_token_org = { "voipms_token_org",
	"SELECT organization_id FROM provider_accounts WHERE provider = "
	"'voipms' AND secret_hash = $1", 1 };

static char *
vm_token_org(const char *token)
{
	struct db_res	 res;
	const char	*p[1], *org;
	char		 hash[65], *out = NULL;

	crypto_sha256_hex(token, strlen(token), hash);
	p[0] = hash;
	if (db_exec(&st_token_org, p, &res) == DB_OK) {
		if (res.nrows == 1 &&
		    db_val(&res, 0, "organization_id") != NULL)
			out = xstrdup(db_val(&res, 0, "organization_id"));
		db_res_free(&res);
		return out;
	}
	org = cache_secret_by_hash("voipms", hash);
	return org != NULL ? xstrdup(org) : NULL;
}

/*
 * Verification (architecture.md §5): the address allowlist, if set, on
 * the address nginx's realip module settled; then the URL token: the
 * deployment-wide one (current or previous) routes freely, an
 * organization's own fixes the request to that organization.  With a
 * deployment-wide token configured a token is required; with only an
 * allowlist the address suffices.  Fails closed.
 */
enum verdict
voipms_verify(struct req *r, const char **why)
{
	struct kvlist	 q;
	const char	*token = NULL, *err;
	char		*org = NULL;
	int		 addr_ok = 0, ok = 0;

	*why = NULL;
	if (conf.voipms.allowed.n > 0) {
		if (!cidrlist_match(&conf.voipms.allowed, r->client_addr)) {
			*why = "address not allowed";
			return VERIFY_FORBID;
		}
		addr_ok = 1;
	}
	/* VoIP.ms may separate with ';': the token ends at either */
	memset(&q, 0, sizeof(q));
	if (kv_parse(&q, r->query, strlen(r->query), KV_SEMICOLON, &err) == 0)
		token = kv_get(&q, "token");
	if (token != NULL && *token != '\0') {
		ok = crypto_streq(token, conf.voipms.url_token) ||
		    crypto_streq(token, conf.voipms.url_token_previous);
		if (!ok && (org = vm_token_org(token)) != NULL) {
			r->scope_org = org;
			ok = 1;
		}
	}
	kv_free(&q);
	if (ok || conf.voipms.insecure_allow_unsigned)
		return VERIFY_OK;
	if (conf.voipms.url_token != NULL ||
	    conf.voipms.url_token_previous != NULL || !addr_ok) {
		*why = token != NULL ? "bad token" :
		    conf.voipms.url_token != NULL || addr_ok ?
		    "missing token" : "no VoIP.ms verification configured";
		return VERIFY_DENY;
	}
	return VERIFY_OK;
}

/* The "ok" VoIP.ms waits for. */
static void
vm_ok(struct resp *p)
{
	p->kind = RESP_TEXT;
	p->ctype = "text/plain; charset=utf-8";
	buf_reset(&p->text);
	buf_puts(&p->text, "ok");
}

/* The first 16 hex digits of the SHA-256 of the given fields. */
static void
vm_digest(const char *const *fields, int n, char *out)
{
	struct buf	 b;
	char		 hex[65];
	int		 i;

	buf_init(&b);
	for (i = 0; i < n; i++) {
		buf_puts(&b, fields[i] != NULL ? fields[i] : "");
		buf_putc(&b, '\n');	/* no field holds a raw newline */
	}
	crypto_sha256_hex(buf_cstr(&b), b.len, hex);
	memcpy(out, hex, 16);
	out[16] = '\0';
	buf_free(&b);
}

/*
 * "YYYY-MM-DD HH:MM:SS" on the wall clock of the account's time zone
 * ([voipms] timezone) as epoch milliseconds, into buf; or NULL.
 */
static const char *
vm_date_ms(const char *v, char *buf, size_t len)
{
	struct tm	 tm;
	const char	*end;
	char		*saved;
	time_t		 t;

	if (v == NULL)
		return NULL;
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(v, "%Y-%m-%d %H:%M:%S", &tm)) == NULL ||
	    *end != '\0')
		return NULL;
	tm.tm_isdst = -1;	/* as the zone says for that date */
	saved = util_tz_enter(conf.voipms.timezone);
	t = mktime(&tm);
	util_tz_leave(saved);
	if (t == (time_t)-1 || t < 0)
		return NULL;
	snprintf(buf, len, "%lld", (long long)t * 1000);
	return buf;
}

/* A money amount as VoIP.ms writes one (0.0150): digits, a point, digits. */
static int
vm_decimal(const char *v)
{
	size_t	 n = strspn(v, "0123456789");

	if (n == 0 || n > 9)
		return 0;
	if (v[n] == '\0')
		return 1;
	return v[n] == '.' && strspn(v + n + 1, "0123456789") ==
	    strlen(v + n + 1) && strlen(v + n + 1) >= 1 &&
	    strlen(v + n + 1) <= 8;
}

/*
 * Common steps: the owner and the event (t->q and t->h.key are ready).
 * 0 to go on, 1 for a resend (answered "ok", nothing else), -1 on a
 * database error.
 */
static int
vm_begin(struct vm *t, struct req *r, struct resp *p, const char *type,
    const char *number, const char *call_id)
{
	struct route_query	 q;
	int			 rc;

	t->h.r = r;
	t->h.p = p;
	t->h.provider = "voipms";
	vm_ok(p);
	memset(&q, 0, sizeof(q));
	q.provider = "voipms";
	q.explicit_id = req_param(r, "organization_id");
	q.number = number;
	q.call_id = call_id;
	if ((rc = hook_store(&t->h, &q, type)) != 0)
		return rc;	/* 1, a resend: "ok" again, nothing else */
	return hook_org(&t->h) == DB_OK ? 0 : -1;
}

static enum db_err
vm_end(struct vm *t, int rc)
{
	kv_free(&t->q);
	return hook_end(&t->h, rc);
}

/* The (to, from, message, ...) of a callback; q must be parsed first. */
static int
vm_parse_query(struct vm *t, struct req *r)
{
	const char	*err;

	if (kv_parse(&t->q, r->query, strlen(r->query), KV_SEMICOLON,
	    &err) == -1)
		return -1;
	req_fix_kvlist(&t->q, 1);	/* ISO 8859-1, as VoIP.ms writes */
	return 0;
}

static const struct db_stmt st_outbox = { "voipms_outbox",
	"INSERT INTO outbox (organization_id, provider, event_id, "
	"from_number, to_number, body) VALUES ($1, 'voipms', $2::bigint, $3, "
	"$4, $5) ON CONFLICT (event_id) DO NOTHING", 5 };

/*
 * The SMS URL callback (GET, or POST as a form or JSON): the message is
 * stored, logged, and answered by the organization's rules through the
 * outbox.
 */
enum db_err
voipms_sms(struct req *r, struct resp *p)
{
	static const char *const id_names[] = { "id", "message_id", NULL };
	static const char *const date_names[] = { "date", "timestamp", NULL };
	struct vm	 t;
	struct msg_in	 m;
	struct msg_out	 mo;
	const char	*from_s, *to_s, *msg, *id, *date, *media, *fields[4];
	const char	*p5[5];
	char		*from = NULL, *to = NULL, *reply = NULL, *summary;
	char		 d[17], nb[32], eid[24], *mjson = NULL;
	cJSON		*a;
	int		 rc = -1, begun;

	memset(&t, 0, sizeof(t));
	t.h.r = r;
	t.h.p = p;
	if (vm_parse_query(&t, r) == -1) {
		kv_free(&t.q);
		resp_error(p, 400, "bad query string");
		return DB_OK;
	}
	from_s = vm_get(&t, "from", NULL, 0);
	to_s = vm_get(&t, "to", NULL, 0);
	msg = vm_get(&t, "message", NULL, 0);
	id = vm_any(&t, id_names, nb, sizeof(nb));
	date = vm_any(&t, date_names, NULL, 0);
	media = vm_get(&t, "media", NULL, 0);
	if (from_s == NULL) {
		kv_free(&t.q);
		resp_error(p, 400, "missing from");
		return DB_OK;
	}
	from = vm_number(from_s);
	to = vm_number(to_s);
	if (id != NULL)
		xasprintf(&t.h.key, "sms:%s", id);
	else {
		fields[0] = to;
		fields[1] = from;
		fields[2] = msg;
		fields[3] = date;
		vm_digest(fields, 4, d);
		xasprintf(&t.h.key, "sms:%s", d);
	}
	if ((begun = vm_begin(&t, r, p, "sms_incoming", to, NULL)) != 0) {
		rc = begun == 1 ? 0 : -1;
		goto done;
	}
	a = cJSON_CreateArray();
	if (media != NULL)
		cJSON_AddItemToArray(a, cJSON_CreateString(media));
	mjson = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	memset(&m, 0, sizeof(m));
	m.provider = "voipms";
	m.message_id = t.h.key + 4;	/* the id, or the digest */
	m.org = t.h.org_id;
	m.direction = "inbound";
	m.from = from;
	m.to = to;
	m.body = msg != NULL ? msg : "";
	m.num_media = media != NULL ? "1" : "0";
	m.media = mjson;
	m.status = "received";
	memset(&mo, 0, sizeof(mo));
	if (store_message(&m, &mo) != DB_OK)
		goto done;
	xasprintf(&summary, "SMS from %s", from);
	if (store_activity(t.h.org_id, "sms_reply", summary, 0, mo.id,
	    t.h.event) != DB_OK) {
		free(summary);
		free(mo.org);
		goto done;
	}
	free(summary);
	if ((msg != NULL && reply_urgent(msg) &&
	    store_notify_urgent_sms(t.h.org_id, t.h.event, from, to,
	    msg) != DB_OK) ||
	    reply_decide(&t.h.org, from, to, msg, NULL, &reply) != DB_OK) {
		free(mo.org);
		goto done;
	}
	if (reply != NULL && to != NULL) {
		snprintf(eid, sizeof(eid), "%lld", t.h.event);
		p5[0] = t.h.org_id;
		p5[1] = eid;
		p5[2] = to;
		p5[3] = from;
		p5[4] = reply;
		if (db_exec(&st_outbox, p5, NULL) != DB_OK ||
		    store_message_replied(mo.id, reply) != DB_OK) {
			free(mo.org);
			goto done;
		}
	}
	free(mo.org);
	rc = 0;
done:
	cJSON_free(mjson);
	free(reply);
	free(from);
	free(to);
	return vm_end(&t, rc);
}

/* VoIP.ms dispositions onto the common call states. */
static const char *
vm_status(const char *disposition)
{
	static const struct {
		const char	*disposition;
		const char	*status;
	} map[] = {
		{ "ANSWERED", "completed" },
		{ "NO ANSWER", "no-answer" },
		{ "NOANSWER", "no-answer" },
		{ "BUSY", "busy" },
		{ "FAILED", "failed" },
		{ "CONGESTION", "failed" },
		{ "CANCEL", "canceled" },
	};
	char	 up[16];
	size_t	 i;

	if (disposition == NULL || strlen(disposition) >= sizeof(up))
		return NULL;
	for (i = 0; disposition[i] != '\0'; i++)
		up[i] = (char)toupper((unsigned char)disposition[i]);
	up[i] = '\0';
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(up, map[i].disposition) == 0)
			return map[i].status;
	return NULL;
}

static const char *const callid_names[] = { "callid", "uniqueid", "call_id",
    NULL };
static const char *const recording_names[] = { "recording_url",
    "recording", "url", NULL };

/* Which of the two numbers is ours: the DID owner decides direction. */
static const struct db_stmt st_owns = { "voipms_owns",
	"SELECT 1 FROM phone_numbers WHERE e164 = $1", 1 };

/*
 * A call record: the call, forward only, with its duration, cost and
 * recording; its end logged once.
 */
enum db_err
voipms_cdr(struct req *r, struct resp *p)
{
	struct vm	 t;
	struct call_in	 c;
	struct call_out	 co;
	struct db_res	 res;
	const char	*callid, *secs, *total, *pp[1];
	char		*caller = NULL, *dest = NULL;
	char		 b1[32], b2[32], b3[32], ms[32], cents[32];
	int		 rc = -1, begun, inbound = 1;
	double		 cost;

	memset(&t, 0, sizeof(t));
	t.h.r = r;
	t.h.p = p;
	if (vm_parse_query(&t, r) == -1 ||
	    (callid = vm_any(&t, callid_names, b1, sizeof(b1))) == NULL) {
		kv_free(&t.q);
		resp_error(p, 400, "missing callid");
		return DB_OK;
	}
	caller = vm_number(vm_get(&t, "callerid", NULL, 0));
	dest = vm_number(vm_get(&t, "destination", NULL, 0));
	xasprintf(&t.h.key, "cdr:%s", callid);
	callid = xstrdup(callid);
	/* ours is the destination (inbound), else the caller (outbound) */
	pp[0] = dest;
	if (dest != NULL && db_exec(&st_owns, pp, &res) == DB_OK) {
		inbound = res.nrows > 0 || caller == NULL;
		db_res_free(&res);
	}
	if ((begun = vm_begin(&t, r, p, "cdr", inbound ? dest : caller,
	    callid)) != 0) {
		rc = begun == 1 ? 0 : -1;
		goto done;
	}
	memset(&c, 0, sizeof(c));
	c.provider = "voipms";
	c.call_id = callid;
	c.org = t.h.org_id;
	c.direction = inbound ? "inbound" : "outbound";
	c.from = caller;
	c.to = dest;
	c.status = vm_status(vm_get(&t, "disposition", NULL, 0));
	secs = vm_get(&t, "seconds", b2, sizeof(b2));
	if (secs == NULL)
		secs = vm_get(&t, "duration", b2, sizeof(b2));
	if (secs != NULL && strspn(secs, "0123456789") == strlen(secs))
		c.duration = secs;
	if ((total = vm_get(&t, "total", b3, sizeof(b3))) != NULL &&
	    sscanf(total, "%lf", &cost) == 1 && cost >= 0 && cost < 1e7) {
		snprintf(cents, sizeof(cents), "%.0f", cost * 100);
		c.cost_cents = cents;
		/* and to VoIP.ms's own precision, with the currency */
		if (vm_decimal(total)) {
			c.cost = total;
			c.currency = conf.voipms.currency;
		}
	}
	c.started_ms = vm_date_ms(vm_get(&t, "date", NULL, 0), ms, sizeof(ms));
	c.recording_url = vm_any(&t, recording_names, NULL, 0);
	if (store_call(&c, &co) != DB_OK)
		goto done;
	/* architecture.md §7: ANSWERED is answered; any other end of an inbound call
	 * is missed (store_call_ended()) */
	if (c.status != NULL && strcmp(c.status, "completed") == 0 &&
	    store_call_outcome(&co, "answered", NULL, t.h.event) != DB_OK) {
		store_call_out_free(&co);
		goto done;
	}
	rc = store_call_ended(&co, NULL, NULL, t.h.event) == DB_OK ? 0 : -1;
	store_call_out_free(&co);
done:
	free((char *)callid);
	free(caller);
	free(dest);
	return vm_end(&t, rc);
}

/* A recording: its URL goes to its call, and is logged once. */
enum db_err
voipms_recording(struct req *r, struct resp *p)
{
	struct vm	 t;
	struct call_in	 c;
	struct call_out	 co;
	const char	*callid, *url, *fields[1];
	char		 b1[32], d[17];
	int		 rc = -1, begun;

	memset(&t, 0, sizeof(t));
	t.h.r = r;
	t.h.p = p;
	if (vm_parse_query(&t, r) == -1 ||
	    (callid = vm_any(&t, callid_names, b1, sizeof(b1))) == NULL ||
	    (url = vm_any(&t, recording_names, NULL, 0)) == NULL) {
		kv_free(&t.q);
		resp_error(p, 400, "missing callid or recording URL");
		return DB_OK;
	}
	fields[0] = url;
	vm_digest(fields, 1, d);
	xasprintf(&t.h.key, "recording:%s:%s", callid, d);
	callid = xstrdup(callid);
	url = xstrdup(url);
	if ((begun = vm_begin(&t, r, p, "recording", NULL, callid)) != 0) {
		rc = begun == 1 ? 0 : -1;
		goto done;
	}
	memset(&c, 0, sizeof(c));
	c.provider = "voipms";
	c.call_id = callid;
	c.org = t.h.org_id;
	c.recording_url = url;
	if (store_call(&c, &co) != DB_OK)
		goto done;
	rc = store_activity(co.org, "recording_ready", "Recording ready",
	    co.id, 0, t.h.event) == DB_OK ? 0 : -1;
	store_call_out_free(&co);
done:
	free((char *)callid);
	free((char *)url);
	return vm_end(&t, rc);
}

/* While the database is away: spooled, and "ok" all the same. */
int
voipms_fallback(struct req *r, struct resp *p)
{
	(void)r;
	vm_ok(p);
	return 0;
}
