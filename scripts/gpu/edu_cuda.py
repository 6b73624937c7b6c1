"""ctypes wrapper over build/capi/libedu_cuda_capi.so (kernels/cuda/capi.cpp) and a loader for
Hugging Face model folders (config.json + model.safetensors), with the canonical weight names of
src/native/addon-types.ts. Used by golden_gpu.py and bench_vs_torch.py on GPU machines (no Node).
"""
from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _lib_path() -> Path:
    env = os.environ.get("EDU_CUDA_CAPI")
    return Path(env) if env else ROOT / "build" / "capi" / "libedu_cuda_capi.so"


class CudaError(RuntimeError):
    @property
    def out_of_memory(self) -> bool:
        return str(self).startswith("CUDA out of memory")


_lib = None


def lib():
    global _lib
    if _lib is None:
        L = ctypes.CDLL(str(_lib_path()))
        L.edu_cuda_last_error.restype = ctypes.c_char_p
        L.edu_cuda_create.restype = ctypes.c_void_p
        L.edu_cuda_create.argtypes = [
            ctypes.POINTER(ctypes.c_int), ctypes.c_double, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
            ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t),
            ctypes.c_int, ctypes.c_char_p]
        L.edu_cuda_destroy.argtypes = [ctypes.c_void_p]
        L.edu_cuda_describe.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        L.edu_cuda_forward.restype = ctypes.c_int
        L.edu_cuda_forward.argtypes = [ctypes.c_void_p] + [ctypes.c_void_p] * 3 + [ctypes.c_int, ctypes.c_int] + [ctypes.c_void_p] * 5
        L.edu_cuda_mem.argtypes = [ctypes.c_void_p] + [ctypes.POINTER(ctypes.c_size_t)] * 3
        _lib = L
    return _lib


def _err() -> str:
    return lib().edu_cuda_last_error().decode()


PREFIXES = ("bert.", "roberta.", "electra.")


def canonical_weights(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """HF state-dict names -> the addon's canonical names (no model prefix, LayerNorm weight/bias)."""
    out = {}
    for name, t in tensors.items():
        n = name
        for p in PREFIXES:
            if n.startswith(p):
                n = n[len(p):]
        n = n.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        if t.dtype.kind != "f":
            continue  # position_ids buffers
        out[n] = np.ascontiguousarray(t, dtype=np.float32)
    return out


def read_config(model_dir: Path, tensors: dict[str, np.ndarray]) -> dict:
    cfg = json.loads((model_dir / "config.json").read_text())
    mt = cfg.get("model_type", "bert")
    H = cfg["hidden_size"]
    E = cfg.get("embedding_size", H) if mt == "electra" else H
    arch = (cfg.get("architectures") or [""])[0]
    seqcls = arch.endswith("ForSequenceClassification")
    head = "none"
    if seqcls:
        head = {"bert": "bert", "roberta": "roberta", "xlm-roberta": "roberta", "electra": "electra"}[mt]
    has_pooler = "pooler.dense.weight" in tensors
    num_labels = 0
    if head != "none":
        num_labels = len(cfg.get("id2label", {})) or cfg.get("num_labels", 2)
    return dict(
        vocab=cfg["vocab_size"], hidden=H, embedding=E, layers=cfg["num_hidden_layers"],
        heads=cfg["num_attention_heads"], inter=cfg["intermediate_size"], max_pos=cfg["max_position_embeddings"],
        type_vocab=cfg.get("type_vocab_size", 2), pad=cfg.get("pad_token_id", 0) or 0,
        eps=cfg.get("layer_norm_eps", 1e-12), position_style="roberta" if mt in ("roberta", "xlm-roberta") else "absolute",
        head=head, has_pooler=has_pooler, num_labels=num_labels)


def load_folder(model_dir: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    from safetensors.numpy import load_file
    model_dir = Path(model_dir)
    tensors = canonical_weights(load_file(str(model_dir / "model.safetensors")))
    return read_config(model_dir, tensors), tensors


class Encoder:
    def __init__(self, cfg: dict, tensors: dict[str, np.ndarray], device: int = 0, precision: str = "bf16"):
        self.cfg = cfg
        ints = (ctypes.c_int * 11)(cfg["vocab"], cfg["hidden"], cfg["embedding"], cfg["layers"], cfg["heads"],
                                   cfg["inter"], cfg["max_pos"], cfg["type_vocab"], cfg["pad"], int(cfg["has_pooler"]),
                                   cfg["num_labels"])
        names = list(tensors)
        arrs = [tensors[n] for n in names]
        c_names = (ctypes.c_char_p * len(names))(*[n.encode() for n in names])
        c_data = (ctypes.c_void_p * len(names))(*[a.ctypes.data for a in arrs])
        c_sizes = (ctypes.c_size_t * len(names))(*[a.size for a in arrs])
        h = lib().edu_cuda_create(ints, cfg["eps"], cfg["position_style"].encode(), cfg["head"].encode(), len(names),
                                  c_names, c_data, c_sizes, device, precision.encode())
        if not h:
            raise CudaError(_err())
        self.h = h
        buf = ctypes.create_string_buffer(512)
        lib().edu_cuda_describe(h, buf, 512)
        self.description = buf.value.decode()

    def close(self):
        if self.h:
            lib().edu_cuda_destroy(self.h)
            self.h = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def mem(self) -> tuple[int, int, int]:
        f, t, b = ctypes.c_size_t(), ctypes.c_size_t(), ctypes.c_size_t()
        if lib().edu_cuda_mem(self.h, ctypes.byref(f), ctypes.byref(t), ctypes.byref(b)) != 0:
            raise CudaError(_err())
        return f.value, t.value, b.value

    def forward(self, ids, mask, types=None, outputs=("mean",)) -> dict[str, np.ndarray]:
        ids = np.ascontiguousarray(ids, dtype=np.int32)
        mask = np.ascontiguousarray(mask, dtype=np.int32)
        B, L = ids.shape
        H, N = self.cfg["hidden"], self.cfg["num_labels"]
        shapes = {"last_hidden_state": (B, L, H), "mean": (B, H), "cls": (B, H), "pooler": (B, H), "logits": (B, N)}
        bufs = {k: np.empty(shapes[k], dtype=np.float32) for k in outputs}
        t = None if types is None else np.ascontiguousarray(types, dtype=np.int32)
        p = lambda k: bufs[k].ctypes.data if k in bufs else None  # noqa: E731
        rc = lib().edu_cuda_forward(self.h, ids.ctypes.data, mask.ctypes.data, None if t is None else t.ctypes.data,
                                    B, L, p("last_hidden_state"), p("mean"), p("cls"), p("pooler"), p("logits"))
        if rc != 0:
            raise CudaError(_err())
        return bufs
