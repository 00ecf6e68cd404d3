"""A LoRA stage of the embedded Gemma base as a GGUF that llama.cpp judges, without
llama.cpp's converter (numbias.models.weights fetches it from llama-cpp-python's source, which
this machine cannot reach).

The stages train LoRA adapters on the attention's query and value projections only, so a
merged stage differs from the base in those tensors alone. The GGUF written here is the
embedded base GGUF (same metadata, tokenizer and quantised tensors) with every
``blk.N.attn_q.weight`` and ``blk.N.attn_v.weight`` replaced by the folder's float32
``q_proj`` / ``v_proj``. Given the de-quantised base folder it writes the base the same
way, so the base and a stage differ exactly by the merged LoRA deltas (the de-quantised
q/v equal the GGUF's own de-quantisation bit for bit: checked here on every tensor).

    python docs/results/positive-control/stage_gguf.py FOLDER OUT.gguf
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

from numbias.models.catalog import WEIGHTS, resolve
from numbias.models.weights import dequantised

REPLACED = re.compile(r"^blk\.(\d+)\.attn_([qv])\.weight$")


def hf_name(gguf_name: str) -> str | None:
    """The Hugging Face tensor a replaced GGUF tensor comes from (None: kept as it is)."""
    found = REPLACED.match(gguf_name)
    return f"model.layers.{found[1]}.self_attn.{found[2]}_proj.weight" if found else None


def write(folder: Path, out: Path) -> None:
    """The base GGUF with the folder's q/v projections in float32, written whole then
    renamed; a GGUF newer than the folder's weights is kept."""
    if out.is_file() and out.stat().st_mtime > (folder / WEIGHTS).stat().st_mtime:
        return
    base = resolve("gemma3-270m-base")
    reader = gguf.GGUFReader(base.path)
    weights = load_file(folder / WEIGHTS)
    reference = load_file(dequantised(base) / WEIGHTS)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    partial = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(partial, arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    data = []
    for tensor in reader.tensors:
        name = hf_name(tensor.name)
        if name is None:
            data.append(tensor.data)
            writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes,
                                   tensor.tensor_type)
            continue
        own = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        assert np.array_equal(own, reference[name]), f"{tensor.name}: the base folder is not this GGUF's"
        array = np.ascontiguousarray(weights[name], dtype=np.float32)
        assert array.shape == own.shape, f"{name}: shape {array.shape}, the GGUF's {own.shape}"
        data.append(array)
        writer.add_tensor_info(tensor.name, array.shape, array.dtype, array.nbytes, gguf.GGMLQuantizationType.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for array in data:
        writer.write_tensor_data(array, tensor_endianess=reader.endianess)
    writer.close()
    partial.replace(out)


if __name__ == "__main__":
    write(Path(sys.argv[1]).expanduser(), Path(sys.argv[2]).expanduser())
