/*
 * health.c: GET /healthz for load balancers and monitoring.  "ok" when
 * the database answers and nothing waits in the spool; "degraded" while
 * either is not so; 503 only when no webhook could be taken at all,
 * because neither the database nor the spool accepts a write.
 *
 * It answers within HEALTH_US whatever the database does: while the
 * pool's breaker is open or half-open its reason is the database's
 * state (slow, down, read_only) and nothing is asked; it stays "slow"
 * for HEALTH_SLOW_US after it last opened as slow (a database a little
 * slow for the offered rate passes each probe and is slow again at
 * once); otherwise one round trip with its own deadline, "unknown" if
 * that passes.
 *
 * It is asked on a listener of its own, apart from the pool's queue
 * (healthd.c).
 */
#include <string.h>

#include "extern.h"

static const char *const replica_states[] = {
	[DB_REPLICA_NONE] = "none",
	[DB_REPLICA_OK] = "ok",
	[DB_REPLICA_BEHIND] = "behind",
	[DB_REPLICA_DOWN] = "down",
};

#define HEALTH_US	(150 * 1000)
/* slow that long after the breaker last opened as slow, closed or not */
#define HEALTH_SLOW_US	(2000 * 1000)

static const struct db_stmt health_ping = { "health_ping",
	"SELECT current_setting('transaction_read_only') AS read_only", 0 };

/* What the database is: ok, down, slow, read_only or unknown. */
static const char *
health_database(void)
{
	struct db_res	 res;
	enum breaker_reason why;
	enum db_err	 e;
	const char	*state, *v;

	if ((why = breaker_reason()) != BREAKER_NONE)
		return breaker_name(why);
	if (breaker_slow_since(util_now_us() - HEALTH_SLOW_US))
		return breaker_name(BREAKER_SLOW);
	e = db_exec(&health_ping, NULL, &res);
	if (e == DB_EDEADLINE)
		return "unknown";
	if (e != DB_OK)
		return "down";
	state = (v = db_val(&res, 0, "read_only")) != NULL &&
	    strcmp(v, "on") == 0 ? "read_only" : "ok";
	db_res_free(&res);
	return state;
}

enum db_err
health_handle(struct req *r, struct resp *p)
{
	cJSON		*o;
	const char	*spool, *database;
	long		 depth, quarantined;
	long long	 oldest, age = 0;
	int		 db_up, ok;

	(void)r;
	/* the database's answer and the replica's, within HEALTH_US */
	db_set_deadline(util_now_us() + HEALTH_US);
	database = health_database();
	db_up = strcmp(database, "ok") == 0;
	depth = spool_depth(conf.spool_dir);
	quarantined = spool_quarantined(conf.spool_dir);
	if ((oldest = spool_oldest(conf.spool_dir)) > 0)
		age = (util_wall_us() - oldest) / 1000000;
	spool = spool_state(conf.spool_dir);
	/*
	 * ok: nothing waits, nothing set aside, the database answers and
	 * the breaker is closed.  503 only when neither the database nor
	 * the spool can take a webhook.
	 */
	ok = db_up && depth == 0 && quarantined == 0 &&
	    !breaker_is_open(util_now_us()) && strcmp(spool, "ok") == 0;
	if ((o = cJSON_CreateObject()) == NULL) {
		db_set_deadline(0);
		return DB_EQUERY;
	}
	cJSON_AddStringToObject(o, "status", ok ? "ok" : "degraded");
	cJSON_AddStringToObject(o, "database", database);
	cJSON_AddNumberToObject(o, "spool_depth", depth < 0 ? 0 :
	    (double)depth);
	cJSON_AddNumberToObject(o, "spool_oldest_s", (double)age);
	cJSON_AddNumberToObject(o, "quarantined", (double)quarantined);
	cJSON_AddStringToObject(o, "spool", spool);
	cJSON_AddBoolToObject(o, "breaker_open", breaker_is_open(util_now_us()));
	cJSON_AddStringToObject(o, "breaker_reason",
	    breaker_name(breaker_reason()));
	/* the API's read replica: reported, not part of "status" */
	cJSON_AddStringToObject(o, "read_replica",
	    replica_states[db_replica_state()]);
	db_set_deadline(0);
	resp_set_json(p, !db_up && strcmp(spool, "ok") != 0 ? 503 : 200, o);
	return DB_OK;
}
