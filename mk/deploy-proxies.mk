# Vigil behind Debian's nginx and HAProxy, with the repo's deploy/ files
# (Tests/deploy/proxies.sh: client aborts cancel the handler through each
# proxy, keep-alive under load loses and repeats nothing). Installs
# nginx-light, haproxy and wrk when missing. About 15 s.
.PHONY: test-proxies
test-proxies: build
	bash Tests/deploy/proxies.sh .build/release/vigil-demo
