#!/bin/sh
# Init container of the worker: makes sure MODEL_DIR holds a converted PandaGPT model.
# Does nothing when MODEL_DIR/pandagpt.json exists. Otherwise fetches the public pieces
# (PandaGPT delta, ImageBind) and converts them with the Vicuna v0 that the operator put
# at VICUNA_DIR. Writes into a temporary directory and renames it, so a worker never
# sees a half-converted model; a lock keeps concurrent workers from converting twice.
set -eu
: "${MODEL_DIR:?}" "${VICUNA_DIR:?}" "${CACHE_DIR:?}" "${VARIANT:?}"
if [ -f "$MODEL_DIR/pandagpt.json" ]; then
  echo "prepare-weights: converted model found at $MODEL_DIR"
  exit 0
fi
mkdir -p "$CACHE_DIR"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE_DIR/.prepare.lock"
  echo "prepare-weights: waiting for the lock on $CACHE_DIR/.prepare.lock"
  flock 9
  if [ -f "$MODEL_DIR/pandagpt.json" ]; then
    echo "prepare-weights: another worker converted the model meanwhile"
    exit 0
  fi
fi
if [ ! -f "$VICUNA_DIR/config.json" ]; then
  echo "prepare-weights: no Vicuna v0 at $VICUNA_DIR (config.json missing)." >&2
  echo "  Vicuna v0 is not downloadable (LLaMA licence): merge it yourself and copy the" >&2
  echo "  Hugging Face directory there (see the chart README, 'Weights')." >&2
  exit 1
fi
echo "prepare-weights: fetching PandaGPT $VARIANT and ImageBind into $CACHE_DIR"
pandagpt fetch-weights --variant "$VARIANT" --cache-dir "$CACHE_DIR"
partial="$MODEL_DIR.partial"
rm -rf "$partial"
echo "prepare-weights: converting into $MODEL_DIR"
# shellcheck disable=SC2086  # CONVERT_ARGS is a list of flags
pandagpt convert --vicuna "$VICUNA_DIR" --delta "$CACHE_DIR/$DELTA_FILE" \
  --imagebind "$CACHE_DIR/$IMAGEBIND_FILE" --output "$partial" ${CONVERT_ARGS:-}
mv "$partial" "$MODEL_DIR"
echo "prepare-weights: done"
