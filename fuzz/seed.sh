#!/usr/bin/env bash
# Seeds the fuzz corpora with the test suite's inputs: the shipped policies
# (and the policies the integration tests write are variations of them), the
# Prometheus answers in corpus/prometheus_answer/, random attribution bytes.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/policy corpus/prometheus_answer corpus/attribution
cp ../policies/*.toml corpus/policy/
