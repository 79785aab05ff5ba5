#!/usr/bin/env python3
"""Steady, bounded HTTPS load through nginx for the release tests.

Sends a fixed mix (detect, embed, health) at --rate requests/s from --threads threads until the
file --stop exists (or --duration passes), attributing every answer to the phase named in the
file --phase at the moment it was sent. Any non-2xx answer or transport error is a failure.
Clients keep connections alive (or, with --fresh, open one per request and never resend); when a reused connection turns out closed before any byte of an
answer arrived (nginx reloading retires its old workers' idle connections) the request is sent
again on a new connection, as HTTP clients do, and counted under `stale_retries`.
"""
import argparse
import http.client
import json
import ssl
import threading
import time

p = argparse.ArgumentParser()
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--port", type=int, required=True)
p.add_argument("--cafile", required=True)
p.add_argument("--image", required=True)
p.add_argument("--rate", type=float, default=12)
p.add_argument("--threads", type=int, default=6)
p.add_argument("--duration", type=float, default=600)
p.add_argument("--phase", required=True)
p.add_argument("--stop", required=True)
p.add_argument("--out", required=True)
p.add_argument("--fresh", action="store_true", help="a new connection for every request (never resent)")
a = p.parse_args()

image = open(a.image, "rb").read()
ctx = ssl.create_default_context(cafile=a.cafile)
MIX = [("POST", "/v1/detect"), ("GET", "/health"), ("POST", "/v1/embed"),
       ("POST", "/v1/detect"), ("GET", "/health"), ("POST", "/v1/detect"),
       ("GET", "/health"), ("POST", "/v1/embed")]
lock = threading.Lock()
stats = {}
errors = []


def phase():
    try:
        return open(a.phase).read().strip() or "idle"
    except OSError:
        return "idle"


def record(ph, key, detail=None):
    with lock:
        s = stats.setdefault(ph, {"sent": 0, "ok": 0, "failed": 0, "stale_retries": 0, "status": {}})
        if key == "ok":
            s["sent"] += 1; s["ok"] += 1
        elif key == "stale":
            s["stale_retries"] += 1
        else:
            s["sent"] += 1; s["failed"] += 1
            s["status"][str(key)] = s["status"].get(str(key), 0) + 1
            if len(errors) < 50:
                errors.append({"phase": ph, "error": str(key), "detail": detail, "t": time.time()})


def worker(idx):
    conn, used = None, False
    interval = a.threads / a.rate
    t_next = time.time() + idx * interval / a.threads
    k = idx
    deadline = time.time() + a.duration
    while time.time() < deadline:
        try:
            open(a.stop).close()
            break
        except OSError:
            pass
        delay = t_next - time.time()
        if delay > 0:
            time.sleep(delay)
        t_next += interval
        method, path = MIX[k % len(MIX)]
        k += 1
        ph = phase()
        for attempt in (0, 1):
            if conn is None:
                conn, used = http.client.HTTPSConnection(a.host, a.port, context=ctx, timeout=30), False
            try:
                body = image if method == "POST" else None
                hdrs = {"Content-Type": "image/jpeg"} if body else {}
                conn.request(method, path, body=body, headers=hdrs)
                r = conn.getresponse()
                data = r.read()
                if 200 <= r.status < 300 and (path != "/v1/detect" or b'"face_count"' in data):
                    record(ph, "ok")
                else:
                    record(ph, r.status, data[:200].decode(errors="replace"))
                used = True
                if a.fresh or r.getheader("Connection", "").lower() == "close":
                    conn.close(); conn = None
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    ssl.SSLEOFError, ssl.SSLZeroReturnError) as e:
                stale = used and attempt == 0
                conn.close(); conn = None
                if stale:
                    record(ph, "stale")
                    continue
                record(ph, type(e).__name__, str(e))
                break
            except Exception as e:
                if conn:
                    conn.close()
                conn = None
                record(ph, type(e).__name__, str(e))
                break


ts = [threading.Thread(target=worker, args=(i,)) for i in range(a.threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
total = {"sent": sum(s["sent"] for s in stats.values()), "failed": sum(s["failed"] for s in stats.values())}
json.dump({"phases": stats, "total": total, "errors": errors}, open(a.out, "w"), indent=2)
