"""The checker: a pure function of a run's history and store snapshot to a verdict.

Use `check_run(run_dir)` (writes verdict.json and violations.jsonl) or
`check(history_path, store_path, level)`; see docs/checker.md.
"""

from faultlab.harness.checker.api import check, check_run
from faultlab.harness.checker.errors import RunDirError

__all__ = ["RunDirError", "check", "check_run"]
