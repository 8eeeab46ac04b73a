"""The embedded default policy: a tiny Qwen2-architecture model built offline from a seed.

  build   TinyConfig, build_tiny_policy (tokenizer, model, copy drill, scripted warm start, cache)
"""
