#!/bin/sh
# readme.sh: what the README tells an operator matches the tree.
#  - "Installing from the tarball" names the Debian package of every
#    library configure.ac requires (found through its pkg-config file),
#    so following it gets past ./configure;
#  - the README and README.Debian start the same systemd units, and
#    each is one the package ships;
#  - no mutation count is written down to go stale.
srcdir=${top_srcdir:-$(dirname "$0")/..}
fail=0
deps=$(sed -n '/^Installing from the tarball/,/^    tar xzf/p' "$srcdir/README")
for m in $(sed -n 's/^PKG_CHECK_MODULES(\[[A-Z]*\], \[\([a-z]*\).*/\1/p' \
    "$srcdir/configure.ac"); do
	pc=$(pkg-config --path "$m" 2>/dev/null) || {
		echo "readme: $m: no pkg-config file here"; fail=1; continue; }
	pkg=$(dpkg -S "$pc" 2>/dev/null | cut -d: -f1 | head -n1)
	[ -n "$pkg" ] || { echo "readme: $m: $pc in no package"; fail=1
		continue; }
	if printf '%s\n' "$deps" | grep -qw -- "$pkg"; then
		echo "readme: $m: $pkg named"
	else
		echo "readme: $m needs $pkg, which the tarball section omits"
		fail=1
	fi
done
units() {	# the units "systemctl start" names in file $1, sorted
	sed -n '/systemctl start/,/[^\\]$/p' "$1" | tr ' \\' '\n\n' |
	    grep '^telehook' | sort -u
}
a=$(units "$srcdir/README")
b=$(units "$srcdir/debian/README.Debian")
if [ -z "$a" ] || [ "$a" != "$b" ]; then
	echo "readme: README starts [$(echo $a)], README.Debian [$(echo $b)]"
	fail=1
fi
for u in $a; do
	[ -f "$srcdir/contrib/$u" ] || [ -f "$srcdir/contrib/$u.in" ] ||
	    [ -f "$srcdir/contrib/$u.service.in" ] || {
		echo "readme: $u is not a unit in contrib/"; fail=1; }
done
if grep -n '[0-9][0-9]* of [0-9][0-9]* mutations' "$srcdir/README"; then
	echo "readme: a mutation count written down"
	fail=1
fi
exit $fail
