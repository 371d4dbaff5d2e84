// t/swh_verify.js: the independent verifier of the delivery suites: each
// delivery the receiver kept, checked by the standardwebhooks package
// from the npm registry (the Standard Webhooks reference library for
// JavaScript), installed by the test.  Reads a JSON array of
// {secret, headers, body} on stdin; writes one result each, "ok" or
// the library's error.
"use strict";
const { Webhook } = require(process.argv[2]);
let input = "";
process.stdin.on("data", (d) => { input += d; });
process.stdin.on("end", () => {
	const out = JSON.parse(input).map((x) => {
		try {
			new Webhook(x.secret).verify(x.body, x.headers);
			return "ok";
		} catch (e) {
			return String(e && e.message ? e.message : e);
		}
	});
	process.stdout.write(JSON.stringify(out));
});
