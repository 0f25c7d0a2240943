-- GET of the URL given to wrk, with the tenant's headers.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
