#!/usr/bin/env bash
# Tests/deploy/proxies.sh BIN - vigil-demo behind Debian's nginx and HAProxy,
# started with the repo's own deploy/nginx/vigil.conf and
# deploy/haproxy/haproxy.cfg (only their ports rewritten), on 127.0.0.1:
#   - a client aborting at the proxy (FIN, then RST) cancels the handler
#     behind it; the latency from the client's close to the handler's
#     cancellation is printed (p50 and max of 5 trials);
#   - HAProxy without `option abortonclose` never cancels it (why the
#     deploy file has the option);
#   - upstream keep-alive under load: wrk through the proxy gives no socket
#     error and no non-2xx answer, and an exact count shows no request lost
#     or served twice.
# Installs nginx-light, haproxy and wrk when missing (as root), without
# letting Debian start their services; stops everything it started.
set -u
BIN="${1:-.build/release/vigil-demo}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CLIENT="python3 $HERE/proxy_client.py"
PASSED=0; FAILED=0
ok()   { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "not ok - $*"; }

install_missing() {
  local missing=""
  for p in nginx-light haproxy wrk; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  [ -z "$missing" ] && return 0
  echo "installing:$missing"
  local SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  # Debian starts a package's service on install (nginx on port 80): a
  # policy-rc.d that says no keeps this test the only one starting them.
  local policy=/usr/sbin/policy-rc.d made=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod 755 "$policy" && made=1
  fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  local rc=$?
  [ -n "$made" ] && $SUDO rm -f "$policy"
  return $rc
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # PORT: until GET / answers 200 (5 s)
  for _ in $(seq 1 100); do
    curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null | grep -q 200 && return 0
    sleep 0.05
  done
  return 1
}

T=$(mktemp -d /tmp/vigil-proxies.XXXXXX)
chmod 755 "$T" # nginx's workers (user nobody) write their temp files here
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT

install_missing || { echo "not ok - could not install nginx-light/haproxy/wrk"; exit 1; }

DEMO=$(free_port)
"$BIN" --host 127.0.0.1 --port "$DEMO" >"$T/demo.log" 2>&1 &
PIDS+=($!)
wait_http "$DEMO" || { echo "not ok - vigil-demo did not start"; cat "$T/demo.log"; exit 1; }

# deploy_conf SRC PORT: the deploy file with only its ports rewritten.
deploy_conf() {
  sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$DEMO/" \
      -e "s/listen 80;/listen 127.0.0.1:$2;/" \
      -e "s/bind 127\.0\.0\.1:80$/bind 127.0.0.1:$2/" "$1"
}

start_nginx() { # PORT
  deploy_conf "$ROOT/deploy/nginx/vigil.conf" "$1" >"$T/vigil.conf"
  mkdir -p "$T/body" "$T/proxy" "$T/fastcgi" "$T/uwsgi" "$T/scgi"
  chown nobody "$T"/{body,proxy,fastcgi,uwsgi,scgi} 2>/dev/null
  cat >"$T/nginx.conf" <<EOF
worker_processes 1;
pid $T/nginx.pid;
error_log $T/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $T/body;
    proxy_temp_path $T/proxy;
    fastcgi_temp_path $T/fastcgi;
    uwsgi_temp_path $T/uwsgi;
    scgi_temp_path $T/scgi;
    include $T/vigil.conf;
}
EOF
  nginx -p "$T" -c "$T/nginx.conf" -g 'daemon off;' >"$T/nginx.out" 2>&1 &
  PIDS+=($!)
  wait_http "$1"
}

start_haproxy() { # PORT CONF
  haproxy -db -f "$2" >"$T/haproxy.out" 2>&1 &
  PIDS+=($!)
  wait_http "$1"
}

stop_last() { # the most recently started proxy
  local p="${PIDS[-1]}"
  kill "$p" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  unset 'PIDS[-1]'
}

aborts() { # NAME PORT
  for mode in fin rst; do
    if out=$($CLIENT abort --proxy "$2" --direct "$DEMO" --mode "$mode" 2>&1); then
      ok "$1: a client's abort ($mode) cancels the handler: ${out##*: }"
    else
      fail "$1: abort ($mode): $out"
    fi
  done
}

load() { # NAME PORT
  local out
  out=$(wrk -t1 -c32 -d3s "http://127.0.0.1:$2/" 2>&1)
  local reqs errs non2xx
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  errs=$(grep -o 'Socket errors:.*' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  if [ -n "$reqs" ] && [ -z "$errs" ] && [ -z "$non2xx" ]; then
    ok "$1: wrk -c32 3 s through the proxy: $reqs requests, no socket error, no non-2xx"
  else
    fail "$1: wrk through the proxy: ${errs:-} ${non2xx:+non-2xx $non2xx}"; echo "$out"
  fi
  if out=$($CLIENT count --proxy "$2" --direct "$DEMO" --conns 16 --requests 4000 2>&1); then
    ok "$1: $out"
  else
    fail "$1: $out"
  fi
}

echo "# nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), deploy/nginx/vigil.conf"
NGINX=$(free_port)
if start_nginx "$NGINX"; then
  aborts nginx "$NGINX"
  load nginx "$NGINX"
  stop_last
else
  fail "nginx did not start"; cat "$T/nginx-error.log" "$T/nginx.out" 2>/dev/null
fi

echo "# HAProxy $(haproxy -v | awk 'NR==1 {print $3}'), deploy/haproxy/haproxy.cfg"
HAPROXY=$(free_port)
deploy_conf "$ROOT/deploy/haproxy/haproxy.cfg" "$HAPROXY" >"$T/haproxy.cfg"
grep -q "^    option abortonclose" "$T/haproxy.cfg" || fail "deploy/haproxy/haproxy.cfg has no option abortonclose"
if start_haproxy "$HAPROXY" "$T/haproxy.cfg"; then
  aborts haproxy "$HAPROXY"
  load haproxy "$HAPROXY"
  stop_last
else
  fail "haproxy did not start"; cat "$T/haproxy.out"
fi

# The same file without the option: the handler runs on for nobody. Last,
# because the /wait requests it leaves behind stay live in the demo.
grep -v "^    option abortonclose" "$T/haproxy.cfg" >"$T/haproxy-noabort.cfg"
if start_haproxy "$HAPROXY" "$T/haproxy-noabort.cfg"; then
  if out=$($CLIENT abort --proxy "$HAPROXY" --direct "$DEMO" --mode fin --trials 1 --expect none 2>&1); then
    ok "haproxy without abortonclose: the handler is not cancelled (the option is needed)"
  else
    fail "haproxy without abortonclose: $out"
  fi
  stop_last
else
  fail "haproxy (no abortonclose) did not start"; cat "$T/haproxy.out"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
