-- wrk script: 16 pipelined requests per write.
--   wrk -t1 -c64 -d5s -s Benchmarks/wrk/pipeline.lua http://127.0.0.1:PORT/
-- Each write carries `depth` copies of
--   GET / HTTP/1.1\r\nHost: localhost\r\n\r\n
-- wrk counts each response it parses as one request, so req/s is responses/s.

local depth = 16
local req

init = function(args)
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format("GET", "/", { ["Host"] = "localhost" })
   end
   req = table.concat(r)
end

request = function()
   return req
end
