/*
 * fcgi-hello.c: the trivial FastCGI responder of bench/run's FastCGI
 * ceiling: libfcgi's accept loop answering a fixed TwiML document, with
 * nothing else (no parsing, no verification, no database).
 */
#include <fcgiapp.h>

int
main(void)
{
	FCGX_Request	 r;

	FCGX_Init();
	FCGX_InitRequest(&r, 0, 0);
	while (FCGX_Accept_r(&r) >= 0) {
		FCGX_PutS("Status: 200 OK\r\nContent-Type: text/xml\r\n\r\n"
		    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		    "<Response></Response>\n", r.out);
		FCGX_Finish_r(&r);
	}
	return 0;
}
