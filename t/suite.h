/*
 * suite.h: what each Check suite (t/check_*.c) gives the one main() they
 * share, suite_main.c: its tests, as one Suite.
 */
Suite	*check_suite(void);
