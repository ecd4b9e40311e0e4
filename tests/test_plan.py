"""Tests of vtune.plan: golden Hyperband bracket tables, properties over many (R, η), and input checks."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtune import plan as plans
from vtune.strategies import Halving, Hyperband


def rungs_of(bracket) -> list[tuple[int, int]]:
    """``[(num_configs, epochs), ...]`` of one bracket."""
    return [(r.num_configs, r.epochs) for r in bracket.rungs]


# ------------------------------------------------------------------------------------------ golden tables

#: Li et al. (JMLR 2018) Algorithm 1 with R=81, η=3, by hand: n = ⌈5·3^s/(s+1)⌉, r = 81·3^(−s).
R81_FORMULA = {
    4: [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
    3: [(34, 3), (11, 9), (3, 27), (1, 81)],
    2: [(15, 9), (5, 27), (1, 81)],
    1: [(8, 27), (2, 81)],
    0: [(5, 81)],
}
#: The paper's Table 1 (R=81, η=3), which does not follow its own formula for s = 3, 2, 1.
R81_TABLE = {
    4: [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
    3: [(27, 3), (9, 9), (3, 27), (1, 81)],
    2: [(9, 9), (3, 27), (1, 81)],
    1: [(6, 27), (2, 81)],
    0: [(5, 81)],
}
#: R=27, η=3: s_max = 3, B = 108, n = ⌈4·3^s/(s+1)⌉.
R27_FORMULA = {
    3: [(27, 1), (9, 3), (3, 9), (1, 27)],
    2: [(12, 3), (4, 9), (1, 27)],
    1: [(6, 9), (2, 27)],
    0: [(4, 27)],
}
#: R=243, η=3: s_max = 5 (six brackets), B = 1458, n = ⌈6·3^s/(s+1)⌉.
R243_FORMULA = {
    5: [(243, 1), (81, 3), (27, 9), (9, 27), (3, 81), (1, 243)],
    4: [(98, 3), (32, 9), (10, 27), (3, 81), (1, 243)],
    3: [(41, 9), (13, 27), (4, 81), (1, 243)],
    2: [(18, 27), (6, 81), (2, 243)],
    1: [(9, 81), (3, 243)],
    0: [(6, 243)],
}


@pytest.mark.parametrize("max_epochs,eta,sizing,golden,model_epochs", [
    # 81·1+27·2+9·6+3·18+1·54 = 297; 34·3+11·6+3·18+54 = 276; 15·9+5·18+54 = 279; 8·27+2·54 = 324; 5·81 = 405.
    (81, 3, "formula", R81_FORMULA, 297 + 276 + 279 + 324 + 405),
    # 297; 27·3+9·6+3·18+54 = 243; 9·9+3·18+54 = 189; 6·27+2·54 = 270; 405.
    (81, 3, "table", R81_TABLE, 297 + 243 + 189 + 270 + 405),
    # 27+9·2+3·6+18 = 81; 12·3+4·6+18 = 78; 6·9+2·18 = 90; 4·27 = 108.
    (27, 3, "formula", R27_FORMULA, 81 + 78 + 90 + 108),
    # 243+81·2+27·6+9·18+3·54+162 = 1053; 98·3+32·6+10·18+3·54+162 = 990; 41·9+13·18+4·54+162 = 981;
    # 18·27+6·54+2·162 = 1134; 9·81+3·162 = 1215; 6·243 = 1458.
    (243, 3, "formula", R243_FORMULA, 1053 + 990 + 981 + 1134 + 1215 + 1458),
])
def test_golden_bracket_tables(max_epochs, eta, sizing, golden, model_epochs):
    plan = plans.hyperband(max_epochs, eta, sizing=sizing)
    assert [b.s for b in plan.brackets] == sorted(golden, reverse=True)
    for bracket in plan.brackets:
        assert rungs_of(bracket) == golden[bracket.s], f"bracket s={bracket.s}"
        keeps = [r.keep for r in bracket.rungs]
        assert keeps == [n for n, _ in golden[bracket.s][1:]] + [0]
    assert plan.model_epochs == model_epochs
    assert plan.num_configs == sum(g[0][0] for g in golden.values())
    assert plan.to_json()["model_epochs"] == model_epochs
    assert (plan.max_epochs, plan.eta, plan.sizing) == (max_epochs, eta, sizing)


def test_first_rungs_formula_and_table():
    assert [b.num_configs for b in plans.hyperband(81, 3).brackets] == [81, 34, 15, 8, 5]
    assert [b.num_configs for b in plans.hyperband(81, 3, sizing="table").brackets] == [81, 27, 9, 6, 5]
    assert [plans.table_first_rung(s, 4, 3) for s in (4, 3, 2, 1, 0)] == [81, 27, 9, 6, 5]


def test_r243_has_six_brackets():
    # math.log(243, 3) is 4.999… in floating point on common libms: int() of it would drop a bracket.
    plan = plans.hyperband(243, 3)
    assert len(plan.brackets) == 6
    assert plans.int_log(243, 3) == 5
    assert [plans.int_log(3**k, 3) for k in range(12)] == list(range(12))
    assert [plans.int_log(3**k - 1, 3) for k in range(1, 12)] == list(range(11))


def test_strategy_plan_matches_docstring_and_table_text():
    assert Hyperband(max_epochs=27, eta=3).plan.model_epochs == 357
    text = plans.hyperband(81, 3).table()
    assert "configurations: 143, model-epochs: 1581" in text
    assert text.splitlines()[0] == "Hyperband plan: R=81, eta=3, sizing=formula"
    as_json = plans.hyperband(27, 3).to_json()
    assert as_json["brackets"][1] == {"s": 2, "rungs": [{"configs": 12, "epochs": 3, "keep": 4},
                                                        {"configs": 4, "epochs": 9, "keep": 1},
                                                        {"configs": 1, "epochs": 27, "keep": 0}]}


@pytest.mark.parametrize("num_configs,max_epochs,eta,min_epochs,golden", [
    (27, 27, 3, 1, [(27, 1), (9, 3), (3, 9), (1, 27)]),
    (30, 27, 3, 1, [(30, 1), (10, 3), (3, 9), (1, 27)]),
    (16, 16, 2, 1, [(16, 1), (8, 2), (4, 4), (2, 8), (1, 16)]),
    (27, 36, 3, 4, [(27, 4), (9, 12), (3, 36)]),
    # Too few configurations for every rung: the bracket stops where one configuration is left.
    (10, 27, 3, 1, [(10, 1), (3, 3), (1, 9)]),
    # max_epochs between powers: rungs stop at the last min_epochs·η^i ≤ max_epochs.
    (27, 20, 3, 1, [(27, 1), (9, 3), (3, 9)]),
    (1, 5, 3, 5, [(1, 5)]),
])
def test_halving_golden(num_configs, max_epochs, eta, min_epochs, golden):
    plan = plans.halving(num_configs, max_epochs, eta, min_epochs=min_epochs)
    assert len(plan.brackets) == 1
    assert rungs_of(plan.brackets[0]) == golden
    assert [r.keep for r in plan.brackets[0].rungs] == [n for n, _ in golden[1:]] + [0]
    assert Halving(num_configs=num_configs, max_epochs=max_epochs, eta=eta,
                   min_epochs=min_epochs).stages(None)[0] == plan.brackets[0]


def test_single_rung():
    plan = plans.single_rung(7, 5)
    assert [rungs_of(b) for b in plan.brackets] == [[(7, 5)]]
    assert plan.model_epochs == 35


# ------------------------------------------------------------------------------------------ properties

def _brute_s_max(r: int, eta: int) -> int:
    return max(s for s in range(64) if eta**s <= r)


@settings(max_examples=300, deadline=None)
@given(max_epochs=st.integers(1, 5000), eta=st.integers(2, 9), sizing=st.sampled_from(["formula", "table"]))
def test_hyperband_properties(max_epochs, eta, sizing):
    plan = plans.hyperband(max_epochs, eta, sizing=sizing)
    s_max = plans.int_log(max_epochs, eta)
    assert s_max == _brute_s_max(max_epochs, eta)
    assert eta**s_max <= max_epochs < eta ** (s_max + 1)
    assert [b.s for b in plan.brackets] == list(range(s_max, -1, -1))
    total = 0
    for b in plan.brackets:
        assert len(b.rungs) == b.s + 1
        n = b.rungs[0].num_configs
        if sizing == "formula":
            # n = ⌈(B/R)·η^s/(s+1)⌉ with B = (s_max+1)·R, in exact rational arithmetic.
            assert n == math.ceil(Fraction((s_max + 1) * eta**b.s, b.s + 1))
        else:
            assert n == max(eta**b.s, ((s_max + 1) // (b.s + 1)) * eta**b.s)
        sizes = [r.num_configs for r in b.rungs]
        epochs = [r.epochs for r in b.rungs]
        assert sizes == [n // eta**i for i in range(b.s + 1)]
        assert all(a >= c for a, c in zip(sizes, sizes[1:])), sizes
        assert sizes[-1] >= 1
        assert [r.keep for r in b.rungs] == sizes[1:] + [0]
        assert all(a < c for a, c in zip(epochs, epochs[1:])), epochs
        assert epochs[0] >= 1 and epochs[-1] == max_epochs
        for i, e in enumerate(epochs):  # r_i = R·η^(i−s), rounded
            assert abs(e - max_epochs * Fraction(eta**i, eta**b.s)) <= Fraction(1, 2)
        expect = sum(n_i * (r_i - r_prev) for n_i, r_i, r_prev in zip(sizes, epochs, [0] + epochs[:-1]))
        assert b.model_epochs == expect
        total += expect
    assert plan.model_epochs == total


@settings(max_examples=200, deadline=None)
@given(num_configs=st.integers(1, 600), max_epochs=st.integers(1, 400), eta=st.integers(2, 6),
       min_epochs=st.integers(1, 20))
def test_halving_properties(num_configs, max_epochs, eta, min_epochs):
    if min_epochs > max_epochs:
        with pytest.raises(ValueError, match="min_epochs"):
            plans.halving(num_configs, max_epochs, eta, min_epochs=min_epochs)
        return
    (b,) = plans.halving(num_configs, max_epochs, eta, min_epochs=min_epochs).brackets
    sizes = [r.num_configs for r in b.rungs]
    epochs = [r.epochs for r in b.rungs]
    assert sizes == [num_configs // eta**i for i in range(len(sizes))]
    assert epochs == [min_epochs * eta**i for i in range(len(epochs))]
    assert sizes[-1] >= 1 and epochs[-1] <= max_epochs
    # As many rungs as fit: one more would exceed max_epochs or leave no configuration.
    assert sizes[-1] < eta or epochs[-1] * eta > max_epochs


# ------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("kwargs,exc,field", [
    ({"max_epochs": 27, "eta": 1}, ValueError, "eta"),
    ({"max_epochs": 27, "eta": 0}, ValueError, "eta"),
    ({"max_epochs": 0, "eta": 3}, ValueError, "max_epochs"),
    ({"max_epochs": -5, "eta": 3}, ValueError, "max_epochs"),
    ({"max_epochs": 27.0, "eta": 3}, TypeError, "max_epochs"),
    ({"max_epochs": "27", "eta": 3}, TypeError, "max_epochs"),
    ({"max_epochs": True, "eta": 3}, TypeError, "max_epochs"),
    ({"max_epochs": 27, "eta": 3.0}, TypeError, "eta"),
    ({"max_epochs": 27, "eta": 3, "sizing": "paper"}, ValueError, "sizing"),
    ({"max_epochs": 27, "eta": 3, "sizing": None}, ValueError, "sizing"),
])
def test_hyperband_bad_input(kwargs, exc, field):
    with pytest.raises(exc, match=field):
        plans.hyperband(**kwargs)


@pytest.mark.parametrize("args,kwargs,exc,field", [
    ((0, 27, 3), {}, ValueError, "num_configs"),
    ((2.5, 27, 3), {}, (TypeError, ValueError), "num_configs"),
    ((9, 27, 1), {}, ValueError, "eta"),
    ((9, 0, 3), {}, ValueError, "max_epochs"),
    ((9, 27, 3), {"min_epochs": 0}, ValueError, "min_epochs"),
    ((9, 27, 3), {"min_epochs": 28}, ValueError, "min_epochs"),
    ((9, 27, 3), {"min_epochs": 1.5}, TypeError, "min_epochs"),
])
def test_halving_bad_input(args, kwargs, exc, field):
    with pytest.raises(exc, match=field):
        plans.halving(*args, **kwargs)


@pytest.mark.parametrize("cls,kwargs,exc,field", [
    (Hyperband, {"max_epochs": 27, "eta": 1}, ValueError, "eta"),
    (Hyperband, {"max_epochs": 0}, ValueError, "max_epochs"),
    (Hyperband, {"max_epochs": 9.0}, TypeError, "max_epochs"),
    (Hyperband, {"sizing": "Table"}, ValueError, "sizing"),
    (Halving, {"num_configs": 0}, ValueError, "num_configs"),
    (Halving, {"eta": 1}, ValueError, "eta"),
])
def test_strategy_bad_input(cls, kwargs, exc, field):
    with pytest.raises(exc, match=field):
        cls(**kwargs)
