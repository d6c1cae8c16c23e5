"""A real third-party OpenAI-compatible server (llama-cpp-python) on a tiny random model.

Every test in this folder is a ``peers`` test. The server needs ``tests/peers/setup.sh``
(``.venv-peers`` and its model); without it these tests are skipped, unless
``CONTINUUM_PEERS_REQUIRED=1`` (set by ``make test-peers``) makes that a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.peers.server import Peer, available, peer_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/peers/" in str(item.fspath):
            item.add_marker(pytest.mark.peers)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    """The running server: ``.base_url`` (ends in /v1), ``.model``, ``.n_ctx``, ``.log()``."""
    why = available()
    if why:
        if os.environ.get("CONTINUUM_PEERS_REQUIRED") == "1":
            pytest.fail(why)
        pytest.skip(why)
    with peer_server(log_dir=str(tmp_path_factory.mktemp("peer"))) as peer:
        yield peer
