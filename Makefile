# Single entry point. `make demo` runs the main job end to end; `make test` runs the whole suite.
# Both bootstrap everything first (venv, packages, redis-server).
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: bootstrap demo test lint bench-popularity clean

bootstrap:
	@VENV=$(VENV) bash deploy/local/bootstrap.sh

demo: bootstrap
	$(BIN)/semrec demo

test: bootstrap
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: bootstrap
	$(BIN)/ruff check shared services tests loadtest tools

bench-popularity: bootstrap
	$(BIN)/semrec eval popularity --data ../shared/datasets/amazon2018-scientific --results results/popularity-amazon2018-scientific.json
	$(BIN)/semrec eval popularity --data ../shared/datasets/ml-100k --results results/popularity-ml-100k.json

clean:
	rm -rf runs .pytest_cache
