-- Record workflow progress without ever moving a finished run back to running.
-- A duplicate trigger (a claimed entry whose first delivery did finish, a resume of a run that was only
-- slow) may be processed after the run completed; its "running" update must not win.
-- KEYS[1] = wf:<run_id>; ARGV[1] = "1" if this update finishes the run, then field/value pairs.
if ARGV[1] ~= '1' then
  local status = redis.call('HGET', KEYS[1], 'status')
  if status == 'completed' or status == 'failed' then return 0 end
end
local args = {}
for i = 2, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(args))
return 1
