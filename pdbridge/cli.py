"""The ``pdbridge`` command: serve, open, worker, doctor, demo."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Optional

from .config import STATE_DIR, load_config
from .hub import DEFAULT_PD_PORT, Hub
from .launcher import run_module


def runtime_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "pdbridge" if runtime else STATE_DIR


def cmd_serve(args: argparse.Namespace) -> int:
    async def main() -> None:
        hub = Hub(pd_host=args.host, pd_port=args.port, worker_bind=args.worker_bind)
        await hub.start()
        conn = Path(args.connection_file) if args.connection_file else runtime_dir() / f"hub-{hub.pd_port}.json"
        hub.write_connection_file(conn)
        print(f"pdbridge hub: Pd port {hub.pd_port}; workers connect to {hub.worker_url}", flush=True)
        print(f"connection file (for `pdbridge worker MODEL --connection-file`): {conn}", flush=True)
        print(f"worker logs: {hub.log_dir}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await hub.stop()
        conn.unlink(missing_ok=True)

    asyncio.run(main())
    return 0


def cmd_open(args: argparse.Namespace) -> int:
    from .pd import find_pd, pd_command

    pd = find_pd()
    if pd is None:
        print("pdbridge: Pure Data not found: install it (Debian/Ubuntu: sudo apt install puredata) "
              "or set PDBRIDGE_PD", file=sys.stderr)
        return 2
    patch = Path(args.patch).resolve()
    if not patch.exists():
        print(f"pdbridge: no such patch: {patch}", file=sys.stderr)
        return 2

    async def main() -> int:
        hub = Hub(pd_port=args.port)
        try:
            await hub.start()
        except OSError:  # the default port is taken (another hub): use any free port
            hub = Hub(pd_port=0)
            await hub.start()
        try:
            proc = await asyncio.create_subprocess_exec(
                *pd_command(pd, patch, hub.pd_port, headless=args.headless, extra=args.pd_args))
            return await proc.wait()
        finally:
            await hub.stop()

    return asyncio.run(main())


def run_in_model_env(model: str, module: str, args: list[str], **env: str) -> int:
    """Run ``python -m module args`` with the interpreter of ``model``'s environment."""
    config = load_config().worker(model)
    reason = config.missing_reason()
    if reason:
        print(f"pdbridge: {reason}", file=sys.stderr)
        return 2
    return run_module(config, module, args, **env)


def cmd_worker(args: argparse.Namespace) -> int:
    worker_args = ["--connect", args.connect, "--device", args.device]
    if args.connection_file:
        worker_args += ["--key-file", str(Path(args.connection_file).resolve())]
    key = {"PDBRIDGE_KEY": args.key} if args.key and not args.connection_file else {}
    return run_in_model_env(args.model, load_config().worker(args.model).module, worker_args, **key)


def cmd_ganspace(args: argparse.Namespace) -> int:
    """GANSpaceSynth's PCA lives with the GANSynth worker, in the TensorFlow environment."""
    rest = [str(Path(a).resolve()) if Path(a).exists() else a for a in args.ganspace_args]
    return run_in_model_env("gansynth", "workers.gansynth.ganspace", rest)


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run_doctor

    return run_doctor()


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pdbridge", description="Generative audio models as Pure Data objects.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log hub activity to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the hub in the foreground")
    p.add_argument("--port", type=int, default=DEFAULT_PD_PORT, help=f"TCP port for Pd (default {DEFAULT_PD_PORT})")
    p.add_argument("--host", default="127.0.0.1", help="address for Pd connections (default 127.0.0.1)")
    p.add_argument("--worker-bind", default="tcp://127.0.0.1:*",
                   help="ZeroMQ address workers connect to; tcp://0.0.0.0:5555 lets other machines' workers in")
    p.add_argument("--connection-file", help="where to write the key and ports for remote workers")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("open", help="start the hub, open a patch in Pd, stop the hub when Pd exits")
    p.add_argument("patch")
    p.add_argument("--port", type=int, default=DEFAULT_PD_PORT)
    p.add_argument("--headless", action="store_true", help="no GUI, no audio (for scripts and tests)")
    p.add_argument("pd_args", nargs=argparse.REMAINDER, help="further Pd flags, after --")
    p.set_defaults(func=cmd_open)

    p = sub.add_parser("worker", help="run a model worker by hand, e.g. on a GPU server, and connect it to a hub")
    p.add_argument("model")
    p.add_argument("--connect", required=True, help="the hub's worker address, e.g. tcp://studio-pc:5555")
    p.add_argument("--connection-file", help="the hub's connection file (holds the key)")
    p.add_argument("--key", help="the hub's key (hex), if you have no connection file")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("ganspace", help="GANSpaceSynth PCA for a GANSynth checkpoint (compute | convert | info)",
                       add_help=False)
    p.add_argument("ganspace_args", nargs=argparse.REMAINDER, help="see `pdbridge ganspace --help`")
    p.set_defaults(func=cmd_ganspace)

    p = sub.add_parser("doctor", help="check Pd, the environments, the workers and the GPU")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("demo", help="render a short sound from every installed model through real Pd")
    p.add_argument("--out", default="demo-output", help="folder for the WAV files (default ./demo-output)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ganspace"]:  # everything after it, --help included, belongs to the ganspace tool
        return cmd_ganspace(argparse.Namespace(ganspace_args=argv[1:]))
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="pdbridge %(levelname)s %(message)s")
    if getattr(args, "pd_args", None) and args.pd_args[0] == "--":
        args.pd_args = args.pd_args[1:]
    return int(args.func(args) or 0)
