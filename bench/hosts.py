#!/usr/bin/env python3
"""
bench/hosts.py: one host against two behind the same balancer, on this
machine (telehook(8), Several hosts).  Each host is its own nginx on its
own loopback address with its own worker pool; one PostgreSQL (durable
commits); a balancing nginx in front; wrk sends unique signed Twilio SMS
to the balancer.  Run by bench/run with BENCH_HOSTS=1 after the main
table, or alone from a built tree:

    BENCH_BUILD=build/bench top_builddir=build/bench top_srcdir=. \\
        python3 bench/hosts.py

On one machine the hosts share its cores, so the figure says what the
balancer and a second pool cost or buy here, not what a second machine
would add.
"""

import os
import signal
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "t"))
import bench  # noqa: E402
import harness  # noqa: E402
from harness import Stack, free_port  # noqa: E402

WORKERS = int(os.environ.get("BENCH_HOST_WORKERS", "8"))


def main():
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    conf = {"twilio": {"auth_token": bench.TOKEN},
            "server": {"public_url": url, "log_level": "notice"}}
    a = Stack(workers=WORKERS, host_addr="127.0.0.2", durable=True,
              rate_limit=10000000, extra_conf=conf).start()
    b = Stack(workers=WORKERS, host_addr="127.0.0.3", database=a,
              rate_limit=10000000, extra_conf=conf).start()
    tmp = tempfile.mkdtemp(prefix="telehook-bench-hosts-")
    results = []
    try:
        org = a.ctl_ok("org", "add", "Bench Clinic").strip()
        a.ctl_ok("number", "add", org, bench.NUMBER)
        for h in (a, b):
            h.stop_workers()
            h.start_workers()
        lua = os.path.join(HERE, "requests.lua")
        reqs = os.path.join(tmp, "twilio")
        per_thread = max(20000, int(4000 * bench.SECONDS))
        for k, backends in enumerate((
                ["127.0.0.2:%d" % a.nginx_port],
                ["127.0.0.2:%d" % a.nginx_port,
                 "127.0.0.3:%d" % b.nginx_port])):
            d = os.path.join(tmp, "lb%d" % k)
            os.mkdir(d)
            lb = harness.balancer(port, backends, d)
            try:
                bench.write_requests(reqs, lambda n: bench.sms_line(
                    url, "/webhooks/twilio/sms/incoming",
                    n + (7 + k) * 10**8), per_thread)
                bench.settle(a)
                results.append((len(backends), bench.wrk(url, lua, reqs)))
            finally:
                os.killpg(lb.pid, signal.SIGTERM)
                lb.wait()
    finally:
        b.stop()
        a.stop()
    print("telehook through a balancer: %d s a run, %d connections, %d "
          "workers a host, %d cores, durable commits"
          % (bench.SECONDS, bench.CONNS, WORKERS, os.cpu_count()))
    for hosts, r in results:
        print("  %d host%s  %8.0f req/s  p50 %.2f ms  p99 %.2f ms  non-2xx "
              "%d" % (hosts, "" if hosts == 1 else "s", r["rps"], r["p50"],
                      r["p99"], r["non2xx"]))
    print("  two over one: %.2f" % (results[1][1]["rps"] /
                                    results[0][1]["rps"]))


if __name__ == "__main__":
    main()
