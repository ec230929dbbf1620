"""How a council member answered in a stage, and if it gave no usable answer, why.

The vocabulary of `tasks.council.stage_report`. A member's answer is read
from its stored `llm_calls` row: `ok`, `repaired` (valid after one repair
round), or abstained, `parse_error` or `error` with the error text the
gateway wrote. That text names the provider's exception (`RateLimitError`,
`Timeout`, ...) or the validation failure, and the cause is read from it;
an error nothing here recognises is `other error`, its text kept. Pure.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from db.queries.council_causes import CallFact
from models.enums import LLMCallStatus


class Cause(StrEnum):
    """Why a member gave no usable answer."""

    RATE_LIMITED = "rate limited"
    TIMEOUT = "timeout"
    UNREACHABLE = "provider unreachable"
    PROVIDER_ERROR = "provider error"  # 5xx, after our retries
    REQUEST_REFUSED = "request refused"  # 4xx: auth, bad request, unknown model, context
    MALFORMED_JSON = "malformed JSON"
    INVALID_ANSWER = "invalid answer"  # JSON, but not the stage's schema
    EMPTY_ANSWER = "empty answer"
    BUDGET = "budget"
    TOO_LONG = "prompt too long"  # refused before sending: it does not fit the model's window
    NOT_IN_CACHE = "not in cache"  # a replay asks no model
    BALLOT_NOT_COUNTED = "ballot not counted"  # valid, but no score kept; the reason is not
    NOT_ASKED = "not asked"
    OTHER = "other error"


class Answer(StrEnum):
    ANSWERED = "answered"
    REPAIRED = "repaired"
    ABSTAINED = "abstained"


class StageState(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"  # nothing to do: no pitch to review, no decision to approve
    STOPPED = "stopped"  # the run ended during it (budget, failure)
    RUNNING = "running"
    WAITING = "waiting"  # approval: paused for an approver
    NOT_REACHED = "not reached"


@dataclass(frozen=True)
class MemberAnswer:
    member: str
    model: str
    answer: Answer
    cause: Cause | None = None
    error: str | None = None  # as stored; for a member never asked, that it was not
    call_id: int | None = None
    cached: bool = False


@dataclass(frozen=True)
class StageSummary:
    """One stage: how it ended, what it passed on, and for a model stage each member."""

    stage: str
    state: StageState
    outcome: str
    models: bool = False  # a stage that asks models: the counts below mean something
    members: tuple[MemberAnswer, ...] = ()
    notes: tuple[str, ...] = ()  # what the stage refused, each with its reason

    def count(self, answer: Answer) -> int | None:
        return sum(m.answer is answer for m in self.members) if self.models else None

    @property
    def answered(self) -> int | None:
        return self.count(Answer.ANSWERED)

    @property
    def repaired(self) -> int | None:
        return self.count(Answer.REPAIRED)

    @property
    def abstained(self) -> int | None:
        return self.count(Answer.ABSTAINED)

    @property
    def causes(self) -> dict[str, int]:
        """Abstentions by cause, most frequent first."""
        return dict(Counter(str(m.cause) for m in self.members if m.cause).most_common())

    @property
    def line(self) -> str:
        """The stage in one line: its state unless done, the counts and causes, the outcome."""
        parts = [] if self.state is StageState.DONE else [str(self.state)]
        if self.members:
            causes = ", ".join(f"{cause} {n}" for cause, n in self.causes.items())
            counts = f"{self.answered} answered, {self.repaired} repaired"
            parts.append(f"{counts}, {self.abstained} abstained{f' ({causes})' if causes else ''}")
        return f"{self.stage}: {'; '.join([*parts, self.outcome])}"


def answer_of(call: CallFact, ballot_kept: bool | None = None) -> MemberAnswer:
    """The member's answer as its call recorded it. `ballot_kept` (reviews only): False when
    none of the reviewer's scores were stored, so its valid answer did not count."""
    done = {LLMCallStatus.OK: Answer.ANSWERED, LLMCallStatus.REPAIRED: Answer.REPAIRED}
    answer = done.get(call.status)
    if answer is not None and ballot_kept is False:
        why = "its answer was valid but none of its scores were kept; the reason is not stored"
        return MemberAnswer(
            call.member, call.model, Answer.ABSTAINED, Cause.BALLOT_NOT_COUNTED, why, call.id
        )
    if answer is not None:
        return MemberAnswer(call.member, call.model, answer, None, None, call.id, call.cache_hit)
    cause = classify(call.status, call.error)
    return MemberAnswer(
        call.member, call.model, Answer.ABSTAINED, cause, call.error, call.id, call.cache_hit
    )


def classify(status: LLMCallStatus, error: str | None) -> Cause:
    """Why a call gave no usable answer, from its stored status and error text."""
    text = error or ""
    if status is LLMCallStatus.PARSE_ERROR:
        final = text.rsplit(" | after repair: ", 1)[-1]  # the repair's failure is the last word
        if "Invalid JSON" in final:
            return Cause.MALFORMED_JSON
        if "the answer is empty" in final:
            return Cause.EMPTY_ANSWER
        return Cause.INVALID_ANSWER
    return next((cause for mark, cause in _ERROR_MARKS if mark in text), Cause.OTHER)


# The gateway's error text names the exception: ours for the budget, litellm's for the rest
# (services/llm/retry.py lists those it retries). First match wins.
_ERROR_MARKS: tuple[tuple[str, Cause], ...] = (
    ("LLM budget of $", Cause.BUDGET),
    ("not in cache", Cause.NOT_IN_CACHE),
    ("tokens does not fit", Cause.TOO_LONG),
    ("RateLimitError", Cause.RATE_LIMITED),
    ("Timeout", Cause.TIMEOUT),
    ("timed out", Cause.TIMEOUT),
    ("APIConnectionError", Cause.UNREACHABLE),
    ("InternalServerError", Cause.PROVIDER_ERROR),
    ("ServiceUnavailableError", Cause.PROVIDER_ERROR),
    ("BadGatewayError", Cause.PROVIDER_ERROR),
    ("AuthenticationError", Cause.REQUEST_REFUSED),
    ("PermissionDeniedError", Cause.REQUEST_REFUSED),
    ("NotFoundError", Cause.REQUEST_REFUSED),
    ("BadRequestError", Cause.REQUEST_REFUSED),
    ("ContextWindowExceededError", Cause.REQUEST_REFUSED),
    ("ContentPolicyViolationError", Cause.REQUEST_REFUSED),
)
