-- wrk script: random 1 MiB ranges inside a 1 GiB file (the root-image-over-HTTP pattern).
local size = 1024 * 1024 * 1024
local chunk = 1024 * 1024
math.randomseed(42)
request = function()
  local first = math.random(0, size / chunk - 1) * chunk
  return wrk.format("GET", nil, { Range = string.format("bytes=%d-%d", first, first + chunk - 1) })
end
