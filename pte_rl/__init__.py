"""pte_rl: train tool-using LLM agents to be efficient, priced in Prefill Token Equivalents (PTE)."""

__version__ = "0.1.0"
