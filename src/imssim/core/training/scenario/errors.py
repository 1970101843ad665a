"""Scenario problems, each with file, line, column and field path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScenarioIssue:
    """One problem in a scenario file (line and column count from 1; 0 = unknown)."""

    file: str
    line: int
    column: int
    path: str
    message: str
    severity: str = "error"  # "error" or "warning"

    def __post_init__(self) -> None:
        # one printable line whatever the input held (lone surrogates, newlines)
        for f in ("file", "path", "message"):
            v = getattr(self, f)
            v = v.encode("utf-8", "backslashreplace").decode("utf-8")
            object.__setattr__(self, f, " ".join(v.split()) if f == "message" else v.replace("\n", "\\n"))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else f"{self.file}"
        sev = "warning: " if self.severity == "warning" else ""
        field = f"{self.path}: " if self.path else ""
        return f"{where}: {sev}{field}{self.message}"


class ScenarioError(Exception):
    """A scenario that cannot be used; ``issues`` lists every problem found (one per line)."""

    def __init__(self, issues: list[ScenarioIssue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))

    @property
    def errors(self) -> list[ScenarioIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[ScenarioIssue]:
        return [i for i in self.issues if i.severity == "warning"]
