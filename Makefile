# make run   : install, make sure a model is present, serve on http://127.0.0.1:8080
# make test  : install, make the test model, lint, run the whole test suite
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BACKBONE ?= resnet50
# The backbone's release file, from the model catalogue (handler/core/catalogue.py, standard library only).
MODEL_FILE := $(shell python3 handler/core/catalogue.py $(BACKBONE) file)
MODEL := .cache/models/$(MODEL_FILE)
TEST_MODEL := .cache/models/test_model.pkl
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install run model test-model moto-sfn lint test pytest browser bench soak image image-smoke deploy clean

$(STAMP): requirements.txt requirements-nodeps.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

install: $(STAMP)

# The real weights: SEG_MODEL_PATH if set, else $(MODEL) (BACKBONE's release file), downloaded if missing.
model: install
	@if [ -n "$$SEG_MODEL_PATH" ]; then \
	  test -f "$$SEG_MODEL_PATH" || { echo "SEG_MODEL_PATH=$$SEG_MODEL_PATH does not exist" >&2; exit 1; }; \
	elif [ ! -f $(MODEL) ]; then \
	  $(PY) -m handler fetch-model --backbone $(BACKBONE) --dest $(MODEL) || { \
	    echo >&2; \
	    echo "make run needs the PointRend weights and could not download them (see above)." >&2; \
	    echo "  - put $(MODEL_FILE) (PixelLib release 0.2.0) at $(MODEL), or" >&2; \
	    echo "  - try the service on random test weights (finds almost nothing):" >&2; \
	    echo "      make test-model && SEG_MODEL_PATH=$(TEST_MODEL) make run" >&2; \
	    exit 1; }; \
	fi

run: model
	@if [ -n "$$SEG_MODEL_PATH" ] && [ "$$(basename $$SEG_MODEL_PATH)" = "$$(basename $(TEST_MODEL))" ]; then \
	  echo "NOTE: serving the RANDOM test model $$SEG_MODEL_PATH, not trained weights." >&2; fi
	$(PY) -m handler serve --host $(HOST) --port $(PORT)

$(TEST_MODEL): | $(STAMP)
	$(PY) -m handler make-test-model $(TEST_MODEL)

test-model: $(TEST_MODEL)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam validate --lint --template-file template.yaml

# Debian's Chromium for the browser tests (Playwright cannot download its own browser here), installed with
# apt-get, which needs root. Without root and without chromium, the browser tests are skipped (never in CI).
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] || [ -n "$$CI" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "NOTE: chromium is missing and installing it needs root: sudo apt-get install chromium" >&2; \
	  echo "      (Debian's package). Until then the browser tests are SKIPPED (pytest -m 'not browser')." >&2; \
	fi

# Expanded when pytest runs, after `browser`: no chromium (and not CI) leaves the browser tests out.
NO_BROWSER = $(if $(CI),,$(if $(shell command -v chromium),,-m "not browser"))

# Moto with its Step Functions executor, in its own venv (.cache/moto-sfn-venv: antlr4 4.13, which ours cannot
# hold), for the distributed video test (infra/moto_sfn.py); made once, remade when its pins change.
moto-sfn: install
	$(PY) -m infra.moto_sfn

pytest: install test-model moto-sfn
	SEG_MODEL_PATH=$(TEST_MODEL) $(PY) -m pytest $(NO_BROWSER) $(PYTEST_ARGS)

test: install test-model lint browser pytest

bench: install test-model
	SEG_MODEL_PATH=$(TEST_MODEL) $(PY) bench/engine.py

# The dense test model (100 objects, polygons, overlay): bench/soak.py makes and picks it itself.
soak: install
	$(PY) bench/soak.py

IMAGE ?= pointrend-lambda:latest
# Needs a Docker engine and the chosen model's sha256 pinned in infra/model.sha256 (BACKBONE=resnet101: X-101).
image:
	docker build --build-arg MODEL_BACKBONE=$(BACKBONE) -t $(IMAGE) .

SAM := SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam
# The weights (downloaded and pinned in infra/model.sha256 on first use), `sam build`, then `sam deploy`:
# --guided until samconfig.toml holds the answers (guided saves a region there), plain afterwards.
deploy: model
	@test -s infra/model.sha256 || { echo "infra/model.sha256 is missing: the image build needs the weights' sha256." >&2; \
	  echo "  python -m handler fetch-model  downloads the weights and pins them (docs/deploy.md)" >&2; exit 1; }
	$(SAM) build
	@if grep -q '^region *=' samconfig.toml; then $(SAM) deploy; else $(SAM) deploy --guided; fi

# podman build + sam local invoke/start-api (root; apt podman runc mmdebstrap); ~15 min cold, not in CI.
image-smoke: install test-model
	infra/image_smoke.sh

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
