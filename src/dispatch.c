/*
 * dispatch.c: the route table, and the life of one request from accept
 * to answer.  The order is fixed here so no handler can skip a step:
 *
 *	route (404) -> method (405) -> content type (415) -> body size
 *	(413) -> precheck (401/403) -> parse (400) -> verify (401/403)
 *	-> handle -> respond
 *
 * The precheck refuses what cannot verify before the body is parsed,
 * so an unauthenticated flood of large bodies costs little.
 *
 * Verification is a slot of the table that the dispatcher always calls;
 * a route that needs none says so with verify_public.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcgiapp.h>

#include "extern.h"

/*
 * Does path match pattern?  On a match with r given, the "{}" segments
 * are copied into r->args.
 */
static int
dispatch_path_match(const char *pattern, const char *path, struct req *r)
{
	const char	*p = pattern, *s = path, *seg;
	char		*args[REQ_MAXARGS];
	int		 nargs = 0, i;

	while (*p != '\0' && *s != '\0') {
		if (p[0] == '{' && p[1] == '}') {
			seg = s;
			while (*s != '\0' && *s != '/')
				s++;
			if (s == seg || nargs == REQ_MAXARGS)
				goto nomatch;
			args[nargs++] = xstrndup(seg, (size_t)(s - seg));
			p += 2;
			continue;
		}
		if (*p != *s)
			goto nomatch;
		p++;
		s++;
	}
	if (*p != '\0' || *s != '\0')
		goto nomatch;
	if (r != NULL) {
		for (i = 0; i < r->nargs; i++)
			free(r->args[i]);
		for (i = 0; i < nargs; i++)
			r->args[i] = args[i];
		r->nargs = nargs;
	} else
		for (i = 0; i < nargs; i++)
			free(args[i]);
	return 1;
nomatch:
	for (i = 0; i < nargs; i++)
		free(args[i]);
	return 0;
}

/*
 * The route of table t (n entries) for path and method.  NULL with
 * *status 404 when no route has the path, 405 when none takes the
 * method (allow then lists those that would, for the Allow header).
 */
const struct route *
dispatch_match(const struct route *t, size_t n, const char *path,
    enum method m, struct req *r, int *status, char *allow, size_t allowlen)
{
	unsigned int	 methods = 0;
	size_t		 i;
	unsigned int	 bit;

	*status = 404;
	if (allow != NULL && allowlen > 0)
		allow[0] = '\0';
	for (i = 0; i < n; i++) {
		if (!dispatch_path_match(t[i].path, path, NULL))
			continue;
		if (t[i].methods & m) {
			(void)dispatch_path_match(t[i].path, path, r);
			*status = 0;
			return &t[i];
		}
		methods |= t[i].methods;
	}
	if (methods == 0)
		return NULL;
	*status = 405;
	if (allow != NULL)
		for (bit = 1; bit < METHOD_OTHER; bit <<= 1)
			if (methods & bit) {
				if (allow[0] != '\0')
					strncat(allow, ", ", allowlen -
					    strlen(allow) - 1);
				strncat(allow, req_method_name(bit),
				    allowlen - strlen(allow) - 1);
			}
	return NULL;
}

/*
 * Check a route table once at start-up: every route has a path, a
 * method, a verify slot and a handler, and no two routes overlap.
 */
int
dispatch_check_table(const struct route *t, size_t n, const char **errstr)
{
	size_t	 i, j;

	for (i = 0; i < n; i++) {
		if (t[i].path == NULL || t[i].path[0] != '/') {
			*errstr = "route without an absolute path";
			return -1;
		}
		if (t[i].methods == 0 || t[i].bodies == 0) {
			*errstr = "route without methods or body kinds";
			return -1;
		}
		if (t[i].verify == NULL) {
			*errstr = "route without a verify slot";
			return -1;
		}
		if (t[i].handle == NULL || t[i].responder >= RESP__MAX) {
			*errstr = "route without a handler or responder";
			return -1;
		}
		if ((t[i].flags & ROUTE_TX) && t[i].fallback == NULL) {
			*errstr = "a transactional route without a fallback "
			    "for when the database is away";
			return -1;
		}
		for (j = 0; j < i; j++)
			if (strcmp(t[i].path, t[j].path) == 0 &&
			    (t[i].methods & t[j].methods)) {
				*errstr = "two routes take the same path "
				    "and method";
				return -1;
			}
	}
	return 0;
}

/*
 * The answer the route gives without the database: its fallback (cached
 * settings).  -1, with a 503 in p, when it has none.
 */
static int
dispatch_answer_away(struct req *r, struct resp *p, const struct route *rt)
{
	char	 allow[sizeof(p->allow)];

	memcpy(allow, p->allow, sizeof(allow));
	resp_free(p);
	resp_init(p, rt->responder);
	memcpy(p->allow, allow, sizeof(allow));
	if (rt->fallback == NULL || rt->fallback(r, p) == -1) {
		resp_free(p);
		resp_init(p, RESP_JSON);
		resp_error(p, 503, "database unavailable");
		return -1;
	}
	return 0;
}

/*
 * The database is away: answer from the route's fallback and keep the
 * request in the spool.  The answer goes out only once the file is on
 * disk; if it cannot be written, the provider gets a 503 instead.
 */
static void
dispatch_spool(struct req *r, struct resp *p, const struct route *rt,
    const char *why)
{
	struct buf	 body;
	const char	*ctype, *errstr;

	if (dispatch_answer_away(r, p, rt) == -1)
		return;
	buf_init(&body);
	if (resp_body(p, &body, &ctype) >= 400 ||
	    spool_write(conf.spool_dir, r, buf_cstr(&body), &errstr) == -1) {
		if (p->error == NULL)
			log_warnx("%s: database away (%s) and spool_dir %s "
			    "refused the request: %s", rt->name, why,
			    conf.spool_dir, errstr);
		resp_free(p);
		resp_init(p, RESP_JSON);
		resp_error(p, 503, "database unavailable and the spool "
		    "cannot take the request");
	} else {
		metrics_spool_write();
		log_notice("%s: spooled (%s)", rt->name, why);
	}
	buf_free(&body);
}

/*
 * architecture.md §4, credential scope: a request verified by one
 * organization's own credential names that organization to th_route()
 * (sql/functions.sql) for its transaction; the statement goes out in one round trip
 * with BEGIN.
 */
static const struct db_stmt st_scope = { "dispatch_scope",
	"SELECT set_config('telehook.scope', $1, true)", 1 };

enum db_err
dispatch_scope(const char *org)
{
	const char	*p[1];

	if (org == NULL)
		return DB_OK;
	p[0] = org;
	return db_exec(&st_scope, p, NULL);
}

/* The answer to a request routed outside its credential's scope. */
static void
dispatch_cross_tenant(struct req *r, struct resp *p)
{
	r->reject = REJECT_CROSS_TENANT;
	resp_free(p);
	resp_init(p, RESP_JSON);
	resp_error(p, 403, "routed to an organization other than the "
	    "credential's own");
}

/*
 * The answer budget ([server] answer_budget_ms, architecture.md §6): a
 * webhook is answered within it of its accept whatever the database
 * does.  Its round trips get half of it: the other half is for what
 * piles up in the listen queue while the workers wait, until the first
 * deadline opens the breaker, and for spooling it.  A transaction that
 * takes more than a quarter of the budget is slow.
 */
#define SLOW_COUNT	3	/* slow transactions in a second, pool-wide */

/*
 * How long the breaker stays open before a probe: a read-only or slow
 * database is asked again every second, by one worker.
 */
#define BREAKER_US	(1000 * 1000)

long long
dispatch_budget_us(void)
{
	return conf.answer_budget_ms * 1000;
}

/* The deadline of the database round trips of a request begun then. */
long long
dispatch_deadline(long long start_us)
{
	return start_us + dispatch_budget_us() / 2;
}

/*
 * What a database failure says of the pool's breaker: a deadline
 * passed or a statement or lock timeout (slow, or down if it was the
 * connect), writes refused (read_only) open it for every worker; a
 * probe's failure of any kind opens it again.
 */
void
dispatch_trouble(enum db_err e, int probe)
{
	enum breaker_reason	 why;

	switch (e) {
	case DB_EDEADLINE:
		metrics_db_deadline();
		why = db_deadline_connecting() ? BREAKER_DOWN : BREAKER_SLOW;
		break;
	case DB_ETIMEOUT:
		why = BREAKER_SLOW;
		break;
	case DB_EREADONLY:
		why = BREAKER_READ_ONLY;
		break;
	case DB_ECONN:
	case DB_EAGAIN:
		if (!probe)
			return;	/* answered at once: nothing to spare */
		why = BREAKER_DOWN;
		break;
	default:
		return;
	}
	/* already open: a wait given up for it says nothing new */
	if (breaker_is_open(util_now_us()) && !probe)
		return;
	if (breaker_reason() != why || !probe)
		log_warnx("database %s (%s): spooling, a probe every %d s",
		    breaker_name(why), db_errmsg(), BREAKER_US / 1000000);
	breaker_open(util_now_us() + BREAKER_US, why);
}

/*
 * A transaction that got through, begun at t0: slow ones (more than a
 * quarter of the budget) open the breaker, a few in a second or a
 * probe's one; a probe's fast one closes it.
 */
void
dispatch_went_through(long long t0, int probe)
{
	long long	 now = util_now_us();

	if (now - t0 > dispatch_budget_us() / 4) {
		if (probe || breaker_slow(now, SLOW_COUNT)) {
			if (!breaker_is_open(now) && !probe)
				log_warnx("database slow (%lld ms a "
				    "transaction): spooling, a probe every "
				    "%d s", (now - t0) / 1000,
				    BREAKER_US / 1000000);
			breaker_open(now + BREAKER_US, BREAKER_SLOW);
		}
		return;
	}
	if (probe) {
		log_notice("database %s no more: the probe took %lld ms",
		    breaker_name(breaker_reason()), (now - t0) / 1000);
		breaker_close();
	}
}

/*
 * architecture.md §6: a verified request whose content PostgreSQL refuses
 * (a data exception, anything but the database being away) is kept raw,
 * marked failed, and answered as the database being away would be, so the
 * provider does not retry it into the void.  Its key is a digest of the
 * request, so a redelivery of it is kept once; "telehookctl events replay"
 * derives it once the cause is fixed.
 */
static const struct db_stmt st_failed = { "dispatch_failed",
	"INSERT INTO events (provider, event_type, provider_key, route, "
	"client_addr, content_type, body, method, request_uri, received_at, "
	"failed_at, failure) VALUES ($1, 'failed', $2, $3, CASE WHEN $4 ~ "
	"'^[0-9a-fA-F:.]+$' THEN $4::inet END, $5, decode($6, 'hex'), $7, $8, "
	"th_now(), now(), $9) ON CONFLICT (provider, provider_key) DO NOTHING",
	9 };

enum db_err
dispatch_store_failed(struct req *r, const struct route *rt, const char *why,
    char *key, size_t keylen)
{
	struct buf	 b;
	const char	*params[9];
	char		 provider[16], hex[65], reason[256], *uri, *raw;
	enum db_err	 e;

	snprintf(provider, sizeof(provider), "%.*s",
	    (int)strcspn(rt->name, "_"), rt->name);
	snprintf(reason, sizeof(reason), "%s", why);
	uri = req_redact_uri(r->request_uri);
	buf_init(&b);
	buf_printf(&b, "%s %s\n", r->method_str != NULL ? r->method_str : "-",
	    uri);
	buf_add(&b, r->body != NULL ? r->body : "", r->bodylen);
	crypto_sha256_hex(b.data != NULL ? b.data : "", b.len, hex);
	buf_free(&b);
	snprintf(key, keylen, "failed:%.32s", hex);
	raw = xmalloc(r->bodylen * 2 + 1);
	util_hex((const unsigned char *)(r->body != NULL ? r->body : ""),
	    r->bodylen, raw);
	params[0] = provider;
	params[1] = key;
	params[2] = rt->name;
	params[3] = r->client_addr != NULL ? r->client_addr : "-";
	params[4] = r->content_type;
	params[5] = raw;
	params[6] = r->method_str;
	params[7] = uri;
	params[8] = reason;
	db_clear();
	if ((e = db_begin()) == DB_OK &&
	    (e = db_exec(&st_failed, params, NULL)) == DB_OK)
		e = db_commit();
	else
		db_rollback();
	free(raw);
	free(uri);
	if (e == DB_OK)
		metrics_failed_event();
	return e;
}

static void
dispatch_keep_failed(struct req *r, struct resp *p, const struct route *rt,
    const char *why)
{
	char		 key[48];
	enum db_err	 e;

	e = dispatch_store_failed(r, rt, why, key, sizeof(key));
	if (e != DB_OK) {
		/* not even kept: the provider should try again */
		if (DB_AWAY(e))
			dispatch_spool(r, p, rt, db_errmsg());
		else {
			log_warnx("%s: a failed event could not be kept",
			    rt->name);
			resp_error(p, 500, "internal error");
		}
		return;
	}
	/* the reason may quote the request: it is in the database only */
	log_warnx("%s: the database refused the content; kept as a failed "
	    "event (telehookctl events list --failed)", rt->name);
	req_note(r, NULL, key);
	dispatch_answer_away(r, p, rt);
}

/*
 * Run the handler, inside a transaction when the route asks for one.
 * The answer is rendered only after the commit.  When the database is
 * unreachable or too slow (statement_timeout_ms), the request goes to
 * the spool instead.
 */
static void
dispatch_handle(struct req *r, struct resp *p, const struct route *rt)
{
	enum breaker_pass	 pass;
	enum db_err		 e;
	long long		 t0;
	int			 probe;
	char			 why[64];

	if (!(rt->flags & ROUTE_TX)) {
		if (rt->handle(r, p) != DB_OK && p->error == NULL)
			resp_error(p, 500, "internal error");
		return;
	}
	/* the breaker: the database was slow, read-only or down just now */
	t0 = util_now_us();
	if ((pass = breaker_pass(t0, 0, dispatch_budget_us())) ==
	    BREAKER_SPOOL) {
		snprintf(why, sizeof(why), "breaker open: %s",
		    breaker_name(breaker_reason()));
		dispatch_spool(r, p, rt, why);
		return;
	}
	probe = pass == BREAKER_PROBE;
	/*
	 * Waits for a worker count too: a database a little slow for the
	 * offered rate shows as a queue in front of the workers, not as a
	 * slow transaction.
	 */
	if (!probe && r->queued_us > dispatch_budget_us() / 4 &&
	    breaker_slow(t0, SLOW_COUNT)) {
		if (!breaker_is_open(t0))
			log_warnx("requests wait %lld ms for a worker: spooling, "
			    "a probe every %d s", r->queued_us / 1000,
			    BREAKER_US / 1000000);
		breaker_open(t0 + BREAKER_US, BREAKER_SLOW);
		dispatch_spool(r, p, rt, "requests wait for a worker");
		return;
	}
	db_clear();
	/* BEGIN goes out with the first statement: only a bug fails here */
	if ((e = db_begin()) != DB_OK) {
		log_warnx("%s: begin: %s", rt->name, db_errmsg());
		resp_error(p, 503, "database unavailable");
		return;
	}
	if ((e = dispatch_scope(r->scope_org)) == DB_OK)
		e = rt->handle(r, p);
	if (e != DB_OK || p->error != NULL) {
		db_rollback();
		if (e == DB_ESCOPE)
			dispatch_cross_tenant(r, p);
		else if (DB_AWAY(e)) {
			dispatch_trouble(e, probe);
			dispatch_spool(r, p, rt, db_errmsg());
		} else if (e != DB_OK)
			dispatch_keep_failed(r, p, rt, db_errmsg());
		if (!DB_AWAY(e))
			dispatch_went_through(t0, probe);
		return;
	}
	if ((e = db_commit()) != DB_OK) {
		/*
		 * Whether a commit that lost its connection happened is
		 * unknown: spooling is safe, the replay is idempotent.
		 */
		if (DB_AWAY(e)) {
			dispatch_trouble(e, probe);
			dispatch_spool(r, p, rt, db_errmsg());
		} else {
			log_warnx("%s: commit: %s", rt->name, db_errmsg());
			resp_error(p, 503, "database unavailable");
		}
		return;
	}
	dispatch_went_through(t0, probe);
}

/* The answer to a request that did not verify. */
static void
dispatch_refuse(struct req *r, struct resp *p, enum verdict v,
    const char *errstr)
{
	/* each verdict's status and cause, indexed by the verdict */
	static const struct {
		int			 status;
		enum reject_cause	 cause;
	} verdicts[VERIFY__MAX] = {
		[VERIFY_OK] = { 200, REJECT_NONE },
		[VERIFY_DENY] = { 401, REJECT_BAD_SIGNATURE },
		[VERIFY_FORBID] = { 403, REJECT_ADDRESS },
		[VERIFY_NOTFOUND] = { 404, REJECT_NOT_FOUND },
		[VERIFY_UNAVAILABLE] = { 503, REJECT_NONE },
		[VERIFY_PARSE] = { 401, REJECT_BAD_SIGNATURE },
		[VERIFY_EXPIRED] = { 401, REJECT_EXPIRED },
	};

	r->reject = verdicts[v].cause;
	resp_error(p, verdicts[v].status, "%s", errstr != NULL ? errstr :
	    "not authenticated");
}

/* Run one request through the fixed order above, filling p. */
static void
dispatch_run(struct req *r, struct resp *p, FCGX_Stream *in)
{
	const struct route	*rt;
	const char		*errstr = NULL;
	int			 status;
	size_t			 i;
	enum verdict		 v;

	if (req_parse_uri(r, &errstr) == -1) {
		r->reject = REJECT_MALFORMED;
		resp_error(p, 400, "%s", errstr);
		return;
	}
	rt = dispatch_match(routes, nroutes, r->path, r->method, r, &status,
	    p->allow, sizeof(p->allow));
	if (rt == NULL) {
		if (status == 405) {
			/* counted and logged under the route of the path */
			for (i = 0; i < nroutes && r->route == NULL; i++)
				if (dispatch_path_match(routes[i].path, r->path,
				    NULL))
					r->route = &routes[i];
			r->reject = REJECT_METHOD;
			resp_error(p, 405, "method %s not allowed",
			    req_method_name(r->method));
		} else {
			r->reject = REJECT_UNKNOWN_ROUTE;
			resp_error(p, 404, "unknown route");
		}
		return;
	}
	r->route = rt;
	/* not a webhook: each round trip its own deadline, not the budget */
	if (!(rt->flags & ROUTE_TX))
		db_set_deadline(0);
	/* The route's responder decides how success looks. */
	if (rt->responder == RESP_TWIML)
		twiml_init(&p->twiml);
	p->kind = rt->responder;
	if (r->body_kind == 0 || !(rt->bodies & r->body_kind)) {
		r->reject = REJECT_CONTENT_TYPE;
		resp_error(p, 415, "unsupported content type");
		return;
	}
	if ((status = req_read_body(r, in, (size_t)conf.max_body_bytes,
	    &errstr)) != 0) {
		r->reject = status == 413 ? REJECT_TOO_LARGE : REJECT_MALFORMED;
		resp_error(p, status, "%s", errstr);
		return;
	}
	if (r->body_kind == BODY_NONE && r->bodylen > 0 &&
	    !(rt->bodies & (BODY_FORM | BODY_JSON))) {
		r->reject = REJECT_CONTENT_TYPE;
		resp_error(p, 415, "this route takes no body");
		return;
	}
	v = rt->precheck != NULL ? rt->precheck(r, &errstr) : VERIFY_PARSE;
	if (v != VERIFY_OK && v != VERIFY_PARSE) {
		dispatch_refuse(r, p, v, errstr);
		return;
	}
	if (req_parse_body(r, &errstr) == -1) {
		r->reject = REJECT_MALFORMED;
		resp_error(p, 400, "malformed body: %s", errstr);
		return;
	}
	if (v == VERIFY_PARSE && (v = rt->verify(r, &errstr)) != VERIFY_OK) {
		dispatch_refuse(r, p, v, errstr);
		return;
	}
	/* verified as sent; then as text PostgreSQL takes (architecture.md §6) */
	req_fix_text(r, rt->flags & ROUTE_LATIN1);
	dispatch_handle(r, p, rt);
}

/*
 * Rejections are kept for the operator (telehookctl events rejections)
 * without their bodies, query strings or path parameters, with the
 * organization when it can be told.  They are written between requests,
 * so a refused request is not slowed by it; the queue is bounded, and a
 * full one drops (the log and /metrics keep all).
 *
 * A refusal no credential stands behind must not cost a row each (a
 * flood would write the table as fast as it sends): those are counted,
 * here and in rejection_counts per organization, cause and minute, and
 * only the first REJECT_SAMPLES of each are kept as rows.  A verified request's refusal (cross_tenant) is a row.
 */
#define REJECT_QUEUE	64
#define REJECT_SAMPLES	3
struct rejection {
	char		*route;		/* the route's name, or "-" */
	char		*shown;		/* the path, for the sample */
	int		 status;
	enum reject_cause cause;
	char		*client;
	char		*detail;
	char		*org;		/* a hint: an id, or NULL */
	char		*number;	/* a hint: a number we may own */
	long long	 minute;	/* since the epoch */
	long long	 count;
};
static struct rejection	 rejections[REJECT_QUEUE];
static int		 nrejections;

/* Rejections noted and not yet written. */
int
dispatch_rejections_waiting(void)
{
	return nrejections;
}

static int
dispatch_same(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

void
dispatch_note_rejection(struct req *r, int status, const char *detail)
{
	struct rejection	*j;
	const char		*org, *num, *route;
	const cJSON		*c;
	char			 e164[32], shown[200];
	long long		 minute = util_wall_us() / 60000000LL;
	int			 i;

	org = req_param(r, "organization_id");
	if (org == NULL && r->nargs > 0)
		org = r->args[0];
	if (!store_is_uuid(org))
		org = NULL;
	num = req_param(r, "To");
	if (num == NULL)
		num = req_param(r, "to");
	if (num == NULL && r->json != NULL &&
	    ((c = cJSON_GetObjectItemCaseSensitive(r->json, "call")) != NULL ||
	    (c = cJSON_GetObjectItemCaseSensitive(r->json,
	    "call_inbound")) != NULL) &&
	    cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c, "to_number")))
		num = cJSON_GetObjectItemCaseSensitive(c,
		    "to_number")->valuestring;
	num = num != NULL && phone_e164(num, e164, sizeof(e164)) == 0 ?
	    e164 : NULL;
	route = r->route != NULL ? r->route->name : "-";
	if (r->reject != REJECT_CROSS_TENANT)
		for (i = 0; i < nrejections; i++) {
			j = &rejections[i];
			if (j->count > 0 && j->cause == r->reject &&
			    j->status == status && j->minute == minute &&
			    strcmp(j->route, route) == 0 &&
			    dispatch_same(j->org, org) &&
			    dispatch_same(j->number, num)) {
				j->count++;
				return;
			}
		}
	if (nrejections == REJECT_QUEUE)
		return;
	j = &rejections[nrejections++];
	j->route = xstrdup(route);
	j->shown = xstrdup(r->route != NULL ? r->route->name :
	    req_shown_path(r->path, shown, sizeof(shown)));
	j->status = status;
	j->cause = r->reject;
	j->client = xstrdup(r->client_addr != NULL ? r->client_addr : "-");
	j->detail = xstrndup(detail, 300);
	j->org = org != NULL ? xstrdup(org) : NULL;
	j->number = num != NULL ? xstrdup(num) : NULL;
	j->minute = minute;
	j->count = r->reject == REJECT_CROSS_TENANT ? 0 : 1;
}

/* $1 organization hint, $2 number hint, then the row's own columns */
#define REJECT_ORG "coalesce((SELECT id FROM organizations WHERE id = " \
	"$1::uuid), (SELECT organization_id FROM phone_numbers WHERE " \
	"e164 = $2))"
#define REJECT_ADDR "CASE WHEN $6 ~ '^[0-9a-fA-F:.]+$' THEN $6::inet END"
static const struct db_stmt st_rejection = { "dispatch_rejection",
	"INSERT INTO rejections (organization_id, route, status, cause, "
	"client_addr, detail) VALUES (" REJECT_ORG ", $3, $4::smallint, $5, "
	REJECT_ADDR ", $7)", 7 };
/*
 * Counted per organization, cause and minute; a sample row while that
 * count was below $10.
 */
static const struct db_stmt st_rejection_count = { "dispatch_rejection_count",
	"WITH c AS (INSERT INTO rejection_counts AS k (organization_id, "
	"minute, cause, count) VALUES (" REJECT_ORG ", "
	"to_timestamp($8::bigint * 60), $5, $9::bigint) ON CONFLICT "
	"((coalesce(organization_id, '00000000-0000-0000-0000-000000000000'"
	"::uuid)), minute, cause) DO UPDATE SET count = k.count + "
	"excluded.count RETURNING k.organization_id, k.count - $9::bigint "
	"AS before) INSERT INTO rejections (organization_id, route, status, "
	"cause, client_addr, detail) SELECT c.organization_id, $3, "
	"$4::smallint, $5, " REJECT_ADDR ", $7 FROM c WHERE c.before < "
	"$10::int", 10 };

void
dispatch_flush_rejections(void)
{
	struct rejection	*j;
	const char		*p[10];
	char			 st[8], minute[24], count[24], samples[8];
	int			 i;

	snprintf(samples, sizeof(samples), "%d", REJECT_SAMPLES);
	for (i = 0; i < nrejections; i++) {
		j = &rejections[i];
		snprintf(st, sizeof(st), "%d", j->status);
		snprintf(minute, sizeof(minute), "%lld", j->minute);
		snprintf(count, sizeof(count), "%lld", j->count);
		p[0] = j->org;
		p[1] = j->number;
		p[2] = j->shown;
		p[3] = st;
		p[4] = metrics_cause_name(j->cause);
		p[5] = j->client;
		p[6] = j->detail;
		p[7] = minute;
		p[8] = count;
		p[9] = samples;
		if (db_exec(j->count > 0 ? &st_rejection_count : &st_rejection,
		    p, NULL) != DB_OK)
			log_debug("rejection not recorded: %s", db_errmsg());
		free(j->route);
		free(j->shown);
		free(j->client);
		free(j->detail);
		free(j->org);
		free(j->number);
	}
	nrejections = 0;
}

/*
 * How long the request waited for a worker: nginx says when it handed
 * it on (TELEHOOK_SENT_AT, its $msec: telehook-webhook.conf), and the
 * answer budget runs from then.  0 if not said, or if the clocks
 * disagree (nginx on another host).
 */
static long long
dispatch_queued(struct req *r)
{
	const char	*s;
	char		*end;
	double		 t;
	long long	 w;

	if ((s = req_env(r, "TELEHOOK_SENT_AT")) == NULL)
		return 0;
	t = strtod(s, &end);
	if (end == s || *end != '\0')
		return 0;
	w = util_wall_us() - (long long)(t * 1e6);
	return w > 0 && w < dispatch_budget_us() * 10 ? w : 0;
}

/* One FastCGI request: the request owns its memory and frees it here. */
void
dispatch_request(FCGX_Request *fr)
{
	struct req	 r;
	struct resp	 p;
	struct buf	 out;
	long long	 us;
	int		 status;
	char		 shown[200];

	req_init(&r, fr->envp);
	resp_init(&p, RESP_JSON);
	buf_init(&out);
	shown[0] = '\0';
	r.client_addr = req_client_addr(req_env(&r, "REMOTE_ADDR"),
	    req_header(&r, "X-Forwarded-For"), &conf.proxies);
	r.queued_us = dispatch_queued(&r);
	db_set_deadline(dispatch_deadline(r.start_us - r.queued_us));
	dispatch_run(&r, &p, fr->in);
	db_set_deadline(0);
	if (p.stream.url != NULL && p.error == NULL)
		status = recording_stream(&p, r.method == METHOD_HEAD,
		    fr->out);
	else {
		status = resp_render(&p, r.method == METHOD_HEAD, &out);
		if (out.failed ||
		    FCGX_PutStr(out.data, (int)out.len, fr->out) < 0)
			log_warnx("%s: could not write the answer to %s",
			    log_esc(req_shown_path(r.path, shown,
			    sizeof(shown))), log_esc(r.client_addr));
	}
	us = util_now_us() - r.start_us;
	metrics_request(r.route, status, us);
	/*
	 * One line a request: who, what, whose, how it ended, how long, and
	 * the provider key; never a secret or a message body.
	 */
	if (p.error != NULL) {
		/*
		 * The path alone: a query string carries URL tokens and, from
		 * VoIP.ms, message text and numbers; a path parameter after
		 * ';' may carry a token too (architecture.md §5).
		 */
		metrics_reject(r.reject);
		log_info("%s %s %s org=%s %d %lldus: %s%s%s",
		    log_esc(r.client_addr), log_esc(r.method_str),
		    log_esc(req_shown_path(r.path, shown, sizeof(shown))),
		    log_esc(r.log_org),
		    status, us, log_esc(p.error), r.reject ? " cause=" : "",
		    r.reject ? metrics_cause_name(r.reject) : "");
		if (r.reject != REJECT_NONE)
			dispatch_note_rejection(&r, status, p.error);
	} else
		log_info("%s %s %s org=%s %d %lldus key=%s",
		    log_esc(r.client_addr), log_esc(r.method_str),
		    r.route != NULL ? r.route->name : "-", log_esc(r.log_org),
		    status, us, log_esc(r.log_key));
	buf_free(&out);
	resp_free(&p);
	req_free(&r);
}
