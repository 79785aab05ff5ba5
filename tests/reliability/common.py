"""Shared pieces of the reliability suite: HTTP calls, per-scenario tallies, the servers and the
services the suite starts (facesocial, redis-server, the PostgreSQL pair from
scripts/test-services/postgres.sh), and the image-signature scan.

Standard library only, so every scenario module can import it without the suite's venv.
"""

from __future__ import annotations

import base64
import collections
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTDATA = os.environ.get("FACESOCIAL_TESTDATA", os.path.join(ROOT, "..", "shared", "testdata"))
ADMIN_EMAIL = "reliability-admin@example.com"
ADMIN_PASSWORD = "reliability-suite-admin-pw"


def log(msg: str) -> None:
    print(f"\033[1;35m[reliability]\033[0m {time.strftime('%H:%M:%S')} {msg}", flush=True)


def testimage(name: str) -> bytes:
    with open(os.path.join(TESTDATA, name), "rb") as f:
        return f.read()


# --- HTTP --------------------------------------------------------------------------------------


@dataclass
class Resp:
    status: int  # 0 when no answer came back (err names the transport failure)
    code: str | None  # error.code of an error envelope
    body: bytes
    headers: dict
    ms: float
    err: str | None = None

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def key(self) -> str:
        """How the summary counts this answer: '200', '503 QUEUE_FULL', 'ConnectionResetError'."""
        if self.err:
            return self.err
        return f"{self.status} {self.code}" if self.code else str(self.status)

    def short(self) -> str:
        if self.err:
            return f"transport error {self.err}"
        return f"{self.status} {self.body[:300].decode(errors='replace')}"


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 60, host: str = "127.0.0.1") -> Resp:
    """One request on a fresh connection (never resent), timed from connect to the last byte."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        code = None
        if r.status >= 400:
            try:
                code = json.loads(data)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = "NO_ENVELOPE"
        return Resp(r.status, code, data, hdrs, (time.monotonic() - t0) * 1000)
    except Exception as e:  # transport failure: refused, reset, timeout, malformed answer
        return Resp(0, None, b"", {}, (time.monotonic() - t0) * 1000, err=type(e).__name__)
    finally:
        conn.close()


def json_body(obj) -> tuple[bytes, dict]:
    return json.dumps(obj).encode(), {"Content-Type": "application/json"}


def multipart(fields: dict, files: dict) -> tuple[bytes, dict]:
    """fields: name -> str; files: name -> (filename, content type, bytes)."""
    boundary = "rel" + uuid.uuid4().hex
    out = bytearray()
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, (filename, ctype, data) in files.items():
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {ctype}\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def b64_json(image: bytes, **extra) -> tuple[bytes, dict]:
    return json_body({"image": base64.b64encode(image).decode(), **extra})


def login(port: int, within: float = 30) -> str:
    body, hdrs = json_body({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    deadline = time.monotonic() + within
    while True:
        r = request(port, "POST", "/v1/auth/login", body, hdrs, timeout=12)
        if r.status == 200:
            return r.json()["data"]["access_token"]
        if time.monotonic() > deadline:
            raise RuntimeError(f"sign-in failed: POST /v1/auth/login -> {r.short()}")
        time.sleep(0.2)


def percentile(values, q: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


# --- tallies -----------------------------------------------------------------------------------


@dataclass
class Scenario:
    """What one scenario did: answers by code, unexpected answers (each a failure), acknowledged
    writes that were not there afterwards, server crashes, and named checks."""

    name: str
    requests: int = 0
    codes: collections.Counter = field(default_factory=collections.Counter)
    unexpected: list = field(default_factory=list)
    lost_writes: int | None = None  # None: the scenario writes nothing
    crashes: int = 0
    checks: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, r: Resp, ok: bool = True, what: str = "") -> None:
        """Counts an answer; ok=False records it as unexpected with the request that caused it."""
        with self.lock:
            self.requests += 1
            if r.err or r.status >= 300:
                self.codes[r.key] += 1
            if not ok:
                self.unexpected.append(f"{what} -> {r.short()}")

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        with self.lock:
            self.checks.append((name, bool(ok), detail))
        log(f"  {'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
        return bool(ok)

    def add_lost(self, n: int) -> None:
        self.lost_writes = (self.lost_writes or 0) + n

    @property
    def passed(self) -> bool:
        return (self.skipped is None and not self.unexpected and not self.lost_writes and self.crashes == 0
                and all(ok for _, ok, _ in self.checks))

    def to_dict(self) -> dict:
        return {"name": self.name, "requests": self.requests, "codes": dict(self.codes),
                "unexpected": self.unexpected[:50], "unexpected_count": len(self.unexpected),
                "lost_writes": self.lost_writes, "crashes": self.crashes,
                "checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in self.checks],
                "notes": self.notes, "seconds": round(self.seconds, 1), "skipped": self.skipped,
                "passed": self.passed}


# --- processes ---------------------------------------------------------------------------------

CRASH_MARKERS = ("Fatal error", "Program crashed", "Segmentation fault", "SIGSEGV", "SIGABRT",
                 "AddressSanitizer", " crashed:", "MultipartParser")


class Server:
    """One facesocial process on loopback with its own data dir, TMPDIR and log file."""

    def __init__(self, name: str, port: int, work: str, env: dict | None = None):
        self.name, self.port, self.work = name, port, work
        self.dir = os.path.join(work, "servers", name)
        self.data = os.path.join(self.dir, "data")
        self.tmp = os.path.join(self.dir, "tmp")
        self.logfile = os.path.join(work, "logs", f"{name}.log")
        for d in (self.data, self.tmp, os.path.dirname(self.logfile)):
            os.makedirs(d, exist_ok=True)
        self.env = {
            "FACESOCIAL_HOST": "127.0.0.1", "FACESOCIAL_PORT": str(port), "FACESOCIAL_DATA_DIR": self.data,
            "FACESOCIAL_MODEL_DIR": os.environ.get("FACESOCIAL_MODEL_DIR", os.path.join(ROOT, "var", "models")),
            "FACESOCIAL_MODEL_MANIFEST": os.environ.get("FACESOCIAL_MODEL_MANIFEST",
                                                        os.path.join(ROOT, "models", "manifest.json")),
            "FACESOCIAL_ADMIN_EMAIL": ADMIN_EMAIL, "FACESOCIAL_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "FACESOCIAL_BCRYPT_COST": "4", "FACESOCIAL_ACCESS_TOKEN_TTL_SECONDS": "7200",
            # The suite drives thousands of requests a minute from one address on purpose.
            "FACESOCIAL_RATE_LIMIT_PER_MINUTE": "1000000", "FACESOCIAL_RATE_LIMIT_IP_PER_MINUTE": "1000000",
            # Its bad-credential cases come from one address too; sign-in throttling has its own tests.
            "FACESOCIAL_LOGIN_FAILURES_PER_ACCOUNT": "100000", "FACESOCIAL_LOGIN_FAILURES_PER_ADDRESS": "100000",
            "TMPDIR": self.tmp,
            # Every server of the run shares one tuning cache, as a deployment's persistent data
            # folder would: the CPU is measured at the first server's model loads, not at each start.
            "FACESOCIAL_TUNING_FILE": os.path.join(work, "tuning.json"),
        }
        self.env.update(env or {})
        self.proc: subprocess.Popen | None = None
        self.expected_exit = False
        self.crashes = 0
        self.exit_codes: list = []

    def start(self, wait_ready: bool = True, timeout: float = 90) -> None:
        binary = os.environ.get("FACESOCIAL_BIN", os.path.join(ROOT, ".build", "release", "facesocial"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FACESOCIAL_", "DATABASE_", "REDIS_"))}
        env.update(self.env)
        logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen([binary, "serve"], env=env, stdout=logf, stderr=subprocess.STDOUT,
                                     cwd=self.dir, start_new_session=True)
        logf.close()
        remember_pid(self.work, self.proc.pid)
        self.expected_exit = False
        deadline = time.time() + timeout
        path = "/health/ready" if wait_ready else "/health"
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} at start; see {self.logfile}")
            if request(self.port, "GET", path, timeout=2).status == 200:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within {timeout}s; see {self.logfile}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def died_unexpectedly(self) -> bool:
        """True (once) when the process exited without being asked to: a crash."""
        if self.proc is not None and not self.expected_exit and self.proc.poll() is not None:
            self.expected_exit = True
            self.crashes += 1
            self.exit_codes.append(self.proc.returncode)
            return True
        return False

    def stop(self, sig=signal.SIGTERM, timeout: float = 20) -> int | None:
        """Stops the server; a non-zero exit after SIGTERM counts as a crash."""
        if self.proc is None:
            return None
        if self.died_unexpectedly():
            return self.proc.returncode
        self.expected_exit = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.crashes += 1  # hung on shutdown
        rc = self.proc.returncode
        self.exit_codes.append(rc)
        if sig == signal.SIGTERM and rc != 0:
            self.crashes += 1
        return rc

    def log_crash_lines(self) -> list:
        try:
            with open(self.logfile, "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            return []
        return [ln for ln in text.splitlines() if any(m in ln for m in CRASH_MARKERS)]


def remember_pid(work: str, pid: int) -> None:
    """scripts/reliability.sh stops these if the suite is interrupted before it stops them itself."""
    with open(os.path.join(work, "pids"), "a") as f:
        f.write(f"{pid}\n")


def free_port(port: int) -> bool:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no clash
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Redis:
    """redis-server on loopback, persisting RDB and AOF into its folder (both are scanned later)."""

    def __init__(self, port: int, work: str):
        self.port, self.work, self.dir = port, work, os.path.join(work, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--appendonly", "yes", "--save", "60 1", "--protected-mode", "yes", "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        remember_pid(self.work, self.proc.pid)
        for _ in range(100):
            if self.cli("PING").strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def cli(self, *args) -> str:
        r = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, timeout=10)
        return r.stdout

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def save_and_stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.cli("SAVE")
            self.cli("SHUTDOWN", "SAVE")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Postgres:
    """Stops and starts the primary or the replica made by scripts/test-services/postgres.sh."""

    def __init__(self):
        self.ctl = os.environ["FACESOCIAL_TEST_PG_CTL"]
        self.dir = os.environ["FACESOCIAL_TEST_POSTGRES_DIR"]
        self.user = os.environ.get("FACESOCIAL_TEST_POSTGRES_USER", "")
        self.primary_url = os.environ["FACESOCIAL_TEST_POSTGRES_URL"]
        self.replica_url = os.environ["FACESOCIAL_TEST_POSTGRES_REPLICA_URL"]
        self.data = {"primary": os.path.join(self.dir, "primary"),
                     "replica": os.environ["FACESOCIAL_TEST_POSTGRES_REPLICA_DATA"]}

    def _ctl(self, *args) -> None:
        cmd = [self.ctl, *args]
        if os.getuid() == 0:
            cmd = ["runuser", "-u", self.user or "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=90)

    def crash(self, node: str) -> None:
        """Immediate shutdown: no checkpoint, crash recovery at the next start (a crash, for PostgreSQL)."""
        self._ctl("-D", self.data[node], "-m", "immediate", "-w", "stop")

    def start(self, node: str) -> None:
        self._ctl("-D", self.data[node], "-l", os.path.join(self.dir, f"{node}.log"), "-w", "-t", "60", "start")

    def processes(self, node: str) -> list:
        """The postmaster's pid (postmaster.pid's first line) and its children's (from /proc)."""
        with open(os.path.join(self.data[node], "postmaster.pid")) as f:
            postmaster = int(f.readline())
        children = []
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == postmaster:
                        children.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
        return [postmaster, *children]

    def freeze(self, node: str) -> None:
        """Every process of the node stopped (SIGSTOP), the postmaster first so it forks no more:
        connections stay up and nothing answers, as with a paused VM or a stalled disk."""
        for pid in self.processes(node):
            os.kill(pid, signal.SIGSTOP)

    def thaw(self, node: str) -> None:
        for pid in self.processes(node):
            os.kill(pid, signal.SIGCONT)


# --- privacy scan ------------------------------------------------------------------------------

PNG_SIG = b"\x89PNG\r\n\x1a\n"
TEXT_MARKERS = (b"/9j/", b"iVBORw0KGgo", b"UklGR")  # base64 openings of JPEG, PNG, WebP


# Markers a JPEG starts with after SOI: APP0-15, DQT, SOF0-2, DHT, DRI, COM.
JPEG_FIRST_MARKERS = set(range(0xE0, 0xF0)) | {0xDB, 0xC0, 0xC1, 0xC2, 0xC4, 0xDD, 0xFE}


# What the APPn segment a JPEG opens with names itself (JFIF, Exif, XMP, ICC, Adobe, ...).
JPEG_APP_IDS = (b"JFIF\x00", b"JFXX\x00", b"Exif\x00", b"http://ns.adobe.com/", b"ICC_PROFILE\x00", b"Adobe",
                b"Photoshop 3.0\x00", b"MPF\x00", b"Ducky")


def jpeg_at(data: bytes, i: int) -> bool:
    """A JPEG opening at i: SOI and a first segment with a valid marker and length, which is
    either an APPn segment naming its kind or followed by the next marker where its length says.
    Three bytes (FF D8 FF) alone turn up by chance about once in 16 MB of random bytes, and the
    database's WAL holds that much sealed (random-looking) data; this structure does not, while
    every JPEG file has it (a fragment too, as long as it holds its first segment's opening)."""
    if i + 6 > len(data) or data[i + 3] not in JPEG_FIRST_MARKERS:
        return False
    length = int.from_bytes(data[i + 4:i + 6], "big")
    if length < 2:
        return False
    if 0xE0 <= data[i + 3] <= 0xEF and any(data.startswith(tag, i + 6) for tag in JPEG_APP_IDS):
        return True
    nxt = i + 4 + length
    return nxt + 1 < len(data) and data[nxt] == 0xFF and data[nxt + 1] not in (0x00, 0xFF)


def image_signatures(data: bytes, text_markers: bool = True) -> list:
    found = []
    i = data.find(b"\xff\xd8\xff")  # SOI and the first marker's FF
    while i != -1:
        if jpeg_at(data, i):
            found.append(f"JPEG@{i}")
        i = data.find(b"\xff\xd8\xff", i + 1)
    i = data.find(PNG_SIG)
    while i != -1:
        found.append(f"PNG@{i}")
        i = data.find(PNG_SIG, i + 1)
    i = data.find(b"RIFF")
    while i != -1:
        if data[i + 8:i + 12] == b"WEBP":
            found.append(f"WEBP@{i}")
        i = data.find(b"RIFF", i + 1)
    if text_markers:
        for m in TEXT_MARKERS:
            if m in data:
                found.append(f"base64 {m.decode()}@{data.find(m)}")
    return found
