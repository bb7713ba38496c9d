"""The client with a model that takes the tumour statistics: computed from the case, sent with every view."""

import numpy as np
import pytest

from radpath.client.grpc_client import GlioClient, stats_rows
from radpath.contract.errors import InvalidInputError
from radpath.contract.model_io import TUMOR_STATS
from tests.serving.conftest import start_server
from tests.train.conftest import TINY

K = len(TUMOR_STATS)


def test_stats_rows_repeats_one_row_and_refuses_what_is_wrong():
    row = np.arange(K, dtype=np.float32)
    assert stats_rows(row, 3).shape == (3, K) and (stats_rows(row, 3)[2] == row).all()
    with pytest.raises(InvalidInputError, match="pass tumor_stats"):
        stats_rows(None, 2)
    with pytest.raises(InvalidInputError, match=f"rows of {K}"):
        stats_rows(np.zeros(K + 1), 1)
    with pytest.raises(InvalidInputError, match="finite"):
        stats_rows(np.full(K, np.nan), 1)
    with pytest.raises(InvalidInputError, match="2 finite rows"):
        stats_rows(np.zeros((3, K)), 2)


@pytest.fixture(scope="module")
def stats_server(tmp_path_factory):
    from radpath.train.export import export_run
    from radpath.train.loop import init_variables
    from radpath.train.run import save_model

    base = tmp_path_factory.mktemp("stats-models") / "base"
    config = TINY.replace(tumor_stats=True, seed=3)
    run = base.parent / "run"
    save_model(run / "model", init_variables(config), config)
    export_run(run, base, "glioma", force=True)
    server = start_server(base)
    yield f"127.0.0.1:{server.grpc_port}"
    server.stop()


def test_classify_and_explain_send_the_case_statistics(stats_server, case_dir):
    from radpath.client.explain import explain_case

    with GlioClient(stats_server) as client:
        assert client.wants_tumor_stats() and not client.wants_age()
        result = client.classify(case_dir, tta=True)
        assert abs(sum(result.probabilities.values()) - 1) < 1e-5
        x = np.zeros((1, 224, 224, 8), np.float32)
        with pytest.raises(InvalidInputError, match="pass tumor_stats"):
            client.predict(x)
        p0, _ = client.predict(x, tumor_stats=np.zeros(K))
        p1, _ = client.predict(x, tumor_stats=np.full(K, 3.0))
        assert np.abs(p0 - p1).max() > 1e-4
        from radpath.preprocess import load_case

        explained = explain_case(client, load_case(case_dir))
        assert explained["attribution"].shape[:2] == (224, 224)
