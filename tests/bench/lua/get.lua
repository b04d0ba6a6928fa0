-- GET /api/v2/ticketing/ticket/{objectId}: a random seeded ticket of a random tenant on every request; one request
-- in bench_customer_share, at random, is a customer's, reading one of the tickets it created (the seed made it the
-- creator of every bench_customer_share-th ticket).
--
-- args: <data file> <threads>. The data file defines
--   bench_auth          = { {authorization = "Bearer ...", tenant = "...", realm = "..."}, ... }  (an agent per tenant)
--   bench_customer_auth = the same, a customer per tenant
--   bench_count  = <tickets per tenant, numbered 1..bench_count>
--   bench_customer_share = <n: the customer created tickets n, 2n, ...; 1 request in n is the customer's; 0: none>
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
  header_sets = headers_of(bench_auth)
  customer_header_sets = headers_of(bench_customer_auth)
end

function headers_of(auths)
  local sets = {}
  for k, auth in ipairs(auths) do
    sets[k] = {
      ["authorization"] = auth.authorization,
      ["x-tenantid"] = auth.tenant,
      ["realmname"] = auth.realm,
    }
  end
  return sets
end

function request()
  local headers, number
  if bench_customer_share > 0 and math.random(bench_customer_share) == 1 then
    headers = customer_header_sets[math.random(#customer_header_sets)]
    number = bench_customer_share * math.random(math.floor(bench_count / bench_customer_share))
  else
    headers = header_sets[math.random(#header_sets)]
    number = math.random(bench_count)
  end
  local path = string.format("/api/v2/ticketing/ticket/%s-%04d", bench_prefix, number)
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
