"""Suite-wide settings. Each test area keeps its fixtures in its own conftest.py."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A locust file (as the seed names it), run by locust, not by pytest.
collect_ignore = ["load_test.py"]


@pytest.fixture(scope="session")
def example_repo_dir() -> Path:
    return ROOT / "example-config-repo"
