/*
 * conf.h: the configuration (conf.c) and the address lists it holds
 * (cidr.c); included by extern.h, after the macros it uses.
 */
#ifndef TELEHOOK_CONF_H
#define TELEHOOK_CONF_H

/* cidr.c: address lists for allowed_ips and trusted_proxies. */
struct cidr {
	int		 family;	/* AF_INET or AF_INET6 */
	unsigned char	 addr[16];
	int		 bits;
};
struct cidrlist {
	struct cidr	*v;
	size_t		 n;
};
int		 cidr_parse(const char *, struct cidr *);
int		 cidrlist_parse(const char *, struct cidrlist *,
		    const char **) MUSTCHECK;
int		 cidrlist_match(const struct cidrlist *, const char *);
void		 cidrlist_free(struct cidrlist *);

/* conf.c: the configuration file, driven by one table of keys. */
struct conf_provider_twilio {
	char		*api_url;
	char		*auth_token;
	char		*auth_token_previous;
	char		*webhook_secret;
	int		 insecure_allow_unsigned;
};
struct conf_provider_retell {
	char		*api_key;
	char		*api_key_previous;
	char		*webhook_secret;
	long long	 signature_tolerance_s;
	char		*allowed_ips;
	struct cidrlist	 allowed;
	int		 insecure_allow_unsigned;
};
struct conf_provider_voipms {
	char		*api_url;
	char		*api_username;
	char		*api_password;
	char		*url_token;
	char		*url_token_previous;
	char		*allowed_ips;
	struct cidrlist	 allowed;
	int		 insecure_allow_unsigned;
	char		*timezone;	/* the account's: CDR dates */
	char		*currency;	/* the account's: CDR totals */
};
/* [delivery]: events to the organizations' own endpoints */
#define DELIVERY_MAX_ATTEMPTS	16
struct conf_delivery {
	int		 allow_private;	/* loopback, RFC 1918, link-local */
	long long	 defer_s;	/* while the CPU is contended */
	char		*retry_schedule;
	long long	 timeout_s;
};
/* [smtp]: the operator's relay for the staff's e-mail alerts */
struct conf_smtp {
	char		*url;
	char		*from;
	char		*username;
	char		*password;
};
struct conf {
	char		*path;
	/* [database] */
	char		*conninfo;
	long long	 statement_timeout_ms;
	long long	 lock_timeout_ms;
	int		 pooler;	/* enum db_pooler */
	char		*read_conninfo;	/* a replica for the API's reads */
	long long	 read_max_lag_ms;
	/* [server] */
	char		*public_url;
	long long	 max_body_bytes;
	char		*trusted_proxies;
	struct cidrlist	 proxies;
	char		*spool_dir;
	char		*health_socket;	/* /healthz's own listener */
	char		*secret_key_file;
	int		 log_level;
	long long	 cache_ttl_s;
	long long	 answer_budget_ms;	/* a webhook's answer, at most */
	struct conf_provider_twilio twilio;
	struct conf_provider_retell retell;
	struct conf_provider_voipms voipms;
	struct conf_smtp smtp;
	struct conf_delivery delivery;
	int		 has_secrets;	/* the file names a secret */
};
enum conf_type {
	CONF_STR,
	CONF_INT,
	CONF_BOOL,
	CONF_URL,
	CONF_CIDRS,
	CONF_PATH,
	CONF_LOGLEVEL,
	CONF_CONNINFO,
	CONF_APIURL,
	CONF_POOLER,
	CONF_SMTPURL,
	CONF_SCHEDULE,
	CONF__MAX
};
#define CONF_SECRET	0x01	/* never printed; file must be private */
struct conf_key {
	const char	*section;
	const char	*name;
	enum conf_type	 type;
	size_t		 off;		/* offsetof(struct conf, ...) */
	int		 flags;
	const char	*def;		/* default, as written in the file */
	long long	 min;
	long long	 max;
};
extern const struct conf_key conf_keys[];
extern struct conf conf;
typedef void	(*conf_errfn)(const char *, int, const char *);
int		 conf_load(const char *, struct conf *, conf_errfn);
int		 conf_parse(const char *, const char *, size_t, struct conf *,
		    conf_errfn);
void		 conf_defaults(struct conf *);
void		 conf_free(struct conf *);
int		 conf_check_secrecy(const char *, int, const char **);
int		 conf_unquote(const char *, size_t, char **, const char **);

#endif /* TELEHOOK_CONF_H */
