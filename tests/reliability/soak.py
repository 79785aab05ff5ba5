"""Load and soak: a steady rate at half the measured capacity for the whole run, with bursts at twice
capacity, against one server (SQLite, in-memory cache turned off so every request runs the models).

Passes when: steady phases answer only 2xx; bursts answer only 2xx or 503 QUEUE_FULL (with
Retry-After); no transport errors; steady p99 and the overall maximum latency stay under their
bounds; RSS grows less than 5 % from just after warm-up (which includes a first burst) to the end.

RSS is compared at rest: the load pauses after warm-up and stops at the end, and each reading is the
lowest over one period of the server's malloc_trim once no request is in flight. Read under load it
measures the requests in flight and where the trims fell: a debug build's samples swing by 7 % from
one second to the next, and medians over 8 s windows (shorter than the trim period) differed by
6 % with no growth in what the heap holds. The readings under load are still reported.
"""

from __future__ import annotations

import threading
import time

from common import Scenario, log, login, multipart, percentile, request, testimage

STEADY_P99_MS = 2000.0  # at half capacity, on a release build
QUEUE_TIMEOUT_MS = 10000.0  # FACESOCIAL_QUEUE_TIMEOUT_MS default: the longest wait in a model queue
RSS_GROWTH_LIMIT = 0.05
TRIM_PERIOD_S = 10.0  # the server's HeapTrimmer interval: a reading at rest spans one trim
DRAIN_LIMIT_S = 120.0  # requests still in flight when the load pauses (a burst's backlog)


def request_mix():
    small, group, rose = testimage("obama_small.jpg"), testimage("group6_t1.jpg"), testimage("rose_leslie_img1.jpg")
    kit1, kit2 = testimage("kit_harington_john1.jpeg"), testimage("kit_harington_john2.jpeg")
    jpeg = {"Content-Type": "image/jpeg"}
    mp_small = multipart({"max_faces": "5"}, {"image": ("a.jpg", "image/jpeg", small)})
    mp_verify = multipart({}, {"image1": ("a.jpg", "image/jpeg", kit1), "image2": ("b.jpg", "image/jpeg", kit2)})
    return [
        ("POST", "/v1/detect", group, jpeg),
        ("POST", "/v1/detect", mp_small[0], mp_small[1]),
        ("POST", "/v1/embed", rose, jpeg),
        ("GET", "/health", None, {}),
        ("POST", "/v1/analyze", small, jpeg),
        ("POST", "/v1/detect?confidence_threshold=0.7", rose, jpeg),
        ("POST", "/v1/liveness", small, jpeg),
        ("POST", "/v1/verify", mp_verify[0], mp_verify[1]),
    ]


def measure_capacity(port: int, seconds: float, concurrency: int = 4) -> tuple[float, float]:
    """Closed-loop throughput (2xx per second) and the slowest answer seen meanwhile (ms)."""
    mix = request_mix()
    done = [0]
    slowest = [0.0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(i):
        k = i
        while time.monotonic() < stop:
            m, p, b, h = mix[k % len(mix)]
            k += 1
            r = request(port, m, p, b, h)
            with lock:
                slowest[0] = max(slowest[0], r.ms)
                if r.status == 200:
                    done[0] += 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return done[0] / (time.monotonic() - t0), slowest[0]


def rss_at_rest(server, in_flight) -> int:
    """RSS (KiB) with no request in flight: the lowest reading over one trim period after the last
    answer, so that the server's periodic malloc_trim has returned what the requests freed."""
    deadline = time.monotonic() + DRAIN_LIMIT_S
    while in_flight() > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    lowest = server.rss_kib()
    end = time.monotonic() + TRIM_PERIOD_S + 1.0
    while time.monotonic() < end:
        time.sleep(0.25)
        lowest = min(lowest, server.rss_kib())
    return lowest


def heap_note(sc: Scenario, heap: list, warmup: float, win: float, duration: float) -> None:
    """Notes the allocator's in-use and free bytes and the caches' sizes after warm-up and at the end."""
    def mib(v):
        return f"{v / 1048576:.0f}"

    def at(lo, hi):
        xs = [d for t, d in heap if lo <= t < hi and d.get("allocator")]
        return xs[len(xs) // 2] if xs else None

    first, last = at(warmup, warmup + win), at(duration - win, duration + 1)
    if not first or not last:
        return
    parts = []
    for d in (first, last):
        a = d["allocator"]
        caches = sum(d.get("caches", {}).values())
        parts.append(f"heap in use {mib(a['in_use_bytes'])}, free in arenas {mib(a['free_bytes'])}, mmapped "
                     f"{mib(a['mmap_bytes'])}, caches {mib(caches)} MiB")
    trims = [d["last_trim_ms"] for _, d in heap if d.get("last_trim_ms") is not None]
    trim = f"; periodic malloc_trim took at most {max(trims):.1f} ms" if trims else ""
    sc.notes.append(f"allocator after warm-up: {parts[0]}; at the end: {parts[1]}{trim}")


def run(sc: Scenario, server, duration: float, warmup: float, bursts: list, burst_len: float,
        release_build: bool = True) -> None:
    """bursts: start times (s) of the bursts; warmup must cover the first one."""
    port = server.port
    calib = 6.0 if duration < 120 else 10.0
    capacity, slowest = measure_capacity(port, calib)
    # Bounded latency under overload: no answer later than the longest queue wait plus twice the
    # slowest answer at full closed-loop load (a debug build's requests take seconds), at least 12 s.
    max_latency_ms = max(12000.0, QUEUE_TIMEOUT_MS + 2 * slowest)
    steady_rate, burst_rate = max(1.0, capacity / 2), capacity * 2
    sc.notes.append(f"capacity {capacity:.1f} req/s (closed loop, 4 clients, {calib:.0f} s); steady "
                    f"{steady_rate:.1f} req/s for {duration:.0f} s; bursts of {burst_len:.0f} s at "
                    f"{burst_rate:.1f} req/s at t={', '.join(f'{b:.0f}' for b in bursts)} s")
    log(f"  {sc.notes[-1]}")
    mix = request_mix()
    n_threads = 64
    steady_threads = 8
    # The timeline (its start and stop) moves on by the length of the pause after warm-up.
    clock = {"start": time.monotonic()}
    clock["stop"] = clock["start"] + duration
    lat = {"steady": [], "burst": []}
    lock = threading.Lock()
    sending = threading.Event()  # cleared while the load pauses for the reading at rest
    sending.set()
    in_flight = [0]
    rss = []  # (t, kib)
    heap = []  # (t, allocator statistics and cache sizes from /system/memory-profile)
    token = login(port)

    def in_burst(t: float, tail: float = 0.0) -> bool:
        return any(b <= t < b + burst_len + tail for b in bursts)

    def worker(i: int):
        k = i
        t_next = time.monotonic()
        while True:
            if not sending.is_set():
                sending.wait()
                t_next = time.monotonic()
                continue
            now = time.monotonic()
            if now >= clock["stop"]:
                return
            rel = now - clock["start"]
            burst = in_burst(rel)
            active, rate = (n_threads, burst_rate) if burst else (steady_threads, steady_rate)
            if i >= active:
                time.sleep(0.05)
                t_next = time.monotonic()
                continue
            interval = active / rate
            if t_next > now:
                time.sleep(min(t_next - now, 0.25))
                continue
            t_next = max(t_next + interval, now - interval)  # catch up at most one interval
            m, p, b, h = mix[k % len(mix)]
            k += 1
            with lock:  # checked with the count, so that a paused load has nothing left to send
                if not sending.is_set():
                    continue
                in_flight[0] += 1
            try:
                r = request(port, m, p, b, h, timeout=60)
            finally:
                with lock:
                    in_flight[0] -= 1
            # Overload: sent or answered during a burst or the 3 s after it (its backlog is still queued).
            done = time.monotonic() - clock["start"]
            phase = "burst" if (burst or in_burst(rel, tail=3.0) or in_burst(done, tail=3.0)) else "steady"
            ok = r.status == 200 or (phase == "burst" and r.status == 503 and r.code == "QUEUE_FULL"
                                     and "retry-after" in r.headers)
            sc.count(r, ok, f"{m} {p} ({phase}, t={rel:.0f}s)")
            if not r.err:
                with lock:
                    lat[phase].append(r.ms)

    def sampler():
        n = 0
        while True:
            if not sending.is_set():  # at rest: read by the pause itself
                time.sleep(0.25)
                continue
            if time.monotonic() >= clock["stop"]:
                return
            rss.append((time.monotonic() - clock["start"], server.rss_kib()))
            if server.died_unexpectedly():
                return
            if n % 5 == 0:  # what the heap holds, to tell a leak (in use grows) from fragmentation
                r = request(port, "GET", "/system/memory-profile", headers={"Authorization": f"Bearer {token}"},
                            timeout=10)
                if r.status == 200:
                    heap.append((time.monotonic() - clock["start"], r.json()["data"]))
            n += 1
            time.sleep(1)

    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n_threads)]
    ts.append(threading.Thread(target=sampler, daemon=True))
    for t in ts:
        t.start()
    def pending() -> int:
        with lock:
            return in_flight[0]

    next_report = 30
    rest_after_warmup = None
    while any(t.is_alive() for t in ts):
        time.sleep(1)
        el = time.monotonic() - clock["start"]
        if rest_after_warmup is None and el >= warmup:
            paused = time.monotonic()
            with lock:
                sending.clear()
            rest_after_warmup = rss_at_rest(server, pending)
            log(f"  at rest after warm-up: RSS {rest_after_warmup / 1024:.0f} MiB "
                f"(load paused {time.monotonic() - paused:.0f} s)")
            with lock:
                clock["start"] += time.monotonic() - paused
                clock["stop"] += time.monotonic() - paused
                sending.set()
        if el >= next_report:
            log(f"  t={el:.0f}s requests={sc.requests} non-2xx={dict(sc.codes)} rss={server.rss_kib() // 1024} MiB")
            next_report += 30
    for t in ts:
        t.join()
    rest_at_end = rss_at_rest(server, pending) if server.alive() else 0

    p99s, p99b = percentile(lat["steady"], 0.99), percentile(lat["burst"], 0.99)
    mx = max(lat["steady"] + lat["burst"] or [0])
    sc.notes.append(f"latency ms: steady p50 {percentile(lat['steady'], 0.5):.0f} p99 {p99s:.0f}; burst p50 "
                    f"{percentile(lat['burst'], 0.5):.0f} p99 {p99b:.0f}; max {mx:.0f}")
    if release_build:
        sc.check(f"steady p99 latency under {STEADY_P99_MS:.0f} ms", p99s < STEADY_P99_MS, f"{p99s:.0f} ms")
    else:
        sc.notes.append(f"debug build: steady p99 {p99s:.0f} ms reported, not held to the release bound of "
                        f"{STEADY_P99_MS:.0f} ms")
    bound = f"max latency under {max_latency_ms:.0f} ms (queue timeout + 2 x slowest at capacity {slowest:.0f} ms, at least 12 s)"
    if release_build:
        sc.check(bound, mx < max_latency_ms, f"{mx:.0f} ms")
    else:
        # A debug build on two shared cores is a tenth of the release capacity and its timings
        # swing with whatever else runs (CI builds): timings are held on the release build only
        # (the full run); a request that never answers still fails as a transport error.
        sc.notes.append(f"debug build: max latency {mx:.0f} ms reported, not held to the release bound ({bound})")
    sc.check("bursts were served (not all shed)", len(lat["burst"]) > 0 and sc.requests > 0)
    # RSS under load, reported: the median over the first steady window after warm-up against the
    # median over the last one.
    win = min(20.0, (duration - warmup) / 3)
    base = sorted(k for t, k in rss if warmup <= t < warmup + win)
    end = sorted(k for t, k in rss if t >= duration - win)
    if base and end and rest_after_warmup and rest_at_end:
        b, e = base[len(base) // 2], end[len(end) // 2]
        peak = max(k for _, k in rss)
        sc.notes.append(f"RSS under load: after warm-up {b / 1024:.0f} MiB, at the end {e / 1024:.0f} MiB "
                        f"({(e - b) / b * 100:+.1f} %), peak {peak / 1024:.0f} MiB")
        growth = (rest_at_end - rest_after_warmup) / rest_after_warmup
        sc.notes.append(f"RSS at rest: after warm-up {rest_after_warmup / 1024:.0f} MiB, at the end "
                        f"{rest_at_end / 1024:.0f} MiB ({growth * 100:+.1f} %)")
        sc.check("RSS growth after warm-up under 5 % (at rest)", growth < RSS_GROWTH_LIMIT,
                 f"{growth * 100:+.2f} %")
        step = 30 if duration >= 120 else 5
        marks = [min(rss, key=lambda s: abs(s[0] - m))[1] // 1024 for m in range(0, int(duration) + 1, step)]
        sc.notes.append(f"RSS MiB every {step} s: {' '.join(map(str, marks))}")
        heap_note(sc, heap, warmup, win, duration)
    else:
        sc.check("RSS sampled", False, "no samples (server gone?)")
    sc.check("server alive after the run", server.alive() and request(port, "GET", "/health").status == 200)
