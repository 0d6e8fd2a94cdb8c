-- wrk script for the soak (tests/bench/soak.py), one wrk thread.
-- Arguments: TOTAL, then pairs PATH TOKEN ("-": no Authorization header).
-- Sends the requests in turn, counts the answers by status, writes
-- "progress N" to stderr every 1000 answers and "done N" once TOTAL
-- answers are in (soak.py then interrupts wrk), and prints
-- "status CODE COUNT" lines when wrk ends.

local total = 0
local requests = {}
local next_request = 1
counts = {}     -- global: done() reads it with thread:get()
local answered = 0
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    total = tonumber(args[1])
    for i = 2, #args, 2 do
        local headers = {}
        if args[i + 1] ~= "-" then
            headers["Authorization"] = "Bearer " .. args[i + 1]
        end
        table.insert(requests, wrk.format("GET", args[i], headers))
    end
end

function request()
    local r = requests[next_request]
    next_request = next_request % #requests + 1
    return r
end

function response(status, headers, body)
    counts[status] = (counts[status] or 0) + 1
    answered = answered + 1
    if answered % 1000 == 0 then
        io.stderr:write("progress " .. answered .. "\n")
    end
    if answered == total then
        io.stderr:write("done " .. answered .. "\n")
        wrk.thread:stop()
    end
end

function done(summary, latency, reqs)
    for _, thread in ipairs(threads) do
        for status, n in pairs(thread:get("counts")) do
            io.write(string.format("status %d %d\n", status, n))
        end
    end
    io.write(string.format("latency p50 %d p99 %d max %d\n",
                           latency:percentile(50), latency:percentile(99),
                           latency.max))
end
