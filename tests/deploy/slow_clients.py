#!/usr/bin/env python3
"""Slow clients against the nginx edge (HTTPS), all at once, while a normal client probes /health.

Each attack comes from its own loopback address (nginx keys limit_conn and limit_req on the client
address), so the release test's load on 127.0.0.1 is a bystander, not a target:
  head     127.0.0.2  connections dripping a request head a byte every 2 s, never finishing it:
                      each must end within client_header_timeout + a margin
  body     127.0.0.3  two uploads after a complete head: one pauses past client_body_timeout and
                      must end within it + a margin; one drips a byte every 2 s and is only
                      observed (client_body_timeout bounds a pause, not a whole body)
  conns    127.0.0.4  more requests held in flight at once (heads sent, bodies unfinished) than
                      limit_conn allows: exactly the limit are held, the rest refused at once with
                      limit_conn_status; once the held ones finish, the address is served again
  normal   127.0.0.1  GET /health every 0.5 s: always 200
The timeouts and the limit are read from the nginx.conf under test. Exit 1 on any failed check.
"""
import argparse
import http.client
import re
import select
import socket
import ssl
import statistics
import threading
import time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--cafile", required=True)
p.add_argument("--conf", required=True, help="the nginx.conf nginx runs with")
p.add_argument("--access-log", help="nginx's access log, to show whether the dripped upload reached an upstream")
p.add_argument("--heads", type=int, default=20)
p.add_argument("--drip", type=float, default=2.0, help="seconds between dripped bytes")
p.add_argument("--margin", type=float, default=8.0)
p.add_argument("--extra-conns", type=int, default=10, help="requests beyond the limit")
a = p.parse_args()

HOST = "127.0.0.1"
conf = open(a.conf).read()


def setting(pattern, default=None):
    m = re.search(r"^\s*" + pattern + r"\s*;", conf, re.M)
    if not m and default is None:
        raise SystemExit(f"slow_clients: no `{pattern}` in {a.conf}")
    return int(m.group(1)) if m else default


header_timeout = setting(r"client_header_timeout\s+(\d+)s")
body_timeout = setting(r"client_body_timeout\s+(\d+)s")
conn_limit = setting(r"limit_conn\s+\w+\s+(\d+)")
conn_status = setting(r"limit_conn_status\s+(\d+)", 503)
ctx = ssl.create_default_context(cafile=a.cafile)
failures = []


def check(ok, what):
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)


def connect(source):
    raw = socket.create_connection((HOST, a.port), timeout=10, source_address=(source, 0))
    return ctx.wrap_socket(raw, server_hostname="localhost")


def upload_head(tag, length):
    return (f"POST /v1/detect?slow-client={tag} HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Type: image/jpeg\r\nContent-Length: {length}\r\n\r\n").encode()


def drip(s, data, t0, until):
    """Send data a byte every --drip seconds, reading between bytes. Returns (seconds from t0 to
    the connection's end or None while still open, bytes sent, bytes received)."""
    got, sent = b"", 0
    s.settimeout(a.drip)
    while time.monotonic() < until:
        try:
            if sent < len(data):
                s.sendall(data[sent:sent + 1])
                sent += 1
            chunk = s.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - t0, sent, got
        if not chunk:
            return time.monotonic() - t0, sent, got
        got += chunk
    return None, sent, got


def wait_end(s, t0, until):
    """Read until the connection ends. Returns (seconds from t0 or None, bytes received)."""
    got = b""
    s.settimeout(0.5)
    while time.monotonic() < until:
        try:
            chunk = s.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - t0, got
        if not chunk:
            return time.monotonic() - t0, got
        got += chunk
    return None, got


def status_of(data):
    m = re.match(rb"HTTP/1\.1 (\d{3})", data)
    return int(m.group(1)) if m else None


# --- the attacks --------------------------------------------------------------------------------
heads = []  # (seconds to the end or None, bytes received)


def head_attack():
    t0 = time.monotonic()
    try:
        s = connect("127.0.0.2")
    except OSError as e:
        heads.append(("connect: " + repr(e), b""))
        return
    never_ends = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"z" * 1000
    ended, _, got = drip(s, never_ends, t0, t0 + header_timeout + a.margin + 2 * a.drip)
    heads.append((ended, got))
    s.close()


body = {}


def body_pause():
    t0 = time.monotonic()
    s = connect("127.0.0.3")
    s.sendall(upload_head("pause", 100000) + b"\xff" * 1000)
    t_last = time.monotonic()
    ended, got = wait_end(s, t_last, t_last + body_timeout + a.margin)
    body["pause"] = (ended, got)
    s.close()


def body_drip():
    t0 = time.monotonic()
    s = connect("127.0.0.3")
    s.sendall(upload_head("drip", 100000))
    # On past the paused upload's end, to show it outliving client_body_timeout.
    ended, sent, got = drip(s, b"\xff" * 100000, t0, t0 + body_timeout + 6)
    body["drip"] = (ended, sent, got, time.monotonic() - t0)
    s.close()


conns = {}


def conn_attack():
    n = conn_limit + a.extra_conns
    socks = []
    for _ in range(n):  # idle TLS connections first: limit_conn counts none of them
        socks.append(connect("127.0.0.4"))
    conns["opened"] = len(socks)
    # A complete head each, and one of its two body bytes: the request is past limit_conn's phase
    # and nginx waits for the rest of the body (it buffers a body before proxying).
    head = b"GET /health?slow-client=conns HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\nx"
    t0 = time.monotonic()
    for s in socks:
        s.sendall(head)
    answered, answer_s = {}, []
    deadline = t0 + 3
    while time.monotonic() < deadline and len(answered) < n:
        ready, _, _ = select.select([s for s in socks if s not in answered], [], [], 0.2)
        for s in ready:
            s.setblocking(False)
            try:
                data = s.recv(4096)
            except ssl.SSLWantReadError:  # TLS records with no data yet (TLS 1.3 session tickets)
                continue
            except OSError as e:
                data = type(e).__name__
            answered[s] = status_of(data) if isinstance(data, bytes) else data
            answer_s.append(time.monotonic() - t0)
    held = [s for s in socks if s not in answered]
    conns["held"] = len(held)
    conns["answered"] = list(answered.values())
    conns["answer_max_s"] = max(answer_s, default=0)
    # Finish the held requests: each gets its answer from the server.
    for s in held:
        s.sendall(b"x")
    finished = []
    for s in held:
        s.settimeout(10)
        try:
            finished.append(status_of(s.recv(4096)))
        except OSError as e:
            finished.append(type(e).__name__)
    conns["finished"] = finished
    for s in socks:
        s.close()
    # The slots are free again: a new request from the same address is served.
    s = connect("127.0.0.4")
    s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    s.settimeout(10)
    try:
        conns["after"] = status_of(s.recv(4096))
    except OSError as e:
        conns["after"] = type(e).__name__
    s.close()


probes = []  # (seconds, status)
probe_stop = threading.Event()


def prober():
    while not probe_stop.is_set():
        t = time.monotonic()
        try:
            c = http.client.HTTPSConnection(HOST, a.port, context=ctx, timeout=10)
            c.request("GET", "/health")
            r = c.getresponse()
            r.read()
            c.close()
            status = r.status
        except Exception as e:  # a failed probe is a result, reported below
            status = type(e).__name__
        probes.append((time.monotonic() - t, status))
        probe_stop.wait(max(0.0, 0.5 - (time.monotonic() - t)))


def run(target, errors):
    def wrapped():
        try:
            target()
        except Exception as e:  # reported as a failure, never a hang
            errors.append(f"{target.__name__}: {e!r}")
    return threading.Thread(target=wrapped, daemon=True)


t_start = time.monotonic()
errors = []
probe = threading.Thread(target=prober, daemon=True)
probe.start()
time.sleep(1)  # a probe or two before the attacks
attacks = [run(head_attack, errors) for _ in range(a.heads)] + \
          [run(f, errors) for f in (body_pause, body_drip, conn_attack)]
for t in attacks:
    t.start()
for t in attacks:
    t.join(header_timeout + body_timeout + 3 * a.margin)
probe_stop.set()
probe.join()
took = time.monotonic() - t_start

print(f"slow clients against nginx (client_header_timeout {header_timeout}s, client_body_timeout "
      f"{body_timeout}s, limit_conn {conn_limit} -> {conn_status}), {took:.1f} s:")
for e in errors:
    check(False, e)

# Dripped heads.
bound = header_timeout + a.margin
ends = [e for e, _ in heads if isinstance(e, float)]
n408 = sum(status_of(g) == 408 for _, g in heads)
check(len(ends) == a.heads and max(ends) <= bound,
      f"dripped heads: {len(ends)}/{a.heads} closed, after {min(ends, default=0):.1f}-{max(ends, default=0):.1f} s "
      f"(bound {bound:.0f} s), {n408} with a 408 first")

# Uploads.
if "pause" in body:
    ended, got = body["pause"]
    st = status_of(got)
    check(ended is not None and ended <= body_timeout + a.margin and st in (408, None),
          f"upload paused after 1000 of 100000 bytes: ended {ended if ended is None else round(ended, 1)} s "
          f"after the last byte (bound {body_timeout + a.margin:.0f} s), answer {st or 'none (closed)'}")
if "drip" in body:
    ended, sent, got, dur = body["drip"]
    upstream = "?"
    if a.access_log:
        time.sleep(0.5)  # nginx logs the request once it sees the connection go
        lines = [ln for ln in open(a.access_log, errors="replace") if "slow-client=drip" in ln]
        m = re.search(r' (\d{3}) \d+ rt=(\S+) ua="([^"]*)"', lines[-1]) if lines else None
        if m:
            upstream = f"logged {m.group(1)} after {m.group(2)} s, upstream {m.group(3)!r}"
    state = "still open" if ended is None else f"ended after {ended:.1f} s"
    print(f"  note upload dripped a byte every {a.drip:g} s: {state} at {dur:.1f} s with {sent} of 100000 bytes sent, "
          f"answer {status_of(got) or 'none'}; nginx {upstream}")

# Connection cap.
if "held" in conns:
    refused = sum(s == conn_status for s in conns["answered"])
    other = [s for s in conns["answered"] if s != conn_status]
    check(conns["held"] == conn_limit and refused == a.extra_conns and not other,
          f"{conns['opened']} idle connections opened; with a request on each: {conns['held']} held, "
          f"{refused} refused {conn_status} (the last {conns['answer_max_s'] * 1000:.0f} ms after the heads)"
          + (f", other answers {other}" if other else ""))
    fin = conns["finished"]
    check(all(s == 200 for s in fin) and conns.get("after") == 200,
          f"held requests finished: {sum(s == 200 for s in fin)}/{len(fin)} got 200; "
          f"a new request from the address afterwards: {conns.get('after')}")

# The bystander.
lat = sorted(t for t, _ in probes)
bad = [s for _, s in probes if s != 200]
check(probes and not bad and lat[-1] < 5,
      f"GET /health from another address every 0.5 s: {len(probes) - len(bad)}/{len(probes)} 200, "
      f"p50 {statistics.median(lat) * 1000 if lat else 0:.0f} ms, max {lat[-1] * 1000 if lat else 0:.0f} ms"
      + (f", failures {bad[:5]}" if bad else ""))
raise SystemExit(1 if failures else 0)
