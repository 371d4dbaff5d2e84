/*
 * deliver.h: what the sender of events (deliver.c), its batches
 * (batch.c) and their transfers (xfer.c) share; nothing else includes
 * it.
 */
#ifndef DELIVER_H
#define DELIVER_H

#include <curl/curl.h>

#define DELIVER_INFLIGHT	256
#define DELIVER_PER_ENDPOINT	64
#define DELIVER_SLOW_MS		1000	/* no answer yet: the queue's */

struct db_res;
struct deliver_stats;

/* One request in flight: a queued delivery's, or a batch item's. */
struct xfer {
	CURL		*curl;
	struct curl_slist *hl;
	char		 id[24];
	char		 endpoint[40];
	char		*body;
	int		 attempts;
	long long	 start_us;
	struct egress	 eg;		/* its connections' guard */
	struct ditem	*item;		/* sent from a batch, not the queue */
	char		 err[CURL_ERROR_SIZE];
};

/* What a request needs: a claimed row's, or a batch item's. */
struct dsend {
	const char	*id;		/* the delivery row; NULL: a batch's */
	const char	*endpoint;
	const char	*msgid;
	const char	*body;
	const char	*url;
	const char	*secret;
	const char	*previous;
	int		 attempts;
};


enum { DI_WAIT, DI_READY, DI_FLIGHT, DI_OK, DI_FAILED, DI_QUEUE };

/* One event for one endpoint. */
struct ditem {
	int		 row;		/* in the batch's result */
	int		 ep;		/* in the batch's endpoints */
	int		 next;		/* the subject's next here, or -1 */
	int		 state;		/* DI_* */
	long		 status;	/* DI_OK, DI_FAILED */
	long long	 ms;
	int		 dead;		/* DI_FAILED: no more attempts */
	char		*why;		/* DI_FAILED */
	struct xfer	*x;		/* DI_FLIGHT */
};

/* An endpoint of the batch, with its counters for the statement. */
struct dep {
	const char	*id;
	int		 inflight;	/* the batch's requests */
	int		 queue_flight;	/* the queue's */
	int		 ok, failed, gone, slow;
	long long	 ms;
};

struct batch {
	struct db_res	 res;
	struct {			/* res's columns (db_col) */
		int	 event, endpoint, msgid, subject, body, url;
		int	 secret, previous, queued;
	} c;
	struct ditem	*it;
	int		 nit;
	struct dep	*ep;
	int		 nep;
	int		 open;		/* items DI_WAIT, DI_READY */
	int		 active;
	int		 dirty;		/* something may be sent now */
};

extern int	 xfer_nsched;		/* attempts after the first */

/* xfer.c */
int		 xfer_schedule(const char *);
struct xfer	*xfer_start(CURLM *, const struct dsend *, char *, size_t);
void		 xfer_free(CURLM *, struct xfer *);
double		 xfer_delay(int);
void		 xfer_why(struct xfer *, CURLcode, long, char *, size_t);
void		 xfer_secrets_free(void);

/* batch.c */
int		 batch_take(struct batch *);
void		 batch_queue(struct batch *, int);
void		 batch_start(struct batch *, CURLM *, struct xfer **, int *);
void		 batch_done(struct batch *, struct xfer *, CURLcode, long);
int		 batch_decided(struct batch *, struct xfer **, int, long long);
int		 batch_finish(struct batch *, CURLM *, struct xfer **, int *,
		    struct deliver_stats *);
void		 batch_free(struct batch *);

#endif /* DELIVER_H */
