"""The method registry is the one source of method metadata."""

from __future__ import annotations

import dataclasses
import pkgutil

import numpy as np
import pytest
import torch

import inspector.core.saliency as saliency_pkg
from inspector.cli import build_parser
from inspector.core.capture import ViTAdapter, capture
from inspector.core.config import ViTConfig
from inspector.core.model import VisionTransformer
from inspector.core.saliency import MapSettings, SaliencyError, compute_map, registry


def test_every_method_module_registers_itself_in_menu_order():
    machinery = {"registry", "settings", "targets", "dispatch"}
    modules = {
        m.name
        for m in pkgutil.iter_modules(saliency_pkg.__path__)
        if not m.name.startswith("_") and m.name not in machinery
    }
    registered = {m.compute.__module__.rsplit(".", 1)[1] for m in registry.methods()}
    assert registered == modules
    assert registry.names() == saliency_pkg.METHODS
    orders = [m.order for m in registry.methods()]
    assert orders == sorted(orders)


def test_the_cli_offers_exactly_the_registered_methods():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    explain = sub.choices["explain"]
    method = next(a for a in explain._actions if a.dest == "method")
    assert tuple(method.choices) == registry.names()


def test_gradient_methods_use_class_and_target_and_settings_names_are_real():
    fields = {f.name for f in dataclasses.fields(MapSettings)}
    for m in registry.methods():
        assert set(m.uses) <= fields
        assert ({"class_index", "target"} <= m.uses) == m.needs_gradients
        assert MapSettings(method=m.name).used_dict()["method"] == m.name


def test_a_new_registered_method_is_usable_everywhere_settings_go():
    def centre(capture, settings, rescale):  # (rows, cols): 1 at the centre patch
        rows, cols = capture.grid_size
        out = np.zeros((rows, cols), np.float32)
        out[rows // 2, cols // 2] = 3.0
        return out / 3.0 if rescale else out

    info = registry.register(
        registry.MethodInfo("centre-test", "Centre", "test", frozenset(), False, centre, 999)
    )
    try:
        torch.manual_seed(0)
        cfg = ViTConfig(image_size=16, patch_size=4, hidden_size=8, depth=1, num_heads=2)
        cap = capture(ViTAdapter(VisionTransformer(cfg).eval()), torch.randn(1, 3, 16, 16))
        s = MapSettings(method="centre-test")
        assert compute_map(cap, settings=s, rescale=False)[2, 2] == 3.0
        assert s.used_dict() == {"method": "centre-test"}
        assert registry.methods()[-1] is info
    finally:
        registry._REGISTRY.pop("centre-test")
    with pytest.raises(SaliencyError, match="unknown saliency method"):
        MapSettings(method="centre-test")
