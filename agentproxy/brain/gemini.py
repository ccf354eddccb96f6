"""The Gemini brain: plans, answers and reviews through the google-genai SDK with structured output.

Each call asks for JSON against a schema and decodes it into the project's msgspec structs; output
that does not decode or validate is asked for once more, then the call fails with ``BrainError``
(the ResilientBrain around it falls back to the offline brain). HTTP 408/429/5xx are retried by the
SDK with backoff; transport errors (refused, timed out, dropped) fail the call. Every call is
reported as a ``BrainCalled`` event with its tokens and cost. The API key never leaves the client.
"""

from __future__ import annotations

import mimetypes
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from agentproxy.brain import prompts
from agentproxy.brain.base import EventSink, Pick, PickInput, ReviewInput, Situation, ToolJudgement
from agentproxy.brain.offline import OfflineBrain
from agentproxy.brain.prices import cost_usd, price_table
from agentproxy.errors import BrainError, UsageError
from agentproxy.knowledge import Knowledge
from agentproxy.messages import AgentQuestion, BrainCalled, BrainPurpose, Plan, Verdict

DEFAULT_MODEL = "gemini-3.5-flash"
MODEL_ENV = "AGENTPROXY_GEMINI_MODEL"
PROMPT_CHARS_ENV = "AGENTPROXY_PROMPT_CHARS"
DEFAULT_PROMPT_CHARS = 60_000
MIN_PROMPT_CHARS = 2_000
BASE_URL_ENV = "GOOGLE_GEMINI_BASE_URL"
TEMPERATURE = 0.2
MAX_SUBTASKS = 12
MAX_IMAGES = 8
MAX_IMAGE_BYTES = 5 * 1024 * 1024
RETRY_STATUS_CODES = [408, 429, 500, 502, 503, 504]

T = TypeVar("T")


class _Answers(msgspec.Struct):
    answers: list[str]


class _Pick(msgspec.Struct):
    attempt_id: str
    reason: str


class _ToolDecision(msgspec.Struct):
    allow: bool
    reason: str


_STRINGS = {"type": "array", "items": {"type": "string"}}
PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string"},
        "subtasks": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "title": {"type": "string"},
                    "instructions": {"type": "string"},
                    "checks": _STRINGS,
                    "criteria": _STRINGS,
                    "depends_on": _STRINGS,
                    "files": _STRINGS,
                    "expects_changes": {"type": "boolean"},
                    "agent": {"type": "string"},
                },
                "required": ["id", "title", "instructions"],
            },
        },
    },
    "required": ["subtasks"],
}
ANSWERS_SCHEMA = {"type": "object", "properties": {"answers": _STRINGS}, "required": ["answers"]}
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "passed": {"type": "boolean"},
        "findings": _STRINGS,
        "follow_up": {"type": "string"},
        "question": {"type": "string"},
    },
    "required": ["passed", "findings"],
}
PICK_SCHEMA = {
    "type": "object",
    "properties": {"attempt_id": {"type": "string"}, "reason": {"type": "string"}},
    "required": ["attempt_id", "reason"],
}
TOOL_SCHEMA = {
    "type": "object",
    "properties": {"allow": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["allow", "reason"],
}


class GeminiBrain:
    name = "gemini"

    def __init__(
        self,
        api_key: str,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_version: str | None = None,
        timeout_s: float = 60.0,
        retry_attempts: int = 4,
        retry_initial_delay_s: float = 1.0,
        prompt_chars: int | None = None,
    ) -> None:
        from google import genai  # lazy: pa --help must not pay for the SDK
        from google.genai import types

        self._types = types
        self._secrets = (api_key,)
        self.model = model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
        self.prompt_chars = prompt_chars or _prompt_chars_from_env()
        self.prices = price_table()
        self.events = EventSink()
        self.offline = OfflineBrain()  # deterministic guards on top of the model's judgement
        self.client = genai.Client(
            api_key=api_key,
            http_options=types.HttpOptions(
                base_url=base_url or os.environ.get(BASE_URL_ENV) or None,
                api_version=api_version,
                timeout=int(timeout_s * 1000),
                retry_options=types.HttpRetryOptions(
                    attempts=retry_attempts,
                    initial_delay=retry_initial_delay_s,
                    max_delay=max(retry_initial_delay_s * 16, 1.0),
                    http_status_codes=RETRY_STATUS_CODES,
                ),
            ),
        )

    # -- the Brain protocol --------------------------------------------------------------------

    def plan(self, task: str, knowledge: Knowledge) -> Plan:
        prompt = prompts.plan_prompt(task, knowledge, self.prompt_chars)
        return self._ask("plan", prompts.PLAN_SYSTEM, prompt, knowledge, PLAN_SCHEMA, Plan, _valid_plan)

    def answer(self, questions: Sequence[AgentQuestion], situation: Situation) -> list[str]:
        prompt = prompts.answer_prompt(questions, situation, self.prompt_chars)

        def valid(reply: _Answers) -> list[str]:
            answers = [a.strip() for a in reply.answers]
            if len(answers) != len(questions) or not all(answers):
                raise ValueError(f"expected {len(questions)} non-empty answers, got {len(answers)}")
            return answers

        return self._ask("answer", prompts.ANSWER_SYSTEM, prompt, situation.knowledge, ANSWERS_SCHEMA, _Answers, valid)

    def review(self, review: ReviewInput) -> Verdict:
        prompt = prompts.review_prompt(review, self.prompt_chars)

        def valid(verdict: Verdict) -> Verdict:
            if verdict.question.strip():
                return msgspec.structs.replace(verdict, passed=False)  # unanswered, the work cannot be done
            if not verdict.passed and not verdict.follow_up.strip():
                raise ValueError("a failed verdict needs a follow_up instruction")
            return verdict

        verdict = self._ask("review", prompts.REVIEW_SYSTEM, prompt, review.knowledge, VERDICT_SCHEMA, Verdict, valid)
        if verdict.passed and not verdict.question and any(not check.passed for check in review.checks):
            # Failing checks are facts: the model may add findings, not overrule them.
            checks_verdict = self.offline.review(review)
            return Verdict(
                passed=False, findings=[*checks_verdict.findings, *verdict.findings], follow_up=checks_verdict.follow_up
            )
        return verdict

    def judge_tool(self, tool_name: str, tool_input: dict[str, Any], situation: Situation) -> ToolJudgement:
        prompt = prompts.judge_prompt(tool_name, tool_input, situation, self.prompt_chars)
        decision = self._ask(
            "judge", prompts.JUDGE_SYSTEM, prompt, situation.knowledge, TOOL_SCHEMA, _ToolDecision, lambda d: d
        )
        return ToolJudgement(allow=decision.allow, reason=f"{decision.reason} (judged by {self.model})")

    def pick(self, choice: PickInput) -> Pick:
        prompt = prompts.pick_prompt(choice, self.prompt_chars)
        ids = [attempt.attempt_id for attempt in choice.attempts]

        def valid(pick: _Pick) -> Pick:
            if pick.attempt_id not in ids:
                raise ValueError(f"attempt_id must be one of {ids}, got {pick.attempt_id!r}")
            return Pick(attempt_id=pick.attempt_id, reason=f"{pick.reason} (picked by {self.model})")

        return self._ask("pick", prompts.PICK_SYSTEM, prompt, choice.knowledge, PICK_SCHEMA, _Pick, valid)

    # -- one structured call -------------------------------------------------------------------

    def _ask(
        self,
        purpose: BrainPurpose,
        system: str,
        prompt: str,
        knowledge: Knowledge,
        schema: dict[str, Any],
        reply_type: type[Any],
        validate: Callable[[Any], T],
    ) -> T:
        """One call, and one more if the output is malformed; BrainError when neither will do."""
        contents = self._contents(prompt, knowledge)
        problem = ""
        for _ in range(2):
            text = self._generate(purpose, system, contents, schema)
            try:
                return validate(msgspec.json.decode(text, type=reply_type))
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                problem = str(exc)[:200]
        raise BrainError(f"Gemini's {purpose} output was malformed twice: {problem}")

    def _generate(self, purpose: BrainPurpose, system: str, contents: list[Any], schema: dict[str, Any]) -> str:
        types = self._types
        config = types.GenerateContentConfig(
            system_instruction=system,
            temperature=TEMPERATURE,
            response_mime_type="application/json",
            response_json_schema=schema,
        )
        started = time.monotonic()
        try:
            response = self.client.models.generate_content(model=self.model, contents=contents, config=config)
        except Exception as exc:  # the SDK raises its own errors and the HTTP library's: all are a failed call
            error = self._describe(exc)
            self.events(
                BrainCalled(
                    purpose=purpose, model=self.model, ok=False, duration_s=time.monotonic() - started, error=error
                )
            )
            raise BrainError(f"Gemini {purpose} call failed: {error}") from None
        usage = response.usage_metadata
        input_tokens = (usage.prompt_token_count or 0) if usage else 0
        output_tokens = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0) if usage else 0
        self.events(
            BrainCalled(
                purpose=purpose,
                model=self.model,
                ok=True,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=cost_usd(self.prices, self.model, input_tokens, output_tokens),
                duration_s=round(time.monotonic() - started, 3),
            )
        )
        return response.text or ""

    def _contents(self, prompt: str, knowledge: Knowledge) -> list[Any]:
        types = self._types
        parts = [types.Part.from_text(text=prompt)]
        for image in _readable_images(knowledge.project.images):
            mime = mimetypes.guess_type(image.name)[0] or "image/png"
            parts.append(types.Part.from_text(text=f"Image: {image.name}"))
            parts.append(types.Part.from_bytes(data=image.read_bytes(), mime_type=mime))
        return [types.Content(role="user", parts=parts)]

    def _describe(self, exc: Exception) -> str:
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            text = f"HTTP {exc.code} {exc.status or ''}".strip()
        else:
            text = f"{type(exc).__name__}: {exc}"
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return " ".join(text.split())[:300]


def _prompt_chars_from_env() -> int:
    raw = os.environ.get(PROMPT_CHARS_ENV)
    if not raw:
        return DEFAULT_PROMPT_CHARS
    if not raw.isdigit() or int(raw) < MIN_PROMPT_CHARS:
        raise UsageError(
            f"{PROMPT_CHARS_ENV} must be a whole number of characters, at least {MIN_PROMPT_CHARS}: {raw!r}"
        )
    return int(raw)


def _readable_images(paths: Sequence[Path]) -> list[Path]:
    readable = []
    for path in paths:
        try:
            if path.stat().st_size <= MAX_IMAGE_BYTES:
                readable.append(path)
        except OSError:
            continue
        if len(readable) == MAX_IMAGES:
            break
    return readable


def _valid_plan(plan: Plan) -> Plan:
    ids = [s.id for s in plan.subtasks]
    if not ids or len(ids) > MAX_SUBTASKS:
        raise ValueError(f"a plan needs 1 to {MAX_SUBTASKS} subtasks, got {len(ids)}")
    if len(set(ids)) != len(ids) or not all(i.strip() for i in ids):
        raise ValueError("subtask ids must be unique and non-empty")
    if not all(s.instructions.strip() for s in plan.subtasks):
        raise ValueError("every subtask needs instructions")
    known = set(ids)
    for subtask in plan.subtasks:
        if unknown := set(subtask.depends_on) - known:
            raise ValueError(f"subtask {subtask.id} depends on unknown {sorted(unknown)}")
    _check_acyclic(plan)
    return plan


def _check_acyclic(plan: Plan) -> None:
    depends = {s.id: set(s.depends_on) for s in plan.subtasks}
    done: set[str] = set()
    while depends:
        ready = [sid for sid, deps in depends.items() if deps <= done]
        if not ready:
            raise ValueError(f"subtask dependencies form a cycle among {sorted(depends)}")
        for sid in ready:
            done.add(sid)
            del depends[sid]
