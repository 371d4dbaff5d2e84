# dev/common.sh: shared by dev/run and dev/check.  Sourced, not run.
#
# Everything the build, the tests and the demo need comes from Debian's
# packages, installed here, so a fresh Debian 12 machine (or CI) needs
# nothing done by hand.

# Packages, one concern per line.
TELEHOOK_PACKAGES="
	build-essential autoconf automake pkg-config
	libfcgi-dev libpq-dev libsodium-dev libssl-dev libcjson-dev
	libcurl4-openssl-dev
	check mandoc
	nginx spawn-fcgi multiwatch libfcgi-bin
	postgresql postgresql-client pgbouncer
	curl python3 python3-aiosmtpd ca-certificates procps openssl
	strace systemd groff-base iproute2
	debhelper lintian devscripts fakeroot
	chromium fonts-dejavu-core
	clang libclang-rt-14-dev
"
# Node.js and npm run the independent Standard Webhooks verifier of
# t/harness_delivery.py (the standardwebhooks package from the npm
# registry): Debian's, unless a node is installed already (NodeSource's
# carries its own npm and conflicts with Debian's).
command -v node >/dev/null || TELEHOOK_PACKAGES="$TELEHOOK_PACKAGES nodejs"
command -v npm >/dev/null || TELEHOOK_PACKAGES="$TELEHOOK_PACKAGES npm"

# Run a command as root: directly when we are root, else through sudo.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Install whatever of TELEHOOK_PACKAGES is missing.  apt-get update runs
# only when something is missing, so a warm machine starts at once.
install_packages() {
	missing=""
	for p in $TELEHOOK_PACKAGES; do
		s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
		case "$s" in
		*"install ok installed"*) ;;
		*) missing="$missing $p" ;;
		esac
	done
	[ -z "$missing" ] && return 0
	echo "dev: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# Installing nginx or postgresql must not start the distribution's own
	# services: the tests and dev/run start private instances.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
		as_root chmod 755 /usr/sbin/policy-rc.d
		trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	as_root apt-get update -qq
	# shellcheck disable=SC2086
	as_root apt-get install -y -qq --no-install-recommends $missing
	as_root rm -f /usr/sbin/policy-rc.d
	trap - EXIT
}

# Configure (once) and build in the top directory with the given flags.
build_tree() {
	if [ ! -x configure ] || [ configure.ac -nt configure ] || \
	    [ Makefile.am -nt Makefile.in ]; then
		autoreconf -fi
	fi
	if [ ! -f Makefile ] || [ "$(cat .dev-configured 2>/dev/null)" != "$*" ]; then
		./configure "$@"
		echo "$*" > .dev-configured
	fi
	make -j"$(nproc)"
}
