"""The services' own code, run on a pod's environment: their settings (Settings.from_env
exactly as the image's entrypoint would call it), the BOURSE_* variables their settings
classes read, and the facts of their code the manifests must fit.
"""

from __future__ import annotations

import ast
import functools
import importlib
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from infra.k8s import entrypoint

MAX_NODE_ID = 511  # services/order/config.py: BOURSE_NODE_ID 0-511
DRAIN_MARGIN_S = 5  # beyond 2 x BOURSE_DRAIN_MS (services/common/server.py) before SIGKILL


@contextmanager
def environment(env: dict[str, str]):
    """os.environ is exactly `env` (nothing inherited from the test process)."""
    with mock.patch.dict("os.environ", env, clear=True):
        yield


# Each service's config module, its settings (from_env) and its settings class (BOURSE_*).
_CONFIG = {
    "order": ("services.order.config", "OrderSettings", "OrderEnv"),
    "matching": ("services.matching.config", "MatchingSettings", "MatchingEnv"),
    "persistence": ("services.persistence.config", "Settings", "PersistenceEnv"),
}


def _config(service: str, which: int):
    """The service's settings (which=1) or settings class (which=2); persistence's for any other."""
    entry = _CONFIG.get(service, _CONFIG["persistence"])
    return getattr(importlib.import_module(entry[0]), entry[which])


def service_settings(service: str, env: dict[str, str]):
    """The service's settings, computed by its own code from `env`."""
    with environment(entrypoint.service_env(service, env)):
        return _config(service, 1).from_env()


def service_variables(service: str) -> dict[str, bool]:
    """The BOURSE_* variables the service's settings class reads -> whether it has a default."""
    return _config(service, 2).variables()


def settings_variables() -> set[str]:
    """Every BOURSE_* variable some service's settings class reads."""
    from services.common.settings import every_settings_class

    return {variable for cls in every_settings_class() for variable in cls.variables()}


# Direct reads outside the settings classes (os.environ.get("BOURSE_X", default), ...).
READERS = {"get", "getenv"}


def env_reads(paths: list[Path]) -> dict[str, bool]:
    """BOURSE_* variables the modules read directly -> whether the code gives a default."""
    reads: dict[str, bool] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            first = node.args[0]
            if func in READERS and isinstance(first, ast.Constant) and str(first.value).startswith("BOURSE_"):
                default = node.args[1] if len(node.args) > 1 else None
                has_default = default is not None and not (isinstance(default, ast.Constant) and default.value in ("", None))
                reads[first.value] = reads.get(first.value, False) or has_default
    return reads


def read_anywhere(variable: str) -> bool:
    return variable in settings_variables() or variable in _service_sources()


@functools.cache
def _service_sources() -> str:
    import services

    root = Path(services.__file__).parent
    return "\n".join(path.read_text() for path in sorted(root.rglob("*.py")) if "tests" not in path.parts)


def shard_map_of(env):
    from services.common.config import ShardMap

    with environment(env):
        return ShardMap.from_env()


def listed_symbols(env):
    from services.common.config import symbols_from_env

    with environment(env):
        return symbols_from_env()
