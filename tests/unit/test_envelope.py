"""Env([levels],[times],[curves]) against values computed by hand."""
import math

import numpy as np
import pytest

from workers.runtime.envelope import Env, EnvelopeError


def test_linear_segments_and_held_last_level():
    env = Env.parse("Env([0.8,1,0.7],[2,2],[0,0])")
    assert env.value(0) == pytest.approx(0.8)
    assert env.value(1) == pytest.approx(0.9)
    assert env.value(2) == pytest.approx(1.0)
    assert env.value(3) == pytest.approx(0.85)
    assert env.value(10) == pytest.approx(0.7)


def test_curved_segment_uses_supercollider_formula():
    env = Env.parse("Env([0.7, 1.05], [4], [-2])")
    x = 0.25  # t = 1 s of 4
    expected = 0.7 + 0.35 * (1 - math.exp(-2 * x)) / (1 - math.exp(-2))
    assert env.value(1.0) == pytest.approx(expected, abs=1e-12)
    # negative curve rises fast first (above the straight line), positive slowly (below it)
    assert env.value(1.0) > 0.7 + 0.35 * x
    assert Env.parse("Env([0.7,1.05],[4],[2])").value(1.0) < 0.7 + 0.35 * x


def test_render_gives_one_value_per_sample():
    env = Env.parse("Env([0,1],[1])")
    values = env.render(4, 4)
    assert np.allclose(values, [0, 0.25, 0.5, 0.75])


def test_single_curve_applies_to_all_segments_and_curves_are_optional():
    assert Env.parse("Env([0,1,0],[1,1],[3])").curves == (3.0, 3.0)
    assert Env.parse("Env([0,1],[1])").curves == (0.0,)


@pytest.mark.parametrize("text", ["Env([0,1],[1,2])", "Env([0,1],[-1])", "Env(0,1)", "Env([0,'a'],[1])", "env([0],[])",
                                  "Env([0,1],[1],[0,0])"])
def test_bad_envelopes_say_what_is_wrong(text):
    with pytest.raises(EnvelopeError):
        Env.parse(text)
