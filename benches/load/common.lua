-- Shared by the load scenarios (benches/load.sh): the Host and Authorization
-- headers (and Accept-Encoding, when set) from the environment, and one machine-readable result line.
wrk.headers["Host"] = os.getenv("BENCH_HOST") or "localhost"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
local if_none_match = os.getenv("BENCH_IF_NONE_MATCH")
if if_none_match and if_none_match ~= "" then
  wrk.headers["If-None-Match"] = if_none_match
end
local accept_encoding = os.getenv("BENCH_ACCEPT_ENCODING")
if accept_encoding and accept_encoding ~= "" then
  wrk.headers["Accept-Encoding"] = accept_encoding
end

done = function(summary, latency, requests)
  -- wrk counts every status above 399 as an error (a 304 is fine).
  local non2xx = summary.errors.status
  local sockets = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  -- RESULT requests duration_us p50_us p99_us non2xx socket_errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), non2xx, sockets))
end
