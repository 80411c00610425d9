"""The one interface every engine implements, and the per-worker engine cache.

A request is chat messages plus an optional prefix of the assistant's reply; engines render it with the model's
chat template themselves. Engines never raise for one bad row: a row that fails (an over-long prompt, a decoding
error) comes back with `error` set, and the rest of the batch is answered.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Protocol, Sequence


@dataclass(frozen=True)
class Request:
    messages: tuple[dict[str, str], ...]
    assistant_prefix: str = ""  # text the assistant's reply starts with (e.g. "Score:" for logprob rating)
    # This row's sampling seed (humpback.inference.seeding.row_seed of the run's seed and the row's key); sample j
    # of the row uses sample_seeds(seed, n)[j]. None: derived from Sampling.seed and the row's place in the call.
    seed: int | None = None


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; the paper's generation defaults (T=0.7, top-p=0.9)."""

    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 256
    seed: int = 0  # the run's seed: rows without their own (Request.seed) derive one from it and their position
    n: int = 1  # samples per request (ratings averaged over n)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], n: int = 1) -> Sampling:
        """From a section of conf/defaults.toml with temperature, top_p, max_new_tokens and seed."""
        return cls(temperature=float(settings["temperature"]), top_p=float(settings["top_p"]),
                   max_new_tokens=int(settings["max_new_tokens"]), seed=int(settings["seed"]), n=n)


STOP, LENGTH = "stop", "length"  # finish reasons: the model ended its reply / the token budget cut it


@dataclass
class Generation:
    texts: list[str] = field(default_factory=list)  # n samples; empty when error is set
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    finish_reasons: list[str] = field(default_factory=list)  # per sample: STOP or LENGTH
    seeds: list[int] = field(default_factory=list)  # per sample: the seed it was drawn with (empty when greedy)

    @property
    def finish_reason(self) -> str | None:
        """LENGTH when any sample was cut by the token budget, else STOP; None without samples."""
        if not self.finish_reasons:
            return None
        return LENGTH if LENGTH in self.finish_reasons else STOP


@dataclass
class TokenScores:
    """Probabilities of the candidate next tokens after the prompt (renormalized over the candidates)."""

    probs: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    error: str | None = None
    candidate_mass: float | None = None  # raw probability the candidates had before renormalizing (0..1)


class Engine(Protocol):
    kind: str
    model_ref: str

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[Generation]: ...

    def next_token_probs(self, requests: Sequence[Request], candidates: Sequence[str]) -> list[TokenScores]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class EngineSpec:
    """What a Spark task needs to build an engine on its worker: picklable, hashable, small."""

    kind: str  # transformers | vllm | openai
    model_ref: str
    options: tuple[tuple[str, Any], ...] = ()  # engine settings (batch size, device, base_url, ...)

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)


_ENGINES: dict[EngineSpec, Engine] = {}


def get_engine(spec: EngineSpec) -> Engine:
    """The engine for `spec`, built once per Python worker and reused by every later batch and task.

    A worker holds one engine: when a stage moves to another model (augment then curate in one process, as demo
    and iterate run them), the engines of other specs are closed and dropped before the new one is built, so the
    two models are never in memory together (on a GPU the second would not fit).
    """
    engine = _ENGINES.get(spec)
    if engine is None:
        release_engines(keep=spec)
        engine = _ENGINES[spec] = build_engine(spec)
    return engine


def release_engines(keep: EngineSpec | None = None) -> None:
    """Close and drop every cached engine but `keep`'s."""
    for spec in [cached for cached in _ENGINES if cached != keep]:
        engine = _ENGINES.pop(spec)
        try:
            engine.close()
        except Exception:  # noqa: BLE001, S110 - a failed close must not stop the next model from loading
            pass


def build_engine(spec: EngineSpec) -> Engine:
    if spec.option("mlflow_uri"):
        from humpback.tracking import configure_mlflow

        configure_mlflow(spec.option("mlflow_uri"))
    if spec.kind == "transformers":
        from humpback.inference.transformers_engine import TransformersEngine

        return TransformersEngine.from_spec(spec)
    if spec.kind == "vllm":
        from humpback.inference.vllm_engine import VllmEngine

        return VllmEngine.from_spec(spec)
    if spec.kind == "openai":
        from humpback.inference.openai_engine import OpenAIEngine

        return OpenAIEngine.from_spec(spec)
    raise ValueError(f"unknown engine {spec.kind!r}: expected transformers, vllm or openai")
