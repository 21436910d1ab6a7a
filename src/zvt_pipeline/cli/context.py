"""The CLI's dependencies, built once per command from the environment."""

from __future__ import annotations

from functools import cached_property

from zvt_pipeline.config import Settings, load_settings
from zvt_pipeline.runtime import Runtime
from zvt_pipeline.workflows.submit import Workflows


class CliContext:
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @cached_property
    def settings(self) -> Settings:
        return self._settings or load_settings()

    @cached_property
    def runtime(self) -> Runtime:
        return Runtime.from_settings(self.settings)

    @cached_property
    def workflows(self) -> Workflows:
        return Workflows(self.runtime.bus, self.runtime.store)
