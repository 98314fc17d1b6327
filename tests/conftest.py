"""Shared pytest set-up: tests marked `slow` run only when asked for (`make test-slow`, or any -m)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="slow: run with `make test-slow` (pytest -m slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: OpenMP thread hand-offs cost more than they save (much more on a busy machine)."""
    from bitbranch.compiler.threads import torch_threads

    with torch_threads(1):
        yield
