#!/bin/sh
# man-lint.sh: every man page is clean under both formatters operators
# meet: mandoc -Tlint, and Debian's groff as man(1) runs it (terminal
# and typeset, every warning on).  Any line either prints fails.
srcdir=${top_srcdir:-$(dirname "$0")/..}
fail=0
for tool in mandoc groff; do
	command -v $tool >/dev/null 2>&1 || { echo "man-lint: no $tool"; exit 1; }
done
for m in telehook.8 telehookctl.8 telehook.conf.5; do
	f=$srcdir/man/$m
	out=$(mandoc -Tlint -Wwarning "$f" 2>&1;
	    groff -mandoc -Tutf8 -ww -z "$f" 2>&1;
	    groff -mandoc -ww -z "$f" 2>&1)
	if [ -n "$out" ]; then
		echo "man-lint: $m:"
		printf '%s\n' "$out"
		fail=1
	else
		echo "man-lint: $m clean"
	fi
done
exit $fail
