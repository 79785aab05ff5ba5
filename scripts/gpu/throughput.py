#!/usr/bin/env python3
"""Closed-loop HTTP throughput of a running server, with the standard library only, for hosts
where wrk (scripts/bench-http.sh) cannot be installed, such as an offline GPU machine.

  throughput.py --port 8000 --image photo.jpg --route /v1/detect --concurrency 1,8,32 --seconds 10

Each of C threads keeps one keep-alive connection and sends the same multipart upload again as soon
as the answer arrives. Prints one markdown row per concurrency: requests per second, p50 / p99
latency in milliseconds, and the answers that were not 200 (by status).
"""
import argparse
import http.client
import threading
import time
import uuid


def multipart(image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def run(port: int, route: str, body: bytes, ctype: str, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, codes = [], {}
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                conn.request("POST", route, body, {"Content-Type": ctype})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                status = 0
            mine.append(time.monotonic() - t0)
            codes[status] = codes.get(status, 0) + 1
        with lock:
            latencies.extend(mine)
            for k, v in codes.items():
                statuses[k] = statuses.get(k, 0) + v

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0

    return {"rps": statuses.get(200, 0) / elapsed, "p50": pct(0.5), "p99": pct(0.99),
            "other": {k: v for k, v in statuses.items() if k != 200}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--route", default="/v1/detect")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    body, ctype = multipart(open(a.image, "rb").read())
    run(a.port, a.route, body, ctype, 2, 2)  # warm-up: models load on first use
    for c in (int(x) for x in a.concurrency.split(",")):
        r = run(a.port, a.route, body, ctype, c, a.seconds)
        print(f"| {a.label} | {a.route} | {c} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} | "
              f"{r['other'] or 'none'} |", flush=True)


if __name__ == "__main__":
    main()
