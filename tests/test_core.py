"""Choice, Arch, the registry, and the package boundary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nasframe.core.arch import Arch
from nasframe.core.choice import Choice
from nasframe.core.registry import SAMPLERS, SELECTORS, SPACES, Registry
from nasframe.errors import UnknownNameError


def test_choice_rejects_empty_and_duplicate_options():
    with pytest.raises(ValueError, match="no options"):
        Choice("c", ())
    with pytest.raises(ValueError, match="twice"):
        Choice("c", ("a", "a"))
    assert Choice("c", ["a", "b"]).options == ("a", "b")


def test_arch_is_immutable_hashable_and_order_insensitive():
    a = Arch({"x": "1", "y": "2"})
    b = Arch({"y": "2", "x": "1"})
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    with pytest.raises(TypeError):
        a["x"] = "3"  # type: ignore[index]
    assert a.replace(x="3") == Arch(x="3", y="2") and a["x"] == "1"
    with pytest.raises(KeyError):
        a.replace(z="1")


def test_arch_json_round_trip():
    a = Arch({"edge_1_0": "nor_conv_3x3", "edge_2_0": "none"})
    assert Arch.from_json(a.to_json()) == a
    assert list(Arch.from_json(a.to_json())) == list(a)


def test_arch_rejects_non_string_values():
    with pytest.raises(TypeError):
        Arch({"x": 1})  # type: ignore[dict-item]


def test_registry_register_get_and_unknown_name_lists_known():
    reg: Registry = Registry("widget", "nasframe.test-widgets")

    @reg.register("foo")
    class Foo:
        pass

    assert reg.get("foo") is Foo and "foo" in reg
    with pytest.raises(UnknownNameError, match=r"unknown widget 'bar'; known: foo"):
        reg.get("bar")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("foo")(type("Other", (), {}))
    assert reg.get("nasframe.core.arch:Arch") is Arch


def test_builtin_and_entry_point_names_resolve():
    from search_spaces.nb201 import NB201Space

    assert SPACES.get("nb201") is NB201Space  # through the nasframe.spaces entry point
    assert "uniform" in SAMPLERS.names()
    assert {"evolutionary", "random"} <= set(SELECTORS.names())


def test_a_source_checkout_finds_its_spaces_without_installed_entry_points(monkeypatch):
    """On PYTHONPATH, not pip-installed (as on a machine where nothing may be installed), the entry points that
    pyproject.toml declares still resolve."""
    import nasframe.core.registry as registry
    from search_spaces.mobilenet import MobileNetSpace

    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    assert SPACES.get("mobilenet") is MobileNetSpace
    assert {"nb201", "darts", "mobilenet", "gnn_bench", "graphnas"} <= set(SPACES.names())


def test_nasframe_never_imports_search_spaces():
    root = Path(__file__).resolve().parents[1] / "nasframe"
    pattern = re.compile(r"^\s*(from|import)\s+search_spaces", re.MULTILINE)
    offenders = [str(p) for p in root.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_describe_device_names_the_cpu_and_threads():
    from nasframe.hardware import describe_device

    text = describe_device("cpu")
    assert text.startswith("CPU ") and "torch threads" in text
