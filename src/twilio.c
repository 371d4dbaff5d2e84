/*
 * twilio.c: the Twilio provider (architecture.md §3-8): verification of
 * every request, its class, its organization, its idempotency key, the
 * records derived from it and the TwiML it is answered with.
 *
 * Every class runs the same steps in twilio_run(); a class adds only its
 * key, the number its owner is found by, and what it derives and
 * answers.  The one-URL route (/webhooks/twilio) finds the class from
 * the fields of the request.
 *
 * The first answer to an event is stored with it: a redelivery gets the
 * very same TwiML, even if the hour or the settings have changed since.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "extern.h"

#include "twilio.h"

static const struct {
	const char	*type;		/* events.event_type */
	const char	*required;	/* a field it cannot do without */
	int		 twiml;		/* answers TwiML, else 204 */
	tw_fn		 fn;
} tw_classes[TW__MAX] = {
	{ "voice_incoming", "CallSid", 1, tw_voice_incoming },
	{ "voice_status", "CallSid", 0, tw_voice_status },
	{ "voice_gather", "CallSid", 1, tw_voice_gather },
	{ "voice_partial", "CallSid", 0, tw_voice_partial },
	{ "recording", "RecordingSid", 0, tw_recording },
	{ "transcription", "CallSid", 0, tw_transcription },
	{ "sms_incoming", "MessageSid", 1, tw_sms_incoming },
	{ "sms_status", "MessageSid", 0, tw_sms_status },
};

/*
 * Verification (architecture.md §5): the shared secret, else the signature
 * under any configured or stored token, over every URL Twilio may have
 * signed.  Fails closed.
 */
static const struct db_stmt st_tokens = { "twilio_tokens",
	"SELECT secret_sealed, organization_id FROM provider_accounts WHERE "
	"provider = 'twilio' AND account_id = $1", 1 };

/* Check sig under a sealed stored token. */
static int
tw_check_sealed(const char *sealed, const char *account, const struct req *r,
    const struct kvlist *form, const char *sig, int *ntokens)
{
	char	*token;
	int	 ok;

	if ((token = crypto_open(crypto_key, sealed)) == NULL) {
		log_warnx("twilio: a stored token for %s does not open with "
		    "secret_key_file", log_esc(account));
		return 0;
	}
	(*ntokens)++;
	ok = twiliosig_check(token, conf.public_url, r->request_uri, form,
	    sig);
	explicit_bzero(token, strlen(token));
	free(token);
	return ok;
}

/*
 * Before the body is parsed: the shared secret, a missing signature, and
 * for a JSON body its bodySHA256, all without a parse.  A form's
 * signature covers its parameters: verify decides once they are parsed
 * (a form parses in one linear pass).
 */
enum verdict
twilio_precheck(struct req *r, const char **why)
{
	const char	*secret, *sha;
	char		 hex[65];
	int		 ok;

	*why = NULL;
	secret = req_header(r, "X-Twilio-Webhook-Secret");
	if (secret == NULL)
		secret = req_header(r, "X-Webhook-Secret");
	if (secret != NULL && conf.twilio.webhook_secret != NULL &&
	    crypto_streq(secret, conf.twilio.webhook_secret))
		return VERIFY_OK;
	if (conf.twilio.insecure_allow_unsigned)
		return VERIFY_PARSE;
	if (req_header(r, "X-Twilio-Signature") == NULL) {
		*why = secret != NULL ? "bad webhook secret" :
		    "missing X-Twilio-Signature";
		return VERIFY_DENY;
	}
	if (conf.public_url == NULL) {
		*why = "no Twilio verification configured";
		return VERIFY_DENY;
	}
	if (r->body_kind != BODY_JSON)
		return VERIFY_PARSE;
	if ((ok = (sha = kv_get(&r->qs, "bodySHA256")) != NULL)) {
		crypto_sha256_hex(r->body != NULL ? r->body : "", r->bodylen,
		    hex);
		ok = crypto_streq(hex, sha);
	}
	if (!ok) {
		*why = sha == NULL ? "JSON body without bodySHA256" :
		    "bodySHA256 does not match the body";
		return VERIFY_DENY;
	}
	return VERIFY_PARSE;
}

enum verdict
twilio_verify(struct req *r, const char **why)
{
	const char	*sig, *account, *sealed;
	const struct kvlist *form;
	struct db_res	 res;
	const char	*p[1];
	int		 i, ntokens = 0, ok = 0, c_sealed, c_org;

	/*
	 * twilio_precheck() has passed (every route of this verify has it,
	 * and dispatch runs it first): the secret, the header and a JSON
	 * body's bodySHA256 are checked; only the signature is left.
	 */
	*why = NULL;
	if (conf.twilio.insecure_allow_unsigned)
		return VERIFY_OK;
	sig = req_header(r, "X-Twilio-Signature");
	form = r->body_kind == BODY_FORM ? &r->form : NULL;
	if (conf.twilio.auth_token != NULL) {
		ntokens++;
		ok |= twiliosig_check(conf.twilio.auth_token, conf.public_url,
		    r->request_uri, form, sig);
	}
	if (!ok && conf.twilio.auth_token_previous != NULL) {
		ntokens++;
		ok |= twiliosig_check(conf.twilio.auth_token_previous,
		    conf.public_url, r->request_uri, form, sig);
	}
	/*
	 * Tokens stored per account by "telehookctl secret set"; while the
	 * database is away, the worker's cached copy of them.
	 */
	account = form != NULL ? kv_get(form, "AccountSid") : NULL;
	if (!ok && account != NULL && crypto_have_key) {
		p[0] = account;
		/*
		 * An organization's own token vouches for that organization
		 * alone (architecture.md §4): the request is scoped to it.
		 */
		if (db_exec(&st_tokens, p, &res) == DB_OK) {
			c_sealed = db_col(&res, "secret_sealed");
			c_org = db_col(&res, "organization_id");
			for (i = 0; i < res.nrows && !ok; i++)
				if ((ok = tw_check_sealed(db_get(&res, i,
				    c_sealed), account, r, form, sig,
				    &ntokens)))
					r->scope_org = xstrdup(db_get(&res,
					    i, c_org));
			db_res_free(&res);
		} else
			for (i = 0; i < cache_secret_count() && !ok; i++)
				if ((sealed = cache_secret(i, "twilio",
				    account)) != NULL && (ok =
				    tw_check_sealed(sealed, account, r, form,
				    sig, &ntokens)))
					r->scope_org = xstrdup(
					    cache_secret_owner(i));
	}
	if (ok)
		return VERIFY_OK;
	*why = ntokens == 0 ? "no Twilio verification configured" :
	    "bad X-Twilio-Signature";
	return VERIFY_DENY;
}

/*
 * The class of a request to the one URL, from its fields (the same
 * fields Twilio's own callbacks carry).  TW__MAX when none fits.
 */
static enum tw_class
tw_classify(const struct tw *t)
{
	const char	*ms, *cs, *step;

	if (tw_get(t, "RecordingSid") != NULL &&
	    tw_get(t, "RecordingStatus") != NULL)
		return TW_RECORDING;
	if (tw_get(t, "TranscriptionSid") != NULL ||
	    tw_get(t, "TranscriptionText") != NULL)
		return TW_TRANSCRIPTION;
	if (tw_get(t, "MessageSid") != NULL || tw_get(t, "SmsSid") != NULL) {
		ms = tw_get(t, "MessageStatus");
		if (ms == NULL)
			ms = tw_get(t, "SmsStatus");
		if (ms != NULL && strcmp(ms, "received") != 0 &&
		    strcmp(ms, "receiving") != 0)
			return TW_SMS_STATUS;
		return TW_SMS_INCOMING;
	}
	/* compat senders: an SMS as JSON with From/To/Body, no sid */
	if (tw_get(t, "CallSid") == NULL && tw_get(t, "Body") != NULL &&
	    tw_get(t, "From") != NULL)
		return tw_get(t, "SmsStatus") == NULL &&
		    strcmp(tw_direction(t, "inbound"), "outbound") == 0 ?
		    TW_SMS_STATUS : TW_SMS_INCOMING;
	if (tw_get(t, "CallSid") == NULL)
		return TW__MAX;
	if (tw_get(t, "UnstableSpeechResult") != NULL)
		return TW_VOICE_PARTIAL;
	step = kv_get(&t->h.r->qs, "step");
	if (tw_get(t, "SpeechResult") != NULL || tw_get(t, "Digits") != NULL ||
	    tw_get(t, "DialCallStatus") != NULL || step != NULL)
		return TW_VOICE_GATHER;
	if (tw_get(t, "CallbackSource") != NULL ||
	    tw_get(t, "SequenceNumber") != NULL)
		return TW_VOICE_STATUS;
	cs = tw_get(t, "CallStatus");
	if (cs != NULL && store_call_rank(cs) == RANK_FINAL)
		return TW_VOICE_STATUS;
	return TW_VOICE_INCOMING;
}

/* A short digest of the body, for events without a natural key. */
static void
tw_body_digest(const struct tw *t, char *out)
{
	char	 hex[65];

	crypto_sha256_hex(t->h.r->body ? t->h.r->body : "", t->h.r->bodylen,
	    hex);
	memcpy(out, hex, 16);
	out[16] = '\0';
}

/* The idempotency key of architecture.md §6 for the request's class. */
static char *
tw_key(const struct tw *t)
{
	const char	*sid, *a, *b;
	char		*k, d[17];

	switch (t->cls) {
	case TW_VOICE_INCOMING:
	case TW_VOICE_STATUS:
		a = tw_get(t, "CallStatus");
		b = tw_get(t, "SequenceNumber");
		xasprintf(&k, "%s:%s:%s", tw_get(t, "CallSid"),
		    a ? a : "", b ? b : "");
		return k;
	case TW_VOICE_GATHER:
	case TW_VOICE_PARTIAL:
		tw_body_digest(t, d);
		a = kv_get(&t->h.r->qs, "step");
		xasprintf(&k, "%s:%s:%s:%s", tw_get(t, "CallSid"),
		    t->cls == TW_VOICE_GATHER ? "gather" : "partial",
		    a ? a : "", d);
		return k;
	case TW_RECORDING:
		a = tw_get(t, "RecordingStatus");
		xasprintf(&k, "%s:%s", tw_get(t, "RecordingSid"), a ? a : "");
		return k;
	case TW_TRANSCRIPTION:
		sid = tw_get(t, "TranscriptionSid");
		a = tw_get(t, "TranscriptionStatus");
		if (sid != NULL)
			xasprintf(&k, "%s:%s", sid, a ? a : "");
		else {
			tw_body_digest(t, d);
			xasprintf(&k, "%s:transcription:%s",
			    tw_get(t, "CallSid"), d);
		}
		return k;
	case TW_SMS_INCOMING:
	case TW_SMS_STATUS:
		sid = tw_get(t, "MessageSid");
		if (sid == NULL)
			sid = tw_get(t, "SmsSid");
		a = tw_get(t, "MessageStatus");
		if (a == NULL)
			a = tw_get(t, "SmsStatus");
		if (a == NULL)
			a = t->cls == TW_SMS_INCOMING ? "received" : "";
		if (sid != NULL)
			xasprintf(&k, "%s:%s", sid, a);
		else {
			tw_body_digest(t, d);
			xasprintf(&k, "sms:%s", d);
		}
		return k;
	case TW__MAX:
		break;
	}
	return NULL;
}

/* Whose event is this: architecture.md §4. */
static void
tw_query(struct tw *t, struct route_query *qp)
{
	struct route_query	 q;
	int			 outbound;

	memset(&q, 0, sizeof(q));
	q.provider = "twilio";
	q.explicit_id = req_param(t->h.r, "organization_id");
	if (q.explicit_id == NULL)
		q.explicit_id = req_param(t->h.r, "OrgId");
	outbound = strcmp(tw_direction(t, t->cls == TW_SMS_STATUS ?
	    "outbound" : "inbound"), "outbound") == 0;
	switch (t->cls) {
	case TW_RECORDING:
	case TW_TRANSCRIPTION:
	case TW_VOICE_GATHER:
	case TW_VOICE_PARTIAL:
		break;	/* about a call we know: its owner */
	default:
		q.number = tw_get(t, outbound ? "From" : "To");
		break;
	}
	q.call_id = tw_get(t, "CallSid");
	q.message_id = tw_get(t, "MessageSid");
	q.account = tw_get(t, "AccountSid");
	*qp = q;
}

/* MediaUrl0..N as a JSON array. */
static char *
tw_media(const struct tw *t)
{
	cJSON		*a = cJSON_CreateArray(), *m;
	char		 k[32], *s;
	const char	*u, *ct;
	int		 i;

	for (i = 0; i < 10; i++) {
		snprintf(k, sizeof(k), "MediaUrl%d", i);
		if ((u = tw_get(t, k)) == NULL)
			break;
		snprintf(k, sizeof(k), "MediaContentType%d", i);
		ct = tw_get(t, k);
		m = cJSON_CreateObject();
		cJSON_AddStringToObject(m, "url", u);
		cJSON_AddItemToObject(m, "content_type", ct ?
		    cJSON_CreateString(ct) : cJSON_CreateNull());
		cJSON_AddItemToArray(a, m);
	}
	s = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	return s;
}

/*
 * An incoming SMS: the route, the event, the message and its activity
 * in one statement (store_sms_incoming), which brings back the reply
 * state and rules as well, so the usual SMS costs that statement and
 * the COMMIT.
 */
static enum db_err
tw_sms_store(struct tw *t)
{
	struct event_in	 ev;
	struct sms_in	 in;
	char		*media, *summary;
	const char	*sid = tw_get(t, "MessageSid");
	enum db_err	 e;

	t->from = tw_number(t, "From");
	t->to = tw_number(t, "To");
	media = tw_media(t);
	memset(&in, 0, sizeof(in));
	if ((in.explicit_id = req_param(t->h.r, "organization_id")) == NULL)
		in.explicit_id = req_param(t->h.r, "OrgId");
	in.number = strcmp(tw_direction(t, "inbound"), "outbound") == 0 ?
	    t->from : t->to;
	in.account = tw_get(t, "AccountSid");
	in.message_id = sid != NULL ? sid : t->h.key;
	in.from = t->from;
	in.to = t->to;
	in.body = tw_get(t, "Body");
	in.num_media = tw_get(t, "NumMedia");
	if (in.num_media != NULL && strspn(in.num_media, "0123456789") !=
	    strlen(in.num_media))
		in.num_media = NULL;
	in.media = media;
	xasprintf(&summary, "SMS from %s", t->from ? t->from : "unknown");
	in.summary = summary;
	memset(&ev, 0, sizeof(ev));
	ev.provider = "twilio";
	ev.type = tw_classes[TW_SMS_INCOMING].type;
	ev.key = t->h.key;
	e = store_sms_incoming(t->h.r, &ev, &in, &t->sms);
	free(summary);
	cJSON_free(media);
	if (e != DB_OK)
		return e;
	t->h.event = t->sms.event;
	t->h.prior = t->sms.prior;
	t->sms.prior = NULL;
	t->h.org = t->sms.org;
	memset(&t->sms.org, 0, sizeof(t->sms.org));
	if (t->h.org.id != NULL)
		t->h.org_id = xstrdup(t->h.org.id);
	return DB_OK;
}

/*
 * The statusCallback of an automatic reply: .../sms/status?reply_to=
 * and the MessageSid answered, when it is a Twilio SID (letters and
 * digits only), else the plain route.
 */
static char *
tw_reply_callback(const struct tw *t)
{
	const char	*sid = tw_get(t, "MessageSid");
	char		*path, *u;

	if (sid == NULL || *sid == '\0' || strlen(sid) > 64 ||
	    sid[strspn(sid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789")] != '\0')
		return tw_url(t, "/webhooks/twilio/sms/status");
	xasprintf(&path, "/webhooks/twilio/sms/status?reply_to=%s", sid);
	u = tw_url(t, path);
	free(path);
	return u;
}

/*
 * An incoming SMS, stored by tw_sms_store(), is answered with what
 * reply_decide() says: opt-out keywords, then the organization's
 * auto-reply, within the loop guard.
 */
int
tw_sms_incoming(struct tw *t)
{
	struct reply_known known;
	char		*reply = NULL, *cb;
	int		 rc = -1;

	known.rs = &t->sms.rs;
	known.rules = t->sms.rules;
	if (tw_get(t, "Body") != NULL && reply_urgent(tw_get(t, "Body")) &&
	    store_notify_urgent_sms(t->h.org_id, t->h.event, t->from, t->to,
	    tw_get(t, "Body")) != DB_OK)
		goto fail;
	if (reply_decide(&t->h.org, t->from, t->to, tw_get(t, "Body"), &known,
	    &reply) != DB_OK)
		goto fail;
	if (reply != NULL) {
		/*
		 * The status callback names the message answered, so the
		 * reply Twilio sends gets its text (a callback has none).
		 */
		cb = tw_reply_callback(t);
		twiml_leaf(&t->h.p->twiml, "Message", reply, "statusCallback", cb,
		    NULL);
		free(cb);
		if (store_message_replied(t->sms.message, reply) != DB_OK)
			goto fail;
	}
	rc = 0;
fail:
	free(reply);
	return rc;
}

/* A message status callback: the message advances; "sent" is logged. */
int
tw_sms_status(struct tw *t)
{
	struct msg_in	 m;
	struct msg_out	 mo;
	char		*from, *to, *summary;
	const char	*st, *reply_to;
	enum db_err	 e = DB_OK;

	st = tw_get(t, "MessageStatus");
	if (st == NULL)
		st = tw_get(t, "SmsStatus");
	from = tw_number(t, "From");
	to = tw_number(t, "To");
	memset(&m, 0, sizeof(m));
	m.provider = "twilio";
	m.message_id = tw_get(t, "MessageSid") ? tw_get(t, "MessageSid") :
	    t->h.key;
	m.org = t->h.org_id;
	m.direction = "outbound";
	m.from = from;
	m.to = to;
	m.body = tw_get(t, "Body");
	m.status = st != NULL ? st : "sent";
	if (store_message(&m, &mo) != DB_OK) {
		free(from);
		free(to);
		return -1;
	}
	/* the automatic reply we asked this callback for: its text */
	if ((reply_to = kv_get(&t->h.r->qs, "reply_to")) != NULL &&
	    mo.id != 0)
		e = store_message_reply_of(mo.id, reply_to);
	/* The first time the message is known to have left us. */
	if (e != DB_OK)
		;
	else if (mo.old_rank < MSG_RANK_SENT && mo.rank >= MSG_RANK_SENT &&
	    st != NULL &&
	    (strcmp(m.status, "sent") == 0 ||
	    strcmp(m.status, "delivered") == 0 ||
	    strcmp(m.status, "read") == 0)) {
		xasprintf(&summary, "SMS sent to %s", to ? to : "unknown");
		e = store_activity(mo.org ? mo.org : t->h.org_id, "sms_sent",
		    summary, 0, mo.id, t->h.event);
		free(summary);
	} else if (st == NULL && mo.old_rank < 0) {
		/* a compat sender's outbound SMS with no status at all */
		xasprintf(&summary, "SMS sent to %s", to ? to : "unknown");
		e = store_activity(mo.org ? mo.org : t->h.org_id, "sms_sent",
		    summary, 0, mo.id, t->h.event);
		free(summary);
	}
	free(mo.org);
	free(from);
	free(to);
	return e == DB_OK ? 0 : -1;
}

/*
 * The steps every class shares: required field, key, organization, the
 * event (or the redelivery's first answer), the class's work, and the
 * answer kept with the event.
 */
static enum db_err
twilio_run(struct req *r, struct resp *p, enum tw_class cls)
{
	struct tw		 t;
	struct route_query	 q;
	int			 rc;

	memset(&t, 0, sizeof(t));
	hook_init(&t.h, r, p, "twilio");
	t.cls = cls;
	if (cls == TW__MAX) {
		resp_error(p, 400, "not a Twilio webhook this URL takes");
		return DB_OK;
	}
	if (!tw_classes[cls].twiml)
		p->kind = RESP_EMPTY;
	if (tw_get_nonempty(&t, tw_classes[cls].required) == NULL &&
	    !(cls == TW_SMS_INCOMING || cls == TW_SMS_STATUS)) {
		resp_error(p, 400, "missing %s", tw_classes[cls].required);
		return DB_OK;
	}
	t.base = xstrdup(conf.public_url != NULL ? conf.public_url : "");
	t.h.key = tw_key(&t);
	if (cls == TW_SMS_INCOMING) {
		/* route, event and message in one statement */
		rc = tw_sms_store(&t) != DB_OK ? -1 : t.h.event == 0;
		req_note(r, t.h.org_id, t.h.key);
		if (rc == 1 && r->replay != NULL)
			r->replay->duplicate = 1;
	} else {
		tw_query(&t, &q);
		rc = hook_store(&t.h, &q, tw_classes[cls].type);
	}
	if (rc == 1) {
		/* a redelivery: the same answer, nothing else */
		log_debug("twilio: redelivery of %s", log_esc(t.h.key));
		if (tw_classes[cls].twiml && t.h.prior != NULL)
			twiml_set(&p->twiml, t.h.prior);
		rc = 0;
		goto done;
	}
	if (rc == -1 || hook_org(&t.h) != DB_OK ||
	    tw_classes[cls].fn(&t) == -1) {
		rc = -1;
		goto done;
	}
	if (tw_classes[cls].twiml) {
		if (twiml_finish(&p->twiml) == -1) {
			resp_error(p, 500, "could not build TwiML");
			goto done;
		}
		if (hook_keep_answer(&t.h, buf_cstr(&p->twiml.b)) != DB_OK)
			rc = -1;
	}
done:
	free(t.base);
	free(t.from);
	free(t.to);
	store_sms_out_free(&t.sms);
	return hook_end(&t.h, rc);
}

/*
 * The class of a request: its route's (routes.c), or for the one URL
 * ("twilio", MC_NONE) what its fields say.
 */
static enum tw_class
tw_class_of(struct req *r)
{
	struct tw	 t;

	if (r->route->cls >= MC_TW_VOICE_INCOMING &&
	    r->route->cls <= MC_TW_SMS_STATUS)
		return (enum tw_class)(r->route->cls - MC_TW_VOICE_INCOMING);
	memset(&t, 0, sizeof(t));
	t.h.r = r;
	return tw_classify(&t);
}

enum db_err
twilio_handle(struct req *r, struct resp *p)
{
	return twilio_run(r, p, tw_class_of(r));
}

/*
 * The answer while the database is away: the same TwiML flows, from
 * the worker's cached copy of the organization, with nothing that needs
 * a query (no knowledge base, no auto-reply: opt-outs and the loop guard
 * cannot be checked).  The request itself goes to the spool.
 */
int
twilio_fallback(struct req *r, struct resp *p)
{
	struct tw	 t;
	const char	*id;
	int		 rc = 0;

	memset(&t, 0, sizeof(t));
	t.h.r = r;
	t.h.p = p;
	t.away = 1;
	t.cls = tw_class_of(r);
	if (t.cls == TW__MAX)
		return -1;
	if (!tw_classes[t.cls].twiml) {
		p->kind = RESP_EMPTY;
		return 0;
	}
	if (t.cls == TW_SMS_INCOMING)
		return 0;	/* an empty <Response/>: nothing is sent */
	t.base = xstrdup(conf.public_url != NULL ? conf.public_url : "");
	if ((id = req_param(r, "organization_id")) == NULL)
		id = req_param(r, "OrgId");
	if (id != NULL)
		(void)cache_org(id, NULL, &t.h.org);
	else
		(void)cache_org(NULL, tw_get(&t, strcmp(tw_direction(&t,
		    "inbound"), "outbound") == 0 ? "From" : "To"), &t.h.org);
	store_org_scope(r, &t.h.org);
	t.h.org_id = t.h.org.id != NULL ? xstrdup(t.h.org.id) : NULL;
	rc = tw_classes[t.cls].fn(&t);
	free(t.h.org_id);
	free(t.base);
	store_org_free(&t.h.org);
	return rc;
}

/*
 * /api/twilio/speech-timing-test (compat): the server's own timing of
 * the request, for latency checks from the Twilio side.
 */
enum db_err
twilio_timing(struct req *r, struct resp *p)
{
	cJSON	*o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "route", "speech-timing-test");
	cJSON_AddNumberToObject(o, "elapsed_us",
	    (double)(util_now_us() - r->start_us));
	cJSON_AddNumberToObject(o, "body_bytes", (double)r->bodylen);
	resp_set_json(p, 200, o);
	return DB_OK;
}
