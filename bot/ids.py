"""Typed Slack ids: every action_id and block_id the bot sends, and the values it carries."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel


class Action(StrEnum):
    PICK_ACCOUNT = "pick_account"  # a button of the "which account?" picker
    SHARE_BRIEF = "share_brief"  # post the brief to the channel it was asked in
    OPEN_IN_CRM = "open_in_crm"  # a link button: Slack still sends the click, acked
    LOG_SENTIMENT = "log_sentiment"  # opens the sentiment form
    SHOW_BRIEF = "show_brief"  # a digest line's Brief button
    TASK_DONE = "task_done"  # a playbook task's Done button
    TASK_SNOOZE = "task_snooze"  # its Snooze menu (1 day, 3 days, 1 week)
    TASK_REASSIGN = "task_reassign"  # its Reassign user picker


class View(StrEnum):
    SENTIMENT = "sentiment_form"  # callback_id of the sentiment modal


class Field(StrEnum):
    """block_id of each input of the sentiment form (its action_id is the same)."""

    RATING = "rating"
    DIRECTION = "direction"
    FLAGS = "flags"
    NOTE = "note"


class AccountValue(BaseModel):
    """A button's `value` (<= 2,000 chars): which account it is about."""

    account_id: int

    def dump(self) -> str:
        return self.model_dump_json()


class TaskValue(BaseModel):
    """A task button's `value`: which task."""

    task_id: int

    def dump(self) -> str:
        return self.model_dump_json()
