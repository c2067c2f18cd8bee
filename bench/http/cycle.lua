-- wrk script for bench/http-vs-tower-sessions: every request sends the next
-- session key from a file (one a line), so each stored row is read once per
-- pass. Thread t of T takes keys t+1, t+1+T, t+1+2T, ...; a thread that runs
-- out starts its slice again (the bench script checks, through the server's
-- /stats, how many reads really were first reads).
--   wrk ... -s cycle.lua URL -- KEYFILE THREADS [COOKIE_NAME]
local next_tid = 0
function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

function init(args)
  keys = {}
  for line in io.lines(args[1]) do
    if line ~= "" then keys[#keys + 1] = line end
  end
  step = tonumber(args[2])
  name = args[3] or "sessionid"
  i = tid + 1
end

function request()
  local k = keys[i]
  i = i + step
  if i > #keys then i = tid + 1 end
  return wrk.format("GET", "/", { ["Cookie"] = name .. "=" .. k })
end
