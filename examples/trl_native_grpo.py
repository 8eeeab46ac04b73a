"""pte_rl's correctness and PTE rewards in TRL's own tool loop (docs/trl_native.md); nothing else of pte_rl.

    python examples/trl_native_grpo.py [--model DIR] [--environment] [--steps N] [--output-dir DIR]

``tools=[...]`` by default, ``environment_factory=`` with ``--environment``; the embedded tiny policy unless
``--model`` names another. The PTE reward rebuilds each completion's turns with the tokenizer and the tools.
"""

import argparse
import random

from datasets import Dataset
from transformers import AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

from pte_rl.rewards import CorrectnessReward, PTEPenalty

SYSTEM = ("Answer the arithmetic question. Answer easy ones directly and use a tool for the rest. "
          "Give the final answer as \\boxed{N}.")


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression; returns only its value.

    Args:
        expression: integers with + - * and parentheses.
    """
    if not set(expression) <= set("0123456789+-*() "):
        raise ValueError("only integers, + - * and parentheses")
    return str(eval(expression, {"__builtins__": {}}))  # noqa: S307 - digits, + - * and parentheses only


# A stand-in for arith's sandboxed python tool, with the description and report shape the tiny policy
# was warm-started on; it evaluates arithmetic only. Pass your own tools for a real task.
def python(code: str) -> str:
    """Run python code in a sandbox; returns its output and an execution report.

    Args:
        code: python code; a last bare expression is printed.
    """
    return "--- execution report ---\nstatus: finished\n--- end of report ---\nstdout:\n" + calculator(
        code.strip().removeprefix("print(").removesuffix(")"))


class Arith:
    """The same tools as an environment: TRL makes one instance per rollout and resets it per episode."""

    calculator, python = staticmethod(calculator), staticmethod(python)

    def reset(self, **row) -> None:
        return None


def arithmetic(n: int = 256, seed: int = 0) -> Dataset:
    rng = random.Random(seed)
    items = [f"{rng.randint(10, 99)}{rng.choice('+-*')}{rng.randint(10, 99)}" for _ in range(n)]
    return Dataset.from_dict({"ground_truth": [calculator(x) for x in items], "prompt": [
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"What is {x}?"}] for x in items]})


def build_trainer(argv=None) -> GRPOTrainer:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model directory (default: the embedded tiny policy)")
    parser.add_argument("--environment", action="store_true", help="environment_factory= instead of tools=")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="runs/trl_native")
    args = parser.parse_args(argv)
    if args.model is None:
        from pte_rl.tiny.build import build_tiny_policy

        args.model = str(build_tiny_policy())
    tokenizer, tools = AutoTokenizer.from_pretrained(args.model), [calculator, python]
    rewards = [CorrectnessReward(checker="number"),  # gamma: what a decode token costs (docs/gamma.md)
               PTEPenalty(gamma=0.01, checker="number", tokenizer=tokenizer, tools=tools)]
    config = GRPOConfig(output_dir=args.output_dir, max_steps=args.steps, per_device_train_batch_size=8,
                        num_generations=4, max_completion_length=128, reward_weights=[1.0, 0.5], logging_steps=1,
                        report_to="none", save_strategy="no", use_cpu=True, bf16=False, seed=args.seed)
    loop = {"environment_factory": Arith} if args.environment else {"tools": tools}
    return GRPOTrainer(model=args.model, reward_funcs=rewards, args=config, train_dataset=arithmetic(seed=args.seed),
                       processing_class=tokenizer, **loop)


if __name__ == "__main__":
    build_trainer().train()
