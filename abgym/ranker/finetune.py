"""Fine-tuning the sentence embedder (all-MiniLM-L6-v2) on historical pairwise outcomes.

Why: MiniLM was trained for semantic similarity, not for what makes one headline out-click another; fine-tuning on
the archive's own within-test comparisons could move its space toward that. Training data: every within-test pair
(i, j) of the given (training) experiments, with the soft label p = P(ctr_i > ctr_j) of the two-proportion normal
approximation (the ranker's own label, :func:`abgym.ranker.ranker.pairwise_differences`), weighted by the
significance of the difference, w = |2p - 1| (a pair whose CTRs differ by noise teaches nothing). Loss: the weighted
soft-label logistic loss of s(a) - s(b), s a linear head on the sentence vector, initialised from the pairwise
ranker fitted on the frozen embedder's vectors (so the first steps already push in a useful direction) and trained
with a larger learning rate than the body. The loop is sentence-transformers' own ``SentenceTransformerTrainer``
(seeded; needs the ``datasets`` package, in the ``llm`` extra).

Measured cost and results: docs/ranker.md, section "Fine-tuning the sentence embedder".
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def training_pairs(experiments, max_pairs_per_experiment: int = 45) -> dict[str, list]:
    """Within-test pairs of ``experiments``: {"anchor": texts, "other": texts, "label": P(ctr_anchor > ctr_other)}.
    The label is the soft label the pairwise ranker uses (Beta(1,1)-smoothed variances)."""
    from scipy.special import ndtr

    anchor, other, label = [], [], []
    for experiment in experiments:
        texts = experiment.texts()
        clicks = np.asarray(experiment.clicks, float)
        n = np.maximum(np.asarray(experiment.impressions, float), 1)
        ctr = clicks / n
        smoothed = (clicks + 1) / (n + 2)
        variance = smoothed * (1 - smoothed) / n
        i, j = np.triu_indices(len(texts), k=1)
        i, j = i[:max_pairs_per_experiment], j[:max_pairs_per_experiment]
        z = (ctr[i] - ctr[j]) / np.sqrt(variance[i] + variance[j])
        anchor += [texts[a] for a in i]
        other += [texts[b] for b in j]
        label += [float(x) for x in ndtr(z)]
    if not anchor:
        raise ValueError("no within-test pairs: fine-tuning needs experiments with at least two arms")
    return {"anchor": anchor, "other": other, "label": label}


def _loss_class():
    import torch

    class WeightedPairwiseLogisticLoss(torch.nn.Module):
        """sum_k w_k BCE(sigmoid(s(a_k) - s(b_k)), p_k) / sum_k w_k with w_k = |2 p_k - 1|, s a linear head."""

        def __init__(self, model, head_init: np.ndarray):
            super().__init__()
            self.model = model
            self.head = torch.nn.Linear(len(head_init), 1, bias=False)
            with torch.no_grad():
                self.head.weight.copy_(torch.as_tensor(head_init, dtype=torch.float32)[None, :])

        def forward(self, sentence_features, labels):
            a, b = (self.model(features)["sentence_embedding"] for features in sentence_features)
            margin = (self.head(a) - self.head(b)).squeeze(-1)
            weight = (2 * labels - 1).abs()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(margin, labels.float(), reduction="none")
            return (weight * loss).sum() / weight.sum().clamp_min(1e-6)

    return WeightedPairwiseLogisticLoss


def finetune_minilm(experiments, output_dir: str | Path, *, epochs: float = 1.0, batch_size: int = 32,
                    learning_rate: float = 2e-5, head_learning_rate: float = 1e-2, max_steps: int = -1,
                    seed: int = 0, head_init: np.ndarray | None = None) -> dict:
    """Fine-tune MiniLM on ``experiments``' pairs and save it (a sentence-transformers folder) to ``output_dir``.

    ``head_init``: the starting head (384,), by default the pairwise MiniLM ranker's direction fitted on the same
    experiments. ``max_steps`` > 0 stops early (timing runs). Returns {"steps", "seconds", "pairs", "path"}."""
    import torch
    from datasets import Dataset
    from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                       SentenceTransformerTrainingArguments)

    from abgym.llm._runtime import go_offline, limit_torch_threads
    from abgym.llm.embedder import model_dir
    from abgym.ranker.ranker import MINILM_PAIRWISE, ContentRanker

    go_offline()
    limit_torch_threads()
    torch.manual_seed(seed)
    if head_init is None:
        head_init = ContentRanker(MINILM_PAIRWISE).fit(experiments).direction
    pairs = training_pairs(experiments)
    model = SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)
    loss = _loss_class()(model, np.asarray(head_init, np.float32))
    body = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": body, "lr": learning_rate},
                                   {"params": loss.head.parameters(), "lr": head_learning_rate}], weight_decay=0.0)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(Path(output_dir) / "trainer"), num_train_epochs=epochs, max_steps=max_steps,
        per_device_train_batch_size=batch_size, seed=seed, data_seed=seed, save_strategy="no", report_to="none",
        logging_steps=50, disable_tqdm=False, dataloader_num_workers=0, use_cpu=True, lr_scheduler_type="constant")
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_dict(pairs), loss=loss,
                                         optimizers=(optimizer, None))
    started = time.time()
    output = trainer.train()
    seconds = time.time() - started
    path = Path(output_dir) / "model"
    model.save(str(path))
    return {"steps": int(output.global_step), "seconds": seconds, "pairs": len(pairs["label"]), "path": str(path),
            "seconds_per_step": seconds / max(int(output.global_step), 1)}


def encode_with(model_path: str | Path, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised vectors of ``texts`` from a fine-tuned sentence-transformers folder."""
    from sentence_transformers import SentenceTransformer

    from abgym.llm._runtime import go_offline, limit_torch_threads

    go_offline()
    limit_torch_threads()
    model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
    vectors = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, np.float32)
