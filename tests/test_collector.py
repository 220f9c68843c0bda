"""``gc_paused`` (``graphxform/core/collector.py``), around a Graph's load and a run of the rules: no cyclic collection
inside, the objects made inside promoted to the oldest generation without a scan, and the caller's collector state
(off, or objects it froze) left as it was."""
from __future__ import annotations

import gc

import pytest

from graphxform.core.collector import gc_paused


@pytest.fixture(autouse=True)
def _collector_restored():
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    (gc.enable if enabled else gc.disable)()


def _in_generation(obj: object, generation: int) -> bool:
    return any(o is obj for o in gc.get_objects(generation=generation))


def test_objects_made_inside_are_old_afterwards_and_no_collection_ran_inside() -> None:
    gc.enable()
    before = gc.get_stats()
    with gc_paused():
        assert not gc.isenabled()
        made = [{"n": [i]} for i in range(5000)]  # enough to trigger young collections, were the collector on
        assert gc.get_stats() == before
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert _in_generation(made, 2) and _in_generation(made[-1], 2) and not _in_generation(made[-1], 0)


def test_nested_and_collector_off_change_nothing() -> None:
    gc.enable()
    with gc_paused():
        with gc_paused():
            inner = [[1]]
        assert not gc.isenabled() and not _in_generation(inner, 2)  # (promoted by the outer block only)
    assert gc.isenabled() and _in_generation(inner, 2)
    gc.disable()
    with gc_paused():
        made = [[2]]
    assert not gc.isenabled() and not _in_generation(made, 2)


def test_objects_the_caller_froze_stay_frozen() -> None:
    gc.enable()
    kept = [[3]]
    gc.freeze()
    frozen = gc.get_freeze_count()
    with gc_paused():
        made = [[4]]
    assert gc.get_freeze_count() == frozen and not _in_generation(kept, 2)
    assert gc.isenabled() and not _in_generation(made, 2)
