#!/bin/sh
# layers.sh: the layers of docs/architecture.md §16 hold.  A lower
# module never calls up into a higher one (spool.c does not call
# dispatch, db.c does not call metrics: they report through hooks the
# program sets), and the project's own headers include no project header
# in a cycle.  Fails naming the call or the cycle.
srcdir=${top_srcdir:-$(dirname "$0")/..}
src=$srcdir/src
fail=0

# module: the function prefixes it must not call
while read -r file forbidden; do
	[ -f "$src/$file" ] || { echo "layers: $file missing"; fail=1; continue; }
	for f in $forbidden; do
		if grep -n "\b${f}[a-z_]*(" "$src/$file" |
		    grep -v '^[0-9]*:[ 	]*\*' >"${TMPDIR:-/tmp}/layers.$$"; then
			echo "layers: $file calls up into $f:"
			cat "${TMPDIR:-/tmp}/layers.$$"
			fail=1
		fi
	done
done <<LIST
db.c metrics_ dispatch_ store_ api_ twilio_ retell_ voipms_ spool_ db_exec_read db_replica_
db_res.c db_exec db_query metrics_ store_
spool.c dispatch_ twilio_ retell_ voipms_ api_
buf.c db_ store_ dispatch_
kv.c db_ store_ dispatch_
util.c db_ store_ dispatch_
crypto.c db_ store_ dispatch_
cidr.c db_ store_ dispatch_
hours.c db_ store_ dispatch_
twiml.c db_ store_ dispatch_
store.c dispatch_ twilio_ retell_ voipms_ api_ reply_
store_call.c dispatch_ twilio_ retell_ voipms_ api_
health.c dispatch_ healthd_
metrics.c dispatch_ health_ routes_
breaker.c metrics_ dispatch_ db_
twilio_req.c twilio_ tw_voice_ tw_sms_
batch.c deliver_
xfer.c deliver_ batch_
ctl_util.c ctl_events_ ctl_org_ ctl_endpoint_
LIST
rm -f "${TMPDIR:-/tmp}/layers.$$"

# include cycles among the project's headers
for h in "$src"/*.h; do
	seen=" $(basename "$h") "
	todo=$(sed -n 's/^#include "\(.*\)"/\1/p' "$h")
	while [ -n "$todo" ]; do
		next=""
		for i in $todo; do
			case "$seen" in
			*" $i "*) echo "layers: include cycle through $i from" \
			    "$(basename "$h")"; fail=1; continue ;;
			esac
			seen="$seen$i "
			[ -f "$src/$i" ] && next="$next $(sed -n \
			    's/^#include "\(.*\)"/\1/p' "$src/$i")"
		done
		todo=$next
	done
done
[ $fail -eq 0 ] && echo "layers: no call up, no include cycle"
exit $fail
