#!/usr/bin/env bash
# The adversarially trained purifiers of the shipped model set (they attack its classifier while training).
set -euo pipefail
ONLY='split1-adv split2-adv' exec bash "$(dirname "$0")/train-models.sh"
