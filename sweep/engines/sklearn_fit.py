"""The scikit-learn engine: unsupervised clustering with the configured estimator on the member's rows.

``model._target_`` is a scikit-learn clusterer (it has ``fit`` and ``fit_predict``): KMeans,
MiniBatchKMeans, GaussianMixture, AgglomerativeClustering, or another. It gets
``random_state=seed`` when its signature takes one (AgglomerativeClustering is deterministic
and takes none). Images are flattened to vectors; labels are used only to score.

Which cluster a row is in: an estimator with ``predict`` (the k-means family, the mixtures)
assigns the training and the validation rows itself. One without it (AgglomerativeClustering)
labels its training rows as it fits and cannot label new rows; each validation row then goes
to the nearest centroid of the training clusters (the mean of each cluster's training rows),
the cluster a user would put a new row into. Refitting on the validation rows instead would
score a clustering of other rows.

Metrics of the validation rows (``train_*``: the same of the training rows): ``ari`` and
``nmi`` compare the clusters with the labels, ``silhouette`` is their silhouette score (NaN
with one cluster, or one per row). The k-means family also reports ``inertia``, the rows'
summed squared distance to their centre; the Gaussian mixtures ``log_likelihood``, the mean
log-likelihood of a row. An estimator without them has no such key in its record (a table
of several estimators shows NaN there); :func:`sweep.config.validate` refuses
``task.metric=inertia`` for one.

``centers.npy`` holds the centres in the inputs' shape: ``cluster_centers_``, a mixture's
``means_``, or else the training clusters' centroids.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from hydra.utils import get_object
from sklearn import metrics as skm
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture

from sweep.config import build, check_clusterer, reports_inertia
from sweep.engines.fitted import Fitted
from sweep.engines.member import Member


def cluster_scores(estimator: Any, x: np.ndarray, y: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """ARI, NMI and silhouette of clusters ``labels`` of rows ``x`` labelled ``y``; inertia or log-likelihood where ``estimator`` has one."""
    n_found = len(np.unique(labels))
    scores = {"inertia": float(-estimator.score(x))} if reports_inertia(type(estimator)) else {}
    scores |= {
        "ari": float(skm.adjusted_rand_score(y, labels)),
        "nmi": float(skm.normalized_mutual_info_score(y, labels)),
        "silhouette": float(skm.silhouette_score(x, labels)) if 2 <= n_found < len(x) else math.nan,
    }
    if isinstance(estimator, (GaussianMixture, BayesianGaussianMixture)):
        scores["log_likelihood"] = float(estimator.score(x))
    return scores


def fit_clusters(estimator: Any, x: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """Fit ``estimator`` on rows ``x``: their clusters, how to assign new rows to one, and the clusters' centres.

    Without ``predict``, a new row goes to the nearest centroid of the training clusters (the module's docstring says why).
    """
    predicts = callable(getattr(estimator, "predict", None))
    if predicts:
        estimator.fit(x)
        labels = estimator.predict(x)
    else:
        labels = estimator.fit_predict(x)
    centers = next((c for c in (getattr(estimator, "cluster_centers_", None), getattr(estimator, "means_", None)) if c is not None), None)
    if predicts and centers is not None:
        return labels, estimator.predict, np.asarray(centers)
    found, index = np.unique(labels, return_inverse=True)
    centroids = np.stack([x[index == k].mean(axis=0) for k in range(len(found))])
    assign = estimator.predict if predicts else partial(_nearest, found, centroids)
    return labels, assign, np.asarray(centroids if centers is None else centers)


def _nearest(clusters: np.ndarray, centroids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The cluster (of ``clusters``, one per centroid) whose centroid is nearest each of ``rows``."""
    return clusters[skm.pairwise_distances_argmin(rows, centroids)]


def seeding(target: str, seed: int) -> dict[str, int]:
    """``{"random_state": seed}`` when ``target`` takes a ``random_state`` (or any keyword), else nothing."""
    parameters = inspect.signature(get_object(target)).parameters.values()
    takes = any(p.name == "random_state" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    return {"random_state": seed} if takes else {}


def cluster(member: Member) -> Fitted:
    """Fit ``cfg.model`` (seeded with ``cfg.seed`` where it takes a seed) on the flattened training rows; score both row sets."""
    cfg = member.cfg
    x_train, y_train, x_val, y_val = member.arrays()
    flat_train, flat_val = x_train.reshape(len(x_train), -1), x_val.reshape(len(x_val), -1)
    target = cfg.model._target_
    estimator = build(cfg.model, **seeding(target, cfg.seed))
    check_clusterer(target, estimator)
    labels, assign, centers = fit_clusters(estimator, flat_train)
    train = cluster_scores(estimator, flat_train, y_train, labels)
    metrics = cluster_scores(estimator, flat_val, y_val, assign(flat_val)) | {f"train_{k}": v for k, v in train.items()}
    centers = centers.reshape(-1, *x_train.shape[1:])
    return Fitted(metrics, artifacts={"centers.npy": lambda path: np.save(path, centers)}, trained_by="sklearn")
