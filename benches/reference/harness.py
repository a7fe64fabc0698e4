"""PyTorch reference for `lab bench-host --compare` (ATGen's stack: transformers, peft,
sentence-transformers).

Usage: harness.py WORKLOADS.json   (started by `lab bench-host --compare`, not by hand)

Reads the workloads that `lab bench-host` wrote (token ids, texts, model paths), loads the same
SmolLM2-135M-Instruct GGUF through transformers (`gguf_file=`, dequantized to f32) and MiniLM
through sentence-transformers, warms up, prints `ready`, then for every `round` line on stdin
runs the four workloads once and prints one JSON line with seconds and outputs; for every `peak`
line it times PyTorch's own large f32 gemm (the workloads' `peak_shape`, which ours times too)
and prints `{"peak_gflops": ...}`. `quit` ends it. With `"device": "cuda"` in the workloads
everything runs on the first GPU, in full f32 (no TF32), as ours does.
"""

import json
import os
import sys
import time

# Protocol lines go to the real stdout; everything libraries print goes to stderr.
PROTOCOL = sys.stdout
sys.stdout = sys.stderr

import torch  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

DEVICE = torch.device("cpu")

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def say(obj):
    PROTOCOL.write(obj if isinstance(obj, str) else json.dumps(obj))
    PROTOCOL.write("\n")
    PROTOCOL.flush()


def sync():
    """Waits for the GPU's queued work, so timers measure it."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def load_lm(gguf_path):
    folder, name = os.path.split(gguf_path)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    return model.to(DEVICE).eval()


def left_pad(rows, pad_id):
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    return ids.to(DEVICE), mask.to(DEVICE)


def score(model, prompts, outputs, pad_id):
    rows = [p + o for p, o in zip(prompts, outputs)]
    ids, mask = left_pad(rows, pad_id)
    max_out = max(len(o) for o in outputs)
    with torch.inference_mode():
        # Logits only where outputs are predicted (as ours): the last max_out + 1 positions.
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=max_out + 1).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        targets = ids[:, -max_out:]
        picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return [picked[i, max_out - len(o):].tolist() for i, o in enumerate(outputs)]


def generate(model, prompts, new_tokens, pad_id):
    ids, mask = left_pad(prompts, pad_id)
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=pad_id,
        )
    result = []
    for row in out[:, ids.shape[1]:].tolist():
        kept = []
        for t in row:
            kept.append(t)
            if t in eos:
                break
        result.append(kept)
    return result


class Trainer:
    """LoRA r, alpha on every linear layer, AdamW, clipping at 1.0: one step per call."""

    def __init__(self, model, work, pad_id):
        config = LoraConfig(
            r=work["lora_r"],
            lora_alpha=work["lora_alpha"],
            lora_dropout=0.0,
            target_modules=TARGETS,
            bias="none",
            task_type="CAUSAL_LM",
        )
        model.config.use_cache = False
        self.model = get_peft_model(model, config)
        self.model.train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=work["learning_rate"], weight_decay=0.0)
        rows = [p + t for p, t in zip(work["train_prompts"], work["train_targets"])]
        self.ids, self.mask = left_pad(rows, pad_id)
        self.labels = self.ids.clone()
        self.labels[self.mask == 0] = -100
        for i, (p, t) in enumerate(zip(work["train_prompts"], work["train_targets"])):
            start = self.ids.shape[1] - len(p) - len(t)
            self.labels[i, : start + len(p)] = -100

    def step(self):
        out = self.model(input_ids=self.ids, attention_mask=self.mask, labels=self.labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(out.loss.detach())


def run_round(work, lm, trainer, encoder, pad_id):
    """The selected workloads once, timed; skipped ones keep zero seconds and empty outputs."""
    runs = set(work["workloads"])
    result = {
        "score_s": 0.0,
        "generate_s": 0.0,
        "generated_tokens": 0,
        "train_s": 0.0,
        "embed_s": 0.0,
        "score_logprobs": [],
        "generated_ids": [],
        "train_loss": 0.0,
        "embeddings": [],
    }
    if "Scoring" in runs:
        start = time.perf_counter()
        result["score_logprobs"] = score(lm, work["score_prompts"], work["score_outputs"], pad_id)
        result["score_s"] = time.perf_counter() - start
    if "Generation" in runs:
        start = time.perf_counter()
        gen = generate(lm, work["gen_prompts"], work["gen_new_tokens"], pad_id)
        result["generate_s"] = time.perf_counter() - start
        result["generated_ids"] = gen
        result["generated_tokens"] = sum(len(g) for g in gen)
    if "Training" in runs:
        start = time.perf_counter()
        result["train_loss"] = trainer.step()
        sync()
        result["train_s"] = time.perf_counter() - start
    if "Embeddings" in runs:
        start = time.perf_counter()
        emb = encoder.encode(
            work["encoder_texts"],
            batch_size=work["encoder_batch"],
            normalize_embeddings=True,
            convert_to_numpy=True,
        )
        result["embed_s"] = time.perf_counter() - start
        result["embeddings"] = emb.tolist()
    return result


def peak_gflops(shape):
    """Best of 12 f32 products of shape (m, k, n) (MKL on x86 builds, cuBLAS on a GPU), in
    GFLOP/s."""
    m, k, n = shape
    a = torch.randn(m, k, device=DEVICE)
    b = torch.randn(k, n, device=DEVICE)
    sync()
    best = float("inf")
    for _ in range(12):
        start = time.perf_counter()
        torch.matmul(a, b)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2.0 * m * k * n / best / 1e9


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: harness.py WORKLOADS.json (written by `lab bench-host --compare`)")
    with open(sys.argv[1]) as f:
        work = json.load(f)
    global DEVICE
    DEVICE = torch.device(work.get("device", "cpu"))
    if DEVICE.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        print(f"harness: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    torch.set_num_threads(work["threads"])
    torch.manual_seed(0)
    lm = load_lm(work["gguf"])
    pad_id = lm.config.pad_token_id if lm.config.pad_token_id is not None else 0
    trainer = Trainer(load_lm(work["gguf"]), work, pad_id)
    encoder = SentenceTransformer(work["encoder_dir"], device=str(DEVICE))
    encoder.max_seq_length = 256

    # Warm-up on small inputs so first-call costs stay out of the timed rounds.
    score(lm, work["score_prompts"][:1], work["score_outputs"][:1], pad_id)
    generate(lm, work["gen_prompts"][:2], 2, pad_id)
    encoder.encode(work["encoder_texts"][:8], batch_size=8)
    say("ready")

    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        if command == "peak":
            say({"peak_gflops": peak_gflops(work["peak_shape"])})
            continue
        if command != "round":
            sys.exit(f"harness: unknown command `{command}` (expected round, peak or quit)")
        say(run_round(work, lm, trainer, encoder, pad_id))


if __name__ == "__main__":
    main()
