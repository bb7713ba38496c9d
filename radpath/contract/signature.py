"""The SavedModel signature every exported version has, and that every client calls.

    signature "serving_default"
      inputs:  "image"     float32 [batch, *model_io.IMAGE_SHAPE]
               "age_days"  float32 [batch]   (only models trained with age)
               "tumor_stats" float32 [batch, len(model_io.TUMOR_STATS)] (only models that read
                           them: `preprocess.tumor_stats` of the case, the same in each of its rows)
      outputs: "probabilities"  float32 [batch, len(model_io.CLASSES)]
               "classes"        string  [batch]  (the argmax, one of model_io.CLASSES)
               "refer_threshold" float32 [batch] (the model's refer threshold, the same in every row)

    signature "explain"
      inputs:  as serving_default
      outputs: "probabilities"  as serving_default
               "attribution"    float32 [batch, IMAGE_SIZE, IMAGE_SIZE, len(VIEWS)] in [0, 1]:
                                integrated gradients of the predicted class, one map per view of
                                the model input (train.explain)

Probabilities are calibrated (softmax(logits / T), T fitted on the run's held-out split). A client
averages them over the test-time views and answers "refer" when the top probability is below
`refer_threshold` (chosen so accepted held-out cases err at most 5 %).

`train.export` writes it, `serving` checks requests against it, `client` fills it.
"""

from __future__ import annotations

SIGNATURE_NAME = "serving_default"
IMAGE_INPUT = "image"
AGE_INPUT = "age_days"
TUMOR_STATS_INPUT = "tumor_stats"
PROBABILITIES_OUTPUT = "probabilities"
CLASSES_OUTPUT = "classes"
REFER_THRESHOLD_OUTPUT = "refer_threshold"
EXPLAIN_SIGNATURE = "explain"
ATTRIBUTION_OUTPUT = "attribution"
SIGNATURES = (SIGNATURE_NAME, EXPLAIN_SIGNATURE)
"""Every signature an exported version serves (GetModelMetadata lists them)."""
DEFAULT_MODEL_NAME = "glioma"
"""The model name under the model base and in every request (`--model`, `--name`)."""


def input_names(use_age: bool, use_tumor_stats: bool = False) -> list[str]:
    """The signature's inputs for a model trained with or without age and the tumour statistics."""
    return [IMAGE_INPUT] + ([AGE_INPUT] if use_age else []) + ([TUMOR_STATS_INPUT] if use_tumor_stats else [])


GRPC_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""gRPC message limit on both sides: a batch of 8 inputs is 6.4 MB, over gRPC's 4 MB default."""
