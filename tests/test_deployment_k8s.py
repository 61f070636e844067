"""deploy/k8s/ against the Kubernetes API schemas and the settings classes (no cluster here).

The base's files are plain manifests, validated one by one; the overlays are rendered with
`kubectl kustomize` (kubectl ships with this project's machine image).
"""
import importlib.util
import os
import shutil
import subprocess
from importlib import import_module
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from sqlalchemy.engine import make_url

from marketplan.processes import GATEWAY, PROCESSES, SERVICES
from shared import migrations

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy/k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays/production"
# The oldest Kubernetes release the manifests are promised to work on, and the newest whose
# schemas the validator ships.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
SECRET = "marketplan-secrets"
# Stand-ins for the Secret's values, so the settings classes can be built from the manifests.
FAKE_SECRETS = {
    "internal-secret": "s" * 40,
    "admin-key": "a" * 30,
    **{f"{s.name}-database-url": f"postgresql+psycopg://marketplan:pw@postgres:5432/{s.name}"
       for s in SERVICES},
}
SETTINGS_PREFIXES = ("MARKETPLAN_", *(p.env_prefix for p in PROCESSES.values()))


def documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomize(path: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    result = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return documents(result.stdout)


@pytest.fixture(scope="module", params=["base", "production"])
def rendered(request) -> list[dict]:
    return kustomize(BASE if request.param == "base" else PRODUCTION)


def find(manifests: list[dict], kind: str, name: str) -> dict:
    matches = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_spec(manifest: dict) -> dict:
    return manifest["spec"]["template"]["spec"]


def containers(spec: dict) -> list[dict]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def container_env(manifests: list[dict], container: dict) -> dict[str, str]:
    """The environment a container gets, with the Secret's values faked."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(find(manifests, "ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            assert ref["name"] == SECRET
            env[variable["name"]] = FAKE_SECRETS[ref["key"]]
    return env


def secret_refs(container: dict) -> dict[str, str]:
    """Each variable set from the Secret, with the Secret key it names."""
    return {v["name"]: v["valueFrom"]["secretKeyRef"]["key"] for v in container.get("env", [])
            if "secretKeyRef" in v.get("valueFrom", {})}


def settings_class(process_name: str) -> type:
    module, name = PROCESSES[process_name].settings_class.split(":")
    return getattr(import_module(module), name)


def known_variables(settings_class: type) -> set[str]:
    """The environment variables a settings class reads."""
    prefix = settings_class.model_config.get("env_prefix", "")
    return {info.validation_alias if isinstance(info.validation_alias, str)
            else prefix + name.upper() for name, info in settings_class.model_fields.items()}


def set_environment(env: dict[str, str], monkeypatch) -> None:
    """Make `env` the only settings in the environment (none of the test run's own)."""
    for key in list(os.environ):
        if key.startswith(SETTINGS_PREFIXES):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def build_settings(process_name: str, env: dict[str, str], monkeypatch):
    set_environment(env, monkeypatch)
    return PROCESSES[process_name].settings()


def only_works_locally(default: object) -> bool:
    """A default that serves `marketplan up` on one machine and nothing in a cluster."""
    return isinstance(default, str) and (
        "127.0.0.1" in default or default.startswith(("sqlite", "var/")))


def required_in_a_cluster(settings_class: type) -> set[str]:
    return {"environment", "internal_secret"} | {
        name for name, info in settings_class.model_fields.items()
        if info.is_required() or only_works_locally(info.default)}


def check_settings(process_name: str, env: dict[str, str], monkeypatch, *,
                   required: set[str] | None = None):
    """Build a process's settings from `env` after checking that each variable is one they
    read; `required` (default: `required_in_a_cluster`) must all come from `env`."""
    cls = settings_class(process_name)
    unknown = set(env) - known_variables(cls)
    assert not unknown, f"{process_name} does not read {sorted(unknown)}"
    settings = build_settings(process_name, env, monkeypatch)
    missing = (required_in_a_cluster(cls) if required is None else required) - \
        settings.model_fields_set
    assert not missing, f"{process_name} needs {sorted(missing)} set"
    return settings


def test_kustomizations_list_every_manifest():
    base = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert set(base["resources"]) == {p.name for p in BASE.glob("*.yaml")} - {
        "kustomization.yaml"}
    production = yaml.safe_load((PRODUCTION / "kustomization.yaml").read_text())
    listed = {r for r in production["resources"] if r.endswith(".yaml")} | {
        p["path"] for p in production["patches"]}
    assert listed == {p.name for p in PRODUCTION.glob("*.yaml")} - {"kustomization.yaml"}
    assert "../../base" in production["resources"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", sorted(p.name for p in BASE.glob("*.yaml")
                                        if p.name != "kustomization.yaml"))
def test_each_base_manifest_matches_the_kubernetes_schemas(path, version):
    manifests = documents((BASE / path).read_text())
    assert manifests
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_each_rendered_manifest_matches_the_kubernetes_schemas(rendered, version):
    for manifest in rendered:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_the_validator_rejects_a_misspelt_field():
    deployment = find(documents((BASE / "calendar.yaml").read_text()), "Deployment", "calendar")
    pod_spec(deployment)["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_the_production_overlay_sets_namespace_and_released_image():
    manifests = kustomize(PRODUCTION)
    namespace = find(manifests, "Namespace", "marketplan")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for manifest in manifests:
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"]["namespace"] == "marketplan"
        if manifest["kind"] in ("Deployment", "Job"):
            for container in containers(pod_spec(manifest)):
                assert container["image"].startswith("registry.example.com/marketplan:")
    for name in ("budget", "planner"):
        assert find(manifests, "HorizontalPodAutoscaler", name)["spec"]["minReplicas"] >= 3


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_each_process_is_served_with_its_settings(rendered, name, monkeypatch):
    spec = pod_spec(find(rendered, "Deployment", name))
    main = next(c for c in spec["containers"] if c["name"] == name)
    assert main["command"] == ["marketplan", "serve", name]
    settings = check_settings(name, container_env(rendered, main), monkeypatch)
    assert settings.environment == "production" and settings.host == "0.0.0.0"
    assert main["ports"] == [{"name": "http", "containerPort": settings.port}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # The gateway's /readyz fails with any one service (see gateway.yaml), so it is not
    # the gateway's readiness.
    readiness = "/healthz" if name == GATEWAY.name else "/readyz"
    assert main["readinessProbe"]["httpGet"] == {"path": readiness, "port": "http"}
    assert secret_refs(main)["MARKETPLAN_INTERNAL_SECRET"] == "internal-secret"


@pytest.mark.parametrize("service", [s.name for s in SERVICES])
def test_each_service_waits_for_the_migration_of_its_own_database(rendered, service,
                                                                  monkeypatch):
    spec = pod_spec(find(rendered, "Deployment", service))
    wait, main = spec["initContainers"][0], spec["containers"][0]
    assert wait["command"] == ["python", "/app/deploy/wait_for_schema.py", service]
    assert (wait["envFrom"], wait["env"]) == (main["envFrom"], main["env"])
    assert secret_refs(main)[f"{service.upper()}_DATABASE_URL"] == f"{service}-database-url"
    settings = build_settings(service, container_env(rendered, main), monkeypatch)
    url = make_url(settings.database_url)
    assert (url.drivername, url.database) == ("postgresql+psycopg", service)

    job = pod_spec(find(rendered, "Job", "marketplan-migrate"))["containers"][0]
    assert job["command"] == ["marketplan", "migrate"]
    assert secret_refs(job)[f"{service.upper()}_DATABASE_URL"] == f"{service}-database-url"
    # The Job builds every service's settings from its part of the Job's environment.
    known = known_variables(settings_class(service))
    job_env = {k: v for k, v in container_env(rendered, job).items() if k in known}
    check_settings(service, job_env, monkeypatch,
                   required={"environment", "internal_secret", "database_url"})


def test_the_migration_job_sets_only_what_the_services_read(rendered):
    job = pod_spec(find(rendered, "Job", "marketplan-migrate"))["containers"][0]
    read = set().union(*(known_variables(settings_class(s.name)) for s in SERVICES))
    assert set(container_env(rendered, job)) <= read


def test_the_gateway_seeds_the_admin_key_from_the_secret(rendered, monkeypatch):
    spec = pod_spec(find(rendered, "Deployment", GATEWAY.name))
    seed, main = spec["initContainers"][0], spec["containers"][0]
    assert secret_refs(seed) == {"MARKETPLAN_ADMIN_KEY": "admin-key"}
    script = seed["command"][-1]
    assert '--key "$MARKETPLAN_ADMIN_KEY"' in script and script.endswith(">/dev/null")
    env = container_env(rendered, seed)
    del env["MARKETPLAN_ADMIN_KEY"]  # read by the shell line, not by the settings
    seeded = check_settings(GATEWAY.name, env, monkeypatch, required={"keys_file"})
    served = build_settings(GATEWAY.name, container_env(rendered, main), monkeypatch)
    assert seeded.keys_file == served.keys_file
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    assert seed["volumeMounts"] == main["volumeMounts"]
    keys_volume = next(v for v in spec["volumes"] if v["name"] == mounts[
        str(Path(served.keys_file).parent)])
    claim = find(rendered, "PersistentVolumeClaim", keys_volume["persistentVolumeClaim"][
        "claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_gateway_reaches_each_service_through_its_kubernetes_service(rendered,
                                                                         monkeypatch):
    gateway_pod = pod_spec(find(rendered, "Deployment", GATEWAY.name))["containers"][0]
    gateway = build_settings(GATEWAY.name, container_env(rendered, gateway_pod), monkeypatch)
    for process in PROCESSES.values():
        deployment = find(rendered, "Deployment", process.name)
        service = find(rendered, "Service", process.name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
        main = pod_spec(deployment)["containers"][0]
        settings = build_settings(process.name, container_env(rendered, main), monkeypatch)
        assert service["spec"]["ports"] == [
            {"name": "http", "port": settings.port, "targetPort": "http"}]
        if process is not GATEWAY:
            assert gateway.upstream_urls()[process.name] == \
                f"http://{process.name}:{settings.port}"
    for consumer in ("budget", "planner"):
        main = pod_spec(find(rendered, "Deployment", consumer))["containers"][0]
        settings = build_settings(consumer, container_env(rendered, main), monkeypatch)
        assert settings.calendar_url == gateway.upstream_urls()["calendar"]


def test_secrets_are_referenced_never_written(rendered):
    assert not [m for m in rendered if m["kind"] == "Secret"]
    referenced = set()
    for manifest in rendered:
        if manifest["kind"] == "ConfigMap":
            assert not [k for k in manifest["data"] if "SECRET" in k or k.endswith(
                ("_KEY", "_DATABASE_URL"))], manifest["metadata"]["name"]
        if manifest["kind"] in ("Deployment", "Job"):
            for container in containers(pod_spec(manifest)):
                for variable in container.get("env", []):
                    assert "value" not in variable, variable["name"]
                referenced |= set(secret_refs(container).values())
    assert referenced == set(FAKE_SECRETS)
    readme = (K8S / "README.md").read_text()
    for key in FAKE_SECRETS:
        assert f"--from-literal={key}=" in readme


def test_every_pod_runs_unprivileged_with_resources(rendered):
    for manifest in rendered:
        if manifest["kind"] not in ("Deployment", "Job"):
            continue
        spec = pod_spec(manifest)
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"name": "tmp", "emptyDir": {}} in spec["volumes"]
        for container in containers(spec):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
            assert set(container["resources"]) == {"requests", "limits"}


def cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_solver_services_autoscale_with_more_cpu(rendered):
    def main_cpu(name: str) -> float:
        main = pod_spec(find(rendered, "Deployment", name))["containers"][0]
        return cpu(main["resources"]["requests"]["cpu"])

    for solver in ("budget", "planner"):
        autoscaler = find(rendered, "HorizontalPodAutoscaler", solver)
        assert autoscaler["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1", "kind": "Deployment", "name": solver}
        assert 2 <= autoscaler["spec"]["minReplicas"] < autoscaler["spec"]["maxReplicas"]
        # A replica count in the Deployment would fight the autoscaler on every apply.
        assert "replicas" not in find(rendered, "Deployment", solver)["spec"]
        assert main_cpu(solver) > max(main_cpu("calendar"), main_cpu(GATEWAY.name))
    assert {m["metadata"]["name"] for m in rendered
            if m["kind"] == "HorizontalPodAutoscaler"} == {"budget", "planner"}


def test_each_process_has_a_disruption_budget_for_its_pods(rendered):
    for name in PROCESSES:
        budget = find(rendered, "PodDisruptionBudget", name)
        labels = find(rendered, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert budget["spec"]["maxUnavailable"] == 1


def load_wait_for_schema():
    spec = importlib.util.spec_from_file_location("wait_for_schema",
                                                  ROOT / "deploy/wait_for_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wait_for_schema_returns_once_the_service_is_migrated(tmp_path, monkeypatch, capsys):
    wait = load_wait_for_schema()
    url = f"sqlite:///{tmp_path / 'budget.db'}"
    set_environment({"BUDGET_DATABASE_URL": url}, monkeypatch)
    assert wait.main(["budget", "--timeout", "0"]) == 1
    assert "did the migration Job" in capsys.readouterr().err
    migrations.upgrade(PROCESSES["budget"].migrations, url)
    assert wait.main(["budget", "--timeout", "0"]) == 0
    assert capsys.readouterr().out == "budget: schema is current\n"
