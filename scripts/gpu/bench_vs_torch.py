"""Benchmark: edu-train CUDA encoder (bf16) vs PyTorch + transformers BertModel (bf16, SDPA attention),
same machine, same run, same safetensors, same inputs.

Model: BERT-base shape (H 768, 12 layers, 12 heads, FFN 3072, vocab 30522), random weights written once
to a safetensors folder (or --model-dir for a real one). Workloads:
  * seq512: batch 256 x 512 real tokens (no padding);
  * mix:    batch 256, lengths uniform in 32..512, right padded (PyTorch computes the padding, edu-train
            packs and does not).
Throughput = real (non-pad) tokens / median wall time of a forward that returns mean-pooled [B, H] on
the host for edu-train (host packing + H2D + D2H included) and mean-pooled on the device, synchronised,
for PyTorch. Also checks edu bf16 vs torch fp32 mean-pooled (relative L2).
Targets (issue 5): edu >= 1.5x PyTorch tokens/s, and >= 2.5M tokens/s at seq 512 on an H100.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import edu_cuda  # noqa: E402


def make_model_dir(d: Path, seed: int = 0) -> Path:
    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)
    torch.manual_seed(seed)
    m = BertModel(cfg)  # HF init: normal(0, 0.02) weights, LayerNorm 1/0
    with torch.no_grad():  # non-trivial LayerNorm and biases, like the golden fixtures
        for n, p in m.named_parameters():
            if n.endswith("bias"):
                p.normal_(0, 0.02)
            elif "LayerNorm.weight" in n:
                p.uniform_(0.8, 1.2)
    m.save_pretrained(str(d), safe_serialization=True)
    return d


def workloads(seed: int, batch: int, vocab: int):
    rng = np.random.default_rng(seed)
    out = {}
    ids = rng.integers(1000, vocab, size=(batch, 512), dtype=np.int32)
    ids[:, 0] = 101
    out["seq512"] = (ids, np.ones_like(ids))
    lens = rng.integers(32, 513, size=batch)
    L = int(lens.max())
    ids = rng.integers(1000, vocab, size=(batch, L), dtype=np.int32)
    ids[:, 0] = 101
    mask = (np.arange(L)[None, :] < lens[:, None]).astype(np.int32)
    ids = np.where(mask == 1, ids, 0).astype(np.int32)
    out["mix"] = (ids, mask)
    return out


def time_it(fn, warmup: int, reps: int) -> list[float]:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return ts


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", help="HF BERT folder (config.json + model.safetensors); default: random BERT-base")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--out", default="bench_vs_torch.json")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--save-model-dir", help="write the random BERT-base folder here (for bench-node.mjs) instead of a temp dir")
    a = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    if a.model_dir:
        model_dir = Path(a.model_dir)
    else:
        model_dir = make_model_dir(Path(a.save_model_dir) if a.save_model_dir else Path(tmp.name) / "bert-base-random")
    cfg, tensors = edu_cuda.load_folder(model_dir)
    loads = workloads(1, a.batch, cfg["vocab"])
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(0)
    report = {
        "machine": {"gpu": props.name, "sms": props.multi_processor_count, "torch": torch.__version__,
                    "cuda": torch.version.cuda, "python": platform.python_version(), "host": platform.node()},
        "model": {k: cfg[k] for k in ("hidden", "layers", "heads", "inter", "vocab")},
        "command": " ".join(sys.argv), "batch": a.batch, "results": {},
    }

    enc = edu_cuda.Encoder(cfg, tensors, 0, "bf16")
    report["edu_kernels"] = enc.description
    print("edu:", enc.description)

    tmodel = tmodel32 = None
    if not a.skip_torch:
        from transformers import BertModel
        tmodel = BertModel.from_pretrained(str(model_dir), attn_implementation="sdpa", torch_dtype=torch.bfloat16,
                                           add_pooling_layer=False).to(dev).eval()
        tmodel32 = BertModel.from_pretrained(str(model_dir), attn_implementation="sdpa", torch_dtype=torch.float32,
                                             add_pooling_layer=False).to(dev).eval()

    for name, (ids, mask) in loads.items():
        real = int(mask.sum())
        r = {"shape": list(ids.shape), "real_tokens": real, "padded_tokens": int(ids.size)}
        edu_ts = time_it(lambda: enc.forward(ids, mask, outputs=("mean",)), a.warmup, a.reps)
        r["edu_bf16"] = {"median_s": statistics.median(edu_ts), "tokens_per_s": real / statistics.median(edu_ts), "times": edu_ts}
        ours = enc.forward(ids, mask, outputs=("mean",))["mean"]
        if tmodel is not None:
            ti, tm = torch.from_numpy(ids.astype(np.int64)).to(dev), torch.from_numpy(mask.astype(np.int64)).to(dev)

            def torch_fwd(model=tmodel):
                with torch.inference_mode():
                    h = model(input_ids=ti, attention_mask=tm).last_hidden_state
                    m = tm.unsqueeze(-1).to(h.dtype)
                    pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
                torch.cuda.synchronize()
                return pooled

            t_ts = time_it(torch_fwd, a.warmup, a.reps)
            r["torch_bf16_sdpa"] = {"median_s": statistics.median(t_ts), "tokens_per_s": real / statistics.median(t_ts), "times": t_ts}
            r["speedup"] = r["edu_bf16"]["tokens_per_s"] / r["torch_bf16_sdpa"]["tokens_per_s"]
            # Accuracy: both bf16 vs the fp32 reference (a slice of rows keeps fp32 memory small).
            rows = slice(0, min(32, ids.shape[0]))
            with torch.inference_mode():
                h32 = tmodel32(input_ids=ti[rows], attention_mask=tm[rows]).last_hidden_state
                m32 = tm[rows].unsqueeze(-1).float()
                ref = ((h32 * m32).sum(1) / m32.sum(1)).double().cpu().numpy()
            tb = torch_fwd().float()[rows].double().cpu().numpy()
            rel = lambda x: float(np.linalg.norm(x - ref) / np.linalg.norm(ref))  # noqa: E731
            r["rel_l2_vs_torch_fp32"] = {"edu_bf16": rel(ours[rows].astype(np.float64)), "torch_bf16": rel(tb)}
        report["results"][name] = r
        line = f"{name:7s} edu {r['edu_bf16']['tokens_per_s'] / 1e6:6.3f} M tok/s"
        if "speedup" in r:
            line += f" | torch {r['torch_bf16_sdpa']['tokens_per_s'] / 1e6:6.3f} M tok/s | x{r['speedup']:.2f}"
            line += f" | rel err edu {r['rel_l2_vs_torch_fp32']['edu_bf16']:.2e} torch {r['rel_l2_vs_torch_fp32']['torch_bf16']:.2e}"
        print(line)

    s512 = report["results"]["seq512"]
    report["targets"] = {
        "seq512_tokens_per_s_ge_2.5M": s512["edu_bf16"]["tokens_per_s"] >= 2.5e6,
        "speedup_ge_1.5_seq512": s512.get("speedup", 0) >= 1.5,
        "speedup_ge_1.5_mix": report["results"]["mix"].get("speedup", 0) >= 1.5,
    }
    Path(a.out).write_text(json.dumps(report, indent=1))
    print("targets:", report["targets"])
    enc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
