# mk/deploy-restart.mk - restarts that lose no request (Tests/deploy/restart.sh).
#
#   make test-restart       the short run (~25 s): the release demo under wrk
#                           keep-alive and new-connection-per-request load,
#                           slow requests in flight, 3 hand-overs (SIGUSR2);
#                           zero socket errors, zero non-2xx, every slow
#                           request answered; then systemd-socket-activate
#                           starting the demo (installs wrk, curl, systemd
#                           when missing, as root)
#   make test-restart-full  40 s of load, 10 hand-overs (the figures quoted)

.PHONY: test-restart test-restart-full

test-restart: build
	bash Tests/deploy/restart.sh short

test-restart-full: build
	bash Tests/deploy/restart.sh full
