/*
 * cache.c: what a worker remembers of the organizations, so it can still
 * answer a caller sensibly while PostgreSQL is away: each organization's
 * settings and the numbers it owns, read again every cache_ttl_s while
 * the database answers.  When a refresh fails the last good copy stays.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extern.h"

struct cache_number {
	char		*e164;
	size_t		 org;		/* index into cache_orgs */
};

static struct org		*cache_orgs;
static size_t			 cache_norgs;
static struct cache_number	*cache_nums;
static size_t			 cache_nnums;
static struct db_res		 cache_secrets;	/* its rows */
static struct {			/* its columns, by name (db_col) */
	int	 provider, account, sealed, org, hash;
} cache_sc;
static long long		 cache_loaded_us = -1;
#define CACHE_SECRET(i, col)	db_get(&cache_secrets, (i), cache_sc.col)

static const struct db_stmt st_cache_orgs = { "cache_orgs",
	"SELECT id, name, timezone, greeting, forward_to, hours, after_hours, "
	"retell_agent_id, agent_sip, EXISTS (SELECT 1 FROM closures c WHERE "
	"c.organization_id = o.id AND (now() AT TIME ZONE o.timezone)::date "
	"BETWEEN c.first_day AND c.last_day) AS closed "
	"FROM organizations o", 0 };
static const struct db_stmt st_cache_numbers = { "cache_numbers",
	"SELECT e164, organization_id FROM phone_numbers", 0 };
static const struct db_stmt st_cache_secrets = { "cache_secrets",
	"SELECT provider, account_id, secret_sealed, organization_id, "
	"secret_hash FROM provider_accounts", 0 };

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static void
cache_clear(struct org *orgs, size_t norgs, struct cache_number *nums,
    size_t nnums)
{
	size_t	 i;

	for (i = 0; i < norgs; i++)
		store_org_free(&orgs[i]);
	free(orgs);
	for (i = 0; i < nnums; i++)
		free(nums[i].e164);
	free(nums);
}

static int
cache_cmp_org(const void *key, const void *elem)
{
	return strcmp(key, ((const struct org *)elem)->id);
}

static int
cache_cmp_num(const void *key, const void *elem)
{
	return strcmp(key, ((const struct cache_number *)elem)->e164);
}

/* Sorted here, with strcmp, whatever the database's collation. */
static int
cache_sort_org(const void *a, const void *b)
{
	return strcmp(((const struct org *)a)->id, ((const struct org *)b)->id);
}

static int
cache_sort_num(const void *a, const void *b)
{
	return strcmp(((const struct cache_number *)a)->e164,
	    ((const struct cache_number *)b)->e164);
}

/*
 * Read the organizations again if the copy is older than cache_ttl_s (or
 * force).  Returns 0 when the copy is fresh.
 */
int
cache_refresh(int force)
{
	struct db_res		 ro, rn, rs;
	struct org		*orgs;
	struct cache_number	*nums;
	struct org		*o;
	const char		*errstr, *v;
	size_t			 i, n = 0;
	int			 c_id, c_name, c_tz, c_greeting, c_forward;
	int			 c_hours, c_after, c_agent, c_sip, c_closed;
	int			 c_e164, c_org;
	long long		 now = util_now_us();

	if (!force && cache_loaded_us >= 0 &&
	    now - cache_loaded_us < conf.cache_ttl_s * 1000000LL)
		return 0;
	if (db_exec(&st_cache_orgs, NULL, &ro) != DB_OK)
		return -1;
	if (db_exec(&st_cache_numbers, NULL, &rn) != DB_OK) {
		db_res_free(&ro);
		return -1;
	}
	if (db_exec(&st_cache_secrets, NULL, &rs) != DB_OK) {
		db_res_free(&ro);
		db_res_free(&rn);
		return -1;
	}
	/* still sealed: opened only when a request needs one */
	db_res_free(&cache_secrets);
	cache_secrets = rs;
	cache_sc.provider = db_col(&rs, "provider");
	cache_sc.account = db_col(&rs, "account_id");
	cache_sc.sealed = db_col(&rs, "secret_sealed");
	cache_sc.org = db_col(&rs, "organization_id");
	cache_sc.hash = db_col(&rs, "secret_hash");
	c_id = db_col(&ro, "id");
	c_name = db_col(&ro, "name");
	c_tz = db_col(&ro, "timezone");
	c_greeting = db_col(&ro, "greeting");
	c_forward = db_col(&ro, "forward_to");
	c_hours = db_col(&ro, "hours");
	c_after = db_col(&ro, "after_hours");
	c_agent = db_col(&ro, "retell_agent_id");
	c_sip = db_col(&ro, "agent_sip");
	c_closed = db_col(&ro, "closed");
	orgs = xcalloc((size_t)ro.nrows + 1, sizeof(*orgs));
	for (i = 0; i < (size_t)ro.nrows; i++) {
		o = &orgs[i];
		o->id = xstrdup(db_get(&ro, (int)i, c_id));
		o->name = dup_or_null(db_get(&ro, (int)i, c_name));
		o->timezone = dup_or_null(db_get(&ro, (int)i, c_tz));
		o->greeting = dup_or_null(db_get(&ro, (int)i, c_greeting));
		o->forward_to = dup_or_null(db_get(&ro, (int)i, c_forward));
		o->after_hours = dup_or_null(db_get(&ro, (int)i, c_after));
		o->retell_agent_id = dup_or_null(db_get(&ro, (int)i, c_agent));
		o->agent_sip = dup_or_null(db_get(&ro, (int)i, c_sip));
		/* as of the refresh: cache_ttl_s bounds how stale */
		o->closed = (v = db_get(&ro, (int)i, c_closed)) != NULL &&
		    strcmp(v, "t") == 0;
		if ((v = db_get(&ro, (int)i, c_hours)) != NULL &&
		    hours_parse(v, &o->hours, &errstr) == 0)
			o->has_hours = 1;
	}
	qsort(orgs, (size_t)ro.nrows, sizeof(*orgs), cache_sort_org);
	nums = xcalloc((size_t)rn.nrows + 1, sizeof(*nums));
	c_e164 = db_col(&rn, "e164");
	c_org = db_col(&rn, "organization_id");
	for (i = 0; i < (size_t)rn.nrows; i++) {
		o = bsearch(db_get(&rn, (int)i, c_org), orgs, (size_t)ro.nrows,
		    sizeof(*orgs), cache_cmp_org);
		if (o == NULL)
			continue;	/* added between the two reads */
		nums[n].e164 = xstrdup(db_get(&rn, (int)i, c_e164));
		nums[n].org = (size_t)(o - orgs);
		n++;
	}
	qsort(nums, n, sizeof(*nums), cache_sort_num);
	cache_clear(cache_orgs, cache_norgs, cache_nums, cache_nnums);
	cache_orgs = orgs;
	cache_norgs = (size_t)ro.nrows;
	cache_nums = nums;
	cache_nnums = n;
	cache_loaded_us = now;
	db_res_free(&ro);
	db_res_free(&rn);
	return 0;
}

/* Copy cached organization i into o, with the local time of now. */
static void
cache_copy(size_t i, struct org *o)
{
	const struct org	*c = &cache_orgs[i];

	memset(o, 0, sizeof(*o));
	o->id = xstrdup(c->id);
	o->name = dup_or_null(c->name);
	o->timezone = dup_or_null(c->timezone);
	o->greeting = dup_or_null(c->greeting);
	o->forward_to = dup_or_null(c->forward_to);
	o->after_hours = dup_or_null(c->after_hours);
	o->retell_agent_id = dup_or_null(c->retell_agent_id);
	o->agent_sip = dup_or_null(c->agent_sip);
	o->closed = c->closed;
	o->hours = c->hours;
	o->has_hours = c->has_hours;
	util_local_at(o->timezone, time(NULL), &o->wday, &o->minute);
}

/*
 * The cached organization with id, or owning number, into o (which the
 * caller frees with store_org_free).  -1 when the cache knows none.
 */
int
cache_org(const char *id, const char *number, struct org *o)
{
	const struct org		*c = NULL;
	const struct cache_number	*n;
	char				 e164[32];

	memset(o, 0, sizeof(*o));
	if (id != NULL)
		c = bsearch(id, cache_orgs, cache_norgs, sizeof(*cache_orgs),
		    cache_cmp_org);
	else if (number != NULL && phone_e164(number, e164,
	    sizeof(e164)) == 0 && (n = bsearch(e164, cache_nums, cache_nnums,
	    sizeof(*cache_nums), cache_cmp_num)) != NULL)
		c = &cache_orgs[n->org];
	if (c == NULL)
		return -1;
	cache_copy((size_t)(c - cache_orgs), o);
	return 0;
}

/*
 * The sealed secrets stored for provider and account, for when the
 * database cannot be asked.  Row i of the result: cache_secret(i).
 */
int
cache_secret_count(void)
{
	return cache_secrets.nrows;
}

const char *
cache_secret(int i, const char *provider, const char *account)
{
	if (strcmp(CACHE_SECRET(i, provider), provider) != 0 ||
	    strcmp(CACHE_SECRET(i, account), account) != 0)
		return NULL;
	return CACHE_SECRET(i, sealed);
}

/* The provider of row i. */
const char *
cache_secret_provider(int i)
{
	return CACHE_SECRET(i, provider);
}

/* The organization that stored row i. */
const char *
cache_secret_owner(int i)
{
	return CACHE_SECRET(i, org);
}

/*
 * The organization whose secret of provider has the SHA-256 hash (hex);
 * NULL if none.  For VoIP.ms URL tokens while the database is away.
 */
const char *
cache_secret_by_hash(const char *provider, const char *hash)
{
	int	 i;

	for (i = 0; i < cache_secrets.nrows; i++)
		if (strcmp(CACHE_SECRET(i, provider), provider) == 0 &&
		    CACHE_SECRET(i, hash) != NULL &&
		    crypto_streq(CACHE_SECRET(i, hash), hash))
			return CACHE_SECRET(i, org);
	return NULL;
}

/* The sealed secret of row i when it is provider's for organization. */
const char *
cache_secret_org(int i, const char *provider, const char *org)
{
	if (strcmp(CACHE_SECRET(i, provider), provider) != 0 ||
	    strcmp(CACHE_SECRET(i, org), org) != 0)
		return NULL;
	return CACHE_SECRET(i, sealed);
}

