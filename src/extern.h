/*
 * telehook: declarations shared between source files, grouped by the file
 * that defines them.  Everything not named here is static to its file.
 */
#ifndef TELEHOOK_EXTERN_H
#define TELEHOOK_EXTERN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#ifndef TELEHOOK_CONF
#define TELEHOOK_CONF	"/etc/telehook/telehook.conf"
#endif
#ifndef TELEHOOK_SQLDIR
#define TELEHOOK_SQLDIR	"/usr/share/telehook/sql"
#endif
#ifndef TELEHOOK_SPOOLDIR
#define TELEHOOK_SPOOLDIR "/var/spool/telehook"
#endif

#define MUSTCHECK	__attribute__((warn_unused_result))
#define PRINTFLIKE(a, b) __attribute__((format(printf, a, b)))
#define NORETURN	__attribute__((noreturn))
#define SENTINEL	__attribute__((sentinel))

/* sysexits(3) codes, named here so telehookctl reads as the man page. */
#define EX_OK_		0
#define EX_USAGE_	64
#define EX_DATAERR_	65
#define EX_NOINPUT_	66
#define EX_UNAVAIL_	69
#define EX_SOFTWARE_	70
#define EX_CANTCREAT_	73
#define EX_TEMPFAIL_	75
#define EX_CONFIG_	78

/* util.c: the clocks, in microseconds (monotonic, and the wall's). */
long long	 util_now_us(void);
long long	 util_wall_us(void);

/* util.c: allocation that never fails (out of memory is fatal). */
void		*xmalloc(size_t);
void		*xcalloc(size_t, size_t);
void		*xreallocarray(void *, size_t, size_t);
char		*xstrdup(const char *);
char		*xstrndup(const char *, size_t);
int		 xasprintf(char **, const char *, ...) PRINTFLIKE(2, 3);
long long	 util_strtonum(const char *, long long, long long,
		    const char **);
int		 util_has_nul(const void *, size_t);
void		 util_hex(const unsigned char *, size_t, char *);
char		*util_vis(const char *);
char		*util_utf8_fix(const char *, int);
const char	*util_num_in(const char *, long long, long long);
char		*util_tz_enter(const char *);
void		 util_local_at(const char *, time_t, int *, int *);
void		 util_tz_leave(char *);
int		 util_schedule(const char *, long long *, int);
int		 util_url_local(const char *, const char *);
#define INT4_MAX	2147483647LL
#define MS_MAX		253402300799999LL	/* 9999-12-31, in ms */

/* buf.c: a growable byte buffer with a sticky failure flag. */
struct buf {
	char		*data;
	size_t		 len;
	size_t		 cap;
	size_t		 max;		/* 0: BUF_MAX_DEFAULT */
	int		 failed;	/* later appends are no-ops */
};
#define BUF_MAX_DEFAULT	(4U * 1024 * 1024)
void		 buf_init(struct buf *);
void		 buf_free(struct buf *);
void		 buf_reset(struct buf *);
void		 buf_add(struct buf *, const void *, size_t);
void		 buf_puts(struct buf *, const char *);
void		 buf_putc(struct buf *, char);
void		 buf_printf(struct buf *, const char *, ...) PRINTFLIKE(2, 3);
const char	*buf_cstr(struct buf *);
size_t		 buf_write_cb(char *, size_t, size_t, void *);

/* log.c: err(3)-style logging to syslog, or stderr with -d. */
enum log_level {
	LOG_LEVEL_ERR = 0,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_NOTICE,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
	LOG_LEVEL__MAX
};
void		 log_init(const char *, int, enum log_level);
void		 log_setlevel(enum log_level);
int		 log_level_parse(const char *);
void		 log_warn(const char *, ...) PRINTFLIKE(1, 2);
void		 log_warnx(const char *, ...) PRINTFLIKE(1, 2);
void		 log_notice(const char *, ...) PRINTFLIKE(1, 2);
void		 log_info(const char *, ...) PRINTFLIKE(1, 2);
void		 log_debug(const char *, ...) PRINTFLIKE(1, 2);
void		 fatal(const char *, ...) PRINTFLIKE(1, 2) NORETURN;
void		 fatalx(const char *, ...) PRINTFLIKE(1, 2) NORETURN;
const char	*log_esc(const char *);
size_t		 log_escape(char *, size_t, const char *, size_t);

#include "conf.h"

/* kv.c: urlencoded form and query parsing. */
struct kv {
	char		*key;
	char		*val;
};
struct kvlist {
	struct kv	*v;
	size_t		 n;
	size_t		 cap;
};
#define KV_SEMICOLON	0x01	/* ';' separates pairs as '&' does */
int		 kv_parse(struct kvlist *, const char *, size_t, int,
		    const char **) MUSTCHECK;
int		 kv_pct_decode(const char *, size_t, int, char **,
		    const char **) MUSTCHECK;
const char	*kv_get(const struct kvlist *, const char *);
size_t		 kv_count(const struct kvlist *, const char *);
void		 kv_add(struct kvlist *, const char *, const char *);
void		 kv_free(struct kvlist *);

/* request.c: one FastCGI request and everything it owns. */
enum method {
	METHOD_GET = 0x01,
	METHOD_HEAD = 0x02,
	METHOD_POST = 0x04,
	METHOD_PUT = 0x08,
	METHOD_DELETE = 0x10,
	METHOD_PATCH = 0x20,
	METHOD_OPTIONS = 0x40,
	METHOD_OTHER = 0x80
};
enum body_kind {
	BODY_NONE = 0x01,
	BODY_FORM = 0x02,
	BODY_JSON = 0x04
};
#define REQ_MAXARGS	4
struct route;
/* Why a request was refused (architecture.md §5), for metrics and the log. */
enum reject_cause {
	REJECT_NONE = 0,
	REJECT_BAD_SIGNATURE,
	REJECT_EXPIRED,
	REJECT_UNKNOWN_ROUTE,
	REJECT_METHOD,
	REJECT_TOO_LARGE,
	REJECT_CONTENT_TYPE,
	REJECT_ADDRESS,
	REJECT_MALFORMED,
	REJECT_NOT_FOUND,
	REJECT_CROSS_TENANT,	/* one organization's credential, another's data */
	REJECT__MAX
};
/* A request replayed from the spool. */
struct replay {
	long long	 received_us;
	const char	*answer;	/* what the provider was answered */
	int		 duplicate;	/* set by the handler: already stored */
};
struct req {
	char		**envp;		/* borrowed from libfcgi */
	const char	*method_str;
	enum method	 method;
	const char	*request_uri;	/* raw, as the client sent it */
	char		*path;		/* REQUEST_URI before '?' */
	const char	*query;		/* raw, after '?'; "" if none */
	struct kvlist	 qs;
	const char	*content_type;
	enum body_kind	 body_kind;
	char		*body;		/* NUL-terminated copy */
	size_t		 bodylen;
	struct kvlist	 form;		/* body params when BODY_FORM */
	cJSON		*json;		/* body when BODY_JSON */
	char		*client_addr;
	char		*args[REQ_MAXARGS];	/* {} segments of the route */
	int		 nargs;
	const struct route *route;
	long long	 start_us;	/* monotonic, for latency */
	long long	 received_us;	/* wall clock */
	long long	 queued_us;	/* how long it waited for a worker */
	struct replay	*replay;	/* set when drained from the spool */
	enum reject_cause reject;
	char		*scope_org;	/* the organization whose own credential
					   verified the request; NULL for a
					   deployment-wide one (architecture.md §4) */
	char		*log_org;	/* for the request's log line */
	char		*log_key;
};
void		 req_init(struct req *, char **);
void		 req_free(struct req *);
const char	*req_env(const struct req *, const char *);
const char	*req_header(const struct req *, const char *);
enum method	 req_method_parse(const char *);
const char	*req_method_name(enum method);
enum body_kind	 req_body_kind(const char *);
int		 req_parse_uri(struct req *, const char **) MUSTCHECK;
int		 req_parse_body(struct req *, const char **) MUSTCHECK;
struct FCGX_Stream;
int		 req_read_body(struct req *, struct FCGX_Stream *, size_t,
		    const char **) MUSTCHECK;
char		*req_client_addr(const char *, const char *,
		    const struct cidrlist *);
const char	*req_param(const struct req *, const char *);
char		*req_redact_uri(const char *);
const char	*req_shown_path(const char *, char *, size_t);
char		*req_json_redacted(const cJSON *);
char		*req_body_redacted(const struct req *, size_t *);
int		 req_header_secret(const char *);
void		 req_fix_text(struct req *, int);
void		 req_fix_kvlist(struct kvlist *, int);
void		 req_note(struct req *, const char *, const char *);
char		*req_headers_json(const struct req *);
char		*req_body_hex(const struct req *);
char		*req_payload_json(const struct req *);

/* twiml.c: TwiML (XML) builder with escaping and a sticky error. */
#define TWIML_MAXDEPTH	16
struct twiml {
	struct buf	 b;
	const char	*stack[TWIML_MAXDEPTH];
	int		 depth;
	int		 done;
};
void		 twiml_init(struct twiml *);
void		 twiml_free(struct twiml *);
void		 twiml_open(struct twiml *, const char *, ...) SENTINEL;
void		 twiml_text(struct twiml *, const char *);
void		 twiml_close(struct twiml *);
void		 twiml_leaf(struct twiml *, const char *, const char *, ...)
		    SENTINEL;
int		 twiml_finish(struct twiml *) MUSTCHECK;
void		 twiml_set(struct twiml *, const char *);
void		 xml_escape(struct buf *, const char *, size_t);

/* response.c: what a route answers, and how it reaches the client. */
enum responder {
	RESP_EMPTY = 0,		/* 204, no body */
	RESP_TWIML,
	RESP_JSON,
	RESP_TEXT,
	RESP__MAX
};
/* An answer fetched and streamed as it arrives (recording.c). */
struct resp_stream {
	char		*url;		/* set: stream this, render nothing */
	char		*user;		/* HTTP Basic, or NULL */
	char		*password;	/* zeroed when freed */
	char		*range;		/* the client's Range, passed on */
	int		 plain_http;	/* http:// allowed (a loopback API) */
	const char	*trust;		/* its literal address may be inside */
};
struct resp {
	int		 status;	/* 0 until someone sets it */
	enum responder	 kind;
	struct twiml	 twiml;		/* RESP_TWIML */
	cJSON		*json;		/* RESP_JSON, owned */
	struct buf	 text;		/* RESP_TEXT */
	const char	*ctype;		/* RESP_TEXT content type */
	char		*error;		/* set: answer {"error":...} */
	char		 allow[64];	/* 405: the Allow header */
	struct resp_stream stream;
};
void		 resp_init(struct resp *, enum responder);
void		 resp_free(struct resp *);
void		 resp_error(struct resp *, int, const char *, ...)
		    PRINTFLIKE(3, 4);
void		 resp_set_json(struct resp *, int, cJSON *);
int		 resp_render(struct resp *, int, struct buf *);
int		 resp_body(struct resp *, struct buf *, const char **);
int		 resp_error_body(const char *, struct buf *);
const char	*resp_status_text(int);

/* dispatch.c: the route table, and one request from accept to answer. */
enum verdict {
	VERIFY_OK = 0,
	VERIFY_DENY,		/* 401 */
	VERIFY_FORBID,		/* 403: address not allowed */
	VERIFY_NOTFOUND,	/* 404: not yours to see */
	VERIFY_UNAVAILABLE,	/* 503: cannot check now */
	VERIFY_PARSE,		/* precheck: looks right, verify once parsed */
	VERIFY_EXPIRED,		/* 401: a signature's time is past */
	VERIFY__MAX
};
/*
 * What a route carries, for its provider's handler: typed here, so no
 * handler tells routes apart by their names.  The Twilio classes keep
 * the order of enum tw_class (twilio.h).
 */
enum msg_class {
	MC_NONE = 0,
	MC_TW_VOICE_INCOMING,
	MC_TW_VOICE_STATUS,
	MC_TW_VOICE_GATHER,
	MC_TW_VOICE_PARTIAL,
	MC_TW_RECORDING,
	MC_TW_TRANSCRIPTION,
	MC_TW_SMS_INCOMING,
	MC_TW_SMS_STATUS,
	MC_RT_EVENT,
	MC_RT_INBOUND
};
struct route {
	const char	*path;		/* "{}" matches one segment */
	unsigned int	 methods;
	unsigned int	 bodies;	/* enum body_kind accepted */
	const char	*name;		/* for logs and metrics */
	enum verdict	(*verify)(struct req *, const char **);
	/* DB_OK, or the database failure that stopped it */
	enum db_err	(*handle)(struct req *, struct resp *);
	enum responder	 responder;
	unsigned int	 flags;
	/* the answer while the database is away (ROUTE_TX routes) */
	int		(*fallback)(struct req *, struct resp *);
	/*
	 * Optional: what can be checked before the body is parsed (a
	 * missing, malformed or expired credential; a signature over the
	 * raw bytes), so a request that cannot verify costs no parse.
	 * VERIFY_OK: verified, verify is not called; VERIFY_PARSE: verify
	 * decides once the body is parsed; else refused at once.
	 */
	enum verdict	(*precheck)(struct req *, const char **);
	/* the class of message the route carries (MC_NONE: from the fields) */
	enum msg_class	 cls;
};
/*
 * The handler runs inside one transaction that the dispatcher begins and
 * commits (or rolls back on error) before anything is answered, so a 2xx
 * always follows the commit.
 */
#define ROUTE_TX	0x01
#define ROUTE_LATIN1	0x02	/* text that is not UTF-8 is ISO 8859-1 */
extern const struct route routes[];
extern const size_t nroutes;
const struct route *dispatch_match(const struct route *, size_t,
		    const char *, enum method, struct req *, int *, char *,
		    size_t);
int		 dispatch_check_table(const struct route *, size_t,
		    const char **);
struct FCGX_Request;
void		 dispatch_request(struct FCGX_Request *);
enum replay_result {
	REPLAY_OK = 0,
	REPLAY_DUPLICATE,	/* the event was already stored */
	REPLAY_AWAY,		/* the database is away: keep the file */
	REPLAY_FAILED,		/* can never succeed: quarantine it */
	REPLAY_REFUSED		/* refused as live (cross_tenant), or kept as
				   a failed event: remove the file */
};
struct spooled;
int		 worker_replay(const struct spooled *, const char **);
void		 worker_idle(void);
long long	 dispatch_budget_us(void);
long long	 dispatch_deadline(long long);
void		 dispatch_trouble(enum db_err, int);
void		 dispatch_went_through(long long, int);
enum verdict	 verify_public(struct req *, const char **);
/* dispatch.c, for worker.c's replay and idle work */
enum db_err	 dispatch_scope(const char *);
enum db_err	 dispatch_store_failed(struct req *, const struct route *,
		    const char *, char *, size_t);
void		 dispatch_note_rejection(struct req *, int, const char *);
void		 dispatch_flush_rejections(void);
int		 dispatch_rejections_waiting(void);

/* twiliosig.c: X-Twilio-Signature as the SDKs compute it. */
#define TWILIO_SIGLEN	28	/* base64 of a 20-byte HMAC-SHA1 */
void		 twiliosig_compute(const char *, const char *,
		    const struct kvlist *, char *);
int		 twiliosig_urls(const char *, const char *, char *[2]);
int		 twiliosig_check(const char *, const char *, const char *,
		    const struct kvlist *, const char *);

/* retellsig.c: X-Retell-Signature as retell-sdk verifies it. */
enum retellsig {
	RETELLSIG_OK = 0,
	RETELLSIG_MALFORMED,
	RETELLSIG_EXPIRED,	/* timestamp outside the tolerance */
	RETELLSIG_MISMATCH
};
int		 retellsig_parse(const char *, long long *, unsigned char *);
void		 retellsig_digest(const char *, const char *, size_t,
		    long long, unsigned char *);
enum retellsig	 retellsig_verify(const char *, const char *, size_t,
		    const char *, long long, long long);

/* db.c: the one PostgreSQL connection of a process. */
/*
 * What stands between the workers and PostgreSQL: nothing, or a pooler
 * that gives a server connection for one transaction at a time
 * (PgBouncer's pool_mode = transaction), which keeps no prepared
 * statement and no session setting across transactions.
 */
enum db_pooler {
	DB_POOLER_NONE = 0,
	DB_POOLER_TRANSACTION
};
enum db_err {
	DB_OK = 0,
	DB_ECONN,	/* unreachable or connection lost */
	DB_ETIMEOUT,	/* statement_timeout_ms passed */
	DB_EDUP,	/* unique violation */
	DB_EQUERY,	/* any other error: a bug or bad data */
	DB_ESCOPE,	/* th_route(): outside the credential's scope */
	DB_EAGAIN,	/* transient: out of connections, serialization */
	DB_EDEADLINE,	/* no answer by our own deadline (answer budget) */
	DB_EREADONLY,	/* the database refuses writes (25006) */
	DB__MAX
};
/* A prepared statement; each module keeps a static table of its own. */
struct db_stmt {
	const char	*name;		/* unique across modules */
	const char	*sql;
	int		 nparams;
};
struct db_res {
	int		 nrows;
	int		 ncols;
	char		**vals;		/* nrows * ncols, NULL for SQL NULL */
	char		**names;	/* ncols column names */
	char		*cmdtuples;
};
void		 db_setup(const char *, long long);
void		 db_set_lock_timeout(long long);
void		 db_set_pooler(int);
/* The read replica's state, for the API's reads and /healthz. */
enum db_replica {
	DB_REPLICA_NONE = 0,	/* none configured */
	DB_REPLICA_OK,
	DB_REPLICA_BEHIND,	/* more than read_max_lag_ms behind */
	DB_REPLICA_DOWN
};
void		 db_setup_read(const char *, long long);
enum db_replica	 db_replica_state(void);
enum db_err	 db_exec_read(const struct db_stmt *, const char *const *,
		    struct db_res *, int *);
void		 db_set_error_hook(void (*)(void));
void		 db_set_deadline(long long);
long long	 db_get_deadline(void);
int		 db_deadline_connecting(void);
void		 db_set_budget(long long);
void		 db_set_abandon_hook(int (*)(long long));
enum db_err	 db_connect(void);
int		 db_connected(void);
void		 db_close(void);
void		 db_forget(void);
const char	*db_errmsg(void);
enum db_err	 db_last_error(void);
void		 db_clear(void);
#define DB_AWAY(e)	((e) == DB_ECONN || (e) == DB_ETIMEOUT || \
			    (e) == DB_EAGAIN || (e) == DB_EDEADLINE || \
			    (e) == DB_EREADONLY)
enum db_err	 db_exec(const struct db_stmt *, const char *const *,
		    struct db_res *);
enum db_err	 db_query(const char *, int, const char *const *,
		    struct db_res *);
enum db_err	 db_run(const char *);
enum db_err	 db_begin(void);
enum db_err	 db_commit(void);
void		 db_rollback(void);
const char	*db_get(const struct db_res *, int, int);
int		 db_col(const struct db_res *, const char *);
const char	*db_val(const struct db_res *, int, const char *);
void		 db_res_free(struct db_res *);

/* spool.c: the fallback directory for when the database is down. */
struct spooled {
	long long	 received_us;
	char		*client;
	char		*scope;		/* req.scope_org, or NULL */
	long long	 rederive;	/* a stored event's id: derive it again */
	char		**envp;		/* NULL-terminated */
	size_t		 nenv;
	char		*answer;
	char		*body;
	size_t		 bodylen;
};
struct drain_stats {
	int		 replayed;
	int		 duplicates;	/* already stored: removed */
	int		 sealed;	/* sealed, and no key here: left */
	int		 refused;	/* refused as live (cross_tenant) */
	int		 quarantined;
	int		 left;		/* still waiting */
	int		 stopped;	/* the database went away */
	int		 busy;		/* another process was draining */
	int		 error;
};
long		 spool_depth(const char *);
int		 spool_writable(const char *);
int		 spool_write(const char *, const struct req *, const char *,
		    const char **);
void		 spool_set_replay(int (*)(const struct spooled *, const char **));
int		 spool_parse(const char *, size_t, struct spooled *,
		    const char **);
void		 spooled_free(struct spooled *);
int		 spool_drain(const char *, int, long long,
		    struct drain_stats *);
long		 spool_quarantined(const char *);
const char	*spool_state(const char *);
long long	 spool_oldest(const char *);

/* twilio.c: the Twilio routes. */
enum verdict	 twilio_verify(struct req *, const char **);
enum verdict	 twilio_precheck(struct req *, const char **);
enum db_err	 twilio_handle(struct req *, struct resp *);
int		 twilio_fallback(struct req *, struct resp *);
enum db_err	 twilio_timing(struct req *, struct resp *);

/* retell.c: the Retell routes. */
enum verdict	 retell_verify(struct req *, const char **);
enum verdict	 retell_precheck(struct req *, const char **);
enum db_err	 retell_handle(struct req *, struct resp *);
enum db_err	 retell_inbound(struct req *, struct resp *);
int		 retell_fallback(struct req *, struct resp *);
const char	*retell_status(const char *, const char *);
const char	*retell_contact_outcome(const char *, const char *);

/* voipms.c: the VoIP.ms routes. */
enum verdict	 voipms_verify(struct req *, const char **);
enum db_err	 voipms_sms(struct req *, struct resp *);
enum db_err	 voipms_cdr(struct req *, struct resp *);
enum db_err	 voipms_recording(struct req *, struct resp *);
int		 voipms_fallback(struct req *, struct resp *);

/* api.c: the dashboard API (architecture.md §11). */
enum verdict	 api_verify(struct req *, const char **);
enum db_err	 api_dashboard(struct req *, struct resp *);
enum db_err	 api_activity(struct req *, struct resp *);
enum db_err	 api_notifications(struct req *, struct resp *);
enum db_err	 api_notification_read(struct req *, struct resp *);
enum db_err	 api_call(struct req *, struct resp *);
enum db_err	 api_call_handled(struct req *, struct resp *);
enum db_err	 api_campaigns(struct req *, struct resp *);
enum db_err	 api_campaign(struct req *, struct resp *);
enum db_err	 api_calls(struct req *, struct resp *);
enum db_err	 api_conversations(struct req *, struct resp *);
enum db_err	 api_conversation(struct req *, struct resp *);

/* recording.c: a call's recording, fetched and streamed through. */
enum db_err	 recording_handle(struct req *, struct resp *);
int		 recording_stream(struct resp *, int, struct FCGX_Stream *);
int		 recording_twilio_account(const char *, const char *, char *,
		    size_t);

/* egress.c: the address check of every connection made from received data. */
struct egress {
	int		 allow_private;	/* [delivery] allow_private */
	struct sockaddr_storage trusted; /* the operator's api_url, by address */
	int		 refused;	/* connections refused */
};
int		 egress_inside4(const unsigned char *);
int		 egress_inside6(const unsigned char *);
int		 egress_inside(const struct sockaddr *);
int		 egress_host_inside(const char *);
int		 egress_url_inside(const char *);
void		 egress_trust(struct egress *, const char *);
void		 egress_curl(void *, struct egress *);

/* metrics.c: counters shared by the pool, GET /metrics. */
void		 metrics_init(const char *, const struct route *, size_t);
void		 metrics_request(const struct route *, int, long long);
void		 metrics_reject(enum reject_cause);
void		 metrics_db_error(void);
void		 metrics_failed_event(void);
void		 metrics_db_deadline(void);
void		 metrics_spool_write(void);
enum db_err	 metrics_handle(struct req *, struct resp *);
const char	*metrics_cause_name(enum reject_cause);

/* breaker.c: the pool's breaker, in metrics.c's shared mapping. */
enum breaker_reason {
	BREAKER_NONE = 0,	/* closed */
	BREAKER_SLOW,		/* answers near or past the budget */
	BREAKER_DOWN,		/* connecting got no answer in time */
	BREAKER_READ_ONLY,	/* writes refused (25006) */
	BREAKER__MAX
};
enum breaker_pass {
	BREAKER_PASS,		/* closed: use the database */
	BREAKER_PROBE,		/* half-open: this one is the probe */
	BREAKER_SPOOL		/* open, or another probes */
};
struct breaker_shm {
	int64_t		 until_us;	/* open until then */
	int64_t		 opened_us;	/* when it last opened */
	int64_t		 probe_us;	/* a probe runs until then */
	int64_t		 slow_us;	/* it last opened as slow */
	int64_t		 slow_window_us; /* the window's start */
	uint32_t	 reason;	/* enum breaker_reason */
	uint32_t	 slow_count;	/* slow answers in the window */
	uint64_t	 opened;	/* times, counted for /metrics */
	uint64_t	 by_reason[BREAKER__MAX];
};
void		 breaker_attach(struct breaker_shm *);
unsigned long long breaker_opened_count(enum breaker_reason);
void		 breaker_open(long long, enum breaker_reason);
void		 breaker_close(void);
int		 breaker_is_open(long long);
enum breaker_reason breaker_reason(void);
const char	*breaker_name(enum breaker_reason);
enum breaker_pass breaker_pass(long long, long long, long long);
int		 breaker_opened_since(long long);
int		 breaker_slow(long long, unsigned int);
int		 breaker_slow_since(long long);

/* health.c */
enum db_err	 health_handle(struct req *, struct resp *);

/* healthd.c */
void		 healthd_listen(void);
void		 healthd_watch(void);

/* phone.c: E.164 numbers. */
int		 phone_e164(const char *, char *, size_t) MUSTCHECK;

/* hours.c: weekly business hours, "mon-fri 09:00-17:00; sat 10:00-14:00". */
struct hours {
	/* minutes since midnight, [from, to), up to 4 spans a day */
	int		 n[7];
	int		 from[7][4];
	int		 to[7][4];
};
int		 hours_parse(const char *, struct hours *, const char **)
		    MUSTCHECK;
int		 hours_open(const struct hours *, int, int);
void		 hours_format(const struct hours *, struct buf *);

/* pressure.c: the CPU's stall share, from /proc/pressure/cpu (PSI). */
struct pressure {
	const char	*path;
	long long	 at_us;		/* the last sample's time */
	long long	 total_us;	/* and its "some" total */
};
long long	 pressure_parse(const char *);
int		 pressure_sample(struct pressure *, long long, double *)
		    MUSTCHECK;

/* crypto.c: tokens, hashes and sealed secrets (libsodium, OpenSSL). */
#define CRYPTO_KEYBYTES		32
#define TOKEN_PREFIX		"thk_"
#define TOKEN_HASHHEX		64
extern unsigned char crypto_key[CRYPTO_KEYBYTES];
extern int	 crypto_have_key;
int		 crypto_init(void) MUSTCHECK;
int		 crypto_use_key(const char *, const char **) MUSTCHECK;
void		 crypto_token_new(char *, size_t);
void		 crypto_token_hash(const char *, char *);
void		 crypto_sha256_hex(const void *, size_t, char *);
int		 crypto_ct_equal(const void *, const void *, size_t);
int		 crypto_streq(const char *, const char *);
int		 crypto_load_key(const char *, unsigned char *, const char **)
		    MUSTCHECK;
char		*crypto_seal(const unsigned char *, const char *);
char		*crypto_open(const unsigned char *, const char *);

/* store.c: routing, events and the records derived from them. */
struct org {
	char		*id;
	char		*name;
	char		*timezone;
	char		*greeting;
	char		*forward_to;
	char		*after_hours;
	char		*retell_agent_id;
	char		*agent_sip;	/* the after-hours hand-off */
	struct hours	 hours;
	int		 has_hours;
	int		 closed;	/* a dated closure covers today */
	int		 wday;		/* now, in the organization's zone */
	int		 minute;
};
struct route_query {
	const char	*provider;
	const char	*explicit_id;	/* organization_id or OrgId */
	const char	*number;	/* whose owner the event belongs to */
	const char	*call_id;
	const char	*message_id;
	const char	*account;	/* Twilio AccountSid */
};
struct event_in {
	const char	*provider;
	const char	*type;
	const char	*key;		/* idempotency key, architecture.md §6 */
	const char	*org;
};
struct call_in {
	const char	*provider;
	const char	*call_id;
	const char	*org;
	const char	*direction;
	const char	*from;
	const char	*to;
	const char	*status;	/* NULL: leave as it is */
	const char	*duration;
	const char	*recording_url;
	const char	*transcript;
	/* Retell's call object adds these; NULL: leave as it is */
	const char	*started_ms;	/* epoch milliseconds */
	const char	*ended_ms;
	const char	*cost_cents;
	const char	*cost;		/* a decimal, as the provider wrote it */
	const char	*currency;
	const char	*reason;	/* disconnection reason */
	const char	*summary;
	const char	*sentiment;
	const char	*successful;	/* "true" or "false" */
	const char	*custom_data;	/* JSON */
	const char	*agent_id;
	const char	*campaign_id;
	const char	*contact_id;
	const char	*caller_name;
	int		 analyzed;
};
struct call_out {
	long long	 id;
	char		*org;
	char		*status;
	int		 rank;
	int		 old_rank;	/* -1: the call is new */
	char		*direction;
	char		*from;
	char		*to;
	char		*summary;
	int		 analyzed;
	char		*campaign_id;
	char		*contact_id;
	char		*successful;	/* "t", "f" or NULL */
	char		*outcome;	/* answered, missed, voicemail, NULL */
	char		*recording_url;
	char		*call_id;	/* the provider's */
};
struct msg_in {
	const char	*provider;
	const char	*message_id;
	const char	*org;
	const char	*direction;
	const char	*from;
	const char	*to;
	const char	*body;
	const char	*num_media;
	const char	*media;		/* JSON array */
	const char	*status;
};
struct msg_out {
	long long	 id;
	char		*org;
	int		 rank;
	int		 old_rank;
};
/* Call status ranks: someone is on the line; the call is over. */
#define RANK_ANSWERED	4
#define RANK_FINAL	5
int		 store_call_rank(const char *);
#define MSG_RANK_SENT	4	/* the provider took it */
int		 store_message_rank(const char *);
int		 store_is_uuid(const char *);
enum db_err	 store_org_load(const char *, struct org *);
int		 store_org_open(const struct org *);
void		 store_org_scope(const struct req *, struct org *);
void		 store_org_free(struct org *);
enum db_err	 store_route(const struct route_query *, char **);
void		 store_set_rederive(long long);

/* hook.c: the sequence every provider request runs. */
struct hook {
	struct req	*r;
	struct resp	*p;
	const char	*provider;
	char		*key;		/* the provider key; owned */
	char		*org_id;	/* NULL: unrouted; owned */
	struct org	 org;		/* by hook_org() */
	long long	 event;		/* events.id; 0: a redelivery */
	char		*prior;		/* a redelivery's first answer */
};
void		 hook_init(struct hook *, struct req *, struct resp *,
		    const char *);
int		 hook_store(struct hook *, const struct route_query *,
		    const char *);
enum db_err	 hook_org(struct hook *);
enum db_err	 hook_keep_answer(struct hook *, const char *);
enum db_err	 hook_end(struct hook *, int);
long long	 store_rederiving(void);
enum db_err	 store_event(const struct req *, const struct event_in *,
		    long long *, char **);
enum db_err	 store_event_answer(long long, const char *);
enum db_err	 store_call(const struct call_in *, struct call_out *);
void		 store_call_out_free(struct call_out *);
enum db_err	 store_message(const struct msg_in *, struct msg_out *);
enum db_err	 store_message_replied(long long, const char *);
enum db_err	 store_message_reply_of(long long, const char *);
enum db_err	 store_activity(const char *, const char *, const char *,
		    long long, long long, long long);
enum db_err	 store_call_ended(struct call_out *, const char *,
		    const char *, long long);
enum db_err	 store_call_outcome(struct call_out *, const char *,
		    const char *, long long);
enum db_err	 store_voicemail_text(const struct call_out *, const char *);
enum db_err	 store_notify_urgent_sms(const char *, long long, const char *,
		    const char *, const char *);
enum db_err	 store_notify(const char *, long long, const char *,
		    const char *, const char *, const char *);
enum db_err	 store_notify_inbound_call(const char *, long long,
		    const char *, const char *, const char *);
enum db_err	 store_is_blocked(const char *, const char *, int *);
enum db_err	 store_set_opt_out(const char *, const char *, int);
struct reply_state {
	int		 opted_out;
	int		 blocked;
	int		 recent;	/* replies in ten minutes */
	int		 own;		/* one of the organization's numbers */
};
enum db_err	 store_reply_state(const char *, const char *,
		    struct reply_state *);
enum db_err	 store_rules(const char *, const char *, struct db_res *);
struct sms_in {				/* an incoming SMS, for th_sms_incoming() */
	const char	*explicit_id;	/* organization_id given, or NULL */
	const char	*number;	/* whose owner it belongs to */
	const char	*account;	/* provider account, for routing */
	const char	*message_id;
	const char	*from;
	const char	*to;
	const char	*body;
	const char	*num_media;
	const char	*media;		/* JSON array */
	const char	*summary;	/* of its activity */
};
struct sms_out {
	long long	 event;		/* 0: a redelivery */
	char		*prior;		/* a redelivery's first answer */
	long long	 message;
	struct org	 org;		/* id NULL: unrouted */
	struct reply_state rs;
	cJSON		*rules;		/* [[keywords, reply], ...] */
};
enum db_err	 store_sms_incoming(const struct req *, const struct event_in *,
		    const struct sms_in *, struct sms_out *);
void		 store_sms_out_free(struct sms_out *);

/* reply.c: auto-replies, opt-out keywords and the knowledge base. */
enum reply_opt {
	REPLY_OPT_NONE = 0,
	REPLY_OPT_STOP,
	REPLY_OPT_START,
	REPLY_OPT_HELP
};
#define REPLY_LOOP_MAX	3	/* auto-replies per number per 10 minutes */
enum reply_opt	 reply_opt_keyword(const char *);
int		 reply_keywords_match(const char *, const char *);
const char	*reply_default_category(const char *);
int		 reply_urgent(const char *);
char		*reply_default_text(const char *, const struct org *,
		    const char *);
enum db_err	 reply_find(const struct org *, const char *, const char *,
		    const char *, char **);
struct reply_known {			/* what reply_decide() need not ask */
	const struct reply_state *rs;
	const cJSON	*rules;		/* [[keywords, reply], ...] */
};
enum db_err	 reply_decide(const struct org *, const char *, const char *,
		    const char *, const struct reply_known *, char **);

/* cache.c: organizations remembered for when the database is away. */
int		 cache_refresh(int);
int		 cache_org(const char *, const char *, struct org *);
int		 cache_secret_count(void);
const char	*cache_secret(int, const char *, const char *);
const char	*cache_secret_org(int, const char *, const char *);
const char	*cache_secret_owner(int);
const char	*cache_secret_provider(int);
const char	*cache_secret_by_hash(const char *, const char *);

/* whsig.c: Standard Webhooks signatures (architecture.md §14). */
#define WHSIG_SECRET_BYTES	24
#define WHSIG_SECRET_MAX	80
#define WHSIG_SIG_MAX		64
void		 whsig_secret_new(char *, size_t);
int		 whsig_sign(const char *, const char *, long long, const void *,
		    size_t, char *, size_t);
int		 whsig_hmac(const unsigned char *, size_t, const void *, size_t,
		    const void *, size_t, unsigned char *, unsigned int *);

#endif /* TELEHOOK_EXTERN_H */
