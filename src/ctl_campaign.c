/*
 * ctl_campaign.c: telehookctl campaign add, import and show.
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

/* campaign add: an empty campaign of an organization. */
static int
ctl_campaign_add(int argc, char **argv)
{
	struct db_res	 res;
	const char	*p[2];
	char		*id;
	int		 i;
	cJSON		*o;

	i = ctl_parse_opts(argc, argv, NULL);
	if (argv[i + 1][0] == '\0' || strlen(argv[i + 1]) > 200)
		ctl_die(EX_DATAERR_, "a campaign name is 1 to 200 characters");
	id = ctl_resolve_org(argv[i]);
	p[0] = id;
	p[1] = argv[i + 1];
	ctl_q("campaign add", "INSERT INTO campaigns (organization_id, name) "
	    "VALUES ($1, $2) RETURNING id", 2, p, &res);
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", db_val(&res, 0, "id"));
		cJSON_AddStringToObject(o, "organization_id", id);
		cJSON_AddStringToObject(o, "name", argv[i + 1]);
		ctl_json_print(o);
	} else
		printf("%s\n", db_val(&res, 0, "id"));
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
		ctl_die(EX_DATAERR_, "%s is not a campaign id", arg);
	ctl_q("campaign", "SELECT 1 FROM campaigns WHERE id = $1", 1, p, &res);
	if (res.nrows != 1)
		ctl_die(EX_DATAERR_, "no such campaign: %s", arg);
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
	int		 i, c, n = 0, lineno = 0;
	enum db_err	 e;
	cJSON		*o, *a;

	i = ctl_parse_opts(argc, argv, NULL);
	campaign_check(argv[i]);
	data = ctl_read_file(argv[i + 1], 16 * 1024 * 1024);
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
			ctl_die(EX_DATAERR_, "%s:%d: malformed quoted field",
			    argv[i + 1], lineno);
		if (*s != '\0')
			ctl_die(EX_DATAERR_, "%s:%d: more than two columns "
			    "(phone[,name])", argv[i + 1], lineno);
		if (phone_e164(phone, e164, sizeof(e164)) == -1) {
			if (n == 0 && lineno == 1)
				goto next_line;	/* a header row */
			ctl_die(EX_DATAERR_, "%s:%d: %s is not a phone number",
			    argv[i + 1], lineno, phone);
		}
		if (strlen(name) > 200)
			ctl_die(EX_DATAERR_, "%s:%d: name longer than 200 "
			    "characters", argv[i + 1], lineno);
		xasprintf(&probe, ",%s,", e164);
		if (strstr(seen, probe) != NULL)
			ctl_die(EX_DATAERR_, "%s:%d: %s appears twice",
			    argv[i + 1], lineno, e164);
		free(probe);
		xasprintf(&grown, "%s%s,", seen, e164);
		free(seen);
		seen = grown;
		/* tab-separated: neither a number nor a name holds a tab */
		if (strchr(name, '\t') != NULL)
			ctl_die(EX_DATAERR_, "%s:%d: a tab in the name",
			    argv[i + 1], lineno);
		buf_printf(&phones, "%s%s", n ? "\t" : "", e164);
		buf_printf(&names, "%s%s", n ? "\t" : "", name);
		n++;
next_line:
		free(phone);
		free(name);
	}
	if (n == 0)
		ctl_die(EX_DATAERR_, "%s: no contacts", argv[i + 1]);
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
		ctl_die_db(e, "campaign import");
	c = db_col(&res, "id");
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "campaign_id", argv[i]);
		a = cJSON_AddArrayToObject(o, "contacts");
		for (i = 0; i < res.nrows; i++)
			cJSON_AddItemToArray(a,
			    cJSON_CreateString(db_get(&res, i, c)));
		ctl_json_print(o);
	} else
		for (i = 0; i < res.nrows; i++)
			printf("%s\n", db_get(&res, i, c));
	db_res_free(&res);
	buf_free(&phones);
	buf_free(&names);
	free(seen);
	free(data);
	return 0;
}

/*
 * campaign show: the progress shape of GET .../campaigns (architecture.md
 * §11).
 */
static int
ctl_campaign_show(int argc, char **argv)
{
	/* the first three are strings, the rest numbers */
	static const char *const fields[] = { "id", "name",
	    "organization_id", "total_contacts", "processed", "successful",
	    NULL };
	static const char *const states[] = { "pending", "calling",
	    "completed", "failed", "no_answer", NULL };
	struct db_res	 res;
	const char	*p[1];
	cJSON		*o, *by;
	int		 i;

	p[0] = argv[ctl_parse_opts(argc, argv, NULL)];
	campaign_check(p[0]);
	/* a column per state, called as the state */
	ctl_q("campaign show", "SELECT c.id, c.name, c.organization_id, "
	    "(SELECT count(*) FROM campaign_contacts WHERE campaign_id = c.id) "
	    "AS total_contacts, c.processed, c.successful, "
	    "(SELECT count(*) FROM campaign_contacts WHERE campaign_id = c.id "
	    "AND status = 'pending') AS pending, "
	    "(SELECT count(*) FROM campaign_contacts WHERE campaign_id = c.id "
	    "AND status = 'calling') AS calling, "
	    "(SELECT count(*) FROM campaign_contacts WHERE campaign_id = c.id "
	    "AND status = 'completed') AS completed, "
	    "(SELECT count(*) FROM campaign_contacts WHERE campaign_id = c.id "
	    "AND status = 'failed') AS failed, "
	    "(SELECT count(*) FROM campaign_contacts WHERE campaign_id = c.id "
	    "AND status = 'no_answer') AS no_answer "
	    "FROM campaigns c WHERE c.id = $1", 1, p, &res);
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		for (i = 0; i < 3; i++)
			cJSON_AddStringToObject(o, fields[i],
			    db_val(&res, 0, fields[i]));
		for (; fields[i] != NULL; i++)
			cJSON_AddNumberToObject(o, fields[i],
			    atof(db_val(&res, 0, fields[i])));
		by = cJSON_AddObjectToObject(o, "contacts_by_status");
		for (i = 0; states[i] != NULL; i++)
			cJSON_AddNumberToObject(by, states[i],
			    atof(db_val(&res, 0, states[i])));
		ctl_json_print(o);
	} else {
		for (i = 0; fields[i] != NULL; i++)
			ctl_print_vis(fields[i], db_val(&res, 0, fields[i]));
		for (i = 0; states[i] != NULL; i++)
			ctl_print_vis(states[i], db_val(&res, 0, states[i]));
	}
	db_res_free(&res);
	return 0;
}

const struct ctl_cmd ctl_campaign_cmds[] = {
	{ "campaign add", 2, 2, 1, "campaign add ORG NAME", ctl_campaign_add },
	{ "campaign import", 2, 2, 1, "campaign import CAMPAIGN FILE.csv",
	    ctl_campaign_import },
	{ "campaign show", 1, 1, 1, "campaign show CAMPAIGN",
	    ctl_campaign_show },
	{ NULL, 0, 0, 0, NULL, NULL }
};
