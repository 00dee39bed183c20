# A fleet of processes on one socket, as deploy/systemd/vigil.socket and
# vigil@.service run it (Tests/deploy/fleet.py: the socket held as systemd
# holds it, every instance restarted in turn under wrk and
# new-connection-per-request load; zero errors). Installs wrk when
# missing. About 15 s.
.PHONY: test-fleet
test-fleet: build
	python3 Tests/deploy/fleet.py .build/release/vigil-demo
