/*
 * db_res.c: a statement's result as the program sees it, struct db_res:
 * the values copied out of libpq's PGresult (db.c and db_replica.c
 * copy them here), read by column name.
 */
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "extern.h"
#include "db.h"

/* Copy res into out (may be NULL). */
void
db_copy(PGresult *res, struct db_res *out)
{
	int	 i, j;

	if (out == NULL)
		return;
	memset(out, 0, sizeof(*out));
	out->nrows = PQntuples(res);
	out->ncols = PQnfields(res);
	out->cmdtuples = xstrdup(PQcmdTuples(res));
	if (out->ncols > 0) {
		out->names = xcalloc((size_t)out->ncols, sizeof(char *));
		for (j = 0; j < out->ncols; j++)
			out->names[j] = xstrdup(PQfname(res, j));
	}
	if (out->nrows == 0 || out->ncols == 0)
		return;
	out->vals = xcalloc((size_t)out->nrows * (size_t)out->ncols,
	    sizeof(char *));
	for (i = 0; i < out->nrows; i++)
		for (j = 0; j < out->ncols; j++)
			if (!PQgetisnull(res, i, j))
				out->vals[i * out->ncols + j] =
				    xstrdup(PQgetvalue(res, i, j));
}

/* Row i, column j of res: NULL for SQL NULL.  Borrowed from res. */
const char *
db_get(const struct db_res *res, int i, int j)
{
	if (res == NULL || i < 0 || j < 0 || i >= res->nrows ||
	    j >= res->ncols || res->vals == NULL)
		return NULL;
	return res->vals[i * res->ncols + j];
}

/*
 * The number of the column called name, as pg_dump's PQfnumber: looked
 * up once per result, then db_get() with it.  -1 for a result without
 * columns (a statement that failed: db_get() then gives NULL).  A name
 * the statement does not return is a bug in the caller: fatal.
 */
int
db_col(const struct db_res *res, const char *name)
{
	int	 j;

	if (res == NULL || res->ncols == 0)
		return -1;
	for (j = 0; j < res->ncols; j++)
		if (strcmp(res->names[j], name) == 0)
			return j;
	fatalx("db: no column \"%s\" in the result", name);
}

/* Row i of the column called name: a single read's db_get(). */
const char *
db_val(const struct db_res *res, int i, const char *name)
{
	return db_get(res, i, db_col(res, name));
}

void
db_res_free(struct db_res *res)
{
	int	 i;

	if (res == NULL)
		return;
	if (res->vals != NULL)
		for (i = 0; i < res->nrows * res->ncols; i++)
			free(res->vals[i]);
	free(res->vals);
	if (res->names != NULL)
		for (i = 0; i < res->ncols; i++)
			free(res->names[i]);
	free(res->names);
	free(res->cmdtuples);
	memset(res, 0, sizeof(*res));
}
