"""Golden conformance suite on the GPU through the C API (no Node needed).

  fp32: max abs error <= atol_hint_per_output (the CPU's criterion).
  bf16: per output, ||got - ref|| / ||ref|| <= 3e-2 and max abs error <= 0.1 * max|ref|.

Also: CUDA fp32 vs CUDA bf16 vs PyTorch on irregular masks (left padding, holes, an all-masked row)
when transformers is importable. Writes JSON to --out; exit 1 on any failure.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import edu_cuda  # noqa: E402

CASES = ["bert-tiny", "roberta-tiny", "bert-tiny-seqcls-regression", "bert-tiny-large-weights"]
OUT_MAP = {"last_hidden_state": "last_hidden_state", "mean_pooled": "mean", "cls": "cls", "pooler_output": "pooler", "logits": "logits"}
BF16_REL, BF16_MAXFRAC = 3e-2, 0.1


def errors(got: np.ndarray, ref: np.ndarray) -> dict:
    d = got.astype(np.float64).ravel() - ref.astype(np.float64).ravel()
    return {"max_abs": float(np.abs(d).max()) if d.size else 0.0,
            "rel_l2": float(np.linalg.norm(d) / max(np.linalg.norm(ref.ravel()), 1e-30)),
            "max_ref": float(np.abs(ref).max()) if ref.size else 0.0,
            "nan": bool(np.isnan(got).any())}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--golden", default=str(Path(__file__).resolve().parents[3] / "shared" / "golden"))
    ap.add_argument("--out", default="golden_gpu.json")
    ap.add_argument("--device", type=int, default=0)
    a = ap.parse_args()
    golden = Path(a.golden)
    results, ok = [], True
    for case in CASES:
        d = golden / case
        cfg, tensors = edu_cuda.load_folder(d)
        inputs = json.loads((d / "inputs.json").read_text())
        exp = json.loads((d / "expected.json").read_text())
        ids, mask = np.array(inputs["input_ids"]), np.array(inputs["attention_mask"])
        types = np.array(inputs["token_type_ids"]) if "token_type_ids" in inputs else None
        for prec in ("fp32", "bf16"):
            enc = edu_cuda.Encoder(cfg, tensors, a.device, prec)
            want = [v for k, v in OUT_MAP.items() if k in exp]
            got = enc.forward(ids, mask, types, outputs=tuple(want))
            for key, ours in OUT_MAP.items():
                if key not in exp:
                    continue
                ref = np.array(exp[key], dtype=np.float64)
                e = errors(got[ours], ref)
                if prec == "fp32":
                    e["tol"] = exp["atol_hint_per_output"][key]
                    e["pass"] = (not e["nan"]) and e["max_abs"] <= e["tol"]
                else:
                    e["tol"] = {"rel_l2": BF16_REL, "max_abs": BF16_MAXFRAC * e["max_ref"]}
                    e["pass"] = (not e["nan"]) and e["rel_l2"] <= BF16_REL and e["max_abs"] <= BF16_MAXFRAC * e["max_ref"]
                ok &= e["pass"]
                results.append({"case": case, "precision": prec, "output": key, **e})
                print(f"{'PASS' if e['pass'] else 'FAIL'} {case:30s} {prec} {key:18s} max_abs={e['max_abs']:.3e} rel_l2={e['rel_l2']:.3e}")
            if prec == "bf16":
                print("   kernels:", enc.description)
            enc.close()
    Path(a.out).write_text(json.dumps({"pass": ok, "results": results}, indent=1))
    print("golden on GPU:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
