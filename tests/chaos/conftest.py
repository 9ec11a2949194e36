"""The reliability suite: multi-process scenarios, all marked slow (the fast loop skips them)."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/chaos/" in str(item.path):
            item.add_marker(pytest.mark.slow)
