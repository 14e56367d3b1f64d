"""Line coverage of each ``loopwise`` sub-package, from the data ``pytest --cov`` left in ``.coverage``.

Prints one row per sub-package (top-level modules together as ``loopwise``), the total, and the
packages under the threshold by name. A report, not a gate: it always exits 0 when data is there.

    .venv/bin/python tools/coverage_by_package.py                  # after `make test`
    .venv/bin/python tools/coverage_by_package.py --under 90 --data-file .coverage
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePath

import coverage
from coverage.exceptions import NoDataError, NoSource

ROOT_PACKAGE = "loopwise"


@dataclass
class Lines:
    statements: int = 0
    missed: int = 0

    @property
    def percent(self) -> float:
        return (
            100.0 * (self.statements - self.missed) / self.statements if self.statements else 100.0
        )


def package_of(path: str) -> str | None:
    """``.../src/loopwise/store/sql/runs.py`` -> ``loopwise.store``; None outside the package."""
    parts = PurePath(path).parts
    if ROOT_PACKAGE not in parts:
        return None
    inside = parts[len(parts) - 1 - parts[::-1].index(ROOT_PACKAGE) + 1 :]
    return f"{ROOT_PACKAGE}.{inside[0]}" if len(inside) > 1 else ROOT_PACKAGE


def lines_by_package(cov: coverage.Coverage) -> dict[str, Lines]:
    cov.load()
    data = cov.get_data()
    totals: dict[str, Lines] = defaultdict(Lines)
    for path in sorted(data.measured_files()):
        package = package_of(path)
        if package is None:
            continue
        try:
            _, statements, _, missing, _ = cov.analysis2(path)
        except NoSource:  # measured in a process that ran another checkout, gone since
            print(f"skipped {path}: its source is gone", file=sys.stderr)
            continue
        totals[package].statements += len(statements)
        totals[package].missed += len(missing)
    return dict(totals)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-file", default=".coverage", help="coverage data (default .coverage)"
    )
    parser.add_argument("--under", type=float, default=80.0, help="name packages below this %%")
    args = parser.parse_args(argv)
    try:
        packages = lines_by_package(coverage.Coverage(data_file=args.data_file))
    except NoDataError as error:
        print(f"no coverage data: {error}; run `make test` (pytest --cov) first", file=sys.stderr)
        return 1
    if not packages:
        print(f"{args.data_file} holds no {ROOT_PACKAGE} files", file=sys.stderr)
        return 1
    total = Lines(
        sum(lines.statements for lines in packages.values()),
        sum(lines.missed for lines in packages.values()),
    )
    width = max(len(name) for name in packages)
    print(f"{'package':<{width}}  {'lines':>6}  {'missed':>6}  {'cover':>6}")
    for name, lines in sorted(packages.items()):
        print(f"{name:<{width}}  {lines.statements:>6}  {lines.missed:>6}  {lines.percent:>5.1f}%")
    print(f"{'total':<{width}}  {total.statements:>6}  {total.missed:>6}  {total.percent:>5.1f}%")
    low = [name for name, lines in sorted(packages.items()) if lines.percent < args.under]
    print(f"coverage {total.percent:.1f}%; under {args.under:g}%: {', '.join(low) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
