#!/usr/bin/env bash
# Sets up everything tf-sparse needs on a fresh machine, then runs a job.
#
#   bash tools/run.sh train   # main job: static sparse LeNet-300-100 on Fashion-MNIST
#   bash tools/run.sh test    # the test suite
#
# Set-up (idempotent, skipped when already done):
#   * the Debian package dataset-fashion-mnist (real Fashion-MNIST IDX files),
#   * a virtual environment in .venv with tf-sparse and its dev extras (the
#     test job adds the jax and torch extras: the backend tests),
#   * the sparse-compute kernels, compiled into tf-sparse's cache.
# Extra arguments after the job name go to tools/train.py or pytest.
set -euo pipefail

cd "$(dirname "$0")/.."
job="${1:-}"
shift || true

ensure_data() {
  if [ -n "${TF_SPARSE_FASHION_MNIST_DIR:-}" ] || \
     [ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    return
  fi
  echo "== installing dataset-fashion-mnist (Debian package)"
  local sudo=""
  if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist
}

# ensure_venv EXTRAS: tf-sparse installed with these extras (comma list).
# The stamp records setup.cfg/pyproject.toml and the extras installed, so a
# later job that needs no more than those installs nothing.
ensure_venv() {
  local extras="${1:-dev}"
  local python="${PYTHON:-python3}"
  local stamp=".venv/.tf_sparse-setup"
  local want have=""
  want="$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$want" ]; then
    have="$(sed -n 2p "$stamp")"
    local missing="" extra
    for extra in ${extras//,/ }; do
      case ",$have," in *",$extra,"*) ;; *) missing=1 ;; esac
    done
    [ -z "$missing" ] && return
    [ -n "$have" ] && extras="$have,$extras"
  fi
  echo "== creating .venv and installing tf-sparse[$extras] (a few minutes the first time)"
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$extras]"
  # The sparse-compute CPU kernels (compute="sparse"), compiled now rather
  # than on first use; without a C++ compiler the TensorFlow ops serve.
  echo "== building the sparse-compute kernels (about a minute)"
  .venv/bin/python -m tf_sparse.sparse_compute.build >/dev/null || \
    echo "   not built: compute=\"sparse\" will use TensorFlow's sparse ops"
  printf '%s\n%s\n' "$want" "$extras" > "$stamp"
}

export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
case "$job" in
  train)
    ensure_data
    ensure_venv
    exec .venv/bin/python tools/train.py \
      --config=configs/fashion_mnist/lenet300_static.py \
      --workdir="${WORKDIR:-runs/lenet300_static}" "$@"
    ;;
  test)
    ensure_data
    # The JAX and PyTorch backends, for tests/test_backends.py.
    ensure_venv dev,jax,torch
    exec .venv/bin/python -m pytest -q "$@"
    ;;
  *)
    echo "usage: bash tools/run.sh {train|test} [extra arguments]" >&2
    exit 2
    ;;
esac
