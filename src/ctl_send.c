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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>

#include "extern.h"
#include "ctl.h"	/* send_list, send_sample */

enum send_body {
	SEND_FORM,	/* POST application/x-www-form-urlencoded */
	SEND_JSON,	/* POST application/json */
	SEND_QUERY	/* GET, the fields in the query */
};

struct send_kind {
	const char	*provider;
	const char	*event;
	const char	*path;
	enum send_body	 body;
};

static const struct send_kind kinds[] = {
	{ "twilio", "voice_incoming", "/webhooks/twilio/voice/incoming",
	    SEND_FORM },
	{ "twilio", "voice_status", "/webhooks/twilio/voice/status",
	    SEND_FORM },
	{ "twilio", "voice_gather", "/webhooks/twilio/voice/gather?step=ask&"
	    "turn=1", SEND_FORM },
	{ "twilio", "voice_partial", "/webhooks/twilio/voice/partial",
	    SEND_FORM },
	/* the <Dial> to forward_to ended unanswered, as its action says */
	{ "twilio", "voice_dial", "/webhooks/twilio/voice/gather?step=dial",
	    SEND_FORM },
	/* as telehook's own voicemail TwiML asks for it */
	{ "twilio", "recording", "/webhooks/twilio/recording/status?"
	    "kind=voicemail", SEND_FORM },
	{ "twilio", "transcription", "/webhooks/twilio/transcription",
	    SEND_FORM },
	{ "twilio", "sms_incoming", "/webhooks/twilio/sms/incoming",
	    SEND_FORM },
	{ "twilio", "sms_status", "/webhooks/twilio/sms/status", SEND_FORM },
	{ "retell", "call_started", "/webhooks/retell", SEND_JSON },
	{ "retell", "call_ended", "/webhooks/retell", SEND_JSON },
	{ "retell", "call_analyzed", "/webhooks/retell", SEND_JSON },
	{ "retell", "transcript_updated", "/webhooks/retell", SEND_JSON },
	{ "retell", "transfer_started", "/webhooks/retell", SEND_JSON },
	{ "retell", "transfer_bridged", "/webhooks/retell", SEND_JSON },
	{ "retell", "transfer_cancelled", "/webhooks/retell", SEND_JSON },
	{ "retell", "transfer_ended", "/webhooks/retell", SEND_JSON },
	{ "retell", "call_inbound", "/webhooks/retell/inbound", SEND_JSON },
	{ "voipms", "sms", "/webhooks/voipms/sms/incoming", SEND_QUERY },
	{ "voipms", "sms_post", "/webhooks/voipms/sms/incoming", SEND_FORM },
	{ "voipms", "cdr", "/webhooks/voipms/call/cdr", SEND_FORM },
	{ "voipms", "recording", "/webhooks/voipms/recording/ready",
	    SEND_JSON },
	{ NULL, NULL, NULL, SEND_FORM }
};

/* The list of kinds, for usage messages. */
void
send_list(FILE *f)
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

static void
send_field(struct kvlist *f, const char *k, const char *v)
{
	kv_add(f, k, v);
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

/*
 * Send one sample: provider and event, to url (the base, without a
 * path).  Prints the answer; returns the HTTP status (0 on failure).
 */
int
send_sample(const char *provider, const char *event, const char *url,
    const char *org, const char *to, const char *from, const char *id,
    int as_json)
{
	const struct send_kind	*k;
	struct kvlist		 f;
	struct curl_slist	*h = NULL;
	struct buf		 reply, path, full, line;
	CURL			*curl;
	cJSON			*o, *j;
	char			 sid[64], sid2[64], sig[TWILIO_SIGLEN + 1];
	char			 digest[65], *body = NULL, *signed_url, *s;
	unsigned char		 mac[32];
	const char		*ctype = NULL, *base;
	long			 code = 0;
	long long		 ms;
	CURLcode		 rc;

	for (k = kinds; k->provider != NULL; k++)
		if (strcmp(k->provider, provider) == 0 &&
		    strcmp(k->event, event) == 0)
			break;
	if (k->provider == NULL)
		return -1;
	memset(&f, 0, sizeof(f));
	buf_init(&path);
	buf_init(&reply);
	buf_init(&full);
	buf_init(&line);
	reply.max = 1024 * 1024;
	if ((curl = curl_easy_init()) == NULL)
		fatalx("libcurl failed to initialise");
	buf_puts(&path, k->path);
	/* an organization, named explicitly (architecture.md §4) */
	if (org != NULL && strcmp(k->provider, "retell") != 0)
		buf_printf(&path, "%sorganization_id=%s",
		    strchr(k->path, '?') ? "&" : "?", org);

	if (strcmp(k->provider, "twilio") == 0) {
		send_sid(strncmp(event, "sms", 3) == 0 ? "SM" : "CA", sid,
		    sizeof(sid));
		if (id != NULL)
			snprintf(sid, sizeof(sid), "%s", id);
		send_field(&f, "AccountSid", "AC00000000000000000000000000000000");
		send_field(&f, "ApiVersion", "2010-04-01");
		if (strcmp(event, "sms_incoming") == 0) {
			send_field(&f, "MessageSid", sid);
			send_field(&f, "SmsSid", sid);
			send_field(&f, "From", from);
			send_field(&f, "To", to);
			send_field(&f, "Body", "Hello from telehookctl send: "
			    "what are your hours?");
			send_field(&f, "NumMedia", "0");
			send_field(&f, "SmsStatus", "received");
		} else if (strcmp(event, "sms_status") == 0) {
			send_field(&f, "MessageSid", sid);
			send_field(&f, "From", to);
			send_field(&f, "To", from);
			send_field(&f, "MessageStatus", "delivered");
			send_field(&f, "SmsStatus", "delivered");
		} else {
			send_field(&f, "CallSid", sid);
			send_field(&f, "From", from);
			send_field(&f, "To", to);
			send_field(&f, "Caller", from);
			send_field(&f, "Called", to);
			send_field(&f, "Direction", "inbound");
		}
		if (strcmp(event, "voice_incoming") == 0)
			send_field(&f, "CallStatus", "ringing");
		else if (strcmp(event, "voice_status") == 0) {
			send_field(&f, "CallStatus", "completed");
			send_field(&f, "CallDuration", "30");
			send_field(&f, "SequenceNumber", "2");
			send_field(&f, "CallbackSource", "call-progress-events");
		} else if (strcmp(event, "voice_gather") == 0) {
			send_field(&f, "CallStatus", "in-progress");
			send_field(&f, "SpeechResult", "What are your hours?");
			send_field(&f, "Confidence", "0.9");
		} else if (strcmp(event, "voice_dial") == 0) {
			send_field(&f, "CallStatus", "in-progress");
			send_field(&f, "DialCallStatus", "no-answer");
			send_field(&f, "DialCallDuration", "0");
		} else if (strcmp(event, "voice_partial") == 0) {
			send_field(&f, "CallStatus", "in-progress");
			send_field(&f, "UnstableSpeechResult", "what are");
			send_field(&f, "SequenceNumber", "1");
		} else if (strcmp(event, "recording") == 0) {
			send_sid("RE", sid2, sizeof(sid2));
			send_field(&f, "RecordingSid", sid2);
			send_field(&f, "RecordingStatus", "completed");
			/* where the staff's view fetches it: [twilio] api_url */
			buf_reset(&line);
			buf_printf(&line, "%s/2010-04-01/Accounts/%s/"
			    "Recordings/%s", conf.twilio.api_url,
			    "AC00000000000000000000000000000000", sid2);
			send_field(&f, "RecordingUrl", buf_cstr(&line));
			buf_reset(&line);
			send_field(&f, "RecordingDuration", "12");
		} else if (strcmp(event, "transcription") == 0) {
			send_sid("TR", sid2, sizeof(sid2));
			send_field(&f, "TranscriptionSid", sid2);
			send_field(&f, "TranscriptionStatus", "completed");
			send_field(&f, "TranscriptionText",
			    "This is a test voicemail.");
		}
		body = send_form_encode(curl, &f);
		ctype = "application/x-www-form-urlencoded";
		base = conf.public_url != NULL ? conf.public_url : url;
		xasprintf(&signed_url, "%s%s", base, buf_cstr(&path));
		if (conf.twilio.auth_token != NULL) {
			twiliosig_compute(conf.twilio.auth_token, signed_url,
			    &f, sig);
			buf_printf(&line, "X-Twilio-Signature: %s", sig);
			h = curl_slist_append(h, buf_cstr(&line));
		} else if (conf.twilio.webhook_secret != NULL) {
			buf_printf(&line, "X-Twilio-Webhook-Secret: %s",
			    conf.twilio.webhook_secret);
			h = curl_slist_append(h, buf_cstr(&line));
		}
		free(signed_url);
	} else if (strcmp(k->provider, "retell") == 0) {
		send_sid("call_", sid, sizeof(sid));
		if (id != NULL)
			snprintf(sid, sizeof(sid), "%s", id);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "event", event);
		if (strcmp(event, "call_inbound") == 0) {
			j = cJSON_AddObjectToObject(o, "call_inbound");
			cJSON_AddStringToObject(j, "from_number", from);
			cJSON_AddStringToObject(j, "to_number", to);
			cJSON_AddStringToObject(j, "call_id", sid);
		} else {
			j = send_retell_call(event, sid, from, to);
			if (org != NULL) {
				cJSON *meta = cJSON_AddObjectToObject(j,
				    "metadata");

				cJSON_AddStringToObject(meta,
				    "organization_id", org);
			}
			cJSON_AddItemToObject(o, "call", j);
			if (strncmp(event, "transfer_", 9) == 0)
				cJSON_AddStringToObject(o,
				    "transfer_destination", "+15555550142");
		}
		if ((body = cJSON_PrintUnformatted(o)) == NULL)
			fatalx("out of memory");
		cJSON_Delete(o);
		ctype = "application/json";
		if (conf.retell.api_key != NULL) {
			ms = (long long)time(NULL) * 1000;
			retellsig_digest(conf.retell.api_key, body,
			    strlen(body), ms, mac);
			util_hex(mac, sizeof(mac), digest);
			buf_printf(&line, "X-Retell-Signature: v=%lld,d=%s", ms,
			    digest);
			h = curl_slist_append(h, buf_cstr(&line));
		} else if (conf.retell.webhook_secret != NULL) {
			buf_printf(&line, "X-Retell-Secret: %s",
			    conf.retell.webhook_secret);
			h = curl_slist_append(h, buf_cstr(&line));
		}
	} else {
		/* VoIP.ms: no signature, a URL token */
		send_sid("", sid, sizeof(sid));
		if (id != NULL)
			snprintf(sid, sizeof(sid), "%s", id);
		if (conf.voipms.url_token != NULL)
			buf_printf(&path, "%stoken=%s", strchr(buf_cstr(&path),
			    '?') ? "&" : "?", conf.voipms.url_token);
		if (strcmp(event, "cdr") == 0) {
			send_field(&f, "callid", sid);
			send_field(&f, "callerid", send_did(from));
			send_field(&f, "destination", send_did(to));
			send_field(&f, "disposition", "ANSWERED");
			send_field(&f, "duration", "31");
			send_field(&f, "seconds", "30");
			send_field(&f, "total", "0.0100");
		} else if (strcmp(event, "recording") == 0) {
			send_field(&f, "callid", sid);
			send_field(&f, "recording_url",
			    "https://voip.ms/sample/recording.mp3");
		} else {
			send_field(&f, "id", sid);
			send_field(&f, "to", send_did(to));
			send_field(&f, "from", send_did(from));
			send_field(&f, "message", "Hello from telehookctl send: "
			    "what are your hours?");
		}
		if (k->body == SEND_QUERY) {
			s = send_form_encode(curl, &f);
			buf_printf(&path, "%s%s", strchr(buf_cstr(&path), '?') ?
			    "&" : "?", s);
			free(s);
		} else if (k->body == SEND_JSON) {
			o = cJSON_CreateObject();
			for (size_t i = 0; i < f.n; i++)
				cJSON_AddStringToObject(o, f.v[i].key,
				    f.v[i].val);
			body = cJSON_PrintUnformatted(o);
			cJSON_Delete(o);
			ctype = "application/json";
		} else {
			body = send_form_encode(curl, &f);
			ctype = "application/x-www-form-urlencoded";
		}
	}

	buf_printf(&full, "%s%s", url, buf_cstr(&path));
	if (ctype != NULL) {
		buf_reset(&line);
		buf_printf(&line, "Content-Type: %s", ctype);
		h = curl_slist_append(h, buf_cstr(&line));
	}
	curl_easy_setopt(curl, CURLOPT_URL, buf_cstr(&full));
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	if (body != NULL)
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "telehookctl-send/"
	    PACKAGE_VERSION);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, buf_write_cb);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply);
	rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
	if (as_json) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "provider", provider);
		cJSON_AddStringToObject(o, "event", event);
		cJSON_AddStringToObject(o, "id", sid);
		cJSON_AddNumberToObject(o, "status", (double)code);
		cJSON_AddStringToObject(o, "answer", rc == CURLE_OK ?
		    buf_cstr(&reply) : curl_easy_strerror(rc));
		s = cJSON_PrintUnformatted(o);
		printf("%s\n", s);
		cJSON_free(s);
		cJSON_Delete(o);
	} else if (rc != CURLE_OK)
		fprintf(stderr, "telehookctl: %s: %s\n", buf_cstr(&full),
		    curl_easy_strerror(rc));
	else
		printf("%s %s %s: HTTP %ld\n%s%s", provider, event, sid, code,
		    buf_cstr(&reply), reply.len > 0 &&
		    buf_cstr(&reply)[reply.len - 1] != '\n' ? "\n" : "");
	curl_slist_free_all(h);
	curl_easy_cleanup(curl);
	kv_free(&f);
	free(body);
	buf_free(&path);
	buf_free(&reply);
	buf_free(&full);
	buf_free(&line);
	return (int)code;
}
