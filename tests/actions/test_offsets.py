"""Commit points of a partition whose commands finish out of order."""

from __future__ import annotations

import pytest

from services.actions.offsets import PartitionOffsets


def test_commit_point_waits_for_the_oldest_unfinished_offset() -> None:
    offsets = PartitionOffsets()
    for offset in (10, 11, 12):
        assert offsets.started(offset)

    assert offsets.finished(12) is None
    assert offsets.finished(11) is None
    assert offsets.commit_point() == 10
    assert offsets.finished(10) == 13
    assert offsets.in_flight == 0


def test_commit_point_moves_to_the_next_unfinished_offset() -> None:
    offsets = PartitionOffsets()
    for offset in (5, 6, 7, 8):
        offsets.started(offset)

    assert offsets.finished(5) == 6
    assert offsets.finished(7) is None
    assert offsets.finished(6) == 8
    assert offsets.in_flight == 1


def test_offsets_seen_before_are_refused_as_duplicates() -> None:
    offsets = PartitionOffsets()
    offsets.started(3)
    offsets.finished(3)

    assert not offsets.started(3)
    assert not offsets.started(2)
    assert offsets.started(4)


def test_finishing_an_offset_twice_raises() -> None:
    offsets = PartitionOffsets()
    offsets.started(1)
    offsets.started(2)
    offsets.finished(2)

    with pytest.raises(KeyError):
        offsets.finished(2)
    with pytest.raises(KeyError):
        offsets.finished(9)


def test_nothing_to_commit_before_any_offset() -> None:
    assert PartitionOffsets().commit_point() is None
