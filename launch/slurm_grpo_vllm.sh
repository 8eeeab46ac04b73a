#!/usr/bin/env bash
# GRPO with pte_rl on SLURM: N trainer nodes (DeepSpeed ZeRO-3) + 1 node running a vLLM server.
#
#   sbatch --nodes 3 launch/slurm_grpo_vllm.sh recipes/configs/qwen2.5-7b-math-vllm-server.yaml
#
# The last node of the allocation serves generations (`vllm serve`, tensor parallel over its GPUs); the
# others train and push weights to it after each optimisation step over NCCL. The trainer reads the
# server's address from --vllm_server_base_url, set below. TRL 1.16's `trl vllm-serve` is deprecated and
# execs the same `vllm serve` line as this script.
#SBATCH --job-name=pte-rl-grpo
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=64
#SBATCH --exclusive
#SBATCH --output=logs/%x-%j.out
set -euo pipefail

CONFIG=${1:?usage: sbatch --nodes N launch/slurm_grpo_vllm.sh RECIPE_CONFIG.yaml [extra recipe args]}
shift
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
VLLM_PORT=${VLLM_PORT:-8000}
MODEL=$(python -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['model_name_or_path'])" "$CONFIG")

mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
NUM_NODES=${#NODES[@]}
if (( NUM_NODES < 2 )); then echo "need at least 2 nodes (trainers + 1 vLLM server)" >&2; exit 2; fi
VLLM_NODE=${NODES[$((NUM_NODES - 1))]}
TRAIN_NODES=("${NODES[@]:0:$((NUM_NODES - 1))}")
NUM_TRAIN_NODES=${#TRAIN_NODES[@]}
MAIN_IP=${TRAIN_NODES[0]}

# The vLLM server: all GPUs of the last node, prefix cache on (TRL resets it after each weight sync).
srun --nodes=1 --ntasks=1 --nodelist="$VLLM_NODE" \
  vllm serve "$MODEL" \
    --tensor-parallel-size "$GPUS_PER_NODE" \
    --port "$VLLM_PORT" --host 0.0.0.0 \
    --enable-prefix-caching \
    --weight-transfer-config '{"backend":"nccl"}' \
    --logprobs-mode processed_logprobs &
VLLM_PID=$!
trap 'kill $VLLM_PID 2>/dev/null || true' EXIT

# Wait for the server before the trainers start.
for _ in $(seq 1 180); do
  curl -sf "http://$VLLM_NODE:$VLLM_PORT/health" >/dev/null && break
  sleep 10
done
curl -sf "http://$VLLM_NODE:$VLLM_PORT/health" >/dev/null || { echo "vLLM server did not come up" >&2; exit 1; }

srun --nodes="$NUM_TRAIN_NODES" --ntasks="$NUM_TRAIN_NODES" --nodelist="$(IFS=,; echo "${TRAIN_NODES[*]}")" \
  bash -c "accelerate launch --config_file launch/multi_node.yaml \
    --num_machines $NUM_TRAIN_NODES --num_processes $((NUM_TRAIN_NODES * GPUS_PER_NODE)) \
    --machine_rank \$SLURM_PROCID --main_process_ip $MAIN_IP --main_process_port 29500 \
    recipes/grpo_pte.py --config $CONFIG \
    --use_vllm true --vllm_mode server --vllm_server_base_url http://$VLLM_NODE:$VLLM_PORT $*"
