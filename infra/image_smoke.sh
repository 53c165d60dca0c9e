#!/usr/bin/env bash
# Build the real Dockerfile with Podman on a machine without registry access, then invoke the image the
# way `sam local invoke` does (AWS's emulator mounted at /var/rapid), read-only root file system.
#
#   infra/image_smoke.sh            (make image-smoke; needs root, podman, runc, mmdebstrap; ~15 min)
#
# What differs from a real build, and why:
# - Base: python:3.11-slim cannot be pulled here, so a stand-in is made with mmdebstrap (Debian bookworm
#   + its python3.11) and passed as PYTHON_IMAGE. Where PyPI is reached through a TLS-intercepting proxy,
#   the host's CA bundle is added to the stand-in (the real slim base would not need it).
# - Torch: PyTorch's CPU index is unreachable; TORCH_INDEX_URL points at a local index of this machine's
#   torch 2.14.1 (a CUDA build, so REQUIRE_CPU_TORCH=0 and the image is ~4 GB larger than the real one).
# - Weights: the random test model from the context (MODEL_SOURCE) with its own sha256.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VENV=${VENV:-$REPO/.venv}
WORK=${SMOKE_DIR:-/tmp/pointrend-image-smoke}
TAG=${SMOKE_TAG:-localhost/pointrend-lambda:smoke}
BASE=localhost/python:3.11-slim-standin
TEST_MODEL=${TEST_MODEL:-.cache/models/test_model.pkl}
INDEX_PORT=${INDEX_PORT:-18765}
mkdir -p "$WORK"
export CONTAINERS_CONF=$WORK/containers.conf
cat > "$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
EOF

for tool in podman runc mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "needs $tool: apt-get install podman runc mmdebstrap" >&2; exit 2; }
done
test -f "$TEST_MODEL" || timeout 600 "$VENV/bin/python" -m handler make-test-model "$TEST_MODEL"

# 1. The stand-in base image.
if ! podman image exists "$BASE"; then
  test -f "$WORK/base.tar" || timeout 1200 mmdebstrap --variant=minbase \
    --include=python3.11,python3.11-venv,python3-pip,python-is-python3,ca-certificates \
    bookworm "$WORK/base.tar"  # no mirror argument: mmdebstrap takes this machine's own apt sources
  timeout 600 podman import "$WORK/base.tar" "$BASE-raw"
  mkdir -p "$WORK/basectx"
  cp /etc/ssl/certs/ca-certificates.crt "$WORK/basectx/"
  printf '%s\n' "FROM $BASE-raw" \
    'COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt' \
    "RUN printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' > /etc/pip.conf" \
    'CMD ["python3"]' > "$WORK/basectx/Containerfile"
  timeout 600 podman build -q -t "$BASE" "$WORK/basectx"
fi

# 2. A local package index with this machine's torch/torchvision and their dependencies.
if [ ! -d "$WORK/index/simple/torch" ]; then
  timeout 900 "$VENV/bin/pip" install -q --dry-run --ignore-installed --report "$WORK/report.json" \
    torch==2.14.1 torchvision==0.29.1
  timeout 1800 "$VENV/bin/python" - "$WORK" <<'EOF'
import json, os, re, sys, urllib.request
work = sys.argv[1]
root = f"{work}/index"
os.makedirs(f"{root}/files", exist_ok=True)
projects = {}
for item in json.load(open(f"{work}/report.json"))["install"]:
    url = item["download_info"]["url"]
    name = re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower()
    filename = url.rsplit("/", 1)[1].split("#")[0]
    dest = f"{root}/files/{filename}"
    if not os.path.exists(dest):
        if url.startswith("file://"):
            os.symlink(url[len("file://"):], dest)
        else:
            urllib.request.urlretrieve(url, dest)
    projects.setdefault(name, []).append(filename)
for name, files in projects.items():
    os.makedirs(f"{root}/simple/{name}", exist_ok=True)
    links = "".join(f'<a href="../../files/{f}">{f}</a>\n' for f in files)
    open(f"{root}/simple/{name}/index.html", "w").write(f"<html><body>{links}</body></html>")
EOF
fi
timeout 3600 python3 -m http.server "$INDEX_PORT" --bind 127.0.0.1 -d "$WORK/index" >"$WORK/index.log" 2>&1 &
INDEX_PID=$!
MOTO_PID=
CONTAINER=
cleanup() {
  [ -n "$CONTAINER" ] && timeout 60 podman rm -f "$CONTAINER" >/dev/null 2>&1 || true
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
  kill "$INDEX_PID" 2>/dev/null || true
}
trap cleanup EXIT

# 3. The real Dockerfile.
SHA=$(sha256sum "$TEST_MODEL" | cut -d' ' -f1)
start=$(date +%s)
timeout 3000 podman build --network=host \
  --build-arg PYTHON_IMAGE="$BASE" \
  --build-arg TORCH_INDEX_URL="http://127.0.0.1:$INDEX_PORT/simple" \
  --build-arg REQUIRE_CPU_TORCH=0 \
  --build-arg MODEL_SOURCE="$TEST_MODEL" \
  --build-arg MODEL_SHA256="$SHA" \
  -t "$TAG" -f Dockerfile .
echo "build: $(( $(date +%s) - start )) s; image: $(podman image inspect "$TAG" --format '{{.Size}}') bytes"

# 4. Run it as `sam local invoke` does: the emulator mounted at /var/rapid, the image's ENTRYPOINT + CMD
#    after it; read-only root file system with a /tmp like Lambda's; S3 through moto server on the host.
RIE=$("$VENV/bin/python" -c 'from infra.rie import find_rie; print(find_rie())')
read -r EMU_PORT RUNTIME_PORT MOTO_PORT < <("$VENV/bin/python" -c 'from infra.rie import free_ports; print(*free_ports(3))')
timeout 1800 "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
CMD_JSON=$(podman image inspect "$TAG" --format '{{json .Config.Entrypoint}} {{json .Config.Cmd}}')
echo "image ENTRYPOINT CMD: $CMD_JSON"
CONTAINER=$(timeout 120 podman run -d --network=host --read-only --tmpfs /tmp:rw,size=512m \
  -v "$RIE:/var/rapid/aws-lambda-rie:ro" --entrypoint /var/rapid/aws-lambda-rie \
  -e AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" -e AWS_ACCESS_KEY_ID=test -e AWS_SECRET_ACCESS_KEY=test \
  -e AWS_REGION=us-east-1 -e AWS_DEFAULT_REGION=us-east-1 -e SEG_CONFIDENCE=0.0 -e SEG_DETECTION_SPEED=rapid \
  -e AWS_LAMBDA_FUNCTION_TIMEOUT=29 \
  "$TAG" --runtime-interface-emulator-address "127.0.0.1:$EMU_PORT" --runtime-api-address "127.0.0.1:$RUNTIME_PORT" \
  python -m awslambdaric handler.lambda_function.lambda_handler)

timeout 600 "$VENV/bin/python" - "$EMU_PORT" "$MOTO_PORT" <<'EOF'
import json, sys, time, urllib.request
from pathlib import Path
import boto3
emu, moto = sys.argv[1], sys.argv[2]
url = f"http://127.0.0.1:{emu}/2015-03-31/functions/function/invocations"
def post(event):
    started = time.monotonic()
    for _ in range(100):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, json.dumps(event).encode()), timeout=120) as r:
                return r.status, json.loads(r.read()), time.monotonic() - started
        except (ConnectionError, urllib.error.URLError) as exc:
            if isinstance(exc, urllib.error.HTTPError):
                return exc.code, json.loads(exc.read()), time.monotonic() - started
            time.sleep(0.2)
    raise SystemExit("emulator not reachable")
http = json.loads(Path("events/apigw-http-multipart.json").read_text())
for label in ("cold", "warm"):
    status, body, seconds = post(http)
    assert status == 200 and body.get("statusCode") == 200, (status, str(body)[:800])
    print(f"HTTP event ({label}): statusCode {body['statusCode']} in {seconds:.2f} s")
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{moto}", region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
event = json.loads(Path("events/s3-put.json").read_text())
record = event["Records"][0]["s3"]
bucket, key = record["bucket"]["name"], record["object"]["key"]
s3.create_bucket(Bucket=bucket)
from urllib.parse import unquote_plus
s3.put_object(Bucket=bucket, Key=unquote_plus(key), Body=Path("tests/images/astronaut.jpg").read_bytes())
status, body, seconds = post(event)
assert status == 200 and not (isinstance(body, dict) and "errorType" in body), (status, body)
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
assert any(k.startswith("results/") and k.endswith(".json") for k in keys), keys
print(f"S3 event: {body} in {seconds:.2f} s; bucket now has {keys}")
EOF
echo "image-smoke OK"
