-- GET /health/live (the trivial route): wrk's static request, only the summary line is added.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d"
      .. " ok=%d\n",
    summary.requests, summary.duration, latency:percentile(50.0), latency:percentile(99.0), e.status,
    e.connect, e.read, e.write, e.timeout, summary.requests - e.status
  ))
end
