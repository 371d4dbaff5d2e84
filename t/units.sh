#!/bin/sh
# units.sh: every systemd unit we ship is hardened to an exposure of at
# most 3.0 by "systemd-analyze security" (on the unit files, offline:
# no running systemd needed), and names no directive this systemd does
# not know.  Skipped (77) where systemd-analyze is not installed.
builddir=${top_builddir:-$(dirname "$0")/..}
command -v systemd-analyze >/dev/null 2>&1 || {
	echo "units: no systemd-analyze here"; exit 77; }
fail=0
for u in telehook.service telehook-deliver.service \
    telehook-outbox.service telehook-drain.service; do
	f=$builddir/contrib/$u
	[ -f "$f" ] || { echo "units: $f missing"; fail=1; continue; }
	out=$(systemd-analyze security --offline=yes --threshold=30 "$f" 2>&1)
	rc=$?
	level=$(printf '%s\n' "$out" | sed -n 's/.*exposure level for .*: \([0-9.]*\).*/\1/p')
	if [ $rc -ne 0 ] || [ -z "$level" ]; then
		echo "units: $u: exposure ${level:-unknown}, over 3.0:"
		printf '%s\n' "$out" | grep '✗' | head -n 20
		fail=1
	else
		echo "units: $u: exposure $level"
	fi
	if printf '%s\n' "$out" | grep -qi 'unknown key\|unknown lvalue'; then
		echo "units: $u: a directive systemd does not know"
		fail=1
	fi
done
exit $fail
