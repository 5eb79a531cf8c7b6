"""Small parts of the hub: note lists for Pd's clock, long results in parts, rotating logs."""
import pytest

from pdbridge import fudi
from pdbridge.logs import RotatingLog
from pdbridge.notes import note_events, note_lines
from pdbridge.pdclient import MAX_RESULT_BYTES, result_lines


def test_notes_become_timed_on_and_off_events():
    notes = [(0.0, 60, 100, 0.5), (0.5, 60, 90, 0.25), (0.25, 64, 80, 1.0)]
    assert note_events(notes) == [(0.0, 60, 100), (250.0, 64, 80), (250.0, 60, 0), (0.0, 60, 90),
                                  (250.0, 60, 0), (500.0, 64, 0)]
    lines = note_lines({"notes": notes, "text": "answer"})
    assert lines[0] == ["_notes", "clear"] and lines[-2:] == [["_notes", "text", "answer"], ["_notes", "play"]]
    assert lines[1] == ["_notes", "add", 0.0, "note", 60, 100]


def test_a_long_result_travels_in_parts_each_fit_for_pd():
    atoms = ["count", *[float(i) for i in range(5000)]]
    lines = result_lines(atoms)
    assert [line[0] for line in lines[:-1]] == ["_part"] * (len(lines) - 1) and lines[-1][0] == "_ok"
    assert all(len(fudi.encode(line)) <= fudi.MAX_MESSAGE_BYTES for line in lines)
    assert [a for line in lines for a in line[1:]] == atoms
    assert result_lines(["pong", "x"]) == [["_ok", "pong", "x"]]
    with pytest.raises(ValueError, match="too long"):
        result_lines(["x" * 100] * (MAX_RESULT_BYTES // 100 + 10))


def test_logs_rotate_by_size_and_keep_what_they_had(tmp_path):
    path = tmp_path / "rave.log"
    path.write_text("from the last run\n")
    log = RotatingLog(path, max_bytes=1000, backups=2)
    for i in range(100):
        log.write(f"line {i:03d} " + "x" * 40)
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["rave.log", "rave.log.1", "rave.log.2"]
    assert all(p.stat().st_size < 1100 for p in tmp_path.iterdir())
    assert "line 099" in path.read_text()
    assert "from the last run" not in path.read_text()  # rotated away, not wiped at start
