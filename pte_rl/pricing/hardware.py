"""Hardware profiles: the peak FLOP/s and memory bandwidth that turn a model config into gamma.

gamma compares one decoded token's read of one cached token (memory-bound, bytes / bandwidth) with
one prefilled token (compute-bound, FLOPs / peak FLOP/s). The hardware enters only through the
hardware operational intensity

    HOI = peak FLOP/s / memory bandwidth (bytes/s)            [FLOP per byte]

The paper's reference is the H100 PCIe at 1513 TFLOP/s and 2.0 TB/s (HOI 756.5). 1513 TFLOP/s is the
datasheet's BF16 tensor figure *with 2:4 structured sparsity*, twice the dense peak; the built-in
profiles follow that convention (``flops``) so that their gammas compare with the paper's, and keep
the dense figure in ``dense_flops``: ``load_profile("h100-sxm:dense")`` gives the dense variant
(half the HOI, half the gamma). V100 has no structured sparsity: its ``flops`` is the dense FP16
tensor peak.

A profile may also carry a *measured* ``gamma`` and ``delta`` (see ``pte-rl calibrate``): then it
belongs to one model on one machine, and gamma is taken as measured instead of derived.

Profiles come from the built-in table, from :func:`register_profile`, from JSON files
(``{"name", "flops", "bandwidth"}`` or ``{"name", "gamma", "delta", "model", "base"}``) given by
path or saved by name in the profile directory (``$PTE_RL_PROFILE_DIR``, default
``~/.config/pte-rl/profiles``), or from a dict in a run config.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeAlias

from pte_rl.errors import InputError
from pte_rl.pricing.jsonl import write_atomic


class HardwareError(InputError):
    """An unknown profile name or a profile with missing or invalid figures."""


@dataclass(frozen=True, slots=True)
class HardwareProfile:
    """A machine as gamma sees it.

    Fields:
      name: the profile's name (lower case, ``-`` separated).
      flops: peak FLOP/s used for prefill (the paper's convention: BF16 tensor peak with sparsity).
      bandwidth: memory bandwidth in bytes/s.
      dense_flops: the dense BF16/FP16 tensor peak in FLOP/s, when known.
      source: where the figures come from.
      gamma: a measured gamma (calibrated for ``model`` on this machine), overriding the formula.
      delta: a measured per-decoded-token constant in prefill-token units (see pte_rl.pricing.cost).
      model: the model a measured gamma/delta belongs to.
      notes: anything a user should know when comparing profiles.
    """

    name: str
    flops: float | None = None
    bandwidth: float | None = None
    dense_flops: float | None = None
    source: str = "user-defined"
    gamma: float | None = None
    delta: float | None = None
    model: str | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if (self.flops is None) != (self.bandwidth is None):
            raise HardwareError(f"profile {self.name!r}: give both flops and bandwidth, or neither")
        for field in ("flops", "bandwidth", "dense_flops"):
            value = getattr(self, field)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise HardwareError(
                    f"profile {self.name!r}: field '{field}': expected a positive number, got {value!r}"
                )
        for field in ("gamma", "delta"):
            value = getattr(self, field)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise HardwareError(
                    f"profile {self.name!r}: field '{field}': expected a non-negative number, got {value!r}"
                )
        if self.flops is None and self.gamma is None:
            raise HardwareError(f"profile {self.name!r}: expected 'flops' and 'bandwidth', or a measured 'gamma'")

    @property
    def hoi(self) -> float | None:
        """Hardware operational intensity, FLOP per byte: ``flops / bandwidth``."""
        if self.flops is None or self.bandwidth is None:
            return None
        return self.flops / self.bandwidth

    @property
    def calibrated(self) -> bool:
        return self.gamma is not None

    def dense(self) -> HardwareProfile:
        """The same machine priced at its dense tensor peak (no structured sparsity)."""
        if self.dense_flops is None:
            raise HardwareError(f"profile {self.name!r} has no dense_flops figure")
        return replace(self, name=f"{self.name}:dense", flops=self.dense_flops, gamma=None, delta=None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hoi"] = self.hoi
        return data


ProfileSpec: TypeAlias = str | os.PathLike[str] | dict[str, Any] | HardwareProfile
"""What :func:`load_profile` takes: a name, a JSON path, a dict, or a profile."""

T = 1e12
_BUILTIN = (
    HardwareProfile(
        "h100-pcie", 1513 * T, 2.0 * T, 756.5 * T,
        "NVIDIA H100 datasheet, H100 PCIe: BF16 tensor 1,513 TFLOP/s with sparsity, 2.0 TB/s HBM2e",
        notes="the paper's reference profile (HOI 756.5)",
    ),
    HardwareProfile(
        "h100-sxm", 1979 * T, 3.35 * T, 989.5 * T,
        "NVIDIA H100 datasheet, H100 SXM: BF16 tensor 1,979 TFLOP/s with sparsity, 3.35 TB/s HBM3",
    ),
    HardwareProfile(
        "h200", 1979 * T, 4.8 * T, 989.5 * T,
        "NVIDIA H200 datasheet, H200 SXM: BF16 tensor 1,979 TFLOP/s with sparsity, 4.8 TB/s HBM3e",
    ),
    HardwareProfile(
        "a100", 624 * T, 2.039 * T, 312 * T,
        "NVIDIA A100 datasheet, A100 80GB SXM: BF16 tensor 624 TFLOP/s with sparsity (312 dense), 2,039 GB/s",
    ),
    HardwareProfile(
        "v100", 125 * T, 0.9 * T, 125 * T,
        "NVIDIA V100 datasheet, V100 SXM2: FP16 tensor 125 TFLOP/s, 900 GB/s HBM2",
        notes="no BF16 and no structured sparsity: flops is the dense FP16 tensor peak",
    ),
    HardwareProfile(
        "rtx-4090", 330.4 * T, 1.008 * T, 165.2 * T,
        "NVIDIA Ada Lovelace architecture whitepaper, RTX 4090: BF16 tensor (FP32 accumulate) "
        "330.4 TFLOP/s with sparsity (165.2 dense), 1,008 GB/s GDDR6X",
    ),
    HardwareProfile(
        "b200", 4500 * T, 8.0 * T, 2250 * T,
        "NVIDIA HGX B200 specifications, per GPU (1/8 of the 8-GPU figures): FP16/BF16 tensor "
        "4.5 PFLOP/s with sparsity, 8 TB/s HBM3e",
    ),
    HardwareProfile(
        "l40s", 733 * T, 0.864 * T, 362.05 * T,
        "NVIDIA L40S datasheet: BF16 tensor 733 TFLOP/s with sparsity (362.05 dense), 864 GB/s GDDR6",
    ),
    HardwareProfile(
        "mi300x", 2614.9 * T, 5.3 * T, 1307.4 * T,
        "AMD Instinct MI300X datasheet: BF16 2,614.9 TFLOP/s with structured sparsity (1,307.4 dense), "
        "5.3 TB/s HBM3",
    ),
)
BUILTIN_PROFILES: dict[str, HardwareProfile] = {p.name: p for p in _BUILTIN}
DEFAULT_PROFILE = "h100-pcie"
_ALIASES = {"h100pcie": "h100-pcie", "h100sxm": "h100-sxm", "h200sxm": "h200", "a100-sxm": "a100",
            "v100-sxm2": "v100", "4090": "rtx-4090", "rtx4090": "rtx-4090", "mi300": "mi300x"}
_REGISTRY: dict[str, HardwareProfile] = {}


def normalize_name(name: str) -> str:
    """``"H100 PCIe"`` -> ``"h100-pcie"``: lower case, spaces and underscores to ``-``."""
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def profile_dir() -> Path:
    """Where profiles saved by name live: ``$PTE_RL_PROFILE_DIR`` or ``~/.config/pte-rl/profiles``."""
    env = os.environ.get("PTE_RL_PROFILE_DIR")
    return Path(env) if env else Path.home() / ".config" / "pte-rl" / "profiles"


_SI = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15}


def parse_quantity(value: Any, field: str) -> float:
    """A positive number, or a string with an SI suffix: ``"1513T"``, ``"2.0e12"``, ``"3.35 TB/s"``."""
    if isinstance(value, bool):
        raise HardwareError(f"field '{field}': expected a positive number, got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([kKmMgGtTpP]?)\s*(?:flop/s|flops|b/s|bytes/s)?\s*",
                             str(value), flags=re.IGNORECASE)
        if not match:
            raise HardwareError(f"field '{field}': expected a number such as 1513e12 or 1513T, got {value!r}")
        try:
            number = float(match.group(1)) * _SI[match.group(2).lower()]
        except ValueError:
            raise HardwareError(f"field '{field}': expected a number such as 1513e12 or 1513T, got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise HardwareError(f"field '{field}': expected a positive number, got {value!r}")
    return number


def custom_profile(flops: Any, bandwidth: Any, name: str = "custom", source: str = "user-defined") -> HardwareProfile:
    """A user-defined machine from its peak FLOP/s and bandwidth (bytes/s); SI suffixes accepted."""
    return HardwareProfile(name, parse_quantity(flops, "flops"), parse_quantity(bandwidth, "bandwidth"), source=source)


_FIELDS = {"name", "flops", "bandwidth", "dense_flops", "source", "gamma", "delta", "model", "notes", "base", "hoi"}


def profile_from_dict(data: dict[str, Any], origin: str = "profile") -> HardwareProfile:
    """A profile from a dict (a JSON file or a run config).

    ``{"name", "flops", "bandwidth"}`` defines a machine; ``{"name", "gamma", "delta", "model"}``
    records a calibration; ``"base": "h100-sxm"`` inherits the figures of another profile.
    """
    if not isinstance(data, dict):
        raise HardwareError(f"{origin}: expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise HardwareError(f"{origin}: unknown field(s) {unknown}; expected some of {sorted(_FIELDS - {'hoi'})}")
    base = load_profile(data["base"]) if data.get("base") is not None else None
    fields: dict[str, Any] = asdict(base) if base is not None else {}
    if base is not None:
        fields.update(gamma=None, delta=None, model=None)
    for key in ("flops", "bandwidth", "dense_flops"):
        if data.get(key) is not None:
            fields[key] = parse_quantity(data[key], key)
    for key in ("gamma", "delta"):
        if data.get(key) is not None:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise HardwareError(f"{origin}: field '{key}': expected a non-negative number, got {value!r}")
            fields[key] = float(value)
    for key in ("source", "model", "notes"):
        if data.get(key) is not None:
            fields[key] = str(data[key])
    fields["name"] = normalize_name(str(data.get("name") or (base.name if base else Path(origin).stem)))
    if "source" not in data and base is None:
        fields["source"] = f"user-defined ({origin})"
    try:
        return HardwareProfile(**fields)
    except HardwareError as exc:
        raise HardwareError(f"{origin}: {exc}") from None


def _read_json_profile(path: Path) -> HardwareProfile:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HardwareError(f"{path}: cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise HardwareError(f"{path}: line {exc.lineno}: expected valid JSON ({exc.msg})") from None
    return profile_from_dict(data, origin=str(path))


def register_profile(profile: HardwareProfile) -> HardwareProfile:
    """Make ``profile`` loadable by name in this process (it shadows a built-in of the same name)."""
    _REGISTRY[normalize_name(profile.name)] = profile
    return profile


def save_profile(profile: HardwareProfile, path: str | os.PathLike[str] | None = None) -> Path:
    """Write ``profile`` as JSON (atomically); by default to ``profile_dir()/<name>.json``."""
    target = Path(path) if path is not None else profile_dir() / f"{normalize_name(profile.name)}.json"
    data = {k: v for k, v in asdict(profile).items() if v not in (None, "")}
    write_atomic(target, [json.dumps(data, indent=2) + "\n"])
    return target


def load_profile(name_or_path: ProfileSpec) -> HardwareProfile:
    """A profile by name (built-in, registered, or saved in :func:`profile_dir`), JSON path, or dict.

    A ``:dense`` suffix (``"h100-sxm:dense"``) prices the machine at its dense tensor peak.
    Raises :class:`HardwareError` naming the known profiles when nothing matches.
    """
    if isinstance(name_or_path, HardwareProfile):
        return name_or_path
    if isinstance(name_or_path, dict):
        return profile_from_dict(name_or_path, origin="hardware config")
    text = str(name_or_path)
    path = Path(text).expanduser()
    if text.endswith(".json") or path.is_file():
        if not path.is_file():
            raise HardwareError(f"{path}: hardware profile file not found")
        return _read_json_profile(path)
    key = normalize_name(text)
    if key.endswith(":dense"):
        return load_profile(key[: -len(":dense")]).dense()
    key = _ALIASES.get(key, key)
    if key in _REGISTRY:
        return _REGISTRY[key]
    if key in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[key]
    saved = profile_dir() / f"{key}.json"
    if saved.is_file():
        return _read_json_profile(saved)
    known = ", ".join(list_profiles())
    raise HardwareError(
        f"unknown hardware {text!r}: expected one of {known}, a profile JSON file, or --flops F --bandwidth B"
    )


def list_profiles() -> list[str]:
    """Names of the built-in, registered and saved profiles."""
    names = list(BUILTIN_PROFILES) + [n for n in _REGISTRY if n not in BUILTIN_PROFILES]
    directory = profile_dir()
    if directory.is_dir():
        names += sorted(p.stem for p in directory.glob("*.json") if p.stem not in names)
    return names
