"""The embedded default policy: a tiny Qwen2-architecture model built offline from a seed.

  config   TinyConfig (every setting of a build), settings_hash (its cache key), cache_root, tiny_policy_path
  data     the environment's scripted chats rendered to text, encoded with a loss mask
  model    the byte-level BPE tokenizer with the chat template, the freshly initialised Qwen2ForCausalLM
  train    the copy drill and the supervised warm start
  build    build_tiny_policy: the steps in order, written atomically into the cache (the old names stay importable)
  shipped  the default build shipped in default/: checked and copied instead of built; ship refreshes it
"""
