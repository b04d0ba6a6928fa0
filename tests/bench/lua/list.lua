-- GET /api/v2/ticketing/ticket?...: one of a few list queries of one kind (a state filter, a field filter, a q search
-- or a field sort), picked at random on every request.
--
-- args: <data file>. The data file defines
--   bench_auth  = { {authorization = "Bearer ...", tenant = "...", realm = "..."} }  (the seeded tenant)
--   bench_paths = { "/api/v2/ticketing/ticket?...", ... }
-- Every answer must be a 200 with a page of tickets; a non-2xx shows in wrk's own count.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads)
end

function init(args)
  dofile(args[1])
  math.randomseed(os.time() * 100 + thread_index)
  local auth = bench_auth[1]
  headers = {
    ["authorization"] = auth.authorization,
    ["x-tenantid"] = auth.tenant,
    ["realmname"] = auth.realm,
  }
end

function request()
  return wrk.format("GET", bench_paths[math.random(#bench_paths)], headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d"
      .. " ok=%d\n",
    summary.requests, summary.duration, latency:percentile(50.0), latency:percentile(99.0), e.status,
    e.connect, e.read, e.write, e.timeout, summary.requests - e.status
  ))
end
