/*
 * telehookctl.c: the operator's tool.  One table of commands; each
 * command parses its own options, validates everything before it writes,
 * and prints a human table or, with --json, one JSON document.  Exit
 * codes follow sysexits(3): 64 usage, 65 bad input, 69 database
 * unreachable, 70 internal error, 78 configuration.
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

struct ctl_cmd {
	const char	*name;		/* one or two words */
	int		 minargs;	/* operands after the words */
	int		 maxargs;	/* -1: no limit */
	int		 needs_db;
	const char	*usage;
	int		(*fn)(int, char **);
};

static int	 json_out;
static const char *ctl_sqldir = TELEHOOK_SQLDIR;

static int	 ctl_migrate(int, char **);
static int	 ctl_check_config(int, char **);
static int	 ctl_org_add(int, char **);
static int	 ctl_org_list(int, char **);
static int	 ctl_org_show(int, char **);
static int	 ctl_org_set(int, char **);
static int	 ctl_number_add(int, char **);
static int	 ctl_number_list(int, char **);
static int	 ctl_number_remove(int, char **);
static int	 ctl_user_add(int, char **);
static int	 ctl_user_list(int, char **);
static int	 ctl_token_create(int, char **);
static int	 ctl_token_list(int, char **);
static int	 ctl_token_revoke(int, char **);
static int	 ctl_reply_add(int, char **);
static int	 ctl_reply_list(int, char **);
static int	 ctl_reply_remove(int, char **);
static int	 ctl_secret_set(int, char **);
static int	 ctl_secret_list(int, char **);
static int	 ctl_secret_remove(int, char **);
static int	 ctl_events_replay(int, char **);
static int	 ctl_block_add(int, char **);
static int	 ctl_block_list(int, char **);
static int	 ctl_closure_add(int, char **);
static int	 ctl_closure_list(int, char **);
static int	 ctl_closure_remove(int, char **);
static int	 ctl_block_remove(int, char **);
static int	 ctl_campaign_add(int, char **);
static int	 ctl_campaign_import(int, char **);
static int	 ctl_campaign_show(int, char **);
static int	 ctl_outbox_send(int, char **);
static int	 ctl_outbox_list(int, char **);
static int	 ctl_events_list(int, char **);
static int	 ctl_events_show(int, char **);
static int	 ctl_events_assign(int, char **);
static int	 ctl_events_rejections(int, char **);
static int	 ctl_prune(int, char **);
static int	 ctl_send(int, char **);
static int	 ctl_spool_status(int, char **);
static int	 ctl_spool_drain(int, char **);

/* Two-word commands before one-word ones with the same first word. */
static const struct ctl_cmd ctl_cmds[] = {
	{ "migrate", 0, 0, 1, "migrate [--dir DIR]", ctl_migrate },
	{ "check-config", 0, 0, 0, "check-config", ctl_check_config },
	{ "org add", 1, 1, 1, "org add NAME [--id UUID] [--timezone TZ]",
	    ctl_org_add },
	{ "org list", 0, 0, 1, "org list", ctl_org_list },
	{ "org show", 1, 1, 1, "org show ORG", ctl_org_show },
	{ "org set", 2, -1, 1, "org set ORG KEY=VALUE ...", ctl_org_set },
	{ "number add", 2, 2, 1,
	    "number add ORG E164 [--provider twilio|retell|voipms]",
	    ctl_number_add },
	{ "number list", 0, 1, 1, "number list [ORG]", ctl_number_list },
	{ "number remove", 1, 1, 1, "number remove E164", ctl_number_remove },
	{ "user add", 2, 2, 1, "user add ORG EMAIL [--name NAME]",
	    ctl_user_add },
	{ "user list", 1, 1, 1, "user list ORG", ctl_user_list },
	{ "token create", 1, 1, 1, "token create ORG [--name NAME]",
	    ctl_token_create },
	{ "token list", 1, 1, 1, "token list ORG", ctl_token_list },
	{ "token revoke", 1, 1, 1, "token revoke TOKEN_ID", ctl_token_revoke },
	{ "reply add", 1, 1, 1, "reply add ORG --keywords a,b --text TEXT "
	    "[--channel sms|voice]", ctl_reply_add },
	{ "reply list", 1, 1, 1, "reply list ORG", ctl_reply_list },
	{ "reply remove", 1, 1, 1, "reply remove ID", ctl_reply_remove },
	{ "secret set", 2, 2, 1, "secret set ORG PROVIDER [--account ID] "
	    "< secret", ctl_secret_set },
	{ "secret list", 0, 1, 1, "secret list [ORG]", ctl_secret_list },
	{ "secret remove", 2, 2, 1, "secret remove ORG PROVIDER [--account ID]",
	    ctl_secret_remove },
	{ "block add", 2, 2, 1, "block add ORG E164", ctl_block_add },
	{ "block list", 1, 1, 1, "block list ORG", ctl_block_list },
	{ "block remove", 2, 2, 1, "block remove ORG E164", ctl_block_remove },
	{ "closure add", 2, 2, 1, "closure add ORG DATE [--until DATE] "
	    "[--note TEXT]", ctl_closure_add },
	{ "closure list", 1, 1, 1, "closure list ORG", ctl_closure_list },
	{ "closure remove", 1, 1, 1, "closure remove ID", ctl_closure_remove },
	{ "campaign add", 2, 2, 1, "campaign add ORG NAME", ctl_campaign_add },
	{ "campaign import", 2, 2, 1, "campaign import CAMPAIGN FILE.csv",
	    ctl_campaign_import },
	{ "campaign show", 1, 1, 1, "campaign show CAMPAIGN",
	    ctl_campaign_show },
	{ "outbox send", 0, 0, 1, "outbox send", ctl_outbox_send },
	{ "outbox list", 0, 0, 1, "outbox list [--state STATE]",
	    ctl_outbox_list },
	{ "events list", 0, 0, 1, "events list [--org ORG] [--unrouted] "
	    "[--failed] [--since TIME] [--limit N]", ctl_events_list },
	{ "events replay", 0, 1, 1, "events replay ID | --failed | --since "
	    "TIME", ctl_events_replay },
	{ "events show", 1, 1, 1, "events show ID", ctl_events_show },
	{ "events assign", 2, 2, 1, "events assign ID ORG", ctl_events_assign },
	{ "events rejections", 0, 0, 1, "events rejections [--org ORG] "
	    "[--since TIME] [--limit N]", ctl_events_rejections },
	{ "prune", 0, 0, 1, "prune --older-than DAYS [--redact]", ctl_prune },
	{ "send", 2, 2, 0, "send PROVIDER EVENT --url URL [--org ORG] "
	    "[--to E164] [--from E164] [--id ID]", ctl_send },
	{ "spool status", 0, 0, 0, "spool status", ctl_spool_status },
	{ "spool drain", 0, 0, 1, "spool drain", ctl_spool_drain },
	{ NULL, 0, 0, 0, NULL, NULL }
};

static void NORETURN
usage(void)
{
	const struct ctl_cmd	*c;

	fprintf(stderr, "usage: telehookctl [-c file] [--json] command ...\n"
	    "commands:\n");
	for (c = ctl_cmds; c->name != NULL; c++)
		fprintf(stderr, "\t%s\n", c->usage);
	exit(EX_USAGE_);
}

/* A one-line message on stderr, then exit with code. */
static void NORETURN PRINTFLIKE(2, 3)
die(int code, const char *fmt, ...)
{
	va_list	 ap;

	fprintf(stderr, "telehookctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* The exit for a failed database call. */
static void NORETURN
die_db(enum db_err e, const char *what)
{
	if (e == DB_ECONN)
		die(EX_UNAVAIL_, "database unreachable: %s", db_errmsg());
	if (e == DB_ETIMEOUT)
		die(EX_TEMPFAIL_, "%s: statement timed out", what);
	die(EX_SOFTWARE_, "%s: %s", what, db_errmsg());
}

/* Run sql; die on failure.  Caller frees *res. */
static void
q(const char *what, const char *sql, int n, const char *const *params,
    struct db_res *res)
{
	enum db_err	 e;

	if ((e = db_query(sql, n, params, res)) != DB_OK)
		die_db(e, what);
}

/*
 * Output.  Columns are "name" for a string, "name:n" for a number and
 * "name:b" for a boolean; the suffix only shapes JSON.
 */
static void
col_split(const char *col, char *name, size_t len, char *type)
{
	const char	*colon = strchr(col, ':');
	size_t		 n = colon ? (size_t)(colon - col) : strlen(col);

	if (n >= len)
		n = len - 1;
	memcpy(name, col, n);
	name[n] = '\0';
	*type = colon ? colon[1] : 's';
}

static cJSON *
json_value(const char *v, char type)
{
	if (v == NULL)
		return cJSON_CreateNull();
	if (type == 'n')
		return cJSON_CreateNumber(strtod(v, NULL));
	if (type == 'b')
		return cJSON_CreateBool(strcmp(v, "t") == 0);
	return cJSON_CreateString(v);
}

static cJSON *
json_row(const struct db_res *res, int row, const char *const *cols)
{
	cJSON	*o = cJSON_CreateObject();
	char	 name[64], type;
	int	 j;

	for (j = 0; cols[j] != NULL && j < res->ncols; j++) {
		col_split(cols[j], name, sizeof(name), &type);
		cJSON_AddItemToObject(o, name,
		    json_value(db_get(res, row, j), type));
	}
	return o;
}

/* Print and free a JSON document. */
static void
json_print(cJSON *o)
{
	char	*s;

	if ((s = cJSON_PrintUnformatted(o)) == NULL)
		die(EX_SOFTWARE_, "out of memory");
	printf("%s\n", s);
	cJSON_free(s);
	cJSON_Delete(o);
}

/* All rows: {"key":[{...}, ...]}, or an aligned table with a header. */
static void
print_rows(const char *key, const struct db_res *res,
    const char *const *cols)
{
	cJSON	*o, *a;
	char	 name[64], type;
	int	 i, j, ncols;
	size_t	*w;
	char	**vis;
	const char *v;

	for (ncols = 0; cols[ncols] != NULL; ncols++)
		;
	if (ncols > res->ncols && res->ncols > 0)
		ncols = res->ncols;
	if (json_out) {
		o = cJSON_CreateObject();
		a = cJSON_AddArrayToObject(o, key);
		for (i = 0; i < res->nrows; i++)
			cJSON_AddItemToArray(a, json_row(res, i, cols));
		json_print(o);
		return;
	}
	/* the table shows fields escaped (util_vis); --json stays exact */
	vis = xcalloc((size_t)res->nrows * (size_t)ncols + 1, sizeof(*vis));
	for (i = 0; i < res->nrows; i++)
		for (j = 0; j < ncols; j++)
			if ((v = db_get(res, i, j)) != NULL)
				vis[i * ncols + j] = util_vis(v);
	w = xcalloc((size_t)ncols, sizeof(*w));
	for (j = 0; j < ncols; j++) {
		col_split(cols[j], name, sizeof(name), &type);
		w[j] = strlen(name);
		for (i = 0; i < res->nrows; i++)
			if ((v = vis[i * ncols + j]) != NULL && strlen(v) > w[j])
				w[j] = strlen(v);
	}
	for (j = 0; j < ncols; j++) {
		col_split(cols[j], name, sizeof(name), &type);
		for (v = name; *v != '\0'; v++)
			putchar(toupper((unsigned char)*v));
		if (j + 1 < ncols)
			printf("%*s", (int)(w[j] - strlen(name) + 2), "");
	}
	putchar('\n');
	for (i = 0; i < res->nrows; i++) {
		for (j = 0; j < ncols; j++) {
			col_split(cols[j], name, sizeof(name), &type);
			v = vis[i * ncols + j];
			if (v == NULL)
				v = "-";
			else if (type == 'b' && (strcmp(v, "t") == 0 ||
			    strcmp(v, "f") == 0))
				v = strcmp(v, "t") == 0 ? "yes" : "no";
			if (j + 1 < ncols)
				printf("%-*s  ", (int)w[j], v);
			else
				printf("%s", v);
		}
		putchar('\n');
	}
	for (i = 0; i < res->nrows * ncols; i++)
		free(vis[i]);
	free(vis);
	free(w);
}

/* "name: value", the value escaped for the terminal. */
static void
print_vis(const char *name, const char *v)
{
	char	*e = util_vis(v != NULL ? v : "-");

	printf("%s: %s\n", name, e);
	free(e);
}

/* Row 0 as {...}, or as "name: value" lines. */
static void
print_object(const struct db_res *res, const char *const *cols)
{
	char	 name[64], type;
	int	 j;

	if (json_out) {
		json_print(json_row(res, 0, cols));
		return;
	}
	for (j = 0; cols[j] != NULL && j < res->ncols; j++) {
		col_split(cols[j], name, sizeof(name), &type);
		print_vis(name, db_get(res, 0, j));
	}
}

/* Reset getopt and parse command options; returns the operand index. */
struct ctl_opt {
	const char	*name;
	const char	**val;
	int		 flag;		/* takes no value; sets "yes" */
};

static int
parse_opts(int argc, char **argv, const struct ctl_opt *opts)
{
	struct option	 lo[8];
	int		 i, n, ch, idx;

	for (n = 0; opts != NULL && opts[n].name != NULL && n < 7; n++) {
		lo[n].name = opts[n].name;
		lo[n].has_arg = opts[n].flag ? no_argument :
		    required_argument;
		lo[n].flag = NULL;
		lo[n].val = 0;
	}
	memset(&lo[n], 0, sizeof(lo[n]));
	optind = 0;
	opterr = 0;
	/* Options may follow operands; "--" ends them, for a name that
	 * starts with '-'. */
	while ((ch = getopt_long(argc, argv, "", lo, &idx)) != -1) {
		if (ch != 0) {
			if (optopt != 0 && isprint(optopt))
				die(EX_USAGE_, "unknown option -%c", optopt);
			die(EX_USAGE_, "unknown or incomplete option %s",
			    argv[optind - 1]);
		}
		*opts[idx].val = opts[idx].flag ? "yes" : optarg;
	}
	(void)i;
	return optind;
}

/* The id of the organization named by arg (its UUID or its name). */
static char *
org_resolve(const char *arg)
{
	struct db_res	 res;
	const char	*p[1] = { arg };
	char		*id;

	q("organization", "SELECT id FROM organizations "
	    "WHERE id::text = lower($1) OR lower(name) = lower($1)", 1, p,
	    &res);
	if (res.nrows != 1)
		die(EX_DATAERR_, "no such organization: %s", arg);
	id = xstrdup(db_get(&res, 0, 0));
	db_res_free(&res);
	return id;
}

/*
 * The rows sql ($1: the organization's id) returns, for ORG in argv;
 * with optional, ORG may be left out and $1 is then NULL.
 */
static int
ctl_rows(int argc, char **argv, const char *what, const char *sql,
    const char *const *cols, int optional)
{
	struct db_res	 res;
	const char	*p[1] = { NULL };
	char		*id = NULL;
	int		 i;

	i = parse_opts(argc, argv, NULL);
	if (i < argc || !optional)
		p[0] = id = org_resolve(argv[i]);
	q(what, sql, 1, p, &res);
	print_rows(what, &res, cols);
	db_res_free(&res);
	free(id);
	return 0;
}

/* Is tz a time zone PostgreSQL knows? */
static int
tz_valid(const char *tz)
{
	struct db_res	 res;
	const char	*p[1] = { tz };
	int		 ok;

	q("time zone", "SELECT 1 FROM pg_timezone_names WHERE name = $1",
	    1, p, &res);
	ok = res.nrows > 0;
	db_res_free(&res);
	return ok;
}

/*
 * migrate: apply every sql/NNN_*.sql not yet in schema_migrations, in
 * order, each in its own transaction, under an advisory lock so two
 * operators cannot run it at once.
 */
static int
sql_filter(const struct dirent *de)
{
	size_t	 n = strlen(de->d_name);

	return n > 4 && isdigit((unsigned char)de->d_name[0]) &&
	    strcmp(de->d_name + n - 4, ".sql") == 0;
}

static char *
read_file(const char *path, size_t max)
{
	struct buf	 b;
	char		 chunk[8192];
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		die(EX_NOINPUT_, "%s: %s", path, strerror(errno));
	buf_init(&b);
	b.max = max;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(&b, chunk, (size_t)n);
	close(fd);
	if (n == -1 || b.failed)
		die(EX_NOINPUT_, "%s: %s", path, n == -1 ? strerror(errno) :
		    "too large");
	buf_putc(&b, '\0');
	return b.data;
}

static int
ctl_migrate(int argc, char **argv)
{
	const struct ctl_opt	 opts[] = { { "dir", &ctl_sqldir, 0 },
				    { NULL, NULL, 0 } };
	struct dirent		**list;
	struct db_res		 res;
	cJSON			*o, *applied;
	char			 version[256], *path, *sql;
	const char		*p[1];
	int			 i, n, count = 0;
	enum db_err		 e;

	(void)parse_opts(argc, argv, opts);
	if ((n = scandir(ctl_sqldir, &list, sql_filter, alphasort)) == -1)
		die(EX_NOINPUT_, "%s: %s", ctl_sqldir, strerror(errno));
	q("lock", "SELECT pg_advisory_lock(127961331478379)", 0, NULL, NULL);
	q("schema_migrations", "CREATE TABLE IF NOT EXISTS schema_migrations "
	    "(version text PRIMARY KEY, "
	    "applied_at timestamptz NOT NULL DEFAULT now())", 0, NULL, NULL);
	o = cJSON_CreateObject();
	applied = cJSON_AddArrayToObject(o, "applied");
	for (i = 0; i < n; i++) {
		snprintf(version, sizeof(version), "%s", list[i]->d_name);
		version[strlen(version) - 4] = '\0';
		p[0] = version;
		q("schema_migrations", "SELECT 1 FROM schema_migrations "
		    "WHERE version = $1", 1, p, &res);
		if (res.nrows > 0) {
			db_res_free(&res);
			continue;
		}
		db_res_free(&res);
		xasprintf(&path, "%s/%s", ctl_sqldir, list[i]->d_name);
		sql = read_file(path, 16 * 1024 * 1024);
		if ((e = db_begin()) != DB_OK)
			die_db(e, "begin");
		if ((e = db_run(sql)) != DB_OK) {
			db_rollback();
			die(e == DB_ECONN ? EX_UNAVAIL_ : EX_SOFTWARE_,
			    "%s: %s", path, db_errmsg());
		}
		q("schema_migrations", "INSERT INTO schema_migrations "
		    "(version) VALUES ($1)", 1, p, NULL);
		if ((e = db_commit()) != DB_OK)
			die_db(e, "commit");
		if (!json_out)
			printf("applied %s\n", version);
		cJSON_AddItemToArray(applied, cJSON_CreateString(version));
		count++;
		free(sql);
		free(path);
	}
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
	q("schema_migrations", "SELECT max(version) FROM schema_migrations",
	    0, NULL, &res);
	cJSON_AddItemToObject(o, "version", json_value(db_get(&res, 0, 0),
	    's'));
	if (json_out)
		json_print(o);
	else {
		if (count == 0)
			printf("schema up to date (%s)\n",
			    db_get(&res, 0, 0) ? db_get(&res, 0, 0) : "empty");
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

	(void)parse_opts(argc, argv, NULL);
	if ((e = db_connect()) != DB_OK)
		die_db(e, "connect");
	e = db_query("SELECT max(version) FROM schema_migrations", 0, NULL,
	    &res);
	if (e == DB_OK)
		version = db_get(&res, 0, 0);
	else if (e == DB_ECONN)
		die_db(e, "schema");
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "config", conf.path);
		cJSON_AddStringToObject(o, "database", "ok");
		cJSON_AddItemToObject(o, "schema", json_value(version, 's'));
		json_print(o);
	} else
		printf("%s: configuration OK\ndatabase: reachable, schema %s\n",
		    conf.path, version ? version :
		    "not migrated (run telehookctl migrate)");
	if (e == DB_OK)
		db_res_free(&res);
	return version != NULL ? 0 : EX_UNAVAIL_;
}

static const char *const org_cols[] = { "id", "name", "timezone",
    "greeting", "forward_to", "hours", "after_hours", "retell_agent_id",
    "twilio_account_sid", "agent_sip", "numbers:n", "users:n", "created_at",
    NULL };
#define ORG_SELECT \
	"SELECT o.id, o.name, o.timezone, o.greeting, o.forward_to, " \
	"o.hours, o.after_hours, o.retell_agent_id, o.twilio_account_sid, " \
	"o.agent_sip, " \
	"(SELECT count(*) FROM phone_numbers n WHERE n.organization_id = o.id), " \
	"(SELECT count(*) FROM users u WHERE u.organization_id = o.id), " \
	"th_iso(o.created_at) FROM organizations o "

static int
ctl_org_add(int argc, char **argv)
{
	const char	*id = NULL, *tz = "UTC";
	const struct ctl_opt opts[] = { { "id", &id, 0 }, { "timezone", &tz, 0 },
			    { NULL, NULL, 0 } };
	struct db_res	 res;
	const char	*p[3];
	int		 i;
	enum db_err	 e;
	cJSON		*o;

	i = parse_opts(argc, argv, opts);
	p[0] = argv[i];
	if (p[0][0] == '\0' || strlen(p[0]) > 200)
		die(EX_DATAERR_, "an organization name is 1 to 200 characters");
	if (id != NULL && !store_is_uuid(id))
		die(EX_DATAERR_, "--id %s is not a UUID", id);
	if (!tz_valid(tz))
		die(EX_DATAERR_, "unknown time zone %s", tz);
	p[1] = tz;
	p[2] = id;
	e = db_query("INSERT INTO organizations (name, timezone, id) "
	    "VALUES ($1, $2, coalesce($3::uuid, gen_random_uuid())) "
	    "RETURNING id", 3, p, &res);
	if (e == DB_EDUP)
		die(EX_DATAERR_, "an organization with that name or id "
		    "exists");
	if (e != DB_OK)
		die_db(e, "org add");
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", db_get(&res, 0, 0));
		cJSON_AddStringToObject(o, "name", argv[i]);
		cJSON_AddStringToObject(o, "timezone", tz);
		json_print(o);
	} else
		printf("%s\n", db_get(&res, 0, 0));
	db_res_free(&res);
	return 0;
}

static int
ctl_org_list(int argc, char **argv)
{
	static const char *const cols[] = { "id", "name", "timezone",
	    "numbers:n", "users:n", "created_at", NULL };
	struct db_res	 res;

	(void)parse_opts(argc, argv, NULL);
	q("org list", "SELECT o.id, o.name, o.timezone, "
	    "(SELECT count(*) FROM phone_numbers n "
	    "WHERE n.organization_id = o.id), "
	    "(SELECT count(*) FROM users u WHERE u.organization_id = o.id), "
	    "th_iso(o.created_at) FROM organizations o ORDER BY lower(o.name)",
	    0, NULL, &res);
	print_rows("organizations", &res, cols);
	db_res_free(&res);
	return 0;
}

static int
ctl_org_show(int argc, char **argv)
{
	struct db_res	 res;
	const char	*p[1];
	char		*id;

	p[0] = id = org_resolve(argv[parse_opts(argc, argv, NULL)]);
	q("org show", ORG_SELECT "WHERE o.id = $1", 1, p, &res);
	print_object(&res, org_cols);
	db_res_free(&res);
	free(id);
	return 0;
}

/*
 * org set: each key has a validator that may rewrite the value into its
 * stored form.  An empty value clears the setting (or restores the
 * default of a required one).  All keys are checked before any is set.
 */
typedef const char *(*org_check_fn)(const char *, char **);

static const char *
chk_timezone(const char *v, char **out)
{
	if (*v == '\0') {
		*out = xstrdup("UTC");
		return NULL;
	}
	if (!tz_valid(v))
		return "unknown time zone";
	*out = xstrdup(v);
	return NULL;
}

static const char *
chk_text(const char *v, char **out)
{
	if (strlen(v) > 1000)
		return "longer than 1000 characters";
	*out = *v ? xstrdup(v) : NULL;
	return NULL;
}

static const char *
chk_e164(const char *v, char **out)
{
	char	 e[32];

	if (*v == '\0') {
		*out = NULL;
		return NULL;
	}
	if (phone_e164(v, e, sizeof(e)) == -1)
		return "not a phone number (E.164, e.g. +14155551212)";
	*out = xstrdup(e);
	return NULL;
}

static const char *
chk_hours(const char *v, char **out)
{
	struct hours	 h;
	struct buf	 b;
	const char	*errstr;

	if (*v == '\0') {
		*out = NULL;
		return NULL;
	}
	if (hours_parse(v, &h, &errstr) == -1)
		return errstr;
	buf_init(&b);
	hours_format(&h, &b);
	*out = xstrdup(buf_cstr(&b));
	buf_free(&b);
	return NULL;
}

static const char *
chk_after_hours(const char *v, char **out)
{
	if (*v == '\0')
		v = "voicemail";
	if (strcmp(v, "voicemail") != 0 && strcmp(v, "agent") != 0)
		return "must be voicemail or agent";
	*out = xstrdup(v);
	return NULL;
}

static const char *
chk_agent(const char *v, char **out)
{
	const char	*p;

	for (p = v; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			return "must be letters, digits, '_' or '-'";
	if (strlen(v) > 128)
		return "longer than 128 characters";
	*out = *v ? xstrdup(v) : NULL;
	return NULL;
}

/* A SIP address for <Dial><Sip>: sip: or sips:, no blanks or quotes. */
static const char *
chk_sip(const char *v, char **out)
{
	const char	*p;

	if (*v == '\0') {
		*out = NULL;
		return NULL;
	}
	if (strncmp(v, "sip:", 4) != 0 && strncmp(v, "sips:", 5) != 0)
		return "must start with sip: or sips:";
	if (strlen(v) > 256)
		return "longer than 256 characters";
	for (p = v; *p != '\0'; p++)
		if (*p <= ' ' || *p == '"' || *p == '<' || *p == '>' ||
		    *p == 0x7f)
			return "must hold no blank, quote or angle bracket";
	*out = xstrdup(v);
	return NULL;
}

static const char *
chk_account_sid(const char *v, char **out)
{
	char	*s;

	if (*v == '\0') {
		*out = NULL;
		return NULL;
	}
	if (strlen(v) != 34 || strncmp(v, "AC", 2) != 0)
		return "must be AC and 32 hex digits";
	s = xstrdup(v);
	for (*out = s, s += 2; *s != '\0'; s++) {
		if (!isxdigit((unsigned char)*s)) {
			free(*out);
			*out = NULL;
			return "must be AC and 32 hex digits";
		}
		*s = (char)tolower((unsigned char)*s);
	}
	return NULL;
}

static const struct {
	const char	*key;
	org_check_fn	 check;
} org_keys[] = {
	{ "after_hours", chk_after_hours },
	{ "agent_sip", chk_sip },
	{ "forward_to", chk_e164 },
	{ "greeting", chk_text },
	{ "hours", chk_hours },
	{ "retell_agent_id", chk_agent },
	{ "timezone", chk_timezone },
	{ "twilio_account_sid", chk_account_sid },
};
#define NORG_KEYS	(sizeof(org_keys) / sizeof(org_keys[0]))

static int
ctl_org_set(int argc, char **argv)
{
	struct db_res	 res;
	char		*id, *vals[NORG_KEYS], *sql, *key;
	const char	*p[2], *why, *eq;
	int		 i, first;
	size_t		 k;
	unsigned char	 set[NORG_KEYS];
	enum db_err	 e;

	i = parse_opts(argc, argv, NULL);
	id = org_resolve(argv[i++]);
	memset(set, 0, sizeof(set));
	memset(vals, 0, sizeof(vals));
	for (; i < argc; i++) {
		if ((eq = strchr(argv[i], '=')) == NULL)
			die(EX_USAGE_, "expected KEY=VALUE, not %s", argv[i]);
		key = xstrndup(argv[i], (size_t)(eq - argv[i]));
		for (k = 0; k < NORG_KEYS; k++)
			if (strcmp(org_keys[k].key, key) == 0)
				break;
		if (k == NORG_KEYS)
			die(EX_DATAERR_, "unknown key %s (one of after_hours, "
			    "agent_sip, forward_to, greeting, hours, "
			    "retell_agent_id, timezone, twilio_account_sid)",
			    key);
		if (set[k])
			die(EX_DATAERR_, "%s given twice", key);
		if ((why = org_keys[k].check(eq + 1, &vals[k])) != NULL)
			die(EX_DATAERR_, "%s: %s", key, why);
		set[k] = 1;
		free(key);
	}
	if ((e = db_begin()) != DB_OK)
		die_db(e, "begin");
	for (k = 0; k < NORG_KEYS; k++) {
		if (!set[k])
			continue;
		/* the column name comes from the table above, never input */
		xasprintf(&sql, "UPDATE organizations SET %s = $2, "
		    "updated_at = now() WHERE id = $1", org_keys[k].key);
		p[0] = id;
		p[1] = vals[k];
		e = db_query(sql, 2, p, NULL);
		free(sql);
		if (e == DB_EDUP)
			die(EX_DATAERR_, "%s: another organization has it",
			    org_keys[k].key);
		if (e != DB_OK)
			die_db(e, org_keys[k].key);
	}
	if ((e = db_commit()) != DB_OK)
		die_db(e, "commit");
	p[0] = id;
	q("org show", ORG_SELECT "WHERE o.id = $1", 1, p, &res);
	if (json_out)
		print_object(&res, org_cols);
	else
		for (k = 0, first = 1; k < NORG_KEYS; k++)
			if (set[k]) {
				printf("%s%s=%s", first ? "" : " ",
				    org_keys[k].key, vals[k] ? vals[k] : "");
				first = 0;
			}
	if (!json_out)
		putchar('\n');
	db_res_free(&res);
	for (k = 0; k < NORG_KEYS; k++)
		free(vals[k]);
	free(id);
	return 0;
}

static int
ctl_number_add(int argc, char **argv)
{
	const char	*provider = NULL;
	const struct ctl_opt opts[] = { { "provider", &provider, 0 },
			    { NULL, NULL, 0 } };
	char		 e164[32], *id;
	const char	*p[3];
	struct db_res	 res;
	enum db_err	 e;
	int		 i;
	cJSON		*o;

	i = parse_opts(argc, argv, opts);
	if (provider != NULL && strcmp(provider, "twilio") != 0 &&
	    strcmp(provider, "retell") != 0 && strcmp(provider, "voipms") != 0)
		die(EX_DATAERR_, "--provider must be twilio, retell or voipms");
	if (phone_e164(argv[i + 1], e164, sizeof(e164)) == -1)
		die(EX_DATAERR_, "%s is not a phone number "
		    "(E.164, e.g. +14155551212)", argv[i + 1]);
	id = org_resolve(argv[i]);
	p[0] = id;
	p[1] = e164;
	p[2] = provider;
	e = db_query("INSERT INTO phone_numbers (organization_id, e164, "
	    "provider) VALUES ($1, $2, $3) RETURNING id", 3, p, &res);
	if (e == DB_EDUP) {
		q("number", "SELECT o.name FROM phone_numbers n JOIN "
		    "organizations o ON o.id = n.organization_id "
		    "WHERE n.e164 = $1", 1, p + 1, &res);
		die(EX_DATAERR_, "%s already belongs to %s", e164,
		    res.nrows ? db_get(&res, 0, 0) : "an organization");
	}
	if (e != DB_OK)
		die_db(e, "number add");
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "e164", e164);
		cJSON_AddStringToObject(o, "organization_id", id);
		cJSON_AddItemToObject(o, "provider", json_value(provider, 's'));
		json_print(o);
	} else
		printf("%s\n", e164);
	db_res_free(&res);
	free(id);
	return 0;
}

static int
ctl_number_list(int argc, char **argv)
{
	static const char *const cols[] = { "e164", "provider",
	    "organization_id", "organization", "created_at", NULL };

	return ctl_rows(argc, argv, "numbers", "SELECT n.e164, n.provider, "
	    "o.id, o.name, th_iso(n.created_at) FROM phone_numbers n JOIN "
	    "organizations o ON o.id = n.organization_id WHERE $1::uuid IS "
	    "NULL OR o.id = $1::uuid ORDER BY lower(o.name), n.e164", cols, 1);
}

static int
ctl_number_remove(int argc, char **argv)
{
	struct db_res	 res;
	char		 e164[32];
	const char	*p[1];
	cJSON		*o;
	int		 i;

	i = parse_opts(argc, argv, NULL);
	if (phone_e164(argv[i], e164, sizeof(e164)) == -1)
		die(EX_DATAERR_, "%s is not a phone number", argv[i]);
	p[0] = e164;
	q("number remove", "DELETE FROM phone_numbers WHERE e164 = $1 "
	    "RETURNING organization_id", 1, p, &res);
	if (res.nrows == 0)
		die(EX_DATAERR_, "no such number: %s", e164);
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "removed", e164);
		json_print(o);
	} else
		printf("removed %s\n", e164);
	db_res_free(&res);
	return 0;
}

static int
ctl_user_add(int argc, char **argv)
{
	const char	*name = NULL;
	const struct ctl_opt opts[] = { { "name", &name, 0 }, { NULL, NULL, 0 } };
	const char	*p[3], *at;
	struct db_res	 res;
	char		*id;
	enum db_err	 e;
	int		 i;
	cJSON		*o;

	i = parse_opts(argc, argv, opts);
	at = strchr(argv[i + 1], '@');
	if (at == NULL || at == argv[i + 1] || at[1] == '\0' ||
	    strchr(at + 1, '@') != NULL || strpbrk(argv[i + 1], " \t\r\n"))
		die(EX_DATAERR_, "%s is not an email address", argv[i + 1]);
	id = org_resolve(argv[i]);
	p[0] = id;
	p[1] = argv[i + 1];
	p[2] = name;
	e = db_query("INSERT INTO users (organization_id, email, name) "
	    "VALUES ($1, $2, $3) RETURNING id", 3, p, &res);
	if (e == DB_EDUP)
		die(EX_DATAERR_, "%s is already a user of that organization",
		    argv[i + 1]);
	if (e != DB_OK)
		die_db(e, "user add");
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", db_get(&res, 0, 0));
		cJSON_AddStringToObject(o, "organization_id", id);
		cJSON_AddStringToObject(o, "email", argv[i + 1]);
		cJSON_AddItemToObject(o, "name", json_value(name, 's'));
		json_print(o);
	} else
		printf("%s\n", db_get(&res, 0, 0));
	db_res_free(&res);
	free(id);
	return 0;
}

static int
ctl_user_list(int argc, char **argv)
{
	static const char *const cols[] = { "id", "email", "name",
	    "created_at", NULL };

	return ctl_rows(argc, argv, "users", "SELECT id, email, name, "
	    "th_iso(created_at) FROM users WHERE organization_id = $1 "
	    "ORDER BY lower(email)", cols, 0);
}

/* token create: the token is printed once and only its hash is stored. */
static int
ctl_token_create(int argc, char **argv)
{
	const char	*name = NULL;
	const struct ctl_opt opts[] = { { "name", &name, 0 }, { NULL, NULL, 0 } };
	char		 token[128], hash[TOKEN_HASHHEX + 1], *id;
	const char	*p[3];
	struct db_res	 res;
	cJSON		*o;

	id = org_resolve(argv[parse_opts(argc, argv, opts)]);
	crypto_token_new(token, sizeof(token));
	crypto_token_hash(token, hash);
	p[0] = id;
	p[1] = name;
	p[2] = hash;
	q("token create", "INSERT INTO api_tokens (organization_id, name, "
	    "token_hash) VALUES ($1, $2, $3) RETURNING id", 3, p, &res);
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", db_get(&res, 0, 0));
		cJSON_AddStringToObject(o, "organization_id", id);
		cJSON_AddStringToObject(o, "token", token);
		json_print(o);
	} else
		printf("%s\n", token);
	explicit_bzero(token, sizeof(token));
	db_res_free(&res);
	free(id);
	return 0;
}

static int
ctl_token_list(int argc, char **argv)
{
	static const char *const cols[] = { "id", "name", "created_at",
	    "last_used_at", "revoked_at", NULL };

	return ctl_rows(argc, argv, "tokens",
	    "SELECT id, name, th_iso(created_at), "
	    "th_iso(last_used_at), th_iso(revoked_at) FROM api_tokens "
	    "WHERE organization_id = $1 ORDER BY created_at, id", cols, 0);
}

static int
ctl_token_revoke(int argc, char **argv)
{
	struct db_res	 res;
	const char	*p[1];
	cJSON		*o;

	p[0] = argv[parse_opts(argc, argv, NULL)];
	if (!store_is_uuid(p[0]))
		die(EX_DATAERR_, "%s is not a token id (see token list)", p[0]);
	q("token revoke", "UPDATE api_tokens SET revoked_at = "
	    "coalesce(revoked_at, now()) WHERE id = $1::uuid "
	    "RETURNING th_iso(revoked_at)", 1, p, &res);
	if (res.nrows == 0)
		die(EX_DATAERR_, "no such token: %s", p[0]);
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", p[0]);
		cJSON_AddStringToObject(o, "revoked_at", db_get(&res, 0, 0));
		json_print(o);
	} else
		printf("revoked %s\n", p[0]);
	db_res_free(&res);
	return 0;
}

/*
 * reply add: keywords are lower-cased, trimmed and de-duplicated; the
 * text is what an SMS answers, or what the speech flow says.
 */
static int
ctl_reply_add(int argc, char **argv)
{
	const char	*kw = NULL, *text = NULL, *channel = "sms";
	const struct ctl_opt opts[] = { { "keywords", &kw, 0 }, { "text", &text, 0 },
			    { "channel", &channel, 0 }, { NULL, NULL, 0 } };
	struct buf	 norm;
	struct db_res	 res;
	const char	*p[4], *k, *end;
	char		*id, *one, *c, *probe, *list;
	size_t		 n;
	cJSON		*o;

	id = org_resolve(argv[parse_opts(argc, argv, opts)]);
	if (kw == NULL || text == NULL)
		die(EX_USAGE_, "reply add needs --keywords and --text");
	if (strcmp(channel, "sms") != 0 && strcmp(channel, "voice") != 0)
		die(EX_DATAERR_, "--channel must be sms or voice");
	if (*text == '\0' || strlen(text) > 1600)
		die(EX_DATAERR_, "--text must be 1 to 1600 characters");
	buf_init(&norm);
	for (k = kw; *k != '\0'; k = *end ? end + 1 : end) {
		end = k + strcspn(k, ",");
		while (k < end && isspace((unsigned char)*k))
			k++;
		n = (size_t)(end - k);
		while (n > 0 && isspace((unsigned char)k[n - 1]))
			n--;
		if (n == 0)
			continue;
		if (n > 64)
			die(EX_DATAERR_, "a keyword is at most 64 characters");
		one = xstrndup(k, n);
		for (c = one; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
		/* each keyword once */
		xasprintf(&probe, ",%s,", one);
		xasprintf(&list, ",%s,", buf_cstr(&norm));
		if (strstr(list, probe) == NULL) {
			if (norm.len > 0)
				buf_putc(&norm, ',');
			buf_puts(&norm, one);
		}
		free(probe);
		free(list);
		free(one);
	}
	if (norm.len == 0)
		die(EX_DATAERR_, "--keywords names no keyword");
	p[0] = id;
	p[1] = channel;
	p[2] = buf_cstr(&norm);
	p[3] = text;
	q("reply add", "INSERT INTO reply_rules (organization_id, channel, "
	    "keywords, reply) VALUES ($1, $2, string_to_array($3, ','), $4) "
	    "RETURNING id", 4, p, &res);
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", atof(db_get(&res, 0, 0)));
		cJSON_AddStringToObject(o, "channel", channel);
		cJSON_AddStringToObject(o, "keywords", buf_cstr(&norm));
		cJSON_AddStringToObject(o, "text", text);
		json_print(o);
	} else
		printf("%s\n", db_get(&res, 0, 0));
	db_res_free(&res);
	buf_free(&norm);
	free(id);
	return 0;
}

static int
ctl_reply_list(int argc, char **argv)
{
	static const char *const cols[] = { "id:n", "channel", "keywords",
	    "text", NULL };

	return ctl_rows(argc, argv, "replies",
	    "SELECT id, channel, array_to_string(keywords, ','), "
	    "reply FROM reply_rules WHERE organization_id = $1 "
	    "ORDER BY channel, id", cols, 0);
}

static int
ctl_reply_remove(int argc, char **argv)
{
	struct db_res	 res;
	const char	*p[1], *errstr;
	cJSON		*o;

	p[0] = argv[parse_opts(argc, argv, NULL)];
	(void)util_strtonum(p[0], 1, 9007199254740991LL, &errstr);
	if (errstr != NULL)
		die(EX_DATAERR_, "%s is not a reply id (see reply list)", p[0]);
	q("reply remove", "DELETE FROM reply_rules WHERE id = $1::bigint "
	    "RETURNING id", 1, p, &res);
	if (res.nrows == 0)
		die(EX_DATAERR_, "no such reply: %s", p[0]);
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "removed", atof(p[0]));
		json_print(o);
	} else
		printf("removed reply %s\n", p[0]);
	db_res_free(&res);
	return 0;
}

/*
 * secret set: the secret is read from standard input (one line), sealed
 * with secret_key_file and stored; it is never printed or logged.
 */
static int
ctl_secret_set(int argc, char **argv)
{
	const char	*account = "";
	const struct ctl_opt opts[] = { { "account", &account, 0 },
			    { NULL, NULL, 0 } };
	char		 line[1024], *id, *sealed, hash[65];
	const char	*p[5], *provider, *a;
	struct db_res	 res;
	enum db_err	 e;
	size_t		 n;
	int		 i, urltoken, rotated = 0;
	cJSON		*o;

	i = parse_opts(argc, argv, opts);
	provider = argv[i + 1];
	if (strcmp(provider, "twilio") != 0 && strcmp(provider, "retell") != 0 &&
	    strcmp(provider, "voipms") != 0)
		die(EX_DATAERR_, "PROVIDER must be twilio, retell or voipms");
	if (strcmp(provider, "twilio") == 0 && *account != '\0') {
		if (strlen(account) != 34 || strncmp(account, "AC", 2) != 0 ||
		    strspn(account + 2, "0123456789abcdefABCDEF") != 32)
			die(EX_DATAERR_, "--account must be a Twilio "
			    "AccountSid (AC and 32 hex digits)");
	}
	if (!crypto_have_key)
		die(EX_CONFIG_, "secret_key_file is not set in %s: secrets "
		    "cannot be sealed", conf.path);
	id = org_resolve(argv[i]);
	if (fgets(line, sizeof(line), stdin) == NULL)
		die(EX_DATAERR_, "no secret on standard input");
	n = strcspn(line, "\r\n");
	if (line[n] == '\0' && !feof(stdin))
		die(EX_DATAERR_, "secret longer than %zu bytes",
		    sizeof(line) - 2);
	line[n] = '\0';
	for (a = line; *a != '\0'; a++)
		if (iscntrl((unsigned char)*a))
			die(EX_DATAERR_, "the secret holds a control "
			    "character");
	if (n == 0)
		die(EX_DATAERR_, "empty secret");
	/*
	 * A VoIP.ms URL token (no --account; with one it is the password of
	 * that API user) is the whole credential and names its
	 * organization: it must not be guessable, and it is found by its
	 * SHA-256 (the unique index refuses one token for two).
	 */
	urltoken = strcmp(provider, "voipms") == 0 && *account == '\0';
	if (urltoken && n < 16)
		die(EX_DATAERR_, "a VoIP.ms URL token needs at least 16 "
		    "characters (openssl rand -hex 16)");
	if (urltoken)
		crypto_sha256_hex(line, n, hash);
	sealed = crypto_seal(crypto_key, line);
	explicit_bzero(line, sizeof(line));
	p[0] = id;
	p[1] = provider;
	p[2] = account;
	p[3] = sealed;
	p[4] = urltoken ? hash : NULL;
	/*
	 * Rotation of a URL token: the one it replaces stays valid as
	 * ":previous" until "secret remove ORG voipms --account :previous",
	 * so the DIDs' callback URLs can be changed one by one.
	 */
	if (urltoken) {
		if ((e = db_begin()) != DB_OK)
			die_db(e, "secret set");
		q("secret set", "DELETE FROM provider_accounts WHERE "
		    "organization_id = $1 AND provider = 'voipms' AND "
		    "account_id = ':previous'", 1, p, NULL);
		q("secret set", "UPDATE provider_accounts SET account_id = "
		    "':previous', updated_at = now() WHERE organization_id = $1 "
		    "AND provider = 'voipms' AND account_id = ''", 1, p, &res);
		rotated = res.cmdtuples != NULL && atoi(res.cmdtuples) > 0;
		db_res_free(&res);
	}
	q("secret set", "INSERT INTO provider_accounts (organization_id, "
	    "provider, account_id, secret_sealed, secret_hash) VALUES ($1, $2, "
	    "$3, $4, $5) ON CONFLICT (organization_id, provider, account_id) "
	    "DO UPDATE SET secret_sealed = excluded.secret_sealed, "
	    "secret_hash = excluded.secret_hash, updated_at = now()",
	    5, p, NULL);
	if (urltoken && (e = db_commit()) != DB_OK)
		die_db(e, "secret set");
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "organization_id", id);
		cJSON_AddStringToObject(o, "provider", provider);
		cJSON_AddStringToObject(o, "account", account);
		cJSON_AddBoolToObject(o, "previous_kept", rotated);
		json_print(o);
	} else {
		printf("secret stored for %s%s%s\n", provider,
		    *account ? " account " : "", account);
		if (rotated)
			printf("the previous URL token is accepted until "
			    "\"telehookctl secret remove %s voipms --account "
			    ":previous\"\n", id);
	}
	free(sealed);
	free(id);
	return 0;
}

/* secret remove: forget a stored secret (the end of a rotation). */
static int
ctl_secret_remove(int argc, char **argv)
{
	const char	*account = "";
	const struct ctl_opt opts[] = { { "account", &account, 0 },
			    { NULL, NULL, 0 } };
	const char	*p[3];
	struct db_res	 res;
	char		*id;
	int		 i, n;

	i = parse_opts(argc, argv, opts);
	id = org_resolve(argv[i]);
	p[0] = id;
	p[1] = argv[i + 1];
	p[2] = account;
	q("secret remove", "DELETE FROM provider_accounts WHERE "
	    "organization_id = $1 AND provider = $2 AND account_id = $3",
	    3, p, &res);
	n = atoi(res.cmdtuples != NULL ? res.cmdtuples : "0");
	db_res_free(&res);
	free(id);
	if (n == 0)
		die(EX_DATAERR_, "no such secret");
	if (!json_out)
		printf("secret removed\n");
	else
		json_print(cJSON_CreateObject());
	return 0;
}

static int
ctl_secret_list(int argc, char **argv)
{
	static const char *const cols[] = { "organization_id", "organization",
	    "provider", "account", "updated_at", NULL };

	return ctl_rows(argc, argv, "secrets", "SELECT o.id, o.name, "
	    "a.provider, a.account_id, th_iso(a.updated_at) FROM "
	    "provider_accounts a JOIN organizations o ON o.id = "
	    "a.organization_id WHERE $1::uuid IS NULL OR o.id = $1::uuid "
	    "ORDER BY lower(o.name), a.provider, a.account_id", cols, 1);
}

/* block: callers an organization rejects and never auto-replies to. */
static int
ctl_block(int argc, char **argv, int add)
{
	struct db_res	 res;
	char		 e164[32], *id;
	const char	*p[2];
	int		 i;
	cJSON		*o;

	i = parse_opts(argc, argv, NULL);
	if (phone_e164(argv[i + 1], e164, sizeof(e164)) == -1)
		die(EX_DATAERR_, "%s is not a phone number", argv[i + 1]);
	id = org_resolve(argv[i]);
	p[0] = id;
	p[1] = e164;
	if (add)
		q("block add", "INSERT INTO blocked_numbers (organization_id, "
		    "e164) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
		    2, p, &res);
	else
		q("block remove", "DELETE FROM blocked_numbers WHERE "
		    "organization_id = $1 AND e164 = $2 RETURNING 1", 2, p, &res);
	if (!add && res.nrows == 0)
		die(EX_DATAERR_, "%s is not blocked", e164);
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, add ? "blocked" : "unblocked", e164);
		json_print(o);
	} else
		printf("%s %s\n", add ? "blocked" : "unblocked", e164);
	db_res_free(&res);
	free(id);
	return 0;
}

static int
ctl_block_add(int argc, char **argv)
{
	return ctl_block(argc, argv, 1);
}

static int
ctl_block_remove(int argc, char **argv)
{
	return ctl_block(argc, argv, 0);
}

static int
ctl_block_list(int argc, char **argv)
{
	static const char *const cols[] = { "e164", "created_at", NULL };

	return ctl_rows(argc, argv, "blocked",
	    "SELECT e164, th_iso(created_at) FROM blocked_numbers "
	    "WHERE organization_id = $1 ORDER BY e164", cols, 0);
}

/* A date as YYYY-MM-DD, checked (February 30 is not one). */
static int
date_valid(const char *d)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	int	 y, m, day, i;

	if (strlen(d) != 10 || d[4] != '-' || d[7] != '-')
		return 0;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)d[i]))
			return 0;
	y = atoi(d);
	m = atoi(d + 5);
	day = atoi(d + 8);
	if (y < 2000 || y > 2999 || m < 1 || m > 12 || day < 1 ||
	    day > mdays[m - 1])
		return 0;
	return !(m == 2 && day == 29 && (y % 4 != 0 || (y % 100 == 0 &&
	    y % 400 != 0)));
}

/*
 * closure add: days (in the organization's time zone) that are after
 * hours whatever the weekly hours say: holidays.
 */
static int
ctl_closure_add(int argc, char **argv)
{
	const char	*until = NULL, *note = NULL;
	const struct ctl_opt opts[] = { { "until", &until, 0 },
			    { "note", &note, 0 }, { NULL, NULL, 0 } };
	struct db_res	 res;
	const char	*p[4];
	char		*id;
	int		 i;

	i = parse_opts(argc, argv, opts);
	if (!date_valid(argv[i + 1]))
		die(EX_DATAERR_, "%s is not a date (YYYY-MM-DD)", argv[i + 1]);
	if (until != NULL && !date_valid(until))
		die(EX_DATAERR_, "%s is not a date (YYYY-MM-DD)", until);
	if (until != NULL && strcmp(until, argv[i + 1]) < 0)
		die(EX_DATAERR_, "--until %s is before %s", until, argv[i + 1]);
	if (note != NULL) {
		const char	*c;

		for (c = note; *c != '\0'; c++)
			if (iscntrl((unsigned char)*c))
				die(EX_DATAERR_, "--note holds a control "
				    "character");
		if (strlen(note) > 200)
			die(EX_DATAERR_, "--note is longer than 200 "
			    "characters");
	}
	id = org_resolve(argv[i]);
	p[0] = id;
	p[1] = argv[i + 1];
	p[2] = until != NULL ? until : argv[i + 1];
	p[3] = note;
	q("closure add", "INSERT INTO closures (organization_id, first_day, "
	    "last_day, note) VALUES ($1, $2::date, $3::date, $4) RETURNING id",
	    4, p, &res);
	if (json_out) {
		cJSON	*o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "id", db_get(&res, 0, 0));
		json_print(o);
	} else
		printf("%s\n", db_get(&res, 0, 0));
	db_res_free(&res);
	free(id);
	return 0;
}

static int
ctl_closure_list(int argc, char **argv)
{
	static const char *const cols[] = { "id", "first_day", "last_day",
	    "note", NULL };

	return ctl_rows(argc, argv, "closures",
	    "SELECT id::text, first_day::text, last_day::text, note FROM "
	    "closures WHERE organization_id = $1 ORDER BY first_day, id",
	    cols, 0);
}

static int
ctl_closure_remove(int argc, char **argv)
{
	struct db_res	 res;
	const char	*p[1], *errstr;

	p[0] = argv[parse_opts(argc, argv, NULL)];
	(void)util_strtonum(p[0], 1, 9007199254740991LL, &errstr);
	if (errstr != NULL)
		die(EX_DATAERR_, "%s is not a closure id", p[0]);
	q("closure remove", "DELETE FROM closures WHERE id = $1::bigint "
	    "RETURNING 1", 1, p, &res);
	if (res.nrows == 0)
		die(EX_DATAERR_, "no such closure: %s", p[0]);
	db_res_free(&res);
	if (json_out)
		json_print(cJSON_CreateObject());
	else
		printf("removed closure %s\n", p[0]);
	return 0;
}

/* campaign add: an empty campaign of an organization. */
static int
ctl_campaign_add(int argc, char **argv)
{
	struct db_res	 res;
	const char	*p[2];
	char		*id;
	int		 i;
	cJSON		*o;

	i = parse_opts(argc, argv, NULL);
	if (argv[i + 1][0] == '\0' || strlen(argv[i + 1]) > 200)
		die(EX_DATAERR_, "a campaign name is 1 to 200 characters");
	id = org_resolve(argv[i]);
	p[0] = id;
	p[1] = argv[i + 1];
	q("campaign add", "INSERT INTO campaigns (organization_id, name) "
	    "VALUES ($1, $2) RETURNING id", 2, p, &res);
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", db_get(&res, 0, 0));
		cJSON_AddStringToObject(o, "organization_id", id);
		cJSON_AddStringToObject(o, "name", argv[i + 1]);
		json_print(o);
	} else
		printf("%s\n", db_get(&res, 0, 0));
	db_res_free(&res);
	free(id);
	return 0;
}

/* The campaign named by arg (its id); dies if there is none. */
static void
campaign_check(const char *arg)
{
	struct db_res	 res;
	const char	*p[1] = { arg };

	if (!store_is_uuid(arg))
		die(EX_DATAERR_, "%s is not a campaign id", arg);
	q("campaign", "SELECT 1 FROM campaigns WHERE id = $1", 1, p, &res);
	if (res.nrows != 1)
		die(EX_DATAERR_, "no such campaign: %s", arg);
	db_res_free(&res);
}

/*
 * One CSV field at *p (RFC 4180: quoted with "" for a quote, or bare),
 * up to ',' or the end of the line.  NULL for a malformed quote.
 */
static char *
csv_field(const char **p)
{
	struct buf	 b;
	const char	*s = *p;

	buf_init(&b);
	buf_puts(&b, "");
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '"') {
		for (s++; *s != '\0'; s++) {
			if (*s == '"' && s[1] == '"')
				buf_putc(&b, *s++);
			else if (*s == '"')
				break;
			else
				buf_putc(&b, *s);
		}
		if (*s != '"') {
			buf_free(&b);
			return NULL;
		}
		s++;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s != ',' && *s != '\0') {
			buf_free(&b);
			return NULL;
		}
	} else
		while (*s != ',' && *s != '\0')
			buf_putc(&b, *s++);
	if (*s == ',')
		s++;
	*p = s;
	while (b.len > 0 && (b.data[b.len - 1] == ' ' ||
	    b.data[b.len - 1] == '\t'))
		b.data[--b.len] = '\0';
	return b.data;
}

/*
 * campaign import: CSV of phone[,name], with an optional header row.
 * Every line is checked first; one bad line imports nothing.  Prints
 * one contact id per line, in file order.
 */
static int
ctl_campaign_import(int argc, char **argv)
{
	struct db_res	 res;
	struct buf	 phones, names;
	const char	*p[4], *s;
	char		*data, *line, *next, *phone, *name, e164[32], *seen;
	char		*probe, *grown;
	int		 i, n = 0, lineno = 0;
	enum db_err	 e;
	cJSON		*o, *a;

	i = parse_opts(argc, argv, NULL);
	campaign_check(argv[i]);
	data = read_file(argv[i + 1], 16 * 1024 * 1024);
	buf_init(&phones);
	buf_init(&names);
	xasprintf(&seen, ",");
	for (line = data; line != NULL && *line != '\0'; line = next) {
		lineno++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (*line != '\0' && line[strlen(line) - 1] == '\r')
			line[strlen(line) - 1] = '\0';
		if (line[strspn(line, " \t,")] == '\0')
			continue;
		s = line;
		if ((phone = csv_field(&s)) == NULL ||
		    (name = *s != '\0' ? csv_field(&s) : xstrdup("")) == NULL)
			die(EX_DATAERR_, "%s:%d: malformed quoted field",
			    argv[i + 1], lineno);
		if (*s != '\0')
			die(EX_DATAERR_, "%s:%d: more than two columns "
			    "(phone[,name])", argv[i + 1], lineno);
		if (phone_e164(phone, e164, sizeof(e164)) == -1) {
			if (n == 0 && lineno == 1)
				goto next_line;	/* a header row */
			die(EX_DATAERR_, "%s:%d: %s is not a phone number",
			    argv[i + 1], lineno, phone);
		}
		if (strlen(name) > 200)
			die(EX_DATAERR_, "%s:%d: name longer than 200 "
			    "characters", argv[i + 1], lineno);
		xasprintf(&probe, ",%s,", e164);
		if (strstr(seen, probe) != NULL)
			die(EX_DATAERR_, "%s:%d: %s appears twice",
			    argv[i + 1], lineno, e164);
		free(probe);
		xasprintf(&grown, "%s%s,", seen, e164);
		free(seen);
		seen = grown;
		/* tab-separated: neither a number nor a name holds a tab */
		if (strchr(name, '\t') != NULL)
			die(EX_DATAERR_, "%s:%d: a tab in the name",
			    argv[i + 1], lineno);
		buf_printf(&phones, "%s%s", n ? "\t" : "", e164);
		buf_printf(&names, "%s%s", n ? "\t" : "", name);
		n++;
next_line:
		free(phone);
		free(name);
	}
	if (n == 0)
		die(EX_DATAERR_, "%s: no contacts", argv[i + 1]);
	p[0] = argv[i];
	p[1] = buf_cstr(&phones);
	p[2] = buf_cstr(&names);
	e = db_query("INSERT INTO campaign_contacts (campaign_id, position, "
	    "phone, name) SELECT $1, coalesce((SELECT max(position) FROM "
	    "campaign_contacts WHERE campaign_id = $1), 0) + t.n, t.phone, "
	    "nullif(t.name, '') FROM unnest(string_to_array($2, E'\\t'), "
	    "string_to_array($3, E'\\t')) WITH ORDINALITY AS t(phone, name, n) "
	    "ORDER BY t.n RETURNING id, position", 3, p, &res);
	if (e != DB_OK)
		die_db(e, "campaign import");
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "campaign_id", argv[i]);
		a = cJSON_AddArrayToObject(o, "contacts");
		for (i = 0; i < res.nrows; i++)
			cJSON_AddItemToArray(a,
			    cJSON_CreateString(db_get(&res, i, 0)));
		json_print(o);
	} else
		for (i = 0; i < res.nrows; i++)
			printf("%s\n", db_get(&res, i, 0));
	db_res_free(&res);
	buf_free(&phones);
	buf_free(&names);
	free(seen);
	free(data);
	return 0;
}

/* campaign show: the progress shape of GET .../campaigns (architecture.md §11). */
static int
ctl_campaign_show(int argc, char **argv)
{
	static const char *const states[] = { "pending", "calling",
	    "completed", "failed", "no_answer", NULL };
	struct db_res	 res;
	const char	*p[1];
	cJSON		*o, *by;
	int		 i;

	p[0] = argv[parse_opts(argc, argv, NULL)];
	campaign_check(p[0]);
	q("campaign show", "SELECT c.id, c.name, c.organization_id, "
	    "(SELECT count(*) FROM campaign_contacts WHERE campaign_id = c.id), "
	    "c.processed, c.successful, "
	    "(SELECT count(*) FROM campaign_contacts WHERE campaign_id = c.id "
	    "AND status = 'pending'), "
	    "(SELECT count(*) FROM campaign_contacts WHERE campaign_id = c.id "
	    "AND status = 'calling'), "
	    "(SELECT count(*) FROM campaign_contacts WHERE campaign_id = c.id "
	    "AND status = 'completed'), "
	    "(SELECT count(*) FROM campaign_contacts WHERE campaign_id = c.id "
	    "AND status = 'failed'), "
	    "(SELECT count(*) FROM campaign_contacts WHERE campaign_id = c.id "
	    "AND status = 'no_answer') "
	    "FROM campaigns c WHERE c.id = $1", 1, p, &res);
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", db_get(&res, 0, 0));
		cJSON_AddStringToObject(o, "name", db_get(&res, 0, 1));
		cJSON_AddStringToObject(o, "organization_id",
		    db_get(&res, 0, 2));
		cJSON_AddNumberToObject(o, "total_contacts",
		    atof(db_get(&res, 0, 3)));
		cJSON_AddNumberToObject(o, "processed", atof(db_get(&res, 0, 4)));
		cJSON_AddNumberToObject(o, "successful",
		    atof(db_get(&res, 0, 5)));
		by = cJSON_AddObjectToObject(o, "contacts_by_status");
		for (i = 0; states[i] != NULL; i++)
			cJSON_AddNumberToObject(by, states[i],
			    atof(db_get(&res, 0, 6 + i)));
		json_print(o);
	} else {
		print_vis("id", db_get(&res, 0, 0));
		print_vis("name", db_get(&res, 0, 1));
		print_vis("organization_id", db_get(&res, 0, 2));
		print_vis("total_contacts", db_get(&res, 0, 3));
		print_vis("processed", db_get(&res, 0, 4));
		print_vis("successful", db_get(&res, 0, 5));
		for (i = 0; states[i] != NULL; i++)
			print_vis(states[i], db_get(&res, 0, 6 + i));
	}
	db_res_free(&res);
	return 0;
}

/* outbox send: send what is due through the providers' APIs. */
static int
ctl_outbox_send(int argc, char **argv)
{
	struct outbox_stats	 st;
	int			 rc;
	cJSON			*o;

	(void)parse_opts(argc, argv, NULL);
	log_setlevel(LOG_LEVEL_WARNING);	/* say what failed for good */
	rc = outbox_send(&st);
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "sent", st.sent);
		cJSON_AddNumberToObject(o, "retrying", st.retrying);
		cJSON_AddNumberToObject(o, "failed", st.failed);
		cJSON_AddNumberToObject(o, "recovered", st.recovered);
		json_print(o);
	} else
		printf("sent %d, retrying %d, failed %d\n", st.sent,
		    st.retrying, st.failed);
	if (rc == -1)
		die_db(db_last_error(), "outbox send");
	return 0;
}

static int
ctl_outbox_list(int argc, char **argv)
{
	static const char *const cols[] = { "id:n", "organization_id",
	    "from", "to", "state", "attempts:n", "next_attempt_at",
	    "last_error", "text", NULL };
	const char	*state = NULL;
	const struct ctl_opt opts[] = { { "state", &state, 0 }, { NULL, NULL, 0 } };
	struct db_res	 res;
	const char	*p[1];

	(void)parse_opts(argc, argv, opts);
	if (state != NULL && strcmp(state, "pending") != 0 &&
	    strcmp(state, "sending") != 0 && strcmp(state, "retry") != 0 &&
	    strcmp(state, "sent") != 0 && strcmp(state, "failed") != 0)
		die(EX_DATAERR_, "--state must be pending, sending, retry, "
		    "sent or failed");
	p[0] = state;
	q("outbox list", "SELECT id, organization_id, from_number, to_number, "
	    "state, attempts, th_iso(next_attempt_at), last_error, body "
	    "FROM outbox WHERE $1::text IS NULL OR state = $1 ORDER BY id",
	    1, p, &res);
	print_rows("outbox", &res, cols);
	db_res_free(&res);
	return 0;
}

/* --since: any time PostgreSQL reads, checked before use. */
static void
check_time(const char *t)
{
	const char	*p[1] = { t };

	if (t != NULL && db_query("SELECT $1::timestamptz", 1, p, NULL) !=
	    DB_OK)
		die(EX_DATAERR_, "--since %s is not a time (e.g. 2026-11-01 or "
		    "'2026-11-21 09:00+00')", t);
}

static const char *
check_limit(const char *v, const char *dflt)
{
	const char	*errstr;

	if (v == NULL)
		return dflt;
	(void)util_strtonum(v, 1, 100000, &errstr);
	if (errstr != NULL)
		die(EX_DATAERR_, "--limit must be 1 to 100000");
	return v;
}

/* events list: newest first (architecture.md §11 shape). */
static int
ctl_events_list(int argc, char **argv)
{
	static const char *const cols[] = { "id", "provider", "event_type",
	    "provider_key", "organization_id", "received_at", NULL };
	const char	*org = NULL, *unrouted = NULL, *since = NULL;
	const char	*limit = NULL, *failed = NULL, *p[5];
	const struct ctl_opt opts[] = { { "org", &org, 0 },
			    { "unrouted", &unrouted, 1 }, { "since", &since, 0 },
			    { "limit", &limit, 0 }, { "failed", &failed, 1 },
			    { NULL, NULL, 0 } };
	struct db_res	 res;
	char		*id = NULL;

	(void)parse_opts(argc, argv, opts);
	if (org != NULL && unrouted != NULL)
		die(EX_USAGE_, "--org and --unrouted exclude each other");
	check_time(since);
	p[0] = org != NULL ? (id = org_resolve(org)) : NULL;
	p[1] = unrouted != NULL ? "true" : "false";
	p[2] = since;
	p[3] = check_limit(limit, "100");
	p[4] = failed != NULL ? "true" : "false";
	if (failed != NULL) {
		static const char *const fcols[] = { "id", "provider",
		    "route", "provider_key", "received_at", "failure", NULL };

		q("events list", "SELECT id::text, provider, route, "
		    "provider_key, th_iso(received_at), failure FROM events "
		    "WHERE failed_at IS NOT NULL AND ($1::uuid IS NULL OR "
		    "organization_id = $1) AND (NOT $2::bool OR organization_id "
		    "IS NULL) AND ($3::timestamptz IS NULL OR received_at >= "
		    "$3) ORDER BY id DESC LIMIT $4::int", 4, p, &res);
		print_rows("events", &res, fcols);
		db_res_free(&res);
		free(id);
		return 0;
	}
	q("events list", "SELECT id::text, provider, event_type, provider_key, "
	    "organization_id, th_iso(received_at) FROM events WHERE "
	    "($1::uuid IS NULL OR organization_id = $1) AND (NOT $2::bool OR "
	    "organization_id IS NULL) AND ($3::timestamptz IS NULL OR "
	    "received_at >= $3) ORDER BY id DESC LIMIT $4::int", 4, p, &res);
	print_rows("events", &res, cols);
	db_res_free(&res);
	free(id);
	return 0;
}

/*
 * Replay: derive a stored event's records again, through its route's own
 * handler, as if it had just come (architecture.md §6).  The request is rebuilt
 * from what the event kept: method, request line, content type and raw
 * body; an event kept before 0.2.0 has no request line, and gets its
 * route's path.  An event that belongs to an organization (assigned, or
 * routed when it came) names it, so it routes there again.
 */
#define REPLAY_COLS \
	"SELECT id::text, route, coalesce(method, ''), request_uri, " \
	"content_type, encode(body, 'hex'), coalesce(host(client_addr), '-'), " \
	"(extract(epoch FROM received_at) * 1000000)::bigint::text, " \
	"coalesce(answer, ''), organization_id FROM events "

static int
replay_event(const struct db_res *res, int row, const char **why)
{
	struct spooled		 sp;
	const struct route	*rt = NULL;
	const char		*route = db_get(res, row, 1);
	const char		*uri = db_get(res, row, 3), *hex;
	const char		*org = db_get(res, row, 9), *errstr;
	char			*u, *env[5];
	size_t			 i, n;
	int			 rc;

	for (i = 0; i < nroutes && rt == NULL; i++)
		if (strcmp(routes[i].name, route) == 0 &&
		    (routes[i].flags & ROUTE_TX))
			rt = &routes[i];
	if (rt == NULL) {
		*why = "no route takes this event any more";
		return REPLAY_FAILED;
	}
	if ((hex = db_get(res, row, 5)) == NULL) {
		*why = "its body was redacted (prune --redact)";
		return REPLAY_FAILED;
	}
	memset(&sp, 0, sizeof(sp));
	n = strlen(hex) / 2;
	sp.body = xmalloc(n + 1);
	for (i = 0; i < n; i++)
		sp.body[i] = (char)strtol((char[3]){ hex[2 * i],
		    hex[2 * i + 1], '\0' }, NULL, 16);
	sp.body[n] = '\0';
	sp.bodylen = n;
	if (uri == NULL)
		uri = rt->path;
	if (org != NULL && strstr(uri, "organization_id=") == NULL)
		xasprintf(&u, "%s%sorganization_id=%s", uri,
		    strchr(uri, '?') != NULL ? "&" : "?", org);
	else
		u = xstrdup(uri);
	xasprintf(&env[0], "REQUEST_METHOD=%s", *db_get(res, row, 2) != '\0' ?
	    db_get(res, row, 2) : n == 0 && (rt->methods & METHOD_GET) ? "GET" :
	    "POST");
	xasprintf(&env[1], "REQUEST_URI=%s", u);
	xasprintf(&env[2], "CONTENT_TYPE=%s", db_get(res, row, 4) != NULL ?
	    db_get(res, row, 4) : "");
	xasprintf(&env[3], "CONTENT_LENGTH=%zu", n);
	env[4] = NULL;
	sp.envp = env;
	sp.client = (char *)db_get(res, row, 6);
	sp.received_us = util_strtonum(db_get(res, row, 7), 0, LLONG_MAX,
	    &errstr);
	sp.answer = (char *)db_get(res, row, 8);
	sp.rederive = util_strtonum(db_get(res, row, 0), 1, LLONG_MAX,
	    &errstr);
	rc = dispatch_replay(&sp, why);
	for (i = 0; i < 4; i++)
		free(env[i]);
	free(u);
	free(sp.body);
	return rc;
}

static const struct db_stmt st_failure = { "ctl_failure",
	"UPDATE events SET failure = $2 WHERE id = $1::bigint", 2 };

/* events replay ID | --failed | --since TIME */
static int
ctl_events_replay(int argc, char **argv)
{
	const char	*failed = NULL, *since = NULL, *p[3], *why;
	const struct ctl_opt opts[] = { { "failed", &failed, 1 },
			    { "since", &since, 0 }, { NULL, NULL, 0 } };
	struct db_res	 res;
	const char	*errstr;
	cJSON		*o = NULL, *done = NULL, *dup = NULL, *bad = NULL, *b;
	int		 i, row, rc, nd = 0, nu = 0, nb = 0;

	i = parse_opts(argc, argv, opts);
	if ((i < argc) + (failed != NULL) + (since != NULL) != 1)
		die(EX_USAGE_, "usage: events replay ID | --failed | --since "
		    "TIME");
	if (i < argc) {
		(void)util_strtonum(argv[i], 1, 9007199254740991LL, &errstr);
		if (errstr != NULL)
			die(EX_DATAERR_, "%s is not an event id", argv[i]);
	}
	check_time(since);
	p[0] = i < argc ? argv[i] : NULL;
	p[1] = failed != NULL ? "true" : "false";
	p[2] = since;
	q("events replay", REPLAY_COLS "WHERE ($1::bigint IS NULL OR id = "
	    "$1::bigint) AND (NOT $2::bool OR failed_at IS NOT NULL) AND "
	    "($3::timestamptz IS NULL OR received_at >= $3) ORDER BY id",
	    3, p, &res);
	if (i < argc && res.nrows == 0)
		die(EX_DATAERR_, "no such event: %s", argv[i]);
	if (json_out) {
		o = cJSON_CreateObject();
		done = cJSON_AddArrayToObject(o, "derived");
		dup = cJSON_AddArrayToObject(o, "already_stored");
		bad = cJSON_AddArrayToObject(o, "failed");
	}
	for (row = 0; row < res.nrows; row++) {
		rc = replay_event(&res, row, &why);
		if (rc == REPLAY_AWAY)
			die(EX_UNAVAIL_, "database unreachable: %s", why);
		if (rc == REPLAY_OK) {
			nd++;
			if (o != NULL)
				cJSON_AddItemToArray(done, cJSON_CreateString(
				    db_get(&res, row, 0)));
			else
				printf("event %s: derived\n",
				    db_get(&res, row, 0));
		} else if (rc == REPLAY_DUPLICATE) {
			nu++;
			if (o != NULL)
				cJSON_AddItemToArray(dup, cJSON_CreateString(
				    db_get(&res, row, 0)));
			else
				printf("event %s: already stored as another "
				    "event\n", db_get(&res, row, 0));
		} else {
			const char	*up[2];
			char		*e = util_vis(why != NULL ? why : "?");

			nb++;
			up[0] = db_get(&res, row, 0);
			up[1] = why;
			(void)db_exec(&st_failure, up, NULL);
			if (o != NULL) {
				b = cJSON_CreateObject();
				cJSON_AddStringToObject(b, "id", up[0]);
				cJSON_AddStringToObject(b, "reason",
				    why != NULL ? why : "?");
				cJSON_AddItemToArray(bad, b);
			} else
				printf("event %s: failed: %s\n", up[0], e);
			free(e);
		}
	}
	db_res_free(&res);
	if (o != NULL)
		json_print(o);
	else
		printf("derived %d, already stored %d, failed %d\n", nd, nu,
		    nb);
	return nb > 0 ? EX_DATAERR_ : 0;
}

/* events show: one event whole, as JSON (its parsed payload). */
static int
ctl_events_show(int argc, char **argv)
{
	struct db_res	 res;
	const char	*p[1], *errstr;
	cJSON		*o;

	p[0] = argv[parse_opts(argc, argv, NULL)];
	(void)util_strtonum(p[0], 1, 9007199254740991LL, &errstr);
	if (errstr != NULL)
		die(EX_DATAERR_, "%s is not an event id", p[0]);
	q("events show", "SELECT json_build_object('id', id::text, 'provider', "
	    "provider, 'event_type', event_type, 'provider_key', provider_key, "
	    "'organization_id', organization_id, 'received_at', "
	    "th_iso(received_at), 'route', route, 'client_addr', "
	    "host(client_addr), 'content_type', content_type, 'headers', "
	    "headers, 'payload', payload, 'answer', answer, 'spooled_at', "
	    "th_iso(spooled_at), 'assigned_at', th_iso(assigned_at), "
	    "'redacted_at', th_iso(redacted_at))::text FROM events "
	    "WHERE id = $1::bigint", 1, p, &res);
	if (res.nrows == 0)
		die(EX_DATAERR_, "no such event: %s", p[0]);
	if ((o = cJSON_Parse(db_get(&res, 0, 0))) == NULL)
		die(EX_SOFTWARE_, "events show: bad JSON");
	if (json_out)
		json_print(o);
	else {
		char	*s = cJSON_Print(o);

		printf("%s\n", s);
		cJSON_free(s);
		cJSON_Delete(o);
	}
	db_res_free(&res);
	return 0;
}

/*
 * events assign: give an unrouted event, and the call or message it
 * created, to an organization.
 */
static int
ctl_events_assign(int argc, char **argv)
{
	struct db_res	 res;
	const char	*p[2], *errstr, *why;
	char		*org;
	int		 i, rc;
	enum db_err	 e;
	cJSON		*o;

	i = parse_opts(argc, argv, NULL);
	(void)util_strtonum(argv[i], 1, 9007199254740991LL, &errstr);
	if (errstr != NULL)
		die(EX_DATAERR_, "%s is not an event id", argv[i]);
	org = org_resolve(argv[i + 1]);
	p[0] = argv[i];
	p[1] = org;
	if ((e = db_begin()) != DB_OK)
		die_db(e, "begin");
	q("events assign", "UPDATE events SET organization_id = $2, "
	    "assigned_at = now() WHERE id = $1::bigint AND organization_id IS "
	    "NULL RETURNING id", 2, p, &res);
	if (res.nrows == 0) {
		db_res_free(&res);
		db_rollback();
		q("events assign", "SELECT organization_id FROM events WHERE "
		    "id = $1::bigint", 1, p, &res);
		die(EX_DATAERR_, res.nrows == 0 ? "no such event: %s" :
		    "event %s already belongs to an organization", argv[i]);
	}
	db_res_free(&res);
	q("events assign", "UPDATE calls c SET organization_id = $2 FROM "
	    "events e WHERE e.id = $1::bigint AND c.organization_id IS NULL AND "
	    "c.provider = e.provider AND c.call_id IN (e.payload->>'CallSid', "
	    "e.payload->'call'->>'call_id', e.payload->>'callid', "
	    "e.payload->>'uniqueid', e.payload->>'call_id')", 2, p, NULL);
	q("events assign", "UPDATE messages m SET organization_id = $2 FROM "
	    "events e WHERE e.id = $1::bigint AND m.organization_id IS NULL AND "
	    "m.provider = e.provider AND m.message_id IN (e.payload->>"
	    "'MessageSid', e.payload->>'SmsSid', e.payload->>'id', "
	    "substr(e.provider_key, 5), split_part(e.provider_key, ':', 1))",
	    2, p, NULL);
	if ((e = db_commit()) != DB_OK)
		die_db(e, "commit");
	/* derive what routing would have: activity, notifications */
	q("events assign", REPLAY_COLS "WHERE id = $1::bigint", 1, p, &res);
	rc = res.nrows == 1 ? replay_event(&res, 0, &why) : REPLAY_FAILED;
	db_res_free(&res);
	if (rc == REPLAY_AWAY)
		die(EX_UNAVAIL_, "event %s assigned, not derived: database "
		    "unreachable", argv[i]);
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", argv[i]);
		cJSON_AddStringToObject(o, "organization_id", org);
		cJSON_AddBoolToObject(o, "derived", rc == REPLAY_OK);
		json_print(o);
	} else
		printf("event %s assigned to %s%s\n", argv[i], org,
		    rc == REPLAY_OK ? ", derived" : "");
	free(org);
	return 0;
}

static int
ctl_events_rejections(int argc, char **argv)
{
	static const char *const cols[] = { "id", "received_at",
	    "organization_id", "route", "status:n", "cause", "client_addr",
	    "detail", NULL };
	const char	*org = NULL, *since = NULL, *limit = NULL, *p[3];
	const struct ctl_opt opts[] = { { "org", &org, 0 },
			    { "since", &since, 0 }, { "limit", &limit, 0 },
			    { NULL, NULL, 0 } };
	struct db_res	 res;
	char		*id = NULL;

	(void)parse_opts(argc, argv, opts);
	check_time(since);
	p[0] = org != NULL ? (id = org_resolve(org)) : NULL;
	p[1] = since;
	p[2] = check_limit(limit, "100");
	q("events rejections", "SELECT id::text, th_iso(received_at), "
	    "organization_id, route, status, cause, host(client_addr), detail "
	    "FROM rejections WHERE ($1::uuid IS NULL OR organization_id = $1) "
	    "AND ($2::timestamptz IS NULL OR received_at >= $2) ORDER BY id "
	    "DESC LIMIT $3::int", 3, p, &res);
	print_rows("rejections", &res, cols);
	db_res_free(&res);
	free(id);
	return 0;
}

/*
 * prune: retention.  Raw events, rejections and read notifications
 * older than DAYS are deleted; the calls and messages they made stay, so
 * the KPIs do not change.  --redact also blanks what those old calls,
 * messages and activity say about people: transcripts, recordings,
 * summaries, message bodies, caller names.
 */
static int
ctl_prune(int argc, char **argv)
{
	static const struct {
		const char	*name;
		int		 redact;
		const char	*sql;
	} steps[] = {
		{ "events", 0, "DELETE FROM events WHERE received_at < $1" },
		{ "rejections", 0,
		    "DELETE FROM rejections WHERE received_at < $1" },
		{ "notifications", 0, "DELETE FROM notifications WHERE "
		    "read_at IS NOT NULL AND created_at < $1" },
		{ "outbox", 0, "DELETE FROM outbox WHERE state IN ('sent', "
		    "'failed') AND created_at < $1" },
		{ "calls_redacted", 1, "UPDATE calls SET transcript = NULL, "
		    "recording_url = NULL, summary = NULL, custom_data = NULL, "
		    "caller_name = NULL WHERE started_at < $1 AND "
		    "(transcript IS NOT NULL OR recording_url IS NOT NULL OR "
		    "summary IS NOT NULL OR custom_data IS NOT NULL OR "
		    "caller_name IS NOT NULL)" },
		{ "messages_redacted", 1, "UPDATE messages SET body = NULL, "
		    "media = '[]' WHERE created_at < $1 AND (body IS NOT NULL "
		    "OR media <> '[]')" },
		{ "activity_redacted", 1, "UPDATE activity SET summary = "
		    "CASE type WHEN 'call_ended' THEN 'Call completed' "
		    "WHEN 'call_missed' THEN 'Missed call' "
		    "WHEN 'sms_reply' THEN 'SMS received' "
		    "WHEN 'sms_sent' THEN 'SMS sent' "
		    "WHEN 'voicemail' THEN 'Voicemail' "
		    "WHEN 'inbound_call' THEN 'Inbound call' "
		    "ELSE summary END WHERE occurred_at < $1 AND type IN "
		    "('call_ended', 'call_missed', 'sms_reply', 'sms_sent', "
		    "'voicemail', 'inbound_call')" },
		{ NULL, 0, NULL }
	};
	const char	*days = NULL, *redact = NULL, *errstr, *p[1];
	const struct ctl_opt opts[] = { { "older-than", &days, 0 },
			    { "redact", &redact, 1 }, { NULL, NULL, 0 } };
	struct db_res	 res;
	char		*cutoff;
	cJSON		*o;
	int		 i;
	enum db_err	 e;

	(void)parse_opts(argc, argv, opts);
	if (days == NULL)
		die(EX_USAGE_, "usage: telehookctl prune --older-than DAYS "
		    "[--redact]");
	(void)util_strtonum(days, 1, 36500, &errstr);
	if (errstr != NULL)
		die(EX_DATAERR_, "--older-than must be 1 to 36500 days");
	q("prune", "SELECT (now() - make_interval(days => $1::int))::text", 1,
	    (const char *const *)&days, &res);
	cutoff = xstrdup(db_get(&res, 0, 0));
	db_res_free(&res);
	p[0] = cutoff;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "before", cutoff);
	if ((e = db_begin()) != DB_OK)
		die_db(e, "begin");
	for (i = 0; steps[i].name != NULL; i++) {
		if (steps[i].redact && redact == NULL)
			continue;
		q("prune", steps[i].sql, 1, p, &res);
		cJSON_AddNumberToObject(o, steps[i].name,
		    atof(res.cmdtuples));
		if (!json_out)
			printf("%s: %s\n", steps[i].name, res.cmdtuples);
		db_res_free(&res);
	}
	if ((e = db_commit()) != DB_OK)
		die_db(e, "commit");
	if (json_out)
		json_print(o);
	else
		cJSON_Delete(o);
	free(cutoff);
	return 0;
}

/* send: a signed sample webhook (ctlsend.c). */
static int
ctl_send(int argc, char **argv)
{
	const char	*url = NULL, *org = NULL, *to = "+15555550100";
	const char	*from = "+15555550199", *id = NULL;
	const struct ctl_opt opts[] = { { "url", &url, 0 }, { "org", &org, 0 },
			    { "to", &to, 0 }, { "from", &from, 0 },
			    { "id", &id, 0 }, { NULL, NULL, 0 } };
	char		 e_to[32], e_from[32];
	int		 i, code;

	i = parse_opts(argc, argv, opts);
	if (url == NULL)
		url = conf.public_url;
	if (url == NULL)
		die(EX_USAGE_, "send needs --url (or public_url)");
	if (phone_e164(to, e_to, sizeof(e_to)) == -1 ||
	    phone_e164(from, e_from, sizeof(e_from)) == -1)
		die(EX_DATAERR_, "--to and --from must be phone numbers");
	if (org != NULL && !store_is_uuid(org))
		die(EX_DATAERR_, "--org must be an organization id");
	code = send_sample(argv[i], argv[i + 1], url, org, e_to, e_from, id,
	    json_out);
	if (code == -1) {
		fprintf(stderr, "telehookctl: no such sample: %s %s; the "
		    "samples are:\n", argv[i], argv[i + 1]);
		send_list(stderr);
		return EX_USAGE_;
	}
	if (code >= 200 && code < 300)
		return 0;
	return code >= 400 && code < 500 ? EX_DATAERR_ : EX_UNAVAIL_;
}

/* An ISO 8601 UTC time for microseconds since the epoch. */
static void
iso_time(long long us, char *out, size_t len)
{
	time_t		 t = (time_t)(us / 1000000);
	struct tm	 tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* spool status: what waits, since when, and what was set aside. */
static int
ctl_spool_status(int argc, char **argv)
{
	long		 depth, quarantined;
	long long	 oldest;
	int		 writable;
	char		 when[32];
	cJSON		*o;

	(void)parse_opts(argc, argv, NULL);
	depth = spool_depth(conf.spool_dir);
	quarantined = spool_quarantined(conf.spool_dir);
	oldest = spool_oldest(conf.spool_dir);
	writable = spool_writable(conf.spool_dir);
	if (depth < 0)
		die(EX_NOINPUT_, "%s: cannot read the spool directory",
		    conf.spool_dir);
	if (oldest > 0)
		iso_time(oldest, when, sizeof(when));
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "spool_dir", conf.spool_dir);
		cJSON_AddBoolToObject(o, "writable", writable);
		cJSON_AddNumberToObject(o, "depth", (double)depth);
		cJSON_AddItemToObject(o, "oldest", oldest > 0 ?
		    cJSON_CreateString(when) : cJSON_CreateNull());
		cJSON_AddNumberToObject(o, "oldest_age_s", oldest > 0 ?
		    (double)((wall_us() - oldest) / 1000000) : 0);
		cJSON_AddNumberToObject(o, "quarantined", (double)quarantined);
		json_print(o);
	} else {
		printf("spool_dir: %s%s\n", conf.spool_dir, writable ? "" :
		    " (not writable or full)");
		if (oldest > 0)
			printf("waiting: %ld, oldest received %s (%lld s "
			    "ago)\n", depth, when, (wall_us() - oldest) /
			    1000000);
		else
			printf("waiting: %ld\n", depth);
		printf("quarantined: %ld\n", quarantined);
	}
	return 0;
}

/*
 * spool drain: replay everything waiting, exactly once; a file is
 * removed only after its transaction commits.
 */
static int
ctl_spool_drain(int argc, char **argv)
{
	struct drain_stats	 st;
	cJSON			*o;

	(void)parse_opts(argc, argv, NULL);
	log_setlevel(LOG_LEVEL_WARNING);	/* say what is quarantined */
	if (spool_drain(conf.spool_dir, 0, 0, &st) == -1) {
		if (st.busy)
			die(EX_TEMPFAIL_, "another process is draining %s",
			    conf.spool_dir);
		die(EX_CANTCREAT_, "%s: cannot lock the spool directory",
		    conf.spool_dir);
	}
	if (json_out) {
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "replayed", st.replayed);
		cJSON_AddNumberToObject(o, "already_stored", st.duplicates);
		cJSON_AddNumberToObject(o, "quarantined", st.quarantined);
		cJSON_AddNumberToObject(o, "refused", st.refused);
		cJSON_AddNumberToObject(o, "left", st.left);
		json_print(o);
	} else
		printf("replayed %d, already stored %d, quarantined %d, "
		    "refused %d, left %d\n", st.replayed, st.duplicates,
		    st.quarantined, st.refused, st.left);
	if (st.stopped)
		die(EX_UNAVAIL_, "database unreachable: %d requests left in "
		    "the spool", st.left);
	/* files left that it could not replay: not done */
	if (st.left > 0)
		die(EX_TEMPFAIL_, "%d requests left in the spool%s", st.left,
		    st.sealed > 0 ? " (sealed: is secret_key_file set?)" : "");
	return 0;
}

static void
conf_print_error(const char *file, int line, const char *msg)
{
	if (line > 0)
		fprintf(stderr, "telehookctl: %s:%d: %s\n", file, line, msg);
	else
		fprintf(stderr, "telehookctl: %s: %s\n", file, msg);
}

/* The command named by the first one or two words of argv. */
static const struct ctl_cmd *
ctl_lookup(int argc, char **argv, int *words)
{
	const struct ctl_cmd	*c;
	char			 two[128];

	if (argc >= 2) {
		snprintf(two, sizeof(two), "%s %s", argv[0], argv[1]);
		for (c = ctl_cmds; c->name != NULL; c++)
			if (strcmp(c->name, two) == 0) {
				*words = 2;
				return c;
			}
	}
	for (c = ctl_cmds; c->name != NULL; c++)
		if (strcmp(c->name, argv[0]) == 0) {
			*words = 1;
			return c;
		}
	return NULL;
}

int
main(int argc, char *argv[])
{
	static const struct option lo[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char		*path = TELEHOOK_CONF, *env;
	const struct ctl_cmd	*c;
	int			 ch, words, nops, i;
	char			**cargv;

	if ((env = getenv("TELEHOOK_CONF")) != NULL && *env != '\0')
		path = env;
	if ((env = getenv("TELEHOOK_SQLDIR")) != NULL && *env != '\0')
		ctl_sqldir = env;
	while ((ch = getopt_long(argc, argv, "+c:jh", lo, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'j':
			json_out = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage();
	if ((c = ctl_lookup(argc, argv, &words)) == NULL)
		die(EX_USAGE_, "unknown command: %s%s%s (telehookctl --help "
		    "lists them)", argv[0], argc > 1 ? " " : "",
		    argc > 1 ? argv[1] : "");

	/* Count operands (words not starting with "--", and option values). */
	cargv = xcalloc((size_t)argc + 2, sizeof(char *));
	cargv[0] = (char *)c->name;
	for (i = words; i < argc; i++)
		cargv[i - words + 1] = argv[i];
	for (i = words, nops = 0; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) == 0 && argv[i][2] != '\0') {
			if (strchr(argv[i], '=') == NULL)
				i++;	/* its value */
			continue;
		}
		nops++;
	}
	if (nops < c->minargs || (c->maxargs >= 0 && nops > c->maxargs))
		die(EX_USAGE_, "usage: telehookctl %s", c->usage);

	log_init("telehookctl", 1, LOG_LEVEL_ERR);	/* die() says it */
	if (crypto_init() == -1)
		die(EX_SOFTWARE_, "libsodium failed to initialise");
	if (conf_load(path, &conf, conf_print_error) != 0)
		die(EX_CONFIG_, "%s: configuration not loaded", path);
	if (conf.secret_key_file != NULL &&
	    crypto_use_key(conf.secret_key_file, &env) == -1)
		die(EX_CONFIG_, "%s: %s", conf.secret_key_file, env);
	db_setup(conf.conninfo, conf.statement_timeout_ms);
	if (c->needs_db) {
		enum db_err	 e;

		if ((e = db_connect()) != DB_OK)
			die_db(e, "connect");
	}
	ch = c->fn(argc - words + 1, cargv);
	free(cargv);
	db_close();
	conf_free(&conf);
	return ch;
}
