# The client's address through Debian's HAProxy with the PROXY protocol
# (Tests/deploy/proxyproto.sh): vigil-demo with --proxy-protocol v1 and v2
# behind deploy/haproxy/haproxy-proxyproto.cfg (send-proxy,
# send-proxy-v2), IPv4 and IPv6, health checks, direct clients refused.
# Installs haproxy and curl when missing. About 5 s once the demo is built.
.PHONY: test-proxyproto
test-proxyproto: build
	bash Tests/deploy/proxyproto.sh .build/release/vigil-demo
