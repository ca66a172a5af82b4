"""
The deployment kit (deploy/): the Kubernetes manifests validate against Kubernetes' own
schemas (kubernetes-validate, offline), the sidecar is locked down and fits the drain,
its config loads, and every query of the Grafana dashboard names a metric that a live
`/metrics` exports after a session with turns.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes_validate
import orjson
import pytest
import yaml

from proxy.settings import load
from tests.conftest import ProxyFactory
from tests.fake_upstream import FakeUpstream

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
K8S = DEPLOY / "kubernetes"
K8S_VERSION = "1.31"
CORE_FILES = ["deployment.yaml", "networkpolicy.yaml"]
COMPONENT = K8S / "components" / "podmonitor"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


@pytest.mark.parametrize("name", CORE_FILES)
def test_the_manifests_validate_against_kubernetes_schemas(name: str) -> None:
    """
    Each manifest is valid for Kubernetes 1.31, strictly (no unknown fields).
    """
    for doc in _docs(name):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _render(*, with_podmonitor: bool) -> list[dict[str, Any]]:
    """What `kubectl kustomize` makes of the kit, for the features it uses: its resources,
    the PodMonitor component when asked, the generated ConfigMap and the `images:` pin.
    (`python tools/deploy_check.py` renders it with the real kubectl.)"""
    (kustomization,) = _docs("kustomization.yaml")
    docs = [d for name in kustomization["resources"] for d in _docs(name)]
    if with_podmonitor:
        (component,) = [
            d for d in yaml.safe_load_all((COMPONENT / "kustomization.yaml").read_text()) if d
        ]
        assert "Component" == component["kind"]
        docs += [
            d
            for name in component["resources"]
            for d in yaml.safe_load_all((COMPONENT / name).read_text())
            if d
        ]
    for generator in kustomization["configMapGenerator"]:
        data = {f: (K8S / f).read_text() for f in generator["files"]}
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            }
        )
    pins = {
        i["name"]: f"{i.get('newName', i['name'])}:{i['newTag']}"
        for i in kustomization.get("images", [])
    }
    for doc in docs:
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            container["image"] = pins.get(container["image"], container["image"])
    return docs


@pytest.mark.parametrize("with_podmonitor", [False, True])
def test_the_rendered_kit_validates_with_and_without_the_podmonitor(with_podmonitor: bool) -> None:
    """
    The kit as `kubectl apply -k` sends it, strictly valid for Kubernetes 1.31; the
    PodMonitor (a CRD, outside Kubernetes' schemas) only with its component, labelled
    for kube-prometheus-stack's default selector.
    """
    docs = _render(with_podmonitor=with_podmonitor)
    for doc in docs:
        if doc["kind"] != "PodMonitor":
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    monitors = [d for d in docs if d["kind"] == "PodMonitor"]

    assert with_podmonitor == bool(monitors)
    assert [] == [d for d in docs if d["kind"] == "Secret"]  # created out of band
    if monitors:
        assert "release" in monitors[0]["metadata"]["labels"]


def test_one_version_one_tag() -> None:
    """
    The image the pod runs is the project's version, as tools/build_image.py tags it.
    """
    version = re.search(
        r'^version = "([^"]+)"', (DEPLOY.parent / "pyproject.toml").read_text(), re.M
    )
    assert version is not None
    (deployment,) = [d for d in _render(with_podmonitor=False) if d["kind"] == "Deployment"]
    (earshot,) = deployment["spec"]["template"]["spec"]["initContainers"]

    assert f"earshot:{version.group(1)}" == earshot["image"]
    spec = importlib.util.spec_from_file_location(
        "build_image", DEPLOY.parent / "tools" / "build_image.py"
    )
    assert spec is not None
    assert spec.loader is not None
    build_image = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_image)
    assert version.group(1) == build_image._version()


def test_the_network_policy_opens_only_the_admin_port_to_labelled_namespaces() -> None:
    """
    The policy adds what earshot needs (its admin port, from namespaces labelled
    `earshot.io/scrape: "true"`) and nothing of the app's: no proxy port, no namespace
    chosen by name.
    """
    (policy,) = _docs("networkpolicy.yaml")
    admin = load(K8S / "earshot.yaml", environ={}).listen.admin_port
    (rule,) = policy["spec"]["ingress"]

    assert [{"protocol": "TCP", "port": admin}] == rule["ports"]
    assert [{"namespaceSelector": {"matchLabels": {"earshot.io/scrape": "true"}}}] == rule["from"]


def test_the_app_container_passes_the_restricted_profile() -> None:
    """
    The example app runs as non-root with no privilege escalation and no capabilities.
    """
    (deployment,) = _docs("deployment.yaml")
    (app,) = deployment["spec"]["template"]["spec"]["containers"]

    assert (True, False, ["ALL"]) == (
        app["securityContext"]["runAsNonRoot"],
        app["securityContext"]["allowPrivilegeEscalation"],
        app["securityContext"]["capabilities"]["drop"],
    )


def test_the_pods_earshot_config_loads() -> None:
    """
    The config the pod mounts is valid, listens where the app and Prometheus reach it.
    """
    settings = load(K8S / "earshot.yaml", environ={})

    assert ("0.0.0.0", 8080, 8081) == (
        settings.listen.host,
        settings.listen.port,
        settings.listen.admin_port,
    )


def test_the_sidecar_is_locked_down_probed_and_drains_in_time() -> None:
    """
    Non-root, read-only root filesystem, no privilege escalation, all capabilities
    dropped; liveness on /healthz, readiness on /readyz; a grace period longer than the
    drain (shutdown.grace_period plus 5 s to close); the app pointed at loopback.
    """
    (deployment,) = _docs("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (earshot,) = pod["initContainers"]
    security = earshot["securityContext"]
    grace = load(K8S / "earshot.yaml", environ={}).shutdown.grace_period

    assert "Always" == earshot["restartPolicy"]  # a native sidecar: outlives the app
    assert (True, True, False, ["ALL"]) == (
        security["runAsNonRoot"],
        security["readOnlyRootFilesystem"],
        security["allowPrivilegeEscalation"],
        security["capabilities"]["drop"],
    )
    assert ("/healthz", "/readyz", "/healthz") == (
        earshot["livenessProbe"]["httpGet"]["path"],
        earshot["readinessProbe"]["httpGet"]["path"],
        earshot["startupProbe"]["httpGet"]["path"],
    )
    # Probes on the admin port: they answer while traffic admission refuses connections.
    admin = load(K8S / "earshot.yaml", environ={}).listen.admin_port
    ports = {p["name"]: p["containerPort"] for p in earshot["ports"]}
    assert {admin} == {
        ports[earshot[probe]["httpGet"]["port"]]
        for probe in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert pod["terminationGracePeriodSeconds"] > grace + 5
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert "ws://127.0.0.1:8080/v1" == env["OPENAI_WEBSOCKET_BASE_URL"]
    assert (
        str(admin)
        == deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
    )


def test_the_podmonitor_scrapes_the_sidecars_port() -> None:
    """
    The PodMonitor (a Prometheus Operator resource, outside Kubernetes' schemas) selects
    the pod and scrapes the port the sidecar names.
    """
    (monitor,) = [d for d in yaml.safe_load_all((COMPONENT / "podmonitor.yaml").read_text()) if d]
    (deployment,) = _docs("deployment.yaml")
    ports = {
        p["name"] for p in deployment["spec"]["template"]["spec"]["initContainers"][0]["ports"]
    }

    assert ("monitoring.coreos.com/v1", "PodMonitor") == (monitor["apiVersion"], monitor["kind"])
    assert (
        deployment["spec"]["selector"]["matchLabels"] == monitor["spec"]["selector"]["matchLabels"]
    )
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= ports


def _event(kind: str, **fields: Any) -> bytes:
    return orjson.dumps({"type": kind, **fields})


async def test_every_dashboard_query_names_a_metric_earshot_exports(
    make_proxy: ProxyFactory, fake: FakeUpstream
) -> None:
    """
    After a session with a turn, a tool call, an interruption and an undecodable frame,
    and a refused handshake, every metric a dashboard query names is on the live `/metrics`.
    """
    fake.scripted = False
    proxy = await make_proxy()
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    await ws.receive(timeout=5)
    await ws.send_str('{"type":"response.create"}')
    await fake.next_frame()
    usage = {"input_token_details": {"text_tokens": 5}, "output_token_details": {"audio_tokens": 5}}
    for frame in (
        _event("response.created", response={"id": "r"}),
        _event("response.output_audio.delta", response_id="r", item_id="i", delta="AAAA"),
        _event("response.function_call_arguments.done", response_id="r", call_id="c", name="f"),
        _event("response.done", response={"id": "r", "status": "completed", "usage": usage}),
        b"not json",
    ):
        await fake.send(frame)
    for _ in range(5):
        await ws.receive(timeout=5)
    item = {"type": "function_call_output", "call_id": "c", "output": "{}"}
    await ws.send_str(orjson.dumps({"type": "conversation.item.create", "item": item}).decode())
    await ws.send_str('{"type":"conversation.item.truncate","item_id":"i","audio_end_ms":1}')
    await fake.next_frame()
    await fake.next_frame()
    await ws.close()
    fake.refuse = (429, b'{"error":{"message":"slow down"}}')  # and an upstream failure
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    await asyncio.sleep(0.05)
    exported = set(
        re.findall(r"(?m)^(earshot_\w+)[{ ]", await (await proxy.get("/metrics")).text())
    )
    dashboard = json.loads((DEPLOY / "grafana" / "earshot.json").read_text())

    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bearshot_\w+", target["expr"])
    }

    assert len(dashboard["panels"]) >= 12
    assert set() == queried - exported


def test_every_dashboard_query_follows_the_namespace_job_and_pod_filters() -> None:
    """
    Each query is filtered by the dashboard's namespace, job and pod variables, and open
    sessions are one line, summed over replicas.
    """
    board = json.loads((DEPLOY / "grafana" / "earshot.json").read_text())
    names = {v["name"] for v in board["templating"]["list"]}
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    unfiltered = [
        e for e in exprs for m in re.finditer(r"earshot_\w+(\{[^}]*\})?", e)
        if not m.group(1) or not all("$" + v in m.group(1) for v in ("namespace", "job", "pod"))
    ]  # fmt: skip

    assert {"datasource", "namespace", "job", "pod"} <= names
    assert [] == unfiltered
    assert any(e.startswith("sum(earshot_sessions_active{") for e in exprs)
