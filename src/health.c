/*
 * health.c: GET /healthz for load balancers and monitoring.  "ok" when
 * the database answers and nothing waits in the spool; "degraded" while
 * either is not so; 503 only when no webhook could be taken at all,
 * because neither the database nor the spool accepts a write.
 */
#include "extern.h"

static const struct db_stmt health_ping = { "health_ping", "SELECT 1", 0 };

int
health_handle(struct req *r, struct resp *p)
{
	cJSON	*o;
	int	 db_up;
	long	 depth;
	int	 spool_ok;

	(void)r;
	db_up = db_exec(&health_ping, NULL, NULL) == DB_OK;
	depth = spool_depth(conf.spool_dir);
	spool_ok = spool_writable(conf.spool_dir);
	if ((o = cJSON_CreateObject()) == NULL)
		return -1;
	cJSON_AddStringToObject(o, "status",
	    db_up && depth == 0 ? "ok" : "degraded");
	cJSON_AddStringToObject(o, "database", db_up ? "ok" : "down");
	cJSON_AddNumberToObject(o, "spool_depth", depth < 0 ? 0 :
	    (double)depth);
	resp_set_json(p, !db_up && !spool_ok ? 503 : 200, o);
	return 0;
}
