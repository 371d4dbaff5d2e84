/*
 * suite_main.c: the main() of every Check suite.  It runs the suite the
 * other file of the program defines (check_suite(), suite.h) with the
 * library set up as the programs set it up, and exits non-zero if a
 * test failed.
 */
#include <stdlib.h>

#include <check.h>

#include "extern.h"
#include "suite.h"

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	log_init("check", 1, LOG_LEVEL_ERR);
	if (crypto_init() == -1)
		return EXIT_FAILURE;
	sr = srunner_create(check_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
