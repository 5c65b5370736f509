"""Whether a Ray cluster can ever hold one of a trial's workers (its CPUs and, with
`Resources.use_gpu`, its GPU). A trial whose workers fit no node waits for one: Ray Train
retries the start of its worker group without end, which is what a trial must do on a cluster
that an autoscaler grows (the GPU nodes of cluster/ start at zero), and what leaves it waiting
for ever on a cluster that nothing grows. So: on a cluster that cannot grow, stop with one line
before the sweep starts; on one that can, say once that the trials wait for new nodes."""

from __future__ import annotations

from quokka_ray.config import ConfigError
from quokka_ray.sweep.spec import Resources


def worker_bundle(resources: Resources) -> dict[str, float]:
    """What Ray Train asks of a node for one worker."""
    return {"CPU": resources.cpus_per_worker, **({"GPU": 1.0} if resources.use_gpu else {})}


def fits(bundle: dict[str, float], shape: dict[str, float]) -> bool:
    return all(shape.get(name, 0) >= amount for name, amount in bundle.items())


def _describe(bundle: dict[str, float]) -> str:
    return ", ".join(f"{amount:g} {name}" for name, amount in bundle.items())


def capacity_verdict(resources: Resources, nodes: list[dict[str, float]],
                     node_types: list[dict[str, float]] | None, *, can_grow: bool) -> str | None:
    """None when a live node holds a worker; a line to print when none does yet but the
    cluster may grow to hold one; ConfigError when it never will.

    `nodes`: the live nodes' total resources. `node_types`: the resources of the node types
    the cluster's autoscaler may add, when Ray knows them (autoscaler v2 and KubeRay publish
    them), else None. `can_grow`: False for a cluster this process started for itself."""
    bundle = worker_bundle(resources)
    if any(fits(bundle, node) for node in nodes):
        return None
    if node_types is not None:
        can_grow = any(fits(bundle, shape) for shape in node_types)
    if can_grow:
        return (f"[quokka] no node of the Ray cluster holds a worker ({_describe(bundle)}) yet: "
                "the trials wait for the autoscaler to add one (`ray status` shows the demand)")
    largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
    has = {name: largest.get(name, 0) for name in bundle}
    field, value = (("Resources.use_gpu", True) if resources.use_gpu and not has.get("GPU")
                    else ("Resources.cpus_per_worker", resources.cpus_per_worker))
    where = ("this machine's Ray cluster, which nothing adds nodes to" if node_types is None
             else "the Ray cluster, and its autoscaler adds none that does")
    raise ConfigError(
        f"{field}: {value}: each worker needs {_describe(bundle)} and no node of {where} has "
        f"that (the largest has {_describe(has)}): run on a cluster that has it (--address, "
        "RAY_ADDRESS or `ray job submit`), or ask for less")


def check_capacity(resources: Resources, *, can_grow: bool) -> None:
    """`capacity_verdict` for the cluster this process is connected to."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    line = capacity_verdict(resources, nodes, autoscaler_node_types(), can_grow=can_grow)
    if line:
        print(line, flush=True)


def autoscaler_node_types() -> list[dict[str, float]] | None:
    """The node types the cluster's autoscaler may still add, from the cluster configuration
    that autoscaler v2 reports to the GCS; None when none is reported (no autoscaler, or v1)."""
    try:  # a private API of Ray's: without it, what the autoscaler may add is unknown
        import ray._private.state

        config = ray._private.state.state.get_cluster_config()
    except Exception:  # noqa: BLE001
        return None
    if config is None or not config.node_group_configs:
        return None
    return [dict(group.resources) for group in config.node_group_configs if group.max_count != 0]
