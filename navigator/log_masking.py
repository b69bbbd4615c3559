"""What no log line may carry: the bot's token, and the secrets users send.

Logging is masked where records are made (the log record factory), so every logger,
handler and format is covered, python-telegram-bot's DEBUG dumps of raw updates too:
strings given to `hide_in_logs` become `***`, and with `redact_secrets_in_logs` every
Stellar secret key and recovery phrase (navigator.secret_guard) becomes a placeholder,
in the message and in the traceback of a logged exception. The transports take secrets
out of updates before they are stored or handled; this is the second line.

The masking lives in the factory object itself (installed once, found again by its
type), so there is no state of this module to share.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from navigator.secret_guard import LOG_PLACEHOLDERS, redact


class MaskingRecords:
    """A log record factory that masks what the records say, wrapping the previous one."""

    def __init__(self, make_record: Any):
        self.make_record = make_record
        self.hidden: set[str] = set()
        self.secrets = False

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # wrong arguments: logging reports it when it emits the record
            return record
        masked = message
        for hidden in self.hidden:
            masked = masked.replace(hidden, "***")
        if self.secrets:
            masked = redact(masked, LOG_PLACEHOLDERS).text
            if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
                # The formatter uses exc_text when it is set (and only formats otherwise).
                trace = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
                redacted = redact(trace, LOG_PLACEHOLDERS)
                if redacted:
                    record.exc_text = redacted.text
        if masked != message:
            record.msg, record.args = masked, None
        return record


def _masking() -> MaskingRecords:
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, MaskingRecords):
        factory = MaskingRecords(factory)
        logging.setLogRecordFactory(factory)
    return factory


def hide_in_logs(text: str) -> None:
    """Replace `text` (a token) by `***` in every log record from now on (any logger)."""
    if text:
        _masking().hidden.add(text)


def redact_secrets_in_logs() -> None:
    """Replace secret keys and recovery phrases in every log record from now on."""
    _masking().secrets = True
