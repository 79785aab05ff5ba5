#!/usr/bin/env bash
# Process backend for release.py on a single server without systemd or containers:
#   instance.sh start|stop|status NAME
# NAME's settings come from $FACESOCIAL_RUN_DIR/NAME.env (KEY=value lines: FACESOCIAL_BIN, the
# server's FACESOCIAL_* variables, ...); its pid and log live next to it. On hosts with systemd use
# a unit template (see docs/deployment.md) and a two-line wrapper around systemctl instead.
set -euo pipefail
verb=${1:?start|stop|status}; name=${2:?instance name}
run=${FACESOCIAL_RUN_DIR:?set FACESOCIAL_RUN_DIR}
envf="$run/$name.env"; pidf="$run/$name.pid"; logf="$run/$name.log"
grace=${FACESOCIAL_STOP_GRACE:-30}

# A zombie still answers kill -0, so look at its state too.
running() { kill -0 "$1" 2>/dev/null && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }
alive() { [ -f "$pidf" ] && running "$(cat "$pidf")"; }

case $verb in
  start)
    if alive; then echo "$name already running (pid $(cat "$pidf"))"; exit 0; fi
    [ -f "$envf" ] || { echo "missing $envf" >&2; exit 1; }
    # env -i keeps the instance's environment exactly what its file says.
    mapfile -t vars < <(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$envf")
    bin=$(printf '%s\n' "${vars[@]}" | sed -n 's/^FACESOCIAL_BIN=//p' | tail -1)
    [ -x "$bin" ] || { echo "$name: FACESOCIAL_BIN '$bin' is not executable" >&2; exit 1; }
    setsid env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="${HOME:-/}" "${vars[@]}" "$bin" serve \
      >>"$logf" 2>&1 < /dev/null &
    echo $! > "$pidf"
    echo "$name started (pid $!)"
    ;;
  stop)
    if ! alive; then echo "$name not running"; rm -f "$pidf"; exit 0; fi
    pid=$(cat "$pidf")
    kill -TERM "$pid"  # graceful: stop accepting, finish in-flight requests, close connections
    for _ in $(seq $((grace * 10))); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then
      echo "$name ignored SIGTERM for ${grace}s; killing" >&2
      kill -KILL "$pid"
    fi
    rm -f "$pidf"
    echo "$name stopped"
    ;;
  status)
    if alive; then echo "$name running (pid $(cat "$pidf"))"; else echo "$name stopped"; exit 3; fi
    ;;
  *) echo "usage: $0 start|stop|status NAME" >&2; exit 2 ;;
esac
