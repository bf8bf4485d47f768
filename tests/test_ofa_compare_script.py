"""scripts/ofa_compare.py's pieces that decide what is compared: the three fixed subnets are the space's smallest,
a uniform middle and its largest, the random archs are canonical and seeded, and the Pareto front keeps exactly
the points no other point beats on both latency and accuracy."""

from __future__ import annotations

from nasframe.core.space import DataSpec
from search_spaces.mobilenet import MobileNetSpace


def test_fixed_subnets_are_the_smallest_a_middle_and_the_largest(load_script) -> None:
    script = load_script("ofa_compare")
    space = MobileNetSpace(DataSpec(3, (32, 32), 10), width_mult=0.5, stem_stride=2, head_channels=256)
    fixed = {label: space.parse(native) for label, native in script.subnet_archs().items()}
    assert fixed["smallest"] == space.smallest() and fixed["largest"] == space.largest()
    assert set(fixed["middle"][f"stage{s}_depth"] for s in range(1, 6)) == {"3"}
    archs = script.random_archs(5, seed=0)
    assert archs == script.random_archs(5, seed=0) and len(set(archs)) == 5
    assert all(space.format(space.parse(a)) == a for a in archs)


def test_the_pareto_front_keeps_the_undominated_points(load_script) -> None:
    script = load_script("ofa_compare")
    points = [{"native": n, "latency_ms": lat, "test_accuracy": acc}
              for n, lat, acc in (("a", 1.0, 50.0), ("b", 2.0, 40.0), ("c", 2.0, 60.0), ("d", 3.0, 60.0),
                                  ("e", 4.0, 70.0))]
    assert [p["native"] for p in script.pareto_front(points)] == ["a", "c", "e"]
