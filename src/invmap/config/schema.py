"""The schema of an experiment config, validated with pydantic: each section's keys, their types and
ranges, the open sections checked against their registries (`invmap.config.registries`), and one-line
errors naming the key path and what is allowed (`validate_config`). The sections are listed in
`invmap.config`'s docstring.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import distributions
from ..data.crime import check_mode
from ..data.mixture import split_source
from ..data.sources import parse_source, PATH_SOURCES, SOURCES
from ..distributions import parse, PhysicsDistribution
from ..models import KINDS, MODELS
from ..noise import build as build_noise, NOISES
from ..operators import OPERATORS
from ..physics import build_physics
from .registries import store, validate_drawn, validate_params


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class _Open(BaseModel):
    """A section whose extra keys are the parameters of a registry entry."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    def params(self) -> dict[str, Any]:
        """The registry parameters (the extra keys), as written."""
        return dict(self.model_extra or {})



def _check_source(source: str, params: dict[str, Any]) -> None:
    """A one-line error for an unknown image source or parameters it does not take."""
    name, fixed = parse_source(source)
    if name not in SOURCES.names():
        raise ValueError(f"unknown image source '{source}'; available: "
                         f"{', '.join(n for n in SOURCES.names() if n not in PATH_SOURCES)}, folder:<path>, "
                         "hdf5:<glob>")
    clash = [k for k in params if k in SOURCES.fixed]
    if clash:
        raise ValueError(f"params: '{clash[0]}' is set by the data section itself (size, counts, seed), "
                         "not in params")
    SOURCES.validate(name, {**fixed, **params})


class MixConfig(_Section):
    """Another image source mixed into the training images with weight w (`invmap.data.mixture`)."""

    source: str
    weight: float = Field(gt=0, le=1)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "MixConfig":
        _check_source(self.source, self.params)
        return self


class AugmentConfig(_Section):
    """Training-image augmentation x' = s · T(C_z(x)) (`invmap.data.augment`): zoomed random crops
    (z from ``zoom``; 1 = the whole image), flips, 90° rotations, intensity factor s ∈ [1 − a, 1 + a];
    ``fresh``: new draws every epoch. Never applied to validation or test images."""

    flips: bool = False
    rot90: bool = False
    zoom: list[Annotated[int, Field(ge=1, le=8)]] = Field(default_factory=lambda: [1], min_length=1)
    intensity: float = Field(0.0, ge=0, lt=1)
    fresh: bool = True

    def enabled(self) -> bool:
        return self.flips or self.rot90 or self.zoom != [1] or self.intensity > 0


class DataConfig(_Section):
    """Images x and pairs (y, x): how many, how big, and how y is simulated.

    ``simulation: crime`` measures y = K x on the same grid the model reconstructs on;
    ``fine`` simulates on a finer grid (no "inverse crime"). The test set defaults to fine.
    Training images: ``mix`` adds other sources with weights (the configured source takes
    1 − Σ w; validation and test images come from it alone), ``fill`` cycles a source with
    fewer than ``train`` images (each copy its own noise and augmentation) so an epoch is
    ``train`` pairs whatever the folder size, ``augment`` augments them.
    """

    source: str = "ellipses"
    size: int = Field(128, ge=8, le=4096)
    train: int = Field(2000, ge=1)
    val: int = Field(64, ge=1)
    test: int = Field(128, ge=1)
    #: a mode, or a distribution over modes such as ``{choice: [crime, fine], nominal: fine}``
    simulation: Literal["crime", "fine"] | dict[str, Any] = "crime"
    test_simulation: Literal["crime", "fine"] = "fine"
    params: dict[str, Any] = Field(default_factory=dict)
    mix: list[MixConfig] = Field(default_factory=list)
    fill: bool = True
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    #: a folder of .npy measurements y without x (`invmap.data.measurements`): training and validation
    #: data of a run learning from y alone; `source` then gives only the test set (with x)
    measurements: str | None = Field(None, min_length=1, max_length=4096)
    #: a test set of measurements y without x (the same formats): `invmap evaluate` scores each method by
    #: what y alone says (data consistency, projected SURE; `invmap.evaluation.without_x`), never by PSNR
    test_measurements: str | None = Field(None, min_length=1, max_length=4096)

    @property
    def nominal_simulation(self) -> str:
        """``simulation``, or the nominal mode of its distribution (validation of baselines, stress)."""
        return self.simulation if isinstance(self.simulation, str) else parse(self.simulation).nominal

    @model_validator(mode="after")
    def _check(self) -> "DataConfig":
        if isinstance(self.simulation, dict):
            d = parse(self.simulation)
            for mode in d.extremes():
                check_mode(mode)
        _check_source(self.source, self.params)
        if sum(m.weight for m in self.mix) > 1 + 1e-9:
            raise ValueError(f"mix: the weights sum to {sum(m.weight for m in self.mix):g} > 1 (the configured "
                             "source takes 1 − their sum)")
        return self

    def images(self, split: str, seed: int):
        """The `invmap.data.ImageSource` of `split` (`invmap.data.mixture.split_source`)."""
        count = {"train": self.train, "val": self.val, "test": self.test}[split]
        return split_source(self.source, self.size, split, count, seed, self.params,
                            mix=[m.model_dump() for m in self.mix], fill=self.fill,
                            augment=self.augment.model_dump() if self.augment.enabled() else None)


class OperatorConfig(_Open):
    """Forward operator K: ``name`` plus that operator's parameters (see `invmap operators`)."""

    name: str = "tomography"

    @model_validator(mode="after")
    def _check(self) -> "OperatorConfig":
        store(self, validate_drawn(OPERATORS, self.name, self.params(), reserved=("image_shape",))[0])
        return self


class NoiseConfig(_Open):
    """Noise model e: ``name`` plus its parameters (gaussian: sigma | relative | ..., seed)."""

    name: str = "gaussian"

    @model_validator(mode="after")
    def _check(self) -> "NoiseConfig":
        sets = validate_drawn(NOISES, self.name, self.params())
        store(self, sets[0])
        for params in sets[1:] if len(sets) > 1 else sets:  # cheap: catches conflicting levels (sigma and relative)
            build_noise(self.name, **params)
        return self


class ModelConfig(_Open):
    """The learned reconstructor: ``name`` is a kind with K inside (lgd, lpd, unrolled, pnp) or a
    network architecture for post-processing, plus its parameters (see `invmap models`).

    ``input`` (post-processing only): ``measurement`` (raw y), ``adjoint`` (Kᵀy), ``fbp`` or ``pinv``.
    """

    name: str = "unet"
    input: Literal["measurement", "adjoint", "fbp", "pinv"] = "fbp"
    pinv_iters: int = Field(10, ge=1)  # CGLS iterations of input 'pinv'
    fbp_filter: Literal["ramp", "shepp-logan", "cosine", "hann"] = "ramp"  # filter of input 'fbp'
    fbp_cutoff: float = Field(1.0, gt=0, le=1)

    def reconstructor_params(self) -> dict[str, Any]:
        """Keyword arguments of `invmap.models.LearnedReconstructor` besides the network."""
        return {"input": self.input, "pinv_iters": self.pinv_iters, "fbp_filter": self.fbp_filter,
                "fbp_cutoff": self.fbp_cutoff}

    @property
    def is_kind(self) -> bool:
        """A model-based reconstructor kind (`invmap.models.KINDS`: x̂ = recon(y, physics), K inside)
        rather than a post-processing architecture on ``input``."""
        return self.name in KINDS.names()

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        store(self, validate_params(KINDS if self.is_kind else MODELS, self.name, self.params()))
        return self


class CurriculumConfig(_Section):
    """The first ``steps`` optimizer steps on ``size``² images (x area-averaged down, K rebuilt for
    that size, y simulated per minibatch; `invmap.training.curriculum`), then the task's size."""

    size: int = Field(ge=8, le=8192)
    steps: int = Field(ge=1, le=10**9)


class TrainingConfig(_Section):
    """Minibatch training of f_Θ(y) ≈ x: min_Θ E ℓ(f_Θ(y), x) by SGD / Adam / AdamW."""

    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "step", "cosine"] = "cosine"
    warmup_epochs: float = Field(0, ge=0)  # may be a fraction: 0.2 = the first fifth of an epoch
    step_size: int = Field(10, ge=1)
    gamma: float = Field(0.5, gt=0, le=1)
    grad_clip: float = Field(1.0, ge=0)  # 0 = off
    loss: Literal["mse", "l1", "psnr", "ssim-mix"] = "mse"
    ssim_weight: float = Field(0.5, ge=0, le=1)
    mix_base: Literal["l1", "mse"] = "l1"
    batch_size: int = Field(16, ge=1)
    epochs: int = Field(20, ge=1)
    max_minutes: float = Field(0.0, ge=0)  # 0 = no time budget
    early_stopping_patience: int = Field(0, ge=0)  # 0 = off
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "on", "off"] = "auto"
    num_workers: int = Field(0, ge=0)
    fresh_noise: bool = True
    stream: bool = False  # read + simulate each minibatch when needed (data larger than memory)
    threads: int = Field(0, ge=0)  # torch CPU threads; 0 = torch's default
    init: str | None = None  # fine-tuning: start from the weights of this trained run directory
    snapshots: list[float] = Field(default_factory=list, max_length=32)  # minutes: weights saved for a learning curve
    snapshot_clock: Literal["wall", "cpu"] = "wall"  # snapshots at training-clock or this process's CPU minutes
    curriculum: CurriculumConfig | None = None  # {size: 64, steps: 2000}: the first steps on smaller images
    # learning from y alone (`invmap.selfsup`): x = pairs (y, x) with `loss`; mc | ei | sure | split never read x
    supervision: Literal["x", "mc", "ei", "sure", "split"] = "x"
    ei_group: Literal["rotations", "flips", "shifts"] = "rotations"  # ei: the transform group (asked of K)
    ei_weight: float = Field(1.0, gt=0, le=1e6)  # ei: weight of the equivariance term beside MC
    sure_eps: float = Field(0.01, gt=0, le=10)  # sure: Monte-Carlo divergence step, a fraction of the noise σ

    @pydantic.field_validator("snapshots")
    @classmethod
    def _snapshot_minutes(cls, v: list[float]) -> list[float]:
        """Training-clock minutes, each finite and > 0, at most 10⁵; kept sorted, without repeats."""
        bad = [m for m in v if not (0 < m <= 1e5)]  # NaN fails the comparison too
        if bad:
            raise ValueError(f"each snapshot is a number of minutes in (0, 100000], got {bad[0]!r}")
        return sorted(set(v))

    @pydantic.field_validator("amp", mode="before")
    @classmethod
    def _yaml_on_off(cls, v: Any) -> Any:
        """YAML reads a bare ``on`` / ``off`` as true / false: take them as meant."""
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v


#: the form of a zoo entry's name (`invmap.zoo`): one plain path component
_ZOO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class EvaluationConfig(_Section):
    """Which reconstructors to compare on the test set, and how classical ones are tuned.

    ``tune_grid`` maps a method to {parameter: [values]}; methods not listed use their
    solver's default grid when ``tune`` is on. ``params`` maps a method to settings kept fixed
    while the others are tuned (e.g. ``{pnp: {denoiser: runs/my-denoiser, iters: 30}}``). ``data_range`` is the PSNR/SSIM convention
    used everywhere scores are computed (validation during training, tuning, evaluation,
    stress study, reports): a fixed L such as ``1``, or ``max-min`` (L = max − min of each
    ground truth, as DIVal and LoDoPaB-CT); see `invmap.metrics`.
    """

    methods: list[str] = Field(default_factory=lambda: ["fbp", "tv", "model"])
    tune: bool = True
    tune_grid: dict[str, dict[str, list[Any]]] = Field(default_factory=dict)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    batch_size: int = Field(16, ge=1)
    data_range: float | str = 1.0
    zoo: bool | list[str] = True  # invmap run: the zoo entry of this task beside the model (list: those; false: none)
    adapt: bool = False  # invmap run: the model adapted to each test condition (`adapted`) beside it; off by default
    bound: float = Field(0.9, ge=0, lt=1)  # per-image PSNR lower bound at this probability (trust); 0 = none
    pixel_risk: float = Field(0.1, ge=0, lt=1)  # per-pixel intervals missing at most this fraction (α); 0 = none
    pixel_delta: float = Field(0.1, gt=0, lt=1)  # … with probability 1 − δ over the calibration pairs
    # the method the learned methods' trust score, PSNR bound, pixel intervals and safe's promise are measured
    # against (a variational method or pretrained:NAME); null: `invmap.evaluation.resolve.TRUST_REFERENCE`
    trust_reference: str | None = None
    outside_call_seconds: float = Field(300.0, gt=0, le=86400)  # a method from outside: one call (`invmap.timelimit`)
    outside_seconds: float = Field(600.0, gt=0, le=604800)  # … all its calls in one command

    @pydantic.field_validator("zoo", mode="before")
    @classmethod
    def _zoo_names(cls, v: Any) -> Any:
        """true, false, or at most 16 entry names (``NAME`` or ``pretrained:NAME``), each a plain name
        (letters, digits, ``.``, ``_``, ``-``; not starting with ``.``): never a path. Whether an entry
        exists and is of this task is asked of the zoo (`invmap.zoo.beside`) by ``invmap run`` and
        ``invmap config --check`` alike."""
        names = isinstance(v, list) and len(v) <= 16 and all(isinstance(n, str) and 0 < len(n) <= 200 for n in v)
        if not (isinstance(v, bool) or names):
            raise ValueError(f"must be true, false or a list of at most 16 zoo entry names, got {str(v)[:60]!r}")
        for n in v if isinstance(v, list) else ():
            bare = n.removeprefix("pretrained:")
            if not _ZOO_NAME.fullmatch(bare):
                raise ValueError(f"{n[:60]!r} is not a zoo entry name (letters, digits, '.', '_', '-'; "
                                 "see `invmap zoo`)")
        return v

    @pydantic.field_validator("trust_reference", mode="before")
    @classmethod
    def _reference_name(cls, v: Any) -> Any:
        """null or a method name (at most 200 characters); whether it names a method that can run on the
        task's operator is asked of the resolver (`invmap.evaluation.resolve.check_trust_reference`)."""
        if v is not None and not (isinstance(v, str) and 0 < len(v) <= 200):
            raise ValueError(f"must be a method name (e.g. tv or pnp) or null, got {str(v)[:60]!r}")
        return v

    @pydantic.field_validator("data_range", mode="before")
    @classmethod
    def _data_range(cls, v: Any) -> Any:
        """A finite number > 0 (a fixed L) or ``max-min`` (see `invmap.metrics.DataRange`)."""
        if v == "max-min":
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf"):
            raise ValueError(f"must be a number > 0 or max-min, got {v!r}")
        return float(v)


class Config(_Section):
    """A whole experiment (see the module docstring)."""

    name: str = "experiment"
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    operator: OperatorConfig = Field(default_factory=OperatorConfig)
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)

    @pydantic.field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        """The name becomes a directory (runs/NAME): one path component, never a path."""
        if not v.strip() or v in (".", "..") or any(c in v for c in "/\\\0") or len(v) > 200:
            raise ValueError(f"{v!r} must be a plain name (no '/', '\\', '..'; at most 200 characters): it "
                             "names the run directory inside --out, so it cannot point elsewhere")
        return v

    @model_validator(mode="after")
    def _check_distributions(self) -> "Config":
        """Distribution-valued operator parameters: K built with every extreme of each (cheap:
        geometry only, no matrices), and a model and data path that can take per-sample K."""
        params = self.operator.params()
        drawn = [k for k, v in params.items() if distributions.is_distribution(v)]
        if not drawn and not isinstance(self.data.simulation, dict) and not any(
                distributions.is_distribution(v) for v in self.noise.params().values()):
            return self
        if self.training.stream:
            raise ValueError("training.stream cannot simulate distribution-valued physics yet (pairs are grouped "
                             "by their drawn K up front); set training.stream: false")
        defaults = {p.name: p.default for p in OPERATORS.params(self.operator.name)}
        dists = {k: distributions.parse(params[k], defaults.get(k)) for k in drawn}
        nominal = {**params, **{k: d.nominal for k, d in dists.items()}}
        try:
            OPERATORS.build(self.operator.name, image_shape=self.image_shape, **nominal)
        except ValueError as e:
            raise ValueError(f"operator (its nominal values): {e}") from None
        shapes: dict[str, set[tuple[int, ...]]] = {}  # measurement shapes over each distribution's extremes
        for k, d in dists.items():
            for v in d.extremes():
                try:
                    op = OPERATORS.build(self.operator.name, image_shape=self.image_shape, **{**nominal, k: v})
                except ValueError as e:
                    raise ValueError(f"operator.{k} = {v!r} (a value of its distribution): {e}") from None
                shapes.setdefault(k, set()).add(tuple(op.out_shape))
        recon = [k for k in drawn if k not in self.physics_distribution().sim_only]
        if recon and not self.model.is_kind and self.model.input == "measurement":
            # z = y: one network input shape for every draw (a kind instead shares one K per minibatch)
            for k in recon:
                if len(shapes[k]) > 1:
                    raise ValueError(f"operator.{k} is drawn per sample and changes the measurement's shape "
                                     f"({' vs '.join(str(list(t)) for t in sorted(shapes[k]))}): model.input "
                                     f"'measurement' feeds y itself to the network, which takes one shape; use "
                                     f"input fbp, adjoint or pinv, or a model-based kind (one K per minibatch)")
        return self

    # -- conveniences -------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int]:
        return (self.data.size, self.data.size)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """YAML text that `load_config` reads back to an equal config."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)

    def physics_spec(self) -> dict[str, Any]:
        """The task's physics spec (`invmap.physics`): the operator and noise sections, each
        distribution-valued parameter at its nominal value (`invmap.distributions`)."""
        return self.physics_distribution().nominal_spec()

    def physics_distribution(self):
        """`invmap.distributions.PhysicsDistribution` of the training pairs: the operator and noise
        parameters and ``data.simulation`` as written (values or distributions)."""
        return PhysicsDistribution({"name": self.operator.name, "params": self.operator.params()},
                                   {"name": self.noise.name, "params": self.noise.params()}, self.data.simulation)

    def physics(self):
        """`invmap.physics.Physics` (K, noise) described by this config (`build_physics`)."""
        return build_physics(self.physics_spec(), self.image_shape)


def _fields_at(loc: tuple) -> tuple[type[BaseModel] | None, bool]:
    """The pydantic model class addressed by `loc` (a path of field names) in `Config`."""
    cls: Any = Config
    for part in loc:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or part not in cls.model_fields:
            return None, False
        ann = cls.model_fields[part].annotation
        cls = ann
    return (cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None), True


def _format_error(err: dict) -> str:
    loc = tuple(str(p) for p in err.get("loc", ()))
    path = ".".join(loc) or "(top)"
    typ = err.get("type", "")
    val = err.get("input")
    ctx = err.get("ctx") or {}
    if typ == "extra_forbidden":
        parent, _ = _fields_at(loc[:-1])
        allowed = ", ".join(parent.model_fields) if parent is not None else "?"
        return f"config: {path}: unknown key '{loc[-1]}'; allowed: {allowed}"
    if typ == "literal_error":
        exp = ctx.get("expected", "")
        options = ", ".join(s.strip().strip("'\"") for s in re.split(r",|\bor\b", str(exp)) if s.strip())
        return f"config: {path}: {val!r} is not one of {options}"
    msg = str(err.get("msg", "invalid value"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if typ in ("value_error", "assertion_error"):
        return f"config: {path}: {msg}" if loc else f"config: {msg}"
    return f"config: {path}: {msg} (got {val!r})"


def validate_config(data: Any) -> Config:
    """A `Config` from a plain dict; raises a one-line ValueError naming the bad key path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"config: expected a mapping of sections at the top level, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except pydantic.ValidationError as e:
        raise ValueError(_format_error(e.errors()[0])) from None


__all__ = ["Config", "DataConfig", "OperatorConfig", "NoiseConfig", "ModelConfig", "TrainingConfig",
           "EvaluationConfig", "MixConfig", "AugmentConfig", "validate_config"]
