#!/usr/bin/env python3
"""HTTPS client for the container tests: talks to nginx on 127.0.0.1:PORT with the domain as SNI
and Host, trusting only the stack's own certificate. Standard library only.
  client.py URL-BASE check          health, /system/vram, /system/models, detect, enrol, identify
  client.py URL-BASE identify COLL  identify against a collection made by `check`
  client.py URL-BASE token          an access token of the bootstrap admin
  client.py URL-BASE load SECONDS [STOP-FILE]  steady detect load; prints the answer counts, exit 1 on any failure
Environment: FS_DOMAIN, FS_CACERT, FS_ADMIN_EMAIL, FS_ADMIN_PASSWORD, FACESOCIAL_TESTDATA."""
import http.client, json, os, socket, ssl, sys, threading, time, uuid

base = sys.argv[1]  # https://127.0.0.1:PORT or http://127.0.0.1:PORT
cmd = sys.argv[2]
scheme, hostport = base.split("://")
host, port = hostport.rsplit(":", 1)
domain = os.environ.get("FS_DOMAIN", host)
testdata = os.environ["FACESOCIAL_TESTDATA"]


def connection(timeout=60):
    if scheme == "http":
        return http.client.HTTPConnection(host, int(port), timeout=timeout)
    ctx = ssl.create_default_context(cafile=os.environ["FS_CACERT"])

    class Conn(http.client.HTTPSConnection):
        def connect(self):  # connect to the address, verify the certificate for the domain
            sock = socket.create_connection((host, int(port)), timeout)
            self.sock = ctx.wrap_socket(sock, server_hostname=domain)
    return Conn(host, int(port), timeout=timeout)


def call(method, path, body=None, headers=None, token=None, timeout=60):
    h = {"Host": domain, **(headers or {})}
    if token:
        h["Authorization"] = f"Bearer {token}"
    c = connection(timeout)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, data, dict(r.getheaders())
    finally:
        c.close()


def need(ok, what):
    print(("  ok    " if ok else "  FAIL  ") + what, flush=True)
    if not ok:
        sys.exit(1)


def image(name):
    return open(os.path.join(testdata, name), "rb").read()


def login():
    body = json.dumps({"email": os.environ["FS_ADMIN_EMAIL"], "password": os.environ["FS_ADMIN_PASSWORD"]})
    s, d, _ = call("POST", "/v1/auth/login", body, {"Content-Type": "application/json"})
    need(s == 200, f"sign-in as the bootstrap admin -> {s}")
    return json.loads(d)["data"]["access_token"]


def login_quiet():
    body = json.dumps({"email": os.environ["FS_ADMIN_EMAIL"], "password": os.environ["FS_ADMIN_PASSWORD"]})
    s, d, _ = call("POST", "/v1/auth/login", body, {"Content-Type": "application/json"})
    if s != 200:
        sys.exit(f"sign-in failed: {s} {d[:200]!r}")
    return json.loads(d)["data"]["access_token"]


def identify(token, coll):
    s, d, _ = call("POST", f"/v1/collections/{coll}/identify", image("obama2.jpg"),
                   {"Content-Type": "image/jpeg"}, token)
    faces = json.loads(d)["data"]["faces"] if s == 200 else []
    best = faces[0]["matches"][0] if faces and faces[0].get("matches") else {}
    need(s == 200 and best.get("external_id") == "obama" and not faces[0].get("unknown", False),
         f"identify obama2.jpg -> {s}, best match {best.get('external_id')} ({best.get('similarity')})")


if cmd == "check":
    s, d, h = call("GET", "/health")
    need(s == 200, f"GET /health -> {s} {d[:60]!r}")
    if scheme == "https":
        need("strict-transport-security" in {k.lower() for k in h}, "HSTS on the HTTPS answer")
    token = login()
    s, d, _ = call("GET", "/system/vram", token=token)
    need(s == 200, f"GET /system/vram -> {s}: {len(json.loads(d)['data']['devices']) if s == 200 else d[:80]} device(s)")
    s, d, _ = call("GET", "/system/models", token=token)
    need(s == 200, f"GET /system/models -> {s}: {len(json.loads(d)['data']['models']) if s == 200 else d[:80]} models")
    s, d, _ = call("POST", "/v1/detect", image("group6_t1.jpg"), {"Content-Type": "image/jpeg"}, token)
    n = len(json.loads(d)["data"]["faces"]) if s == 200 else -1
    need(s == 200 and n == 6, f"POST /v1/detect group6_t1.jpg -> {s}, {n} faces")
    body = json.dumps({"name": f"containers-{uuid.uuid4().hex[:8]}"})
    s, d, _ = call("POST", "/v1/collections", body, {"Content-Type": "application/json"}, token)
    need(s == 201, f"POST /v1/collections -> {s}")
    coll = json.loads(d)["data"]["id"]
    body = json.dumps({"name": "Barack Obama", "external_id": "obama"})
    s, d, _ = call("POST", f"/v1/collections/{coll}/subjects", body, {"Content-Type": "application/json"}, token)
    need(s == 201, f"POST subjects -> {s}")
    subj = json.loads(d)["data"]["id"]
    s, d, _ = call("POST", f"/v1/collections/{coll}/subjects/{subj}/faces", image("obama.jpg"),
                   {"Content-Type": "image/jpeg"}, token)
    need(s == 201, f"enrol obama.jpg -> {s}")
    identify(token, coll)
    print(f"COLLECTION={coll}")
elif cmd == "token":
    print(login_quiet())
elif cmd == "identify":
    identify(login(), sys.argv[3])
elif cmd == "load":
    seconds = float(sys.argv[3])
    stop_file = sys.argv[4] if len(sys.argv) > 4 else None  # stops early once this file exists
    token = login_quiet()
    img = image("obama.jpg")
    counts, lock, stop = {}, threading.Lock(), time.time() + seconds

    def worker():  # paced under nginx's per-address limit (10 r/s): a 429 would count as a failure
        while time.time() < stop and not (stop_file and os.path.exists(stop_file)):
            t0 = time.time()
            try:
                s, _, _ = call("POST", "/v1/detect", img, {"Content-Type": "image/jpeg"}, token, timeout=30)
            except Exception as e:  # a refused or reset connection is a failed request too
                s = type(e).__name__
            with lock:
                counts[s] = counts.get(s, 0) + 1
            time.sleep(max(0.0, 0.3 - (time.time() - t0)))
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = counts.get(200, 0)
    print(json.dumps({"requests": sum(counts.values()), "answers": {str(k): v for k, v in counts.items()}}))
    sys.exit(0 if ok and ok == sum(counts.values()) else 1)
