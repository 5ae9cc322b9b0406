-- wrk script: a small non-streaming chat request, keep-alive.
-- wrk -t1 -c64 -d5s -s examples/mock/post.lua http://127.0.0.1:PORT/v1/chat/completions
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
wrk.body = '{"model":"mock-fast","messages":[{"role":"system","content":"You are terse."},'
        .. '{"role":"user","content":"Say hello in eight words."}]}'
