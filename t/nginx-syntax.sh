#!/bin/sh
# nginx-syntax.sh: "nginx -t" on sites that use the shipped files: the
# full example site (http level, with its upstream and limits files), a
# server block that includes telehook.conf and compat.conf after the
# shipped upstream file, and the site architecture.md §2 promises: the
# operator's own "upstream telehook" block and nothing else at http
# level.
builddir=${top_builddir:-$(dirname "$0")/..}
srcdir=${top_srcdir:-$(dirname "$0")/..}
command -v nginx >/dev/null 2>&1 || PATH=$PATH:/usr/sbin
tmp=$(mktemp -d /tmp/telehook-nginx.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
cp /etc/nginx/fastcgi_params "$tmp/"
# The example site names certificates: make a throwaway pair.
mkdir -p "$tmp/certs"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -keyout "$tmp/certs/key.pem" -out "$tmp/certs/cert.pem" \
    >/dev/null 2>&1 || { echo "openssl failed"; exit 1; }
share="$tmp/share"
mkdir -p "$share/nginx" "$share/www"
cp "$srcdir/nginx/telehook-upstream.conf" "$srcdir/nginx/telehook-limits.conf" \
    "$share/nginx/"
pkgdatadir=$(sed -n 's|.*root \(.*\)/www;|\1|p' "$builddir/nginx/telehook.conf" | head -n1)
for f in telehook.conf example-site.conf compat.conf telehook-webhook.conf; do
	sed -e "s|$pkgdatadir|$share|g" \
	    -e "s|/etc/letsencrypt/live/hooks.example.com/fullchain.pem|$tmp/certs/cert.pem|" \
	    -e "s|/etc/letsencrypt/live/hooks.example.com/privkey.pem|$tmp/certs/key.pem|" \
	    -e "s|/var/log/nginx/|$tmp/|" \
	    "$builddir/nginx/$f" > "$share/nginx/$f"
	[ -s "$share/nginx/$f" ] || { echo "$f: empty after sed"; exit 1; }
done
user=""
[ "$(id -u)" -eq 0 ] && user="user root;"
common="$user
pid $tmp/nginx.pid;
events { worker_connections 64; }"
temps="client_body_temp_path $tmp/b; fastcgi_temp_path $tmp/f;
    proxy_temp_path $tmp/p; uwsgi_temp_path $tmp/u; scgi_temp_path $tmp/s;
    access_log off;"
cat > "$tmp/example.conf" <<CONF
$common
http { $temps
    include $share/nginx/example-site.conf;
}
CONF
cat > "$tmp/snippets.conf" <<CONF
$common
http { $temps
    include $share/nginx/telehook-upstream.conf;
    server {
        listen 127.0.0.1:1;
        include $share/nginx/telehook.conf;
        include $share/nginx/compat.conf;
    }
}
CONF
cat > "$tmp/own.conf" <<CONF
$common
http { $temps
    upstream telehook { server 127.0.0.1:9; }
    server {
        listen 127.0.0.1:1;
        include $share/nginx/telehook.conf;
        include $share/nginx/compat.conf;
    }
}
CONF
fail=0
for c in example snippets own; do
	# -T: the whole configuration as nginx read it, so a silently empty
	# include cannot pass: every compat alias must be there.
	if nginx -T -q -p "$tmp" -c "$tmp/$c.conf" -e "$tmp/error.log" \
	    >"$tmp/dump" 2>"$tmp/out" &&
	    grep -q "location = /api/voip/sms/webhook" "$tmp/dump" &&
	    grep -q "fastcgi_read_timeout 15s" "$tmp/dump"; then
		echo "nginx -t: $c site OK"
	else
		echo "nginx -t: $c site FAILED"
		cat "$tmp/out"
		fail=1
	fi
done
exit $fail
