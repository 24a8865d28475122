#!/bin/bash
# Measured example 2: the `llmemb` refresh encoder of a small RAT run (SmolLM2-135M, 20 SCFT steps, 3 RAT epochs,
# synthetic catalogue) on the same 20 new items, one thread, loopback redis-server.
set -euo pipefail
cd /tmp/refresh-measure
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
S="nice -n 10 /work/refresh/.venv/bin/semrec"
PORT=6418
URL=redis://127.0.0.1:$PORT/0
rm -rf runs/llmemb-scft runs/llmemb-rat redis2 && mkdir -p redis2
t() { local start=$(date +%s.%N); "$@"; echo "TIMING $(echo "$(date +%s.%N) - $start" | bc) s: $*" ; }
t $S train llmemb --data synthetic --llm default --max-steps 20 --batch-size 16 --probe-items 32 --no-bf16 --out runs/llmemb-scft
t $S train llmemb-rat --data synthetic --scft runs/llmemb-scft --collaborative runs/demo/sasrec --backbone sasrec \
   --dim 64 --d-m 64 --epochs 3 --threads 1 --out runs/llmemb-rat
t $S export onnx --run runs/llmemb-rat
redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no --dir redis2 > redis2/redis.log 2>&1 &
echo $! > redis2.pid
sleep 1
t $S publish --run runs/llmemb-rat --redis $URL --catalog llmemb --items v1.jsonl
t $S refresh --catalog llmemb --items v2.jsonl --redis $URL --encoder llmemb
t $S refresh --catalog llmemb --items v2.jsonl --redis $URL
nice -n 10 /work/refresh/.venv/bin/python quality_llmemb.py $URL
kill $(cat redis2.pid)
