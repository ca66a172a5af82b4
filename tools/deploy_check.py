"""
Render the Kubernetes kit with the real Kustomize (`kubectl kustomize`), with and without
the PodMonitor component, and validate every rendered object strictly against Kubernetes'
schemas (kubernetes-validate, offline). Not part of the test run: kubectl is not a
Python package (the tests render the kit's few Kustomize features themselves).

    python tools/deploy_check.py            # needs kubectl on PATH
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate
import yaml

KIT = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
VERSION = "1.31"


def render(with_podmonitor: bool) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        overlay = Path(tmp)
        # Kustomize takes paths relative to the kustomization: link the kit in.
        (overlay / "kit").symlink_to(KIT)
        lines = ["resources: [kit]"]
        if with_podmonitor:
            lines.append("components: [kit/components/podmonitor]")
        (overlay / "kustomization.yaml").write_text("\n".join(lines) + "\n")
        out = subprocess.run(
            ["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(overlay)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def main() -> int:
    if shutil.which("kubectl") is None:
        print("needs kubectl (with its built-in kustomize)", file=sys.stderr)
        return 2
    failed = 0
    for with_podmonitor in (False, True):
        docs = render(with_podmonitor)
        label = "with the PodMonitor component" if with_podmonitor else "without components"
        print(f"{label}: {', '.join(sorted(str(d['kind']) for d in docs))}")
        for doc in docs:
            kind, name = doc["kind"], doc["metadata"]["name"]  # type: ignore[index]
            if kind == "PodMonitor":
                print(f"  skip {kind}/{name} (a CRD: not in Kubernetes' schemas)")
                continue
            try:
                kubernetes_validate.validate(doc, VERSION, strict=True)
                print(f"  ok   {kind}/{name}")
            except kubernetes_validate.ValidationError as exc:
                failed += 1
                print(f"  FAIL {kind}/{name}: {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
