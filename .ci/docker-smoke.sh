#!/usr/bin/env bash
# CI: build the image and smoke-test it.
#   1. ../shared/tools/docker-smoke builds it (from a local Debian/Python base: no container registry here)
#      and runs `services-bot --help` in it;
#   2. on a private docker network, an emulator container and a `serve` container (the image's default
#      command) against it: the HEALTHCHECK must turn healthy, /healthz must answer 200 on the published
#      port, `ask` must reach the emulator from inside, and the process must not run as root;
#   3. `docker run -i --rm IMAGE mcp` (the stdio MCP server, as a client's config runs it) answers initialize
#      with its name and version, and lists the tools.
# Everything started here (containers, network, a docker daemon) is stopped on exit; a failure prints the
# containers' logs. Env: IMAGE (default services-bot:ci), DOCKER_SMOKE (path of the docker-smoke tool),
# DOCKER (default /usr/bin/docker), SMOKE_TIMEOUT (seconds to wait for healthy, default 90).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
IMAGE=${IMAGE:-services-bot:ci}
DOCKER=${DOCKER:-/usr/bin/docker}
SMOKE_TIMEOUT=${SMOKE_TIMEOUT:-90}
TOOL=${DOCKER_SMOKE:-$ROOT/../shared/tools/docker-smoke}

if [ ! -f "$TOOL" ]; then
  echo "docker-smoke.sh: $TOOL not found." >&2
  echo "  CI expects the shared tools next to the checkout (../shared/tools/docker-smoke); set DOCKER_SMOKE=PATH." >&2
  exit 1
fi

SUFFIX=sbci-$$
NET=$SUFFIX-net EMU=$SUFFIX-emulator SRV=$SUFFIX-serve
OWN_DAEMON= daemon_was_up=
started=()
log() { printf '== docker-smoke: %s\n' "$*"; }

show_logs() {
  local c
  for c in "${started[@]}"; do
    echo "---- logs of $c ----"
    "$DOCKER" logs --tail 200 "$c" 2>&1 || true
    "$DOCKER" inspect --format '{{json .State}}' "$c" 2>&1 || true
  done
}

cleanup() {
  local rc=$?
  set +e
  [ "$rc" -ne 0 ] && [ ${#started[@]} -gt 0 ] && show_logs
  for c in "${started[@]}"; do "$DOCKER" rm -f -v "$c" >/dev/null 2>&1; done
  "$DOCKER" network rm "$NET" >/dev/null 2>&1
  [ -z "$daemon_was_up" ] && [ -f /var/run/docker.pid ] && OWN_DAEMON=$(cat /var/run/docker.pid)
  if [ -n "$OWN_DAEMON" ] && [ "$(cat "/proc/$OWN_DAEMON/comm" 2>/dev/null)" = dockerd ]; then
    kill "$OWN_DAEMON"
    for _ in $(seq 40); do kill -0 "$OWN_DAEMON" 2>/dev/null || break; sleep 0.5; done
  fi
  [ "$rc" -ne 0 ] && echo "docker smoke FAILED ($rc)" >&2
  exit "$rc"
}
trap cleanup EXIT

# 1. build + `--help` (docker-smoke starts a daemon unless one runs; we keep it for step 2, and stop it here)
"$DOCKER" info >/dev/null 2>&1 && daemon_was_up=1
t0=$SECONDS
KEEP_DAEMON=1 IMAGE="$IMAGE" DOCKER="$DOCKER" bash "$TOOL" "$ROOT" -- --help
log "image built and --help ran in $((SECONDS - t0)) s"

# 2. serve against the emulator, both from the image
t1=$SECONDS
"$DOCKER" network create "$NET" >/dev/null
started+=("$EMU")
"$DOCKER" run -d --name "$EMU" --network "$NET" --no-healthcheck "$IMAGE" \
  emulator --host 0.0.0.0 --port 8090 --services 50 >/dev/null
started+=("$SRV")
"$DOCKER" run -d --name "$SRV" --network "$NET" -p 127.0.0.1::3000 \
  --health-interval 1s --health-timeout 5s --health-start-period 60s --health-retries 3 \
  -e SLACK_BOT_TOKEN=xoxb-ci-smoke -e SLACK_SIGNING_SECRET=ci-smoke-secret \
  -e MODELARTS_ENDPOINT="http://$EMU:8090" -e MODELARTS_PROJECT_ID=emulator-project \
  -e MODELARTS_AUTH_TOKEN=emulator-token -e SERVICES_BOT_MCP_TOKEN=ci-smoke-mcp-token \
  "$IMAGE" >/dev/null   # the default command: serve

for _ in $(seq 30); do   # the emulator answers its own health route once it listens
  "$DOCKER" exec "$EMU" python -c \
    'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8090/_emulator/healthz", timeout=2)' \
    >/dev/null 2>&1 && break
  sleep 1
done

status=
for _ in $(seq "$SMOKE_TIMEOUT"); do
  status=$("$DOCKER" inspect --format '{{.State.Status}}/{{.State.Health.Status}}' "$SRV")
  case $status in
    running/healthy) break ;;
    running/*) sleep 1 ;;
    *) echo "serve container stopped: $status" >&2; exit 1 ;;
  esac
done
[ "$status" = running/healthy ] || { echo "serve not healthy after ${SMOKE_TIMEOUT}s: $status" >&2; exit 1; }
log "serve container healthy after $((SECONDS - t1)) s"

hostport=$("$DOCKER" port "$SRV" 3000/tcp | head -1)
body=$(python3 - "http://$hostport/healthz" <<'EOF'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
    body = json.load(r)
    assert r.status == 200 and body["status"] == "ok", (r.status, body)
    print(json.dumps(body))
EOF
)
log "GET /healthz from the host: $body"

uid=$("$DOCKER" exec "$SRV" id -u)
[ "$uid" != 0 ] || { echo "serve runs as root" >&2; exit 1; }
log "runs as uid $uid"

"$DOCKER" exec "$SRV" services-bot ask --json summary | python3 -c \
  'import json, sys; d = json.load(sys.stdin); assert "error" not in d, d; print("== docker-smoke: ask summary:", str(d)[:200])'

# 3. the stdio MCP server as an MCP client's config runs it (`docker run -i --rm IMAGE mcp`): initialize, list tools
replies=$(printf '%s\n' \
  '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"ci","version":"1"}}}' \
  '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
  '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' \
  | timeout 60 "$DOCKER" run -i --rm --network "$NET" -e MODELARTS_ENDPOINT="http://$EMU:8090" \
      -e MODELARTS_PROJECT_ID=emulator-project -e MODELARTS_AUTH_TOKEN=emulator-token "$IMAGE" mcp)
python3 -c '
import json, sys
answers = {m["id"]: m for m in (json.loads(l) for l in sys.stdin.read().splitlines() if l.strip()) if "id" in m}
assert {1, 2} <= set(answers), ("initialize and tools/list each want an answer; got", answers)
info = answers[1]["result"]["serverInfo"]
tools = sorted(t["name"] for t in answers[2]["result"]["tools"])
assert info["name"] == "services-bot" and info["version"] and "list_services" in tools, (info, tools)
print("== docker-smoke: stdio MCP:", info["name"], info["version"], tools)' <<<"$replies"
log "OK ($IMAGE, $((SECONDS - t0)) s)"
