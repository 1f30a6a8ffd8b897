-- wrk script for the Administration API: every request is a POST with HTTP
-- Basic authentication and a form-urlencoded body, as MailStore clients send
-- them.  Every response is checked: its status must be 200 and its body must
-- hold the envelope's "statusCode":"succeeded".  The counts are printed at
-- the end, and wrk exits 1 if any request failed (a non-200 status, a body
-- without "succeeded", or a socket error: connect, read, write, timeout).
--
-- usage (run_api.sh does this):
--   API_USER=admin API_PASSWORD=PW API_FORM='folder=alice%2FInbox' \
--     wrk -t2 -c32 -d20s --latency -s bench/api_bench.lua https://127.0.0.1:PORT/api/invoke/GetMessages
-- Env: API_USER, API_PASSWORD  credentials (default user admin; the password is required)
--      API_FORM                the form body, already urlencoded (default empty)
--      API_REPORT              if set, a file that gets the figures as key=value lines

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
   local out = {}
   for i = 1, #s, 3 do
      local a, b, c = s:byte(i, i + 2)
      local n = a * 65536 + (b or 0) * 256 + (c or 0)
      local c1 = math.floor(n / 262144) % 64
      local c2 = math.floor(n / 4096) % 64
      local c3 = math.floor(n / 64) % 64
      local c4 = n % 64
      out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1) ..
         (b and b64chars:sub(c3 + 1, c3 + 1) or "=") .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
   end
   return table.concat(out)
end

local user = os.getenv("API_USER") or "admin"
local password = os.getenv("API_PASSWORD")
if not password then
   io.stderr:write("api_bench.lua: set API_PASSWORD (and API_USER, API_FORM)\n")
   os.exit(2)
end

-- The request is the same every time, so wrk formats it once per thread.
wrk.method = "POST"
wrk.body = os.getenv("API_FORM") or ""
wrk.headers["Authorization"] = "Basic " .. base64(user .. ":" .. password)
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"

-- per-thread counters (each wrk thread has its own Lua state)
non200 = 0
unsucceeded = 0
checked = 0
first_bad = nil

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function response(status, headers, body)
   checked = checked + 1
   if status ~= 200 then
      non200 = non200 + 1
      if not first_bad then first_bad = status .. " " .. string.sub(body or "", 1, 300) end
   elseif not (body and string.find(body, '"statusCode"%s*:%s*"succeeded"')) then
      unsucceeded = unsucceeded + 1
      if not first_bad then first_bad = status .. " " .. string.sub(body or "", 1, 300) end
   end
end

function done(summary, latency, requests)
   local n200, nsucc, nchecked, bad = 0, 0, 0, nil
   for _, t in ipairs(threads) do
      n200 = n200 + t:get("non200")
      nsucc = nsucc + t:get("unsucceeded")
      nchecked = nchecked + t:get("checked")
      bad = bad or t:get("first_bad")
   end
   local e = summary.errors
   local sock = e.connect + e.read + e.write + e.timeout
   local secs = summary.duration / 1e6
   io.write(string.format("api_bench: %d responses checked: %d not 200, %d without \"succeeded\"; "
                             .. "socket errors: connect %d, read %d, write %d, timeout %d\n",
                          nchecked, n200, nsucc, e.connect, e.read, e.write, e.timeout))
   if bad then io.write("api_bench: first failed response: " .. bad .. "\n") end
   local path = os.getenv("API_REPORT")
   if path and path ~= "" then
      local f = assert(io.open(path, "w"))
      local function kv(k, v) f:write(k, "=", tostring(v), "\n") end
      kv("requests", summary.requests)
      kv("duration_s", string.format("%.3f", secs))
      kv("rps", string.format("%.1f", summary.requests / secs))
      kv("bytes", summary.bytes)
      kv("checked", nchecked)
      kv("non200", n200)
      kv("unsucceeded", nsucc)
      kv("err_connect", e.connect)
      kv("err_read", e.read)
      kv("err_write", e.write)
      kv("err_timeout", e.timeout)
      kv("err_status", e.status)
      -- latency in microseconds
      kv("lat_mean_us", string.format("%.0f", latency.mean))
      kv("lat_max_us", latency.max)
      for _, p in ipairs({ 50, 90, 99, 99.9 }) do
         kv("lat_p" .. tostring(p):gsub("%.", "_") .. "_us", latency:percentile(p))
      end
      f:close()
   end
   if n200 + nsucc + sock > 0 or nchecked == 0 then
      os.exit(1)
   end
end
