# rapnet_loc developer entry points. Everything installs into ./.venv; nothing outside it is touched
# except, on a bare Debian machine, the python3-venv package (see scripts/ensure_venv.sh).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_DIR ?= demo_out

.PHONY: venv demo test bench bench-all clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-ros.txt scripts/build_tf2_msgs.sh setup.py package.xml
	PYTHON=$(PYTHON) sh scripts/ensure_venv.sh $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -r requirements-ros.txt
	sh scripts/build_tf2_msgs.sh $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --no-build-isolation --no-deps -e .
	touch $@

demo: $(STAMP)
	$(VENV)/bin/rapnet-loc demo --out $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest -q test

bench: $(STAMP)
	$(PY) benchmarks/bench_speed.py
	$(PY) benchmarks/bench_nodes.py

bench-all: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) build install log *.egg-info
