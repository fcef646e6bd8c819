"""The classic learners on the real lab dataset: better than the majority class, exact save/load, grid search."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from etbert.evaluation.metrics import classification_metrics
from etbert.models.base import ModelError
from etbert.models.classic import SEARCH_FILE, ClassicModel
from etbert.models.registry import create_model, load_model, model_class

# Small settings: the lab corpus is easy and the suite runs on two shared cores.
LEARNERS = {
    "random-forest": {"n_estimators": 40},
    "xgboost": {"n_estimators": 30},
    "lightgbm": {"n_estimators": 30},
    "svm": {},
    "knn": {},
    "header-lightgbm": {"n_estimators": 30},
}


def metrics(model, flows: pa.Table) -> dict:
    return classification_metrics(flows.column("label").to_pylist(), model.predict(flows), model.classes_)


@pytest.fixture(scope="module")
def majority(lab_tables) -> dict:
    model = create_model("majority").fit(lab_tables["train"])
    return metrics(model, lab_tables["test"])


@pytest.fixture(scope="module", params=sorted(LEARNERS))
def trained(request, lab_tables):
    model = create_model(request.param, LEARNERS[request.param])
    return model.fit(lab_tables["train"], lab_tables["val"], seed=0)


def test_every_classic_learner_is_registered():
    for name in LEARNERS:
        assert issubclass(model_class(name), ClassicModel)


def test_learner_beats_the_majority_class(trained, majority, lab_tables):
    result = metrics(trained, lab_tables["test"])
    assert result["macro_f1"] > majority["macro_f1"] + 0.3, (trained.name, result["macro_f1"])
    assert result["accuracy"] > majority["accuracy"] + 0.3, (trained.name, result["accuracy"])


def test_saved_learner_predicts_identically(trained, lab_tables, tmp_path):
    trained.save(tmp_path)
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob("*.pickle"))
    loaded = load_model(tmp_path)
    assert type(loaded) is type(trained) and loaded.classes_ == trained.classes_
    assert loaded.config == trained.config
    test = lab_tables["test"]
    assert np.array_equal(loaded.predict_proba(test), trained.predict_proba(test))


def test_probabilities_are_distributions_over_the_training_classes(trained, lab_tables):
    probabilities = trained.predict_proba(lab_tables["test"])
    assert probabilities.shape == (lab_tables["test"].num_rows, len(trained.classes_))
    assert np.allclose(probabilities.sum(axis=1), 1) and (probabilities >= 0).all()


def test_learner_reads_only_its_feature_columns(trained, lab_tables):
    assert not {"client_ip", "server_ip", "client_port", "server_port"} & set(trained.columns)
    narrow = lab_tables["test"].select(list(trained.columns))
    assert np.array_equal(trained.predict_proba(narrow), trained.predict_proba(lab_tables["test"]))


def test_same_seed_same_model(lab_tables):
    first, second = (create_model("random-forest", {"n_estimators": 10}).fit(lab_tables["train"], seed=3)
                     for _ in range(2))
    assert np.array_equal(first.predict_proba(lab_tables["test"]), second.predict_proba(lab_tables["test"]))


@pytest.mark.parametrize("name", ["lightgbm", "svm", "xgboost"])
def test_two_classes(name, lab_tables):
    """Binary objectives and decision functions come back as one column per class."""
    pair = ("ssh", "quic")
    train, test = (table.filter(pc.is_in(table.column("label"), pa.array(pair))) for table in
                   (lab_tables["train"], lab_tables["test"]))
    model = create_model(name, {"n_estimators": 20} if "n_estimators" in LEARNERS.get(name, {}) else {})
    model.fit(train, seed=0)
    assert model.classes_ == sorted(pair)
    assert model.predict_proba(test).shape == (test.num_rows, 2)
    assert metrics(model, test)["accuracy"] > 0.9


def test_grid_search_keeps_the_best_setting_on_validation(lab_tables, tmp_path):
    model = create_model("svm", {"grid_search": True}).fit(lab_tables["train"], lab_tables["val"], seed=0)
    grid = model.GRID
    assert len(model.search_) == len(list(itertools.product(*grid.values())))
    best = max(model.search_, key=lambda trial: trial["val_macro_f1"])
    assert {field: getattr(model.config, field) for field in grid} == {field: best[field] for field in grid}
    assert metrics(model, lab_tables["val"])["macro_f1"] == pytest.approx(best["val_macro_f1"])
    model.save(tmp_path)
    assert json.loads((tmp_path / SEARCH_FILE).read_text()) == model.search_
    assert load_model(tmp_path).config == model.config


def test_grid_search_without_validation_flows_keeps_the_defaults(lab_tables):
    model = create_model("knn", {"grid_search": True}).fit(lab_tables["train"], None, seed=0)
    assert model.search_ == [] and model.config.n_neighbors == 5


def test_bad_settings_are_one_clear_error():
    with pytest.raises(ModelError, match="feature set"):
        create_model("random-forest", {"features": "flow,colour"})
    with pytest.raises(ModelError, match="bad settings"):
        create_model("svm", {"gamma": "wide"})
    with pytest.raises(ModelError, match="packets"):
        create_model("xgboost", {"packets": 0})


def test_identity_features_only_when_asked(lab_tables):
    model = create_model("random-forest", {"features": "headers,identity", "n_estimators": 5})
    assert {"client_port", "server_port"} <= set(model.columns)
    assert create_model("header-lightgbm").config.features == ("headers",)


def test_skops_file_with_unexpected_types_is_refused(lab_tables, tmp_path):
    forest = create_model("random-forest", {"n_estimators": 5}).fit(lab_tables["train"], seed=0)
    forest.save(tmp_path / "forest")
    neighbours = create_model("knn").fit(lab_tables["train"], seed=0)
    neighbours.save(tmp_path / "knn")
    # a forest's estimator file under a k-NN's description: trees are not among the types a k-NN trusts
    (tmp_path / "knn" / "estimator.skops").write_bytes((tmp_path / "forest" / "estimator.skops").read_bytes())
    with pytest.raises(ModelError, match="sklearn.tree._tree.Tree"):
        load_model(tmp_path / "knn")
