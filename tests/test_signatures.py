"""Every function of o1pruner._core carries a text signature (its docstring
starts with ``name(sig)\\n--\\n\\n``), so inspect.signature, help() and IDEs
read its parameters; the signature agrees with the typed stubs (_core.pyi) and
with the keywords the function really accepts."""

import ast
import inspect
import pathlib

import numpy as np
import pytest

from o1pruner import _core

STUB = pathlib.Path(_core.__file__).with_name("_core.pyi")
if not STUB.exists():  # an installed build: the stub sits next to the package
    STUB = pathlib.Path(__file__).resolve().parents[1] / "o1pruner" / "_core.pyi"

# functions whose docstrings do not have the text-signature form yet (strict
# xfail: a test fails once one is fixed and still listed); none now
PENDING: set = set()

FUNCS = sorted(n for n in dir(_core) if not n.startswith("_") and callable(getattr(_core, n)))


def stub_signatures():
    tree = ast.parse(STUB.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            a = node.args
            pos = [p.arg for p in a.posonlyargs] + [p.arg for p in a.args]
            n_default = len(a.defaults)
            out[node.name] = [(name, i < len(a.posonlyargs), i >= len(pos) - n_default)
                              for i, name in enumerate(pos)]
            out[node.name] += [(p.arg, False, d is not None) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    return out


def test_the_list_of_functions_is_complete():
    assert len(FUNCS) >= 26
    assert set(FUNCS) == set(stub_signatures()), "_core and _core.pyi list different functions"


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, raises=ValueError,
                                            reason="module.c's method table has no text signatures yet"))
    if n in PENDING else n for n in FUNCS])
def test_text_signature(name):
    f = getattr(_core, name)
    sig = inspect.signature(f)  # ValueError without a text signature
    doc = f.__doc__
    assert doc and doc.strip(), "the docstring after the signature is empty"
    assert not doc.lstrip().startswith(name + "("), "the signature line is still part of __doc__"
    # the same parameters as the stub: names, order, positional-only, defaults
    params = [(p.name, p.kind == p.POSITIONAL_ONLY, p.default is not p.empty)
              for p in sig.parameters.values()]
    assert params == stub_signatures()[name]


@pytest.mark.parametrize("name", [n for n in FUNCS if n not in PENDING])
def test_signature_names_are_the_accepted_keywords(name):
    # every parameter that is not positional-only is accepted by keyword: the
    # call fails on the values (an object() for each), never on a name
    f = getattr(_core, name)
    sig = inspect.signature(f)
    args, kwargs = [], {}
    for p in sig.parameters.values():
        if p.kind == p.POSITIONAL_ONLY:
            args.append(object())
        else:
            kwargs[p.name] = object()
    try:
        f(*args, **kwargs)
    except TypeError as e:
        assert "keyword argument" not in str(e) and "required argument" not in str(e), str(e)
    except (ValueError, OverflowError):
        pass
    # and one keyword more is refused
    with pytest.raises(TypeError):
        f(*args, **kwargs, not_a_parameter=1)


@pytest.mark.parametrize("name", [n for n in FUNCS if n not in PENDING])
def test_signature_required_parameters(name):
    # leaving out any parameter without a default is a TypeError naming it
    f = getattr(_core, name)
    sig = inspect.signature(f)
    required = [p for p in sig.parameters.values() if p.default is p.empty]
    for missing in required:
        if missing.kind == missing.POSITIONAL_ONLY:
            continue
        kwargs = {p.name: object() for p in required if p is not missing}
        with pytest.raises(TypeError, match=missing.name):
            f(**kwargs)


def _required_args():
    rng = np.random.default_rng(0)
    lp = rng.normal(-1, 0.3, (3, 5)).astype(np.float32)
    mask = np.ones((3, 5), bool)
    cfg = (11, 8, 12, 1, 2, 16, 1e-6, 10000.0)
    h = rng.standard_normal((4, 8)).astype(np.float32)
    w = rng.standard_normal((11, 8)).astype(np.float32)
    return {
        "sequence_logprobs": dict(token_logp=lp, mask=mask),
        "sequence_logprobs_backward": dict(grad=np.ones(3), mask=mask),
        "ppo_clip_loss": dict(logp=lp, ref_logp=lp - 0.1, advantages=np.array([1.0, -1.0, 0.5]), mask=mask),
        "dpo_loss": dict(chosen_logp=lp, rejected_logp=lp[:, :3] - 0.5, ref_chosen_logp=np.array([-5.0, -4.0, -6.0]),
                         ref_rejected_logp=np.array([-3.0, -4.0, -2.5]), chosen_mask=mask, rejected_mask=mask[:, :3]),
        "grader_compare": dict(predictions=["1/2", "0.5000001", None], golds=["0.5", "0.5", "1"]),
        "harmonize_weights": dict(rewards=[0.1, 5.0, -3.0, 0.4]),
        "reference_stats": dict(lengths=[3.0, 4.0, 5.0], correct=[1.0, 0.0, 1.0], group=[0, 0, 1]),
        "model_arena_size": dict(config=cfg, n_tokens=7),
        "fused_linear_logprobs": dict(hidden=h, weight=w, targets=[0, 1, 2, 3], temperature=1.0,
                                      ignore_index=-100),
    }


@pytest.mark.parametrize("name", sorted(_required_args()))
def test_signature_defaults_are_the_real_defaults(name):
    # passing every default shown by the signature gives what omitting them gives
    f = getattr(_core, name)
    req = _required_args()[name]
    defaults = {p.name: p.default for p in inspect.signature(f).parameters.values()
                if p.default is not p.empty and p.name not in req}
    assert defaults

    def flat(r):
        if isinstance(r, (tuple, list)):
            return [flat(x) for x in r]
        return np.asarray(r).tolist()

    assert flat(f(**req)) == flat(f(**req, **defaults))
