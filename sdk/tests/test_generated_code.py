"""The SDK's committed messages (sdk/bourse_sdk, what `pip install ./sdk` ships) are
exactly what the public protos generate now: a proto change without `bazel run
//sdk:regenerate` fails here, not in a consumer's hands."""

from __future__ import annotations

from pathlib import Path

SDK = Path(__file__).absolute().parents[1]  # in the runfiles, not the source tree


def files(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*"))
            if f.is_file() and "__pycache__" not in f.parts}


def test_the_committed_messages_are_what_the_protos_generate():
    generated, committed = files(SDK / "generated" / "bourse_sdk"), files(SDK / "bourse_sdk")
    assert generated, "the generated tree is missing from the runfiles"
    assert sorted(generated) == sorted(committed), "files differ: bazel run //sdk:regenerate"
    stale = [name for name in generated if generated[name] != committed[name]]
    assert not stale, f"stale: {stale}; bazel run //sdk:regenerate"
