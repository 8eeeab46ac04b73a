"""Rollout: the multi-turn loop that produces trajectories with exact per-turn token records.

  env         Environment (dataset, tools, checker) and the one environment loader
  backends    generation backends: transformers (CPU/GPU), vLLM (colocate or server, through TRL)
  loop        run_rollouts: generate -> parse tool calls -> run tools -> append results -> next turn
  trl_driver  make_rollout_func: the loop as TRL's ``rollout_func`` for ``GRPOTrainer``
"""
