# humpback: `make demo` runs the whole loop on the embedded sample; `make test` runs the test suite.
# Variables pass through to the stages, e.g.
#   make ingest CORPUS='s3a://bucket/crawl/*.warc.gz' SPARK_MASTER=spark://host:7077 LAKEHOUSE=s3a://bucket/lake
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV       := .venv
PYTHON     := $(VENV)/bin/python
HUMPBACK   := $(VENV)/bin/humpback
CORPUS     ?= data/sample/*.warc.gz
SEED       ?= data/sample/seed.jsonl
SEED_FORMAT ?= jsonl
ITERATIONS ?=
REWRITE    ?=
PYTEST_ARGS ?=
ARGS       ?=

# Optional settings become the environment variables the CLI reads.
ifdef LAKEHOUSE
export HUMPBACK_LAKEHOUSE := $(LAKEHOUSE)
endif
ifdef SPARK_MASTER
export SPARK_MASTER
endif
ifdef MLFLOW_TRACKING_URI
export MLFLOW_TRACKING_URI
endif

.PHONY: help setup demo test bench lint tables ingest segment seed train-backward train-forward augment curate \
        trainset rewrite evaluate iterate mlflow-ui clean

help:
	@echo "make demo    the whole loop on the embedded sample (runs make setup first); REWRITE=1 adds the rewrite stage"
	@echo "make test    the test suite (runs make setup first)"
	@echo "make setup   .venv, the package, Delta jars and the embedded model (idempotent)"
	@echo "make bench   side-by-side benchmarks that print ratios"
	@echo "stages:      make ingest|segment|seed|train-backward|train-forward|augment|curate|trainset|rewrite|evaluate|iterate|tables"
	@echo "variables:   CORPUS SEED SEED_FORMAT ITERATIONS REWRITE LAKEHOUSE SPARK_MASTER MLFLOW_TRACKING_URI ARGS"

setup:
	@bash scripts/setup.sh

demo: setup
	$(HUMPBACK) demo $(if $(ITERATIONS),--iterations $(ITERATIONS)) $(if $(filter-out 0 no false,$(REWRITE)),--rewrite) $(ARGS)

# pytest's exit code 5 (no tests collected) fails the target like any other non-zero code.
test: setup
	$(PYTHON) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PYTHON) benchmarks/run.py $(ARGS)

lint: setup
	$(VENV)/bin/ruff check humpback pipelines tests benchmarks

tables: setup
	$(HUMPBACK) tables $(ARGS)

ingest: setup
	$(HUMPBACK) ingest --input '$(CORPUS)' $(ARGS)

segment: setup
	$(HUMPBACK) segment $(ARGS)

seed: setup
	$(HUMPBACK) seed --input '$(SEED)' --format $(SEED_FORMAT) $(ARGS)

train-backward: setup
	$(HUMPBACK) train --direction backward --dataset seed --alias myx $(ARGS)

train-forward: setup
	$(HUMPBACK) train --direction forward --dataset seed --alias m0 $(ARGS)

augment: setup
	$(HUMPBACK) augment $(ARGS)

curate: setup
	$(HUMPBACK) curate --iteration 1 $(ARGS)

trainset: setup
	$(HUMPBACK) trainset --name a5 --iteration 1 $(ARGS)

rewrite: setup
	$(HUMPBACK) rewrite --iteration 1 $(ARGS)

evaluate: setup
	$(HUMPBACK) evaluate --model models:/humpback-forward@m1 --baseline models:/humpback-forward@m0 $(ARGS)

iterate: setup
	$(HUMPBACK) iterate $(if $(ITERATIONS),--iterations $(ITERATIONS)) $(ARGS)

mlflow-ui: setup
	$(VENV)/bin/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}

clean:
	rm -rf lakehouse mlflow.db mlartifacts spark-warehouse
