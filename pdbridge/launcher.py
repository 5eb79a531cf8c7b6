"""Starting a worker process (or a model's tool) with its model environment's interpreter."""
from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from pdwire.messages import KEY_ENV

from .config import PROJECT_ROOT, WorkerConfig, project_env


async def spawn_worker(config: WorkerConfig, connect_url: str, key: bytes, identity: str, arrays: Path,
                       device: str = "auto") -> asyncio.subprocess.Process:
    """Start ``python -m <module>`` from the project root; stdout and stderr come back merged.

    The key travels in the environment, not on the command line, where ``ps`` would show it.
    ``arrays`` is the hub's array folder, which the worker reads and writes directly. The worker
    arms Linux's parent-death signal, so it cannot outlive the hub, even a SIGKILLed one.
    """
    env = project_env(**{KEY_ENV: key.decode("ascii"), "PYTHONUNBUFFERED": "1"})
    return await asyncio.create_subprocess_exec(
        str(config.python), "-m", config.module, "--connect", connect_url, "--id", identity,
        "--device", device, "--arrays", str(arrays), "--parent-pid", str(os.getpid()),
        cwd=str(PROJECT_ROOT), env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


def run_module(config: WorkerConfig, module: str, args: list[str], **env: str) -> int:
    """``python -m module args`` with ``config``'s interpreter, in the foreground; its exit code."""
    return subprocess.call([str(config.python), "-m", module, *args], cwd=str(PROJECT_ROOT), env=project_env(**env))


def exec_module(config: WorkerConfig, module: str, args: list[str], **env: str) -> None:
    """Become ``python -m module args`` (no child left behind when this process is killed)."""
    os.chdir(PROJECT_ROOT)
    os.execve(str(config.python), [str(config.python), "-m", module, *args], project_env(**env))


def exit_description(returncode: int) -> str:
    """'exit code 1' or 'killed by SIGKILL' — what a user can search for."""
    if returncode < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
