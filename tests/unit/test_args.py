"""Course-style options: --key value, repeats, envelopes, clear errors."""
import pytest

from workers.runtime import Env, Options, PdError, number_or_env


def test_course_generate_message():
    atoms = ["--out_sr", 16000.0, "--dur", 4.0, "--temp", 1.0, "--out", "sound1",
             "--temp", "Env([0.7,1.05],[4],[-2])", "--out", "sound2"]
    opts = Options.parse(atoms, known={"out_sr", "dur", "temp", "out", "seed", "seed_sr"})
    assert opts.get("dur", int) == 4
    assert opts.get_all("out", str) == ["sound1", "sound2"]
    temps = opts.get_all("temp", number_or_env)
    assert temps[0] == 1.0 and isinstance(temps[1], Env)
    assert opts.get("seed", str, None) is None


def test_bare_double_dash_and_positional_values():
    opts = Options.parse(["z1", "out", 52.0, "--", "--num_seqs", 2.0])
    assert opts.positional == ["z1", "out", 52.0]
    assert opts.get("num_seqs", int) == 2


def test_envelope_split_by_spaces_is_joined():
    opts = Options.parse(["--temp", "Env([0.7,", "1.05],", "[4])"])
    assert opts.get("temp", number_or_env).levels == (0.7, 1.05)


def test_unescaped_commas_get_a_hint():
    with pytest.raises(PdError, match=r"\\,"):
        Options.parse(["--temp", "Env([0.7"])


def test_errors_name_the_problem():
    with pytest.raises(PdError, match="unknown option --tmep"):
        Options.parse(["--tmep", 1.0], known={"temp"})
    with pytest.raises(PdError, match="whole number"):
        Options.parse(["--dur", 2.5]).get("dur", int)
    with pytest.raises(PdError, match="must be a number"):
        Options.parse(["--dur", "long"]).get("dur", float)
    with pytest.raises(PdError, match="missing option --ckpt_dir"):
        Options.parse([]).require("ckpt_dir", str)
    with pytest.raises(PdError, match="given 2 times"):
        Options.parse(["--dur", 1.0, "--dur", 2.0]).get("dur", float)


def test_negative_numbers_are_values_not_keys():
    assert Options.parse(["--bias", 0.0, -1.5]).values("bias") == [0.0, -1.5]
