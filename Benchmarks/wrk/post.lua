-- wrk script: POST a body of BODY_BYTES (default 1 MiB) bytes of 'x' to the
-- URL's path (Benchmarks/run.sh: /echo), keep-alive; wrk adds the
-- Content-Length. The servers write the same bytes back.
local size = tonumber(os.getenv("BODY_BYTES") or "1048576")
wrk.method = "POST"
wrk.body = string.rep("x", size)
wrk.headers["Content-Type"] = "application/octet-stream"
