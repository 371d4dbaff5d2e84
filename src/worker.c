/*
 * worker.c: what a worker does besides answering (architecture.md §6):
 * replay a spooled or stored request through its route's own handler,
 * and between requests (and every idle moment) keep the cache fresh,
 * write the rejections noted, and drain the spool.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

/*
 * Replay one spooled request through its route's handler, in one
 * transaction whose th_now() is the time it was received.
 */
static const struct db_stmt st_replay_now = { "dispatch_replay_now",
	"SELECT set_config('telehook.now', "
	"to_timestamp($1::double precision / 1e6)::text, true)", 1 };

int
worker_replay(const struct spooled *s, const char **why)
{
	struct req		 r;
	struct resp		 p;
	struct replay		 rp;
	const struct route	*rt;
	const char		*errstr;
	const char		*params[1];
	char			 ts[24];
	int			 status, rc = REPLAY_FAILED;
	enum db_err		 e;

	*why = NULL;
	req_init(&r, s->envp);
	resp_init(&p, RESP_JSON);
	memset(&rp, 0, sizeof(rp));
	rp.received_us = s->received_us;
	rp.answer = s->answer;
	r.replay = &rp;
	r.received_us = s->received_us;
	r.client_addr = xstrdup(s->client);
	r.body = xmalloc(s->bodylen + 1);
	memcpy(r.body, s->body, s->bodylen);
	r.body[s->bodylen] = '\0';
	r.bodylen = s->bodylen;
	if (req_parse_uri(&r, &errstr) == -1) {
		*why = errstr;
		goto done;
	}
	rt = dispatch_match(routes, nroutes, r.path, r.method, &r, &status,
	    NULL, 0);
	if (rt == NULL || !(rt->flags & ROUTE_TX)) {
		*why = "no route takes this request any more";
		goto done;
	}
	r.route = rt;
	resp_free(&p);
	resp_init(&p, rt->responder);
	if (req_parse_body(&r, &errstr) == -1) {
		*why = errstr;
		goto done;
	}
	req_fix_text(&r, rt->flags & ROUTE_LATIN1);
	db_clear();
	if ((e = db_begin()) != DB_OK) {
		rc = DB_AWAY(e) ? REPLAY_AWAY : REPLAY_FAILED;
		*why = db_errmsg();
		goto done;
	}
	store_set_rederive(s->rederive);
	snprintf(ts, sizeof(ts), "%lld", s->received_us);
	params[0] = ts;
	if (s->scope != NULL)
		r.scope_org = xstrdup(s->scope);
	if ((e = db_exec(&st_replay_now, params, NULL)) == DB_OK &&
	    (e = dispatch_scope(r.scope_org)) == DB_OK)
		e = rt->handle(&r, &p);
	if (e != DB_OK || p.error != NULL) {
		db_rollback();
		rc = DB_AWAY(e) ? REPLAY_AWAY : REPLAY_FAILED;
		*why = p.error != NULL ? "the handler refused it" :
		    db_errmsg();
		/*
		 * Content the database (or the handler) refuses is kept as a
		 * failed event, as live, not quarantined: quarantine is for
		 * files that cannot be read (architecture.md §6).  A re-derived event
		 * is one already: its replay just reports.
		 */
		if (rc == REPLAY_FAILED && e != DB_ESCOPE && s->rederive == 0) {
			char	 key[48];

			store_set_rederive(0);
			e = dispatch_store_failed(&r, rt, *why, key,
			    sizeof(key));
			rc = e == DB_OK ? REPLAY_REFUSED : DB_AWAY(e) ?
			    REPLAY_AWAY : REPLAY_FAILED;
			*why = e == DB_OK ? "kept as a failed event" :
			    db_errmsg();
			goto done;
		}
		if (e == DB_ESCOPE) {
			/*
			 * Verified by one organization's credential while
			 * the database was away, routed to another: refused
			 * as it would have been live, and kept as a rejection.
			 */
			rc = REPLAY_REFUSED;
			*why = "cross_tenant";
			r.reject = REJECT_CROSS_TENANT;
			metrics_reject(r.reject);
			dispatch_note_rejection(&r, 403, "routed to an "
			    "organization other than the credential's own "
			    "(replayed from the spool)");
			dispatch_flush_rejections();
		}
		goto done;
	}
	if ((e = db_commit()) != DB_OK) {
		rc = DB_AWAY(e) ? REPLAY_AWAY : REPLAY_FAILED;
		*why = db_errmsg();
		goto done;
	}
	rc = rp.duplicate ? REPLAY_DUPLICATE : REPLAY_OK;
done:
	store_set_rederive(0);
	resp_free(&p);
	req_free(&r);
	return rc;
}

/*
 * Between requests: keep the organization cache fresh and, once the
 * database is back, drain a little of the spool.  At most one check a
 * second, and a bounded batch, so a worker is soon back at accept.
 */
#define IDLE_EVERY_US	(1000 * 1000)
#define IDLE_BATCH	500
#define IDLE_BUDGET_US	(250 * 1000)
#define IDLE_PROBE_US	(1000 * 1000)	/* half-open unprobed this long */

/*
 * The breaker's probe when no request makes one (a quiet site): can
 * the database be written to, and is it quick?  0 if it is closed now.
 */
static const struct db_stmt st_probe = { "worker_probe",
	"SELECT current_setting('transaction_read_only') AS read_only", 0 };

static int
worker_probe(void)
{
	struct db_res	 res;
	enum db_err	 e;
	long long	 t0 = util_now_us();

	if ((e = db_exec(&st_probe, NULL, &res)) == DB_OK) {
		if (db_val(&res, 0, "read_only") != NULL &&
		    strcmp(db_val(&res, 0, "read_only"), "on") == 0)
			e = DB_EREADONLY;
		db_res_free(&res);
	}
	if (e != DB_OK)
		dispatch_trouble(DB_AWAY(e) ? e : DB_ECONN, 1);
	else
		dispatch_went_through(t0, 1);
	return breaker_reason() == BREAKER_NONE ? 0 : -1;
}

void
worker_idle(void)
{
	static long long	 last;
	static int		 more;	/* the last batch left files */
	struct drain_stats	 st;
	enum breaker_pass	 pass;
	enum db_err		 e;
	long long		 now = util_now_us();

	if (dispatch_rejections_waiting() > 0 &&
	    breaker_reason() == BREAKER_NONE) {
		/* requests wait meanwhile: what does not fit is dropped */
		db_set_deadline(now + dispatch_budget_us() / 2);
		if (db_connect() == DB_OK)
			dispatch_flush_rejections();
		db_set_deadline(0);
	}
	if (!more && now - last < IDLE_EVERY_US)
		return;
	last = now;
	more = 0;
	/*
	 * An idle worker probes only when no request has for a while (a
	 * quiet site): a request's probe is a real write, its own a read.
	 * Never longer than a budget past the drain's own: requests wait
	 * in the listen queue meanwhile.
	 */
	if ((pass = breaker_pass(now, IDLE_PROBE_US, dispatch_budget_us())) ==
	    BREAKER_SPOOL)
		return;
	db_set_deadline(now + IDLE_BUDGET_US + dispatch_budget_us());
	if ((pass == BREAKER_PROBE && worker_probe() == -1) ||
	    db_connect() != DB_OK)
		goto done;
	(void)cache_refresh(0);
	if (spool_depth(conf.spool_dir) <= 0)
		goto done;
	if (spool_drain(conf.spool_dir, IDLE_BATCH, IDLE_BUDGET_US, &st) != 0)
		goto done;
	/* a replay that found the database slow or read-only says so */
	if (st.stopped && (e = db_last_error()) != DB_OK)
		dispatch_trouble(e, 0);
	db_set_deadline(0);
	/* while it goes well, the next idle moment takes the next batch */
	more = st.left > 0 && !st.stopped;
	if (st.replayed + st.duplicates + st.quarantined + st.refused > 0)
		log_notice("spool: drained %d, %d already stored, %d "
		    "quarantined, %d refused or failed, %d left", st.replayed,
		    st.duplicates, st.quarantined, st.refused, st.left);
	return;
done:
	db_set_deadline(0);
}
