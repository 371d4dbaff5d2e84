#!/bin/sh
# optscan.sh: documentation that cannot drift from the code (after
# pgbouncer's etc/optscan.sh).  Every configuration key in conf_keys[]
# must be documented in telehook.conf.5 and shown in the sample config,
# each in its own section; every telehookctl command in ctl_cmds[] must
# be documented in telehookctl.8.
srcdir=${top_srcdir:-$(dirname "$0")/..}
conf_c=$srcdir/src/conf.c
ctl_c=$srcdir/src/telehookctl.c
man5=$srcdir/man/telehook.conf.5
man8=$srcdir/man/telehookctl.8
sample=$srcdir/contrib/telehook.conf.sample
fail=0
n=0

# Is key in section of the sample config (under its [header])?
in_sample() {
	awk -v sec="$1" -v key="$2" '
		/^\[[a-z]+\]/ { cur = substr($0, 2, index($0, "]") - 2) }
		cur == sec && $0 ~ "^#?" key " =" { found = 1 }
		END { exit !found }' "$sample"
}
# Is key documented in section of telehook.conf.5 (".Ss \&[sec] section")?
in_man() {
	awk -v sec="$1" -v key="$2" '
		/^\.S[sh] / { cur = $2; gsub(/\\&|\[|\]/, "", cur) }
		cur == sec && index($0, ".It Cm " key " ") == 1 { found = 1 }
		END { exit !found }' "$man5"
}

keys=$(sed -n 's/^[	 ]*{ "\([a-z]*\)", "\([a-z_]*\)",.*/\1.\2/p' "$conf_c")
[ -n "$keys" ] || { echo "optscan: no keys found in $conf_c"; exit 1; }
for sk in $keys; do
	n=$((n + 1))
	s=${sk%%.*}
	k=${sk#*.}
	if ! in_man "$s" "$k"; then
		echo "optscan: [$s] $k is not documented in telehook.conf.5"
		fail=1
	fi
	if ! in_sample "$s" "$k"; then
		echo "optscan: [$s] $k is missing from telehook.conf.sample"
		fail=1
	fi
done

# ctl_cmds[] rows: { "name", minargs, maxargs, needs_db, ...
cmds=$(sed -n 's/^[	 ]*{ "\([a-z -]*\)", -*[0-9]*, -*[0-9]*, [01],.*/\1/p' \
    "$srcdir"/src/ctl_*.c)
[ -n "$cmds" ] || { echo "optscan: no commands found in $ctl_c"; exit 1; }
IFS='
'
for c in $cmds; do
	n=$((n + 1))
	if ! grep -q "^\.It Ic $c\( \|$\)" "$man8"; then
		echo "optscan: telehookctl $c is not documented in telehookctl.8"
		fail=1
	fi
done
[ $fail -eq 0 ] && echo "optscan: $n keys and commands documented"
exit $fail
