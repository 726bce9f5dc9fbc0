"""Entry point of every pytest_test: runs pytest on the files Bazel passes as arguments."""

import os
import sys

import pytest

if __name__ == "__main__":
    # Without the registered toolchain Bazel would silently run the system Python.
    if sys.prefix == sys.base_prefix:
        sys.exit(f"tests must run in the repo's virtualenv, not {sys.prefix}")
    args = ["-p", "no:cacheprovider", "--import-mode=importlib", "-q", "-rfE"]
    xml = os.environ.get("XML_OUTPUT_FILE")
    if xml:
        args += ["--junitxml", xml]
    sys.exit(pytest.main(args + sys.argv[1:]))
