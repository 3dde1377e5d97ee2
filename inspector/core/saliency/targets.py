"""Which score a gradient method differentiates (``MapSettings.target``)."""

from __future__ import annotations

# logit: the class's pre-softmax score (for models whose forward ends in a softmax, the input
# to that softmax), which never saturates; probability: softmax(logits)[c], vit-explain's and
# the paper's choice, whose gradient underflows in float32 on confident models;
# log-probability: log softmax(logits)[c], the logit minus the log-partition.
TARGETS: tuple[str, ...] = ("logit", "probability", "log-probability")
