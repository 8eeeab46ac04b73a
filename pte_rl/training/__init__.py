"""Training: what runs inside or around TRL's GRPOTrainer.

  trainer    the GRPOTrainer subclass (the advantage floor)
  metrics    batch metrics of trajectories: pte/*, tokens/*, tools/*, turns/*, patterns/*
  tracking   W&B set-up (offline without a key), metrics.jsonl, samples, the metrics callback
  evaluate   held-out evaluation of a policy (eval/summary.json, trajectories.jsonl)
  plots      training and report plots (matplotlib, Agg)
"""
