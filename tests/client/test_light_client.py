"""The light client: the client code path loads no training stack and no TensorFlow, and commands
whose extra is missing say which one to install."""

import json
import subprocess
import sys

import pytest

from radpath.serving.local_server import Server
from radpath.serving.model_config import ModelEntry

HEAVY = ("tensorflow", "tensorflow_serving", "jax", "jaxlib", "flax", "optax", "radpath.train", "radpath.serving")
REPORT_HEAVY = (
    f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or '.'.join(m.split('.')[:2]) in {HEAVY!r})"
)

BLOCK_EXTRAS = """
import sys
class _NotInstalled:  # what a core install looks like: the extras' libraries are absent
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("jax", "jaxlib", "flax", "optax", "tensorflow", "tensorflow_serving"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NotInstalled())
"""


@pytest.fixture(scope="module")
def target(model_base):
    s = Server([ModelEntry("glioma", model_base / "glioma", "latest", 1)], 0, 0, host="127.0.0.1").start()
    yield f"127.0.0.1:{s.grpc_port}"
    s.stop()


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_classify_through_the_server_loads_no_tensorflow_jax_or_flax(target, case_dir):
    code = f"""
import json, sys
from radpath.client.grpc_client import GlioClient
{REPORT_HEAVY}
with GlioClient({target!r}) as c:
    r = c.classify({str(case_dir)!r}, tta=True)
    status = c.status()
{REPORT_HEAVY.replace("heavy =", "after =")}
print(json.dumps({{"import": heavy, "classify": after, "class": r.label, "status": status}}))
"""
    r = _python(code)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["import"] == [] and out["classify"] == []
    assert out["class"] in ("A", "O", "G") and out["status"] == [[1, "AVAILABLE"]]


def test_cli_classify_in_a_process_without_the_extras(target, case_dir, tmp_path):
    code = (
        BLOCK_EXTRAS
        + f"""
from radpath.cli import main
code = main(sys.argv[1:])
{REPORT_HEAVY}
print("HEAVY", heavy)
sys.exit(code)
"""
    )
    r = _python(code, "classify", str(case_dir), "--server", target, "--json", "--age-days", "9000")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout[: r.stdout.rindex("HEAVY")])["class"] in ("A", "O", "G")
    assert r.stdout.strip().endswith("HEAVY []")
    assert "does not take age" in r.stderr  # the tiny model was trained without age


@pytest.mark.parametrize(
    "args, extra",
    [
        (["train", "COHORT", "--out", "RUN"], "train"),
        (["export", "RUN", "--model-base", "RUN"], "train"),
        (["serve", "--model-base", "RUN"], "serve"),
    ],
)
def test_a_command_whose_extra_is_missing_says_which_to_install(args, extra, tmp_path, small_cohort):
    args = [{"COHORT": str(small_cohort), "RUN": str(tmp_path)}.get(a, a) for a in args]
    r = _python(BLOCK_EXTRAS + "from radpath.cli import main\nsys.exit(main(sys.argv[1:]))", *args)
    assert r.returncode == 1
    assert r.stderr.strip().endswith(f"pip install 'radpath[{extra}]'") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_help_lists_every_command_and_loads_no_heavy_library():
    libraries = REPORT_HEAVY.replace(repr(HEAVY), repr(HEAVY[:-2]))  # train.cli and serving.cli are light
    code = (
        BLOCK_EXTRAS
        + f"""
from radpath.cli import build_parser
text = build_parser().format_help()
{libraries}
print(heavy, all(c in text for c in ("classify-cohort", "train", "export", "serve", "synth")))
"""
    )
    r = _python(code)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["[]", "True"]
