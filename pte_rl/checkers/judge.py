"""An LLM judge as a correctness checker, behind any OpenAI-compatible endpoint (off by default).

The judge sees the gold answer(s), the completion's extracted answer (and, when given, the question)
and is asked to reply with the JSON object ``{"correct": 1}`` or ``{"correct": 0}``. The request is
``POST {base_url}/chat/completions`` (``base_url`` as OpenAI clients take it, e.g.
``http://127.0.0.1:8000/v1``) through ``urllib``: no client library needed.

Configuration: ``base_url`` / ``model`` as options or from ``PTE_RL_JUDGE_BASE_URL`` /
``PTE_RL_JUDGE_MODEL``; the API key is read at call time from the environment variable named by
``api_key_env`` (default ``OPENAI_API_KEY``; no key, no ``Authorization`` header).

Reading the reply is lenient: the last ``"correct": 0|1|true|false|"yes"|"no"`` in the message
(after any ``<think>`` block, inside code fences or prose) decides. Transport failures (connection
refused, timeout, HTTP 429/5xx) are retried ``max_retries`` times with backoff
``0.5 * 2**attempt`` s; each attempt is bounded by ``timeout_s``. When no verdict can be had the
answer is **ungraded** (``correct=None`` with the reason), never a silent ``False``.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from typing import Any

from pte_rl.checkers.base import Checker, CheckResult, accepted_answers, extract_answer, strip_reasoning
from pte_rl.errors import InputError

SYSTEM_PROMPT = (
    "You grade answers against a reference. Decide whether the response's final answer means the same as "
    "one of the gold answers (ignore formatting, wording and extra explanation; a hedge between several "
    'answers is wrong). Reply with only the JSON object {"correct": 1} or {"correct": 0}.'
)

_VERDICT = re.compile(r'"?correct"?\s*:\s*"?(1|0|true|false|yes|no)\b"?', re.IGNORECASE)
_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def parse_verdict(reply: str) -> bool | None:
    """The judge's verdict in its reply text; ``None`` when the reply holds none.

    >>> parse_verdict('```json\\n{"correct": 1}\\n```'), parse_verdict('{"correct": false}'), parse_verdict("no idea")
    (True, False, None)
    """
    found = _VERDICT.findall(strip_reasoning(reply) or reply)
    if not found:
        return None
    return found[-1].lower() in ("1", "true", "yes")


class JudgeChecker(Checker):
    """Correct when an LLM judge says so (``{"correct": 1}``); see the module docstring."""

    name = "judge"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 30.0,
        max_retries: int = 2,
        max_tokens: int = 256,
        extract: bool = True,
        missing: str = "ungraded",
    ) -> None:
        super().__init__(missing=missing)
        base_url = base_url or os.environ.get("PTE_RL_JUDGE_BASE_URL")
        model = model or os.environ.get("PTE_RL_JUDGE_MODEL")
        if not base_url:
            raise InputError("judge: base_url is required (option base_url or env PTE_RL_JUDGE_BASE_URL)")
        if not model:
            raise InputError("judge: model is required (option model or env PTE_RL_JUDGE_MODEL)")
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"judge: base_url must start with http:// or https://, got {base_url!r}")
        if not timeout_s > 0 or max_retries < 0:
            raise InputError(
                f"judge: expected timeout_s > 0 and max_retries >= 0, got {timeout_s!r}, {max_retries!r}"
            )
        self.base_url, self.model, self.api_key_env = base_url.rstrip("/"), model, api_key_env
        self.timeout_s, self.max_retries, self.max_tokens = (
            float(timeout_s),
            int(max_retries),
            int(max_tokens),
        )
        self.extract = bool(extract)

    def grade(self, answer_text: str | None, ground_truth: Any, question: str | None = None) -> CheckResult:
        accepted = accepted_answers(ground_truth, self.missing)
        if accepted is None:
            return CheckResult(None, None, "ungraded: ground_truth is missing")
        extracted, method = extract_answer(answer_text) if self.extract else (answer_text, "full_text")
        if extracted is None or not extracted.strip():
            return CheckResult(False, extracted, "no answer found", method)
        user = (f"Question: {question}\n" if question else "") + "Gold answer(s): " + " | ".join(accepted)
        user += f"\nResponse: {extracted}\nIs the response correct?"
        reply, failure = self._ask(user)
        if reply is None:
            return CheckResult(None, extracted, f"ungraded: judge unavailable ({failure})", method)
        verdict = parse_verdict(reply)
        if verdict is None:
            return CheckResult(
                None, extracted, f"ungraded: judge reply holds no verdict: {reply[:200]!r}", method
            )
        return CheckResult(
            verdict,
            extracted,
            f"judge {self.model} says {int(verdict)}",
            method,
            accepted[0] if verdict else None,
        )

    def _ask(self, user: str) -> tuple[str | None, str]:
        """The judge's reply text, or ``None`` and why it could not be had."""
        body = json.dumps(
            {
                "model": self.model,
                "temperature": 0,
                "max_tokens": self.max_tokens,
                "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        failure = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(0.5 * 2 ** (attempt - 1))
            request = urllib.request.Request(
                f"{self.base_url}/chat/completions", data=body, headers=headers, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    payload = json.loads(response.read().decode("utf-8", "replace"))
            except urllib.error.HTTPError as exc:
                failure = f"HTTP {exc.code}"
                if exc.code not in _RETRY_STATUS:
                    return None, failure
                continue
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                failure = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
                continue
            except json.JSONDecodeError:
                return None, "the endpoint did not return JSON"
            try:
                content = payload["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                return None, "no choices[0].message.content in the response"
            return (content if isinstance(content, str) else json.dumps(content)), ""
        return None, f"{failure} after {self.max_retries + 1} attempts"
