# Every target installs what it needs first, so each works on a fresh clone.
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
UV_VERSION := 0.13.9

.PHONY: install browser demo test lock airflow airflow-down bench-extract bench-score bench-dbt clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --python $(PY) requirements.lock
	$(BIN)/uv pip install --quiet --python $(PY) --no-deps -e .
	touch $(STAMP)

demo: install
	$(BIN)/creditplus demo

test: install browser
	$(BIN)/pytest

# Debian's Chromium and ChromeDriver, for the tests that open the report, the portal and Data Docs, and a
# Chinese font (WenQuanYi Micro Hei) for their pages, screenshots and the report's charts.
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver -a -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium chromium-driver fonts-wqy-microhei >/dev/null; }

airflow: install
	$(BIN)/creditplus airflow up

airflow-down: install
	$(BIN)/creditplus airflow down

lock: install
	$(BIN)/uv pip compile --quiet --python-version 3.11 requirements.in -o requirements.lock

bench-extract: install
	$(BIN)/creditplus bench extract --enterprises 100000

bench-score: install
	$(BIN)/creditplus bench score --enterprises 100000

bench-dbt: install
	$(BIN)/creditplus bench dbt --enterprises 3000
	$(BIN)/creditplus bench dbt --enterprises 100000

clean:
	-$(BIN)/creditplus airflow down 2>/dev/null
	-$(BIN)/python -c "from creditplus import warehouse; warehouse.stop_embedded()" 2>/dev/null
	rm -rf .creditplus dbt_project/target dbt_project/logs
