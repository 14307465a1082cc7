-- wrk script: POST the body in $BENCH_BODY (a file) with $BENCH_CONTENT_TYPE; count non-2xx answers.
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
