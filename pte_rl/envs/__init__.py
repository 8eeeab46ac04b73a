"""Built-in environments, one module each, found by name by :func:`pte_rl.rollout.env.load_environment`.

  arith     the embedded default: arithmetic with a terse calculator and a verbose python tool
  facts     search + visit over a generated encyclopedia (embedded)
  math      MATH500 / AIME / GSM8K rows from a JSONL path or a dataset, with the python sandbox
  simpleqa  SimpleQA-style questions, search + visit over a corpus path
"""
