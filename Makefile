# Deploy a deep-learning model without tears: every command a learner or instructor needs.
#   make course   set up .venv, then run every notebook in order (FAST=1 for the quick version)
#   make test     set up .venv, then lint and run the tests and every notebook (nbval, fast mode)
#   make lab      JupyterLab on the notebooks
#   make demo     the Gradio demo on http://127.0.0.1:7860
#   make web      the same model counting cells in the browser (onnxruntime-web)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: course test parity lint lab demo web data notebooks sync bench-train bench-edge bench-api browser js-client web-deps clean

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,scale]"
	@rm -f $(VENV)/.installed-*; touch $@
	@echo "Course environment ready in $(VENV)/"

course: $(STAMP)
	$(BIN)/python scripts/run_course.py $(if $(FAST),--fast,)

test: $(STAMP) browser js-client web-deps lint
	$(BIN)/python -m pytest

# The tests that compare runtimes, precisions and threads, run as four machines would:
# bf16 on and off (COURSE_PRECISION), 1 and 2 threads (OMP_NUM_THREADS). See docs/CONVENTIONS.md.
PARITY_TESTS := tests/test_tiling.py tests/test_runtime.py tests/test_export.py tests/test_edge.py \
	tests/test_model.py tests/test_checkpoint.py tests/test_processing.py tests/test_train.py \
	tests/test_centernet.py tests/test_batch.py tests/test_web.py tests/test_web_tiling.py
parity: $(STAMP) browser web-deps
	@for precision in fp32 bf16; do for threads in 1 2; do \
		echo "== COURSE_PRECISION=$$precision OMP_NUM_THREADS=$$threads"; \
		COURSE_PRECISION=$$precision OMP_NUM_THREADS=$$threads $(BIN)/python -m pytest -q $(PARITY_TESTS) || exit 1; \
	done; done

lint: $(STAMP)
	$(BIN)/ruff check utils tests notebooks scripts
	$(BIN)/python scripts/sync_links.py --check

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

demo: $(STAMP)
	$(BIN)/python -m utils.app $(if $(MODEL),--model $(MODEL),)

# The in-browser counter (onnxruntime-web): builds artifacts/web/ and serves it on 127.0.0.1:8000.
web: $(STAMP) web-deps
	$(BIN)/python -m utils.web --serve $(if $(MODEL),--model $(MODEL),)

data: $(STAMP)
	$(BIN)/python -m utils.synth --out data

# Re-execute every notebook in place (fast mode unless FULL=1) before committing them.
notebooks: $(STAMP)
	$(BIN)/python scripts/run_course.py --inplace $(if $(FULL),,--fast)
	$(BIN)/python scripts/sync_links.py

sync: $(STAMP)
	$(BIN)/python scripts/sync_links.py

bench-train: $(STAMP)
	$(BIN)/python -m utils.bench train

bench-edge: $(STAMP)
	$(BIN)/python -m utils.bench edge

bench-api: $(STAMP)
	$(BIN)/python -m utils.bench api

# Headless Chromium for the browser test (Debian/Ubuntu packages; needs root or sudo once).
browser:
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo "sudo" ); \
	echo "Installing Chromium for the browser test ($$SUDO apt-get install chromium chromium-driver)"; \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null

# The JavaScript API client of notebook 07 (@gradio/client from npm).
js-client:
	@if ! command -v npm >/dev/null; then echo "npm not found: install Node.js 18+ for the JavaScript client"; exit 1; fi
	@test -d clients/js/node_modules || (cd clients/js && npm ci --no-audit --no-fund --loglevel=error)

# onnxruntime-web for the in-browser counter (pinned in web/package-lock.json).
web-deps:
	@if ! command -v npm >/dev/null; then echo "npm not found: install Node.js 18+ for the in-browser counter"; exit 1; fi
	@test -d web/node_modules/onnxruntime-web || (cd web && npm ci --no-audit --no-fund --loglevel=error)

clean:
	rm -rf artifacts .pytest_cache
