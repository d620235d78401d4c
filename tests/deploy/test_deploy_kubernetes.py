"""The Kubernetes manifests, checked on their rendered form without a cluster.

Every kustomize target (the base and each overlay) must build, every object
must validate against the Kubernetes JSON schemas of a pinned version in
strict mode (unknown fields are errors), every variable of the settings model
must reach the api and worker containers from the ConfigMap or the Secret,
and the pods must meet the security, probe and scaling properties the
deployment promises.
"""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest

from engine.settings import ENV_VARS, Settings

REPO = Path(__file__).resolve().parents[2]
# The oldest minor version EKS and k3s both still support; kubernetes-validate
# ships its schemas, so nothing is fetched.
KUBERNETES_VERSION = "1.31"
SECRET_NAME = "hearth-secrets"
HEARTH_COMPONENTS = ("api", "worker")
SECRET_SETTINGS = {
    field.alias for field in Settings.model_fields.values() if field.repr is False
} | {"DATABASE_URL", "REDIS_URL"}  # URLs carry credentials


def pod_templates(rendered) -> list[tuple[str, dict]]:
    """(``Kind/name``, pod spec) of every workload in a render."""
    found = []
    for obj in rendered.objects:
        if obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            found.append((f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]))
        elif obj["kind"] == "CronJob":
            template = obj["spec"]["jobTemplate"]["spec"]["template"]
            found.append((f"CronJob/{obj['metadata']['name']}", template))
    return found


def containers_of(pod_spec: dict) -> list[dict]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def selector_matches(selector: dict, labels: dict) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def workload(rendered, component: str) -> dict:
    """The pod template of the Deployment or Job with this component label."""
    for _, template in pod_templates(rendered):
        if template["metadata"]["labels"].get("app.kubernetes.io/component") == component:
            return template
    raise AssertionError(f"{rendered.target}: no workload for component {component}")


def test_kustomize_renders_objects(rendered):
    kinds = {obj["kind"] for obj in rendered.objects}
    expected = {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Job",
    }
    assert expected <= kinds, f"{rendered.target} lacks {sorted(expected - kinds)}"
    namespaced = [obj for obj in rendered.objects if obj["kind"] != "Namespace"]
    assert {obj["metadata"].get("namespace") for obj in namespaced} == {"hearth"}


def test_objects_validate_against_pinned_kubernetes_schemas(rendered):
    failures = []
    for obj in rendered.objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            failures.append(f"{where}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            failures.append(f"{where}: {error.message}")
    assert not failures, f"{rendered.target}:\n" + "\n".join(failures)


def test_strict_validation_rejects_an_unknown_field():
    """Guards the check above: strict mode must catch a misspelt field."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "replica": 2,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def provided_env(rendered, container: dict) -> dict[str, str]:
    """Each variable a container gets, with where it comes from.

    ConfigMap keys count only if the rendered ConfigMap has them; Secret keys
    only if they name the operator's Secret, key by the variable's own name
    and are not optional.
    """
    configmaps = {
        cm["metadata"]["name"]: cm.get("data", {}) for cm in rendered.of_kind("ConfigMap")
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            assert name in configmaps, f"envFrom names ConfigMap {name}, which is not rendered"
            env.update(dict.fromkeys(configmaps[name], "configmap"))
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = "value"
            continue
        ref = variable.get("valueFrom", {})
        if "configMapKeyRef" in ref:
            key_ref = ref["configMapKeyRef"]
            if key_ref["key"] in configmaps.get(key_ref["name"], {}):
                env[variable["name"]] = "configmap"
        elif "secretKeyRef" in ref:
            key_ref = ref["secretKeyRef"]
            if (
                key_ref["name"] == SECRET_NAME
                and key_ref["key"] == variable["name"]
                and not key_ref.get("optional", False)
            ):
                env[variable["name"]] = "secret"
    return env


@pytest.mark.parametrize("component", [*HEARTH_COMPONENTS, "migrate"])
def test_every_setting_reaches_the_hearth_containers(rendered, component):
    template = workload(rendered, component)
    (container,) = template["spec"]["containers"]
    env = provided_env(rendered, container)
    missing = [name for name in ENV_VARS if name not in env]
    assert not missing, f"{rendered.target} {component} lacks {missing}"
    in_config = sorted(name for name in SECRET_SETTINGS if env[name] != "secret")
    assert not in_config, f"{rendered.target} {component}: secrets outside the Secret: {in_config}"


def test_secret_template_lists_exactly_the_referenced_keys(rendered):
    example = REPO / "k8s" / "secrets.env.example"
    lines = [line.strip() for line in example.read_text().splitlines()]
    keys = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    values = [line.split("=", 1)[1] for line in lines if line and not line.startswith("#")]
    assert not any(values), "secrets.env.example must carry no values"
    referenced = set()
    for _, template in pod_templates(rendered):
        for container in containers_of(template["spec"]):
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] == SECRET_NAME:
                    referenced.add(ref["key"])
    assert referenced == keys


def test_no_secret_values_are_rendered(rendered):
    secrets = rendered.of_kind("Secret")
    assert not secrets, f"{rendered.target} renders Secrets: the operator creates them"
    for configmap in rendered.of_kind("ConfigMap"):
        leaked = SECRET_SETTINGS & set(configmap.get("data", {}))
        assert not leaked, f"ConfigMap {configmap['metadata']['name']} holds {sorted(leaked)}"


def test_pods_run_restricted(rendered):
    problems = []
    for where, template in pod_templates(rendered):
        spec = template["spec"]
        pod_context = spec.get("securityContext", {})
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: service account token mounted")
        if spec.get("serviceAccountName") != "hearth":
            problems.append(f"{where}: not on the hearth service account")
        tmp_volumes = {volume["name"] for volume in spec.get("volumes", []) if "emptyDir" in volume}
        for container in containers_of(spec):
            name = f"{where}/{container['name']}"
            context = container.get("securityContext", {})

            def effective(key, context=context, pod_context=pod_context):
                return context.get(key, pod_context.get(key))

            if effective("runAsNonRoot") is not True:
                problems.append(f"{name}: runAsNonRoot not set")
            if effective("runAsUser") == 0:
                problems.append(f"{name}: runs as uid 0")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{name}: root filesystem writable")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: privilege escalation allowed")
            if context.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{name}: capabilities not dropped")
            if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append(f"{name}: seccomp profile not RuntimeDefault")
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources.get(bound, {})):
                    problems.append(f"{name}: {bound} for cpu and memory not set")
            tmp_mounts = [
                mount
                for mount in container.get("volumeMounts", [])
                if mount["mountPath"] == "/tmp" and mount["name"] in tmp_volumes
            ]
            if not tmp_mounts:
                problems.append(f"{name}: no emptyDir on /tmp")
    for account in rendered.of_kind("ServiceAccount"):
        if account.get("automountServiceAccountToken") is not False:
            problems.append(f"ServiceAccount/{account['metadata']['name']}: token automounted")
    assert not rendered.of_kind("RoleBinding") and not rendered.of_kind("ClusterRoleBinding")
    assert not problems, f"{rendered.target}:\n" + "\n".join(problems)


def test_api_probes_health_and_ready(rendered):
    (container,) = workload(rendered, "api")["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        http = container[probe]["httpGet"]
        assert http["path"] == path, f"{probe} checks {http['path']}"
        assert ports.get(http["port"], http["port"]) == 8000


def test_repos_volume_is_read_write_many_and_shared(rendered):
    claim = rendered.get("PersistentVolumeClaim", "hearth-repos")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    expected_class = {"overlays/proxmox": "longhorn", "overlays/aws": "efs-sc"}
    if rendered.target in expected_class:
        assert claim["spec"].get("storageClassName") == expected_class[rendered.target]
    (config,) = rendered.of_kind("ConfigMap")
    repos_dir = config["data"]["REPOS_DIR"]
    for component in HEARTH_COMPONENTS:
        spec = workload(rendered, component)["spec"]
        claims = {
            volume["name"]
            for volume in spec["volumes"]
            if volume.get("persistentVolumeClaim", {}).get("claimName") == "hearth-repos"
        }
        (container,) = spec["containers"]
        mounts = {
            mount["mountPath"] for mount in container["volumeMounts"] if mount["name"] in claims
        }
        assert mounts == {repos_dir}, f"{component} mounts the repos at {mounts}"


@pytest.mark.parametrize("component", HEARTH_COMPONENTS)
def test_autoscaling_and_disruption_budgets_cover(rendered, component):
    deployment = rendered.get("Deployment", component)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    hpa = rendered.get("HorizontalPodAutoscaler", component)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": component,
    }
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    low, high = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
    assert low <= deployment["spec"]["replicas"] <= high
    resources = {metric["resource"]["name"] for metric in hpa["spec"]["metrics"]}
    assert "cpu" in resources
    budgets = [
        pdb
        for pdb in rendered.of_kind("PodDisruptionBudget")
        if selector_matches(pdb["spec"]["selector"], pod_labels)
    ]
    assert budgets, f"no PodDisruptionBudget selects {component}"
    for pdb in budgets:
        if "minAvailable" in pdb["spec"]:
            assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], (
                "minAvailable must leave room to drain a node at minimum scale"
            )


def test_scale_follows_the_seed_table(rendered):
    """API replica bounds per deployment size (seed: 3-5 at 100-1k, 10-20 at 1k-10k)."""
    bounds = {"overlays/proxmox": (3, 5), "overlays/aws": (10, 20)}
    if rendered.target not in bounds:
        return
    hpa = rendered.get("HorizontalPodAutoscaler", "api")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == bounds[rendered.target]


def component_labels(rendered) -> dict[str, dict]:
    labels = [template["metadata"]["labels"] for _, template in pod_templates(rendered)]
    return {label["app.kubernetes.io/component"]: label for label in labels}


def selected_components(rendered, policy: dict) -> set[str]:
    return {
        component
        for component, labels in component_labels(rendered).items()
        if selector_matches(policy["spec"]["podSelector"], labels)
    }


def allows_port(rule: dict, port: int) -> bool:
    """Whether a rule lets ``port`` through (a rule without ports allows all)."""
    ports = rule.get("ports")
    return not ports or any(entry.get("port") == port for entry in ports)


def test_network_policies_default_deny(rendered):
    denies = [
        policy
        for policy in rendered.of_kind("NetworkPolicy")
        if policy["spec"]["podSelector"] == {}
        and set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not policy["spec"].get("ingress")
        and not policy["spec"].get("egress")
    ]
    assert denies, f"{rendered.target} has no default-deny NetworkPolicy"


@pytest.mark.parametrize("port", [5432, 6379], ids=["postgresql", "redis"])
def test_datastores_reachable_only_from_api_and_worker(rendered, port):
    allowed = {*HEARTH_COMPONENTS, "migrate"}
    reaching = set()
    for policy in rendered.of_kind("NetworkPolicy"):
        if any(allows_port(rule, port) for rule in policy["spec"].get("egress", [])):
            reaching |= selected_components(rendered, policy)
    assert reaching, f"nothing may reach port {port}"
    assert reaching <= allowed, f"{sorted(reaching - allowed)} may reach port {port}"
    assert set(HEARTH_COMPONENTS) <= reaching


def test_only_the_ingress_controller_reaches_the_api(rendered):
    sources = []
    for policy in rendered.of_kind("NetworkPolicy"):
        if "api" not in selected_components(rendered, policy):
            continue
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']} admits every source"
            sources.extend(rule["from"])
    assert sources, "nothing may reach the api"
    for source in sources:
        if "ipBlock" in source:
            assert rendered.target == "overlays/aws", "an ipBlock source is for the ALB only"
            continue
        assert "podSelector" not in source, f"pods may reach the api: {source}"
        names = source["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        assert names in {"ingress-nginx", "kube-system"}


def test_ingress_terminates_tls_for_the_api(rendered):
    (ingress,) = rendered.of_kind("Ingress")
    tls_hosts = {host for entry in ingress["spec"]["tls"] for host in entry["hosts"]}
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in tls_hosts
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = rendered.get("Service", backend["name"])
            assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}
            api_labels = component_labels(rendered)["api"]
            assert selector_matches({"matchLabels": service["spec"]["selector"]}, api_labels)
    expected_class = {"overlays/proxmox": "traefik", "overlays/aws": "alb"}
    if rendered.target in expected_class:
        assert ingress["spec"]["ingressClassName"] == expected_class[rendered.target]


def test_migration_job_runs_migrate(rendered):
    (job,) = rendered.of_kind("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    api_image = workload(rendered, "api")["spec"]["containers"][0]["image"]
    assert container["image"] == api_image


def test_aws_ollama_runs_on_gpus(rendered):
    ollama = rendered.get("Deployment", "ollama")["spec"]["template"]["spec"]
    (container,) = ollama["containers"]
    gpus = container["resources"]["limits"].get("nvidia.com/gpu")
    if rendered.target != "overlays/aws":
        assert gpus is None, f"{rendered.target} asks for GPUs"
        return
    assert int(gpus) >= 1
    assert ollama["nodeSelector"]
    assert any(t["key"] == "nvidia.com/gpu" for t in ollama["tolerations"])
