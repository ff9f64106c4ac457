"""Command line: `python -m gateway --config FILE [--host H] [--port P]` and `python -m gateway keys new NAME`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys

import uvloop
from aiohttp import web

from . import logs
from .app import GatewayApp
from .auth import hash_key, new_key
from .config import ConfigError, load_config, resolve_secrets, split_listen
from .listener import ClientListener, raise_descriptor_limit

log = logging.getLogger("gateway")
# Kept from drain_grace_s for what follows the cut: handlers unwinding, upstream connections closing.
_CLEANUP_S = 0.1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:
        return _keys(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m gateway", description="OpenAI-compatible API-key gateway.",
                                     epilog="To make a client key: python -m gateway keys new NAME")
    parser.add_argument("--config", required=True, help="YAML config file (see gateway/README.md)")
    parser.add_argument("--host", help="listen address, overrides the config's listen:")
    parser.add_argument("--port", type=int, help="listen port, overrides the config's listen:")
    args = parser.parse_args(argv)
    logs.configure()
    try:
        config = load_config(args.config)
        secrets = resolve_secrets(config)
        raise_descriptor_limit(config.client_max_connections)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    host, port = split_listen(config.listen)
    metrics_host, metrics_port = split_listen(config.metrics_listen)
    gateway = GatewayApp(config, secrets)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        try:
            runner.run(serve(gateway, args.host or host, args.port if args.port is not None else port,
                             metrics_host, metrics_port))
        except OSError as exc:
            print(f"cannot listen: {exc.strerror or exc}", file=sys.stderr)
            return 1
    return 0


async def serve(gateway: GatewayApp, host: str, port: int, metrics_host: str, metrics_port: int) -> None:
    config = gateway.config
    # The API port's listener is the gateway's own (gateway/listener.py: connection limit, client
    # timeouts, drain); aiohttp's runner only sets the application up and tears it down.
    runner = web.AppRunner(gateway.make_app(), handle_signals=False, handler_cancellation=True,
                           shutdown_timeout=_CLEANUP_S / 2)
    metrics_runner = web.AppRunner(gateway.make_metrics_app(), access_log=None, handle_signals=False,
                                   shutdown_timeout=_CLEANUP_S / 2)
    await runner.setup()
    await metrics_runner.setup()
    assert runner.server is not None, "set by setup()"
    listener = ClientListener(runner.server, config, gateway.metrics)
    loop = asyncio.get_running_loop()
    try:
        await listener.start(host, port)
        await web.TCPSite(metrics_runner, metrics_host, metrics_port).start()
        log.info("listening on %s:%d (metrics on %s:%d), models: %s", host, port, metrics_host, metrics_port,
                 ", ".join(gateway.pools))
        # Start-up objects live as long as the process: keep them out of every GC pass.
        gc.freeze()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        deadline = loop.time() + config.drain_grace_s - _CLEANUP_S
        gateway.start_drain()
        log.info("draining: /readyz answers 503; still accepting for %.1fs, then until %.1fs after SIGTERM "
                 "for in-flight requests", config.drain_delay_s, config.drain_grace_s)
        # Kubernetes takes a moment to drop this pod from the Service; requests that still
        # arrive meanwhile are served, not refused.
        await asyncio.sleep(config.drain_delay_s)
        await listener.drain(deadline)
    finally:
        await runner.cleanup()
        await metrics_runner.cleanup()
        listener.access_log.flush()
    log.info("drained, exiting")


def _keys(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway keys", description="Client key tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="print a new random key and the config entry holding its hash")
    new.add_argument("name", help="client name for the config entry")
    args = parser.parse_args(argv)
    key = new_key()
    print(key)
    print("# Give the key above to the client (it is not stored anywhere); put this entry under clients:")
    print(f"- name: {args.name}")
    print(f"  key_sha256: {hash_key(key)}")
    print('  models: ["*"]')
    return 0


if __name__ == "__main__":
    sys.exit(main())
