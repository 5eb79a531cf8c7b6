"""FUDI codec: escaping, float formatting, Pd's 4095-byte limit, stream decoding."""
import numpy as np
import pytest

from pdbridge import fudi


@pytest.mark.parametrize("sym, wire", [
    ("a b", r"a\ b"), ("x;y", r"x\;y"), ("1,2", r"1\,2"), ("$1", r"\$1"), ("back\\slash", r"back\\slash"),
    ("Env([0.7,1.05],[4],[-2])", r"Env([0.7\,1.05]\,[4]\,[-2])"),
])
def test_symbols_are_escaped_and_come_back(sym, wire):
    assert fudi.escape_symbol(sym) == wire
    assert fudi.parse_atoms(wire) == [sym]


def test_an_escaped_token_is_a_symbol_when_read():
    assert fudi.parse_atoms(r"\2024 2024") == ["2024", 2024.0]


def test_pd_reads_these_tokens_as_symbols():
    assert fudi.parse_atoms("nan inf +1 0x10 -0 1e3") == ["nan", "inf", "+1", "0x10", -0.0, 1000.0]


def test_floats_use_nine_significant_digits_and_round_trip_float32():
    values = np.random.default_rng(1).uniform(-1, 1, 5000).astype(np.float32)
    text = " ".join(fudi.format_float(float(v)) for v in values)
    back = np.array(fudi.parse_atoms(text), dtype=np.float64).astype(np.float32)
    assert np.array_equal(back.view(np.uint32), values.view(np.uint32))
    assert fudi.format_float(0.1) == "0.1"
    assert fudi.format_float(1 / 3) == "0.333333333"
    assert fudi.format_float(3.0) == "3"


def test_non_finite_numbers_are_refused():
    with pytest.raises(ValueError):
        fudi.encode(["x", float("nan")])


def test_encode_limit_is_4095_bytes_including_terminator():
    body = "a" * (fudi.MAX_MESSAGE_BYTES - 2)  # + ";\n"
    assert len(fudi.encode([body])) == fudi.MAX_MESSAGE_BYTES
    with pytest.raises(fudi.MessageTooLong):
        fudi.encode([body + "a"])


def test_truncate_text_fits_the_limit():
    atoms = fudi.truncate_text(["error"], "word " * 2000)
    assert atoms[0] == "error" and atoms[-1] == "..."
    assert len(fudi.encode(atoms)) <= fudi.MAX_MESSAGE_BYTES


def test_decoder_handles_split_packets_escapes_and_commas():
    d = fudi.Decoder()
    assert list(d.feed(b"hello diag")) == []
    assert list(d.feed(b"nostics 1 /a\\ b;\nx 1, y 2;")) == [["hello", "diagnostics", 1.0, "/a b"], ["x", 1.0], ["y", 2.0]]
    assert list(d.feed(b"semi\\;colon;")) == [["semi;colon"]]


def test_decoder_refuses_oversize_and_resynchronises():
    d = fudi.Decoder(max_bytes=100)
    with pytest.raises(fudi.FudiError):
        list(d.feed(b"x" * 150))
    assert list(d.feed(b"tail of the big one; ok 1;")) == [["ok", 1.0]]


def test_decoder_refuses_bytes_that_are_not_utf8_and_goes_on():
    d = fudi.Decoder()
    with pytest.raises(fudi.FudiError):
        list(d.feed(b"\xff\xfe;"))
    assert list(d.feed(b"ping;")) == [["ping"]]
