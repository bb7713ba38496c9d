"""The web app takes one DICOM study as a .zip (or four native NIfTI marked "prepare"): checked at
upload with the prepare stage's one-line errors, prepared by the worker (stage shown on the page),
then classified; the result page shows which series became which sequence and the QC picture, and
no page, file name or database row carries the patient's name, ID, birth date or accession."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("fastapi")


from radpath.web.worker import run_one
from tests.prepare.conftest import PHI, atlas_study, write_study, zip_folder
from tests.web.conftest import csrf_of, login, upload_files

HTML = {"accept": "text/html"}


def test_a_dicom_zip_is_prepared_then_classified(served, small_atlas, tmp_path):
    from radpath.client.grpc_client import GlioClient

    c, s = served
    vol, mask = small_atlas
    z = zip_folder(atlas_study(tmp_path / "study", vol, mask), tmp_path / "mri.zip", "EXPORT")
    r = upload_files(c, {"study": z}, csrf_of(c.get("/upload").text))
    assert r.status_code == 303, r.text[-800:]
    case_id = r.headers["location"].rsplit("/", 1)[1]
    notes = []
    from radpath.web import jobs

    real = jobs.set_note
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jobs, "set_note", lambda e, j, text: notes.append(text) or real(e, j, text))
        with GlioClient(s.server, s.model) as gc:
            assert run_one(s, c.app.state.engine, "test-worker", gc)
    assert "preparing the upload: atlas (stage 4 of 8)" in notes
    page = c.get(f"/cases/{case_id}", headers=HTML).text
    assert 'data-testid="job-state">succeeded' in page, page[-1500:]
    assert 'data-testid="prepared-flair">series 5 &#34;MRHR FLAIR AX&#34;' in page
    assert "Contrast/Bolus Agent tag set" in page and 'data-testid="prepare-qc"' in page
    png = c.get(f"/cases/{case_id}/images/prepare_qc.png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert c.get(f"/cases/{case_id}/volumes/flair.nii.gz").status_code == 200
    api = c.get(f"/api/cases/{case_id}").json()
    assert set(api["result"]["prepared"]["sequences"]) == {"flair", "t1", "t1ce", "t2"}
    # no patient data anywhere the site keeps or shows
    shown = page + c.get(f"/cases/{case_id}/result.json").text + c.get("/cases", headers=HTML).text
    assert not any(p in shown for p in PHI)
    db = Path(s.db_url.removeprefix("sqlite:///"))
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert not any(p in dump for p in PHI)
    case_dir = s.cases_dir() / case_id
    for f in (case_dir / "prepared").rglob("*"):
        assert f.is_dir() or not any(p.encode() in f.read_bytes() for p in PHI), f


def test_a_study_missing_a_sequence_is_refused_at_upload_naming_it(client, tmp_path):
    login(client)
    z = zip_folder(write_study(tmp_path / "s", skip=("t2",)), tmp_path / "s.zip", "EXPORT")
    r = upload_files(client, {"study": z}, csrf_of(client.get("/upload").text))
    assert r.status_code == 422
    assert "no T2 series found" in r.text and "--t2" in r.text


def test_two_patients_in_one_zip_are_refused(client, tmp_path):
    login(client)
    root = write_study(tmp_path / "s")
    write_study(
        root / "other", patient={"PatientName": "Other^Person", "PatientID": "X9", "PatientBirthDate": "19800101"}
    )
    r = upload_files(
        client, {"study": zip_folder(root, tmp_path / "s.zip", "EXPORT")}, csrf_of(client.get("/upload").text)
    )
    assert r.status_code == 422 and "2 patients" in r.text and "Other^Person" not in r.text


def test_the_upload_page_offers_the_study_form(client):
    login(client)
    page = client.get("/upload", headers=HTML).text
    assert 'name="study"' in page and 'name="prepare"' in page


def test_four_native_nifti_need_the_prepare_box(client, settings, tmp_path):
    """Native-space NIfTI (each its own grid) are refused as a BraTS case, accepted to be prepared."""
    import nibabel as nib
    import numpy as np

    from tests.prepare.conftest import head_volume, oblique_affine

    login(client)
    files = {}
    for i, q in enumerate(("flair", "t1", "t1ce", "t2")):
        files[q] = tmp_path / f"native_{q}.nii.gz"
        affine = oblique_affine(origin=(60.0 + i, -70.0, -40.0))
        nib.save(nib.Nifti1Image(head_volume(contrast=q, shape=(32, 36, 10 + i)).astype(np.int16), affine), files[q])
    r = upload_files(client, files, csrf_of(client.get("/upload").text))
    assert r.status_code == 422
    r = upload_files(client, files, csrf_of(client.get("/upload").text), prepare="on")
    assert r.status_code == 303, r.text[-500:]
    case_id = r.headers["location"].rsplit("/", 1)[1]
    assert (settings.cases_dir() / case_id / "input" / "PREPARE").is_file()


def test_a_site_without_the_prepare_extra_says_so(client, tmp_path, monkeypatch):
    import importlib.util

    from radpath.web import study_upload

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pydicom" else real(name, *a))
    with pytest.raises(Exception, match=r"install radpath\[prepare\]"):
        study_upload.check_upload({"study": tmp_path / "x.zip"}, {})
