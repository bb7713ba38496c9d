"""A case through the real worker and the tiny model server, then its result page, images, 3D
overlay and JSON download; and the no-tumour warning."""

from __future__ import annotations

import inspect
import json

import nibabel as nib
import numpy as np

from radpath.web.worker import run_one
from tests.web.conftest import csrf_of, upload_files

HTML = {"accept": "text/html"}


def _classify(c, s, files) -> str:
    from radpath.client.grpc_client import GlioClient

    r = upload_files(c, files, csrf_of(c.get("/upload").text), age_days="15000")
    assert r.status_code == 303, r.text[-500:]
    case_id = r.headers["location"].rsplit("/", 1)[1]
    page = c.get(f"/cases/{case_id}", headers=HTML).text
    assert 'data-testid="job-state">queued' in page and 'http-equiv="refresh"' in page  # updates by itself
    with GlioClient(s.server, s.model) as client:
        assert run_one(s, c.app.state.engine, "test-worker", client)
    return case_id


def test_result_page_shows_class_probabilities_slices_model_and_3d_view(served, small_case):
    c, s = served
    case_id = _classify(c, s, small_case)
    page = c.get(f"/cases/{case_id}", headers=HTML).text
    assert 'data-testid="job-state">succeeded' in page and 'http-equiv="refresh"' not in page
    api = c.get(f"/api/cases/{case_id}").json()
    label = api["result"]["class"]
    assert f'data-testid="predicted-class">{label}</span>' in page
    for cls in "AOG":
        assert f'data-testid="prob-{cls}">{api["result"]["probabilities"][cls]:.3f}<' in page
    assert 'data-testid="model-name">glioma version 1' in page and 'data-testid="training-data"' in page
    assert 'data-testid="model-card"' in page and 'data-testid="viewer"' in page
    assert api["result"]["tumor_found"] and 'data-testid="no-tumour-warning"' not in page
    for seq in ("flair", "t1", "t1ce", "t2"):
        png = c.get(f"/cases/{case_id}/images/{seq}.png")
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    mask = nib.Nifti1Image.from_bytes(
        __import__("gzip").decompress(c.get(f"/cases/{case_id}/volumes/mask.nii.gz").content)
    )
    assert np.asarray(mask.dataobj).sum() > 0
    flair = c.get(f"/cases/{case_id}/volumes/flair.nii.gz")
    assert flair.status_code == 200 and flair.content == small_case["flair"].read_bytes()
    download = c.get(f"/cases/{case_id}/result.json")
    assert "attachment" in download.headers["content-disposition"]
    body = json.loads(download.content)
    assert body["result"]["class"] == label and body["age_days"] == 15000 and "artefacts" not in body["result"]


def test_no_tumour_is_warned_about(served, tmp_path):
    from radpath.synth.cohort import plan_cohort, save_ras, synthesize_case

    c, s = served
    plan = plan_cohort(3, seed=3)[1]
    clean = {"style": "brats"} if "style" in inspect.signature(synthesize_case).parameters else {}
    volumes, _, _ = synthesize_case(plan, 3, (64, 64, 40), with_tumor=False, **clean)
    files = {}
    for seq, v in volumes.items():
        files[seq] = tmp_path / f"healthy_{seq}.nii.gz"
        save_ras(v, files[seq])
    case_id = _classify(c, s, files)
    page = c.get(f"/cases/{case_id}", headers=HTML).text
    assert 'data-testid="no-tumour-warning"' in page and "No tumour was found" in page
    assert "data-mask=" not in page  # no overlay to show
