"""CPU per request of gateway revisions side by side, with HAProxy and the bare Python proxy as references.

    .venv/bin/python -m bench.gateway.versions REV [REV ...] [--rounds 8]   (about 5 s per target a round)

Each REV is a git revision, checked out into a temporary worktree, or `.` for the working tree.
Every revision's gateway, the bare proxy and HAProxy run at once in front of one bench upstream,
all on the server core as in the full benchmark (python -m bench.gateway), and each round sends
each of them wrk at c=32 for 4 s, in another order each round. Printed: the median over the
rounds of CPU per request (/proc, the proxy process), its ratio to HAProxy's median, and
requests/s.

For telling a regression from the machine: between machines the full benchmark's CPU per
request moves by tens of percent, and its ratio to HAProxy's with it, while revisions compared in
one run share the machine. A revision's gateway runs on this venv's packages, so revisions whose
dependencies differ from today's may not start; such a one fails the run as a start timeout (its
output is not kept: start it by hand with `PYTHONPATH=<worktree> python -P -m gateway --config ...`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .__main__ import (
    LOADGEN_CORE,
    ROOT,
    WRK_SCRIPT,
    bench_models,
    cpu_seconds,
    gateway_config,
    start_floor,
    start_gateway,
    start_haproxy,
    start_upstream,
    stop,
    wrk,
)

HAPROXY, FLOOR = "HAProxy", "bare Python proxy"


def checkout(revision: str, directory: Path) -> Path:
    if revision == ".":
        return ROOT
    tree = directory / f"tree-{len(list(directory.glob('tree-*')))}"
    made = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), revision],
                          capture_output=True, text=True)
    if made.returncode:
        raise SystemExit(f"cannot check out {revision!r}: {made.stderr.strip()} (a commit, tag or branch of this repository)")
    return tree


def measure(targets: dict[str, tuple[str, int]], rounds: int, script: Path) -> dict[str, list[dict]]:
    samples: dict[str, list[dict]] = {name: [] for name in targets}
    names = list(targets)
    for number in range(rounds):
        print(f"round {number + 1} of {rounds}...", flush=True)
        # Rotated, and reversed every other round: no target always follows the same neighbour.
        shift = number % len(names)
        order = names[shift:] + names[:shift]
        for name in order if number % 2 == 0 else order[::-1]:
            url, pid = targets[name]
            wrk(url + "/v1/chat/completions", 8, 1, script)  # warm-up
            before = cpu_seconds(pid)
            result = wrk(url + "/v1/chat/completions", 32, 4, script)
            cpu = cpu_seconds(pid) - before
            samples[name].append({"cpu_us": cpu / max(result["requests"], 1) * 1e6, "rps": result["rps"],
                                  "errors": result["errors"]})
    return samples


def table(samples: dict[str, list[dict]]) -> str:
    def median(name: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[name])

    haproxy = median(HAPROXY, "cpu_us")
    rows = ["| | " + " | ".join(samples) + " |", "|---|" + "---:|" * len(samples)]
    rows.append("| CPU per request at c=32, µs (median) | " + " | ".join(f"{median(n, 'cpu_us'):.1f}" for n in samples) + " |")
    rows.append("| ... over HAProxy's | " + " | ".join(f"{median(n, 'cpu_us') / haproxy:.2f}x" for n in samples) + " |")
    rows.append("| requests/s at c=32 (median) | " + " | ".join(f"{median(n, 'rps'):.0f}" for n in samples) + " |")
    rows.append("| errors | " + " | ".join(str(sum(s["errors"] for s in samples[n])) for n in samples) + " |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway.versions", description=__doc__.split("\n", 1)[0])
    parser.add_argument("revisions", nargs="+", help="git revisions; '.' is the working tree")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(LOADGEN_CORE)})
    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        script = directory / "post.lua"
        script.write_text(WRK_SCRIPT)
        trees: dict[str, Path] = {}
        try:
            for revision in dict.fromkeys(args.revisions):
                trees[revision] = checkout(revision, directory)  # recorded at once, so a later failure removes it
            upstream_url, _ = start_upstream(processes)
            targets = {HAPROXY: start_haproxy(directory, upstream_url, processes),
                       FLOOR: start_floor(upstream_url, processes)}
            for revision, tree in trees.items():
                name = "working tree" if revision == "." else f"gateway {revision}"
                targets[name] = start_gateway(gateway_config(directory, bench_models(upstream_url)), processes,
                                              source=tree)
            samples = measure(targets, args.rounds, script)
        finally:
            for process in reversed(processes):
                stop(process)
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    print(table(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
