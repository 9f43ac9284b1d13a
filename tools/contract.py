"""Check the feature SQL and the GX suite against the dataset contract; write the suite's derived expectations.

The contract is ``include/code/common/features_schema.json``. ``include/sql/features.sql`` stays hand-written:
its output columns (``AS "name"`` aliases) must be the contract's columns in order. The suite's expectations
that the contract decides (column list, a type check per column, not-null, category sets) are written by
``--write``; the suite's other expectations are left as they are.

Usage::

    python -m tools.contract            # exit 1 naming each disagreement
    python -m tools.contract --write    # update the suite's derived expectations, then check
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "plugins") not in sys.path:  # the package, as on MWAA; the Makefile sets PYTHONPATH too
    sys.path.insert(0, str(ROOT / "plugins"))

from ml_lifecycle.contract import (  # noqa: E402
    CONTRACT_PATH,
    load_contract,
    sql_disagreement,
    suite_disagreements,
    updated_suite,
)

INCLUDE = ROOT / "include"
SQL = INCLUDE / "sql" / "features.sql"
SUITE = INCLUDE / "gx" / "card_transactions_features.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update the suite's contract-derived expectations")
    parser.add_argument("--suite", type=Path, default=SUITE, help="the GX suite (default: %(default)s)")
    parser.add_argument("--sql", type=Path, default=SQL, help="the feature query (default: %(default)s)")
    args = parser.parse_args(argv)
    contract = load_contract(INCLUDE / CONTRACT_PATH)
    suite = json.loads(args.suite.read_text(encoding="utf-8"))
    if args.write:
        updated = updated_suite(suite, contract)
        if updated != suite:
            args.suite.write_text(json.dumps(updated, indent=2) + "\n", encoding="utf-8")
            print(f"updated {args.suite}")
        suite = updated
    problems = [f"{args.suite}: {p}" for p in suite_disagreements(suite, contract)]
    sql_problem = sql_disagreement(args.sql.read_text(encoding="utf-8"), contract)
    if sql_problem:
        problems.append(f"{args.sql}: {sql_problem}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
