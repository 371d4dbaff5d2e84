/*
 * spool.c: the spool directory, where a verified request waits when the
 * database cannot take it.  A spooled request is one file "*.spool";
 * files being written start with '.' and do not count.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <string.h>
#include <unistd.h>

#include "extern.h"

#define SPOOL_SUFFIX	".spool"

/* How many requests wait in dir; 0 when it does not exist, -1 on error. */
long
spool_depth(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	long		 n = 0;
	size_t		 len, slen = strlen(SPOOL_SUFFIX);

	if (dir == NULL)
		return 0;
	if ((d = opendir(dir)) == NULL)
		return access(dir, F_OK) == -1 ? 0 : -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		len = strlen(de->d_name);
		if (len > slen &&
		    strcmp(de->d_name + len - slen, SPOOL_SUFFIX) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* 1 when a worker could write a request into dir now. */
int
spool_writable(const char *dir)
{
	struct stat	 st;

	if (dir == NULL || stat(dir, &st) == -1 || !S_ISDIR(st.st_mode))
		return 0;
	return access(dir, W_OK | X_OK) == 0;
}
