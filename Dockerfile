# PointRend instance segmentation (PixelLib, torch backend) as an AWS Lambda container image.
#
# Build (the pin comes from infra/model.sha256, the line naming the chosen model's file):
#   docker build -t pointrend-lambda .                                        # PointRend R50-FPN
#   docker build --build-arg MODEL_BACKBONE=resnet101 -t pointrend-lambda .   # PointRend X-101-32x8d-FPN
# Build args:
#   PYTHON_IMAGE       base of every stage (python:3.11-slim; the podman smoke build passes a local stand-in)
#   TORCH_INDEX_URL    where the CPU-only torch/torchvision wheels come from (PyTorch's CPU wheel index)
#   REQUIRE_CPU_TORCH  1: the build fails if torch is a CUDA build or any nvidia-* package got installed
#   MODEL_BACKBONE     resnet50 (default) or resnet101: which PixelLib model the image serves (docs/models.md); the
#                      model catalogue (handler/core/catalogue.py) names its release file, URL and pin line
#   MODEL_SOURCE       a weights file in the build context to bake instead (empty: the release file from
#                      .cache/models/ when present, else downloaded from MODEL_URL)
#   MODEL_URL          empty: the catalogue's URL of the release file (PixelLib release 0.2.0)
#   MODEL_SHA256       expected sha256 of the weights; empty: infra/model.sha256's line for the release file.
#                      No pin at all, or a mismatch: the build fails.
# Runs under Lambda (and `sam local invoke`, which mounts its emulator) as
#   python -m awslambdaric handler.lambda_function.lambda_handler
# and as a plain web server with:
#   docker run -p 8080:8080 --entrypoint python IMAGE -m handler serve --host 0.0.0.0

ARG PYTHON_IMAGE=python:3.11-slim
ARG MODEL_BACKBONE=resnet50

# ---------------------------------------------------------------------------------------------------
# builder: a virtual environment at /opt/venv with every runtime dependency, then copied as a whole.
FROM ${PYTHON_IMAGE} AS builder
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ARG REQUIRE_CPU_TORCH=1
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Compilers only for packages without a wheel on this platform (awslambdaric then builds aws-lambda-cpp
# and curl from source). They stay in this stage. Debian package versions float with the base image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        g++ make cmake autoconf automake libtool unzip libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# CPU-only torch first: requirements.txt pins torch==2.14.1, which 2.14.1+cpu satisfies, so the
# second step keeps it and never pulls the CUDA build (and its nvidia-* packages) from PyPI.
RUN pip install --index-url "${TORCH_INDEX_URL}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

COPY requirements.txt requirements-nodeps.txt /tmp/requirements/
# pixellib and imantics with --no-deps: their declared dependencies (PyQt5, GUI OpenCV, ...) are unused.
RUN pip install -r /tmp/requirements/requirements.txt \
    && pip install --no-deps -r /tmp/requirements/requirements-nodeps.txt \
    && python -c "import importlib.metadata as m, sys, torch; \
cuda = sorted(d.metadata['Name'] for d in m.distributions() if d.metadata['Name'].lower().startswith('nvidia')); \
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'nvidia packages', cuda); \
sys.exit('${REQUIRE_CPU_TORCH}' == '1' and (cuda or torch.version.cuda) and 'CUDA torch in a CPU image' or 0)"

# ---------------------------------------------------------------------------------------------------
# model: the weights, from the build context if present, else downloaded; sha256 checked either way.
FROM ${PYTHON_IMAGE} AS model
ARG MODEL_BACKBONE
ARG MODEL_URL=""
ARG MODEL_SHA256=""
ARG MODEL_SOURCE=""
# The bracket globs make infra/model.sha256 and the weights optional (bake_model.py always matches); the
# release file is whichever *_<backbone>.pkl the context holds, named by the catalogue, not here.
COPY infra/bake_model.py handler/core/catalogue.py infra/model.sha25[6] .cache/models/*_${MODEL_BACKBONE}.pk[l] \
     ${MODEL_SOURCE:-infra/bake_model.py} /build/
RUN python /build/bake_model.py --backbone "${MODEL_BACKBONE}" \
        --source "${MODEL_SOURCE:+/build/${MODEL_SOURCE##*/}}" --context /build --pin-file /build/model.sha256 \
        --url "${MODEL_URL}" --sha256 "${MODEL_SHA256}" --dest-dir /opt/model \
    && rm -rf /build

# ---------------------------------------------------------------------------------------------------
# final: the slim base, the venv, the weights and the code. No compilers.
FROM ${PYTHON_IMAGE}
ARG MODEL_BACKBONE
LABEL org.opencontainers.image.title="pointrend-lambda" \
      org.opencontainers.image.description="PointRend instance segmentation (PixelLib) on AWS Lambda"

# Lambda's file system is read-only except /tmp: every cache (and HOME) points there.
# MALLOC_ARENA_MAX=1: one glibc malloc arena, so the allocator tuning (handler/core/allocator.py) holds on the
# worker threads that run the model for HTTP requests, not only on the main thread.
ENV PATH=/opt/venv/bin:$PATH \
    MALLOC_ARENA_MAX=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TORCH_HOME=/tmp/torch \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    LAMBDA_TASK_ROOT=/var/task \
    SEG_MODEL_BACKBONE=${MODEL_BACKBONE} \
    SEG_MODEL_PATH=/opt/model/

COPY --from=builder /opt/venv /opt/venv
COPY --from=model /opt/model /opt/model
WORKDIR /var/task
COPY handler/ /var/task/handler/
# a+rX: COPY keeps the checkout's modes, and a umask-077 checkout would hide the code from Lambda's user.
RUN chmod -R a+rX /var/task && python -m compileall -q /var/task/handler

# No USER: Lambda runs every container image as its own least-privileged non-root user, whatever the
# image says (AWS's own base images set none either), and `sam local invoke` builds its emulator layer on
# this image with a RUN that must run as root. What the image must and does guarantee instead: every file
# is readable by any user (pip, bake_model and compileall write 0644/0755) and nothing outside /tmp is
# written at run time; `make image-smoke` runs it as uid 1000 on a read-only root file system to prove it.

ENTRYPOINT ["python", "-m", "awslambdaric"]
CMD ["handler.lambda_function.lambda_handler"]
