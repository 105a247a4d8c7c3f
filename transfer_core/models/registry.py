"""Registry of pretrained backbones: name → :class:`BackboneSpec` (builder, weights source, metadata).

Importing this module registers the built-in catalogues (:mod:`.catalogs`); ``timm/<model>``
names any timm architecture without registering it. Backbones defined in code (tests,
baselines) join with :func:`register_backbone`. The backbone types are re-exported here,
so ``from transfer_core.models.registry import Preprocessing`` keeps working.
"""

from __future__ import annotations

import fnmatch

from ..errors import WarmstartError
from .backbone import DEFAULT_BACKBONE, Availability, Backbone, BackboneSpec, Preprocessing, WeightsSource
from .catalogs import TIMM_PREFIX, builtin_specs, list_timm_models, timm_spec

__all__ = [
    "DEFAULT_BACKBONE",
    "Availability",
    "Backbone",
    "BackboneSpec",
    "Preprocessing",
    "WeightsSource",
    "get_backbone",
    "list_backbones",
    "list_timm_models",
    "register_backbone",
]

_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec, *, replace: bool = False) -> BackboneSpec:
    """Add a backbone to the registry; a duplicate name is an error unless ``replace``.

    Args:
        spec: the backbone to add, under ``spec.name``.
        replace: overwrite a backbone of the same name instead of refusing.

    Returns:
        ``spec``, so a module can keep what it registered.

    Raises:
        ValueError: the name is taken and ``replace`` is false.
    """
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"Backbone '{spec.name}' is already registered; pass replace=True to overwrite it.")
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones(pattern: str = "*", source: WeightsSource | None = None) -> list[BackboneSpec]:
    """Registered backbones whose name matches the fnmatch ``pattern`` (and ``source``, if given)."""
    return [
        spec
        for name, spec in _REGISTRY.items()
        if fnmatch.fnmatch(name, pattern) and (source is None or spec.source == source)
    ]


def get_backbone(name: str) -> BackboneSpec:
    """The spec for ``name``; ``timm/<model>`` names any timm architecture.

    Raises:
        WarmstartError: the name is neither registered nor a timm architecture; says what to choose.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.startswith(TIMM_PREFIX):
        return timm_spec(name[len(TIMM_PREFIX) :])
    known = ", ".join(_REGISTRY)
    raise WarmstartError(f"Unknown backbone '{name}'; choose one of {known}, or timm/<model name>.")


for _spec in builtin_specs():
    register_backbone(_spec)
