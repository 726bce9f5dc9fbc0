"""Counts every test case Bazel ran (from the JUnit XML of each test target) and prints
one line: `N passed, N failed` (plus skipped). A target that failed without a report
(e.g. it did not build or crashed) counts as one failure.

    test_summary.py save NAME TARGET...   keep the reports of a run under another
                                          configuration (e.g. the sanitizer run)
    test_summary.py                       count `tests(//...)` plus everything saved
"""

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

TESTLOGS = Path("bazel-testlogs")
SAVED = Path("reports/test-xml")


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
    if passed + failed + skipped == 0:
        failed = 1  # a report without test cases: the target did not really run
    return passed, failed, skipped


def report_of(label: str) -> Path:
    package, _, name = label.removeprefix("//").partition(":")
    return TESTLOGS / package / name / "test.xml"


def save(name: str, labels: list[str]) -> int:
    target = SAVED / name
    target.mkdir(parents=True, exist_ok=True)
    for label in labels:
        xml, saved = report_of(label), target / (label.strip("/").replace("/", "_").replace(":", "__") + ".xml")
        if xml.exists():
            shutil.copy(xml, saved)
        else:  # it did not build or run: one failure
            saved.write_text(f'<testsuites><testcase name="{label}"><failure message="no report"/></testcase></testsuites>')
    return 0


def summary() -> int:
    labels = subprocess.run(
        ["bazel", "query", "tests(//...)"], check=True, capture_output=True, text=True
    ).stdout.split()
    reports = [(label, report_of(label)) for label in labels]
    reports += [(f"{xml.parent.name}:{xml.stem}", xml) for xml in sorted(SAVED.glob("*/*.xml"))]
    totals = [0, 0, 0]
    for label, xml in reports:
        if not xml.exists():
            print(f"no test report for {label}: counted as failed", file=sys.stderr)
            totals[1] += 1
            continue
        totals = [a + b for a, b in zip(totals, count(xml))]
    line = f"{totals[0]} passed, {totals[1]} failed"
    if totals[2]:
        line += f", {totals[2]} skipped"
    print(line)
    return 1 if totals[1] else 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "save":
        sys.exit(save(sys.argv[2], sys.argv[3:]))
    sys.exit(summary())
