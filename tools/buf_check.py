"""The protos held to buf: `buf lint` (protos/buf.yaml: STANDARD and COMMENTS) and `buf
breaking` (FILE) against the previous commit's protos. Run by `make test`, which counts
the two checks in its summary line (their JUnit reports go under reports/test-xml/buf).

    .venv/bin/python tools/buf_check.py

buf comes from npm (@bufbuild/buf, installed by tools/setup.sh under .tools/buf). Our
protos import google/api and google/rpc files, which buf would fetch from its registry;
here they come from the googleapis-common-protos wheel in .venv instead, as a second
module of a workspace made for the check (and not linted: they are not ours).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

ROOT = Path(__file__).resolve().parents[1]
BUF = ROOT / ".tools" / "buf" / "node_modules" / ".bin" / "buf"
REPORTS = ROOT / "reports" / "test-xml" / "buf"
THIRD_PARTY = ("google/api/field_behavior.proto", "google/rpc/status.proto")


def workspace(protos: Path, into: Path) -> Path:
    """A buf workspace of `protos` (a copy of a protos/ directory) beside the third-party
    files they import."""
    shutil.copytree(protos / "bourse", into / "protos" / "bourse")
    import google.api
    import google.rpc

    site = Path(list(google.api.__path__)[0]).parent.parent
    for name in THIRD_PARTY:
        (into / "third_party" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(site / name, into / "third_party" / name)
    config = (ROOT / "protos" / "buf.yaml").read_text()
    # protos/buf.yaml's one module (".") becomes two here; its rules stay as they are, their
    # paths now under protos/.
    config = config.replace("  - path: .\n", "  - path: protos\n  - path: third_party\n    lint:\n"
                                             "      ignore:\n        - third_party\n")
    config = config.replace("      - bourse/", "      - protos/bourse/")
    (into / "buf.yaml").write_text(config)
    return into


def previous_protos(into: Path) -> Path | None:
    """protos/ as the previous commit had it, or None (no previous commit)."""
    parent = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "-q", "HEAD~1"],
                            capture_output=True, text=True)
    if parent.returncode != 0:
        return None
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD~1", "protos/bourse"], capture_output=True,
                             check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "protos"


def run(name: str, command: list[str], cwd: Path) -> tuple[bool, str]:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    output = (done.stdout + done.stderr).strip()
    print(f"buf {name}: {'ok' if done.returncode == 0 else 'FAILED'}")
    if output:
        print(output)
    return done.returncode == 0, output


def report(name: str, ok: bool | None, output: str) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    if ok is None:
        body = f"<skipped message={quoteattr(output)}/>"
    elif ok:
        body = ""
    else:
        body = f"<failure message={quoteattr(name + ' failed')}>{escape(output)}</failure>"
    (REPORTS / f"{name}.xml").write_text(f'<testsuites><testsuite name="buf"><testcase name="{name}">{body}'
                                         f"</testcase></testsuite></testsuites>\n")


def main() -> int:
    if not BUF.exists():
        print(f"buf is not installed at {BUF.relative_to(ROOT)}: run tools/setup.sh", file=sys.stderr)
        for name in ("lint", "breaking"):
            report(name, False, "buf is not installed")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        current = workspace(ROOT / "protos", Path(tmp) / "current")
        lint_ok, lint_out = run("lint", [str(BUF), "lint"], current)
        report("lint", lint_ok, lint_out)
        previous = previous_protos(Path(tmp) / "previous-tree")
        if previous is None:
            print("buf breaking: skipped (no previous commit)")
            report("breaking", None, "no previous commit")
            return 0 if lint_ok else 1
        against = workspace(previous, Path(tmp) / "previous")
        breaking_ok, breaking_out = run("breaking", [str(BUF), "breaking", "--against", str(against)], current)
        report("breaking", breaking_ok, breaking_out)
    return 0 if lint_ok and breaking_ok else 1


if __name__ == "__main__":
    sys.exit(main())
