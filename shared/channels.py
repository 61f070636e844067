"""The department's channel kinds: one vocabulary for campaigns (calendar) and budgets.

A campaign lists the kinds it runs on; a budget's channels each have one kind, so the money a
budget holds for a campaign's channel is found without typing a mapping twice."""
from typing import Literal, get_args

ChannelKind = Literal["search", "social", "video", "kol", "email", "display", "affiliate",
                      "offline", "other"]
CHANNEL_KINDS: tuple[str, ...] = get_args(ChannelKind)
