"""Evaluation: the course's MNIST classifier, FID in its feature space, and sample accuracy.

Accepted images: uint8 (N, 28, 28) in [0, 255], or float (N, 1, 28, 28) in [-1, 1].
"""

from tinyvid.eval.classifier import (
    MNISTClassifier,
    classifier_info,
    load_classifier,
    to_model_input,
    train_classifier,
)
from tinyvid.eval.fid import (
    class_histogram,
    feature_stats,
    fid,
    frechet_distance,
    image_features,
    image_logits,
    predicted_classes,
    real_data_floor,
    reference_stats,
    sample_accuracy,
)
from tinyvid.eval.clip_score import CLIPScorer, caption_retrieval, clip_score_from_embeddings, load_clip_scorer
from tinyvid.eval.consistency import agreement, frame_consistency, identity_consistency
from tinyvid.eval.precision_recall import density_coverage, precision_recall

__all__ = [
    "MNISTClassifier",
    "classifier_info",
    "load_classifier",
    "to_model_input",
    "train_classifier",
    "class_histogram",
    "feature_stats",
    "fid",
    "frechet_distance",
    "image_features",
    "image_logits",
    "predicted_classes",
    "real_data_floor",
    "reference_stats",
    "sample_accuracy",
    "CLIPScorer",
    "caption_retrieval",
    "clip_score_from_embeddings",
    "load_clip_scorer",
    "agreement",
    "frame_consistency",
    "identity_consistency",
    "density_coverage",
    "precision_recall",
]
