-- GET /api/v2/ticketing/ticket/{objectId}: a random seeded ticket of a random tenant on every request.
--
-- args: <data file> <threads>. The data file defines
--   bench_auth   = { {authorization = "Bearer ...", tenant = "...", realm = "..."}, ... }  (one per tenant)
--   bench_count  = <tickets per tenant, numbered 1..bench_count>
--   bench_prefix = "REQ"
-- No response() callback, so wrk does not hand every body to Lua; a non-2xx answer shows in wrk's own count.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads)
end

function init(args)
  dofile(args[1])
  math.randomseed(os.time() * 100 + thread_index)
  header_sets = {}
  for k, auth in ipairs(bench_auth) do
    header_sets[k] = {
      ["authorization"] = auth.authorization,
      ["x-tenantid"] = auth.tenant,
      ["realmname"] = auth.realm,
    }
  end
end

function request()
  local headers = header_sets[math.random(#header_sets)]
  local path = string.format("/api/v2/ticketing/ticket/%s-%04d", bench_prefix, math.random(bench_count))
  return wrk.format("GET", path, headers)
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
