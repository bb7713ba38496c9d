"""The model card and training-data statement of the served model version.

The exporter writes them into the model store (`<base>/<name>/<version>/assets.extra/radpath.json`
and `model_card.md`); the web app reads them from the same store, mounted read-only, when it is
given `--model-base`. Without it the page says plainly that the card is not available here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def describe_model(model_base: Path | None, name: str, version: int) -> dict:
    """{card_markdown, data_statement, synthetic, preprocessing_version} for one served version."""
    unknown = {
        "card_markdown": None,
        "synthetic": None,
        "preprocessing_version": None,
        "data_statement": "The training data of this model is not known to this site: it was started "
        "without --model-base, so it cannot read the model card.",
    }
    if model_base is None:
        return unknown
    extra = Path(model_base) / name / str(version) / "assets.extra"
    try:
        info = json.loads((extra / "radpath.json").read_text())
    except (OSError, ValueError) as exc:
        log.warning("no readable radpath.json for %s v%s in %s: %s", name, version, model_base, exc)
        return unknown
    data = info.get("data") or {}
    card = extra / "model_card.md"
    synthetic = data.get("synthetic")
    statement = data.get("description") or (
        "The export of this model version records no description of its "
        "training data; ask whoever trained it before relying on it."
    )
    if synthetic:
        statement = (
            "Trained on SYNTHETIC data only (simulated MRI written by `radpath synth`, not patient data): "
            "its scores say nothing about clinical accuracy. " + statement
        )
    return {
        "card_markdown": card.read_text()[:20000] if card.is_file() else None,
        "synthetic": synthetic,
        "data_statement": statement,
        "preprocessing_version": info.get("preprocessing_version"),
    }
