"""The ``pdbridge`` command: serve, open, worker, jobs, train, models, autostart, doctor, demo, ganspace."""
from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import logging.handlers
import os
import signal
import sys
from pathlib import Path
from typing import Optional

from pdwire.jobs import JobError, JobFolder, jobs_root, list_jobs

from .config import PROJECT_ROOT, load_config, project_env
from .hub import Hub, default_connection_dir
from .launcher import exec_module, run_module
from .ticket import DEFAULT_PD_PORT


def _hub_log(hub: Hub) -> None:
    """The hub's own warnings also go to ``hub.log`` beside the worker logs (rotated, kept)."""
    handler = logging.handlers.RotatingFileHandler(hub.log_dir / "hub.log", maxBytes=2 * 2**20, backupCount=2)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.WARNING)
    logging.getLogger("pdbridge").addHandler(handler)


def cmd_serve(args: argparse.Namespace) -> int:
    async def main() -> None:
        hub = Hub(pd_host=args.host, pd_port=args.port, worker_bind=args.worker_bind)
        await hub.start()
        _hub_log(hub)
        conn = Path(args.connection_file) if args.connection_file else default_connection_dir() / f"hub-{hub.pd_port}.json"
        hub.write_connection_file(conn)
        print(f"pdbridge hub: Pd port {hub.pd_port}; workers connect to {hub.worker_url or hub.local_worker_url}",
              flush=True)
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
        except OSError:  # the port is taken (another hub): use any free port
            await hub.stop()
            hub = Hub(pd_port=0)
            await hub.start()
        _hub_log(hub)
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
    """Become the model's worker process (exec: killing this command leaves nothing running)."""
    config = load_config().worker(args.model)
    reason = config.missing_reason()
    if reason:
        print(f"pdbridge: {reason}", file=sys.stderr)
        return 2
    worker_args = ["--device", args.device]
    if args.connect:
        worker_args += ["--connect", args.connect]
    if args.connection_file:
        worker_args += ["--connection-file", str(Path(args.connection_file).resolve())]
    key = {"PDBRIDGE_KEY": args.key} if args.key and not args.connection_file else {}
    exec_module(config, config.module, worker_args, **key)
    return 0  # pragma: no cover (exec does not return)


def cmd_jobs(args: argparse.Namespace) -> int:
    root = jobs_root()
    if args.action == "list":
        jobs = list_jobs(root)
        if not jobs:
            print(f"no jobs in {root}")
        for job in jobs:
            spec, status = job.spec(), job.status()
            when = datetime.datetime.fromtimestamp(spec.get("created", 0)).strftime("%Y-%m-%d %H:%M")
            text = status.get("error") if status.get("state") == "failed" else status.get("text", "")
            print(f"{job.id:44s} {status.get('state', '?'):9s} {100 * float(status.get('fraction', 0)):5.1f}%  "
                  f"{when}  {text}")
        return 0
    if not args.job:
        print(f"pdbridge jobs {args.action}: which job? (pdbridge jobs lists them)", file=sys.stderr)
        return 2
    try:
        job = JobFolder.find(root, args.job)
    except JobError as exc:
        print(f"pdbridge: {exc}", file=sys.stderr)
        return 2
    if args.action == "show":
        status = job.status()
        print(f"job {job.id}: {status.get('state')} {100 * float(status.get('fraction', 0)):.1f}% "
              f"{status.get('error') or status.get('text', '')}\nfolder {job.path}\noutput {job.output}")
        if job.log_path.exists():
            print("--- log (last lines) ---")
            print("\n".join(job.log_path.read_text(errors="replace").splitlines()[-20:]))
        return 0
    if args.action == "stop":
        if not job.stop():
            print(f"pdbridge: job {job.id} is not running ({job.status().get('state')})", file=sys.stderr)
            return 1
        print(f"stopping {job.id}")
        return 0
    config = load_config().worker(job.spec().get("model", ""))
    try:
        job.launch(str(config.python), project_env(), PROJECT_ROOT, resume=True)
    except JobError as exc:
        print(f"pdbridge: {exc}", file=sys.stderr)
        return 1
    print(f"resumed {job.id}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``pdbridge train <model> ...``: the model's own trainer (``workers.<model>.train``) in its
    environment; it makes a job, so ``pdbridge jobs`` lists, stops and resumes it."""
    if not args.train_args or args.train_args[0].startswith("-"):
        print("usage: pdbridge train MODEL ARGS... (e.g. pdbridge train caw clip.wav my_model --preset quick); "
              "pdbridge train MODEL --help lists a model's options", file=sys.stderr)
        return 2
    model, rest = args.train_args[0], args.train_args[1:]
    if not (PROJECT_ROOT / "workers" / model / "train.py").exists():
        print(f"pdbridge: {model} cannot be trained from the command line (no workers/{model}/train.py)",
              file=sys.stderr)
        return 2
    # the trainer runs from the checkout: it resolves relative paths from the caller's folder
    return run_in_model_env(model, f"workers.{model}.train", rest, PDBRIDGE_CWD=os.getcwd())


def cmd_ganspace(args: argparse.Namespace) -> int:
    """GANSpaceSynth's PCA lives with the GANSynth worker, in the TensorFlow environment."""
    rest = [str(Path(a).resolve()) if Path(a).exists() else a for a in args.ganspace_args]
    return run_in_model_env("gansynth", "workers.gansynth.ganspace", rest)


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run_doctor

    return run_doctor()


def cmd_models(args: argparse.Namespace) -> int:
    """Official checkpoints: what is installed and fetchable, fetch (resumable, checked), remove."""
    from .models import run

    return run(args.action, args.names, force=args.force)


def cmd_autostart(args: argparse.Namespace) -> int:
    """What the Pd GUI plugin runs when Pd's GUI starts: keep a hub running while that GUI runs."""
    from .autostart import run_autostart

    return run_autostart(args.port, args.gui_pid)


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
    p.add_argument("--worker-bind", default=None,
                   help="a ZeroMQ address for workers on other machines, e.g. tcp://0.0.0.0:5555 (encrypted; "
                        "workers need the connection file); without it only this machine's workers connect")
    p.add_argument("--connection-file", help="where to write the key and addresses for `pdbridge worker`")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("open", help="start the hub, open a patch in Pd, stop the hub when Pd exits",
                       usage="pdbridge open PATCH [--port N] [--headless] [-- PD FLAGS...]")
    p.add_argument("patch")
    p.add_argument("--port", type=int, default=DEFAULT_PD_PORT)
    p.add_argument("--headless", action="store_true", help="no GUI, no audio (for scripts and tests)")
    p.set_defaults(func=cmd_open, pd_args=[])

    p = sub.add_parser("worker", help="run a model worker by hand, e.g. on a GPU server, and connect it to a hub")
    p.add_argument("model")
    p.add_argument("--connection-file", help="the hub's connection file (key, addresses, encryption keys)")
    p.add_argument("--connect", help="the hub's worker address, if not the one in the connection file")
    p.add_argument("--key", help="the hub's key (hex), if you have no connection file")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("jobs", help="list jobs (training), show one, stop or resume one")
    p.add_argument("action", nargs="?", default="list", choices=("list", "show", "stop", "resume"))
    p.add_argument("job", nargs="?", help="a job id (or its folder, or the folder it writes)")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("train", help="train a model from a shell (e.g. on a GPU server); a job pdbridge jobs shows",
                       add_help=False, usage="pdbridge train MODEL ARGS... (pdbridge train MODEL --help)")
    p.add_argument("train_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("ganspace", help="GANSpaceSynth PCA for a GANSynth checkpoint (compute | convert | info)",
                       add_help=False)
    p.add_argument("ganspace_args", nargs=argparse.REMAINDER, help="see `pdbridge ganspace --help`")
    p.set_defaults(func=cmd_ganspace)

    p = sub.add_parser("models", help="official checkpoints: list, fetch NAME (objects then load NAME), remove NAME")
    p.add_argument("action", nargs="?", default="list", choices=("list", "fetch", "remove"))
    p.add_argument("names", nargs="*", help="short names, as `pdbridge models list` shows them")
    p.add_argument("--force", action="store_true", help="fetch again even if installed")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("autostart", help="keep a hub running while a Pd GUI runs (the installer's Pd plugin "
                                         "runs this)")
    p.add_argument("--gui-pid", type=int, required=True, help="the Pd GUI process to follow")
    p.add_argument("--port", type=int, default=DEFAULT_PD_PORT)
    p.set_defaults(func=cmd_autostart)

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
    if argv[:1] == ["train"]:  # likewise the model's trainer
        return cmd_train(argparse.Namespace(train_args=argv[1:]))
    pd_args: list[str] = []
    if argv[:1] == ["open"] and "--" in argv:  # Pd's own flags come after --
        cut = argv.index("--")
        argv, pd_args = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    if pd_args:
        args.pd_args = pd_args
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="pdbridge %(levelname)s %(message)s")
    return int(args.func(args) or 0)
