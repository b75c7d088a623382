"""One prompt template for sampling, training and evaluation.

The public O1-Pruner code samples with one prompt ("Solve the problem: ...")
and trains with another (the bare problem), so during training pi_ref(y|x) is
not the distribution the samples came from (method.md, pitfalls). Here the
same :class:`PromptTemplate` renders the prompt in every stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Union

#: The system prompt of the public O1-Pruner code's training set (its
#: ``construct_dataset.py``) and of its Marco-o1 sampling prompt.
PUBLIC_SYSTEM_PROMPT = (
    "You are a helpful assistant. You should think step-by-step and put your final answer within \\boxed{}."
)

__all__ = [
    "PromptTemplate",
    "as_template",
    "PUBLIC_SYSTEM_PROMPT",
    "PUBLIC_TRAIN_TEMPLATE",
    "MARCO_SAMPLING_TEMPLATE",
]

_PLACEHOLDER = "{problem}"


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt made of an optional system turn and a user turn.

    Parameters
    ----------
    user : str, default "{problem}"
        The user turn; ``{problem}`` is replaced by the problem text (plain
        substitution, so other braces such as ``\\boxed{}`` are left alone).
    system : str or None
        The system turn, if any.
    chat : bool or None, default None
        How :meth:`render` builds the prompt text. True: through the
        tokenizer's ``apply_chat_template`` (required then); False: plain text
        ``system + "\\n\\n" + user`` (or just ``user``); None: the chat
        template when the tokenizer has one, plain text otherwise.
    fn : callable or None
        Advanced: ``fn(problem) -> str`` replacing the plain-text rendering
        (for templates that are not a system/user pair, e.g. a built-in
        task's own format). The chat path is then not available.

    Examples
    --------
    >>> t = PromptTemplate("Solve the problem: {problem}", system="Think step by step.")
    >>> t.render("1+1?")
    'Think step by step.\\n\\nSolve the problem: 1+1?'
    >>> t.messages("1+1?")[1]
    {'role': 'user', 'content': 'Solve the problem: 1+1?'}
    """

    user: str = _PLACEHOLDER
    system: Optional[str] = None
    chat: Optional[bool] = None
    fn: Optional[Callable[[str], str]] = field(default=None, compare=False)

    def __post_init__(self):
        if not isinstance(self.user, str):
            raise TypeError(f"user: expected a str, got {type(self.user).__name__}")
        if self.fn is None and _PLACEHOLDER not in self.user:
            raise ValueError(f"user: the template must contain {_PLACEHOLDER!r}, got {self.user!r}")
        if self.system is not None and not isinstance(self.system, str):
            raise TypeError(f"system: expected a str or None, got {type(self.system).__name__}")

    def user_text(self, problem: str) -> str:
        """The user turn for `problem`."""
        return self.user.replace(_PLACEHOLDER, problem)

    def messages(self, problem: str) -> List[Dict[str, str]]:
        """Chat messages (system if any, then user) for `problem`."""
        out = []
        if self.system is not None:
            out.append({"role": "system", "content": self.system})
        out.append({"role": "user", "content": self.user_text(problem)})
        return out

    def render(self, problem: str, tokenizer: Any = None) -> str:
        """The prompt text given to the model for `problem`.

        With a tokenizer that has a chat template (a Hugging Face tokenizer),
        the messages go through ``apply_chat_template(...,
        add_generation_prompt=True, tokenize=False)``, as vLLM users do;
        see `chat` for the rules.
        """
        if not isinstance(problem, str):
            raise TypeError(f"problem: expected a str, got {type(problem).__name__}")
        use_chat = self.chat
        has_chat = tokenizer is not None and hasattr(tokenizer, "apply_chat_template") and getattr(tokenizer, "chat_template", None)
        if use_chat is None:
            use_chat = bool(has_chat) and self.fn is None
        if use_chat:
            if not has_chat:
                raise ValueError("template: chat=True needs a tokenizer with a chat template (apply_chat_template)")
            return tokenizer.apply_chat_template(self.messages(problem), add_generation_prompt=True, tokenize=False)
        if self.fn is not None:
            out = self.fn(problem)
            if not isinstance(out, str):
                raise TypeError(f"template: the template function returned {type(out).__name__}, expected str")
            return out
        u = self.user_text(problem)
        return u if self.system is None else self.system + "\n\n" + u

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-able description (used to check that a resumed run uses the
        same template)."""
        d: Dict[str, Any] = {"user": self.user, "system": self.system, "chat": self.chat}
        if self.fn is not None:
            d["fn"] = getattr(self.fn, "__qualname__", repr(self.fn))
        return d


#: The public O1-Pruner code's training prompt (construct_dataset.py): its
#: system prompt and the bare problem as the user turn.
PUBLIC_TRAIN_TEMPLATE = PromptTemplate(user=_PLACEHOLDER, system=PUBLIC_SYSTEM_PROMPT)

#: The public code's Marco-o1 sampling prompt (inference.py, "normal" speed).
MARCO_SAMPLING_TEMPLATE = PromptTemplate(user="Solve the problem: " + _PLACEHOLDER, system=PUBLIC_SYSTEM_PROMPT)


def as_template(template: Union[None, str, Callable[[str], str], PromptTemplate]) -> PromptTemplate:
    """Coerce the `template` argument of the pipeline functions.

    None -> ``PromptTemplate()`` (the bare problem); a str containing
    ``{problem}`` -> a user-turn template; a callable ``problem -> str`` ->
    a template with that function (plain-text rendering only); an object with
    a ``render`` method (e.g. a task's template) is wrapped the same way.
    """
    if template is None:
        return PromptTemplate()
    if isinstance(template, PromptTemplate):
        return template
    if isinstance(template, str):
        return PromptTemplate(user=template)
    if hasattr(template, "render") and callable(template.render):
        return PromptTemplate(fn=template.render, user=getattr(template, "user", _PLACEHOLDER) if isinstance(getattr(template, "user", None), str) else _PLACEHOLDER)
    if callable(template):
        return PromptTemplate(fn=template)
    raise TypeError(f"template: expected a PromptTemplate, a str with {_PLACEHOLDER!r} or a callable, got {type(template).__name__}")
