"""The MelodyRNN model code in this process: loading, phrases, answers against magenta's own generator.

"magenta's own generator" is built here the way ``melody_rnn_generate --bundle_file`` builds it:
``MelodyRnnSequenceGenerator(MelodyRnnModel(config), ...)`` with the config named by the bundle.
"""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import note_seq
import numpy as np
import pretty_midi
import pytest
from magenta.models.melody_rnn import melody_rnn_model, melody_rnn_sequence_generator
from magenta.models.shared import sequence_generator_bundle
from note_seq.protobuf import generator_pb2

from workers.melody_rnn import bundles
from workers.melody_rnn.model import CONFIGS, MelodyModel, ModelError
from workers.melody_rnn.phrase import Note, Phrase, estimate_qpm, primer

ROOT = Path(__file__).resolve().parents[3]
RANGES = {"basic_rnn": (48, 83), "mono_rnn": (0, 127), "lookback_rnn": (48, 83), "attention_rnn": (48, 83)}
GRID_PHRASE = [Note(60, 100, 0, 250), Note(64, 90, 250, 500), Note(67, 80, 500, 750), Note(72, 100, 750, 1000)]
"""Four notes on the sixteenth grid at 120 qpm (8 steps a second): the last one ends on step 8."""
SPS = 8.0


def magenta_generator(bundle: Path) -> melody_rnn_sequence_generator.MelodyRnnSequenceGenerator:
    read = sequence_generator_bundle.read_bundle_file(str(bundle))
    config = copy.deepcopy(melody_rnn_model.default_configs[read.generator_details.id])
    return melody_rnn_sequence_generator.MelodyRnnSequenceGenerator(
        model=melody_rnn_model.MelodyRnnModel(config), details=config.details,
        steps_per_quarter=config.steps_per_quarter, bundle=read)


def magenta_answer(bundle: Path, notes: list[Note], steps: int, temperature: float = 1.0, beam_size: int = 1,
                   branch_factor: int = 1, seed: int | None = None) -> list[tuple[float, int, int, float]]:
    """magenta's generator on the grid phrase, from step 9 (one step after the last note) for ``steps``
    steps; its notes from there, timed from there."""
    start = 9
    options = generator_pb2.GeneratorOptions()
    options.args["temperature"].float_value = temperature
    options.args["beam_size"].int_value = beam_size
    options.args["branch_factor"].int_value = branch_factor
    # magenta makes a step of a start time with int(t * sps + 1) and of an end time with int(t * sps)
    options.generate_sections.add(start_time=(start - 0.5) / SPS, end_time=(start + steps + 0.5) / SPS)
    generator = magenta_generator(bundle)
    np.random.seed(seed)
    try:
        out = generator.generate(primer(notes, 120.0), options)
    finally:
        generator.close()
    assert sorted(n.pitch for n in out.notes if n.start_time < start / SPS) == sorted(n.pitch for n in notes)
    return sorted((round(n.start_time - start / SPS, 9), n.pitch, n.velocity, round(n.end_time - n.start_time, 9))
                  for n in out.notes if n.start_time >= start / SPS)


def rounded(notes) -> list[tuple[float, int, int, float]]:
    return sorted((round(t, 9), p, v, round(d, 9)) for t, p, v, d in notes)


@pytest.fixture(scope="module")
def attention(random_bundles: dict[str, Path]) -> MelodyModel:
    model = MelodyModel.load(random_bundles["attention_rnn"])
    yield model
    model.close()


# -- loading --------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS)
def test_every_config_loads_and_says_what_it_is(config: str, random_bundles: dict[str, Path]):
    model = MelodyModel.load(random_bundles[config])
    try:
        assert model.config_name == config  # the file is model-<n>.mag: the config came from the bundle
        assert (model.min_pitch, model.max_pitch) == RANGES[config]
        assert model.steps_per_quarter == 4
        assert model.description == "random weights (made by pdbridge)"
        assert len(model.answer(primer(GRID_PHRASE, 120.0), 8).notes) > 0
    finally:
        model.close()


def test_a_bundle_named_after_another_config_loads_as_what_it_holds(misnamed: Path):
    model = MelodyModel.load(misnamed)
    assert model.config_name == "basic_rnn"
    model.close()


def test_a_run_folder_loads_its_newest_checkpoint_with_its_config_named(trained_run: Path):
    assert {p.name for p in (trained_run / "train").glob("*.index")} >= {"model.ckpt-3.index", "model.ckpt-6.index"}
    model = MelodyModel.load(trained_run, "attention_rnn", bundles.SMALL_HPARAMS)
    assert model.config_name == "attention_rnn" and "model.ckpt-6" in model.description
    assert model.answer(primer(GRID_PHRASE, 120.0), 16).steps == 16
    model.close()
    also = MelodyModel.load(trained_run / "train", "attention_rnn", bundles.SMALL_HPARAMS)  # the train/ folder itself
    also.close()
    with pytest.raises(ModelError, match="--config attention_rnn"):
        MelodyModel.load(trained_run)
    with pytest.raises(ModelError, match=r"does not fit the attention_rnn config \(rnn_layer_sizes=\[128, 128\]"):
        MelodyModel.load(trained_run, "attention_rnn")
    with pytest.raises(ModelError, match="unknown config 'attention'"):
        MelodyModel.load(trained_run, "attention")


def test_magentas_own_trainer_runs_in_the_tf_environment(trained_run: Path, tmp_path: Path):
    run = tmp_path / "cli_run"
    done = subprocess.run([sys.executable, "-m", "workers.melody_rnn.train", "--config=attention_rnn",
                           f"--hparams={bundles.SMALL_HPARAMS}", f"--run_dir={run}", "--num_training_steps=2",
                           f"--sequence_example_file={trained_run / 'data' / 'training_melodies.tfrecord'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    model = MelodyModel.load(run, "attention_rnn", bundles.SMALL_HPARAMS)
    assert "model.ckpt-2" in model.description
    model.close()


def test_a_trained_bundle_carries_its_config_and_size(trained_bundle: Path):
    model = MelodyModel.load(trained_bundle)  # named basic_rnn.mag, holds a small attention_rnn
    assert model.config_name == "attention_rnn" and model.description == "trained 6 steps"
    model.close()


def test_files_that_are_not_melody_rnn_bundles_are_refused(tmp_path: Path, random_bundles: dict[str, Path]):
    text = tmp_path / "notes.mag"
    text.write_text("not a bundle\n")
    with pytest.raises(ModelError, match="is not a magenta generator bundle"):
        MelodyModel.load(text)
    drums = generator_pb2.GeneratorBundle()
    drums.generator_details.id = "drum_kit"
    (tmp_path / "drums.mag").write_bytes(drums.SerializeToString())
    with pytest.raises(ModelError, match="holds a 'drum_kit' generator, not a MelodyRNN one"):
        MelodyModel.load(tmp_path / "drums.mag")
    with pytest.raises(ModelError, match="--config and --hparams are only for training run folders"):
        MelodyModel.load(random_bundles["basic_rnn"], "basic_rnn")


# -- answers ----------------------------------------------------------------------------------------
def test_the_answer_lasts_the_steps_or_seconds_asked(attention: MelodyModel):
    assert attention.steps_in(8.0, 120.0) == 64
    assert attention.steps_in(2.4, 120.0) == 19  # whole steps, rounded down as magenta ends a section
    assert attention.steps_in(8.0, 90.0) == 48
    answer = attention.answer(primer(GRID_PHRASE, 120.0), 37)
    assert answer.steps == 37 and answer.seconds == pytest.approx(37 / SPS)
    assert all(onset + duration <= answer.seconds + 1e-9 for onset, _, _, duration in answer.notes)
    slow = attention.answer(primer(GRID_PHRASE, 60.0), 8)
    assert slow.qpm == 60.0 and slow.seconds == pytest.approx(2.0)


@pytest.mark.parametrize("temperature, beam_size, branch_factor, seed", [
    (1e-6, 1, 1, None),  # near zero: the most likely step every time, no randomness left
    (1.0, 1, 1, 7),
    (0.8, 2, 3, 11),
])
def test_the_options_reach_magentas_generator(random_bundles: dict[str, Path], attention: MelodyModel,
                                              temperature: float, beam_size: int, branch_factor: int, seed):
    ours = attention.answer(primer(GRID_PHRASE, 120.0), 24, temperature, beam_size, branch_factor, seed)
    theirs = magenta_answer(random_bundles["attention_rnn"], GRID_PHRASE, 24, temperature, beam_size,
                            branch_factor, seed)
    assert rounded(ours.notes) == theirs and len(theirs) > 0


def test_a_seed_repeats_an_answer(attention: MelodyModel):
    first = attention.answer(primer(GRID_PHRASE, 120.0), 32, seed=3)
    assert attention.answer(primer(GRID_PHRASE, 120.0), 32, seed=3) == first
    assert attention.answer(primer(GRID_PHRASE, 120.0), 32, seed=4) != first


def test_the_answer_starts_after_the_phrase_without_its_notes(random_bundles: dict[str, Path],
                                                              attention: MelodyModel):
    answer = attention.answer(primer(GRID_PHRASE, 120.0), 32, seed=1)
    onsets = [onset for onset, *_ in answer.notes]
    assert onsets == sorted(onsets) and onsets[0] >= 0.0
    # magenta_answer checks the generator's notes before the start are the phrase's: ours are the rest
    assert rounded(answer.notes) == magenta_answer(random_bundles["attention_rnn"], GRID_PHRASE, 32, seed=1)


def test_pitches_beyond_the_models_range_are_moved_by_octaves_and_named(random_bundles: dict[str, Path]):
    wide = [Note(30, 100, 0, 250), Note(60, 100, 250, 500), Note(96, 100, 500, 750)]  # spans 66 > 36 semitones
    basic = MelodyModel.load(random_bundles["basic_rnn"])
    try:
        moved = basic.answer(primer(wide, 120.0), 8).transposed
        assert moved and {played for played, _ in moved} <= {30, 96}
        assert all((heard - played) % 12 == 0 and heard != played for played, heard in moved)
        assert basic.answer(primer(GRID_PHRASE, 120.0), 8).transposed == ()
        low = [Note(p - 36, 100, n.start_ms, n.end_ms) for n, p in zip(GRID_PHRASE, (60, 64, 67, 72))]
        assert basic.answer(primer(low, 120.0), 8).transposed == ()  # moved as a whole: nothing to say
    finally:
        basic.close()
    mono = MelodyModel.load(random_bundles["mono_rnn"])
    assert mono.answer(primer(wide, 120.0), 8).transposed == ()
    mono.close()


def test_a_midi_file_reads_back_with_the_answers_notes(attention: MelodyModel, tmp_path: Path):
    answer = attention.answer(primer(GRID_PHRASE, 120.0), 32, seed=2)
    answer.write_midi(tmp_path / "answer.mid")
    back = note_seq.midi_file_to_note_sequence(str(tmp_path / "answer.mid"))
    assert back.tempos[0].qpm == pytest.approx(120.0)
    assert sorted((round(n.start_time, 6), n.pitch, n.velocity, round(n.end_time - n.start_time, 6))
                  for n in back.notes) == sorted((round(t, 6), p, v, round(d, 6)) for t, p, v, d in answer.notes)


# -- phrases ----------------------------------------------------------------------------------------
def test_a_phrase_is_timed_by_the_gaps_pd_measured():
    phrase = Phrase()
    phrase.add(64, 0, 5000.0)  # a release before any press (the key went down before a clear): ignored
    phrase.add(60, 100, 123456.0)  # the first press starts the phrase's clock, whatever came before
    phrase.add(64, 90, 250.0)
    phrase.add(60, 0, 100.0)
    phrase.add(64, 80, 150.0)  # pressed again while down: the first note ends there
    assert phrase.held == [64]
    assert phrase.notes() == [Note(60, 100, 0.0, 350.0), Note(64, 90, 250.0, 500.0), Note(64, 80, 500.0, 500.0)]
    phrase.add(64, 0, 125.0)
    assert phrase.held == [] and phrase.notes()[-1] == Note(64, 80, 500.0, 625.0)
    phrase.clear()
    assert phrase.empty and phrase.notes() == []


def test_the_tempo_is_estimated_as_the_course_did():
    assert estimate_qpm(GRID_PHRASE) == 120.0  # 4 notes or fewer: 120
    for gap_ms in (500.0, 300.0, 125.0):
        notes = [Note(60 + i, 100, i * gap_ms, i * gap_ms + 0.8 * gap_ms) for i in range(8)]
        midi = pretty_midi.PrettyMIDI()
        midi.instruments.append(pretty_midi.Instrument(0))
        midi.instruments[0].notes = [pretty_midi.Note(n.velocity, n.pitch, n.start_ms / 1000, n.end_ms / 1000)
                                     for n in notes]
        raw = midi.estimate_tempo()
        assert estimate_qpm(notes) == (raw / 2 if raw > 240 else raw)  # pretty_midi's, halved above 240
