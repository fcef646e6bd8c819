"""The classic learners: random forest, XGBoost, LightGBM, RBF SVM and k-nearest neighbours over flow
statistics and the first-K packet sequence, and LightGBM over per-packet header fields (`header-lightgbm`),
the baseline that honest-split studies found hard for pre-trained transformers to beat.

Every learner reads its features through `etbert.features` (the ``features`` setting names the sets,
``packets`` is K) and handles class imbalance by class weights where the learner supports them. With
``grid_search`` a small grid (``GRID``) is tried on the training split and the setting with the best
macro F1 on the validation split kept; the configuration saved then holds the chosen values.

Saved state, never pickle: scikit-learn estimators with skops (loaded with only the extra types each
learner is known to need trusted), XGBoost in its UBJSON format, LightGBM as its model text.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
from scipy.special import softmax
from sklearn.metrics import f1_score

from etbert.features import check_feature_sets, feature_columns, feature_matrix
from etbert.models.base import FlowModel, ModelError

SEARCH_FILE = "grid_search.json"


@dataclasses.dataclass
class ClassicConfig:
    features: tuple[str, ...] = ("flow", "sequence")  # feature sets of etbert.features
    packets: int = 10  # K: packets per flow the per-packet features look at
    grid_search: bool = False  # try GRID on the validation split, keep the best by macro F1

    def __post_init__(self):
        check_feature_sets(tuple(self.features))
        if self.packets < 1:
            raise ValueError(f"packets must be at least 1, not {self.packets}")


class ClassicModel(FlowModel):
    """Features -> one estimator. Subclasses build and train it (`_train`), and read and write it."""

    Config = ClassicConfig
    GRID: ClassVar[dict[str, tuple]] = {}  # config field -> values tried when grid_search is on

    @property
    def columns(self) -> tuple[str, ...]:
        return feature_columns(tuple(self.config.features))

    def features(self, flows: pa.Table) -> np.ndarray:
        return feature_matrix(flows, tuple(self.config.features), self.config.packets)[0]

    def _fit(self, train, y, val, y_val, on_progress) -> None:
        x = self.features(train)
        seed = int(np.random.randint(2**31 - 1))  # drawn from the seed fit() set
        self.search_: list[dict] = []
        if not (self.config.grid_search and self.GRID and val is not None):
            on_progress("fit", 0, 1)
            self.estimator_ = self._train(self.config, x, y, seed)
            on_progress("fit", 1, 1)
            return
        x_val = self.features(val)
        candidates = [dict(zip(self.GRID, values)) for values in itertools.product(*self.GRID.values())]
        best_score = -1.0
        for done, params in enumerate(candidates):
            on_progress("grid search", done, len(candidates))
            config = dataclasses.replace(self.config, **params)
            estimator = self._train(config, x, y, seed)
            predicted = self._probabilities(estimator, x_val).argmax(axis=1)
            score = float(f1_score(y_val, predicted, average="macro"))
            self.search_.append({**params, "val_macro_f1": score})
            if score > best_score:  # ties keep the earlier, simpler setting
                best_score, self.config, self.estimator_ = score, config, estimator
        on_progress("grid search", len(candidates), len(candidates))

    def _predict_proba(self, flows: pa.Table) -> np.ndarray:
        return self._probabilities(self.estimator_, self.features(flows))

    def _save_state(self, directory: Path) -> None:
        self._write_estimator(directory)
        if self.search_:
            (directory / SEARCH_FILE).write_text(json.dumps(self.search_, indent=2))

    def _load_state(self, directory: Path) -> None:
        self._read_estimator(directory)
        search = directory / SEARCH_FILE
        self.search_ = json.loads(search.read_text()) if search.exists() else []

    # ----- what each learner implements -----------------------------------------------------------

    def _train(self, config: Any, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        raise NotImplementedError

    def _probabilities(self, estimator: Any, x: np.ndarray) -> np.ndarray:
        return estimator.predict_proba(x)

    def _write_estimator(self, directory: Path) -> None:
        raise NotImplementedError

    def _read_estimator(self, directory: Path) -> None:
        raise NotImplementedError


# ----- scikit-learn estimators, saved with skops ------------------------------------------------------


class SkopsModel(ClassicModel):
    FILE: ClassVar[str] = "estimator.skops"
    TRUSTED: ClassVar[frozenset[str]] = frozenset()  # types beyond skops' defaults this estimator holds

    def _write_estimator(self, directory: Path) -> None:
        import skops.io

        skops.io.dump(self.estimator_, directory / self.FILE)

    def _read_estimator(self, directory: Path) -> None:
        import skops.io

        path = directory / self.FILE
        if not path.exists():
            raise ModelError(f"{directory} has no {self.FILE}")
        unexpected = sorted(set(skops.io.get_untrusted_types(file=path)) - self.TRUSTED)
        if unexpected:
            raise ModelError(f"{path} holds types a {self.name} model never contains: {', '.join(unexpected)}")
        self.estimator_ = skops.io.load(path, trusted=sorted(self.TRUSTED))


def _compressed_and_scaled(estimator) -> Any:
    """Distance-based learners see arcsinh-compressed (log-like, sign-keeping), standardised features:
    byte counts and rates span orders of magnitude, and ABSENT (-1) must stay apart from 0."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    return Pipeline([("compress", FunctionTransformer(np.arcsinh)), ("scale", StandardScaler()),
                     ("learner", estimator)])


@dataclasses.dataclass
class RandomForestConfig(ClassicConfig):
    n_estimators: int = 300
    max_depth: int | None = None
    min_samples_leaf: int = 1
    max_features: str = "sqrt"  # "sqrt" or "log2"
    n_jobs: int = 1


class RandomForest(SkopsModel):
    name = "random-forest"
    Config = RandomForestConfig
    GRID = {"max_depth": (None, 16), "min_samples_leaf": (1, 3), "max_features": ("sqrt", "log2")}
    TRUSTED = frozenset({"sklearn.tree._tree.Tree"})

    def _train(self, config: RandomForestConfig, x, y, seed):
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=config.n_estimators, max_depth=config.max_depth, min_samples_leaf=config.min_samples_leaf,
            max_features=config.max_features, class_weight="balanced", n_jobs=config.n_jobs, random_state=seed,
        ).fit(x, y)


@dataclasses.dataclass
class SvmConfig(ClassicConfig):
    C: float = 10.0
    gamma: str = "scale"  # "scale", "auto" or a number

    def __post_init__(self):
        super().__post_init__()
        _gamma(self.gamma)


def _gamma(value: str) -> str | float:
    return value if value in ("scale", "auto") else float(value)


class SupportVectorMachine(SkopsModel):
    """RBF SVM. Probabilities are a softmax of the one-vs-rest decision values: ranked as the SVM ranks
    classes, uncalibrated (Platt scaling would cost a cross-validation per fit)."""

    name = "svm"
    Config = SvmConfig
    GRID = {"C": (1.0, 10.0, 100.0), "gamma": ("scale", "0.01", "0.1")}

    def _train(self, config: SvmConfig, x, y, seed):
        from sklearn.svm import SVC

        svm = SVC(C=config.C, gamma=_gamma(config.gamma), class_weight="balanced", decision_function_shape="ovr",
                  random_state=seed)
        return _compressed_and_scaled(svm).fit(x, y)

    def _probabilities(self, estimator, x):
        decision = estimator.decision_function(x)
        if decision.ndim == 1:  # two classes: one signed distance, positive for the second class
            decision = np.column_stack([-decision, decision])
        return softmax(decision, axis=1)


@dataclasses.dataclass
class KnnConfig(ClassicConfig):
    n_neighbors: int = 5
    weights: str = "distance"  # "distance" or "uniform"
    n_jobs: int = 1


class NearestNeighbours(SkopsModel):
    name = "knn"
    Config = KnnConfig
    GRID = {"n_neighbors": (1, 3, 5, 9), "weights": ("distance", "uniform")}
    TRUSTED = frozenset({"sklearn.metrics._dist_metrics.EuclideanDistance64", "sklearn.neighbors._kd_tree.KDTree",
                         "sklearn.neighbors._ball_tree.BallTree"})

    def _train(self, config: KnnConfig, x, y, seed):
        from sklearn.neighbors import KNeighborsClassifier

        # fewer training flows than neighbours asked for: use them all
        knn = KNeighborsClassifier(n_neighbors=min(config.n_neighbors, len(y)), weights=config.weights,
                                   n_jobs=config.n_jobs)
        return _compressed_and_scaled(knn).fit(x, y)


# ----- gradient-boosted trees, saved in their own formats ---------------------------------------------


@dataclasses.dataclass
class XGBoostConfig(ClassicConfig):
    n_estimators: int = 300
    max_depth: int = 6
    learning_rate: float = 0.1
    n_jobs: int = 1


class XGBoost(ClassicModel):
    name = "xgboost"
    Config = XGBoostConfig
    GRID = {"max_depth": (4, 6, 8), "learning_rate": (0.05, 0.1, 0.3)}
    FILE = "xgboost.ubj"

    def _train(self, config: XGBoostConfig, x, y, seed):
        from sklearn.utils.class_weight import compute_sample_weight
        from xgboost import XGBClassifier

        booster = XGBClassifier(n_estimators=config.n_estimators, max_depth=config.max_depth,
                                learning_rate=config.learning_rate, tree_method="hist", n_jobs=config.n_jobs,
                                random_state=seed)
        return booster.fit(x, y, sample_weight=compute_sample_weight("balanced", y))

    def _write_estimator(self, directory: Path) -> None:
        self.estimator_.save_model(str(directory / self.FILE))

    def _read_estimator(self, directory: Path) -> None:
        from xgboost import XGBClassifier

        path = directory / self.FILE
        if not path.exists():
            raise ModelError(f"{directory} has no {self.FILE}")
        self.estimator_ = XGBClassifier()
        self.estimator_.load_model(str(path))


@dataclasses.dataclass
class LightGBMConfig(ClassicConfig):
    n_estimators: int = 300
    num_leaves: int = 31
    learning_rate: float = 0.1
    min_child_samples: int = 20
    n_jobs: int = 1


class LightGBM(ClassicModel):
    """The estimator kept is the trained booster, which is what the model text restores."""

    name = "lightgbm"
    Config = LightGBMConfig
    GRID = {"num_leaves": (15, 31), "learning_rate": (0.05, 0.1), "min_child_samples": (5, 20)}
    FILE = "lightgbm.txt"

    def _train(self, config: LightGBMConfig, x, y, seed):
        from lightgbm import LGBMClassifier

        classifier = LGBMClassifier(
            n_estimators=config.n_estimators, num_leaves=config.num_leaves, learning_rate=config.learning_rate,
            min_child_samples=config.min_child_samples, class_weight="balanced", n_jobs=config.n_jobs,
            random_state=seed, deterministic=True, force_row_wise=True, verbose=-1,
        )
        return classifier.fit(x, y).booster_

    def _probabilities(self, booster, x):
        probabilities = booster.predict(x)
        if probabilities.ndim == 1:  # binary objective: the second class's probability
            probabilities = np.column_stack([1 - probabilities, probabilities])
        return probabilities

    def _write_estimator(self, directory: Path) -> None:
        self.estimator_.save_model(str(directory / self.FILE))

    def _read_estimator(self, directory: Path) -> None:
        from lightgbm import Booster

        path = directory / self.FILE
        if not path.exists():
            raise ModelError(f"{directory} has no {self.FILE}")
        self.estimator_ = Booster(model_file=str(path))


@dataclasses.dataclass
class HeaderLightGBMConfig(LightGBMConfig):
    features: tuple[str, ...] = ("headers",)


class HeaderLightGBM(LightGBM):
    name = "header-lightgbm"
    Config = HeaderLightGBMConfig
