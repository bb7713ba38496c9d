"""The model card and training-data statement of the served model version.

The exporter writes them into the model store (`<base>/<name>/<version>/assets.extra/radpath.json`
and `model_card.md`); the web app reads them from the same store, mounted read-only, when it is
given `--model-base`. Without it the page says plainly that the card is not available here.

The card is Markdown written by our exporter, but it travels through a model store that others can
write to, so it is rendered as untrusted text: markdown-it-py (the CommonMark reference port, used by
Jupyter and MyST; maintained, no dependencies) with raw HTML off (any tag in the card is shown as
text), its link check on (no `javascript:`, `vbscript:`, `file:` or `data:` links) and images off (no
request leaves for another site). Jinja then inserts the result as the one marked-safe string.

Whether the served model takes age (`takes_age`) comes from the model server's signature, or the
store's newest version when the server does not answer: the upload form asks for age only then.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import Markup

from radpath.contract import model_store
from radpath.contract.signature import AGE_INPUT

from .settings import Settings

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


_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table").disable("image")


def render_card(markdown: str | None) -> Markup | None:
    """The model card as safe HTML (see the module docstring); None without a card."""
    return Markup(_MARKDOWN.render(markdown)) if markdown else None


_AGE_CACHE: dict[tuple[str, str, str], tuple[float, bool | None]] = {}
AGE_CACHE_SECONDS = 60.0


def takes_age(settings: Settings) -> bool | None:
    """Whether the served model has the age input; None when neither the server nor the store tells.
    Blocking (a gRPC call of at most ~2 s): call it from a thread. Cached for a minute."""
    key = (settings.server, settings.model, str(settings.model_base))
    now = time.monotonic()
    cached = _AGE_CACHE.get(key)
    if cached and now - cached[0] < AGE_CACHE_SECONDS:
        return cached[1]
    answer = _server_takes_age(settings)
    if answer is None and settings.model_base is not None:
        answer = _store_takes_age(settings.model_base, settings.model)
    _AGE_CACHE[key] = (now, answer)
    return answer


def _server_takes_age(settings: Settings) -> bool | None:
    from radpath.client.grpc_client import GlioClient, ServingError

    try:
        with GlioClient(settings.server, settings.model, timeout=2.0, retries=0) as client:
            return client.wants_age()
    except (ServingError, KeyError) as exc:
        log.info("model server %s did not say whether it takes age: %s", settings.server, exc)
        return None


def _store_takes_age(model_base: Path, name: str) -> bool | None:
    versions = model_store.complete_versions(model_store.model_dir(model_base, name))
    if not versions:
        return None
    folder = model_store.version_dir(model_store.model_dir(model_base, name), versions[-1])
    try:
        info = json.loads((folder / model_store.ASSETS_EXTRA_DIR / model_store.METADATA_FILE).read_text())
    except (OSError, ValueError):
        return None
    inputs = info.get("inputs")
    return AGE_INPUT in inputs if isinstance(inputs, list) else None
