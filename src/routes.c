/*
 * routes.c: the route table (architecture.md §3): each path, the methods
 * and body kinds it takes, how it is verified (always: a slot the
 * dispatcher calls), its handler and responder, and for a webhook the
 * answer it gives while the database is away.  dispatch.c runs it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

#define GET_HEAD	(METHOD_GET | METHOD_HEAD)

/*
 * Keep related paths together; "{}" stands for one path segment, passed
 * to the handler in req->args.
 */
#define TW_BODY		(BODY_FORM | BODY_JSON)
#define TW(path, name, resp, cls) { path, METHOD_POST, TW_BODY, name, \
	twilio_verify, twilio_handle, resp, ROUTE_TX, twilio_fallback, \
	twilio_precheck, cls }
#define RT(path, name, fn, resp, cls) { path, METHOD_POST, BODY_JSON, \
	name, retell_verify, fn, resp, ROUTE_TX, retell_fallback, \
	retell_precheck, cls }
/* VoIP.ms trusts the URL and the address alone: verified before parsing */
#define VM(path, methods, name, fn) { path, methods, \
	BODY_NONE | BODY_FORM | BODY_JSON, name, voipms_verify, fn, RESP_TEXT, \
	ROUTE_TX | ROUTE_LATIN1, voipms_fallback, voipms_verify, MC_NONE }
#define API(path, methods, name, fn) { path, methods, BODY_NONE, name, \
	api_verify, fn, RESP_JSON, 0, NULL, NULL, MC_NONE }
const struct route routes[] = {
	{ "/healthz", GET_HEAD, BODY_NONE, "healthz",
	    verify_public, health_handle, RESP_JSON, 0, NULL, NULL, MC_NONE },
	{ "/metrics", GET_HEAD, BODY_NONE, "metrics",
	    verify_public, metrics_handle, RESP_TEXT, 0, NULL, NULL, MC_NONE },

	/* Twilio (architecture.md §3) */
	TW("/webhooks/twilio/voice/incoming", "twilio_voice_incoming", RESP_TWIML,
	    MC_TW_VOICE_INCOMING),
	TW("/webhooks/twilio/voice/status", "twilio_voice_status", RESP_EMPTY,
	    MC_TW_VOICE_STATUS),
	TW("/webhooks/twilio/voice/gather", "twilio_voice_gather", RESP_TWIML,
	    MC_TW_VOICE_GATHER),
	TW("/webhooks/twilio/voice/partial", "twilio_voice_partial", RESP_EMPTY,
	    MC_TW_VOICE_PARTIAL),
	TW("/webhooks/twilio/recording/status", "twilio_recording", RESP_EMPTY,
	    MC_TW_RECORDING),
	TW("/webhooks/twilio/transcription", "twilio_transcription", RESP_EMPTY,
	    MC_TW_TRANSCRIPTION),
	TW("/webhooks/twilio/sms/incoming", "twilio_sms_incoming", RESP_TWIML,
	    MC_TW_SMS_INCOMING),
	TW("/webhooks/twilio/sms/status", "twilio_sms_status", RESP_EMPTY,
	    MC_TW_SMS_STATUS),
	TW("/webhooks/twilio", "twilio", RESP_TWIML, MC_NONE),

	/* Twilio paths of older deployments (nginx/compat.conf) */
	TW("/api/webhooks/twilio", "twilio", RESP_TWIML, MC_NONE),
	TW("/functions/v1/twilio-webhook", "twilio", RESP_TWIML, MC_NONE),
	TW("/api/twilio/voice", "twilio_voice_incoming", RESP_TWIML,
	    MC_TW_VOICE_INCOMING),
	TW("/voice/incoming", "twilio_voice_incoming", RESP_TWIML,
	    MC_TW_VOICE_INCOMING),
	TW("/voice/julie/incoming", "twilio_voice_incoming", RESP_TWIML,
	    MC_TW_VOICE_INCOMING),
	TW("/api/twilio/handle-speech", "twilio_voice_gather", RESP_TWIML,
	    MC_TW_VOICE_GATHER),
	TW("/api/twilio/partial-speech", "twilio_voice_partial", RESP_EMPTY,
	    MC_TW_VOICE_PARTIAL),
	{ "/api/twilio/speech-timing-test", METHOD_POST, BODY_NONE | TW_BODY,
	    "twilio_timing", twilio_verify, twilio_timing, RESP_JSON, 0,
	    NULL, twilio_precheck, MC_NONE },

	/* Retell AI, and its paths of older deployments */
	RT("/webhooks/retell", "retell", retell_handle, RESP_EMPTY,
	    MC_RT_EVENT),
	RT("/webhooks/retell/inbound", "retell_inbound", retell_inbound, RESP_JSON,
	    MC_RT_INBOUND),
	RT("/api/webhooks/retell", "retell", retell_handle, RESP_EMPTY,
	    MC_RT_EVENT),
	RT("/functions/v1/retell-webhook", "retell", retell_handle, RESP_EMPTY,
	    MC_RT_EVENT),

	/* VoIP.ms: the legacy URL callback is a GET */
	VM("/webhooks/voipms/sms/incoming", METHOD_GET | METHOD_POST,
	    "voipms_sms", voipms_sms),
	VM("/webhooks/voipms/call/cdr", METHOD_POST, "voipms_cdr",
	    voipms_cdr),
	VM("/webhooks/voipms/recording/ready", METHOD_POST,
	    "voipms_recording", voipms_recording),
	VM("/api/voip/sms/webhook", METHOD_GET | METHOD_POST, "voipms_sms",
	    voipms_sms),

	/* The dashboard API: {} is the organization, then an id */
	API("/api/v1/organizations/{}/dashboard", GET_HEAD, "api_dashboard",
	    api_dashboard),
	API("/api/v1/organizations/{}/activity", GET_HEAD, "api_activity",
	    api_activity),
	API("/api/v1/organizations/{}/notifications", GET_HEAD,
	    "api_notifications", api_notifications),
	{ "/api/v1/organizations/{}/notifications/{}/read", METHOD_POST,
	    BODY_NONE | BODY_JSON, "api_notification_read", api_verify,
	    api_notification_read, RESP_JSON, 0, NULL, NULL, MC_NONE },
	API("/api/v1/organizations/{}/calls", GET_HEAD, "api_calls",
	    api_calls),
	API("/api/v1/organizations/{}/calls/{}", GET_HEAD, "api_call",
	    api_call),
	API("/api/v1/organizations/{}/calls/{}/recording", GET_HEAD,
	    "api_call_recording", recording_handle),
	{ "/api/v1/organizations/{}/calls/{}/handled",
	    METHOD_POST | METHOD_DELETE, BODY_NONE | BODY_JSON,
	    "api_call_handled", api_verify, api_call_handled, RESP_JSON, 0,
	    NULL, NULL, MC_NONE },
	API("/api/v1/organizations/{}/campaigns", GET_HEAD, "api_campaigns",
	    api_campaigns),
	API("/api/v1/organizations/{}/campaigns/{}", GET_HEAD, "api_campaign",
	    api_campaign),
	API("/api/v1/organizations/{}/conversations", GET_HEAD,
	    "api_conversations", api_conversations),
	API("/api/v1/organizations/{}/conversations/{}", GET_HEAD,
	    "api_conversation", api_conversation),
};
const size_t nroutes = sizeof(routes) / sizeof(routes[0]);

/* Routes that need no authentication: health checks. */
enum verdict
verify_public(struct req *r, const char **why)
{
	(void)r;
	*why = NULL;
	return VERIFY_OK;
}
