"""Checks of the cluster configurations under cluster/, without starting a cluster.

- Ray cluster launcher YAML (cluster/*.yaml): the JSON schema that ships inside the
  ray package, then the same defaults-filling and validation that `ray up` runs
  before it talks to the cloud, then what quokka-ray needs of it (image of this Ray
  version, an autoscaled GPU worker type starting at 0, the autoscaler switched on,
  quokka-ray installed on every node, token auth wired end to end).
- KubeRay manifests (cluster/kuberay/): ray.io/v1 kinds, Ray version of the images,
  autoscaler v2, token auth, GPU limits on the worker group; the RayJob's entrypoint
  (`quokka run` with a storage URI and an http tracking URI that the MLflow Service
  in mlflow.yaml answers to); the MLflow server's command.

Each check is a function that raises AssertionError (or the schema's error). The
`test_*_catches` tests feed each check a broken copy of a config and expect it to
fail, so that no check passes vacuously.
"""

from __future__ import annotations

import configparser
import copy
import fnmatch
import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import pytest
import ray
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
KUBERAY = CLUSTER / "kuberay"
LAUNCHER_FILES = sorted(CLUSTER.glob("*.yaml"))
RAY_SCHEMA = Path(ray.autoscaler.__file__).parent / "ray-schema.json"

RAY_IMAGE = re.compile(r"^rayproject/ray:(?P<version>\d+\.\d+\.\d+)(?:-py(?P<py>\d{2,3}))?(?:-(?P<flavour>[a-z0-9]+))?$")
URI = re.compile(r"^[a-z][a-z0-9+.-]*://[^/]")
SCHEMA_ERRORS = (AssertionError, jsonschema.ValidationError, ValueError, KeyError)


# ---------------------------------------------------------------- loading

def load(path: Path):
    with open(path) as f:
        return yaml.safe_load(f)


def load_all(path: Path) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def constraint_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def check_ray_image(image: str, where: str) -> None:
    m = RAY_IMAGE.match(image)
    assert m, f"{where}: {image!r} is not a rayproject/ray:<version>[-pyXY][-flavour] image"
    assert m["version"] == ray.__version__, (
        f"{where}: image {image!r} has Ray {m['version']}, the client has {ray.__version__}"
    )
    if m["py"]:
        assert int(m["py"][1:]) >= 10, f"{where}: {image!r}: quokka-ray needs Python >= 3.10"


# ---------------------------------------------------------------- launcher

def _shell_words(command: str) -> list[list[str]]:
    """The simple commands of a shell line, split at ;, &&, || and |."""
    words = shlex.split(re.sub(r"(;|&&|\|\||\|)", r" \1 ", command))
    parts, current = [], []
    for w in words:
        if w in (";", "&&", "||", "|"):
            parts.append(current)
            current = []
        else:
            current.append(w)
    return [p for p in parts + [current] if p]


def _pip_install_targets(command: str) -> list[str]:
    """What the `pip install` commands of a shell line install, with the source of
    folders that the line copied (`cp -r SRC DST`) put in their place."""
    copies: dict[str, str] = {}
    targets: list[str] = []
    for words in _shell_words(command):
        if words[0] == "cp":
            args = [w for w in words[1:] if not w.startswith("-")]
            if len(args) == 2:
                copies[args[1].rstrip("/")] = copies.get(args[0].rstrip("/"), args[0].rstrip("/"))
        if words[:2] == ["pip", "install"]:
            skip = False
            for w in words[2:]:
                if skip:
                    skip = False
                elif w in ("-c", "-r", "--constraint", "--requirement", "-i", "--index-url",
                           "--extra-index-url", "-f", "--find-links"):
                    skip = True
                elif w != "-e" and not w.startswith("-"):
                    targets.append(copies.get(w.rstrip("/"), w.rstrip("/")))
    return targets


def _installs_quokka(commands: list[str], file_mounts: dict[str, str]) -> bool:
    """Some command pip-installs quokka-ray: by name, or from a mounted copy of this
    repository's pyproject.toml together with everything its build reads."""
    pyproject = ROOT / "pyproject.toml"
    readme = re.search(r'(?m)^readme\s*=\s*"([^"]+)"', pyproject.read_text())
    needed = {"pyproject.toml": "pyproject.toml", "quokka_ray": "quokka_ray"}
    if readme:
        needed[readme.group(1)] = readme.group(1)
    for command in commands:
        for target in _pip_install_targets(command):
            if re.match(r"^quokka-ray(\[.*\])?\s*([=<>!~@].*)?$", target):
                return True
            mounted = {remote: file_mounts.get(f"{target}/{remote}") for remote in needed}
            if all(src is not None and (ROOT / Path(src).expanduser()).resolve() == (ROOT / local).resolve()
                   for (remote, local), src in zip(needed.items(), mounted.values(), strict=True)):
                return True
    return False


def check_launcher(cfg: dict) -> None:
    schema = json.loads(RAY_SCHEMA.read_text())
    jsonschema.validate(cfg, schema)
    # What `ray up` does before any cloud call: fill in the provider's defaults, merge
    # the setup commands, check docker and node types, then validate again.
    full = prepare_config(copy.deepcopy(cfg))
    validate_config(full)

    docker = full.get("docker") or {}
    images = {k: docker[k] for k in ("image", "head_image", "worker_image") if docker.get(k)}
    for name, node_type in full["available_node_types"].items():
        if (node_type.get("docker") or {}).get("worker_image"):
            images[f"{name}.docker.worker_image"] = node_type["docker"]["worker_image"]
    assert images, "docker.image: run every node in a rayproject/ray image"
    for where, image in images.items():
        check_ray_image(image, f"docker.{where}")

    head_start = " ; ".join(full["head_start_ray_commands"])
    assert re.search(r"ray start\b[^;]*--head", head_start), "head_start_ray_commands: no `ray start --head`"
    assert re.search(r"--autoscaling-config[= ]~/ray_bootstrap_config\.yaml", head_start), (
        "head_start_ray_commands: `ray start --head` needs --autoscaling-config=~/ray_bootstrap_config.yaml"
    )
    assert any("ray start" in c and "--address" in c for c in full["worker_start_ray_commands"]), (
        "worker_start_ray_commands: workers must join the head (`ray start --address=...`)"
    )

    head = full["head_node_type"]
    gpu_types = {
        name: t for name, t in full["available_node_types"].items()
        if name != head and t.get("resources", {}).get("GPU", 0) >= 1
    }
    assert gpu_types, "available_node_types: no worker type with resources.GPU >= 1"
    for name, t in gpu_types.items():
        assert t["min_workers"] == 0, f"{name}.min_workers: GPU nodes should start at 0 (autoscaled)"
        assert 1 <= t["max_workers"] <= full["max_workers"], (
            f"{name}.max_workers: must be >= 1 and <= the global max_workers"
        )

    mounts = {k.rstrip("/"): v for k, v in (full.get("file_mounts") or {}).items()}
    assert _installs_quokka(full["head_setup_commands"], mounts), "the head does not install quokka-ray"
    assert _installs_quokka(full["worker_setup_commands"], mounts), "the workers do not install quokka-ray"

    check_launcher_mlflow(full, mounts)

    run_options = " ".join(
        docker.get("run_options", []) + docker.get("head_run_options", [])
        + docker.get("worker_run_options", [])
    )
    if re.search(r"RAY_AUTH_MODE=token", run_options):
        assert "~/.ray/auth_token" in mounts, (
            "RAY_AUTH_MODE=token on the nodes but no token: mount ~/.ray/auth_token (file_mounts)"
        )


SECRET_VARIABLES = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_AUTH_ADMIN_PASSWORD",
                    "MLFLOW_FLASK_SERVER_SECRET_KEY", "PGPASSWORD")


def _sourced(line: str, mounts: dict[str, str]) -> list[str]:
    """The mounted files that a shell line sources (`. FILE`) before its other commands."""
    files = [words[1] for words in _shell_words(line) if words[0] in (".", "source") and len(words) == 2]
    for f in files:
        assert f.rstrip("/") in mounts, f"{f}: sourced but not in file_mounts (it would not be on the node)"
    return files


def check_launcher_mlflow(full: dict, mounts: dict[str, str]) -> None:
    """The MLflow server on the head runs basic-auth on a database server, and every secret
    (the clients' and the server's) comes from a mounted file, none from this one."""
    commands = full["head_start_ray_commands"] + full["worker_start_ray_commands"]
    for command in commands + full["setup_commands"] + full["head_setup_commands"]:
        for name in SECRET_VARIABLES:
            assert not re.search(rf"\b{name}=\S", command), f"{name} written in a command: {command[:80]}"
    for command in commands:
        if re.search(r"\bray start\b", command):
            assert any("client" in f for f in _sourced(command, mounts)), (
                f"`ray start` without MLflow's client credentials: {command[:80]}"
            )

    servers = [c for c in full["head_start_ray_commands"] if re.search(r"\bmlflow server\b", c)]
    assert len(servers) == 1, "head_start_ray_commands: one `mlflow server`"
    assert any("server" in f for f in _sourced(servers[0], mounts)), "mlflow server: its secrets are not sourced"
    words = next(w for w in _shell_words(servers[0]) if "server" in w and "mlflow" in w)
    args = words[words.index("server") + 1:]
    assert _option(args, "--app-name") == "basic-auth", "mlflow server: --app-name basic-auth"
    assert _option(args, "--host") == "0.0.0.0", "mlflow server: --host 0.0.0.0 (workers reach it)"
    assert re.match(r"^(s3|gs)://", _option(args, "--artifacts-destination") or ""), "artifacts: object storage"
    config = next((w.split("=", 1)[1] for w in words if w.startswith("MLFLOW_AUTH_CONFIG_PATH=")), None)
    assert config, "mlflow server: no MLFLOW_AUTH_CONFIG_PATH"
    # The auth config is written by a head command: `printf '...' > PATH` (~ is /home/ray).
    written = [m for c in full["head_start_ray_commands"]
               for m in re.finditer(r"printf '([^']*)' > (\S+)", c)
               if m.group(2).replace("~", "/home/ray") == config]
    assert written, f"{config}: no head command writes basic-auth's config"
    auth = configparser.ConfigParser()
    auth.read_string(written[0].group(1).replace("\\n", "\n"))
    assert not auth["mlflow"].get("admin_password"), "basic_auth.ini holds the admin's password"
    for uri in (_option(args, "--backend-store-uri") or "", auth["mlflow"]["database_uri"]):
        assert re.match(r"^(postgresql|mysql|mssql)(\+\w+)?://", uri), f"{uri!r}: use a database server"
        assert urlparse(uri).password is None, f"{uri.split('@')[-1]}: a password in a database URI"


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=lambda p: p.name)
def test_launcher_config(path: Path) -> None:
    check_launcher(load(path))


def test_launcher_configs_exist() -> None:
    assert (CLUSTER / "aws-gpu.yaml") in LAUNCHER_FILES


def _gpu_type(cfg: dict) -> dict:
    return next(t for n, t in cfg["available_node_types"].items()
                if n != cfg["head_node_type"] and t.get("resources", {}).get("GPU"))


def _drop_autoscaling_config(cfg):
    cfg["head_start_ray_commands"] = [
        c.replace(" --autoscaling-config=~/ray_bootstrap_config.yaml", "")
        for c in cfg["head_start_ray_commands"]
    ]


LAUNCHER_BREAKS: dict[str, Callable[[dict], None]] = {
    "unknown top-level field": lambda c: c.update(max_gpus=8),
    "GPU count as a string": lambda c: _gpu_type(c)["resources"].update(GPU="8"),
    "head type not a node type": lambda c: c.update(head_node_type="nope"),
    "image of another Ray": lambda c: c["docker"].update(image="rayproject/ray:2.59.0-py311-gpu"),
    "image not rayproject/ray": lambda c: c["docker"].update(image="ubuntu:24.04"),
    "no --autoscaling-config": _drop_autoscaling_config,
    "GPU pool never empty": lambda c: _gpu_type(c).update(min_workers=1),
    "GPU pool above global max": lambda c: _gpu_type(c).update(max_workers=c["max_workers"] + 1),
    "no GPU worker type": lambda c: _gpu_type(c)["resources"].pop("GPU"),
    "quokka-ray not installed": lambda c: c.update(setup_commands=[]),
    "README (needed by the build) not mounted": lambda c: c["file_mounts"].pop("~/quokka-src/README.md"),
    "package mounted from elsewhere": lambda c: c["file_mounts"].update({"~/quokka-src/quokka_ray": "tests"}),
    "pip installs another folder": lambda c: c.update(setup_commands=[
        c["setup_commands"][0].replace("cp -r ~/quokka-src", "cp -r ~/other-src")]),
    "token mode without a token": lambda c: c["file_mounts"].pop("~/.ray/auth_token"),
    "MLflow server without basic-auth": lambda c: _edit_commands(c, "head_start_ray_commands",
                                                                   "--app-name basic-auth ", ""),
    "MLflow server on SQLite": lambda c: _edit_commands(
        c, "head_start_ray_commands", "postgresql://mlflow@YOUR_DB_HOST:5432/mlflow ",
        "sqlite:////home/ray/mlflow/mlflow.db "),
    "password in the backend URI": lambda c: _edit_commands(
        c, "head_start_ray_commands", "postgresql://mlflow@YOUR_DB_HOST:5432/mlflow ",
        "postgresql://mlflow:hunter2@YOUR_DB_HOST:5432/mlflow "),
    "auth users in SQLite": lambda c: _edit_commands(
        c, "head_start_ray_commands", "postgresql://mlflow@YOUR_DB_HOST:5432/mlflow_auth",
        "sqlite:///basic_auth.db"),
    "auth config not written": lambda c: _edit_commands(
        c, "head_start_ray_commands", "> ~/mlflow/basic_auth.ini", "> ~/mlflow/other.ini"),
    "server secrets not sourced": lambda c: _edit_commands(
        c, "head_start_ray_commands", ". ~/.quokka/mlflow-server.env && ", ""),
    "server secrets not mounted": lambda c: c["file_mounts"].pop("~/.quokka/mlflow-server.env"),
    "workers without MLflow credentials": lambda c: _edit_commands(
        c, "worker_start_ray_commands", ". ~/.quokka/mlflow-client.env && ", ""),
    "client credentials not mounted": lambda c: c["file_mounts"].pop("~/.quokka/mlflow-client.env"),
    "password in a command": lambda c: _edit_commands(
        c, "worker_start_ray_commands", "ulimit", "MLFLOW_TRACKING_PASSWORD=hunter2 ulimit"),
}


def _edit_commands(cfg: dict, key: str, old: str, new: str) -> None:
    assert any(old in c for c in cfg[key]), old
    cfg[key] = [c.replace(old, new) for c in cfg[key]]


@pytest.mark.parametrize("breakage", list(LAUNCHER_BREAKS))
def test_launcher_check_catches(breakage: str) -> None:
    cfg = load(CLUSTER / "aws-gpu.yaml")
    LAUNCHER_BREAKS[breakage](cfg)
    with pytest.raises(SCHEMA_ERRORS):
        check_launcher(cfg)


# ---------------------------------------------------------------- KubeRay

def _containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


def _gpu_limit(container: dict) -> int:
    limits = (container.get("resources") or {}).get("limits") or {}
    return int(str(limits.get("nvidia.com/gpu", 0)))


def check_raycluster_spec(spec: dict, where: str) -> None:
    assert str(spec.get("rayVersion")) == ray.__version__, (
        f"{where}.rayVersion: {spec.get('rayVersion')!r}, the client has {ray.__version__}"
    )
    assert spec.get("enableInTreeAutoscaling") is True, f"{where}.enableInTreeAutoscaling must be true"
    assert (spec.get("autoscalerOptions") or {}).get("version") == "v2", (
        f"{where}.autoscalerOptions.version must be v2"
    )
    assert (spec.get("authOptions") or {}).get("mode") == "token", f"{where}.authOptions.mode must be token"

    head = spec["headGroupSpec"]
    templates = [("headGroupSpec", head["template"])] + [
        (f"workerGroupSpecs[{g.get('groupName')}]", g["template"]) for g in spec["workerGroupSpecs"]
    ]
    for name, template in templates:
        ray_containers = [c for c in _containers(template) if c["image"].startswith("rayproject/ray")]
        assert ray_containers, f"{where}.{name}: no rayproject/ray container"
        for c in ray_containers:
            check_ray_image(c["image"], f"{where}.{name}.{c['name']}")
        for c in ray_containers:
            check_mlflow_credentials(c, f"{where}.{name}.{c['name']}")
    head_ports = {p["containerPort"] for c in _containers(head["template"]) for p in c.get("ports", [])}
    assert 8265 in head_ports, f"{where}.headGroupSpec: the dashboard / job port 8265 is not exposed"

    gpu_groups = [g for g in spec["workerGroupSpecs"]
                  if any(_gpu_limit(c) >= 1 for c in _containers(g["template"]))]
    assert gpu_groups, f"{where}.workerGroupSpecs: no group with an nvidia.com/gpu limit"
    for g in gpu_groups:
        name = f"{where}.workerGroupSpecs[{g.get('groupName')}]"
        assert g.get("minReplicas") == 0, f"{name}.minReplicas: GPU pods should start at 0"
        assert g.get("maxReplicas", 0) >= 1, f"{name}.maxReplicas must be >= 1"
        assert g["minReplicas"] <= g.get("replicas", 0) <= g["maxReplicas"], f"{name}.replicas out of range"
        for c in _containers(g["template"]):
            requests = (c.get("resources") or {}).get("requests") or {}
            if "nvidia.com/gpu" in requests:
                # Kubernetes rejects an extended resource whose request differs from its limit.
                assert int(str(requests["nvidia.com/gpu"])) == _gpu_limit(c), (
                    f"{name}.{c['name']}: nvidia.com/gpu request != limit"
                )


CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def check_mlflow_credentials(container: dict, where: str) -> None:
    """The driver (on the head) and the Train workers log to a server that wants a user: each
    Ray container takes MLflow's credential variables from a Secret, never from the file."""
    env = {e["name"]: e for e in container.get("env", [])}
    for name in CREDENTIALS:
        assert "value" not in env.get(name, {}), f"{where}: {name} written in the manifest"
    from_keys = all("secretKeyRef" in env.get(n, {}).get("valueFrom", {}) for n in CREDENTIALS[:2])
    from_secret = any("mlflow" in ref["secretRef"]["name"] and not ref["secretRef"].get("optional")
                      for ref in container.get("envFrom", []) if "secretRef" in ref)
    assert from_keys or from_secret, (
        f"{where}: no MLflow credentials (envFrom a Secret such as mlflow-credentials)"
    )


def check_raycluster(doc: dict) -> None:
    assert doc.get("apiVersion") == "ray.io/v1", f"apiVersion: {doc.get('apiVersion')!r}"
    assert doc.get("kind") == "RayCluster", f"kind: {doc.get('kind')!r}"
    check_raycluster_spec(doc["spec"], "spec")


def _mlflow_deployment(docs: list[dict]) -> dict:
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert len(deployments) == 1, "mlflow.yaml: expected one Deployment"
    return deployments[0]


def _mlflow_server_args(docs: list[dict]) -> list[str]:
    container = _containers(_mlflow_deployment(docs)["spec"]["template"])[0]
    script = " ".join(container.get("command", []) + container.get("args", []))
    m = re.search(r"mlflow server\b(.*)", script, re.S)
    assert m, "mlflow.yaml: the container does not run `mlflow server`"
    return shlex.split(m.group(1).split("&&")[0])


def _option(args: list[str], name: str) -> str | None:
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def check_mlflow(docs: list[dict]) -> None:
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service"} <= kinds, f"mlflow.yaml: kinds {sorted(kinds)}"
    dep = _mlflow_deployment(docs)
    template = dep["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items(), "Deployment selector"
    services = [d for d in docs if d["kind"] == "Service"
                and d["spec"]["selector"].items() <= labels.items()]
    assert services, "no Service selects the MLflow pods"

    args = _mlflow_server_args(docs)
    assert _option(args, "--host") == "0.0.0.0", "mlflow server: --host 0.0.0.0 (reachable from other pods)"
    port = int(_option(args, "--port") or 5000)
    container_ports = {p["containerPort"] for c in _containers(template) for p in c.get("ports", [])}
    assert port in container_ports, f"mlflow server listens on {port}, not a containerPort"
    port_names = {q.get("name") for c in _containers(template) for q in c.get("ports", [])
                  if q["containerPort"] == port}
    for service in services:
        for p in service["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            assert target == port or target in port_names, (
                f"Service {service['metadata']['name']}: targetPort {target!r} is not the server's port {port}"
            )

    artifacts = _option(args, "--artifacts-destination") or ""
    assert re.match(r"^(s3|gs|wasbs|abfss)://", artifacts), (
        f"--artifacts-destination {artifacts!r}: artifacts belong in object storage"
    )
    assert _option(args, "--app-name") == "basic-auth", "mlflow server: --app-name basic-auth (users and passwords)"
    container = _containers(template)[0]
    env = _env(container)
    config_path = env.get("MLFLOW_AUTH_CONFIG_PATH")
    assert config_path, "MLFLOW_AUTH_CONFIG_PATH: basic-auth's config (its user database) is not set"
    auth = configparser.ConfigParser()
    auth.read_string(_mounted_file(docs, template, container, config_path))
    assert not auth["mlflow"].get("admin_password"), "basic_auth.ini holds the admin's password"
    # The admin's password, the session key and the database password come from Secrets.
    for name in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert _from_secret(container, name), f"{name}: not from a Secret"
    for uri in (_option(args, "--backend-store-uri") or "", auth["mlflow"]["database_uri"]):
        check_database_uri(docs, container, uri)

    # The server's MLflow is the clients' (constraints.txt) when it is pip-installed here,
    # with the basic-auth app's dependencies and the database's driver.
    script = " ".join(container.get("args", []))
    pinned = re.search(r"\bmlflow(\[[\w,]+\])?==([\w.]+)", script)
    if pinned:
        assert pinned.group(2) == constraint_pins()["mlflow"], "mlflow server version != constraints.txt"
        assert "auth" in (pinned.group(1) or ""), "pip install mlflow[auth]: the basic-auth app needs it"
        assert "psycopg2" in script, "pip install psycopg2-binary: the PostgreSQL driver"


def _env(container: dict) -> dict[str, object]:
    """A container's variables: the literal value, or the valueFrom source."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _from_secret(container: dict, name: str) -> tuple[str, str] | None:
    source = _env(container).get(name)
    if isinstance(source, dict) and "secretKeyRef" in source:
        return source["secretKeyRef"]["name"], source["secretKeyRef"]["key"]
    return None


def _mounted_file(docs: list[dict], template: dict, container: dict, path: str) -> str:
    """The text of a file that a ConfigMap of these documents mounts at `path`."""
    volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        folder = mount["mountPath"].rstrip("/")
        if path.startswith(folder + "/") and "configMap" in volumes.get(mount["name"], {}):
            name = volumes[mount["name"]]["configMap"]["name"]
            maps = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name]
            assert maps, f"{path}: ConfigMap {name} is not in mlflow.yaml"
            key = path[len(folder) + 1:]
            assert key in maps[0].get("data", {}), f"{path}: ConfigMap {name} has no key {key}"
            return maps[0]["data"][key]
    raise AssertionError(f"{path}: no ConfigMap of mlflow.yaml is mounted there")


def _postgres(docs: list[dict]) -> tuple[dict, dict] | None:
    """The PostgreSQL StatefulSet of these documents and its container, if there is one."""
    for d in docs:
        if d["kind"] == "StatefulSet":
            for c in _containers(d["spec"]["template"]):
                if c["image"].split(":")[0].endswith("postgres"):
                    return d, c
    return None


def check_database_uri(docs: list[dict], server: dict, uri: str) -> None:
    """A database server (many trials log at once), no password in the URI (it is printed
    and stored in places: the client library reads PGPASSWORD from a Secret instead), and,
    when the database runs in these documents, its Service, its user, password and database."""
    assert re.match(r"^(postgresql|mysql|mssql)(\+\w+)?://", uri), (
        f"database {uri!r}: use a database server (PostgreSQL), not a file"
    )
    url = urlparse(uri)
    assert url.password is None, f"{url.scheme}://{url.username}:...@{url.hostname}: a password in a URI"
    found = _postgres(docs)
    if not found or not url.hostname.endswith(".svc"):
        return  # an external database (RDS, Cloud SQL)
    postgres, container = found
    assert url.scheme.startswith("postgresql"), f"{uri}: the database of mlflow.yaml is PostgreSQL"
    host = url.hostname.split(".")
    services = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == host[0]
                and d["metadata"].get("namespace", "default") == host[1]]
    assert services, f"{uri}: no Service {host[0]} in namespace {host[1]}"
    labels = postgres["spec"]["template"]["metadata"]["labels"]
    assert services[0]["spec"]["selector"].items() <= labels.items(), f"Service {host[0]} does not select PostgreSQL"
    assert (url.port or 5432) in {p["port"] for p in services[0]["spec"]["ports"]}, f"{uri}: port"
    env = _env(container)
    assert url.username == env.get("POSTGRES_USER"), f"{uri}: user is not POSTGRES_USER {env.get('POSTGRES_USER')!r}"
    assert _from_secret(server, "PGPASSWORD") == _from_secret(container, "POSTGRES_PASSWORD") is not None, (
        "PGPASSWORD of the server and POSTGRES_PASSWORD of the database: not the same Secret key"
    )
    database = url.path.lstrip("/")
    created = {env.get("POSTGRES_DB")}
    for mount in container.get("volumeMounts", []):
        if mount["mountPath"] == "/docker-entrypoint-initdb.d":
            volume = next(v for v in postgres["spec"]["template"]["spec"]["volumes"]
                          if v["name"] == mount["name"])
            maps = [d for d in docs if d["kind"] == "ConfigMap"
                    and d["metadata"]["name"] == volume["configMap"]["name"]]
            for text in (maps[0].get("data") or {}).values() if maps else []:
                created |= set(re.findall(r"CREATE DATABASE (\w+)", text, re.I))
    assert database in created, f"{uri}: database {database!r} is never created (has {sorted(created - {None})})"


# MLflow 3.x's server answers only requests whose Host header matches --allowed-hosts
# (fnmatch patterns; by default localhost and private IP addresses). This mirrors
# mlflow.server.security_utils.is_allowed_host_header / get_default_allowed_hosts
# (mlflow 3.17), whose import alone takes seconds.
MLFLOW_DEFAULT_HOSTS = [
    "localhost", "127.0.0.1", "[::1]", "0.0.0.0", "localhost:*", "127.0.0.1:*", "[[]::1]:*",
    "0.0.0.0:*", "10.*", "192.168.*", *(f"172.{i}.*" for i in range(16, 32)), "fc00:*", "fd00:*",
]


def _mlflow_accepts_host(docs: list[dict], host: str) -> bool:
    """Whether the MLflow server of mlflow.yaml would answer a request with this Host header."""
    allowed = _option(_mlflow_server_args(docs), "--allowed-hosts")
    patterns = [h.strip() for h in allowed.split(",")] if allowed else MLFLOW_DEFAULT_HOSTS
    if "*" in patterns:
        return True
    return any(fnmatch.fnmatch(host, p) if "*" in p else host == p for p in patterns)


def check_rayjob(doc: dict, mlflow_docs: list[dict]) -> None:
    assert doc.get("apiVersion") == "ray.io/v1", f"apiVersion: {doc.get('apiVersion')!r}"
    assert doc.get("kind") == "RayJob", f"kind: {doc.get('kind')!r}"
    spec = doc["spec"]
    assert spec.get("shutdownAfterJobFinishes") is True, "shutdownAfterJobFinishes must be true"
    check_raycluster_spec(spec["rayClusterSpec"], "spec.rayClusterSpec")

    words = shlex.split(spec["entrypoint"])
    assert words[:2] == ["quokka", "run"], f"entrypoint must call `quokka run`, not {words[:2]}"
    assert len(words) > 2 and words[2].endswith(".py"), "entrypoint: `quokka run EXPERIMENT.py ...`"
    storage = _option(words, "--storage-path")
    assert storage, "entrypoint: --storage-path is required on a cluster"
    assert URI.match(storage) or storage.startswith("/"), (
        f"--storage-path {storage!r}: relative paths end up in the job's temporary working dir"
    )
    assert not storage.startswith("file://"), "--storage-path: a file:// path is not shared storage"
    tracking = _option(words, "--tracking-uri")
    assert tracking and re.match(r"^https?://", tracking), (
        f"--tracking-uri {tracking!r}: use an MLflow server (http), not a file or SQLite store"
    )

    runtime_env = yaml.safe_load(spec.get("runtimeEnvYAML") or "")
    assert isinstance(runtime_env, dict), "runtimeEnvYAML must be a YAML mapping"
    if not words[2].startswith("/"):
        assert runtime_env.get("working_dir"), (
            f"{words[2]} is relative: runtimeEnvYAML needs a working_dir that holds it"
        )
    leaked = set(runtime_env.get("env_vars") or {}) & set(CREDENTIALS)
    assert not leaked, f"runtimeEnvYAML.env_vars: {sorted(leaked)} (shown by the dashboard and `ray job list`)"
    assert urlparse(tracking).password is None, "--tracking-uri: credentials in the URI"
    pip = runtime_env.get("pip")
    packages = pip.get("packages", []) if isinstance(pip, dict) else (pip or [])
    assert any(re.match(r"^quokka-ray\b", p) for p in packages), "runtimeEnvYAML.pip must install quokka-ray"
    pins = constraint_pins()
    for p in packages:
        m = re.match(r"^([A-Za-z0-9_.-]+)==([\w.]+)$", p)
        if m and m.group(1).lower() in pins:
            assert m.group(2) == pins[m.group(1).lower()], f"runtimeEnvYAML pins {p}, constraints.txt {pins[m.group(1).lower()]}"
        assert not re.match(r"^ray(\[.*\])?\b", p), "runtimeEnvYAML.pip: keep the image's Ray"

    # The tracking URI must name the MLflow Service of mlflow.yaml, on its port, with a
    # Host header that the server accepts.
    url = urlparse(tracking)
    host_parts = url.hostname.split(".")
    services = [d for d in mlflow_docs if d["kind"] == "Service"]
    matching = [
        s for s in services
        if host_parts[0] == s["metadata"]["name"]
        and (len(host_parts) == 1 or host_parts[1] == s["metadata"].get("namespace", "default"))
        and (url.port or 80) in {p["port"] for p in s["spec"]["ports"]}
    ]
    assert matching, f"--tracking-uri {tracking}: no Service of mlflow.yaml by that name and port"
    assert _mlflow_accepts_host(mlflow_docs, url.netloc), (
        f"the MLflow server would refuse Host {url.netloc!r} (--allowed-hosts)"
    )


def test_raycluster() -> None:
    docs = load_all(KUBERAY / "raycluster.yaml")
    assert len(docs) == 1
    check_raycluster(docs[0])


def test_rayjob() -> None:
    docs = load_all(KUBERAY / "rayjob.yaml")
    assert len(docs) == 1
    check_rayjob(docs[0], load_all(KUBERAY / "mlflow.yaml"))


def test_mlflow_server() -> None:
    check_mlflow(load_all(KUBERAY / "mlflow.yaml"))


def test_rayjob_cluster_matches_raycluster() -> None:
    """rayjob.yaml's cluster is raycluster.yaml's: one place to read, no drift."""
    cluster = load(KUBERAY / "raycluster.yaml")["spec"]
    job_cluster = load(KUBERAY / "rayjob.yaml")["spec"]["rayClusterSpec"]
    assert job_cluster == cluster


def _worker(doc_spec: dict) -> dict:
    return _containers(doc_spec["workerGroupSpecs"][0]["template"])[0]


def _set_host(doc: dict, old: str, new: str) -> None:
    doc["spec"]["entrypoint"] = doc["spec"]["entrypoint"].replace(old, new)


def _set_allowed_hosts(docs: list[dict], hosts: str | None) -> None:
    container = _containers(_mlflow_deployment(docs)["spec"]["template"])[0]
    args = container["args"][0]
    args = re.sub(r"\s--allowed-hosts \S+", "" if hosts is None else f" --allowed-hosts {hosts}", args)
    container["args"] = [args]


def _mlflow_option(docs: list[dict], name: str, value: str) -> None:
    container = _containers(_mlflow_deployment(docs)["spec"]["template"])[0]
    container["args"] = [re.sub(rf"{name} \S+", f"{name} {value}", container["args"][0])]


RAYCLUSTER_BREAKS: dict[str, Callable[[dict], None]] = {
    "apiVersion v1alpha1": lambda d: d.update(apiVersion="ray.io/v1alpha1"),
    "kind RayService": lambda d: d.update(kind="RayService"),
    "rayVersion of another Ray": lambda d: d["spec"].update(rayVersion="2.59.0"),
    "worker image of another Ray": lambda d: _worker(d["spec"]).update(image="rayproject/ray:2.59.0-py311-gpu"),
    "autoscaler off": lambda d: d["spec"].update(enableInTreeAutoscaling=False),
    "autoscaler v1": lambda d: d["spec"]["autoscalerOptions"].update(version="v1"),
    "no token auth": lambda d: d["spec"].pop("authOptions"),
    "no GPU limit": lambda d: _worker(d["spec"])["resources"]["limits"].pop("nvidia.com/gpu"),
    "GPU request != limit": lambda d: _worker(d["spec"])["resources"]["requests"].update({"nvidia.com/gpu": 4}),
    "GPU pods never 0": lambda d: d["spec"]["workerGroupSpecs"][0].update(minReplicas=1, replicas=1),
    "no maxReplicas": lambda d: d["spec"]["workerGroupSpecs"][0].pop("maxReplicas"),
    "workers without MLflow credentials": lambda d: _worker(d["spec"]).update(envFrom=[]),
    "MLflow credentials optional": lambda d: _worker(d["spec"])["envFrom"][-1]["secretRef"].update(optional=True),
    "MLflow password written": lambda d: _worker(d["spec"]).update(env=[
        {"name": "MLFLOW_TRACKING_PASSWORD", "value": "written-in-the-file"}]),
}


@pytest.mark.parametrize("breakage", list(RAYCLUSTER_BREAKS))
def test_raycluster_check_catches(breakage: str) -> None:
    doc = load(KUBERAY / "raycluster.yaml")
    RAYCLUSTER_BREAKS[breakage](doc)
    with pytest.raises(SCHEMA_ERRORS):
        check_raycluster(doc)


def _set_runtime_env(doc: dict, change: Callable[[dict], None]) -> None:
    env = yaml.safe_load(doc["spec"]["runtimeEnvYAML"])
    change(env)
    doc["spec"]["runtimeEnvYAML"] = yaml.safe_dump(env)


RAYJOB_BREAKS: dict[str, Callable[[dict, list[dict]], None]] = {
    "not quokka run": lambda d, m: d["spec"].update(entrypoint="python train.py"),
    "relative storage path": lambda d, m: _set_host(d, "s3://YOUR_BUCKET/quokka_runs", "quokka_runs"),
    "no storage path": lambda d, m: _set_host(d, "--storage-path s3://YOUR_BUCKET/quokka_runs", ""),
    "SQLite tracking URI": lambda d, m: _set_host(d, "http://mlflow.mlflow.svc:5000", "sqlite:///mlflow.db"),
    "tracking host not the Service": lambda d, m: _set_host(d, "mlflow.mlflow.svc", "mlflow.other.svc"),
    "tracking port not the Service's": lambda d, m: _set_host(d, "svc:5000", "svc:8080"),
    "MLflow refuses the host": lambda d, m: _set_allowed_hosts(m, "localhost,localhost:5000"),
    "MLflow defaults refuse the host": lambda d, m: _set_allowed_hosts(m, None),
    "cluster kept after the job": lambda d, m: d["spec"].update(shutdownAfterJobFinishes=False),
    "no working_dir": lambda d, m: _set_runtime_env(d, lambda e: e.pop("working_dir")),
    "quokka-ray not installed": lambda d, m: _set_runtime_env(d, lambda e: e["pip"].update(packages=["torch"])),
    "pin differs from constraints": lambda d, m: _set_runtime_env(
        d, lambda e: e["pip"]["packages"].append("mlflow==3.16.0")),
    "cluster of another Ray": lambda d, m: d["spec"]["rayClusterSpec"].update(rayVersion="2.59.0"),
    "password in the runtime env": lambda d, m: _set_runtime_env(
        d, lambda e: e["env_vars"].update(MLFLOW_TRACKING_PASSWORD="written-in-the-file")),
    "credentials in the tracking URI": lambda d, m: _set_host(
        d, "http://mlflow.mlflow.svc:5000", "http://quokka:secret@mlflow.mlflow.svc:5000"),
}


@pytest.mark.parametrize("breakage", list(RAYJOB_BREAKS))
def test_rayjob_check_catches(breakage: str) -> None:
    doc = load(KUBERAY / "rayjob.yaml")
    mlflow_docs = load_all(KUBERAY / "mlflow.yaml")
    RAYJOB_BREAKS[breakage](doc, mlflow_docs)
    with pytest.raises(SCHEMA_ERRORS):
        check_rayjob(doc, mlflow_docs)


def _mlflow_args(docs: list[dict], change: Callable[[str], str]) -> None:
    container = _containers(_mlflow_deployment(docs)["spec"]["template"])[0]
    container["args"] = [change(container["args"][0])]


def _config_map(docs: list[dict], name: str) -> dict:
    return next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name)["data"]


def _edit_auth_ini(docs: list[dict], old: str, new: str) -> None:
    data = _config_map(docs, "mlflow-auth")
    assert old in data["basic_auth.ini"]
    data["basic_auth.ini"] = data["basic_auth.ini"].replace(old, new)


def _set_env(docs: list[dict], name: str, entry: dict | None) -> None:
    container = _containers(_mlflow_deployment(docs)["spec"]["template"])[0]
    container["env"] = [e for e in container["env"] if e["name"] != name] + ([entry] if entry else [])


def _postgres_env(docs: list[dict], name: str, value: str) -> None:
    _, container = _postgres(docs)
    container["env"] = [e for e in container["env"] if e["name"] != name] + [{"name": name, "value": value}]


MLFLOW_BREAKS: dict[str, Callable[[list[dict]], None]] = {
    "SQLite backend": lambda m: _mlflow_option(m, "--backend-store-uri", "sqlite:////mlflow/mlflow.db"),
    "password in the backend URI": lambda m: _mlflow_args(m, lambda a: a.replace(
        "postgresql://mlflow@", "postgresql://mlflow:hunter2hunter2@")),
    "backend on an unknown Service": lambda m: _mlflow_args(m, lambda a: a.replace(
        "postgres.mlflow.svc:5432/mlflow ", "pg.mlflow.svc:5432/mlflow ")),
    "backend database never created": lambda m: _mlflow_args(m, lambda a: a.replace(
        "5432/mlflow ", "5432/runs ")),
    "backend user not the database's": lambda m: _postgres_env(m, "POSTGRES_USER", "postgres"),
    "no basic-auth": lambda m: _mlflow_args(m, lambda a: a.replace("--app-name basic-auth", "")),
    "auth config not mounted": lambda m: _set_env(m, "MLFLOW_AUTH_CONFIG_PATH", {
        "name": "MLFLOW_AUTH_CONFIG_PATH", "value": "/opt/basic_auth.ini"}),
    "auth database is SQLite": lambda m: _edit_auth_ini(
        m, "postgresql://mlflow@postgres.mlflow.svc:5432/mlflow_auth", "sqlite:///basic_auth.db"),
    "password in the auth database URI": lambda m: _edit_auth_ini(
        m, "postgresql://mlflow@", "postgresql://mlflow:hunter2hunter2@"),
    "auth database never created": lambda m: _config_map(m, "postgres-init").update(
        {"auth-db.sql": "SELECT 1;"}),
    "admin password in the auth config": lambda m: _edit_auth_ini(
        m, "admin_username = admin", "admin_username = admin\nadmin_password = written-here"),
    "admin password literal": lambda m: _set_env(m, "MLFLOW_AUTH_ADMIN_PASSWORD", {
        "name": "MLFLOW_AUTH_ADMIN_PASSWORD", "value": "written-in-the-file"}),
    "no session key": lambda m: _set_env(m, "MLFLOW_FLASK_SERVER_SECRET_KEY", None),
    "database password from another Secret": lambda m: _set_env(m, "PGPASSWORD", {
        "name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "other", "key": "password"}}}),
    "local artifacts": lambda m: _mlflow_option(m, "--artifacts-destination", "./mlartifacts"),
    "localhost only": lambda m: _mlflow_option(m, "--host", "127.0.0.1"),
    "server version differs": lambda m: _mlflow_args(m, lambda a: a.replace(
        "mlflow[auth]==3.17.2", "mlflow[auth]==3.16.0")),
    "basic-auth's dependencies not installed": lambda m: _mlflow_args(m, lambda a: a.replace(
        "mlflow[auth]==", "mlflow==")),
    "no Service": lambda m: m.remove(next(d for d in m if d["kind"] == "Service"
                                          and d["metadata"]["name"] == "mlflow")),
}


@pytest.mark.parametrize("breakage", list(MLFLOW_BREAKS))
def test_mlflow_check_catches(breakage: str) -> None:
    docs = load_all(KUBERAY / "mlflow.yaml")
    MLFLOW_BREAKS[breakage](docs)
    with pytest.raises(SCHEMA_ERRORS):
        check_mlflow(docs)
