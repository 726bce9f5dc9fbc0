"""The SDK as a consumer gets it: `pip install ./sdk` and the wheel Bazel builds, each in a
fresh virtualenv (offline, from the lock's wheels that `make setup` downloaded), then
the guide (sdk/README.md) run as it is, block after block, against a real exchange over
TLS, with nothing of this repository on the path."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.local.stack import Stack

pytestmark = pytest.mark.timeout(600)
SDK = Path(__file__).absolute().parents[1]  # in the runfiles: the files the BUILD names
WHEEL = SDK / "bourse_client-0.1.0-py3-none-any.whl"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(order_replicas=1, tls_dir=str(tmp_path_factory.mktemp("tls"))) as running:
        yield running


def fresh_venv(where: Path, *install: str) -> Path:
    """A virtualenv made by the base interpreter (not this one, not its packages) with
    `install` pip-installed from the wheelhouse only; returns its python."""
    subprocess.run([sys._base_executable, "-m", "venv", str(where)], check=True, capture_output=True)
    python = where / "bin" / "python"
    wheelhouse = os.environ["SDK_WHEELHOUSE"]
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-cache-dir",
                           "--no-index", "--find-links", wheelhouse, *install],
                          capture_output=True, text=True, env=consumer_env())
    assert done.returncode == 0, done.stdout + done.stderr
    return python


def consumer_env(**extra: str) -> dict[str, str]:
    """The environment of a consumer's process: this test's, without its Python path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "RUNFILES", "BAZEL"))}
    return {**env, **extra}


def run(python: Path, script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    path = cwd / "script.py"
    path.write_text(script)
    return subprocess.run([str(python), str(path)], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=consumer_env(**env))


def test_pip_install_of_the_source_tree_runs_the_guide(stack, tmp_path):
    source = tmp_path / "sdk"  # what a clone has under sdk/, without the tests
    shutil.copytree(SDK, source, ignore=shutil.ignore_patterns("tests", "generated", "*.whl", "*.runfiles*"))
    python = fresh_venv(tmp_path / "venv", str(source))
    guide = "\n".join(BLOCK.findall((SDK / "README.md").read_text()))
    assert guide.count("Client(") >= 5, "the guide lost its examples"
    where = run(python, "import bourse_client, bourse_sdk; print(bourse_client.__file__, bourse_sdk.__file__)",
                tmp_path)
    assert where.returncode == 0 and where.stdout.count(str(tmp_path / "venv")) == 2, where.stdout + where.stderr
    ran = run(python, guide, tmp_path, BOURSE_TARGET=stack.target, BOURSE_CA_FILE=stack.ca_file)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_the_wheel_bazel_builds_installs_and_trades(stack, tmp_path):
    python = fresh_venv(tmp_path / "venv", str(WHEEL))
    script = """
import sys, bourse_client
from bourse_client import Client, OrderStatus, Side
from bourse_client.errors import InvalidArgument
assert bourse_client.__file__.startswith(sys.prefix), bourse_client.__file__
with Client(TARGET, api_key="demo-key-carol", ca_file=CA) as client:
    assert client.submit_order("KO", Side.BUY, quantity=2, price=600).status == OrderStatus.NEW
    try:
        client.submit_order("NOPE", Side.BUY, quantity=2, price=600)
        raise SystemExit("an unknown symbol was accepted")
    except InvalidArgument as refused:
        assert refused.field == "symbol", refused
print("ok")
"""
    ran = run(python, f"TARGET, CA = {stack.target!r}, {stack.ca_file!r}\n" + script, tmp_path)
    assert (ran.returncode, ran.stdout.strip()) == (0, "ok"), ran.stdout + ran.stderr
