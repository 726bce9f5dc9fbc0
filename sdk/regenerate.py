"""Rewrites the SDK's committed messages (sdk/bourse_sdk) from the protos, after a
change to them: `bazel run //sdk:regenerate`. //sdk:generated_code_test fails until then."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

GENERATED = Path(__file__).absolute().parent / "generated" / "bourse_sdk"


def main() -> int:
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if not workspace:
        print("run me with `bazel run //sdk:regenerate`", file=sys.stderr)
        return 2
    target = Path(workspace) / "sdk" / "bourse_sdk"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(GENERATED, target, copy_function=shutil.copyfile)  # plain, writable files
    print(f"rewrote {sum(1 for f in target.rglob('*') if f.is_file())} files under sdk/bourse_sdk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
