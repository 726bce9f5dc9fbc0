"""Counts every test case Bazel ran (from the JUnit XML of each test target) and prints
one line: `N passed, N failed` (plus skipped). A target that failed without a report
(e.g. it did not build or crashed) counts as one failure."""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def count(xml_path: Path) -> tuple[int, int, int]:
    passed = failed = skipped = 0
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            failed += 1
        elif "skipped" in tags:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main() -> int:
    targets = subprocess.run(
        ["bazel", "query", "tests(//...)"], check=True, capture_output=True, text=True
    ).stdout.split()
    testlogs = Path("bazel-testlogs")
    totals = [0, 0, 0]
    for label in targets:
        package, _, name = label.removeprefix("//").partition(":")
        log_dir = testlogs / package / name
        xml = log_dir / "test.xml"
        status = (log_dir / "test.log").read_text(errors="replace") if (log_dir / "test.log").exists() else ""
        if not xml.exists():
            print(f"no test report for {label}: counted as failed", file=sys.stderr)
            totals[1] += 1
            continue
        passed, failed, skipped = count(xml)
        if passed + failed + skipped == 0 or (failed == 0 and "FAILED" in status[-200:]):
            failed = max(failed, 1)
        totals = [a + b for a, b in zip(totals, (passed, failed, skipped))]
    line = f"{totals[0]} passed, {totals[1]} failed"
    if totals[2]:
        line += f", {totals[2]} skipped"
    print(line)
    return 1 if totals[1] else 0


if __name__ == "__main__":
    sys.exit(main())
