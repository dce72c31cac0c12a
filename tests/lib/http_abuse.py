#!/usr/bin/env python3
"""One abusive HTTP client against coalitiond, and a well-behaved one beside it.

Used by tests/process/test_http_limits.sh.  The node serves HTTP on
127.0.0.1:PORT with small limits (see the test).  The abuser connects from
127.0.0.2 and 127.0.0.3 (any 127/8 address reaches a 127.0.0.1 listener on
Linux) and, all at once: holds more connections than conns_per_addr, trickles request heads
a byte at a time (slowloris), sends heads over http_header_max, bodies over
http_body_max and bytes that are not HTTP.  The well-behaved client makes
sequential requests from 127.0.0.1 before and during the abuse; the latency
of both runs, what the abuser got back and the timeouts are checked and
printed.  Exit status 0 when every check holds, 1 otherwise.

usage: http_abuse.py PORT API_KEY MEMBER CONNS_PER_ADDR REQUEST_TIMEOUT_MS IDLE_TIMEOUT_MS
"""
import collections
import json
import socket
import sys
import threading
import time

PORT = int(sys.argv[1])
KEY = sys.argv[2]
MEMBER = sys.argv[3]
CONNS_PER_ADDR = int(sys.argv[4])
REQUEST_TIMEOUT_S = int(sys.argv[5]) / 1000.0
IDLE_TIMEOUT_S = int(sys.argv[6]) / 1000.0
GOOD = "127.0.0.1"
BAD = "127.0.0.2"
# The abuser's oversized and broken requests come from a second address of
# its own: from BAD they would mostly find its quota taken by its slowloris
# connections (503), and each limit is to be seen at work.
BAD2 = "127.0.0.3"
REQUESTS = 50

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def connect(src, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", PORT))
    return s


def read_all(s):
    """Everything until the peer closes (or the timeout): bytes."""
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def status_of(data):
    if data.startswith(b"HTTP/1.1 "):
        return int(data[9:12])
    return 0  # closed without an answer


def good_request():
    """One GET on a new connection; (status, seconds)."""
    t0 = time.monotonic()
    s = connect(GOOD)
    s.sendall(
        (
            f"GET /v1/members/{MEMBER}/balance HTTP/1.1\r\nHost: pos\r\n"
            f"Authorization: Bearer {KEY}\r\nConnection: close\r\n\r\n"
        ).encode()
    )
    data = read_all(s)
    s.close()
    return status_of(data), time.monotonic() - t0


def measure(label):
    lat, statuses = [], collections.Counter()
    for _ in range(REQUESTS):
        st, dt = good_request()
        statuses[st] += 1
        lat.append(dt * 1000.0)
    lat.sort()
    p50 = lat[len(lat) // 2]
    p95 = lat[int(len(lat) * 0.95) - 1]
    print(
        f"{label}: {REQUESTS} requests, p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
        f"max {lat[-1]:.1f} ms, statuses {dict(statuses)}",
        flush=True,
    )
    return p95, statuses


class Abuser:
    def __init__(self):
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.outcomes = collections.defaultdict(collections.Counter)
        self.threads = []
        self.held = 0  # slowloris connections the node accepted and holds

    def count(self, kind, status):
        with self.lock:
            self.outcomes[kind][status] += 1

    def run(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def slowloris(self):
        """Keeps opening connections that trickle a request head; the node
        answers 408 after request_timeout_ms, or 503 over conns_per_addr."""
        head = (
            f"GET /v1/members/{MEMBER}/balance HTTP/1.1\r\nHost: x\r\nX-Pad: "
        ).encode() + b"a" * 100000
        while not self.stop.is_set():
            try:
                s = connect(BAD, timeout=0.05)
            except OSError:
                time.sleep(0.05)
                continue
            t0 = time.monotonic()
            got = b""
            for i in range(len(head)):
                if self.stop.is_set():
                    break
                try:
                    s.sendall(head[i : i + 1])
                except OSError:
                    break
                try:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                    if b"\r\n\r\n" in got:
                        break
                except socket.timeout:
                    pass  # 50 ms per byte: a slow trickle
                except OSError:
                    break
            st = status_of(got)
            if st == 408:
                self.count("slowloris_408_after_s", round(time.monotonic() - t0))
            self.count("slowloris", st)
            s.close()
            if st != 408:
                time.sleep(0.05)  # refused: try again a little later

    def oneshot(self, kind, payload, delay=0.02):
        while not self.stop.is_set():
            try:
                s = connect(BAD2, timeout=3.0)
                s.sendall(payload)
                data = read_all(s)
                s.close()
                self.count(kind, status_of(data))
            except OSError as e:
                self.count(kind, type(e).__name__)
            time.sleep(delay)

    def start(self):
        for _ in range(CONNS_PER_ADDR + 8):
            self.run(self.slowloris)
        big_head = (
            f"GET /v1/members/{MEMBER}/balance HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {KEY}\r\nX-Big: {'b' * 8192}\r\n\r\n"
        ).encode()
        self.run(self.oneshot, "big_header", big_head)
        big_body = (
            f"POST /v1/awards HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Idempotency-Key: big\r\nContent-Length: 100000\r\n\r\n"
        ).encode() + b"{" * 100000
        self.run(self.oneshot, "big_body", big_body)
        chunked = (
            f"POST /v1/awards HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Idempotency-Key: big2\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode() + (b"1000\r\n" + b" " * 4096 + b"\r\n") * 3 + b"0\r\n\r\n"
        self.run(self.oneshot, "big_chunked_body", chunked)
        self.run(self.oneshot, "garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 20)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)


def idle_close_s():
    """Seconds until the node closes a connection that sends nothing."""
    s = connect(GOOD, timeout=IDLE_TIMEOUT_S + 5)
    t0 = time.monotonic()
    data = read_all(s)
    s.close()
    return time.monotonic() - t0, data


def keepalive_survives():
    """Requests spaced below the idle timeout keep one connection open past it."""
    s = connect(GOOD, timeout=5)
    req = (
        f"GET /v1/members/{MEMBER}/balance HTTP/1.1\r\nHost: pos\r\n"
        f"Authorization: Bearer {KEY}\r\n\r\n"
    ).encode()
    ok = 0
    spacing = IDLE_TIMEOUT_S * 0.6
    for _ in range(4):
        s.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        if status_of(data) == 200:
            ok += 1
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(
            [h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0]
        )
        while len(rest) < length:
            rest += s.recv(4096)
        time.sleep(spacing)
    s.close()
    return ok, spacing * 4


def main():
    p95_before, st_before = measure("well-behaved client alone")
    check(st_before == {200: REQUESTS}, "every request of the client alone answered 200")

    abuser = Abuser()
    abuser.start()
    time.sleep(max(1.0, REQUEST_TIMEOUT_S * 0.7))  # connections piled up, some timing out
    p95_during, st_during = measure("well-behaved client during the abuse")
    # Long enough for the trickling connections to reach their timeout.
    time.sleep(REQUEST_TIMEOUT_S + 0.5)
    abuser.finish()
    print("abuser got: " + json.dumps({k: dict(v) for k, v in abuser.outcomes.items()}), flush=True)

    check(st_during == {200: REQUESTS}, "every request of the client during the abuse answered 200")
    bound = max(3 * p95_before, p95_before + 100.0)
    check(
        p95_during <= bound,
        f"p95 during the abuse {p95_during:.1f} ms <= {bound:.1f} ms (3x or +100 ms of {p95_before:.1f})",
    )
    o = abuser.outcomes
    check(o["slowloris"][408] >= CONNS_PER_ADDR // 2, f"trickled heads answered 408: {o['slowloris'][408]}")
    late = [s for s in o["slowloris_408_after_s"] if s > REQUEST_TIMEOUT_S + 2]
    check(not late, "every 408 came within request_timeout_ms (+2 s)")
    check(o["slowloris"][503] >= 8, f"connections over conns_per_addr refused with 503: {o['slowloris'][503]}")
    for kind, want in (("big_header", 431), ("big_body", 413), ("big_chunked_body", 413), ("garbage", 400)):
        got = o[kind]
        n = sum(got.values())
        # Refused connections (the abuser is often at its quota): 503.
        check(n > 0 and got[want] > 0 and got[want] + got[503] == n, f"{kind}: {want} (or 503) each time: {dict(got)}")

    dt, data = idle_close_s()
    check(
        IDLE_TIMEOUT_S * 0.8 <= dt <= IDLE_TIMEOUT_S + 2.0 and data == b"",
        f"an idle connection is closed after {dt:.2f} s (idle_timeout {IDLE_TIMEOUT_S:.1f} s), silently",
    )
    ok, span = keepalive_survives()
    check(ok == 4, f"a keep-alive connection in use stays open for {span:.1f} s: {ok}/4 answered")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
