"""`make gateway`: carbongraph, the metro partner subgraph and Hive Gateway on fixed local ports.

Uses the embedded SQLite databases with demo data. Ctrl-C (or SIGTERM) stops all three.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from carbongraph.demo.seed import demo_tokens

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
CARBONGRAPH_PORT = 8000
METRO_PORT = 4002
GATEWAY_PORT = 4000


def wait_for(url: str, process: subprocess.Popen[bytes], name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{name} did not come up at {url}")


def main() -> int:
    carbongraph = str(VENV_BIN / "carbongraph")
    metro_env = dict(os.environ, PYTHONPATH=str(ROOT / "examples" / "metro_partner"))
    subprocess.run([carbongraph, "migrate"], check=True)
    seed = subprocess.run(
        [carbongraph, "seed", "--demo"], check=True, capture_output=True, text=True
    )
    subprocess.run([sys.executable, "-m", "metro_partner", "seed"], check=True, env=metro_env)
    tokens = [f"{role}={token}" for role, token in demo_tokens(seed.stdout).items()]

    processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def stop(*_: object) -> None:
        for _name, process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _name, process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    try:
        processes.append(
            (
                "carbongraph",
                subprocess.Popen([carbongraph, "serve", "--port", str(CARBONGRAPH_PORT)]),
            )
        )
        wait_for(f"http://127.0.0.1:{CARBONGRAPH_PORT}/healthz", processes[-1][1], "carbongraph")
        processes.append(
            (
                "metro",
                subprocess.Popen(
                    [sys.executable, "-m", "metro_partner", "serve", "--port", str(METRO_PORT)],
                    env=metro_env,
                ),
            )
        )
        wait_for(f"http://127.0.0.1:{METRO_PORT}/healthz", processes[-1][1], "metro partner")
        processes.append(
            (
                "gateway",
                subprocess.Popen(
                    [
                        str(ROOT / "gateway" / "node_modules" / ".bin" / "hive-gateway"),
                        "supergraph",
                        "supergraph.graphql",
                        "-c",
                        "gateway.config.mjs",
                        "--port",
                        str(GATEWAY_PORT),
                        "--host",
                        "127.0.0.1",
                    ],
                    cwd=ROOT / "gateway",
                ),
            )
        )
        wait_for(f"http://127.0.0.1:{GATEWAY_PORT}/healthcheck", processes[-1][1], "gateway")
        print("\nDevelopment tokens (send as 'Authorization: Bearer …'):")
        print("\n".join(tokens))
        print(f"\nsupergraph: http://127.0.0.1:{GATEWAY_PORT}/graphql   (Ctrl-C stops all three)")
        print(
            f"  carbongraph http://127.0.0.1:{CARBONGRAPH_PORT}/graphql, "
            f"metro partner http://127.0.0.1:{METRO_PORT}/graphql\n",
            flush=True,
        )
        while all(p.poll() is None for _, p in processes):
            time.sleep(0.5)
        failed = [name for name, p in processes if p.poll() is not None]
        print(f"{', '.join(failed)} stopped; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    raise SystemExit(main())
