"""Memory of the scoring service under concurrent *unauthenticated* large uploads.

Starts `python -m defectflow.serving` (auth on, no model needed: the uploads are refused)
from one or more source trees, sends `--clients` concurrent POSTs of `--mb` MB multipart
bodies, `--rounds` times, first without the API key and then with it (a file over the
per-file limit), and records the process's resident memory
before and its peak (VmHWM) after, with the status codes it answered. Loopback only.

    python -m bench.serving_upload_memory --tree before=/tmp/defectflow-before/src --tree after=src

writes bench/results/serving-upload-memory-<hostname>.json. Comparing trees in one run keeps
the machine load the same for both.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from bench.machine import load_average

BOUNDARY = "benchboundary"
KEY = "bench-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _body(mb: float) -> bytes:
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n").encode()
    return head + os.urandom(int(mb * 1_000_000)) + f"\r\n--{BOUNDARY}--\r\n".encode()


def _upload(port: int, body: bytes, key: str | None) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.putrequest("POST", "/v1/predict")
        if key:
            conn.putheader("X-API-Key", key)
        conn.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        try:
            for start in range(0, len(body), 256 * 1024):
                conn.send(body[start:start + 256 * 1024])
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused early and closed: what a bounded service should do
        return str(conn.getresponse().status)
    except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
        return "reset"
    finally:
        conn.close()


def measure_tree(label: str, src: Path, clients: int, rounds: int, body: bytes, key: str | None) -> dict:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{src.resolve()}:{Path.cwd()}", "DEFECTFLOW_API_KEY": KEY,
           "DEFECTFLOW_PORT": str(port), "DEFECTFLOW_MODEL_DIR": tempfile.mkdtemp(prefix="no-bundle-")}
    proc = subprocess.Popen([sys.executable, "-m", "defectflow.serving"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{label}: service did not start") from None
                time.sleep(0.3)
        time.sleep(1.0)
        rss_before = _status_kib(proc.pid, "VmRSS")
        statuses: Counter[str] = Counter()
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            for _ in range(rounds):
                statuses.update(pool.map(lambda _: _upload(port, body, key), range(clients)))
        elapsed = time.perf_counter() - start
        return {"tree": label, "src": str(src), "api_key_sent": key is not None,
                "rss_before_mib": round(rss_before / 1024, 1),
                "peak_rss_mib": round(_status_kib(proc.pid, "VmHWM") / 1024, 1),
                "rss_after_mib": round(_status_kib(proc.pid, "VmRSS") / 1024, 1),
                "statuses": dict(statuses), "seconds": round(elapsed, 1)}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", required=True, metavar="LABEL=SRC",
                        help="a source tree to measure (its src/ folder); repeatable")
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--mb", type=float, default=19.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path,
                        default=Path("bench/results") / f"serving-upload-memory-{platform.node()}.json")
    args = parser.parse_args(argv)
    body = _body(args.mb)
    # Without a key (refused: what may anyone make the process hold?) and with it (an oversized
    # file, refused as file_too_large after parsing: what may a client with the key make it hold?).
    runs = [measure_tree(label, Path(src), args.clients, args.rounds, body, key)
            for key in (None, KEY) for label, _, src in (t.partition("=") for t in args.tree)]
    result = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "hostname": platform.node(),
              "cores": os.cpu_count(), "load_average": load_average(),
              "command": "python -m bench.serving_upload_memory " + " ".join(f"--tree {t}" for t in args.tree),
              "clients": args.clients, "body_mb": args.mb, "rounds": args.rounds, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
