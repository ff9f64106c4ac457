"""Prefix-affinity against least-outstanding routing, through the gateway, in front of 2 and 3 vLLM CPU replicas.

    .venv/bin/python -m bench.routing [--profile chat|documents|uniform|both] [--concurrency 8] [--rounds 2]
                                      [--load-factor 1.25]
                                      [--kv-blocks N]
                                      (both: chat and documents, about 25 minutes here; one: about 13)

Needs the vLLM venv (VLLM_VENV, default .venv-vllm; `make vllm-venv`). Holds /tmp/vllm.lock
(flock) while its vLLM servers run, so it waits for other vLLM runs on the machine. Three
replicas start once; every arm empties their prefix caches first (POST /reset_prefix_cache), so no
arm inherits another's cache. The arms: `single` (one replica: the hit-ratio upper bound), then
for 2 and 3 replicas prefix affinity and least outstanding, alternating which goes first from
round to round. By default every replica's cache holds the whole workload many times over; with
`--kv-blocks N` each holds N blocks, less than the workload, as a GPU serving many conversations
does, and the bounds are replicas of their own with the cache of 2 and 3 together
(`single-2`, `single-3`). Each arm replays the same requests of a profile (bench/routing/workload.py).
Prints markdown tables (docs/performance.md keeps them) and the issue's targets.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gateway.config import HealthSettings, ModelSettings
from gateway.metrics import Metrics
from gateway.upstreams import UpstreamPool

from . import workload
from .replicas import BLOCK_TOKENS, KV_CACHE_GIB, Replica
from .replicas import KEY as VLLM_KEY

ROOT = Path(__file__).resolve().parents[2]
LOCK = "/tmp/vllm.lock"
CLIENT_KEY = "sk-bench-routing-client"
REPLICAS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def arms(rounds: int, bounded_cache: bool = False) -> list[tuple[str, int]]:
    """(gateway model, replicas), affinity and least outstanding alternating which runs first.

    The bound is one replica that sees every request. With every cache far larger than the
    workload that is one replica of the same kind (`single`); with caches smaller than the
    workload it is one replica with the cache of all n together (`single-n`).
    """
    order = [("single-2", 1), ("single-3", 1)] if bounded_cache else [("single", 1)]
    for round_ in range(rounds):
        for count in (2, 3):
            pair = [(f"affinity-{count}", count), (f"least-{count}", count)]
            order += pair if round_ % 2 == 0 else pair[::-1]
    return order


def gateway_config(replicas: list[Replica], bounds: dict[str, Replica], port: int, metrics_port: int,
                   load_factor: float) -> dict:
    urls = [r.url for r in replicas]

    def model(count: int, routing: str, upstreams: list[str] | None = None) -> dict:
        return {"upstreams": upstreams or urls[:count], "upstream_key_env": "BENCH_VLLM_KEY", "routing": routing,
                "routing_load_factor": load_factor}

    return {
        "listen": f"127.0.0.1:{port}", "metrics_listen": f"127.0.0.1:{metrics_port}",
        "models": {"single": model(1, "prefix_affinity"),
                   **{name: model(1, "prefix_affinity", [bound.url]) for name, bound in bounds.items()},
                   **{f"affinity-{n}": model(n, "prefix_affinity") for n in (2, 3)},
                   **{f"least-{n}": model(n, "least_outstanding") for n in (2, 3)}},
        "clients": [{"name": "bench", "key_sha256": hashlib.sha256(CLIENT_KEY.encode()).hexdigest()}],
        "upstream_read_timeout_s": 600,
    }


def start_gateway(config: dict, workdir: Path) -> subprocess.Popen:
    path = workdir / "gateway.json"
    path.write_text(json.dumps(config))
    log = (workdir / "gateway.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "--config", str(path)], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "BENCH_VLLM_KEY": VLLM_KEY})
    ready = f"http://{config['listen']}/readyz"
    for _ in range(100):
        try:
            urllib.request.urlopen(ready, timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the gateway did not become ready; see {workdir / 'gateway.log'}")


def decisions(metrics_url: str) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(metrics_url, timeout=5) as reply:
        text = reply.read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("gateway_routing_decisions_total{"):
            labels, value = line[len("gateway_routing_decisions_total{"):].split("} ")
            parts = dict(part.split("=", 1) for part in labels.split(","))
            found[(parts["model"].strip('"'), parts["decision"].strip('"'))] = float(value)
    return found


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run_arm(name: str, count: int, replicas: list[Replica], bounds: dict[str, Replica], workdir: Path, scripts: list,
            concurrency: int, load_factor: float) -> dict:
    """One arm on empty caches: vLLM's prefix caches reset, and a gateway of its own (an empty routing index)."""
    for replica in [*replicas, *bounds.values()]:
        replica.reset_prefix_cache()
    port, metrics_port = free_port(), free_port()
    gateway = start_gateway(gateway_config(replicas, bounds, port, metrics_port, load_factor), workdir)
    serving = [bounds[name]] if name in bounds else replicas
    try:
        return _measure(name, count, serving, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics",
                        scripts, concurrency)
    finally:
        gateway.terminate()
        gateway.wait()


def _measure(name: str, count: int, replicas: list[Replica], base_url: str, metrics_url: str,
             scripts: list, concurrency: int) -> dict:
    before = [r.counters() for r in replicas[:count]]
    decided_before = decisions(metrics_url)
    result = asyncio.run(workload.run(base_url, CLIENT_KEY, name, scripts, concurrency))
    time.sleep(1.5)  # vLLM's metrics are published by its engine a moment after the replies
    after = [r.counters() for r in replicas[:count]]

    def delta(metric: str) -> list[float]:
        return [a.get(metric, 0) - b.get(metric, 0) for a, b in zip(after, before, strict=True)]

    hits, queries = delta("vllm:prefix_cache_hits_total"), delta("vllm:prefix_cache_queries_total")
    served = delta("vllm:request_success_total")
    decided = decisions(metrics_url)
    return {
        "arm": name, "replicas": count, "requests": len(result.bodies), "failures": result.failures,
        "duration_s": result.duration_s, "hit_ratio": sum(hits) / max(sum(queries), 1),
        "hits": sum(hits), "queries": sum(queries), "served": served,
        "ttft_p50_ms": 1000 * percentile(result.ttft_s, 0.5), "ttft_p99_ms": 1000 * percentile(result.ttft_s, 0.99),
        "ttft_s": result.ttft_s,
        "decisions": {d: decided.get((name, d), 0) - decided_before.get((name, d), 0)
                      for d in ("affinity", "hash", "bounded_load", "least_outstanding")},
        "bodies": result.bodies,
    }


def routing_cost(bodies: list[dict]) -> dict[str, float]:
    """The gateway's routing work per request (key + choice), replayed in this process on the arm's own bodies."""
    pool = UpstreamPool("bench", ModelSettings(upstreams=[f"http://10.0.0.{i}:8000" for i in range(1, 4)]),
                        HealthSettings(), Metrics())
    path = "/v1/chat/completions"
    costs, parse = [], []
    for body in bodies:
        raw = json.dumps(body).encode()
        costs.append(min(timeit.repeat(lambda body=body: pool.pick(set(), pool.prefix_key(path, body)),
                                       number=20, repeat=3)) / 20)
        parse.append(min(timeit.repeat(lambda raw=raw: json.loads(raw), number=20, repeat=3)) / 20)
    return {"mean_us": 1e6 * statistics.fmean(costs), "p99_us": 1e6 * percentile(costs, 0.99),
            "max_us": 1e6 * max(costs), "json_mean_us": 1e6 * statistics.fmean(parse),
            "body_kb_max": max(len(json.dumps(b)) for b in bodies) / 1024}


def table(results: list[dict]) -> str:
    lines = ["| arm | replicas | requests | hit ratio | hits / queried tokens | TTFT p50 | TTFT p99 | "
             "requests per replica (max / mean) | decisions: affinity / hash / bounded load / other | wall |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        served = r["served"]
        spread = max(served) / statistics.fmean(served) if sum(served) else 0
        d = r["decisions"]
        lines.append(
            f"| {r['arm']} | {r['replicas']} | {r['requests']}{' (' + str(r['failures']) + ' failed)' if r['failures'] else ''} "
            f"| {100 * r['hit_ratio']:.1f}% | {r['hits']:.0f} / {r['queries']:.0f} "
            f"| {r['ttft_p50_ms']:.0f} ms | {r['ttft_p99_ms']:.0f} ms "
            f"| {' / '.join(f'{s:.0f}' for s in served)} ({spread:.2f}x) "
            f"| {d['affinity']:.0f} / {d['hash']:.0f} / {d['bounded_load']:.0f} / {d['least_outstanding']:.0f} "
            f"| {r['duration_s']:.0f} s |")
    return "\n".join(lines)


def pooled(results: list[dict], arm: str) -> dict:
    runs = [r for r in results if r["arm"] == arm]
    ttft = [t for r in runs for t in r["ttft_s"]]
    hits, queries = sum(r["hits"] for r in runs), sum(r["queries"] for r in runs)
    served = [sum(column) for column in zip(*(r["served"] for r in runs), strict=True)]
    return {"hit_ratio": hits / max(queries, 1), "p50": 1000 * percentile(ttft, 0.5), "p99": 1000 * percentile(ttft, 0.99),
            "spread": max(served) / statistics.fmean(served)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--load-factor", type=float, default=1.25, help="routing_load_factor of the affinity arms")
    parser.add_argument("--kv-blocks", type=int, default=None,
                        help=f"each replica's KV cache in blocks of {BLOCK_TOKENS} tokens, smaller than the workload "
                             f"(default: {KV_CACHE_GIB} GiB, far more); the bounds get n times as many")
    parser.add_argument("--arms", nargs="+", choices=[name for name, _ in arms(1) + arms(1, True)], default=None,
                        help="run only these arms (the report then compares only what ran)")
    parser.add_argument("--profile", choices=[*workload.PROFILES, "both"], default="both",
                        help="workload (bench/routing/workload.py: PROFILES); both: chat and documents, one after "
                             "the other, same replicas")
    args = parser.parse_args()
    python = (Path(os.environ.get("VLLM_VENV", ROOT / ".venv-vllm")) / "bin" / "python").absolute()
    if not python.exists():
        sys.exit(f"no vLLM venv at {python.parent.parent}: set VLLM_VENV or run make vllm-venv")
    profiles = list(workload.HIT_RATIO_PROFILES) if args.profile == "both" else [args.profile]
    workdir = Path(tempfile.mkdtemp(prefix="bench-routing-"))
    model_dir = workdir / "model"
    subprocess.run([str(python), str(ROOT / "bench" / "routing" / "model.py"), str(model_dir)], check=True)

    with open(LOCK, "w") as lock:
        print(f"waiting for {LOCK} ...", file=sys.stderr, flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = time.monotonic()
        blocks = args.kv_blocks
        replicas = [Replica(python, model_dir, workdir / f"vllm-{i}", free_port(), blocks) for i in range(REPLICAS)]
        bounds = {} if blocks is None else {
            f"single-{n}": Replica(python, model_dir, workdir / f"vllm-single-{n}", free_port(), n * blocks) for n in (2, 3)}
        everything = [*replicas, *bounds.values()]
        try:
            with ThreadPoolExecutor(len(everything)) as pool:
                list(pool.map(Replica.wait_ready, everything))
            print(f"{len(everything)} replicas ready after {time.monotonic() - started:.0f} s (logs under {workdir})",
                  file=sys.stderr, flush=True)
            # Warm-up, not measured: each replica's first requests are slow (allocation, first kernels).
            warm_up = workload.PROFILES[profiles[0]].scripts()[:6]
            run_arm("least-3", REPLICAS, replicas, bounds, workdir, warm_up, REPLICAS, args.load_factor)
            for name in bounds:
                run_arm(name, 1, replicas, bounds, workdir, warm_up[:2], 2, args.load_factor)
            results: dict[str, list[dict]] = {}
            for profile in profiles:
                scripts = workload.PROFILES[profile].scripts()
                results[profile] = []
                for name, count in arms(args.rounds, blocks is not None):
                    if args.arms is not None and name not in args.arms:
                        continue
                    r = run_arm(name, count, replicas, bounds, workdir, scripts, args.concurrency, args.load_factor)
                    results[profile].append(r)
                    print(f"{profile} {name}: hit ratio {100 * r['hit_ratio']:.1f}%, TTFT p50 {r['ttft_p50_ms']:.0f} ms, "
                          f"served {r['served']}, {r['duration_s']:.0f} s", file=sys.stderr, flush=True)
        finally:
            for replica in everything:
                replica.stop()
        elapsed = time.monotonic() - started

    cache = (f"VLLM_CPU_KVCACHE_SPACE={KV_CACHE_GIB} GiB per replica" if blocks is None else
             f"{blocks} KV blocks ({blocks * BLOCK_TOKENS:,} tokens) per replica, the bounds n times as many")
    print(f"\nconcurrency {args.concurrency}, {args.rounds} rounds, load factor {args.load_factor}, {cache}, "
          f"vLLM time {elapsed:.0f} s")
    for profile, runs in results.items():
        report(profile, runs)


def report(profile: str, results: list[dict]) -> None:
    bodies = next(r for r in results if r["arm"].startswith("affinity"))["bodies"]
    print(f"\n### {profile}: {workload.PROFILES[profile]}, {len(bodies)} requests an arm\n")
    print(table(results))
    ran = {r["arm"] for r in results}

    def bound_of(count: int) -> str:
        return "single" if "single" in ran else f"single-{count}"

    if not {bound_of(2), bound_of(3), "affinity-2", "least-2", "affinity-3", "least-3"} <= ran:
        print("\n(not every arm ran: no comparison)")
    else:
        print("\n| replicas | hit ratio affinity / least outstanding / single bound | affinity vs bound | affinity vs least "
              "| TTFT p50 affinity / least | TTFT p99 affinity / least | max share affinity |")
        print("|---|---|---|---|---|---|---|")
        for count in (2, 3):
            a, lo = pooled(results, f"affinity-{count}"), pooled(results, f"least-{count}")
            bound = pooled(results, bound_of(count))["hit_ratio"]
            print(f"| {count} | {100 * a['hit_ratio']:.1f}% / {100 * lo['hit_ratio']:.1f}% / {100 * bound:.1f}% "
                  f"| {a['hit_ratio'] / bound:.2f} (target >= 0.90) "
                  f"| {a['hit_ratio'] / max(lo['hit_ratio'], 1e-9):.2f}x (>= 1.5x) "
                  f"| {a['p50']:.0f} / {lo['p50']:.0f} ms (lower) | {a['p99']:.0f} / {lo['p99']:.0f} ms "
                  f"| {a['spread']:.2f}x mean (<= 1.25x) |")
    cost = routing_cost(bodies)
    print(f"\nrouting cost per request (key + choice over 3 addresses, replayed in this process on the arm's "
          f"{len(bodies)} bodies, largest {cost['body_kb_max']:.1f} KiB): mean {cost['mean_us']:.1f} us, "
          f"p99 {cost['p99_us']:.1f} us, max {cost['max_us']:.1f} us; json.loads of the same bodies: "
          f"mean {cost['json_mean_us']:.1f} us")

if __name__ == "__main__":
    main()
