#!/usr/bin/env python3
"""The same streaming load against `zoo serve` and llama.cpp's `llama-server` (issue 17).

Both servers load the same GGUF with the same thread count and as many slots as the highest
concurrency, and both stay up for the whole run (an idle server uses no CPU). For each
concurrency C, C client threads (stdlib http.client) stream greedy `/v1/completions` of fixed
prompts, `--tokens` tokens each, until `max(--min-requests, 2 C)` requests are done; the two
servers take turns at each C, `--rounds` times, alternating which goes first (the machine's other
load drifts). zoo has no `ignore_eos`, so neither server
gets it: the prompts are story openings that greedy decoding continues past 64 tokens, and the
table reports the tokens actually generated (the final `usage`, else the streamed text chunks).

Per server and C: aggregate tokens/s (all generated tokens over the wall time from the first
request sent to the last stream ended; the median of the rounds, and each round's) and time to
first token (request sent to first streamed text), p50 and p99 (nearest rank) over every round's
requests. Only the standard library; run by `cargo xtask bench-serve`.
"""

import argparse
import datetime
import http.client
import json
import math
import os
import platform
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time

PROMPTS = [
    "Once upon a time",
    "Once upon a time, in a small village by the sea, there lived",
    "The old lighthouse keeper climbed the stairs and",
    "It was a cold winter morning when the train",
    "Long ago, in a kingdom far away,",
    "The little robot woke up and looked around. It",
    "Every summer, my grandmother would take us to",
    "The scientist opened the box and found",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server child process in its own process group, with its log in a temporary file."""

    def __init__(self, name, argv, port, log_dir):
        self.name, self.port = name, port
        self.log_path = os.path.join(log_dir, name + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.model = None

    def wait_ready(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited with {self.proc.returncode}; its log:\n{self.tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/v1/models")
                resp = conn.getresponse()
                body = resp.read()
                if resp.status == 200:
                    self.model = json.loads(body)["data"][0]["id"]
                    return
            except (OSError, http.client.HTTPException, ValueError, KeyError, IndexError):
                pass
            time.sleep(0.2)
        sys.exit(f"{self.name} did not answer within {timeout} s; its log:\n{self.tail()}")

    def tail(self):
        with open(self.log_path, "rb") as f:
            return f.read()[-3000:].decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def stream_completion(server, prompt, tokens, timeout):
    """One streamed greedy completion: (seconds to first text, tokens generated, text)."""
    body = {
        "model": server.model,
        "prompt": prompt,
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    started = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"{server.name} answered {resp.status}: {resp.read()[:500]!r}")
    first, chunks, usage, text = None, 0, None, []
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        event = json.loads(data)
        if event.get("usage"):
            usage = event["usage"]
        for choice in event.get("choices") or []:
            if choice.get("text"):
                if first is None:
                    first = time.perf_counter() - started
                chunks += 1
                text.append(choice["text"])
    conn.close()
    if first is None:
        raise RuntimeError(f"{server.name} streamed no text for {prompt!r}")
    generated = usage["completion_tokens"] if usage else chunks
    return first, generated, "".join(text)


def run_level(server, concurrency, requests, tokens, timeout):
    """`requests` completions from `concurrency` clients; the level's measurements."""
    lock = threading.Lock()
    next_request = [0]
    results, errors = [], []

    def client():
        while True:
            with lock:
                k = next_request[0]
                if k >= requests:
                    return
                next_request[0] += 1
            try:
                results.append(stream_completion(server, PROMPTS[k % len(PROMPTS)], tokens, timeout))
            except Exception as err:  # reported below, after every client finished
                errors.append(err)
                return

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        sys.exit(f"{server.name} at concurrency {concurrency}: {errors[0]}\nits log:\n{server.tail()}")
    generated = [r[1] for r in results]
    return {
        "tokens": sum(generated),
        "min_tokens": min(generated),
        "tok_s": sum(generated) / wall,
        "ttfts": [r[0] for r in results],
        "wall": wall,
    }


def summarize(rounds):
    """One server's rounds at one concurrency: median tokens/s, pooled TTFT percentiles."""
    ttfts = sorted(t for r in rounds for t in r["ttfts"])
    return {
        "tok_s": statistics.median(r["tok_s"] for r in rounds),
        "rounds": [r["tok_s"] for r in rounds],
        "min_tokens": min(r["min_tokens"] for r in rounds),
        "ttft_p50": percentile(ttfts, 50),
        "ttft_p99": percentile(ttfts, 99),
    }


def percentile(sorted_values, p):
    """Nearest-rank percentile."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", required=True, help="the zoo binary")
    ap.add_argument("--llama-server", required=True, help="llama.cpp's llama-server binary")
    ap.add_argument("--model", required=True, help="the GGUF both serve")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--min-requests", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="measurements of each server at each concurrency")
    ap.add_argument("--context", type=int, default=512, help="KV-cache tokens per slot, both servers")
    ap.add_argument("--timeout", type=float, default=600, help="seconds one request may take")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    slots = max(levels)

    log_dir = tempfile.mkdtemp(prefix="zoo-bench-serve-")
    zoo_port, llama_port = free_port(), free_port()
    servers = []
    try:
        servers.append(Server("llama-server", [
            args.llama_server, "-m", args.model, "-t", str(args.threads), "-tb", str(args.threads),
            "--host", "127.0.0.1", "--port", str(llama_port), "-np", str(slots),
            "-c", str(slots * args.context), "--no-webui",
        ], llama_port, log_dir))
        servers.append(Server("zoo", [
            args.zoo, "serve", "--weights", args.model, "--threads", str(args.threads),
            "--host", "127.0.0.1", "--port", str(zoo_port), "--max-batch", str(slots),
            "--max-context", str(args.context), "--max-queue", str(4 * slots),
        ], zoo_port, log_dir))
        for s in servers:
            s.wait_ready()
        # Warm-up: one request each (page faults of the mapped weights, thread pools).
        for s in servers:
            stream_completion(s, PROMPTS[0], args.tokens, args.timeout)
        print(f"load before: {os.getloadavg()}", file=sys.stderr)
        rows = []
        for c in levels:
            requests = max(args.min_requests, 2 * c)
            measured = {s.name: [] for s in servers}
            for r in range(args.rounds):
                for s in servers if r % 2 == 0 else servers[::-1]:
                    m = run_level(s, c, requests, args.tokens, args.timeout)
                    measured[s.name].append(m)
                    print(f"concurrency {c:2}, round {r + 1}, {s.name:12}: {m['tokens']} tokens in "
                          f"{m['wall']:.2f} s, {m['tok_s']:.1f} tok/s", file=sys.stderr)
            rows.append((c, requests, {name: summarize(rounds) for name, rounds in measured.items()}))
        print(f"load after: {os.getloadavg()}", file=sys.stderr)
    finally:
        for s in servers:
            s.stop()

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{now}; {cpu_model()}, {os.cpu_count()} CPUs; {os.path.basename(args.model)}; "
          f"{args.threads} threads each; {slots} slots of {args.context} tokens; greedy, "
          f"{args.tokens} tokens per request; {args.rounds} rounds (tok/s: median, then each round)")
    print()
    print("| concurrency | requests per round | llama-server tok/s | zoo tok/s | zoo / llama | "
          "TTFT p50 llama / zoo (ms) | TTFT p99 llama / zoo (ms) | fewest tokens llama / zoo |")
    print("|---|---|---|---|---|---|---|---|")
    each = lambda m: ", ".join(f"{x:.0f}" for x in m["rounds"])
    for c, requests, m in rows:
        lm, zm = m["llama-server"], m["zoo"]
        print(f"| {c} | {requests} | {lm['tok_s']:.1f} ({each(lm)}) | {zm['tok_s']:.1f} ({each(zm)}) | "
              f"{zm['tok_s'] / lm['tok_s']:.2f} | "
              f"{lm['ttft_p50'] * 1000:.0f} / {zm['ttft_p50'] * 1000:.0f} | "
              f"{lm['ttft_p99'] * 1000:.0f} / {zm['ttft_p99'] * 1000:.0f} | "
              f"{lm['min_tokens']} / {zm['min_tokens']} |")


if __name__ == "__main__":
    main()
