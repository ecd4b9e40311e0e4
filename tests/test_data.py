"""Tests for vtune.data: bundled sets, splitting, scaling, CSV / data-frame / IDX / MNIST loaders, bad input."""

from __future__ import annotations

import dataclasses
import gzip
import struct

import numpy as np
import pytest

from vtune import data
from vtune.data import DATASETS, Dataset, from_arrays, from_csv, from_dataframe, from_splits, load_dataset


# ----------------------------------------------------------------------------------------------------
# Bundled data sets
# ----------------------------------------------------------------------------------------------------

EXPECTED = {
    # name: (task, n_features, n_outputs, total rows)
    "digits": ("classification", 64, 10, 1797),
    "breast_cancer": ("binary", 30, 1, 569),
    "wine": ("classification", 13, 3, 178),
    "diabetes": ("regression", 10, 1, 442),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundled_shapes_and_dtypes(name):
    ds = load_dataset(name)
    task, d, n_out, total = EXPECTED[name]
    assert ds.name == name and ds.task == task
    assert ds.n_features == d and ds.n_outputs == n_out
    assert ds.n_train + ds.n_val + ds.n_test == total
    assert ds.n_test == int(np.ceil(0.15 * total)) and ds.n_val == int(np.ceil(0.15 * total))
    for split in ("train", "val", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        assert x.dtype == np.float32 and x.shape[1] == d and x.shape[0] == y.shape[0]
        if task == "regression":
            assert y.dtype == np.float32 and y.shape[1:] == (1,)
        else:
            assert y.dtype == np.int32 and y.ndim == 1
            assert y.min() >= 0 and y.max() < len(ds.classes)
    assert ds.shift.shape == ds.scale.shape == (d,)
    assert len(ds.feature_names) == d
    assert name in ds.describe() and str(ds.n_train) in ds.describe()
    if task == "regression":
        assert ds.classes is None
        # targets are not scaled: diabetes progression values are in the tens to hundreds
        assert ds.y_train.max() > 100


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "wine"])
def test_bundled_split_is_stratified(name):
    ds = load_dataset(name)
    n_classes = len(ds.classes)
    overall = np.bincount(np.concatenate([ds.y_train, ds.y_val, ds.y_test]), minlength=n_classes)
    overall = overall / overall.sum()
    for y in (ds.y_train, ds.y_val, ds.y_test):
        share = np.bincount(y, minlength=n_classes) / len(y)
        assert np.max(np.abs(share - overall)) < 0.03, (share, overall)


def test_standard_scaling_is_fitted_on_train_only():
    ds = load_dataset("wine")
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-4)
    # validation and test are scaled with the training statistics, not their own
    assert np.abs(ds.x_val.mean(axis=0)).max() > 0.05
    assert np.abs(ds.x_test.mean(axis=0)).max() > 0.05
    assert np.abs(ds.x_test.std(axis=0) - 1.0).max() > 0.05


@pytest.mark.parametrize("scaling", ["standard", "minmax", "none"])
def test_transform_reproduces_splits_from_raw_rows(scaling):
    # Use the row index as a regression target, so every split tells which raw rows it holds.
    from sklearn.datasets import load_wine

    raw = load_wine().data
    ds = from_arrays(raw, np.arange(len(raw), dtype=np.float64), scaling=scaling, seed=3)
    rows = {s: getattr(ds, f"y_{s}")[:, 0].astype(int) for s in ("train", "val", "test")}
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(len(raw)))
    train_raw = raw[rows["train"]]
    if scaling == "standard":
        np.testing.assert_allclose(ds.shift, train_raw.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(ds.scale, train_raw.std(axis=0), rtol=1e-6)
    elif scaling == "minmax":
        np.testing.assert_allclose(ds.shift, train_raw.min(axis=0), rtol=1e-6)
        np.testing.assert_allclose(ds.x_train.min(axis=0), 0.0, atol=1e-6)
        np.testing.assert_allclose(ds.x_train.max(axis=0), 1.0, atol=1e-6)
    else:
        np.testing.assert_array_equal(ds.shift, 0.0)
        np.testing.assert_array_equal(ds.scale, 1.0)
        np.testing.assert_allclose(ds.x_test, raw[rows["test"]].astype(np.float32))
    for split in ("train", "val", "test"):
        got = ds.transform(raw[rows[split]])
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, getattr(ds, f"x_{split}"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scaling", ["standard", "minmax"])
def test_constant_feature_gets_unit_scale(scaling):
    x = np.column_stack([np.full(30, 7.0), np.arange(30.0)])
    ds = from_arrays(x, np.arange(30) % 2, scaling=scaling)
    assert ds.scale[0] == 1.0
    np.testing.assert_array_equal(ds.x_train[:, 0], 0.0)
    assert np.all(np.isfinite(ds.x_train))


def test_split_is_deterministic_by_seed():
    a, b, c = load_dataset("digits", seed=5), load_dataset("digits", seed=5), load_dataset("digits", seed=6)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "shift", "scale"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.x_test, c.x_test)


def test_custom_fractions():
    ds = load_dataset("breast_cancer", val_fraction=0.1, test_fraction=0.2)
    assert (ds.n_val, ds.n_test) == (int(np.ceil(0.1 * 569)), int(np.ceil(0.2 * 569)))
    assert ds.n_train == 569 - ds.n_val - ds.n_test


def test_xor_is_four_points_everywhere_and_unscaled():
    ds = load_dataset("xor")
    expected_x = [[0, 0], [0, 1], [1, 0], [1, 1]]
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(ds, f"x_{split}"), expected_x)
        np.testing.assert_array_equal(getattr(ds, f"y_{split}"), [0, 1, 1, 0])
    assert ds.task == "binary" and ds.n_outputs == 1 and ds.scaling == "none"
    scaled = load_dataset("xor", scaling="standard")
    np.testing.assert_allclose(scaled.x_train, np.array(expected_x) * 2.0 - 1.0)


def test_dataset_is_frozen_and_read_only():
    ds = load_dataset("xor")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        ds.x_train[0, 0] = 5.0


# ----------------------------------------------------------------------------------------------------
# Task inference and label encoding
# ----------------------------------------------------------------------------------------------------

RNG_X = np.random.default_rng(0).normal(size=(120, 3))


@pytest.mark.parametrize(
    "y, task, n_outputs",
    [
        (np.arange(120) % 2, "binary", 1),
        (np.arange(120) % 4, "classification", 4),
        ((np.arange(120) % 2).astype(bool), "binary", 1),
        (np.array(["dog", "cat", "emu"] * 40), "classification", 3),
        (np.array(["no", "yes"] * 60, dtype=object), "binary", 1),
        ((np.arange(120) % 2).astype(np.float64), "regression", 1),  # floats are targets, not labels
        (np.arange(120) % 60, "regression", 1),  # > MAX_INFERRED_CLASSES distinct integers
        (np.random.default_rng(1).normal(size=(120, 2)), "regression", 2),
    ],
)
def test_task_inference(y, task, n_outputs):
    ds = from_arrays(RNG_X, y)
    assert ds.task == task and ds.n_outputs == n_outputs


def test_string_labels_are_sorted_and_decoded():
    y = np.array(["dog", "cat", "emu"] * 40)
    ds = from_arrays(RNG_X, y)
    assert ds.classes.tolist() == ["cat", "dog", "emu"]
    assert ds.decode_labels(ds.y_test).tolist().count("dog") == np.sum(ds.y_test == 1)
    assert ds.decode_labels([2, 0]).tolist() == ["emu", "cat"]


def test_numeric_labels_are_remapped_and_integral_floats_accepted():
    y = np.array([0.0, 2.0, 5.0] * 40)
    ds = from_arrays(RNG_X, y, task="classification")
    assert ds.classes.tolist() == [0, 2, 5]
    assert set(np.unique(ds.y_train).tolist()) == {0, 1, 2}
    assert ds.decode_labels([1]).tolist() == [2]


def test_explicit_task_overrides_inference():
    ds = from_arrays(RNG_X, np.arange(120) % 3, task="regression")
    assert ds.task == "regression" and ds.y_train.dtype == np.float32


# ----------------------------------------------------------------------------------------------------
# from_splits and from_dataframe
# ----------------------------------------------------------------------------------------------------


def test_from_splits_keeps_rows_and_fits_on_train():
    rng = np.random.default_rng(2)
    x = rng.normal(loc=3.0, size=(50, 4))
    y = np.array(["a", "b"] * 25)
    ds = from_splits(x[:30], y[:30], x[30:40], y[30:40], x[40:], y[40:], name="bench")
    assert (ds.n_train, ds.n_val, ds.n_test) == (30, 10, 10)
    np.testing.assert_allclose(ds.shift, x[:30].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(ds.x_val, (x[30:40] - x[:30].mean(0)) / x[:30].std(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ds.decode_labels(ds.y_test), y[40:])
    assert ds.task == "binary" and ds.name == "bench"


def test_from_splits_encodes_labels_consistently_across_splits():
    x = np.arange(24.0).reshape(12, 2)
    y_train, y_val, y_test = np.array([1, 3, 5, 1, 3, 5]), np.array([5, 1, 3]), np.array([3, 3, 1])
    ds = from_splits(x[:6], y_train, x[6:9], y_val, x[9:], y_test)
    assert ds.classes.tolist() == [1, 3, 5]
    np.testing.assert_array_equal(ds.y_val, [2, 0, 1])
    np.testing.assert_array_equal(ds.y_test, [1, 1, 0])


class FakeFrame:
    """The duck-typed subset of a pandas DataFrame that from_dataframe uses."""

    def __init__(self, columns: dict):
        self._cols = {k: list(v) for k, v in columns.items()}

    @property
    def columns(self):
        return list(self._cols)

    def __getitem__(self, key):
        return np.array(self._cols[key], dtype=object if any(isinstance(v, str) for v in self._cols[key]) else None)

    def drop(self, columns):
        return FakeFrame({k: v for k, v in self._cols.items() if k not in columns})


def test_from_dataframe_duck_typed():
    frame = FakeFrame({"a": range(40), "label": ["x", "y"] * 20, "b": np.linspace(0, 1, 40)})
    ds = from_dataframe(frame, "label", seed=1)
    assert ds.feature_names == ["a", "b"] and ds.target_name == "label" and ds.name == "dataframe"
    assert ds.task == "binary" and ds.classes.tolist() == ["x", "y"]
    with pytest.raises(ValueError, match=r"target='nope'.*\['a', 'label', 'b'\]"):
        from_dataframe(frame, "nope")
    bad = FakeFrame({"a": [1.0, "oops", 3.0] * 10, "label": [0, 1, 0] * 10})
    with pytest.raises(ValueError, match=r"column 'a'.*'oops'.*row 1"):
        from_dataframe(bad, "label")


def test_from_dataframe_pandas():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40) % 7, "y": pd.Categorical(["u", "v"] * 20)})
    ds = from_dataframe(df, "y")
    assert ds.task == "binary" and ds.feature_names == ["a", "b"] and ds.classes.tolist() == ["u", "v"]


# ----------------------------------------------------------------------------------------------------
# CSV
# ----------------------------------------------------------------------------------------------------


def _write(path, text):
    path.write_text(text)
    return path


def test_csv_numeric_classification(tmp_path):
    rows = "\n".join(f"{i},{i * 0.5},{i % 3}" for i in range(60))
    path = _write(tmp_path / "toy.csv", "f1,f2,label\n" + rows + "\n\n")
    ds = from_csv(path, "label")
    assert ds.name == "toy" and ds.task == "classification" and ds.n_outputs == 3
    assert ds.feature_names == ["f1", "f2"] and ds.target_name == "label"
    assert ds.n_train + ds.n_val + ds.n_test == 60


def test_csv_string_labels_and_target_in_middle(tmp_path):
    rows = "\n".join(f"{i},{'setosa' if i % 2 else 'virginica'},{-i}" for i in range(40))
    path = _write(tmp_path / "iris.csv", "width,species,height\n" + rows + "\n")
    ds = from_csv(str(path), target="species", scaling="minmax", seed=4)
    assert ds.task == "binary" and ds.classes.tolist() == ["setosa", "virginica"]
    assert ds.feature_names == ["width", "height"]
    assert ds.scaling == "minmax"


def test_csv_float_target_is_regression(tmp_path):
    rows = "\n".join(f"{i},{i / 7:.4f}" for i in range(30))
    ds = from_csv(_write(tmp_path / "r.csv", "x,y\n" + rows), "y")
    assert ds.task == "regression" and ds.y_train.shape[1] == 1


@pytest.mark.parametrize(
    "text, exc, pattern",
    [
        ("", ValueError, "is empty"),
        ("a,b,label\n", ValueError, "no data rows"),
        ("a,b\n1,2\n", ValueError, r"target='label'.*\['a', 'b'\]"),
        ("a,b,label\n1,2,0\n1,oops,1\n", ValueError, r"column 'b'.*'oops'.*data row 2 \(line 3\)"),
        ("a,b,label\n1,,0\n", ValueError, r"column 'b'.*''.*data row 1"),
        ("a,b,label\n1,2,0\n1,2\n", ValueError, r"data row 2 \(line 3\) has 2 cells.*3"),
        ("a,a,label\n1,2,0\n", ValueError, r"repeats column names \['a'\]"),
        ("a,b,label\n1,2,\n", ValueError, r"target column 'label' is empty at data row 1"),
        ("label\n1\n2\n", ValueError, "no feature columns"),
    ],
)
def test_csv_bad_input(tmp_path, text, exc, pattern):
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(exc, match=pattern):
        from_csv(path, "label")


def test_csv_missing_file(tmp_path):
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        from_csv(missing, "label")


# ----------------------------------------------------------------------------------------------------
# IDX and MNIST
# ----------------------------------------------------------------------------------------------------

IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B, np.dtype("i4"): 0x0C,
             np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, IDX_CODES[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path, arr, *, compress=False):
    blob = idx_bytes(arr)
    path.write_bytes(gzip.compress(blob) if compress else blob)
    return path


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    "arr",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([3, 1, 4, 1, 5], dtype=np.uint8),
        np.array([-3, 7], dtype=np.int8),
        np.array([[-300, 2], [5, 1000]], dtype=np.int16),
        np.array([-70000, 5], dtype=np.int32),
        np.array([[1.5, -2.25]], dtype=np.float32),
        np.array([np.pi, -1e300], dtype=np.float64),
    ],
    ids=["u8-3d", "u8-1d", "i8", "i16", "i32", "f32", "f64"],
)
def test_load_idx_roundtrip(tmp_path, arr, compress):
    path = write_idx(tmp_path / ("a.idx.gz" if compress else "a.idx"), arr, compress=compress)
    got = data.load_idx(path)
    assert got.shape == arr.shape and got.dtype.kind == arr.dtype.kind and got.dtype.itemsize == arr.dtype.itemsize
    np.testing.assert_array_equal(got, arr)


def test_load_idx_detects_gzip_by_magic_bytes(tmp_path):
    arr = np.arange(6, dtype=np.uint8)
    path = write_idx(tmp_path / "labels-idx1-ubyte", arr, compress=True)  # no .gz suffix
    np.testing.assert_array_equal(data.load_idx(path), arr)


@pytest.mark.parametrize(
    "blob, pattern",
    [
        (idx_bytes(np.zeros((2, 3), np.uint8))[:-1], "truncated"),
        (idx_bytes(np.zeros((2, 3), np.uint8))[:9], r"truncated.*header needs 12"),
        (b"\x00\x00", "truncated"),
        (b"\x01\x02\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad magic number 01020801"),
        (b"\x00\x00\x0a\x01" + struct.pack(">I", 1) + b"\x00", "unknown data type code 0x0A"),
        (idx_bytes(np.zeros(3, np.uint8)) + b"\x00", "longer than its header says"),
    ],
    ids=["short-data", "short-header", "short-magic", "bad-magic", "bad-dtype", "extra-bytes"],
)
def test_load_idx_bad_files(tmp_path, blob, pattern):
    path = tmp_path / "bad-idx"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=pattern) as info:
        data.load_idx(path)
    assert "bad-idx" in str(info.value)


def test_load_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing-idx"):
        data.load_idx(tmp_path / "missing-idx")


def make_fake_mnist(directory, *, n_train=100, n_test=20, side=28):
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, size=(n_train, side, side), dtype=np.uint8)
    test_x = rng.integers(0, 256, size=(n_test, side, side), dtype=np.uint8)
    train_y = (np.arange(n_train) % 10).astype(np.uint8)
    test_y = (np.arange(n_test) % 10).astype(np.uint8)
    # mix raw and gzipped files, as people unpack some and not others
    write_idx(directory / "train-images-idx3-ubyte.gz", train_x, compress=True)
    write_idx(directory / "train-labels-idx1-ubyte", train_y)
    write_idx(directory / "t10k-images-idx3-ubyte", test_x)
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", test_y, compress=True)
    return train_x, train_y, test_x, test_y


def test_load_mnist_fake_directory(tmp_path):
    train_x, train_y, test_x, test_y = make_fake_mnist(tmp_path)
    ds = data.load_mnist(tmp_path, scaling="none")
    assert ds.task == "classification" and ds.n_features == 784 and ds.n_outputs == 10
    assert (ds.n_train, ds.n_val, ds.n_test) == (85, 15, 20)
    np.testing.assert_allclose(ds.x_test, test_x.reshape(20, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, test_y)
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    # validation is a stratified split of the official training set: every digit shows up
    assert sorted(set(ds.y_val.tolist())) == list(range(10))
    # transform takes raw pixels
    np.testing.assert_allclose(ds.transform(test_x.reshape(20, -1)), ds.x_test, rtol=1e-6)

    std = data.load_mnist(tmp_path, kind="fashion_mnist", limit=80, seed=1)
    assert std.name == "fashion_mnist" and std.n_train + std.n_val == 80 and std.n_test == 20
    np.testing.assert_allclose(std.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(std.transform(test_x.reshape(20, -1)), std.x_test, rtol=1e-5, atol=1e-5)


def test_load_mnist_missing_files(tmp_path):
    make_fake_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte.*never downloads.*lecun") as info:
        data.load_mnist(tmp_path)
    assert "train-labels-idx1-ubyte[.gz]" in str(info.value)
    with pytest.raises(FileNotFoundError, match="fashion-mnist"):
        data.load_mnist(tmp_path / "absent", kind="fashion_mnist")
    with pytest.raises(ValueError, match="kind='digits'"):
        data.load_mnist(tmp_path, kind="digits")
    with pytest.raises(ValueError, match="limit=0"):
        data.load_mnist(tmp_path, limit=0)



def test_load_mnist_too_few_rows_for_stratified_validation(tmp_path):
    make_fake_mnist(tmp_path)
    with pytest.raises(ValueError, match=r"60 rows \(limit=60\) give train=51, val=9 for 10 classes"):
        data.load_mnist(tmp_path, limit=60)


def test_load_mnist_mismatched_counts(tmp_path):
    make_fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(99, np.uint8))
    with pytest.raises(ValueError, match="100 images but .*99 labels"):
        data.load_mnist(tmp_path)


# ----------------------------------------------------------------------------------------------------
# Bad input: every case raises before any work, with a message naming the field and the value
# ----------------------------------------------------------------------------------------------------

X = np.random.default_rng(3).normal(size=(40, 3))
Y2 = np.arange(40) % 2


def _with(x, i, j, value):
    x = x.copy()
    x[i, j] = value
    return x


BAD_ARRAYS = [
    ("nan-feature", dict(x=_with(X, 5, 2, np.nan), y=Y2), ValueError, r"x holds 1 NaN.*row 5, column 2"),
    ("inf-feature", dict(x=_with(_with(X, 7, 0, np.inf), 9, 1, -np.inf), y=Y2), ValueError,
     r"x holds 2 NaN or infinite.*inf at row 7, column 0"),
    ("length-mismatch", dict(x=X, y=Y2[:39]), ValueError, "x has 40 rows, y has 39"),
    ("x-1d", dict(x=X[:, 0], y=Y2), ValueError, r"1-D array of shape \(40,\).*reshape\(-1, 1\)"),
    ("x-3d", dict(x=X.reshape(40, 3, 1), y=Y2), ValueError, r"2-D \[N, D\]; got shape \(40, 3, 1\)"),
    ("x-empty-rows", dict(x=np.zeros((0, 3)), y=np.zeros(0)), ValueError, r"x is empty; got shape \(0, 3\)"),
    ("x-empty-cols", dict(x=np.zeros((40, 0)), y=Y2), ValueError, r"x is empty; got shape \(40, 0\)"),
    ("x-strings", dict(x=np.array([["a", "b"]] * 40), y=Y2), TypeError, "x must hold numbers"),
    ("fractional-label", dict(x=X, y=np.array([0, 1.5] * 20), task="classification"), ValueError,
     r"integer class labels.*y=1\.5 at row 1"),
    ("negative-label", dict(x=X, y=np.array([-1, 0, 1, 0] * 10), task="classification"), ValueError,
     r"non-negative.*y=-1 at row 0"),
    ("negative-label-inferred", dict(x=X, y=np.array([-1, 1] * 20)), ValueError, r"non-negative.*y=-1"),
    ("single-class", dict(x=X, y=np.zeros(40, int)), ValueError, r"single class \(0\)"),
    ("single-class-explicit", dict(x=X, y=np.array(["a"] * 40), task="classification"), ValueError,
     r"single class \('a'\)"),
    ("binary-three-classes", dict(x=X, y=np.arange(40) % 3, task="binary"), ValueError,
     r"exactly 2 classes; y holds 3: \[0, 1, 2\]"),
    ("unknown-task", dict(x=X, y=Y2, task="clustering"), ValueError, r"task='clustering'"),
    ("unknown-scaling", dict(x=X, y=Y2, scaling="zscore"), ValueError, r"scaling='zscore'"),
    ("val-fraction-zero", dict(x=X, y=Y2, val_fraction=0.0), ValueError, r"val_fraction=0\.0"),
    ("test-fraction-one", dict(x=X, y=Y2, test_fraction=1.2), ValueError, r"test_fraction=1\.2"),
    ("fractions-sum", dict(x=X, y=Y2, val_fraction=0.5, test_fraction=0.5), ValueError,
     r"val_fraction=0\.5.*test_fraction=0\.5 = 1"),
    ("fraction-type", dict(x=X, y=Y2, val_fraction="0.2"), TypeError, r"val_fraction='0\.2'"),
    ("nan-target", dict(x=X, y=np.where(np.arange(40) == 3, np.nan, 1.0)), ValueError,
     r"y holds 1 NaN.*at row 3"),
    ("nan-label", dict(x=X, y=np.where(np.arange(40) == 4, np.nan, Y2), task="binary"), ValueError,
     r"y holds 1 NaN.*at row 4"),
    ("missing-object-label", dict(x=X, y=np.array(["a", None] * 20, dtype=object)), ValueError,
     "missing value at row 1"),
    ("string-regression", dict(x=X, y=np.array(["a", "b"] * 20), task="regression"), ValueError,
     r"task='regression' needs numeric.*'a'"),
    ("feature-names-length", dict(x=X, y=Y2, feature_names=["a", "b"]), ValueError,
     r"feature_names has 2 names for 3"),
    ("seed-negative", dict(x=X, y=Y2, seed=-1), ValueError, "seed=-1"),
    ("seed-float", dict(x=X, y=Y2, seed=1.5), TypeError, r"seed=1\.5"),
    ("too-few-rows", dict(x=X[:2], y=np.array([0.5, 1.5])), ValueError,
     r"2 rows give train=0, val=1, test=1"),
    ("stratify-small-class", dict(x=X, y=np.array([1] * 38 + [0] * 2)), ValueError,
     r"class counts \{0: 2, 1: 38\}.*at least 3 rows"),
    ("stratify-small-splits", dict(x=X[:12], y=np.arange(12) % 4), ValueError,
     r"12 rows give train=8, val=2, test=2 .* for 4 classes"),
]


@pytest.mark.parametrize("kwargs, exc, pattern", [c[1:] for c in BAD_ARRAYS], ids=[c[0] for c in BAD_ARRAYS])
def test_from_arrays_bad_input(kwargs, exc, pattern):
    kwargs = dict(kwargs)
    x, y = kwargs.pop("x"), kwargs.pop("y")
    with pytest.raises(exc, match=pattern):
        from_arrays(x, y, **kwargs)


def test_bad_input_is_reported_before_anything_else():
    # Options are checked first: a bad scaling is named even though the data are bad too.
    with pytest.raises(ValueError, match="scaling='zscore'"):
        from_arrays(X[:, 0], Y2[:3], scaling="zscore")


def test_from_splits_bad_input():
    x, y = X, Y2
    with pytest.raises(ValueError, match=r"x_val is empty; got shape \(0, 3\)"):
        from_splits(x[:30], y[:30], x[:0], y[:0], x[30:], y[30:])
    with pytest.raises(ValueError, match=r"feature count: \{'train': 3, 'val': 2, 'test': 3\}"):
        from_splits(x[:30], y[:30], x[30:35, :2], y[30:35], x[35:], y[35:])
    with pytest.raises(ValueError, match="x_test has 5 rows, y_test has 4"):
        from_splits(x[:30], y[:30], x[30:35], y[30:35], x[35:], y[35:39])
    with pytest.raises(ValueError, match=r"x_train holds 1 NaN.*row 0, column 0"):
        from_splits(_with(x, 0, 0, np.nan)[:30], y[:30], x[30:35], y[30:35], x[35:], y[35:])
    with pytest.raises(TypeError, match="mix string and numeric"):
        from_splits(x[:30], y[:30], x[30:35], y[30:35].astype(str), x[35:], y[35:])


def test_load_dataset_bad_names():
    with pytest.raises(ValueError, match=r"'digits', 'breast_cancer', 'wine', 'diabetes', 'xor'; got name='mnist'"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match=r"'beale' is not a Dataset.*vtune tune --dataset beale"):
        load_dataset("beale")
    with pytest.raises(ValueError, match="scaling='robust'"):
        load_dataset("wine", scaling="robust")
    assert DATASETS == ("digits", "breast_cancer", "wine", "diabetes", "xor")


def test_transform_and_decode_bad_input():
    ds = load_dataset("wine")
    with pytest.raises(ValueError, match=r"13 feature columns.*\(2, 5\)"):
        ds.transform(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"reshape\(1, -1\)"):
        ds.transform(np.zeros(13))
    with pytest.raises(ValueError, match="x_raw holds 1 NaN"):
        ds.transform(_with(np.zeros((2, 13)), 1, 4, np.nan))
    with pytest.raises(ValueError, match=r"0\.\.2.*\[3\]"):
        ds.decode_labels([3])
    with pytest.raises(ValueError, match="'regression'"):
        load_dataset("diabetes").decode_labels([0])


def test_dataset_constructor_checks_shapes():
    x, y = np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"x_val has 3 features but x_train has 2"):
        Dataset("d", "binary", x, y, np.zeros((4, 3)), y, x, y)
    with pytest.raises(ValueError, match=r"x_test and y_test differ in length: 4 rows vs 3"):
        Dataset("d", "binary", x, y, x, y, x, y[:3])
    with pytest.raises(ValueError, match=r"task='binary' needs exactly 2 classes"):
        Dataset("d", "binary", x, y, x, y, x, y, classes=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="task='ranking'"):
        Dataset("d", "ranking", x, y, x, y, x, y)
    ok = Dataset("d", "binary", x, y, x, y, x, y)
    assert ok.classes.tolist() == [0, 1] and ok.scaling == "none" and ok.n_outputs == 1


# ----------------------------------------------------------------------------------------------------
# The numpy twins of scikit-learn's split and digits loader (no scikit-learn import on the main path)
# ----------------------------------------------------------------------------------------------------


def _sklearn_split(n, n_out, seed, labels):
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(n), test_size=n_out, random_state=seed, stratify=labels,
                            shuffle=True)


@pytest.mark.parametrize("n,classes", [(10, None), (37, None), (1797, None), (12, 2), (50, 3), (97, 7),
                                       (1257, 10), (569, 2), (400, 13)])
def test_holdout_split_is_scikit_learns_train_test_split(n, classes):
    rng = np.random.default_rng(n)
    for seed in (0, 1, 7, 123, 2**31 - 1):
        for n_out in sorted({classes or 1, n // 7 + (classes or 1), n // 2, n - (classes or 1)}):
            if classes is None:
                labels = None
            else:  # uneven class sizes, every class at least 2 rows, labels not in sorted order
                labels = np.concatenate([np.repeat(np.arange(classes), 2),
                                         rng.integers(0, classes, n - 2 * classes)])
                labels = rng.permutation(labels) * 3 - 5
            kept, out = data.holdout_split(n, n_out, seed, labels)
            want_kept, want_out = _sklearn_split(n, n_out, seed, labels)
            np.testing.assert_array_equal(kept, want_kept)
            np.testing.assert_array_equal(out, want_out)


def test_holdout_split_refuses_what_scikit_learn_refuses():
    labels = np.array([0, 0, 1, 1, 2])  # class 2 has one row
    with pytest.raises(ValueError, match="only 1 row"):
        data.holdout_split(5, 2, 0, labels)
    with pytest.raises(ValueError, match="one row per class"):
        data.holdout_split(6, 2, 0, np.array([0, 0, 1, 1, 2, 2]))  # 2 held out for 3 classes
    with pytest.raises(ValueError, match="n_out"):
        data.holdout_split(5, 5, 0)


def test_bundled_splits_are_those_of_scikit_learn():
    """The split ``load_dataset`` makes: scikit-learn's two ``train_test_split`` calls (test first)."""
    from sklearn.datasets import load_wine

    y = load_wine().target
    for seed in (0, 3):
        ds = load_dataset("wine", seed=seed)
        rest, test = _sklearn_split(len(y), 27, seed, y)
        train, val = _sklearn_split(len(rest), 27, seed, y[rest])
        assert (ds.n_train, ds.n_val, ds.n_test) == (len(train), len(val), len(test))
        # wine's labels are 0, 1, 2, encoded as themselves: the rows of each split, in row order
        np.testing.assert_array_equal(np.asarray(ds.y_train), y[np.sort(rest[train])])
        np.testing.assert_array_equal(np.asarray(ds.y_val), y[np.sort(rest[val])])
        np.testing.assert_array_equal(np.asarray(ds.y_test), y[np.sort(test)])


def test_digits_are_read_as_scikit_learn_reads_them_without_importing_it():
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    got_x, got_y, names = data._load_digits()
    want = load_digits()
    np.testing.assert_array_equal(got_x, want.data)
    np.testing.assert_array_equal(got_y, want.target)
    assert got_x.dtype == want.data.dtype and names == list(want.feature_names)
    code = ("import sys, vtune; vtune.load_dataset('digits'); "
            "print(sorted(m for m in sys.modules if m == 'sklearn' or m.startswith('sklearn.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "VTUNE_CPU_DEVICES": "off"})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_digits_fall_back_to_scikit_learn_without_the_data_file(monkeypatch):
    from sklearn.datasets import load_digits

    monkeypatch.setattr(data, "_sklearn_data_file", lambda name: None)
    x, y, names = data._load_digits()
    np.testing.assert_array_equal(x, load_digits().data)
    assert len(names) == 64
