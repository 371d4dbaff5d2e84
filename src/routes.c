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
#define TW(p_, n_, r_, c_) { .path = (p_), .methods = METHOD_POST, \
	.bodies = TW_BODY, .name = (n_), .verify = twilio_verify, \
	.handle = twilio_handle, .responder = (r_), .flags = ROUTE_TX, \
	.fallback = twilio_fallback, .precheck = twilio_precheck, .cls = (c_) }
#define RT(p_, n_, h_, r_, c_) { .path = (p_), .methods = METHOD_POST, \
	.bodies = BODY_JSON, .name = (n_), .verify = retell_verify, \
	.handle = (h_), .responder = (r_), .flags = ROUTE_TX, \
	.fallback = retell_fallback, .precheck = retell_precheck, .cls = (c_) }
/* VoIP.ms trusts the URL and the address alone: verified before parsing */
#define VM(p_, m_, n_, h_) { .path = (p_), .methods = (m_), \
	.bodies = BODY_NONE | BODY_FORM | BODY_JSON, .name = (n_), \
	.verify = voipms_verify, .handle = (h_), .responder = RESP_TEXT, \
	.flags = ROUTE_TX | ROUTE_LATIN1, .fallback = voipms_fallback, \
	.precheck = voipms_verify, .cls = MC_NONE }
#define API(p_, m_, n_, h_) { .path = (p_), .methods = (m_), \
	.bodies = BODY_NONE, .name = (n_), .verify = api_verify, \
	.handle = (h_), .responder = RESP_JSON, .cls = MC_NONE }
const struct route routes[] = {
	{ .path = "/healthz", .methods = GET_HEAD, .bodies = BODY_NONE,
	    .name = "healthz", .verify = verify_public,
	    .handle = health_handle, .responder = RESP_JSON, .cls = MC_NONE },
	{ .path = "/metrics", .methods = GET_HEAD, .bodies = BODY_NONE,
	    .name = "metrics", .verify = verify_public,
	    .handle = metrics_handle, .responder = RESP_TEXT, .cls = MC_NONE },

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
	{ .path = "/api/twilio/speech-timing-test", .methods = METHOD_POST,
	    .bodies = BODY_NONE | TW_BODY, .name = "twilio_timing",
	    .verify = twilio_verify, .handle = twilio_timing,
	    .responder = RESP_JSON, .precheck = twilio_precheck,
	    .cls = MC_NONE },

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
	{ .path = "/api/v1/organizations/{}/notifications/{}/read",
	    .methods = METHOD_POST, .bodies = BODY_NONE | BODY_JSON,
	    .name = "api_notification_read", .verify = api_verify,
	    .handle = api_notification_read, .responder = RESP_JSON,
	    .cls = MC_NONE },
	API("/api/v1/organizations/{}/calls", GET_HEAD, "api_calls",
	    api_calls),
	API("/api/v1/organizations/{}/calls/{}", GET_HEAD, "api_call",
	    api_call),
	API("/api/v1/organizations/{}/calls/{}/recording", GET_HEAD,
	    "api_call_recording", recording_handle),
	{ .path = "/api/v1/organizations/{}/calls/{}/handled",
	    .methods = METHOD_POST | METHOD_DELETE,
	    .bodies = BODY_NONE | BODY_JSON, .name = "api_call_handled",
	    .verify = api_verify, .handle = api_call_handled,
	    .responder = RESP_JSON, .cls = MC_NONE },
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
