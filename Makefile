# STARS toolbox. `make demo` runs the main job end to end; `make test` runs the whole suite.
VENV ?= .venv
PY := $(VENV)/bin/python
export QT_QPA_PLATFORM ?= offscreen
export XDG_RUNTIME_DIR ?= /tmp/runtime-$(shell id -u)

.PHONY: setup docs test test-servers demo demo-change demo-fetch bench package install-plugin check-install lint-qt6 test-core check-debian13 clean

setup:
	@bash scripts/setup.sh

# The documentation site into build/site; strict: a broken link or anchor, a page left out of the
# navigation, an algorithm without its page, a code line over 80 characters or "session" for the
# project's work fails the build (offline, a few seconds)
docs: setup
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

# the fetch tests' servers (PostgreSQL + PostGIS from Debian, build/stac-venv): `make test` only
test-servers:
	@bash scripts/test_servers.sh

test: setup docs test-servers
	@mkdir -p $(XDG_RUNTIME_DIR) && chmod 700 $(XDG_RUNTIME_DIR)
	$(PY) -m pytest -q tests

demo: setup
	@mkdir -p $(XDG_RUNTIME_DIR) && chmod 700 $(XDG_RUNTIME_DIR)
	$(PY) scripts/demo.py

# Change through clouds on a generated SAR series: series maps, change map, sample, estimated areas
demo-change: setup
	$(PY) scripts/demo_change.py

# From an area to estimated change areas through `stars fetch`, offline: the tests' local STAC API and
# asset server (tests/servers/, installed by `make test-servers`) serve a generated scene and its dated series
demo-fetch: setup test-servers
	$(PY) scripts/demo_fetch.py

bench: setup
	$(PY) bench/model_speed.py --batches 1 --repeats 2
	$(PY) bench/train_speed.py --workers 0 1
	$(PY) bench/segment_speed.py --size 1024

package: setup
	$(PY) scripts/plugin.py package

install-plugin: package
	$(PY) scripts/plugin.py install

check-install: setup
	@mkdir -p $(XDG_RUNTIME_DIR) && chmod 700 $(XDG_RUNTIME_DIR)
	bash scripts/check_install.sh

# QGIS's Qt6 migration script over the plugin (needs the script's path and PyPI for PyQt6)
lint-qt6:
	bash scripts/lint_qt6.sh "$(PYQT5_TO_PYQT6)"

# The core suite on another Python (QGIS 4 ships 3.12/3.13), with PyPI wheels in build/venv-$(PY)
# (downloads torch, several GB on Linux; not part of `make test`)
test-core:
	bash scripts/test_core.sh "$(PY)"

# The README's two commands in a fresh Debian 13 root (QGIS 3.40; BACKPORTS=1: 3.44), as root; not
# part of `make test`. Logs and timings in build/debian13/.
check-debian13:
	bash scripts/debian13_check.sh

clean:
	rm -rf build dist *.egg-info .pytest_cache
