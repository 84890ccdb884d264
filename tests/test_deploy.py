"""The deployment files (Dockerfile, compose.yaml, deploy/, docs/deploy.md) against the code.

No Docker here: the files are read as text. Every command they run must be a real
``lumigram`` subcommand, every setting they set a real setting, so renaming either breaks
a test instead of a deployment.
"""

from __future__ import annotations

import json
import re
import shlex
from functools import cache
from pathlib import Path

import pytest

from lumigram.__main__ import EXIT_CONFIG, build_parser
from lumigram.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
UNIT = ROOT / "deploy" / "lumigram.service"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

LUMIGRAM_SERVICES = {"migrate", "bot-1", "bot-2", "worker", "api"}
ENGINES = {"db", "redis", "minio", "buckets", "caddy"}


def assert_lumigram_command(argv: list[str], where: str) -> None:
    """``lumigram <argv>`` parses, and names the subcommand it starts with."""
    assert argv, f"{where}: no command"
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:  # argparse: an unknown subcommand or option
        pytest.fail(f"{where}: `lumigram {shlex.join(argv)}` is not a lumigram command")
    assert args.command == argv[0], where


def assert_setting(name: str, where: str) -> None:
    assert name.lower() in Settings.model_fields, f"{where}: {name} is not a Lumigram setting"


# --- Dockerfile -----------------------------------------------------------------------


@cache
def dockerfile() -> list[tuple[str, str]]:
    """The instructions as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def runtime_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage: the image that runs."""
    instructions = dockerfile()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def instruction(keyword: str) -> str:
    found = [rest for kw, rest in runtime_stage() if kw == keyword]
    assert found, f"the Dockerfile's runtime stage has no {keyword}"
    return found[-1]  # the last one is the one that counts


def test_dockerfile_entrypoint_is_lumigram_and_cmd_a_subcommand() -> None:
    assert json.loads(instruction("ENTRYPOINT")) == ["lumigram"]
    cmd = json.loads(instruction("CMD"))
    assert cmd == ["run"]
    assert_lumigram_command(cmd, "Dockerfile CMD")


def test_dockerfile_runs_as_a_non_root_user() -> None:
    user = instruction("USER").split(":")[0]
    assert user not in {"root", "0"}
    assert user == "10001"


def test_dockerfile_healthcheck_asks_healthz() -> None:
    healthcheck = instruction("HEALTHCHECK")
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[0] == "python"  # no curl in the slim image
    assert "urllib" in command[-1]
    urls = re.findall(r"http://[^'\"]+", command[-1])
    assert len(urls) == 1
    assert urls[0].endswith("/healthz")


def test_dockerfile_settings_fit_a_container() -> None:
    env: dict[str, str] = {}
    for rest in (rest for kw, rest in runtime_stage() if kw == "ENV"):
        for item in rest.split():
            name, _, value = item.partition("=")
            env[name] = value
    settings = {"HTTP_HOST", "HTTP_PORT", "STORAGE_DIR", "DATABASE_URL"}
    assert settings <= env.keys()
    for name in settings:
        assert_setting(name, "Dockerfile ENV")
    assert env["HTTP_HOST"] == "0.0.0.0"  # 127.0.0.1 is unreachable from outside
    assert env["HTTP_PORT"] == "8080"
    assert env["STORAGE_DIR"].startswith("/data/")
    assert env["DATABASE_URL"] == "sqlite+aiosqlite:////data/lumigram.db"
    assert json.loads(instruction("VOLUME")) == ["/data"]
    assert instruction("EXPOSE") == env["HTTP_PORT"]


def test_dockerfile_installs_the_locked_dependencies() -> None:
    installs = [rest for kw, rest in dockerfile() if kw == "RUN" and "pip install" in rest]
    assert installs
    assert all("-c constraints.txt" in rest for rest in installs)


def test_dockerignore_lets_in_only_what_the_build_copies() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # an allow-list: .env, .venv, .git, data/ never reach the daemon
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "constraints.txt", "README.md", "src"}
    copied = {
        path.rstrip("/").split("/")[0]
        for kw, rest in dockerfile()
        if kw == "COPY" and not rest.startswith("--from")
        for path in rest.split()[:-1]
    }
    assert copied <= allowed


# --- compose.yaml ---------------------------------------------------------------------
# A small reader for the YAML this file uses (PyYAML is not a dependency): top-level
# blocks, services two spaces in, their keys four spaces in, and `<<: *anchor` merges of a
# top-level `x-…: &anchor` block.


def _blocks(lines: list[str], indent: int) -> dict[str, list[str]]:
    """``key:`` lines at exactly ``indent`` spaces, each with the lines under it."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        depth = len(line) - len(line.lstrip())
        if depth < indent:
            current = None
        elif depth == indent:
            key = line.strip().split(":", 1)[0]
            current = blocks.setdefault(key, [line])
        elif current is not None:
            current.append(line)
    return blocks


def _value(line: str) -> str:
    value = line.split(":", 1)[1]
    return re.sub(r"\s+#.*$", "", value).strip()


@cache
def compose() -> dict[str, dict[str, str]]:
    """Each service's keys (after merges) and the text after ``key:`` (may be empty)."""
    top = _blocks(COMPOSE.read_text().splitlines(), 0)
    anchors = {}
    for block in top.values():
        anchor = re.search(r"&([\w-]+)\s*$", block[0])
        if anchor:
            anchors[anchor[1]] = {
                key: _value(lines[0]) for key, lines in _blocks(block[1:], 2).items()
            }
    services = {}
    for name, block in _blocks(top["services"][1:], 2).items():
        own = {key: _value(lines[0]) for key, lines in _blocks(block[1:], 4).items()}
        merged: dict[str, str] = {}
        if "<<" in own:
            merged.update(anchors[own.pop("<<").lstrip("*")])
        merged.update(own)
        services[name] = merged
    return services


def command(value: str) -> list[str]:
    parsed = json.loads(value) if value.startswith("[") else shlex.split(value)
    assert isinstance(parsed, list)
    return [str(item) for item in parsed]


def test_compose_has_the_services() -> None:
    assert set(compose()) == {*ENGINES, *LUMIGRAM_SERVICES}
    lumigram = {name for name, keys in compose().items() if keys.get("build") == "."}
    assert lumigram == LUMIGRAM_SERVICES


@pytest.mark.parametrize("service", sorted(LUMIGRAM_SERVICES))
def test_compose_commands_are_lumigram_subcommands(service: str) -> None:
    argv = command(compose()[service]["command"])
    assert argv == [service.split("-")[0]]  # bot-1 and bot-2 are replicas of `bot`
    assert_lumigram_command(argv, f"compose.yaml service {service}")


@pytest.mark.parametrize("service", sorted(LUMIGRAM_SERVICES))
def test_compose_services_read_env_file(service: str) -> None:
    assert compose()[service]["env_file"] == ".env"


def test_compose_dependencies() -> None:
    text = COMPOSE.read_text()
    services = _blocks(_blocks(text.splitlines(), 0)["services"][1:], 2)
    assert "condition: service_healthy" in "\n".join(services["migrate"])
    assert "pg_isready" in "\n".join(services["db"])
    for name in LUMIGRAM_SERVICES - {"migrate"}:
        block = "\n".join(services[name])
        assert re.search(r"migrate:\s+condition: service_completed_successfully", block), name
        assert compose()[name]["restart"] == "unless-stopped"


def test_compose_environment_is_made_of_settings() -> None:
    top = _blocks(COMPOSE.read_text().splitlines(), 0)
    environment = {
        key: _value(lines[0])
        for key, lines in _blocks(top["x-lumigram-environment"][1:], 2).items()
    }
    for name in environment:
        assert_setting(name, "compose.yaml environment")
    assert environment["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert environment["HTTP_HOST"] == "0.0.0.0"
    # Scale-out: Redis for the job stream and shared state, files in MinIO.
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
    assert environment["STORAGE_URL"].startswith("s3://")
    assert environment["S3_ENDPOINT_URL"] == "http://minio:9000"
    services = _blocks(top["services"][1:], 2)
    for replica in ("bot-1", "bot-2"):
        assert "TELEGRAM_MODE: webhook" in "\n".join(services[replica])
    assert_setting("TELEGRAM_MODE", "compose.yaml bot")
    assert "replicas: 3" in "\n".join(services["worker"])
    # The bucket the files go to is made before anything starts.
    assert environment["STORAGE_URL"].split("/")[2] in "\n".join(services["buckets"])
    assert re.search(
        r"buckets:\s+condition: service_completed_successfully", "\n".join(services["migrate"])
    )


def test_deploy_doc_names_every_compose_service() -> None:
    doc = DEPLOY_DOC.read_text()
    for name in compose():
        assert f"`{name}`" in doc, name


# --- systemd and Caddy ----------------------------------------------------------------


def unit() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_starts_a_lumigram_subcommand() -> None:
    (exec_start,) = unit()["ExecStart"]
    program, *argv = shlex.split(exec_start)
    assert program == "/opt/lumigram/.venv/bin/lumigram"
    assert argv == ["run"]
    assert_lumigram_command(argv, "deploy/lumigram.service ExecStart")


def test_unit_does_not_restart_after_a_configuration_error() -> None:
    settings = unit()
    assert settings["Restart"] == ["on-failure"]
    assert settings["RestartPreventExitStatus"] == [str(EXIT_CONFIG)]
    assert settings["User"] == ["lumigram"]
    assert settings["EnvironmentFile"] == ["/opt/lumigram/.env"]
    assert settings["WorkingDirectory"] == ["/opt/lumigram"]


def test_unit_may_write_where_the_defaults_put_the_data() -> None:
    settings = unit()
    assert settings["ProtectSystem"] == ["strict"]
    assert settings["NoNewPrivileges"] == ["yes"]
    (writable,) = settings["ReadWritePaths"]
    base = Path(settings["WorkingDirectory"][0])
    defaults = Settings.model_construct()  # the defaults, relative to WorkingDirectory
    database = defaults.database_url.get_secret_value().split(":///", 1)[1]
    for path in (database, defaults.storage_dir):
        assert (base / path).resolve().is_relative_to(writable), path


def test_caddyfile_routes_the_webhook_and_the_api() -> None:
    text = CADDYFILE.read_text()
    webhook_path = Settings.model_construct(public_base_url="").webhook_url
    assert f"handle {webhook_path} {{" in text
    assert re.search(r"@api path /v1 /v1/\* /callbacks/\* /files/\*", text)
    assert "respond 404" in text


def test_deploy_doc_uses_the_readme_install_command() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- quickstart:run -->\s*```bash\n(.+?)\n```", readme)
    assert match
    install = match[1].split(" && .venv/bin/lumigram ")[0]
    assert install in DEPLOY_DOC.read_text()
