"""The lab's model: ``shards`` valid safetensors files of random bytes totalling ``weights_mib`` MiB,
``config.json`` and ``model.safetensors.index.json`` — what a server would load from NFS."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .common import MiB

__all__ = ["write_model"]


class _RandomBytes:
    """Incompressible filler, fast: slices of a 32 MiB ``os.urandom`` pool at pseudo-random
    offsets (``os.urandom`` alone makes ~350 MB/s here, which made a 2 GiB lab take 6 s to
    build). Nothing in the lab depends on the bytes being globally unique."""

    def __init__(self, pool_size: int) -> None:
        self.pool = memoryview(os.urandom(pool_size))
        self.k = 0

    def take(self, n: int) -> bytes | memoryview:
        if n >= len(self.pool):
            return os.urandom(n)
        self.k += 1
        off = (self.k * 2_654_435_761) % (len(self.pool) - n + 1)
        return self.pool[off:off + n]


def _safetensors_shard(path: Path, size: int, tensor: str, rnd: _RandomBytes, chunk: int = 8 * MiB) -> None:
    """A valid safetensors file of exactly ``size`` bytes: one U8 tensor of random bytes.

    Format: 8-byte little-endian header length, a JSON header (padded with spaces to a multiple
    of 8), the tensor data. Tiny sizes that cannot hold a header get plain random bytes."""
    header = b""
    for _ in range(4):  # the data length's digit count depends on the header length: iterate
        n = size - 8 - len(header)
        h = json.dumps({"__metadata__": {"format": "pt", "generator": "pytest-inference netlab"},
                        tensor: {"dtype": "U8", "shape": [max(n, 0)], "data_offsets": [0, max(n, 0)]}},
                       separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        stable, header = len(h) == len(header), h
        if stable:
            break
    n = size - 8 - len(header)
    with open(path, "wb") as f:
        if n < 0:
            f.write(os.urandom(size))
            return
        f.write(len(header).to_bytes(8, "little") + header)
        while n > 0:
            k = min(chunk, n)
            f.write(rnd.take(k))
            n -= k


def write_model(model: Path, weights_mib: float, shards: int) -> list[str]:
    model.mkdir(parents=True, exist_ok=True)
    total = int(weights_mib * MiB)
    base, extra = divmod(total, shards)
    names, weight_map = [], {}
    rnd = _RandomBytes(min(32 * MiB, max(total, 1)))
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        tensor = f"model.layers.{i}.weight"
        _safetensors_shard(model / name, base + (extra if i == shards - 1 else 0), tensor, rnd)
        names.append(name)
        weight_map[tensor] = name
    (model / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    (model / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 128,
        "intermediate_size": 256, "num_hidden_layers": shards, "num_attention_heads": 4,
        "num_key_value_heads": 4, "vocab_size": 2048, "torch_dtype": "uint8",
        "_netlab": {"weights_bytes": total, "shards": shards}}, indent=1))
    return names

