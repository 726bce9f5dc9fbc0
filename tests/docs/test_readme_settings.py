"""The README's table of settings is the list of BOURSE_* variables the code reads: every
variable a service's settings class declares (services/common/settings.py), or the local
stack, the load generator or the image reads directly (os.environ.get, ...), has a row,
every row names a variable something reads, and where a row gives a default it is the
settings class's."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import TypeAdapter

from infra.k8s.service_code import env_reads
from services.common.settings import PREFIX, every_settings_class

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("services", "infra", "loadgen")
ROW = re.compile(r"^\| (`BOURSE_[A-Z0-9_]+`(?:, `BOURSE_[A-Z0-9_]+`)*) \|")


def read_by_code() -> dict[str, list[str]]:
    """Variable -> the settings classes, or the modules (outside tests), that read it."""
    found: dict[str, list[str]] = {}
    for cls in every_settings_class():
        for variable in cls.variables():
            found.setdefault(variable, []).append(cls.__name__)
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "tests" in path.parts:
                continue
            for variable in env_reads([path]):
                found.setdefault(variable, []).append(str(path.relative_to(ROOT)))
    return found


def rows() -> list[tuple[list[str], str]]:
    """The table's rows: (the variables named, the default column)."""
    found = []
    for line in (ROOT / "README.md").read_text().splitlines():
        if match := ROW.match(line):
            found.append((re.findall(r"BOURSE_[A-Z0-9_]+", match.group(1)), line.rsplit(" | ", 1)[1]))
    return found


def in_readme() -> set[str]:
    return {variable for variables, _ in rows() for variable in variables}


def test_every_variable_the_code_reads_has_a_row_and_every_row_is_read():
    read, documented = read_by_code(), in_readme()
    assert read and documented, "nothing found: the sources or the README moved"
    missing = {variable: modules for variable, modules in read.items() if variable not in documented}
    assert not missing, f"read by the code but not in the README's table: {missing}"
    assert not documented - set(read), f"in the README's table but read by nothing: {sorted(documented - set(read))}"


def test_each_default_the_table_gives_is_the_settings_class():
    fields = {PREFIX + name.upper(): field for cls in every_settings_class() for name, field in cls.model_fields.items()}
    checked = 0
    for variables, column in rows():
        # "`127.0.0.1:50060`, `0` (or ...)": one leading backticked value per variable.
        given = re.match(r"^(`[^`]*`(?:, `[^`]*`)*)", column)
        if not given or not all(v in fields for v in variables):
            continue
        values = re.findall(r"`([^`]*)`", given.group(1))
        for variable, value in zip(variables, values, strict=False):
            field = fields[variable]
            assert TypeAdapter(field.annotation).validate_python(value) == field.default, (
                f"README says {variable} defaults to {value!r}; the code says {field.default!r}")
            checked += 1
    assert checked >= 20, f"only {checked} defaults found in the table"


def test_the_check_sees_a_reader_and_a_missing_row(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('import os\nx = os.environ.get("BOURSE_A_MS", "5")\ny = os.getenv("BOURSE_B")\nz = "BOURSE_C"\n')
    assert env_reads([module]) == {"BOURSE_A_MS": True, "BOURSE_B": False}
    assert ROW.match("| `BOURSE_X`, `BOURSE_Y` | order | 1 |") and not ROW.match("BOURSE_X=1 python -m x")
