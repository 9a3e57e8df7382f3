"""deploy/compose.yaml (2 nodes + PostgreSQL + Redis + Caddy) and deploy/Caddyfile stay true to the Dockerfile and
the host config. There is no Docker engine where these tests run, so the files are checked by reading them: the
YAML parses, the services are the five the README names, only the proxy publishes ports, each node runs the
Dockerfile's command on its port with its home on the image's volume, every AIRLOCK_* variable is a setting whose
value the host accepts (with the compose file's ${...} filled in), both nodes share one state URL and one master
key, the state URL names the database service and its user, and the proxy forwards to every node's port."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import yaml

from airlock.host_settings import ENV_VARS, OTHER_VARS, resolve

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "deploy" / "compose.yaml"
CADDYFILE = REPO / "deploy" / "Caddyfile"
NODES = ("node1", "node2")


def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def filled(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation for the forms the file uses: ${VAR}, ${VAR:-default}, ${VAR:?error}."""
    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env:
            return env[name]
        assert op == ":-", f"${{{name}}} has no default and is not set"
        return arg
    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def dockerfile_cmd() -> list[str]:
    line = next(x for x in (REPO / "Dockerfile").read_text().splitlines() if x.startswith("CMD "))
    return list(json.loads(line.removeprefix("CMD ")))


def test_services_and_published_ports() -> None:
    services = compose()["services"]
    assert set(services) == {*NODES, "postgres", "redis", "proxy"}
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"proxy"}  # the nodes, the database and Redis are reachable inside the network only


def test_nodes_run_the_image_as_the_dockerfile_says() -> None:
    services = compose()["services"]
    text = (REPO / "Dockerfile").read_text()
    port = re.search(r"^EXPOSE (\d+)$", text, re.MULTILINE)
    volume = re.search(r'^VOLUME \["([^"]+)"\]$', text, re.MULTILINE)
    assert port and volume
    for name in NODES:
        node = services[name]
        assert node["command"] == dockerfile_cmd()
        assert node["command"][node["command"].index("--port") + 1] == port.group(1)
        assert node["expose"] == [port.group(1)]
        assert node["build"]["dockerfile"] == "Dockerfile" and (COMPOSE.parent / node["build"]["context"]).resolve() \
            == REPO
        [mount] = node["volumes"]
        assert mount == f"{name}-home:{volume.group(1)}"  # a home of its own per node
        assert f"{name}-home" in compose()["volumes"]
        assert {"postgres", "redis"} <= set(node["depends_on"])


def test_node_settings_are_valid_and_shared(tmp_path: Path) -> None:
    services = compose()["services"]
    outside = {"POSTGRES_PASSWORD": "pw", "AIRLOCK_MASTER_KEY": secrets.token_hex(32)}
    envs = [{k: filled(str(v), outside) for k, v in services[n]["environment"].items()} for n in NODES]
    assert envs[0] == envs[1]  # one state, one master key, one public URL for the whole cluster
    env = envs[0]
    airlock_vars = {k for k in env if k.startswith("AIRLOCK_")}
    assert airlock_vars <= set(ENV_VARS) | OTHER_VARS, airlock_vars - set(ENV_VARS) - OTHER_VARS
    assert env["AIRLOCK_MASTER_KEY"] == outside["AIRLOCK_MASTER_KEY"]
    config = resolve(home=tmp_path, environ=env).config  # the host accepts every value
    assert config.state_url.kind == "postgresql"
    db = services["postgres"]["environment"]
    assert env["AIRLOCK_STATE"] == f"postgresql://{db['POSTGRES_USER']}@postgres:5432/{db['POSTGRES_DB']}"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == services[NODES[0]]["environment"]["PGPASSWORD"]


def test_proxy_forwards_webhooks_and_health_to_every_node() -> None:
    text = CADDYFILE.read_text()
    services = compose()["services"]
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in services["proxy"]["volumes"]
    [upstreams] = re.findall(r"reverse_proxy ([^{]+)\{", text)
    port = dockerfile_cmd()[dockerfile_cmd().index("--port") + 1]
    assert upstreams.split() == [f"{n}:{port}" for n in NODES]
    assert re.search(r"@airlock path /webhook/\* /health /health/\*", text)
    assert "health_uri /health" in text  # a node answering 503 (state unreachable) gets no webhooks


def test_readme_shows_the_compose_file() -> None:
    assert "deploy/compose.yaml" in (REPO / "README.md").read_text()
