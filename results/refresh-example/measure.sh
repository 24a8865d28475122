#!/bin/bash
# Measured example: the `said` refresh encoder of the demo's SAID-initialised SASRec run (synthetic catalogue,
# SmolLM2-135M) on 20 new items, one thread, against a loopback redis-server.
set -euo pipefail
cd /tmp/refresh-measure
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
S="nice -n 10 /work/refresh/.venv/bin/semrec"
PORT=6417
URL=redis://127.0.0.1:$PORT/0
rm -rf runs/demo/sasrec/refresh_encoder redis && mkdir -p redis
redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no --dir redis > redis/redis.log 2>&1 &
echo $! > redis.pid
sleep 1
t() { local start=$(date +%s.%N); "$@"; echo "TIMING $(echo "$(date +%s.%N) - $start" | bc) s: $*" ; }
t $S export refresh-encoder --run runs/demo/sasrec
t $S publish --run runs/demo/sasrec --redis $URL --catalog said0 --items v1.jsonl --refresh-encoder hashing
t $S publish --run runs/demo/sasrec --redis $URL --catalog said2 --items v1.jsonl
t $S publish --run runs/demo/sasrec --redis $URL --catalog textmap --items v1.jsonl
t $S refresh --catalog said0 --items v2.jsonl --redis $URL --encoder said
t $S refresh --catalog said0 --items v2.jsonl --redis $URL
t $S refresh --catalog said2 --items v2.jsonl --redis $URL --encoder said --said-epochs 2
t $S refresh --catalog textmap --items v2.jsonl --redis $URL --encoder text-map
nice -n 10 /work/refresh/.venv/bin/python quality.py $URL
kill $(cat redis.pid)
