/*
 * twilio.h: what the Twilio provider's two files share (twilio.c: the
 * request, its class, key and route, messages; twilio_voice.c: calls and
 * their TwiML).  Not for other modules: they see extern.h.
 */
#ifndef TELEHOOK_TWILIO_H
#define TELEHOOK_TWILIO_H

/* In the order of the MC_TW_* route classes (extern.h). */
enum tw_class {
	TW_VOICE_INCOMING = 0,
	TW_VOICE_STATUS,
	TW_VOICE_GATHER,
	TW_VOICE_PARTIAL,
	TW_RECORDING,
	TW_TRANSCRIPTION,
	TW_SMS_INCOMING,
	TW_SMS_STATUS,
	TW__MAX
};

/* One Twilio request as the class handlers see it. */
struct tw {
	struct hook	 h;		/* the request, its key, event, owner */
	enum tw_class	 cls;
	char		*base;		/* for callback URLs */
	int		 away;		/* the database is away: no queries */
	struct sms_out	 sms;		/* an incoming SMS: what came back */
	char		*from;		/* an incoming SMS: E.164 when it is */
	char		*to;
};

typedef int	(*tw_fn)(struct tw *);

int		 tw_voice_incoming(struct tw *);
int		 tw_voice_status(struct tw *);
int		 tw_voice_gather(struct tw *);
int		 tw_voice_partial(struct tw *);
int		 tw_recording(struct tw *);
int		 tw_transcription(struct tw *);
int		 tw_sms_incoming(struct tw *);
int		 tw_sms_status(struct tw *);

const char	*tw_get(const struct tw *, const char *);
const char	*tw_get_nonempty(const struct tw *, const char *);
char		*tw_number(const struct tw *, const char *);
const char	*tw_direction(const struct tw *, const char *);
char		*tw_url(const struct tw *, const char *);
void		 tw_call_in(const struct tw *, struct call_in *, const char *,
		    const char *, const char *);

#endif
