"""docker-compose.yml against the code it runs: entry points, settings, ports, monitoring, Kafka.

The stack is wired through the same setting names as a laptop run (shared/platform/settings.py), so a typo in
an environment variable would be silently ignored by pydantic-settings and the service would start on
its defaults. These tests map every variable the compose file sets to a field of the settings class
the service's entry point uses, then build that class from exactly that environment.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices

from shared.platform.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
ENTRY_POINTS = sorted(p.parent.name for p in (REPO / "services").glob("*/__main__.py"))
REQUIRED_ENV = {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"}


def _command(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _is_gridcase(service: dict) -> bool:
    return any(part.startswith("services.") for part in _command(service))


GRIDCASE = sorted(name for name, service in SERVICES.items() if _is_gridcase(service))


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _settings_class(name: str) -> type[ServiceSettings]:
    """The class the entry point itself instantiates (``from shared.platform.settings import X as Settings``)."""
    module = importlib.import_module(f"services.{name}.__main__")
    cls = module.Settings
    assert issubclass(cls, ServiceSettings)
    return cls


def _env_names(cls: type[ServiceSettings]) -> dict[str, str]:
    """Environment variable (upper case) → field name, as the class reads them: a field with a
    ``validation_alias`` by its alias(es), unprefixed; every other field as ``<env_prefix><FIELD>``."""
    prefix = cls.model_config.get("env_prefix", "")
    names: dict[str, str] = {}
    for field_name, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            names[alias.upper()] = field_name
        elif isinstance(alias, AliasChoices):
            names.update({c.upper(): field_name for c in alias.choices if isinstance(c, str)})
        else:
            names[f"{prefix}{field_name}".upper()] = field_name
    return names


def _published(service: dict) -> list[tuple[int, int]]:
    """(host port, container port) of each ``ports`` entry, short or long syntax."""
    out = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            out.append((int(entry["published"]), int(entry["target"])))
        else:
            parts = str(entry).split("/")[0].split(":")
            out.append((int(parts[-2]), int(parts[-1])))
    return out


def _bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each bind mount (named volumes skipped)."""
    out = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            if entry.get("type") == "bind":
                out.append((entry["source"], entry["target"]))
            continue
        source, target = str(entry).split(":")[:2]
        if source.startswith((".", "/")):
            out.append((source, target))
    return out


def _mount_for(service: dict, container_path: str) -> Path | None:
    """The repository path that ``container_path`` shows inside the container, if it is bind-mounted."""
    for source, target in _bind_mounts(service):
        target = target.rstrip("/")
        if container_path == target or container_path.startswith(target + "/"):
            return (REPO / source / container_path[len(target):].lstrip("/")).resolve()
    return None


# ---------------------------------------------------------------------------------- services


def test_every_entry_point_runs_in_compose():
    assert ENTRY_POINTS == ["dispatch", "intake", "reporting"]
    assert GRIDCASE == ENTRY_POINTS


@pytest.mark.parametrize("name", GRIDCASE)
def test_command_is_a_real_entry_point(name):
    command = _command(SERVICES[name])
    assert command[:2] in (["python", "-m"], ["python3", "-m"]) and len(command) == 3, command
    module = command[2]
    assert re.fullmatch(r"services\.\w+", module)
    package = module.split(".")[1]
    assert (REPO / "services" / package / "__main__.py").is_file()
    assert package == name, "the compose service is named after its package (Prometheus scrapes it by name)"


@pytest.mark.parametrize("name", GRIDCASE)
def test_environment_is_read_by_the_settings_class(name):
    cls = _settings_class(name)
    names = _env_names(cls)
    env = _env(SERVICES[name])
    unknown = set(env) - set(names)
    assert not unknown, f"{name} sets variables {cls.__name__} does not read: {sorted(unknown)}"
    assert set(env) >= REQUIRED_ENV, f"{name} must set {sorted(REQUIRED_ENV - set(env))}"


@pytest.mark.parametrize("name", GRIDCASE)
def test_settings_built_from_the_compose_environment(name, monkeypatch):
    cls = _settings_class(name)
    names = _env_names(cls)
    prefix = cls.model_config["env_prefix"]
    # Only the compose environment: drop anything this machine sets for the same settings.
    for key in list(os.environ):
        if key.upper() in names or key.upper().startswith(prefix):
            monkeypatch.delenv(key)
    env = _env(SERVICES[name])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = cls(_env_file=None)
    for key, value in env.items():
        field = names[key.upper()]
        expected = cls.model_fields[field].annotation(value)
        assert getattr(settings, field) == expected, f"{key} did not reach {cls.__name__}.{field}"


@pytest.mark.parametrize("name", GRIDCASE)
def test_port_and_host(name):
    cls = _settings_class(name)
    prefix = cls.model_config["env_prefix"]
    env = _env(SERVICES[name])
    assert env.get(f"{prefix}HOST") == "0.0.0.0", "inside a container the service must listen on all interfaces"
    port = int(env[f"{prefix}PORT"])
    assert port == cls.model_fields["port"].default, "compose and a laptop run use the same port"
    assert (port, port) in _published(SERVICES[name])


@pytest.mark.parametrize("name", GRIDCASE)
def test_service_reaches_kafka_and_postgres_of_the_stack(name):
    service, env = SERVICES[name], _env(SERVICES[name])
    assert {"kafka", "postgres"} <= set(service.get("depends_on", {}))
    kafka_env = _env(SERVICES["kafka"])
    advertised = {
        listener.split("://", 1)[1] for listener in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    for server in env["KAFKA_BOOTSTRAP_SERVERS"].split(","):
        assert server in advertised, f"{server} is not an advertised Kafka listener {sorted(advertised)}"
        assert server.split(":")[0] in SERVICES
    url = urlsplit(env["DATABASE_URL"])
    pg = _env(SERVICES["postgres"])
    assert url.hostname == "postgres" and (url.port or 5432) == 5432
    assert (url.username, url.password, url.path.lstrip("/")) == (
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        pg["POSTGRES_DB"],
    )


def test_tenants_dir_is_where_the_image_puts_the_tenants():
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    workdir = re.search(r"^WORKDIR\s+(\S+)", dockerfile, re.M).group(1)
    assert re.search(r"^COPY\s+deploy/tenants\s+\./deploy/tenants\s*$", dockerfile, re.M)
    for name in GRIDCASE:
        tenants_dir = _env(SERVICES[name]).get("GRIDCASE_TENANTS_DIR")
        if tenants_dir:
            assert tenants_dir == f"{workdir}/deploy/tenants"


# ---------------------------------------------------------------------------------- Kafka


def test_kafka_is_kraft_on_the_official_image():
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in env["KAFKA_LISTENERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "topics are created explicitly (shared/platform/kafka.py)"


def test_kafka_host_listener_matches_published_port():
    kafka = SERVICES["kafka"]
    advertised = _env(kafka)["KAFKA_ADVERTISED_LISTENERS"].split(",")
    host_side = [a.split("://", 1)[1] for a in advertised if a.split("://", 1)[1].startswith("localhost:")]
    assert host_side, "a listener advertised as localhost:<port> for clients on the host"
    for address in host_side:
        port = int(address.rsplit(":", 1)[1])
        assert (port, port) in _published(kafka)


# ---------------------------------------------------------------------------------- monitoring


def _prometheus_config() -> dict:
    prometheus = SERVICES["prometheus"]
    flag = next(a for a in _command(prometheus) if a.startswith("--config.file="))
    path = _mount_for(prometheus, flag.split("=", 1)[1])
    assert path is not None and path.is_file(), f"{flag} is not a file mounted from the repository"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_prometheus_runs_the_repository_config():
    prometheus = SERVICES["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert _mount_for(prometheus, "/etc/prometheus/prometheus.yml") == (REPO / "deploy/prometheus/prometheus.yml").resolve()
    assert _prometheus_config()["rule_files"]


def test_prometheus_scrapes_every_gridcase_service():
    targets = {}
    for job in _prometheus_config()["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                targets[target] = (job["job_name"], job.get("metrics_path", "/metrics"))
    for name in GRIDCASE:
        port = int(_env(SERVICES[name])[f"{_settings_class(name).model_config['env_prefix']}PORT"])
        assert targets.get(f"{name}:{port}") == (name, "/metrics"), f"{name}:{port} is not scraped as job {name}"
    for target in targets:
        host = target.rsplit(":", 1)[0]
        assert host == "localhost" or host in SERVICES, f"scrape target {target} is not a compose service"


def test_grafana_mounts_exist_and_match_provisioning():
    grafana = SERVICES["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    mounts = _bind_mounts(grafana)
    assert mounts
    for source, _ in mounts:
        assert (REPO / source).exists(), f"grafana mounts {source}, which is not in the repository"
    provisioning = _mount_for(grafana, "/etc/grafana/provisioning")
    assert provisioning is not None
    assert (provisioning / "datasources").is_dir() and (provisioning / "dashboards").is_dir()
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "provider.yml").read_text(encoding="utf-8"))["providers"]
    dashboards = _mount_for(grafana, provider["options"]["path"])
    assert dashboards is not None, "the provider's options.path is not mounted from the repository"
    assert {p.name for p in dashboards.glob("*.json")} >= {"pipeline-health.json", "city-kpis.json"}
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text(encoding="utf-8"))["datasources"]
    url = urlsplit(source["url"])
    assert url.hostname in SERVICES and SERVICES[url.hostname]["image"].startswith("prom/prometheus:")
    for key, value in _env(grafana).items():
        if key.endswith("_PATH") and value.startswith("/etc/grafana/"):
            assert _mount_for(grafana, value) is not None and _mount_for(grafana, value).exists(), key


def test_every_bind_mount_source_is_in_the_repository():
    for name, service in SERVICES.items():
        for source, _ in _bind_mounts(service):
            assert (REPO / source).exists(), f"{name} mounts missing {source}"
