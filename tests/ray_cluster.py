# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""A real multi-node Ray cluster on this host for the tests: a head node and worker nodes, each started with
``ray start --block`` in its own session and temp dir, offering one logical GPU (the CPU backend's worker
slot), stopped by their own process ids."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
# no token authentication (a client would need the head's token file) and no usage reporting
CLUSTER_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """``nodes`` Ray nodes on 127.0.0.1; ``env[i]`` adds to node i's environment (its workers inherit it)."""

    def __init__(self, root: Path, nodes: int = 2, cpus: int = 16, env: dict[int, dict[str, str]] | None = None):
        self.root, self.nodes, self.cpus, self.env = Path(root), nodes, cpus, env or {}
        # Ray's socket paths must stay under 107 bytes: its temp dirs go under a short folder in /tmp
        self.temp = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []

    def start(self, timeout: float = 120.0) -> Cluster:
        for node in range(self.nodes):
            role = ["--head", f"--port={self.port}", "--include-dashboard=false"] if node == 0 else []
            joins = [] if node == 0 else [f"--address={self.address}"]
            folder = self.root / f"node{node}"
            folder.mkdir(parents=True, exist_ok=True)
            command = [
                RAY,
                "start",
                "--block",
                *role,
                *joins,
                "--node-ip-address=127.0.0.1",
                f"--num-cpus={self.cpus}",
                "--num-gpus=1",
                f"--resources={json.dumps({f'test_node_{node}': 1})}",
                f"--temp-dir={self.temp / str(node)}",
                "--disable-usage-stats",
            ]
            env = {**os.environ, **CLUSTER_ENV, **self.env.get(node, {})}
            log = (folder / "ray_start.log").open("w")
            self.processes.append(
                subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            )
            self.wait_for(node + 1, timeout)
        return self

    def alive(self) -> int:
        """The number of alive nodes, asked from a fresh process (this one stays free of Ray)."""
        probe = (
            f"import ray; ray.init(address={self.address!r}, logging_level='ERROR');"
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )
        env = {**os.environ, **CLUSTER_ENV}
        try:
            result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
        except subprocess.TimeoutExpired:  # the head is up but its raylet not registered yet
            return 0
        return int(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 and result.stdout.strip() else 0

    def wait_for(self, nodes: int, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            dead = [p.args for p in self.processes if p.poll() is not None]
            if dead:
                raise RuntimeError(f"a Ray node exited at start-up: {dead}; see {self.root}/node*/ray_start.log")
            if self.alive() >= nodes:
                return
            time.sleep(1.0)
        raise TimeoutError(f"{nodes} Ray nodes not alive after {timeout:.0f} s; see {self.root}/node*/ray_start.log")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to each node's session (its raylet, GCS and workers), SIGKILL when it outlasts ``timeout``."""
        for process in reversed(self.processes):
            _signal(process, signal.SIGTERM)
        deadline = time.time() + timeout
        for process in reversed(self.processes):
            try:
                process.wait(max(deadline - time.time(), 0.1))
            except subprocess.TimeoutExpired:
                _signal(process, signal.SIGKILL)
                process.wait(10)
        for process in self.processes:
            _signal(process, signal.SIGKILL)  # any worker left in the session
        self.processes.clear()
        shutil.rmtree(self.temp, ignore_errors=True)

    def worker_logs(self, node: int) -> list[Path]:
        """The stdout files of node ``node``'s Ray workers (each begins with its actor's class name)."""
        return list((self.temp / str(node)).glob("session_*/logs/worker-*.out"))


def _signal(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


@contextmanager
def cluster(root: Path, **kwargs):
    """A started :class:`Cluster`, stopped on exit whatever happened."""
    running = Cluster(root, **kwargs)
    try:
        yield running.start()
    finally:
        running.stop()
