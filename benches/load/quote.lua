-- POST /v1/commission/quote with 64 different sales (price, quantity,
-- category, authentication), cycled, so no two neighbouring requests match.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local categories = { "bags", "watches", "accessories", "sneakers", "women-dresses", "men-shirts" }
local bodies = {}
for i = 1, 64 do
  local price = 5000 + (i * 7919) % 900000
  local quantity = 1 + i % 3
  local authenticated = (i % 4 ~= 0) and "true" or "false"
  bodies[i] = string.format(
    '{"order_id":"o-%d","sku":"sku-%d","category_id":"%s","unit_price":%d,"quantity":%d,"currency":"EUR","seller_id":"seller-%d","attributes":[{"key":"authenticated","value":"%s"}]}',
    i, i, categories[i % #categories + 1], price, quantity, i % 7, authenticated)
end

local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/commission/quote", nil, bodies[n % #bodies + 1])
end
