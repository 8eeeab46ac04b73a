"""Pricing: what a trajectory costs. No torch, no TRL: usable on any agent log.

  trajectory    the one trajectory type (turns, calls, tool tokens, events)
  cost          PTE of a trajectory under a CostModel (cache policy, attention mode, delta): the only PTE code
  gamma         gamma from a model config and a hardware profile
  hardware      hardware profiles (peak FLOP/s, bandwidth, measured gamma / delta)
  model_config  the shape of a model (layers, width, heads, active parameters) from its config.json
  jsonl         the one interchange format: reading and writing trajectory logs, atomically
"""
