"""Probe sweeps fan out over a Dask cluster through joblib's dask backend, with the results
of a local run."""

from dataclasses import asdict

import pytest
from polars.testing import assert_frame_equal

from saeprobe.config import ProbeConfig, probe_config
from saeprobe.errors import ConfigError
from saeprobe.probes import sweep
from tests.test_probes import tiny_sweep

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as local:
        yield local


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
