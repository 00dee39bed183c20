# Clients that vanish (Tests/deploy/vanish.sh): two network namespaces and a
# veth pair made and removed by the test, the release demo in one, a client
# in the other whose link is taken down mid-request; its handler is
# cancelled with peerUnreachable through TCP keepalive (handler waiting)
# and TCP_USER_TIMEOUT (handler writing), and a client that stops reading
# is cut by the write timeout. Root (CAP_NET_ADMIN); without it the test
# says so and skips. Installs iproute2 when missing. About 25 s.
.PHONY: test-vanish
test-vanish: build
	bash Tests/deploy/vanish.sh .build/release/vigil-demo
