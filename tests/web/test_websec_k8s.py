"""The web app's manifests agree with its shutdown and listening rules (issue 19, items 8 and 13):
the site listens on all interfaces only in the container (the CLI's default is 127.0.0.1), and
each pod's grace period outlasts the time its process tree takes to stop."""

from __future__ import annotations

import pytest

from radpath.web.cli import add_parsers
from radpath.web.settings import Settings
from tests.k8s.test_manifests import _objects


@pytest.fixture(scope="module")
def pods():
    found = {}
    for o in _objects("web"):
        if o["kind"] == "Deployment":
            found[o["metadata"]["name"]] = o["spec"]["template"]["spec"]
    return found


def _flag(args: list[str], name: str, default=None):
    return args[args.index(name) + 1] if name in args else default


def test_the_site_listens_on_localhost_unless_told_and_on_all_interfaces_in_its_pod(pods):
    import argparse

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["web"]).host == "127.0.0.1"
    assert _flag(pods["radpath-web"]["containers"][0]["args"], "--host") == "0.0.0.0"


@pytest.mark.parametrize("name", ["radpath-web", "radpath-web-worker"])
def test_grace_period_outlasts_the_shutdown(pods, name):
    spec = pods[name]
    grace = float(_flag(spec["containers"][0]["args"], "--shutdown-grace-seconds", Settings().shutdown_grace_seconds))
    assert grace + 5 <= spec["terminationGracePeriodSeconds"], (name, grace, spec["terminationGracePeriodSeconds"])
