/*
 * ctl.h: what telehookctl's files share (telehookctl.c keeps main, the
 * command table and usage; one file per noun holds its commands and
 * exports its rows).
 */
#ifndef TELEHOOK_CTL_H
#define TELEHOOK_CTL_H

struct ctl_cmd {
	const char	*name;		/* one or two words */
	int		 minargs;	/* operands after the words */
	int		 maxargs;	/* -1: no limit */
	int		 needs_db;
	const char	*usage;
	int		(*fn)(int, char **);
};

struct ctl_opt {
	const char	*name;
	const char	**val;
	int		 flag;		/* takes no value; sets "yes" */
};

extern int		 ctl_json_out;
extern const char	*ctl_sqldir;
extern const struct ctl_cmd *ctl_current;	/* for operand counts */

void		 ctl_die(int, const char *, ...) PRINTFLIKE(2, 3) NORETURN;
void		 ctl_die_db(enum db_err, const char *) NORETURN;
const char	*ctl_check_id(const char *, const char *);
void		 ctl_q(const char *, const char *, int, const char *const *,
		    struct db_res *);
void		 ctl_json_print(cJSON *);
cJSON		*ctl_json_value(const char *, char);
cJSON		*ctl_json_row(const struct db_res *, int, const char *const *);
void		 ctl_print_rows(const char *, const struct db_res *,
		    const char *const *);
void		 ctl_print_vis(const char *, const char *);
void		 ctl_print_object(const struct db_res *, const char *const *);
int		 ctl_parse_opts(int, char **, const struct ctl_opt *);
char		*ctl_resolve_org(const char *);
int		 ctl_rows(int, char **, const char *, const char *,
		    const char *const *, int);
int		 ctl_tz_valid(const char *);
char		*ctl_read_file(const char *, size_t);
const char	*ctl_words(const char *, const char *const *, struct buf *);
void		 ctl_arr(struct buf *, const char *);
const char	*ctl_arr_end(struct buf *);

extern const struct ctl_cmd ctl_schema_cmds[], ctl_org_cmds[],
		    ctl_rules_cmds[], ctl_campaign_cmds[], ctl_events_cmds[],
		    ctl_endpoint_cmds[];

/* outbox.c (telehookctl): queued replies sent through provider APIs. */
struct outbox_stats {
	int		 sent;
	int		 retrying;
	int		 failed;
	int		 recovered;	/* claims of a sender that died */
	int		 mail_sent;	/* mail.c: the staff's e-mail */
	int		 mail_retrying;
	int		 mail_failed;
	int		 unconfigured;	/* failed for want of credentials */
};
int		 outbox_send(struct outbox_stats *);
/*
 * The schedule both outboxes keep (the SMS replies, the staff's
 * e-mail): a claim left by a sender that died goes back after ten
 * minutes; a failed attempt is tried again 30 s after the first, twice
 * as long each time after, up to an hour apart, OUTBOX_MAX_ATTEMPTS in
 * all ($3), or fails for good at once when permanent ($4).
 */
#define OUTBOX_MAX_ATTEMPTS	8
#define OUTBOX_RECOVER_SQL(table) \
	"UPDATE " table " SET state = 'retry', next_attempt_at = now() " \
	"WHERE state = 'sending' AND claimed_at < now() - " \
	"interval '10 minutes'"
#define OUTBOX_AGAIN_SQL(table) \
	"UPDATE " table " SET last_error = $2, state = CASE WHEN " \
	"attempts >= $3::int OR $4::bool THEN 'failed' ELSE 'retry' END, " \
	"next_attempt_at = now() + least(interval '30 seconds' * " \
	"power(2, attempts - 1), interval '1 hour') WHERE id = $1::bigint " \
	"RETURNING state"
int		 outbox_again(const char *, const char *, const char *,
		    const char *, int, int *, int *);

/* mail.c (telehookctl): the staff's e-mail alerts through [smtp]. */
int		 mail_send(struct outbox_stats *);

/* ctl_send.c (telehookctl): signed sample webhooks. */
struct send_args {
	const char	*provider;
	const char	*event;
	const char	*url;		/* where it goes, without a path */
	const char	*org;		/* named explicitly, or NULL */
	const char	*to;		/* E.164 */
	const char	*from;
	const char	*id;		/* its id, or NULL: made up */
	int		 json;		/* say what came back as JSON */
};
void		 ctl_send_list(FILE *);
int		 ctl_send_sample(const struct send_args *);

/* deliver.c (telehookctl): events to the organizations' endpoints. */
struct deliver_stats {
	int		 delivered;
	int		 retrying;
	int		 dead;
	int		 disabled;	/* endpoints that answered 410 */
	int		 recovered;	/* claims of a sender that died */
	long long	 deferred_ms;	/* events left while the CPU was busy */
};
int		 deliver_run(int, struct deliver_stats *);

#endif
