"""Where the tests find the repository and the real data beside it.

Real data (DAVIS masks, real videos) is never copied into the repository: it lives in
``../shared/data`` from the repository root, and the tests that read it skip when it is absent.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # tests/helpers/paths.py -> the repository
TEST_DATA = REPO_ROOT / "tests" / "data"  # small fixtures kept in the repository
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
