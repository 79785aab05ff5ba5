#!/usr/bin/env python3
"""Unit tests of scripts/deploy/release.py's pieces that the live test cannot force: canary
weights, the upstream it writes, and both error-rate sources (a fake /metrics server, and nginx
access-log lines with retries across upstreams)."""
import http.server
import json
import os
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "deploy"))
import release  # noqa: E402


class FakeMetrics(http.server.BaseHTTPRequestHandler):
    body = ""

    def do_GET(self):
        if self.path != "/metrics" or not FakeMetrics.body:
            self.send_response(404); self.end_headers(); return
        data = FakeMetrics.body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def state_with(tmp, instances, log=""):
    path = os.path.join(tmp, "state.json")
    json.dump({"nginx_cmd": ["true"], "upstream_file": os.path.join(tmp, "live.conf"), "access_log": log,
               "instance_ctl": ["true"], "instances": instances, "live": {}}, open(path, "w"))
    return release.State(path)


class ReleaseTests(unittest.TestCase):
    def test_canary_weights_give_the_asked_share(self):
        for stable, target in ((["a", "b"], ["c", "d"]), (["a", "b", "c"], ["d"]), (["a"], ["b", "c"])):
            for pct in (5, 25, 50):
                w = release.canary_weights(stable, target, pct)
                share = sum(w[n] for n in target) / sum(w.values())
                self.assertAlmostEqual(share, pct / 100, places=6)
        self.assertEqual(release.canary_weights(["a"], ["b"], 100), {"b": 1})

    def test_upstream_marks_drained_instances_down(self):
        with tempfile.TemporaryDirectory() as tmp:
            s = state_with(tmp, {"a": {"addr": "10.0.0.1:8000", "color": "blue"},
                                 "b": {"addr": "10.0.0.2:8000", "color": "blue"}})
            s.d["live"], s.d["down"] = {"a": 19, "b": 1}, ["b"]
            text = release.render_upstream(s)
            self.assertIn("upstream facesocial_live {", text)
            self.assertIn("server 10.0.0.1:8000 weight=19 max_fails=3 fail_timeout=10s;", text)
            self.assertIn("server 10.0.0.2:8000 weight=1 max_fails=3 fail_timeout=10s down;", text)
            self.assertIn("keepalive 32;", text)

    def test_error_rate_from_metrics_counts_only_the_delta_and_skips_probes(self):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeMetrics)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        addr = f"127.0.0.1:{srv.server_address[1]}"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                s = state_with(tmp, {"c": {"addr": addr, "color": "green"}})
                FakeMetrics.body = ('# TYPE http_requests_total counter\n'
                                    'http_requests_total{method="POST",route="/v1/detect",status="200"} 100\n'
                                    'http_requests_total{method="POST",route="/v1/detect",status="503"} 5\n'
                                    'http_requests_total{method="GET",route="/health",status="200"} 1000\n')
                meter = release.ErrorMeter(s, ["c"])
                self.assertEqual(meter.source, "metrics")
                FakeMetrics.body = ('http_requests_total{method="POST",route="/v1/detect",status="200"} 190\n'
                                    'http_requests_total{method="POST",route="/v1/detect",status="503"} 15\n'
                                    'http_requests_total{method="GET",route="/health",status="200"} 5000\n')
                self.assertEqual(meter.read(), (100, 10))
        finally:
            srv.shutdown()

    def test_error_rate_from_nginx_log_follows_retries(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "access.log")
            open(log, "w").write('old line ua="10.0.0.3:8000" us="500"\n')
            s = state_with(tmp, {"c": {"addr": "10.0.0.3:8000", "color": "green"},
                                 "a": {"addr": "10.0.0.1:8000", "color": "blue"}}, log)
            meter = release.ErrorMeter(s, ["c"])  # no /metrics there: falls back to the log
            self.assertEqual(meter.source, "nginx-log")
            with open(log, "a") as f:
                f.write('1.2.3.4 [t] "POST /v1/embed HTTP/1.1" 200 10 rt=0.1 ua="10.0.0.3:8000, 10.0.0.1:8000" us="503, 200" urt="0.0, 0.1" rid=x\n')
                f.write('1.2.3.4 [t] "POST /v1/detect HTTP/1.1" 200 10 rt=0.1 ua="10.0.0.3:8000" us="200" urt="0.1" rid=y\n')
                f.write('1.2.3.4 [t] "POST /v1/detect HTTP/1.1" 200 10 rt=0.1 ua="10.0.0.1:8000" us="200" urt="0.1" rid=z\n')
            self.assertEqual(meter.read(), (2, 1))


if __name__ == "__main__":
    unittest.main(verbosity=1)
