"""Carry SmolLM2-135M (GGUF) and MiniLM to a benchmark machine that cannot fetch them, in 5 MB.

  offline_weights.py pack GGUF ENCODER_DIR OUT    (where the models are: header, small tensors,
                                                  samples of the big ones; needs gguf, numpy,
                                                  safetensors — the reference venv has them)
  offline_weights.py unpack OUT MODELS            (on the other machine: full-size files of the
                                                  same layout, for `lab bench-host --lm
                                                  MODELS/SmolLM2-135M-Instruct.Q4_1.gguf
                                                  --encoder MODELS/minilm`)

The GGUF keeps its header (metadata, tokenizer, tensor table) and its f32 tensors exactly; each
quantized tensor keeps the block scales of its first blocks (repeated) and draws its quant bytes
from those blocks' bytes, so every value is in the real range but rows differ. The encoder keeps
tensors under 64 KiB exactly and draws the others from a normal with the real mean and std.
Speed does not depend on the values, and both sides of `--compare` load the same files; the
numbers the model computes are not the real model's. This is how the README's GPU figures were
made.
"""
import json, os, shutil, struct, sys
import numpy as np

BLOCK = {"Q8_0": (34, 2), "Q4_1": (20, 4), "Q4_0": (18, 2)}  # bytes per block, scale bytes
SAMPLE_BLOCKS = 512


def pack(gguf_path, enc_dir, out):
    import gguf
    from safetensors.numpy import load_file
    os.makedirs(out, exist_ok=True)
    r = gguf.GGUFReader(gguf_path)
    raw = open(gguf_path, "rb").read()
    open(f"{out}/lm-header.bin", "wb").write(raw[: r.data_offset])
    table, samples = [], bytearray()
    for t in r.tensors:
        kind = t.tensor_type.name
        start = int(t.data_offset)
        if kind == "F32":
            keep = t.n_bytes
        elif kind not in BLOCK:
            sys.exit(f"{gguf_path}: tensor {t.name} is {kind}; this script knows F32, "
                     + ", ".join(BLOCK) + " (add the type's block and scale sizes to BLOCK)")
        else:
            keep = min(t.n_bytes, BLOCK[kind][0] * SAMPLE_BLOCKS)
        table.append({"name": t.name, "kind": kind, "offset": start, "n_bytes": int(t.n_bytes),
                      "sample_at": len(samples), "sample_len": keep})
        samples += raw[start : start + keep]
    json.dump({"size": len(raw), "tensors": table}, open(f"{out}/lm-table.json", "w"))
    open(f"{out}/lm-samples.bin", "wb").write(samples)
    os.makedirs(f"{out}/encoder", exist_ok=True)
    for f in ["config.json", "tokenizer.json"]:
        shutil.copy(f"{enc_dir}/{f}", f"{out}/encoder/{f}")
    tensors = load_file(f"{enc_dir}/model.safetensors")
    stats, small = {}, {}
    for name, a in tensors.items():
        if a.nbytes < 65536 or a.dtype != np.float32:
            small[name] = a
        else:
            stats[name] = {"shape": list(a.shape), "mean": float(a.mean()), "std": float(a.std())}
    from safetensors.numpy import save_file
    save_file(small, f"{out}/encoder/small.safetensors")
    json.dump(stats, open(f"{out}/encoder/stats.json", "w"))


def unpack(src, models):
    rng = np.random.default_rng(0)
    table = json.load(open(f"{src}/lm-table.json"))
    samples = open(f"{src}/lm-samples.bin", "rb").read()
    os.makedirs(models, exist_ok=True)
    lm = f"{models}/SmolLM2-135M-Instruct.Q4_1.gguf"
    with open(lm, "wb") as f:
        f.write(open(f"{src}/lm-header.bin", "rb").read())
        f.truncate(table["size"])
        for t in table["tensors"]:
            sample = np.frombuffer(samples, np.uint8, t["sample_len"], t["sample_at"])
            if t["kind"] == "F32":
                data = sample
            else:
                size, scale = BLOCK[t["kind"]]
                blocks = sample.reshape(-1, size)
                n = t["n_bytes"] // size
                data = np.tile(blocks, (n // len(blocks) + 1, 1))[:n].copy()
                payload = blocks[:, scale:].ravel()
                data[:, scale:] = rng.choice(payload, size=(n, size - scale))
            f.seek(t["offset"])
            f.write(data.tobytes())
    from safetensors.numpy import load_file, save_file
    enc = f"{models}/minilm"
    os.makedirs(enc, exist_ok=True)
    for name in ["config.json", "tokenizer.json"]:
        shutil.copy(f"{src}/encoder/{name}", f"{enc}/{name}")
    tensors = load_file(f"{src}/encoder/small.safetensors")
    for name, s in json.load(open(f"{src}/encoder/stats.json")).items():
        tensors[name] = rng.normal(s["mean"], s["std"], s["shape"]).astype(np.float32)
    save_file(tensors, f"{enc}/model.safetensors")
    print("made", lm, os.path.getsize(lm), "bytes, and", enc)


if __name__ == "__main__":
    {"pack": pack, "unpack": unpack}[sys.argv[1]](*sys.argv[2:])
