"""Recognising a final answer that is really a question, and turning it into an AgentQuestion.

A closing "?" says little: reports end with offers ("Want me to add tests?") and questions go on
after their "?" (a recommendation, a default, a summary) or have none ("please provide the URL").
So the end of the answer is cut into sentences (quotes, code and links masked) and cues summed:
- asks: a decision or a request for information (+3), a yes/no permission or confirmation
  (+1.5), any other question (+1); an offer of more work ("anything else?", "if you want, I can
  also ...") or a follow-up that only applies if the fix failed ("if it still fails, ...") is 0;
- context: a blocker ("I can't proceed", "waiting for your ...") or a default, a plan or
  options laid out.
A permission ("Would you like me to proceed?") or a plain question is a question before any change
and an offer after finished work: `made_changes` says which; unknown, completion statements in the
text ("I've added", "All tests pass", "now works") decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentproxy.messages import AgentQuestion, Option

# How much of the end of a final answer is read: a question that matters is asked last.
TAIL_CHARS = 700
# How much is kept around it, to find the list of options above a question.
LOOKBACK_CHARS = 4000
THRESHOLD = 2.5

DECISION, REQUEST, PERMISSION, CONFIRM, OTHER_QUESTION, OFFER = 3.0, 3.0, 1.5, 1.5, 1.0, 0.0
BLOCKER, DEFAULT, PLAN, PLAN_CAP = 3.0, 2.0, 1.0, 2.0
GO_AHEAD, AFTER_CHANGES, BEFORE_CHANGES = 1.0, -1.5, 1.5


def _cue(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_YOU = r"(?:you|you'd|you'll)"
# A choice between alternatives, or an open question about what the user wants.
_DECISION = _cue(
    r"\b(?:which|what|where|how|when|who)\b[^?]*\b(?:you|should|shall|prefer)\b[^?]*\?"
    r"|\bhow (?:would|do|should|shall) (?:you|I|we)\b[^?]*(?:proceed|continue|handle|go|approach|like)"
    r"|\b(?:would|do) you (?:rather|prefer|agree)\b|\bor (?:would|do|should|shall) (?:you|I|we)\b"
    r"|^(?:please )?(?:pick|choose|select) (?:one|a|an|between|from)\b|\b(?:pick|choose) one\b|\bwhichever "
    + _YOU
    + r"\b"
    r"|\b(?:one|a|quick|design|open|small) (?:question|clarification|decision|check)\b"
    r"|\bquestions? (?:before|for you)\b"
    r"|\byour (?:call|choice|decision)\b|\bup to you\b|\bare you (?:ok|okay|fine|happy|sure)\b"
    r"|\((?:[A-Z]|\d)\)[^?]*\bor\b[^?]*\((?:[A-Z]|\d)\)|^[-*•]\s*(?:yes|no)\s*[:—\u2013-]"  # \u2013: an en dash
    r"|\bdoes (?:this|that|the|it)(?: \w+)? (?:look|sound|seem|match) (?:right|correct|good|ok|what you)"
    r"|\b(?:is|are) (?:this|that|these) (?:correct|right|intended|what you (?:want|meant|expected))"
    r"|\bok(?:ay)? to (?:proceed|continue|go ahead)\b|^should (?!I\b|we\b)\w+"
)
# A question between alternatives: "..., or is it safe to drop them?".
_EITHER_OR_ASKED = _cue(r"\bor\b[^?]*\?\W*$")
# A request for information, a decision or an action the agent waits on.
_REQUEST = _cue(
    r"\bplease (?:\w+ly )?(?:provide|share|specify|clarify|confirm|describe|choose|pick|select|send|paste|"
    r"upload|advise|decide|tell me|let me know (?:which|what|how|whether|once|when)|reply|answer)\b"
    r"|\b(?:could|can|would) you (?:please )?(?:\w+ly )?(?:provide|share|specify|clarify|confirm|describe|"
    r"tell|let me know|send|paste|give|explain|decide|choose|pick|point me|upload|attach)\b"
    r"|\btell me (?:which|what|how|whether|if|where|to)\b|\blet me know (?:which|whether|how)\b"
    r"|\blet me know what " + _YOU + r" (?:want|prefer|decide|choose)|\blet me know (?:once|and I)\b"
    r"|\b(?:once|when|after) you(?:'ve| have)? \w+[^.?!]*,? (?:I|we)(?:'ll| will| can| could)\b"
    r"|\b(?:once|when|after|as soon as) you (?:choose|decide|confirm|reply|answer|pick|tell me|let me know|say)\b"
    r"|\bplease \w+\b[^.?!]*\b(?:so (?:that )?I can|and I(?:'ll| will| can)|then I(?:'ll| will| can)|before I)\b"
    r"|\bI need (?:you to|your|to know|a (?:choice|decision|answer|name|value))\b"
    r"|\bdo you have (?:the|a|an|any|\w+s)\b"
)
# Asking the user to check something: information before any change, a courtesy after a fix.
_VERIFY = _cue(
    r"\b(?:could|can|would) you (?:please )?(?:\w+ly )?"
    r"(?:check|run|navigate|look|try|test|verify|refresh|open|reload)\b"
)
# Any other "could you ...?": the user is asked to act.
_ASK_TO_ACT = _cue(r"\b(?:could|can|would|will) you (?:please )?(?!like\b|want\b|prefer\b|rather\b|be\b|see\b)\w+")
# "Let me know if this works": approval of a plan, or a courtesy after finished work.
_CONFIRM = _cue(
    r"\blet me know if (?:this|that|it|the \w+)\b[^.?!]*\b(?:works|looks|sounds|is (?:ok|okay|fine|right)|makes sense)"
    r"|\b(?:does|would) (?:this|that) work for you\b|\bis (?:this|that) (?:ok|okay|fine|acceptable)\b"
)
_PERMISSION = _cue(
    r"\b(?:would|do) you (?:like|want) (?:me )?to\b|\bwant me to\b|\b(?:should|shall|may|can) I\b"
    r"|\bis it (?:ok|okay|fine|alright) (?:if|to)\b|\bgo ahead\?"
)
_GO_AHEAD = _cue(
    r"\b(?:proceed|go(?:ing)? ahead|continu|mov(?:e|ing) (?:on|forward)|start|begin|"
    r"implement(?:ing)? (?:this|these|it|the plan))"
)
# Offering more work after the task: the user may take it up, nobody has to answer.
_OFFER = _cue(
    r"\banything else\b|\bany (?:other|more|additional|further|specific)\b|\banything specific\b"
    r"|\blet me know if\b|\bfeel free\b|\bdoes (?:that|this) (?:make sense|help|answer)\b|\bhope (?:this|that) helps\b"
    r"|\bhappy to\b|\bI can also\b|\bI could also\b|\bjust (?:let me know|ask|say)\b"
    r"|\bwhat (?:would|do|should) (?:you like me to|I) (?:do|work on|tackle)(?: \w+)? next\b"
    r"|\bif "
    + _YOU
    + r" (?:want|need|'d like|would like|wish|prefer)\b[^.?!]*\b(?:let me know|I can|I could|I'd|tell me)\b"
)
# An offer to do something beyond the task: also, another, or the finishing git steps.
_EXTRA_WORK = _cue(r"\b(?:also|as well|another|additional|any|commit|push|pull request|merge)\b|\ba PR\b")
# A follow-up that only applies if the fix did not work: the work is done.
_CONDITIONAL = _cue(
    r"^\s*if (?:anything|something) \w+"
    r"|^\s*if (?:it|that|this|the \w+|you|they|any) (?:still|doesn't|does not|didn't|don't|fails|breaks|looks|seems|"
    r"do|see|get|hit|run into|encounter|notice|have|need|want|'d|would|wish|prefer|'re|are)\b"
)
_BLOCKER = _cue(
    r"\b(?:I|we) (?:can't|cannot|can not|am unable to|'m unable to|am not able to)"
    r" (?:proceed|continue|go on|finish|complete)\b"
    r"|\bblocked (?:on|by)\b|\b(?:I|we) don't have (?:access|permission|credentials|the)\b"
    r"|\b(?:ready to|I can|I'll|I will) (?:start|begin|continue|proceed|go on|finish)\b"
    r"[^.?!]*\b(?:once|when|after|as soon as) you\b"
    r"|\b(?:awaiting|waiting (?:for|on)) (?:your|you)\b|\b(?:I'll|I will|I'm|I am) wait(?:ing)? (?:for|on|until) you\b"
    r"|\b(?:I|we)(?:'ll| will)? need (?:you to|your|the (?:\w+ )?(?:key|token|password|credentials|url|path|name))\b"
)
_DEFAULT = _cue(
    r"\b(?:I'll|I will|I'd) default to\b|\bif you(?:'re| are) (?:unsure|not sure)\b"
    r"|\bunless you (?:say|tell me|prefer|object)\b|\bif I don't hear\b|\bby default I(?:'ll| will)\b"
)
_PLAN = _cue(
    r"\b(?:plan|proposed|proposal|next steps?|recommend(?:ed|ation)?|option [A-Z1-9]|options:|approach|"
    r"alternatives?|suggestion)\b|\b(?:not sure|unsure) (?:which|what|whether|if|how)\b"
    r"|\b(?:I'll|I will|I'd|I would|we'll|we would)\b[^.?!]*:\s*$|\bif (?:yes|so),? I(?:'ll| will)\b"
    r"|\bthe implementation would\b"
    r"|\b(?:I|we) (?:haven't|have not) (?:made|changed|implemented|touched|started|applied)\b"
    r"|\bnot (?:yet )?(?:implemented|started|changed|applied)\b"
    r"|\bbefore (?:I|we) (?:proceed|continue|start|begin|go ahead|make|change|delete|run)\b"
    r"|\bbefore (?:proceeding|coding|implementing|continuing|starting|making|going further)\b"
)
# Past tense of a change, said of the agent's own work.
_CHANGE_VERB = (
    r"(?:added|implemented|created|fixed|updated|removed|renamed|refactored|committed|pushed|installed|deployed|"
    r"wrote|written|changed|moved|replaced|deleted|initiali[sz]ed|configured|built|merged|migrated|applied|"
    r"reverted|restored|extracted|cleaned up|resolved|re-?ran|ran|reduced|increased|marked|wired|generated|"
    r"documented|enabled|disabled|converted|upgraded|bumped|introduced|adjusted|tightened|made|verified|tested|"
    r"capped|switched|reordered|rewrote|rewritten|ported|patched|pinned|exposed|staged|tagged|published|"
    r"released|simplified|consolidated|completed|finished)"
)
# Verbs in "-ed" that report looking or thinking, not a change.
_NOT_A_CHANGE = (
    r"(?!(?:looked|checked|analy[sz]ed|investigated|noticed|tried|needed|wanted|started|inspected|reviewed|"
    r"examined|considered|explored|searched|traced|assumed|reproduced|wondered|drafted|stopped|hoped|decided|"
    r"planned|proposed|suggested|recommended|expected|used|asked|paused|outlined|sketched)\b)"
)
_COMPLETION = _cue(
    r"^\s*(?:\d+[.)]\s*|[-*•✅]\s*)?" + _CHANGE_VERB + r"\b"
    r"|\b(?:I|we)(?:'ve| have)? (?:now |also |just |then |successfully )?(?:" + _CHANGE_VERB + r"|split|set up)\b"
    r"|\b(?:I|we)(?:'ve| have)? (?:now |also |just |then )?" + _NOT_A_CHANGE + r"[a-z]+ed\b"
    r"|\b(?:has|have|had|was|were|is|are) (?:now |also |successfully )?(?:been )?" + _CHANGE_VERB + r"\b"
    r"|^\s*(?:all )?(?:done|fixed|finished|complete)\b|\btasks? (?:is |are )?complete"
    r"|\b(?<!make )(?:all|the|\d+) (?:\w+ )?tests? (?:now )?(?:pass|passed|passing|are passing|are green)\b"
    r"|\btests? (?:passed|passing|are green|green)\b|\bgreen again\b|\bsuccessfully\b"
    r"|\b(?:is|are) (?:now )?(?:complete|working|fixed|in place|ready|live)\b|\bshould now\b"
    r"|\b(?:is|are) now [\w-]+ed\b|\b\d+ (?:passed|passing)\b|\b(?:I|we)(?:'ve| have) run\b"
    r"|\beverything\b[^.?!]*\b(?:passes|passed|is green)\b"
    r"|\bnow (?!this\b|thus\b|as\b|was\b|its\b|us\b|is\b)[a-z]{2,}(?<!s)s\b"
)
_INTERROGATIVE = _cue(
    r"^\s*(?:is|are|was|were|do|does|did|should|shall|can|could|would|will|have|has|what|which|how|where|who|when|why|may)\b"
)

_FENCE = re.compile(r"^\s*```.*?^\s*```[^\n]*$", re.MULTILINE | re.DOTALL)
# Spans whose "?" is not the agent's: inline code, quotations, links, and markup tags.
_MASKED = re.compile(
    r"`[^`\n]*`|\"[^\"\n]{1,200}\"|“[^”\n]{1,200}”|https?://[^\s)\]]*[^\s.,;:!?)\]'\"]|</?[\w-]+(?: [^>\n]*)?>"
)
_SENTENCE_END = re.compile(r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\betc\.)(?<!\bvs\.)(?<=[.!?])[)\]*_]*\s+(?=[^\s(])")
# A closing parenthesis after the "?": "Proceed? (Recommended)".
_ASIDE = re.compile(r"\s*\([^()]*\)[\s*_]*$")
_LIST_MARKER = re.compile(r"^\s*(?:\d+[.)]|[a-zA-Z][.)]|\([a-zA-Z0-9]\)|[-*•])\s+")
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[a-zA-Z][.)]|\([a-zA-Z0-9]\)|[-*•])\s+(?:\*\*)?(.+?)(?:\*\*)?\s*$")


@dataclass(frozen=True)
class _Sentence:
    text: str  # as written
    masked: str  # quotes and code replaced, for the cues
    line: int
    in_list: bool


def looks_like_question(text: str, *, made_changes: bool | None = None) -> bool:
    """True when the answer ends by waiting on the user (a decision, information, a go-ahead),
    rather than reporting work done and maybe offering more.

    made_changes: the agent changed files in this subtask (True), changed nothing (False), unknown (None).
    """
    return _score(_tail_sentences(text), made_changes) >= THRESHOLD


def question_from_text(text: str) -> AgentQuestion:
    """The question in a final answer, with the options it offers.

    The question is the strongest ask of the ending (outside lists, a "?" preferred, the latest
    on a tie), with the sentence before it when it says "If so, ...", and the sub-questions listed
    under it. The options are the alternatives in the sentence ("X or Y?", "(A) ... or (B) ...",
    "**X** ... or **Y**"), else the list right after it, else the list before it when that list
    is offered as choices ("Would you like me to:", "Two options:", "Which of these ...").
    """
    sentences = _tail_sentences(text)
    if not sentences:
        return AgentQuestion(question=text.strip())
    at = max(range(len(sentences)), key=lambda i: _ask_rank(sentences[i], i))
    asked = sentences[at] if _ask_weight(sentences[at]) > 0 else sentences[-1]
    question = _plain(asked.text)
    if at > 0 and _FOLLOWS_ON.match(asked.masked):
        question = f"{_plain(sentences[at - 1].text)} {question}"
    lines = _lines(text)
    items = _list_after(lines, asked) or _choices_before(lines, asked)
    if items and all(_INTERROGATIVE.search(item) and item.endswith("?") for item in items):
        return AgentQuestion(question="\n".join([question, *items]))
    options = _inline_options(asked.text) or [Option(label=item) for item in items]
    return AgentQuestion(question=question, options=options)


def _ask_rank(sentence: _Sentence, at: int) -> tuple[bool, bool, float, bool, int]:
    weight = _ask_weight(sentence)
    return weight > 0, not sentence.in_list, weight, sentence.masked.endswith("?"), at


def _plain(text: str) -> str:
    return _LIST_MARKER.sub("", text).replace("**", "").strip()


def _score(sentences: list[_Sentence], made_changes: bool | None) -> float:
    changed = made_changes if made_changes is not None else any(_COMPLETION.search(s.masked) for s in sentences)
    asks = sum(_ask_weight(sentence, changed) for sentence in _askable(sentences))
    context = sum(BLOCKER for s in sentences if _BLOCKER.search(s.masked))
    if asks <= 0 and not context:
        return asks
    context += sum(DEFAULT for s in sentences if _DEFAULT.search(s.masked))
    context += min(PLAN_CAP, sum(PLAN for s in sentences if _PLAN.search(s.masked)))
    return asks + context


def _askable(sentences: list[_Sentence]) -> list[_Sentence]:
    """The sentences that ask on their own: the items of a list introduced by "...:" are the
    options of that sentence's ask ("Would you like me to:", "If it fails, can you tell me:")."""
    kept: list[_Sentence] = []
    under_header = False
    for sentence in sentences:
        if sentence.in_list and under_header:
            continue
        under_header = sentence.masked.endswith(":") or (under_header and sentence.in_list)
        kept.append(sentence)
    return kept


def _ask_weight(sentence: _Sentence, changed: bool | None = None) -> float:
    """How strongly one sentence asks the user something; 0 for an offer of more work or a
    follow-up that only applies if the work did not help. `changed`: work was done before it."""
    masked = sentence.masked
    asked = _ASIDE.sub("", masked).rstrip(" *_").endswith("?")
    # Before any change, asking to go ahead or to check something is a question; after, an offer.
    after = 0.0 if changed is None else (AFTER_CHANGES if changed else BEFORE_CHANGES)
    permission = _PERMISSION.search(masked) and (asked or masked.endswith(":"))
    if _CONDITIONAL.search(masked) and not _DEFAULT.search(masked):
        return 0.0
    if _CONFIRM.search(masked):
        return CONFIRM + after + (GO_AHEAD if _GO_AHEAD.search(masked) else 0.0)
    if _OFFER.search(masked) or (permission and _EXTRA_WORK.search(masked)):
        return OFFER
    if _DECISION.search(masked) or _REQUEST.search(masked) or (asked and _EITHER_OR_ASKED.search(masked)):
        return DECISION
    if _VERIFY.search(masked):
        return CONFIRM + after
    if _ASK_TO_ACT.search(masked):
        return REQUEST
    if permission:
        return PERMISSION + after + (GO_AHEAD if _GO_AHEAD.search(masked) else 0.0)
    if asked and (_INTERROGATIVE.search(masked) or not sentence.in_list):
        return OTHER_QUESTION + max(0.0, after)
    return 0.0


def _lines(text: str) -> list[str]:
    return _FENCE.sub("", text.strip()[-LOOKBACK_CHARS:]).splitlines()


def _tail_sentences(text: str) -> list[_Sentence]:
    lines = _lines(text)
    sentences: list[_Sentence] = []
    chars = 0
    for at in range(len(lines) - 1, -1, -1):
        if chars >= TAIL_CHARS:
            break
        line = lines[at][-TAIL_CHARS:]
        chars += len(line) + 1
        sentences[:0] = _split(line, at)
    return sentences


def _split(line: str, at: int) -> list[_Sentence]:
    """One line's sentences; a list marker ("1.", "-") stays with the item's first sentence."""
    masked = _MASKED.sub(lambda span: "x" * len(span.group(0)), line)
    marker = _LIST_MARKER.match(masked)
    body = marker.end() if marker else 0
    starts = [0] + [end.end() for end in _SENTENCE_END.finditer(masked, body)]
    ends = [*starts[1:], len(line)]
    return [
        _Sentence(line[a:b].strip(), masked[a:b].replace("**", "").strip(), at, bool(marker))
        for a, b in zip(starts, ends, strict=True)
        if line[a:b].strip()
    ]


_EITHER_OR = re.compile(r"([\w.+#-]+),? or ([\w.+#-]+)\s*\?\s*$")
_LETTERED = re.compile(r"\(([A-Z]|\d)\)\s*((?:[^()?]|\([^()]*\))+?)\s*(?=,?\s*(?:or\s*)?\((?:[A-Z]|\d)\)|[?.,;]|$)")
_FOLLOWS_ON = re.compile(r"^if (?:so|yes|not)\b", re.IGNORECASE)
_NAMES_CHOICES = _cue(r"\b(?:which|options?|choices?|alternatives?|approaches|ways|one of)\b")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_FILE_NAME = re.compile(r"^`?[\w./-]+\.\w+`?(?:\s*[:(-].*)?$")


def _inline_options(asked: str) -> list[Option]:
    """Alternatives named in the question itself: "(A) x or (B) y", "**x** ... or **y**", "x or y?"."""
    if len(lettered := _LETTERED.findall(asked.replace("**", ""))) >= 2:
        return [Option(label=label.strip()) for _, label in lettered]
    bold = _BOLD.findall(asked)
    if len(bold) >= 2 and re.search(r"\bor\b", asked.split(f"**{bold[0]}**", 1)[1]):
        return [Option(label=label.strip()) for label in bold]
    if either := _EITHER_OR.search(asked):
        return [Option(label=either.group(1).strip()), Option(label=either.group(2).strip())]
    return []


def _list_after(lines: list[str], asked: _Sentence) -> list[str]:
    """The list that directly follows the question, when the question ends its line."""
    if not lines[asked.line].rstrip().endswith(asked.text):
        return []
    return _choices(_leading_items(lines[asked.line + 1 :]))


def _choices_before(lines: list[str], asked: _Sentence) -> list[str]:
    """The list above the question, when it is offered as choices: its heading asks or names
    options, or the question points at it ("which of these")."""
    above = lines[: asked.line][::-1]
    items = _leading_items(above)[::-1]
    rest = iter(above)
    next((line for line in rest if _LIST_ITEM.match(line)), None)  # skip to the list ...
    heading = next((line for line in rest if line.strip() and not _LIST_ITEM.match(line)), "")  # ... past it
    if not items or not heading.strip():
        return []
    offered = _ask_weight(_split(heading, 0)[-1]) > 0 or _NAMES_CHOICES.search(heading)
    return _choices(items) if offered or _NAMES_CHOICES.search(asked.masked) else []


def _choices(items: list[str]) -> list[str]:
    """A list of two or more items that are not just file names (a summary of the work)."""
    return items if len(items) >= 2 and not all(_FILE_NAME.match(item) for item in items) else []


def _leading_items(lines: list[str]) -> list[str]:
    items: list[str] = []
    for line in lines:
        if match := _LIST_ITEM.match(line):
            items.append(match.group(1).replace("**", "").strip())
        elif items or line.strip():
            break  # the list ended, or text stands between the question and any list
    return items
