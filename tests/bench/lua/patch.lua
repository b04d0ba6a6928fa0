-- PATCH /api/v2/ticketing/ticket/{objectId}/update with an etag chained per ticket.
--
-- args: <data file> <threads>. The data file (written by tests/bench before every run) defines
--   bench_tickets = { {patch = "...", get = "...", auth = <index>, etag = "..."}, ... }
--   bench_auth    = { {authorization = "Bearer ...", tenant = "...", realm = "..."}, ... }
--   bench_field   = "<field uuid of the REQ type's `counter`>"
--
-- There are exactly as many tickets as connections and each thread owns the slice of tickets matching its share
-- of connections. wrk does not tell request() which connection it writes to, so a thread keeps its tickets in a
-- FIFO of those not in flight: request() takes one, response() (matched through the echoed x-request-id, which
-- names the ticket) stores the new etag from the body and puts the ticket back. A ticket is therefore never in
-- flight twice, which is what one ticket per connection guarantees, and every compare-and-swap carries the
-- current etag. An ETAG_MISMATCH (none expected) marks the ticket stale: its next request is a GET that
-- re-reads the etag. Only 200 answers to PATCH count as updates.
--
-- wrk calls request() once in the first thread's state before any connection exists, only to count the requests
-- in the string (script_verify_request); that call must not take a ticket, or the ticket would never come back.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads)
end

function init(args)
  dofile(args[1])
  local nthreads = tonumber(args[2])
  ready, head, tail = {}, 1, 0
  for i = thread_index, #bench_tickets, nthreads do
    tail = tail + 1
    ready[tail] = i
  end
  stale = {}
  verified = thread_index ~= 1
  seq = 0
  ok, mismatch, refetched, other, lost = 0, 0, 0, 0, 0
end

local function take()
  if head > tail then
    return nil
  end
  local i = ready[head]
  ready[head] = nil
  head = head + 1
  return i
end

function request()
  if not verified then
    verified = true
    return wrk.format("GET", "/health/live", {})
  end
  local i = take()
  if i == nil then
    -- Every ticket of this thread is in flight (only after a lost response): ask something harmless.
    lost = lost + 1
    return wrk.format("GET", "/health/live", {})
  end
  seq = seq + 1
  local ticket = bench_tickets[i]
  local auth = bench_auth[ticket.auth]
  local headers = {
    ["authorization"] = auth.authorization,
    ["x-tenantid"] = auth.tenant,
    ["realmname"] = auth.realm,
    ["x-request-id"] = "b" .. i .. "-" .. thread_index .. "-" .. seq,
  }
  if stale[i] then
    return wrk.format("GET", ticket.get, headers)
  end
  headers["content-type"] = "application/json"
  local body = '{"etag":"' .. ticket.etag .. '","ticketUpdate":{"' .. bench_field .. '":' .. seq .. "}}"
  return wrk.format("PATCH", ticket.patch, headers, body)
end

function response(status, headers, body)
  local rid = headers["x-request-id"] or headers["X-Request-Id"]
  local i = rid and tonumber(string.match(rid, "^b(%d+)%-"))
  if i == nil then
    return -- the harmless filler request
  end
  local etag = string.match(body, '"etag"%s*:%s*"([0-9a-fA-F%-]+)"')
  if stale[i] then
    refetched = refetched + 1
    if status == 200 and etag then
      bench_tickets[i].etag = etag
      stale[i] = nil
    end
  elseif status == 200 and etag then
    bench_tickets[i].etag = etag
    ok = ok + 1
  elseif status == 400 and string.find(body, "ETAG_MISMATCH", 1, true) then
    mismatch = mismatch + 1
    stale[i] = true
  else
    other = other + 1
    if other <= 3 then
      io.stderr:write("unexpected PATCH answer " .. status .. ": " .. string.sub(body, 1, 300) .. "\n")
    end
  end
  tail = tail + 1
  ready[tail] = i
end

function done(summary, latency, requests)
  local totals = { ok = 0, mismatch = 0, refetched = 0, other = 0, lost = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + (thread:get(name) or 0)
    end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d"
      .. " ok=%d mismatch=%d refetched=%d other=%d lost=%d\n",
    summary.requests, summary.duration, latency:percentile(50.0), latency:percentile(99.0), e.status,
    e.connect, e.read, e.write, e.timeout,
    totals.ok, totals.mismatch, totals.refetched, totals.other, totals.lost
  ))
end
