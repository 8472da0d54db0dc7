"""Probe sweeps fan out over a Dask cluster through joblib's dask backend, with the results
of a local run."""

import contextlib
import os
from dataclasses import asdict

import pytest
from polars.testing import assert_frame_equal

from saeprobe.config import ProbeConfig, probe_config
from saeprobe.errors import ConfigError
from saeprobe.probes import sweep
from tests.test_probes import tiny_sweep

distributed = pytest.importorskip("distributed")


@contextlib.contextmanager
def local_cluster():
    # Starting workers sets OMP_NUM_THREADS=MKL_NUM_THREADS=1 (and more) in this process's
    # environment. Left there, every pipeline that a later test runs in a subprocess would
    # compute on one thread, and its outputs would differ in their last bits from the same
    # pipeline run earlier in the session on two.
    saved = dict(os.environ)
    try:
        with distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as local:
            yield local
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def cluster():
    with local_cluster() as local:
        yield local


def test_a_local_cluster_leaves_the_test_session_environment_as_it_found_it():
    before = dict(os.environ)
    with local_cluster():
        pass
    assert dict(os.environ) == before


def test_a_sweep_on_a_dask_cluster_gives_the_local_results(cluster):
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    local = tiny_sweep()
    remote = tiny_sweep(n_jobs=-1, backend="dask", scheduler=cluster.scheduler_address)
    assert remote.height == local.height > 0
    assert_frame_equal(remote, local)
    with distributed.Client(cluster.scheduler_address) as client:
        # the fits ran on the cluster's workers: their processes hold the sweep's module
        loaded = client.run(lambda: __import__("sys").modules.get("saeprobe.probes.sweep"))
    assert all(module is not None for module in loaded.values())


def test_a_scheduler_that_does_not_answer_is_named(monkeypatch):
    cfg = ProbeConfig(backend="dask", scheduler="tcp://127.0.0.1:9")  # the discard port
    monkeypatch.setattr(sweep, "SCHEDULER_TIMEOUT_S", 2)
    with pytest.raises(ConfigError, match=r"'probe.scheduler' 'tcp://127.0.0.1:9': no Dask"):
        sweep.run_parallel([], cfg)


def test_the_dask_backend_needs_a_scheduler():
    with pytest.raises(ConfigError, match="'probe.backend' dask needs 'probe.scheduler'"):
        probe_config({"probe": asdict(ProbeConfig()) | {"backend": "dask", "scheduler": None}})
