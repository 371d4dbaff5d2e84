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
#include "ctl.h"

/* Every noun's commands, in the order usage lists them. */
static const struct ctl_cmd *const ctl_tables[] = {
	ctl_schema_cmds, ctl_org_cmds, ctl_rules_cmds, ctl_campaign_cmds,
	ctl_events_cmds, ctl_endpoint_cmds, NULL
};

/*
 * The usage, with every command's line: on stdout and exit 0 when asked
 * for (--help), else on stderr and exit 64.
 */
static void NORETURN
usage(int asked)
{
	const struct ctl_cmd		*c;
	const struct ctl_cmd *const	*t;
	FILE				*f = asked ? stdout : stderr;

	fprintf(f, "usage: telehookctl [-c file] [--json] command ...\n"
	    "       telehookctl --help | --version\ncommands:\n");
	for (t = ctl_tables; *t != NULL; t++)
		for (c = *t; c->name != NULL; c++)
			fprintf(f, "\t%s\n", c->usage);
	exit(asked ? EX_OK_ : EX_USAGE_);
}

/*
 * A noun without a verb it has ("telehookctl org", "org frobnicate"):
 * the noun's commands, exit 64.  Returns when word is no noun.
 */
static void
ctl_noun(const char *word, const char *verb)
{
	const struct ctl_cmd		*c;
	const struct ctl_cmd *const	*t;
	size_t				 n = strlen(word);
	int				 found = 0;

	for (t = ctl_tables; *t != NULL; t++)
		for (c = *t; c->name != NULL; c++) {
			if (strncmp(c->name, word, n) != 0 || c->name[n] != ' ')
				continue;
			if (!found++)
				fprintf(stderr, "telehookctl: %s%s%s: %s; its "
				    "commands:\n", word, verb != NULL ? " " : "",
				    verb != NULL ? verb : "", verb != NULL ?
				    "no such command" : "a command is needed");
			fprintf(stderr, "\t%s\n", c->usage);
		}
	if (found)
		exit(EX_USAGE_);
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
	const struct ctl_cmd		*c;
	const struct ctl_cmd *const	*t;
	char				 two[128];

	/* two words first: "events list" before a one-word "events" */
	if (argc >= 2) {
		snprintf(two, sizeof(two), "%s %s", argv[0], argv[1]);
		for (t = ctl_tables; *t != NULL; t++)
			for (c = *t; c->name != NULL; c++)
				if (strcmp(c->name, two) == 0) {
					*words = 2;
					return c;
				}
	}
	for (t = ctl_tables; *t != NULL; t++)
		for (c = *t; c->name != NULL; c++)
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
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char		*path = TELEHOOK_CONF, *env;
	const struct ctl_cmd	*c;
	int			 ch, words, i;
	char			**cargv;

	if ((env = getenv("TELEHOOK_CONF")) != NULL && *env != '\0')
		path = env;
	if ((env = getenv("TELEHOOK_SQLDIR")) != NULL && *env != '\0')
		ctl_sqldir = env;
	while ((ch = getopt_long(argc, argv, "+c:jhV", lo, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'j':
			ctl_json_out = 1;
			break;
		case 'h':
			usage(1);
		case 'V':
			printf("telehookctl %s\n", PACKAGE_VERSION);
			return EX_OK_;
		default:
			usage(0);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage(0);
	if ((c = ctl_lookup(argc, argv, &words)) == NULL) {
		ctl_noun(argv[0], argc > 1 ? argv[1] : NULL);
		ctl_die(EX_USAGE_, "unknown command: %s%s%s (telehookctl --help "
		    "lists them)", argv[0], argc > 1 ? " " : "",
		    argc > 1 ? argv[1] : "");
	}

	/*
	 * The command's words become argv[0]; its operands are counted by
	 * ctl_parse_opts() against its own option table (ctl_util.c).
	 */
	cargv = xcalloc((size_t)argc + 2, sizeof(char *));
	cargv[0] = (char *)c->name;
	for (i = words; i < argc; i++)
		cargv[i - words + 1] = argv[i];
	ctl_current = c;

	log_init("telehookctl", 1, LOG_LEVEL_ERR);	/* ctl_die() says it */
	if (crypto_init() == -1)
		ctl_die(EX_SOFTWARE_, "libsodium failed to initialise");
	/* one out-of-memory policy: cJSON allocates as the rest does */
	cJSON_InitHooks(&(cJSON_Hooks){ xmalloc, free });
	if (conf_load(path, &conf, conf_print_error) != 0)
		ctl_die(EX_CONFIG_, "%s: configuration not loaded", path);
	if (conf.secret_key_file != NULL &&
	    crypto_use_key(conf.secret_key_file, &env) == -1)
		ctl_die(EX_CONFIG_, "%s: %s", conf.secret_key_file, env);
	/* connected on first use: a usage error is said before that */
	db_setup(conf.conninfo, conf.statement_timeout_ms);
	db_set_pooler(conf.pooler);
	spool_set_replay(worker_replay);
	ch = c->fn(argc - words + 1, cargv);
	free(cargv);
	db_close();
	conf_free(&conf);
	return ch;
}
