"""Stages the build context of the bourse image: `bazel-bin/infra/k8s/stage DIR`, then
`docker build -t bourse:dev DIR` (see README.md).

The image needs files Bazel generates (protoc modules, the compiled modules) next
to the sources; they live under bazel-bin, which a Docker build context cannot follow.
This program, run from its Bazel runfiles (which hold exactly what the services need),
copies them into one flat tree:

    DIR/Dockerfile          infra/k8s/Dockerfile
    DIR/requirements.lock   the repo's (run from the repository root)
    DIR/app/services/...    sources, Alembic migrations included
    DIR/app/infra/...       __init__.py, envoy/ (config, binary finder), k8s/ (entrypoint),
                            admin/ (the operator's commands: shards, snapshots, API keys)
    DIR/app/bourse/...      protoc-generated modules (bazel-bin/protos)
    DIR/app/bourse_engine/  typed engine wrapper (engine/bourse_engine)
    DIR/app/_bourse_engine.so   the nanobind module (bazel-bin/engine)
    DIR/app/_matching_native.so the matching process's native helpers (bazel-bin/services/matching/native)

so that PYTHONPATH=/app in the image resolves every import as PYTHONPATH=.:bazel-bin/
protos:engine:bazel-bin/engine:bazel-bin/services/matching/native does in the repo. The
modules are compiled on this machine: the image's Debian release must be this machine's
(recorded in DIR/BUILD-INFO).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
from pathlib import Path

# runfiles path -> path in the context; a directory maps its whole tree.
TREES = {
    "services": "app/services",
    "infra/__init__.py": "app/infra/__init__.py",
    "infra/envoy": "app/infra/envoy",
    "infra/admin": "app/infra/admin",
    "infra/k8s": "app/infra/k8s",
    "protos/bourse": "app/bourse",
    "engine/bourse_engine": "app/bourse_engine",
    "engine/_bourse_engine.so": "app/_bourse_engine.so",
    "services/matching/native/_matching_native.so": "app/_matching_native.so",
    "infra/k8s/Dockerfile": "Dockerfile",
}
LOCK = "requirements.lock"  # from the runfiles if //:requirements.lock is exported, else the workspace
SKIP_DIRS = {"__pycache__", "tests", "base"}
KEEP_SUFFIXES = {".py", ".ini", ".mako"}  # sources, Alembic's config and revision template
ENGINE = "app/_bourse_engine.so"


def runfiles_root() -> Path:
    """The workspace directory of this program's runfiles (symlinks not resolved)."""
    here = Path(os.path.abspath(__file__)).parents[2]
    if (here / "engine" / "_bourse_engine.so").exists():
        return here
    for base in (os.environ.get("RUNFILES_DIR"), os.environ.get("TEST_SRCDIR")):
        if base and (Path(base) / "bourse" / "engine" / "_bourse_engine.so").exists():
            return Path(base) / "bourse"
    raise SystemExit("stage: run the Bazel-built program (make build; bazel-bin/infra/k8s/stage DIR): "
                     "the generated modules are in its runfiles only")


def _copy_tree(source: Path, target: Path) -> int:
    count = 0
    for dirpath, dirnames, filenames in os.walk(source, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if Path(name).suffix not in KEEP_SUFFIXES:
                continue
            relative = Path(dirpath).relative_to(source) / name
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(dirpath) / name, target / relative)  # follows the runfiles symlinks
            count += 1
    return count


def workspace() -> Path:
    """Where the user ran the program: the repo root for `bazel-bin/infra/k8s/stage` and
    `bazel run` alike (whose cwd is the runfiles)."""
    return Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.environ.get("BUILD_WORKING_DIRECTORY") or ".")


def stage(out: Path, root: Path | None = None, lock: Path | None = None) -> int:
    """Writes the build context into `out` (emptied first); returns the number of files."""
    root = root or runfiles_root()
    lock = lock or next((p for p in (root / LOCK, workspace() / LOCK) if p.is_file()), None)
    if lock is None or not lock.is_file():
        raise SystemExit(f"stage: no {LOCK}: run it from the repository root")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    count = 0
    for source, target in TREES.items():
        path = root / source
        if not path.exists():
            raise SystemExit(f"stage: {source} is missing from {root} (a dependency of //infra/k8s:stage?)")
        if path.is_dir():
            count += _copy_tree(path, out / target)
        else:
            (out / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out / target)
            count += 1
    shutil.copyfile(lock, out / LOCK)
    (out / "BUILD-INFO").write_text(
        f"python {platform.python_version()}\n{_os_release()}\n"
        "the image's base must be this Debian release with Python 3.11 (Dockerfile ARG PYTHON_IMAGE)\n")
    return count


def _os_release() -> str:
    try:
        fields = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
        return f"{fields.get('ID', '?')} {fields.get('VERSION_CODENAME', '?')}".replace('"', "")
    except OSError:
        return "unknown os"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stage", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="directory to (re)create as the Docker build context")
    parser.add_argument("--lock", type=Path, default=None, help=f"default: ./{LOCK}")
    args = parser.parse_args(argv)
    # Relative to where the user ran it, also under `bazel run` (whose cwd is the runfiles).
    out = Path(os.environ.get("BUILD_WORKING_DIRECTORY", ".")) / args.out
    count = stage(out, lock=args.lock)
    print(f"stage: {count} files in {out}; next: docker build -t bourse:dev {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
