"""Bounded fuzzing in the test suite: the loader and the GTT parser raise only GraphxformError.

Each target runs a fixed, derandomized set of hypothesis examples (set ``GX_FUZZ_RANDOM=1`` for fresh ones); the
long run is ``python -m tests.fuzz.run_fuzz --seconds 600`` (see docs/hostile.md, "Fuzzing").
"""
from __future__ import annotations

import logging
import os

import pytest
from conftest import FIXTURES
from fuzz.targets import TARGETS, WORK, available, mutate
from hypothesis import HealthCheck, given, settings

EXAMPLES = {"gtt_parse": 300, "load_bytes": 300, "load_mutated": 300, "load_structured": 300}
RANDOM = os.environ.get("GX_FUZZ_RANDOM") == "1"


@pytest.fixture(scope="module", autouse=True)
def scratch_dir():
    """The targets' scratch directory (fixture copies, written inputs) is removed after the module."""
    yield
    WORK.cleanup()


@pytest.fixture(autouse=True)
def quiet_loader():
    """Broken inputs make the loader log warnings by the hundred; keep the output readable."""
    logger = logging.getLogger("graphxform")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_fuzz_target_raises_only_graphxform_errors(name):
    if not available(name):
        pytest.skip("fixtures not generated")
    target = TARGETS[name]
    outcomes: dict[str, int] = {}

    @settings(max_examples=EXAMPLES[name], deadline=None, database=None, derandomize=not RANDOM,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(target.strategy())
    def fuzz(arg):  # type: ignore[no-untyped-def]
        outcome = target.run(arg)  # any exception other than GraphxformError fails the test
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    fuzz()
    assert sum(outcomes.values()) >= EXAMPLES[name] // 2
    # The generators reach both sides: inputs that are refused and inputs that load/parse.
    if name != "load_bytes":
        assert len(outcomes) >= 2, outcomes


def test_mutations_change_the_bytes():
    data = (FIXTURES / "tf1_frozen_bn.pb").read_bytes() if (FIXTURES / "tf1_frozen_bn.pb").is_file() else b"x" * 100
    assert mutate(data, [(0, 5, 3, b"")]) != data
    assert len(mutate(data, [(4, 10, 0, b"")])) == 10
    assert mutate(b"", [(2, 0, 0, b"ab")]) == b"ab"


@pytest.mark.parametrize("text, expected", [
    ('remove_nodes(op=Identity, op=CheckNumerics) fold_constants(ignore_errors=true)',
     [("remove_nodes", {"op": ["Identity", "CheckNumerics"]}), ("fold_constants", {"ignore_errors": "true"})]),
    ('strip_unused_nodes(type=float, shape="1,299,299,3")', [("strip_unused_nodes", {"type": "float",
                                                                                     "shape": "1,299,299,3"})]),
])
def test_gtt_round_trip_on_known_strings(text, expected):
    from fuzz.targets import run_gtt_parse

    from graphxform.engine.gtt_syntax import parse_transforms

    assert parse_transforms(text) == expected
    assert run_gtt_parse(text) in ("built", "parsed, rules refused")
