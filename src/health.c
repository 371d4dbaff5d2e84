/*
 * health.c: GET /healthz for load balancers and monitoring.  "ok" when
 * the database answers and nothing waits in the spool; "degraded" while
 * either is not so; 503 only when no webhook could be taken at all,
 * because neither the database nor the spool accepts a write.
 */
#include <string.h>

#include "extern.h"

static const char *const replica_states[] = {
	[DB_REPLICA_NONE] = "none",
	[DB_REPLICA_OK] = "ok",
	[DB_REPLICA_BEHIND] = "behind",
	[DB_REPLICA_DOWN] = "down",
};

static const struct db_stmt health_ping = { "health_ping", "SELECT 1", 0 };

enum db_err
health_handle(struct req *r, struct resp *p)
{
	cJSON		*o;
	const char	*spool;
	long		 depth, quarantined;
	long long	 oldest, age = 0;
	int		 db_up, ok;

	(void)r;
	db_up = db_exec(&health_ping, NULL, NULL) == DB_OK;
	depth = spool_depth(conf.spool_dir);
	quarantined = spool_quarantined(conf.spool_dir);
	if ((oldest = spool_oldest(conf.spool_dir)) > 0)
		age = (wall_us() - oldest) / 1000000;
	spool = spool_state(conf.spool_dir);
	/*
	 * ok: nothing waits, nothing set aside, the database answers and
	 * the breaker is closed.  503 only when neither the database nor
	 * the spool can take a webhook.
	 */
	ok = db_up && depth == 0 && quarantined == 0 &&
	    !breaker_is_open(now_us()) && strcmp(spool, "ok") == 0;
	if ((o = cJSON_CreateObject()) == NULL)
		return DB_EQUERY;
	cJSON_AddStringToObject(o, "status", ok ? "ok" : "degraded");
	cJSON_AddStringToObject(o, "database", db_up ? "ok" : "down");
	cJSON_AddNumberToObject(o, "spool_depth", depth < 0 ? 0 :
	    (double)depth);
	cJSON_AddNumberToObject(o, "spool_oldest_s", (double)age);
	cJSON_AddNumberToObject(o, "quarantined", (double)quarantined);
	cJSON_AddStringToObject(o, "spool", spool);
	cJSON_AddBoolToObject(o, "breaker_open", breaker_is_open(now_us()));
	/* the API's read replica: reported, not part of "status" */
	cJSON_AddStringToObject(o, "read_replica",
	    replica_states[db_replica_state()]);
	resp_set_json(p, !db_up && strcmp(spool, "ok") != 0 ? 503 : 200, o);
	return DB_OK;
}
