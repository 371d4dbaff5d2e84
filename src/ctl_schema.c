/*
 * ctl_schema.c: telehookctl migrate and check-config.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"
#include "ctl.h"

/*
 * migrate: apply every sql/NNN_*.sql not yet in schema_migrations, in
 * order, each in its own transaction, under a transaction-scoped
 * advisory lock so two operators cannot run one at once (and so it
 * works through a transaction pooler, which keeps no session lock).
 */
static int
sql_filter(const struct dirent *de)
{
	size_t	 n = strlen(de->d_name);

	return n > 4 && isdigit((unsigned char)de->d_name[0]) &&
	    strcmp(de->d_name + n - 4, ".sql") == 0;
}

#define MIGRATE_LOCK	"127961331478379"

/*
 * Run one SQL file in the caller's transaction (under the migration
 * lock); with a version, record it in schema_migrations, unless an
 * earlier migrate has applied it.  1 if applied, 0 if it was already.
 */
static int
apply_sql(const char *path, const char *version)
{
	struct db_res	 res;
	const char	*p[1];
	char		*sql;
	enum db_err	 e;

	if (version != NULL) {
		p[0] = version;
		ctl_q("schema_migrations", "SELECT 1 FROM schema_migrations "
		    "WHERE version = $1", 1, p, &res);
		if (res.nrows > 0) {
			db_res_free(&res);
			return 0;
		}
		db_res_free(&res);
	}
	sql = ctl_read_file(path, 16 * 1024 * 1024);
	if ((e = db_run(sql)) != DB_OK) {
		db_rollback();
		ctl_die(e == DB_ECONN ? EX_UNAVAIL_ : EX_SOFTWARE_,
		    "%s: %s", path, db_errmsg());
	}
	free(sql);
	if (version != NULL) {
		p[0] = version;
		ctl_q("schema_migrations", "INSERT INTO schema_migrations "
		    "(version) VALUES ($1)", 1, p, NULL);
	}
	return 1;
}

static int
ctl_migrate(int argc, char **argv)
{
	const struct ctl_opt	 opts[] = { { "dir", &ctl_sqldir, 0 },
				    { NULL, NULL, 0 } };
	struct dirent		**list;
	struct db_res		 res;
	cJSON			*o, *applied;
	char			 version[256], *path;
	const char		*latest;
	enum db_err		 e;
	int			 i, n;

	(void)ctl_parse_opts(argc, argv, opts);
	if ((n = scandir(ctl_sqldir, &list, sql_filter, alphasort)) == -1)
		ctl_die(EX_NOINPUT_, "%s: %s", ctl_sqldir, strerror(errno));
	ctl_q("schema_migrations", "CREATE TABLE IF NOT EXISTS schema_migrations "
	    "(version text PRIMARY KEY, "
	    "applied_at timestamptz NOT NULL DEFAULT now())", 0, NULL, NULL);
	o = cJSON_CreateObject();
	applied = cJSON_AddArrayToObject(o, "applied");
	/*
	 * One transaction: the new migrations and the functions as they
	 * are now (sql/functions.sql, every time: a function is changed
	 * there, not by a new migration) commit together, so the workers
	 * still running never run a migration's placeholder for a trigger's
	 * function (sql/011, sql/014), and a failure leaves nothing half
	 * done.
	 */
	if ((e = db_begin()) != DB_OK)
		ctl_die_db(e, "begin");
	ctl_q("lock", "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")", 0, NULL,
	    NULL);
	for (i = 0; i < n; i++) {
		snprintf(version, sizeof(version), "%s", list[i]->d_name);
		version[strlen(version) - 4] = '\0';
		xasprintf(&path, "%s/%s", ctl_sqldir, list[i]->d_name);
		if (apply_sql(path, version))
			cJSON_AddItemToArray(applied,
			    cJSON_CreateString(version));
		free(path);
	}
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
	xasprintf(&path, "%s/functions.sql", ctl_sqldir);
	if (access(path, F_OK) == 0)
		(void)apply_sql(path, NULL);
	free(path);
	if ((e = db_commit()) != DB_OK)
		ctl_die_db(e, "commit");
	if (!ctl_json_out)
		for (i = 0; i < cJSON_GetArraySize(applied); i++)
			printf("applied %s\n", cJSON_GetArrayItem(applied,
			    i)->valuestring);
	ctl_q("schema_migrations", "SELECT max(version) AS version FROM "
	    "schema_migrations", 0, NULL, &res);
	latest = db_val(&res, 0, "version");
	cJSON_AddItemToObject(o, "version", ctl_json_value(latest, 's'));
	if (ctl_json_out)
		ctl_json_print(o);
	else {
		if (cJSON_GetArraySize(applied) == 0)
			printf("schema up to date (%s)\n",
			    latest != NULL ? latest : "empty");
		cJSON_Delete(o);
	}
	db_res_free(&res);
	return 0;
}

/* check-config: the file parsed (or we would not be here); the database. */
static int
ctl_check_config(int argc, char **argv)
{
	struct db_res	 res;
	enum db_err	 e;
	const char	*version = NULL;
	cJSON		*o;

	(void)ctl_parse_opts(argc, argv, NULL);
	if ((e = db_connect()) != DB_OK)
		ctl_die_db(e, "connect");
	e = db_query("SELECT max(version) AS version FROM schema_migrations",
	    0, NULL, &res);
	if (e == DB_OK)
		version = db_val(&res, 0, "version");
	else if (e == DB_ECONN)
		ctl_die_db(e, "schema");
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "config", conf.path);
		cJSON_AddStringToObject(o, "database", "ok");
		cJSON_AddItemToObject(o, "schema", ctl_json_value(version, 's'));
		ctl_json_print(o);
	} else
		printf("%s: configuration OK\ndatabase: reachable, schema %s\n",
		    conf.path, version ? version :
		    "not migrated (run telehookctl migrate)");
	if (e == DB_OK)
		db_res_free(&res);
	return version != NULL ? 0 : EX_UNAVAIL_;
}


const struct ctl_cmd ctl_schema_cmds[] = {
	{ "migrate", 0, 0, 1, "migrate [--dir DIR]", ctl_migrate },
	{ "check-config", 0, 0, 0, "check-config", ctl_check_config },
	{ NULL, 0, 0, 0, NULL, NULL }
};
