/*
 * ctl_send.c: "telehookctl send PROVIDER EVENT --url URL", a sample
 * webhook of every kind telehook accepts, signed as its provider signs
 * it with the secrets of the configuration, for testing a deployment
 * end to end (as the back ends telehook replaces were tested).
 *
 * Twilio requests are signed over public_url and the path, as Twilio
 * signs what is pasted in its console; --url is where the request is
 * actually sent (the same, or an address nginx listens on).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>

#include "extern.h"
#include "ctl.h"	/* ctl_send_list, ctl_send_sample */

enum send_body {
	SEND_FORM,	/* POST application/x-www-form-urlencoded */
	SEND_JSON,	/* POST application/json */
	SEND_QUERY	/* GET, the fields in the query */
};

/*
 * A field of a sample: its name and value, or one of these, filled in
 * as it is sent: @sid and @sid2 (the kind's ids), @from and @to (E.164),
 * @from10 and @to10 (as VoIP.ms writes them), @recording (a recording's
 * URL under [twilio] api_url).
 */
struct send_field {
	const char	*key;
	const char	*val;
};

#define TW_ACCOUNT	"AC00000000000000000000000000000000"
#define SEND_TEXT	"Hello from telehookctl send: what are your hours?"

static const struct send_field tw_sms_in[] = {
	{ "AccountSid", TW_ACCOUNT }, { "ApiVersion", "2010-04-01" },
	{ "MessageSid", "@sid" }, { "SmsSid", "@sid" }, { "From", "@from" },
	{ "To", "@to" }, { "Body", SEND_TEXT }, { "NumMedia", "0" },
	{ "SmsStatus", "received" }, { NULL, NULL }
};
static const struct send_field tw_sms_status[] = {
	{ "AccountSid", TW_ACCOUNT }, { "ApiVersion", "2010-04-01" },
	{ "MessageSid", "@sid" }, { "From", "@to" }, { "To", "@from" },
	{ "MessageStatus", "delivered" }, { "SmsStatus", "delivered" },
	{ NULL, NULL }
};
/* every call's, then its event's own */
static const struct send_field tw_call[] = {
	{ "AccountSid", TW_ACCOUNT }, { "ApiVersion", "2010-04-01" },
	{ "CallSid", "@sid" }, { "From", "@from" }, { "To", "@to" },
	{ "Caller", "@from" }, { "Called", "@to" }, { "Direction", "inbound" },
	{ NULL, NULL }
};
static const struct send_field tw_incoming[] = {
	{ "CallStatus", "ringing" }, { NULL, NULL }
};
static const struct send_field tw_status[] = {
	{ "CallStatus", "completed" }, { "CallDuration", "30" },
	{ "SequenceNumber", "2" }, { "CallbackSource", "call-progress-events" },
	{ NULL, NULL }
};
static const struct send_field tw_gather[] = {
	{ "CallStatus", "in-progress" },
	{ "SpeechResult", "What are your hours?" }, { "Confidence", "0.9" },
	{ NULL, NULL }
};
static const struct send_field tw_dial[] = {
	{ "CallStatus", "in-progress" }, { "DialCallStatus", "no-answer" },
	{ "DialCallDuration", "0" }, { NULL, NULL }
};
static const struct send_field tw_partial[] = {
	{ "CallStatus", "in-progress" }, { "UnstableSpeechResult", "what are" },
	{ "SequenceNumber", "1" }, { NULL, NULL }
};
static const struct send_field tw_recording[] = {
	{ "RecordingSid", "@sid2" }, { "RecordingStatus", "completed" },
	{ "RecordingUrl", "@recording" }, { "RecordingDuration", "12" },
	{ NULL, NULL }
};
static const struct send_field tw_transcription[] = {
	{ "TranscriptionSid", "@sid2" }, { "TranscriptionStatus", "completed" },
	{ "TranscriptionText", "This is a test voicemail." }, { NULL, NULL }
};
static const struct send_field vm_cdr[] = {
	{ "callid", "@sid" }, { "callerid", "@from10" },
	{ "destination", "@to10" }, { "disposition", "ANSWERED" },
	{ "duration", "31" }, { "seconds", "30" }, { "total", "0.0100" },
	{ NULL, NULL }
};
static const struct send_field vm_recording[] = {
	{ "callid", "@sid" },
	{ "recording_url", "https://voip.ms/sample/recording.mp3" },
	{ NULL, NULL }
};
static const struct send_field vm_sms[] = {
	{ "id", "@sid" }, { "to", "@to10" }, { "from", "@from10" },
	{ "message", SEND_TEXT }, { NULL, NULL }
};

struct send_kind {
	const char		*provider;
	const char		*event;
	const char		*path;
	enum send_body		 body;
	const char		*sid;		/* the prefix of its id */
	const char		*sid2;		/* of its second id */
	const struct send_field	*fields;	/* Retell's: a JSON body */
	const struct send_field	*more;
};

#define TW(e_, p_, s_, s2_, f_, m_) { .provider = "twilio", .event = (e_), \
	.path = (p_), .body = SEND_FORM, .sid = (s_), .sid2 = (s2_), \
	.fields = (f_), .more = (m_) }
#define RT(e_, p_) { .provider = "retell", .event = (e_), .path = (p_), \
	.body = SEND_JSON, .sid = "call_" }
#define VM(e_, p_, b_, f_) { .provider = "voipms", .event = (e_), \
	.path = (p_), .body = (b_), .sid = "", .fields = (f_) }

static const struct send_kind kinds[] = {
	TW("voice_incoming", "/webhooks/twilio/voice/incoming", "CA", NULL,
	    tw_call, tw_incoming),
	TW("voice_status", "/webhooks/twilio/voice/status", "CA", NULL,
	    tw_call, tw_status),
	TW("voice_gather", "/webhooks/twilio/voice/gather?step=ask&turn=1",
	    "CA", NULL, tw_call, tw_gather),
	TW("voice_partial", "/webhooks/twilio/voice/partial", "CA", NULL,
	    tw_call, tw_partial),
	/* the <Dial> to forward_to ended unanswered, as its action says */
	TW("voice_dial", "/webhooks/twilio/voice/gather?step=dial", "CA", NULL,
	    tw_call, tw_dial),
	/* as telehook's own voicemail TwiML asks for it */
	TW("recording", "/webhooks/twilio/recording/status?kind=voicemail",
	    "CA", "RE", tw_call, tw_recording),
	TW("transcription", "/webhooks/twilio/transcription", "CA", "TR",
	    tw_call, tw_transcription),
	TW("sms_incoming", "/webhooks/twilio/sms/incoming", "SM", NULL,
	    tw_sms_in, NULL),
	TW("sms_status", "/webhooks/twilio/sms/status", "SM", NULL,
	    tw_sms_status, NULL),
	RT("call_started", "/webhooks/retell"),
	RT("call_ended", "/webhooks/retell"),
	RT("call_analyzed", "/webhooks/retell"),
	RT("transcript_updated", "/webhooks/retell"),
	RT("transfer_started", "/webhooks/retell"),
	RT("transfer_bridged", "/webhooks/retell"),
	RT("transfer_cancelled", "/webhooks/retell"),
	RT("transfer_ended", "/webhooks/retell"),
	RT("call_inbound", "/webhooks/retell/inbound"),
	VM("sms", "/webhooks/voipms/sms/incoming", SEND_QUERY, vm_sms),
	VM("sms_post", "/webhooks/voipms/sms/incoming", SEND_FORM, vm_sms),
	VM("cdr", "/webhooks/voipms/call/cdr", SEND_FORM, vm_cdr),
	VM("recording", "/webhooks/voipms/recording/ready", SEND_JSON,
	    vm_recording),
	{ .provider = NULL }
};

/* One sample being made: the kind, its ids and what goes out. */
struct send {
	const struct send_kind	*k;
	const struct send_args	*a;
	char			 sid[64], sid2[64];
	char			*recording;
	struct kvlist		 f;
	struct buf		 path;
	char			*body;
	const char		*ctype;
	struct curl_slist	*h;
};

/* The list of kinds, for usage messages. */
void
ctl_send_list(FILE *f)
{
	const struct send_kind	*k;

	for (k = kinds; k->provider != NULL; k++)
		fprintf(f, "\t%s %s\n", k->provider, k->event);
}

/* An id like the provider's: prefix and 32 hex digits. */
static void
send_sid(const char *prefix, char *out, size_t len)
{
	unsigned char	 r[16];
	char		 hex[33];

	randombytes_buf(r, sizeof(r));
	util_hex(r, sizeof(r), hex);
	snprintf(out, len, "%s%s", prefix, hex);
}

/* Ten NANP digits of an E.164 number, as VoIP.ms writes them. */
static const char *
send_did(const char *e164)
{
	return strncmp(e164, "+1", 2) == 0 ? e164 + 2 : e164;
}

static char *
send_form_encode(CURL *curl, const struct kvlist *f)
{
	struct buf	 b;
	char		*e;
	size_t		 i;

	buf_init(&b);
	buf_puts(&b, "");
	for (i = 0; i < f->n; i++) {
		if (i > 0)
			buf_putc(&b, '&');
		e = curl_easy_escape(curl, f->v[i].key, 0);
		buf_puts(&b, e);
		curl_free(e);
		buf_putc(&b, '=');
		e = curl_easy_escape(curl, f->v[i].val, 0);
		buf_puts(&b, e);
		curl_free(e);
	}
	return b.data;
}

/* The Retell call object of a sample event. */
static cJSON *
send_retell_call(const char *event, const char *id, const char *from,
    const char *to)
{
	cJSON		*c = cJSON_CreateObject(), *an;
	long long	 now = (long long)time(NULL) * 1000;
	int		 ended = strcmp(event, "call_started") != 0 &&
			    strcmp(event, "transcript_updated") != 0 &&
			    strncmp(event, "transfer_", 9) != 0;

	cJSON_AddStringToObject(c, "call_type", "phone_call");
	cJSON_AddStringToObject(c, "call_id", id);
	cJSON_AddStringToObject(c, "agent_id", "agent_telehook_sample");
	cJSON_AddNumberToObject(c, "agent_version", 1);
	cJSON_AddStringToObject(c, "call_status", ended ? "ended" : "ongoing");
	cJSON_AddStringToObject(c, "direction", "inbound");
	cJSON_AddStringToObject(c, "from_number", from);
	cJSON_AddStringToObject(c, "to_number", to);
	cJSON_AddNumberToObject(c, "start_timestamp", (double)(now - 60000));
	cJSON_AddStringToObject(c, "transcript", "Agent: Hello, how can I "
	    "help?\nUser: This is a test call from telehookctl send.");
	if (ended) {
		cJSON_AddNumberToObject(c, "end_timestamp", (double)now);
		cJSON_AddNumberToObject(c, "duration_ms", 60000);
		cJSON_AddStringToObject(c, "disconnection_reason",
		    "user_hangup");
	}
	if (strcmp(event, "call_analyzed") == 0) {
		an = cJSON_AddObjectToObject(c, "call_analysis");
		cJSON_AddStringToObject(an, "call_summary",
		    "A test call sent by telehookctl.");
		cJSON_AddStringToObject(an, "user_sentiment", "Neutral");
		cJSON_AddTrueToObject(an, "call_successful");
	}
	return c;
}


/* A field's value: the template's, with the sample's own filled in. */
static const char *
send_value(const struct send *s, const char *v)
{
	if (v[0] != '@')
		return v;
	if (strcmp(v, "@sid") == 0)
		return s->sid;
	if (strcmp(v, "@sid2") == 0)
		return s->sid2;
	if (strcmp(v, "@from") == 0)
		return s->a->from;
	if (strcmp(v, "@to") == 0)
		return s->a->to;
	if (strcmp(v, "@from10") == 0)
		return send_did(s->a->from);
	if (strcmp(v, "@to10") == 0)
		return send_did(s->a->to);
	if (strcmp(v, "@recording") == 0)
		return s->recording;
	fatalx("send: no value %s", v);
}

/* The kind's fields, then its event's own, into s->f. */
static void
send_fields(struct send *s)
{
	const struct send_field	*lists[2] = { s->k->fields, s->k->more }, *f;
	size_t			 i;

	for (i = 0; i < 2; i++)
		for (f = lists[i]; f != NULL && f->key != NULL; f++)
			kv_add(&s->f, f->key, send_value(s, f->val));
}

static void	 send_header(struct send *, const char *, ...)
		    PRINTFLIKE(2, 3);

static void
send_header(struct send *s, const char *fmt, ...)
{
	char		*line;
	va_list		 ap;

	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) == -1)
		fatal("vasprintf");
	va_end(ap);
	s->h = curl_slist_append(s->h, line);
	free(line);
}

/*
 * Twilio: the form, signed over public_url and the path as Twilio signs
 * what is pasted in its console (else the shared secret).
 */
static void
send_twilio(struct send *s, CURL *curl)
{
	char	*signed_url, sig[TWILIO_SIGLEN + 1];

	s->body = send_form_encode(curl, &s->f);
	s->ctype = "application/x-www-form-urlencoded";
	xasprintf(&signed_url, "%s%s", conf.public_url != NULL ?
	    conf.public_url : s->a->url, buf_cstr(&s->path));
	if (conf.twilio.auth_token != NULL) {
		twiliosig_compute(conf.twilio.auth_token, signed_url, &s->f,
		    sig);
		send_header(s, "X-Twilio-Signature: %s", sig);
	} else if (conf.twilio.webhook_secret != NULL)
		send_header(s, "X-Twilio-Webhook-Secret: %s",
		    conf.twilio.webhook_secret);
	free(signed_url);
}

/* Retell: the event as JSON, signed as retell-sdk signs it. */
static void
send_retell(struct send *s)
{
	cJSON		*o, *j, *meta;
	unsigned char	 mac[32];
	char		 digest[65];
	long long	 ms;

	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "event", s->a->event);
	if (strcmp(s->a->event, "call_inbound") == 0) {
		j = cJSON_AddObjectToObject(o, "call_inbound");
		cJSON_AddStringToObject(j, "from_number", s->a->from);
		cJSON_AddStringToObject(j, "to_number", s->a->to);
		cJSON_AddStringToObject(j, "call_id", s->sid);
	} else {
		j = send_retell_call(s->a->event, s->sid, s->a->from, s->a->to);
		if (s->a->org != NULL) {
			meta = cJSON_AddObjectToObject(j, "metadata");
			cJSON_AddStringToObject(meta, "organization_id",
			    s->a->org);
		}
		cJSON_AddItemToObject(o, "call", j);
		if (strncmp(s->a->event, "transfer_", 9) == 0)
			cJSON_AddStringToObject(o, "transfer_destination",
			    "+15555550142");
	}
	if ((s->body = cJSON_PrintUnformatted(o)) == NULL)
		fatalx("out of memory");
	cJSON_Delete(o);
	s->ctype = "application/json";
	if (conf.retell.api_key != NULL) {
		ms = (long long)time(NULL) * 1000;
		retellsig_digest(conf.retell.api_key, s->body,
		    strlen(s->body), ms, mac);
		util_hex(mac, sizeof(mac), digest);
		send_header(s, "X-Retell-Signature: v=%lld,d=%s", ms, digest);
	} else if (conf.retell.webhook_secret != NULL)
		send_header(s, "X-Retell-Secret: %s",
		    conf.retell.webhook_secret);
}

/* VoIP.ms: no signature; the URL token, and the fields as the kind says. */
static void
send_voipms(struct send *s, CURL *curl)
{
	cJSON	*o;
	char	*q;
	size_t	 i;

	if (conf.voipms.url_token != NULL)
		buf_printf(&s->path, "%stoken=%s", strchr(buf_cstr(&s->path),
		    '?') ? "&" : "?", conf.voipms.url_token);
	switch (s->k->body) {
	case SEND_QUERY:
		q = send_form_encode(curl, &s->f);
		buf_printf(&s->path, "%s%s", strchr(buf_cstr(&s->path), '?') ?
		    "&" : "?", q);
		free(q);
		break;
	case SEND_JSON:
		o = cJSON_CreateObject();
		for (i = 0; i < s->f.n; i++)
			cJSON_AddStringToObject(o, s->f.v[i].key,
			    s->f.v[i].val);
		s->body = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		s->ctype = "application/json";
		break;
	case SEND_FORM:
		s->body = send_form_encode(curl, &s->f);
		s->ctype = "application/x-www-form-urlencoded";
		break;
	}
}

/* Send it to a->url and say what came back; the HTTP status, or 0. */
static long
send_post(struct send *s, CURL *curl)
{
	struct buf	 reply, full;
	cJSON		*o;
	char		*js;
	long		 code = 0;
	CURLcode	 rc;

	buf_init(&reply);
	buf_init(&full);
	reply.max = 1024 * 1024;
	buf_printf(&full, "%s%s", s->a->url, buf_cstr(&s->path));
	if (s->ctype != NULL)
		send_header(s, "Content-Type: %s", s->ctype);
	curl_easy_setopt(curl, CURLOPT_URL, buf_cstr(&full));
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, s->h);
	if (s->body != NULL)
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, s->body);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "telehookctl-send/"
	    PACKAGE_VERSION);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, buf_write_cb);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply);
	rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
	if (s->a->json) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "provider", s->a->provider);
		cJSON_AddStringToObject(o, "event", s->a->event);
		cJSON_AddStringToObject(o, "id", s->sid);
		cJSON_AddNumberToObject(o, "status", (double)code);
		cJSON_AddStringToObject(o, "answer", rc == CURLE_OK ?
		    buf_cstr(&reply) : curl_easy_strerror(rc));
		js = cJSON_PrintUnformatted(o);
		printf("%s\n", js);
		cJSON_free(js);
		cJSON_Delete(o);
	} else if (rc != CURLE_OK)
		fprintf(stderr, "telehookctl: %s: %s\n", buf_cstr(&full),
		    curl_easy_strerror(rc));
	else
		printf("%s %s %s: HTTP %ld\n%s%s", s->a->provider, s->a->event,
		    s->sid, code, buf_cstr(&reply), reply.len > 0 &&
		    buf_cstr(&reply)[reply.len - 1] != '\n' ? "\n" : "");
	buf_free(&reply);
	buf_free(&full);
	return code;
}

/*
 * Send one sample, a->provider's a->event, to a->url (the base, without
 * a path).  Prints the answer; returns the HTTP status (0 on failure),
 * -1 for a kind there is none of.
 */
int
ctl_send_sample(const struct send_args *a)
{
	struct send	 s;
	CURL		*curl;
	long		 code;

	memset(&s, 0, sizeof(s));
	s.a = a;
	for (s.k = kinds; s.k->provider != NULL; s.k++)
		if (strcmp(s.k->provider, a->provider) == 0 &&
		    strcmp(s.k->event, a->event) == 0)
			break;
	if (s.k->provider == NULL)
		return -1;
	if ((curl = curl_easy_init()) == NULL)
		fatalx("libcurl failed to initialise");
	send_sid(s.k->sid, s.sid, sizeof(s.sid));
	if (a->id != NULL)
		snprintf(s.sid, sizeof(s.sid), "%s", a->id);
	if (s.k->sid2 != NULL)
		send_sid(s.k->sid2, s.sid2, sizeof(s.sid2));
	/* where the staff's view fetches a recording: [twilio] api_url */
	xasprintf(&s.recording, "%s/2010-04-01/Accounts/%s/Recordings/%s",
	    conf.twilio.api_url, TW_ACCOUNT, s.sid2);
	buf_init(&s.path);
	buf_puts(&s.path, s.k->path);
	/* an organization, named explicitly (architecture.md §4) */
	if (a->org != NULL && strcmp(s.k->provider, "retell") != 0)
		buf_printf(&s.path, "%sorganization_id=%s",
		    strchr(s.k->path, '?') ? "&" : "?", a->org);
	send_fields(&s);
	if (strcmp(s.k->provider, "twilio") == 0)
		send_twilio(&s, curl);
	else if (strcmp(s.k->provider, "retell") == 0)
		send_retell(&s);
	else
		send_voipms(&s, curl);
	code = send_post(&s, curl);
	curl_slist_free_all(s.h);
	curl_easy_cleanup(curl);
	kv_free(&s.f);
	free(s.body);
	free(s.recording);
	buf_free(&s.path);
	return (int)code;
}
