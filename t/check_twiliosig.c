/*
 * check_twiliosig: X-Twilio-Signature against every vector of the SDKs'
 * own tests (twilio-node spec/validation.spec.js
 * and spec/unit/webhooks/webhooks.spec.js, twilio-python
 * tests/unit/test_request_validator.py) and the docs' example.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "extern.h"
#include "suite.h"

#define TOKEN	"12345"
#define URL	"https://mycompany.com/myapp.php?foo=1&bar=2"
#define URI	"/myapp.php?foo=1&bar=2"

static struct kvlist	 params;

/* Vector 1's parameters. */
static void
setup(void)
{
	memset(&params, 0, sizeof(params));
	kv_add(&params, "CallSid", "CA1234567890ABCDE");
	kv_add(&params, "Caller", "+14158675309");
	kv_add(&params, "Digits", "1234");
	kv_add(&params, "From", "+14158675309");
	kv_add(&params, "To", "+18005551212");
}

static void
teardown(void)
{
	kv_free(&params);
}

static const char *
sig(const char *url, const struct kvlist *p)
{
	static char	 out[TWILIO_SIGLEN + 1];

	twiliosig_compute(TOKEN, url, p, out);
	return out;
}

/*
 * Our HMAC-SHA1 (one SHA-1 fetch for the process) against OpenSSL's
 * HMAC(), for keys shorter than, equal to and longer than the 64-byte
 * block (a longer key is hashed first), on an empty and a long message.
 */
START_TEST(test_hmac_matches_openssl)
{
	static const size_t keylens[] = { 1, 32, 63, 64, 65, 200 };
	char		 key[201], out[TWILIO_SIGLEN + 1], want[TWILIO_SIGLEN + 1];
	char		 url[600];
	unsigned char	 mac[EVP_MAX_MD_SIZE];
	unsigned int	 maclen;
	size_t		 i, j;

	for (i = 0; i < sizeof(keylens) / sizeof(keylens[0]); i++) {
		for (j = 0; j < keylens[i]; j++)
			key[j] = (char)('A' + (j * 7 + i) % 58);
		key[keylens[i]] = '\0';
		for (j = 0; j < 2; j++) {
			if (j == 0)
				snprintf(url, sizeof(url), "https://x.test/");
			else {
				memset(url, 'u', sizeof(url) - 1);
				url[sizeof(url) - 1] = '\0';
			}
			twiliosig_compute(key, url, NULL, out);
			ck_assert_ptr_nonnull(HMAC(EVP_sha1(), key,
			    (int)strlen(key), (const unsigned char *)url,
			    strlen(url), mac, &maclen));
			EVP_EncodeBlock((unsigned char *)want, mac, (int)maclen);
			ck_assert_str_eq(out, want);
		}
	}
}
END_TEST

START_TEST(test_vector1_basic)
{
	ck_assert_str_eq(sig(URL, &params), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
}
END_TEST

START_TEST(test_vector1_order_does_not_matter)
{
	struct kvlist	 rev;
	size_t		 i;

	memset(&rev, 0, sizeof(rev));
	for (i = params.n; i > 0; i--)
		kv_add(&rev, params.v[i - 1].key, params.v[i - 1].val);
	ck_assert_str_eq(sig(URL, &rev), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
	kv_free(&rev);
}
END_TEST

START_TEST(test_vector2_ports)
{
	ck_assert_str_eq(sig("https://mycompany.com:443" URI, &params),
	    "kvajT1Ptam85bY51eRf/AJRuM3w=");
	ck_assert_str_eq(sig("http://mycompany.com:80" URI, &params),
	    "0ZXoZLH/DfblKGATFgpif+LLRf4=");
	ck_assert_str_eq(sig("http://mycompany.com:1234" URI, &params),
	    "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=");
}
END_TEST

START_TEST(test_vector2_port_added_or_removed)
{
	/* signed without a port, public_url has one: stripped */
	ck_assert_int_eq(twiliosig_check(TOKEN, "https://mycompany.com:1234",
	    URI, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="), 1);
	/* signed with :443, public_url has none: added */
	ck_assert_int_eq(twiliosig_check(TOKEN, "https://mycompany.com", URI,
	    &params, "kvajT1Ptam85bY51eRf/AJRuM3w="), 1);
	ck_assert_int_eq(twiliosig_check(TOKEN, "http://mycompany.com", URI,
	    &params, "0ZXoZLH/DfblKGATFgpif+LLRf4="), 1);
	/* and as is */
	ck_assert_int_eq(twiliosig_check(TOKEN, "https://mycompany.com", URI,
	    &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="), 1);
	ck_assert_int_eq(twiliosig_check(TOKEN, "http://mycompany.com:1234",
	    URI, &params, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="), 1);
	/* the :80 signature is not valid for https */
	ck_assert_int_eq(twiliosig_check(TOKEN, "https://mycompany.com", URI,
	    &params, "0ZXoZLH/DfblKGATFgpif+LLRf4="), 0);
}
END_TEST

START_TEST(test_vector3_repeated_keys)
{
	struct kvlist	 p;
	const char	*err;
	const char	*body = "Sid=CA123&SidAccount=AC123&Digits=5678&"
			    "Digits=1234&Digits=1234";

	memset(&p, 0, sizeof(p));
	ck_assert_int_eq(kv_parse(&p, body, strlen(body), 0, &err), 0);
	ck_assert_str_eq(sig(URL, &p), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
	kv_free(&p);
}
END_TEST

START_TEST(test_vector4_array_either_order)
{
	struct kvlist	 p;

	memset(&p, 0, sizeof(p));
	kv_add(&p, "MessagingBinding.Address", "+1415xxxxxxx");
	kv_add(&p, "MessagingBinding.Address", "+1325xxxxxxx");
	ck_assert_str_eq(sig(URL, &p), "83O6e2vORAoJHUNzJjDWN1jz+BA=");
	kv_free(&p);
	kv_add(&p, "MessagingBinding.Address", "+1325xxxxxxx");
	kv_add(&p, "MessagingBinding.Address", "+1415xxxxxxx");
	ck_assert_str_eq(sig(URL, &p), "83O6e2vORAoJHUNzJjDWN1jz+BA=");
	kv_free(&p);
}
END_TEST

START_TEST(test_vector5_json_body)
{
	const char	*body = "{\"property\": \"value\", \"boolean\": true}";
	char		 hex[65];

	crypto_sha256_hex(body, strlen(body), hex);
	ck_assert_str_eq(hex, "0a1ff7634d9ab3b95db5c9a2dfe9416e"
	    "41502b283a80c7cf19632632f96e6620");
	ck_assert_str_eq(sig(URL "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe941"
	    "6e41502b283a80c7cf19632632f96e6620", NULL),
	    "a9nBmqA0ju/hNViExpshrM61xv4=");
	ck_assert_str_eq(sig("https://mycompany.com/myapp.php?bodySHA256="
	    "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620",
	    NULL), "y77kIzt2vzLz71DgmJGsen2scGs=");
}
END_TEST

START_TEST(test_empty_json_body_matches_only_with_port)
{
	char	 hex[65];

	crypto_sha256_hex("{}", 2, hex);
	ck_assert_str_eq(hex, "44136fa355b3678a1146ad16f7e8649e"
	    "94fb4fc21fe77e8310c060f61caaff8a");
	ck_assert_str_ne(sig(URL "&bodySHA256=44136fa355b3678a1146ad16f7e864"
	    "9e94fb4fc21fe77e8310c060f61caaff8a", NULL),
	    "Ldidvp12m26NI7eqEvxnEpkd9Hc=");
	ck_assert_int_eq(twiliosig_check(TOKEN, "https://mycompany.com",
	    URI "&bodySHA256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e83"
	    "10c060f61caaff8a", NULL, "Ldidvp12m26NI7eqEvxnEpkd9Hc="), 1);
}
END_TEST

START_TEST(test_encoded_quote_in_query)
{
	ck_assert_str_eq(sig(URL "&Body=It%27s+amazing", &params),
	    "TfZzewPq8wqrGlMfyAud8+/IvJ0=");
}
END_TEST

START_TEST(test_docs_vector)
{
	struct kvlist	 p;

	memset(&p, 0, sizeof(p));
	kv_add(&p, "Digits", "1234");
	kv_add(&p, "To", "+18005551212");
	kv_add(&p, "From", "+14158675310");
	kv_add(&p, "Caller", "+14158675310");
	kv_add(&p, "CallSid", "CA1234567890ABCDE");
	ck_assert_str_eq(sig("https://example.com/myapp.php?foo=1&bar=2", &p),
	    "L/OH5YylLD5NRKLltdqwSvS0BnU=");
	kv_free(&p);
}
END_TEST

START_TEST(test_rejects)
{
	/* another query, another token, a trimmed value, no header */
	ck_assert_int_eq(twiliosig_check(TOKEN, "https://mycompany.com",
	    "/myapp.php?foo=1&bar=3", &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
	    0);
	ck_assert_int_eq(twiliosig_check("12346", "https://mycompany.com", URI,
	    &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="), 0);
	ck_assert_int_eq(twiliosig_check(TOKEN, "https://mycompany.com", URI,
	    &params, NULL), 0);
	ck_assert_int_eq(twiliosig_check(TOKEN, "https://mycompany.com", URI,
	    &params, ""), 0);
	ck_assert_int_eq(twiliosig_check("", "https://mycompany.com", URI,
	    &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="), 0);
	free(params.v[1].val);
	params.v[1].val = xstrdup("+14158675309 ");
	ck_assert_int_eq(twiliosig_check(TOKEN, "https://mycompany.com", URI,
	    &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="), 0);
}
END_TEST

START_TEST(test_candidate_urls)
{
	char	*u[2];

	ck_assert_int_eq(twiliosig_urls("https://h.example", "/a?b", u), 2);
	ck_assert_str_eq(u[0], "https://h.example/a?b");
	ck_assert_str_eq(u[1], "https://h.example:443/a?b");
	free(u[0]);
	free(u[1]);
	ck_assert_int_eq(twiliosig_urls("http://h.example:8080", "/a", u), 2);
	ck_assert_str_eq(u[1], "http://h.example/a");
	free(u[0]);
	free(u[1]);
	ck_assert_int_eq(twiliosig_urls("https://[2001:db8::1]", "/a", u), 2);
	ck_assert_str_eq(u[1], "https://[2001:db8::1]:443/a");
	free(u[0]);
	free(u[1]);
	ck_assert_int_eq(twiliosig_urls("https://[2001:db8::1]:8443", "/a", u),
	    2);
	ck_assert_str_eq(u[1], "https://[2001:db8::1]/a");
	free(u[0]);
	free(u[1]);
}
END_TEST

Suite *
check_suite(void)
{
	Suite	*s = suite_create("twiliosig");
	TCase	*tc;

	tc = tcase_create("Vectors");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_vector1_basic);
	tcase_add_test(tc, test_vector1_order_does_not_matter);
	tcase_add_test(tc, test_vector2_ports);
	tcase_add_test(tc, test_vector2_port_added_or_removed);
	tcase_add_test(tc, test_vector3_repeated_keys);
	tcase_add_test(tc, test_vector4_array_either_order);
	tcase_add_test(tc, test_vector5_json_body);
	tcase_add_test(tc, test_empty_json_body_matches_only_with_port);
	tcase_add_test(tc, test_encoded_quote_in_query);
	tcase_add_test(tc, test_docs_vector);
	tcase_add_test(tc, test_hmac_matches_openssl);
	suite_add_tcase(s, tc);

	tc = tcase_create("Bad input");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_rejects);
	tcase_add_test(tc, test_candidate_urls);
	suite_add_tcase(s, tc);
	return s;
}
