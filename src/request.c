/*
 * request.c: the parts of one request: CGI parameters, method, path and
 * query, the body (bounded by max_body_bytes) parsed as a form or JSON,
 * and the client address.  struct req owns every allocation made here;
 * req_free() releases them once, at the end of the request.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <fcgiapp.h>

#include "extern.h"

static const struct {
	enum method	 m;
	const char	*name;
} methods[] = {
	{ METHOD_GET, "GET" },
	{ METHOD_HEAD, "HEAD" },
	{ METHOD_POST, "POST" },
	{ METHOD_PUT, "PUT" },
	{ METHOD_DELETE, "DELETE" },
	{ METHOD_PATCH, "PATCH" },
	{ METHOD_OPTIONS, "OPTIONS" },
};

enum method
req_method_parse(const char *s)
{
	size_t	 i;

	if (s != NULL)
		for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
			if (strcmp(s, methods[i].name) == 0)
				return methods[i].m;
	return METHOD_OTHER;
}

const char *
req_method_name(enum method m)
{
	size_t	 i;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (methods[i].m == m)
			return methods[i].name;
	return "?";
}

/* The CGI parameter name, or NULL.  Borrowed from libfcgi. */
const char *
req_env(const struct req *r, const char *name)
{
	size_t	 n = strlen(name);
	char	**e;

	if (r->envp == NULL)
		return NULL;
	for (e = r->envp; *e != NULL; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

/* The request header name ("X-Twilio-Signature"), or NULL. */
const char *
req_header(const struct req *r, const char *name)
{
	char	 cgi[128];
	size_t	 i, n = strlen(name);

	if (n + 6 > sizeof(cgi))
		return NULL;
	memcpy(cgi, "HTTP_", 5);
	for (i = 0; i < n; i++)
		cgi[5 + i] = name[i] == '-' ? '_' :
		    (char)toupper((unsigned char)name[i]);
	cgi[5 + n] = '\0';
	return req_env(r, cgi);
}

/*
 * The body kind a Content-Type names: its media type, before any
 * parameter, compared without case.  0 for a type we do not take.
 */
enum body_kind
req_body_kind(const char *ctype)
{
	size_t	 n;

	if (ctype == NULL || *ctype == '\0')
		return BODY_NONE;
	n = strcspn(ctype, "; \t");
	if (n == 33 && strncasecmp(ctype,
	    "application/x-www-form-urlencoded", n) == 0)
		return BODY_FORM;
	if (n == 16 && strncasecmp(ctype, "application/json", n) == 0)
		return BODY_JSON;
	return 0;
}

void
req_init(struct req *r, char **envp)
{
	struct timespec	 ts;

	memset(r, 0, sizeof(*r));
	r->start_us = util_now_us();
	clock_gettime(CLOCK_REALTIME, &ts);
	r->received_us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	r->envp = envp;
	r->method_str = req_env(r, "REQUEST_METHOD");
	r->method = req_method_parse(r->method_str);
	r->content_type = req_env(r, "CONTENT_TYPE");
	r->body_kind = req_body_kind(r->content_type);
	r->query = "";
}

/*
 * Split REQUEST_URI into path and query and parse the query.  -1 with
 * *errstr set when the URI is missing or the query is malformed.
 */
int
req_parse_uri(struct req *r, const char **errstr)
{
	const char	*q;

	if ((r->request_uri = req_env(r, "REQUEST_URI")) == NULL ||
	    r->request_uri[0] != '/') {
		*errstr = "missing or relative REQUEST_URI";
		return -1;
	}
	if ((q = strchr(r->request_uri, '?')) != NULL) {
		r->path = xstrndup(r->request_uri,
		    (size_t)(q - r->request_uri));
		r->query = q + 1;
	} else
		r->path = xstrdup(r->request_uri);
	if (kv_parse(&r->qs, r->query, strlen(r->query), 0, errstr) == -1) {
		if (strncmp(*errstr, "NUL", 3) == 0)
			*errstr = "NUL byte (%00) in query string";
		else
			*errstr = "bad percent-escape in query string";
		return -1;
	}
	return 0;
}

/*
 * Read the body from in: at most max bytes.  Returns 0, or the HTTP
 * status to answer (413 too large, 400 truncated or bad length) with
 * *errstr set.
 */
int
req_read_body(struct req *r, struct FCGX_Stream *in, size_t max,
    const char **errstr)
{
	const char	*cl;
	long long	 want;
	int		 n;
	size_t		 got = 0, cap;

	cl = req_env(r, "CONTENT_LENGTH");
	if (cl != NULL && *cl != '\0') {
		want = util_strtonum(cl, 0, (long long)1 << 40, errstr);
		if (*errstr != NULL) {
			*errstr = "bad Content-Length";
			return 400;
		}
		if ((unsigned long long)want > max) {
			*errstr = "body larger than max_body_bytes";
			return 413;
		}
		r->body = xmalloc((size_t)want + 1);
		while (got < (size_t)want) {
			n = FCGX_GetStr(r->body + got, (int)((size_t)want -
			    got), in);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		r->body[got] = '\0';
		r->bodylen = got;
		if (got != (size_t)want) {
			*errstr = "truncated body: shorter than "
			    "Content-Length";
			return 400;
		}
		return 0;
	}
	/* No length: read to the end of the stream, up to max + 1. */
	cap = 4096;
	r->body = xmalloc(cap + 1);
	for (;;) {
		if (got == cap) {
			if (cap > max)
				break;
			cap *= 2;
			r->body = xreallocarray(r->body, cap + 1, 1);
		}
		n = FCGX_GetStr(r->body + got, (int)(cap - got), in);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	r->body[got] = '\0';
	r->bodylen = got;
	if (got > max) {
		*errstr = "body larger than max_body_bytes";
		return 413;
	}
	return 0;
}

/*
 * Parse the body by its kind.  -1 with *errstr when it is malformed: a
 * form with a bad escape or a NUL, JSON that does not parse or is not an
 * object, or holds a NUL byte (which C strings would silently cut).
 */
int
req_parse_body(struct req *r, const char **errstr)
{
	const char	*end = NULL;

	switch (r->body_kind) {
	case BODY_FORM:
		if (util_has_nul(r->body, r->bodylen)) {
			*errstr = "NUL byte in form body";
			return -1;
		}
		if (kv_parse(&r->form, r->body, r->bodylen, 0, errstr) == -1)
			return -1;
		return 0;
	case BODY_JSON:
		if (util_has_nul(r->body, r->bodylen)) {
			*errstr = "NUL byte in JSON body";
			return -1;
		}
		r->json = cJSON_ParseWithLengthOpts(r->body, r->bodylen, &end,
		    0);
		if (r->json == NULL) {
			*errstr = "invalid JSON";
			return -1;
		}
		while (end != NULL && end < r->body + r->bodylen &&
		    isspace((unsigned char)*end))
			end++;
		if (end != r->body + r->bodylen) {
			*errstr = "trailing data after JSON";
			return -1;
		}
		if (!cJSON_IsObject(r->json)) {
			*errstr = "JSON body is not an object";
			return -1;
		}
		return 0;
	case BODY_NONE:
	default:
		return 0;
	}
}

/*
 * The client address.  nginx's realip module normally rewrites
 * REMOTE_ADDR already.  When trusted_proxies is set and the peer is one
 * of them, X-Forwarded-For is walked from the right, skipping trusted
 * hops, as realip's recursive mode does; the first untrusted address is
 * the client.  A forged header from an untrusted peer is ignored.
 * Caller frees.
 */
char *
req_client_addr(const char *remote, const char *xff,
    const struct cidrlist *proxies)
{
	char		 hop[64];
	const char	*end, *seg, *start;
	char		*last;
	size_t		 n;
	struct cidr	 probe;

	if (remote == NULL)
		return xstrdup("-");
	if (xff == NULL || proxies == NULL || proxies->n == 0 ||
	    !cidrlist_match(proxies, remote))
		return xstrdup(remote);
	last = xstrdup(remote);
	end = xff + strlen(xff);
	while (end > xff) {
		seg = end;
		while (seg > xff && seg[-1] != ',')
			seg--;
		start = seg;
		while (start < end && (*start == ' ' || *start == '\t'))
			start++;
		n = (size_t)(end - start);
		while (n > 0 && (start[n - 1] == ' ' || start[n - 1] == '\t'))
			n--;
		if (n == 0 || n >= sizeof(hop))
			break;
		memcpy(hop, start, n);
		hop[n] = '\0';
		if (strchr(hop, '/') != NULL || cidr_parse(hop, &probe) == -1)
			break;
		free(last);
		last = xstrdup(hop);
		if (!cidrlist_match(proxies, hop))
			break;
		end = seg > xff ? seg - 1 : xff;
	}
	return last;
}

/*
 * A request parameter as architecture.md §4 looks for one: the form body,
 * then a top-level JSON string, then the query string.  Borrowed.
 */
const char *
req_param(const struct req *r, const char *name)
{
	const char	*v;
	const cJSON	*j;

	if ((v = kv_get(&r->form, name)) != NULL)
		return v;
	if (r->json != NULL &&
	    (j = cJSON_GetObjectItemCaseSensitive(r->json, name)) != NULL &&
	    cJSON_IsString(j))
		return j->valuestring;
	return kv_get(&r->qs, name);
}

/* What the request's log line names: its organization and its key. */
void
req_note(struct req *r, const char *org, const char *key)
{
	free(r->log_org);
	free(r->log_key);
	r->log_org = org != NULL ? xstrdup(org) : NULL;
	r->log_key = key != NULL ? xstrdup(key) : NULL;
}

void
req_free(struct req *r)
{
	int	 i;

	free(r->log_org);
	free(r->log_key);
	free(r->scope_org);
	free(r->path);
	free(r->body);
	kv_free(&r->qs);
	kv_free(&r->form);
	cJSON_Delete(r->json);
	free(r->client_addr);
	for (i = 0; i < r->nargs; i++)
		free(r->args[i]);
	memset(r, 0, sizeof(*r));
}

/* Replace *sp by its valid UTF-8 form, if it needs one. */
static void
req_fix_str(char **sp, int latin1)
{
	char	*f;

	if (*sp != NULL && (f = util_utf8_fix(*sp, latin1)) != NULL) {
		free(*sp);
		*sp = f;
	}
}

static void
req_fix_json(cJSON *j, int latin1)
{
	cJSON	*c;

	for (; j != NULL; j = j->next) {
		/* cJSON's default hooks: its strings are malloc(3)'d */
		if (j->string != NULL && !(j->type & cJSON_StringIsConst))
			req_fix_str(&j->string, latin1);
		if (cJSON_IsString(j))
			req_fix_str(&j->valuestring, latin1);
		if ((c = j->child) != NULL)
			req_fix_json(c, latin1);
	}
}

/*
 * architecture.md §6: the request's text as valid UTF-8, so PostgreSQL
 * takes it: read as ISO 8859-1 when the route says its sender writes that
 * (VoIP.ms), else with each invalid byte replaced by U+FFFD.  The raw body
 * is kept as it came.
 */
void
req_fix_kvlist(struct kvlist *l, int latin1)
{
	size_t	 i;

	for (i = 0; i < l->n; i++) {
		req_fix_str(&l->v[i].key, latin1);
		req_fix_str(&l->v[i].val, latin1);
	}
}

void
req_fix_text(struct req *r, int latin1)
{
	req_fix_kvlist(&r->qs, latin1);
	req_fix_kvlist(&r->form, latin1);
	if (r->json != NULL)
		req_fix_json(r->json, latin1);
}

/*
 * 1 when the CGI variable e ("HTTP_NAME=value", or just the name) is a
 * credential header: it is kept in no spool file, stored header set or
 * log (architecture.md §5).  Beyond the headers the providers use, any name
 * that says it holds a secret is one.
 */
int
req_header_secret(const char *e)
{
	static const char *const exact[] = { "AUTHORIZATION",
	    "PROXY_AUTHORIZATION", "COOKIE", NULL };
	static const char *const part[] = { "SECRET", "TOKEN", "PASSWORD",
	    "API_KEY", "APIKEY", "AUTH", "SESSION", NULL };
	char	 name[128];
	size_t	 n;
	int	 i;

	if (strncmp(e, "HTTP_", 5) != 0)
		return 0;
	e += 5;
	n = strcspn(e, "=");
	if (n >= sizeof(name))
		return 1;	/* nothing legitimate is that long */
	memcpy(name, e, n);
	name[n] = '\0';
	for (i = 0; exact[i] != NULL; i++)
		if (strcmp(name, exact[i]) == 0)
			return 1;
	for (i = 0; part[i] != NULL; i++)
		if (strstr(name, part[i]) != NULL)
			return 1;
	return 0;
}

/*
 * 1 when json has a "token" member at any depth, in any case: a URL
 * token sent in a JSON body is as secret as one in a query or a form.
 */
static int
req_json_has_token(const cJSON *json)
{
	const cJSON	*c;

	if (!cJSON_IsObject(json) && !cJSON_IsArray(json))
		return 0;
	cJSON_ArrayForEach(c, json)
		if ((c->string != NULL && strcasecmp(c->string, "token") == 0) ||
		    req_json_has_token(c))
			return 1;
	return 0;
}

/* Drop every "token" member of o, at every depth. */
static void
req_json_drop_tokens(cJSON *o)
{
	cJSON	*c, *next;

	for (c = o->child; c != NULL; c = next) {
		next = c->next;
		if (cJSON_IsObject(o) && c->string != NULL &&
		    strcasecmp(c->string, "token") == 0)
			cJSON_Delete(cJSON_DetachItemViaPointer(o, c));
		else if (cJSON_IsObject(c) || cJSON_IsArray(c))
			req_json_drop_tokens(c);
	}
}

/* json printed without its "token" members, at any depth.  Caller frees. */
char *
req_json_redacted(const cJSON *json)
{
	cJSON	*o;
	char	*s;

	if (!req_json_has_token(json))
		return cJSON_PrintUnformatted(json);
	o = cJSON_Duplicate(json, 1);
	req_json_drop_tokens(o);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* 1 when s has ";token" in any case (a pair VoIP.ms separated so). */
static int
req_semi_token(const char *s)
{
	for (s = strchr(s, ';'); s != NULL; s = strchr(s + 1, ';'))
		if (strncasecmp(s + 1, "token", 5) == 0)
			return 1;
	return 0;
}

/*
 * r's body without a form's or a JSON object's "token" (the rest as it
 * came), for what is stored or spooled; *len its length.  NULL when the
 * body has none and is kept as it came.  A form's pairs are read as
 * req_redact_uri() reads a query: separated by '&' or ';', keys
 * decoded, so "id=1;token=x" and "%74oken=x" lose theirs too.  Caller
 * frees.
 */
char *
req_body_redacted(const struct req *r, size_t *len)
{
	char	*q, *red, *s = NULL;
	size_t	 i;

	if (r->json != NULL) {
		if (!req_json_has_token(r->json))
			return NULL;
		s = req_json_redacted(r->json);
		*len = strlen(s);
		return s;
	}
	if (r->body_kind != BODY_FORM || r->body == NULL)
		return NULL;
	/*
	 * Most bodies carry none, as the parsed (decoded) pairs say: a key
	 * "token", or one after a ';' in a key or a value.  Those are not
	 * rewritten at all.
	 */
	for (i = 0; i < r->form.n; i++)
		if (strcasecmp(r->form.v[i].key, "token") == 0 ||
		    req_semi_token(r->form.v[i].key) ||
		    req_semi_token(r->form.v[i].val))
			break;
	if (i == r->form.n)
		return NULL;
	xasprintf(&q, "?%.*s", (int)r->bodylen, r->body);
	red = req_redact_uri(q);
	if (strcmp(red, q) != 0) {
		s = xstrdup(red + 1);
		*len = strlen(s);
	}
	free(q);
	free(red);
	return s;
}

/*
 * path as logs and rejections show it: nothing from its first ';' (or
 * "%3B") on, since a path parameter may carry a URL token, and at most
 * sz - 1 bytes.  Returns buf.
 */
const char *
req_shown_path(const char *path, char *buf, size_t sz)
{
	size_t	 n, i;

	if (path == NULL)
		path = "-";
	n = strcspn(path, ";?#");
	for (i = 0; i + 2 < n; i++)
		if (path[i] == '%' && path[i + 1] == '3' &&
		    (path[i + 2] == 'B' || path[i + 2] == 'b')) {
			n = i;
			break;
		}
	if (n >= sz)
		n = sz - 1;
	memcpy(buf, path, n);
	buf[n] = '\0';
	return buf;
}

/*
 * uri without its "token" parameters, for the spool: a VoIP.ms URL token
 * is a secret, and a replay needs none.  Pairs may be separated by '&'
 * or ';'; a key is compared decoded and in any case ("%74oken",
 * "TOKEN"), and a key that does not decode is dropped too.  Caller frees.
 */
char *
req_redact_uri(const char *uri)
{
	struct buf	 b;
	const char	*q, *p, *end, *eq, *errstr;
	char		*key, sep = '?';
	size_t		 n;
	int		 drop;

	if (uri == NULL)
		return xstrdup("-");
	buf_init(&b);
	if ((q = strchr(uri, '?')) == NULL) {
		buf_puts(&b, uri);
		return b.data;
	}
	buf_add(&b, uri, (size_t)(q - uri));
	buf_puts(&b, "");
	for (p = q + 1; *p != '\0'; p = *end != '\0' ? end + 1 : end) {
		n = strcspn(p, "&;#");
		end = p + n;
		if (n > 0) {
			eq = memchr(p, '=', n);
			drop = kv_pct_decode(p, eq != NULL ? (size_t)(eq - p) :
			    n, 1, &key, &errstr) == -1;
			if (!drop) {
				drop = strcasecmp(key, "token") == 0;
				free(key);
			}
			if (!drop) {
				buf_putc(&b, sep);
				buf_add(&b, p, n);
			}
		}
		if (*end == '#')
			break;
		if (*end != '\0' && b.len > (size_t)(q - uri))
			sep = *end;
	}
	return b.data;
}

/* Request headers worth keeping: all but credentials. */
char *
req_headers_json(const struct req *r)
{
	cJSON	*o = cJSON_CreateObject();
	char	**e, *name, *s, *p;
	size_t	 n;

	for (e = r->envp; e != NULL && *e != NULL; e++) {
		if (strncmp(*e, "HTTP_", 5) != 0 || strchr(*e, '=') == NULL ||
		    req_header_secret(*e))
			continue;
		n = (size_t)(strchr(*e, '=') - *e);
		name = xstrndup(*e + 5, n - 5);
		for (p = name; *p != '\0'; p++)
			*p = *p == '_' ? '-' : (char)tolower((unsigned char)*p);
		cJSON_AddStringToObject(o, name, *e + n + 1);
		free(name);
	}
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* The raw body as stored, in hex: never its URL token. */
char *
req_body_hex(const struct req *r)
{
	size_t		 len = r->bodylen;
	char		*red, *hex;
	const char	*body;

	red = req_body_redacted(r, &len);
	body = red != NULL ? red : r->body != NULL ? r->body : "";
	hex = xmalloc(len * 2 + 1);
	util_hex((const unsigned char *)body, len, hex);
	free(red);
	return hex;
}

/*
 * v up to a ';' that starts a "token" pair (VoIP.ms separates with ';'
 * too), copied to buf when cut; else v.
 */
static const char *
req_cut_token(const char *v, char *buf, size_t sz)
{
	const char	*p;

	for (p = strchr(v, ';'); p != NULL; p = strchr(p + 1, ';'))
		if (strncasecmp(p + 1, "token", 5) == 0 &&
		    (p[6] == '=' || p[6] == '\0' || p[6] == ';'))
			break;
	if (p == NULL)
		return v;
	snprintf(buf, sz, "%.*s", (int)(p - v), v);
	return buf;
}

/* The parsed parameters as JSON: repeated keys become arrays. */
char *
req_payload_json(const struct req *r)
{
	struct kvlist	 q;
	cJSON		*o, *old, *arr;
	const char	*err, *val;
	size_t		 i;
	char		*s, cut[1024];

	if (r->json != NULL)
		return req_json_redacted(r->json);
	o = cJSON_CreateObject();
	for (i = 0; i < r->form.n; i++) {
		if (strcasecmp(r->form.v[i].key, "token") == 0)
			continue;	/* a URL token sent in a form */
		/* "id=1;token=x": a value that carries one after a ';' */
		val = req_cut_token(r->form.v[i].val, cut, sizeof(cut));
		old = cJSON_GetObjectItemCaseSensitive(o, r->form.v[i].key);
		if (old == NULL)
			cJSON_AddStringToObject(o, r->form.v[i].key, val);
		else {
			if (!cJSON_IsArray(old)) {
				arr = cJSON_CreateArray();
				cJSON_AddItemToArray(arr,
				    cJSON_CreateString(old->valuestring));
				cJSON_ReplaceItemInObjectCaseSensitive(o,
				    r->form.v[i].key, arr);
				old = arr;
			}
			cJSON_AddItemToArray(old, cJSON_CreateString(val));
		}
	}
	/*
	 * A GET (VoIP.ms) carries its parameters in the query, separated by
	 * ';' as well as '&', as the handler reads them; its URL token is a
	 * secret and is not kept, whatever its case or encoding.
	 */
	memset(&q, 0, sizeof(q));
	if (r->form.n == 0 && r->query != NULL &&
	    kv_parse(&q, r->query, strlen(r->query), KV_SEMICOLON, &err) == 0) {
		req_fix_kvlist(&q, r->route != NULL &&
		    (r->route->flags & ROUTE_LATIN1));
		for (i = 0; i < q.n; i++)
			if (strcasecmp(q.v[i].key, "token") != 0 &&
			    cJSON_GetObjectItemCaseSensitive(o,
			    q.v[i].key) == NULL)
				cJSON_AddStringToObject(o, q.v[i].key,
				    q.v[i].val);
	}
	kv_free(&q);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}
