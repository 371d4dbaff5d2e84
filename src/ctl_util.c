/*
 * ctl_util.c: what every telehookctl command shares: one-line errors
 * with sysexits(3) codes, queries that die on failure, options, and the
 * output (a human table with control characters escaped, or exact
 * JSON).
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

int		 ctl_json_out;
const struct ctl_cmd	*ctl_current;	/* telehookctl.c sets it */
const char	*ctl_sqldir = TELEHOOK_SQLDIR;

/* A one-line message on stderr, then exit with code. */
void NORETURN PRINTFLIKE(2, 3)
ctl_die(int code, const char *fmt, ...)
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
void NORETURN
ctl_die_db(enum db_err e, const char *what)
{
	if (e == DB_ECONN)
		ctl_die(EX_UNAVAIL_, "database unreachable: %s", db_errmsg());
	if (e == DB_ETIMEOUT)
		ctl_die(EX_TEMPFAIL_, "%s: statement timed out", what);
	ctl_die(EX_SOFTWARE_, "%s: %s", what, db_errmsg());
}

/*
 * A row id from the command line (a bigint, as JSON can carry it);
 * what names it in the refusal, "an event id".
 */
const char *
ctl_check_id(const char *s, const char *what)
{
	const char	*errstr;

	(void)util_strtonum(s, 1, 9007199254740991LL, &errstr);
	if (errstr != NULL)
		ctl_die(EX_DATAERR_, "%s is not %s", s, what);
	return s;
}

/* Run sql; die on failure.  Caller frees *res. */
void
ctl_q(const char *what, const char *sql, int n, const char *const *params,
    struct db_res *res)
{
	enum db_err	 e;

	if ((e = db_query(sql, n, params, res)) != DB_OK)
		ctl_die_db(e, what);
}

/*
 * Output.  Columns are "name" for a string, "name:n" for a number and
 * "name:b" for a boolean; the suffix only shapes JSON.  Each is the
 * result's column of that name (the statement's AS), not its place.
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

cJSON *
ctl_json_value(const char *v, char type)
{
	if (v == NULL)
		return cJSON_CreateNull();
	if (type == 'n')
		return cJSON_CreateNumber(strtod(v, NULL));
	if (type == 'b')
		return cJSON_CreateBool(strcmp(v, "t") == 0);
	return cJSON_CreateString(v);
}

cJSON *
ctl_json_row(const struct db_res *res, int row, const char *const *cols)
{
	cJSON	*o = cJSON_CreateObject();
	char	 name[64], type;
	int	 j;

	for (j = 0; cols[j] != NULL; j++) {
		col_split(cols[j], name, sizeof(name), &type);
		cJSON_AddItemToObject(o, name,
		    ctl_json_value(db_val(res, row, name), type));
	}
	return o;
}

/* Print and free a JSON document. */
void
ctl_json_print(cJSON *o)
{
	char	*s;

	if ((s = cJSON_PrintUnformatted(o)) == NULL)
		ctl_die(EX_SOFTWARE_, "out of memory");
	printf("%s\n", s);
	cJSON_free(s);
	cJSON_Delete(o);
}

/* All rows: {"key":[{...}, ...]}, or an aligned table with a header. */
void
ctl_print_rows(const char *key, const struct db_res *res,
    const char *const *cols)
{
	cJSON	*o, *a;
	char	 name[64], type;
	int	 i, j, ncols, *at;
	size_t	*w;
	char	**vis;
	const char *v;

	for (ncols = 0; cols[ncols] != NULL; ncols++)
		;
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		a = cJSON_AddArrayToObject(o, key);
		for (i = 0; i < res->nrows; i++)
			cJSON_AddItemToArray(a, ctl_json_row(res, i, cols));
		ctl_json_print(o);
		return;
	}
	/* the table shows fields escaped (util_vis); --json stays exact */
	at = xcalloc((size_t)ncols + 1, sizeof(*at));
	for (j = 0; j < ncols; j++) {
		col_split(cols[j], name, sizeof(name), &type);
		at[j] = db_col(res, name);
	}
	vis = xcalloc((size_t)res->nrows * (size_t)ncols + 1, sizeof(*vis));
	for (i = 0; i < res->nrows; i++)
		for (j = 0; j < ncols; j++) {
			if ((v = db_get(res, i, at[j])) == NULL)
				continue;
			col_split(cols[j], name, sizeof(name), &type);
			if (type == 'b')	/* a boolean reads yes or no */
				v = strcmp(v, "t") == 0 ? "yes" : "no";
			vis[i * ncols + j] = util_vis(v);
		}
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
			v = vis[i * ncols + j];
			if (v == NULL)
				v = "-";
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
	free(at);
}

/* "name: value", the value escaped for the terminal. */
void
ctl_print_vis(const char *name, const char *v)
{
	char	*e = util_vis(v != NULL ? v : "-");

	printf("%s: %s\n", name, e);
	free(e);
}

/* Row 0 as {...}, or as "name: value" lines. */
void
ctl_print_object(const struct db_res *res, const char *const *cols)
{
	char	 name[64], type;
	int	 j;

	if (ctl_json_out) {
		ctl_json_print(ctl_json_row(res, 0, cols));
		return;
	}
	for (j = 0; cols[j] != NULL; j++) {
		col_split(cols[j], name, sizeof(name), &type);
		ctl_print_vis(name, db_val(res, 0, name));
	}
}

/* Reset getopt and parse command options; returns the operand index. */

int
ctl_parse_opts(int argc, char **argv, const struct ctl_opt *opts)
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
				ctl_die(EX_USAGE_, "unknown option -%c", optopt);
			ctl_die(EX_USAGE_, "unknown or incomplete option %s",
			    argv[optind - 1]);
		}
		*opts[idx].val = opts[idx].flag ? "yes" : optarg;
	}
	/* the operands the command takes, counted knowing its options */
	n = 0;
	for (i = optind; i < argc; i++)
		n++;
	if (ctl_current != NULL && (n < ctl_current->minargs ||
	    (ctl_current->maxargs >= 0 && n > ctl_current->maxargs)))
		ctl_die(EX_USAGE_, "usage: telehookctl %s", ctl_current->usage);
	return optind;
}

/* The id of the organization named by arg (its UUID or its name). */
char *
ctl_resolve_org(const char *arg)
{
	struct db_res	 res;
	const char	*p[1] = { arg };
	char		*id;

	ctl_q("organization", "SELECT id FROM organizations "
	    "WHERE id::text = lower($1) OR lower(name) = lower($1)", 1, p,
	    &res);
	if (res.nrows != 1)
		ctl_die(EX_DATAERR_, "no such organization: %s", arg);
	id = xstrdup(db_val(&res, 0, "id"));
	db_res_free(&res);
	return id;
}

/*
 * The rows sql ($1: the organization's id) returns, for ORG in argv;
 * with optional, ORG may be left out and $1 is then NULL.
 */
int
ctl_rows(int argc, char **argv, const char *what, const char *sql,
    const char *const *cols, int optional)
{
	struct db_res	 res;
	const char	*p[1] = { NULL };
	char		*id = NULL;
	int		 i;

	i = ctl_parse_opts(argc, argv, NULL);
	if (i < argc || !optional)
		p[0] = id = ctl_resolve_org(argv[i]);
	ctl_q(what, sql, 1, p, &res);
	ctl_print_rows(what, &res, cols);
	db_res_free(&res);
	free(id);
	return 0;
}

/* Is tz a time zone PostgreSQL knows? */
int
ctl_tz_valid(const char *tz)
{
	struct db_res	 res;
	const char	*p[1] = { tz };
	int		 ok;

	ctl_q("time zone", "SELECT 1 FROM pg_timezone_names WHERE name = $1",
	    1, p, &res);
	ok = res.nrows > 0;
	db_res_free(&res);
	return ok;
}

/*
 * A comma-separated list of words from set (NULL-terminated) as a
 * PostgreSQL array literal in out (empty): NULL, or the first word
 * that is not in the set (an empty one included).
 */
const char *
ctl_words(const char *v, const char *const *set, struct buf *out)
{
	static char	 word[64];
	const char	*p = v, *e;
	size_t		 n;
	int		 i;

	for (;;) {
		e = strchr(p, ',');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		snprintf(word, sizeof(word), "%.*s", (int)n, p);
		for (i = 0; set[i] != NULL; i++)
			if (strcmp(word, set[i]) == 0)
				break;
		if (set[i] == NULL || n >= sizeof(word))
			return word;
		ctl_arr(out, word);
		if (e == NULL)
			break;
		p = e + 1;
	}
	(void)ctl_arr_end(out);
	return NULL;
}

/*
 * An element of a PostgreSQL array literal in a (empty until the first):
 * quoted, or NULL; ctl_arr_end() closes it, "{}" when none was added.
 */
void
ctl_arr(struct buf *a, const char *s)
{
	buf_putc(a, a->len == 0 ? '{' : ',');
	if (s == NULL) {
		buf_puts(a, "NULL");
		return;
	}
	buf_putc(a, '"');
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			buf_putc(a, '\\');
		buf_putc(a, *s);
	}
	buf_putc(a, '"');
}

const char *
ctl_arr_end(struct buf *a)
{
	buf_puts(a, a->len == 0 ? "{}" : "}");
	return buf_cstr(a);
}

/* A file whole, at most max bytes, NUL-terminated (caller frees); dies. */
char *
ctl_read_file(const char *path, size_t max)
{
	struct buf	 b;
	char		 chunk[8192];
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		ctl_die(EX_NOINPUT_, "%s: %s", path, strerror(errno));
	buf_init(&b);
	b.max = max;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(&b, chunk, (size_t)n);
	close(fd);
	if (n == -1 || b.failed)
		ctl_die(EX_NOINPUT_, "%s: %s", path, n == -1 ? strerror(errno) :
		    "too large");
	buf_putc(&b, '\0');
	return b.data;
}
