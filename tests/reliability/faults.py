"""Faults under traffic: Redis killed and restarted, the PostgreSQL replica killed, the primary
killed, a model file corrupted on disk, SIGTERM under load.

Every write the server acknowledged goes into a ledger that is checked after each fault and once
more at the end of the suite: an acknowledged subject or face that cannot be read back is a lost write.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

from common import ADMIN_EMAIL, ROOT, TESTDATA, Scenario, json_body, login, multipart, request, testimage

CLEAR_503 = {"DATABASE_UNAVAILABLE", "QUEUE_FULL", "MODEL_UNAVAILABLE", "INSUFFICIENT_MEMORY"}
FACES = ["obama.jpg", "obama2.jpg", "biden.jpg", "kit_harington_john1.jpeg", "rose_leslie_img1.jpg",
         "obama_small.jpg", "rose_leslie_img2.jpg", "kit_harington_john2.jpeg"]


class Ledger:
    """Acknowledged writes: subjects (id, name) and faces (subject id, face id)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.subjects: dict = {}  # (collection, subject id) -> name
        self.faces: dict = {}  # (collection, subject id) -> set of face ids
        self.refused_writes = 0  # answered 503: not acknowledged

    def subject(self, coll, sid, name):
        with self.lock:
            self.subjects[(coll, sid)] = name

    def face(self, coll, sid, fid):
        with self.lock:
            self.faces.setdefault((coll, sid), set()).add(fid)

    def verify(self, sc: Scenario, port: int, auth: dict, pg_url: str | None, api_deadline: float = 20) -> int:
        """Checks every acknowledged write twice: in PostgreSQL itself (the truth: a row missing there is
        a lost write) and read back through the API within api_deadline seconds (an acknowledged write
        the API cannot return is a failed check, not a lost write). Returns the lost count."""
        with self.lock:
            subjects, faces = dict(self.subjects), {k: set(v) for k, v in self.faces.items()}
        face_ids = {str(f).lower(): k for k, v in faces.items() for f in v}
        lost = 0
        if pg_url:
            in_db = set()
            for table, ids in (("subjects", [str(s).lower() for (_, s) in subjects]), ("faces", list(face_ids))):
                for i in range(0, len(ids), 500):
                    chunk = ",".join(f"'{x}'" for x in ids[i:i + 500])
                    out = subprocess.run(["psql", pg_url, "-At", "-c", f"SELECT id FROM {table} WHERE id IN ({chunk})"],
                                         capture_output=True, text=True, timeout=60)
                    if out.returncode != 0:
                        sc.check(f"read the {table} table", False, out.stderr.strip()[:200])
                        return 0
                    in_db |= {ln.strip().lower() for ln in out.stdout.splitlines() if ln.strip()}
            for (coll, sid), name in subjects.items():
                if str(sid).lower() not in in_db:
                    lost += 1
                    sc.unexpected.append(f"LOST: subject {sid} ({name}) acknowledged with 201, not in PostgreSQL")
            for fid, (coll, sid) in face_ids.items():
                if fid not in in_db:
                    lost += 1
                    sc.unexpected.append(f"LOST: face {fid} of subject {sid} acknowledged with 201, not in PostgreSQL")
        # Through the API, bounded in time.
        deadline = time.monotonic() + api_deadline
        unreadable, unchecked, first = 0, 0, None
        for (coll, sid), name in subjects.items():
            if time.monotonic() > deadline:
                unchecked += 1
                continue
            r = request(port, "GET", f"/v1/collections/{coll}/subjects/{sid}", headers=auth, timeout=12)
            if r.status != 200 or (r.json() or {}).get("data", {}).get("name") != name:
                unreadable += 1
                first = first or f"GET /v1/collections/{coll}/subjects/{sid} -> {r.short()}"
        for (coll, sid), fids in faces.items():
            if time.monotonic() > deadline:
                unchecked += len(fids)
                continue
            r = request(port, "GET", f"/v1/collections/{coll}/subjects/{sid}/export", headers=auth, timeout=12)
            have = {str(f["face"]["id"]).lower() for f in (r.json() or {}).get("data", {}).get("faces", [])} \
                if r.status == 200 else set()
            missing = [f for f in fids if str(f).lower() not in have]
            if missing:
                unreadable += len(missing)
                first = first or f"GET /v1/collections/{coll}/subjects/{sid}/export -> {r.short()}"
        total = len(subjects) + len(face_ids)
        sc.check("every acknowledged write reads back through the API", unreadable == 0 and unchecked == 0,
                 f"{total} acknowledged, {unreadable} not returned, {unchecked} not reached in {api_deadline:.0f} s"
                 + (f"; first: {first}" if first else ""))
        if first:
            sc.unexpected.append(f"acknowledged write not returned by the API: {first}")
        return lost

    def size(self) -> int:
        with self.lock:
            return len(self.subjects) + sum(len(v) for v in self.faces.values())


class Traffic:
    """Threads that call `fn(phase)` over and over, with a pause, until stopped. `phase` is a callable
    returning the current phase name, read when a request is sent and when its answer arrives."""

    def __init__(self, fns, pause: float = 0.05):
        self.fns, self.pause = fns, pause
        self.phase = "before"
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(fn,), daemon=True) for fn in fns]

    def _run(self, fn):
        while not self.stop_flag.is_set():
            fn(lambda: self.phase)
            time.sleep(self.pause)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(90)


def call(ph, *args, **kw):
    """request() with the phase it ran in: 'a' when sent and answered in phase a, else 'a→b'."""
    p0 = ph()
    r = request(*args, **kw)
    p1 = ph()
    return r, (p0 if p0 == p1 else f"{p0}→{p1}")


def wait_for(pred, timeout: float, step: float = 0.2) -> float | None:
    """Seconds until pred() held, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    return None


def ready_status(port: int):
    r = request(port, "GET", "/health/ready", timeout=5)
    body = r.json() or {}
    return r.status, (body.get("data") or {}).get("status")


class Gallery:
    """Helpers for the gallery traffic on the PostgreSQL-backed server."""

    def __init__(self, sc: Scenario, port: int, token: str, ledger: Ledger, tag: str):
        self.sc, self.port, self.ledger, self.tag = sc, port, ledger, tag
        self.auth = {"Authorization": f"Bearer {token}"}
        r = request(port, "POST", "/v1/collections", *self._json({"name": f"{tag}-{uuid.uuid4().hex[:8]}"}))
        if r.status != 201:
            raise RuntimeError(f"cannot create a collection: {r.short()}")
        self.coll = r.json()["data"]["id"]
        self.images = [testimage(n) for n in FACES]
        self.n = 0
        self.lock = threading.Lock()
        # One subject with a face so identify has something to find.
        sid = self.create_subject(lambda: "setup", judge=lambda r, ph: r.status == 201)
        if sid:
            self.enrol(sid, lambda: "setup", judge=lambda r, ph: r.status == 201)

    def _json(self, obj):
        body, h = json_body(obj)
        return body, {**h, **self.auth}

    def next(self) -> int:
        with self.lock:
            self.n += 1
            return self.n

    def create_subject(self, ph, judge):
        n = self.next()
        name = f"{self.tag} subject {n}"
        r, phase = call(ph, self.port, "POST", f"/v1/collections/{self.coll}/subjects",
                        *self._json({"name": name, "external_id": f"{self.tag}-{n}-{uuid.uuid4().hex[:6]}"}),
                        timeout=30)
        self.sc.count(r, judge(r, phase), f"[{phase}] POST subjects")
        if r.status == 201:
            sid = r.json()["data"]["id"]
            self.ledger.subject(self.coll, sid, name)
            return sid
        if r.status == 503:
            self.ledger.refused_writes += 1
        return None

    def enrol(self, sid, ph, judge):
        img = self.images[self.next() % len(self.images)]  # each subject gets one face: never a duplicate
        r, phase = call(ph, self.port, "POST", f"/v1/collections/{self.coll}/subjects/{sid}/faces", img,
                        {"Content-Type": "image/jpeg", **self.auth}, timeout=60)
        self.sc.count(r, judge(r, phase) or r.code == "DUPLICATE_IMAGE", f"[{phase}] POST faces")
        if r.status == 201:
            for f in r.json()["data"]["faces"]:
                self.ledger.face(self.coll, sid, f["id"])
        elif r.status == 503:
            self.ledger.refused_writes += 1

    def writer(self, judge):
        def fn(ph):
            sid = self.create_subject(ph, judge)
            if sid:
                self.enrol(sid, ph, judge)
        return fn

    def reader(self, judge):
        img = testimage("obama3.jpg")

        def fn(ph):
            for m, p, b, h in (("GET", f"/v1/collections/{self.coll}/subjects?limit=20", None, self.auth),
                               ("POST", f"/v1/collections/{self.coll}/identify", img,
                                {"Content-Type": "image/jpeg", **self.auth}),
                               ("GET", f"/v1/collections/{self.coll}", None, self.auth)):
                r, phase = call(ph, self.port, m, p, b, h, timeout=30)
                self.sc.count(r, judge(r, phase), f"[{phase}] {m} {p}")
        return fn


def ok_2xx(r, phase):
    return 200 <= r.status < 300


# --- Redis --------------------------------------------------------------------------------------


def redis_fault(sc: Scenario, server, redis, token: str, ledger: Ledger, pg_url: str) -> None:
    port = server.port
    g = Gallery(sc, port, token, ledger, "redis")
    small, group = testimage("obama_small.jpg"), testimage("group6_t1.jpg")

    def analysis(ph):
        for m, p, b, h in (("POST", "/v1/detect", small, {"Content-Type": "image/jpeg"}),
                           ("POST", "/v1/analyze", group, {"Content-Type": "image/jpeg"}),
                           ("GET", "/v1/auth/me", None, g.auth)):
            r, phase = call(ph, port, m, p, b, h, timeout=30)
            sc.count(r, ok_2xx(r, phase), f"[{phase}] {m} {p}")

    with Traffic([analysis, g.reader(ok_2xx), g.writer(ok_2xx)]) as t:
        time.sleep(3)
        t.phase = "redis killed"
        redis.kill()
        s = wait_for(lambda: ready_status(port) == (200, "degraded"), 15)
        sc.check("/health/ready says 200 degraded while Redis is down", s is not None,
                 f"after {s:.1f} s" if s is not None else f"last {ready_status(port)}")
        time.sleep(4)
        t.phase = "redis restarted"
        redis.start()
        s = wait_for(lambda: ready_status(port) == (200, "ready"), 20)
        sc.check("/health/ready back to ready after Redis restarts", s is not None,
                 f"after {s:.1f} s" if s is not None else f"last {ready_status(port)}")
        time.sleep(3)
    r = request(port, "GET", "/health/ready")
    detail = ((r.json() or {}).get("data", {}).get("checks", {}).get("cache", {}) or {}).get("detail")
    sc.check("the cache uses Redis again", detail == "redis", str(detail))
    sc.add_lost(ledger.verify(sc, port, g.auth, pg_url))


# --- PostgreSQL replica ---------------------------------------------------------------------------


def replica_fault(sc: Scenario, server, pg, token: str, ledger: Ledger) -> None:
    pg_url = pg.primary_url
    port = server.port
    g = Gallery(sc, port, token, ledger, "replica")
    with Traffic([g.reader(ok_2xx), g.reader(ok_2xx), g.writer(ok_2xx)]) as t:
        time.sleep(3)
        t.phase = "replica killed"
        pg.crash("replica")
        time.sleep(1)
        st = ready_status(port)
        sc.check("/health/ready stays 200 while the replica is down", st[0] == 200, str(st))
        time.sleep(5)
        t.phase = "replica restarted"
        pg.start("replica")
        time.sleep(4)
    time.sleep(1.5)  # replication lag bound (FACESOCIAL_REPLICA_MAX_LAG_MS) before reading back
    sc.add_lost(ledger.verify(sc, port, g.auth, pg_url))


# --- PostgreSQL primary ---------------------------------------------------------------------------


def primary_fault(sc: Scenario, server, pg, token: str, ledger: Ledger) -> None:
    """The primary crashes (immediate shutdown) for 6 s and is started again."""
    primary_outage(sc, server, pg, token, ledger, "primary", down=("primary killed", lambda: pg.crash("primary")),
                   up=("primary restarting", lambda: pg.start("primary")), down_s=6,
                   words=("the primary is down", "it started"))


def frozen_primary_fault(sc: Scenario, server, pg, token: str, ledger: Ledger, statement_limit_s: float,
                         pool_wait_s: float) -> None:
    """Every primary process stopped for 20 s, then continued: the TCP connections stay up and
    nothing answers. Without the server's silence limit a statement in flight waits the whole 20 s;
    with it, every answer while frozen comes within the limit plus the pool's wait for a connection
    (new connections to a stopped postmaster do not complete either), plus a 4 s margin."""
    bound_ms = (statement_limit_s + pool_wait_s + 4) * 1000
    slowest = primary_outage(sc, server, pg, token, ledger, "frozen",
                             down=("primary frozen", lambda: pg.freeze("primary")),
                             up=("primary continued", lambda: pg.thaw("primary")), down_s=20,
                             words=("the primary is frozen", "SIGCONT"), always=lambda: pg.thaw("primary"))
    sc.check(f"every answer while frozen within {bound_ms / 1000:.0f} s (statement limit {statement_limit_s:g} s "
             f"+ pool wait {pool_wait_s:g} s + 4 s)", slowest <= bound_ms, f"slowest {slowest:.0f} ms")


def primary_outage(sc: Scenario, server, pg, token: str, ledger: Ledger, tag: str, down, up, down_s: float,
                   words, always=None) -> float:
    """Two writers, a reader and failed sign-ins through an outage of the primary (`down` starts it,
    `up` ends it; `words` name the outage and its end in the report; `always` runs however the
    scenario ends). Returns the slowest answer, in ms, of a request that met the outage (sent or
    answered between `down` and "back")."""
    port = server.port
    g = Gallery(sc, port, token, ledger, tag)
    outage: dict = {}  # answers while the primary was out or coming back, by code
    slowest = [0.0]

    def met_outage(r, phase) -> bool:
        if phase in ("before", "back"):
            return False
        slowest[0] = max(slowest[0], r.ms)
        return True

    def judge(r, phase):
        if not met_outage(r, phase):
            return 200 <= r.status < 300
        # While the primary is out or just back: a success, or 503 with a clear code.
        if not 200 <= r.status < 300:
            outage[r.key] = outage.get(r.key, 0) + 1
        return (200 <= r.status < 300) or (r.status == 503 and r.code in CLEAR_503)

    def login(ph):
        body, h = json_body({"email": ADMIN_EMAIL, "password": "not-the-password-123"})
        # A failed sign-in still writes an audit row: 401 normally, 503 while the database is out.
        r, phase = call(ph, port, "POST", "/v1/auth/login", body, h, timeout=30)
        sc.count(r, r.status in (400, 401) or (met_outage(r, phase) and r.status == 503 and r.code in CLEAR_503),
                 f"[{phase}] POST /v1/auth/login")
        time.sleep(0.3)

    acked_before = ledger.size()
    try:
        with Traffic([g.writer(judge), g.writer(judge), g.reader(judge), login]) as t:
            time.sleep(3)
            t.phase = down[0]
            down[1]()
            time.sleep(down_s)
            t.phase = up[0]
            up[1]()

            def write_ok():
                r = request(port, "POST", f"/v1/collections/{g.coll}/subjects",
                            *g._json({"name": "probe", "external_id": f"probe-{uuid.uuid4().hex}"}), timeout=10)
                if r.status == 201:
                    ledger.subject(g.coll, r.json()["data"]["id"], "probe")
                return r.status == 201
            s = wait_for(write_ok, 30, step=0.5)
            sc.check("writes succeed again after the primary is back", s is not None,
                     f"{s:.1f} s after {words[1]}" if s is not None else "not within 30 s")
            t.phase = "back"
            time.sleep(3)
    finally:
        if always:
            always()
    sc.notes.append(f"while {words[0]}: {outage or 'no failed answer'}; slowest answer "
                    f"{slowest[0]:.0f} ms; {ledger.size() - acked_before} writes acknowledged in this scenario")
    refused = {k: v for k, v in outage.items() if k.split(" ")[-1] in CLEAR_503 and k.startswith("503")}
    sc.check(f"requests while {words[0]} answer 503 with a clear code (and some did)",
             bool(refused) and refused == outage, json.dumps(outage))
    time.sleep(1.5)
    sc.add_lost(ledger.verify(sc, port, g.auth, pg.primary_url))
    return slowest[0]


# --- a model file corrupted on disk ---------------------------------------------------------------


def corrupt(path: str) -> None:
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        chunk = f.read(64)
        f.seek(os.path.getsize(path) // 2)
        f.write(bytes(b ^ 0x5A for b in chunk))


def model_fault(sc: Scenario, make_server, work: str) -> None:
    """Copies the installed models, corrupts `age` before the start and `minifas` (liveness) after it."""
    src = os.environ.get("FACESOCIAL_MODEL_DIR", os.path.join(ROOT, "var", "models"))
    copy = os.path.join(work, "models-copy")
    shutil.copytree(src, copy, symlinks=False)
    for dp, dns, fns in os.walk(copy):
        os.chmod(dp, 0o755)
        for fn in fns:
            os.chmod(os.path.join(dp, fn), 0o644)
    age, minifas = os.path.join(copy, "attributes", "age_v1.onnx"), os.path.join(copy, "liveness", "minifas_v2_128.onnx")
    corrupt(age)
    server = make_server("models", {"FACESOCIAL_MODEL_DIR": copy, "FACESOCIAL_CACHE_TTL_SECONDS": "0"})
    port = server.port
    try:
        server.start()
        corrupt(minifas)
        face = testimage("obama_small.jpg")
        jpg = {"Content-Type": "image/jpeg"}

        def call(what, method, path, body=None, headers=None, accept=ok_2xx):
            r = request(port, method, path, body, headers or {}, timeout=60)
            sc.count(r, accept(r, ""), what)
            return r

        unavailable = lambda r, ph: (r.status, r.code) == (503, "MODEL_UNAVAILABLE")
        for _ in range(3):  # repeated: a failed model stays failed and is not retried into a crash
            call("liveness with its model corrupted -> 503 MODEL_UNAVAILABLE", "POST", "/v1/liveness", face, jpg,
                 accept=unavailable)
            call("age (attributes) with its model corrupted -> 503 MODEL_UNAVAILABLE", "POST",
                 "/v1/analyze?analyses=attributes", face, jpg, accept=unavailable)
        r = call("GET /system/models", "GET", "/system/models")
        states = {m["id"]: m["state"] for m in (r.json() or {}).get("data", {}).get("models", [])}
        sc.check("corrupted models are marked failed", states.get("minifas") == "failed" and states.get("age") == "failed",
                 f"minifas={states.get('minifas')} age={states.get('age')}")
        for what, m, p, b, h in [
            ("detect (yunet)", "POST", "/v1/detect", face, jpg),
            ("detect (retinaface)", "POST", "/v1/detect?detector=retinaface", face, jpg),
            ("embed", "POST", "/v1/embed", face, jpg),
            ("verify", "POST", "/v1/verify", *multipart({}, {"image1": ("a.jpg", "image/jpeg", face),
                                                              "image2": ("b.jpg", "image/jpeg", testimage("obama2.jpg"))})),
            ("analyze quality,embedding,landmarks", "POST", "/v1/analyze?analyses=quality,embedding,landmarks", face, jpg),
            ("analyze quality", "POST", "/v1/analyze?analyses=quality", face, jpg),
            ("ready", "GET", "/health/ready", None, {}),
        ]:
            call(f"{what} still works", m, p, b, h)
        # Restoring the file and loading the model again brings the service back.
        shutil.copyfile(os.path.join(src, "liveness", "minifas_v2_128.onnx"), minifas)
        token_r = request(port, "POST", "/v1/auth/login",
                          *json_body({"email": server.env["FACESOCIAL_ADMIN_EMAIL"],
                                      "password": server.env["FACESOCIAL_ADMIN_PASSWORD"]}))
        tok = (token_r.json() or {}).get("data", {}).get("access_token", "")
        call("reload the restored liveness model", "POST", "/system/models/minifas/load", b"", {"Authorization": f"Bearer {tok}"})
        call("liveness after the restore", "POST", "/v1/liveness", face, jpg)
        sc.check("server alive", server.alive())
    finally:
        server.stop()
        sc.crashes += server.crashes
        shutil.rmtree(copy, ignore_errors=True)


# --- SIGTERM under load ---------------------------------------------------------------------------


def sigterm_fault(sc: Scenario, server) -> None:
    """Background detect traffic on fresh connections plus tests/deploy/graceful.py (4 in-flight
    analyses, SIGTERM, new connections refused, exit in time). A request the server accepted must be
    answered: after SIGTERM only a refused connection is fine."""
    port = server.port
    small = testimage("obama_small.jpg")
    stop = threading.Event()
    term_at = [None]

    def bg():
        while not stop.is_set():
            r = request(port, "POST", "/v1/detect", small, {"Content-Type": "image/jpeg"}, timeout=30)
            after = term_at[0] is not None
            # After SIGTERM the listener closes: a new connection is refused, or, when it was still in
            # the kernel's accept queue, reset before any answer. Neither request was in flight (those
            # are graceful.py's, which must answer 200); both are counted, neither fails.
            if after and r.err in ("ConnectionRefusedError", "ConnectionResetError", "RemoteDisconnected"):
                with sc.lock:
                    sc.codes[f"{r.err} after SIGTERM"] += 1
                time.sleep(0.05)
                continue
            sc.count(r, r.status == 200, f"[{'after' if after else 'before'} SIGTERM] POST /v1/detect")

    ts = [threading.Thread(target=bg, daemon=True) for _ in range(4)]
    for t in ts:
        t.start()
    time.sleep(3)
    server.expected_exit = True  # graceful.py sends the SIGTERM
    term_at[0] = time.time()
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "deploy", "graceful.py"), str(port),
                        str(server.pid), os.path.join(TESTDATA, "obama.jpg")], capture_output=True, text=True, timeout=60)
    stop.set()
    for t in ts:
        t.join(40)
    out = (r.stdout + r.stderr).strip()
    sc.notes.append(out.splitlines()[-1] if out else "graceful.py printed nothing")
    sc.requests += 4
    sc.check("graceful.py: in-flight requests finish, new connections refused, exit in time", r.returncode == 0,
             out.splitlines()[-1] if out else "")
    try:
        server.proc.wait(15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
    rc = server.proc.returncode
    sc.check("exit status 0 after SIGTERM", rc == 0, str(rc))
    if rc != 0:
        sc.crashes += 1


# --- Redis Cluster ------------------------------------------------------------------------------


class RedisCluster:
    """Six redis-server nodes on loopback (three masters with a replica each), made with
    `redis-cli --cluster create`, as docs/redis.md describes; the cluster bus is port + 10000."""

    def __init__(self, ports: list, work: str, node_timeout_ms: int = 5000):
        self.ports, self.work = ports, work
        self.dir = os.path.join(work, "redis-cluster")
        os.makedirs(self.dir, exist_ok=True)
        self.procs: dict = {}
        self.node_timeout_ms = node_timeout_ms
        self.seeds = ",".join(f"127.0.0.1:{p}" for p in ports[:2])

    def launch(self, p: int) -> None:
        from common import remember_pid
        self.procs[p] = subprocess.Popen(
            ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--dir", self.dir, "--save", "",
             "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{p}.conf",
             "--cluster-node-timeout", str(self.node_timeout_ms), "--logfile", f"redis-{p}.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        remember_pid(self.work, self.procs[p].pid)

    def start(self) -> None:
        for p in self.ports:
            self.launch(p)
        for p in self.ports:
            if wait_for(lambda: self.cli(p, "PING").strip() == "PONG", 10) is None:
                raise RuntimeError(f"redis-server :{p} did not start")
        out = subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                              "--cluster-replicas", "1", "--cluster-yes"], capture_output=True, text=True, timeout=60)
        if "All 16384 slots covered" not in out.stdout:
            raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout[-300:]} {out.stderr[-300:]}")
        if wait_for(self.healthy, 60) is None:
            raise RuntimeError("the cluster did not become healthy")

    def cli(self, port: int, *args, timeout: float = 5) -> str:
        try:
            return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                                  timeout=timeout).stdout
        except subprocess.TimeoutExpired:
            return ""

    def live(self) -> list:
        return [p for p, pr in self.procs.items() if pr.poll() is None and p not in self.paused]

    paused: set = set()

    def healthy(self) -> bool:
        """Every live node says cluster_state:ok and every live replica has finished its sync (a
        replica that never synced does not take over)."""
        for p in self.live():
            if "cluster_state:ok" not in self.cli(p, "CLUSTER", "INFO"):
                return False
            rep = self.cli(p, "INFO", "replication")
            if "role:master" not in rep and "master_link_status:up" not in rep:
                return False
        return True

    def masters(self) -> list:
        """(port, node id, first slot range) of each live master that holds slots."""
        for p in self.live():
            found = []
            for line in self.cli(p, "CLUSTER", "NODES").splitlines():
                f = line.split()
                if len(f) >= 9 and "master" in f[2] and "fail" not in f[2]:
                    found.append((int(f[1].split(":")[1].split("@")[0]), f[0], f[8]))
            if found:
                return sorted(found)
        return []

    def kill(self, port: int) -> None:
        self.procs[port].kill()
        self.procs[port].wait()

    def pause(self, port: int) -> None:
        self.paused = self.paused | {port}
        os.kill(self.procs[port].pid, signal.SIGSTOP)

    def resume(self, port: int) -> None:
        os.kill(self.procs[port].pid, signal.SIGCONT)
        self.paused = self.paused - {port}

    def stop(self) -> None:
        for p, pr in self.procs.items():
            if pr.poll() is None:
                if p in self.paused:
                    os.kill(pr.pid, signal.SIGCONT)
                pr.kill()
                pr.wait()
        self.paused = set()


def metric_sum(port: int, name: str, label: str = "") -> float:
    """The sum of a series over its labels in /metrics (development allows anonymous status)."""
    r = request(port, "GET", "/metrics", timeout=10)
    total = 0.0
    for line in (r.body or b"").decode(errors="replace").splitlines():
        if line.startswith(name) and (line[len(name):len(name) + 1] in (" ", "{")) and label in line:
            try:
                total += float(line.rsplit(" ", 1)[1])
            except ValueError:
                pass
    return total


def redis_cluster_fault(sc: Scenario, make_server, ports: list, work: str) -> None:
    """Analysis and sign-in traffic on a server whose cache and rate limits live in a Redis Cluster:
    one master SIGKILLed, another SIGSTOPped, then slots resharded, all under load. Nothing may fail
    or answer 5xx; readiness says degraded while a master is lost and ready again after its replica
    takes over, and the time until then is measured."""
    cluster = RedisCluster(ports, work)
    t0 = time.monotonic()
    cluster.start()
    sc.check("six-node cluster created and synced", True, f"in {time.monotonic() - t0:.1f} s")
    server = make_server("rcluster", {"REDIS_CLUSTER_NODES": cluster.seeds})
    try:
        server.start()
        port = server.port
        token = login(port)
        auth = {"Authorization": f"Bearer {token}"}
        small, face = testimage("obama_small.jpg"), testimage("obama.jpg")

        # Each threshold is another cached result, so the cache's keys fall into slots all over the
        # cluster (also into the ones the reshard moves).
        thresholds = itertools.cycle(f"0.{n}" for n in range(500, 700))

        def traffic(ph):
            for m, p, b, h in (("POST", "/v1/detect", small, {"Content-Type": "image/jpeg"}),
                               ("POST", f"/v1/detect?confidence_threshold={next(thresholds)}", face,
                                {"Content-Type": "image/jpeg"}),
                               ("GET", "/v1/auth/me", None, auth)):
                r, phase = call(ph, port, m, p, b, h, timeout=30)
                sc.count(r, ok_2xx(r, phase), f"[{phase}] {m} {p}")

        with Traffic([traffic, traffic, traffic]) as t:
            time.sleep(3)
            masters = cluster.masters()
            for how, (victim, _, _) in (("SIGKILL", masters[0]), ("SIGSTOP", masters[1])):
                t.phase = f"master {how}"
                started = time.monotonic()
                cluster.kill(victim) if how == "SIGKILL" else cluster.pause(victim)
                s = wait_for(lambda: ready_status(port) == (200, "degraded"), 20)
                sc.check(f"{how}: /health/ready says 200 degraded while the master is lost", s is not None,
                         f"after {s:.1f} s" if s is not None else f"last {ready_status(port)}")
                back = wait_for(lambda: ready_status(port) == (200, "ready"), 60)
                sc.check(f"{how}: ready again once its replica took over", back is not None,
                         f"cluster used again {time.monotonic() - started:.1f} s after the {how}"
                         if back is not None else f"last {ready_status(port)}")
                # The lost master comes back (restarted, or resumed) and rejoins as its successor's replica.
                cluster.launch(victim) if how == "SIGKILL" else cluster.resume(victim)
                rejoined = wait_for(cluster.healthy, 60)
                sc.check(f"{how}: the old master rejoined as a replica", rejoined is not None,
                         f"after {rejoined:.1f} s" if rejoined is not None else "cluster not healthy")
                t.phase = "after failover"
                time.sleep(2)
            t.phase = "resharding"
            src, dst = cluster.masters()[0], cluster.masters()[1]
            started = time.monotonic()
            try:
                out = subprocess.run(["redis-cli", "--cluster", "reshard", f"127.0.0.1:{src[0]}", "--cluster-from",
                                      src[1], "--cluster-to", dst[1], "--cluster-slots", "1000", "--cluster-yes"],
                                     capture_output=True, text=True, timeout=120)
                sc.check("1000 slots resharded under load", out.returncode == 0 and "ERR" not in out.stdout,
                         f"in {time.monotonic() - started:.1f} s" if out.returncode == 0 else out.stdout[-300:])
            except subprocess.TimeoutExpired:
                sc.check("1000 slots resharded under load", False, "redis-cli --cluster reshard ran past 120 s")
            time.sleep(3)
            t.phase = "after"
            time.sleep(2)
        failovers = metric_sum(port, "redis_cluster_failovers_total")
        moved = metric_sum(port, "redis_redirections_total", 'kind="moved"')
        ask = metric_sum(port, "redis_redirections_total", 'kind="ask"')
        sc.check("both failovers seen by the client (redis_cluster_failovers_total)", failovers >= 2, f"{failovers:.0f}")
        sc.check("redirections followed after the reshard (redis_redirections_total)", moved >= 1,
                 f"MOVED {moved:.0f}, ASK {ask:.0f}")
        r = request(port, "GET", "/health/ready")
        cache = ((r.json() or {}).get("data", {}).get("checks", {}).get("cache", {}) or {})
        sc.check("the cache uses the cluster again", cache.get("status") == "ok", str(cache))
        server.stop()
        sc.crashes += server.crashes
    finally:
        if server.proc and server.proc.poll() is None:
            server.stop()
        cluster.stop()
