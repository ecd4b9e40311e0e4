"""Tests of vtune.space: unit-interval maps, grids, sampling, narrowing, JSON and the default space."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtune import hparams as hp
from vtune.space import Choice, Float, Int, Space, default_space, parse_dimension

EXAMPLE = {
    "learning_rate": {"float": [1e-4, 0.1], "scale": "log"},
    "momentum": {"float": [0.9, 0.999], "scale": "reverse_log"},
    "units": {"int": [16, 256], "scale": "log"},
    "num_layers": {"int": [1, 3]},
    "optimizer": {"choice": ["momentum", "adam", "rmsprop"]},
    "activation": {"choice": ["relu", "tanh"]},
    "weight_decay": {"float": [1e-6, 1e-2], "scale": "log"},
    "dropout": {"float": [0.0, 0.5]},
    "batch_size": 64,
}


# ------------------------------------------------------------------------------------ golden mappings

FLOAT_GOLDEN = [
    # (dimension, u, value)
    (Float(0.0, 0.5), 0.0, 0.0),
    (Float(0.0, 0.5), 0.5, 0.25),
    (Float(0.0, 0.5), 1.0, 0.5),
    (Float(-2.0, 2.0), 0.25, -1.0),
    (Float(1e-4, 1e-1, scale="log"), 0.0, 1e-4),
    (Float(1e-4, 1e-1, scale="log"), 1 / 3, 1e-3),
    (Float(1e-4, 1e-1, scale="log"), 2 / 3, 1e-2),
    (Float(1e-4, 1e-1, scale="log"), 1.0, 1e-1),
    (Float(1.0, 100.0, scale="log"), 0.5, 10.0),
    (Float(0.9, 0.999, scale="reverse_log"), 0.0, 0.9),
    (Float(0.9, 0.999, scale="reverse_log"), 0.5, 0.99),
    (Float(0.9, 0.999, scale="reverse_log"), 1.0, 0.999),
    (Float(0.0, 0.99, scale="reverse_log"), 0.5, 0.9),
    (Float(0.8, 0.998, scale="reverse_log"), 0.5, 0.98),
]


@pytest.mark.parametrize("dim,u,value", FLOAT_GOLDEN)
def test_float_golden(dim, u, value):
    assert dim.from_unit(u) == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert dim.to_unit(value) == pytest.approx(u, abs=1e-12)


def test_reverse_log_midpoint_is_exactly_0_99():
    assert abs(Float(0.9, 0.999, scale="reverse_log").from_unit(0.5) - 0.99) <= 1e-12


def test_reverse_log_gives_equal_mass_to_each_decade_of_one_minus_x():
    dim = Float(0.9, 0.999, scale="reverse_log")
    x = dim.from_unit(np.random.default_rng(0).random(20_000))
    below = np.mean(x < 0.99)
    assert 0.48 < below < 0.52  # a linear scale would put ~0.91 below 0.99


def test_float_ends_are_exact_and_clipped():
    dim = Float(1e-4, 1e-1, scale="log")
    assert dim.from_unit(0.0) == 1e-4 and dim.from_unit(1.0) == 1e-1
    assert dim.from_unit(-0.3) == 1e-4 and dim.from_unit(1.7) == 1e-1


INT_GOLDEN = [
    # (dimension, u, value)
    (Int(1, 3), 0.0, 1),
    (Int(1, 3), 0.33, 1),
    (Int(1, 3), 0.34, 2),
    (Int(1, 3), 0.66, 2),
    (Int(1, 3), 0.67, 3),
    (Int(1, 3), 1.0, 3),
    (Int(0, 9), 0.55, 5),
    # log: Int(1, 4) has edges 0.5 .. 4.5 (ratio 9); 1 owns log(3)/log(9) = 1/2 of the interval
    (Int(1, 4, scale="log"), 0.0, 1),
    (Int(1, 4, scale="log"), 0.4999, 1),
    (Int(1, 4, scale="log"), 0.5001, 2),
    (Int(1, 4, scale="log"), 0.5 + math.log(2.5 / 1.5) / math.log(9) - 1e-4, 2),
    (Int(1, 4, scale="log"), 0.5 + math.log(2.5 / 1.5) / math.log(9) + 1e-4, 3),
    (Int(1, 4, scale="log"), 1.0, 4),
    (Int(16, 256, scale="log"), 0.5, 63),  # round(sqrt(15.5 * 256.5)) = round(63.05)
]


@pytest.mark.parametrize("dim,u,value", INT_GOLDEN)
def test_int_golden(dim, u, value):
    out = dim.from_unit(u)
    assert out == value and type(out) is int


@pytest.mark.parametrize(
    "dim,shares",
    [
        (Int(1, 4), [0.25, 0.25, 0.25, 0.25]),
        (Int(-1, 1), [1 / 3, 1 / 3, 1 / 3]),
        (Int(1, 4, scale="log"), [math.log(3 / 1) / math.log(9), math.log(5 / 3) / math.log(9),
                                  math.log(7 / 5) / math.log(9), math.log(9 / 7) / math.log(9)]),
    ],
)
def test_int_shares_of_the_unit_interval(dim, shares):
    u = (np.arange(200_000) + 0.5) / 200_000
    values = dim.from_unit(u)
    counts = np.array([np.mean(values == k) for k in range(dim.low, dim.high + 1)])
    np.testing.assert_allclose(counts, shares, atol=1e-4)


@pytest.mark.parametrize(
    "dim,value,u",
    [
        (Int(1, 3), 1, 1 / 6),
        (Int(1, 3), 2, 0.5),
        (Int(1, 3), 3, 5 / 6),
        (Choice(["a", "b", "c", "d"]), "a", 0.125),
        (Choice(["a", "b", "c", "d"]), "d", 0.875),
        (Choice([True, False]), False, 0.75),
    ],
)
def test_discrete_to_unit_is_the_cell_centre(dim, value, u):
    assert dim.to_unit(value) == pytest.approx(u, abs=1e-15)


@pytest.mark.parametrize(
    "u,value", [(0.0, "relu"), (0.3333, "relu"), (0.3334, "tanh"), (0.9, "elu"), (1.0, "elu"), (5.0, "elu")]
)
def test_choice_cells(u, value):
    assert Choice(["relu", "tanh", "elu"]).from_unit(u) == value


def test_choice_keeps_true_apart_from_one():
    dim = Choice([1, True])
    assert dim.from_unit(0.9) is True
    assert dim.from_unit(0.1) == 1 and dim.from_unit(0.1) is not True
    assert dim.index(True) == 1


def test_from_unit_on_arrays_keeps_shape():
    u = np.array([[0.0, 0.5], [0.75, 1.0]])
    np.testing.assert_allclose(Float(0.0, 2.0).from_unit(u), [[0.0, 1.0], [1.5, 2.0]])
    ints = Int(1, 4).from_unit(u)
    assert ints.dtype == np.int64 and ints.tolist() == [[1, 3], [4, 4]]
    choices = Choice(["a", "b"]).from_unit(u)
    assert choices.shape == (2, 2) and choices.tolist() == [["a", "b"], ["b", "b"]]
    np.testing.assert_allclose(Float(0.0, 2.0).to_unit(np.array([0.5, 1.0])), [0.25, 0.5])


# --------------------------------------------------------------------------------------------- grids

GRID_GOLDEN = [
    (Float(0.0, 0.5), 3, [0.0, 0.25, 0.5]),
    (Float(0.0, 0.5), 1, [0.25]),
    (Float(1e-4, 1e-1, scale="log"), 4, [1e-4, 1e-3, 1e-2, 1e-1]),
    (Float(0.9, 0.999, scale="reverse_log"), 3, [0.9, 0.99, 0.999]),
    (Int(1, 3), 3, [1, 2, 3]),
    (Int(1, 3), 10, [1, 2, 3]),
    (Int(1, 3), 1, [2]),
    (Int(0, 100), 5, [0, 25, 50, 75, 100]),
    (Int(16, 256, scale="log"), 5, [16, 32, 64, 128, 256]),
    (Int(16, 256, scale="log"), 3, [16, 64, 256]),
    (Int(1, 4, scale="log"), 3, [1, 2, 4]),
    (Choice(["a", "b", "c"]), 2, ["a", "b", "c"]),
]


@pytest.mark.parametrize("dim,n,expected", GRID_GOLDEN)
def test_dimension_grid(dim, n, expected):
    got = dim.grid(n)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g == pytest.approx(e, rel=1e-12) if isinstance(e, float) else g == e


def test_int_log_grid_deduplicates():
    got = Int(1, 8, scale="log").grid(7)
    assert got == sorted(set(got)) and got[0] == 1 and got[-1] == 8


def test_space_grid_is_the_cartesian_product():
    space = Space({"units": Int(16, 64), "activation": Choice(["relu", "tanh"]), "dropout": 0.1})
    grid = space.grid(3)
    assert len(grid) == 6
    assert grid[0] == {"units": 16, "activation": "relu", "dropout": 0.1}
    assert grid[-1] == {"units": 64, "activation": "tanh", "dropout": 0.1}
    assert {(c["units"], c["activation"]) for c in grid} == {
        (u, a) for u in (16, 40, 64) for a in ("relu", "tanh")
    }
    assert len(Space.from_json(EXAMPLE).grid(2)) == 2 * 2 * 2 * 2 * 3 * 2 * 2 * 2


def test_space_grid_refuses_a_huge_grid():
    with pytest.raises(ValueError, match="max_points"):
        Space.from_json(EXAMPLE).grid(10, max_points=1000)


# ------------------------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("stratified", [True, False])
def test_sampling_is_reproducible_and_seed_dependent(stratified):
    space = Space.from_json(EXAMPLE)
    a = space.sample(16, seed=3, stratified=stratified)
    b = space.sample(16, seed=3, stratified=stratified)
    c = space.sample(16, seed=4, stratified=stratified)
    d = space.sample(16, seed=np.random.default_rng(3), stratified=stratified)
    assert a == b == d
    assert a != c
    assert len(a) == 16
    for config in a:
        assert list(config) == list(space.names)
        assert config["batch_size"] == 64
        assert 1e-4 <= config["learning_rate"] <= 0.1
        assert 0.9 <= config["momentum"] <= 0.999
        assert type(config["units"]) is int and 16 <= config["units"] <= 256
        assert config["optimizer"] in ("momentum", "adam", "rmsprop")
        hp.complete_config(config)  # every sampled configuration is legal
    json.dumps(a)  # Python scalars only


def test_stratified_sampling_covers_every_stratum():
    space = Space({"dropout": Float(0.0, 0.5), "activation": Choice(["relu", "tanh", "elu", "gelu"])})
    configs = space.sample(8, seed=0)
    strata = sorted(int(c["dropout"] / 0.5 * 8) for c in configs)
    assert strata == list(range(8))
    assert sorted(c["activation"] for c in configs) == sorted(["relu", "tanh", "elu", "gelu"] * 2)


def test_sample_of_zero_and_of_a_fixed_space():
    assert Space.from_json(EXAMPLE).sample(0, seed=0) == []
    assert Space({"batch_size": 16}).sample(2, seed=0) == [{"batch_size": 16}, {"batch_size": 16}]


# ---------------------------------------------------------------------------------------- unit cube


def test_space_unit_round_trip():
    space = Space.from_json(EXAMPLE)
    assert space.searchable_names == (
        "learning_rate", "optimizer", "momentum", "num_layers", "units", "activation", "dropout", "weight_decay",
    )
    for config in space.sample(20, seed=1):
        u = space.to_unit(config)
        assert u.shape == (space.num_dims,) and np.all((u >= 0) & (u <= 1))
        back = space.from_unit(u)
        assert set(back) == set(config)
        for name, value in config.items():
            if isinstance(value, float):
                assert back[name] == pytest.approx(value, rel=1e-9)
            else:
                assert back[name] == value
    batch = space.sample(5, seed=2)
    assert space.from_unit_batch(space.to_unit_batch(batch))[3]["units"] == batch[3]["units"]


def test_space_to_unit_errors_name_the_hyperparameter():
    space = Space.from_json(EXAMPLE)
    config = space.sample(1, seed=0)[0]
    with pytest.raises(ValueError, match="units"):
        space.to_unit({k: v for k, v in config.items() if k != "units"})
    with pytest.raises(ValueError, match="learning_rate.*0.5"):
        space.to_unit({**config, "learning_rate": 0.5})
    with pytest.raises(ValueError, match="optimizer.*'sgd'"):
        space.to_unit({**config, "optimizer": "sgd"})
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        space.from_unit(np.zeros(3))


# ------------------------------------------------------------------------------------------- narrow


def test_narrow_float_and_int_windows():
    space = Space(
        {
            "learning_rate": Float(1e-4, 1e-1, scale="log"),
            "dropout": Float(0.0, 0.5),
            "units": Int(1, 100),
            "activation": Choice(["relu", "tanh"]),
            "batch_size": 32,
        }
    )
    center = {"learning_rate": 1e-3, "dropout": 0.0, "units": 50, "activation": "tanh"}
    small = space.narrow(center, 0.2)
    lr = small["learning_rate"]
    assert lr.scale == "log"
    assert lr.low == pytest.approx(10 ** -3.3, rel=1e-9) and lr.high == pytest.approx(10 ** -2.7, rel=1e-9)
    assert small["dropout"] == Float(0.0, 0.05)  # clipped at the lower end
    assert small["units"] == Int(40, 60)
    assert small["activation"] == Choice(["relu", "tanh"])  # choices stay whole
    assert small["batch_size"] == 32
    assert space.narrow(center, 0.2, fix_choices=True)["activation"] == "tanh"
    whole = Space({"dropout": Float(0.0, 0.5), "momentum": Float(0.9, 0.999, scale="reverse_log")})
    assert whole.narrow({"dropout": 0.25, "momentum": 0.99}, 1.0) == whole
    # the centre is inside the narrowed space and maps to the same value
    assert small.from_unit(small.to_unit(center))["units"] == 50


def test_narrow_reverse_log_keeps_its_scale():
    space = Space({"momentum": Float(0.9, 0.999, scale="reverse_log")})
    small = space.narrow({"momentum": 0.99}, 0.5)
    assert small["momentum"].scale == "reverse_log"
    assert small["momentum"].low == pytest.approx(1 - 10 ** -1.5, rel=1e-12)
    assert small["momentum"].high == pytest.approx(1 - 10 ** -2.5, rel=1e-12)
    assert small["momentum"].from_unit(0.5) == pytest.approx(0.99, abs=1e-12)


def test_narrow_collapses_to_fixed_values_instead_of_empty_ranges():
    space = Space({"num_layers": Int(1, 3), "units": Int(16, 256, scale="log"), "dropout": Float(0.0, 0.5)})
    small = space.narrow({"num_layers": 2, "units": 64, "dropout": 0.25}, 0.05)
    assert small["num_layers"] == 2
    assert isinstance(small["units"], Int) and small["units"].low <= 64 <= small["units"].high
    tiny = space.narrow({"num_layers": 2, "units": 64, "dropout": 0.25}, 1e-300)
    assert tiny["units"] == 64 and tiny["dropout"] == pytest.approx(0.25)
    for s in (small, tiny):
        for dim in s.dimensions.values():
            assert dim.low < dim.high


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), fraction=st.floats(1e-6, 1.0))
def test_narrow_property_centre_stays_inside(seed, fraction):
    space = Space.from_json(EXAMPLE)
    center = space.sample(1, seed=seed)[0]
    small = space.narrow(center, fraction)
    for name in space.searchable_names:
        item = small[name]
        if isinstance(item, (Float, Int)):
            assert item.low < item.high
            assert item.low <= center[name] <= item.high
            assert item.scale == space[name].scale
        elif not isinstance(item, Choice):
            assert item == pytest.approx(center[name], rel=1e-9)


# --------------------------------------------------------------------------------------------- JSON


def test_example_parses_and_round_trips(tmp_path):
    space = Space.from_json(EXAMPLE)
    assert space["momentum"] == Float(0.9, 0.999, scale="reverse_log")
    assert space["units"] == Int(16, 256, scale="log")
    assert space["num_layers"] == Int(1, 3)
    assert space["optimizer"] == Choice(["momentum", "adam", "rmsprop"])
    assert space["batch_size"] == 64
    assert len(space) == 9 and "dropout" in space and "rho" not in space
    assert space.to_json() == {**EXAMPLE, "dropout": {"float": [0.0, 0.5]}}
    path = tmp_path / "space.json"
    path.write_text(json.dumps(EXAMPLE))
    assert Space.from_file(path) == space
    assert Space.from_json(json.loads(json.dumps(space.to_json()))) == space
    assert "units=Int(16, 256, scale='log')" in repr(space)


@pytest.mark.parametrize(
    "obj,dim",
    [
        ({"float": [0, 1]}, Float(0.0, 1.0)),
        ({"float": [1e-3, 1], "scale": "log"}, Float(1e-3, 1.0, scale="log")),
        ({"int": [2, 9], "scale": "linear"}, Int(2, 9)),
        ({"int": [2.0, 9.0]}, Int(2, 9)),
        ({"choice": [1, 2.5, "x", True]}, Choice([1, 2.5, "x", True])),
    ],
)
def test_parse_dimension(obj, dim):
    assert parse_dimension(obj) == dim
    assert parse_dimension(dim.to_json()) == dim


def test_space_choices_are_normalised_by_hparams():
    space = Space({"nesterov": Choice([0, 1]), "batch_size": Choice([32.0, 64]), "decay_rate": Choice([1, 2])})
    assert space["nesterov"].values == (False, True)
    assert space["batch_size"].values == (32, 64)
    assert space["decay_rate"].values == (1.0, 2.0)


# ------------------------------------------------------------------------------------ static geometry


@pytest.mark.parametrize(
    "mapping,max_layers,per_layer,batch_sizes",
    [
        ({}, 2, (64, 64), [32]),
        ({"num_layers": Int(1, 3), "units": Int(16, 256, scale="log")}, 3, (256, 256, 256), [32]),
        ({"num_layers": 3, "units": 32, "units_2": Int(8, 512)}, 3, (32, 512, 32), [32]),
        ({"num_layers": Choice([1, 2]), "units_3": 1024, "batch_size": Choice([128, 16])}, 2, (64, 64), [16, 128]),
        ({"units_1": Choice([8, 96]), "batch_size": Int(8, 11)}, 2, (96, 64), [8, 9, 10, 11]),
        ({"units_1": None, "units": 48}, 2, (48, 48), [32]),
    ],
)
def test_static_geometry(mapping, max_layers, per_layer, batch_sizes):
    space = Space(mapping)
    assert space.max_layers() == max_layers
    assert space.max_units_per_layer() == per_layer
    assert space.max_units() == max(per_layer)
    assert space.batch_sizes() == batch_sizes


# ------------------------------------------------------------------------------------ default space


@pytest.mark.parametrize(
    "n_features,n_outputs,n_train,task,units,batch",
    [
        (64, 10, 1200, "classification", Int(10, 128, scale="log"), 32),
        (784, 10, 60000, "classification", Int(10, 512, scale="log"), 64),
        (4, 3, 120, "classification", Int(8, 16, scale="log"), 16),
        (13, 1, 300, "regression", Int(8, 32, scale="log"), 32),
        (30, 1, 20, "binary", Int(8, 64, scale="log"), 4),
        (10, 300, 3, "classification", Int(300, 600, scale="log"), 1),
    ],
)
def test_default_space(n_features, n_outputs, n_train, task, units, batch):
    data = SimpleNamespace(n_features=n_features, n_outputs=n_outputs, n_train=n_train, task=task)
    space = default_space(data)
    assert space["units"] == units
    assert space["batch_size"] == batch
    assert space["learning_rate"] == Float(1e-4, 1e-1, scale="log")
    assert space["momentum"] == Float(0.8, 0.999, scale="reverse_log")
    assert space["optimizer"] == Choice(["momentum", "adam", "rmsprop"])
    assert space["num_layers"] == Int(1, 3)
    assert space["dropout"] == Float(0.0, 0.5)
    for config in space.sample(8, seed=0):
        hp.complete_config(config, task=task)


def test_default_space_rejects_a_bad_dataset():
    with pytest.raises(TypeError, match="n_train"):
        default_space(SimpleNamespace(n_features=4, n_outputs=3, task="binary"))
    with pytest.raises(ValueError, match="task='ranking'"):
        default_space(SimpleNamespace(n_features=4, n_outputs=3, n_train=10, task="ranking"))
    with pytest.raises(ValueError, match="n_features=0"):
        default_space(SimpleNamespace(n_features=0, n_outputs=3, n_train=10, task="binary"))


# -------------------------------------------------------------------------------------- bad inputs

BAD = [
    # (callable, exception, regex the message must match)
    (lambda: Float(0.5, 0.1), ValueError, r"low=0\.5, high=0\.1"),
    (lambda: Float(1.0, 1.0), ValueError, r"low=1\.0, high=1\.0"),
    (lambda: Int(5, 2), ValueError, r"low=5, high=2"),
    (lambda: Float(0.0, 1.0, scale="log"), ValueError, r"log.*low=0\.0"),
    (lambda: Float(-1.0, 1.0, scale="log"), ValueError, r"log.*low=-1\.0"),
    (lambda: Int(0, 10, scale="log"), ValueError, r"log.*low=0"),
    (lambda: Float(0.9, 1.0, scale="reverse_log"), ValueError, r"reverse_log.*high=1\.0"),
    (lambda: Float(-0.1, 0.5, scale="reverse_log"), ValueError, r"reverse_log.*low=-0\.1"),
    (lambda: Float(0.0, math.inf), ValueError, r"high=inf"),
    (lambda: Float(math.nan, 1.0), ValueError, r"low=nan"),
    (lambda: Int(1, 2.5), TypeError, r"high=2\.5"),
    (lambda: Int("1", 3), TypeError, r"low='1'"),
    (lambda: Float(True, 3.0), TypeError, r"low=True"),
    (lambda: Int(0, False), TypeError, r"high=False"),
    (lambda: Float(0.0, 1.0, scale="exp"), ValueError, r"scale='exp'"),
    (lambda: Int(1, 3, scale="reverse_log"), ValueError, r"scale='reverse_log'"),
    (lambda: Choice([]), ValueError, r"values=\[\]"),
    (lambda: Choice(["relu", "tanh", "relu"]), ValueError, r"duplicate value='relu'"),
    (lambda: Choice([1, 1.0]), ValueError, r"duplicate value=1\.0"),
    (lambda: Choice("relu"), TypeError, r"values='relu'"),
    (lambda: Choice([None]), TypeError, r"value=None"),
    (lambda: Choice([math.nan]), ValueError, r"value=nan"),
    (lambda: Float(0.0, 1.0).to_unit(2.0), ValueError, r"value=2\.0"),
    (lambda: Int(1, 3).to_unit(2.5), TypeError, r"value=2\.5"),
    (lambda: Float(0.0, 1.0).grid(0), ValueError, r"n=0"),
    (lambda: Float(0.0, 1.0).from_unit(math.nan), ValueError, r"NaN"),
    # Space-level
    (lambda: Space({"learning_rat": Float(1e-4, 0.1)}), ValueError, r"'learning_rat'.*learning_rate"),
    (lambda: Space({"optimizer": Choice(["adam", "adamm"])}), ValueError, r"optimizer.*'adamm'"),
    (lambda: Space({"activation": Choice(["relu", 3])}), ValueError, r"activation.*3"),
    (lambda: Space({"optimizer": Float(0.0, 1.0)}), TypeError, r"optimizer.*Choice"),
    (lambda: Space({"units": Float(8.0, 64.0)}), TypeError, r"units.*Int"),
    (lambda: Space({"dropout": Int(0, 1)}), TypeError, r"dropout.*Float"),
    (lambda: Space({"num_layers": Int(1, 9)}), ValueError, r"num_layers.*high.*9"),
    (lambda: Space({"momentum": Float(0.9, 1.0)}), ValueError, r"momentum.*1\.0"),
    (lambda: Space({"learning_rate": Float(0.0, 0.1)}), ValueError, r"learning_rate.*low.*0\.0"),
    (lambda: Space({"batch_size": 0}), ValueError, r"batch_size=0"),
    (lambda: Space({"dropout": "high"}), TypeError, r"dropout='high'"),
    (lambda: Space({"nesterov": Choice([0, False])}), ValueError, r"nesterov.*duplicate"),
    (lambda: Space([("units", 3)]), TypeError, r"mapping"),
    (lambda: Space({"units": 8}).sample(2, seed=1.5), TypeError, r"seed=1\.5"),
    (lambda: Space({"units": 8}).sample(-1, seed=0), ValueError, r"n=-1"),
    (lambda: Space({"units": Int(1, 9)}).narrow({"units": 3}, 0.0), ValueError, r"fraction=0\.0"),
    (lambda: Space({"units": Int(1, 9)}).narrow({"units": 3}, 1.5), ValueError, r"fraction=1\.5"),
    (lambda: Space({"units": Int(1, 9)}).narrow({}, 0.5), ValueError, r"'units'"),
    (lambda: Space({"units": Int(1, 9)}).narrow({"units": 12}, 0.5), ValueError, r"units.*value=12"),
    # JSON
    (lambda: Space.from_json({"units": {"int": [1, 9], "step": 2}}), ValueError, r"units.*'step'"),
    (lambda: Space.from_json({"units": {"int": [1, 9, 27]}}), ValueError, r"units.*length 2"),
    (lambda: Space.from_json({"units": {"int": "1-9"}}), TypeError, r"units.*'1-9'"),
    (lambda: Space.from_json({"dropout": {"float": [0, "0.5"]}}), TypeError, r"dropout.*high='0.5'"),
    (lambda: Space.from_json({"dropout": {"float": [0, 0.5], "scale": 2}}), TypeError, r"dropout.*scale=2"),
    (lambda: Space.from_json({"dropout": {"float": [0.5, 0.1]}}), ValueError, r"dropout.*low=0\.5"),
    (lambda: Space.from_json({"optimizer": {"choice": "adam"}}), TypeError, r"optimizer.*'adam'"),
    (lambda: Space.from_json({"optimizer": {"choice": ["adam"], "scale": "log"}}), ValueError, r"optimizer.*scale"),
    (lambda: Space.from_json({"units": {"float": [1, 2], "int": [1, 2]}}), ValueError, r"units.*exactly one"),
    (lambda: Space.from_json({"units": {}}), ValueError, r"units.*exactly one"),
    (lambda: Space.from_json({"optimizer": ["adam", "sgd"]}), TypeError, r"optimizer.*choice"),
    (lambda: Space.from_json([1, 2]), TypeError, r"JSON object"),
]


@pytest.mark.parametrize("make,exc,pattern", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_inputs_raise_with_a_message_naming_the_field(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_from_file_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match="nope.json"):
        Space.from_file(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"units": {"int": [1, 9]},\n "dropout": }')
    with pytest.raises(ValueError, match=r"broken\.json.*line 2, column 13"):
        Space.from_file(broken)
    dup = tmp_path / "dup.json"
    dup.write_text('{"units": 8, "units": 16}')
    with pytest.raises(ValueError, match=r"dup\.json.*duplicate key 'units'"):
        Space.from_file(dup)
    bad = tmp_path / "bad.json"
    bad.write_text('{"units": {"int": [1, 9], "scale": "cubic"}}')
    with pytest.raises(ValueError, match=r"bad\.json.*units.*scale='cubic'"):
        Space.from_file(str(bad))


# ------------------------------------------------------------------------------ property-based tests

_finite = dict(allow_nan=False, allow_infinity=False)


@st.composite
def float_dims(draw):
    scale = draw(st.sampled_from(["linear", "log", "reverse_log"]))
    if scale == "linear":
        low = draw(st.floats(-1e6, 1e6, **_finite))
        high = low + draw(st.floats(1e-3, 1e6, **_finite))
    elif scale == "log":
        low = draw(st.floats(1e-8, 1e4, **_finite))
        high = low * draw(st.floats(1.001, 1e6, **_finite))
    else:
        low = draw(st.floats(0.0, 0.99, **_finite))
        high = 1 - (1 - low) * draw(st.floats(1e-6, 0.999, **_finite))
    return Float(low, high, scale=scale)


@st.composite
def int_dims(draw):
    scale = draw(st.sampled_from(["linear", "log"]))
    low = draw(st.integers(1 if scale == "log" else -1000, 1000))
    high = low + draw(st.integers(1, 100_000))
    return Int(low, high, scale=scale)


@settings(max_examples=300, deadline=None)
@given(dim=float_dims(), u=st.floats(0.0, 1.0))
def test_float_round_trip_property(dim, u):
    value = dim.from_unit(u)
    assert dim.low <= value <= dim.high
    again = dim.from_unit(dim.to_unit(value))
    assert math.isclose(again, value, rel_tol=1e-9, abs_tol=1e-9 * (dim.high - dim.low))
    if dim.scale == "reverse_log":  # the mass near 1 must survive the trip too
        assert math.isclose(1 - again, 1 - value, rel_tol=1e-6)


@settings(max_examples=300, deadline=None)
@given(dim=float_dims(), u1=st.floats(0.0, 1.0), u2=st.floats(0.0, 1.0))
def test_float_from_unit_is_monotone(dim, u1, u2):
    lo, hi = sorted((u1, u2))
    assert dim.from_unit(lo) <= dim.from_unit(hi)


@settings(max_examples=300, deadline=None)
@given(dim=int_dims(), data=st.data())
def test_int_round_trip_property(dim, data):
    value = data.draw(st.integers(dim.low, dim.high))
    u = dim.to_unit(value)
    assert 0.0 <= u <= 1.0
    assert dim.from_unit(u) == value
    decoded = dim.from_unit(data.draw(st.floats(0.0, 1.0)))
    assert dim.low <= decoded <= dim.high and dim.from_unit(dim.to_unit(decoded)) == decoded


_choice_values = st.one_of(
    st.text(max_size=8), st.booleans(), st.integers(-1000, 1000), st.floats(-1e6, 1e6, **_finite)
)


def _distinct(values):
    out = []
    for v in values:
        if not any(isinstance(v, bool) == isinstance(c, bool) and v == c for c in out):
            out.append(v)
    return out


@settings(max_examples=150, deadline=None)
@given(values=st.lists(_choice_values, min_size=1, max_size=12).map(_distinct), u=st.floats(0.0, 1.0))
def test_choice_round_trip_property(values, u):
    dim = Choice(values)
    for v in values:
        back = dim.from_unit(dim.to_unit(v))
        assert back == v and type(back) is type(v)
    assert dim.to_unit(dim.from_unit(u)) == pytest.approx((math.floor(min(u * len(values), len(values) - 1)) + 0.5)
                                                         / len(values))
    assert parse_dimension(json.loads(json.dumps(dim.to_json()))) == dim


@settings(max_examples=100, deadline=None)
@given(dim=st.one_of(float_dims(), int_dims()))
def test_numeric_json_round_trip_property(dim):
    assert parse_dimension(json.loads(json.dumps(dim.to_json()))) == dim
