#!/bin/sh
# e2e_pgbouncer.sh: the end-to-end suites that run the most statements,
# again, with the workers and telehookctl reaching PostgreSQL through a
# real PgBouncer in transaction pooling ([database] pooler =
# transaction; t/harness.py starts it on a free port), with the settings
# telehook(8) recommends, then the outage suites with PgBouncer's own
# defaults.  Two at a time:
# each suite has its own cluster, PgBouncer, workers and nginx.
srcdir=${top_srcdir:-$(dirname "$0")/..}
[ -x /usr/sbin/pgbouncer ] || { echo "SKIP: pgbouncer not installed"; exit 77; }
TELEHOOK_POOLER=transaction
export TELEHOOK_POOLER
dir=$(mktemp -d "${TMPDIR:-/tmp}/telehook-pgbouncer.XXXXXX")
trap 'rm -rf "$dir"' EXIT
printf '%s\n' e2e_twilio e2e_twilio_routes e2e_retell e2e_voipms e2e_spool \
    e2e_api e2e_outcomes e2e_security |
    xargs -P 2 -I{} sh -c 'python3 "$1/t/$2.py" > "$3/$2.log" 2>&1 ||
	echo "$2" >> "$3/failed"' sh "$srcdir" {} "$dir"
# The outage and spool suites again through a PgBouncer left at its own
# defaults (15 s to reach a server, 120 s in its queue): the workers'
# answer budget, not PgBouncer, decides how long a webhook waits.
printf '%s\n' e2e_spool e2e_durability |
    TELEHOOK_POOLER_DEFAULTS=1 xargs -P 2 -I{} sh -c \
	'python3 "$1/t/$2.py" > "$3/$2-defaults.log" 2>&1 ||
	echo "$2-defaults" >> "$3/failed"' sh "$srcdir" {} "$dir"
for log in "$dir"/*.log; do
	printf 'pgbouncer %s: %s\n' "$(basename "$log" .log)" \
	    "$(grep -E '^(OK|FAILED)' "$log" | tail -n 1)"
done
if [ -s "$dir/failed" ]; then
	for s in $(cat "$dir/failed"); do
		echo "==== $s through PgBouncer"
		tail -n 60 "$dir/$s.log"
	done
	exit 1
fi
