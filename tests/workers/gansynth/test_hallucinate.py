"""Hallucination sequencing: note paths, envelopes, overlap-add length, and HALLU's step editing."""
from __future__ import annotations

import numpy as np
import pytest

from workers.gansynth.hallucinate import HalluSeq, NoteShape, edit_path, latent_path, overlap_add

SR = 16000


def test_latent_path_inserts_slerp_points_without_repeating_anchors() -> None:
    anchors = np.random.default_rng(0).standard_normal((3, 256))
    path = latent_path(anchors, 4)
    assert len(path) == (3 - 1) * (4 + 1) + 1
    np.testing.assert_array_equal(path[[0, 5, 10]], anchors)
    assert len({tuple(p) for p in path}) == len(path)
    assert len(latent_path(anchors, 0)) == 3


def test_edit_path_counts_segments_like_the_course() -> None:
    steps = [np.zeros(4), np.full(4, 2.0), np.array([0, 0, 0, 4.0])]
    path = edit_path(steps, 2)
    assert len(path) == (3 - 1) * 2 + 1
    np.testing.assert_array_equal(path[1], np.ones(4))
    np.testing.assert_array_equal(path[3], [1, 1, 1, 3])
    np.testing.assert_array_equal(edit_path(steps, 1), np.stack(steps))
    np.testing.assert_array_equal(edit_path(steps, 0), np.stack(steps))


def test_overlap_add_length_and_envelope() -> None:
    shape = NoteShape(start_trim=0.25, attack=0.5, sustain=1.0, release=0.25)
    notes = np.ones((3, 4 * SR))
    notes[:, : int(0.25 * SR)] = 100.0  # trimmed away: must not reach the clip
    clip = overlap_add(notes, spacing=3.0, shape=shape, sample_rate=SR)
    note_len = int(1.75 * SR)
    assert clip.dtype == np.float32 and len(clip) == 2 * 3 * SR + note_len
    assert np.abs(clip).max() == pytest.approx(0.5)
    first = clip[:note_len]  # notes do not overlap at 3 s spacing: this is one envelope
    assert first[0] == 0.0 and first[int(0.25 * SR)] == pytest.approx(0.25, abs=1e-4)
    np.testing.assert_allclose(first[int(0.5 * SR):int(1.5 * SR)], 0.5)
    assert first[int(1.625 * SR)] == pytest.approx(0.25, abs=1e-4)
    assert np.all(clip[note_len:3 * SR] == 0)


def test_overlapping_notes_sum_before_the_clip_is_normalised() -> None:
    shape = NoteShape(0.0, 0.0, 1.0, 0.0)
    clip = overlap_add(np.ones((2, SR * 4)), spacing=0.5, shape=shape, sample_rate=SR)
    assert len(clip) == SR // 2 + SR
    np.testing.assert_allclose(clip[SR // 2:SR], 0.5)
    np.testing.assert_allclose(clip[:SR // 2], 0.25)


@pytest.mark.parametrize("shape, match", [
    (NoteShape(1.0, 1.0, 1.5, 1.0), "only 4 s"),
    (NoteShape(0.0, -0.1, 1.0, 1.0), "attack must be >= 0"),
    (NoteShape(0.5, 0.0, 0.0, 0.0), "longer than 0"),
])
def test_note_shape_must_fit_the_note(shape: NoteShape, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        overlap_add(np.ones((1, 4 * SR)), 0.2, shape, SR)


def test_halluseq_step_editing_wraps_and_copies() -> None:
    seq = HalluSeq.empty(3)
    seq.store(np.array([1.0, 2.0]))  # shorter arrays are zero-padded
    np.testing.assert_array_equal(seq.current(), [1, 2, 0])
    seq.add_step()
    assert (seq.index, len(seq.steps)) == (1, 2)
    np.testing.assert_array_equal(seq.current(), [1, 2, 0])
    seq.store(np.array([5.0, 5.0, 5.0, 9.0]))  # longer arrays are cut
    seq.next_step()
    assert seq.index == 0
    seq.prev_step()
    assert seq.index == 1
    np.testing.assert_array_equal(seq.current(), [5, 5, 5])
    seq.remove_step()
    assert (seq.index, len(seq.steps)) == (0, 1)
    seq.remove_step()  # the last step stays
    assert len(seq.steps) == 1


def test_halluseq_settings_are_checked() -> None:
    seq = HalluSeq.empty(2)
    seq.set("attack", 0.1)
    seq.set("interp_steps", 4)
    assert seq.settings() == {"interp_steps": 4, "sample_spacing": 0.2, "start_trim": 0.0, "attack": 0.1,
                              "sustain": 0.5, "release": 0.5}
    with pytest.raises(ValueError, match="whole number"):
        seq.set("interp_steps", 1.5)
    with pytest.raises(ValueError, match=">= 0"):
        seq.set("release", -1)
    seq.add_step()
    assert len(seq.path()) == 5
