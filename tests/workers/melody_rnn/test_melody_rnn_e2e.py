"""[pdbridge.melody_rnn] in real headless Pd, through the hub, to the MelodyRNN worker (tf environment).

Pd runs patches/melody_driver.pd: tests/e2e/patches/driver.pd's protocol (so :class:`PdDriver` works
as usual) around one [pdbridge.melody_rnn] with all three inlets wired, plus scenarios played on
Pd's clock ([qlist]) and a copy of every output stamped with Pd's logical time (``clock <ms> left|
right <atoms...>``). Every time checked here is one of Pd's own timestamps.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import note_seq
import pytest
from pdharness import PdDriver, require_worker

from pdbridge.pd import find_pd
from workers.melody_rnn import bundles

pytestmark = pytest.mark.skipif(find_pd() is None, reason="Pure Data is not installed")

DRIVER = Path(__file__).parent / "patches" / "melody_driver.pd"
GRID = ["0 mrt-pitch 60 100", "250 mrt-pitch 60 0", "0 mrt-pitch 64 100", "250 mrt-pitch 64 0",
        "0 mrt-pitch 67 100", "250 mrt-pitch 67 0", "0 mrt-pitch 72 100", "250 mrt-pitch 72 0"]
"""Four eighth notes at 120 qpm (1 s), pressed and released through the note inlets."""
Event = tuple[float, str, list]
"""(Pd's logical time in ms, left|right, the atoms that came out)."""


@pytest.fixture(scope="module")
def pd(hub) -> Iterator[PdDriver]:
    import pdharness

    require_worker("melody_rnn")
    saved = pdharness.DRIVER
    pdharness.DRIVER = DRIVER
    try:
        driver = PdDriver(hub.port, "melody_rnn", timeout=300)
    finally:
        pdharness.DRIVER = saved
    yield driver
    driver.close()


@pytest.fixture
def loaded(pd: PdDriver, random_bundles: dict[str, Path]) -> PdDriver:
    """attention_rnn loaded, a fresh phrase, the default options and duet settings, and nothing left
    over from the test before."""
    pd.send("stop")
    pd.send("load", str(random_bundles["attention_rnn"]))
    assert pd.result("loaded")[0] == "attention_rnn"
    for setting in (["clear"], ["duet", 0], ["silence", 600], ["length", 1, 8], ["options", "reset"]):
        pd.send(*setting)
    collect(pd, lambda e: e[2][:1] == ["options"])
    return pd


def play(pd: PdDriver, tmp_path: Path, lines: list[str]) -> list[Event]:
    """Play a scenario on Pd's clock (its clock restarts at 0) and return what came out meanwhile."""
    path = tmp_path / f"scenario-{len(list(tmp_path.glob('scenario-*')))}.txt"
    path.write_text("".join(f"{line};\n" for line in lines))
    pd._send("qlist", str(path))
    return collect(pd, lambda e: e[2] == ["done"] and e[1] == "scenario")


def collect(pd: PdDriver, last: Callable[[Event], bool], timeout: float = 120) -> list[Event]:
    """Stamped outputs until (and with) the one ``last`` accepts."""
    events: list[Event] = []
    while True:
        msg = pd.next(timeout)
        if msg[0] != "clock":
            continue
        events.append((float(msg[1]), str(msg[2]), list(msg[3:])))
        if last(events[-1]):
            return events


def until_note_ons(pd: PdDriver, count: int) -> list[Event]:
    """Stamped outputs until ``count`` answer notes have started."""
    seen: list[Event] = []

    def enough(event: Event) -> bool:
        seen.append(event)
        return len([n for n in notes(seen) if n[2] > 0]) >= count
    return collect(pd, enough)


def quiet(pd: PdDriver) -> list[Event]:
    """Stamped outputs until nothing has come out for a second."""
    events: list[Event] = []
    try:
        while True:
            events += collect(pd, lambda e: True, timeout=1.0)
    except AssertionError:  # nothing within the second
        return events


def notes(events: list[Event]) -> list[tuple[float, float, float]]:
    """(time ms, pitch, velocity) of the notes played out of the left outlet."""
    return [(t, a[1], a[2]) for t, side, a in events if side == "left" and a[:1] == ["note"]]


def results(events: list[Event], selector: str) -> list[list]:
    return [a[1:] for _, side, a in events if side == "left" and a[:1] == [selector]]


def assert_paired(played: list[tuple[float, float, float]]) -> None:
    """Each note-on is released later by a note-off of its pitch, and nothing is left sounding."""
    down: dict[float, float] = {}
    for t, pitch, velocity in played:
        if velocity > 0:
            assert pitch not in down, f"pitch {pitch} pressed again at {t} while sounding"
            down[pitch] = t
        else:
            assert pitch in down and down.pop(pitch) <= t, f"note-off of {pitch} at {t} without a note-on"
    assert not down, f"hanging notes: {down}"


# -- loading ----------------------------------------------------------------------------------------
def test_the_config_comes_from_the_bundle_and_info_says_what_is_loaded(pd: PdDriver, misnamed: Path,
                                                                      trained_run: Path):
    pd.send("load", str(misnamed))
    assert pd.result("loaded") == ["basic_rnn", 48.0, 83.0, 4.0]  # the file is called attention_rnn.mag
    pd.send("info")
    assert pd.result("config") == ["basic_rnn"]
    assert pd.result("pitches") == [48.0, 83.0]
    assert pd.result("steps_per_quarter") == [4.0]
    assert pd.result("description") == ["random", "weights", "(made", "by", "pdbridge)"]
    assert pd.result("file") == [str(misnamed)]
    pd.send("load", str(trained_run))
    assert "--config attention_rnn" in pd.error()
    pd.send("load", str(trained_run), "--config", "attention_rnn", "--hparams", bundles.SMALL_HPARAMS)
    assert pd.result("loaded") == ["attention_rnn", 48.0, 83.0, 4.0]
    pd.send("load", "no-such.mag")
    assert "MelodyRNN bundle or run folder not found:" in pd.error()


# -- playing in -------------------------------------------------------------------------------------
def test_notes_from_the_note_inlets_are_recorded_at_pds_logical_times(loaded: PdDriver, tmp_path: Path):
    play(loaded, tmp_path, ["0 mrt-pitch 60 100", "250 mrt-pitch 64 90", "125.5 mrt-pitch 60 0",
                            "0 mrt-pitch 67 80", "300 mrt-pitch 64 0", "0.25 mrt-in note 55 70",
                            "199.75 mrt-in note 55 0"])
    loaded.send("state")
    assert loaded.result("phrase") == [4.0, pytest.approx(0.8755)]
    assert loaded.result("held") == [67.0]  # still down: it ends at the phrase's last event
    recorded = [loaded.result("recorded") for _ in range(4)]
    assert recorded == [[60.0, 100.0, 0.0, 375.5], [64.0, 90.0, 250.0, 425.5], [67.0, 80.0, 375.5, 500.0],
                        [55.0, 70.0, 675.75, 199.75]]


# -- answering and playing out ----------------------------------------------------------------------
def test_an_answer_plays_on_pds_clock_and_saves_as_the_same_midi(loaded: PdDriver, tmp_path: Path):
    play(loaded, tmp_path, GRID)
    loaded.send("generate", 4, "--seed", 5, "--text", "mrt-answer")
    events = collect(loaded, lambda e: e[2] == ["played"])
    (count, seconds, qpm, model_ms), = results(events, "answer")
    assert (seconds, qpm) == (4.0, 120.0) and model_ms > 0  # 4 notes: 120 qpm, as the course did
    played = notes(events)
    assert_paired(played)
    assert len([n for n in played if n[2] > 0]) == count
    loaded.send("save", str(tmp_path / "answer.mid"))
    assert loaded.result("saved") == [str(tmp_path / "answer.mid"), count]
    midi = note_seq.midi_file_to_note_sequence(str(tmp_path / "answer.mid"))
    expected = sorted([(n.start_time * 1000, n.pitch, n.velocity) for n in midi.notes]
                      + [(n.end_time * 1000, n.pitch, 0) for n in midi.notes], key=lambda e: (e[0], e[2] > 0))
    first_on = next(t for t, _, v in played if v > 0)
    first_midi = min(n.start_time for n in midi.notes) * 1000
    assert [(t - first_on, p, v) for t, p, v in played] == [
        (pytest.approx(t - first_midi, abs=0.01), p, v) for t, p, v in expected]
    assert played[-1][0] <= first_on - first_midi + seconds * 1000 + 0.01  # all within the answer's length


# -- duet mode --------------------------------------------------------------------------------------
def test_duet_answers_once_the_silence_has_passed_and_not_before(loaded: PdDriver, tmp_path: Path):
    # all keys are up from 200 to 700 ms: less than the silence, so the phrase goes on
    events = play(loaded, tmp_path, ["0 mrt-in duet 1", "0 mrt-in silence 600", "0 mrt-pitch 60 100",
                                     "200 mrt-pitch 60 0", "500 mrt-pitch 64 100", "200 mrt-pitch 64 0"])
    events += collect(loaded, lambda e: e[2] == ["played"])
    answers = results(events, "answer")
    assert len(answers) == 1 and answers[0][1] == 1.0  # a 0.9 s phrase: the shortest answer, 1 s
    assert notes(events)[0][0] >= 900 + 600  # the phrase ended 600 ms after its last release
    loaded.send("state")
    assert loaded.result("phrase") == [2.0, 0.9]  # one phrase, both notes


def test_duet_answers_last_as_long_as_the_phrase_within_the_length_setting(loaded: PdDriver, tmp_path: Path):
    long_phrase = ["0 mrt-pitch 60 100", "500 mrt-pitch 60 0", "0 mrt-pitch 62 100", "500 mrt-pitch 62 0",
                   "0 mrt-pitch 64 100", "500 mrt-pitch 64 0", "0 mrt-pitch 65 100", "1000 mrt-pitch 65 0"]
    loaded.send("duet", 1)
    for length, expected in (([1, 8], 2.5), ([1, 2], 2.0), ([3, 8], 3.0)):
        loaded.send("length", *length)
        events = play(loaded, tmp_path, long_phrase[:8 if expected != 3.0 else 2])
        events += collect(loaded, lambda e: e[2][:1] == ["answer"])
        assert results(events, "answer")[0][1] == expected
        loaded.send("stop")


def assert_cut(events: list[Event]) -> None:
    """An answer was cut: what sounded was released at once, and nothing started after."""
    played = notes(events)
    assert_paired(played)
    count = results(events, "answer")[0][0]
    assert 3 <= len([n for n in played if n[2] > 0]) < count and not results(events, "played")
    cut = played[-1][0]
    released = [p for t, p, v in played if t == cut]
    assert released and all(v == 0 for t, _, v in played if t == cut)


def test_stop_cuts_a_playing_answer_with_no_hanging_notes(loaded: PdDriver, tmp_path: Path):
    play(loaded, tmp_path, GRID)
    loaded.send("generate", 8, "--seed", 1)
    events = until_note_ons(loaded, 3)
    loaded.send("stop")
    assert_cut(events + quiet(loaded))


def test_a_new_phrase_cuts_a_playing_answer(loaded: PdDriver, tmp_path: Path):
    play(loaded, tmp_path, [*GRID, "600 mrt-in clear"])  # the phrase ends: the next press starts a new one
    loaded.send("generate", 8, "--seed", 1)
    events = until_note_ons(loaded, 3)
    loaded._send("pitch", 50, 100)  # the player starts again: the answer stops at that logical time
    events += quiet(loaded)
    assert_cut(events)
    loaded._send("pitch", 50, 0)


def test_a_new_phrase_cancels_an_answer_still_being_generated(loaded: PdDriver, tmp_path: Path):
    # 60 s at 600 qpm is 2400 steps: seconds of work, so the second phrase comes while it runs
    loaded.send("options", "--qpm", 600)
    events = play(loaded, tmp_path, ["0 mrt-in duet 1", "0 mrt-in silence 100", "0 mrt-in length 60 60",
                                     "0 mrt-pitch 60 100", "200 mrt-pitch 60 0", "400 mrt-pitch 62 100",
                                     "0 mrt-in duet 0", "100 mrt-pitch 62 0"])
    events += quiet(loaded)
    assert [(side, atoms) for _, side, atoms in events if side == "right"] == [("right", ["cancelled", "generate"])]
    assert not notes(events) and not results(events, "answer")
    loaded.send("generate", 1)  # the worker stopped between two steps and goes on
    assert loaded.result("answer")[1] == 1.0


def test_mistakes_are_told_in_words(loaded: PdDriver):
    loaded.send("generate", 0.05)
    assert "0.05 s is 0 steps at 120 qpm: an answer is 1 to 4096 steps" in loaded.error()
    loaded.send("generate", 1, "--steps", 8)
    assert "give the answer's length in seconds or --steps" in loaded.error()
    loaded.send("generate", 1, "--temperature", 0)
    assert "--temperature must be more than 0" in loaded.error()
    loaded.send("note", 130, 100)
    assert "note 130 100: pitch and velocity must be 0..127" in loaded.error()
    loaded.send("unload")
    assert loaded.result("unloaded") == []
    loaded.send("save", "answer.mid")
    assert "no answer to save yet: send generate first" in loaded.error()
    loaded.send("generate", 1)
    assert "no model loaded: send load <bundle.mag> first" in loaded.error()
