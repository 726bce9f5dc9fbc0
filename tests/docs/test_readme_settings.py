"""The README's table of settings is the list of BOURSE_* variables the code reads: every
variable a service, the local stack or the load generator reads (by the readers
infra/k8s/service_code.py knows: env, env_int, os.environ.get, ...) has a row, and every
row names a variable something reads."""

from __future__ import annotations

import re
from pathlib import Path

from infra.k8s.service_code import env_reads

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("services", "infra", "loadgen")
ROW = re.compile(r"^\| (`BOURSE_[A-Z0-9_]+`(?:, `BOURSE_[A-Z0-9_]+`)*) \|")


def read_by_code() -> dict[str, list[str]]:
    """Variable -> the modules (outside tests) that read it."""
    found: dict[str, list[str]] = {}
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "tests" in path.parts:
                continue
            for variable in env_reads([path]):
                found.setdefault(variable, []).append(str(path.relative_to(ROOT)))
    return found


def in_readme() -> set[str]:
    names: set[str] = set()
    for line in (ROOT / "README.md").read_text().splitlines():
        if match := ROW.match(line):
            names.update(re.findall(r"BOURSE_[A-Z0-9_]+", match.group(1)))
    return names


def test_every_variable_the_code_reads_has_a_row_and_every_row_is_read():
    read, documented = read_by_code(), in_readme()
    assert read and documented, "nothing found: the sources or the README moved"
    missing = {variable: modules for variable, modules in read.items() if variable not in documented}
    assert not missing, f"read by the code but not in the README's table: {missing}"
    assert not documented - set(read), f"in the README's table but read by nothing: {sorted(documented - set(read))}"


def test_the_check_sees_a_reader_and_a_missing_row(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('import os\nx = env_int("BOURSE_A_MS", 5)\ny = os.environ.get("BOURSE_B")\nz = "BOURSE_C"\n')
    assert env_reads([module]) == {"BOURSE_A_MS": True, "BOURSE_B": False}
    assert ROW.match("| `BOURSE_X`, `BOURSE_Y` | order | 1 |") and not ROW.match("BOURSE_X=1 python -m x")
