"""The launch tests' SLURM cluster: started once per session (installing it costs a minute), stopped at the end."""
from collections.abc import Iterator

import pytest
from slurm_cluster import one_node_cluster


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Iterator[dict[str, str]]:
    """The environment (SLURM_CONF, PATH) under which sbatch, scontrol and scancel reach the test cluster."""
    with one_node_cluster(tmp_path_factory.mktemp("slurm")) as environment:
        yield environment
