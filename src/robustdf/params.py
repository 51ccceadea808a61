"""Declarative schema for ``params.yaml``: one pydantic model per stage group.

Every stage calls :func:`load_group` first, so a typo or an out-of-range value stops the
stage before any work is done, with one message naming the key, the value and what is allowed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", "DeepFakeDetection")
REAL_SOURCES = ("youtube", "actors")
SPLITS = ("train", "val", "test")
ATTACKS = ("fgsm", "pgd", "apgd")  # gradient attacks, one stage each; Square runs on their survivors (masking check)
LOSSES = ("ce", "margin")  # attack losses; DLR needs >= 3 classes, for two the margin takes its role
MODELS = ("baseline", "gr")
DATASET_KINDS = ("celebdf", "csv", "dfdc", "dffd", "ffpp")  # robustdf.data.readers (a test keeps both equal)
VARIANT_REGULARIZER = {"baseline": "none", "gr": "gr"}


class ParamsError(ValueError):
    """A parameter in ``params.yaml`` is missing, unknown or out of range."""


def _check_files(info: ValidationInfo) -> bool:
    """Whether validators should check that named files exist (not before the pipeline made them)."""
    return (info.context or {}).get("check_files", True)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_eps(value: Any) -> float:
    """Parse a pixel-unit epsilon: ``0.0078``, ``2/255`` or ``"2/255"``; must lie in [0, 1]."""
    if isinstance(value, bool):
        raise ValueError(f"eps must be a number or a fraction like '2/255', got {value!r}")
    if isinstance(value, (int, float)):
        eps = float(value)
    elif isinstance(value, str):
        try:
            num, _, den = value.replace(" ", "").partition("/")
            eps = float(num) / float(den) if den else float(num)  # '2/255', '0.5/255', '0.0078'
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"eps must be a number or a fraction like '2/255', got {value!r}") from None
    else:
        raise ValueError(f"eps must be a number or a fraction like '2/255', got {value!r}")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must lie in [0, 1] (pixel units), got {value!r}")
    return eps


class CelebDFSampleParams(Strict):
    """The Celeb-DF-v2-shaped test set of the sample: another manipulation family, another compression."""

    celebrities: int = Field(8, ge=2)  # paired as target/source; an even number
    youtube_reals: int = Field(4, ge=0)
    crf: int = Field(32, ge=0, le=51)  # x264 CRF (the training corpus uses make_sample.compression)
    unlisted: int = Field(2, ge=0)  # videos written but left out of List_of_testing_videos.txt

    @field_validator("celebrities")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"celebrities must be even (they are paired), got {v}")
        return v


class DFFDSampleParams(Strict):
    """The DFFD-shaped image set of the sample: real ffhq/celeba, fake stylegan_ffhq/faceapp images."""

    images_per_source: int = Field(6, ge=1)  # in the test split; train and validation get 2 each


class MakeSampleParams(Strict):
    seed: int = 0
    n_identities: int = Field(40, ge=6)
    methods: list[Literal["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter"]]
    compression: Literal["raw", "c23", "c40"] = "c23"
    frames: int = Field(48, ge=4)
    size: int = Field(128, ge=48, le=1024)
    fps: int = Field(25, ge=1)
    keyframe_interval: int = Field(25, ge=1)
    workers: int = Field(1, ge=1, le=64)
    split_fractions: dict[Literal["train", "val", "test"], float]
    celebdf: CelebDFSampleParams = CelebDFSampleParams()
    dffd: DFFDSampleParams = DFFDSampleParams()

    @field_validator("size")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 16:
            raise ValueError(f"size must be a multiple of 16 for H.264, got {v}")
        return v

    @field_validator("split_fractions")
    @classmethod
    def _fractions(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != set(SPLITS) or abs(sum(v.values()) - 1) > 1e-6 or min(v.values()) <= 0:
            raise ValueError(f"split_fractions needs positive train/val/test summing to 1, got {v}")
        return v


class FaceCropParams(Strict):
    enabled: bool = False
    scale: float = Field(1.3, ge=1.0, le=3.0)
    fallback: Literal["nearest", "center", "drop"] = "nearest"
    # dlib HOG upsampling steps, or 'auto': enough for a face of min_face x the frame's shorter side
    upsample: Union[Literal["auto"], int] = "auto"
    min_face: float = Field(0.125, gt=0.0, le=1.0)
    # a video whose share of sampled frames without a detected face exceeds this is a failure
    # (low_face: fail) or kept with low_face=1 in the manifest (low_face: flag)
    max_fallback_share: float = Field(0.5, ge=0.0, le=1.0)
    low_face: Literal["fail", "flag"] = "fail"
    reuse_original_boxes: bool = True  # fakes take the boxes of their target original's frames

    @field_validator("upsample", mode="before")
    @classmethod
    def _upsample(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 2):
            return v
        raise ValueError(f"upsample must be 'auto' or 0, 1 or 2 (dlib HOG upsampling steps), got {v!r}")


class TestSetParams(Strict):
    """A test-only dataset: read by the reader registered for ``kind`` (:mod:`robustdf.data.readers`)."""

    __test__ = False  # not a pytest class

    kind: Literal[DATASET_KINDS]  # type: ignore[valid-type]
    root: str  # the dataset's folder (for kind csv: the CSV file); its reader checks it, in extract_test@<name>
    options: dict[str, Any] = {}  # further arguments of the reader, e.g. {split: test} for dffd (checked by it)


class ExtractParams(Strict):
    ffpp_root: str
    compression: Literal["raw", "c23", "c40"] = "c23"
    real_sources: list[Literal["youtube", "actors"]] = ["youtube"]
    methods: list[Literal[FFPP_METHODS]]  # type: ignore[valid-type]
    frames_per_video: int = Field(8, ge=1)
    image_size: int = Field(64, ge=16, le=1024)
    face_crop: FaceCropParams = FaceCropParams()
    workers: int = Field(1, ge=1, le=64)
    max_failure_share: float = Field(0.1, ge=0.0, le=1.0)
    # test-only sets, by a short name (stage names and metric keys): one extract_test@<name> stage each
    test_sets: dict[str, TestSetParams] = {}

    @field_validator("test_sets")
    @classmethod
    def _names(cls, v: dict[str, TestSetParams]) -> dict[str, TestSetParams]:
        bad = [n for n in v if not re.fullmatch(r"[a-z][a-z0-9]{0,11}", n)]
        if bad:
            raise ValueError(f"test set names must be 1-12 lower-case letters or digits, starting with a letter "
                             f"(they name stages and metric keys), got {bad}")
        return v

    @field_validator("ffpp_root")
    @classmethod
    def _root_exists(cls, v: str, info: ValidationInfo) -> str:
        if _check_files(info) and not Path(v).is_dir():
            raise ValueError(f"dataset root folder {v!r} does not exist")
        return v

    @field_validator("methods")
    @classmethod
    def _nonempty(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError("methods must be a non-empty list without repeats")
        return v


class SplitParams(Strict):
    official: bool = True  # use FF++'s splits/{train,val,test}.json found under the dataset root
    fractions: dict[Literal["train", "val", "test"], float] = {"train": 0.7, "val": 0.15, "test": 0.15}
    holdout_methods: list[Literal[FFPP_METHODS]] = []  # type: ignore[valid-type]
    seed: int = 0

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: dict[str, float]) -> dict[str, float]:
        return MakeSampleParams._fractions(v)


class BalanceParams(Strict):
    strategy: Literal["undersample", "oversample", "none"] = "undersample"
    splits: list[Literal["train", "val", "test"]] = ["train", "val"]
    seed: int = 0


class AugmentParams(Strict):
    hflip: bool = True
    brightness: float = Field(0.1, ge=0.0, le=1.0)
    contrast: float = Field(0.1, ge=0.0, le=1.0)
    jpeg_prob: float = Field(0.0, ge=0.0, le=1.0)
    jpeg_quality: tuple[int, int] = (60, 95)  # (low, high), drawn uniformly per frame

    @field_validator("jpeg_quality")
    @classmethod
    def _quality_range(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= v[0] <= v[1] <= 100:
            raise ValueError(f"jpeg_quality must be [low, high] with 1 <= low <= high <= 100, got {list(v)}")
        return v


class RecipeParams(Strict):
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(32, ge=2)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_epochs: float = Field(1.0, ge=0)
    grad_clip: float | None = Field(5.0, gt=0)
    num_workers: int = Field(0, ge=0)
    # global: batch_size is the global batch, split evenly over the processes (lr as given);
    # per_process: each process takes batch_size, and lr is scaled linearly by the process count
    batch_scope: Literal["global", "per_process"] = "global"
    augment: AugmentParams = AugmentParams()

    def for_processes(self, world_size: int) -> tuple[int, float]:
        """(batch size per process, learning rate) under ``world_size`` processes, by ``batch_scope``."""
        if self.batch_scope == "per_process":
            return self.batch_size, self.lr * world_size
        if self.batch_size % world_size:
            raise ParamsError(f"train.recipe.batch_size = {self.batch_size} is the global batch "
                              f"(batch_scope: global) and must divide evenly over {world_size} processes")
        return self.batch_size // world_size, self.lr


class BaselineVariant(Strict):
    regularizer: Literal["none"]


class GRVariant(Strict):
    regularizer: Literal["gr"]
    shallow_layer: str = "blocks.1"
    r: float = Field(0.05, gt=0)
    alpha: float = Field(0.5, ge=0.0, le=1.0)



class TrainParams(Strict):
    arch: str = "efficientnet_b0"
    pretrained: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: int = Field(2, ge=1, le=256)
    nproc: int = Field(1, ge=1)
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"  # auto: fp16 on CUDA, off on CPU
    seeds: list[int] = [0, 1, 2]
    recipe: RecipeParams
    baseline: BaselineVariant  # each name is bound to its regularizer: the variants cannot swap
    gr: GRVariant

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        import timm

        if not timm.list_models(v):
            raise ValueError(f"unknown timm architecture {v!r}")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v) or min(v) < 0:
            raise ValueError(f"seeds must be a non-empty list of distinct non-negative integers, got {v}")
        return v

    @field_validator("recipe")
    @classmethod
    def _batch_divides(cls, v: RecipeParams, info: ValidationInfo) -> RecipeParams:
        if "nproc" in info.data:
            try:
                v.for_processes(info.data["nproc"])
            except ParamsError as err:
                raise ValueError(f"{err} (train.nproc = {info.data['nproc']})") from None
        return v

    @field_validator("baseline", "gr", mode="before")
    @classmethod
    def _bound_variant(cls, v: Any, info: ValidationInfo) -> Any:
        want = VARIANT_REGULARIZER[info.field_name]
        if isinstance(v, dict) and v.get("regularizer") != want:
            raise ValueError(f"train.{info.field_name} must have regularizer: {want} (each variant name is bound "
                             f"to its regularizer), got {v.get('regularizer')!r}")
        return v

    @field_validator("pretrained")
    @classmethod
    def _weights_exist(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and _check_files(info) and not Path(v).is_file():
            raise ValueError(f"pretrained weights file {v!r} does not exist")
        return v


class FGSMParams(Strict):
    pass


class _MultiRun(Strict):
    """Restarts and losses of an iterative attack: every (restart, loss) run, worst case per image kept."""

    restarts: int = Field(1, ge=1)
    losses: list[str] = ["ce"]

    @field_validator("losses")
    @classmethod
    def _losses(cls, v: list[str]) -> list[str]:
        unknown = [name for name in v if name not in LOSSES]
        if not v or unknown or len(set(v)) != len(v):
            raise ValueError(f"losses must be a non-empty list without repeats from {list(LOSSES)}"
                             + (f"; unknown: {unknown}" if unknown else ""))
        return v


class PGDParams(_MultiRun):
    steps: int = Field(10, ge=1)
    sanity_eps: float = 32 / 255  # PGD also runs here: accuracy must be near 0 (evaluate checks it)
    rel_step_size: float = Field(0.25, gt=0, le=1.0)
    random_start: bool = True
    losses: list[str] = ["ce", "margin"]

    @field_validator("sanity_eps", mode="before")
    @classmethod
    def _sanity_eps(cls, v: Any) -> float:
        return parse_eps(v)

    @model_validator(mode="after")
    def _restarts_need_random_start(self) -> PGDParams:
        if self.restarts > 1 and not self.random_start:
            raise ValueError(f"restarts = {self.restarts} needs random_start: true (else every restart is the same)")
        return self


class APGDParams(_MultiRun):
    steps: int = Field(10, ge=1)
    rho: float = Field(0.75, gt=0, lt=1)


class SquareParams(Strict):
    """Square on the frames every gradient attack left correct (the masking check); AutoAttack uses 5,000."""

    queries: int = Field(1000, ge=1)
    p_init: float = Field(0.05, gt=0, le=1)
    restarts: int = Field(1, ge=1)


class AttackParams(Strict):
    attacks: list[Literal[ATTACKS]] = list(ATTACKS)  # type: ignore[valid-type]
    eps: list[float]
    batch_size: int = Field(64, ge=1)
    quantize_8bit: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: int = Field(2, ge=1, le=256)
    nproc: int = Field(1, ge=1)  # > 1: torchrun, one batch-aligned share of the frames per process and device
    seed: int = 0
    fgsm: FGSMParams = FGSMParams()
    pgd: PGDParams = PGDParams()
    apgd: APGDParams = APGDParams()
    square: SquareParams = SquareParams()

    @field_validator("eps", mode="before")
    @classmethod
    def _eps(cls, v: Any) -> list[float]:
        if not isinstance(v, list) or not v:
            raise ValueError("eps must be a non-empty list like ['1/255', '2/255']")
        values = [parse_eps(e) for e in v]
        if len(set(values)) != len(values):
            raise ValueError(f"eps values repeat: {v}")
        return sorted(values)

    @field_validator("attacks")
    @classmethod
    def _attacks(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"attacks must be a non-empty list without repeats, got {v}")
        return v

    def eps_for(self, attack: str) -> list[float]:
        """The radii one attack stage runs: ``eps``, plus ``pgd.sanity_eps`` for PGD."""
        return sorted({*self.eps, self.pgd.sanity_eps}) if attack == "pgd" else list(self.eps)


class EvaluateParams(Strict):
    n_bootstrap: int = Field(200, ge=10)
    ci: float = Field(0.95, gt=0.5, lt=1.0)
    power: float = Field(0.8, gt=0.5, lt=1.0)  # the detectable size is the difference found with this probability
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    batch_size: int = Field(128, ge=1)
    min_val_auc: float = Field(0.7, ge=0.0, le=1.0)  # below: the model did not learn; flagged, not compared
    sanity_tolerance: float = Field(0.02, ge=0.0, le=1.0)  # balanced-accuracy slack of the attack sanity checks
    max_acc_at_sanity_eps: float = Field(0.05, ge=0.0, le=1.0)
    cpu_threads: int = Field(2, ge=1, le=256)
    nproc: int = Field(1, ge=1)  # > 1: torchrun, the models' prediction passes split across processes and devices
    seed: int = 0


SCHEMAS: dict[str, type[Strict]] = {
    "make_sample": MakeSampleParams,
    "extract_frames": ExtractParams,
    "split": SplitParams,
    "balance": BalanceParams,
    "train": TrainParams,
    "attack": AttackParams,
    "evaluate": EvaluateParams,
}


def _format_error(group: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (group, *e["loc"]) if not str(p).startswith("function-"))
        value = e.get("input")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (typo?)"
        lines.append(f"  {loc} = {value!r}: {msg}")
    return f"invalid parameters in params.yaml group '{group}':\n" + "\n".join(lines)


def validate_group(group: str, raw: Any, check_files: bool = True) -> Strict:
    """Validate the raw dict of one group against its schema, raising :class:`ParamsError`.

    ``check_files=False`` skips checks that named inputs exist (the pipeline may create them later).
    """
    if group not in SCHEMAS:
        raise ParamsError(f"unknown params group {group!r}; known: {sorted(SCHEMAS)}")
    if not isinstance(raw, dict):
        raise ParamsError(f"params.yaml group '{group}' must be a mapping, got {type(raw).__name__}")
    try:
        return SCHEMAS[group].model_validate(raw, context={"check_files": check_files})
    except ValidationError as err:
        raise ParamsError(_format_error(group, err)) from None


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The raw mapping in ``params.yaml`` (``yaml.safe_load``)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"parameter file {path} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path} must be a mapping of parameter groups, got {type(data).__name__}")
    return data


def validate_all(path: str | Path = "params.yaml") -> list[str]:
    """Validate every group of ``params.yaml`` (files are not checked: earlier stages may make them).

    Unknown top-level groups are errors too, so a key that no stage reads cannot pass silently.
    All problems are collected into one :class:`ParamsError`; returns the validated group names.
    """
    data = read_params(path)
    problems = [f"params.yaml has an unknown group '{g}' (typo?); known: {sorted(SCHEMAS)}"
                for g in data if g not in SCHEMAS]
    problems += [f"params.yaml has no group '{g}'" for g in SCHEMAS if g not in data]
    for group in SCHEMAS:
        if group in data:
            try:
                validate_group(group, data[group], check_files=False)
            except ParamsError as err:
                problems.append(str(err))
    if problems:
        raise ParamsError("\n".join(problems))
    return list(SCHEMAS)


def load_group(group: str, path: str | Path = "params.yaml") -> Any:
    """Read ``params.yaml`` with ``yaml.safe_load`` and return the validated group."""
    data = read_params(path)
    if group not in data:
        raise ParamsError(f"params.yaml has no group '{group}'")
    return validate_group(group, data[group])
