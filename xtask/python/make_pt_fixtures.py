#!/usr/bin/env python3
"""Tiny `torch.save` files for zoo-checkpoint's `.pt` reader tests (crates/checkpoint/tests/torch_pt.rs).

    .venv/bin/python xtask/python/make_pt_fixtures.py [--out crates/checkpoint/tests/data]

Good files are written by torch.save itself (protocol 2, torch's default, and protocol 4). Bad
files are those archives rewritten with one defect each, so every error path reads a file that
is otherwise exactly what torch writes. Values are small exact binary fractions, so the Rust
tests compare them with `==`. The outputs are committed; torch stamps a random serialization id
into each archive, so regenerating changes bytes but not content.
"""

from __future__ import annotations

import argparse
import collections
import io
import zipfile
from pathlib import Path

import torch


def tensors() -> dict[str, torch.Tensor]:
    """f32/f16/bf16, a 0-d tensor, a view at a storage offset sharing its base's storage, a tensor
    stored twice under two names, and a `torch.compile`-style `_orig_mod.` key."""
    f32 = torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1.0
    base = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    return {
        "f32": f32,
        "f16": torch.tensor([1.5, -2.25, 65504.0], dtype=torch.float16),
        "bf16": torch.tensor([1.0, -3.5, 0.0078125], dtype=torch.bfloat16),
        "scalar": torch.tensor(7.0),
        "base": base,
        "view": base[1:],  # storage offset 3 elements, same storage as `base`
        "tied": f32,  # the same tensor object: pickled once, fetched from the memo
        "_orig_mod.compiled.weight": torch.tensor([0.25, -0.75]),
    }


class Wrapper(torch.nn.Module):
    """Names its child `_orig_mod`, as torch.compile's OptimizedModule does."""

    def __init__(self) -> None:
        super().__init__()
        self._orig_mod = torch.nn.Linear(3, 2)
        with torch.no_grad():
            self._orig_mod.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]]))
            self._orig_mod.bias.copy_(torch.tensor([0.5, -0.5]))


def save(obj, path: Path, protocol: int = 2) -> bytes:
    torch.save(obj, path, pickle_protocol=protocol)
    return path.read_bytes()


def rewrite(source: bytes, path: Path, edit) -> None:
    """Copies the archive `source` to `path`, entry by entry through `edit(name, data)`, which
    returns the new data or None to drop the entry."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(source)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0)), data)
    path.write_bytes(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("crates/checkpoint/tests/data"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)

    good = save(tensors(), out / "tensors_p2.pt", protocol=2)
    save(tensors(), out / "tensors_p4.pt", protocol=4)
    state = Wrapper().state_dict()
    assert isinstance(state, collections.OrderedDict)
    save(state, out / "module_state_dict.pt")
    save({"t": torch.arange(6, dtype=torch.float32).reshape(2, 3).T}, out / "non_contiguous.pt")
    save(
        {"ids": torch.arange(3), "f64": torch.tensor([1.0], dtype=torch.float64), "ok": torch.tensor([2.0])},
        out / "other_dtypes.pt",
    )

    rewrite(good, out / "missing_pkl.pt", lambda name, data: None if name.endswith("/data.pkl") else data)
    rewrite(good, out / "missing_storage.pt", lambda name, data: None if name.endswith("/data/0") else data)
    rewrite(good, out / "truncated_pkl.pt", lambda name, data: data[: len(data) // 2] if name.endswith("/data.pkl") else data)

    # One f32 tensor of 4 elements whose pickled size says 5: BINPERSID, offset 0, size (4,).
    small = save({"a": torch.arange(4, dtype=torch.float32)}, out / "beyond_storage.pt")
    pattern = b"QK\x00K\x04\x85"

    def grow(name: str, data: bytes) -> bytes:
        if name.endswith("/data.pkl"):
            assert data.count(pattern) == 1, "torch's pickle layout changed"
            return data.replace(pattern, b"QK\x00K\x05\x85")
        return data

    rewrite(small, out / "beyond_storage.pt", grow)
    for path in sorted(out.glob("*.pt")):
        print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
