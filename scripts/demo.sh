#!/usr/bin/env bash
# One command for a working demo: installs packages, builds, then runs bulwark-mock
# (a fake provider) and bulwark in front of it with examples/demo.yaml. No API keys.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" build
export MOCK_PORT=${MOCK_PORT:-9000}
"$root/build/mock/bulwark-mock" --listen "127.0.0.1:$MOCK_PORT" --config "$root/examples/mock/behaviors.yaml" --api-key demo-provider-key &
mock_pid=$!
trap 'kill $mock_pid 2>/dev/null || true' EXIT
cat <<MSG

  Bulwark is starting on http://127.0.0.1:8080 in front of bulwark-mock on :$MOCK_PORT.
  Try, from another terminal:
    curl -s http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
    curl -sN http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello"}]}'
    curl -s http://127.0.0.1:8080/metrics
  Or any OpenAI SDK with base URL http://127.0.0.1:8080/v1. Ctrl-C stops both.

MSG
"$root/build/bin/bulwark" serve --config "$root/examples/demo.yaml"
