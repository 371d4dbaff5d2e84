-- requests.lua: wrk replays pre-signed webhooks, one file per thread
-- (bench/run writes them), so every request is unique (new MessageSid
-- or call_id) and signed as its provider signs it.
--
-- A line: method TAB path TAB content-type TAB header TAB value TAB body
-- (body with \n as the two characters, as JSON and forms never need).

local counter = 0
local threads = {}

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function init(args)
   reqs = {}
   local f = assert(io.open(args[1] .. "." .. id, "r"))
   for line in f:lines() do
      local m, p, ct, hn, hv, b = line:match(
         "^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      reqs[#reqs + 1] = wrk.format(m, p, { ["Content-Type"] = ct,
         [hn] = hv }, b)
   end
   f:close()
   n = 0
   used = 0
end

function request()
   n = n % #reqs + 1
   used = used + 1
   return reqs[n]
end

function done(summary, latency, requests)
end
