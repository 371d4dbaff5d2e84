/*
 * pressure.c: how contended this machine's CPU is, from the kernel's
 * pressure stall information (PSI, Linux 4.20; /proc/pressure/cpu): the
 * share of the time in which some runnable task waited for a CPU.  The
 * sender of events leaves them pending while it is high, so deliveries
 * never take the CPU from the webhooks (deliver.c, architecture.md §14).
 *
 * The file's avg10 is a ten-second average, too slow to follow a burst;
 * its "total" is the stall time in microseconds since boot, so two
 * samples give the share over any interval.  Over several CPUs the
 * kernel weighs the waiting tasks by the CPUs: one task waiting beside
 * two busy CPUs reads 0.5, two or more read 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extern.h"

/*
 * The "some" line's total= of the file's text, in microseconds; -1 when
 * there is none (a kernel booted with psi=0 fails the read instead).
 */
long long
pressure_parse(const char *text)
{
	const char	*p, *t, *eol;
	char		*end;
	long long	 v;

	if (strncmp(text, "some ", 5) == 0)
		p = text;
	else if ((p = strstr(text, "\nsome ")) != NULL)
		p++;
	else
		return -1;
	if ((eol = strchr(p, '\n')) == NULL)
		eol = p + strlen(p);
	if ((t = strstr(p, " total=")) == NULL || t > eol)
		return -1;
	t += 7;
	errno = 0;
	v = strtoll(t, &end, 10);
	if (errno != 0 || end == t || v < 0 ||
	    (*end != '\n' && *end != '\0' && *end != ' '))
		return -1;
	return v;
}

/*
 * The share of the time since the last sample (0 to 1) in which some
 * task waited for a CPU, into *share; the first sample gives 0.  -1
 * when the file cannot be read or says nothing we know.
 */
int
pressure_sample(struct pressure *ps, long long now_us, double *share)
{
	char		 text[512];
	ssize_t		 n;
	long long	 total;
	int		 fd;

	*share = 0;
	if ((fd = open(ps->path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	text[n] = '\0';
	if ((total = pressure_parse(text)) == -1)
		return -1;
	if (ps->at_us != 0 && now_us > ps->at_us && total >= ps->total_us)
		*share = (double)(total - ps->total_us) /
		    (double)(now_us - ps->at_us);
	if (*share > 1)
		*share = 1;
	ps->at_us = now_us;
	ps->total_us = total;
	return 0;
}
