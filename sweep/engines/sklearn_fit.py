"""The scikit-learn engine: unsupervised clustering with the configured estimator (KMeans) on the member's rows.

Images are flattened to vectors. Labels are used only to score: ``ari`` and ``nmi``
compare the clusters predicted for the validation rows with their labels; ``inertia``
is the validation rows' summed squared distance to their centre and ``silhouette``
their silhouette score. ``train_*`` are the same on the training rows.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as skm

from sweep.config import SweepConfigError, build
from sweep.engines.fitted import Fitted
from sweep.engines.member import Member


def cluster_scores(estimator, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Inertia, ARI, NMI and silhouette of ``estimator``'s clusters on rows ``x`` labelled ``y``."""
    labels = estimator.predict(x)
    n_found = len(np.unique(labels))
    return {
        "inertia": float(-estimator.score(x)),
        "ari": float(skm.adjusted_rand_score(y, labels)),
        "nmi": float(skm.normalized_mutual_info_score(y, labels)),
        "silhouette": float(skm.silhouette_score(x, labels)) if 2 <= n_found < len(x) else math.nan,
    }


def cluster(member: Member) -> Fitted:
    """Fit ``cfg.model`` (seeded with ``cfg.seed``) on the flattened training rows; score both row sets."""
    cfg = member.cfg
    x_train, y_train, x_val, y_val = member.arrays()
    n_clusters = cfg.model.get("n_clusters")
    if n_clusters is not None and n_clusters > len(x_train):
        raise SweepConfigError(f"model.n_clusters={n_clusters}: more clusters than the {len(x_train)} training rows")
    flat_train, flat_val = x_train.reshape(len(x_train), -1), x_val.reshape(len(x_val), -1)
    estimator = build(cfg.model, random_state=cfg.seed)
    estimator.fit(flat_train)
    train = cluster_scores(estimator, flat_train, y_train)
    metrics = cluster_scores(estimator, flat_val, y_val) | {f"train_{k}": v for k, v in train.items()}
    centers = estimator.cluster_centers_.reshape(-1, *x_train.shape[1:])
    return Fitted(metrics, artifacts={"centers.npy": lambda path: np.save(path, centers)}, trained_by="sklearn")
