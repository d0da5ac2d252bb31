#!/usr/bin/env python3
"""A small GGUF file checking zoo's dequantisation against llama.cpp's own Python package.

    make_gguf_fixtures.py --out crates/checkpoint/tests/data/quant_types.gguf

For every tensor type zoo decodes, the file holds a tensor `<TYPE>` of 2 rows × 256 elements
and, beside it, `<TYPE>.expected`: the same values as `gguf.quants.dequantize` (gguf-py, which
mirrors ggml's reference dequantisers) computes them, stored as F32. Blocks are random bytes
with their f16 scale fields replaced by finite random values, so every bit pattern of the
quantised payload is exercised. Written with gguf-py's `GGUFWriter` (a second writer besides the
tests' own). Deterministic (fixed seed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

ROWS, COLS = 2, 256

#: Byte offsets of the f16 scale fields within each block, per type.
SCALE_FIELDS = {
    T.Q8_0: (0,),
    T.Q4_0: (0,),
    T.Q4_1: (0, 2),
    T.Q5_0: (0,),
    T.Q5_1: (0, 2),
    T.Q4_K: (0, 2),
    T.Q5_K: (0, 2),
    T.Q6_K: (208,),
}


def random_blocks(ty: T, rng: np.random.Generator) -> np.ndarray:
    block, size = GGML_QUANT_SIZES[ty]
    n_blocks = ROWS * COLS // block
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for at in SCALE_FIELDS[ty]:
        scales = rng.uniform(-0.1, 0.1, size=n_blocks).astype(np.float16)
        raw[:, at : at + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(ROWS, COLS // block * size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rng = np.random.default_rng(8)
    writer = GGUFWriter(str(args.out), arch="llama")
    for ty in SCALE_FIELDS:
        data = random_blocks(ty, rng)
        writer.add_tensor(ty.name, data, raw_dtype=ty)
        expected = dequantize(data, ty).astype(np.float32).reshape(ROWS, COLS)
        writer.add_tensor(f"{ty.name}.expected", expected)
    floats = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    writer.add_tensor("F16", floats.astype(np.float16), raw_dtype=T.F16)
    writer.add_tensor("F16.expected", floats.astype(np.float16).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
