"""Array declarations: the grammar, and what they select from a request's atoms."""
import pytest

from pdwire.specs import ANY, NONE, ArraySpec, SpecError, split_arguments


def select(spec, atoms):
    return ArraySpec.parse(spec).select(atoms)


def test_positional_terms_and_slices():
    atoms = ["za", "out1", 36.0, "zb", "out2", 40.0]
    assert select("0::3", atoms).exact == {"za", "zb"}
    assert select("1::3", atoms).exact == {"out1", "out2"}
    assert select("2::3", atoms).exact == {"36", "40"}  # a number names the array Pd would
    assert select("0", atoms).exact == {"za"}
    assert select("-1", ["a", "b"]).exact == {"b"}


def test_options_and_positionals_are_split_as_the_runtime_does():
    atoms = ["in", "out1", "out2", "--sr", 48000.0, "--latent", "lat", "--seed", 3.0]
    assert select("1:", atoms).exact == {"out1", "out2"}
    assert select("1: --latent-*", atoms).prefixes == ("lat-",)
    assert select("--out", ["--temp", 1.0, "--out", "a", "--temp", 0.9, "--out", "b"]).exact == {"a", "b"}
    assert split_arguments(["load", "--", "--ckpt_dir", "x"]) == (["load"], [("ckpt_dir", ["x"])])
    assert split_arguments(["a", "--", "-3"]) == (["a", "-3"], [])


def test_families_any_and_none():
    latents = select("1-*", ["in", "lat"])
    assert latents.covers("lat-0") and latents.covers("lat-17") and not latents.covers("lat")
    assert not latents.covers("other-0")
    assert select("", ["a"]) == NONE and not NONE and not NONE.covers("a")
    assert select("*", ["a"]) == ANY and ANY.covers("anything")
    both = select("0::3 *", ["z", "out", 60.0])
    assert both.exact == {"z"} and both.any and both.covers("amps")


@pytest.mark.parametrize("spec", ["a:b", "0:1:2:3", "0::0", "0::-1", "x"])
def test_bad_declarations_are_refused(spec):
    with pytest.raises(SpecError):
        ArraySpec.parse(spec)
