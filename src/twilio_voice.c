/*
 * twilio_voice.c: Twilio calls (architecture.md §7-8): the TwiML of an
 * incoming call and of its <Gather> and <Dial> actions, and what status,
 * recording and transcription callbacks derive.  twilio_run() (twilio.c)
 * has stored the event and loaded the organization before any of these
 * runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "extern.h"
#include "twilio.h"

/* Voicemail: a prompt, then <Record> with both callbacks. */
static void
tw_twiml_voicemail(struct tw *t)
{
	char	*action, *rec, *tr;

	action = tw_url(t, "/webhooks/twilio/voice/gather?step=recorded");
	rec = tw_url(t, "/webhooks/twilio/recording/status?kind=voicemail");
	tr = tw_url(t, "/webhooks/twilio/transcription");
	twiml_leaf(&t->h.p->twiml, "Say", "Please leave a message after the "
	    "tone.", NULL);
	twiml_leaf(&t->h.p->twiml, "Record", NULL, "action", action,
	    "maxLength", "120", "playBeep", "true",
	    "recordingStatusCallback", rec,
	    "recordingStatusCallbackEvent", "completed",
	    "transcribe", "true", "transcribeCallback", tr, NULL);
	free(action);
	free(rec);
	free(tr);
}

static void	tw_twiml_handoff(struct tw *);

/*
 * The speech <Gather> of the knowledge-base flow, turn n.  What follows
 * the <Gather> is what Twilio does when the caller says nothing: on the
 * first turn, the hand-off (a person, the agent or voicemail); later,
 * goodbye.
 */
static void
tw_twiml_ask(struct tw *t, int turn, const char *prompt)
{
	char	*action, *partial, path[96];

	snprintf(path, sizeof(path),
	    "/webhooks/twilio/voice/gather?step=ask&turn=%d", turn);
	action = tw_url(t, path);
	partial = tw_url(t, "/webhooks/twilio/voice/partial");
	twiml_open(&t->h.p->twiml, "Gather", "input", "speech", "action", action,
	    "method", "POST", "speechTimeout", "auto", "timeout", "5",
	    "partialResultCallback", partial, NULL);
	twiml_leaf(&t->h.p->twiml, "Say", prompt, NULL);
	twiml_close(&t->h.p->twiml);
	free(action);
	free(partial);
	if (turn == 1) {
		twiml_leaf(&t->h.p->twiml, "Say", "Sorry, I did not hear "
		    "anything.", NULL);
		tw_twiml_handoff(t);
	} else {
		twiml_leaf(&t->h.p->twiml, "Say", "Thank you for calling. "
		    "Goodbye.", NULL);
		twiml_leaf(&t->h.p->twiml, "Hangup", NULL, NULL);
	}
}

/* <Dial> to one number or SIP address; its action says how it went. */
static void
tw_twiml_dial(struct tw *t, const char *noun, const char *to)
{
	char	*action;

	action = tw_url(t, "/webhooks/twilio/voice/gather?step=dial");
	twiml_open(&t->h.p->twiml, "Dial", "timeout", "20", "action", action,
	    NULL);
	twiml_leaf(&t->h.p->twiml, noun, to, NULL);
	twiml_close(&t->h.p->twiml);
	free(action);
}

/* Hand the caller to a person, or to voicemail when there is none. */
static void
tw_twiml_transfer(struct tw *t)
{
	if (t->h.org.forward_to == NULL) {
		tw_twiml_voicemail(t);
		return;
	}
	tw_twiml_dial(t, "Number", t->h.org.forward_to);
}

/*
 * Where a caller goes whom the flow cannot help: during hours, a person
 * (forward_to); after hours never the closed office, but the
 * organization's Retell agent (after_hours = agent, with agent_sip) or
 * voicemail.
 */
static void
tw_twiml_handoff(struct tw *t)
{
	if (store_org_open(&t->h.org)) {
		tw_twiml_transfer(t);
		return;
	}
	if (t->h.org.after_hours != NULL && strcmp(t->h.org.after_hours,
	    "agent") == 0 && t->h.org.agent_sip != NULL)
		tw_twiml_dial(t, "Sip", t->h.org.agent_sip);
	else
		tw_twiml_voicemail(t);
}

/* Has the organization a knowledge base (voice rules)? */
static enum db_err
tw_has_kb(struct tw *t, int *yes)
{
	struct db_res	 res;
	enum db_err	 e;

	*yes = 0;
	if ((e = store_rules(t->h.org.id, "voice", &res)) != DB_OK)
		return e;
	*yes = res.nrows > 0;
	db_res_free(&res);
	return DB_OK;
}

/*
 * An incoming call (architecture.md §8): blocked callers are rejected;
 * others hear the greeting, then during business hours are forwarded
 * (voicemail when nobody answers), and after hours get voicemail or the
 * organization's automated agent, the speech flow over its knowledge
 * base.
 */
int
tw_voice_incoming(struct tw *t)
{
	struct call_in	 c;
	struct call_out	 co;
	char		*from, *to, *greeting = NULL;
	int		 blocked = 0, kb = 0, open;
	enum db_err	 e;

	from = tw_number(t, "From");
	to = tw_number(t, "To");
	tw_call_in(t, &c, from, to, tw_direction(t, "inbound"));
	if (c.status == NULL)
		c.status = "ringing";
	if (t->away)
		goto answer;	/* from cached settings; the spool keeps it */
	if ((e = store_call(&c, &co)) != DB_OK)
		goto dberr;
	if (t->h.org_id != NULL &&
	    ((e = store_activity(t->h.org_id, "inbound_call", "Inbound call "
	    "received", co.id, 0, t->h.event)) != DB_OK ||
	    (e = store_notify_inbound_call(t->h.org_id, t->h.event, from, to,
	    NULL)) != DB_OK ||
	    (e = store_is_blocked(t->h.org_id, from, &blocked)) != DB_OK ||
	    (e = tw_has_kb(t, &kb)) != DB_OK)) {
		store_call_out_free(&co);
		goto dberr;
	}
	store_call_out_free(&co);
answer:
	if (t->h.org.id == NULL) {
		twiml_leaf(&t->h.p->twiml, "Say", "Thank you for calling. We "
		    "cannot take your call right now. Please try again later.",
		    NULL);
		twiml_leaf(&t->h.p->twiml, "Hangup", NULL, NULL);
		goto done;
	}
	if (blocked) {
		twiml_leaf(&t->h.p->twiml, "Reject", NULL, "reason", "rejected",
		    NULL);
		goto done;
	}
	if (t->h.org.greeting != NULL)
		greeting = xstrdup(t->h.org.greeting);
	else
		xasprintf(&greeting, "Thank you for calling %s.", t->h.org.name);
	twiml_leaf(&t->h.p->twiml, "Say", greeting, NULL);
	open = store_org_open(&t->h.org);
	if (open && t->h.org.forward_to != NULL)
		tw_twiml_transfer(t);
	else if (open && kb)
		tw_twiml_ask(t, 1, "How can I help you today?");
	else if (!open && t->h.org.after_hours != NULL &&
	    strcmp(t->h.org.after_hours, "agent") == 0 &&
	    t->h.org.agent_sip != NULL) {
		/* the organization's Retell agent takes the call */
		tw_twiml_dial(t, "Sip", t->h.org.agent_sip);
	} else if (!open && t->h.org.after_hours != NULL &&
	    strcmp(t->h.org.after_hours, "agent") == 0) {
		twiml_leaf(&t->h.p->twiml, "Say", "Our office is closed right "
		    "now, but I can answer some questions.", NULL);
		tw_twiml_ask(t, 1, "How can I help you?");
	} else {
		if (!open)
			twiml_leaf(&t->h.p->twiml, "Say", "Our office is closed "
			    "right now.", NULL);
		tw_twiml_voicemail(t);
	}
done:
	free(greeting);
	free(from);
	free(to);
	return 0;
dberr:
	free(from);
	free(to);
	return -1;
}

/*
 * architecture.md §7: the <Dial> leg says whether a person took the call: its
 * DialCallStatus completed or answered is answered; no-answer, busy,
 * failed or canceled is missed (a voicemail may follow).
 */
static int
tw_dial_outcome(struct tw *t, const char *dial)
{
	struct call_in	 c;
	struct call_out	 co;
	const char	*outcome;
	int		 rc;

	if (dial == NULL)
		return 0;
	if (strcmp(dial, "completed") == 0 || strcmp(dial, "answered") == 0)
		outcome = "answered";
	else if (strcmp(dial, "no-answer") == 0 || strcmp(dial, "busy") == 0 ||
	    strcmp(dial, "failed") == 0 || strcmp(dial, "canceled") == 0)
		outcome = "missed";
	else
		return 0;
	tw_call_in(t, &c, NULL, NULL, NULL);
	c.status = NULL;
	if (c.call_id == NULL || store_call(&c, &co) != DB_OK)
		return c.call_id == NULL ? 0 : -1;
	rc = store_call_outcome(&co, outcome, strcmp(outcome, "missed") == 0 ?
	    dial : NULL, t->h.event) == DB_OK ? 0 : -1;
	store_call_out_free(&co);
	return rc;
}

/*
 * The <Gather> and <Dial>/<Record> actions of the flows above, told
 * apart by the step in their URL.
 */
int
tw_voice_gather(struct tw *t)
{
	const char	*step = kv_get(&t->h.r->qs, "step"), *dial, *said;
	const char	*turns, *errstr;
	char		*answer = NULL;
	int		 turn;

	if (t->h.org.id == NULL) {
		twiml_leaf(&t->h.p->twiml, "Say", "Goodbye.", NULL);
		twiml_leaf(&t->h.p->twiml, "Hangup", NULL, NULL);
		return 0;
	}
	if (step != NULL && strcmp(step, "recorded") == 0) {
		twiml_leaf(&t->h.p->twiml, "Say", "Thank you for your message. "
		    "Goodbye.", NULL);
		twiml_leaf(&t->h.p->twiml, "Hangup", NULL, NULL);
		return 0;
	}
	if (step != NULL && strcmp(step, "dial") == 0) {
		dial = tw_get(t, "DialCallStatus");
		if (!t->away && tw_dial_outcome(t, dial) == -1)
			return -1;
		if (dial != NULL && (strcmp(dial, "completed") == 0 ||
		    strcmp(dial, "answered") == 0))
			twiml_leaf(&t->h.p->twiml, "Hangup", NULL, NULL);
		else {
			twiml_leaf(&t->h.p->twiml, "Say", "Sorry, nobody is "
			    "available to take your call.", NULL);
			tw_twiml_voicemail(t);
		}
		return 0;
	}
	turns = kv_get(&t->h.r->qs, "turn");
	turn = turns != NULL ? (int)util_strtonum(turns, 1, 10, &errstr) : 1;
	if (turns != NULL && errstr != NULL)
		turn = 10;
	said = tw_get_nonempty(t, "SpeechResult");
	if (said == NULL)
		said = tw_get_nonempty(t, "Digits");
	if (said != NULL && !t->away && reply_find(&t->h.org, "voice", said,
	    NULL, &answer) != DB_OK)
		return -1;
	if (answer == NULL) {
		/* never to a closed office (architecture.md §8) */
		if (store_org_open(&t->h.org))
			twiml_leaf(&t->h.p->twiml, "Say", "Let me connect you "
			    "with someone who can help.", NULL);
		else
			twiml_leaf(&t->h.p->twiml, "Say", "Our office is "
			    "closed right now.", NULL);
		tw_twiml_handoff(t);
		return 0;
	}
	twiml_leaf(&t->h.p->twiml, "Say", answer, NULL);
	free(answer);
	if (turn < 3)
		tw_twiml_ask(t, turn + 1, "Is there anything else I can help "
		    "you with?");
	else {
		twiml_leaf(&t->h.p->twiml, "Say", "Thank you for calling. "
		    "Goodbye.", NULL);
		twiml_leaf(&t->h.p->twiml, "Hangup", NULL, NULL);
	}
	return 0;
}

/* Partial speech results: kept as events, nothing derived. */
int
tw_voice_partial(struct tw *t)
{
	(void)t;
	return 0;
}

/*
 * A call status callback: the call advances (never backwards), and a
 * step to in-progress or to an end is logged once.
 */
int
tw_voice_status(struct tw *t)
{
	struct call_in	 c;
	struct call_out	 co;
	char		*from, *to, *summary = NULL;
	const char	*type = NULL, *errstr;
	enum db_err	 e;
	int		 inbound;

	from = tw_number(t, "From");
	to = tw_number(t, "To");
	tw_call_in(t, &c, from, to, tw_direction(t, NULL));
	c.duration = tw_get_nonempty(t, "CallDuration");
	c.recording_url = tw_get_nonempty(t, "RecordingUrl");
	if (c.duration != NULL) {
		(void)util_strtonum(c.duration, 0, 7 * 86400, &errstr);
		if (errstr != NULL)
			c.duration = NULL;	/* not a number: not kept */
	}
	e = store_call(&c, &co);
	free(from);
	free(to);
	if (e != DB_OK)
		return -1;
	inbound = co.direction == NULL || strcmp(co.direction, "inbound") == 0;
	if (co.rank > co.old_rank && co.rank == RANK_ANSWERED && !inbound) {
		type = "call_started";
		summary = xstrdup("Call started");
	}
	e = DB_OK;
	/*
	 * An outbound call in progress, or completed having lasted, was
	 * picked up.  An inbound one is: our TwiML answers every call, so
	 * only its <Dial> leg tells (tw_dial_outcome()).
	 */
	if (!inbound && (strcmp(co.status, "in-progress") == 0 ||
	    (strcmp(co.status, "completed") == 0 && c.duration != NULL &&
	    strcmp(c.duration, "0") != 0)))
		e = store_call_outcome(&co, "answered", NULL, t->h.event);
	if (type != NULL && e == DB_OK)
		e = store_activity(co.org, type, summary, co.id, 0, t->h.event);
	if (e == DB_OK)
		e = store_call_ended(&co, NULL, NULL, t->h.event);
	free(summary);
	store_call_out_free(&co);
	return e == DB_OK ? 0 : -1;
}

/* A recording: its URL goes to the call; a finished one is logged. */
int
tw_recording(struct tw *t)
{
	struct call_in	 c;
	struct call_out	 co;
	const char	*status = tw_get(t, "RecordingStatus"), *dur, *kind;
	char		*summary;
	enum db_err	 e = DB_OK;
	int		 done = status != NULL && strcmp(status, "completed") == 0;

	if (tw_get(t, "CallSid") == NULL)
		return 0;	/* a conference recording: the event is kept */
	tw_call_in(t, &c, NULL, NULL, NULL);
	c.status = NULL;
	c.recording_url = done ? tw_get_nonempty(t, "RecordingUrl") : NULL;
	if (store_call(&c, &co) != DB_OK)
		return -1;
	if (done) {
		dur = tw_get(t, "RecordingDuration");
		kind = kv_get(&t->h.r->qs, "kind");
		if (kind != NULL && strcmp(kind, "voicemail") == 0) {
			summary = NULL;
			e = store_call_outcome(&co, "voicemail", dur != NULL ?
			    dur : "?", t->h.event);
		} else {
			xasprintf(&summary, "Recording ready (%s s)",
			    dur ? dur : "?");
			e = store_activity(co.org, "recording_ready", summary,
			    co.id, 0, t->h.event);
		}
		free(summary);
	}
	store_call_out_free(&co);
	return e == DB_OK ? 0 : -1;
}

/* A transcription: its text goes to the call. */
int
tw_transcription(struct tw *t)
{
	struct call_in	 c;
	struct call_out	 co;
	const char	*status = tw_get(t, "TranscriptionStatus");

	tw_call_in(t, &c, NULL, NULL, NULL);
	c.status = NULL;
	if (status == NULL || strcmp(status, "completed") == 0)
		c.transcript = tw_get_nonempty(t, "TranscriptionText");
	if (store_call(&c, &co) != DB_OK)
		return -1;
	/* a voicemail's staff notifications gain its text */
	if (c.transcript != NULL && store_voicemail_text(&co,
	    c.transcript) != DB_OK) {
		store_call_out_free(&co);
		return -1;
	}
	store_call_out_free(&co);
	return 0;
}
