/*
 * db.h: what the primary's connection (db.c) and the read replica's
 * (db_replica.c) share; nothing else includes it: the rest of the
 * program sees struct db_res, never a PGresult (extern.h).
 */
#ifndef TELEHOOK_DB_H
#define TELEHOOK_DB_H

void		 db_copy(PGresult *, struct db_res *);
void		 db_cancel(PGconn *);
void		 db_notice(void *, const char *);
void		 db_forget_conn(PGconn **);
long long	 db_get_budget(void);
void		 db_forget_primary(void);

#endif
