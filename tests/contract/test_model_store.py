import pytest

from radpath.contract import model_store as store


def test_complete_versions_ignore_temporary_and_half_written_folders(tmp_path):
    m = store.model_dir(tmp_path, "glioma")
    assert store.complete_versions(m) == [] and store.next_version(m) == 1
    for v in (1, 3):
        d = store.version_dir(m, v)
        (d / store.VARIABLES_DIR).mkdir(parents=True)
        (d / store.SAVED_MODEL_FILE).write_bytes(b"x")
    store.version_dir(m, 7).mkdir()  # no saved_model.pb yet
    tmp = store.temp_version_dir(m, 4, 123)
    tmp.mkdir()
    (tmp / store.SAVED_MODEL_FILE).write_bytes(b"x")  # an export in progress
    (m / "notes").mkdir()
    assert store.complete_versions(m) == [1, 3] and store.next_version(m) == 4


def test_the_registry_and_the_exporter_share_the_definition():
    pytest.importorskip("tensorflow_serving")  # the registry is the server's (extra: serve)
    from radpath.serving import model_registry

    assert model_registry.complete_versions is store.complete_versions
