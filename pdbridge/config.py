"""Which interpreter runs which worker: environment/workers.toml plus the user's overrides."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pdwire.jobs import state_dir

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "environment" / "workers.toml"
ENVS_DIR = Path(os.environ.get("PDBRIDGE_ENVS", PROJECT_ROOT / ".cache" / "envs"))
STATE_DIR = state_dir()
"""Worker logs, jobs, and hub connection files (when there is no $XDG_RUNTIME_DIR)."""
USER_CONFIG = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "pdbridge" / "workers.toml"


def project_env(**extra: str) -> dict[str, str]:
    """This process's environment, plus ``extra``, with the project importable from any interpreter
    (workers and tools run from the checkout, in environments that do not install it)."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    return env


@dataclass(frozen=True)
class WorkerConfig:
    model: str
    env: str
    python: Path
    module: str
    make_target: str

    def missing_reason(self) -> Optional[str]:
        """Why this worker cannot start (its interpreter is absent), with the fix; None if it can."""
        if self.python.exists():
            return None
        return (f"the {self.env} environment for {self.model} is not installed ({self.python} missing): "
                f"run `make {self.make_target}` in {PROJECT_ROOT}")


@dataclass
class Config:
    workers: dict[str, WorkerConfig]
    envs: dict[str, dict[str, Any]]

    def worker(self, model: str) -> WorkerConfig:
        try:
            return self.workers[model]
        except KeyError:
            raise KeyError(f"unknown model '{model}' (known: {', '.join(sorted(self.workers))})") from None


def load_config(path: Optional[Path] = None) -> Config:
    """Read the project's config, then the user's file, which overrides key by key."""
    data: dict[str, Any] = {}
    extra = path or (Path(os.environ["PDBRIDGE_CONFIG"]) if os.environ.get("PDBRIDGE_CONFIG") else USER_CONFIG)
    for file in (DEFAULT_CONFIG, extra):
        if file.exists():
            with open(file, "rb") as f:
                _merge(data, tomllib.load(f))
    envs = data.get("envs", {})
    workers = {}
    for model, spec in data.get("workers", {}).items():
        env_name = spec["env"]
        default = ENVS_DIR / env_name / "bin" / "python"
        python = Path(os.path.expanduser(envs.get(env_name, {}).get("python", str(default))))
        workers[model] = WorkerConfig(model, env_name, python if python.is_absolute() else PROJECT_ROOT / python,
                                      spec["module"], f"env-{env_name}")
    return Config(workers, envs)


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
